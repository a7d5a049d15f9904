/**
 * The system-call layer's safe functions: sockets, batched datagrams, poll,
 * epoll and eventfd over file descriptors (numbers) and Uint8Array buffers,
 * with SysResult results (result.ts) instead of exceptions. Pointers stay
 * inside this module and libc.ts.
 *
 * Importing this module opens libc through FFI (libc.ts): it needs
 * --allow-ffi. Each thread (the main one, each Worker) has its own instance,
 * scratch buffers and errno. Calls that can block block only their thread:
 * a Worker may wait in poll() or a blocking recv; the main thread should use
 * non-blocking descriptors and a zero timeout. Worker.terminate() does not
 * interrupt a Worker waiting in such a call: the thread goes on waiting
 * until the call returns, so wake it first (an eventfd in its poll set).
 *
 * A descriptor made here is owned by the caller, who closes it with
 * closeFd(); they are plain numbers and not Deno resources, so nothing
 * closes them on its own.
 */
import {
  AF_INET,
  AF_INET6,
  AF_UNIX,
  EBADF,
  EFD_CLOEXEC,
  EFD_NONBLOCK,
  EFD_SEMAPHORE,
  EINTR,
  EMSGSIZE,
  EPOLL_CLOEXEC,
  EPOLL_CTL_ADD,
  EPOLL_CTL_DEL,
  EPOLL_CTL_MOD,
  F_GETFL,
  F_SETFL,
  MSG_NOSIGNAL,
  MSG_TRUNC,
  MSG_WAITFORONE,
  O_NONBLOCK,
  POLLERR,
  POLLHUP,
  POLLIN,
  POLLNVAL,
  SO_RCVBUF,
  SO_RCVBUFFORCE,
  SO_REUSEADDR,
  SO_SNDBUF,
  SO_SNDBUFFORCE,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_NONBLOCK,
  SOCK_STREAM,
  SOCKADDR_STORAGE_SIZE,
  SOL_SOCKET,
} from "./constants.ts";
import {
  encodeEpollEvent,
  encodeIovec,
  encodeMmsghdr,
  encodePollfd,
  hostLayout,
  setU64,
} from "./layout.ts";
import { addressOf, addressOfArena, errno, libc, ssize, sys } from "./libc.ts";
import {
  fromErrno,
  invalid,
  OK_VOID,
  refused,
  type SysError,
  sysOk,
  type SysResult,
} from "./result.ts";
import {
  decodeSockAddr,
  encodeSockAddr,
  inetAddr,
  type SockAddr,
} from "./sockaddr.ts";

const L = hostLayout();

// Per-thread scratch space for the calls that take small structs.
const addrBuf = new Uint8Array(new ArrayBuffer(SOCKADDR_STORAGE_SIZE));
const addrView = new DataView(addrBuf.buffer);
const lenBuf = new Uint32Array(new ArrayBuffer(4));
const intBuf = new Int32Array(new ArrayBuffer(4));
const pairBuf = new Int32Array(new ArrayBuffer(8));
const counterBuf = new Uint8Array(new ArrayBuffer(8));
const counterView = new DataView(counterBuf.buffer);
const COUNTER_LEN = 8n;

function voidOf(r: SysResult<number>): SysResult<void> {
  return r.ok ? OK_VOID : r;
}

// Descriptors.

export type Family = "inet" | "inet6";

export interface FdOptions {
  /** O_NONBLOCK from the start (default false). */
  readonly nonBlocking?: boolean;
  /** Close on exec (default true). */
  readonly cloexec?: boolean;
}

function typeFlags(o: FdOptions): number {
  return (o.nonBlocking === true ? SOCK_NONBLOCK : 0) |
    (o.cloexec === false ? 0 : SOCK_CLOEXEC);
}

/** socket(2) with raw numbers. */
export function socketFd(
  domain: number,
  type: number,
  protocol = 0,
): SysResult<number> {
  return sys("socket", () => libc.socket(domain, type, protocol));
}

/** A UDP socket of the family. */
export function udpSocket(
  family: Family,
  opts: FdOptions = {},
): SysResult<number> {
  const domain = family === "inet6" ? AF_INET6 : AF_INET;
  return socketFd(domain, SOCK_DGRAM | typeFlags(opts));
}

/** A Unix stream socket, to bind or connect. */
export function unixStreamSocket(opts: FdOptions = {}): SysResult<number> {
  return socketFd(AF_UNIX, SOCK_STREAM | typeFlags(opts));
}

