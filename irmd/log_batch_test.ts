import { assertEquals } from "../tests/assert.ts";
import { BatchedSink, FLUSH_HOPS } from "./log_batch.ts";

/** A sink that records each write it gets, taking at most `chunk` bytes. */
function recorder(chunk = Infinity) {
  const writes: string[] = [];
  const dec = new TextDecoder();
  return {
    writes,
    writeSync(p: Uint8Array): number {
      const n = Math.min(p.length, chunk);
      writes.push(dec.decode(p.subarray(0, n)));
      return n;
    },
    isTerminal: () => false,
  };
}

const enc = new TextEncoder();

Deno.test("batched log: a task's lines leave in one write, in order, once its promise steps are done", async () => {
  const out = recorder();
  const sink = new BatchedSink(out);
  const order: string[] = [];
  sink.writeSync(enc.encode("one\n"));
  sink.writeSync(enc.encode("two\n"));
  assertEquals(out.writes, []);
  // What the task does a few promise steps later (a reply) comes first.
  void Promise.resolve().then(() => order.push("reply"));
  await new Promise<void>((r) => setTimeout(r, 0));
  order.push(...out.writes);
  assertEquals(order, ["reply", "one\ntwo\n"]);
  assertEquals(sink.pending, 0);
  // The next task's lines are a write of their own.
  sink.writeSync(enc.encode("three\n"));
  await new Promise<void>((r) => setTimeout(r, 0));
  assertEquals(out.writes, ["one\ntwo\n", "three\n"]);
});

Deno.test("batched log: written after FLUSH_HOPS microtask turns, not before", async () => {
  const out = recorder();
  const sink = new BatchedSink(out);
  sink.writeSync(enc.encode("line\n"));
  for (let i = 0; i < FLUSH_HOPS - 1; i++) await Promise.resolve();
  assertEquals(out.writes, []);
  for (let i = 0; i < 3; i++) await Promise.resolve();
  assertEquals(out.writes, ["line\n"]);
});

Deno.test("batched log: flush() writes at once, however short the output's writes, and a broken output is ignored", () => {
  const out = recorder(3);
  const sink = new BatchedSink(out);
  const long = "x".repeat(10_000) + "\n";
  sink.writeSync(enc.encode(long));
  sink.writeSync(enc.encode("end\n"));
  sink.flush();
  assertEquals(out.writes.join(""), long + "end\n");
  const broken = new BatchedSink({
    writeSync: () => {
      throw new Error("broken pipe");
    },
    isTerminal: () => false,
  });
  broken.writeSync(enc.encode("lost\n"));
  broken.flush();
  assertEquals(broken.pending, 0);
});
