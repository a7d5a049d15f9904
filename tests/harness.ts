/**
 * Multi-process test harness: nodes (an irmd with its own runtime directory,
 * configuration and hosts file) and tools run as real processes of the
 * `ouroboros` program. Everything waits on events (a line of output, an
 * exit) with a deadline; `close()` ends every process that was started and
 * removes the temporary files.
 */
import { selfCommand } from "../lib/util/self.ts";
import { irmdSocketPath, RUNDIR_ENV } from "../lib/ipc/rundir.ts";
import { connectCtrl } from "../lib/ipc/ctrl.ts";
import type { Method, Req, Res } from "../lib/ipc/proto.ts";
import { Proc } from "../lib/util/child.ts";
import { assert, assertEquals, assertMatch } from "./assert.ts";

export { Proc };

export const REPO = new URL("../", import.meta.url).pathname;
export const LAUNCHER = `${REPO}bin/ouroboros`;

export interface NodeOptions {
  /** Configuration text; `@DIR@` is replaced by the node's directory. */
  config?: string;
  /** Hosts file text, written to `<dir>/hosts`. */
  hosts?: string;
  /** More files, by name in the node's directory, written before it starts. */
  files?: Record<string, string>;
  debug?: boolean;
  /** Wait for this line before returning (default: the last registration or bootstrap). */
  ready?: RegExp;
  /** Most files the irmd and its IPCPs may have open (`ulimit -n`). */
  maxFiles?: number;
  /** A network namespace (`ip netns add`) for the irmd and its IPCPs. */
  netns?: string;
}

/** A node: one irmd with its own directory, runtime directory and links. */
export class Node {
  readonly procs: Proc[] = [];
  #irmd: Proc | undefined;

  private constructor(readonly label: string, readonly dir: string) {}

  get rundir(): string {
    return `${this.dir}/run`;
  }

  /** `<dir>/bin/<name>`: a link to the launcher, as /usr/bin/oping would be. */
  bin(name: string): string {
    return `${this.dir}/bin/${name}`;
  }

  get irmd(): Proc {
    if (this.#irmd === undefined) throw new Error("irmd not started");
    return this.#irmd;
  }

  static async start(label: string, opts: NodeOptions = {}): Promise<Node> {
    const dir = await Deno.makeTempDir({ prefix: `o7s-${label}-` });
    const node = new Node(label, dir);
    await Deno.mkdir(`${dir}/bin`);
    for (const n of ["oping", "irm"]) await Deno.symlink(LAUNCHER, node.bin(n));
    if (opts.hosts !== undefined) {
      await Deno.writeTextFile(`${dir}/hosts`, opts.hosts);
    }
    for (const [name, text] of Object.entries(opts.files ?? {})) {
      await Deno.writeTextFile(`${dir}/${name}`, text);
    }
    const args = ["--rundir", node.rundir];
    if (opts.config !== undefined) {
      await Deno.writeTextFile(
        `${dir}/irmd.conf`,
        opts.config.replaceAll("@DIR@", dir),
      );
      args.push("-c", `${dir}/irmd.conf`);
    }
    if (opts.debug ?? true) args.push("--debug");
    const inNs = opts.netns === undefined
      ? []
      : ["ip", "netns", "exec", opts.netns];
    const irmd = opts.maxFiles === undefined && opts.netns === undefined
      ? node.spawn("irmd", args, `${label}/irmd`)
      : node.#spawnCmd(
        [
          ...inNs,
          "/bin/sh",
          "-c",
          opts.maxFiles === undefined
            ? 'exec "$@"'
            : 'ulimit -n "$0" && exec "$@"',
          String(opts.maxFiles ?? "sh"),
          ...selfCommand("irmd", args),
        ],
        `${label}/irmd`,
      );
    node.#irmd = irmd;
    try {
      await irmd.waitFor(/IPC Resource Manager daemon started/, 10_000);
      if (opts.ready !== undefined) await irmd.waitFor(opts.ready, 15_000);
    } catch (e) {
      await node.close();
      throw e;
    }
    return node;
  }