/** Two connected Unix stream sockets. */
export function socketPair(
  opts: FdOptions = {},
): SysResult<[number, number]> {
  const r = sys(
    "socketpair",
    () => libc.socketpair(AF_UNIX, SOCK_STREAM | typeFlags(opts), 0, pairBuf),
  );
  return r.ok ? sysOk([pairBuf[0]!, pairBuf[1]!]) : r;
}

/**
 * close(2). It is not made again after EINTR: Linux has released the
 * descriptor by then, and a second close could close another thread's new
 * one. EINTR counts as closed.
 */
export function closeFd(fd: number): SysResult<void> {
  if (libc.close(fd) === 0) return OK_VOID;
  const e = errno();
  return e === EINTR ? OK_VOID : fromErrno("close", e);
}

/** Sets or clears O_NONBLOCK. */
export function setNonBlocking(fd: number, on: boolean): SysResult<void> {
  const fl = sys("fcntl", () => libc.fcntl(fd, F_GETFL, 0n));
  if (!fl.ok) return fl;
  const want = on ? fl.value | O_NONBLOCK : fl.value & ~O_NONBLOCK;
  if (want === fl.value) return OK_VOID;
  return voidOf(sys("fcntl", () => libc.fcntl(fd, F_SETFL, BigInt(want))));
}

export function isNonBlocking(fd: number): SysResult<boolean> {
  const fl = sys("fcntl", () => libc.fcntl(fd, F_GETFL, 0n));
  return fl.ok ? sysOk((fl.value & O_NONBLOCK) !== 0) : fl;
}

// Addresses.

function withAddr(
  call: string,
  a: SockAddr,
  f: (len: number) => number,
): SysResult<void> {
  const n = encodeSockAddr(addrView, 0, a, L);
  if (!n.ok) return n;
  return voidOf(sys(call, () => f(n.value)));
}

export function bindSockAddr(fd: number, a: SockAddr): SysResult<void> {
  return withAddr("bind", a, (len) => libc.bind(fd, addrBuf, len));
}

/** Binds to an IPv4 or IPv6 address (by its text) and port; port 0 picks one. */
export function bindAddr(
  fd: number,
  host: string,
  port: number,
): SysResult<void> {
  const a = inetAddr(host, port);
  return a.ok ? bindSockAddr(fd, a.value) : a;
}

export function connectSockAddr(fd: number, a: SockAddr): SysResult<void> {
  return withAddr("connect", a, (len) => libc.connect(fd, addrBuf, len));
}

/** Connects to an IPv4 or IPv6 address and port (for UDP: sets the peer). */
export function connectAddr(
  fd: number,
  host: string,
  port: number,
): SysResult<void> {
  const a = inetAddr(host, port);
  return a.ok ? connectSockAddr(fd, a.value) : a;
}

/** getsockname(2): the address the socket is bound to. */
export function localAddr(fd: number): SysResult<SockAddr> {
  lenBuf[0] = SOCKADDR_STORAGE_SIZE;
  const r = sys("getsockname", () => libc.getsockname(fd, addrBuf, lenBuf));
  if (!r.ok) return r;
  return decodeSockAddr(addrView, 0, lenBuf[0]!, L);
}

/** The port a socket is bound to. */
export function localPort(fd: number): SysResult<number> {
  const a = localAddr(fd);
  if (!a.ok) return a;
  return a.value.family === "unix"
    ? invalid("getsockname", "a unix socket has no port")
    : sysOk(a.value.port);
}

export function listenFd(fd: number, backlog = 64): SysResult<void> {
  return voidOf(sys("listen", () => libc.listen(fd, backlog)));
}

/** accept4(2): the connection's descriptor (its peer address not kept). */
export function acceptFd(fd: number, opts: FdOptions = {}): SysResult<number> {
  return sys("accept4", () => libc.accept4(fd, null, null, typeFlags(opts)));
}

/** A Unix stream socket listening at `path` (which must not exist). */
export function unixListen(
  path: string,
  backlog = 64,
  opts: FdOptions = {},
): SysResult<number> {
  const fd = unixStreamSocket(opts);
  if (!fd.ok) return fd;
  const b = bindSockAddr(fd.value, { family: "unix", path });
  const l = b.ok ? listenFd(fd.value, backlog) : b;
  if (!l.ok) {
    closeFd(fd.value);
    return l;
  }
  return fd;
}

/** A Unix stream socket connected to `path`. */
export function unixConnect(
  path: string,
  opts: FdOptions = {},
): SysResult<number> {
  const fd = unixStreamSocket(opts);
  if (!fd.ok) return fd;
  const c = connectSockAddr(fd.value, { family: "unix", path });
  if (!c.ok) {
    closeFd(fd.value);
    return c;
  }
  return fd;
}

