/**
 * Length-prefixed frames over a stream socket: a u32 big-endian length, then
 * that many bytes. Used by the control protocol and by the data path.
 *
 * The reader reads large chunks and hands out frames as views into them; a
 * chunk is never written again once a frame from it was handed out, so a
 * frame stays valid (and may be modified in place) for as long as it is held
 * (unless the reader was made with `reuse`: then a frame is valid only until
 * the next call, and the chunk is compacted in place instead of replaced).
 * The writer batches: while one write is under way, later frames gather in a
 * second buffer that goes out in the next single write; a `deferred` writer
 * gathers frames until `kick()` (or until a batch is large), so that a burst
 * of packets costs one write.
 */

export const FRAME_HDR = 4;

export class FrameTooLarge extends Error {
  constructor(readonly length: number, readonly max: number) {
    super(`frame of ${length} bytes exceeds the limit of ${max}`);
  }
}

export interface ByteReader {
  read(p: Uint8Array): Promise<number | null>;
}

export interface ByteWriter {
  write(p: Uint8Array): Promise<number>;
}

/**
 * A source that can also be read without waiting (the fast path's
 * descriptors): the bytes read, 0 when nothing is there now, null at the
 * end of the stream.
 */
export interface NowReader extends ByteReader {
  readNow(p: Uint8Array): number | null;
}

/**
 * A destination that can also be written without waiting: the bytes
 * written, 0 when it is full; `writable` resolves when it may take more.
 */
export interface NowWriter extends ByteWriter {
  writeNow(p: Uint8Array): number;
  writable(): Promise<void>;
}

/** The longest single wait of `flushNow` before it looks again. */
const FLUSH_WAIT_SLICE_MS = 100;

function canWriteNow(w: ByteWriter): w is NowWriter {
  return "writeNow" in w;
}

/** A reader's first chunk: enough for a control message or a few packets. */
const FIRST_CHUNK = 16 * 1024;

export class FrameReader {
  #chunk: Uint8Array;
  #start = 0;
  #end = 0;
  /** The size of the next chunk: doubles, up to the most, while reads fill it. */
  #size: number;
  readonly #most: number;
  /** The last read of `nextNow` was short: the source is drained for now. */
  #drained = false;

  constructor(
    private readonly src: ByteReader,
    private readonly maxFrame: number,
    /**
     * The largest chunk (one read at most); a reader starts with a small one
     * and grows it only while its reads fill it (a busy flow), so an idle
     * connection costs little. A frame larger than a chunk gets a chunk of
     * its own size.
     */
    chunkSize = 256 * 1024,
    /**
     * Frames are dropped by the caller before it asks for the next one: the
     * chunk may be compacted in place. Can be turned on after the first frame.
     */
    public reuse = false,
  ) {
    this.#most = chunkSize;
    this.#size = Math.min(chunkSize, FIRST_CHUNK);
    this.#chunk = new Uint8Array(this.#size);
  }

