/**
 * The message digests the UDP layer needs, in plain TypeScript: MD5 for name
 * hashes (RFC 1321) and SHA-256/384/512 for the allocation header's request
 * hash (FIPS 180-4). Inputs here are names and headers of a few dozen bytes,
 * once per flow; keeping them out of node:crypto keeps every process smaller.
 *
 * The round constants are derived as the standards define them (sines for
 * MD5, fractional parts of square and cube roots of primes for SHA-2)
 * rather than copied in; the tests check every digest against node:crypto.
 */

// ---------------------------------------------------------------- MD5

const MD5_K = Array.from(
  { length: 64 },
  (_, i) => Math.floor(Math.abs(Math.sin(i + 1)) * 2 ** 32) >>> 0,
);
const MD5_S = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];

/** Pads a message for a 64-byte (bits: little or big endian) block function. */
function pad(
  msg: Uint8Array,
  block: number,
  lenBytes: number,
  littleEndian: boolean,
): Uint8Array {
  const total = Math.ceil((msg.length + 1 + lenBytes) / block) * block;
  const out = new Uint8Array(total);
  out.set(msg);
  out[msg.length] = 0x80;
  const v = new DataView(out.buffer);
  const bits = BigInt(msg.length) * 8n;
  if (littleEndian) v.setBigUint64(total - 8, bits, true);
  else v.setBigUint64(total - 8, bits, false);
  return out;
}

export function md5(msg: Uint8Array): Uint8Array {
  const m = pad(msg, 64, 8, true);
  const v = new DataView(m.buffer);
  let a0 = 0x67452301, b0 = 0xefcdab89, c0 = 0x98badcfe, d0 = 0x10325476;
  const w = new Uint32Array(16);
  for (let off = 0; off < m.length; off += 64) {
    for (let i = 0; i < 16; i++) w[i] = v.getUint32(off + 4 * i, true);
    let a = a0, b = b0, c = c0, d = d0;
    for (let i = 0; i < 64; i++) {
      let f: number;
      let g: number;
      if (i < 16) {
        f = (b & c) | (~b & d);
        g = i;
      } else if (i < 32) {
        f = (d & b) | (~d & c);
        g = (5 * i + 1) % 16;
      } else if (i < 48) {
        f = b ^ c ^ d;
        g = (3 * i + 5) % 16;
      } else {
        f = c ^ (b | ~d);
        g = (7 * i) % 16;
      }
      const s = MD5_S[(i >> 4) * 4 + (i & 3)]!;
      const x = (a + f + MD5_K[i]! + w[g]!) >>> 0;
      a = d;
      d = c;
      c = b;
      b = (b + ((x << s) | (x >>> (32 - s)))) >>> 0;
    }
    a0 = (a0 + a) >>> 0;
    b0 = (b0 + b) >>> 0;
    c0 = (c0 + c) >>> 0;
    d0 = (d0 + d) >>> 0;
  }
  const out = new Uint8Array(16);
  const ov = new DataView(out.buffer);
  [a0, b0, c0, d0].forEach((x, i) => ov.setUint32(4 * i, x, true));
  return out;
}

// ---------------------------------------------------------------- SHA-2

function primes(n: number): number[] {
  const out: number[] = [];
  for (let c = 2; out.length < n; c++) {
    if (out.every((p) => c % p !== 0)) out.push(c);
  }
  return out;
}

/** floor(x ** (1/k)) for a non-negative bigint (Newton's method from above). */
function iroot(x: bigint, k: bigint): bigint {
  if (x < 2n) return x;
  // A float estimate, raised well above the root: Newton then descends to it.
  let r = BigInt(Math.ceil(Number(x) ** (1 / Number(k)) * (1 + 1e-9))) + 1n;
  for (;;) {
    const next = ((k - 1n) * r + x / r ** (k - 1n)) / k;
    if (next >= r) return r;
    r = next;
  }
}

/** The first `bits` bits of the fractional part of p ** (1/k). */
function fracRoot(p: number, k: bigint, bits: bigint): bigint {
  return iroot(BigInt(p) << (bits * k), k) & ((1n << bits) - 1n);
}

interface Sha2Tables {
  /** The 80 SHA-512 constants as (high, low) 32-bit pairs. */
  K512: Uint32Array;
  K32: number[];
  IV256: number[];
  IV512: Uint32Array;
  IV384: Uint32Array;
}

