/**
 * What the flow tools (oping, ocbr) share: printing, error reasons, signal
 * handling, abortable sleeps and the start of `main` (options, help, the
 * session with the irmd, then client or server).
 */
import { type Flow, Ouroboros } from "../lib/dev.ts";
import { OuroborosError } from "../lib/errors.ts";
import type { Result } from "../lib/result.ts";

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
    console.error(`${prog}: ${parsed.error}`);
    console.error(usage);
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

/**
 * A server's accept loop: prints `banner`, hands every flow to `handle` and
 * accepts again at once (so the irmd sees it accepting), until SIGINT or
 * SIGTERM (exit 0) or the irmd goes away (exit 1); then closes its flows and
 * the session.
 */
export async function serveFlows(
  node: Ouroboros,
  banner: string,
  handle: (flow: Flow, signal: AbortSignal) => Promise<unknown>,
): Promise<number> {
  const stop = new AbortController();
  const removeSignals = onSignals(() => stop.abort());
  const flows = new Set<Flow>();
  const handlers = new Set<Promise<unknown>>();
  const stopped = new Promise<"stop">((r) =>
    stop.signal.addEventListener("abort", () => r("stop"))
  );
  const lost = node.done.then(() => "lost" as const);
  print(banner);
  let code = 0;
  try {
    let failures = 0;
    while (!stop.signal.aborted) {
      const accepting = node.accept();
      // Its outcome no longer matters once we stop or lose the irmd.
      accepting.catch(() => {});
      let res: Flow | "stop" | "lost";
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
      flows.add(flow);
      // Hand the flow over and accept again at once.
      const h = handle(flow, stop.signal).finally(() => {
        flows.delete(flow);
        handlers.delete(h);
      });
      handlers.add(h);
    }
  } finally {
    removeSignals();
    stop.abort();
    await Promise.all([...flows].map((f) => f.close(0)));
    await Promise.allSettled([...handlers]);
    await node.close();
  }
  return code;
}
