/**
 * The results of system calls: a value, an error with its errno, or "would
 * block" (EAGAIN on a non-blocking descriptor), which is a normal outcome on
 * the data path and so neither an error object of its own nor an exception.
 *
 * fromErrno() is the one place where a failed call (-1 and errno) becomes a
 * result, and runSys() the one place where a call interrupted by a signal
 * (EINTR) is made again.
 */
import { EAGAIN, EINTR, EINVAL, errnoName } from "./constants.ts";

export interface SysOk<T> {
  readonly ok: true;
  readonly value: T;
}

/** A call that failed with an errno other than EAGAIN. */
export interface SysError {
  readonly ok: false;
  readonly wouldBlock: false;
  readonly errno: number;
  /** The errno's symbolic name, such as "EBADF". */
  readonly name: string;
  /** The libc function that failed, or the argument check that refused. */
  readonly call: string;
  /** What was wrong, for a refusal before any call was made. */
  readonly detail?: string;
}

/** A non-blocking call that had nothing to do yet (EAGAIN, EWOULDBLOCK). */
export interface WouldBlock {
  readonly ok: false;
  readonly wouldBlock: true;
  readonly errno: typeof EAGAIN;
  readonly name: "EAGAIN";
  readonly call: string;
}

export type SysFailure = SysError | WouldBlock;
export type SysResult<T> = SysOk<T> | SysFailure;

export function sysOk<T>(value: T): SysOk<T> {
  return { ok: true, value };
}

/** The success of a call that returns nothing. */
export const OK_VOID: SysOk<void> = Object.freeze({
  ok: true,
  value: undefined,
});

const wouldBlockOf = new Map<string, WouldBlock>();

/**
 * Turns the errno of a failed call into its result. "Would block" results
 * are shared per call name, so a drain loop that ends on EAGAIN allocates
 * nothing.
 */
export function fromErrno(call: string, errno: number): SysFailure {
  if (errno === EAGAIN) {
    let w = wouldBlockOf.get(call);
    if (w === undefined) {
      w = Object.freeze({
        ok: false,
        wouldBlock: true,
        errno: EAGAIN,
        name: "EAGAIN",
        call,
      });
      wouldBlockOf.set(call, w);
    }
    return w;
  }
  return { ok: false, wouldBlock: false, errno, name: errnoName(errno), call };
}

/** An argument refused before any system call was made (EINVAL). */
export function invalid(call: string, detail: string): SysError {
  return {
    ok: false,
    wouldBlock: false,
    errno: EINVAL,
    name: "EINVAL",
    call,
    detail,
  };
}

/** A refusal with another errno than EINVAL (EMSGSIZE for a large packet). */
export function refused(call: string, errno: number, detail: string): SysError {
  return {
    ok: false,
    wouldBlock: false,
    errno,
    name: errnoName(errno),
    call,
    detail,
  };
}

/** How many calls runSys() has made again after EINTR, in this thread. */
let eintrRetries = 0;

export function eintrRetryCount(): number {
  return eintrRetries;
}

/**
 * Makes a call that returns -1 and sets errno on failure, again as long as it
 * fails with EINTR. `readErrno` reads the errno of the calling thread; it is
 * a parameter so that the loop can be tested without libc. A call with a
 * timeout computes its remaining time itself each time it is made.
 */
export function runSys(
  call: string,
  f: () => number,
  readErrno: () => number,
): SysResult<number> {
  for (;;) {
    const r = f();
    if (r !== -1) return { ok: true, value: r };
    const errno = readErrno();
    if (errno !== EINTR) return fromErrno(call, errno);
    eintrRetries++;
  }
}

/** "bind: EADDRINUSE (errno 98)", with the detail of a refusal. */
export function describe(f: SysFailure): string {
  const base = `${f.call}: ${f.name} (errno ${f.errno})`;
  return !f.wouldBlock && f.detail !== undefined
    ? `${base}: ${f.detail}`
    : base;
}

/** The exception that unwrap() throws. */
export class SysCallError extends Error {
  override readonly name = "SysCallError";
  readonly errno: number;
  readonly errnoName: string;
  readonly call: string;
  constructor(readonly failure: SysFailure) {
    super(describe(failure));
    this.errno = failure.errno;
    this.errnoName = failure.name;
    this.call = failure.call;
  }
}

/** The value of a result, or a SysCallError thrown: for setup code and tests. */
export function unwrap<T>(r: SysResult<T>): T {
  if (r.ok) return r.value;
  throw new SysCallError(r);
}
