/**
 * Entry point of ipcpd-udp4 and ipcpd-udp6. The irmd starts them:
 *   ouroboros ipcpd-udp4 --name <ipcp> [--rundir DIR] [--debug]
 * The IPCP connects back to the irmd, announces itself and then does what the
 * irmd asks. It exits when the irmd goes away, or on SIGTERM/SIGINT.
 */
import { connectCtrl } from "../../lib/ipc/ctrl.ts";
import { Logger, setupLogging } from "../../lib/util/log.ts";
import { irmdSocketPath, resolveRundir } from "../../lib/ipc/rundir.ts";
import { UdpIpcp } from "./ipcp.ts";

const log = new Logger("ipcpd/ipcp");

function usage(type: string): string {
  return `Usage: ouroboros ipcpd-${type} --name <ipcp> [--rundir DIR] [--debug]\n` +
    "Started by the irmd (irm ipcp create / a configuration file), not by hand.";
}

/** `as` is the name the program was called by (udp, udp4 or udp6). */
async function run(
  family: 4 | 6,
  args: string[],
  as = `udp${family}`,
): Promise<number> {
  const type = as;
  let name: string | undefined;
  let rundirFlag: string | undefined;
  let debug = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--name" && i + 1 < args.length) name = args[++i];
    else if (a === "--rundir" && i + 1 < args.length) rundirFlag = args[++i];
    else if (a === "--debug" || a === "-d") debug = true;
    else if (a === "--help" || a === "-h") {
      console.log(usage(type));
      return 0;
    } else {
      console.error(
        `ipcpd-${type}: unexpected argument "${a}".\n${usage(type)}`,
      );
      return 2;
    }
  }
  if (name === undefined || name === "") {
    console.error(`ipcpd-${type}: --name is required.\n${usage(type)}`);
    return 2;
  }
  setupLogging({ debug });
  const rundir = resolveRundir(rundirFlag);
  const ipcp = new UdpIpcp(name, family, rundir);
  try {
    ipcp.startDataSocket();
  } catch (e) {
    log.error(
      `Cannot open the data socket ${ipcp.dataPath}: ${
        e instanceof Error ? e.message : e
      }.`,
    );
    return 1;
  }
  let ctrl;
  try {
    ctrl = await connectCtrl(irmdSocketPath(rundir), {
      "ipcp.bootstrap": (b) => ipcp.bootstrap(b),
      "ipcp.reg": async (r) => {
        await ipcp.register(r.name, r.hash);
        return {};
      },
      "ipcp.unreg": async (r) => {
        await ipcp.unregister(r.name, r.hash);
        return {};
      },
      "ipcp.flow.alloc": (r) => ipcp.allocate(r),
      "ipcp.flow.dealloc": (r) => {
        ipcp.deallocate(r.handle);
        return {};
      },
      "ipcp.stats": () => ipcp.stats(),
    }, { onProblem: (m) => log.warn(`irmd connection: ${m}`) });
  } catch (e) {
    await ipcp.stop();
    log.error(
      `Cannot reach the irmd in ${rundir}: ${
        e instanceof Error ? e.message : e
      }.`,
    );
    return 1;
  }
  ipcp.attachCtrl(ctrl);
  let signalled = false;
  let failed = false;
  const onSignal = () => {
    if (signalled) return;
    signalled = true;
    // Stop first (this deletes our DNS records, in bounded time), then
    // close the control connection, so the irmd sees us go only at the end.
    void ipcp.stop().finally(() => ctrl.close());
  };
  ipcp.onFatal = () => {
    failed = true;
    onSignal();
  };
  ipcp.datapathThread.then(
    (tid) => log.debug(`Data path running in thread ${tid}.`),
    () => {},
  );
  for (const s of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(s, onSignal);
  }
  try {
    await ctrl.request("hello", { role: "ipcp", pid: Deno.pid, name }, 5000);
  } catch (e) {
    log.error(
      `The irmd did not accept this IPCP: ${
        e instanceof Error ? e.message : e
      }.`,
    );
    ctrl.close();
  }
  await ctrl.done;
  if (!signalled) log.info("The irmd went away; IPCP exiting.");
  await ipcp.stop();
  for (const s of ["SIGTERM", "SIGINT"] as const) {
    Deno.removeSignalListener(s, onSignal);
  }
  return failed ? 1 : 0;
}

export function mainUdp4(args: string[]): Promise<number> {
  return run(4, args);
}

/** `ipcpd-udp`, the tutorial's name for ipcpd-udp4. */
export function mainUdp(args: string[]): Promise<number> {
  return run(4, args, "udp");
}

export function mainUdp6(args: string[]): Promise<number> {
  return run(6, args);
}
