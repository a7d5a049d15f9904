/**
 * What the flow tools (oping, ocbr) share: printing, error reasons, signal
 * handling, abortable sleeps and the start of `main` (options, help, the
 * session with the irmd, then client or server).
 */
import {
  type AcceptOptions,
  type AllocOptions,
  type Flow,
  Ouroboros,
} from "../lib/app/dev.ts";
import { EventLoopTurn } from "../lib/app/turn.ts";
import { OuroborosError } from "../lib/util/errors.ts";
import { err, ok, type Result } from "../lib/util/result.ts";
import { isQosCubeName, type QosCubeName } from "../lib/wire/udp_wire.ts";

export type Print = (line: string) => void;

export function print(line: string): void {
  console.log(line);
}

/** The message of an error, without a trailing period. */
export function reason(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.replace(/[.\s]+$/, "");
}

/** Calls `onStop` on SIGINT or SIGTERM until the returned function is called. */
export function onSignals(onStop: () => void): () => void {
  const added: Deno.Signal[] = [];
  for (const s of ["SIGINT", "SIGTERM"] as const) {
    try {
      Deno.addSignalListener(s, onStop);
      added.push(s);
    } catch { /* not supported here */ }
  }
  return () => {
    for (const s of added) {
      try {
        Deno.removeSignalListener(s, onStop);
      } catch { /* gone */ }
    }
  };
}

/** Waits `ms`, or less when `signal` fires (at once if it has). */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done);
  });
}

/** The options every flow tool has. */
export interface ToolOptions {
  help: boolean;
  listen: boolean;
  rundir?: string | undefined;
}

/**
 * A tool's `main`: parses its options (usage errors exit 2), answers
 * --help, connects to the irmd as program `prog` (its failure is printed as
 * it is: it starts with the words irm uses), then runs the server or the
 * client, which own and close the session.
 */
export async function runTool<O extends ToolOptions>(
  prog: string,
  usage: string,
  args: string[],
  parse: (args: readonly string[]) => Result<O>,
  run: {
    client: (node: Ouroboros, opts: O) => Promise<number>;
    server: (node: Ouroboros, opts: O) => Promise<number>;
  },
): Promise<number> {
  const parsed = parse(args);
  if (!parsed.ok) {
    // One line that says what is wrong, not the usage that scrolls it away.
    console.error(`${prog}: ${parsed.error}`);
    console.error(`Try '${prog} --help'.`);
    return 2;
  }
  const opts = parsed.value;
  if (opts.help) {
    print(usage);
    return 0;
  }
  let node: Ouroboros;
  try {
    node = await Ouroboros.connect({
      prog,
      ...(opts.rundir === undefined ? {} : { rundir: opts.rundir }),
    });
  } catch (e) {
    print(e instanceof Error ? e.message : String(e));
    return 1;
  }
  return opts.listen
    ? await run.server(node, opts)
    : await run.client(node, opts);
}

/** What a server's accept loop needs of a flow. */
export interface ClosableFlow {
  close(lingerMs?: number): Promise<void>;
}

/** What a server's accept loop needs of its session (an `Ouroboros`). */
export interface FlowSource<F extends ClosableFlow> {
  accept(opts?: AcceptOptions): Promise<F>;
  /** Resolves when the irmd connection has ended. */
  readonly done: Promise<void>;
  close(): Promise<void>;
}

/**
 * A server's accept loop: prints `banner`, hands every flow to `handle` and
 * accepts again at once (so the irmd sees it accepting), until SIGINT or
 * SIGTERM (exit 0) or the irmd goes away (exit 1); then closes its flows and
 * the session.
 */
