import { assert, assertEquals, assertMatch, unwrap } from "../tests/assert.ts";
import { OuroborosError } from "../lib/util/errors.ts";
import {
  decodeOping,
  ECHO_REPLY,
  ECHO_REQUEST,
  encodeOping,
  newOpingPacket,
} from "../lib/wire/oping_msg.ts";
import {
  addRtt,
  countForDuration,
  defaultOptions,
  echoReply,
  formatHeader,
  formatReplyLine,
  formatRtt,
  formatStatistics,
  formatTimeofday,
  lossPercent,
  main,
  msToTimespec,
  newRttStats,
  type OpingOptions,
  type PacketFlow,
  parseOpingArgs,
  parseTime,
  PingTracker,
  rttMdev,
  runPings,
  serveFlow,
  SyncEchoServer,
  timespecToMs,
} from "./oping.ts";
import { Flow } from "../lib/app/dev.ts";
import { pair } from "../lib/app/test_pair.ts";
import { within } from "../tests/deadline.ts";
import { QOS_CUBES } from "../lib/wire/udp_wire.ts";
import { reason } from "./cli.ts";

function parseErr(args: string[]): string {
  const r = parseOpingArgs(args);
  if (r.ok) throw new Error(`expected ${args.join(" ")} to fail`);
  return r.error;
}

// ---------------------------------------------------------------------------
// Option parsing

Deno.test("oping args: defaults for a client", () => {
  const o = unwrap(parseOpingArgs(["-n", "oping-server"]));
  assertEquals(o, { ...defaultOptions(), serverName: "oping-server" });
  assertEquals(o.count, undefined);
  assertEquals(o.intervalMs, 1000);
  assertEquals(o.size, 64);
  assertEquals(o.qos, "raw");
});

Deno.test("oping args: server needs no name", () => {
  const o = unwrap(parseOpingArgs(["-l"]));
  assert(o.listen);
  assertEquals(unwrap(parseOpingArgs(["--listen", "-Q"])).quiet, true);
});

Deno.test("oping args: every short option", () => {
  const o = unwrap(parseOpingArgs([
    "-n",
    "srv",
    "-c",
    "5",
    "-i",
    "200ms",
    "-s",
    "1500",
    "-f",
    "-q",
    "voice",
    "-Q",
    "-D",
  ]));
  assertEquals(o, {
    ...defaultOptions(),
    serverName: "srv",
    count: 5,
    intervalMs: 200,
    size: 1500,
    flood: true,
    qos: "voice",
    quiet: true,
    timeofday: true,
  });
});

Deno.test("oping args: every long option, both forms", () => {
  const spaced = unwrap(parseOpingArgs([
    "--server-name",
    "srv",
    "--count",
    "7",
    "--interval",
    "2s",
    "--size",
    "100",
    "--flood",
    "--qos",
    "data",
    "--quiet",
    "--timeofday",
    "--rundir",
    "/tmp/x",
  ]));
  const eq = unwrap(parseOpingArgs([
    "--server-name=srv",
    "--count=7",
    "--interval=2s",
    "--size=100",
    "--flood",
    "--qos=data",
    "--quiet",
    "--timeofday",
    "--rundir=/tmp/x",
  ]));
  const expected: OpingOptions = {
    ...defaultOptions(),
    serverName: "srv",
    count: 7,
    intervalMs: 2000,
    size: 100,
    flood: true,
    qos: "data",
    quiet: true,
    timeofday: true,
    rundir: "/tmp/x",
  };
  assertEquals(spaced, expected);
  assertEquals(eq, expected);
});

Deno.test("oping args: duration sets the count, overriding -c", () => {
  const o = unwrap(parseOpingArgs(["-n", "s", "-d", "10s"]));
  assertEquals(o.durationMs, 10_000);
  assertEquals(o.count, 10);
  assertEquals(
    unwrap(parseOpingArgs(["-n", "s", "-d", "1m", "-i", "500"])).count,
    120,
  );
  assertEquals(
    unwrap(parseOpingArgs(["-d", "3s", "-c", "100", "-n", "s"])).count,
    3,
  );
  assertEquals(
    unwrap(parseOpingArgs(["--duration=100ms", "-n", "s"])).count,
    1,
  );
  assertEquals(countForDuration(2500, 1000), 2);
  assertEquals(countForDuration(10, 1000), 1);
});

