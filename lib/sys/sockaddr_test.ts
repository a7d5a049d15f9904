/**
 * Socket address text and structs (no FFI). The byte images follow the
 * glibc layouts in layout_test.ts: port and address in network order,
 * family and scope id little-endian.
 */
import { assert, assertEquals } from "../../tests/assert.ts";
import { type Arch, LAYOUTS } from "./layout.ts";
import {
  decodeSockAddr,
  encodeSockAddr,
  formatIPv4,
  formatIPv6,
  inetAddr,
  packAddr,
  packSockAddr,
  parseIPv4,
  parseIPv6,
  type SockAddr,
  unpackSockAddr,
} from "./sockaddr.ts";

Deno.test("sockaddr: IPv4 text", () => {
  assertEquals(parseIPv4("127.0.0.1"), new Uint8Array([127, 0, 0, 1]));
  assertEquals(
    parseIPv4("255.255.255.255"),
    new Uint8Array([255, 255, 255, 255]),
  );
  for (
    const bad of [
      "",
      "1.2.3",
      "1.2.3.4.5",
      "256.0.0.1",
      "01.2.3.4",
      "1.2.3.x",
      " 1.2.3.4",
      "1..3.4",
    ]
  ) {
    assertEquals(parseIPv4(bad), null, bad);
  }
  assertEquals(
    formatIPv4(new Uint8Array([9, 10, 192, 168, 0, 2]), 2),
    "192.168.0.2",
  );
});

Deno.test("sockaddr: IPv6 text parses", () => {
  const hex = (s: string) =>
    [...parseIPv6(s)!.bytes].map((b) => b.toString(16).padStart(2, "0")).join(
      "",
    );
  assertEquals(hex("::1"), "00000000000000000000000000000001");
  assertEquals(hex("::"), "00000000000000000000000000000000");
  assertEquals(hex("fe80::1"), "fe800000000000000000000000000001");
  assertEquals(
    hex("2001:db8::8:800:200c:417a"),
    "20010db80000000000080800200c417a",
  );
  assertEquals(hex("1:2:3:4:5:6:7:8"), "00010002000300040005000600070008");
  assertEquals(hex("::ffff:192.0.2.1"), "00000000000000000000ffffc0000201");
  assertEquals(hex("1::"), "00010000000000000000000000000000");
  assertEquals(hex("ABCD::EF"), "abcd00000000000000000000000000ef");
  assertEquals(parseIPv6("fe80::1%3")!.scopeId, 3);
  assertEquals(parseIPv6("::1")!.scopeId, 0);
  for (
    const bad of [
      "",
      ":",
      ":::",
      "1:2:3:4:5:6:7",
      "1:2:3:4:5:6:7:8:9",
      "1::2::3",
      "12345::",
      "g::",
      "1:2:3:4:5:6:7::8",
      ":1::",
      "1.2.3.4::",
      "::1.2.3",
      "fe80::1%",
      "fe80::1%eth0",
      "1:2:3:4:5:6:7:1.2.3.4",
    ]
  ) {
    assertEquals(parseIPv6(bad), null, bad);
  }
});

Deno.test("sockaddr: IPv6 text is formatted as RFC 5952 says", () => {
  const fmt = (s: string) => formatIPv6(parseIPv6(s)!.bytes);
  assertEquals(fmt("0:0:0:0:0:0:0:1"), "::1");
  assertEquals(fmt("0:0:0:0:0:0:0:0"), "::");
  assertEquals(fmt("2001:0db8:0000:0000:0000:0000:0002:0001"), "2001:db8::2:1");
  // One zero group is not shortened; the first of equal runs is.
  assertEquals(fmt("2001:db8:0:1:1:1:1:1"), "2001:db8:0:1:1:1:1:1");
  assertEquals(fmt("2001:0:0:1:0:0:0:1"), "2001:0:0:1::1");
  assertEquals(fmt("2001:db8:0:0:1:0:0:1"), "2001:db8::1:0:0:1");
  assertEquals(fmt("FE80::ABCD"), "fe80::abcd");
  assertEquals(fmt("::ffff:10.0.0.1"), "::ffff:10.0.0.1");
  assertEquals(fmt("1:2:3:4:5:6:7:0"), "1:2:3:4:5:6:7:0");
  assertEquals(fmt("1:0:0:0:0:0:0:0"), "1::");
});

function bytesOf(a: SockAddr, arch: Arch): number[] {
  const r = packSockAddr(a, LAYOUTS[arch]);
  assert(r.ok, JSON.stringify(r));
  return [...r.value];
}

