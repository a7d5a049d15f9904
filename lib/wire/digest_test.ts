import { createHash } from "node:crypto";
import { assertEquals } from "../../tests/assert.ts";
import { md5, sha256, sha384, sha512 } from "./digest.ts";

const DIGESTS = { md5, sha256, sha384, sha512 } as const;

function reference(alg: string, b: Uint8Array): Uint8Array {
  return new Uint8Array(createHash(alg).update(b).digest());
}

Deno.test("digests match node:crypto for every length around the block boundaries", () => {
  for (const [alg, fn] of Object.entries(DIGESTS)) {
    for (let n = 0; n <= 300; n++) {
      const b = new Uint8Array(n);
      for (let i = 0; i < n; i++) b[i] = (i * 131 + n * 7) & 0xff;
      assertEquals(fn(b), reference(alg, b), `${alg} of ${n} bytes`);
      // All ones: every addition carries.
      const ones = new Uint8Array(n).fill(0xff);
      assertEquals(fn(ones), reference(alg, ones), `${alg} of ${n} × 0xff`);
    }
  }
});

Deno.test("digests of known inputs", () => {
  const enc = new TextEncoder();
  const hex = (b: Uint8Array) =>
    [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  assertEquals(
    hex(md5(enc.encode("oping-server"))),
    "6ae220aa6aae06c43878513c64db34b6",
  );
  assertEquals(hex(md5(new Uint8Array(0))), "d41d8cd98f00b204e9800998ecf8427e");
  assertEquals(
    hex(sha256(enc.encode("abc"))),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
  assertEquals(
    hex(sha384(enc.encode("abc"))),
    "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed" +
      "8086072ba1e7cc2358baeca134c825a7",
  );
});
