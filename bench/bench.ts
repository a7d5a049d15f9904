/**
 * `deno task bench`: the data path against its limit, on loopback.
 *
 * Starts two nodes (two irmds with their own runtime directories: a server
 * on 127.0.0.1 and a client on 127.0.0.2, on a UDP port chosen here), and
 * measures, each figure as the median of several runs with min and max:
 *
 *   1. raw UDP ping-pong between two Deno processes (the runtime's limit);
 *   2. `oping -f` through the stack, and its ratio to (1) in the same run;
 *   3. sequential flow allocations and deallocations;
 *   4. one-way throughput with `ocbr -f` (1000 and 1400 bytes), and its ratio
 *      to a raw UDP sender and receiver doing the same in the same run; and
 *      the loss when 1000-byte packets are offered at the target 300 Mb/s;
 *   5. idle RSS of the irmd, the IPCP and an `oping -l`;
 *   6. the ping with 1, 10 and 100 flows at once.
 *
 * Prints a Markdown table, writes bench/results/<date>-<commit>.json and
 * the RTT plot bench/results/<date>-<commit>-rtt.svg (the commit with
 * "-dirty" when the working tree has changes). Every process it starts is
 * ended, also on Ctrl-C or an error.
 *
 * The Target column also shows figures of the C implementation for
 * comparison ("C ref."): reference figures measured elsewhere, not by this
 * benchmark (C_REFERENCE).
 *
 * Options: --runs N (3), --seconds S (throughput, 10), --count N (ping
 * round trips, 10000), --allocs N (1000), --quick (1 run, short tests),
 * --out DIR (bench/results).
 */
import { ALLOC_WARMUP } from "./client.ts";
import { Proc } from "../lib/util/child.ts";
import { nameHashHex } from "../lib/wire/name_hash.ts";
import { RUNDIR_ENV } from "../lib/ipc/rundir.ts";
import { selfCommand, setMainModule } from "../lib/util/self.ts";
import {
  fmtNum,
  fmtSummary,
  markdownTable,
  percentile,
  type Row,
  rttCdfSvg,
  summarize,
  type Summary,
} from "./report.ts";

setMainModule(new URL("../main.ts", import.meta.url));

const REPO = new URL("../", import.meta.url).pathname;
const LAUNCHER = `${REPO}bin/ouroboros`;
const SERVER_IP = "127.0.0.1";
const CLIENT_IP = "127.0.0.2";
const LAYER = "bench-layer";
const SIZES = [1000, 1400] as const;
const FLOW_COUNTS = [1, 10, 100] as const;

/**
 * Figures of C Ouroboros 0.23.0 beside the targets, for comparison. They
 * are reference figures measured elsewhere, not by this benchmark, and
 * were recorded with the targets on this date.
 */
const C_REFERENCE = {
  recorded: "2026-11-24",
  pingRate: "11,200 rt/s",
  allocP50: "1.3 ms",
  throughput: "~140 Mb/s bidir.",
  rss: "IPCP 7 MB, oping 6 MB",
};
const C_REF = "C ref.";
const C_REFERENCE_NOTE =
  `${C_REF}: reference figures for C Ouroboros 0.23.0, measured elsewhere, ` +
  `not by this benchmark (recorded ${C_REFERENCE.recorded}).`;

// Targets (reported, not asserted): see issue #6.
const TARGET = {
  pingRate: 11_200,
  pingRatio: 0.5,
  allocP50: 1,
  allocP99: 5,
  mbps1000: 300,
  lossPct: 0.1,
  rssMB: 45,
};

interface Options {
  runs: number;
  seconds: number;
  count: number;
  allocs: number;
  scaleMs: number;
  out: string;
}

function parseOptions(argv: string[]): Options {
  const o: Options = {
    runs: 3,
    seconds: 10,
    count: 10_000,
    allocs: 1000,
    scaleMs: 2000,
    out: `${REPO}bench/results`,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = () => {
      const n = argv[++i];
      if (n === undefined) throw new Error(`${a} needs a value`);
      return n;
    };
    if (a === "--quick") {
      o.runs = 1;
      o.seconds = 2;
      o.count = 2000;
      o.allocs = 200;
      o.scaleMs = 1000;
    } else if (a === "--runs") o.runs = Number(v());
    else if (a === "--seconds") o.seconds = Number(v());
    else if (a === "--count") o.count = Number(v());
    else if (a === "--allocs") o.allocs = Number(v());
    else if (a === "--out") o.out = v();
    else throw new Error(`unknown option ${a}`);
  }
  return o;
}

