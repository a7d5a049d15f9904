/**
 * CRC-32 (IEEE 802.3, as zlib computes it), for FRCT's trailer.
 *
 * Two implementations, one answer: node:zlib's native crc32 (about
 * 10 GB/s here) once `loadNativeCrc32()` has run, and until then a
 * slicing-by-8 table in TypeScript (about 0.7 GB/s here). Importing
 * node:zlib loads Deno's Node compatibility layer, about 5 MB of memory
 * in every process that does, so the application library loads it only
 * with the first flow that carries a CRC (dev.ts); everything else, and a
 * caller that never loads it, gets the table. The table is written here,
 * not taken from an npm package: packages load through the same
 * compatibility layer (a tiny CommonJS one measured +7 MB here).
 */

type Crc = (bytes: Uint8Array) => number;

let native: Crc | undefined;
let loading: Promise<void> | undefined;

/** Loads node:zlib's crc32; later calls of `crc32` use it. */
export function loadNativeCrc32(): Promise<void> {
  loading ??= import("node:zlib").then((z) => {
    native = (b) => z.crc32(b) >>> 0;
  });
  return loading;
}

/** CRC-32 of `bytes`, as an unsigned 32-bit number. */
export function crc32(bytes: Uint8Array): number {
  return native !== undefined ? native(bytes) : tableCrc32(bytes);
}

/** The eight 256-entry tables of slicing-by-8, made at the first call. */
let tables: Uint32Array | undefined;

function makeTables(): Uint32Array {
  const t = new Uint32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  for (let n = 0; n < 256; n++) {
    let c = t[n]!;
    for (let k = 1; k < 8; k++) {
      c = t[c & 0xff]! ^ (c >>> 8);
      t[k * 256 + n] = c >>> 0;
    }
  }
  return t;
}

/** The TypeScript CRC-32 (exported for its test against node:zlib). */
export function tableCrc32(b: Uint8Array): number {
  const t = tables ??= makeTables();
  let c = 0xffffffff;
  const n = b.length;
  const end8 = n - (n & 7);
  let i = 0;
  for (; i < end8; i += 8) {
    const lo = (b[i]! | b[i + 1]! << 8 | b[i + 2]! << 16 | b[i + 3]! << 24) ^
      c;
    const hi = b[i + 4]! | b[i + 5]! << 8 | b[i + 6]! << 16 | b[i + 7]! << 24;
    c = t[1792 + (lo & 0xff)]! ^ t[1536 + ((lo >>> 8) & 0xff)]! ^
      t[1280 + ((lo >>> 16) & 0xff)]! ^ t[1024 + (lo >>> 24)]! ^
      t[768 + (hi & 0xff)]! ^ t[512 + ((hi >>> 8) & 0xff)]! ^
      t[256 + ((hi >>> 16) & 0xff)]! ^ t[hi >>> 24]!;
  }
  for (; i < n; i++) c = t[(c ^ b[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
