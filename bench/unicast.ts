/**
 * The unicast layer's part of `deno task bench` (`--only unicast` runs it
 * alone): four nodes on loopback, each an irmd of its own (the setups of
 * tests/unicast_net_test.ts and spec/unicast.md 9, one UDP layer per link):
 *
 *   A  127.0.0.1  udp-a in udp-ab; uni-a bootstraps layer uni; a server
 *                 (`oping -l`) for srv-a (in uni) and srv-udp (in udp-ab)
 *   B  127.0.0.2  udp-b1 in udp-ab, 127.0.0.3 udp-b2 in udp-bc; uni-b
 *                 enrolls with uni-a and connects to it (by this module)
 *   C  127.0.0.4  udp-c in udp-bc; uni-c enrolls with uni-b and connects
 *                 (its irmd.conf); a server for srv-c (in uni)
 *   D  127.0.0.5  udp-d in udp-ab only: the baseline, no unicast IPCP
 *
 * Every UDP IPCP is on one port, chosen free on all five addresses. It
 * measures:
 *
 *   - enrollment: `irm ipcp enroll name uni-b dst uni-a` (the request `irm`
 *     sends, timed from the bench's own connection to B's irmd, so without
 *     irm's start) of a fresh IPCP (created untimed; the one before it
 *     destroyed), and then `irm ipcp connect name uni-b dst uni-a` (mgmt,
 *     then dt), each `enrolls` times, and beside them what `irm` itself
 *     adds: `irm ipcp list` from start to exit;
 *   - the ping of bench/client.ts (64 B, raw, one outstanding) over the UDP
 *     layer alone (D to A), across 1 hop (B to A) and 2 hops (A to C through
 *     B), in each run;
 *   - sequential allocations, each followed by one echo, on the same three
 *     paths (bench/client.ts alloc --echo), in each run;
 *   - the idle RSS of the three ipcpd-unicast processes after setup.
 *
 * The processes are started through the benchmark's kit (bench/bench.ts),
 * which ends every one of them, also on an error or Ctrl-C.
 */
import type { Proc } from "../lib/util/child.ts";
import { connectCtrl } from "../lib/ipc/ctrl.ts";
import type { Method, Req, Res } from "../lib/ipc/proto.ts";
import { irmdSocketPath, RUNDIR_ENV } from "../lib/ipc/rundir.ts";
import { nameHashHex } from "../lib/wire/name_hash.ts";
import { selfCommand } from "../lib/util/self.ts";
import { ALLOC_WARMUP } from "./client.ts";
import {
  type AllocFigures,
  percentile,
  type PingFigures,
  UNICAST_IPCPS,
  UNICAST_PATHS,
  type UnicastFigures,
  type UnicastIpcp,
  type UnicastPath,
} from "./report.ts";

/** What the benchmark lends this module: its processes and helpers. */
export interface BenchKit {
  /** Starts a process that the benchmark ends at the latest in cleanup. */
  spawn(label: string, cmd: string[], env?: Record<string, string>): Proc;
  /** Ends a process started with `spawn`. */
  stopProc(p: Proc): Promise<void>;
  /** Waits for a process to exit, then forgets it. */
  exit(
    p: Proc,
    timeoutMs: number,
  ): Promise<{ code: number; stdout: string; stderr: string }>;
  /** The last JSON line of a process that must exit with 0. */
  lastJson(p: Proc, timeoutMs: number): Promise<Record<string, unknown>>;
  rssMB(pid: number): Promise<number>;
  log(msg: string): void;
  /** A temporary directory, removed in cleanup. */
  tempDir(prefix: string): Promise<string>;
  /** A UDP port free on every one of the addresses. */
  choosePort(ips: readonly string[]): number;
  /** The command that runs a bench/ script. */
  denoScript(script: string, args: string[]): string[];
  /** bin/ouroboros, linked as the node's tools. */
  launcher: string;
}

export interface UnicastOptions {
  runs: number;
  /** round trips in each ping run */
  count: number;
  /** timed allocations in each allocation run */
  allocs: number;
  /** enrollments (each of a fresh IPCP) */
  enrolls: number;
}

const IP = {
  a: "127.0.0.1",
  b1: "127.0.0.2",
  b2: "127.0.0.3",
  c: "127.0.0.4",
  d: "127.0.0.5",
} as const;