// ---------------------------------------------------------------------------
// Processes and nodes

/** Everything started here, ended in reverse order by `cleanup`. */
const procs: Proc[] = [];
const tempDirs: string[] = [];

function log(msg: string): void {
  console.error(`bench: ${msg}`);
}

function spawn(
  label: string,
  cmd: string[],
  env: Record<string, string> = {},
): Proc {
  const p = new Proc(label, cmd, { NO_COLOR: "1", ...env });
  procs.push(p);
  return p;
}

async function stopProc(p: Proc): Promise<void> {
  await p.stop(3000);
  const i = procs.indexOf(p);
  if (i >= 0) procs.splice(i, 1);
}

let cleaning: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    // Tools first, then the irmds (which end their IPCPs).
    const irmds = procs.filter((p) => p.label.endsWith("/irmd"));
    const others = procs.filter((p) => !irmds.includes(p));
    await Promise.all(others.map((p) => p.stop(3000)));
    await Promise.all(irmds.map((p) => p.stop(8000)));
    procs.length = 0;
    for (const d of tempDirs) {
      await Deno.remove(d, { recursive: true }).catch(() => {});
    }
  })();
  return cleaning;
}

const DENO_SCRIPT = (script: string, args: string[]) => [
  Deno.execPath(),
  "run",
  "-q",
  "-P",
  "--config",
  `${REPO}deno.json`,
  `${REPO}bench/${script}`,
  ...args,
];

class BenchNode {
  irmd!: Proc;
  ipcpPid = 0;
  private constructor(readonly label: string, readonly dir: string) {}

  get rundir(): string {
    return `${this.dir}/run`;
  }

  bin(name: string): string {
    return `${this.dir}/bin/${name}`;
  }

  get env(): Record<string, string> {
    return { [RUNDIR_ENV]: this.rundir };
  }

  static async start(
    label: string,
    ip: string,
    port: number,
    serves: boolean,
  ): Promise<BenchNode> {
    const dir = await Deno.makeTempDir({ prefix: `o7s-bench-${label}-` });
    tempDirs.push(dir);
    const node = new BenchNode(label, dir);
    await Deno.mkdir(`${dir}/bin`);
    for (const n of ["oping", "ocbr", "irm"]) {
      await Deno.symlink(LAUNCHER, node.bin(n));
    }
    await Deno.writeTextFile(
      `${dir}/hosts`,
      ["oping-server", "ocbr"].map((n) =>
        `${SERVER_IP} ${nameHashHex(n)} #${n}\n`
      ).join(""),
    );
    const names = serves
      ? `[name."oping-server"]\nprog=["${dir}/bin/oping"]\n\n` +
        `[name."ocbr"]\nprog=["${dir}/bin/ocbr"]\n\n`
      : "";
    const reg = serves ? `reg=["oping-server", "ocbr"]\n` : "";
    await Deno.writeTextFile(
      `${dir}/irmd.conf`,
      `${names}[udp.bench]\nbootstrap="${LAYER}"\nip="${ip}"\nport=${port}\n` +
        `hosts="${dir}/hosts"\n${reg}`,
    );
    node.irmd = spawn(
      `${label}/irmd`,
      selfCommand("irmd", ["--rundir", node.rundir, "-c", `${dir}/irmd.conf`]),
    );
    await node.irmd.waitFor(
      serves ? /Registered ocbr with IPCP/ : /Bootstrapped IPCP \d+/,
      20_000,
    );
    const created = await node.irmd.waitFor(/Created IPCP (\d+)/, 1000);
    node.ipcpPid = Number(/Created IPCP (\d+)/.exec(created)![1]);
    return node;
  }

  /** A tool through its link in bin/ (as /usr/bin/oping would run). */
  tool(name: string, args: string[], label = `${this.label}/${name}`): Proc {
    return spawn(label, [this.bin(name), ...args], this.env);
  }

