/**
 * The struct layouts of layout.ts against glibc's, and the encoders and
 * decoders over them, for both architectures (on either machine: no FFI).
 *
 * The two printouts below are the struct part of the output of
 * lib/sys/probe.c (sizeof and offsetof), built with cc (Debian 12.2.0,
 * glibc 2.36 headers, x86_64) and with aarch64-linux-gnu-gcc (Debian 12.2.0,
 * libc6-dev-arm64-cross 2.36) and run (the aarch64 one under qemu-user). No
 * compiler is needed to run this test.
 */
import { assert, assertEquals, assertThrows } from "../../tests/assert.ts";
import {
  type Arch,
  decodeEpollEvent,
  decodeIovec,
  decodeMmsghdr,
  decodeMsghdr,
  decodePollfd,
  decodeTimespec,
  encodeEpollEvent,
  encodeIovec,
  encodeMmsghdr,
  encodeMsghdr,
  encodePollfd,
  encodeTimespec,
  getI64,
  getU64,
  hostLayout,
  type Layout,
  layoutFor,
  LAYOUTS,
  setI64,
  setU64,
  timespecOfMs,
} from "./layout.ts";

const GLIBC: Record<Arch, string> = {
  x86_64: `
sockaddr_in size 16
sockaddr_in.sin_family 0
sockaddr_in.sin_port 2
sockaddr_in.sin_addr 4
sockaddr_in6 size 28
sockaddr_in6.sin6_family 0
sockaddr_in6.sin6_port 2
sockaddr_in6.sin6_flowinfo 4
sockaddr_in6.sin6_addr 8
sockaddr_in6.sin6_scope_id 24
sockaddr_un size 110
sockaddr_un.sun_family 0
sockaddr_un.sun_path 2
sockaddr_storage size 128
iovec size 16
iovec.iov_base 0
iovec.iov_len 8
msghdr size 56
msghdr.msg_name 0
msghdr.msg_namelen 8
msghdr.msg_iov 16
msghdr.msg_iovlen 24
msghdr.msg_control 32
msghdr.msg_controllen 40
msghdr.msg_flags 48
mmsghdr size 64
mmsghdr.msg_hdr 0
mmsghdr.msg_len 56
pollfd size 8
pollfd.fd 0
pollfd.events 4
pollfd.revents 6
epoll_event size 12
epoll_event.events 0
epoll_event.data 4
timespec size 16
timespec.tv_sec 0
timespec.tv_nsec 8
`,
  aarch64: `
sockaddr_in size 16
sockaddr_in.sin_family 0
sockaddr_in.sin_port 2
sockaddr_in.sin_addr 4
sockaddr_in6 size 28
sockaddr_in6.sin6_family 0
sockaddr_in6.sin6_port 2
sockaddr_in6.sin6_flowinfo 4
sockaddr_in6.sin6_addr 8
sockaddr_in6.sin6_scope_id 24
sockaddr_un size 110
sockaddr_un.sun_family 0
sockaddr_un.sun_path 2
sockaddr_storage size 128
iovec size 16
iovec.iov_base 0
iovec.iov_len 8
msghdr size 56
msghdr.msg_name 0
msghdr.msg_namelen 8
msghdr.msg_iov 16
msghdr.msg_iovlen 24
msghdr.msg_control 32
msghdr.msg_controllen 40
msghdr.msg_flags 48
mmsghdr size 64
mmsghdr.msg_hdr 0
mmsghdr.msg_len 56
pollfd size 8
pollfd.fd 0
pollfd.events 4
pollfd.revents 6
epoll_event size 16
epoll_event.events 0
epoll_event.data 8
timespec size 16
timespec.tv_sec 0
timespec.tv_nsec 8
`,
};

