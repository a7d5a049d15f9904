/**
 * The benchmark's measuring client, an application on lib/app/dev.ts. Run as
 * its own process against a node (OUROBOROS_RUNDIR or --rundir):
 *
 *   client.ts alloc --name N [--count 1000] [--echo]
 *     sequential allocations and deallocations, after ALLOC_WARMUP untimed
 *     ones; one JSON line with every allocation's and deallocation's latency
 *     in ms. With --echo, each flow carries one 64-byte echo request to an
 *     `oping -l` server and its reply before it is deallocated (untimed in
 *     the allocation's latency; the round trips are in echoMs).
 *   client.ts scale --name N --flows F [--ms 2000] [--count N]
 *     allocates F flows to an `oping -l` server, then keeps one 64-byte echo
 *     request outstanding on every flow for T ms (or N round trips in all);
 *     one JSON line with the round trips/s and every RTT in ms. With --sync,
 *     the flows take the fast path and one loop on this thread serves them
 *     all with the synchronous calls (Flow.readySync, readSync, writeSync),
 *     as `oping -l --poll` serves its flows.
 */
import { Flow, Ouroboros } from "../lib/app/dev.ts";
import {
  decodeOping,
  ECHO_REPLY,
  ECHO_REQUEST,
  encodeOping,
  newOpingPacket,
} from "../lib/wire/oping_msg.ts";
import { msToTimespec, timespecToMs } from "../tools/oping.ts";
import { eventLoopTurn, SYNC_TURN_MS } from "../tools/cli.ts";

interface Args {
  mode: string;
  name: string;
  count: number;
  flows: number;
  ms: number;
  echo: boolean;
  sync: boolean;
  rundir: string | undefined;
}

function parse(argv: string[]): Args {
  const a: Args = {
    mode: argv[0] ?? "",
    name: "oping-server",
    count: Infinity,
    flows: 1,
    ms: 2000,
    echo: false,
    sync: false,
    rundir: undefined,
  };
  for (let i = 1; i < argv.length; i += 2) {
    if (argv[i] === "--echo" || argv[i] === "--sync") {
      if (argv[i] === "--echo") a.echo = true;
      else a.sync = true;
      i--;
      continue;
    }
    const v = argv[i + 1] ?? "";
    switch (argv[i]) {
      case "--name":
        a.name = v;
        break;
      case "--count":
        a.count = Number(v);
        break;
      case "--flows":
        a.flows = Number(v);
        break;
      case "--ms":
        a.ms = Number(v);
        break;
      case "--rundir":
        a.rundir = v;
        break;
      default:
        throw new Error(`client: unknown argument ${argv[i]}`);
    }
  }
  return a;
}

const round = (x: number) => Math.round(x * 1e4) / 1e4;

/** Allocations made before the timed ones (the first few take 3 to 7 ms). */
export const ALLOC_WARMUP = 20;

/**
 * One 64-byte echo request on `flow` and its reply: the round trip in ms,
 * or undefined if no reply came within 2 s.
 */
async function echoOnce(
  flow: Flow,
  pkt: Uint8Array,
): Promise<number | undefined> {
  const t0 = performance.now();
  const { sec, nsec } = msToTimespec(t0);
  encodeOping(pkt, { type: ECHO_REQUEST, id: 0, sec, nsec });
  await flow.write(pkt);
  for (;;) {
    let reply: Uint8Array;
    try {
      reply = await flow.read({ timeoutMs: 2000 });
    } catch {
      return undefined;
    }
    const m = decodeOping(reply);
    if (m.ok && m.value.type === ECHO_REPLY && m.value.id === 0) {
      return performance.now() - t0;
    }
  }
}

async function alloc(node: Ouroboros, a: Args): Promise<unknown> {
  if (!Number.isFinite(a.count)) a.count = 1000;
  const allocMs: number[] = [];
  const deallocMs: number[] = [];
  const echoMs: number[] = [];
  let failures = 0;
  let echoFailures = 0;
  const pkt = newOpingPacket(64);
  // Untimed allocations first: the code paths of all the processes involved
  // (this one, both irmds, both IPCPs, the server) are compiled by then.
  for (let i = 0; i < ALLOC_WARMUP; i++) {
    const flow = await node.allocate(a.name, { timeoutMs: 5000 });
    if (a.echo) await echoOnce(flow, pkt);
    await flow.close(0);
  }
  for (let i = 0; i < a.count; i++) {
    const t0 = performance.now();
    let flow: Flow;
    try {
      flow = await node.allocate(a.name, { timeoutMs: 5000 });
    } catch {
      failures++;
      continue;
    }
    const t1 = performance.now();
    if (a.echo) {
      const rtt = await echoOnce(flow, pkt);
      if (rtt === undefined) echoFailures++;
      else echoMs.push(round(rtt));
    }
    const t2 = performance.now();
    await flow.close(0);
    const t3 = performance.now();
    allocMs.push(round(t1 - t0));
    deallocMs.push(round(t3 - t2));
  }
  return a.echo
    ? { count: a.count, failures, allocMs, deallocMs, echoMs, echoFailures }
    : { count: a.count, failures, allocMs, deallocMs };
}

