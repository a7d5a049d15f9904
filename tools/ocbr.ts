/**
 * `ouroboros ocbr`: a constant-bit-rate sender (client) and a server that
 * counts what arrives, after the C tool of the same name.
 *
 *   ocbr -l [-i interval] [-t timeout] [-Q]
 *   ocbr -n NAME [-d duration] [-s size] [-r rate] [-f]
 *
 * The client sends `size`-byte packets at `rate` bits/s for `duration`
 * (`-r 0` or `-f`: as fast as the flow accepts them), then an end packet
 * that carries how many it sent. The server prints, per flow and interval,
 * the packets, bytes, packets/s and Mb/s that arrived, and a summary with
 * the loss and the out-of-order count when the flow ends.
 *
 * Packet: u32 type (0 data, 1 end), u32 sequence number (data) or the
 * number of data packets sent (end), then zeros up to the size. Big-endian.
 */
import {
  DEFAULT_ALLOC_TIMEOUT_MS,
  type Flow,
  type FlowStats,
  type Ouroboros,
} from "../lib/app/dev.ts";
import {
  allocateWithProgress,
  onSignals,
  type OptionSpec,
  optionWords,
  type Print,
  print,
  qosCube,
  reason,
  runTool,
  serveFlows,
  sleep,
  wholeNumber,
} from "./cli.ts";
import { OuroborosError } from "../lib/util/errors.ts";
import { err, ok, type Result } from "../lib/util/result.ts";
import { parseTime } from "./oping.ts";
import type { QosCubeName } from "../lib/wire/udp_wire.ts";

export const OCBR_HDR = 8;
export const TYPE_DATA = 0;
export const TYPE_END = 1;
export const DEFAULT_DURATION_MS = 60_000;
export const DEFAULT_SIZE = 1000;
export const DEFAULT_RATE = 1_000_000;
export const DEFAULT_INTERVAL_MS = 1000;
export const DEFAULT_TIMEOUT_MS = 10_000;
/** The largest packet a UDP flow takes (IPv4). */
export const MAX_SIZE = 8980;
/** How long a reliable client waits at the end for its data to be acknowledged. */
const RELIABLE_LINGER_MS = 60_000;
/** End packets are sent a few times: the layer may lose one. */
const END_COPIES = 3;

export const USAGE = `Usage: ocbr [OPTION]...
Sends packets from a client to a server at a constant bit rate;
the server reports what arrives.

  -l, --listen              Run in server mode

Server options
  -i, --interval T          Report interval (default 1 s)
  -t, --timeout T           Drop a flow idle this long (default 10 s)
  -Q, --quiet               Only the summary of each flow

Client options
  -n, --server-name NAME    Name of the ocbr server
  -d, --duration T          How long to send (default 60 s)
  -s, --size B              Packet size (${OCBR_HDR}-${MAX_SIZE} bytes, default ${DEFAULT_SIZE})
  -r, --rate R              Rate in bits/s, with k, M or G (default 1M);
                            0 = as fast as the flow accepts
  -f, --flood               As fast as the flow accepts (-r 0)
  -q, --qos CUBE            QoS cube: raw, best, video, voice, data
                            (default raw; data is reliable)
  -t, --timeout T           How long to wait for the server to answer the
                            flow allocation (default 20 s)
  -Q, --quiet               No progress line while waiting for the server

      --rundir DIR          Runtime directory of the node
  -h, --help                Display this help text and exit

A time T is a number with a unit: s (the default for a bare number),
ms, m or h, e.g. 10, 1.5s, 500ms.`;

export interface OcbrOptions {
  listen: boolean;
  serverName: string | undefined;
  durationMs: number;
  size: number;
  /** bits/s; 0 = as fast as the flow accepts. */
  rate: number;
  intervalMs: number;
  /** Server: drop a flow idle this long. */
  timeoutMs: number;
  /** Client: how long to wait for the flow allocation (-t on a client). */
  allocTimeoutMs: number;
  quiet: boolean;
  /** The flow's QoS cube (client). */
  qos: QosCubeName;
  rundir: string | undefined;
  help: boolean;
}

