import { assert, assertEquals, assertMatch, unwrap } from "../tests/assert.ts";
import { OuroborosError } from "../lib/util/errors.ts";
import {
  CbrCounter,
  type CbrFlow,
  DEFAULT_DURATION_MS,
  DEFAULT_RATE,
  DEFAULT_SIZE,
  defaultOcbrOptions,
  formatInterval,
  formatSent,
  formatSummary,
  main,
  mbps,
  MIN_WAIT_MS,
  OCBR_HDR,
  Pacer,
  packetsDue,
  parseOcbrArgs,
  parseRate,
  parseSeconds,
  serveFlow,
  TYPE_DATA,
  TYPE_END,
  writeHeader,
} from "./ocbr.ts";

function parseErr(args: string[]): string {
  const r = parseOcbrArgs(args);
  if (r.ok) throw new Error(`expected ${args.join(" ")} to fail`);
  return r.error;
}

function packet(type: number, n: number, size = 100): Uint8Array {
  const p = new Uint8Array(size);
  writeHeader(p, type, n);
  return p;
}

Deno.test("ocbr args: client defaults follow the C tool", () => {
  const o = unwrap(parseOcbrArgs(["-n", "ocbr"]));
  assertEquals(o, { ...defaultOcbrOptions(), serverName: "ocbr" });
  assertEquals(o.durationMs, DEFAULT_DURATION_MS);
  assertEquals(o.size, DEFAULT_SIZE);
  assertEquals(o.rate, DEFAULT_RATE);
});

Deno.test("ocbr args: every client option, short and long", () => {
  const o = unwrap(
    parseOcbrArgs(["-n", "x", "-d", "10", "-s", "1400", "-r", "300M"]),
  );
  assertEquals(o.durationMs, 10_000);
  assertEquals(o.size, 1400);
  assertEquals(o.rate, 300_000_000);
  const l = unwrap(parseOcbrArgs([
    "--server-name=x",
    "--duration",
    "500ms",
    "--size=8",
    "--rate",
    "1.5k",
    "--rundir",
    "/tmp/r",
  ]));
  assertEquals(l.durationMs, 500);
  assertEquals(l.size, OCBR_HDR);
  assertEquals(l.rate, 1500);
  assertEquals(l.rundir, "/tmp/r");
});

Deno.test("ocbr args: -f and -r 0 both mean as fast as the flow accepts", () => {
  assertEquals(unwrap(parseOcbrArgs(["-n", "x", "-f"])).rate, 0);
  assertEquals(unwrap(parseOcbrArgs(["-n", "x", "-r", "0"])).rate, 0);
  // -f wins over a rate given before or after it.
  assertEquals(unwrap(parseOcbrArgs(["-n", "x", "-f", "-r", "5M"])).rate, 0);
});

Deno.test("ocbr args: server options", () => {
  const o = unwrap(parseOcbrArgs(["-l", "-i", "2", "-t", "1.5s", "-Q"]));
  assert(o.listen);
  assertEquals(o.intervalMs, 2000);
  assertEquals(o.timeoutMs, 1500);
  assert(o.quiet);
});

Deno.test("ocbr args: errors are one line", () => {
  assertMatch(parseErr([]), /no server specified/);
  assertMatch(parseErr(["-n", "x", "-s", "7"]), /out of range/);
  assertMatch(parseErr(["-n", "x", "-s", "9000"]), /out of range/);
  assertMatch(parseErr(["-n", "x", "-s", "1e3"]), /not a whole number/);
  assertMatch(parseErr(["-n", "x", "-r", "fast"]), /invalid rate/);
  assertMatch(parseErr(["-n", "x", "-d", "0"]), /must be above 0/);
  assertMatch(parseErr(["-n", "x", "-d", "-1"]), /invalid time/);
  assertMatch(parseErr(["-n"]), /needs a value/);
  assertMatch(parseErr(["-n", "x", "-z"]), /unknown option "-z"/);
  assertMatch(parseErr(["--flood=1", "-n", "x"]), /takes no value/);
  assertMatch(parseErr(["-n", "x", "extra"]), /unexpected argument/);
  assert(unwrap(parseOcbrArgs(["-h"])).help);
});