// Socket options.

export function setIntOption(
  fd: number,
  level: number,
  name: number,
  value: number,
): SysResult<void> {
  intBuf[0] = value;
  return voidOf(
    sys("setsockopt", () => libc.setsockopt(fd, level, name, intBuf, 4)),
  );
}

export function getIntOption(
  fd: number,
  level: number,
  name: number,
): SysResult<number> {
  intBuf[0] = 0;
  lenBuf[0] = 4;
  const r = sys(
    "getsockopt",
    () => libc.getsockopt(fd, level, name, intBuf, lenBuf),
  );
  return r.ok ? sysOk(intBuf[0]!) : r;
}

export function setReuseAddr(fd: number, on: boolean): SysResult<void> {
  return setIntOption(fd, SOL_SOCKET, SO_REUSEADDR, on ? 1 : 0);
}

export type BufferKind = "rcv" | "snd";

/** The kernel's size of a socket buffer (SO_RCVBUF or SO_SNDBUF). */
export function getBuffer(fd: number, which: BufferKind): SysResult<number> {
  return getIntOption(fd, SOL_SOCKET, which === "rcv" ? SO_RCVBUF : SO_SNDBUF);
}

/**
 * Asks for a socket buffer of `bytes` and returns the size the kernel gives,
 * read back: Linux doubles the request (for its bookkeeping) and caps it at
 * net.core.rmem_max or wmem_max unless `force` (SO_RCVBUFFORCE or
 * SO_SNDBUFFORCE, which need CAP_NET_ADMIN: EPERM without it).
 */
export function setBuffer(
  fd: number,
  which: BufferKind,
  bytes: number,
  force = false,
): SysResult<number> {
  if (!Number.isInteger(bytes) || bytes < 0 || bytes > 0x7fff_ffff) {
    return invalid("setsockopt", `buffer size ${bytes}`);
  }
  const name = which === "rcv"
    ? (force ? SO_RCVBUFFORCE : SO_RCVBUF)
    : (force ? SO_SNDBUFFORCE : SO_SNDBUF);
  const s = setIntOption(fd, SOL_SOCKET, name, bytes);
  return s.ok ? getBuffer(fd, which) : s;
}

// Single datagrams and streams.

/**
 * Sends one datagram; `dest` is an address from packSockAddr() or packAddr(),
 * or null on a connected socket. Returns the bytes sent.
 */
export function sendTo(
  fd: number,
  data: Uint8Array,
  dest: Uint8Array | null = null,
  flags = 0,
): SysResult<number> {
  const len = BigInt(data.byteLength);
  const alen = dest === null ? 0 : dest.byteLength;
  return sys(
    "sendto",
    () => ssize(libc.sendto(fd, data, len, flags, dest, alen)),
  );
}

export interface Received {
  /** The datagram's length (more than the buffer with MSG_TRUNC). */
  readonly length: number;
  /** Its source, or null where the socket gives none. */
  readonly from: SockAddr | null;
}

/** Receives one datagram into `buf`. */
export function recvFrom(
  fd: number,
  buf: Uint8Array,
  flags = 0,
): SysResult<Received> {
  const len = BigInt(buf.byteLength);
  lenBuf[0] = SOCKADDR_STORAGE_SIZE;
  const r = sys(
    "recvfrom",
    () => ssize(libc.recvfrom(fd, buf, len, flags, addrBuf, lenBuf)),
  );
  if (!r.ok) return r;
  const alen = lenBuf[0]!;
  const from = alen >= 2 ? decodeSockAddr(addrView, 0, alen, L) : null;
  return sysOk({ length: r.value, from: from?.ok ? from.value : null });
}

/** read(2) into `buf`: the bytes read, 0 at the end of a stream. */
export function readFd(fd: number, buf: Uint8Array): SysResult<number> {
  const len = BigInt(buf.byteLength);
  return sys("read", () => ssize(libc.read(fd, buf, len)));
}

/**
 * write(2) of `data`: the bytes written (possibly fewer on a stream). On a
 * socket whose peer has gone this is EPIPE: Deno ignores SIGPIPE, as Rust
 * programs do.
 */
export function writeFd(fd: number, data: Uint8Array): SysResult<number> {
  const len = BigInt(data.byteLength);
  return sys("write", () => ssize(libc.write(fd, data, len)));
}