  /**
   * The next whole frame, header included (payload at offset 4), or null at
   * the end of the stream. Throws FrameTooLarge on an oversized length and
   * an Error on a stream that ends inside a frame.
   */
  async next(): Promise<Uint8Array | null> {
    for (;;) {
      const frame = this.#take();
      if (frame !== undefined) return frame;
      this.#prepare();
      const space = this.#chunk.length - this.#end;
      const n = await this.src.read(this.#chunk.subarray(this.#end));
      if (n === null) {
        if (this.#end > this.#start) {
          throw new Error("stream ended inside a frame");
        }
        return null;
      }
      this.#end += n;
      if (n === space && this.#size < this.#most) {
        this.#size = Math.min(this.#size * 2, this.#most);
      }
    }
  }

  /**
   * The next whole frame without waiting: one that is buffered, or one
   * that reads of what is there now complete (a source that is not a
   * NowReader is never read). Undefined when no whole frame is there yet;
   * null at the end of the stream. A read that came back short drained
   * the source: it is not read again until `rearm()` says that it may have
   * more (the caller waited for readiness), which saves a read that would
   * come back empty per packet. Never holds a buffer across a wait.
   */
  nextNow(): Uint8Array | null | undefined {
    for (;;) {
      const frame = this.#take();
      if (frame !== undefined) return frame;
      if (this.#drained) return undefined;
      const src = this.src as Partial<NowReader>;
      if (src.readNow === undefined) return undefined;
      this.#prepare();
      const space = this.#chunk.length - this.#end;
      const n = src.readNow(this.#chunk.subarray(this.#end));
      if (n === null) {
        if (this.#end > this.#start) {
          throw new Error("stream ended inside a frame");
        }
        return null;
      }
      if (n === 0) return undefined;
      this.#end += n;
      if (n === space) {
        if (this.#size < this.#most) {
          this.#size = Math.min(this.#size * 2, this.#most);
        }
      } else this.#drained = true;
    }
  }

  /** The source may have more to read (it was seen readable). */
  rearm(): void {
    this.#drained = false;
  }

  /** Room at the end of the chunk for the next read. */
  #prepare(): void {
    if (this.reuse && this.#start === this.#end) {
      this.#start = this.#end = 0;
      if (this.#chunk.length < this.#size) {
        this.#chunk = new Uint8Array(this.#size);
      }
    }
    if (this.#end === this.#chunk.length) this.#renew();
  }

  /** A frame that is already buffered, without reading. */
  nextBuffered(): Uint8Array | undefined {
    return this.#take();
  }

  #take(): Uint8Array | undefined {
    const avail = this.#end - this.#start;
    if (avail < FRAME_HDR) return undefined;
    const c = this.#chunk;
    const s = this.#start;
    const len =
      ((c[s]! << 24) | (c[s + 1]! << 16) | (c[s + 2]! << 8) | c[s + 3]!) >>> 0;
    if (len > this.maxFrame) throw new FrameTooLarge(len, this.maxFrame);
    if (avail < FRAME_HDR + len) {
      // Make room for the rest of this frame when the chunk cannot hold it.
      if (s + FRAME_HDR + len > c.length) this.#renew(FRAME_HDR + len);
      return undefined;
    }
    this.#start = s + FRAME_HDR + len;
    return c.subarray(s, this.#start);
  }

  /**
   * Moves the unread bytes to a fresh chunk (never reusing the old one), or
   * to the start of the same chunk with `reuse`; the chunk is at least `need`
   * bytes long afterwards.
   */
  #renew(need = 0): void {
    const c = this.#chunk;
    if (this.reuse && need <= c.length && c.length >= this.#size) {
      c.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
      return;
    }
    const rest = c.subarray(this.#start, this.#end);
    const fresh = new Uint8Array(Math.max(this.#size, need));
    fresh.set(rest);
    this.#chunk = fresh;
    this.#start = 0;
    this.#end = rest.length;
  }
}

export function putU32(buf: Uint8Array, off: number, v: number): void {
  buf[off] = v >>> 24;
  buf[off + 1] = (v >>> 16) & 0xff;
  buf[off + 2] = (v >>> 8) & 0xff;
  buf[off + 3] = v & 0xff;
}

export function getU32(buf: Uint8Array, off: number): number {
  return ((buf[off]! << 24) | (buf[off + 1]! << 16) | (buf[off + 2]! << 8) |
    buf[off + 3]!) >>>
    0;
}

export async function writeAll(w: ByteWriter, p: Uint8Array): Promise<void> {
  let off = 0;
  while (off < p.length) off += await w.write(p.subarray(off));
}

/** A writer's first buffers: a few packets or control messages. */
const FIRST_WRITE_BUFFER = 4 * 1024;

/** A deferred writer starts a write by itself once this much is pending. */
export const DEFERRED_FLUSH_BYTES = 64 * 1024;

/**
 * Batching frame writer. `push` copies the payload behind a length header
 * into the pending buffer; a single flusher writes the pending bytes out.
 * With `dropWhenFull` a push that finds the queue over its limit drops the
 * frame and counts it (a slow reader never makes memory grow); otherwise
 * callers should await `drained()` when `push` returns false.
 *
 * With `deferred`, `push` only starts a write once DEFERRED_FLUSH_BYTES are
 * pending; the owner calls `kick()` when its burst of pushes is over.
 */
export class FrameWriter {
  #pending: Uint8Array;
  #spare: Uint8Array;
  #len = 0;
  /**
   * Bytes of #pending already written (a NowWriter destination writes
   * from #pending in place, so that a synchronous flush may take over
   * from a write that waits; other destinations swap buffers, and this
   * stays 0).
   */
  #off = 0;
  #flushing = false;
  #closed = false;
  #error: unknown = undefined;
  #waiters: (() => void)[] = [];
  dropped = 0;

  constructor(
    private readonly dst: ByteWriter,
    private readonly limit = 512 * 1024,
    private readonly dropWhenFull = false,
    private readonly deferred = false,
  ) {
    // Both buffers start small and double when a burst needs it.
    this.#pending = new Uint8Array(FIRST_WRITE_BUFFER);
    this.#spare = canWriteNow(dst)
      ? new Uint8Array(0)
      : new Uint8Array(FIRST_WRITE_BUFFER);
  }

  get closed(): boolean {
    return this.#closed;
  }

  get error(): unknown {
    return this.#error;
  }

  /** Bytes waiting to be written. */
  get queued(): number {
    return this.#len - this.#off;
  }

  /**
   * Queues one frame. Returns false when the frame was dropped (queue full
   * with dropWhenFull, or writer closed); without dropWhenFull the frame is
   * always queued while open, and false means "over the limit: wait".
   */
  push(payload: Uint8Array): boolean {
    return this.#push(payload, this.deferred);
  }

  #push(src: Uint8Array, defer: boolean, from = 0): boolean {
    if (this.#closed) return false;
    const len = src.length - from;
    const need = FRAME_HDR + len;
    if (this.queued + need > this.limit && this.queued > 0) {
      if (this.dropWhenFull) {
        this.dropped++;
        return false;
      }
    }
    this.#reserve(need);
    putU32(this.#pending, this.#len, len);
    this.#pending.set(
      from === 0 ? src : src.subarray(from),
      this.#len + FRAME_HDR,
    );
    this.#len += need;
    if (
      !this.#flushing &&
      (!defer || this.queued >= DEFERRED_FLUSH_BYTES)
    ) this.#flush();
    // Dropping writers say whether the frame was queued; others whether to wait.
    return this.dropWhenFull || this.queued <= this.limit;
  }

  /**
   * Queues one frame like `push` (the bytes of `src` from `from` on), but
   * leaves the write to a later `kick()` unless DEFERRED_FLUSH_BYTES are
   * pending: a burst of frames goes out in one write.
   */
  pushDeferred(src: Uint8Array, from = 0): boolean {
    return this.#push(src, true, from);
  }

  /** Starts writing what is pending (for a deferred writer). */
  kick(): void {
    if (!this.#flushing && this.queued > 0 && !this.#closed) this.#flush();
  }

  /**
   * Writes everything pending on this thread, blocking in `waitWritable`
   * (given the most it may wait, in ms) while the destination is full; a
   * NowWriter destination only. Returns once all is written; throws the
   * destination's error (the writer is closed then) or, if the writer is
   * closed, an Error.
   */
  flushNow(waitWritable: (ms: number) => void): void {
    const dst = this.dst;
    if (!canWriteNow(dst)) {
      throw new Error("flushNow: the destination cannot be written at once");
    }
    while (!this.#closed) {
      try {
        if (this.#writeNow(dst)) return;
      } catch (e) {
        this.#fail(e);
        throw e;
      }
      waitWritable(FLUSH_WAIT_SLICE_MS);
    }
    throw this.#error ?? new Error("the writer is closed");
  }

  /** Resolves when the queue is below its limit again (or the writer closed). */
  drained(): Promise<void> {
    if (this.queued <= this.limit || this.#closed) return Promise.resolve();
    this.kick();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Resolves when everything queued so far has been written. */
  async flushed(): Promise<void> {
    this.kick();
    while ((this.queued > 0 || this.#flushing) && !this.#closed) {
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  close(): void {
    this.#closed = true;
    this.#wake();
  }

  #reserve(need: number): void {
    if (this.#len + need <= this.#pending.length) return;
    if (this.#off > 0) {
      // Written bytes make room first (a NowWriter's buffer).
      this.#pending.copyWithin(0, this.#off, this.#len);
      this.#len -= this.#off;
      this.#off = 0;
      if (this.#len + need <= this.#pending.length) return;
    }
    let size = this.#pending.length * 2;
    while (size < this.#len + need) size *= 2;
    const bigger = new Uint8Array(size);
    bigger.set(this.#pending.subarray(0, this.#len));
    this.#pending = bigger;
  }

  /**
   * Writes what the destination takes now, from #pending in place; true
   * when nothing is left.
   */
  #writeNow(dst: NowWriter): boolean {
    const before = this.queued;
    while (this.#off < this.#len) {
      const n = dst.writeNow(this.#pending.subarray(this.#off, this.#len));
      if (n <= 0) break;
      this.#off += n;
    }
    const done = this.#off === this.#len;
    if (done) this.#off = this.#len = 0;
    if (this.queued !== before) this.#wake();
    return done;
  }

  #fail(e: unknown): void {
    this.#error ??= e;
    this.#closed = true;
    this.#wake();
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  async #flush(): Promise<void> {
    this.#flushing = true;
    const dst = this.dst;
    try {
      if (canWriteNow(dst)) {
        // Written at once while the destination takes it (so a push on
        // the fast path has written before it returns); a full one is
        // waited for, and whoever writes next (this, or a flushNow) takes
        // up where the last write stopped.
        while (!this.#closed && !this.#writeNow(dst)) await dst.writable();
        return;
      }
      while (this.#len > 0 && !this.#closed) {
        const out = this.#pending.subarray(0, this.#len);
        // Swap: new frames gather in the other buffer during the write.
        const next = this.#spare;
        this.#spare = this.#pending;
        this.#pending = next;
        this.#len = 0;
        this.#wake();
        await writeAll(dst, out);
      }
    } catch (e) {
      this.#fail(e);
    } finally {
      this.#flushing = false;
      this.#wake();
    }
  }
}
