/**
 * The synchronous calls of fast-path flows (dev.ts: readSync, writeSync,
 * Flow.readySync): the program's thread waits in poll(2) itself, while the
 * relay Worker of test_pair.ts plays the IPCP. Raw and FRCT flows, read
 * timeouts, the end of a flow, mixing with the asynchronous calls, and a
 * full connection waited out.
 */
import { assert, assertEquals } from "../../tests/assert.ts";
import { within } from "../../tests/deadline.ts";
import { OuroborosError } from "../util/errors.ts";
import { QOS_CUBES } from "../wire/udp_wire.ts";
import { Flow } from "./dev.ts";
import { grant, pair } from "./test_pair.ts";

const DEADLINE_MS = 30_000;

const idOf = (m: Uint8Array) =>
  new DataView(m.buffer, m.byteOffset).getUint32(0);

function packet(i: number, size = 100): Uint8Array {
  const p = new Uint8Array(size);
  new DataView(p.buffer).setUint32(0, i);
  return p;
}

Deno.test("sync flows: a ping-pong on one thread, readySync on the echo side, readSync with a deadline on the other", async () => {
  const p = pair(QOS_CUBES.raw);
  await within(p.ready, DEADLINE_MS, "the relay");
  const N = 300;
  for (let i = 0; i < N; i++) {
    p.a.writeSync(packet(i));
    const ready = Flow.readySync([p.b], DEADLINE_MS);
    assertEquals(ready, [p.b], `ping ${i} arrived`);
    const m = p.b.readSync(0);
    assert(m !== undefined, `ping ${i} read`);
    p.b.writeSync(m);
    const r = p.a.readSync(DEADLINE_MS);
    assert(r !== undefined, `reply ${i}`);
    assertEquals(idOf(r), i);
  }
  // Nothing more: a short wait comes back empty, at its deadline.
  const t0 = performance.now();
  assertEquals(p.a.readSync(30), undefined);
  assert(performance.now() - t0 >= 29, "not before its deadline");
  assertEquals(Flow.readySync([p.a, p.b], 0), []);
  // The asynchronous calls still work on the same flows, in between.
  await p.a.write(packet(7));
  const m = await within(p.b.read(), DEADLINE_MS, "an asynchronous read");
  assertEquals(idOf(m), 7);
  await p.a.close(0);
  await p.b.close(0);
  const report = await within(p.relay, DEADLINE_MS, "the relay");
  assertEquals(report.moved, 2 * N + 1);
});

Deno.test("sync flows: bursts written synchronously arrive whole and in order; readySync names only the flows that have packets", async () => {
  const p = pair(QOS_CUBES.raw);
  await within(p.ready, DEADLINE_MS, "the relay");
  const N = 2000;
  const got: number[] = [];
  const take = (ms: number) => {
    for (const f of Flow.readySync([p.a, p.b], ms)) {
      assertEquals(f, p.b, "only b has packets");
      for (let m = f.readSync(0); m !== undefined; m = f.readSync(0)) {
        got.push(idOf(m));
      }
    }
  };
  // Bursts of 100 packets of 1,000 bytes, each written whole before any
  // of it is read, then read whole.
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    p.a.writeSync(packet(i, 1000));
    if (i % 100 !== 99) continue;
    while (got.length <= i && performance.now() - t0 < DEADLINE_MS) {
      take(1000);
    }
  }
  assertEquals(got, Array.from({ length: N }, (_, i) => i));
  assertEquals(Flow.readySync([p.a, p.b], 0), []);
  p.stop();
  await within(p.relay, DEADLINE_MS, "the relay");
});

Deno.test("sync flows: FRCT through a relay that drops every 9th packet delivers everything in order; its timers run inside the waits", async () => {
  const p = pair(QOS_CUBES.data, 9);
  await within(p.ready, DEADLINE_MS, "the relay");
  const N = 1000;
  const got: number[] = [];
  const take = () => {
    for (const f of Flow.readySync([p.a, p.b], 50)) {
      if (f !== p.b) continue;
      for (let m = f.readSync(0); m !== undefined; m = f.readSync(0)) {
        got.push(idOf(m));
      }
    }
  };
  // Only synchronous waits: retransmissions come from a's timers and its
  // acknowledgements from b, both run by readySync (no event-loop timer
  // gets a turn). Batches of 8, each delivered before the next is sent.
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    p.a.writeSync(packet(i, 500));
    if (i % 8 !== 7) continue;
    while (got.length <= i && performance.now() - t0 < DEADLINE_MS) take();
  }
  assertEquals(got, Array.from({ length: N }, (_, i) => i));
  const s = p.a.stats;
  assert(s !== undefined && s.retransmitted > 0, "the sender retransmitted");
  await p.a.close(2000);
  await p.b.close(0);
  const report = await within(p.relay, DEADLINE_MS, "the relay");
  assert(report.dropped > 0, "the relay dropped packets");
});

Deno.test("sync flows: the IPCP going away ends them (readSync, writeSync and readySync say so); asynchronous flows refuse the calls", async () => {
  const p = pair(QOS_CUBES.raw);
  await within(p.ready, DEADLINE_MS, "the relay");
  p.a.writeSync(packet(1));
  const m = p.b.readSync(DEADLINE_MS);
  assert(m !== undefined && idOf(m) === 1);
  p.stop();
  await within(p.relay, DEADLINE_MS, "the relay");
  // The end is seen by a synchronous wait, without the event loop.
  const ready = Flow.readySync([p.a], DEADLINE_MS);
  assertEquals(ready, [p.a]);
  for (const f of [p.a, p.b]) {
    let e: unknown;
    try {
      f.readSync(DEADLINE_MS);
    } catch (x) {
      e = x;
    }
    assert(e instanceof OuroborosError && e.code === "flow_down", String(e));
    assertEquals(f.isOpen, false);
    let w: unknown;
    try {
      f.writeSync(packet(2));
    } catch (x) {
      w = x;
    }
    assert(w instanceof OuroborosError && w.code === "flow_down", String(w));
  }
  // A flow on Deno's asynchronous sockets has no synchronous calls.
  const asyncFlow = new Flow(
    0,
    grant(QOS_CUBES.raw),
    {
      read: () => Promise.resolve(null),
      write: (b: Uint8Array) => Promise.resolve(b.length),
      close: () => {},
    },
    new Uint8Array(20),
    () => {},
  );
  for (
    const call of [
      () => asyncFlow.readSync(0),
      () => asyncFlow.writeSync(packet(3)),
      () => Flow.readySync([asyncFlow], 0),
    ]
  ) {
    let e: unknown;
    try {
      call();
    } catch (x) {
      e = x;
    }
    assert(e instanceof OuroborosError && e.code === "invalid", String(e));
  }
  await asyncFlow.close(0);
});