export function defaultOcbrOptions(): OcbrOptions {
  return {
    listen: false,
    serverName: undefined,
    durationMs: DEFAULT_DURATION_MS,
    size: DEFAULT_SIZE,
    rate: DEFAULT_RATE,
    intervalMs: DEFAULT_INTERVAL_MS,
    timeoutMs: DEFAULT_TIMEOUT_MS,
    allocTimeoutMs: DEFAULT_ALLOC_TIMEOUT_MS,
    quiet: false,
    qos: "raw",
    rundir: undefined,
    help: false,
  };
}

/** A time in ms; a bare number is in seconds (as the C tool takes it). */
export function parseSeconds(s: string): Result<number> {
  const t = s.trim();
  return parseTime(/^(\d+(?:\.\d+)?|\.\d+)$/.test(t) ? `${t}s` : t);
}

const RATE_UNITS: Record<string, number> = {
  "": 1,
  k: 1e3,
  K: 1e3,
  M: 1e6,
  G: 1e9,
};

/** A rate in bits/s from `1000000`, `500k`, `1.5M`, `1G` (an optional `b/s`/`bps`). */
export function parseRate(s: string): Result<number> {
  const m = /^(\d+(?:\.\d+)?)\s*([kKMG]?)(?:b\/s|bps)?$/.exec(s.trim());
  if (m === null) {
    return err(`invalid rate "${s}" (bits/s, e.g. 800000, 500k, 1.5M, 1G)`);
  }
  const v = Number(m[1]) * (RATE_UNITS[m[2] ?? ""] ?? 1);
  if (!Number.isFinite(v)) return err(`invalid rate "${s}"`);
  return ok(Math.round(v));
}

type OptName =
  | "listen"
  | "server-name"
  | "duration"
  | "size"
  | "rate"
  | "flood"
  | "interval"
  | "timeout"
  | "quiet"
  | "qos"
  | "rundir"
  | "help";

const OPTIONS: OptionSpec<OptName> = {
  short: {
    "-l": "listen",
    "-n": "server-name",
    "-d": "duration",
    "-s": "size",
    "-r": "rate",
    "-f": "flood",
    "-i": "interval",
    "-t": "timeout",
    "-Q": "quiet",
    "-q": "qos",
    "-h": "help",
  },
  long: [
    "listen",
    "server-name",
    "duration",
    "size",
    "rate",
    "flood",
    "interval",
    "timeout",
    "quiet",
    "qos",
    "rundir",
    "help",
  ],
  flags: ["listen", "flood", "quiet", "help"],
};

/** Parses the ocbr command line (`-x v`, `--long v`, `--long=v`). */
export function parseOcbrArgs(args: readonly string[]): Result<OcbrOptions> {
  const o = defaultOcbrOptions();
  let flood = false;
  const words = optionWords(args, OPTIONS);
  if (!words.ok) return words;
  for (const { name, value, shown } of words.value) {
    switch (name) {
      case "listen":
        o.listen = true;
        break;
      case "flood":
        flood = true;
        break;
      case "quiet":
        o.quiet = true;
        break;
      case "qos": {
        const r = qosCube(shown, value);
        if (!r.ok) return r;
        o.qos = r.value;
        break;
      }
      case "help":
        o.help = true;
        break;
      case "server-name":
        if (value === "") return err(`${shown}: the name is empty`);
        o.serverName = value;
        break;
      case "rundir":
        if (value === "") return err(`${shown}: the directory is empty`);
        o.rundir = value;
        break;
      case "size": {
        const r = wholeNumber(shown, value, OCBR_HDR, MAX_SIZE);
        if (!r.ok) return r;
        o.size = r.value;
        break;
      }
      case "rate": {
        const r = parseRate(value);
        if (!r.ok) return err(`${shown}: ${r.error}`);
        o.rate = r.value;
        break;
      }
      case "duration":
      case "interval":
      case "timeout": {
        const r = parseSeconds(value);
        if (!r.ok) return err(`${shown}: ${r.error}`);
        if (r.value <= 0) return err(`${shown}: must be above 0`);
        if (name === "duration") o.durationMs = r.value;
        else if (name === "interval") o.intervalMs = r.value;
        else {
          o.timeoutMs = r.value;
          o.allocTimeoutMs = Math.max(1, Math.round(r.value));
        }
        break;
      }
    }
  }
  if (flood) o.rate = 0;
  if (o.help) return ok(o);
  if (!o.listen && o.serverName === undefined) {
    return err("no server specified (-n NAME), or -l to run a server");
  }
  return ok(o);
}