Deno.test("oping args: help", () => {
  assert(unwrap(parseOpingArgs(["-h"])).help);
  assert(unwrap(parseOpingArgs(["--help"])).help);
  // No name needed for help.
  assert(unwrap(parseOpingArgs(["-c", "3", "--help"])).help);
});

Deno.test("oping args: errors", () => {
  assertMatch(parseErr([]), /no server specified/);
  assertMatch(parseErr(["-n"]), /-n needs a value/);
  assertMatch(parseErr(["--count"]), /--count needs a value/);
  assertMatch(parseErr(["-n", "s", "-x"]), /unknown option "-x"/);
  assertMatch(parseErr(["-n", "s", "--bogus=1"]), /unknown option "--bogus=1"/);
  assertMatch(parseErr(["-n", "s", "extra"]), /unexpected argument "extra"/);
  assertMatch(parseErr(["-n", "s", "-c", "0"]), /-c: 0 is out of range/);
  assertMatch(parseErr(["-n", "s", "-c", "-3"]), /not a whole number/);
  assertMatch(parseErr(["-n", "s", "-c", "2.5"]), /not a whole number/);
  assertMatch(parseErr(["-n", "s", "--count=abc"]), /--count: "abc"/);
  assertMatch(parseErr(["-n", "s", "-s", "63"]), /out of range \(64-1500\)/);
  assertMatch(parseErr(["-n", "s", "--size=1501"]), /out of range/);
  assertMatch(parseErr(["-n", "s", "-i", "11s"]), /at most 10 s/);
  // -i 0 is accepted: back to back.
  assertEquals(unwrap(parseOpingArgs(["-n", "s", "-i", "0"])).intervalMs, 0);
  assertMatch(parseErr(["-n", "s", "-i", "1w"]), /invalid time "1w"/);
  assertMatch(parseErr(["-n", "s", "-d", "0s"]), /above 0/);
  assertMatch(parseErr(["-n", "s", "-d", "soon"]), /invalid time/);
  assertMatch(parseErr(["-n", "s", "-q", "gold"]), /unknown QoS cube "gold"/);
  assertMatch(parseErr(["-n", "s", "--flood=yes"]), /--flood takes no value/);
  assertMatch(parseErr(["--server-name="]), /name is empty/);
  // Options are case-sensitive: -q is QoS, -Q quiet.
  assertMatch(parseErr(["-n", "s", "-q"]), /-q needs a value/);
  for (const e of [parseErr(["-x"]), parseErr(["-n", "s", "-s", "9"])]) {
    assert(!e.includes("\n"), "errors are one line");
  }
});

Deno.test("oping times: units and bare numbers", () => {
  assertEquals(unwrap(parseTime("250")), 250);
  assertEquals(unwrap(parseTime("250ms")), 250);
  assertEquals(unwrap(parseTime("2s")), 2000);
  assertEquals(unwrap(parseTime("1.5s")), 1500);
  assertEquals(unwrap(parseTime(".5s")), 500);
  assertEquals(unwrap(parseTime("0.5")), 0.5);
  assertEquals(unwrap(parseTime("2m")), 120_000);
  assertEquals(unwrap(parseTime("1h")), 3_600_000);
  assertEquals(unwrap(parseTime("1d")), 86_400_000);
  for (const bad of ["", "s", "-1", "1x", "1 s", "1e3", "1.", "ms5"]) {
    assert(!parseTime(bad).ok, `"${bad}" should fail`);
  }
});

// ---------------------------------------------------------------------------
// Formatting

Deno.test("oping format: rtt ms/µs boundary", () => {
  assertEquals(formatRtt(0.53), "0.530 ms");
  assertEquals(formatRtt(0.1), "0.100 ms");
  assertEquals(formatRtt(0.0999), "99.900 µs");
  assertEquals(formatRtt(0.05), "50.000 µs");
  assertEquals(formatRtt(0), "0.000 µs");
  assertEquals(formatRtt(1234.5678), "1234.568 ms");
});