/** A scaling run's JSON line, once its flows are closed. */
async function scaleResult(
  flows: Flow[],
  r: {
    total: number;
    lost: number;
    rtts: number[];
    start: number;
    warmUntil: number;
    end: number;
  },
): Promise<unknown> {
  const measured = Math.min(performance.now(), r.end) -
    Math.max(r.start, r.warmUntil);
  await Promise.all(flows.map((f) => f.close(0)));
  return {
    flows: flows.length,
    roundTrips: r.total,
    lost: r.lost,
    elapsedMs: measured,
    rtPerSec: r.total / (measured / 1000),
    rttMs: r.rtts,
  };
}

/**
 * `scale --sync`: every flow on the fast path, one loop serving them all
 * on this thread: it waits in one poll(2) for any reply, records it and
 * sends that flow's next request at once; a flow without its reply for 1 s
 * counts one lost and sends its next. The event loop gets a whole turn
 * every SYNC_TURN_MS.
 */
async function scaleSync(node: Ouroboros, a: Args): Promise<unknown> {
  const flows: Flow[] = [];
  for (let i = 0; i < a.flows; i++) {
    flows.push(
      await node.allocate(a.name, { timeoutMs: 5000, io: "blocking" }),
    );
  }
  const rtts: number[] = [];
  let total = 0;
  let lost = 0;
  const warmUntil = performance.now() + 300;
  const end = warmUntil + a.ms;
  const state = new Map(
    flows.map((f) => [f, { pkt: newOpingPacket(64), seq: 0, sentAt: 0 }]),
  );
  // Flows that went down: no longer served.
  const down = new Set<Flow>();
  const send = (f: Flow, now: number) => {
    const s = state.get(f)!;
    const { sec, nsec } = msToTimespec(now);
    encodeOping(s.pkt, { type: ECHO_REQUEST, id: s.seq, sec, nsec });
    s.sentAt = now;
    try {
      f.writeSync(s.pkt);
    } catch {
      down.add(f);
    }
  };
  const start = performance.now();
  for (const f of flows) send(f, start);
  let lastTurn = start;
  let open = flows.filter((f) => !down.has(f));
  while (open.length > 0) {
    let now = performance.now();
    if (now >= end || total >= a.count) break;
    const ready = Flow.readySync(open, Math.min(SYNC_TURN_MS, end - now));
    now = performance.now();
    for (const f of ready) {
      const s = state.get(f)!;
      try {
        for (let m = f.readSync(0); m !== undefined; m = f.readSync(0)) {
          const r = decodeOping(m);
          // Replies to this flow's earlier (timed-out) requests are skipped.
          if (!r.ok || r.value.type !== ECHO_REPLY || r.value.id !== s.seq) {
            continue;
          }
          if (now >= warmUntil && now < end) {
            rtts.push(round(now - timespecToMs(r.value.sec, r.value.nsec)));
            total++;
          }
          s.seq++;
          send(f, now);
        }
      } catch {
        down.add(f);
      }
    }
    for (const f of open) {
      const s = state.get(f)!;
      if (now - s.sentAt >= 1000) {
        lost++;
        s.seq++;
        send(f, now);
      }
    }
    if (down.size > 0) open = open.filter((f) => !down.has(f));
    if (now - lastTurn >= SYNC_TURN_MS) {
      await eventLoopTurn();
      lastTurn = performance.now();
    }
  }
  return await scaleResult(flows, { total, lost, rtts, start, warmUntil, end });
}

async function scale(node: Ouroboros, a: Args): Promise<unknown> {
  const flows: Flow[] = [];
  for (let i = 0; i < a.flows; i++) {
    flows.push(await node.allocate(a.name, { timeoutMs: 5000 }));
  }
  const rtts: number[] = [];
  let total = 0;
  let lost = 0;
  let measuring = false;
  const warmUntil = performance.now() + 300;
  const end = warmUntil + a.ms;
  const one = async (flow: Flow) => {
    const pkt = newOpingPacket(64);
    let seq = 0;
    for (;;) {
      const now = performance.now();
      if (now >= end || total >= a.count) return;
      if (!measuring && now >= warmUntil) measuring = true;
      const { sec, nsec } = msToTimespec(now);
      encodeOping(pkt, { type: ECHO_REQUEST, id: seq, sec, nsec });
      await flow.write(pkt);
      // Replies to this flow's earlier (timed-out) requests are skipped.
      for (;;) {
        let reply: Uint8Array;
        try {
          reply = await flow.read({ timeoutMs: 1000 });
        } catch {
          lost++;
          break;
        }
        const m = decodeOping(reply);
        if (!m.ok || m.value.type !== ECHO_REPLY || m.value.id !== seq) {
          continue;
        }
        const t = performance.now();
        if (measuring && t < end) {
          rtts.push(round(t - timespecToMs(m.value.sec, m.value.nsec)));
          total++;
        }
        break;
      }
      seq++;
    }
  };
  const start = performance.now();
  await Promise.all(flows.map(one));
  return await scaleResult(flows, { total, lost, rtts, start, warmUntil, end });
}

if (import.meta.main) {
  const a = parse(Deno.args);
  const node = await Ouroboros.connect({
    prog: "bench-client",
    ...(a.rundir === undefined ? {} : { rundir: a.rundir }),
  });
  try {
    const run = a.mode === "alloc"
      ? alloc
      : a.mode === "scale"
      ? (a.sync ? scaleSync : scale)
      : null;
    if (run === null) throw new Error("client: mode is alloc or scale");
    console.log(JSON.stringify(await run(node, a)));
  } finally {
    await node.close();
  }
}