Deno.test("ocbr: times are seconds unless a unit is given", () => {
  assertEquals(unwrap(parseSeconds("10")), 10_000);
  assertEquals(unwrap(parseSeconds("0.5")), 500);
  assertEquals(unwrap(parseSeconds("250ms")), 250);
  assertEquals(unwrap(parseSeconds("2m")), 120_000);
  assert(!parseSeconds("ten").ok);
});

Deno.test("ocbr: rates with k, M, G and an optional b/s", () => {
  assertEquals(unwrap(parseRate("1000000")), 1_000_000);
  assertEquals(unwrap(parseRate("500k")), 500_000);
  assertEquals(unwrap(parseRate("1.5M")), 1_500_000);
  assertEquals(unwrap(parseRate("1G")), 1_000_000_000);
  assertEquals(unwrap(parseRate("300Mb/s")), 300_000_000);
  assertEquals(unwrap(parseRate("2kbps")), 2000);
  assert(!parseRate("").ok);
  assert(!parseRate("-5").ok);
  assert(!parseRate("5T").ok);
});

Deno.test("ocbr: packets due at a rate", () => {
  // 1 Mb/s with 1000-byte packets: one packet per 8 ms, the first at once.
  assertEquals(packetsDue(0, 1_000_000, 1000), 1);
  assertEquals(packetsDue(7.9, 1_000_000, 1000), 1);
  assertEquals(packetsDue(8, 1_000_000, 1000), 2);
  assertEquals(packetsDue(1000, 1_000_000, 1000), 126);
  assertEquals(packetsDue(5, 0, 1000), Infinity);
});

Deno.test("ocbr: formatting", () => {
  assertEquals(mbps(1_000_000, 1000), 8);
  assertEquals(mbps(5, 0), 0);
  assertEquals(
    formatInterval(3, 1000, 1_000_000, 1000),
    "Flow 3: 1000 packets, 1000000 bytes in 1000 ms: 1000.0 pps, 8.000 Mb/s",
  );
  assertEquals(
    formatSent(125, 125_000, 1000),
    "Sent 125 packets, 125000 bytes in 1000 ms: 125.0 pps, 1.000 Mb/s",
  );
});

Deno.test("ocbr: the counter finds loss, order and the end packet", () => {
  const c = new CbrCounter();
  for (const [seq, t] of [[0, 0], [1, 1], [3, 2], [2, 3], [5, 1000]]) {
    assert(!c.add(packet(TYPE_DATA, seq!), t!));
  }
  assertEquals(c.packets, 5);
  assertEquals(c.bytes, 500);
  assertEquals(c.outOfOrder, 1);
  assertEquals(c.highest, 5);
  assertEquals(c.lost, 1); // seq 4, before the end packet
  assert(c.add(packet(TYPE_END, 8), 1001));
  assertEquals(c.sent, 8);
  assertEquals(c.lost, 3);
  assertEquals(
    formatSummary(7, c),
    "Flow 7 done: 5 packets, 500 bytes in 1000 ms: 5.0 pps, 0.004 Mb/s; " +
      "8 sent, 3 lost (37.500%), 1 out-of-order",
  );
  // Too short to be an ocbr packet: ignored.
  assert(!c.add(new Uint8Array(4), 1002));
  assertEquals(c.packets, 5);
});

Deno.test("ocbr: a summary without an end packet", () => {
  const c = new CbrCounter();
  c.add(packet(TYPE_DATA, 0), 10);
  c.add(packet(TYPE_DATA, 2), 20);
  assertMatch(formatSummary(1, c), /; \? sent, 1 lost \(33\.333%\)/);
  assertMatch(
    formatSummary(2, new CbrCounter()),
    /0 packets.*0 lost \(0\.000%\)/,
  );
});