// ---------------------------------------------------------------------------
// Packets and counting

export function writeHeader(p: Uint8Array, type: number, n: number): void {
  p[0] = type >>> 24;
  p[1] = (type >>> 16) & 0xff;
  p[2] = (type >>> 8) & 0xff;
  p[3] = type & 0xff;
  p[4] = n >>> 24;
  p[5] = (n >>> 16) & 0xff;
  p[6] = (n >>> 8) & 0xff;
  p[7] = n & 0xff;
}

function u32(p: Uint8Array, off: number): number {
  return ((p[off]! << 24) | (p[off + 1]! << 16) | (p[off + 2]! << 8) |
    p[off + 3]!) >>> 0;
}

/** What a server has counted on one flow. */
export class CbrCounter {
  packets = 0;
  bytes = 0;
  outOfOrder = 0;
  /** Highest sequence number seen, -1 before the first. */
  highest = -1;
  /** From the end packet: how many the client sent. */
  sent: number | undefined;
  firstMs: number | undefined;
  lastMs = 0;
  /** The current interval. */
  ivPackets = 0;
  ivBytes = 0;

  /** Counts one packet; true when it is the end packet. */
  add(p: Uint8Array, nowMs: number): boolean {
    if (p.length < OCBR_HDR) return false;
    if (u32(p, 0) === TYPE_END) {
      this.sent = u32(p, 4);
      return true;
    }
    const seq = u32(p, 4);
    this.firstMs ??= nowMs;
    this.lastMs = nowMs;
    this.packets++;
    this.bytes += p.length;
    this.ivPackets++;
    this.ivBytes += p.length;
    if (seq < this.highest) this.outOfOrder++;
    else this.highest = seq;
    return false;
  }

  /** Packets lost: sent (or highest seq + 1) minus received. */
  get lost(): number {
    const expected = this.sent ?? this.highest + 1;
    return Math.max(0, expected - this.packets);
  }
}

/** `12.345` Mb/s for `bytes` in `ms`. */
export function mbps(bytes: number, ms: number): number {
  return ms > 0 ? (bytes * 8) / (ms * 1000) : 0;
}

/** The per-interval line of the server. */
export function formatInterval(
  fd: number,
  packets: number,
  bytes: number,
  ms: number,
): string {
  const pps = ms > 0 ? (packets * 1000) / ms : 0;
  return `Flow ${fd}: ${packets} packets, ${bytes} bytes in ${
    Math.round(ms)
  } ms: ${pps.toFixed(1)} pps, ${mbps(bytes, ms).toFixed(3)} Mb/s`;
}

/** The server's summary of a flow that ended. */
export function formatSummary(fd: number, c: CbrCounter): string {
  const ms = c.firstMs === undefined ? 0 : c.lastMs - c.firstMs;
  const expected = c.sent ?? c.highest + 1;
  const lossPct = expected > 0 ? (100 * c.lost) / expected : 0;
  const pps = ms > 0 ? (c.packets * 1000) / ms : 0;
  return `Flow ${fd} done: ${c.packets} packets, ${c.bytes} bytes in ${
    ms.toFixed(0)
  } ms: ${pps.toFixed(1)} pps, ${mbps(c.bytes, ms).toFixed(3)} Mb/s; ${
    c.sent === undefined ? "?" : c.sent
  } sent, ${c.lost} lost (${
    lossPct.toFixed(3)
  }%), ${c.outOfOrder} out-of-order`;
}

/** The client's closing line. */
export function formatSent(
  packets: number,
  bytes: number,
  ms: number,
): string {
  const pps = ms > 0 ? (packets * 1000) / ms : 0;
  return `Sent ${packets} packets, ${bytes} bytes in ${ms.toFixed(0)} ms: ${
    pps.toFixed(1)
  } pps, ${mbps(bytes, ms).toFixed(3)} Mb/s`;
}