/** Where each printed number lives in a Layout. */
function fromLayout(L: Layout): Map<string, number> {
  return new Map([
    ["sockaddr_in size", L.sockaddrIn.size],
    ["sockaddr_in.sin_family", L.sockaddrIn.family],
    ["sockaddr_in.sin_port", L.sockaddrIn.port],
    ["sockaddr_in.sin_addr", L.sockaddrIn.addr],
    ["sockaddr_in6 size", L.sockaddrIn6.size],
    ["sockaddr_in6.sin6_family", L.sockaddrIn6.family],
    ["sockaddr_in6.sin6_port", L.sockaddrIn6.port],
    ["sockaddr_in6.sin6_flowinfo", L.sockaddrIn6.flowinfo],
    ["sockaddr_in6.sin6_addr", L.sockaddrIn6.addr],
    ["sockaddr_in6.sin6_scope_id", L.sockaddrIn6.scopeId],
    ["sockaddr_un size", L.sockaddrUn.size],
    ["sockaddr_un.sun_family", L.sockaddrUn.family],
    ["sockaddr_un.sun_path", L.sockaddrUn.path],
    ["sockaddr_storage size", L.sockaddrStorageSize],
    ["iovec size", L.iovec.size],
    ["iovec.iov_base", L.iovec.base],
    ["iovec.iov_len", L.iovec.len],
    ["msghdr size", L.msghdr.size],
    ["msghdr.msg_name", L.msghdr.name],
    ["msghdr.msg_namelen", L.msghdr.namelen],
    ["msghdr.msg_iov", L.msghdr.iov],
    ["msghdr.msg_iovlen", L.msghdr.iovlen],
    ["msghdr.msg_control", L.msghdr.control],
    ["msghdr.msg_controllen", L.msghdr.controllen],
    ["msghdr.msg_flags", L.msghdr.flags],
    ["mmsghdr size", L.mmsghdr.size],
    ["mmsghdr.msg_hdr", L.mmsghdr.hdr],
    ["mmsghdr.msg_len", L.mmsghdr.len],
    ["pollfd size", L.pollfd.size],
    ["pollfd.fd", L.pollfd.fd],
    ["pollfd.events", L.pollfd.events],
    ["pollfd.revents", L.pollfd.revents],
    ["epoll_event size", L.epollEvent.size],
    ["epoll_event.events", L.epollEvent.events],
    ["epoll_event.data", L.epollEvent.data],
    ["timespec size", L.timespec.size],
    ["timespec.tv_sec", L.timespec.sec],
    ["timespec.tv_nsec", L.timespec.nsec],
  ]);
}

