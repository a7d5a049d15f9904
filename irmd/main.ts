/**
 * `ouroboros irmd`: the IPC Resource Manager daemon.
 *
 *   ouroboros irmd [-c FILE | --config FILE] [--check [--json]] [--debug] [--stdout] [--rundir DIR]
 *
 * The daemon does not parse its configuration file itself: it runs
 * `ouroboros irmd --check --json -c FILE` and reads the result, so the TOML
 * parser (an npm package) is never loaded into the long-running process.
 */
import type { Config } from "../lib/config/config.ts";
import { configFromJson, configToJson } from "../lib/config/config_json.ts";
import { OuroborosError } from "../lib/util/errors.ts";
import { Logger, setupLogging } from "../lib/util/log.ts";
import { err, ok, type Result } from "../lib/util/result.ts";
import { resolveRundir } from "../lib/ipc/rundir.ts";
import { selfCommand } from "../lib/util/self.ts";
import { VERSION } from "../lib/util/version.ts";
import { Irmd } from "./irmd.ts";
import { BatchedSink } from "./log_batch.ts";

const log = new Logger("irmd");

const USAGE = `Usage: ouroboros irmd [options]

Options:
  -c, --config FILE  apply this configuration file at start
      --check        only validate the configuration file and print what it sets up
      --json         with --check: print it as JSON instead
  -d, --debug        print debug log lines
      --stdout       log to standard output (the default; accepted for compatibility)
      --rundir DIR   runtime directory for this node's sockets
                     (default: /run/ouroboros for root, else a per-user directory;
                     also OUROBOROS_RUNDIR)
  -V, --version      print the version
  -h, --help         this text`;

interface IrmdArgs {
  config?: string;
  check: boolean;
  json: boolean;
  debug: boolean;
  rundir?: string;
}

function parseArgs(args: string[]): IrmdArgs | string {
  const out: IrmdArgs = { check: false, json: false, debug: false };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const [flag, inline] = a.startsWith("--") && a.includes("=")
      ? [a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)]
      : [a, undefined];
    const value = (): string | undefined => inline ?? args[++i];
    switch (flag) {
      case "-c":
      case "--config": {
        const v = value();
        if (v === undefined || v === "") return `${flag} needs a file name.`;
        out.config = v;
        break;
      }
      case "--rundir": {
        const v = value();
        if (v === undefined || v === "") return `--rundir needs a directory.`;
        out.rundir = v;
        break;
      }
      case "--check":
        out.check = true;
        break;
      case "--json":
        out.json = true;
        break;
      case "-d":
      case "--debug":
        out.debug = true;
        break;
      case "--stdout":
        break;
      default:
        return `unknown option "${a}".`;
    }
  }
  return out;
}

/** `--check`: parse the configuration file here, print it, exit. */
async function check(opts: IrmdArgs): Promise<number> {
  if (opts.config === undefined) {
    console.error("irmd: --check needs a configuration file (-c FILE).");
    return 2;
  }
  const { formatConfigSummary, checkConfigFile } = await import(
    "../lib/config/config.ts"
  );
  const cfg = await checkConfigFile(opts.config);
  if (!cfg.ok) {
    console.error(`irmd: ${cfg.error}`);
    return 1;
  }
  for (const w of cfg.value.warnings) console.error(`irmd: ${w}`);
  const { config } = cfg.value;
  console.log(opts.json ? configToJson(config) : formatConfigSummary(config));
  return 0;
}

/**
 * The configuration file as parsed by `irmd --check --json` in a child, with
 * the warnings it printed (one a line on its standard error).
 */
async function parseInChild(
  file: string,
): Promise<Result<{ config: Config; warnings: string[] }>> {
  const [cmd, ...args] = selfCommand(
    "irmd",
    ["--check", "--json", "-c", file],
    { npm: true },
  );
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(cmd!, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    return err(`${file}: cannot start the configuration parser: ${why}`);
  }
  if (!out.success) {
    const text = new TextDecoder().decode(out.stderr).trim();
    return err(
      text.replace(/^irmd: /, "") ||
        `${file}: the configuration parser failed (exit code ${out.code})`,
    );
  }
  const config = configFromJson(new TextDecoder().decode(out.stdout));
  if (!config.ok) return config;
  const warnings = new TextDecoder().decode(out.stderr).split("\n")
    .filter((l) => l.trim() !== "").map((l) => l.replace(/^irmd: /, ""));
  return ok({ config: config.value, warnings });
}

export async function main(args: string[]): Promise<number> {
  if (args.includes("-h") || args.includes("--help")) {
    console.log(USAGE);
    return 0;
  }
  if (args.includes("-V") || args.includes("--version")) {
    console.log(`ouroboros irmd ${VERSION}`);
    return 0;
  }
  const opts = parseArgs(args);
  if (typeof opts === "string") {
    console.error(`irmd: ${opts}\n${USAGE}`);
    return 2;
  }
  if (opts.check) return await check(opts);
  if (opts.json) {
    console.error(`irmd: --json goes with --check.\n${USAGE}`);
    return 2;
  }
  const cfg = opts.config === undefined
    ? undefined
    : await parseInChild(opts.config);
  if (cfg !== undefined && !cfg.ok) {
    console.error(`irmd: ${cfg.error}`);
    return 1;
  }
  // The lines of a task leave in one write once it is done (log_batch.ts).
  const sink = new BatchedSink();
  const stopFlushing = sink.flushAtExit();
  setupLogging({ debug: opts.debug, sink });
  try {
    return await serve(opts, cfg?.value);
  } finally {
    sink.flush();
    stopFlushing();
  }
}

async function serve(
  opts: IrmdArgs,
  cfg: { config: Config; warnings: string[] } | undefined,
): Promise<number> {
  const irmd = new Irmd({
    rundir: resolveRundir(opts.rundir),
    debug: opts.debug,
  });
  try {
    await irmd.listen();
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    log.error(`Cannot start: ${why}.`);
    return 1;
  }
  const stopped = Promise.withResolvers<number>();
  const signals = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
  const onSignal = () => {
    void irmd.stop().then(() => stopped.resolve(0));
  };
  for (const s of signals) Deno.addSignalListener(s, onSignal);
  log.info(
    `Ouroboros IPC Resource Manager daemon started (runtime directory ${irmd.opts.rundir}).`,
  );
  if (cfg !== undefined) {
    for (const w of cfg.warnings) {
      log.warn(w.replace(/: warning: /, ": "));
    }
    try {
      await irmd.applyConfig(cfg.config);
    } catch (e) {
      const why = e instanceof OuroborosError || e instanceof Error
        ? e.message
        : String(e);
      log.error(`Configuration ${cfg.config.file} failed: ${why}`);
      await irmd.stop();
      stopped.resolve(1);
    }
  }
  const code = await stopped.promise;
  for (const s of signals) Deno.removeSignalListener(s, onSignal);
  return code;
}
