/**
 * The C struct layouts that the system-call layer reads and writes, for
 * x86_64 and aarch64 Linux with glibc, and pure encoders and decoders for
 * them over DataView (no FFI: they run anywhere, and layout_test.ts checks
 * them for both architectures on either).
 *
 * The numbers are sizeof/offsetof as glibc 2.36's headers give them, printed
 * by a C program built with the machine's cc (x86_64) and with
 * aarch64-linux-gnu-gcc 12.2 (aarch64); layout_test.ts holds the printouts.
 * The two architectures are LP64 and little-endian and agree on every struct
 * but one: epoll_event, which glibc declares packed on x86_64 only (12 bytes,
 * data at 4) and which is naturally aligned on aarch64 (16 bytes, data at 8).
 *
 * Pointers and size_t are 64-bit; their values stay below 2^53 (user-space
 * addresses are 47 or 48 bits on both), so they travel as numbers and are
 * written as two little-endian 32-bit halves, which allocates no BigInt.
 */

export type Arch = "x86_64" | "aarch64";

export interface SockaddrInLayout {
  readonly size: number;
  readonly family: number;
  readonly port: number;
  readonly addr: number;
}

export interface SockaddrIn6Layout {
  readonly size: number;
  readonly family: number;
  readonly port: number;
  readonly flowinfo: number;
  readonly addr: number;
  readonly scopeId: number;
}

export interface SockaddrUnLayout {
  readonly size: number;
  readonly family: number;
  readonly path: number;
  /** The length of sun_path, NUL included. */
  readonly pathSize: number;
}

export interface IovecLayout {
  readonly size: number;
  readonly base: number;
  readonly len: number;
}

export interface MsghdrLayout {
  readonly size: number;
  readonly name: number;
  readonly namelen: number;
  readonly iov: number;
  readonly iovlen: number;
  readonly control: number;
  readonly controllen: number;
  readonly flags: number;
}

export interface MmsghdrLayout {
  readonly size: number;
  readonly hdr: number;
  readonly len: number;
}

export interface PollfdLayout {
  readonly size: number;
  readonly fd: number;
  readonly events: number;
  readonly revents: number;
}

export interface EpollEventLayout {
  readonly size: number;
  readonly events: number;
  readonly data: number;
}

export interface TimespecLayout {
  readonly size: number;
  readonly sec: number;
  readonly nsec: number;
}

export interface Layout {
  readonly arch: Arch;
  readonly sockaddrIn: SockaddrInLayout;
  readonly sockaddrIn6: SockaddrIn6Layout;
  readonly sockaddrUn: SockaddrUnLayout;
  readonly sockaddrStorageSize: number;
  readonly iovec: IovecLayout;
  readonly msghdr: MsghdrLayout;
  readonly mmsghdr: MmsghdrLayout;
  readonly pollfd: PollfdLayout;
  readonly epollEvent: EpollEventLayout;
  readonly timespec: TimespecLayout;
}

/** The structs that are the same on both architectures. */
const COMMON = {
  sockaddrIn: { size: 16, family: 0, port: 2, addr: 4 },
  sockaddrIn6: {
    size: 28,
    family: 0,
    port: 2,
    flowinfo: 4,
    addr: 8,
    scopeId: 24,
  },
  sockaddrUn: { size: 110, family: 0, path: 2, pathSize: 108 },
  sockaddrStorageSize: 128,
  iovec: { size: 16, base: 0, len: 8 },
  msghdr: {
    size: 56,
    name: 0,
    namelen: 8,
    iov: 16,
    iovlen: 24,
    control: 32,
    controllen: 40,
    flags: 48,
  },
  mmsghdr: { size: 64, hdr: 0, len: 56 },
  pollfd: { size: 8, fd: 0, events: 4, revents: 6 },
  timespec: { size: 16, sec: 0, nsec: 8 },
} as const;