function parse(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.trim().split("\n")) {
    const at = line.lastIndexOf(" ");
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

const ARCHES: Arch[] = ["x86_64", "aarch64"];

for (const arch of ARCHES) {
  Deno.test(`layout: ${arch} sizes and offsets are glibc's`, () => {
    assertEquals(fromLayout(LAYOUTS[arch]), parse(GLIBC[arch]));
    const L = LAYOUTS[arch];
    assertEquals(L.arch, arch);
    assertEquals(L.sockaddrUn.pathSize, L.sockaddrUn.size - L.sockaddrUn.path);
  });
}

Deno.test("layout: epoll_event is packed on x86_64 only", () => {
  assertEquals(LAYOUTS.x86_64.epollEvent, { size: 12, events: 0, data: 4 });
  assertEquals(LAYOUTS.aarch64.epollEvent, { size: 16, events: 0, data: 8 });
});

Deno.test("layout: chosen by architecture", () => {
  assert(layoutFor("x86_64") === LAYOUTS.x86_64);
  assert(layoutFor("aarch64") === LAYOUTS.aarch64);
  assert(hostLayout() === LAYOUTS[Deno.build.arch as Arch]);
  assertThrows(() => layoutFor("riscv64gc"), /riscv64gc/);
});

// The machine's architecture and the layout sys.ts works with, in the test's
// name: a run's output then shows which ABI the FFI tests ran on (a run on
// the aarch64 Deno under qemu-user says aarch64, tests/sys_aarch64_test.ts
// looks for it).
const selected = (() => {
  try {
    const L = hostLayout();
    return `${L.arch}'s (epoll_event of ${L.epollEvent.size} bytes, data at ${L.epollEvent.data})`;
  } catch {
    return "none";
  }
})();

Deno.test(`layout: this machine is ${Deno.build.arch}, sys.ts uses the layout ${selected}`, () => {
  assertEquals(hostLayout().arch, Deno.build.arch);
  assertEquals(hostLayout(), LAYOUTS[Deno.build.arch as Arch]);
});

function view(n: number): { bytes: Uint8Array; dv: DataView } {
  const bytes = new Uint8Array(n);
  return { bytes, dv: new DataView(bytes.buffer) };
}

Deno.test("layout: 64-bit fields as two halves", () => {
  const { bytes, dv } = view(16);
  setU64(dv, 0, 0x0012_3456_789a_bcde);
  assertEquals(
    [...bytes.subarray(0, 8)],
    [0xde, 0xbc, 0x9a, 0x78, 0x56, 0x34, 0x12, 0x00],
  );
  assertEquals(getU64(dv, 0), 0x0012_3456_789a_bcde);
  assertEquals(dv.getBigUint64(0, true), 0x0012_3456_789a_bcden);
  setI64(dv, 8, -2);
  assertEquals(dv.getBigInt64(8, true), -2n);
  assertEquals(getI64(dv, 8), -2);
  setU64(dv, 0, Number.MAX_SAFE_INTEGER);
  assertEquals(dv.getBigUint64(0, true), BigInt(Number.MAX_SAFE_INTEGER));
});

for (const arch of ARCHES) {
  const L = LAYOUTS[arch];

  Deno.test(`layout: ${arch} iovec and msghdr fields land at their offsets`, () => {
    const { dv } = view(L.msghdr.size + 8);
    encodeIovec(dv, 0, { base: 0x7fff_1234_5678, len: 1500 }, L);
    assertEquals(dv.getBigUint64(L.iovec.base, true), 0x7fff_1234_5678n);
    assertEquals(dv.getBigUint64(L.iovec.len, true), 1500n);
    assertEquals(decodeIovec(dv, 0, L), { base: 0x7fff_1234_5678, len: 1500 });

    const m = {
      name: 0x5555_0000_1000,
      namelen: 28,
      iov: 0x5555_0000_2000,
      iovlen: 3,
      control: 0,
      controllen: 0,
      flags: 0x20,
    };
    const off = 8;
    encodeMsghdr(dv, off, m, L);
    assertEquals(dv.getBigUint64(off + 0, true), 0x5555_0000_1000n);
    assertEquals(dv.getUint32(off + 8, true), 28);
    assertEquals(dv.getBigUint64(off + 16, true), 0x5555_0000_2000n);
    assertEquals(dv.getBigUint64(off + 24, true), 3n);
    assertEquals(dv.getInt32(off + 48, true), 0x20);
    assertEquals(decodeMsghdr(dv, off, L), m);
  });

  Deno.test(`layout: ${arch} mmsghdr keeps msg_len after the header`, () => {
    const { dv } = view(2 * L.mmsghdr.size);
    const hdr = {
      name: 1 << 20,
      namelen: 16,
      iov: 2 << 20,
      iovlen: 1,
      control: 0,
      controllen: 0,
      flags: 0,
    };
    encodeMmsghdr(dv, L.mmsghdr.size, { hdr, len: 1234 }, L);
    assertEquals(dv.getUint32(L.mmsghdr.size + 56, true), 1234);
    assertEquals(dv.getBigUint64(L.mmsghdr.size + 16, true), BigInt(2 << 20));
    assertEquals(decodeMmsghdr(dv, L.mmsghdr.size, L), { hdr, len: 1234 });
    // The first element is untouched.
    assertEquals(decodeMmsghdr(dv, 0, L).len, 0);
  });

  Deno.test(`layout: ${arch} pollfd`, () => {
    const { dv } = view(2 * L.pollfd.size);
    encodePollfd(dv, 8, { fd: 7, events: 0x1, revents: 0x18 }, L);
    assertEquals(dv.getInt32(8, true), 7);
    assertEquals(dv.getUint16(12, true), 0x1);
    assertEquals(dv.getUint16(14, true), 0x18);
    assertEquals(decodePollfd(dv, 8, L), { fd: 7, events: 1, revents: 0x18 });
  });

  Deno.test(`layout: ${arch} epoll_event arrays`, () => {
    const E = L.epollEvent.size;
    const { bytes, dv } = view(3 * E);
    bytes.fill(0xee);
    for (let i = 0; i < 3; i++) {
      encodeEpollEvent(dv, i * E, { events: 0x8000_0001, data: 100 + i }, L);
    }
    for (let i = 0; i < 3; i++) {
      assertEquals(dv.getUint32(i * E, true), 0x8000_0001);
      const dataAt = i * E + (arch === "x86_64" ? 4 : 8);
      assertEquals(dv.getBigUint64(dataAt, true), BigInt(100 + i));
      assertEquals(decodeEpollEvent(dv, i * E, L), {
        events: 0x8000_0001,
        data: 100 + i,
      });
    }
    // The aarch64 padding is zeroed, and nothing is left of the fill.
    assertEquals(bytes.includes(0xee), false);
  });

  Deno.test(`layout: ${arch} timespec`, () => {
    const { dv } = view(L.timespec.size);
    const t = timespecOfMs(2500.25);
    assertEquals(t, { sec: 2, nsec: 500_250_000 });
    encodeTimespec(dv, 0, t, L);
    assertEquals(dv.getBigInt64(0, true), 2n);
    assertEquals(dv.getBigInt64(8, true), 500_250_000n);
    assertEquals(decodeTimespec(dv, 0, L), t);
  });
}

Deno.test("layout: timespecOfMs edge cases", () => {
  assertEquals(timespecOfMs(0), { sec: 0, nsec: 0 });
  assertEquals(timespecOfMs(-5), { sec: 0, nsec: 0 });
  assertEquals(timespecOfMs(1000), { sec: 1, nsec: 0 });
  assertEquals(timespecOfMs(1999.9999999999), { sec: 2, nsec: 0 });
});
