import { assertEquals, assertMatch } from "../../tests/assert.ts";
import {
  arr,
  bigintStr,
  bool,
  hex,
  hexString,
  int,
  jsonReplacer,
  lit,
  obj,
  opt,
  str,
  toJsonValue,
} from "./schema.ts";
import { toHex } from "../wire/hex.ts";
import { METHODS } from "./proto.ts";
import { QOS_CUBES } from "../wire/udp_wire.ts";

const S = obj({
  n: int(1, 10),
  s: str({ max: 5 }),
  b: bool,
  l: lit("a", "b"),
  h: hex({ len: 2 }),
  big: bigintStr(),
  list: arr(int(0, 9), 3),
  o: opt(str()),
});

Deno.test("schemas accept what they describe", () => {
  const v = {
    n: 3,
    s: "abc",
    b: true,
    l: "b",
    h: "0aff",
    big: "18446744073709551615",
    list: [1, 2],
  };
  const r = S.parse(v, "m");
  assertEquals(r.ok, true);
  if (r.ok) {
    assertEquals(r.value.h, new Uint8Array([0x0a, 0xff]));
    assertEquals(r.value.big, 0xffff_ffff_ffff_ffffn);
    assertEquals("o" in r.value, false);
  }
});

Deno.test("schemas refuse, naming the path and what was expected", () => {
  const base = {
    n: 3,
    s: "abc",
    b: true,
    l: "a",
    h: "0aff",
    big: "1",
    list: [],
  };
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ n: 11 }, /m\.n: 11 is outside 1\.\.10/],
    [{ n: 1.5 }, /m\.n: expected an integer/],
    [{ s: "toolong" }, /m\.s: longer than 5/],
    [{ b: "yes" }, /m\.b: expected a boolean, got a string/],
    [{ l: "c" }, /m\.l: expected "a" or "b"/],
    [{ h: "0AFF" }, /m\.h: not lowercase hex/],
    [{ h: "0af" }, /m\.h: not lowercase hex/],
    [{ h: "0afg" }, /m\.h: not lowercase hex/],
    [{ h: "0a f" }, /m\.h: not lowercase hex/],
    [{ h: "0a\u00ff0" }, /m\.h: not lowercase hex/],
    [{ h: "0a\u0130" }, /m\.h: not lowercase hex/],
    [{ h: "00" }, /m\.h: expected 2 bytes, got 1/],
    [{ big: "18446744073709551616" }, /m\.big: larger than 64 bits/],
    [{ big: 5 }, /m\.big: expected a decimal string/],
    [{ list: [1, 2, 3, 4] }, /m\.list: more than 3 entries/],
    [{ list: [1, "x"] }, /m\.list\[1\]: expected an integer/],
    [{ o: 7 }, /m\.o: expected a string/],
  ];
  for (const [patch, re] of cases) {
    const r = S.parse({ ...base, ...patch }, "m");
    assertEquals(r.ok, false, JSON.stringify(patch));
    if (!r.ok) assertMatch(r.error, re);
  }
  const notObj = S.parse([1], "m");
  assertEquals(
    notObj.ok ? "" : notObj.error,
    "m: expected an object, got an array",
  );
});

Deno.test("a message survives its JSON form: bytes as hex, 64-bit numbers as strings", () => {
  const body = {
    handle: 7,
    token: new Uint8Array(16).fill(0xab),
    path: "/run/ouroboros/ipcp.1.sock",
    name: "oping-server",
    qos: QOS_CUBES.raw,
    mtu: 8980,
    flowId: 1,
  };
  const wire = JSON.parse(JSON.stringify(toJsonValue(body)));
  assertEquals(wire.token, "ab".repeat(16));
  assertEquals(wire.qos.bandwidth, "0");
  const back = METHODS["flow.accept"].res.parse(wire, "grant");
  assertEquals(back, { ok: true, value: body });
});

Deno.test("jsonReplacer gives toJsonValue's text, and hexString toHex's", () => {
  const bytes = (n: number) => Uint8Array.from({ length: n }, (_, i) => i * 37);
  const values: unknown[] = [
    {
      handle: 7,
      token: bytes(16),
      qos: { ...QOS_CUBES.voice },
      oap: bytes(84),
      skipped: undefined,
      list: [bytes(3), 2n ** 64n - 1n, undefined, "x", { a: bytes(0) }],
    },
    [bytes(5000), { nested: { deeper: bytes(1) } }],
    bytes(9000),
    123n,
    "text",
  ];
  for (const v of values) {
    assertEquals(
      JSON.stringify(v, jsonReplacer),
      JSON.stringify(toJsonValue(v)),
    );
  }
  for (const n of [0, 1, 16, 4095, 4096, 4097, 12_000]) {
    assertEquals(hexString(bytes(n)), toHex(bytes(n)));
  }
});
