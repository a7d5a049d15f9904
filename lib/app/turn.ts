/**
 * A turn of the event loop, for code that waits without sleeping (the
 * busy and back-to-back modes of the tools, the fast path's reactor). It
 * has no other dependency, so that a program on asynchronous flows does not
 * load the system-call layer for it.
 */

/**
 * One turn of the event loop, no more: every promise woken meanwhile runs
 * first, however long its chain of awaits. It is a task of V8's own (the
 * resolution of an `Atomics.waitAsync` that was notified at once), about
 * 2 µs. A timer of 0 ms lasts about 2 ms here; a message to oneself through
 * a MessageChannel is delivered among the microtasks, after only a few of
 * them, so it would let a woken flow's chain be cut short before its write.
 * While a turn is awaited a timer keeps the event loop alive (a V8 task
 * alone does not).
 */
export class EventLoopTurn {
  #cell = new Int32Array(new SharedArrayBuffer(4));
  #keep: ReturnType<typeof setTimeout>;
  #pending = 0;
  #closed = false;

  constructor() {
    // The longest timer there is (about 24 days); cleared by close().
    this.#keep = setTimeout(() => {}, 0x7fff_ffff);
    Deno.unrefTimer(this.#keep);
  }

  async next(): Promise<void> {
    if (this.#closed) return;
    if (this.#pending++ === 0) Deno.refTimer(this.#keep);
    try {
      const w = Atomics.waitAsync(this.#cell, 0, 0);
      Atomics.notify(this.#cell, 0);
      if (w.async) await w.value;
    } finally {
      if (--this.#pending === 0 && !this.#closed) Deno.unrefTimer(this.#keep);
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#keep);
  }
}