/** The irmd gives the IPCP 30 s to enroll; irm waits 75 s (with creation). */
const ENROLL_MS = 75_000;
/** The irmd gives each of the two components 30 s. */
const CONNECT_MS = 65_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function hostsLine(ip: string, name: string): string {
  return `${ip} ${nameHashHex(name)} #${name}\n`;
}

/** A node: an irmd with its own directory, configuration and links. */
class UNode {
  irmd!: Proc;
  private constructor(
    readonly kit: BenchKit,
    readonly label: string,
    readonly dir: string,
  ) {}

  get rundir(): string {
    return `${this.dir}/run`;
  }

  get env(): Record<string, string> {
    return { [RUNDIR_ENV]: this.rundir };
  }

  bin(name: string): string {
    return `${this.dir}/bin/${name}`;
  }

  /**
   * Starts the irmd with `config` (`@DIR@` is the node's directory) and the
   * `files` written beside it, and waits for each of `ready` in turn.
   */
  static async start(
    kit: BenchKit,
    label: string,
    config: string,
    files: Record<string, string>,
    ready: RegExp[],
  ): Promise<UNode> {
    const dir = await kit.tempDir(`o7s-bench-${label}-`);
    const node = new UNode(kit, label, dir);
    await Deno.mkdir(`${dir}/bin`);
    for (const n of ["oping", "irm"]) {
      await Deno.symlink(kit.launcher, node.bin(n));
    }
    for (const [name, text] of Object.entries(files)) {
      await Deno.writeTextFile(`${dir}/${name}`, text);
    }
    await Deno.writeTextFile(
      `${dir}/irmd.conf`,
      config.replaceAll("@DIR@", dir),
    );
    node.irmd = kit.spawn(
      `${label}/irmd`,
      selfCommand("irmd", ["--rundir", node.rundir, "-c", `${dir}/irmd.conf`]),
    );
    let from = 0;
    for (const re of ready) {
      await node.irmd.waitFor(re, 60_000, from);
      from = node.irmd.lines.findIndex((l, i) => i >= from && re.test(l)) + 1;
    }
    return node;
  }

  tool(name: string, args: string[], label = `${this.label}/${name}`): Proc {
    return this.kit.spawn(label, [this.bin(name), ...args], this.env);
  }

  script(script: string, args: string[], label: string): Proc {
    return this.kit.spawn(label, this.kit.denoScript(script, args), this.env);
  }

  /**
   * One request to the irmd, as `irm` sends it, on a connection of its
   * own; the reply and the milliseconds from sending to the reply (the
   * connection and its hello are not timed).
   */
  async request<M extends Method>(
    method: M,
    body: Req<M>,
    timeoutMs = 15_000,
  ): Promise<{ res: Res<M>; ms: number }> {
    const conn = await connectCtrl(irmdSocketPath(this.rundir));
    try {
      await conn.request("hello", { role: "tool", pid: Deno.pid }, 5000);
      const t0 = performance.now();
      const res = await conn.request(method, body, timeoutMs);
      return { res, ms: performance.now() - t0 };
    } finally {
      conn.close();
      await conn.done;
    }
  }

  async ipcpPid(name: string): Promise<number> {
    const { res } = await this.request("irm.ipcp.list", { name });
    const pid = res.ipcps.find((i) => i.name === name)?.pid;
    if (pid === undefined) throw new Error(`${this.label}: no IPCP ${name}`);
    return pid;
  }

  async stop(): Promise<void> {
    await this.kit.stopProc(this.irmd);
  }
}

/** Node A: bootstraps layer uni; serves srv-a (in uni) and srv-udp. */
function configA(port: number): string {
  return `[name."srv-a"]
prog = ["@DIR@/bin/oping"]

[name."srv-udp"]
prog = ["@DIR@/bin/oping"]

[udp4.udp-a]
bootstrap = "udp-ab"
ip = "${IP.a}"
port = ${port}
hosts = "@DIR@/hosts"
reg = ["uni-a", "uni", "srv-udp"]

[unicast.uni-a]
bootstrap = "uni"
autobind = true
reg = ["srv-a"]
`;
}