/** Sends `data` on a stream socket with MSG_NOSIGNAL (never SIGPIPE). */
export function sendStream(fd: number, data: Uint8Array): SysResult<number> {
  const len = BigInt(data.byteLength);
  return sys(
    "sendto",
    () => ssize(libc.sendto(fd, data, len, MSG_NOSIGNAL, null, 0)),
  );
}

/** The most parts one readv/writev takes (IOV_MAX on Linux). */
export const IOV_MAX = 1024;

let iovArena = new ArrayBuffer(16 * L.iovec.size);
let iovBytes = new Uint8Array(iovArena);
let iovView = new DataView(iovArena);

function fillIovecs(call: string, parts: readonly Uint8Array[]): string | null {
  if (parts.length > IOV_MAX) {
    return `${parts.length} parts for ${call}, at most ${IOV_MAX}`;
  }
  if (parts.length * L.iovec.size > iovArena.byteLength) {
    iovArena = new ArrayBuffer(parts.length * 2 * L.iovec.size);
    iovBytes = new Uint8Array(iovArena);
    iovView = new DataView(iovArena);
  }
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    encodeIovec(
      iovView,
      i * L.iovec.size,
      { base: p.byteLength === 0 ? 0 : addressOf(p), len: p.byteLength },
      L,
    );
  }
  return null;
}

/** writev(2): writes the parts in order as one; returns the bytes written. */
export function writevFd(
  fd: number,
  parts: readonly Uint8Array[],
): SysResult<number> {
  const bad = fillIovecs("writev", parts);
  if (bad !== null) return invalid("writev", bad);
  const n = parts.length;
  return sys("writev", () => ssize(libc.writev(fd, iovBytes, n)));
}

/** readv(2): fills the parts in order; returns the bytes read. */
export function readvFd(
  fd: number,
  parts: readonly Uint8Array[],
): SysResult<number> {
  const bad = fillIovecs("readv", parts);
  if (bad !== null) return invalid("readv", bad);
  const n = parts.length;
  return sys("readv", () => ssize(libc.readv(fd, iovBytes, n)));
}

// Batches of datagrams (recvmmsg, sendmmsg).

/**
 * What recvBatch and sendSlots do to a batch's arrays, kept out of the
 * class's public face: the mmsghdr array holds pointers and is never handed
 * out.
 */
let batchCalls: {
  prepareRecv(b: PacketBatch, n: number): SysError | null;
  finishRecv(b: PacketBatch, n: number): void;
  prepareSend(b: PacketBatch, n: number): SysError | null;
  unusable(b: PacketBatch, call: string): SysError | null;
  vector(b: PacketBatch): Uint8Array;
};

/**
 * The memory for batches of up to `max` datagrams of up to `slotSize` bytes:
 * the packet slots and address slots, and the mmsghdr and iovec arrays that
 * point at them, all allocated once, so that recvBatch and sendBatch
 * allocate nothing per packet. The pointers inside the arrays are written
 * once, here.
 *
 * Slot i: `bufs[i]` (slotSize bytes) and `lens[i]`, the packet; `addrs[i]`
 * (128 bytes) and `addrLens[i]`, its source (received) or destination (to
 * send; 0 for none, on a connected socket); `msgFlags[i]`, the flags the
 * kernel gave a received one (MSG_TRUNC).
 */
export class PacketBatch {
  readonly max: number;
  readonly slotSize: number;
  readonly bufs: readonly Uint8Array<ArrayBuffer>[];
  readonly lens: Uint32Array;
  readonly addrs: readonly Uint8Array<ArrayBuffer>[];
  readonly addrLens: Uint32Array;
  readonly msgFlags: Int32Array;
  /** Packet and address slots; views of it are handed out. */
  readonly #data: ArrayBuffer;
  readonly #dataSize: number;
  readonly #dataView: DataView;
  /** The mmsghdr and iovec arrays; never handed out. */
  readonly #ctl: Uint8Array;
  readonly #ctlView: DataView;
  readonly #addrBase: number;
  /** Whether the arrays are as recvBatch leaves them. */
  #forRecv = false;

