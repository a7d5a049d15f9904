/**
 * The bytes towards a peer that a non-blocking stream socket did not take
 * yet: copied in behind each other, written as far as the socket takes
 * them (on EPOLLOUT, by the caller, who keeps the epoll registration), in
 * order, so that the stream's framing stays intact.
 *
 * A write the socket takes whole never comes here: only the rest of one it
 * took in part is copied in (appendUnwritten), and what comes behind it
 * while anything waits. The buffer starts small, grows by doubling, and is
 * let go once drained when it grew large.
 *
 * Optionally the queue counts the frames that wait (a frame taken in part
 * counted whole): each part appended may end a frame, whose end offset in
 * the stream is kept in a FIFO of numbers, popped as the socket takes it.
 */
import { type SysFailure, writeFd } from "../../lib/sys/mod.ts";

/** A queue's buffer starts this small... */
const FIRST_OUT_BYTES = 16 * 1024;
/** ...and is let go once drained when it grew beyond this. */
export const KEEP_OUT_BYTES = 64 * 1024;

/**
 * What write() did: "idle", nothing was queued since the buffer was let
 * go; "drained", all is written; "blocked", the socket takes no more now;
 * or the failure (what waited is dropped).
 */
export type OutWrite = "idle" | "drained" | "blocked" | SysFailure;

export class OutQueue {
  #buf: Uint8Array | null = null;
  #start = 0;
  #end = 0;
  /** Bytes ever put in, and ever written, since the queue was last empty. */
  #in = 0;
  #taken = 0;
  /** Where the queue's frames end, in `#in`'s terms, from `#endsHead` on. */
  readonly #ends: number[] = [];
  #endsHead = 0;

  /** Bytes waiting. */
  get pending(): number {
    return this.#end - this.#start;
  }

  /** Frames waiting (those whose last part was appended with `frameEnd`). */
  get frames(): number {
    return this.#ends.length - this.#endsHead;
  }

  /** Copies `bytes` in behind what waits; a frame ends with them if asked. */
  append(bytes: Uint8Array, frameEnd = false): void {
    const n = bytes.length;
    let out = this.#buf;
    if (out === null) {
      out = this.#buf = new Uint8Array(Math.max(FIRST_OUT_BYTES, n));
      this.#start = this.#end = 0;
    }
    if (this.#end + n > out.length) {
      const pending = this.#end - this.#start;
      if (pending + n <= out.length && this.#start > 0) {
        out.copyWithin(0, this.#start, this.#end);
      } else {
        let size = out.length * 2;
        while (size < pending + n) size *= 2;
        const bigger = new Uint8Array(size);
        bigger.set(out.subarray(this.#start, this.#end));
        out = this.#buf = bigger;
      }
      this.#start = 0;
      this.#end = pending;
    }
    out.set(bytes, this.#end);
    this.#end += n;
    this.#in += n;
    if (frameEnd) this.#ends.push(this.#in);
  }

  /**
   * Copies in what of `parts` a writev did not take, its first `written`
   * bytes gone: the part taken in part first. `frameEnds[i]` says whether
   * a frame ends with part i (none do without it).
   */
  appendUnwritten(
    parts: readonly Uint8Array[],
    written: number,
    frameEnds?: readonly boolean[],
  ): void {
    let skip = written;
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (skip >= p.length) {
        skip -= p.length;
        continue;
      }
      this.append(skip === 0 ? p : p.subarray(skip), frameEnds?.[i] ?? false);
      skip = 0;
    }
  }

  /** Writes what waits to `fd`, as far as the socket takes it. */
  write(fd: number): OutWrite {
    const out = this.#buf;
    if (out === null) return "idle";
    while (this.#end > this.#start) {
      const r = writeFd(fd, out.subarray(this.#start, this.#end));
      if (!r.ok) {
        if (r.wouldBlock) return "blocked";
        this.#empty();
        return r;
      }
      this.#start += r.value;
      this.#taken += r.value;
      const ends = this.#ends;
      let h = this.#endsHead;
      while (h < ends.length && ends[h]! <= this.#taken) h++;
      if (h > 1024 && 2 * h > ends.length) {
        ends.splice(0, h);
        h = 0;
      }
      this.#endsHead = h;
    }
    this.#empty();
    if (out.length > KEEP_OUT_BYTES) this.#buf = null;
    return "drained";
  }

  /** Drops what waits and lets the buffer go. */
  clear(): void {
    this.#buf = null;
    this.#empty();
  }

  #empty(): void {
    this.#start = this.#end = 0;
    this.#ends.length = 0;
    this.#endsHead = 0;
    this.#in = this.#taken = 0;
  }
}