export async function serveFlows<F extends ClosableFlow>(
  node: FlowSource<F>,
  banner: string,
  handle: (flow: F, signal: AbortSignal) => Promise<unknown>,
  acceptOpts: AcceptOptions = {},
): Promise<number> {
  const stop = new AbortController();
  const removeSignals = onSignals(() => stop.abort());
  // Every flow has a signal of its own, aborted with `stop`: a handler waits
  // on a signal with one listener, where a signal shared by every flow would
  // have its listeners scanned on each read (slow with thousands of flows).
  const flows = new Map<F, AbortController>();
  const handlers = new Set<Promise<unknown>>();
  const stopped = new Promise<"stop">((r) =>
    stop.signal.addEventListener("abort", () => {
      for (const c of flows.values()) c.abort();
      r("stop");
    })
  );
  const lost = node.done.then(() => "lost" as const);
  print(banner);
  let code = 0;
  try {
    let failures = 0;
    while (!stop.signal.aborted) {
      const accepting = node.accept(acceptOpts);
      // Its outcome no longer matters once we stop or lose the irmd.
      accepting.catch(() => {});
      let res: F | "stop" | "lost";
      try {
        res = await Promise.race([accepting, stopped, lost]);
      } catch (e) {
        if (stop.signal.aborted) break;
        if (e instanceof OuroborosError && e.code === "irmd_not_running") {
          res = "lost";
        } else {
          print(`Failed to accept a flow: ${reason(e)}.`);
          if (++failures > 3) await sleep(100, stop.signal);
          continue;
        }
      }
      if (res === "stop") break;
      if (res === "lost") {
        print(
          "Lost the connection to the Ouroboros IPC Resource Manager daemon.",
        );
        code = 1;
        break;
      }
      failures = 0;
      const flow = res;
      const own = new AbortController();
      if (stop.signal.aborted) own.abort();
      flows.set(flow, own);
      // Hand the flow over and accept again at once.
      const h = handle(flow, own.signal).finally(() => {
        flows.delete(flow);
        handlers.delete(h);
      });
      handlers.add(h);
    }
  } finally {
    removeSignals();
    stop.abort();
    await Promise.all([...flows.keys()].map((f) => f.close(0)));
    await Promise.allSettled([...handlers]);
    await node.close();
  }
  return code;
}

/** One option of a command line, as the user wrote it (`shown`). */
export interface OptionWord<N extends string> {
  name: N;
  /** The value ("" for a flag). */
  value: string;
  /** The option as written, without an inline value: "-c", "--count". */
  shown: string;
}

/** Which options a tool has: short forms, long names, those without a value. */
export interface OptionSpec<N extends string> {
  short: Readonly<Record<string, N>>;
  long: readonly N[];
  flags: readonly N[];
}

/**
 * Splits a command line into options: `-x value`, `--long value` and
 * `--long=value`; flags take no value. Errors are one line, for
 * `<tool>: <error>` and the usage.
 */
export function optionWords<N extends string>(
  args: readonly string[],
  spec: OptionSpec<N>,
): Result<OptionWord<N>[]> {
  const out: OptionWord<N>[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    let name: N | undefined;
    let inline: string | undefined;
    if (arg.startsWith("--") && arg.length > 2) {
      const eq = arg.indexOf("=");
      const long = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      name = spec.long.find((n) => n === long);
      if (eq >= 0) inline = arg.slice(eq + 1);
    } else if (arg.startsWith("-") && arg.length > 1) {
      name = spec.short[arg];
    } else {
      return err(`unexpected argument "${arg}"`);
    }
    if (name === undefined) {
      return err(`unknown option "${arg}"`);
    }
    const shown = inline === undefined ? arg : arg.slice(0, arg.indexOf("="));
    let value = "";
    if (!spec.flags.includes(name)) {
      if (inline !== undefined) value = inline;
      else {
        const next = args[i + 1];
        if (next === undefined) {
          return err(`option ${shown} needs a value`);
        }
        value = next;
        i++;
      }
    } else if (inline !== undefined) {
      return err(`option ${shown} takes no value`);
    }
    out.push({ name, value, shown });
  }
  return ok(out);
}

/** A QoS cube name, the value of option `opt` (-q). */
export function qosCube(opt: string, v: string): Result<QosCubeName> {
  return isQosCubeName(v)
    ? ok(v)
    : err(`${opt}: unknown QoS cube "${v}" (raw, best, video, voice, data)`);
}

/** A whole number from `min` to `max`, the value of option `opt`. */
export function wholeNumber(
  opt: string,
  v: string,
  min: number,
  max: number,
): Result<number> {
  if (!/^\d+$/.test(v)) {
    return err(`${opt}: "${v}" is not a whole number`);
  }
  const n = Number(v);
  if (n < min || n > max) {
    return err(`${opt}: ${v} is out of range (${min}-${max})`);
  }
  return ok(n);
}

