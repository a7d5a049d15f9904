/**
 * `./run-demo`: Ouroboros tutorial 05 on one machine, narrated.
 *
 * Two "machines" run as two irmds on loopback, each with its own runtime
 * directory, configuration file and hosts file: a server node on 127.0.0.1
 * with two `oping -l` servers, and a client node on 127.0.0.2 that pings the
 * names `oping-server` (round-robin: the servers alternate) and
 * `oping-server2` (spill: one server takes them all), then binds the other
 * server to `oping-server2` as the tutorial's last step shows.
 *
 * With --pi, the server node runs as it would on a Raspberry Pi: its irmd,
 * IPCP, oping servers and irm run from the bundle (dist/ouroboros.js, built
 * into the temporary directory) on the aarch64 Deno that bin/deno-aarch64
 * installs; on another architecture under qemu-user through binfmt_misc.
 *
 * Every wait is on an event (a log line, an exit) with a deadline. Whatever
 * happens (success, failure, Ctrl-C), every process started is stopped and
 * the temporary directory removed.
 *
 *   deno run -P tools/demo.ts [--quiet] [--port N] [--pi] [--help]
 */
import { Proc } from "../lib/util/child.ts";
import {
  PERMISSION_FLAGS,
  selfCommand,
  setMainModule,
} from "../lib/util/self.ts";
import { RUNDIR_ENV } from "../lib/ipc/rundir.ts";

const REPO = decodeURIComponent(new URL("../", import.meta.url).pathname);
const LAUNCHER = `${REPO}bin/ouroboros`;

/** The aarch64 Deno that bin/deno-aarch64 installs (its version is pinned there). */
export const AARCH64_DENO = `${REPO}.deno/aarch64/deno`;
const AARCH64_INSTALLER = `${REPO}bin/deno-aarch64`;
/** Debian's aarch64 libraries (libc6-arm64-cross), for qemu-user. */
export const AARCH64_SYSROOT = "/usr/aarch64-linux-gnu";
const BINFMT_DIR = "/proc/sys/fs/binfmt_misc";

export const DEFAULT_PORT = 3435;
const SERVER_IP = "127.0.0.1";
const CLIENT_IP = "127.0.0.2";
const NAMES = ["oping-server", "oping-server2"] as const;
/** The nodes of --unicast (tools/demo_unicast.ts): A, B on links A-B and B-C, C. */
export const UNICAST_A_IP = "127.0.0.1";
export const UNICAST_B_IP_AB = "127.0.0.2";
export const UNICAST_B_IP_BC = "127.0.0.3";
export const UNICAST_C_IP = "127.0.0.4";
const CLIENTS_PER_NAME = 6;
const CLIENTS_AFTER_BIND = 3;

/** Deadlines (ms). */
const IRMD_START_MS = 10_000;
const IRMD_READY_MS = 20_000;
const SERVER_ACCEPT_MS = 15_000;
const CLIENT_RUN_MS = 20_000;
const FLOW_LINE_MS = 5_000;
const IRM_RUN_MS = 15_000;
const SERVER_STOP_MS = 5_000;
const IRMD_STOP_MS = 8_000;
const MAIN_SETTLE_MS = 5_000;
const LEFTOVER_MS = 3_000;
const SIGNAL_GRACE_MS = 300;
/** With --pi: the deadlines above are this many times longer (emulation). */
const PI_SLOWDOWN = 10;
const BUNDLE_MS = 120_000;
const INSTALL_MS = 300_000;
const ARCH_PROBE_MS = 60_000;

export const USAGE = `Usage: ./run-demo [options]
       (or: deno run -P --config deno.json tools/demo.ts [options])

Runs Ouroboros tutorial 05 on this machine: a server node (an irmd on
${SERVER_IP}) with two "oping -l" servers, and a client node (an irmd on
${CLIENT_IP}) that pings oping-server (round-robin) and oping-server2 (spill)
six times each, then binds one server to oping-server2. Everything runs in a
temporary directory and is stopped and removed at the end (also on Ctrl-C).

With --unicast it runs instead the three nodes in a line of spec/unicast.md
(section 9): A on ${UNICAST_A_IP}, B on ${UNICAST_B_IP_AB} and ${UNICAST_B_IP_BC}, C on ${UNICAST_C_IP},
linked by the UDP layers udp-ab and udp-bc, and a unicast layer "uni" over
them: A bootstraps it, B enrolls with A and connects to it, C with B. A pings
an "oping -l" server on C; every packet crosses B.

Options:
  -q, --quiet     print only the results (per-client lines, addresses,
                  pings) and the summary (no configuration listings, no log
                  lines)
  -p, --port N    UDP port of all nodes (default ${DEFAULT_PORT}); choose
                  another one when ${DEFAULT_PORT} is taken
      --unicast   the three-node unicast layer instead of tutorial 05 (not
                  with --pi)
      --pi        run the server node on aarch64, as on a Raspberry Pi: its
                  irmd, IPCP, oping servers and irm run from the bundle
                  (deno task bundle, built into the temporary directory) on
                  the aarch64 Deno, which bin/deno-aarch64 installs into
                  .deno/ the first time; the client node stays native. On an
                  x86_64 machine this runs under qemu-user, 10-30 times
                  slower, and needs (Debian, as root):
                    apt-get install qemu-user-static libc6-arm64-cross \\
                      libgcc-s1-arm64-cross
                    mount -t binfmt_misc binfmt_misc ${BINFMT_DIR}
                      (if ${BINFMT_DIR}/register is missing)
                    cat /usr/lib/binfmt.d/qemu-aarch64.conf \\
                      > ${BINFMT_DIR}/register
  -h, --help      this text`;

export interface DemoOptions {
  /** Only the per-client lines and the summary. */
  quiet?: boolean;
  /** UDP port of both IPCPs (default 3435). */
  port?: number;
  /** The server node on the aarch64 Deno, from the bundle. */
  pi?: boolean;
  /** The three-node unicast layer (tools/demo_unicast.ts) instead. */
  unicast?: boolean;
}

/** Parsed command line: options, or a request for help, or an error. */
export type DemoArgs =
  | { kind: "run"; opts: DemoOptions }
  | { kind: "help" }
  | { kind: "error"; message: string };

export function parseDemoArgs(args: readonly string[]): DemoArgs {
  const opts: DemoOptions = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const eq = a.startsWith("--") ? a.indexOf("=") : -1;
    const flag = eq >= 0 ? a.slice(0, eq) : a;
    const inline = eq >= 0 ? a.slice(eq + 1) : undefined;
    switch (flag) {
      case "-h":
      case "--help":
        return { kind: "help" };
      case "-q":
      case "--quiet":
        opts.quiet = true;
        break;
      case "--pi":
        if (inline !== undefined) {
          return { kind: "error", message: "--pi takes no value." };
        }
        opts.pi = true;
        break;
      case "--unicast":
        if (inline !== undefined) {
          return { kind: "error", message: "--unicast takes no value." };
        }
        opts.unicast = true;
        break;
      case "-p":
      case "--port": {
        const v = inline ?? args[++i];
        if (v === undefined || !/^\d+$/.test(v)) {
          return { kind: "error", message: `${flag} needs a port number.` };
        }
        const n = Number(v);
        if (n < 1 || n > 65535) {
          return {
            kind: "error",
            message: `port ${v} is out of range (1-65535).`,
          };
        }
        opts.port = n;
        break;
      }
      default:
        return { kind: "error", message: `unknown option "${a}".` };
    }
  }
  if (opts.unicast && opts.pi) {
    return {
      kind: "error",
      message: "--unicast and --pi do not go together.",
    };
  }
  return { kind: "run", opts };
}

