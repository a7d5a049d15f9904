/**
 * `ouroboros oping`: measures the round trip to a name over a flow (client),
 * or echoes every packet back (server, `-l`). Options and output follow the
 * C tool (see spec/cli.md), except that the client sends its first
 * packet at once.
 *
 * The pure parts (option parsing, time units, formatting, statistics) are
 * exported for the tests; the network part is kept thin on top of them.
 */
import {
  DEFAULT_ALLOC_TIMEOUT_MS,
  type Flow,
  type FlowIo,
  type FlowStats,
  type Ouroboros,
} from "../lib/app/dev.ts";
import {
  allocateWithProgress,
  EventLoopTurn,
  eventLoopTurn,
  onSignals,
  type OptionSpec,
  optionWords,
  type PollableFlow,
  type Print,
  print,
  qosCube,
  type ReadMode,
  readWith,
  reason,
  runTool,
  serveFlows,
  SYNC_TURN_MS,
  type SyncFlow,
  syncFlowOf,
  wholeNumber,
} from "./cli.ts";
import { OuroborosError } from "../lib/util/errors.ts";
import {
  decodeOping,
  ECHO_REPLY,
  ECHO_REQUEST,
  encodeOping,
  newOpingPacket,
  OPING_HDR_LEN,
  OPING_MAX_SIZE,
  OPING_MIN_SIZE,
  setOpingType,
} from "../lib/wire/oping_msg.ts";
import { err, ok, type Result } from "../lib/util/result.ts";
import type { QosCubeName } from "../lib/wire/udp_wire.ts";

export const DEFAULT_INTERVAL_MS = 1000;
export const MAX_INTERVAL_MS = 10_000;
/** The longest allocation timeout --timeout takes. */
export const MAX_ALLOC_TIMEOUT_MS = 3_600_000;
/** Added to the interval: how long the client waits for a reply. */
export const REPLY_GRACE_MS = 2000;
/** The server drops a flow that has been idle this long. */
export const SERVER_IDLE_MS = 10_000;
/** Sequence numbers are u32 on the wire. */
export const MAX_COUNT = 0xffff_ffff;

export const USAGE = `Usage: oping [OPTION]...
Checks liveness between a client and a server
and reports the Round Trip Time (RTT)

  -l, --listen              Run in server mode

  -c, --count N             Number of packets (default: unlimited)
  -d, --duration T          Duration of the test (sets the count to
                            duration / interval)
  -i, --interval T          Interval (default 1000 ms, at most 10 s; 0 sends
                            back to back, as fast as the flow takes them)
  -n, --server-name NAME    Name of the oping server
  -q, --qos CUBE            QoS cube: raw, best, video, voice, data
                            (default raw)
  -s, --size B              Packet size (64-1500 bytes, default 64)
  -f, --flood               Send the next packet as soon as the reply
                            arrives (waiting in poll(2))
  -F, --flood-busy          Flood, waiting for each reply by busy polling
                            (lower latency; keeps a CPU busy)
      --timeout T           How long to wait for the server to answer the
                            flow allocation (default 20 s)
  -D, --timeofday           Print the time of day before each reply line
  -Q, --quiet               Client: print only the statistics;
                            server: no per-packet lines
      --poll                Server: wait for packets in poll(2) on the
                            program's thread (lower latency)
      --busy                Server: look for packets in a busy loop (lowest
                            latency; keeps a CPU busy while a flow is open)
      --rundir DIR          Runtime directory of the node
  -h, --help                Display this help text and exit

A time T is a number with a unit: ms (the default for a bare number),
s, m, h or d, e.g. 500, 200ms, 1.5s, 2m.`;

