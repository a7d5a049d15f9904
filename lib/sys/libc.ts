/**
 * The libc functions of the system-call layer, through Deno's FFI
 * (`Deno.dlopen`, which needs --allow-ffi, or "ffi": true in a permission
 * set). Importing this module opens libc.so.6; the library stays open for the
 * life of the thread (a Worker that imports it opens its own).
 *
 * This module and sys.ts are the only code of the project that handles
 * pointers. Nothing outside lib/sys/ imports this module: sys.ts offers the
 * calls over Uint8Array buffers and results.
 *
 * Every call is synchronous (FFI `nonblocking: false`): errno lives in the
 * calling thread, and a call made on a helper thread would lose it. A call
 * that can block (recv*, poll, epoll_wait, accept4, read, write, connect on a
 * stream socket) blocks only the thread that makes it, so the data path makes
 * such calls in a Worker; the main thread uses them on non-blocking
 * descriptors or with a zero timeout.
 *
 * fcntl is variadic in C; it is declared here with its third argument as a
 * 64-bit integer, which both ABIs pass exactly as they pass a variadic
 * integer (x86_64: in %rdx, and glibc's fcntl does not read %al; aarch64
 * Linux: in x2).
 */
import { runSys, type SysResult } from "./result.ts";

const SYMBOLS = {
  __errno_location: { parameters: [], result: "pointer" },
  gettid: { parameters: [], result: "i32" },
  tgkill: { parameters: ["i32", "i32", "i32"], result: "i32" },

  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  socketpair: {
    parameters: ["i32", "i32", "i32", "buffer"],
    result: "i32",
  },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  accept4: {
    parameters: ["i32", "buffer", "buffer", "i32"],
    result: "i32",
  },
  close: { parameters: ["i32"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  setsockopt: {
    parameters: ["i32", "i32", "i32", "buffer", "u32"],
    result: "i32",
  },
  getsockopt: {
    parameters: ["i32", "i32", "i32", "buffer", "buffer"],
    result: "i32",
  },
  fcntl: { parameters: ["i32", "i32", "i64"], result: "i32" },

  sendto: {
    parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"],
    result: "isize",
  },
  recvfrom: {
    parameters: ["i32", "buffer", "usize", "i32", "buffer", "buffer"],
    result: "isize",
  },
  sendmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  recvmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  sendmmsg: { parameters: ["i32", "buffer", "u32", "i32"], result: "i32" },
  recvmmsg: {
    parameters: ["i32", "buffer", "u32", "i32", "pointer"],
    result: "i32",
  },

  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  readv: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  writev: { parameters: ["i32", "buffer", "i32"], result: "isize" },

  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
} as const;

const lib = Deno.dlopen("libc.so.6", SYMBOLS);

/** The raw functions. Only sys.ts uses them. */
export const libc = lib.symbols;

let errnoView: Deno.UnsafePointerView | undefined;

/** The errno of the calling thread (its address is fixed for the thread). */
export function errno(): number {
  if (errnoView === undefined) {
    const p = libc.__errno_location();
    if (p === null) throw new Error("__errno_location returned NULL");
    errnoView = new Deno.UnsafePointerView(p);
  }
  return errnoView.getInt32(0);
}

/** A call returning -1 and errno on failure, made again after EINTR. */
export function sys(call: string, f: () => number): SysResult<number> {
  return runSys(call, f, errno);
}

/** A ssize_t result as a number (sizes here stay far below 2^53). */
export function ssize(r: bigint): number {
  return Number(r);
}

const addressOfBuffer = new WeakMap<ArrayBufferLike, number>();

/**
 * The address of a view's first byte, for a pointer inside a struct (an
 * iovec's base). The address of the view's ArrayBuffer is taken once and
 * remembered: an ArrayBuffer's memory stays in place for its life, and
 * asking for `.buffer` first moves a small typed array's data out of the
 * JavaScript heap, where the collector could move it. A view of a detached
 * buffer has length 0, so the kernel is never told to touch freed memory.
 */
export function addressOf(view: Uint8Array): number {
  const buf = view.buffer;
  let base = addressOfBuffer.get(buf);
  if (base === undefined) {
    base = Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
    addressOfBuffer.set(buf, base);
  }
  return base + view.byteOffset;
}

/** The address of a buffer this layer allocated and keeps. */
export function addressOfArena(buf: ArrayBuffer): number {
  return Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
}
