/**
 * The process of an IPCP, whatever its type: the irmd starts it as
 *   ouroboros ipcpd-<type> --name <ipcp> [--rundir DIR] [--debug]
 * It opens its data socket, connects back to the irmd, announces itself
 * and then does what the irmd asks. It exits when the irmd goes away, or
 * on SIGTERM/SIGINT.
 */
import {
  connectCtrl,
  type CtrlConn,
  type Handlers,
} from "../../lib/ipc/ctrl.ts";
import type { Req, Res } from "../../lib/ipc/proto.ts";
import { irmdSocketPath, resolveRundir } from "../../lib/ipc/rundir.ts";
import { Logger, setupLogging } from "../../lib/util/log.ts";
import { OuroborosError } from "../../lib/util/errors.ts";

const log = new Logger("ipcpd/ipcp");

/** What the irmd asks of an IPCP, and what its process needs of it. */
export interface Ipcp {
  /** The data socket's path. */
  readonly dataPath: string;
  /** The data path's thread id, once it runs. */
  readonly datapathThread: Promise<number>;
  /** Called when the data path fails and the IPCP cannot go on. */
  onFatal: (why: string) => void;
  /** Opens the data socket and starts the data path; throws if it cannot. */
  startDataSocket(): void;
  attachCtrl(ctrl: CtrlConn): void;
  bootstrap(
    b: Req<"ipcp.bootstrap">,
  ): Res<"ipcp.bootstrap"> | Promise<Res<"ipcp.bootstrap">>;
  /**
   * Joins a layer through `dst` (unicast IPCPs); an IPCP without it refuses
   * to enroll.
   */
  enroll?(r: Req<"ipcp.enroll">): Promise<Res<"ipcp.enroll">>;
  /** Opens one component's N-1 flow to a member (unicast IPCPs). */
  connect?(r: Req<"ipcp.connect">): Promise<void>;
  /** Closes one component's N-1 flow to a member (unicast IPCPs). */
  disconnect?(r: Req<"ipcp.disconnect">): Promise<void>;
  register(name: string, hash: Uint8Array): void | Promise<void>;
  unregister(name: string, hash: Uint8Array): void | Promise<void>;
  allocate(r: Req<"ipcp.flow.alloc">): Promise<Res<"ipcp.flow.alloc">>;
  deallocate(handle: number): void;
  stats(): Res<"ipcp.stats">;
  /** Ends every flow, stops the data path and closes what it opened. */
  stop(): Promise<void>;
}

function usage(type: string): string {
  return `Usage: ouroboros ipcpd-${type} --name <ipcp> [--rundir DIR] [--debug]\n` +
    "Started by the irmd (irm ipcp create / a configuration file), not by hand.";
}

/**
 * The refusal of an IPCP of `type` (the name it was called by) that has no
 * enroll, or no connect and disconnect.
 */
export function notServed(
  type: string,
  what: "enroll" | "connect",
): OuroborosError {
  const why = what === "enroll"
    ? `only a unicast IPCP joins a layer through one of its members; a ${type} IPCP is bootstrapped`
    : `only a unicast IPCP has N-1 flows to other members; a ${type} IPCP has none`;
  return new OuroborosError("invalid", `${type} IPCPs do not ${what}: ${why}`);
}

/**
 * The handlers of the requests that the irmd sends an IPCP, routed to
 * `ipcp` (an IPCP of `type`, the name it was called by).
 */
export function ipcpHandlers(type: string, ipcp: Ipcp): Handlers {
  return {
    "ipcp.bootstrap": (b) => ipcp.bootstrap(b),
    "ipcp.enroll": (r) => {
      if (ipcp.enroll === undefined) throw notServed(type, "enroll");
      return ipcp.enroll(r);
    },
    "ipcp.connect": async (r) => {
      if (ipcp.connect === undefined) throw notServed(type, "connect");
      await ipcp.connect(r);
      return {};
    },
    "ipcp.disconnect": async (r) => {
      if (ipcp.disconnect === undefined) throw notServed(type, "connect");
      await ipcp.disconnect(r);
      return {};
    },
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
  };
}

/**
 * Runs the IPCP that `make` builds until the irmd goes away or a signal
 * ends it; `type` is the name it was called by (udp, udp4, local, ...).
 * Returns the exit status.
 */
export async function runIpcp(
  type: string,
  args: string[],
  make: (name: string, rundir: string) => Ipcp,
): Promise<number> {
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
  const ipcp = make(name, rundir);
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
  let ctrl: CtrlConn;
  try {
    ctrl = await connectCtrl(
      irmdSocketPath(rundir),
      ipcpHandlers(type, ipcp),
      { onProblem: (m) => log.warn(`irmd connection: ${m}`) },
    );
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
    // Stop first (a UDP IPCP deletes its DNS records, in bounded time),
    // then close the control connection, so the irmd sees us go only at
    // the end.
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