/** The parsed command line. */
export interface OpingOptions {
  listen: boolean;
  serverName: string | undefined;
  /** Packets to send; undefined = until interrupted. */
  count: number | undefined;
  intervalMs: number;
  /** The -d value as given (it has been turned into `count`). */
  durationMs: number | undefined;
  size: number;
  flood: boolean;
  /** How to wait for a packet: -F (client) and --poll / --busy (server). */
  readMode: ReadMode;
  /** How long the client waits for the flow allocation. */
  allocTimeoutMs: number;
  qos: QosCubeName;
  quiet: boolean;
  timeofday: boolean;
  rundir: string | undefined;
  help: boolean;
}

export function defaultOptions(): OpingOptions {
  return {
    listen: false,
    serverName: undefined,
    count: undefined,
    intervalMs: DEFAULT_INTERVAL_MS,
    durationMs: undefined,
    size: OPING_MIN_SIZE,
    flood: false,
    readMode: "block",
    allocTimeoutMs: DEFAULT_ALLOC_TIMEOUT_MS,
    qos: "raw",
    quiet: false,
    timeofday: false,
    rundir: undefined,
    help: false,
  };
}

const TIME_UNITS_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/**
 * A time in milliseconds from `500`, `500ms`, `1.5s`, `2m`, `1h`, `1d`
 * (a bare number is in ms). Negative, empty and unknown-unit values fail.
 */
export function parseTime(s: string): Result<number> {
  const m = /^(\d+(?:\.\d+)?|\.\d+)(ms|s|m|h|d)?$/.exec(s.trim());
  if (m === null) {
    return err(`invalid time "${s}" (a number with unit ms, s, m, h or d)`);
  }
  const value = Number(m[1]) * (TIME_UNITS_MS[m[2] ?? "ms"] ?? 1);
  if (!Number.isFinite(value)) return err(`invalid time "${s}"`);
  return ok(value);
}

type OptName =
  | "listen"
  | "server-name"
  | "count"
  | "interval"
  | "duration"
  | "size"
  | "flood"
  | "flood-busy"
  | "timeout"
  | "poll"
  | "busy"
  | "qos"
  | "quiet"
  | "timeofday"
  | "rundir"
  | "help";

const OPTIONS: OptionSpec<OptName> = {
  short: {
    "-l": "listen",
    "-n": "server-name",
    "-c": "count",
    "-i": "interval",
    "-d": "duration",
    "-s": "size",
    "-f": "flood",
    "-F": "flood-busy",
    "-q": "qos",
    "-Q": "quiet",
    "-D": "timeofday",
    "-h": "help",
  },
  long: [
    "listen",
    "server-name",
    "count",
    "interval",
    "duration",
    "size",
    "flood",
    "flood-busy",
    "timeout",
    "poll",
    "busy",
    "qos",
    "quiet",
    "timeofday",
    "rundir",
    "help",
  ],
  flags: [
    "listen",
    "flood",
    "flood-busy",
    "poll",
    "busy",
    "quiet",
    "timeofday",
    "help",
  ],
};

/**
 * Parses the oping command line: `-x value`, `--long value` and
 * `--long=value`. `-d` overrides `-c` (count = duration / interval, at
 * least 1). Errors are one line, for `oping: <error>` and the usage.
 */