/** Node B: the two UDP layers only; uni-b is made by the bench. */
function configB(port: number): string {
  return `[udp4.udp-b1]
bootstrap = "udp-ab"
ip = "${IP.b1}"
port = ${port}
hosts = "@DIR@/hosts"
reg = ["uni-b"]

[udp4.udp-b2]
bootstrap = "udp-bc"
ip = "${IP.b2}"
port = ${port}
hosts = "@DIR@/hosts-bc"
reg = ["uni-b"]
`;
}

/** Node C: enrolls with uni-b and connects to it; serves srv-c. */
function configC(port: number): string {
  return `[name."srv-c"]
prog = ["@DIR@/bin/oping"]

[udp4.udp-c]
bootstrap = "udp-bc"
ip = "${IP.c}"
port = ${port}
hosts = "@DIR@/hosts"

[unicast.uni-c]
enrol = "uni-b"
conn = ["uni-b"]
autobind = true
reg = ["srv-c"]
`;
}

/** Node D: the UDP layer udp-ab alone. */
function configD(port: number): string {
  return `[udp4.udp-d]
bootstrap = "udp-ab"
ip = "${IP.d}"
port = ${port}
hosts = "@DIR@/hosts"
`;
}

/** Until `oping -n name` from `node` gets its replies (routes, DHT). */
async function reachable(
  kit: BenchKit,
  node: UNode,
  name: string,
): Promise<void> {
  let last = "";
  for (let i = 0; i < 60; i++) {
    const p = node.tool("oping", ["-n", name, "-c", "3", "-i", "20"]);
    const r = await kit.exit(p, 30_000);
    if (r.code === 0) return;
    last = `${r.stdout}\n${r.stderr}`;
    await sleep(250);
  }
  throw new Error(`${node.label} does not reach ${name}:\n${last}`);
}

/** The client and the server name of each path. */
interface PathEnds {
  client: UNode;
  name: string;
}

async function pingRun(
  node: UNode,
  name: string,
  count: number,
  label: string,
): Promise<PingFigures> {
  const j = await node.kit.lastJson(
    node.script("client.ts", [
      "scale",
      "--name",
      name,
      "--flows",
      "1",
      "--count",
      String(count),
      "--ms",
      "60000",
    ], label),
    120_000,
  );
  const rtts = j.rttMs as number[];
  return {
    rtPerSec: j.rtPerSec as number,
    p50Ms: percentile(rtts, 50),
    p99Ms: percentile(rtts, 99),
  };
}

async function allocRun(
  node: UNode,
  name: string,
  allocs: number,
  label: string,
): Promise<AllocFigures> {
  const j = await node.kit.lastJson(
    node.script(
      "client.ts",
      ["alloc", "--name", name, "--count", String(allocs), "--echo"],
      label,
    ),
    300_000,
  );
  const allocMs = j.allocMs as number[];
  return {
    p50Ms: percentile(allocMs, 50),
    p99Ms: percentile(allocMs, 99),
    echoP50Ms: percentile(j.echoMs as number[], 50),
    failures: j.failures as number,
    echoFailures: j.echoFailures as number,
  };
}