export const LAYOUTS: Readonly<Record<Arch, Layout>> = Object.freeze({
  x86_64: Object.freeze({
    arch: "x86_64",
    ...COMMON,
    epollEvent: { size: 12, events: 0, data: 4 },
  }),
  aarch64: Object.freeze({
    arch: "aarch64",
    ...COMMON,
    epollEvent: { size: 16, events: 0, data: 8 },
  }),
});

/** The layout of an architecture, as Deno.build.arch names it. */
export function layoutFor(arch: string): Layout {
  if (arch === "x86_64" || arch === "aarch64") return LAYOUTS[arch];
  throw new Error(
    `lib/sys: no struct layouts for architecture ${arch} (only x86_64 and aarch64)`,
  );
}

let host: Layout | undefined;

/** The layout of the machine this runs on. */
export function hostLayout(): Layout {
  return host ??= layoutFor(Deno.build.arch);
}

// 64-bit fields as two 32-bit halves.

const TWO32 = 0x1_0000_0000;

/** Writes a non-negative integer below 2^53 as a 64-bit little-endian field. */
export function setU64(dv: DataView, off: number, v: number): void {
  dv.setUint32(off, v >>> 0, true);
  dv.setUint32(off + 4, Math.floor(v / TWO32), true);
}

/** Reads a 64-bit little-endian field that holds a value below 2^53. */
export function getU64(dv: DataView, off: number): number {
  return dv.getUint32(off, true) + dv.getUint32(off + 4, true) * TWO32;
}

/** Reads a signed 64-bit little-endian field (time_t, long). */
export function getI64(dv: DataView, off: number): number {
  return dv.getUint32(off, true) + dv.getInt32(off + 4, true) * TWO32;
}

/** Writes a signed integer of magnitude below 2^53 as a 64-bit field. */
export function setI64(dv: DataView, off: number, v: number): void {
  dv.setUint32(off, v >>> 0, true);
  dv.setInt32(off + 4, Math.floor(v / TWO32), true);
}

// struct iovec { void *iov_base; size_t iov_len; }

export interface Iovec {
  base: number;
  len: number;
}

export function encodeIovec(
  dv: DataView,
  off: number,
  v: Iovec,
  L: Layout,
): void {
  setU64(dv, off + L.iovec.base, v.base);
  setU64(dv, off + L.iovec.len, v.len);
}

export function decodeIovec(dv: DataView, off: number, L: Layout): Iovec {
  return {
    base: getU64(dv, off + L.iovec.base),
    len: getU64(dv, off + L.iovec.len),
  };
}

// struct msghdr { void *msg_name; socklen_t msg_namelen; struct iovec
//   *msg_iov; size_t msg_iovlen; void *msg_control; size_t msg_controllen;
//   int msg_flags; }

export interface Msghdr {
  name: number;
  namelen: number;
  iov: number;
  iovlen: number;
  control: number;
  controllen: number;
  flags: number;
}

export function encodeMsghdr(
  dv: DataView,
  off: number,
  m: Msghdr,
  L: Layout,
): void {
  const f = L.msghdr;
  setU64(dv, off + f.name, m.name);
  dv.setUint32(off + f.namelen, m.namelen, true);
  dv.setUint32(off + f.namelen + 4, 0, true); // padding before msg_iov
  setU64(dv, off + f.iov, m.iov);
  setU64(dv, off + f.iovlen, m.iovlen);
  setU64(dv, off + f.control, m.control);
  setU64(dv, off + f.controllen, m.controllen);
  dv.setInt32(off + f.flags, m.flags, true);
  dv.setUint32(off + f.flags + 4, 0, true); // tail padding
}

export function decodeMsghdr(dv: DataView, off: number, L: Layout): Msghdr {
  const f = L.msghdr;
  return {
    name: getU64(dv, off + f.name),
    namelen: dv.getUint32(off + f.namelen, true),
    iov: getU64(dv, off + f.iov),
    iovlen: getU64(dv, off + f.iovlen),
    control: getU64(dv, off + f.control),
    controllen: getU64(dv, off + f.controllen),
    flags: dv.getInt32(off + f.flags, true),
  };
}