Deno.test("oping format: header, reply lines, time of day", () => {
  assertEquals(
    formatHeader("oping-server", 64, 1),
    "Pinging oping-server with 64 bytes of data (1 packets):",
  );
  assertEquals(
    formatHeader("oping-server", 1500, undefined),
    "Pinging oping-server with 1500 bytes of data (unlimited):",
  );
  assertEquals(
    formatReplyLine({
      bytes: 64,
      name: "oping-server",
      seq: 0,
      rttMs: 0.53,
      outOfOrder: false,
    }),
    "64 bytes from oping-server: seq=0 time=0.530 ms",
  );
  assertEquals(
    formatReplyLine({
      bytes: 64,
      name: "srv",
      seq: 3,
      rttMs: 0.042,
      outOfOrder: true,
      timeofdayMs: 1_700_000_000_123.5,
    }),
    "[1700000000.123500] 64 bytes from srv: seq=3 time=42.000 µs [out-of-order]",
  );
  assertEquals(formatTimeofday(5), "[0.005000] ");
  assertEquals(formatTimeofday(1000), "[1.000000] ");
});

// ---------------------------------------------------------------------------
// Statistics

Deno.test("oping stats: mdev is the sample standard deviation", () => {
  const s = newRttStats();
  assert(Number.isNaN(rttMdev(s)));
  addRtt(s, 1);
  assert(Number.isNaN(rttMdev(s)), "NaN for one sample");
  addRtt(s, 2);
  addRtt(s, 3);
  addRtt(s, 4);
  assertEquals(s.n, 4);
  assertEquals(s.min, 1);
  assertEquals(s.max, 4);
  assertEquals(s.mean, 2.5);
  assert(Math.abs(rttMdev(s) - Math.sqrt(5 / 3)) < 1e-12);
  const same = newRttStats();
  addRtt(same, 0.7);
  addRtt(same, 0.7);
  assertEquals(rttMdev(same), 0);
});

Deno.test("oping stats: loss percentage rounds up like C", () => {
  assertEquals(lossPercent(0, 0), 0);
  assertEquals(lossPercent(1, 1), 0);
  assertEquals(lossPercent(1, 0), 100);
  assertEquals(lossPercent(3, 2), 34);
  assertEquals(lossPercent(3, 1), 67);
  assertEquals(lossPercent(100, 99), 1);
  assertEquals(lossPercent(1000, 999), 1);
  assertEquals(lossPercent(4, 2), 50);
});

Deno.test("oping stats: the spec's one-reply block", () => {
  const rtt = newRttStats();
  addRtt(rtt, 0.53);
  const lines = formatStatistics({
    name: "oping-server",
    sent: 1,
    received: 1,
    outOfOrder: 0,
    elapsedMs: 1000.811,
    rtt,
  });
  assertEquals(
    lines.join("\n"),
    [
      "",
      "--- oping-server ping statistics ---",
      "1 packets transmitted, 1 received, 0 out-of-order, 0% packet loss, time: 1000.811 ms",
      "rtt min/avg/max/mdev = 0.530/0.530/0.530/NaN ms",
    ].join("\n"),
  );
});

Deno.test("oping stats: no reply, no rtt line", () => {
  const lines = formatStatistics({
    name: "x",
    sent: 3,
    received: 0,
    outOfOrder: 0,
    elapsedMs: 5000,
    rtt: newRttStats(),
  });
  assertEquals(lines, [
    "",
    "--- x ping statistics ---",
    "3 packets transmitted, 0 received, 0 out-of-order, 100% packet loss, time: 5000.000 ms",
  ]);
  assertEquals(
    formatStatistics({
      name: "x",
      sent: 0,
      received: 0,
      outOfOrder: 0,
      elapsedMs: 0.25,
      rtt: newRttStats(),
    })[2],
    "0 packets transmitted, 0 received, 0 out-of-order, 0% packet loss, time: 0.250 ms",
  );
});