/** The unicast measurements; every process it starts is ended. */
export async function unicastBench(
  kit: BenchKit,
  opts: UnicastOptions,
): Promise<UnicastFigures> {
  const port = kit.choosePort(Object.values(IP));
  kit.log(
    `unicast: nodes A ${IP.a}, B ${IP.b1}/${IP.b2}, C ${IP.c}, D ${IP.d}, UDP port ${port}`,
  );
  const nodes: UNode[] = [];
  const servers: Proc[] = [];
  try {
    const a = await UNode.start(kit, "uni-a", configA(port), { hosts: "" }, [
      /Registered srv-a with IPCP \d+/,
    ]);
    nodes.push(a);
    const b = await UNode.start(kit, "uni-b", configB(port), {
      hosts: hostsLine(IP.a, "uni-a"),
      "hosts-bc": "",
    }, [/Registered uni-b with IPCP/, /Registered uni-b with IPCP/]);
    nodes.push(b);

    // Enrollment and connection of a fresh uni-b, `enrolls` times.
    const enrollMs: number[] = [];
    const connectMs: number[] = [];
    const irmMs: number[] = [];
    for (let i = 0; i < opts.enrolls; i++) {
      kit.log(`unicast: enrollment ${i + 1}/${opts.enrolls}`);
      if (i > 0) {
        await b.request("irm.ipcp.destroy", { name: "uni-b" });
        await sleep(200);
      }
      await b.request("irm.ipcp.create", { name: "uni-b", type: "unicast" });
      const e = await b.request("irm.ipcp.enroll", {
        name: "uni-b",
        dst: "uni-a",
        autobind: true,
      }, ENROLL_MS);
      enrollMs.push(e.ms);
      const c = await b.request(
        "irm.ipcp.connect",
        { name: "uni-b", dst: "uni-a" },
        CONNECT_MS,
      );
      connectMs.push(c.ms);
      // What irm itself adds: a command that asks little of the irmd.
      const t0 = performance.now();
      const r = await kit.exit(b.tool("irm", ["ipcp", "list"]), 30_000);
      if (r.code !== 0) throw new Error(`irm ipcp list failed:\n${r.stderr}`);
      irmMs.push(performance.now() - t0);
    }

    const c = await UNode.start(kit, "uni-c", configC(port), {
      hosts: hostsLine(IP.b2, "uni-b"),
    }, [
      /Registered srv-c with IPCP \d+/,
      /Connected IPCP \d+ to uni-b for dt/,
    ]);
    nodes.push(c);
    const d = await UNode.start(kit, "uni-d", configD(port), {
      hosts: hostsLine(IP.a, "srv-udp"),
    }, [/Bootstrapped IPCP \d+ in layer udp-ab/]);
    nodes.push(d);
    for (const [node, label] of [[a, "uni-a"], [c, "uni-c"]] as const) {
      const s = node.tool("oping", ["-l", "-Q"], `${label}/oping-l`);
      servers.push(s);
      await s.waitFor(/ping server started/, 15_000);
    }
    const paths: Record<UnicastPath, PathEnds> = {
      udp: { client: d, name: "srv-udp" },
      hop1: { client: b, name: "srv-a" },
      hop2: { client: a, name: "srv-c" },
    };
    for (const p of UNICAST_PATHS) {
      await reachable(kit, paths[p].client, paths[p].name);
    }

    // Idle memory of the unicast IPCPs, set up and connected.
    kit.log("unicast: idle memory");
    const pids: Record<UnicastIpcp, number> = {
      "uni-a": await a.ipcpPid("uni-a"),
      "uni-b": await b.ipcpPid("uni-b"),
      "uni-c": await c.ipcpPid("uni-c"),
    };
    await sleep(2000);
    const rssMB: Record<UnicastIpcp, number[]> = {
      "uni-a": [],
      "uni-b": [],
      "uni-c": [],
    };
    for (let k = 0; k < 3; k++) {
      for (const i of UNICAST_IPCPS) rssMB[i].push(await kit.rssMB(pids[i]));
      await sleep(300);
    }

    const ping = { udp: [], hop1: [], hop2: [] } as Record<
      UnicastPath,
      PingFigures[]
    >;
    const alloc = { udp: [], hop1: [], hop2: [] } as Record<
      UnicastPath,
      AllocFigures[]
    >;
    for (let r = 0; r < opts.runs; r++) {
      for (const p of UNICAST_PATHS) {
        kit.log(`unicast: ping run ${r + 1}/${opts.runs}: ${p}`);
        const { client, name } = paths[p];
        ping[p].push(
          await pingRun(client, name, opts.count, `${client.label}/ping`),
        );
      }
      for (const p of UNICAST_PATHS) {
        kit.log(`unicast: allocation run ${r + 1}/${opts.runs}: ${p}`);
        const { client, name } = paths[p];
        alloc[p].push(
          await allocRun(client, name, opts.allocs, `${client.label}/alloc`),
        );
      }
    }
    return {
      count: opts.count,
      allocs: opts.allocs,
      warmup: ALLOC_WARMUP,
      enrollMs: enrollMs.map((x) => Math.round(x * 100) / 100),
      connectMs: connectMs.map((x) => Math.round(x * 100) / 100),
      irmMs: irmMs.map((x) => Math.round(x * 100) / 100),
      ping,
      alloc,
      rssMB,
    };
  } finally {
    for (const s of servers) await kit.stopProc(s);
    // The last node first: C and D lean on A and B.
    for (const n of nodes.reverse()) await n.stop();
  }
}