  constructor(max: number, slotSize = 2048) {
    if (!Number.isInteger(max) || max < 1 || max > 1024) {
      throw new RangeError(`batch of ${max} datagrams: 1 to 1024`);
    }
    if (!Number.isInteger(slotSize) || slotSize < 1 || slotSize > 65536) {
      throw new RangeError(`datagram slots of ${slotSize} bytes: 1 to 65536`);
    }
    this.max = max;
    this.slotSize = slotSize;
    const A = SOCKADDR_STORAGE_SIZE;
    this.#dataSize = max * (slotSize + A);
    this.#data = new ArrayBuffer(this.#dataSize);
    this.#dataView = new DataView(this.#data);
    const addrAt = max * slotSize;
    const bufs: Uint8Array<ArrayBuffer>[] = [];
    const addrs: Uint8Array<ArrayBuffer>[] = [];
    for (let i = 0; i < max; i++) {
      bufs.push(new Uint8Array(this.#data, i * slotSize, slotSize));
      addrs.push(new Uint8Array(this.#data, addrAt + i * A, A));
    }
    this.bufs = bufs;
    this.addrs = addrs;
    this.lens = new Uint32Array(max);
    this.addrLens = new Uint32Array(max);
    this.msgFlags = new Int32Array(max);

    const M = L.mmsghdr.size;
    const V = L.iovec.size;
    const ctl = new ArrayBuffer(max * (M + V));
    this.#ctl = new Uint8Array(ctl);
    this.#ctlView = new DataView(ctl);
    const data = addressOfArena(this.#data);
    const ctlAddr = addressOfArena(ctl);
    this.#addrBase = data + addrAt;
    const iovAt = max * M;
    for (let i = 0; i < max; i++) {
      encodeIovec(
        this.#ctlView,
        iovAt + i * V,
        { base: data + i * slotSize, len: slotSize },
        L,
      );
      encodeMmsghdr(this.#ctlView, i * M, {
        hdr: {
          name: this.#addrBase + i * A,
          namelen: A,
          iov: ctlAddr + iovAt + i * V,
          iovlen: 1,
          control: 0,
          controllen: 0,
          flags: 0,
        },
        len: 0,
      }, L);
    }
    this.#forRecv = true;
  }

  /** Received packet i (a view of its slot). */
  packet(i: number): Uint8Array {
    return this.bufs[i]!.subarray(0, Math.min(this.lens[i]!, this.slotSize));
  }

  /** The source of received packet i. */
  source(i: number): SysResult<SockAddr> {
    return decodeSockAddr(
      this.#dataView,
      this.max * this.slotSize + i * SOCKADDR_STORAGE_SIZE,
      this.addrLens[i]!,
      L,
    );
  }

  /** Whether received packet i was longer than its slot (cut to fit). */
  truncated(i: number): boolean {
    return (this.msgFlags[i]! & MSG_TRUNC) !== 0;
  }

  /** Sets the destination of slot i: packed address bytes, or null for none. */
  setDest(i: number, dest: Uint8Array | null): void {
    if (dest === null) {
      this.addrLens[i] = 0;
      return;
    }
    const n = Math.min(dest.byteLength, SOCKADDR_STORAGE_SIZE);
    this.addrs[i]!.set(n === dest.byteLength ? dest : dest.subarray(0, n));
    this.addrLens[i] = n;
  }

  /** Null if the memory is usable; else why not (a transferred buffer). */
  #unusable(call: string): SysError | null {
    return this.#data.byteLength === this.#dataSize
      ? null
      : invalid(call, "the batch's memory was transferred away");
  }

  static {
    batchCalls = {
      prepareRecv: (b, n) => b.#prepareRecv(n),
      finishRecv: (b, n) => b.#finishRecv(n),
      prepareSend: (b, n) => b.#prepareSend(n),
      unusable: (b, call) => b.#unusable(call),
      vector: (b) => b.#ctl,
    };
  }

  /** Readies slots 0..n-1 for recvmmsg; the error text if not possible. */
  #prepareRecv(n: number): SysError | null {
    const bad = this.#unusable("recvmmsg");
    if (bad !== null) return bad;
    const dv = this.#ctlView;
    const M = L.mmsghdr.size;
    const h = L.mmsghdr.hdr;
    const A = SOCKADDR_STORAGE_SIZE;
    if (!this.#forRecv) {
      const iovAt = this.max * M;
      for (let i = 0; i < this.max; i++) {
        setU64(dv, i * M + h + L.msghdr.name, this.#addrBase + i * A);
        setU64(dv, iovAt + i * L.iovec.size + L.iovec.len, this.slotSize);
      }
      this.#forRecv = true;
    }
    for (let i = 0; i < n; i++) {
      dv.setUint32(i * M + h + L.msghdr.namelen, A, true);
    }
    return null;
  }

  /** Reads what recvmmsg wrote for the first n messages. */
  #finishRecv(n: number): void {
    const dv = this.#ctlView;
    const M = L.mmsghdr.size;
    const h = L.mmsghdr.hdr;
    for (let i = 0; i < n; i++) {
      const at = i * M;
      this.lens[i] = dv.getUint32(at + L.mmsghdr.len, true);
      this.addrLens[i] = dv.getUint32(at + h + L.msghdr.namelen, true);
      this.msgFlags[i] = dv.getInt32(at + h + L.msghdr.flags, true);
    }
  }

  /** Readies slots 0..n-1 (lens, addrLens) for sendmmsg. */
  #prepareSend(n: number): SysError | null {
    const bad = this.#unusable("sendmmsg");
    if (bad !== null) return bad;
    const dv = this.#ctlView;
    const M = L.mmsghdr.size;
    const h = L.mmsghdr.hdr;
    const iovAt = this.max * M;
    for (let i = 0; i < n; i++) {
      const len = this.lens[i]!;
      if (len > this.slotSize) {
        return refused(
          "sendmmsg",
          EMSGSIZE,
          `packet ${i} of ${len} bytes in slots of ${this.slotSize}`,
        );
      }
      const alen = this.addrLens[i]!;
      const at = i * M + h;
      setU64(
        dv,
        at + L.msghdr.name,
        alen === 0 ? 0 : this.#addrBase + i * SOCKADDR_STORAGE_SIZE,
      );
      dv.setUint32(at + L.msghdr.namelen, alen, true);
      setU64(dv, iovAt + i * L.iovec.size + L.iovec.len, len);
    }
    this.#forRecv = false;
    return null;
  }
}

/**
 * Receives up to `max` datagrams into the batch's slots (recvmmsg) and
 * returns how many; then `lens`, `addrLens`, `msgFlags`, packet(i) and
 * source(i) describe them. The default flag MSG_WAITFORONE waits (on a
 * blocking socket) for the first datagram only and takes what else is
 * queued; on an empty non-blocking socket the result is "would block".
 */
export function recvBatch(
  fd: number,
  batch: PacketBatch,
  max: number = batch.max,
  flags: number = MSG_WAITFORONE,
): SysResult<number> {
  const n = Math.min(Math.max(1, Math.floor(max)), batch.max);
  const bad = batchCalls.prepareRecv(batch, n);
  if (bad !== null) return bad;
  const vec = batchCalls.vector(batch);
  const r = sys("recvmmsg", () => libc.recvmmsg(fd, vec, n, flags, null));
  if (r.ok) batchCalls.finishRecv(batch, r.value);
  return r;
}

/**
 * Sends the first `count` slots as they are (sendmmsg): `bufs[i]` holding
 * `lens[i]` bytes, to `addrs[i]` of `addrLens[i]` bytes (0: the connected
 * peer). Returns how many went, from the first: fewer than `count` when the
 * kernel stopped early, and the caller sends the rest again.
 */
export function sendSlots(
  fd: number,
  batch: PacketBatch,
  count: number,
  flags = 0,
): SysResult<number> {
  const n = Math.min(Math.max(0, Math.floor(count)), batch.max);
  if (n === 0) return sysOk(0);
  const bad = batchCalls.prepareSend(batch, n);
  if (bad !== null) return bad;
  const vec = batchCalls.vector(batch);
  return sys("sendmmsg", () => libc.sendmmsg(fd, vec, n, flags));
}

/**
 * Copies `packets` into the batch's slots and sends them (sendmmsg), each
 * to its destination: `dests[i]`, one address for all, or none (null, on a
 * connected socket). Addresses are packed ones (packAddr). At most
 * `batch.max` are sent per call; returns how many went, from the first.
 */
export function sendBatch(
  fd: number,
  batch: PacketBatch,
  packets: readonly Uint8Array[],
  dests: readonly (Uint8Array | null)[] | Uint8Array | null = null,
  flags = 0,
): SysResult<number> {
  const gone = batchCalls.unusable(batch, "sendmmsg");
  if (gone !== null) return gone;
  const n = Math.min(packets.length, batch.max);
  for (let i = 0; i < n; i++) {
    const p = packets[i]!;
    if (p.byteLength > batch.slotSize) {
      return refused(
        "sendmmsg",
        EMSGSIZE,
        `packet ${i} of ${p.byteLength} bytes in slots of ${batch.slotSize}`,
      );
    }
    batch.bufs[i]!.set(p);
    batch.lens[i] = p.byteLength;
    const d = dests === null || dests instanceof Uint8Array
      ? dests
      : dests[i] ?? null;
    batch.setDest(i, d);
  }
  return sendSlots(fd, batch, n, flags);
}

// poll.

/** A set of descriptors for poll(2), its pollfd array allocated once. */
export class PollSet {
  #cap: number;
  #bytes: Uint8Array;
  #view: DataView;
  #n = 0;