export function parseOpingArgs(args: readonly string[]): Result<OpingOptions> {
  const o = defaultOptions();
  let clientBusy = false;
  let serverMode: ReadMode | undefined;
  const words = optionWords(args, OPTIONS);
  if (!words.ok) return words;
  for (const { name, value, shown } of words.value) {
    switch (name) {
      case "listen":
        o.listen = true;
        break;
      case "flood":
        o.flood = true;
        break;
      case "flood-busy":
        o.flood = true;
        clientBusy = true;
        break;
      case "poll":
        serverMode = "poll";
        break;
      case "busy":
        serverMode = "busy";
        break;
      case "timeout": {
        const r = parseTime(value);
        if (!r.ok) return err(`${shown}: ${r.error}`);
        if (r.value < 1 || r.value > MAX_ALLOC_TIMEOUT_MS) {
          return err(
            `${shown}: the timeout is from 1 ms to 1 h (got ${value})`,
          );
        }
        o.allocTimeoutMs = Math.round(r.value);
        break;
      }
      case "quiet":
        o.quiet = true;
        break;
      case "timeofday":
        o.timeofday = true;
        break;
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
      case "count": {
        const r = wholeNumber(shown, value, 1, MAX_COUNT);
        if (!r.ok) return r;
        o.count = r.value;
        break;
      }
      case "size": {
        const r = wholeNumber(shown, value, OPING_MIN_SIZE, OPING_MAX_SIZE);
        if (!r.ok) return r;
        o.size = r.value;
        break;
      }
      case "interval": {
        const r = parseTime(value);
        if (!r.ok) return err(`${shown}: ${r.error}`);
        if (r.value > MAX_INTERVAL_MS) {
          return err(`${shown}: the interval is at most 10 s (got ${value})`);
        }
        o.intervalMs = r.value;
        break;
      }
      case "duration": {
        const r = parseTime(value);
        if (!r.ok) return err(`${shown}: ${r.error}`);
        if (r.value <= 0) return err(`${shown}: the duration must be above 0`);
        o.durationMs = r.value;
        break;
      }
      case "qos": {
        const r = qosCube(shown, value);
        if (!r.ok) return r;
        o.qos = r.value;
        break;
      }
    }
  }
  if (o.help) return ok(o);
  if (o.listen && clientBusy) {
    return err("-F (--flood-busy) is a client option; the server takes --busy");
  }
  if (!o.listen && serverMode !== undefined) {
    return err(
      `--${serverMode} is a server option (with -l); the client takes -F`,
    );
  }
  o.readMode = serverMode ?? (clientBusy ? "busy" : "block");
  if (o.durationMs !== undefined && o.intervalMs === 0) {
    return err(
      "-d needs an interval above 0 (it sets the count to duration / interval)",
    );
  }
  if (o.durationMs !== undefined) {
    o.count = countForDuration(o.durationMs, o.intervalMs);
  }
  if (!o.listen && o.serverName === undefined) {
    return err("no server specified (-n NAME), or -l to run a server");
  }
  return ok(o);
}

/** The packet count for `-d`: duration / interval, at least 1. */
export function countForDuration(
  durationMs: number,
  intervalMs: number,
): number {
  return Math.min(MAX_COUNT, Math.max(1, Math.floor(durationMs / intervalMs)));
}

// ---------------------------------------------------------------------------
// Formatting

/** A round trip: `0.530 ms`, or `53.000 µs` below 0.1 ms. */
export function formatRtt(ms: number): string {
  return ms < 0.1 ? `${(ms * 1000).toFixed(3)} µs` : `${ms.toFixed(3)} ms`;
}

/** The -D prefix: `[seconds.micros] ` of a wall-clock time in ms since the epoch. */
export function formatTimeofday(epochMs: number): string {
  const us = Math.floor(epochMs * 1000);
  const sec = Math.floor(us / 1_000_000);
  const micros = us - sec * 1_000_000;
  return `[${sec}.${String(micros).padStart(6, "0")}] `;
}

/** The line before the first packet; `(unlimited)` without a count. */
export function formatHeader(
  name: string,
  size: number,
  count: number | undefined,
): string {
  const n = count === undefined ? "unlimited" : `${count} packets`;
  return `Pinging ${name} with ${size} bytes of data (${n}):`;
}

export interface ReplyLine {
  bytes: number;
  name: string;
  seq: number;
  rttMs: number;
  outOfOrder: boolean;
  /** Wall-clock ms since the epoch, for -D. */
  timeofdayMs?: number | undefined;
}

/** `64 bytes from oping-server: seq=0 time=0.530 ms`, with -D prefix and out-of-order mark. */
export function formatReplyLine(r: ReplyLine): string {
  const prefix = r.timeofdayMs === undefined
    ? ""
    : formatTimeofday(r.timeofdayMs);
  const ooo = r.outOfOrder ? " [out-of-order]" : "";
  return `${prefix}${r.bytes} bytes from ${r.name}: seq=${r.seq} time=${
    formatRtt(r.rttMs)
  }${ooo}`;
}