Deno.test("oping stats: several replies, out-of-order and loss", () => {
  const t = new PingTracker();
  for (let i = 0; i < 4; i++) t.send();
  assertEquals(t.reply(1, 2), { outOfOrder: false });
  assertEquals(t.reply(0, 4), { outOfOrder: true });
  assertEquals(t.reply(0, 4), undefined, "a duplicate is ignored");
  assertEquals(t.reply(9, 1), undefined, "never sent");
  assertEquals(t.reply(3, 3), { outOfOrder: false });
  assertEquals(t.outstanding, 1);
  const lines = formatStatistics(t.stats("srv", 3001.5));
  assertEquals(lines.slice(1), [
    "--- srv ping statistics ---",
    "4 packets transmitted, 3 received, 1 out-of-order, 25% packet loss, time: 3001.500 ms",
    "rtt min/avg/max/mdev = 2.000/3.000/4.000/1.000 ms",
  ]);
});

Deno.test("oping stats: the rtt unit follows the average", () => {
  const small = newRttStats();
  for (const v of [0.02, 0.04, 0.06]) addRtt(small, v);
  const lines = formatStatistics({
    name: "s",
    sent: 3,
    received: 3,
    outOfOrder: 0,
    elapsedMs: 10,
    rtt: small,
  });
  assertEquals(
    lines[3],
    "rtt min/avg/max/mdev = 20.000/40.000/60.000/20.000 µs",
  );
  // Average 0.1 ms or above: ms, even with a smaller minimum.
  const mixed = newRttStats();
  for (const v of [0.05, 0.15]) addRtt(mixed, v);
  assertMatch(
    formatStatistics({
      name: "s",
      sent: 2,
      received: 2,
      outOfOrder: 0,
      elapsedMs: 10,
      rtt: mixed,
    })[3]!,
    /^rtt min\/avg\/max\/mdev = 0\.050\/0\.100\/0\.150\/0\.071 ms$/,
  );
});

// ---------------------------------------------------------------------------
// Messages

Deno.test("oping time: monotonic ms to sec/nsec and back", () => {
  assertEquals(msToTimespec(1234.5), { sec: 1n, nsec: 234_500_000n });
  assertEquals(msToTimespec(0), { sec: 0n, nsec: 0n });
  const ms = 98_765.432_1;
  const { sec, nsec } = msToTimespec(ms);
  assert(Math.abs(timespecToMs(sec, nsec) - ms) < 1e-6);
});

Deno.test("oping echo: the reply changes only the type", () => {
  const p = newOpingPacket(100);
  encodeOping(p, { type: ECHO_REQUEST, id: 42, sec: 7n, nsec: 9n });
  p[99] = 0xab;
  const before = p.slice();
  const r = echoReply(p);
  assert(r !== undefined);
  const m = unwrap(decodeOping(r));
  assertEquals(m, { type: ECHO_REPLY, id: 42, sec: 7n, nsec: 9n });
  assertEquals(r.subarray(4), before.subarray(4));
  assertEquals(echoReply(new Uint8Array(10)), undefined);
});

Deno.test("oping reason: no doubled period", () => {
  assertEquals(reason(new Error("name not found.")), "name not found");
  assertEquals(reason("x"), "x");
});

// ---------------------------------------------------------------------------
// The client loop and the server's flow handler, over a fake flow

/** An in-memory flow; `onWrite` plays the peer. */
class FakeFlow implements PacketFlow {
  readonly fd = 5;
  written: Uint8Array[] = [];
  closed = false;
  down = false;
  onWrite: (p: Uint8Array) => void = () => {};
  /** How long a write takes (ms), per packet. */
  writeDelay: (p: Uint8Array) => number = () => 0;
  writeTimes: number[] = [];
  #queue: Uint8Array[] = [];
  #wake: (() => void) | undefined;

  deliver(p: Uint8Array): void {
    this.#queue.push(p);
    this.#wake?.();
  }

  goDown(): void {
    this.down = true;
    this.#wake?.();
  }