/** After this long without an answer, a client says it is still waiting. */
export const PROGRESS_AFTER_MS = 2000;

/**
 * Allocates a flow to `name`, saying once on standard error (unless
 * `quiet`) when the peer has not answered after PROGRESS_AFTER_MS, so that a
 * peer that is down is not a silent wait.
 */
export async function allocateWithProgress(
  node: Pick<Ouroboros, "allocate">,
  name: string,
  opts: AllocOptions & { timeoutMs: number },
  quiet: boolean,
  say: Print = (l) => console.error(l),
): Promise<Flow> {
  const timer = quiet ? undefined : setTimeout(() => {
    const left = (opts.timeoutMs - PROGRESS_AFTER_MS) / 1000;
    say(
      `Still waiting for ${name} to answer the flow allocation (giving up in ${
        left.toFixed(left < 10 ? 1 : 0)
      } s; --timeout sets how long)...`,
    );
  }, PROGRESS_AFTER_MS);
  try {
    return await node.allocate(name, opts);
  } finally {
    clearTimeout(timer);
  }
}

/** What polling reads need of a flow. */
export interface PollableFlow {
  /** False once the flow is down or closed (its packets may still be read). */
  readonly isOpen: boolean;
  tryRead(): Uint8Array | undefined;
  read(opts: { timeoutMs: number; signal: AbortSignal }): Promise<Uint8Array>;
}

/**
 * What a tool's synchronous loop needs of a flow of the fast path: reads
 * and writes that wait on the program's own thread (lib/app/dev.ts).
 */
export interface SyncFlow {
  readSync(timeoutMs?: number): Uint8Array | undefined;
  writeSync(packet: Uint8Array): void;
}

/** The flow's synchronous calls, if it is a flow of the fast path. */
export function syncFlowOf(flow: object): SyncFlow | undefined {
  const f = flow as Partial<SyncFlow> & { io?: unknown };
  return f.io === "blocking" && f.readSync !== undefined &&
      f.writeSync !== undefined
    ? f as SyncFlow
    : undefined;
}

/**
 * How long a synchronous loop may keep its thread before it gives Deno's
 * event loop a whole turn (its signals, such as Ctrl-C, and the irmd's
 * connection are looked at then).
 */
export const SYNC_TURN_MS = 50;

/** A whole turn of Deno's event loop (a 0 ms timer). */
export function eventLoopTurn(): Promise<void> {
  return new Promise((r) => setTimeout(r, 0));
}

/** How a tool waits for its next packet. */
export type ReadMode = "block" | "poll" | "busy";

/** The wait between two looks at a flow in "poll" mode. */
export const POLL_INTERVAL_MS = 1;

export { EventLoopTurn };

/**
 * The next packet of `flow` within `timeoutMs`, in one of three ways:
 * "block" waits for it (the process sleeps until it comes); "poll" looks
 * for one without blocking every POLL_INTERVAL_MS; "busy" looks for one
 * again and again, giving the event loop one turn in between, so it never
 * sleeps: the lowest latency, at the cost of a whole CPU while it waits.
 * Fails as `flow.read` does (timed_out, flow_down, ...).
 */
export async function readWith(
  mode: ReadMode,
  flow: PollableFlow,
  opts: { timeoutMs: number; signal: AbortSignal },
  turn: EventLoopTurn,
): Promise<Uint8Array> {
  if (mode === "block") return await flow.read(opts);
  const deadline = performance.now() + opts.timeoutMs;
  for (;;) {
    const p = flow.tryRead();
    if (p !== undefined) return p;
    const left = deadline - performance.now();
    if (left <= 0 || opts.signal.aborted || !flow.isOpen) {
      // Let the flow say why: timed out, aborted or down.
      return await flow.read({ timeoutMs: 0, signal: opts.signal });
    }
    if (mode === "busy") await turn.next();
    else await sleep(Math.min(POLL_INTERVAL_MS, left), opts.signal);
  }
}
