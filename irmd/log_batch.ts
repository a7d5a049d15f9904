/**
 * The irmd's log output, written once per task instead of once per line.
 *
 * An allocation makes the irmd log a line or two (the request, the flow
 * accepted) before it answers, and each line was a write of its own to
 * standard output, in the middle of the allocation: a write to a pipe or a
 * terminal wakes its reader, and costs the irmd about what a reply does.
 * Here the lines a task logs gather in a buffer, in order, and leave in one
 * write at the end of that task: after FLUSH_HOPS turns of the microtask
 * queue, by when the replies the task sent (a handler's answer leaves a few
 * promise steps after the handler returns) have been written. Not a timer: a
 * timer of 0 ms fires a millisecond or more later in Deno, and arming it
 * costs a system call. Nothing is dropped or reordered, and no line waits
 * beyond the task that logged it.
 *
 * What is still buffered is written at once when the process ends (Deno.exit,
 * the end of the module, an uncaught error) and by `flush()`.
 */
import type { LogSink } from "../lib/util/log.ts";

/** The buffer's first size: a few lines. */
const FIRST_BYTES = 4096;
/**
 * Microtask turns before a flush: more than the promise steps between a
 * handler's log line and its reply's write (three for a flow request).
 */
export const FLUSH_HOPS = 8;

export class BatchedSink implements LogSink {
  #buf = new Uint8Array(FIRST_BYTES);
  #len = 0;
  /** Microtask turns left before the flush; 0 when none is scheduled. */
  #hops = 0;
  readonly #flushNow = () => this.flush();
  readonly #hop = () => {
    if (this.#hops === 0) return; // flushed meanwhile
    if (--this.#hops === 0) this.flush();
    else queueMicrotask(this.#hop);
  };

  constructor(private readonly out: LogSink = Deno.stdout) {}

  /** Takes the bytes whole, for the next flush. */
  writeSync(p: Uint8Array): number {
    if (this.#len + p.length > this.#buf.length) {
      let size = this.#buf.length * 2;
      while (size < this.#len + p.length) size *= 2;
      const bigger = new Uint8Array(size);
      bigger.set(this.#buf.subarray(0, this.#len));
      this.#buf = bigger;
    }
    this.#buf.set(p, this.#len);
    this.#len += p.length;
    if (this.#hops === 0) {
      this.#hops = FLUSH_HOPS;
      queueMicrotask(this.#hop);
    }
    return p.length;
  }

  isTerminal(): boolean {
    return this.out.isTerminal();
  }

  /** Bytes waiting for the next flush. */
  get pending(): number {
    return this.#len;
  }

  /** Writes what is buffered, now. A broken output loses it (as a line would). */
  flush(): void {
    this.#hops = 0;
    const bytes = this.#buf.subarray(0, this.#len);
    this.#len = 0;
    try {
      let off = 0;
      while (off < bytes.length) off += this.out.writeSync(bytes.subarray(off));
    } catch {
      // A closed or broken output must never take the process down.
    }
    if (this.#buf.length > FIRST_BYTES) this.#buf = new Uint8Array(FIRST_BYTES);
  }

  /**
   * Flushes when the process ends: at Deno.exit and the end of the program
   * ("unload"), and on an uncaught error or rejection (before Deno reports
   * it and exits). Returns the function that stops doing so.
   */
  flushAtExit(): () => void {
    const events = ["unload", "error", "unhandledrejection"] as const;
    for (const e of events) globalThis.addEventListener(e, this.#flushNow);
    return () => {
      for (const e of events) globalThis.removeEventListener(e, this.#flushNow);
    };
  }
}