  async read(
    opts: { timeoutMs: number; signal: AbortSignal },
  ): Promise<Uint8Array> {
    for (;;) {
      const p = this.#queue.shift();
      if (p !== undefined) return p;
      if (this.down) throw new OuroborosError("flow_down", "flow 5 is down");
      if (this.closed) throw new OuroborosError("closed", "closed");
      if (opts.signal.aborted) {
        throw new OuroborosError("timed_out", "read aborted");
      }
      await new Promise<void>((resolve, reject) => {
        const done = () => {
          clearTimeout(timer);
          opts.signal.removeEventListener("abort", abort);
          this.#wake = undefined;
        };
        const abort = () => {
          done();
          reject(new OuroborosError("timed_out", "read aborted"));
        };
        const timer = setTimeout(() => {
          done();
          reject(new OuroborosError("timed_out", "no packet"));
        }, opts.timeoutMs);
        opts.signal.addEventListener("abort", abort);
        this.#wake = () => {
          done();
          resolve();
        };
      });
    }
  }

  async write(p: Uint8Array): Promise<void> {
    if (this.down) throw new OuroborosError("flow_down", "flow 5 is down");
    this.writeTimes.push(performance.now());
    const copy = p.slice();
    this.written.push(copy);
    const ms = this.writeDelay(copy);
    if (ms > 0) await new Promise((r) => setTimeout(r, ms));
    this.onWrite(copy.slice());
  }

  close(): Promise<void> {
    this.closed = true;
    this.#wake?.();
    return Promise.resolve();
  }
}

/** An echo peer: answers every request at once. */
function echoing(flow: FakeFlow): void {
  flow.onWrite = (p) => flow.deliver(echoReply(p)!);
}

/**
 * When runPings sent each packet, by its own clock: the timestamp it put in
 * the packet is the `now` its schedule works from (a write's own time, later,
 * would add any stall of a loaded machine).
 */
function sendTimes(flow: FakeFlow): number[] {
  return flow.written.map((p) => {
    const m = unwrap(decodeOping(p));
    return timespecToMs(m.sec, m.nsec);
  });
}

/** Rounding of the packet timestamps (ns), in ms. */
const TS_EPS = 1e-3;

/**
 * A signal that fires after `ms`: a run whose own end never comes (a broken
 * timeout) ends "stopped" instead of hanging the test.
 */
async function bounded<T>(
  ms: number,
  run: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(), ms);
  try {
    return await run(stop.signal);
  } finally {
    clearTimeout(timer);
  }
}

function clientOpts(over: Partial<OpingOptions>): OpingOptions {
  return {
    ...defaultOptions(),
    serverName: "srv",
    intervalMs: 5,
    ...over,
  };
}

Deno.test("oping client: pings and counts the replies", async () => {
  const flow = new FakeFlow();
  echoing(flow);
  const lines: string[] = [];
  const t = new PingTracker();
  const res = await runPings(
    flow,
    clientOpts({ count: 3 }),
    t,
    new AbortController().signal,
    (l) => lines.push(l),
  );
  assertEquals(res.end, "done");
  assertEquals([t.sent, t.received, t.outOfOrder], [3, 3, 0]);
  assertEquals(lines.length, 3);
  lines.forEach((l, i) =>
    assertMatch(
      l,
      new RegExp(`^64 bytes from srv: seq=${i} time=\\d+\\.\\d{3} (ms|µs)$`),
    )
  );
  // Interval respected: the third packet goes out two intervals after the
  // start (the schedule's origin), the run ends after it.
  assert(res.elapsedMs >= 10, `elapsed ${res.elapsedMs}`);
  const ids = flow.written.map((p) => unwrap(decodeOping(p)));
  assertEquals(ids.map((m) => [m.type, m.id]), [[0, 0], [0, 1], [0, 2]]);
  assert(flow.written.every((p) => p.length === 64));
});

