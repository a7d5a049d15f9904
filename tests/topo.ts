/**
 * Topologies of unicast nodes for tests/unicast_topo_test.ts: irmd.conf
 * stanzas for nodes whose links are UDP layers of their own (one udp4 IPCP
 * per link end, each with its own hosts file), the log lines a unicast
 * member writes (its address, its forwarding tables), a network namespace
 * with lo up for the nodes, and nftables rules in it that cut a link.
 *
 * Run as a program, it is the sequential allocator of the 200-allocation
 * test: `deno run -A tests/topo.ts <rundir> <name> <count> <timeout ms>`
 * allocates a flow to `name` `count` times in a row on the node of
 * `rundir`, sends one oping echo request on each, waits for the reply and
 * closes the flow; it prints one line `RESULT {json}` with every latency.
 */
import { assert, assertEquals } from "./assert.ts";
import { eventually, type Node, runCommand } from "./harness.ts";
import { nameHashHex } from "../lib/wire/name_hash.ts";

export const CI = Deno.env.get("CI") === "true";

// ---------------------------------------------------------------------------
// Configuration

/** A hosts line for a lower-layer name (UDP layers hash names with MD5). */
export function hostsLine(ip: string, name: string): string {
  return `${ip} ${nameHashHex(name)} #${name}\n`;
}

/** One end of a link: a udp4 IPCP in the link's own UDP layer. */
export interface LinkEnd {
  /** The udp4 IPCP's name (also names its hosts file, hosts-<name>). */
  ipcp: string;
  /** The UDP layer, one per link. */
  layer: string;
  ip: string;
  /** Names registered in this UDP layer (the unicast IPCP's, its layer's). */
  reg?: string[];
  /** Peer names reachable in this layer, with their IP. */
  peers?: Record<string, string>;
}

/** The routing timers of a layer (seconds), set where it is bootstrapped. */
export interface Timers {
  update: number;
  timeo: number;
  recalc?: number;
}

export interface UnicastSpec {
  name: string;
  /** Bootstrap this layer... */
  bootstrap?: string;
  /** ... or enroll with this member. */
  enrol?: string;
  conn?: string[];
  reg?: string[];
  timers?: Timers;
}

/** A node's irmd.conf and the hosts files its UDP IPCPs read. */
export interface NodeConf {
  config: string;
  files: Record<string, string>;
}

const list = (xs: string[]) => `[${xs.map((x) => `"${x}"`).join(", ")}]`;

/**
 * The configuration of a node: `[name."oping"]` (the program, so that the
 * name exists on every node), one udp4 stanza per link end, the unicast
 * stanza (autobind always).
 */
export function nodeConf(ends: LinkEnd[], uni: UnicastSpec): NodeConf {
  const files: Record<string, string> = {};
  let config = `[name."oping"]\nprog = ["@DIR@/bin/oping"]\n`;
  for (const e of ends) {
    files[`hosts-${e.ipcp}`] = Object.entries(e.peers ?? {}).map(([n, ip]) =>
      hostsLine(ip, n)
    ).join("");
    config += `
[udp4.${e.ipcp}]
bootstrap = "${e.layer}"
ip = "${e.ip}"
hosts = "@DIR@/hosts-${e.ipcp}"
${e.reg === undefined ? "" : `reg = ${list(e.reg)}\n`}`;
  }
  config += `\n[unicast.${uni.name}]\n`;
  if (uni.bootstrap !== undefined) config += `bootstrap = "${uni.bootstrap}"\n`;
  if (uni.enrol !== undefined) config += `enrol = "${uni.enrol}"\n`;
  if (uni.conn !== undefined) config += `conn = ${list(uni.conn)}\n`;
  config += "autobind = true\n";
  if (uni.reg !== undefined) config += `reg = ${list(uni.reg)}\n`;
  if (uni.timers !== undefined) {
    config +=
      `ls_t_update = ${uni.timers.update}\nls_t_timeo = ${uni.timers.timeo}\n`;
    if (uni.timers.recalc !== undefined) {
      config += `ls_t_recalc = ${uni.timers.recalc}\n`;
    }
  }
  return { config, files };
}

// ---------------------------------------------------------------------------
// What a unicast member logs