for (const arch of ["x86_64", "aarch64"] as Arch[]) {
  const L = LAYOUTS[arch];

  Deno.test(`sockaddr: ${arch} sockaddr_in bytes`, () => {
    assertEquals(
      bytesOf({ family: "inet", host: "127.0.0.1", port: 3435 }, arch),
      [
        2,
        0, // AF_INET, little-endian
        0x0d,
        0x6b, // 3435, big-endian
        127,
        0,
        0,
        1,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0, // sin_zero
      ],
    );
  });

  Deno.test(`sockaddr: ${arch} sockaddr_in6 bytes`, () => {
    assertEquals(
      bytesOf({
        family: "inet6",
        host: "fe80::1",
        port: 53,
        flowinfo: 0x12345,
        scopeId: 2,
      }, arch),
      [
        10,
        0, // AF_INET6
        0,
        53,
        0x00,
        0x01,
        0x23,
        0x45, // flowinfo, big-endian
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        1,
        2,
        0,
        0,
        0, // scope id, little-endian
      ],
    );
    // The zone of the text counts when scopeId is not given.
    const z = bytesOf({ family: "inet6", host: "fe80::1%7", port: 1 }, arch);
    assertEquals(z.slice(24), [7, 0, 0, 0]);
  });

  Deno.test(`sockaddr: ${arch} sockaddr_un bytes`, () => {
    const b = bytesOf({ family: "unix", path: "/run/a" }, arch);
    assertEquals(b, [1, 0, ...new TextEncoder().encode("/run/a"), 0]);
    const abs = bytesOf({ family: "unix", path: "\0ipcp" }, arch);
    assertEquals(abs, [1, 0, 0, ...new TextEncoder().encode("ipcp")]);
    const long = "/" + "x".repeat(L.sockaddrUn.pathSize - 2);
    assertEquals(
      bytesOf({ family: "unix", path: long }, arch).length,
      L.sockaddrUn.size,
    );
    const tooLong = packSockAddr({ family: "unix", path: long + "y" }, L);
    assert(!tooLong.ok && tooLong.name === "EINVAL");
  });

  Deno.test(`sockaddr: ${arch} decode what encode wrote`, () => {
    const cases: SockAddr[] = [
      { family: "inet", host: "10.1.2.3", port: 65535 },
      {
        family: "inet6",
        host: "2001:db8::1",
        port: 0,
        flowinfo: 7,
        scopeId: 9,
      },
      { family: "unix", path: "/tmp/x.sock" },
      { family: "unix", path: "\0abstract" },
    ];
    const buf = new Uint8Array(200);
    const dv = new DataView(buf.buffer);
    for (const a of cases) {
      buf.fill(0xaa);
      const n = encodeSockAddr(dv, 40, a, L);
      assert(n.ok);
      const back = decodeSockAddr(dv, 40, n.value, L);
      assert(back.ok);
      assertEquals(back.value, a);
    }
  });
}

Deno.test("sockaddr: refusals", () => {
  const L = LAYOUTS.x86_64;
  const dv = new DataView(new ArrayBuffer(128));
  for (
    const a of [
      { family: "inet", host: "1.2.3", port: 1 },
      { family: "inet", host: "1.2.3.4", port: 65536 },
      { family: "inet", host: "1.2.3.4", port: -1 },
      { family: "inet", host: "1.2.3.4", port: 1.5 },
      { family: "inet6", host: "::g", port: 1 },
      { family: "unix", path: "" },
      { family: "unix", path: "a\0b" },
    ] as SockAddr[]
  ) {
    const r = encodeSockAddr(dv, 0, a, L);
    assert(!r.ok && !r.wouldBlock, JSON.stringify(a));
    assertEquals(r.name, "EINVAL");
    assertEquals(r.call, "sockaddr");
    assert(r.detail !== undefined);
  }
  dv.setUint16(0, 99, true);
  const r = decodeSockAddr(dv, 0, 16, L);
  assert(!r.ok && !r.wouldBlock && r.detail === "address family 99");
  assert(!decodeSockAddr(dv, 0, 1, L).ok);
  dv.setUint16(0, 2, true);
  assert(!decodeSockAddr(dv, 0, 8, L).ok, "short sockaddr_in");
});

Deno.test("sockaddr: inetAddr and packAddr pick the family by the text", () => {
  assertEquals(inetAddr("127.0.0.1", 1), {
    ok: true,
    value: { family: "inet", host: "127.0.0.1", port: 1 },
  });
  assertEquals(inetAddr("0:0::1", 2), {
    ok: true,
    value: { family: "inet6", host: "::1", port: 2, scopeId: 0 },
  });
  assert(!inetAddr("localhost", 1).ok);
  const p = packAddr("::1", 3435);
  assert(p.ok);
  assertEquals(p.value.length, 28);
  assertEquals(unpackSockAddr(p.value), {
    ok: true,
    value: {
      family: "inet6",
      host: "::1",
      port: 3435,
      flowinfo: 0,
      scopeId: 0,
    },
  });
  const p4 = packAddr("192.168.1.1", 7);
  assert(p4.ok && p4.value.length === 16);
});