// ---------------------------------------------------------------------------
// Statistics

/** Running RTT statistics (Welford), like the C tool. */
export interface RttStats {
  n: number;
  min: number;
  max: number;
  mean: number;
  /** Sum of squared differences from the mean. */
  m2: number;
}

export function newRttStats(): RttStats {
  return { n: 0, min: Infinity, max: -Infinity, mean: 0, m2: 0 };
}

export function addRtt(s: RttStats, ms: number): void {
  s.n++;
  if (ms < s.min) s.min = ms;
  if (ms > s.max) s.max = ms;
  const d = ms - s.mean;
  s.mean += d / s.n;
  s.m2 += d * (ms - s.mean);
}

/** The sample standard deviation; NaN for fewer than two samples. */
export function rttMdev(s: RttStats): number {
  return s.n < 2 ? NaN : Math.sqrt(s.m2 / (s.n - 1));
}

/** Packet loss in percent, rounded up like the C tool (`ceil`). */
export function lossPercent(sent: number, received: number): number {
  if (sent <= 0) return 0;
  const lost = Math.max(0, sent - received);
  return Math.ceil((100 * lost) / sent);
}

export interface PingStats {
  name: string;
  sent: number;
  received: number;
  outOfOrder: number;
  /** From the first send to the end. */
  elapsedMs: number;
  rtt: RttStats;
}

/**
 * The statistics block (leading blank line included), one string per line.
 * The rtt line appears only when a reply came back; its unit follows the
 * average (µs below 0.1 ms).
 */
export function formatStatistics(s: PingStats): string[] {
  const lines = [
    "",
    `--- ${s.name} ping statistics ---`,
    `${s.sent} packets transmitted, ${s.received} received, ${s.outOfOrder} out-of-order, ` +
    `${lossPercent(s.sent, s.received)}% packet loss, time: ${
      s.elapsedMs.toFixed(3)
    } ms`,
  ];
  if (s.rtt.n > 0) {
    const us = s.rtt.mean < 0.1;
    const k = us ? 1000 : 1;
    const f = (v: number) => (v * k).toFixed(3);
    lines.push(
      `rtt min/avg/max/mdev = ${f(s.rtt.min)}/${f(s.rtt.mean)}/${
        f(s.rtt.max)
      }/${f(rttMdev(s.rtt))} ${us ? "µs" : "ms"}`,
    );
  }
  return lines;
}

/** What FRCT did on a reliable flow, for the statistics when it retransmitted. */
export function formatFrctLine(
  f: Pick<
    FlowStats,
    "retransmitted" | "duplicates" | "srtt" | "rto" | "windowStalls"
  >,
): string {
  return `frct: ${f.retransmitted} retransmitted, ${f.duplicates} duplicates, ` +
    `${f.windowStalls} window stalls, srtt ${f.srtt.toFixed(3)} ms, rto ${
      f.rto.toFixed(3)
    } ms`;
}

/** Tracks replies: which are outstanding, out-of-order, and the RTTs. */
export class PingTracker {
  sent = 0;
  received = 0;
  outOfOrder = 0;
  highest = -1;
  readonly rtt: RttStats = newRttStats();
  readonly #outstanding = new Set<number>();

  /** Registers a send; returns its sequence number. */
  send(): number {
    const seq = this.sent++;
    this.#outstanding.add(seq);
    return seq;
  }

  get outstanding(): number {
    return this.#outstanding.size;
  }

