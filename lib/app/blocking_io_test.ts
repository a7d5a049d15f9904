/**
 * The fast path of flows (blocking_io.ts): two flows of this process, each
 * on one end of a socket pair, with a Worker between them playing the IPCP
 * (test_relay.ts), which may drop packets. Raw and FRCT flows, blocking and
 * asynchronous ends mixed, the end of a flow, read timeouts, and the
 * reactor's promise that a woken flow's next write is not left waiting
 * while poll(2) sleeps.
 */
import { assert, assertEquals } from "../../tests/assert.ts";
import { within } from "../../tests/deadline.ts";
import {
  closeFd,
  EAGAIN,
  POLLIN,
  socketPair,
  unixConnect,
  unixListen,
  unwrap,
} from "../sys/mod.ts";
import { newFds, watchedFds } from "../sys/testing.ts";
import { OuroborosError } from "../util/errors.ts";
import { QOS_CUBES } from "../wire/udp_wire.ts";
import {
  defaultReactor,
  IO_TURN_MS,
  StreamError,
  SysStream,
} from "./blocking_io.ts";
import type { Flow } from "./dev.ts";
import { pair } from "./test_pair.ts";

const DEADLINE_MS = 30_000;

Deno.test("blocking flows: raw packets both ways, the reactor stops when no flow waits", async () => {
  const before = watchedFds();
  const p = pair(QOS_CUBES.raw);
  const N = 300;
  const echo = (async () => {
    for (let i = 0; i < N; i++) {
      const m = await p.b.read({ timeoutMs: DEADLINE_MS });
      await p.b.write(m);
    }
  })();
  const pkt = new Uint8Array(100);
  for (let i = 0; i < N; i++) {
    new DataView(pkt.buffer).setUint32(0, i);
    await p.a.write(pkt);
    const r = await within(p.a.read(), DEADLINE_MS, `reply ${i}`);
    assertEquals(new DataView(r.buffer, r.byteOffset).getUint32(0), i);
  }
  await within(echo, DEADLINE_MS, "the echo side");
  assertEquals(p.a.io, "blocking");
  await p.a.close(0);
  await p.b.close(0);
  const report = await within(p.relay, DEADLINE_MS, "the relay");
  assertEquals(report.moved, 2 * N);
  await within(
    (async () => {
      while (defaultReactor.running) await new Promise((r) => setTimeout(r, 5));
    })(),
    DEADLINE_MS,
    "the reactor's end",
  );
  // Sockets: the flows' and the relay's ends (a Worker's runtime keeps an
  // eventfd and an epoll instance for the next Worker).
  await within(
    (async () => {
      while (newFds(before).some((d) => d.includes("socket:"))) {
        await new Promise((r) => setTimeout(r, 10));
      }
    })(),
    DEADLINE_MS,
    `no socket left open (${newFds(before).join(", ")})`,
  );
});

Deno.test("blocking flows: a woken flow's reply leaves before poll(2) sleeps, also through a deep chain of awaits", async () => {
  const p = pair(QOS_CUBES.raw);
  const N = 400;
  // Each side reaches its write through several async layers, as a tool's
  // loop does (its read helper, the flow's read, its own bookkeeping).
  const deep = async (f: Flow, depth: number): Promise<Uint8Array> => {
    if (depth === 0) return await f.read();
    const m = await deep(f, depth - 1);
    await null;
    return m;
  };
  const echo = (async () => {
    for (let i = 0; i < N; i++) await p.b.write(await deep(p.b, 6));
  })();
  const lateBefore = defaultReactor.lateWrites;
  const pkt = new Uint8Array(64);
  for (let i = 0; i < N; i++) {
    await p.a.write(pkt);
    await within(deep(p.a, 6), DEADLINE_MS, `reply ${i}`);
  }
  await within(echo, DEADLINE_MS, "the echo side");
  // A write that was on its way when poll slept would be counted: none is.
  assertEquals(defaultReactor.lateWrites - lateBefore, 0);
  await p.a.close(0);
  await p.b.close(0);
  await within(p.relay, DEADLINE_MS, "the relay");
});

