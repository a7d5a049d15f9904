import { createHash } from "node:crypto";
import {
  assert,
  assertEquals,
  assertMatch,
  unwrap,
} from "../../tests/assert.ts";
import { annotated, loadVectors } from "../../tests/vectors.ts";
import {
  DEFAULT_LOCAL_HASH,
  fromHex,
  HASH_ALGOS,
  HASH_LEN,
  isHashLength,
  NAME_HASH_LEN,
  nameHash,
  nameHashHex,
  nameHashWith,
  parseHashAlgo,
  toHex,
} from "./name_hash.ts";

Deno.test("nameHashHex gives the known directory keys", () => {
  assertEquals(nameHashHex("oping-server"), "6ae220aa6aae06c43878513c64db34b6");
  assertEquals(
    nameHashHex("oping-server2"),
    "f87b9400fa8f3d568b1481da7a99d122",
  );
  assertEquals(nameHashHex("nosrv"), "4b3da3106daada5537bd51984069ad59");
  assertEquals(nameHashHex(""), "d41d8cd98f00b204e9800998ecf8427e");
  // UTF-8 bytes, not UTF-16 code units
  assertEquals(nameHashHex("\u00e9"), "66ddcd97cfdeabb2f6fb8a999b4bc76f");
});

Deno.test("nameHash is the 16 bytes on the wire in the captured FLOW_REQs", () => {
  for (
    const file of [
      "c023-oping-raw.txt",
      "c023-no-server.txt",
      "c023-oping-qos-data-frct.txt",
    ]
  ) {
    const d = loadVectors(file).find((d) =>
      d.note === "mgmt frame (FLOW_REQ)"
    )!;
    const name = annotated(d, "dst hash");
    const h = nameHash(name);
    assertEquals(h.length, NAME_HASH_LEN);
    assertEquals(h, d.bytes.subarray(47, 63));
    // a fresh array each call, not a shared buffer
    assertEquals(h.byteOffset, 0);
    assertEquals(h.buffer.byteLength, 16);
  }
});

Deno.test("toHex and fromHex round-trip; fromHex rejects bad input", () => {
  const all = new Uint8Array(256).map((_, i) => i);
  const hex = toHex(all);
  assertMatch(hex, /^[0-9a-f]{512}$/);
  assertEquals(unwrap(fromHex(hex)), all);
  assertEquals(unwrap(fromHex(hex.toUpperCase())), all);
  assertEquals(unwrap(fromHex("")), new Uint8Array(0));
  const odd = fromHex("abc");
  assert(!odd.ok);
  assertEquals(odd.error, "hex string has an odd number of digits (3)");
  const bad = fromHex("0g");
  assert(!bad.ok);
  assertEquals(bad.error, 'invalid hex digit "g" at position 1');
  const bad2 = fromHex("zz00");
  assert(!bad2.ok);
  assertMatch(bad2.error, /position 0/);
  assert(!fromHex("0x12").ok);
  assert(!fromHex("1 ").ok);
});

Deno.test("nameHashWith hashes the UTF-8 bytes with the layer's algorithm", () => {
  const node = {
    MD5: "md5",
    SHA3_224: "sha3-224",
    SHA3_256: "sha3-256",
    SHA3_384: "sha3-384",
    SHA3_512: "sha3-512",
  } as const;
  for (const algo of HASH_ALGOS) {
    for (
      const name of [
        "oping",
        "oping-server",
        "",
        "\u00e9t\u00e9",
        "x".repeat(255),
      ]
    ) {
      const h = nameHashWith(algo, name);
      assertEquals(h.length, HASH_LEN[algo], `${algo} of ${name}`);
      assertEquals(
        toHex(h),
        createHash(node[algo]).update(new TextEncoder().encode(name)).digest(
          "hex",
        ),
        `${algo} of ${JSON.stringify(name)}`,
      );
    }
  }
  // MD5 is the UDP layers' hash, as nameHash gives it.
  assertEquals(nameHashWith("MD5", "oping-server"), nameHash("oping-server"));
  assertEquals(DEFAULT_LOCAL_HASH, "SHA3_256");
});

Deno.test("SHA3-256 of a name is the 32 bytes C 0.23 puts in a FLOW_REQ", async () => {
  // The unicast capture's annotation line of the FLOW_REQ's name hash.
  const text = await Deno.readTextFile(
    new URL("../../tests/vectors/c023-unicast-oping.txt", import.meta.url),
  );
  const lines = text.split("\n").filter((l) =>
    l.includes('dst hash (32 B) = SHA3-256("oping")')
  );
  assert(lines.length > 0, "no annotated SHA3-256 name hash in the capture");
  for (const line of lines) {
    const bytes = /\]((?: [0-9a-f]{2}){32}) /.exec(line)?.[1];
    assert(bytes !== undefined, line);
    assertEquals(
      toHex(nameHashWith("SHA3_256", "oping")),
      bytes.trim().split(" ").join(""),
    );
  }
});

Deno.test("parseHashAlgo and isHashLength", () => {
  assertEquals(parseHashAlgo("SHA3_256"), "SHA3_256");
  assertEquals(parseHashAlgo("sha3_512"), "SHA3_512");
  assertEquals(parseHashAlgo("md5"), "MD5");
  assertEquals(parseHashAlgo("SHA3-256"), undefined);
  assertEquals(parseHashAlgo("SHA3"), undefined);
  assertEquals(parseHashAlgo(""), undefined);
  for (const n of [16, 28, 32, 48, 64]) assert(isHashLength(n), `${n}`);
  for (const n of [0, 15, 20, 33, 65]) assert(!isHashLength(n), `${n}`);
});
