import {
  assert,
  assertEquals,
  assertMatch,
  unwrap,
} from "../../tests/assert.ts";
import { annotated, loadVectors } from "../../tests/vectors.ts";
import {
  fromHex,
  NAME_HASH_LEN,
  nameHash,
  nameHashHex,
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