/** Waits longer than this go to a timer (Deno's fire about 2 ms late). */
const TIMER_WAIT_MS = 4;
/**
 * The shortest wait between bursts: at 300 Mb/s with 1,000 bytes, about 40
 * packets, half of what the receiving socket holds (shorter waits mean more
 * wakeups all along the path, and measured more loss).
 */
export const MIN_WAIT_MS = 1;

/**
 * Waits with sub-millisecond precision, so that a constant bit rate goes out
 * in bursts of 1 ms rather than the 2 ms worth a timer allows (at 300 Mb/s
 * with 1,000 bytes, 75 packets: about what the receiving socket holds). The
 * end of a wait blocks the thread (`Atomics.wait`), then gives the event
 * loop one turn (a message to itself) so that reads and signals go on. Since
 * no I/O moves while it blocks, call it with nothing being written.
 */
export class Pacer {
  #cell = new Int32Array(new SharedArrayBuffer(4));
  #channel = new MessageChannel();
  #turned: (() => void) | undefined;

  constructor() {
    this.#channel.port1.onmessage = () => {
      const t = this.#turned;
      this.#turned = undefined;
      t?.();
    };
  }

  /**
   * Returns no earlier than `at` (a performance.now() time) and, unless `at`
   * has passed, no earlier than MIN_WAIT_MS from now; or when `signal` fires.
   */
  async until(at: number, signal: AbortSignal): Promise<void> {
    let left = at - performance.now();
    if (left > TIMER_WAIT_MS) {
      await sleep(left - TIMER_WAIT_MS / 2, signal);
      left = at - performance.now();
    }
    if (signal.aborted) return;
    if (left > 0) Atomics.wait(this.#cell, 0, 0, Math.max(MIN_WAIT_MS, left));
    await new Promise<void>((r) => {
      this.#turned = r;
      this.#channel.port2.postMessage(0);
    });
  }

  close(): void {
    this.#channel.port1.close();
    this.#channel.port2.close();
  }
}

/**
 * How many packets should have gone out `elapsedMs` into the test at `rate`
 * bits/s with `size`-byte packets (Infinity at rate 0).
 */
export function packetsDue(
  elapsedMs: number,
  rate: number,
  size: number,
): number {
  if (rate <= 0) return Infinity;
  return Math.floor((elapsedMs * rate) / (8000 * size)) + 1;
}

// ---------------------------------------------------------------------------
// The program

/** The `ouroboros ocbr` subcommand. */
export function main(args: string[]): Promise<number> {
  return runTool("ocbr", USAGE, args, parseOcbrArgs, { client, server });
}

async function client(node: Ouroboros, opts: OcbrOptions): Promise<number> {
  const name = opts.serverName ?? "";
  let flow: Flow;
  try {
    flow = await allocateWithProgress(
      node,
      name,
      {
        timeoutMs: opts.allocTimeoutMs,
        qos: opts.qos,
        // Flooding takes the fast path; a paced sender waits between
        // packets, which the pacer times better on the asynchronous one.
        io: opts.rate === 0 ? "blocking" : "async",
      },
      opts.quiet,
    );
  } catch (e) {
    print(`Failed to allocate flow: ${reason(e)}.`);
    await node.close();
    return 1;
  }
  const stop = new AbortController();
  const removeSignals = onSignals(() => stop.abort());
  const stopped = new Promise<void>((r) =>
    stop.signal.addEventListener("abort", () => r())
  );
  const packet = new Uint8Array(opts.size);
  const pacer = new Pacer();
  let sent = 0;
  const start = performance.now();
  let code = 0;
  try {
    const rateText = opts.rate === 0
      ? "as fast as the flow accepts"
      : `${opts.rate} b/s`;
    print(
      `Sending ${opts.size}-byte packets to ${name} at ${rateText} for ${opts.durationMs} ms.`,
    );
    const end = start + opts.durationMs;
    for (;;) {
      const now = performance.now();
      if (now >= end || stop.signal.aborted) break;
      const due = packetsDue(now - start, opts.rate, opts.size);
      if (sent >= due) {
        // Ahead of the rate: wait for the next packet's time.
        const nextAt = start + ((sent * 8000 * opts.size) / opts.rate);
        // What was written leaves first: the pacer's wait stops all I/O.
        await Promise.race([flow.flush(), stopped]);
        await pacer.until(Math.min(end, nextAt), stop.signal);
        continue;
      }
      // Send what is due, a bounded burst between clock reads.
      const burst = Math.min(due - sent, 64);
      for (let k = 0; k < burst; k++) {
        writeHeader(packet, TYPE_DATA, sent);
        await flow.write(packet);
        sent++;
      }
    }
    const elapsed = performance.now() - start;
    await flow.flush();
    const endPkt = new Uint8Array(opts.size);
    writeHeader(endPkt, TYPE_END, sent);
    // A reliable flow delivers the end packet; a raw one may lose a copy.
    const reliable = flow.qos.inOrder !== 0 && flow.qos.loss === 0;
    for (let k = 0; k < (reliable ? 1 : END_COPIES); k++) {
      await flow.write(endPkt);
      await flow.flush();
      await sleep(20, stop.signal);
    }
    print(formatSent(sent, sent * opts.size, elapsed));
    if (reliable) {
      // Everything is delivered once the peer acknowledged it.
      await flow.close(RELIABLE_LINGER_MS);
    }
    if (flow.stats !== undefined) print(formatFrctStats(flow.stats));
  } catch (e) {
    print(`The flow to ${name} went down: ${reason(e)}.`);
    code = 1;
  } finally {
    removeSignals();
    pacer.close();
    await flow.close();
    await node.close();
  }
  return code;
}