  /** A tool whose standard output goes to a file (no pipe to wake us). */
  toolToFile(name: string, args: string[], file: string): Proc {
    return spawn(
      `${this.label}/${name}`,
      [
        "/bin/sh",
        "-c",
        'exec "$0" "$@" >"$BENCH_OUT"',
        this.bin(name),
        ...args,
      ],
      { ...this.env, BENCH_OUT: file },
    );
  }

  /** A bench/ script as an application of this node. */
  script(script: string, args: string[], label: string): Proc {
    return spawn(label, DENO_SCRIPT(script, args), this.env);
  }
}

async function lastJson(
  p: Proc,
  timeoutMs: number,
): Promise<Record<string, unknown>> {
  const r = await p.exit(timeoutMs);
  const i = procs.indexOf(p);
  if (i >= 0) procs.splice(i, 1);
  const line = r.stdout.split("\n").reverse().find((l) => l.startsWith("{"));
  if (r.code !== 0 || line === undefined) {
    throw new Error(`${p.label} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
  return JSON.parse(line);
}

function udpPortFree(ip: string, port: number): boolean {
  try {
    Deno.listenDatagram({ transport: "udp", hostname: ip, port }).close();
    return true;
  } catch {
    return false;
  }
}

/** A base port such that base..base+3 are free on both addresses. */
function choosePort(): number {
  for (let i = 0; i < 50; i++) {
    const base = 20_000 + 4 * Math.floor(Math.random() * 9000);
    let free = true;
    for (let k = 0; k < 4 && free; k++) {
      free = udpPortFree(SERVER_IP, base + k) &&
        udpPortFree(CLIENT_IP, base + k);
    }
    if (free) return base;
  }
  throw new Error("no free UDP port range on 127.0.0.1/127.0.0.2");
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A file under /proc (Deno reads /proc only with --allow-all: `cat` it). */
async function readProc(path: string): Promise<string> {
  try {
    const out = await new Deno.Command("cat", {
      args: [path],
      stdout: "piped",
      stderr: "null",
    }).output();
    return out.success ? new TextDecoder().decode(out.stdout) : "";
  } catch {
    return "";
  }
}

async function rssMB(pid: number): Promise<number> {
  const m = /VmRSS:\s+(\d+) kB/.exec(await readProc(`/proc/${pid}/status`));
  return m === null ? NaN : Number(m[1]) / 1024;
}

// ---------------------------------------------------------------------------
// The measurements

interface PingRun {
  rtPerSec: number;
  p50: number;
  p99: number;
  rtts: number[];
}

function pingRun(rtts: number[], rtPerSec: number): PingRun {
  return {
    rtPerSec,
    p50: percentile(rtts, 50),
    p99: percentile(rtts, 99),
    rtts,
  };
}

async function rawPing(port: number, count: number): Promise<PingRun> {
  const echo = spawn(
    "raw/echo",
    DENO_SCRIPT("udp_peer.ts", [
      "echo",
      "--bind",
      `${SERVER_IP}:${port + 1}`,
      "--ms",
      "120000",
    ]),
  );
  try {
    await echo.waitFor(/ready/, 10_000);
    const ping = spawn(
      "raw/ping",
      DENO_SCRIPT("udp_peer.ts", [
        "ping",
        "--bind",
        `${CLIENT_IP}:${port + 2}`,
        "--to",
        `${SERVER_IP}:${port + 1}`,
        "-c",
        String(count),
      ]),
    );
    const j = await lastJson(ping, 60_000);
    return pingRun(j.rttMs as number[], j.rtPerSec as number);
  } finally {
    await stopProc(echo);
  }
}

/** `oping -f -Q -c N`: the round trips/s and the average RTT. */
async function opingFlood(
  client: BenchNode,
  count: number,
): Promise<{ rtPerSec: number; avgMs: number }> {
  const p = client.tool("oping", [
    "-n",
    "oping-server",
    "-f",
    "-Q",
    "-c",
    String(count),
  ]);
  const r = await p.exit(120_000);
  procs.splice(procs.indexOf(p), 1);
  if (r.code !== 0) {
    throw new Error(`oping -f failed:\n${r.stdout}\n${r.stderr}`);
  }
  const st = /(\d+) packets transmitted, (\d+) received.*time: ([\d.]+) ms/
    .exec(r.stdout);
  const rtt = /rtt min\/avg\/max\/mdev = [\d.]+\/([\d.]+)\/[\d.]+\/\S+ (ms|µs)/
    .exec(r.stdout);
  if (st === null || rtt === null) {
    throw new Error(`no statistics from oping:\n${r.stdout}`);
  }
  return {
    rtPerSec: Number(st[2]) / (Number(st[3]) / 1000),
    avgMs: Number(rtt[1]) / (rtt[2] === "µs" ? 1000 : 1),
  };
}

/** The same flood ping from bench/client.ts, for every packet's RTT. */
async function clientPing(
  client: BenchNode,
  flows: number,
  opts: { count?: number; ms?: number },
): Promise<PingRun> {
  const args = ["scale", "--flows", String(flows)];
  if (opts.count !== undefined) {
    args.push("--count", String(opts.count), "--ms", "60000");
  }
  if (opts.ms !== undefined) args.push("--ms", String(opts.ms));
  const j = await lastJson(
    client.script("client.ts", args, `client/ping-${flows}`),
    120_000,
  );
  return pingRun(j.rttMs as number[], j.rtPerSec as number);
}

interface Tput {
  mbps: number;
  lossPct: number;
  sentMbps: number;
}

async function stackThroughput(
  client: BenchNode,
  ocbrServer: Proc,
  size: number,
  seconds: number,
  rate?: string,
): Promise<Tput> {
  const from = ocbrServer.lines.length;
  const p = client.tool("ocbr", [
    "-n",
    "ocbr",
    ...(rate === undefined ? ["-f"] : ["-r", rate]),
    "-s",
    String(size),
    "-d",
    String(seconds),
  ]);
  const r = await p.exit((seconds + 30) * 1000);
  procs.splice(procs.indexOf(p), 1);
  if (r.code !== 0) throw new Error(`ocbr failed:\n${r.stdout}\n${r.stderr}`);
  const done = await ocbrServer.waitFor(/^Flow \d+ done:/, 15_000, from);
  const m =
    /done: (\d+) packets, (\d+) bytes in (\d+) ms: [\d.]+ pps, ([\d.]+) Mb\/s; (\d+|\?) sent, (\d+) lost \(([\d.]+)%\)/
      .exec(done);
  const sent =
    /Sent (\d+) packets, (\d+) bytes in (\d+) ms: [\d.]+ pps, ([\d.]+) Mb\/s/
      .exec(r.stdout);
  if (m === null || sent === null) {
    throw new Error(`cannot parse ocbr output:\n${done}\n${r.stdout}`);
  }
  return {
    mbps: Number(m[4]),
    lossPct: Number(m[7]),
    sentMbps: Number(sent[4]),
  };
}

async function rawThroughput(
  port: number,
  size: number,
  seconds: number,
): Promise<Tput> {
  const sink = spawn(
    "raw/sink",
    DENO_SCRIPT("udp_peer.ts", [
      "sink",
      "--bind",
      `${SERVER_IP}:${port + 1}`,
      "--ms",
      String(seconds * 1000),
    ]),
  );
  await sink.waitFor(/ready/, 10_000);
  const blast = spawn(
    "raw/blast",
    DENO_SCRIPT("udp_peer.ts", [
      "blast",
      "--bind",
      `${CLIENT_IP}:${port + 2}`,
      "--to",
      `${SERVER_IP}:${port + 1}`,
      "-s",
      String(size),
      "--ms",
      String(seconds * 1000),
    ]),
  );
  const b = await lastJson(blast, (seconds + 30) * 1000);
  const s = await lastJson(sink, 30_000);
  const sent = b.sent as number;
  const packets = s.packets as number;
  const ms = s.activeMs as number;
  return {
    mbps: ms > 0 ? ((s.bytes as number) * 8) / (ms * 1000) : 0,
    lossPct: sent > 0 ? (100 * Math.max(0, sent - packets)) / sent : 0,
    sentMbps: (sent * size * 8) / (seconds * 1e6),
  };
}

// ---------------------------------------------------------------------------

async function machine(): Promise<
  {
    nproc: number;
    cpu: string;
    memoryGB: number;
    os: string;
    deno: string;
    commit: string;
  }
> {
  const cpuinfo = await readProc("/proc/cpuinfo");
  const meminfo = await readProc("/proc/meminfo");
  const cpu = /model name\s*:\s*(.+)/.exec(cpuinfo)?.[1]?.trim() ?? "unknown";
  const memKB = Number(/MemTotal:\s+(\d+)/.exec(meminfo)?.[1] ?? NaN);
  let commit = "unknown";
  try {
    const out = await new Deno.Command("git", {
      args: ["-C", REPO, "rev-parse", "--short", "HEAD"],
      stdout: "piped",
      stderr: "null",
    }).output();
    if (out.success) commit = new TextDecoder().decode(out.stdout).trim();
    // Figures of a changed tree are not the commit's.
    const st = await new Deno.Command("git", {
      args: ["-C", REPO, "status", "--porcelain", "--untracked-files=no"],
      stdout: "piped",
      stderr: "null",
    }).output();
    if (st.success && st.stdout.length > 0) commit += "-dirty";
  } catch { /* no git */ }
  return {
    nproc: navigator.hardwareConcurrency,
    cpu,
    memoryGB: Math.round(memKB / 1024 / 1024 * 10) / 10,
    os: `${Deno.build.os} ${Deno.osRelease()}`,
    deno: Deno.version.deno,
    commit,
  };
}

function localDate(): string {
  const d = new Date();
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

async function main(): Promise<void> {
  const opts = parseOptions(Deno.args);
  const t0 = performance.now();
  const port = choosePort();
  log(
    `nodes on ${SERVER_IP}:${port} (server) and ${CLIENT_IP}:${port} (client)`,
  );
  const server = await BenchNode.start("server", SERVER_IP, port, true);
  const client = await BenchNode.start("client", CLIENT_IP, port, false);
  const opingL = server.tool("oping", ["-l", "-Q"], "server/oping-l");
  const ocbrL = server.tool("ocbr", ["-l", "-Q"], "server/ocbr-l");
  await opingL.waitFor(/ping server started/, 15_000);
  await ocbrL.waitFor(/CBR server started/, 15_000);
  // Until the servers are known to the irmd and both IPCPs answer.
  for (let i = 0;; i++) {
    const p = client.tool("oping", [
      "-n",
      "oping-server",
      "-c",
      "3",
      "-i",
      "20",
    ]);
    const r = await p.exit(30_000);
    procs.splice(procs.indexOf(p), 1);
    if (r.code === 0) break;
    if (i === 20) throw new Error(`the nodes do not answer:\n${r.stdout}`);
    await sleep(250);
  }

  // 5. Memory, idle: the server node as in the tutorial (irmd, IPCP, oping -l).
  log("idle memory");
  await sleep(2000);
  const rssSamples = {
    irmd: [] as number[],
    ipcp: [] as number[],
    oping: [] as number[],
  };
  for (let i = 0; i < 3; i++) {
    rssSamples.irmd.push(await rssMB(server.irmd.pid));
    rssSamples.ipcp.push(await rssMB(server.ipcpPid));
    rssSamples.oping.push(await rssMB(opingL.pid));
    await sleep(300);
  }
  const rss = {
    irmd: summarize(rssSamples.irmd),
    ipcp: summarize(rssSamples.ipcp),
    oping: summarize(rssSamples.oping),
    total: summarize(
      rssSamples.irmd.map((v, i) =>
        v + rssSamples.ipcp[i]! + rssSamples.oping[i]!
      ),
    ),
  };

  // 1 and 2. Raw UDP ping-pong, then oping -f, in each run.
  const raw: PingRun[] = [];
  const oping: { rtPerSec: number; avgMs: number }[] = [];
  const stack: PingRun[] = [];
  for (let r = 0; r < opts.runs; r++) {
    log(`ping run ${r + 1}/${opts.runs}`);
    raw.push(await rawPing(port, opts.count));
    oping.push(await opingFlood(client, opts.count));
    stack.push(await clientPing(client, 1, { count: opts.count }));
  }

  // 3. Flow allocation.
  const allocP50: number[] = [];
  const allocP99: number[] = [];
  const deallocP50: number[] = [];
  let allocFailures = 0;
  for (let r = 0; r < opts.runs; r++) {
    log(`allocation run ${r + 1}/${opts.runs}`);
    const j = await lastJson(
      client.script(
        "client.ts",
        ["alloc", "--count", String(opts.allocs)],
        "client/alloc",
      ),
      120_000,
    );
    allocP50.push(percentile(j.allocMs as number[], 50));
    allocP99.push(percentile(j.allocMs as number[], 99));
    deallocP50.push(percentile(j.deallocMs as number[], 50));
    allocFailures += j.failures as number;
  }

  // 6. Scaling: the ping on 1, 10 and 100 flows at once.
  const scale = new Map<number, PingRun[]>(FLOW_COUNTS.map((n) => [n, []]));
  for (let r = 0; r < opts.runs; r++) {
    for (const n of FLOW_COUNTS) {
      log(`scaling run ${r + 1}/${opts.runs}: ${n} flows`);
      const run = await clientPing(client, n, { ms: opts.scaleMs });
      scale.get(n)!.push(run);
    }
  }

  // 4. Throughput, stack and raw UDP in each run.
  const tput = new Map<number, { stack: Tput[]; raw: Tput[] }>(
    SIZES.map((s) => [s, { stack: [], raw: [] }]),
  );
  for (let r = 0; r < opts.runs; r++) {
    for (const size of SIZES) {
      log(`throughput run ${r + 1}/${opts.runs}: ${size} bytes`);
      const t = tput.get(size)!;
      t.stack.push(await stackThroughput(client, ocbrL, size, opts.seconds));
      t.raw.push(await rawThroughput(port, size, opts.seconds));
    }
  }

  // 4. Throughput offered at the target rate (not flooding): the loss there.
  const atTarget: Tput[] = [];
  for (let r = 0; r < opts.runs; r++) {
    log(
      `throughput run ${
        r + 1
      }/${opts.runs}: 1000 bytes at ${TARGET.mbps1000} Mb/s`,
    );
    atTarget.push(
      await stackThroughput(
        client,
        ocbrL,
        1000,
        opts.seconds,
        `${TARGET.mbps1000}M`,
      ),
    );
  }

  // Memory again, after all that (reported in the JSON only).
  await sleep(1000);
  const rssAfter = {
    irmd: await rssMB(server.irmd.pid),
    ipcp: await rssMB(server.ipcpPid),
    oping: await rssMB(opingL.pid),
  };

  // ------------------------------------------------------------------ report
  const rows: Row[] = [];
  const S = (xs: number[]) => summarize(xs);
  const rawRate = S(raw.map((x) => x.rtPerSec));
  const stackRate = S(oping.map((x) => x.rtPerSec));
  const ratio = S(oping.map((x, i) => x.rtPerSec / raw[i]!.rtPerSec));
  const us = (s: Summary) => ({
    median: s.median * 1000,
    min: s.min * 1000,
    max: s.max * 1000,
    runs: s.runs.map((v) => v * 1000),
  });
  rows.push(
    {
      id: "1",
      measure: "raw UDP ping-pong, 64 B (Deno, reused buffer)",
      value: `${fmtSummary(rawRate, "rt/s")}; p50 ${
        fmtSummary(us(S(raw.map((x) => x.p50))), "µs")
      }, p99 ${fmtSummary(us(S(raw.map((x) => x.p99))), "µs")}`,
      target: "baseline",
      met: undefined,
    },
    {
      id: "2",
      measure: `\`oping -f -Q -c ${opts.count}\`, 64 B`,
      value: `${fmtSummary(stackRate, "rt/s")}; avg ${
        fmtSummary(us(S(oping.map((x) => x.avgMs))), "µs")
      }`,
      target: `≥ ${
        fmtNum(TARGET.pingRate)
      } rt/s (${C_REF} ${C_REFERENCE.pingRate})`,
      met: stackRate.median >= TARGET.pingRate,
    },
    {
      id: "2",
      measure:
        `same flood ping from bench/client.ts, ${opts.count} round trips`,
      value: `${fmtSummary(S(stack.map((x) => x.rtPerSec)), "rt/s")}; p50 ${
        fmtSummary(us(S(stack.map((x) => x.p50))), "µs")
      }, p99 ${fmtSummary(us(S(stack.map((x) => x.p99))), "µs")}`,
      target: "",
      met: undefined,
    },
    {
      id: "2",
      measure: "oping -f / raw UDP (same run)",
      value: fmtSummary(
        {
          ...ratio,
          median: ratio.median * 100,
          min: ratio.min * 100,
          max: ratio.max * 100,
        },
        "%",
        0,
      ),
      target: "≥ 50%",
      met: ratio.median >= TARGET.pingRatio,
    },
  );
  const a50 = S(allocP50), a99 = S(allocP99);
  rows.push(
    {
      id: "3",
      measure:
        `flow allocation, ${opts.allocs} sequential (after ${ALLOC_WARMUP}), p50`,
      value: fmtSummary(a50, "ms"),
      target: `≤ ${TARGET.allocP50} ms (${C_REF} ${C_REFERENCE.allocP50})`,
      met: a50.median <= TARGET.allocP50,
    },
    {
      id: "3",
      measure: "flow allocation, p99",
      value: fmtSummary(a99, "ms"),
      target: `≤ ${TARGET.allocP99} ms`,
      met: a99.median <= TARGET.allocP99,
    },
    {
      id: "3",
      measure: "deallocation, p50",
      value: fmtSummary(S(deallocP50), "ms"),
      target: "",
      met: undefined,
    },
  );
  for (const size of SIZES) {
    const t = tput.get(size)!;
    const mb = S(t.stack.map((x) => x.mbps));
    const loss = S(t.stack.map((x) => x.lossPct));
    const rawMb = S(t.raw.map((x) => x.mbps));
    const tr = S(t.stack.map((x, i) => 100 * x.mbps / t.raw[i]!.mbps));
    const is1000 = size === 1000;
    rows.push(
      {
        id: "4",
        measure: `\`ocbr -f -s ${size}\`, ${opts.seconds} s: received`,
        value: `${fmtSummary(mb, "Mb/s")} (offered ${
          fmtNum(S(t.stack.map((x) => x.sentMbps)).median)
        } Mb/s)`,
        target: is1000
          ? `≥ ${TARGET.mbps1000} Mb/s (${C_REF} ${C_REFERENCE.throughput})`
          : "",
        met: is1000 ? mb.median >= TARGET.mbps1000 : undefined,
      },
      {
        id: "4",
        measure: `\`ocbr -f -s ${size}\`: loss`,
        value: fmtSummary(loss, "%", 2),
        target: is1000 ? `≤ ${TARGET.lossPct}%` : "",
        met: is1000 ? loss.median <= TARGET.lossPct : undefined,
      },
      {
        id: "4",
        measure: `raw UDP sender/receiver, ${size} B: received; loss`,
        value: `${fmtSummary(rawMb, "Mb/s")}; ${
          fmtSummary(S(t.raw.map((x) => x.lossPct)), "%", 2)
        }`,
        target: "baseline",
        met: undefined,
      },
      {
        id: "4",
        measure: `ocbr / raw UDP, ${size} B (same run)`,
        value: fmtSummary(tr, "%", 0),
        target: "",
        met: undefined,
      },
    );
  }
  rows.push({
    id: "4",
    measure:
      `\`ocbr -s 1000 -r ${TARGET.mbps1000}M\`, ${opts.seconds} s: received; loss`,
    value: `${fmtSummary(S(atTarget.map((x) => x.mbps)), "Mb/s")}; ${
      fmtSummary(S(atTarget.map((x) => x.lossPct)), "%", 2)
    }`,
    target: `≤ ${TARGET.lossPct}% loss`,
    met: S(atTarget.map((x) => x.lossPct)).median <= TARGET.lossPct,
  });
  const mbRow = (what: string, s: Summary, limit?: number): Row => ({
    id: "5",
    measure: `idle RSS: ${what}`,
    value: fmtSummary(s, "MB", 1),
    target: limit === undefined
      ? ""
      : `≤ ${limit} MB (${C_REF} ${C_REFERENCE.rss})`,
    met: limit === undefined ? undefined : s.median <= limit,
  });
  rows.push(
    mbRow("irmd", rss.irmd, TARGET.rssMB),
    mbRow("ipcpd-udp4", rss.ipcp, TARGET.rssMB),
    mbRow("oping -l", rss.oping, TARGET.rssMB),
    mbRow("server node (irmd + IPCP + oping -l)", rss.total),
  );
  for (const n of FLOW_COUNTS) {
    const runs = scale.get(n)!;
    rows.push({
      id: "6",
      measure: `ping on ${n} flow${
        n === 1 ? "" : "s"
      } at once (1 outstanding each)`,
      value: `${fmtSummary(S(runs.map((x) => x.rtPerSec)), "rt/s")}; p50 ${
        fmtSummary(us(S(runs.map((x) => x.p50))), "µs")
      }, p99 ${fmtSummary(us(S(runs.map((x) => x.p99))), "µs")}`,
      target: "",
      met: undefined,
    });
  }

  const table = markdownTable(rows);
  const date = localDate();
  const m = await machine();
  await Deno.mkdir(opts.out, { recursive: true });
  const svgPath = `${opts.out}/${date}-${m.commit}-rtt.svg`;
  const jsonPath = `${opts.out}/${date}-${m.commit}.json`;
  const svg = rttCdfSvg(
    `RTT distributions, 64-byte ping on loopback (${opts.runs} runs pooled)`,
    [
      {
        label: "raw UDP (Deno)",
        color: "#1f77b4",
        values: raw.flatMap((x) => x.rtts),
      },
      {
        label: "flood ping through the stack",
        color: "#d62728",
        values: stack.flatMap((x) => x.rtts),
      },
      {
        label: "10 flows at once",
        color: "#2ca02c",
        values: scale.get(10)!.flatMap((x) => x.rtts),
      },
      {
        label: "100 flows at once",
        color: "#9467bd",
        values: scale.get(100)!.flatMap((x) => x.rtts),
      },
    ],
  );
  await Deno.writeTextFile(svgPath, svg);
  const strip = (x: PingRun) => ({
    rtPerSec: x.rtPerSec,
    p50Ms: x.p50,
    p99Ms: x.p99,
  });
  const result = {
    date,
    machine: m,
    options: opts,
    elapsedS: Math.round((performance.now() - t0) / 100) / 10,
    ping: { raw: raw.map(strip), oping, client: stack.map(strip) },
    alloc: {
      p50Ms: allocP50,
      p99Ms: allocP99,
      deallocP50Ms: deallocP50,
      failures: allocFailures,
    },
    throughput: {
      ...Object.fromEntries(SIZES.map((s) => [s, tput.get(s)])),
      [`1000@${TARGET.mbps1000}M`]: atTarget,
    },
    rssMB: { idle: rss, afterLoad: rssAfter },
    scaling: Object.fromEntries(
      FLOW_COUNTS.map((n) => [n, scale.get(n)!.map(strip)]),
    ),
    targets: TARGET,
    cReference: { ...C_REFERENCE, note: C_REFERENCE_NOTE },
    table: rows,
  };
  await Deno.writeTextFile(jsonPath, JSON.stringify(result, null, 2) + "\n");
  console.log(
    `\nOuroboros data path benchmark, ${date}: ${m.nproc} × ${m.cpu}, ${m.memoryGB} GB, ` +
      `Deno ${m.deno}, commit ${m.commit}; median [min–max] of ${opts.runs} run(s)\n`,
  );
  console.log(table);
  console.log(`\n${C_REFERENCE_NOTE}`);
  console.log(`\nResults: ${jsonPath}\nRTT plot: ${svgPath}`);
  log(`done in ${result.elapsedS} s`);
}

if (import.meta.main) {
  const onSignal = () => {
    log("interrupted; stopping every process started");
    void cleanup().then(() => Deno.exit(130));
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  let code = 0;
  try {
    await main();
  } catch (e) {
    console.error(`bench: ${e instanceof Error ? e.stack : e}`);
    code = 1;
  } finally {
    await cleanup();
  }
  Deno.exit(code);
}