/** 64-bit numbers as (high, low) 32-bit pairs, high first. */
function halves(xs: bigint[]): Uint32Array {
  const out = new Uint32Array(xs.length * 2);
  xs.forEach((x, i) => {
    out[2 * i] = Number(x >> 32n);
    out[2 * i + 1] = Number(x & 0xffffffffn);
  });
  return out;
}

let tables: Sha2Tables | undefined;

/** The SHA-2 constants, derived on first use (a process that never hashes skips it). */
function sha2(): Sha2Tables {
  if (tables !== undefined) return tables;
  const P = primes(80);
  tables = {
    K512: halves(P.map((p) => fracRoot(p, 3n, 64n))),
    K32: P.slice(0, 64).map((p) => Number(fracRoot(p, 3n, 32n))),
    IV256: P.slice(0, 8).map((p) => Number(fracRoot(p, 2n, 32n))),
    IV512: halves(P.slice(0, 8).map((p) => fracRoot(p, 2n, 64n))),
    IV384: halves(P.slice(8, 16).map((p) => fracRoot(p, 2n, 64n))),
  };
  return tables;
}

export function sha256(msg: Uint8Array): Uint8Array {
  const m = pad(msg, 64, 8, false);
  const v = new DataView(m.buffer);
  const { IV256, K32 } = sha2();
  const h = IV256.slice();
  const w = new Uint32Array(64);
  const rotr = (x: number, n: number) => (x >>> n) | (x << (32 - n));
  for (let off = 0; off < m.length; off += 64) {
    for (let i = 0; i < 16; i++) w[i] = v.getUint32(off + 4 * i);
    for (let i = 16; i < 64; i++) {
      const a = w[i - 15]!, b = w[i - 2]!;
      const s0 = rotr(a, 7) ^ rotr(a, 18) ^ (a >>> 3);
      const s1 = rotr(b, 17) ^ rotr(b, 19) ^ (b >>> 10);
      w[i] = (w[i - 16]! + s0 + w[i - 7]! + s1) >>> 0;
    }
    let [a, b, c, d, e, f, g, hh] = h as [
      number,
      number,
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    for (let i = 0; i < 64; i++) {
      const t1 =
        (hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) +
          K32[i]! + w[i]!) >>> 0;
      const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) +
        ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
      hh = g;
      g = f;
      f = e;
      e = (d + t1) >>> 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) >>> 0;
    }
    [a, b, c, d, e, f, g, hh].forEach((x, i) => h[i] = (h[i]! + x) >>> 0);
  }
  const out = new Uint8Array(32);
  const ov = new DataView(out.buffer);
  h.forEach((x, i) => ov.setUint32(4 * i, x));
  return out;
}

const TWO32 = 4294967296;

/**
 * SHA-512 and SHA-384 over 32-bit halves: every 64-bit word is a pair
 * (high, low) of unsigned 32-bit numbers in a Uint32Array, high first. The
 * low halves are summed as plain numbers (exact below 2^53) and their carry
 * moved into the high half; stores into the array wrap modulo 2^32.
 */