  /**
   * Records a reply; returns whether it is out of order, or undefined for a
   * sequence number that was not sent or was answered already (ignored).
   */
  reply(seq: number, rttMs: number): { outOfOrder: boolean } | undefined {
    if (!this.#outstanding.delete(seq)) return undefined;
    this.received++;
    const outOfOrder = seq < this.highest;
    if (outOfOrder) this.outOfOrder++;
    else this.highest = seq;
    addRtt(this.rtt, rttMs);
    return { outOfOrder };
  }

  stats(name: string, elapsedMs: number): PingStats {
    return {
      name,
      sent: this.sent,
      received: this.received,
      outOfOrder: this.outOfOrder,
      elapsedMs,
      rtt: this.rtt,
    };
  }
}

/** A monotonic time in ms as the message's seconds and nanoseconds. */
export function msToTimespec(ms: number): { sec: bigint; nsec: bigint } {
  const sec = Math.floor(ms / 1000);
  let nsec = Math.round((ms - sec * 1000) * 1e6);
  if (nsec >= 1e9) nsec = 999_999_999;
  return { sec: BigInt(sec), nsec: BigInt(Math.max(0, nsec)) };
}

/** The inverse of msToTimespec. */
export function timespecToMs(sec: bigint, nsec: bigint): number {
  return Number(sec) * 1000 + Number(nsec) / 1e6;
}

/**
 * Turns a received packet into the server's reply, in place: the type
 * becomes echo reply, every other byte stays. Undefined for a packet too
 * short to be an oping message (the server drops it).
 */
export function echoReply(packet: Uint8Array): Uint8Array | undefined {
  if (packet.length < OPING_HDR_LEN) return undefined;
  setOpingType(packet, ECHO_REPLY);
  return packet;
}

// ---------------------------------------------------------------------------
// The program

/** Where lines go (stdout in the program, an array in the tests). */

/** What the client loop and the server's flow handler need of a flow. */
export interface PacketFlow {
  readonly fd: number;
  /** For the polling and busy reads, and for -i 0 (a Flow has them). */
  readonly isOpen?: boolean;
  tryRead?(): Uint8Array | undefined;
  read(opts: { timeoutMs: number; signal: AbortSignal }): Promise<Uint8Array>;
  write(packet: Uint8Array): Promise<void>;
  close(lingerMs?: number): Promise<void>;
}

/** The `ouroboros oping` subcommand. */
export function main(args: string[]): Promise<number> {
  return runTool("oping", USAGE, args, parseOpingArgs, { client, server });
}

async function client(node: Ouroboros, opts: OpingOptions): Promise<number> {
  const name = opts.serverName ?? "";
  let flow: Flow;
  try {
    flow = await allocateWithProgress(
      node,
      name,
      { qos: opts.qos, timeoutMs: opts.allocTimeoutMs, io: clientIo(opts) },
      opts.quiet,
    );
  } catch (e) {
    print(`Failed to allocate flow: ${reason(e)}.`);
    await node.close();
    return 1;
  }
  if (opts.readMode === "busy") await busyPolling();
  const stop = new AbortController();
  const removeSignals = onSignals(() => stop.abort());
  try {
    if (!opts.quiet) {
      print(formatHeader(name, opts.size, opts.count));
      print("");
    }
    const t = new PingTracker();
    const { elapsedMs } = await runPings(flow, opts, t, stop.signal, print);
    for (const line of formatStatistics(t.stats(name, elapsedMs))) print(line);
    const f = flow.stats;
    if (f !== undefined && f.retransmitted > 0) print(formatFrctLine(f));
    return t.received > 0 ? 0 : 1;
  } finally {
    removeSignals();
    await flow.close(0);
    await node.close();
  }
}

/** Why the client stopped pinging. */
export type PingEnd = "done" | "timed_out" | "flow_down" | "stopped";

/**
 * The client: sends `opts.count` echo requests (the first at once, then one
 * per interval, back to back with interval 0, or with `flood` one as soon as
 * the previous reply came), prints a line per valid reply into `print` and
 * records it in `t`. Stops when every packet is answered, on `signal`, when
 * the flow goes down, or when no reply came for interval + `graceMs`
 * (counted from the last reply, or the start; once all are sent, from the
 * last send at the earliest). Replies are waited for as `opts.readMode`
 * says (busy polling for -F).
 */
export async function runPings(
  flow: PacketFlow,
  opts: OpingOptions,
  t: PingTracker,
  signal: AbortSignal,
  print: Print,
  graceMs: number = REPLY_GRACE_MS,
): Promise<{ end: PingEnd; elapsedMs: number }> {
  const name = opts.serverName ?? "";
  const count = opts.count ?? Infinity;
  const waitMs = opts.intervalMs + graceMs;
  const packet = newOpingPacket(opts.size);
  const start = performance.now();
  const result = (end: PingEnd) => ({
    end,
    elapsedMs: performance.now() - start,
  });
  const turn = new EventLoopTurn();
  const pollable = flow.tryRead !== undefined && flow.isOpen !== undefined
    ? flow as PacketFlow & PollableFlow
    : undefined;
  const read = (o: { timeoutMs: number; signal: AbortSignal }) =>
    pollable === undefined
      ? flow.read(o)
      : readWith(opts.readMode, pollable, o, turn);
  // A flood on the fast path waits for its replies on this thread, in
  // poll(2) (-f) or looking again at once (-F), without a promise per
  // packet; Deno's event loop gets a whole turn every SYNC_TURN_MS, while
  // a ping is under way (the flow's own pump then takes in its reply).
  const sync = opts.flood ? syncFlowOf(flow) : undefined;
  let lastTurn = start;
  const turnIfDue = async (): Promise<void> => {
    if (performance.now() - lastTurn < SYNC_TURN_MS) return;
    await eventLoopTurn();
    lastTurn = performance.now();
  };
  let lastSend = start;
  // When the next packet is due: one interval after the previous one's
  // schedule, so the rate does not drift; after a stall (a stopped
  // process, a slow write) at most one packet is sent late, not a burst.
  let nextSend = start;
  let lastReply: number | undefined;
  const onReply = (buf: Uint8Array, now: number): void => {
    if (buf.length !== opts.size) return;
    const m = decodeOping(buf);
    if (!m.ok || m.value.type !== ECHO_REPLY) return;
    const rtt = now - timespecToMs(m.value.sec, m.value.nsec);
    const r = t.reply(m.value.id, rtt);
    if (r === undefined) return;
    lastReply = now;
    if (!opts.quiet) {
      print(formatReplyLine({
        bytes: buf.length,
        name,
        seq: m.value.id,
        rttMs: rtt,
        outOfOrder: r.outOfOrder,
        timeofdayMs: opts.timeofday ? performance.timeOrigin + now : undefined,
      }));
    }
  };
  try {
    while (!signal.aborted) {
      let now = performance.now();
      const sending = t.sent < count;
      const due = opts.flood ? t.outstanding === 0 : now >= nextSend;
      if (sending && due) {
        const { sec, nsec } = msToTimespec(now);
        encodeOping(packet, {
          type: ECHO_REQUEST,
          id: t.sent % (MAX_COUNT + 1),
          sec,
          nsec,
        });
        try {
          if (sync !== undefined) sync.writeSync(packet);
          else await flow.write(packet);
        } catch (e) {
          if (signal.aborted) break;
          print(`Failed to send a packet to ${name}: ${reason(e)}.`);
          return result("flow_down");
        }
        t.send();
        if (sync !== undefined) await turnIfDue();
        lastSend = now;
        nextSend += opts.intervalMs;
        if (nextSend < now) nextSend = now + opts.intervalMs;
        if (opts.intervalMs === 0 && !opts.flood) {
          // Back to back: take in the replies that came meanwhile, without
          // waiting for any, and give the event loop a turn so they can.
          if (pollable === undefined) await turn.next();
          else {
            for (
              let p = pollable.tryRead();
              p !== undefined;
              p = pollable.tryRead()
            ) {
              onReply(p, performance.now());
            }
            if (t.sent % 16 === 0) await turn.next();
          }
        }
        continue;
      }
      if (!sending && t.outstanding === 0) return result("done");
      const since = sending
        ? (lastReply ?? start)
        : Math.max(lastReply ?? start, lastSend);
      const deadline = since + waitMs;
      if (now >= deadline) {
        print("Server timed out.");
        return result("timed_out");
      }
      let until = deadline;
      if (sending && !opts.flood) {
        until = Math.min(until, nextSend);
      }
      let buf: Uint8Array;
      try {
        if (sync !== undefined) {
          const got = sync.readSync(
            opts.readMode === "busy"
              ? 0
              : Math.min(Math.max(0, until - now), SYNC_TURN_MS),
          );
          if (got === undefined) {
            await turnIfDue();
            continue;
          }
          buf = got;
        } else {buf = await read({
            timeoutMs: Math.max(0, until - now),
            signal,
          });}
      } catch (e) {
        if (signal.aborted) break;
        if (e instanceof OuroborosError && e.code === "timed_out") continue;
        print(`The flow to ${name} went down: ${reason(e)}.`);
        return result("flow_down");
      }
      now = performance.now();
      onReply(buf, now);
    }
    return result("stopped");
  } finally {
    turn.close();
  }
}

/**
 * How the client's flow moves its packets: flood and back-to-back pings
 * take the fast path (system calls on this thread); pings at an interval
 * the asynchronous one, which leaves the process asleep in between.
 */
export function clientIo(
  opts: Pick<OpingOptions, "flood" | "intervalMs">,
): FlowIo {
  return opts.flood || opts.intervalMs === 0 ? "blocking" : "async";
}

/**
 * The fast path's reactor never sleeps from now on (-F, --busy). Loaded
 * here, as the flows load it: a program on asynchronous flows never does.
 */
async function busyPolling(): Promise<void> {
  (await import("../lib/app/blocking_io.ts")).defaultReactor.busy = true;
}

/**
 * How the server serves its flows: by default each flow waits in Deno's
 * event loop (the process sleeps while its flows are idle); with --poll or
 * --busy they take the fast path, all served by one synchronous loop
 * (SyncEchoServer) that waits in poll(2) for whichever has a packet
 * (--busy: never sleeping).
 */
async function server(node: Ouroboros, opts: OpingOptions): Promise<number> {
  if (opts.readMode === "busy") await busyPolling();
  const sync = opts.readMode === "block" ? undefined : new SyncEchoServer(
    (await import("../lib/app/dev.ts")).Flow.readySync,
    { quiet: opts.quiet, busy: opts.readMode === "busy" },
    print,
  );
  return await serveFlows(
    node,
    "Ouroboros ping server started.",
    (flow, signal) =>
      sync !== undefined
        ? sync.serve(flow, signal)
        : serveFlow(flow, { quiet: opts.quiet }, signal, print),
    { io: sync !== undefined ? "blocking" : "async" },
  );
}

/** What the synchronous server needs of a flow. */
export interface SyncFlowLike extends SyncFlow {
  readonly fd: number;
  close(lingerMs?: number): Promise<void>;
}

/**
 * The server's flows of the fast path (--poll, --busy), all served by one
 * loop on the program's thread: it waits in one poll(2) for any of them
 * (`readySync`; --busy: looks again at once), echoes every packet that is
 * there with synchronous writes, and gives Deno's event loop a whole turn
 * every SYNC_TURN_MS (new flows are accepted then, signals seen) and
 * whenever no flow is open. A flow ends as `serveFlow`'s do: when it goes
 * down, after `idleMs` without a packet (`Flow <fd> timed out.`), or on
 * its signal.
 */
export class SyncEchoServer<F extends SyncFlowLike> {
  #flows = new Map<
    F,
    { signal: AbortSignal; last: number; done: () => void }
  >();
  #running = false;
  /** Waiting for the loop's end (`ended`). */
  #endWaiters: (() => void)[] = [];

