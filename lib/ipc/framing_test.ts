import { assert, assertEquals, assertRejects } from "../../tests/assert.ts";
import { FrameReader, FrameTooLarge, FrameWriter, putU32 } from "./framing.ts";

/** A stream that hands out its bytes in pieces of the given sizes. */
class Pieces {
  #off = 0;
  #i = 0;
  constructor(
    private readonly bytes: Uint8Array,
    private readonly sizes: number[],
  ) {}
  read(p: Uint8Array): Promise<number | null> {
    if (this.#off >= this.bytes.length) return Promise.resolve(null);
    const want = this.sizes[this.#i++ % this.sizes.length]!;
    const n = Math.min(want, p.length, this.bytes.length - this.#off);
    p.set(this.bytes.subarray(this.#off, this.#off + n));
    this.#off += n;
    return Promise.resolve(n);
  }
}

function frames(payloads: Uint8Array[]): Uint8Array {
  const total = payloads.reduce((n, p) => n + 4 + p.length, 0);
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of payloads) {
    putU32(out, off, p.length);
    out.set(p, off + 4);
    off += 4 + p.length;
  }
  return out;
}

function payload(i: number, len: number): Uint8Array {
  return Uint8Array.from({ length: len }, (_, j) => (i * 7 + j) & 0xff);
}

Deno.test("the reader reassembles frames split anywhere, and frames stay valid", async () => {
  const payloads = Array.from(
    { length: 200 },
    (_, i) => payload(i, (i * 37) % 1500),
  );
  for (const sizes of [[1], [3, 7], [4096], [65536], [5, 1, 100000]]) {
    const r = new FrameReader(new Pieces(frames(payloads), sizes), 2000, 8192);
    const got: Uint8Array[] = [];
    for (let f = await r.next(); f !== null; f = await r.next()) {
      got.push(f.subarray(4));
    }
    assertEquals(got.length, payloads.length);
    // Every frame handed out is intact after all the others were read.
    for (let i = 0; i < got.length; i++) {
      assertEquals(got[i], payloads[i], `frame ${i}`);
    }
  }
});

Deno.test("frames larger than the reader's chunk are whole, reused chunk or not", async () => {
  // Chunks of 64 bytes; frames up to 5000 bytes between small ones.
  const payloads = Array.from(
    { length: 60 },
    (_, i) => payload(i, i % 3 === 0 ? 10 + i * 80 : i % 50),
  );
  for (const reuse of [false, true]) {
    for (const sizes of [[1], [7, 300], [100000]]) {
      const r = new FrameReader(
        new Pieces(frames(payloads), sizes),
        5000,
        64,
        reuse,
      );
      for (let i = 0; i < payloads.length; i++) {
        const f = await r.next();
        assert(f !== null, `frame ${i} (reuse ${reuse}, reads ${sizes})`);
        assertEquals(f.subarray(4), payloads[i], `frame ${i}`);
      }
      assertEquals(await r.next(), null);
    }
  }
});

Deno.test("the reader refuses an oversized length and a stream cut inside a frame", async () => {
  const big = new Uint8Array(8);
  putU32(big, 0, 5000);
  const r = new FrameReader(new Pieces(big, [8]), 4096);
  await assertRejects(() => r.next(), /exceeds the limit/);
  const cut = frames([payload(1, 100)]).subarray(0, 50);
  const r2 = new FrameReader(new Pieces(cut, [10]), 4096);
  await assertRejects(() => r2.next(), /ended inside a frame/);
  assert(new FrameTooLarge(5, 4) instanceof Error);
});

/** A sink whose writes complete when the test lets them. */
class SlowSink {
  chunks: Uint8Array[] = [];
  #gate: (() => void)[] = [];
  hold = false;
  write(p: Uint8Array): Promise<number> {
    this.chunks.push(p.slice());
    if (!this.hold) return Promise.resolve(p.length);
    return new Promise((r) => this.#gate.push(() => r(p.length)));
  }
  release(): void {
    this.hold = false;
    for (const f of this.#gate.splice(0)) f();
  }
}

Deno.test("the writer batches frames behind a write in progress, in order", async () => {
  const sink = new SlowSink();
  const w = new FrameWriter(sink, 1 << 20);
  sink.hold = true;
  for (let i = 0; i < 50; i++) w.push(payload(i, 10 + i));
  sink.release();
  await w.flushed();
  // The first frame went alone; the 49 behind it went in one more write.
  assertEquals(sink.chunks.length, 2);
  const all = new Uint8Array(sink.chunks.reduce((n, c) => n + c.length, 0));
  let off = 0;
  for (const c of sink.chunks) {
    all.set(c, off);
    off += c.length;
  }
  assertEquals(
    all,
    frames(Array.from({ length: 50 }, (_, i) => payload(i, 10 + i))),
  );
});

Deno.test("a dropping writer drops and counts over its limit; a waiting one asks to wait", async () => {
  const sink = new SlowSink();
  sink.hold = true;
  const drop = new FrameWriter(sink, 1000, true);
  let queued = 0;
  for (let i = 0; i < 100; i++) if (drop.push(payload(i, 100))) queued++;
  assertEquals(queued + drop.dropped, 100);
  assert(drop.dropped > 80, `dropped ${drop.dropped}`);
  assert(drop.queued <= 1000 + 104);
  const wait = new FrameWriter(sink, 1000, false);
  let overs = 0;
  for (let i = 0; i < 20; i++) if (!wait.push(payload(i, 100))) overs++;
  assert(overs > 0);
  assertEquals(wait.dropped, 0);
  let drained = false;
  const d = wait.drained().then(() => drained = true);
  assertEquals(drained, false);
  sink.release();
  await d;
  await wait.flushed();
  drop.close();
  wait.close();
  assertEquals(wait.push(payload(0, 1)), false);
});

/**
 * A destination of the fast path: takes `room` bytes more (then nothing),
 * nothing while `full`; `writable()` resolves when told to.
 */
class NowSink {
  bytes: number[] = [];
  full = false;
  room = Infinity;
  asyncWrites = 0;
  #open: (() => void)[] = [];
  writeNow(p: Uint8Array): number {
    if (this.full) return 0;
    const n = Math.min(p.length, this.room);
    this.room -= n;
    for (let i = 0; i < n; i++) this.bytes.push(p[i]!);
    return n;
  }
  writable(): Promise<void> {
    return new Promise((r) => this.#open.push(r));
  }
  write(_p: Uint8Array): Promise<number> {
    this.asyncWrites++;
    return Promise.reject(new Error("a NowWriter is written through writeNow"));
  }
  open(): void {
    this.full = false;
    for (const r of this.#open.splice(0)) r();
  }
}

/** The payloads of the frames in `bytes`. */
function payloads(bytes: number[]): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < bytes.length;) {
    const len = (bytes[i]! << 24 | bytes[i + 1]! << 16 | bytes[i + 2]! << 8 |
      bytes[i + 3]!) >>> 0;
    out.push(bytes.slice(i + 4, i + 4 + len));
    i += 4 + len;
  }
  return out;
}

Deno.test("a writer of the fast path writes before push returns, waits for room in place, and flushNow takes over a waiting write", async () => {
  const sink = new NowSink();
  const w = new FrameWriter(sink, 1 << 20);
  w.push(Uint8Array.of(1, 2, 3));
  // Written at once, without a turn of the event loop.
  assertEquals(payloads(sink.bytes), [[1, 2, 3]]);
  assertEquals(w.queued, 0);

  // Full: the rest waits for writable(); frames pushed meanwhile queue
  // behind it, in order.
  sink.room = 5;
  w.push(Uint8Array.of(4, 5, 6, 7));
  sink.full = true;
  w.push(Uint8Array.of(8));
  // 3 of the 8 bytes of the second frame wait, and the third's 5.
  assertEquals(w.queued, 3 + 5);
  sink.room = Infinity;
  sink.open();
  await w.flushed();
  assertEquals(payloads(sink.bytes), [[1, 2, 3], [4, 5, 6, 7], [8]]);

  // flushNow: a write that waits is taken over on this thread, which
  // waits in the given function while the destination is full.
  sink.full = true;
  w.push(Uint8Array.of(9, 9));
  let waits = 0;
  w.flushNow(() => {
    if (++waits === 3) sink.full = false;
  });
  assertEquals(waits, 3);
  assertEquals(w.queued, 0);
  assertEquals(payloads(sink.bytes).at(-1), [9, 9]);
  sink.open(); // the async write that waited finds nothing left
  await w.flushed();
  assertEquals(payloads(sink.bytes).length, 4);
  assertEquals(sink.asyncWrites, 0);

  // An error of the destination closes the writer, and flushNow says it.
  const bad = new NowSink();
  const b = new FrameWriter(bad, 1 << 20);
  bad.full = true;
  b.push(Uint8Array.of(1));
  bad.writeNow = () => {
    throw new Error("EPIPE");
  };
  let e: unknown;
  try {
    b.flushNow(() => {});
  } catch (x) {
    e = x;
  }
  assert(e instanceof Error && e.message === "EPIPE", String(e));
  assert(b.closed);
  bad.open();
  await b.flushed();
});