/** A failure to report: what went wrong, and which node's log explains it. */
export class DemoError extends Error {
  constructor(
    message: string,
    readonly node?: DemoNodeBase,
    readonly proc?: Proc,
  ) {
    super(message);
  }
}

/** Thrown into the steps once Ctrl-C (or another signal) ended the demo. */
export class Aborted extends Error {}

/** One "machine" of a demo: an irmd with its own directory and files. */
export interface DemoNodeBase {
  /** How the narration and the log prefixes name the node. */
  label: string;
  /** Its programs run from the bundle on the aarch64 Deno (--pi). */
  aarch64: boolean;
  ip: string;
  dir: string;
  rundir: string;
  conf: string;
  hosts: string;
  irmd?: Proc;
}

interface DemoNode extends DemoNodeBase {
  label: "server" | "client";
}

/** A `Flow <id> accepted by <pid> for <name>.` result of one client. */
interface ClientResult {
  rtt: string;
  pid: number;
}

/** Writes one line; a closed terminal or pipe must not stop the cleanup. */
export function emit(stream: "out" | "err", line: string): void {
  try {
    if (stream === "out") console.log(line);
    else console.error(line);
  } catch {
    // nowhere to write to
  }
}

const useColour = (() => {
  try {
    return Deno.stdout.isTerminal() && !Deno.noColor;
  } catch {
    return false;
  }
})();

function paint(code: string, s: string): string {
  return useColour ? `\x1b[${code}m${s}\x1b[0m` : s;
}
export const bold = (s: string): string => paint("1", s);
export const dim = (s: string): string => paint("2", s);
export const red = (s: string): string => paint("31", s);
export const green = (s: string): string => paint("32", s);

export function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

export function delay(
  ms: number,
): { promise: Promise<void>; cancel: () => void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const promise = new Promise<void>((r) => timer = setTimeout(r, ms));
  return { promise, cancel: () => clearTimeout(timer) };
}

/** `rerun`: the command line of this demo, before `--port`. */
function portHint(port: number, rerun = "./run-demo"): string {
  const other = port === DEFAULT_PORT ? DEFAULT_PORT + 1 : port + 1;
  return `Another Ouroboros node (or a test) may be using it. Wait until it ` +
    `has finished, or run the demo on another port: ${rerun} --port ${other}`;
}

/** "a", "a and b", "a, b and c". */
function andList(items: readonly string[]): string {
  return items.length <= 1
    ? items.join("")
    : `${items.slice(0, -1).join(", ")} and ${items[items.length - 1]}`;
}

/**
 * Whether this process can bind the UDP address (checked before starting);
 * `needed` are all the loopback addresses the demo uses (for the message),
 * `rerun` its command line.
 */
function portProblem(
  ip: string,
  port: number,
  needed: readonly string[],
  rerun: string,
): string | undefined {
  try {
    const sock = Deno.listenDatagram({
      transport: "udp",
      hostname: ip,
      port,
    });
    sock.close();
    return undefined;
  } catch (e) {
    if (e instanceof Deno.errors.AddrInUse) {
      return `UDP port ${port} on ${ip} is in use. ${portHint(port, rerun)}`;
    }
    if (e instanceof Deno.errors.AddrNotAvailable) {
      return `Cannot bind ${ip}: the address is not available on this host ` +
        `(the demo needs the loopback addresses ${andList(needed)}, ` +
        `as Linux provides them).`;
    }
    return `Cannot bind UDP ${ip}:${port}: ${
      e instanceof Error ? e.message : String(e)
    }`;
  }
}

// Deno asks for --allow-all to read /proc, so a small shell script (run
// with --allow-run) looks there instead. The marker comes on standard input
// (to the script and on to grep), so that no command line here contains it.
const FIND_SCRIPT = `read -r marker
printf "%s\\n" "$marker" | grep -lsaF -f - /proc/[0-9]*/cmdline /proc/[0-9]*/environ |
  while IFS=/ read -r _ _ p _; do
    [ "$p" = "$$" ] && continue
    st=$(sed -n 's/^.*) \\(.\\) .*/\\1/p' "/proc/$p/stat" 2>/dev/null)
    [ -n "$st" ] && [ "$st" != Z ] && echo "$p"
  done | sort -u
exit 0`;

const LIVE_SCRIPT = `for p in "$@"; do
  st=$(sed -n 's/^.*) \\(.\\) .*/\\1/p' "/proc/$p/stat" 2>/dev/null)
  [ -n "$st" ] && [ "$st" != Z ] && echo "$p"
done
exit 0`;

async function shPids(
  script: string,
  args: string[],
  input: string,
): Promise<number[]> {
  const child = new Deno.Command("sh", {
    args: ["-c", script, "sh", ...args],
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // exited already
    }
  }, 10_000);
  try {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(input));
    await w.close();
    const out = await child.output();
    if (!out.success) throw new Error("cannot list processes");
    return new TextDecoder().decode(out.stdout).split("\n")
      .filter((l) => /^\d+$/.test(l)).map(Number);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Live processes (not zombies) whose command line or environment mention
 * `marker` (the demo's temporary directory: every process of the demo has
 * it in its `--rundir` argument or its OUROBOROS_RUNDIR).
 */
export async function processesMentioning(marker: string): Promise<number[]> {
  if (marker === "" || marker.includes("\n")) return [];
  return (await shPids(FIND_SCRIPT, [], `${marker}\n`)).filter((p) =>
    p !== Deno.pid
  );
}

const DESCRIBE_SCRIPT = `for p in "$@"; do
  echo "$p: $(tr '\\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | cut -c1-300)"
done
exit 0`;