function server(node: Ouroboros, opts: OcbrOptions): Promise<number> {
  return serveFlows(
    node,
    "Ouroboros CBR server started.",
    (flow, signal) => serveFlow(flow, opts, signal, print),
    // The receiver reads as fast as packets come: the fast path.
    { io: "blocking" },
  );
}

/** What the server needs of a flow. */
export interface CbrFlow {
  readonly fd: number;
  /** FRCT counters, on flows that run it. */
  readonly stats?: FlowStats | undefined;
  read(opts: { timeoutMs: number; signal: AbortSignal }): Promise<Uint8Array>;
  close(lingerMs?: number): Promise<void>;
}

/**
 * Counts one flow's packets until its end packet, an idle `timeoutMs`, the
 * flow going down or `signal`; prints interval lines (unless quiet) and a
 * summary.
 */
export async function serveFlow(
  flow: CbrFlow,
  opts: Pick<OcbrOptions, "intervalMs" | "timeoutMs" | "quiet">,
  signal: AbortSignal,
  out: Print,
): Promise<CbrCounter> {
  out(`New flow ${flow.fd}.`);
  const c = new CbrCounter();
  let ivStart = performance.now();
  const report = () => {
    const now = performance.now();
    if (!opts.quiet && c.ivPackets > 0) {
      out(formatInterval(flow.fd, c.ivPackets, c.ivBytes, now - ivStart));
    }
    c.ivPackets = 0;
    c.ivBytes = 0;
    ivStart = now;
  };
  const timer = setInterval(report, opts.intervalMs);
  try {
    for (;;) {
      let p: Uint8Array;
      try {
        p = await flow.read({ timeoutMs: opts.timeoutMs, signal });
      } catch (e) {
        if (
          !signal.aborted && e instanceof OuroborosError &&
          e.code === "timed_out"
        ) {
          out(`Flow ${flow.fd} timed out.`);
        }
        break;
      }
      if (c.add(p, performance.now())) break;
    }
  } finally {
    clearInterval(timer);
    report();
    out(formatSummary(flow.fd, c));
    if (flow.stats !== undefined) out(formatFrctStats(flow.stats));
    await flow.close(0);
  }
  return c;
}

/** The FRCT counters of a flow, one line, for the end of a run. */
export function formatFrctStats(f: FlowStats): string {
  return `frct: ${f.sent} sent, ${f.retransmitted} retransmitted, ` +
    `${f.received} received, ${f.duplicates} duplicates, ${f.outOfOrder} out of order, ` +
    `${f.badCrc} bad CRC, ${f.windowStalls} window stalls, ` +
    `srtt ${f.srtt.toFixed(3)} ms, rto ${f.rto.toFixed(3)} ms`;
}
