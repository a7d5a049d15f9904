/**
 * A single-producer, single-consumer ring of fixed-size records in a
 * SharedArrayBuffer: how an IPCP's main thread tells its data-path thread
 * about flows without that thread returning to its event loop (a Worker
 * blocked in epoll_wait cannot run onmessage; after an eventfd wakes it, it
 * reads this ring instead).
 *
 * The buffer holds a header of two 32-bit counters, the records written and
 * the records read (each only ever written by its own side, with Atomics),
 * then `capacity` records of RECORD_BYTES. The counters wrap at 2^32; their
 * difference is the number of records waiting.
 *
 * A record may carry bytes that do not fit it (writeWithBytes): it is then
 * followed by ceil(length / RECORD_BYTES) raw records of those bytes, all
 * published by one store, so the reader sees the whole run or none of it.
 * The reader knows the run's length from the first record (its codec says
 * where; dp_msg.ts's CommandReader puts the bytes back together).
 */

/** Bytes per record. */
export const RECORD_BYTES = 64;

const WRITTEN = 0;
const READ = 1;
const HEADER_BYTES = 8;

/** The buffer for a ring of `capacity` records (a power of two). */
export function ringBuffer(capacity: number): SharedArrayBuffer {
  if (
    !Number.isInteger(capacity) || capacity < 2 || capacity > 1 << 20 ||
    (capacity & (capacity - 1)) !== 0
  ) {
    throw new RangeError(
      `ring of ${capacity} records: a power of two, 2 to 2^20`,
    );
  }
  return new SharedArrayBuffer(HEADER_BYTES + capacity * RECORD_BYTES);
}

class RingView {
  protected readonly counters: Int32Array;
  protected readonly bytes: Uint8Array;
  protected readonly view: DataView;
  readonly capacity: number;

  constructor(buf: SharedArrayBuffer) {
    const capacity = (buf.byteLength - HEADER_BYTES) / RECORD_BYTES;
    if (
      !Number.isInteger(capacity) || capacity < 2 ||
      (capacity & (capacity - 1)) !== 0
    ) {
      throw new RangeError(`not a ring buffer: ${buf.byteLength} bytes`);
    }
    this.capacity = capacity;
    this.counters = new Int32Array(buf, 0, 2);
    this.bytes = new Uint8Array(buf, HEADER_BYTES);
    this.view = new DataView(buf, HEADER_BYTES);
  }

  /** Records waiting to be read. */
  get pending(): number {
    return (Atomics.load(this.counters, WRITTEN) -
      Atomics.load(this.counters, READ)) >>> 0;
  }
}

/** The records a record with `bytes` extra bytes takes: 1 + its raw ones. */
export function recordsFor(bytes: number): number {
  return 1 + Math.ceil(bytes / RECORD_BYTES);
}

/** The writing side (one thread). */
export class RingWriter extends RingView {
  /** Records that can be written now. */
  get free(): number {
    return this.capacity - this.pending;
  }

  /**
   * Writes one record: `fill` gets a view of the record's RECORD_BYTES at
   * `offset` (zeroed). False when the ring is full (nothing written).
   */
  write(fill: (view: DataView, offset: number) => void): boolean {
    const written = Atomics.load(this.counters, WRITTEN);
    const read = Atomics.load(this.counters, READ);
    if (((written - read) >>> 0) >= this.capacity) return false;
    const at = ((written >>> 0) & (this.capacity - 1)) * RECORD_BYTES;
    this.bytes.fill(0, at, at + RECORD_BYTES);
    fill(this.view, at);
    // The store publishes the record: the reader loads the counter first.
    Atomics.store(this.counters, WRITTEN, (written + 1) | 0);
    return true;
  }

  /**
   * Writes one record, as write() does, followed by `bytes` in raw records
   * (the last one zero-padded), all or nothing: false when the ring has no
   * room for the whole run now. Throws a RangeError for a run that could
   * never fit (more records than the ring holds).
   */
  writeWithBytes(
    fill: (view: DataView, offset: number) => void,
    bytes: Uint8Array,
  ): boolean {
    const n = recordsFor(bytes.length);
    if (n > this.capacity) {
      throw new RangeError(
        `${bytes.length} bytes take ${n} records, the ring holds ${this.capacity}`,
      );
    }
    const written = Atomics.load(this.counters, WRITTEN);
    const read = Atomics.load(this.counters, READ);
    if (this.capacity - ((written - read) >>> 0) < n) return false;
    const mask = this.capacity - 1;
    const at = ((written >>> 0) & mask) * RECORD_BYTES;
    this.bytes.fill(0, at, at + RECORD_BYTES);
    fill(this.view, at);
    for (let i = 1, from = 0; i < n; i++, from += RECORD_BYTES) {
      const slot = (((written >>> 0) + i) & mask) * RECORD_BYTES;
      const part = bytes.subarray(from, from + RECORD_BYTES);
      this.bytes.set(part, slot);
      if (part.length < RECORD_BYTES) {
        this.bytes.fill(0, slot + part.length, slot + RECORD_BYTES);
      }
    }
    // One store publishes the whole run.
    Atomics.store(this.counters, WRITTEN, (written + n) | 0);
    return true;
  }
}

/** The reading side (one thread). */
export class RingReader extends RingView {
  /**
   * Hands each waiting record to `take` (a view and the record's offset in
   * it; valid only during the call), in order; returns how many.
   */
  drain(take: (view: DataView, offset: number) => void): number {
    const written = Atomics.load(this.counters, WRITTEN);
    let read = Atomics.load(this.counters, READ);
    let n = 0;
    while (((written - read) >>> 0) > 0) {
      const at = ((read >>> 0) & (this.capacity - 1)) * RECORD_BYTES;
      take(this.view, at);
      read = (read + 1) | 0;
      n++;
      // Frees the slot at once: a long drain does not hold the writer up.
      Atomics.store(this.counters, READ, read);
    }
    return n;
  }
}