  constructor(capacity = 8) {
    this.#cap = Math.max(1, capacity);
    this.#bytes = new Uint8Array(new ArrayBuffer(this.#cap * L.pollfd.size));
    this.#view = new DataView(this.#bytes.buffer);
  }

  get size(): number {
    return this.#n;
  }

  clear(): void {
    this.#n = 0;
  }

  /** Adds a descriptor with the POLL* events to wait for; returns its index. */
  add(fd: number, events: number = POLLIN): number {
    if (this.#n === this.#cap) {
      const bigger = new Uint8Array(
        new ArrayBuffer(2 * this.#cap * L.pollfd.size),
      );
      bigger.set(this.#bytes);
      this.#cap *= 2;
      this.#bytes = bigger;
      this.#view = new DataView(bigger.buffer);
    }
    const i = this.#n++;
    encodePollfd(this.#view, i * L.pollfd.size, { fd, events, revents: 0 }, L);
    return i;
  }

  fd(i: number): number {
    return this.#view.getInt32(i * L.pollfd.size + L.pollfd.fd, true);
  }

  /** The events poll reported for entry i in the last wait. */
  revents(i: number): number {
    return this.#view.getUint16(i * L.pollfd.size + L.pollfd.revents, true);
  }

  /**
   * Waits until an entry is ready or `timeoutMs` passed (negative: no
   * limit; 0: just look); returns how many entries are ready (0: timeout).
   */
  wait(timeoutMs: number): SysResult<number> {
    const n = this.#n;
    const nfds = BigInt(n);
    for (let i = 0; i < n; i++) {
      this.#view.setUint16(i * L.pollfd.size + L.pollfd.revents, 0, true);
    }
    const bytes = this.#bytes;
    const timeout = remaining(timeoutMs);
    return sys("poll", () => libc.poll(bytes, nfds, timeout()));
  }
}

/** The timeout to pass each time a call is made, so EINTR keeps the limit. */
function remaining(timeoutMs: number): () => number {
  if (timeoutMs <= 0) {
    const t = timeoutMs < 0 ? -1 : 0;
    return () => t;
  }
  const ms = Math.ceil(timeoutMs);
  const deadline = performance.now() + ms;
  let first = true;
  return () => {
    if (first) {
      first = false;
      return ms;
    }
    return Math.max(0, Math.ceil(deadline - performance.now()));
  };
}

const pollScratch = new PollSet(8);

/**
 * Waits until one of `fds` is readable (or has an error or hang-up to
 * report, which a read then returns) or `timeoutMs` passed; returns the
 * ready descriptors, [] on timeout. A descriptor that is not open is EBADF.
 */
export function pollIn(
  fds: readonly number[],
  timeoutMs: number,
): SysResult<number[]> {
  pollScratch.clear();
  for (const fd of fds) pollScratch.add(fd, POLLIN);
  const r = pollScratch.wait(timeoutMs);
  if (!r.ok) return r;
  const ready: number[] = [];
  if (r.value === 0) return sysOk(ready);
  for (let i = 0; i < fds.length; i++) {
    const ev = pollScratch.revents(i);
    if ((ev & POLLNVAL) !== 0) {
      return refused("poll", EBADF, `descriptor ${fds[i]} is not open`);
    }
    if ((ev & (POLLIN | POLLERR | POLLHUP)) !== 0) ready.push(fds[i]!);
  }
  return sysOk(ready);
}

// epoll.

/**
 * An epoll instance with room for `maxEvents` events per wait. Each
 * registered descriptor carries a 32-bit tag, which wait() reports back.
 */
export class Epoll {
  readonly fd: number;
  readonly maxEvents: number;
  readonly #events: Uint8Array;
  readonly #view: DataView;
  readonly #ctl: Uint8Array;
  readonly #ctlView: DataView;
  #ready = 0;

  private constructor(fd: number, maxEvents: number) {
    this.fd = fd;
    this.maxEvents = maxEvents;
    const E = L.epollEvent.size;
    this.#events = new Uint8Array(new ArrayBuffer(maxEvents * E));
    this.#view = new DataView(this.#events.buffer);
    this.#ctl = new Uint8Array(new ArrayBuffer(E));
    this.#ctlView = new DataView(this.#ctl.buffer);
  }

  static open(maxEvents = 64): SysResult<Epoll> {
    if (!Number.isInteger(maxEvents) || maxEvents < 1) {
      return invalid("epoll_create1", `room for ${maxEvents} events`);
    }
    const fd = sys("epoll_create1", () => libc.epoll_create1(EPOLL_CLOEXEC));
    return fd.ok ? sysOk(new Epoll(fd.value, maxEvents)) : fd;
  }

  #control(op: number, fd: number, events: number, tag: number) {
    encodeEpollEvent(this.#ctlView, 0, { events, data: tag }, L);
    const ctl = this.#ctl;
    return voidOf(
      sys("epoll_ctl", () => libc.epoll_ctl(this.fd, op, fd, ctl)),
    );
  }

  /** Registers `fd` for the EPOLL* `events`, reported with `tag`. */
  add(fd: number, events: number, tag: number): SysResult<void> {
    return this.#control(EPOLL_CTL_ADD, fd, events, tag);
  }

  modify(fd: number, events: number, tag: number): SysResult<void> {
    return this.#control(EPOLL_CTL_MOD, fd, events, tag);
  }

  remove(fd: number): SysResult<void> {
    return this.#control(EPOLL_CTL_DEL, fd, 0, 0);
  }

  /**
   * Waits for events (timeout as for PollSet.wait); returns how many, and
   * events(i) and tag(i) tell them apart.
   */
  wait(timeoutMs: number, max: number = this.maxEvents): SysResult<number> {
    const n = Math.min(Math.max(1, Math.floor(max)), this.maxEvents);
    const events = this.#events;
    const timeout = remaining(timeoutMs);
    const r = sys(
      "epoll_wait",
      () => libc.epoll_wait(this.fd, events, n, timeout()),
    );
    this.#ready = r.ok ? r.value : 0;
    return r;
  }

  /** The EPOLL* events of ready entry i, an unsigned 32-bit number. */
  events(i: number): number {
    return this.#view.getUint32(
      i * L.epollEvent.size + L.epollEvent.events,
      true,
    );
  }

  /** The tag of ready entry i. */
  tag(i: number): number {
    return this.#view.getUint32(
      i * L.epollEvent.size + L.epollEvent.data,
      true,
    );
  }

  /** How many entries the last wait reported. */
  get ready(): number {
    return this.#ready;
  }

  close(): SysResult<void> {
    return closeFd(this.fd);
  }
}

// eventfd.

export interface EventfdOptions {
  readonly initial?: number;
  /** Default true: a read of a zero counter is "would block", not a wait. */
  readonly nonBlocking?: boolean;
  /** Each read takes 1 off the counter instead of all of it. */
  readonly semaphore?: boolean;
}

/** An eventfd (close-on-exec): a counter that poll reports readable at > 0. */
export function eventfd(opts: EventfdOptions = {}): SysResult<number> {
  const flags = EFD_CLOEXEC | (opts.nonBlocking === false ? 0 : EFD_NONBLOCK) |
    (opts.semaphore === true ? EFD_SEMAPHORE : 0);
  const initial = opts.initial ?? 0;
  if (!Number.isInteger(initial) || initial < 0 || initial > 0xffff_ffff) {
    return invalid("eventfd", `initial value ${initial}`);
  }
  return sys("eventfd", () => libc.eventfd(initial, flags));
}

/** Adds `n` to the counter, waking a thread that waits for it. */
export function eventfdSignal(fd: number, n = 1): SysResult<void> {
  if (!Number.isInteger(n) || n < 1 || n > Number.MAX_SAFE_INTEGER) {
    return invalid("eventfd write", `increment ${n}`);
  }
  setU64(counterView, 0, n);
  return voidOf(
    sys("write", () => ssize(libc.write(fd, counterBuf, COUNTER_LEN))),
  );
}

/**
 * Reads the counter, which resets it (or takes 1 off, for a semaphore):
 * the value read. A zero counter is "would block" on a non-blocking eventfd.
 */
export function eventfdDrain(fd: number): SysResult<number> {
  const r = sys("read", () => ssize(libc.read(fd, counterBuf, COUNTER_LEN)));
  if (!r.ok) return r;
  return sysOk(
    counterView.getUint32(0, true) + counterView.getUint32(4, true) * 2 ** 32,
  );
}

// Threads.

/** The calling thread's kernel id (gettid). */
export function threadId(): number {
  return libc.gettid();
}

/** Sends signal `signo` to thread `tid` of this process (tgkill). */
export function signalThread(tid: number, signo: number): SysResult<void> {
  const pid = Deno.pid;
  return voidOf(sys("tgkill", () => libc.tgkill(pid, tid, signo)));
}