// struct mmsghdr { struct msghdr msg_hdr; unsigned int msg_len; }

export interface Mmsghdr {
  hdr: Msghdr;
  len: number;
}

export function encodeMmsghdr(
  dv: DataView,
  off: number,
  m: Mmsghdr,
  L: Layout,
): void {
  encodeMsghdr(dv, off + L.mmsghdr.hdr, m.hdr, L);
  dv.setUint32(off + L.mmsghdr.len, m.len, true);
  dv.setUint32(off + L.mmsghdr.len + 4, 0, true); // tail padding
}

export function decodeMmsghdr(dv: DataView, off: number, L: Layout): Mmsghdr {
  return {
    hdr: decodeMsghdr(dv, off + L.mmsghdr.hdr, L),
    len: dv.getUint32(off + L.mmsghdr.len, true),
  };
}

// struct pollfd { int fd; short events; short revents; }

export interface Pollfd {
  fd: number;
  events: number;
  revents: number;
}

export function encodePollfd(
  dv: DataView,
  off: number,
  p: Pollfd,
  L: Layout,
): void {
  dv.setInt32(off + L.pollfd.fd, p.fd, true);
  dv.setUint16(off + L.pollfd.events, p.events, true);
  dv.setUint16(off + L.pollfd.revents, p.revents, true);
}

export function decodePollfd(dv: DataView, off: number, L: Layout): Pollfd {
  return {
    fd: dv.getInt32(off + L.pollfd.fd, true),
    events: dv.getUint16(off + L.pollfd.events, true),
    revents: dv.getUint16(off + L.pollfd.revents, true),
  };
}

// struct epoll_event { uint32_t events; epoll_data_t data; }, the data a
// 64-bit union of which this layer uses the low 32 bits as a tag.

export interface EpollEvent {
  /** The EPOLL* bits, as an unsigned 32-bit number. */
  events: number;
  /** The tag given to epoll_ctl, an unsigned 32-bit number. */
  data: number;
}

export function encodeEpollEvent(
  dv: DataView,
  off: number,
  e: EpollEvent,
  L: Layout,
): void {
  dv.setUint32(off + L.epollEvent.events, e.events >>> 0, true);
  if (L.epollEvent.data !== 4) dv.setUint32(off + 4, 0, true); // padding
  dv.setUint32(off + L.epollEvent.data, e.data >>> 0, true);
  dv.setUint32(off + L.epollEvent.data + 4, 0, true);
}

export function decodeEpollEvent(
  dv: DataView,
  off: number,
  L: Layout,
): EpollEvent {
  return {
    events: dv.getUint32(off + L.epollEvent.events, true),
    data: dv.getUint32(off + L.epollEvent.data, true),
  };
}

// struct timespec { time_t tv_sec; long tv_nsec; }

export interface Timespec {
  sec: number;
  nsec: number;
}

/** A duration in milliseconds as a timespec (negative counts as zero). */
export function timespecOfMs(ms: number): Timespec {
  const t = Math.max(0, ms);
  let sec = Math.floor(t / 1000);
  let nsec = Math.round((t - sec * 1000) * 1e6);
  if (nsec >= 1e9) {
    sec++;
    nsec -= 1e9;
  }
  return { sec, nsec };
}

export function encodeTimespec(
  dv: DataView,
  off: number,
  t: Timespec,
  L: Layout,
): void {
  setI64(dv, off + L.timespec.sec, t.sec);
  setI64(dv, off + L.timespec.nsec, t.nsec);
}

export function decodeTimespec(dv: DataView, off: number, L: Layout): Timespec {
  return {
    sec: getI64(dv, off + L.timespec.sec),
    nsec: getI64(dv, off + L.timespec.nsec),
  };
}
