import { createHash } from "node:crypto";
import { assertEquals } from "../../tests/assert.ts";
import { sha3 } from "./sha3.ts";

const SIZES = [224, 256, 384, 512] as const;

function reference(bits: number, b: Uint8Array): Uint8Array {
  return new Uint8Array(createHash(`sha3-${bits}`).update(b).digest());
}

const hex = (b: Uint8Array) =>
  [...b].map((x) => x.toString(16).padStart(2, "0")).join("");

Deno.test("sha3 matches node:crypto for every length around the rates", () => {
  // The rates are 144, 136, 104 and 72 bytes: 0..300 crosses each twice.
  for (const bits of SIZES) {
    for (let n = 0; n <= 300; n++) {
      const b = new Uint8Array(n);
      for (let i = 0; i < n; i++) b[i] = (i * 131 + n * 7) & 0xff;
      assertEquals(sha3(bits, b), reference(bits, b), `SHA3-${bits} of ${n}`);
      const ones = new Uint8Array(n).fill(0xff);
      assertEquals(sha3(bits, ones), reference(bits, ones));
    }
  }
});

Deno.test('sha3 of the FIPS 202 examples (empty and "abc")', () => {
  const abc = new TextEncoder().encode("abc");
  const empty = new Uint8Array(0);
  assertEquals(
    hex(sha3(256, empty)),
    "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a",
  );
  assertEquals(
    hex(sha3(256, abc)),
    "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532",
  );
  assertEquals(
    hex(sha3(224, abc)),
    "e642824c3f8cf24ad09234ee7d3c766fc9a3a5168d0c94ad73b46fdf",
  );
  assertEquals(
    hex(sha3(384, abc)),
    "ec01498288516fc926459f58e2c6ad8df9b473cb0fc08c2596da7cf0e49be4b2" +
      "98d88cea927ac7f539f1edf228376d25",
  );
  assertEquals(
    hex(sha3(512, abc)),
    "b751850b1a57168a5693cd924b6b096e08f621827444f70d884f5d0240d2712e" +
      "10e116e9192af3c91a7ec57647e3934057340b4cf408d5a56592f8274eec53f0",
  );
  // A fresh array of the digest's length each call.
  const d = sha3(224, abc);
  assertEquals(d.length, 28);
  assertEquals(d.buffer.byteLength, 28);
});