Deno.test("blocking flows: FRCT delivers everything in order through a relay that drops every 9th packet", async () => {
  const p = pair(QOS_CUBES.data, 9);
  const N = 2000;
  const got: number[] = [];
  const reader = (async () => {
    while (got.length < N) {
      const m = await p.b.read({ timeoutMs: DEADLINE_MS });
      got.push(new DataView(m.buffer, m.byteOffset).getUint32(0));
    }
  })();
  const pkt = new Uint8Array(500);
  for (let i = 0; i < N; i++) {
    new DataView(pkt.buffer).setUint32(0, i);
    await p.a.write(pkt);
  }
  await within(reader, DEADLINE_MS, "every packet");
  assertEquals(got, Array.from({ length: N }, (_, i) => i));
  const s = p.a.stats;
  assert(s !== undefined && s.retransmitted > 0, "the sender retransmitted");
  await p.a.close(2000);
  await p.b.close(0);
  const report = await within(p.relay, DEADLINE_MS, "the relay");
  assert(report.dropped > 0, "the relay dropped packets");
});

Deno.test("blocking flows: a read times out at its deadline; the IPCP going away ends the flow", async () => {
  const p = pair(QOS_CUBES.raw);
  const t0 = performance.now();
  const e1 = await within(
    p.a.read({ timeoutMs: 50 }).then(() => undefined, (e) => e),
    DEADLINE_MS,
    "the timed read",
  );
  assert(e1 instanceof OuroborosError && e1.code === "timed_out", String(e1));
  const took = performance.now() - t0;
  assert(took >= 50, "not before its deadline");
  // Nor much after it: the reactor never sleeps past a flow's deadline
  // (the bound leaves room for a loaded machine, not for a timer left to
  // wait for one of Deno's occasional looks at its sockets).
  assert(took < 50 + IO_TURN_MS + 500, `timed out after ${took} ms`);
  // The relay stops: it closes both sides, and each flow goes down.
  p.stop();
  const report = await within(p.relay, DEADLINE_MS, "the relay");
  assertEquals(report.why, "stopped");
  for (const f of [p.a, p.b]) {
    const e = await within(
      f.read().then(() => undefined, (e) => e),
      DEADLINE_MS,
      "the read of a flow whose IPCP went away",
    );
    assert(e instanceof OuroborosError && e.code === "flow_down", String(e));
    assertEquals(f.isOpen, false);
  }
});

Deno.test("blocking streams: one reader waits at a time; a full backlog is waited out without blocking the thread, then refused", async () => {
  const [x, y] = unwrap(socketPair());
  const s = SysStream.adopt(x);
  const first = defaultReactor.wait(s, POLLIN);
  const second = await defaultReactor.wait(s, POLLIN).then(
    () => undefined,
    (e) => e,
  );
  assert(second instanceof Error && /another read/.test(second.message));
  s.close();
  await within(first, DEADLINE_MS, "a closed stream's waiter");
  closeFd(y);

  // A listener that never accepts, its backlog full.
  const dir = await Deno.makeTempDir({ prefix: "o7s-blocking-" });
  const path = `${dir}/full.sock`;
  const l = unwrap(unixListen(path, 0));
  const queued: number[] = [];
  try {
    for (let i = 0; i < 64; i++) {
      const c = unixConnect(path, { nonBlocking: true });
      if (!c.ok) {
        assertEquals(c.errno, EAGAIN, `connect ${i}: ${c.name}`);
        break;
      }
      queued.push(c.value);
    }
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 10);
    const t0 = performance.now();
    const e = await within(
      SysStream.connect(path, defaultReactor, 300).then(
        () => undefined,
        (e) => e,
      ),
      DEADLINE_MS,
      "a connect to a full backlog",
    );
    clearInterval(ticker);
    assert(e instanceof StreamError && e.failure.errno === EAGAIN, String(e));
    assert(performance.now() - t0 >= 300, "it waited for the backlog");
    assert(ticks >= 5, `the event loop ran meanwhile (${ticks} ticks)`);
  } finally {
    for (const c of queued) closeFd(c);
    closeFd(l);
    await Deno.remove(dir, { recursive: true });
  }
});