Deno.test("oping client: no burst of packets after a stall", async () => {
  const flow = new FakeFlow();
  echoing(flow);
  flow.writeDelay = (p) => unwrap(decodeOping(p)).id === 1 ? 60 : 0;
  const t = new PingTracker();
  const res = await runPings(
    flow,
    clientOpts({ count: 5, intervalMs: 10 }),
    t,
    new AbortController().signal,
    () => {},
  );
  assertEquals(res.end, "done");
  assertEquals(t.received, 5);
  // 0, 10, then one late packet when the slow write returns; the schedule
  // starts again from it, an interval apart, rather than sending the
  // packets it missed at once. Load only delays sends, so these lower
  // bounds hold on a loaded machine too.
  const s = sendTimes(flow);
  const gaps = `send times ${s.map((x) => (x - s[0]!).toFixed(2))}`;
  assert(s[2]! - s[1]! >= 50, gaps);
  assert(s[3]! - s[2]! >= 10 - TS_EPS, gaps);
  assert(s[4]! - s[2]! >= 20 - TS_EPS, gaps);
});

Deno.test("oping client: flood, quiet, size, time of day", async () => {
  const flow = new FakeFlow();
  echoing(flow);
  const lines: string[] = [];
  const t = new PingTracker();
  const res = await runPings(
    flow,
    clientOpts({ count: 50, flood: true, intervalMs: 1000, size: 200 }),
    t,
    new AbortController().signal,
    (l) => lines.push(l),
  );
  assertEquals(res.end, "done");
  assertEquals(t.received, 50);
  assert(res.elapsedMs < 1000, "flood does not wait for the interval");
  assert(flow.written.every((p) => p.length === 200));

  const quiet: string[] = [];
  await runPings(
    flow,
    clientOpts({ count: 2, quiet: true }),
    new PingTracker(),
    new AbortController().signal,
    (l) => quiet.push(l),
  );
  assertEquals(quiet, []);

  const tod: string[] = [];
  await runPings(
    flow,
    clientOpts({ count: 1, timeofday: true }),
    new PingTracker(),
    new AbortController().signal,
    (l) => tod.push(l),
  );
  assertMatch(tod[0]!, /^\[\d+\.\d{6}\] 64 bytes from srv: seq=0 /);
});