  constructor(
    private readonly readySync: (flows: F[], timeoutMs: number) => F[],
    private readonly opts: { quiet: boolean; busy: boolean },
    private readonly print: Print,
    private readonly idleMs: number = SERVER_IDLE_MS,
  ) {}

  /** Serves `flow` until it ends; resolves once it is closed. */
  serve(flow: F, signal: AbortSignal): Promise<void> {
    this.print(`New flow ${flow.fd}.`);
    return new Promise<void>((resolve) => {
      this.#flows.set(flow, {
        signal,
        last: performance.now(),
        done: resolve,
      });
      if (!this.#running) void this.#run();
    });
  }

  /** Resolves once the loop has ended (no flow left to serve). */
  ended(): Promise<void> {
    return this.#running
      ? new Promise((r) => this.#endWaiters.push(r))
      : Promise.resolve();
  }

  async #finish(flow: F): Promise<void> {
    const e = this.#flows.get(flow);
    if (e === undefined) return;
    this.#flows.delete(flow);
    try {
      await flow.close(0);
    } finally {
      e.done();
    }
  }

  async #run(): Promise<void> {
    this.#running = true;
    try {
      await this.#serveAll();
    } finally {
      this.#running = false;
      for (const w of this.#endWaiters.splice(0)) w();
    }
  }