/** Where to look in a node's log: from line `from` on, and only what IPCP `pid` wrote. */
export interface LogPart {
  from?: number;
  pid?: number;
}

/** The lines of the node's log in `part`. */
export function logLines(node: Node, part: LogPart = {}): string[] {
  const ls = node.irmd.lines.slice(part.from ?? 0);
  return part.pid === undefined
    ? ls
    : ls.filter((l) =>
      l.startsWith(`==${String(part.pid).padStart(5, "0")}==`)
    );
}

/** The address the first member started in `part` got. */
export function addressOf(node: Node, part: LogPart = {}): bigint {
  const m = logLines(node, part).map((l) => /IPCP got address (\d+)/.exec(l))
    .find((x) => x !== null);
  assert(m !== undefined && m !== null, `no address in ${node.label}`);
  return BigInt(m[1]!);
}

/** The latest forwarding tables a unicast member logged in `part`. */
export function lastTables(
  node: Node,
  part: LogPart = {},
): Map<bigint, bigint[]> | undefined {
  const line = logLines(node, part).findLast((l) =>
    l.includes("Forwarding tables: ")
  );
  return line === undefined ? undefined : parseTables(line);
}

/** "Forwarding tables: D via H, D2 via H2/H3." as destination -> next hops. */
export function parseTables(line: string): Map<bigint, bigint[]> {
  const t = new Map<bigint, bigint[]>();
  const m = /Forwarding tables: (.*)\.$/.exec(line);
  if (m === null || m[1] === "no routes") return t;
  for (const e of m[1]!.split(", ")) {
    const [d, h] = e.split(" via ");
    t.set(BigInt(d!), h!.split("/").map((x) => BigInt(x)));
  }
  return t;
}

const showTables = (t: Map<bigint, bigint[]> | undefined) =>
  t === undefined
    ? "none"
    : `[${[...t].map(([d, h]) => `${d} via ${h.join("/")}`).join(", ")}]`;

/**
 * Waits until the latest tables logged in `part` satisfy `ok`; returns
 * them. (Polls the collected log: the tables are state, the last line wins.)
 */
export async function tablesUntil(
  node: Node,
  what: string,
  ok: (t: Map<bigint, bigint[]>) => boolean,
  ms: number,
  part: LogPart = {},
): Promise<Map<bigint, bigint[]>> {
  let t: Map<bigint, bigint[]> | undefined;
  await eventually(`${node.label}: ${what}`, () => {
    t = lastTables(node, part);
    return Promise.resolve(t !== undefined && ok(t));
  }, ms).catch((e) => {
    throw new Error(
      `${(e as Error).message}; its last tables: ${showTables(t)}\n` +
        node.irmd.lines.slice(-40).join("\n"),
    );
  });
  return t!;
}

/** Waits for the route to `dst` to go via `via` (its first next hop). */
export function routeVia(
  node: Node,
  dst: bigint,
  via: bigint,
  ms = 20_000,
  part: LogPart = {},
): Promise<Map<bigint, bigint[]>> {
  return tablesUntil(
    node,
    `a route to ${dst} via ${via}`,
    (t) => t.get(dst)?.[0] === via,
    ms,
    part,
  );
}

// ---------------------------------------------------------------------------
// Network namespaces and nftables

async function sh(cmd: string): Promise<void> {
  const r = await runCommand("sh", ["-c", cmd], { timeoutMs: 10_000 });
  assertEquals(r.code, 0, `${cmd}: ${r.stdout}${r.stderr}`);
}

async function has(tool: string): Promise<boolean> {
  const r = await runCommand("sh", ["-c", `command -v ${tool}`], {
    timeoutMs: 5000,
  }).catch(() => undefined);
  return r !== undefined && r.code === 0;
}

/**
 * Why nodes cannot run in a namespace of their own here (and a link cannot
 * be cut), or undefined when they can.
 */
export async function namespacesUnavailable(
  nft: boolean,
): Promise<string | undefined> {
  if (Deno.uid() !== 0) return "not root (network namespaces need it)";
  if (!await has("ip")) return "ip is not installed (iproute2)";
  if (nft && !await has("nft")) return "nft is not installed (nftables)";
  return undefined;
}

