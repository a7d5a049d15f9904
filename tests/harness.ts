/**
 * Multi-process test harness: nodes (an irmd with its own runtime directory,
 * configuration and hosts file) and tools run as real processes of the
 * `ouroboros` program. Everything waits on events (a line of output, an
 * exit) with a deadline; `close()` ends every process that was started and
 * removes the temporary files.
 */
import { selfCommand } from "../lib/self.ts";
import { RUNDIR_ENV } from "../lib/rundir.ts";

const REPO = new URL("../", import.meta.url).pathname;
export const LAUNCHER = `${REPO}bin/ouroboros`;

/** A running process whose output lines are collected. */
export class Proc {
  readonly lines: string[] = [];
  readonly out: string[] = [];
  readonly err: string[] = [];
  #waiters: { re: RegExp; from: number; resolve: (l: string) => void }[] = [];
  readonly status: Promise<Deno.CommandStatus>;
  readonly #child: Deno.ChildProcess;
  #reading: Promise<void>;

  constructor(
    readonly label: string,
    cmd: string[],
    env: Record<string, string>,
  ) {
    const [exe, ...args] = cmd;
    this.#child = new Deno.Command(exe!, {
      args,
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#reading = Promise.all([
      this.#collect(this.#child.stdout, this.out),
      this.#collect(this.#child.stderr, this.err),
    ]).then(() => {});
    this.status = this.#child.status;
  }

  get pid(): number {
    return this.#child.pid;
  }

  async #collect(
    stream: ReadableStream<Uint8Array>,
    sink: string[],
  ): Promise<void> {
    const dec = new TextDecoder();
    let rest = "";
    for await (const chunk of stream) {
      rest += dec.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = rest.indexOf("\n")) >= 0) {
        this.#line(rest.slice(0, nl), sink);
        rest = rest.slice(nl + 1);
      }
    }
    if (rest !== "") this.#line(rest, sink);
  }

  #line(line: string, sink: string[]): void {
    sink.push(line);
    this.lines.push(line);
    if (Deno.env.get("O7S_TEST_VERBOSE")) {
      console.log(`[${this.label}] ${line}`);
    }
    const idx = this.lines.length - 1;
    this.#waiters = this.#waiters.filter((w) => {
      if (idx >= w.from && w.re.test(line)) {
        w.resolve(line);
        return false;
      }
      return true;
    });
  }

  /** The first line (from line `from` on) that matches, within the deadline. */
  waitFor(re: RegExp, timeoutMs = 10_000, from = 0): Promise<string> {
    const found = this.lines.slice(from).find((l) => re.test(l));
    if (found !== undefined) return Promise.resolve(found);
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w.resolve !== done);
        reject(
          new Error(
            `${this.label}: no line matching ${re} within ${timeoutMs} ms; output:\n` +
              this.lines.slice(-40).join("\n"),
          ),
        );
      }, timeoutMs);
      const done = (l: string) => {
        clearTimeout(timer);
        resolve(l);
      };
      this.#waiters.push({ re, from, resolve: done });
      void this.status.then(() =>
        this.#reading.then(() => {
          if (this.#waiters.some((w) => w.resolve === done)) {
            clearTimeout(timer);
            this.#waiters = this.#waiters.filter((w) => w.resolve !== done);
            reject(
              new Error(
                `${this.label} exited without a line matching ${re}; output:\n` +
                  this.lines.slice(-40).join("\n"),
              ),
            );
          }
        })
      );
    });
  }

  /** Waits for the exit (with a deadline) and all output. */
  async exit(
    timeoutMs = 15_000,
  ): Promise<{ code: number; stdout: string; stderr: string }> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const st = await Promise.race([
      this.status,
      new Promise<undefined>((r) =>
        timer = setTimeout(() => r(undefined), timeoutMs)
      ),
    ]);
    clearTimeout(timer);
    if (st === undefined) {
      this.kill("SIGKILL");
      await this.status;
      await this.#reading;
      throw new Error(
        `${this.label} did not exit within ${timeoutMs} ms; output:\n${
          this.lines.join("\n")
        }`,
      );
    }
    await this.#reading;
    return {
      code: st.code,
      stdout: this.out.join("\n"),
      stderr: this.err.join("\n"),
    };
  }

  kill(signal: Deno.Signal = "SIGTERM"): void {
    try {
      this.#child.kill(signal);
    } catch {
      // exited already
    }
  }

  /** SIGTERM, SIGKILL after `graceMs`; resolves once it has exited. */
  async stop(graceMs = 5000): Promise<Deno.CommandStatus> {
    this.kill("SIGTERM");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const st = await Promise.race([
      this.status,
      new Promise<undefined>((r) =>
        timer = setTimeout(() => r(undefined), graceMs)
      ),
    ]);
    clearTimeout(timer);
    if (st === undefined) this.kill("SIGKILL");
    const final = await this.status;
    await this.#reading;
    return final;
  }
}

export interface NodeOptions {
  /** Configuration text; `@DIR@` is replaced by the node's directory. */
  config?: string;
  /** Hosts file text, written to `<dir>/hosts`. */
  hosts?: string;
  debug?: boolean;
  /** Wait for this line before returning (default: the last registration or bootstrap). */
  ready?: RegExp;
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
    const args = ["--rundir", node.rundir];
    if (opts.config !== undefined) {
      await Deno.writeTextFile(
        `${dir}/irmd.conf`,
        opts.config.replaceAll("@DIR@", dir),
      );
      args.push("-c", `${dir}/irmd.conf`);
    }
    if (opts.debug ?? true) args.push("--debug");
    const irmd = node.spawn("irmd", args, `${label}/irmd`);
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

  /** Starts `ouroboros <sub> <args>` against this node. */
  spawn(sub: string, args: string[], label = `${this.label}/${sub}`): Proc {
    const p = new Proc(label, selfCommand(sub, args), this.#env());
    this.procs.push(p);
    return p;
  }

  /** Starts a program by path (e.g. a link in bin/) against this node. */
  spawnPath(path: string, args: string[], label: string): Proc {
    const p = new Proc(label, [path, ...args], this.#env());
    this.procs.push(p);
    return p;
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
