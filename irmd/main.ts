/**
 * `ouroboros irmd`: the IPC Resource Manager daemon.
 *
 *   ouroboros irmd [-c FILE | --config FILE] [--check] [--debug] [--stdout] [--rundir DIR]
 */
import { formatConfigSummary, loadConfig } from "../lib/config.ts";
import { OuroborosError } from "../lib/errors.ts";
import { Logger, setupLogging } from "../lib/log.ts";
import { resolveRundir } from "../lib/rundir.ts";
import { VERSION } from "../lib/version.ts";
import { Irmd } from "./irmd.ts";

const log = new Logger("irmd");

const USAGE = `Usage: ouroboros irmd [options]

Options:
  -c, --config FILE  apply this configuration file at start
      --check        only validate the configuration file and print what it sets up
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
  debug: boolean;
  rundir?: string;
}

function parseArgs(args: string[]): IrmdArgs | string {
  const out: IrmdArgs = { check: false, debug: false };
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
  const cfg = opts.config === undefined
    ? undefined
    : await loadConfig(opts.config);
  if (cfg !== undefined && !cfg.ok) {
    console.error(`irmd: ${cfg.error}`);
    return 1;
  }
  if (opts.check) {
    if (cfg === undefined) {
      console.error("irmd: --check needs a configuration file (-c FILE).");
      return 2;
    }
    console.log(formatConfigSummary(cfg.value));
    return 0;
  }
  setupLogging({ debug: opts.debug });
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
    try {
      await irmd.applyConfig(cfg.value);
    } catch (e) {
      const why = e instanceof OuroborosError || e instanceof Error
        ? e.message
        : String(e);
      log.error(`Configuration ${cfg.value.file} failed: ${why}`);
      await irmd.stop();
      stopped.resolve(1);
    }
  }
  const code = await stopped.promise;
  for (const s of signals) Deno.removeSignalListener(s, onSignal);
  return code;
}