/** A network namespace with lo up, for the nodes of one test. */
export interface Namespace {
  name: string;
  /** Drops every UDP datagram between the two addresses (both ways). */
  cut(a: string, b: string): Promise<void>;
  /** Removes the rules `cut` made. */
  heal(): Promise<void>;
  remove(): Promise<void>;
}

let namespaces = 0;

export async function namespace(tag: string): Promise<Namespace> {
  const name = `o7s-topo-${Deno.pid}-${tag}-${namespaces++}`;
  await sh(`ip netns add ${name}`);
  const inNs = `ip netns exec ${name}`;
  try {
    await sh(`${inNs} ip link set lo up`);
  } catch (e) {
    await runCommand("ip", ["netns", "del", name], { timeoutMs: 10_000 });
    throw e;
  }
  let table = false;
  return {
    name,
    // On the input hook: a drop on output would fail the sender (EPERM).
    cut: async (a, b) => {
      const set = `{ ${a}, ${b} }`;
      await sh(
        `${inNs} nft '${table ? "" : "add table inet o7s-cut; "}` +
          (table
            ? ""
            : `add chain inet o7s-cut input { type filter hook input priority 0; }; `) +
          `add rule inet o7s-cut input ip saddr ${set} ip daddr ${set} meta l4proto udp drop'`,
      );
      table = true;
    },
    heal: async () => {
      if (table) await sh(`${inNs} nft delete table inet o7s-cut`);
      table = false;
    },
    remove: async () => {
      await runCommand("ip", ["netns", "del", name], { timeoutMs: 10_000 });
    },
  };
}

// ---------------------------------------------------------------------------
// The sequential allocator (run as a program)

export interface AllocResult {
  ok: number;
  failures: string[];
  /** Each cycle's allocation time (ms: allocate() until the flow is granted). */
  allocMs: number[];
  /** Each cycle's echo time (ms: request written until the reply is read). */
  echoMs: number[];
  /** Each whole cycle (ms: allocate, echo, close). */
  cycleMs: number[];
}

/** The `p`th percentile (0-100) of `xs`, nearest rank. */
export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s[
    Math.min(s.length - 1, Math.max(0, Math.ceil(p / 100 * s.length) - 1))
  ]!;
}

async function allocateInARow(
  rundir: string,
  name: string,
  count: number,
  timeoutMs: number,
): Promise<AllocResult> {
  const { Ouroboros } = await import("../lib/app/dev.ts");
  const { decodeOping, ECHO_REPLY, ECHO_REQUEST, encodeOping, newOpingPacket } =
    await import("../lib/wire/oping_msg.ts");
  const app = await Ouroboros.connect({ rundir, prog: "topo-alloc" });
  const r: AllocResult = {
    ok: 0,
    failures: [],
    allocMs: [],
    echoMs: [],
    cycleMs: [],
  };
  try {
    for (let i = 0; i < count; i++) {
      const t0 = performance.now();
      try {
        const f = await app.allocate(name, { timeoutMs });
        const t1 = performance.now();
        try {
          const p = newOpingPacket(64);
          encodeOping(p, { type: ECHO_REQUEST, id: i, sec: 0n, nsec: 0n });
          await f.write(p);
          const back = await f.read({ timeoutMs });
          const t2 = performance.now();
          const m = decodeOping(back);
          if (!m.ok || m.value.type !== ECHO_REPLY || m.value.id !== i) {
            throw new Error(
              `not the echo of ${i}: ${
                m.ok
                  ? JSON.stringify(m.value, (_, v) =>
                    typeof v === "bigint" ? String(v) : v)
                  : m.error
              }`,
            );
          }
          r.allocMs.push(t1 - t0);
          r.echoMs.push(t2 - t1);
        } finally {
          await f.close();
        }
        r.cycleMs.push(performance.now() - t0);
        r.ok++;
      } catch (e) {
        r.failures.push(`${i}: ${e instanceof Error ? e.message : e}`);
      }
    }
  } finally {
    await app.close();
  }
  return r;
}

if (import.meta.main) {
  const [rundir, name, count, timeoutMs] = Deno.args;
  const r = await allocateInARow(
    rundir!,
    name!,
    Number(count),
    Number(timeoutMs ?? "10000"),
  );
  console.log(`RESULT ${JSON.stringify(r)}`);
}
