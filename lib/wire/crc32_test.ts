import { assertEquals } from "../../tests/assert.ts";
import { crc32 as zlibCrc32 } from "node:zlib";
import { crc32, loadNativeCrc32, tableCrc32 } from "./crc32.ts";

Deno.test("crc32: the check value, and the table agrees with node:zlib on every length and offset", async () => {
  const check = new TextEncoder().encode("123456789");
  assertEquals(tableCrc32(check), 0xcbf43926);
  assertEquals(tableCrc32(new Uint8Array(0)), 0);
  // Seeded bytes (a fixed linear congruential sequence).
  const buf = new Uint8Array(4096 + 7);
  let x = 12345;
  for (let i = 0; i < buf.length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    buf[i] = x >>> 24;
  }
  for (let off = 0; off < 8; off++) {
    for (const len of [0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000, 4096]) {
      const b = buf.subarray(off, off + len);
      assertEquals(tableCrc32(b), zlibCrc32(b) >>> 0, `off ${off} len ${len}`);
    }
  }
  // Before and after node:zlib is loaded, the same answers.
  const before = crc32(buf);
  await loadNativeCrc32();
  assertEquals(crc32(buf), before);
  assertEquals(crc32(check), 0xcbf43926);
});