/** "pid: command line" of each process, for messages. */
async function describeProcesses(pids: readonly number[]): Promise<string[]> {
  const out = await new Deno.Command("sh", {
    args: ["-c", DESCRIBE_SCRIPT, "sh", ...pids.map(String)],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(out.stdout).split("\n").filter((l) =>
    l !== ""
  );
}

/** Those of `pids` that are live processes (not zombies). */
export async function liveProcesses(
  pids: readonly number[],
): Promise<number[]> {
  if (pids.length === 0) return [];
  return await shPids(LIVE_SCRIPT, pids.map(String), "");
}

// ------------------------------------------------------------ aarch64 (--pi)

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** Runs `sh -c script` within 10 s; its standard output. */
async function sh(script: string, args: readonly string[]): Promise<string> {
  const child = new Deno.Command("sh", {
    args: ["-c", script, "sh", ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // exited already
    }
  }, 10_000);
  try {
    return new TextDecoder().decode((await child.output()).stdout);
  } finally {
    clearTimeout(timer);
  }
}

// The state of the kernel's qemu-aarch64 binary format (Deno wants
// --allow-all to read /proc, so `sh` looks).
const BINFMT_SCRIPT = `d=${BINFMT_DIR}
if [ ! -e "$d/register" ]; then echo unmounted; exit 0; fi
for f in "$d"/*; do
  [ -f "$f" ] || continue
  case "$f" in */register | */status) continue ;; esac
  grep -q '^magic 7f454c460201010000000000000000000200b700' "$f" 2>/dev/null || continue
  state=$(sed -n 1p "$f")
  interp=$(sed -n 's/^interpreter //p' "$f")
  echo "$state $f $interp"
  exit 0
done
echo unregistered
exit 0`;

/**
 * Why the aarch64 Deno cannot run programs here, or undefined when it can:
 * what is missing, and how to get it. Looks, runs nothing. `deno: false`
 * leaves out the aarch64 Deno itself (bin/deno-aarch64 installs it).
 */
export async function aarch64Problem(
  opts: { deno?: boolean } = {},
): Promise<string | undefined> {
  if (Deno.build.os !== "linux") {
    return `the aarch64 Deno for Linux needs Linux (this is ${Deno.build.os})`;
  }
  if (Deno.build.arch !== "aarch64") {
    const packages = [
      ["/usr/bin/qemu-aarch64-static", "qemu-user-static"],
      [`${AARCH64_SYSROOT}/lib/ld-linux-aarch64.so.1`, "libc6-arm64-cross"],
      [`${AARCH64_SYSROOT}/lib/libgcc_s.so.1`, "libgcc-s1-arm64-cross"],
    ] as const;
    const missing = packages.filter(([f]) => !isFile(f));
    if (missing.length > 0) {
      return `not installed: ${missing.map(([, pkg]) => pkg).join(", ")} ` +
        `(apt-get install qemu-user-static libc6-arm64-cross ` +
        `libgcc-s1-arm64-cross)`;
    }
    let state: string;
    try {
      state = (await sh(BINFMT_SCRIPT, [])).trim();
    } catch {
      state = "unknown";
    }
    const register =
      `cat /usr/lib/binfmt.d/qemu-aarch64.conf > ${BINFMT_DIR}/register`;
    if (state === "unmounted") {
      return `binfmt_misc is not mounted (as root: mount -t binfmt_misc ` +
        `binfmt_misc ${BINFMT_DIR} && ${register})`;
    }
    if (state === "unregistered" || state === "unknown") {
      return `no aarch64 binary format is registered with binfmt_misc ` +
        `(as root: ${register})`;
    }
    const [enabled, entry] = state.split(" ");
    if (enabled !== "enabled") {
      return `the aarch64 binary format is disabled (as root: ` +
        `echo 1 > ${entry ?? `${BINFMT_DIR}/qemu-aarch64`})`;
    }
  }
  if ((opts.deno ?? true) && !isFile(AARCH64_DENO)) {
    return `the aarch64 Deno is not installed (no ${AARCH64_DENO}): ` +
      `run bin/deno-aarch64 --install`;
  }
  return undefined;
}

/** The environment the aarch64 Deno runs in (qemu-user's library root). */
export function aarch64Env(): Record<string, string> {
  return {
    QEMU_LD_PREFIX: Deno.env.get("QEMU_LD_PREFIX") ?? AARCH64_SYSROOT,
  };
}

/** `ouroboros <sub> <args>` from `bundle` on the aarch64 Deno. */
export function aarch64Command(
  bundle: string,
  sub: string,
  args: readonly string[] = [],
): string[] {
  return [
    AARCH64_DENO,
    "run",
    "-q",
    "--no-config",
    ...PERMISSION_FLAGS,
    bundle,
    sub,
    ...args,
  ];
}

function shQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/**
 * Writes `<dir>/<sub>` for each of `subs`: a program that runs that
 * subcommand from `bundle` on the aarch64 Deno, as /usr/bin/<sub> on a Pi
 * runs the single file.
 */
export async function writeAarch64Programs(
  dir: string,
  bundle: string,
  subs: readonly string[],
): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  for (const sub of subs) {
    const text = `#!/bin/sh
# ouroboros ${sub}, from the bundle on the aarch64 Deno.
QEMU_LD_PREFIX=\${QEMU_LD_PREFIX:-${AARCH64_SYSROOT}}
export QEMU_LD_PREFIX
exec ${aarch64Command(bundle, sub).map(shQuote).join(" ")} "$@"
`;
    await Deno.writeTextFile(`${dir}/${sub}`, text, { mode: 0o755 });
  }
}

/**
 * Builds the bundle into `out`: the command of `deno task bundle`, with
 * `out` for dist/ouroboros.js, within `timeoutMs`.
 */
export async function buildBundle(
  out: string,
  timeoutMs = BUNDLE_MS,
): Promise<void> {
  const tasks = JSON.parse(await Deno.readTextFile(`${REPO}deno.json`))
    .tasks as Record<string, string>;
  const task = tasks["bundle"] ?? "";
  if (!/^deno bundle .* -o dist\/ouroboros\.js main\.ts$/.test(task)) {
    throw new Error(`unexpected bundle task in deno.json: ${task}`);
  }
  const args = task.split(" ").slice(1).map((a) =>
    a === "dist/ouroboros.js" ? out : a
  );
  const child = new Deno.Command(Deno.execPath(), {
    args,
    cwd: REPO,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch {
      // exited already
    }
  }, timeoutMs);
  let r: Deno.CommandOutput;
  try {
    r = await child.output();
  } finally {
    clearTimeout(timer);
  }
  if (timedOut) {
    throw new Error(`deno bundle did not finish within ${timeoutMs / 1000} s`);
  }
  if (!r.success) {
    throw new Error(
      `deno bundle failed (exit code ${r.code}): ${
        new TextDecoder().decode(r.stderr).trim()
      }`,
    );
  }
}

/** What a process runs, from /proc/<pid>/exe and its command line. */
export interface ProcessArch {
  pid: number;
  /** The architecture of the program's executable (aarch64, x86_64, ...). */
  arch: string;
  /** The program's executable. */
  program: string;
  /** The qemu-user interpreter the kernel runs it under, if emulated. */
  emulator?: string;
}

const ELF_MACHINES: Record<number, string> = {
  0x03: "x86",
  0x28: "arm",
  0x3e: "x86_64",
  0xb7: "aarch64",
  0xf3: "riscv",
};

/** The architecture an ELF executable is for, from its header. */
export async function elfArch(path: string): Promise<string> {
  const f = await Deno.open(path, { read: true });
  const head = new Uint8Array(20);
  let n = 0;
  try {
    while (n < head.length) {
      const got = await f.read(head.subarray(n));
      if (got === null) break;
      n += got;
    }
  } finally {
    f.close();
  }
  if (n < 20 || head[0] !== 0x7f || head[1] !== 0x45 || head[2] !== 0x4c) {
    return "not ELF";
  }
  // e_machine, little-endian (EI_DATA 1) or big-endian.
  const machine = head[5] === 2
    ? (head[18]! << 8) | head[19]!
    : head[18]! | (head[19]! << 8);
  return ELF_MACHINES[machine] ?? `ELF machine 0x${machine.toString(16)}`;
}

const EXE_SCRIPT = `for p in "$@"; do
  exe=$(readlink "/proc/$p/exe" 2>/dev/null) || continue
  cwd=$(readlink "/proc/$p/cwd" 2>/dev/null)
  arg1=$(tr '\\0' '\\n' < "/proc/$p/cmdline" 2>/dev/null | sed -n 2p)
  printf '%s\\t%s\\t%s\\t%s\\n' "$p" "$exe" "$cwd" "$arg1"
done
exit 0`;

/**
 * The architecture each running process of `pids` executes: its
 * executable's, or, for a program the kernel runs under qemu-user
 * (binfmt_misc), the emulated program's (the interpreter's first argument).
 */
export async function processArch(
  pids: readonly number[],
): Promise<Map<number, ProcessArch>> {
  const found = new Map<number, ProcessArch>();
  if (pids.length === 0) return found;
  const out = await sh(EXE_SCRIPT, pids.map(String));
  for (const line of out.split("\n")) {
    const [pid, exe, cwd, arg1] = line.split("\t");
    if (pid === undefined || exe === undefined || !/^\d+$/.test(pid)) continue;
    const base = exe.split("/").pop() ?? "";
    try {
      if (/^qemu-/.test(base) && arg1 !== undefined && arg1 !== "") {
        const program = arg1.startsWith("/") ? arg1 : `${cwd ?? ""}/${arg1}`;
        found.set(Number(pid), {
          pid: Number(pid),
          arch: await elfArch(program),
          program,
          emulator: exe,
        });
      } else {
        found.set(Number(pid), {
          pid: Number(pid),
          arch: await elfArch(exe),
          program: exe,
        });
      }
    } catch {
      // the process or its program went away
    }
  }
  return found;
}

/** One line about `p`: "aarch64 (emulated by ...)". */
export function describeArch(a: ProcessArch | undefined): string {
  if (a === undefined) return "not running";
  return a.emulator === undefined
    ? `${a.arch} (${a.program})`
    : `${a.arch} (${a.program}, emulated by ${a.emulator})`;
}

/**
 * What a narrated demo is made of, whatever its scenario: the output
 * (narration, results, followed logs), the processes it starts, waits with
 * deadlines, and the run itself: signals, the report of a failure, and the
 * cleanup that stops every process and removes the temporary directory.
 * `Demo` (tutorial 05) and the unicast demo (tools/demo_unicast.ts) extend it.
 */
export abstract class NarratedDemo<N extends DemoNodeBase> {
  protected readonly quiet: boolean;
  protected readonly port: number;
  /** Deadlines are multiplied by this (PI_SLOWDOWN with --pi). */
  protected readonly slow: number;
  protected tmp = "";
  protected aborted = false;
  protected readonly procs: Proc[] = [];
  protected readonly tails: Promise<void>[] = [];

  constructor(opts: { quiet: boolean; port: number; slow: number }) {
    this.quiet = opts.quiet;
    this.port = opts.port;
    this.slow = opts.slow;
  }

  /** The loopback addresses whose UDP port must be free before starting. */
  protected abstract addresses(): readonly string[];

  /** The scenario. */
  protected abstract steps(): Promise<void>;

  /** The irmds started, in the order to stop them (after everything else). */
  protected abstract irmdsInStopOrder(): (Proc | undefined)[];

  /** Checks and preparations before anything starts; false to give up. */
  protected ready(): Promise<boolean> {
    return Promise.resolve(true);
  }

  /** The command line that runs this demo again (before `--port N`). */
  protected rerun(): string {
    return "./run-demo";
  }

  /** Where a node's commands run, as the narration says it. */
  protected where(node: N): string {
    return `${node.label} node`;
  }

  /** A deadline, longer where the server node is emulated. */
  protected ms(base: number): number {
    return base * this.slow;
  }

  // ------------------------------------------------------------ output

  /** Narration: shown unless --quiet. */
  protected say(line = ""): void {
    if (!this.quiet) emit("out", line);
  }

  /** Results: shown always. */
  protected result(line: string): void {
    emit("out", line);
  }

  protected step(n: number, title: string): void {
    this.say();
    this.say(bold(`== Step ${n}: ${title}`));
  }

  protected command(cmd: string, where: string): void {
    this.say(`${bold(`$ ${cmd}`)}   ${dim(`(${where})`)}`);
  }

  /**
   * Prints the lines of `p` as they come, with a prefix (not with --quiet):
   * dim, or marked ">" and bold where they match `highlight`.
   */
  protected follow(p: Proc, prefix: string, highlight?: RegExp): void {
    if (this.quiet) return;
    const tail = async () => {
      let i = 0;
      for (;;) {
        let ended = false;
        try {
          // Resolves on the next line; rejects once the process has ended.
          await p.waitFor(/^/, 24 * 3600_000, i);
        } catch {
          ended = true;
        }
        while (i < p.lines.length) {
          const l = p.lines[i++]!;
          emit(
            "out",
            highlight?.test(l)
              ? bold(`> ${prefix} ${l}`)
              : dim(`  ${prefix} ${l}`),
          );
        }
        if (ended) return;
      }
    };
    this.tails.push(tail());
  }

  // ------------------------------------------------------------ processes

  protected spawn(label: string, cmd: string[], node: N): Proc {
    if (this.aborted) throw new Aborted("interrupted");
    const p = new Proc(label, cmd, {
      [RUNDIR_ENV]: node.rundir,
      NO_COLOR: "1",
      ...(node.aarch64 ? aarch64Env() : {}),
    });
    this.procs.push(p);
    return p;
  }

  protected check(): void {
    if (this.aborted) throw new Aborted("interrupted");
  }

  /** Waits for `ready` on the irmd's output, failing early on an error line or exit. */
  protected async waitIrmd(
    node: N,
    ready: RegExp,
    timeoutMs: number,
    from = 0,
  ): Promise<string> {
    const irmd = node.irmd!;
    const re = new RegExp(`${ready.source}|\\((?:EE)\\): `);
    let line: string;
    try {
      line = await irmd.waitFor(re, timeoutMs, from);
    } catch (e) {
      this.check();
      const exited = e instanceof Error && / exited without /.test(e.message);
      throw new DemoError(
        exited
          ? `the ${node.label} irmd exited before it was ready.`
          : `the ${node.label} irmd did not get ready within ${
            timeoutMs / 1000
          } s (waiting for ${ready}).`,
        node,
      );
    }
    if (ready.test(line)) return line;
    // An error line: explain the usual causes.
    if (/address already in use/.test(line)) {
      throw new DemoError(
        `UDP port ${this.port} on ${node.ip} is in use: the ${node.label} ` +
          `IPCP could not bind it. ${portHint(this.port, this.rerun())}`,
        node,
      );
    }
    throw new DemoError(
      `the ${node.label} irmd reported an error: ${
        line.replace(/^==\d+== /, "")
      }`,
      node,
    );
  }

  // ------------------------------------------------------------ steps

  async run(): Promise<number> {
    for (const ip of this.addresses()) {
      const problem = portProblem(
        ip,
        this.port,
        this.addresses(),
        this.rerun(),
      );
      if (problem !== undefined) {
        emit("err", red(`Error: ${problem}`));
        return 1;
      }
    }
    if (!await this.ready()) return 1;

    const signals: Deno.Signal[] = ["SIGINT", "SIGTERM", "SIGHUP"];
    const interrupted = Promise.withResolvers<Deno.Signal>();
    const handlers = signals.map((sig) => {
      const h = () => {
        if (this.aborted) {
          emit("err", dim("(still shutting down, please wait)"));
        }
        interrupted.resolve(sig);
      };
      Deno.addSignalListener(sig, h);
      return [sig, h] as const;
    });
    const unlisten = () => {
      for (const [sig, h] of handlers) Deno.removeSignalListener(sig, h);
    };
    try {
      this.tmp = await Deno.makeTempDir({ prefix: "o7s-demo-" });
    } catch (e) {
      unlisten();
      emit(
        "err",
        red(
          `Error: cannot create a temporary directory: ${
            e instanceof Error ? e.message : String(e)
          }`,
        ),
      );
      return 1;
    }

    const main = this.steps();
    type Outcome =
      | { kind: "ok" }
      | { kind: "error"; error: unknown }
      | { kind: "signal"; signal: Deno.Signal };
    const settled: Promise<Outcome> = main.then(
      () => ({ kind: "ok" }),
      (error: unknown) => ({ kind: "error", error }),
    );
    const signalled = interrupted.promise.then((signal): Outcome => ({
      kind: "signal",
      signal,
    }));
    let outcome: Outcome = await Promise.race([settled, signalled]);
    if (outcome.kind === "error") {
      // Ctrl-C reaches the children too: a child that ended on it may be
      // seen before the signal is. Then report the interruption, not an error.
      const grace = delay(SIGNAL_GRACE_MS);
      outcome = await Promise.race([
        signalled,
        grace.promise.then(() => outcome),
      ]);
      grace.cancel();
    }
    this.aborted = true;

    if (outcome.kind === "signal") {
      emit(
        "err",
        red(`\nInterrupted (${outcome.signal}): shutting everything down...`),
      );
    } else if (outcome.kind === "error") {
      this.report(outcome.error);
    }

    const clean = await this.cleanup(settled);
    unlisten();

    if (outcome.kind === "ok" && clean) {
      this.result(green("Done."));
      return 0;
    }
    if (outcome.kind === "ok") {
      emit("err", red("Error: the shutdown was not clean (see above)."));
      return 1;
    }
    emit("err", outcome.kind === "signal" ? "Stopped." : "Cleaned up.");
    return outcome.kind === "signal" ? 130 : 1;
  }
  protected report(e: unknown): void {
    const msg = e instanceof Error ? e.message : String(e);
    emit("err", red(`\nError: ${msg}`));
    if (!(e instanceof DemoError)) {
      if (e instanceof Error && e.stack !== undefined) {
        emit("err", dim(e.stack));
      }
      return;
    }
    const show = (title: string, p: Proc, prefix: string) => {
      const last = p.lines.slice(-15);
      if (last.length === 0) return;
      emit("err", `${title}:`);
      for (const l of last) emit("err", `  ${prefix} ${l}`);
    };
    if (e.proc !== undefined) {
      show(`Output of ${e.proc.label}`, e.proc, "|");
    }
    if (e.node?.irmd !== undefined) {
      show(
        `Last log lines of the ${e.node.label} node`,
        e.node.irmd,
        `${e.node.label} |`,
      );
    }
  }

  protected async cat(
    node: N,
    files: readonly string[] = [node.conf, node.hosts],
  ): Promise<void> {
    for (const f of files) {
      this.say(bold(`$ cat ${f}`));
      const text = await Deno.readTextFile(f);
      for (const l of text.trimEnd().split("\n")) this.say(`    ${l}`);
    }
  }

  protected async startIrmd(node: N, ready: RegExp): Promise<void> {
    const args = ["--rundir", node.rundir, "-c", node.conf, "--debug"];
    this.say();
    const program = node.aarch64 ? `${node.dir}/bin/irmd` : "irmd";
    this.command(`${program} ${args.join(" ")}`, this.where(node));
    const irmd = this.spawn(
      `${node.label} irmd`,
      node.aarch64 ? [program, ...args] : selfCommand("irmd", args),
      node,
    );
    node.irmd = irmd;
    this.follow(irmd, `${node.label} |`);
    await this.waitIrmd(
      node,
      /IPC Resource Manager daemon started/,
      this.ms(IRMD_START_MS),
    );
    await this.waitIrmd(node, ready, this.ms(IRMD_READY_MS));
  }

  // ------------------------------------------------------------ cleanup

  /** Stops everything, removes the directory; false when something was left. */
  protected async cleanup(settled: Promise<unknown>): Promise<boolean> {
    let clean = true;
    const stopAll = async () => {
      // Clients and tools first, then the oping servers, then the irmds.
      const irmds = this.irmdsInStopOrder().filter((
        p,
      ): p is Proc => p !== undefined);
      const others = this.procs.filter((p) => !irmds.includes(p));
      const stops = await Promise.all(
        others.map((p) => p.stop(this.ms(SERVER_STOP_MS))),
      );
      for (const [i, st] of stops.entries()) {
        if (st.signal === "SIGKILL") {
          clean = false;
          emit(
            "err",
            red(`${others[i]!.label} ignored SIGTERM and was killed.`),
          );
        }
      }
      for (const irmd of irmds) {
        const st = await irmd.stop(this.ms(IRMD_STOP_MS));
        if (st.signal === "SIGKILL") {
          clean = false;
          emit(
            "err",
            red(
              `The ${irmd.label} did not exit within ${
                this.ms(IRMD_STOP_MS) / 1000
              } s and was killed.`,
            ),
          );
        }
      }
    };
    if (this.procs.length > 0) await stopAll();
    // The steps end once their processes are gone; wait for them (bounded)
    // so that nothing starts or writes after this point.
    const d = delay(this.ms(MAIN_SETTLE_MS));
    await Promise.race([settled, d.promise]);
    d.cancel();
    await stopAll();
    const t = delay(2000);
    await Promise.race([Promise.all(this.tails), t.promise]);
    t.cancel();

    // Last resort: anything still running that belongs to this demo (an
    // IPCP whose irmd had to be killed, say) is killed.
    if (this.tmp !== "") {
      let left = await processesMentioning(this.tmp);
      if (left.length > 0) {
        clean = false;
        emit("err", red(`Killing leftover processes: ${left.join(" ")}.`));
        for (const line of await describeProcesses(left)) {
          emit("err", `  ${line}`);
        }
        for (const pid of left) {
          try {
            Deno.kill(pid, "SIGKILL");
          } catch {
            // gone already
          }
        }
        const deadline = Date.now() + this.ms(LEFTOVER_MS);
        while (
          (left = await liveProcesses(left)).length > 0 &&
          Date.now() < deadline
        ) {
          const w = delay(50);
          await w.promise;
        }
        if (left.length > 0) {
          emit("err", red(`Processes still running: ${left.join(" ")}.`));
        }
      }
      try {
        await Deno.remove(this.tmp, { recursive: true });
      } catch (e) {
        clean = false;
        emit(
          "err",
          red(
            `Could not remove ${this.tmp}: ${
              e instanceof Error ? e.message : String(e)
            }`,
          ),
        );
      }
      if (clean) this.say(`Removed ${this.tmp}.`);
    }
    return clean;
  }
}

class Demo extends NarratedDemo<DemoNode> {
  readonly #pi: boolean;
  #bundle = "";
  readonly #servers: Proc[] = [];
  #server: DemoNode | undefined;
  #client: DemoNode | undefined;

  constructor(opts: DemoOptions) {
    super({
      quiet: opts.quiet ?? false,
      port: opts.port ?? DEFAULT_PORT,
      slow: opts.pi ? PI_SLOWDOWN : 1,
    });
    this.#pi = opts.pi ?? false;
  }

  protected override addresses(): readonly string[] {
    return [SERVER_IP, CLIENT_IP];
  }

  protected override irmdsInStopOrder(): (Proc | undefined)[] {
    return [this.#client?.irmd, this.#server?.irmd];
  }

  protected override async ready(): Promise<boolean> {
    return !this.#pi || await this.#aarch64Ready();
  }

  /** --pi: whether aarch64 programs run here; installs the aarch64 Deno. */
  async #aarch64Ready(): Promise<boolean> {
    const fail = (why: string) => {
      emit("err", red(`Error: --pi cannot run here: ${why}.`));
      emit("err", "See ./run-demo --help.");
      return false;
    };
    const problem = await aarch64Problem({ deno: false });
    if (problem !== undefined) return fail(problem);
    if (await aarch64Problem() === undefined) return true;
    // The first time: bin/deno-aarch64 installs it (it says so on stderr).
    const child = new Deno.Command(AARCH64_INSTALLER, {
      args: ["--install"],
      stdin: "null",
      stdout: "null",
      stderr: "inherit",
    }).spawn();
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch {
        // exited already
      }
    }, INSTALL_MS);
    const st = await child.status;
    clearTimeout(timer);
    const still = await aarch64Problem();
    if (!st.success || still !== undefined) {
      return fail(
        `bin/deno-aarch64 could not install the aarch64 Deno${
          still === undefined ? "" : ` (${still})`
        }`,
      );
    }
    return true;
  }

  /** --pi: builds the bundle and shows that the aarch64 Deno runs it. */
  async #prepareAarch64(): Promise<void> {
    this.check();
    this.#bundle = `${this.tmp}/ouroboros.js`;
    this.command(
      `deno bundle -q --platform deno -o ${this.#bundle} main.ts`,
      "deno task bundle, into the working directory",
    );
    try {
      await buildBundle(this.#bundle);
    } catch (e) {
      this.check();
      throw new DemoError(e instanceof Error ? e.message : String(e));
    }
    this.check();
    const probe = ["eval", "console.log(Deno.build.arch)"];
    this.command(
      `${AARCH64_DENO} ${probe[0]} '${probe[1]}'`,
      "the aarch64 Deno",
    );
    const p = new Proc("aarch64 deno", [AARCH64_DENO, ...probe], {
      NO_COLOR: "1",
      ...aarch64Env(),
    });
    this.procs.push(p);
    let r: { code: number; stdout: string; stderr: string };
    try {
      r = await p.exit(ARCH_PROBE_MS);
    } catch {
      this.check();
      throw new DemoError(
        `the aarch64 Deno did not answer within ${ARCH_PROBE_MS / 1000} s.`,
        undefined,
        p,
      );
    }
    this.check();
    if (r.code !== 0 || r.stdout.trim() !== "aarch64") {
      throw new DemoError(
        `the aarch64 Deno did not run (exit code ${r.code}).`,
        undefined,
        p,
      );
    }
    this.result(
      `The aarch64 Deno runs: Deno.build.arch is ${r.stdout.trim()}.`,
    );
  }

  /** --pi: which architecture each process of both nodes executes. */
  async #showArchitectures(server: DemoNode, client: DemoNode): Promise<void> {
    const rows: [string, number][] = [];
    const nodeRows = (node: DemoNode) => {
      const irmd = node.irmd!;
      rows.push([`${node.label} irmd`, irmd.pid]);
      for (const l of irmd.lines) {
        const m = /Bootstrapped IPCP (\d+) in layer/.exec(l);
        if (m !== null) rows.push([`${node.label} IPCP`, Number(m[1])]);
      }
    };
    nodeRows(server);
    this.#servers.forEach((p, i) =>
      rows.push([`oping server ${i === 0 ? "A" : "B"}`, p.pid])
    );
    nodeRows(client);
    const archs = await processArch(rows.map(([, pid]) => pid));
    this.say();
    this.say(
      "Where each process runs (from /proc/<pid>/exe and its command line):",
    );
    for (const [label, pid] of rows) {
      this.result(
        `${label.padEnd(15)} process ${String(pid).padEnd(7)} runs ${
          describeArch(archs.get(pid))
        }`,
      );
    }
    const serverPids = new Set(
      rows.filter(([l]) => !l.startsWith("client")).map(([, pid]) => pid),
    );
    const wrong = rows.filter(([, pid]) =>
      archs.get(pid)?.arch !==
        (serverPids.has(pid) ? "aarch64" : Deno.build.arch)
    );
    if (wrong.length > 0) {
      throw new DemoError(
        `not on the expected architecture: ${
          wrong.map(([l, pid]) => `${l} (process ${pid})`).join(", ")
        }.`,
        server,
      );
    }
  }

  protected override async steps(): Promise<void> {
    const port = this.port;
    this.say(bold("Ouroboros tutorial 05 on one machine"));
    this.say(
      `Two "machines" as two irmds on loopback: a server node on ${SERVER_IP} ` +
        `and a client node on ${CLIENT_IP},`,
    );
    this.say(
      `both with a UDP layer "wifi-network" on port ${port}. ` +
        `Working directory: ${this.tmp}`,
    );
    if (this.#pi) {
      this.say(
        `--pi: the server node runs as on a Raspberry Pi: its programs run ` +
          `from the bundle on the aarch64 Deno${
            Deno.build.arch === "aarch64"
              ? ""
              : `, here under qemu-user (10-30 times slower)`
          }; the client node runs on this machine's Deno (${Deno.build.arch}).`,
      );
      await this.#prepareAarch64();
    }

    // ---- 1: files
    this.step(1, "configuration files and hosts files");
    const server = await this.#makeNode("server", SERVER_IP, this.#pi);
    const client = await this.#makeNode("client", CLIENT_IP, false);
    this.#server = server;
    this.#client = client;
    this.say(
      `The server node registers oping-server (round-robin) and oping-server2 ` +
        `(spill, the default);`,
    );
    if (server.aarch64) {
      this.say(
        `its programs are ${server.dir}/bin/oping (and irmd, irm), scripts ` +
          `that run the bundle on the aarch64 Deno (as /usr/bin/oping would ` +
          `on the Pi):`,
      );
      await this.cat(server, [`${server.dir}/bin/oping`]);
    } else {
      this.say(
        `its programs are ${server.dir}/bin/oping, a link to the ouroboros launcher ` +
          `(as /usr/bin/oping would be).`,
      );
    }
    await this.cat(server);
    this.say(
      `The client node only needs the layer, and hosts lines that map the MD5 ` +
        `of each name to the server:`,
    );
    await this.cat(client);

    // ---- 2: irmds
    this.step(
      2,
      "start the irmds (with --debug, like the tutorial's debug build)",
    );
    await this.startIrmd(server, /Registered oping-server2 with IPCP \d+/);
    this.say(
      `The server node is up: IPCP wifi1 is bootstrapped in wifi-network on ` +
        `${SERVER_IP}:${port} and both names are registered.`,
    );
    await this.startIrmd(
      client,
      /Bootstrapped IPCP \d+ in layer wifi-network/,
    );
    this.say(
      `The client node is up: IPCP wifi1 is bootstrapped in wifi-network on ` +
        `${CLIENT_IP}:${port}.`,
    );

    // ---- 3: oping servers
    this.step(3, "two oping servers on the server node");
    this.say(
      "Each inherits both names from the program oping, and accepts flows for them.",
    );
    for (const tag of ["A", "B"]) await this.#startServer(server, tag);
    const [a, b] = this.#servers;
    this.result(
      `Server A is process ${a!.pid}, server B is process ${b!.pid}.`,
    );
    if (this.#pi) await this.#showArchitectures(server, client);

    // ---- 4: clients
    this.step(4, `clients on the client node, one after another`);
    const seen = new Map<string, string[]>();
    let first = true;
    for (const name of NAMES) {
      this.command(
        `oping -n ${name} -c 1`,
        `client node, ${CLIENTS_PER_NAME} times`,
      );
      const tags: string[] = [];
      for (let i = 1; i <= CLIENTS_PER_NAME; i++) {
        const r = await this.#ping(
          client,
          server,
          name,
          i,
          CLIENTS_PER_NAME,
          first,
        );
        first = false;
        tags.push(this.#tag(r.pid));
      }
      seen.set(name, tags);
    }
    const rr = seen.get("oping-server")!;
    const spill = seen.get("oping-server2")!;
    const alternates = rr[0] !== rr[1] &&
      rr.every((t, i) => t === rr[i % 2]);
    const sticks = new Set(spill).size === 1;
    this.result("");
    this.result(
      `oping-server: ${rr.join(" ")} (round-robin: ${
        alternates ? "alternating" : "NOT alternating"
      })`,
    );
    this.result(
      `oping-server2: ${spill.join(" ")} (spill: ${
        sticks ? "same process" : "NOT the same process"
      })`,
    );
    if (!alternates) {
      throw new DemoError(
        "round-robin did not alternate strictly between the two servers.",
        server,
      );
    }
    if (!sticks) {
      throw new DemoError(
        "spill did not keep sending oping-server2 to one process.",
        server,
      );
    }

    // ---- 5: bind
    this.step(5, "bind the other server to oping-server2");
    const spillTag = spill[0]!;
    const other = spillTag === "A" ? b! : a!;
    const otherTag = spillTag === "A" ? "B" : "A";
    this.say(
      `To guarantee that oping-server2 goes to one specific process, bind it ` +
        `to the name (the tutorial's command):`,
    );
    await this.#bind(server, other.pid);
    this.result(
      `Bound server process ${other.pid} (server ${otherTag}) to oping-server2.`,
    );
    this.command(
      "oping -n oping-server2 -c 1",
      `client node, ${CLIENTS_AFTER_BIND} times`,
    );
    const bound: string[] = [];
    for (let i = 1; i <= CLIENTS_AFTER_BIND; i++) {
      const r = await this.#ping(
        client,
        server,
        "oping-server2",
        i,
        CLIENTS_AFTER_BIND,
        false,
      );
      bound.push(this.#tag(r.pid));
    }
    const allOther = bound.every((t) => t === otherTag);
    this.result("");
    this.result(
      `oping-server2 after the bind: ${bound.join(" ")} (bound process: ${
        allOther ? `always server ${otherTag}` : "NOT always the bound process"
      })`,
    );
    if (!allOther) {
      throw new DemoError(
        `after the bind, oping-server2 did not always go to process ${other.pid}.`,
        server,
      );
    }

    // ---- 6: shutdown (done by the cleanup, narrated here)
    this.step(
      6,
      "shut down: SIGTERM to the oping servers, then to the irmds",
    );
  }

  async #makeNode(
    label: "server" | "client",
    ip: string,
    aarch64: boolean,
  ): Promise<DemoNode> {
    this.check();
    const dir = `${this.tmp}/${label}`;
    const node: DemoNode = {
      label,
      aarch64,
      ip,
      dir,
      rundir: `${dir}/run`,
      conf: `${dir}/tut05.conf`,
      hosts: `${dir}/hosts`,
    };
    await Deno.mkdir(`${dir}/bin`, { recursive: true });
    if (aarch64) {
      await writeAarch64Programs(`${dir}/bin`, this.#bundle, [
        "irmd",
        "oping",
        "irm",
      ]);
    } else {
      for (const n of ["oping", "irm"]) {
        await Deno.symlink(LAUNCHER, `${dir}/bin/${n}`);
      }
    }
    const port = this.port === DEFAULT_PORT ? "" : `port=${this.port}\n`;
    const udp = `[udp.wifi1]
bootstrap="wifi-network"
ip="${ip}"
${port}hosts="${node.hosts}"
`;
    const conf = label === "client" ? udp : `[name."oping-server"]
prog=["${dir}/bin/oping"]
args=["--listen"]
lb="round-robin"

[name."oping-server2"]
prog=["${dir}/bin/oping"]
args=["--listen"]

${udp}reg=["oping-server", "oping-server2"]
`;
    await Deno.writeTextFile(node.conf, conf);
    await Deno.writeTextFile(
      node.hosts,
      `${SERVER_IP} 6ae220aa6aae06c43878513c64db34b6 #oping-server
${SERVER_IP} f87b9400fa8f3d568b1481da7a99d122 #oping-server2
`,
    );
    return node;
  }

  async #startServer(node: DemoNode, tag: string): Promise<void> {
    const irmd = node.irmd!;
    const from = irmd.lines.length;
    this.say();
    this.command(`${node.dir}/bin/oping -l`, `server node, server ${tag}`);
    const p = this.spawn(
      `oping server ${tag}`,
      [`${node.dir}/bin/oping`, "-l"],
      node,
    );
    this.#servers.push(p);
    this.follow(p, `${node.label} | [oping ${tag}]`);
    // "This process accepts flows for:" follows "New instance (<pid>)".
    const accepts = await this.#waitServer(
      node,
      p,
      new RegExp(`New instance \\(${p.pid}\\) of oping added\\.`),
      from,
    );
    await this.#waitServer(node, p, /This process accepts flows for:/, accepts);
    for (const name of NAMES) {
      await this.#waitServer(
        node,
        p,
        new RegExp(`irmd\\(DB\\):\\s+${escapeRe(name)}$`),
        accepts,
      );
    }
  }

  /** Waits for an irmd line about server `p`; returns the line's index. */
  async #waitServer(
    node: DemoNode,
    p: Proc,
    re: RegExp,
    from: number,
  ): Promise<number> {
    const irmd = node.irmd!;
    const exited = p.status.then(() => "exited" as const);
    try {
      const r = await Promise.race([
        irmd.waitFor(re, this.ms(SERVER_ACCEPT_MS), from),
        exited,
      ]);
      if (r === "exited") {
        throw new DemoError(
          `${p.label} (process ${p.pid}) exited before it accepted flows.`,
          node,
          p,
        );
      }
      return irmd.lines.indexOf(r, from);
    } catch (e) {
      this.check();
      if (e instanceof DemoError) throw e;
      throw new DemoError(
        `${p.label} (process ${p.pid}) did not accept flows within ${
          this.ms(SERVER_ACCEPT_MS) / 1000
        } s.`,
        node,
        p,
      );
    }
  }

  #tag(pid: number): string {
    const i = this.#servers.findIndex((s) => s.pid === pid);
    return i === 0 ? "A" : i === 1 ? "B" : `?${pid}`;
  }

  /** Runs one `oping -n <name> -c 1` on the client node and finds who answered. */
  async #ping(
    client: DemoNode,
    server: DemoNode,
    name: string,
    n: number,
    total: number,
    showOutput: boolean,
  ): Promise<ClientResult> {
    const irmd = server.irmd!;
    const from = irmd.lines.length;
    const p = this.spawn(
      `client ${name} ${n}`,
      [`${client.dir}/bin/oping`, "-n", name, "-c", "1"],
      client,
    );
    let r: { code: number; stdout: string; stderr: string };
    try {
      r = await p.exit(this.ms(CLIENT_RUN_MS));
    } catch {
      this.check();
      throw new DemoError(
        `oping -n ${name} -c 1 did not finish within ${
          this.ms(CLIENT_RUN_MS) / 1000
        } s.`,
        client,
        p,
      );
    }
    this.check();
    if (r.code !== 0) {
      throw new DemoError(
        `oping -n ${name} -c 1 failed (exit code ${r.code}).`,
        client,
        p,
      );
    }
    const rtt = /time=(\S+ \S+)/.exec(r.stdout)?.[1];
    if (rtt === undefined) {
      throw new DemoError(
        `oping -n ${name} -c 1 printed no reply line.`,
        client,
        p,
      );
    }
    let line: string;
    try {
      line = await irmd.waitFor(
        new RegExp(`Flow \\d+ accepted by \\d+ for ${escapeRe(name)}\\.`),
        this.ms(FLOW_LINE_MS),
        from,
      );
    } catch {
      this.check();
      throw new DemoError(
        `the server irmd did not log which process accepted the flow for ${name}.`,
        server,
      );
    }
    const pid = Number(/accepted by (\d+)/.exec(line)![1]);
    if (showOutput && !this.quiet) {
      this.say("  The first client's output:");
      for (const l of p.out) this.say(`  client | [oping] ${l}`);
    }
    const tag = this.#tag(pid);
    this.result(
      bold(
        `${name.padEnd(13)} client ${n}/${total}: rtt ${
          rtt.padEnd(9)
        } answered by server process ${pid} (server ${tag})`,
      ),
    );
    return { rtt, pid };
  }

  async #bind(server: DemoNode, pid: number): Promise<void> {
    const args = [
      "name",
      "bind",
      "process",
      String(pid),
      "name",
      "oping-server2",
    ];
    this.command(`irm ${args.join(" ")}`, "server node");
    if (this.quiet) {
      this.result(`$ irm ${args.join(" ")}`);
    }
    const irmd = server.irmd!;
    const from = irmd.lines.length;
    const p = this.spawn("irm", [`${server.dir}/bin/irm`, ...args], server);
    let r: { code: number; stdout: string; stderr: string };
    try {
      r = await p.exit(this.ms(IRM_RUN_MS));
    } catch {
      this.check();
      throw new DemoError(
        `irm did not finish within ${this.ms(IRM_RUN_MS) / 1000} s.`,
        server,
        p,
      );
    }
    this.check();
    for (const l of p.lines) this.say(`    ${l}`);
    if (r.code !== 0) {
      throw new DemoError(`irm failed (exit code ${r.code}).`, server, p);
    }
    try {
      await irmd.waitFor(
        new RegExp(`Bound process ${pid} to name oping-server2\\.`),
        this.ms(FLOW_LINE_MS),
        from,
      );
    } catch {
      this.check();
      throw new DemoError(
        `the server irmd did not log the binding of process ${pid}.`,
        server,
      );
    }
  }
}

/** Runs the demo; resolves to the exit status (0 success, 1 failure, 130 interrupted). */
export async function runDemo(opts: DemoOptions = {}): Promise<number> {
  if (opts.unicast) {
    // Imported when needed: tools/demo_unicast.ts builds on this module.
    const { runUnicastDemo } = await import("./demo_unicast.ts");
    return await runUnicastDemo({
      ...(opts.quiet === undefined ? {} : { quiet: opts.quiet }),
      ...(opts.port === undefined ? {} : { port: opts.port }),
    });
  }
  return await new Demo(opts).run();
}

if (import.meta.main) {
  setMainModule(new URL("../main.ts", import.meta.url));
  const parsed = parseDemoArgs(Deno.args);
  if (parsed.kind === "help") {
    emit("out", USAGE);
    Deno.exit(0);
  }
  if (parsed.kind === "error") {
    emit("err", `demo: ${parsed.message} Try: ./run-demo --help`);
    Deno.exit(2);
  }
  // Not a top-level await: this module must finish evaluating, so that
  // tools/demo_unicast.ts (which imports it) can be imported meanwhile.
  void runDemo(parsed.opts).then((code) => Deno.exit(code));
}