Deno.test("ocbr: the server counts a flow until its end packet", async () => {
  const queue = [
    packet(TYPE_DATA, 0),
    packet(TYPE_DATA, 1),
    packet(TYPE_DATA, 3),
    packet(TYPE_END, 4),
  ];
  let closed = false;
  const flow: CbrFlow = {
    fd: 4,
    read: () => {
      const p = queue.shift();
      return p === undefined
        ? Promise.reject(new OuroborosError("timed_out", "idle"))
        : Promise.resolve(p);
    },
    close: () => {
      closed = true;
      return Promise.resolve();
    },
  };
  const lines: string[] = [];
  const c = await serveFlow(
    flow,
    { intervalMs: 60_000, timeoutMs: 1000, quiet: false },
    new AbortController().signal,
    (l) => lines.push(l),
  );
  assert(closed);
  assertEquals(c.packets, 3);
  assertEquals(c.lost, 1);
  assertEquals(lines[0], "New flow 4.");
  assertMatch(lines[1]!, /^Flow 4: 3 packets, 300 bytes in \d+ ms/);
  assertMatch(lines[2]!, /^Flow 4 done: 3 packets.*4 sent, 1 lost/);
});

Deno.test("ocbr: an idle flow times out", async () => {
  const flow: CbrFlow = {
    fd: 9,
    read: () => Promise.reject(new OuroborosError("timed_out", "idle")),
    close: () => Promise.resolve(),
  };
  const lines: string[] = [];
  await serveFlow(
    flow,
    { intervalMs: 60_000, timeoutMs: 10, quiet: true },
    new AbortController().signal,
    (l) => lines.push(l),
  );
  assertEquals(lines, [
    "New flow 9.",
    "Flow 9 timed out.",
    "Flow 9 done: 0 packets, 0 bytes in 0 ms: 0.0 pps, 0.000 Mb/s; ? sent, 0 lost (0.000%), 0 out-of-order",
  ]);
});

Deno.test("ocbr: usage errors exit with 2", async () => {
  const err = console.error;
  const seen: string[] = [];
  console.error = (...a: unknown[]) => seen.push(a.join(" "));
  try {
    assertEquals(await main(["-s", "3", "-n", "x"]), 2);
  } finally {
    console.error = err;
  }
  assertMatch(seen[0]!, /^ocbr: -s: 3 is out of range/);
});

Deno.test("ocbr: the pacer waits until the time asked, at least MIN_WAIT_MS", async () => {
  const pacer = new Pacer();
  const signal = new AbortController().signal;
  try {
    for (const ms of [0.2, 2.5, 12]) {
      const t0 = performance.now();
      await pacer.until(t0 + ms, signal);
      const took = performance.now() - t0;
      assert(took >= Math.max(ms, MIN_WAIT_MS), `${ms} ms took ${took} ms`);
    }
  } finally {
    pacer.close();
  }
});

Deno.test("ocbr: the pacer's shortest wait lasts about 1 ms, half what a timer takes", async () => {
  // What the pacer is for: a rate goes out in bursts MIN_WAIT_MS apart. A
  // Deno timer of 1 ms lasts about 2.1 ms, which made bursts twice as long.
  // The median of many waits is robust to a loaded machine's stalls (two
  // busy processes beside this one leave it near 1.1 ms); 1.6 ms lies
  // between the two.
  const pacer = new Pacer();
  const signal = new AbortController().signal;
  const took: number[] = [];
  try {
    for (let i = 0; i < 201; i++) {
      const t0 = performance.now();
      await pacer.until(t0 + MIN_WAIT_MS, signal);
      took.push(performance.now() - t0);
    }
  } finally {
    pacer.close();
  }
  took.sort((a, b) => a - b);
  const median = took[100]!;
  assert(took[0]! >= MIN_WAIT_MS, `a wait of ${took[0]} ms`);
  assert(
    median < 1.6,
    `median wait ${median.toFixed(3)} ms (${
      took.filter((_, i) => i % 20 === 0).map((x) => x.toFixed(2)).join(" ")
    })`,
  );
});

Deno.test("ocbr: the pacer returns when its signal fires", async () => {
  const pacer = new Pacer();
  const stop = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const waiting = pacer.until(performance.now() + 60_000, stop.signal);
    queueMicrotask(() => stop.abort());
    const r = await Promise.race([
      waiting.then(() => "returned"),
      new Promise<string>((res) => timer = setTimeout(() => res("late"), 5000)),
    ]);
    assertEquals(r, "returned");
  } finally {
    clearTimeout(timer);
    pacer.close();
  }
});
