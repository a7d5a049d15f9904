import { assert } from "../../tests/assert.ts";
import { ipFamily, isIPv4, isIPv6 } from "./ip.ts";

Deno.test("isIPv4 accepts dotted quads", () => {
  for (
    const s of [
      "0.0.0.0",
      "127.0.0.1",
      "192.168.0.2",
      "255.255.255.255",
      "10.0.0.1",
      "1.2.3.4",
    ]
  ) {
    assert(isIPv4(s), s);
  }
});

Deno.test("isIPv4 refuses everything else", () => {
  for (
    const s of [
      "",
      "256.1.1.1",
      "1.2.3",
      "1.2.3.4.5",
      "1.2.3.",
      ".1.2.3",
      "01.2.3.4",
      "1.2.3.04",
      "10.0.0.1/24",
      " 1.2.3.4",
      "1.2.3.4 ",
      "1.2.3.4:53",
      "1.2.3.-4",
      "1.2.3.+4",
      "0x1.2.3.4",
      "1..3.4",
      "a.b.c.d",
      "1.2.3.1000",
      "::1",
      "<SERVER IP ADDRESS>",
      "localhost",
      "１.2.3.4", // full-width digit
    ]
  ) {
    assert(!isIPv4(s), s);
  }
});

Deno.test("isIPv6 accepts the RFC 4291 text forms", () => {
  for (
    const s of [
      "::",
      "::1",
      "1::",
      "fe80::1",
      "2001:db8::8a2e:370:7334",
      "2001:0db8:0000:0000:0000:ff00:0042:8329",
      "2001:DB8:0:0:8:800:200C:417A",
      "1:2:3:4:5:6:7:8",
      "1:2:3:4:5:6:7::",
      "::2:3:4:5:6:7:8",
      "1::8",
      "1:2:3:4:5:6::8",
      "::ffff:192.168.0.2",
      "::1.2.3.4",
      "1:2:3:4:5:6:1.2.3.4",
      "64:ff9b::10.0.0.1",
      "fd00::53",
      "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
    ]
  ) {
    assert(isIPv6(s), s);
  }
});

Deno.test("isIPv6 refuses zone ids, brackets, prefixes and bad syntax", () => {
  for (
    const s of [
      "",
      ":",
      ":::",
      "1:::2",
      "1::2::3",
      ":1::",
      "::1:",
      "1:2:3:4:5:6:7",
      "1:2:3:4:5:6:7:8:9",
      "1:2:3:4:5:6:7:8::",
      "::1:2:3:4:5:6:7:8",
      "12345::",
      "g::1",
      "fe80::1%eth0",
      "[::1]",
      "[::1]:53",
      "2001:db8::/32",
      "1.2.3.4",
      "::ffff:256.1.1.1",
      "::1.2.3",
      "1.2.3.4::",
      "::1.2.3.4:5",
      "1:2:3:4:5:6:7:1.2.3.4",
      "::01.2.3.4",
      " ::1",
      "::1 ",
    ]
  ) {
    assert(!isIPv6(s), s);
  }
});

Deno.test("ipFamily tells the family apart", () => {
  assert(ipFamily("127.0.0.1") === 4);
  assert(ipFamily("::1") === 6);
  assert(ipFamily("::ffff:1.2.3.4") === 6);
  assert(ipFamily("host.example") === undefined);
});