  #env(): Record<string, string> {
    return { [RUNDIR_ENV]: this.rundir, NO_COLOR: "1" };
  }

  #spawnCmd(cmd: string[], label: string): Proc {
    const p = new Proc(label, cmd, this.#env());
    this.procs.push(p);
    return p;
  }

  /** Starts `ouroboros <sub> <args>` against this node. */
  spawn(sub: string, args: string[], label = `${this.label}/${sub}`): Proc {
    return this.#spawnCmd(selfCommand(sub, args), label);
  }

  /** Starts a program by path (e.g. a link in bin/) against this node. */
  spawnPath(path: string, args: string[], label: string): Proc {
    return this.#spawnCmd([path, ...args], label);
  }

  /** Runs a tool to its end. */
  async run(
    sub: string,
    args: string[],
    timeoutMs = 15_000,
  ): Promise<{ code: number; stdout: string; stderr: string }> {
    return await this.spawn(sub, args).exit(timeoutMs);
  }

  /** Ends every process started here (irmd last) and removes the directory. */
  async close(): Promise<void> {
    const others = this.procs.filter((p) => p !== this.#irmd);
    await Promise.all(others.map((p) => p.stop()));
    if (this.#irmd !== undefined) await this.#irmd.stop(8000);
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}

/** The tutorial's server configuration, with a per-layer hosts file. */
export function tutorialServerConfig(ip: string, extra = ""): string {
  return `[name."oping-server"]
prog=["@DIR@/bin/oping"]
args=["--listen"]
lb="round-robin"

[name."oping-server2"]
prog=["@DIR@/bin/oping"]
args=["--listen"]

[udp.wifi1]
bootstrap="wifi-network"
ip="${ip}"
hosts="@DIR@/hosts"
reg=["oping-server", "oping-server2"]
${extra}`;
}

/** The tutorial's client configuration, with a per-layer hosts file. */
export function tutorialClientConfig(ip: string): string {
  return `[udp.wifi1]
bootstrap="wifi-network"
ip="${ip}"
hosts="@DIR@/hosts"
`;
}

/** Hosts lines that map the tutorial's names to the server address. */
export function tutorialHosts(serverIp: string): string {
  return `${serverIp} 6ae220aa6aae06c43878513c64db34b6 #oping-server
${serverIp} f87b9400fa8f3d568b1481da7a99d122 #oping-server2
`;
}

/** The pid of the oping server that answered, from `New flow` lines. */
export function serverOf(servers: Proc[], before: number[]): Proc | undefined {
  return servers.find((s, i) =>
    s.lines.filter((l) => l.startsWith("New flow")).length > before[i]!
  );
}

export function newFlowCounts(servers: Proc[]): number[] {
  return servers.map((s) =>
    s.lines.filter((l) => l.startsWith("New flow")).length
  );
}

/** Sends one control request to a node's irmd, as `irm` does. */
export async function irmdRequest<M extends Method>(
  node: Node,
  method: M,
  body: Req<M>,
): Promise<Res<M>> {
  const conn = await connectCtrl(irmdSocketPath(node.rundir));
  try {
    await conn.request("hello", { role: "tool", pid: Deno.pid }, 5000);
    return await conn.request(method, body, 10_000);
  } finally {
    conn.close();
    await conn.done;
  }
}

/** Flows the irmd holds and flows its IPCPs hold. */
export async function flowCounts(
  node: Node,
): Promise<{ irmd: number; ipcps: number }> {
  const procs = await irmdRequest(node, "irm.proc.list", {});
  const stats = await irmdRequest(node, "irm.ipcp.stats", {});
  return {
    irmd: procs.flows,
    ipcps: stats.ipcps.reduce((n, i) => n + i.flows, 0),
  };
}

/** Polls `check` until it holds or the deadline passes (for state with no event). */
export async function eventually(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = 5000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) {
      throw new Error(`${what}: not so within ${timeoutMs} ms`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The tutorial's server node: both names registered, autostart configured. */
export function tutorialServer(
  label = "server",
  ip = "127.0.0.1",
): Promise<Node> {
  return Node.start(label, {
    config: tutorialServerConfig(ip),
    hosts: tutorialHosts(ip),
    ready: /Registered oping-server2 with IPCP/,
  });
}

/** The tutorial's client node, whose hosts file points at the server. */
export function tutorialClient(
  label = "client",
  ip = "127.0.0.2",
  serverIp = "127.0.0.1",
): Promise<Node> {
  return Node.start(label, {
    config: tutorialClientConfig(ip),
    hosts: tutorialHosts(serverIp),
    ready: /Bootstrapped IPCP \d+ in layer wifi-network/,
  });
}

/** A server node, then a client node; `close` ends both (client first). */
export async function nodePair(
  server: { label: string; options: NodeOptions },
  client: { label: string; options: NodeOptions },
): Promise<{ server: Node; client: Node; close: () => Promise<void> }> {
  const s = await Node.start(server.label, server.options);
  let c: Node;
  try {
    c = await Node.start(client.label, client.options);
  } catch (e) {
    await s.close();
    throw e;
  }
  return {
    server: s,
    client: c,
    close: async () => {
      await c.close();
      await s.close();
    },
  };
}

/** Both tutorial nodes (server 127.0.0.1, client 127.0.0.2); `close` ends both. */
export async function tutorialNodes(): Promise<
  { server: Node; client: Node; close: () => Promise<void> }
> {
  const server = await tutorialServer();
  try {
    const client = await tutorialClient();
    return {
      server,
      client,
      close: async () => {
        await client.close();
        await server.close();
      },
    };
  } catch (e) {
    await server.close();
    throw e;
  }
}

/** How a command run by `runCommand` ended, and what it printed. */
export interface CommandResult {
  code: number;
  signal: Deno.Signal | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command to its end within `timeoutMs`. Past the deadline it is
 * ended (SIGTERM, then SIGKILL after 2 s) and the call fails with what it
 * printed, so that a test never waits on a child for ever nor leaves it
 * running.
 */
export async function runCommand(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<CommandResult> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const child = new Deno.Command(cmd, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    ...(opts.cwd === undefined ? {} : { cwd: opts.cwd }),
    ...(opts.env === undefined ? {} : { env: opts.env }),
  }).spawn();
  const output = child.output();
  const within = async (ms: number) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const r = await Promise.race([
      output,
      new Promise<undefined>((res) =>
        timer = setTimeout(() => res(undefined), ms)
      ),
    ]);
    clearTimeout(timer);
    return r;
  };
  const dec = new TextDecoder();
  const done = await within(timeoutMs);
  if (done !== undefined) {
    return {
      code: done.code,
      signal: done.signal,
      stdout: dec.decode(done.stdout),
      stderr: dec.decode(done.stderr),
    };
  }
  const kill = (s: Deno.Signal) => {
    try {
      child.kill(s);
    } catch { /* exited meanwhile */ }
  };
  kill("SIGTERM");
  let ended = await within(2000);
  if (ended === undefined) {
    kill("SIGKILL");
    ended = await within(5000);
  }
  const printed = ended === undefined
    ? "(its output did not end)"
    : dec.decode(ended.stdout) + dec.decode(ended.stderr);
  throw new Error(
    `${cmd} ${
      args.join(" ")
    } did not exit within ${timeoutMs} ms; output:\n${printed}`,
  );
}

// ---------------------------------------------------------------------------
// A node's tools, checked: irm, an oping server, oping

/** Runs irm on the node; fails the test on a non-zero exit. */
export async function irm(node: Node, line: string): Promise<string> {
  const r = await node.run("irm", line.split(" "));
  assertEquals(r.code, 0, `irm ${line}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** Starts `oping -l` and waits until the irmd has it accepting flows. */
export async function startServer(
  node: Node,
  label = "oping-l",
): Promise<Proc> {
  const from = node.irmd.lines.length;
  const s = node.spawnPath(
    node.bin("oping"),
    ["-l"],
    `${node.label}/${label}`,
  );
  await node.irmd.waitFor(/This process accepts flows for:/, 15_000, from);
  return s;
}

/** The pid of the node's IPCP named `name`, from `irm ipcp list`. */
export async function ipcpPid(node: Node, name: string): Promise<number> {
  const out = await irm(node, "ipcp list");
  const m = new RegExp(`\\|\\s+(\\d+) \\|\\s+${name} \\|`).exec(out);
  assert(m !== null, `no IPCP ${name} in:\n${out}`);
  return Number(m[1]);
}

/** `oping -n <name> -c <count>` on the node, checked for every reply. */
export async function ping(
  node: Node,
  name: string,
  count: number,
  extra: string[] = [],
): Promise<string> {
  const r = await node.run(
    "oping",
    ["-n", name, "-c", String(count), "-i", "50", ...extra],
    30_000,
  );
  assertEquals(
    r.code,
    0,
    `oping ${extra.join(" ")}:\n${r.stdout}\n${r.stderr}`,
  );
  assertMatch(
    r.stdout,
    new RegExp(
      `${count} packets transmitted, ${count} received, 0 out-of-order, 0% packet loss`,
    ),
  );
  for (let i = 0; i < count; i++) {
    assertMatch(r.stdout, new RegExp(`64 bytes from ${name}: seq=${i} time=`));
  }
  return r.stdout;
}

/**
 * The server of a flow to "oping" killed mid-flow, raw and reliable (the
 * node's layer has "oping" registered and bound to `oping`): the client
 * learns at once that the flow went down, however it was using it, ends
 * with the replies it had, and no flow stays in the irmd or the IPCPs.
 */
export async function serverKilledMidFlow(node: Node): Promise<void> {
  for (const qos of ["raw", "data"]) {
    const server = await startServer(node, `oping-l-${qos}`);
    const from = node.irmd.lines.length;
    // Far more pings than the test waits for, and a long reply timeout:
    // only the flow going down can end the client in time.
    const client = node.spawn(
      "oping",
      ["-n", "oping", "-c", "10000", "-i", "20", "-q", qos],
      `${node.label}/oping-${qos}`,
    );
    await client.waitFor(/seq=3 time=/, 15_000);
    Deno.kill(server.pid, "SIGKILL");
    const killedAt = performance.now();
    // Reading or writing, whichever it was doing, it learns at once.
    await client.waitFor(
      /The flow to oping went down|Failed to send a packet to oping/,
      5000,
    );
    const r = await client.exit(5000);
    const tookMs = performance.now() - killedAt;
    assert(tookMs < 5000, `the client ended ${tookMs.toFixed(0)} ms after`);
    assertEquals(r.code, 0, r.stdout + r.stderr); // it had replies
    assertMatch(r.stdout, /packets transmitted/);
    await node.irmd.waitFor(
      new RegExp(`Process ${server.pid} died\\.`),
      5000,
      from,
    );
    await eventually("no flows left", async () => {
      const c = await flowCounts(node);
      return c.irmd === 0 && c.ipcps === 0;
    });
  }
}