  async #serveAll(): Promise<void> {
    let lastTurn = performance.now();
    while (this.#flows.size > 0) {
      const flows = [...this.#flows.keys()];
      let now = performance.now();
      // Sleep no longer than the next idle timeout or turn of the loop.
      let wait = this.opts.busy ? 0 : SYNC_TURN_MS - (now - lastTurn);
      for (const e of this.#flows.values()) {
        wait = Math.min(wait, e.last + this.idleMs - now);
      }
      const ready = this.readySync(flows, Math.max(0, wait));
      now = performance.now();
      for (const flow of ready) this.#echo(flow, now);
      for (const [flow, e] of this.#flows) {
        if (e.signal.aborted) void this.#finish(flow);
        else if (now - e.last >= this.idleMs) {
          this.print(`Flow ${flow.fd} timed out.`);
          void this.#finish(flow);
        }
      }
      if (now - lastTurn >= SYNC_TURN_MS) {
        await eventLoopTurn();
        lastTurn = performance.now();
      }
    }
  }

  /** Echoes every packet `flow` has now; ends it once it is down. */
  #echo(flow: F, now: number): void {
    const e = this.#flows.get(flow);
    if (e === undefined) return;
    try {
      for (let p = flow.readSync(0); p !== undefined; p = flow.readSync(0)) {
        e.last = now;
        if (!this.opts.quiet) {
          this.print(`Received ${p.length} bytes on fd ${flow.fd}.`);
        }
        const reply = echoReply(p);
        if (reply !== undefined) flow.writeSync(reply);
      }
    } catch {
      // Down (or closed): quietly, as serveFlow.
      void this.#finish(flow);
    }
  }
}

/**
 * The server's side of one flow: echoes every packet with the type set to
 * echo reply until the flow goes down (quietly), is idle for `idleMs`
 * (`Flow <fd> timed out.`) or `signal` fires; then closes the flow.
 */
export async function serveFlow(
  flow: PacketFlow,
  opts: Pick<OpingOptions, "quiet">,
  signal: AbortSignal,
  print: Print,
  idleMs: number = SERVER_IDLE_MS,
): Promise<void> {
  print(`New flow ${flow.fd}.`);
  try {
    while (!signal.aborted) {
      let buf: Uint8Array;
      try {
        buf = await flow.read({ timeoutMs: idleMs, signal });
      } catch (e) {
        if (signal.aborted) return;
        if (e instanceof OuroborosError && e.code === "timed_out") {
          print(`Flow ${flow.fd} timed out.`);
        }
        return;
      }
      if (!opts.quiet) print(`Received ${buf.length} bytes on fd ${flow.fd}.`);
      const reply = echoReply(buf);
      if (reply === undefined) continue;
      try {
        await flow.write(reply);
      } catch {
        return;
      }
    }
  } finally {
    await flow.close(0);
  }
}