Deno.test("oping client: out-of-order replies are marked", async () => {
  const flow = new FakeFlow();
  let held: Uint8Array | undefined;
  flow.onWrite = (p) => {
    const r = echoReply(p)!;
    if (unwrap(decodeOping(p)).id === 0) {
      held = r;
      return;
    }
    flow.deliver(r);
    if (held !== undefined) flow.deliver(held);
    held = undefined;
  };
  const lines: string[] = [];
  const t = new PingTracker();
  await runPings(
    flow,
    clientOpts({ count: 3 }),
    t,
    new AbortController().signal,
    (l) => lines.push(l),
  );
  assertEquals(t.outOfOrder, 1);
  assertMatch(lines[0]!, /seq=1 /);
  assertMatch(lines[1]!, /seq=0 .* \[out-of-order\]$/);
  assertMatch(lines[2]!, /seq=2 [^[]*$/);
});

Deno.test("oping client: bad replies are ignored; silence times out", async () => {
  const flow = new FakeFlow();
  flow.onWrite = (p) => {
    const m = unwrap(decodeOping(p));
    if (m.id === 0) flow.deliver(p); // still an echo request
    if (m.id === 1) flow.deliver(echoReply(p)!.subarray(0, 40)); // bad size
    if (m.id === 2) flow.deliver(echoReply(p)!);
    // 3 is lost
  };
  const lines: string[] = [];
  const t = new PingTracker();
  // A grace far above the interval: a stall of a loaded machine before the
  // reply to 2 does not end the run early.
  const res = await bounded(10_000, (signal) =>
    runPings(
      flow,
      clientOpts({ count: 4, intervalMs: 20 }),
      t,
      signal,
      (l) => lines.push(l),
      500,
    ));
  assertEquals(res.end, "timed_out");
  assertEquals([t.sent, t.received], [4, 1]);
  assertEquals(lines.length, 2);
  assertMatch(lines[0]!, /seq=2 /);
  assertEquals(lines[1], "Server timed out.");
  // It waited for the last packet's reply: interval and grace after it.
  const s = sendTimes(flow);
  assert(res.elapsedMs >= s[3]! - s[0]! + 20 + 500 - 1, `${res.elapsedMs}`);
});

Deno.test("oping client: a silent server stops the sending", async () => {
  const flow = new FakeFlow();
  const lines: string[] = [];
  const t = new PingTracker();
  const intervalMs = 20;
  const graceMs = 500;
  const res = await bounded(10_000, (signal) =>
    runPings(
      flow,
      clientOpts({ count: undefined, intervalMs }),
      t,
      signal,
      (l) => lines.push(l),
      graceMs,
    ));
  assertEquals(res.end, "timed_out");
  assertEquals(lines, ["Server timed out."]);
  // It kept sending while it waited, once an interval (a packet due when
  // the wait ends still goes out), and stopped when the wait for a first
  // reply was over.
  assert(res.elapsedMs >= intervalMs + graceMs, `${res.elapsedMs}`);
  assert(t.sent >= 2, `sent ${t.sent}`);
  assert(t.sent <= (intervalMs + graceMs) / intervalMs + 2, `sent ${t.sent}`);
});

Deno.test("oping client: the flow going down ends it", async () => {
  const flow = new FakeFlow();
  flow.onWrite = (p) => {
    if (unwrap(decodeOping(p)).id === 0) flow.deliver(echoReply(p)!);
    else flow.goDown();
  };
  const lines: string[] = [];
  const t = new PingTracker();
  const res = await runPings(
    flow,
    clientOpts({ count: 5 }),
    t,
    new AbortController().signal,
    (l) => lines.push(l),
  );
  assertEquals(res.end, "flow_down");
  assertEquals(t.received, 1);
  assertMatch(lines.at(-1)!, /^The flow to srv went down: flow 5 is down\.$/);
});

Deno.test("oping client: stops on the signal", async () => {
  // While pinging: the signal fires after the third reply; nothing is sent
  // after it.
  const flow = new FakeFlow();
  echoing(flow);
  const stop = new AbortController();
  const t = new PingTracker();
  let sentAtStop = -1;
  let replies = 0;
  const res = await runPings(
    flow,
    clientOpts({ count: undefined, intervalMs: 5 }),
    t,
    stop.signal,
    () => {
      if (++replies === 3) {
        queueMicrotask(() => {
          sentAtStop = flow.written.length;
          stop.abort();
        });
      }
    },
  );
  assertEquals(res.end, "stopped");
  assertEquals(t.received, 3);
  assertEquals(flow.written.length, sentAtStop, "sent after the signal");

  // While waiting for the next packet's time (10 s): the wait is cut short.
  const idle = new FakeFlow();
  echoing(idle);
  const stop2 = new AbortController();
  const res2 = await runPings(
    idle,
    clientOpts({ count: undefined, intervalMs: 10_000 }),
    new PingTracker(),
    stop2.signal,
    () => queueMicrotask(() => stop2.abort()),
  );
  assertEquals(res2.end, "stopped");
  assertEquals(idle.written.length, 1);
  assert(res2.elapsedMs < 5000, `stopped after ${res2.elapsedMs} ms`);
});

Deno.test("oping server: echoes, prints, times out idle flows", async () => {
  const flow = new FakeFlow();
  const lines: string[] = [];
  const p = newOpingPacket(64);
  encodeOping(p, { type: ECHO_REQUEST, id: 3, sec: 1n, nsec: 2n });
  flow.deliver(p.slice());
  flow.deliver(new Uint8Array(8)); // too short to answer, still counted
  await serveFlow(
    flow,
    { quiet: false },
    new AbortController().signal,
    (l) => lines.push(l),
    20,
  );
  assertEquals(lines, [
    "New flow 5.",
    "Received 64 bytes on fd 5.",
    "Received 8 bytes on fd 5.",
    "Flow 5 timed out.",
  ]);
  assertEquals(flow.written.length, 1);
  assertEquals(unwrap(decodeOping(flow.written[0]!)), {
    type: ECHO_REPLY,
    id: 3,
    sec: 1n,
    nsec: 2n,
  });
  assert(flow.closed);
});

Deno.test("oping server: quiet; a flow going down closes quietly", async () => {
  const flow = new FakeFlow();
  const lines: string[] = [];
  const p = newOpingPacket(64);
  flow.deliver(p);
  flow.onWrite = () => flow.goDown();
  await serveFlow(
    flow,
    { quiet: true },
    new AbortController().signal,
    (l) => lines.push(l),
    1000,
  );
  assertEquals(lines, ["New flow 5."]);
  assertEquals(flow.written.length, 1);
  assert(flow.closed);
});

Deno.test("oping server: stops on the signal", async () => {
  const flow = new FakeFlow();
  const stop = new AbortController();
  const lines: string[] = [];
  const done = serveFlow(
    flow,
    { quiet: false },
    stop.signal,
    (l) => lines.push(l),
    10_000,
  );
  stop.abort();
  await done;
  assertEquals(lines, ["New flow 5."]);
  assert(flow.closed);
});

Deno.test("oping server, synchronous loop (--poll): echoes on every flow, prints, times out idle flows, ends flows that go down or are stopped", async () => {
  const lines: string[] = [];
  const server = new SyncEchoServer(
    Flow.readySync,
    { quiet: false, busy: false },
    (l) => lines.push(l),
    1500,
  );
  const one = pair(QOS_CUBES.raw, 0, 10);
  const two = pair(QOS_CUBES.raw, 0, 20);
  const three = pair(QOS_CUBES.raw, 0, 30);
  const stop = new AbortController();
  const served = [
    server.serve(one.b, new AbortController().signal),
    server.serve(two.b, new AbortController().signal),
    server.serve(three.b, stop.signal),
  ];
  // Pings on the first two flows, from the asynchronous side: each gets
  // its reply while the loop gives the event loop its turns.
  for (let i = 0; i < 5; i++) {
    for (const p of [one, two]) {
      const ping = newOpingPacket(64);
      encodeOping(ping, { type: ECHO_REQUEST, id: i, sec: 1n, nsec: 2n });
      await p.a.write(ping);
      const r = await within(p.a.read(), 10_000, `reply ${i}`);
      assertEquals(unwrap(decodeOping(r)), {
        type: ECHO_REPLY,
        id: i,
        sec: 1n,
        nsec: 2n,
      });
    }
  }
  // The third is stopped; the second's IPCP goes away; the first idles.
  stop.abort();
  await within(served[2]!, 10_000, "the stopped flow");
  assertEquals(three.b.isOpen, false);
  two.stop();
  await within(served[1]!, 10_000, "the flow that went down");
  await within(served[0]!, 10_000, "the idle flow");
  await within(server.ended(), 10_000, "the end of the server's loop");
  assertEquals(one.b.isOpen, false);
  assertEquals(lines.filter((l) => l.startsWith("New flow")).length, 3);
  for (const fd of [11, 21]) {
    assertEquals(
      lines.filter((l) => l === `Received 64 bytes on fd ${fd}.`).length,
      5,
    );
  }
  // Only the idle one says it timed out; the others end quietly.
  assertEquals(lines.filter((l) => /timed out/.test(l)), [
    "Flow 11 timed out.",
  ]);
  await one.a.close(0);
  await three.a.close(0);
  for (const p of [one, two, three]) {
    await within(p.relay, 10_000, "a relay");
  }
});

// ---------------------------------------------------------------------------
// main

Deno.test("oping main: bad usage is exit 2, help exit 0", async () => {
  assertEquals(await main(["--bogus"]), 2);
  assertEquals(await main(["-n", "s", "-s", "10"]), 2);
  assertEquals(await main([]), 2);
  assertEquals(await main(["--help"]), 0);
});

Deno.test("oping main: no irmd is exit 1", async () => {
  const dir = await Deno.makeTempDir();
  try {
    assertEquals(await main(["-n", "srv", "-c", "1", "--rundir", dir]), 1);
    assertEquals(await main(["-l", "--rundir", dir]), 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