function sha512Core(
  msg: Uint8Array,
  iv: Uint32Array,
  outLen: number,
): Uint8Array {
  const m = pad(msg, 128, 16, false);
  const v = new DataView(m.buffer);
  const K = sha2().K512;
  const h = iv.slice();
  const w = new Uint32Array(160);
  /** h[j..j+1] += (xh, xl), modulo 2^64. */
  const add = (j: number, xh: number, xl: number) => {
    const lo = h[j + 1]! + xl;
    h[j] = h[j]! + xh + Math.floor(lo / TWO32);
    h[j + 1] = lo;
  };
  for (let off = 0; off < m.length; off += 128) {
    for (let i = 0; i < 32; i++) w[i] = v.getUint32(off + 4 * i);
    for (let i = 32; i < 160; i += 2) {
      // σ0 = rotr 1 ^ rotr 8 ^ shr 7 of w[t-15]; σ1 = rotr 19 ^ rotr 61 ^
      // shr 6 of w[t-2].
      let xh = w[i - 30]!, xl = w[i - 29]!;
      const s0h = ((xh >>> 1) | (xl << 31)) ^ ((xh >>> 8) | (xl << 24)) ^
        (xh >>> 7);
      const s0l = ((xl >>> 1) | (xh << 31)) ^ ((xl >>> 8) | (xh << 24)) ^
        ((xl >>> 7) | (xh << 25));
      xh = w[i - 4]!;
      xl = w[i - 3]!;
      const s1h = ((xh >>> 19) | (xl << 13)) ^ ((xl >>> 29) | (xh << 3)) ^
        (xh >>> 6);
      const s1l = ((xl >>> 19) | (xh << 13)) ^ ((xh >>> 29) | (xl << 3)) ^
        ((xl >>> 6) | (xh << 26));
      const lo = (s0l >>> 0) + (s1l >>> 0) + w[i - 31]! + w[i - 13]!;
      w[i] = s0h + s1h + w[i - 32]! + w[i - 14]! + Math.floor(lo / TWO32);
      w[i + 1] = lo;
    }
    let ah = h[0]!, al = h[1]!, bh = h[2]!, bl = h[3]!;
    let ch = h[4]!, cl = h[5]!, dh = h[6]!, dl = h[7]!;
    let eh = h[8]!, el = h[9]!, fh = h[10]!, fl = h[11]!;
    let gh = h[12]!, gl = h[13]!, hh = h[14]!, hl = h[15]!;
    for (let i = 0; i < 160; i += 2) {
      // Σ1 = rotr 14 ^ rotr 18 ^ rotr 41 of e; Σ0 = rotr 28 ^ rotr 34 ^
      // rotr 39 of a.
      const S1h = ((eh >>> 14) | (el << 18)) ^ ((eh >>> 18) | (el << 14)) ^
        ((el >>> 9) | (eh << 23));
      const S1l = ((el >>> 14) | (eh << 18)) ^ ((el >>> 18) | (eh << 14)) ^
        ((eh >>> 9) | (el << 23));
      const chh = (eh & fh) ^ (~eh & gh);
      const chl = (el & fl) ^ (~el & gl);
      const t1lo = hl + (S1l >>> 0) + (chl >>> 0) + K[i + 1]! + w[i + 1]!;
      const t1h = hh + S1h + chh + K[i]! + w[i]! + Math.floor(t1lo / TWO32);
      const t1l = t1lo >>> 0;
      const S0h = ((ah >>> 28) | (al << 4)) ^ ((al >>> 2) | (ah << 30)) ^
        ((al >>> 7) | (ah << 25));
      const S0l = ((al >>> 28) | (ah << 4)) ^ ((ah >>> 2) | (al << 30)) ^
        ((ah >>> 7) | (al << 25));
      const majh = (ah & bh) ^ (ah & ch) ^ (bh & ch);
      const majl = (al & bl) ^ (al & cl) ^ (bl & cl);
      const t2lo = (S0l >>> 0) + (majl >>> 0);
      const t2h = S0h + majh + Math.floor(t2lo / TWO32);
      const t2l = t2lo >>> 0;
      hh = gh;
      hl = gl;
      gh = fh;
      gl = fl;
      fh = eh;
      fl = el;
      const elo = dl + t1l;
      eh = (dh + t1h + Math.floor(elo / TWO32)) >>> 0;
      el = elo >>> 0;
      dh = ch;
      dl = cl;
      ch = bh;
      cl = bl;
      bh = ah;
      bl = al;
      const alo = t1l + t2l;
      ah = (t1h + t2h + Math.floor(alo / TWO32)) >>> 0;
      al = alo >>> 0;
    }
    add(0, ah, al);
    add(2, bh, bl);
    add(4, ch, cl);
    add(6, dh, dl);
    add(8, eh, el);
    add(10, fh, fl);
    add(12, gh, gl);
    add(14, hh, hl);
  }
  const out = new Uint8Array(64);
  const ov = new DataView(out.buffer);
  for (let j = 0; j < 16; j++) ov.setUint32(4 * j, h[j]!);
  return out.slice(0, outLen);
}

export function sha512(msg: Uint8Array): Uint8Array {
  return sha512Core(msg, sha2().IV512, 64);
}

export function sha384(msg: Uint8Array): Uint8Array {
  return sha512Core(msg, sha2().IV384, 48);
}
