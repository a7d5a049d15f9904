/**
 * The IPC Resource Manager daemon: owns the registry, starts and supervises
 * the IPCPs, and brokers every flow allocation between applications and
 * IPCPs. One per node (per runtime directory).
 */
import type { Config, IpcpConfig } from "../lib/config/config.ts";
import { CtrlConn, type Handlers } from "../lib/ipc/ctrl.ts";
import { ERRNO, OuroborosError } from "../lib/util/errors.ts";
import { Logger } from "../lib/util/log.ts";
import {
  DEFAULT_LOCAL_HASH,
  type HashAlgo,
  nameHashWith,
  SHA3_ALGOS,
} from "../lib/wire/name_hash.ts";
import { hexString as toHex } from "../lib/ipc/schema.ts";
import {
  buildOapRequest,
  buildOapResponse,
  checkOapRequest,
  decodeOap,
  ReplayGuard,
  verifyOapResponse,
  wallClockNs,
} from "../lib/wire/oap.ts";
import {
  type ConnectComponent,
  type FlowGrant,
  type IpcpTypeName,
  type Req,
  type Res,
  udpKeysIn,
} from "../lib/ipc/proto.ts";
import {
  acceptLoop,
  ensureRundir,
  irmdSocketPath,
  listenUnix,
  removeQuietly,
  RUNDIR_ENV,
} from "../lib/ipc/rundir.ts";
import { selfCommand } from "../lib/util/self.ts";
import {
  DEFAULT_PORT,
  QOS_CUBES,
  type QosCubeName,
} from "../lib/wire/udp_wire.ts";
import { Registry } from "./registry.ts";
import { layersFor, recordOver } from "./layers.ts";

const log = new Logger("irmd");
const confLog = new Logger("irmd/configuration");

/** Name hashes kept per hash algorithm (#nameHash); one more empties them. */
export const NAME_HASH_CACHE = 4096;

/** How long a flow request waits for an accepting process before autostart. */
export const ACCEPT_WAIT_MS = 1000;
/** How long, after an autostart, for the new process to accept. */
export const AUTOSTART_WAIT_MS = 5000;
/**
 * How long a new IPCP has to connect back: generous, since a slow machine (a
 * Raspberry Pi, or one emulated on a busy host) takes many seconds to start
 * a Deno process; the wait ends as soon as it is there.
 */
export const IPCP_START_MS = 30_000;
/** Grace period between SIGTERM and SIGKILL at shutdown. */
export const STOP_GRACE_MS = 2000;
/** A configured IPCP that dies is restarted at most this many times in a row... */
export const IPCP_MAX_RESTARTS = 5;
/** ...after a back-off that starts here and doubles. */
export const IPCP_RESTART_BACKOFF_MS = 250;
/** A restarted IPCP that stays up this long has its restart count reset. */
export const IPCP_STABLE_MS = 30_000;
/**
 * How long an IPCP has to enroll (spec/unicast.md 1.3): more than its
 * own worst case (an N-1 allocation of up to 20 s, then the CEP and the
 * response, 5 s each), so that the irmd never gives up on an enrollment
 * the IPCP then completes.
 */
export const ENROLL_MS = 45_000;
/** How long an IPCP has to connect (or disconnect) one component (as above). */
export const CONNECT_MS = 45_000;

interface IpcpEntry {
  name: string;
  type: IpcpTypeName;
  pid: number;
  child: Deno.ChildProcess;
  conn: CtrlConn | undefined;
  layer: string | undefined;
  /** True when it got its layer by enrolling, not by bootstrapping. */
  enrolled: boolean;
  /** An enrollment under way, and the layer it named, if it did. */
  enrolling: { layer: string | undefined } | undefined;
  /** How its layer hashes names (as its bootstrap or enroll reply said). */
  hash: HashAlgo;
  /** The maximum packet lifetime of its flows, if it said (ms). */
  mplMs: number | undefined;
  /** A unicast member's address, as its bootstrap or enroll reply said. */
  address: string | undefined;
  /** Names registered in this IPCP, each with the hex of its hash. */
  regs: Map<string, string>;
  /** Its flows by the IPCP's handle. */
  flows: Map<number, FlowEntry>;
  exited: Promise<Deno.CommandStatus>;
  connected: PromiseWithResolvers<CtrlConn>;
  created: number;
  /** How the configuration file set it up: it is restarted when it dies. */
  origin: Origin | undefined;
  /** Restarts so far (a configured IPCP that keeps dying is given up on). */
  restarts: number;
  startedAt: number;
}

/** What a configuration stanza asked of an IPCP, done again at a restart. */
interface Origin {
  boot: Req<"ipcp.bootstrap"> | undefined;
  /** Enroll with this member (or layer) instead of bootstrapping. */
  enrol: string | undefined;
  /** Bind the IPCP to its own name and its layer's name once in it. */
  autobind: boolean;
  /** Connect (mgmt then dt, raw) to these members once in the layer. */
  conn: string[];
}

interface FlowEntry {
  flowId: number;
  pid: number;
  ipcp: IpcpEntry;
  handle: number;
}

interface Accepter {
  pid: number;
  conn: CtrlConn;
  resolve: (g: FlowGrant) => void;
  reject: (e: OuroborosError) => void;
}

type PeerTag =
  | { role: "app"; pid: number }
  | { role: "ipcp"; ipcp: IpcpEntry }
  | { role: "tool" };

export interface IrmdOptions {
  rundir: string;
  debug: boolean;
}

export class Irmd {
  readonly reg = new Registry();
  readonly ipcps = new Map<string, IpcpEntry>();
  readonly flows = new Map<number, FlowEntry>();
  #accepters = new Map<number, Accepter>();
  /** Layer -> the layers its IPCPs' N-1 flows went through (irmd/layers.ts). */
  #over = new Map<string, Set<string>>();
  #acceptWaiters: (() => void)[] = [];
  #appConns = new Map<number, CtrlConn>();
  /** Programs this irmd started (autostart), ended at shutdown. */
  #children = new Map<number, Deno.ChildProcess>();
  #replay = new ReplayGuard();
  /** Name hashes by algorithm and name: each allocation asks for them again. */
  #hashes = new Map<HashAlgo, Map<string, Uint8Array>>();
  #listener: Deno.UnixListener | undefined;
  #conns = new Set<CtrlConn>();
  #nextFlowId = 1;
  #ipcpSeq = 0;
  #stopping = false;
  readonly socketPath: string;

  constructor(readonly opts: IrmdOptions) {
    this.socketPath = irmdSocketPath(opts.rundir);
  }

  /**
   * A name's hash with a layer's algorithm, computed once (the MD5 and SHA-3
   * here are plain TypeScript). The bytes are shared: never modified.
   */
  #nameHash(algo: HashAlgo, name: string): Uint8Array {
    let byName = this.#hashes.get(algo);
    if (byName === undefined) this.#hashes.set(algo, byName = new Map());
    let h = byName.get(name);
    if (h === undefined) {
      if (byName.size >= NAME_HASH_CACHE) byName.clear();
      h = nameHashWith(algo, name);
      byName.set(name, h);
    }
    return h;
  }

  /**
   * Runs `what` (a bootstrap or an enrollment) on the IPCP `name`, creating
   * it of `type` first when `existing` is undefined. An IPCP created for it
   * does not outlive its failure (it is destroyed, and the error says so);
   * one that existed before stays as it was.
   */
  async #onIpcp<T>(
    name: string,
    type: IpcpTypeName,
    existing: IpcpEntry | undefined,
    what: "bootstrap" | "enrollment",
    run: (ipcp: IpcpEntry) => Promise<T>,
  ): Promise<T> {
    if (existing !== undefined) return await run(existing);
    const ipcp = await this.createIpcp(name, type);
    try {
      return await run(ipcp);
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      await this.destroyIpcp(name).catch(() => {});
      throw new OuroborosError(
        "failed",
        `${why}; IPCP ${name}, created for this ${what}, was destroyed`,
      );
    }
  }

  // ------------------------------------------------------------ start/stop

  /** Takes the runtime directory: refuses when another irmd holds it. */
  async listen(): Promise<void> {
    await ensureRundir(this.opts.rundir);
    try {
      const probe = await Deno.connect({
        transport: "unix",
        path: this.socketPath,
      });
      probe.close();
      throw new OuroborosError(
        "exists",
        `another irmd is running with runtime directory ${this.opts.rundir} (socket ${this.socketPath})`,
      );
    } catch (e) {
      if (e instanceof OuroborosError) throw e;
      // Nobody listens: whatever is left there is stale.
    }
    let cleaned = 0;
    for await (const entry of Deno.readDir(this.opts.rundir)) {
      if (entry.name === "irmd.sock" || /^ipcp\.\d+\.sock$/.test(entry.name)) {
        removeQuietly(`${this.opts.rundir}/${entry.name}`);
        cleaned++;
      }
    }
    if (cleaned > 0) {
      log.debug(`Removed ${cleaned} stale socket(s) from ${this.opts.rundir}.`);
    }
    this.#listener = listenUnix(this.socketPath);
    void this.#acceptLoop(this.#listener);
  }

  #acceptLoop(listener: Deno.UnixListener): Promise<void> {
    return acceptLoop(
      listener,
      (conn) => {
        if (this.#stopping) conn.close();
        else this.#serve(conn);
      },
      (e) =>
        log.error(
          `Cannot accept connections on ${this.socketPath}: ${
            e instanceof Error ? e.message : e
          }; trying again.`,
        ),
      (n) => log.info(`Accepting connections again (${n} failed tries).`),
    );
  }

  #serve(conn: Deno.UnixConn): void {
    const c: CtrlConn = new CtrlConn(conn, this.#handlers(), {
      onProblem: (m) => log.warn(`Control connection: ${m}.`),
    });
    this.#conns.add(c);
    void c.done.then(() => {
      this.#conns.delete(c);
      this.#onDisconnect(c);
    });
    // A client that never says hello is dropped.
    const t = setTimeout(() => {
      if (c.tag === undefined) c.close();
    }, 10_000);
    void c.done.then(() => clearTimeout(t));
  }

  /** Stops everything this irmd started and releases the runtime directory. */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    log.info("IRMd shutting down...");
    try {
      this.#listener?.close();
    } catch { /* closed */ }
    for (const a of this.#accepters.values()) {
      a.reject(
        new OuroborosError("irmd_not_running", "the irmd is shutting down"),
      );
    }
    this.#accepters.clear();
    this.#wakeAccept();
    const stops: Promise<unknown>[] = [];
    for (const [pid, child] of this.#children) {
      stops.push(terminate(pid, child));
    }
    for (const ipcp of this.ipcps.values()) {
      stops.push(terminate(ipcp.pid, ipcp.child));
    }
    await Promise.all(stops);
    for (const c of [...this.#conns]) c.close();
    removeQuietly(this.socketPath);
    log.info("Ouroboros IPC Resource Manager daemon exited. Bye.");
  }

  // ------------------------------------------------------------ configuration

  async applyConfig(cfg: Config): Promise<void> {
    for (const n of cfg.names) {
      this.reg.ensureName(n.name, n.lb).lb = n.lb;
      n.progs.forEach((prog, i) => {
        const args = n.args[i];
        this.reg.bindProgram(
          prog,
          n.name,
          args === undefined ? undefined : splitArgs(args),
        );
        log.debug(
          `Bound program ${prog} to name ${n.name}${
            args !== undefined ? " (autostart)" : ""
          }.`,
        );
      });
    }
    for (const c of cfg.ipcps) {
      confLog.debug(`Found IPCP ${c.name} in configuration file.`);
      const ipcp = await this.createIpcp(c.name, c.type);
      const boot = bootstrapOf(c);
      const enrol = c.type === "unicast" ? c.enrol : undefined;
      const autobind = (c.type === "local" || c.type === "unicast") &&
        c.autobind;
      const conn = c.type === "unicast" ? c.conn : [];
      ipcp.origin = { boot, enrol, autobind, conn };
      // The order of spec/unicast.md 7.2: bootstrap or enroll; autobind;
      // reg; conn.
      if (boot === undefined && enrol === undefined) continue;
      try {
        if (boot !== undefined) await this.bootstrapIpcp(ipcp, boot);
        else await this.enrollIpcp(ipcp, enrol!);
        if (autobind) this.#autobind(ipcp);
      } catch (e) {
        throw new OuroborosError(
          "failed",
          `Failed to ${
            boot !== undefined ? "bootstrap" : "enroll"
          } IPCP ${c.name}: ${e instanceof Error ? e.message : e}`,
        );
      }
      for (const name of c.reg) {
        this.reg.ensureName(name);
        await this.registerName(ipcp, name);
      }
      for (const dst of conn) {
        try {
          await this.connectIpcp(ipcp, dst);
        } catch (e) {
          throw new OuroborosError(
            "failed",
            `Failed to connect IPCP ${c.name} to ${dst}: ${
              e instanceof Error ? e.message : e
            }`,
          );
        }
      }
    }
  }

  // ------------------------------------------------------------ IPCPs

  async createIpcp(name: string, type: IpcpTypeName): Promise<IpcpEntry> {
    if (this.ipcps.has(name)) {
      throw new OuroborosError("exists", `IPCP ${name} already exists.`);
    }
    const args = ["--name", name, "--rundir", this.opts.rundir];
    if (this.opts.debug) args.push("--debug");
    // The unicast IPCP's codecs use protobufjs: it needs deno.json's npm
    // imports (a compiled program or the bundle carries them anyway).
    const [cmd, ...rest] = selfCommand(`ipcpd-${type}`, args, {
      npm: type === "unicast",
    });
    const child = new Deno.Command(cmd!, {
      args: rest,
      stdin: "null",
      stdout: "inherit",
      stderr: "inherit",
      env: { [RUNDIR_ENV]: this.opts.rundir },
    }).spawn();
    const entry: IpcpEntry = {
      name,
      type,
      pid: child.pid,
      child,
      conn: undefined,
      layer: undefined,
      enrolled: false,
      enrolling: undefined,
      hash: type === "local" || type === "unicast" ? DEFAULT_LOCAL_HASH : "MD5",
      mplMs: undefined,
      address: undefined,
      regs: new Map(),
      flows: new Map(),
      exited: child.status,
      connected: Promise.withResolvers<CtrlConn>(),
      created: ++this.#ipcpSeq,
      origin: undefined,
      restarts: 0,
      startedAt: Date.now(),
    };
    this.ipcps.set(name, entry);
    void entry.exited.then((st) => this.#onIpcpExit(entry, st));
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        entry.connected.promise,
        entry.exited.then((st) => {
          throw new OuroborosError(
            "failed",
            `IPCP ${name} exited at start (code ${st.code})`,
          );
        }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new OuroborosError(
                  "timed_out",
                  `IPCP ${name} did not start in time`,
                ),
              ),
            IPCP_START_MS,
          );
        }),
      ]);
    } catch (e) {
      this.ipcps.delete(name);
      await terminate(entry.pid, child);
      throw e;
    } finally {
      clearTimeout(timer);
    }
    log.info(`Created IPCP ${entry.pid}.`);
    return entry;
  }

  #onIpcpExit(ipcp: IpcpEntry, st: Deno.CommandStatus): void {
    ipcp.connected.reject(
      new OuroborosError("failed", `IPCP ${ipcp.name} exited`),
    );
    ipcp.connected.promise.catch(() => {});
    if (this.ipcps.get(ipcp.name) !== ipcp) return;
    this.ipcps.delete(ipcp.name);
    if (!this.#stopping) {
      log.error(
        `IPCP ${ipcp.pid} (${ipcp.name}) died${
          st.signal ? ` (${st.signal})` : ` (exit code ${st.code})`
        }.`,
      );
    }
    ipcp.conn?.close();
    for (const f of [...ipcp.flows.values()]) this.#dropFlow(f);
    // Its bindings (irm bind ipcp, autobind) go with its process.
    if (!this.#appConns.has(ipcp.pid)) this.reg.removeProcess(ipcp.pid);
    if (
      !this.#stopping && ipcp.origin !== undefined && ipcp.conn !== undefined
    ) {
      void this.#restartIpcp(ipcp);
    }
  }

  /**
   * Brings a configured IPCP back after it died: created, bootstrapped (or
   * enrolled), its names registered and its connections made again, with a
   * bounded number of tries and a growing back-off.
   */
  async #restartIpcp(dead: IpcpEntry): Promise<void> {
    const origin = dead.origin!;
    let restarts = Date.now() - dead.startedAt > IPCP_STABLE_MS
      ? 0
      : dead.restarts;
    const names = [...dead.regs.keys()];
    while (!this.#stopping) {
      if (restarts >= IPCP_MAX_RESTARTS) {
        log.error(
          `IPCP ${dead.name} died ${restarts} times in a row; not restarting it again.`,
        );
        return;
      }
      const delay = IPCP_RESTART_BACKOFF_MS * 2 ** restarts;
      restarts++;
      log.info(
        `Restarting IPCP ${dead.name} in ${delay} ms (attempt ${restarts} of ${IPCP_MAX_RESTARTS}).`,
      );
      await new Promise((r) => setTimeout(r, delay));
      if (this.#stopping || this.ipcps.has(dead.name)) return;
      let ipcp: IpcpEntry | undefined;
      try {
        ipcp = await this.createIpcp(dead.name, dead.type);
        ipcp.origin = origin;
        ipcp.restarts = restarts;
        if (origin.boot !== undefined || origin.enrol !== undefined) {
          if (origin.boot !== undefined) {
            await this.bootstrapIpcp(ipcp, origin.boot);
          } else await this.enrollIpcp(ipcp, origin.enrol!);
          if (origin.autobind) this.#autobind(ipcp);
          for (const name of names) {
            if (this.reg.names.has(name)) await this.registerName(ipcp, name);
          }
        }
        log.info(`IPCP ${dead.name} restarted as ${ipcp.pid}.`);
        // A member that cannot be reached now does not make the IPCP
        // restart again: each failure is logged.
        if (ipcp.layer !== undefined) {
          for (const dst of origin.conn) {
            await this.connectIpcp(ipcp, dst).catch(() => {});
          }
        }
        return;
      } catch (e) {
        log.error(
          `Restarting IPCP ${dead.name} failed: ${
            e instanceof Error ? e.message : e
          }.`,
        );
        if (ipcp !== undefined && this.ipcps.get(ipcp.name) === ipcp) {
          // Not restarted by its own exit handler: it never got going.
          ipcp.origin = undefined;
          this.ipcps.delete(ipcp.name);
          await terminate(ipcp.pid, ipcp.child);
        }
      }
    }
  }

  async destroyIpcp(name: string): Promise<void> {
    const ipcp = this.#ipcp(name);
    this.ipcps.delete(name);
    for (const f of [...ipcp.flows.values()]) this.#dropFlow(f);
    if (!this.#appConns.has(ipcp.pid)) this.reg.removeProcess(ipcp.pid);
    ipcp.conn?.close();
    await terminate(ipcp.pid, ipcp.child);
    log.info(`Destroyed IPCP ${ipcp.pid}.`);
  }

  #ipcp(name: string): IpcpEntry {
    const i = this.ipcps.get(name);
    if (i === undefined) {
      throw new OuroborosError("not_found", `No IPCP named ${name}.`);
    }
    return i;
  }

  #ipcpConn(ipcp: IpcpEntry): CtrlConn {
    if (ipcp.conn === undefined || ipcp.conn.isClosed) {
      throw new OuroborosError("failed", `IPCP ${ipcp.name} is not reachable.`);
    }
    return ipcp.conn;
  }

  async bootstrapIpcp(
    ipcp: IpcpEntry,
    b: Req<"ipcp.bootstrap">,
  ): Promise<void> {
    this.#notInLayer(ipcp);
    let res: Res<"ipcp.bootstrap">;
    try {
      res = await this.#ipcpConn(ipcp).request("ipcp.bootstrap", b, 15_000);
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      log.error(`Failed to bootstrap IPCP ${ipcp.pid} (${ipcp.name}): ${why}.`);
      throw new OuroborosError("failed", why);
    }
    ipcp.hash = res.hash ?? "MD5";
    ipcp.mplMs = res.mplMs;
    ipcp.address = res.address;
    ipcp.layer = b.layer;
    log.info(`Bootstrapped IPCP ${ipcp.pid} in layer ${b.layer}.`);
  }

  /** Refuses an IPCP that is in a layer already, or joining one. */
  #notInLayer(ipcp: IpcpEntry): void {
    if (ipcp.layer !== undefined) {
      throw new OuroborosError(
        "exists",
        `IPCP ${ipcp.name} is already ${
          ipcp.enrolled ? "enrolled" : "bootstrapped"
        } in ${ipcp.layer}.`,
      );
    }
    if (ipcp.enrolling !== undefined) {
      throw new OuroborosError(
        "exists",
        `IPCP ${ipcp.name} is enrolling already.`,
      );
    }
  }

  /**
   * Enrolls an IPCP with `dst` (a member of the layer, or the layer's name)
   * and records the layer it joined; with `layer`, that layer must be the
   * one joined. Returns the layer.
   */
  async enrollIpcp(
    ipcp: IpcpEntry,
    dst: string,
    layer?: string,
  ): Promise<string> {
    this.#notInLayer(ipcp);
    let res: Res<"ipcp.enroll">;
    ipcp.enrolling = { layer };
    try {
      res = await this.#ipcpConn(ipcp).request(
        "ipcp.enroll",
        { dst },
        ENROLL_MS,
      );
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      log.error(
        `Failed to enroll IPCP ${ipcp.pid} (${ipcp.name}) with ${dst}: ${why}.`,
      );
      throw new OuroborosError("failed", why);
    } finally {
      ipcp.enrolling = undefined;
    }
    ipcp.hash = res.hash;
    ipcp.mplMs = res.mplMs;
    ipcp.address = res.address;
    ipcp.layer = res.layer;
    ipcp.enrolled = true;
    log.info(`Enrolled IPCP ${ipcp.pid} in layer ${res.layer}.`);
    if (layer !== undefined && res.layer !== layer) {
      const why =
        `enrolled with ${dst} in layer ${res.layer}, not in layer ${layer} as asked`;
      log.error(`IPCP ${ipcp.pid} (${ipcp.name}) ${why}.`);
      throw new OuroborosError("failed", why);
    }
    return res.layer;
  }

  /**
   * Connects an IPCP to the member `dst`: the one component given, else
   * mgmt then dt (spec/unicast.md 1.3). `qos` is the dt flow's (default
   * raw); mgmt flows are always raw.
   */
  async connectIpcp(
    ipcp: IpcpEntry,
    dst: string,
    component?: ConnectComponent,
    qos?: QosCubeName,
  ): Promise<void> {
    if (component === "mgmt" && qos !== undefined && qos !== "raw") {
      throw new OuroborosError(
        "invalid",
        "qos is for the dt component only (mgmt flows are always raw)",
      );
    }
    const components: ConnectComponent[] = component === undefined
      ? ["mgmt", "dt"]
      : [component];
    for (const comp of components) {
      const cube = comp === "dt" ? qos ?? "raw" : "raw";
      try {
        await this.#ipcpConn(ipcp).request("ipcp.connect", {
          dst,
          component: comp,
          qos: { ...QOS_CUBES[cube] },
        }, CONNECT_MS);
      } catch (e) {
        const why = e instanceof Error ? e.message : String(e);
        log.error(
          `Failed to connect IPCP ${ipcp.pid} (${ipcp.name}) to ${dst} for ${comp}: ${why}.`,
        );
        throw new OuroborosError("failed", why);
      }
      log.info(
        `Connected IPCP ${ipcp.pid} to ${dst} for ${comp}${
          comp === "dt" ? ` (QoS ${cube})` : ""
        }.`,
      );
    }
  }

  /**
   * Disconnects an IPCP from the member `dst`: the one component given,
   * else dt then mgmt, each tried even when the other fails.
   */
  async disconnectIpcp(
    ipcp: IpcpEntry,
    dst: string,
    component?: ConnectComponent,
  ): Promise<void> {
    const components: ConnectComponent[] = component === undefined
      ? ["dt", "mgmt"]
      : [component];
    const failures: string[] = [];
    for (const comp of components) {
      try {
        await this.#ipcpConn(ipcp).request(
          "ipcp.disconnect",
          { dst, component: comp },
          CONNECT_MS,
        );
        log.info(`Disconnected IPCP ${ipcp.pid} from ${dst} for ${comp}.`);
      } catch (e) {
        const why = e instanceof Error ? e.message : String(e);
        log.error(
          `Failed to disconnect IPCP ${ipcp.pid} (${ipcp.name}) from ${dst} for ${comp}: ${why}.`,
        );
        failures.push(components.length > 1 ? `${comp}: ${why}` : why);
      }
    }
    if (failures.length > 0) {
      throw new OuroborosError("failed", failures.join("; "));
    }
  }

  async registerName(ipcp: IpcpEntry, name: string): Promise<void> {
    this.reg.getName(name);
    if (ipcp.layer === undefined) {
      throw new OuroborosError(
        "invalid",
        `IPCP ${ipcp.name} is not bootstrapped.`,
      );
    }
    if (ipcp.regs.has(name)) return;
    const hash = this.#nameHash(ipcp.hash, name);
    await this.#ipcpConn(ipcp).request("ipcp.reg", { name, hash }, 15_000);
    ipcp.regs.set(name, toHex(hash));
    log.info(
      `Registered ${name} with IPCP ${ipcp.pid} as ${toHex(hash).slice(0, 8)}.`,
    );
  }

  async unregisterName(ipcp: IpcpEntry, name: string): Promise<void> {
    if (!ipcp.regs.has(name)) {
      throw new OuroborosError(
        "not_found",
        `${name} is not registered with IPCP ${ipcp.name}.`,
      );
    }
    await this.#ipcpConn(ipcp).request("ipcp.unreg", {
      name,
      hash: this.#nameHash(ipcp.hash, name),
    }, 15_000);
    ipcp.regs.delete(name);
    log.info(`Unregistered ${name} from IPCP ${ipcp.pid}.`);
  }

  /**
   * Binds an IPCP's process to its own name and its layer's name (the
   * configuration's `autobind`), creating the names as needed.
   */
  #autobind(ipcp: IpcpEntry): void {
    if (!this.reg.procs.has(ipcp.pid)) {
      this.reg.addProcess(ipcp.pid, `ipcpd-${ipcp.type}`);
    }
    for (const name of [ipcp.name, ipcp.layer]) {
      if (name === undefined) continue;
      this.reg.ensureName(name);
      this.reg.bindProcess(ipcp.pid, name);
      log.info(`Bound IPCP ${ipcp.pid} to name ${name}.`);
    }
  }

  #ipcpsFor(names: string[], layers: string[]): IpcpEntry[] {
    const out = new Set<IpcpEntry>();
    for (const n of names) out.add(this.#ipcp(n));
    for (const l of layers) {
      const inLayer = [...this.ipcps.values()].filter((i) => i.layer === l);
      if (inLayer.length === 0) {
        throw new OuroborosError("not_found", `No IPCP in layer ${l}.`);
      }
      inLayer.forEach((i) => out.add(i));
    }
    return [...out];
  }

  // ------------------------------------------------------------ processes

  #onHello(c: CtrlConn, h: Req<"hello">): Res<"hello"> {
    if (c.tag !== undefined) {
      throw new OuroborosError("invalid", "hello was already said");
    }
    if (h.role === "ipcp") {
      const ipcp = [...this.ipcps.values()].find((i) =>
        i.pid === h.pid && i.name === h.name
      );
      if (ipcp === undefined || ipcp.conn !== undefined) {
        throw new OuroborosError(
          "invalid",
          `no IPCP ${h.name ?? "?"} with pid ${h.pid} was started`,
        );
      }
      ipcp.conn = c;
      c.tag = { role: "ipcp", ipcp } satisfies PeerTag;
      ipcp.connected.resolve(c);
    } else if (h.role === "app") {
      // An IPCP is also an application of the layers below it (its N-1
      // flows): its process entry, made by autobind or irm bind ipcp,
      // is its own, bindings and all.
      const ipcp = [...this.ipcps.values()].find((i) => i.pid === h.pid);
      const known = this.reg.procs.get(h.pid);
      if (
        this.#appConns.has(h.pid) || (known !== undefined && ipcp === undefined)
      ) {
        throw new OuroborosError(
          "exists",
          `process ${h.pid} is already connected`,
        );
      }
      const prog = h.prog ?? "app";
      if (known !== undefined) {
        log.debug(
          `IPCP ${h.pid} (${
            ipcp!.name
          }) connected as an application; it keeps its names.`,
        );
      } else {
        const p = this.reg.addProcess(h.pid, prog);
        for (const name of p.names.keys()) {
          log.debug(
            `Process ${h.pid} inherits name ${name} from program ${prog}.`,
          );
        }
        log.debug(`New instance (${h.pid}) of ${prog} added.`);
      }
      this.#appConns.set(h.pid, c);
      c.tag = { role: "app", pid: h.pid } satisfies PeerTag;
    } else {
      c.tag = { role: "tool" } satisfies PeerTag;
    }
    return { irmdPid: Deno.pid };
  }

  #onDisconnect(c: CtrlConn): void {
    const tag = c.tag as PeerTag | undefined;
    if (tag?.role !== "app") return;
    const pid = tag.pid;
    if (this.#appConns.get(pid) !== c) return;
    this.#appConns.delete(pid);
    const accepter = this.#accepters.get(pid);
    this.#accepters.delete(pid);
    accepter?.reject(new OuroborosError("closed", "process gone"));
    this.reg.removeProcess(pid);
    if (!this.#stopping) log.debug(`Process ${pid} died.`);
    for (const f of [...this.flows.values()]) {
      if (f.pid !== pid) continue;
      this.#dropFlow(f);
      f.ipcp.conn?.request("ipcp.flow.dealloc", { handle: f.handle }, 5000)
        .catch(() => {});
    }
  }

  #app(c: CtrlConn): number {
    const tag = c.tag as PeerTag | undefined;
    if (tag?.role !== "app") {
      throw new OuroborosError(
        "invalid",
        "only applications allocate and accept flows (say hello first)",
      );
    }
    return tag.pid;
  }

  // ------------------------------------------------------------ flows: accept side

  async #accept(c: CtrlConn, r: Req<"flow.accept">): Promise<FlowGrant> {
    const pid = this.#app(c);
    const p = this.reg.getProcess(pid);
    if (this.#accepters.has(pid)) {
      throw new OuroborosError(
        "invalid",
        `process ${pid} is already accepting`,
      );
    }
    if (!p.announced) {
      p.announced = true;
      log.debug("This process accepts flows for:");
      for (const name of [...p.names.keys()].reverse()) {
        log.debug(`        ${name}`);
      }
    }
    const done = Promise.withResolvers<FlowGrant>();
    this.#accepters.set(pid, {
      pid,
      conn: c,
      resolve: done.resolve,
      reject: done.reject,
    });
    this.reg.setAccepting(pid, true);
    this.#wakeAccept();
    let timer: ReturnType<typeof setTimeout> | undefined;
    if (r.timeoutMs !== undefined) {
      timer = setTimeout(() => {
        if (this.#accepters.get(pid)?.resolve !== done.resolve) return;
        this.#accepters.delete(pid);
        if (this.reg.procs.has(pid)) this.reg.setAccepting(pid, false);
        done.reject(
          new OuroborosError(
            "timed_out",
            `no flow arrived within ${r.timeoutMs} ms`,
          ),
        );
      }, r.timeoutMs);
    }
    try {
      return await done.promise;
    } finally {
      clearTimeout(timer);
    }
  }

  #wakeAccept(): void {
    const w = this.#acceptWaiters;
    this.#acceptWaiters = [];
    for (const f of w) f();
  }

  /**
   * Waits until `claim` gets an accepting process, the deadline passes, or
   * `giveUp` says there is no point waiting on.
   */
  async #waitFor(
    claim: () => Accepter | undefined,
    ms: number,
    giveUp: () => boolean = () => false,
  ): Promise<Accepter | undefined> {
    const deadline = Date.now() + ms;
    for (;;) {
      const a = claim();
      if (a !== undefined || this.#stopping || giveUp()) return a;
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#acceptWaiters.push(resolve);
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
  }

  /**
   * Takes the accepting process that the name's policy chooses, at once: it
   * stops accepting in the same step, so two requests never get the same one.
   */
  #claimAccepter(name: string): Accepter | undefined {
    if (!this.reg.names.has(name)) return undefined;
    const p = this.reg.choose(name);
    const a = p === undefined ? undefined : this.#accepters.get(p.pid);
    if (a === undefined) return undefined;
    this.#accepters.delete(a.pid);
    this.reg.setAccepting(a.pid, false);
    return a;
  }

  /** Gives a claimed process its place back (it did not get the flow). */
  #unclaim(a: Accepter): void {
    if (!this.reg.procs.has(a.pid) || a.conn.isClosed) return;
    this.#accepters.set(a.pid, a);
    this.reg.setAccepting(a.pid, true);
    this.#wakeAccept();
  }

  /**
   * Starts the name's autostart programs. Returns the ones started (with
   * whether each has exited yet) and why the others could not start.
   */
  #autostart(
    name: string,
  ): { started: { path: string; exited: boolean }[]; failed: string[] } {
    const started: { path: string; exited: boolean }[] = [];
    const failed: string[] = [];
    for (const [path, args] of this.reg.autostart(name)) {
      try {
        const child = new Deno.Command(path, {
          args,
          stdin: "null",
          stdout: "inherit",
          stderr: "inherit",
          env: { [RUNDIR_ENV]: this.opts.rundir },
        }).spawn();
        const entry = { path, exited: false };
        started.push(entry);
        this.#children.set(child.pid, child);
        void child.status.then((st) => {
          this.#children.delete(child.pid);
          entry.exited = true;
          if (!st.success) {
            log.warn(
              `Process ${child.pid} (${path}) exited with ${
                st.signal ?? `code ${st.code}`
              }.`,
            );
          }
          this.#wakeAccept(); // a request waiting for it need not wait on
        });
        log.info(`Instantiated ${path} as process ${child.pid}.`);
      } catch (e) {
        const why = e instanceof Deno.errors.NotFound
          ? "no such program"
          : e instanceof Deno.errors.PermissionDenied
          ? "permission denied"
          : e instanceof Error
          ? e.message
          : String(e);
        log.error(`Failed to start ${path}: ${why}.`);
        failed.push(`${path}: ${why}`);
      }
    }
    return { started, failed };
  }

  /** A peer asks for a flow: find the name, a process, and answer the OAP. */
  async #flowReqArr(
    c: CtrlConn,
    r: Req<"flow.req.arr">,
  ): Promise<Res<"flow.req.arr">> {
    const tag = c.tag as PeerTag | undefined;
    if (tag?.role !== "ipcp") {
      throw new OuroborosError("invalid", "only IPCPs report flow requests");
    }
    const ipcp = tag.ipcp;
    const hex = toHex(r.hash);
    let name: string | undefined;
    for (const [n, h] of ipcp.regs) {
      if (h === hex) {
        name = n;
        break;
      }
    }
    if (name === undefined) {
      log.info(`Flow request for unknown name ${hex.slice(0, 8)} refused.`);
      throw new OuroborosError(
        "not_found",
        `no name with hash ${hex} here`,
        -ERRNO.ENOENT,
      );
    }
    log.info(`Flow request arrived for ${name}.`);
    const oapReq = decodeOap(r.oap, false);
    if (!oapReq.ok) {
      log.warn(`Flow request for ${name} refused: ${oapReq.error}.`);
      throw new OuroborosError("invalid", oapReq.error, -ERRNO.EINVAL);
    }
    const now = wallClockNs();
    const check = checkOapRequest(oapReq.value, now);
    if (!check.ok) {
      const crypto = !/timestamp/.test(check.error);
      log.warn(`Flow request for ${name} refused: ${check.error}.`);
      throw new OuroborosError(
        "refused",
        check.error,
        crypto ? -ERRNO.ECRYPT : -ERRNO.EPERM,
      );
    }
    const replay = this.#replay.check(oapReq.value, now);
    if (!replay.ok) {
      log.warn(`Flow request for ${name} refused: ${replay.error}.`);
      throw new OuroborosError("refused", replay.error, -ERRNO.EPERM);
    }
    let accepter = await this.#waitFor(
      () => this.#claimAccepter(name),
      ACCEPT_WAIT_MS,
    );
    if (
      accepter === undefined && this.reg.names.has(name) &&
      !this.reg.eligible(name).direct
    ) {
      const auto = this.#autostart(name);
      if (auto.started.length > 0) {
        accepter = await this.#waitFor(
          () => this.#claimAccepter(name),
          AUTOSTART_WAIT_MS,
          () => auto.started.every((p) => p.exited),
        );
      }
      const tried = auto.started.length + auto.failed.length > 0;
      if (
        accepter === undefined && tried && auto.started.every((p) => p.exited)
      ) {
        // Nothing was started, or all that was exited without accepting.
        const why = [
          ...auto.failed,
          ...auto.started.map((p) => `${p.path}: exited before accepting`),
        ].join("; ");
        log.warn(`Autostart for ${name} failed (${why}); refused.`);
        throw new OuroborosError(
          "refused",
          `could not autostart a program for ${name} (${why})`,
          -ERRNO.ENOEXEC,
        );
      }
    }
    if (accepter === undefined) {
      log.info(`No process accepts flows for ${name}; refused.`);
      throw new OuroborosError(
        "refused",
        `no process accepts flows for ${name}`,
        -ERRNO.ECONNREFUSED,
      );
    }
    const resp = buildOapResponse(r.oap);
    if (!resp.ok) {
      this.#unclaim(accepter);
      throw new OuroborosError("refused", resp.error, -ERRNO.ECRYPT);
    }
    const proc = accepter;
    const flowId = this.#nextFlowId++;
    this.#addFlow({ flowId, pid: proc.pid, ipcp, handle: r.handle });
    accepter.resolve(withMpl({
      handle: r.handle,
      token: r.token,
      path: r.path,
      name,
      qos: r.qos,
      mtu: r.mtu,
      flowId,
    }, ipcp));
    log.info(`Flow ${flowId} accepted by ${proc.pid} for ${name}.`);
    return { oap: resp.value };
  }

  // ------------------------------------------------------------ flows: allocating side

  async #allocate(c: CtrlConn, r: Req<"flow.alloc">): Promise<FlowGrant> {
    const pid = this.#app(c);
    log.info(`Allocating flow for ${pid} to ${r.name}.`);
    const deadline = Date.now() + r.timeoutMs;
    // Local layers first, then unicast ones, then UDP (irmd/layers.ts);
    // never, for an IPCP's own flows, its own layer.
    const { candidates, self } = layersFor(
      this.ipcps.values(),
      pid,
      this.#over,
    );
    if (candidates.length === 0) {
      const layer = self?.layer ?? self?.enrolling?.layer;
      throw new OuroborosError(
        "unknown_name",
        self === undefined
          ? `no layer can reach ${r.name}: this node has no bootstrapped IPCP`
          : `no layer can reach ${r.name}: IPCP ${self.name} allocates its flows in the layers below ${
            layer === undefined
              ? "it, and this node has no other IPCP in a layer"
              : `layer ${layer}, and this node has no IPCP in another layer`
          }`,
      );
    }
    // Each layer in turn, in creation order: the first that knows the name
    // (resolves it) allocates; its answer, success or failure, is final.
    // The IPCP resolves as part of the allocation: no separate query.
    let ipcp: IpcpEntry | undefined;
    let oap: Uint8Array = new Uint8Array(0);
    let res: Res<"ipcp.flow.alloc"> | undefined;
    const misses: OuroborosError[] = [];
    for (const cand of candidates) {
      oap = buildOapRequest();
      const left = Math.max(1, deadline - Date.now());
      try {
        res = await this.#ipcpConn(cand).request("ipcp.flow.alloc", {
          name: r.name,
          hash: this.#nameHash(cand.hash, r.name),
          qos: r.qos,
          oap,
          timeoutMs: left,
        }, left + 2000);
        ipcp = cand;
        break;
      } catch (e) {
        if (!(e instanceof OuroborosError)) throw e;
        if (e.code !== "unknown_name" && e.code !== "unreachable") throw e;
        misses.push(e);
      }
    }
    if (ipcp === undefined || res === undefined) {
      const detail = misses.map((m) => m.message).join("; ");
      const code = misses.some((m) => m.code === "unreachable")
        ? "unreachable"
        : "unknown_name";
      throw new OuroborosError(
        code,
        code === "unknown_name" ? `unknown name: ${detail}` : detail,
      );
    }
    const verified = verifyOapResponse(oap, res.oap);
    if (!verified.ok) {
      ipcp.conn?.request("ipcp.flow.dealloc", { handle: res.handle }, 5000)
        .catch(() => {});
      throw new OuroborosError(
        "refused",
        `the peer's answer failed its check: ${verified.error}`,
      );
    }
    if (!this.reg.procs.has(pid)) {
      ipcp.conn?.request("ipcp.flow.dealloc", { handle: res.handle }, 5000)
        .catch(() => {});
      throw new OuroborosError("closed", "the process went away");
    }
    const upper = self?.layer ?? self?.enrolling?.layer;
    if (upper !== undefined && ipcp.layer !== undefined) {
      recordOver(this.#over, upper, ipcp.layer);
    }
    const flowId = this.#nextFlowId++;
    this.#addFlow({ flowId, pid, ipcp, handle: res.handle });
    log.debug(
      `Flow ${flowId} allocated for ${pid} to ${r.name} over IPCP ${ipcp.pid}.`,
    );
    return withMpl({
      handle: res.handle,
      token: res.token,
      path: res.path,
      name: r.name,
      qos: r.qos,
      mtu: res.mtu,
      flowId,
    }, ipcp);
  }

  #flowEnded(c: CtrlConn, r: Req<"flow.ended">): Res<"flow.ended"> {
    const tag = c.tag as PeerTag | undefined;
    if (tag?.role !== "ipcp") return {};
    const f = tag.ipcp.flows.get(r.handle);
    if (f !== undefined) {
      this.#dropFlow(f);
      log.debug(`Flow ${f.flowId} ended: ${r.reason}.`);
    }
    return {};
  }

  #addFlow(f: FlowEntry): void {
    this.flows.set(f.flowId, f);
    f.ipcp.flows.set(f.handle, f);
  }

  #dropFlow(f: FlowEntry): void {
    this.flows.delete(f.flowId);
    if (f.ipcp.flows.get(f.handle) === f) f.ipcp.flows.delete(f.handle);
  }

  // ------------------------------------------------------------ handlers

  #handlers(): Handlers {
    const tool = (c: CtrlConn) => {
      if (c.tag === undefined) {
        throw new OuroborosError("invalid", "say hello first");
      }
    };
    return {
      "hello": (h, c) => this.#onHello(c, h),
      "flow.alloc": (r, c) => this.#allocate(c, r),
      "flow.accept": (r, c) => this.#accept(c, r),
      "flow.req.arr": (r, c) => this.#flowReqArr(c, r),
      "flow.ended": (r, c) => this.#flowEnded(c, r),
      "irm.ipcp.create": async (r, c) => {
        tool(c);
        return { pid: (await this.createIpcp(r.name, r.type)).pid };
      },
      "irm.ipcp.destroy": async (r, c) => {
        tool(c);
        await this.destroyIpcp(r.name);
        return {};
      },
      "irm.ipcp.bootstrap": async (r, c) => {
        tool(c);
        const ipcp = this.ipcps.get(r.name);
        const type = ipcp?.type ?? r.type;
        if (type === undefined) {
          throw new OuroborosError(
            "not_found",
            `No IPCP named ${r.name}; give a type to create it.`,
          );
        }
        if (r.type !== undefined && r.type !== type) {
          throw new OuroborosError(
            "invalid",
            `IPCP ${r.name} is of type ${type}, not ${r.type}.`,
          );
        }
        // Checked before an IPCP is created for it.
        const b = bootstrapRequest(type, r);
        return await this.#onIpcp(
          r.name,
          type,
          ipcp,
          "bootstrap",
          async (p) => {
            await this.bootstrapIpcp(p, b);
            if (r.autobind === true && type === "unicast") this.#autobind(p);
            return { pid: p.pid };
          },
        );
      },
      "irm.ipcp.enroll": async (r, c) => {
        tool(c);
        if (r.type !== undefined && r.type !== "unicast") {
          throw new OuroborosError(
            "invalid",
            `only unicast IPCPs enroll, not ${r.type} ones`,
          );
        }
        const dst = r.dst ?? r.layer;
        if (dst === undefined) {
          throw new OuroborosError(
            "invalid",
            "give the member to enroll with (dst) or the layer's name (layer)",
          );
        }
        const ipcp = this.ipcps.get(r.name);
        if (
          ipcp !== undefined && r.type !== undefined && ipcp.type !== r.type
        ) {
          throw new OuroborosError(
            "invalid",
            `IPCP ${r.name} is of type ${ipcp.type}, not ${r.type}.`,
          );
        }
        if (ipcp !== undefined) this.#notInLayer(ipcp);
        return await this.#onIpcp(
          r.name,
          "unicast",
          ipcp,
          "enrollment",
          async (p) => {
            const layer = await this.enrollIpcp(p, dst, r.layer);
            if (r.autobind) this.#autobind(p);
            return { layer };
          },
        );
      },
      "irm.ipcp.connect": async (r, c) => {
        tool(c);
        await this.connectIpcp(this.#ipcp(r.name), r.dst, r.component, r.qos);
        return {};
      },
      "irm.ipcp.disconnect": async (r, c) => {
        tool(c);
        await this.disconnectIpcp(this.#ipcp(r.name), r.dst, r.component);
        return {};
      },
      "irm.ipcp.list": (r, c) => {
        tool(c);
        const ipcps = [...this.ipcps.values()]
          .filter((i) => i.conn !== undefined)
          .filter((i) => r.name === undefined || i.name === r.name)
          .filter((i) => r.type === undefined || i.type === r.type)
          .filter((i) => r.layer === undefined || i.layer === r.layer)
          .sort((a, b) => a.created - b.created)
          .map((i) => ({
            pid: i.pid,
            name: i.name,
            type: i.type,
            ...(i.layer === undefined ? {} : { layer: i.layer }),
            ...(i.address === undefined ? {} : { address: i.address }),
          }));
        return { ipcps };
      },
      "irm.ipcp.stats": async (r, c) => {
        tool(c);
        const targets = [...this.ipcps.values()]
          .filter((i) =>
            i.conn !== undefined && (r.name === undefined || i.name === r.name)
          )
          .sort((a, b) => a.created - b.created);
        if (r.name !== undefined && targets.length === 0) this.#ipcp(r.name);
        const ipcps = [];
        for (const i of targets) {
          const st = await this.#ipcpConn(i).request("ipcp.stats", {}, 5000);
          ipcps.push({ pid: i.pid, name: i.name, type: i.type, ...st });
        }
        return { ipcps };
      },
      "irm.bind.program": (r, c) => {
        tool(c);
        const inheriting = this.reg.bindProgram(
          r.prog,
          r.name,
          r.auto ? r.args : undefined,
        );
        log.info(`Bound program ${r.prog} to name ${r.name}.`);
        for (const p of inheriting) {
          log.debug(
            `Process ${p.pid} inherits name ${r.name} from program ${p.prog}.`,
          );
        }
        this.#wakeAccept();
        return {};
      },
      "irm.unbind.program": (r, c) => {
        tool(c);
        this.reg.unbindProgram(r.prog, r.name);
        log.info(`Program ${r.prog} unbound from name ${r.name}.`);
        return {};
      },
      "irm.bind.process": (r, c) => {
        tool(c);
        this.reg.bindProcess(r.pid, r.name);
        log.info(`Bound process ${r.pid} to name ${r.name}.`);
        this.#wakeAccept();
        return {};
      },
      "irm.unbind.process": (r, c) => {
        tool(c);
        this.reg.unbindProcess(r.pid, r.name);
        log.info(`Process ${r.pid} unbound from name ${r.name}.`);
        return {};
      },
      "irm.bind.ipcp": (r, c) => {
        tool(c);
        const ipcp = this.#ipcp(r.ipcp);
        this.reg.getName(r.name);
        if (!this.reg.procs.has(ipcp.pid)) {
          this.reg.addProcess(ipcp.pid, `ipcpd-${ipcp.type}`);
        }
        this.reg.bindProcess(ipcp.pid, r.name);
        log.info(`Bound IPCP ${ipcp.pid} to name ${r.name}.`);
        return {};
      },
      "irm.unbind.ipcp": (r, c) => {
        tool(c);
        const ipcp = this.#ipcp(r.ipcp);
        this.reg.unbindProcess(ipcp.pid, r.name);
        log.info(`IPCP ${ipcp.pid} unbound from name ${r.name}.`);
        return {};
      },
      "irm.name.create": (r, c) => {
        tool(c);
        this.reg.createName(r.name, r.lb);
        log.info(`Created new name: ${r.name}.`);
        return {};
      },
      "irm.name.destroy": async (r, c) => {
        tool(c);
        this.reg.getName(r.name);
        for (const ipcp of this.ipcps.values()) {
          if (ipcp.regs.has(r.name)) {
            await this.unregisterName(ipcp, r.name).catch(() => {});
          }
        }
        this.reg.destroyName(r.name);
        log.info(`Destroyed name: ${r.name}.`);
        return {};
      },
      "irm.name.register": async (r, c) => {
        tool(c);
        this.reg.getName(r.name);
        const targets = this.#ipcpsFor(r.ipcps, r.layers);
        if (targets.length === 0) {
          throw new OuroborosError("invalid", "name an ipcp or a layer");
        }
        for (const ipcp of targets) await this.registerName(ipcp, r.name);
        return {};
      },
      "irm.name.unregister": async (r, c) => {
        tool(c);
        const targets = this.#ipcpsFor(r.ipcps, r.layers);
        if (targets.length === 0) {
          throw new OuroborosError("invalid", "name an ipcp or a layer");
        }
        for (const ipcp of targets) await this.unregisterName(ipcp, r.name);
        return {};
      },
      "irm.name.list": (_r, c) => {
        tool(c);
        const names = [...this.reg.names.values()]
          .sort((a, b) => a.created - b.created)
          .map((n) => ({ name: n.name, lb: n.lb }));
        return { names };
      },
      "irm.proc.list": (_r, c) => {
        tool(c);
        const procs = [...this.reg.procs.values()].map((p) => ({
          pid: p.pid,
          prog: p.prog,
          // Bound names first, marked: they are the ones that decide.
          names: [
            ...[...p.names].filter(([, b]) => b === "bound").map(([n]) =>
              `${n} (bound)`
            ),
            ...[...p.names].filter(([, b]) => b === "inherited").map(([n]) =>
              n
            ),
          ],
          accepting: this.#accepters.has(p.pid),
          flows: [...this.flows.values()].filter((f) => f.pid === p.pid).length,
        }));
        return { procs, flows: this.flows.size };
      },
    };
  }
}

/** What a configuration stanza bootstraps its IPCP with, if it does. */
function bootstrapOf(c: IpcpConfig): Req<"ipcp.bootstrap"> | undefined {
  if (c.layer === undefined) return undefined;
  if (c.type === "local") return { layer: c.layer, hash: c.hash };
  if (c.type === "unicast") {
    return { layer: c.layer, hash: c.hash, unicast: c.unicast };
  }
  const boot: Req<"ipcp.bootstrap"> = {
    layer: c.layer,
    ip: c.ip,
    port: c.port,
  };
  if (c.dns !== undefined) boot.dns = c.dns;
  if (c.hosts !== undefined) boot.hosts = c.hosts;
  if (c.zone !== undefined) boot.zone = c.zone;
  if (c.rcvbuf !== undefined) boot.rcvbuf = c.rcvbuf;
  if (c.sndbuf !== undefined) boot.sndbuf = c.sndbuf;
  return boot;
}

/**
 * What `irm ipcp bootstrap` asks of an IPCP of `type`: its own options,
 * checked (an option of another type is an error, not ignored).
 */
function bootstrapRequest(
  type: IpcpTypeName,
  r: Req<"irm.ipcp.bootstrap">,
): Req<"ipcp.bootstrap"> {
  if (r.unicast !== undefined && type !== "unicast") {
    throw new OuroborosError(
      "invalid",
      `${
        Object.keys(r.unicast).join(", ")
      }: options of a unicast IPCP, not of a ${type} one`,
    );
  }
  if (r.autobind === true && type !== "unicast") {
    throw new OuroborosError(
      "invalid",
      `autobind: only unicast IPCPs bind themselves, not ${type} ones`,
    );
  }
  if (type === "unicast") {
    const udp = udpKeysIn(r);
    if (udp.length > 0) {
      throw new OuroborosError(
        "invalid",
        `${udp.join(", ")}: not options of a unicast IPCP`,
      );
    }
    const hash = r.hash ?? DEFAULT_LOCAL_HASH;
    if (!SHA3_ALGOS.some((a) => a === hash)) {
      throw new OuroborosError(
        "invalid",
        `a unicast layer hashes names with ${
          SHA3_ALGOS.join(", ")
        }, not ${hash}`,
      );
    }
    const b: Req<"ipcp.bootstrap"> = { layer: r.layer, hash };
    if (r.unicast !== undefined) b.unicast = r.unicast;
    return b;
  }
  if (type === "local") {
    const udp = udpKeysIn(r);
    if (udp.length > 0) {
      throw new OuroborosError(
        "invalid",
        `${
          udp.join(", ")
        }: not options of a local IPCP (it takes a layer and a hash)`,
      );
    }
    const hash = r.hash ?? DEFAULT_LOCAL_HASH;
    if (!SHA3_ALGOS.some((a) => a === hash)) {
      throw new OuroborosError(
        "invalid",
        `a local layer hashes names with ${SHA3_ALGOS.join(", ")}, not ${hash}`,
      );
    }
    return { layer: r.layer, hash };
  }
  if (r.ip === undefined || r.ip === "") {
    throw new OuroborosError(
      "invalid",
      `a UDP IPCP needs an ip address to bootstrap`,
    );
  }
  if (r.hash !== undefined && r.hash !== "MD5") {
    throw new OuroborosError(
      "invalid",
      `UDP layers hash names with MD5, not ${r.hash}`,
    );
  }
  const b: Req<"ipcp.bootstrap"> = {
    layer: r.layer,
    ip: r.ip,
    port: r.port ?? DEFAULT_PORT,
  };
  if (r.dns !== undefined) b.dns = r.dns;
  if (r.hosts !== undefined) b.hosts = r.hosts;
  if (r.zone !== undefined) b.zone = r.zone;
  if (r.rcvbuf !== undefined) b.rcvbuf = r.rcvbuf;
  if (r.sndbuf !== undefined) b.sndbuf = r.sndbuf;
  return b;
}

/** The UDP-only options a bootstrap request carries. */
/** A grant with the maximum packet lifetime of the IPCP's layer, if known. */
function withMpl(g: FlowGrant, ipcp: IpcpEntry): FlowGrant {
  if (ipcp.mplMs !== undefined) g.mplMs = ipcp.mplMs;
  return g;
}

/** Splits autostart arguments on spaces, as C does. */
export function splitArgs(args: string): string[] {
  return args.split(" ").filter((a) => a !== "");
}

/** SIGTERM, then SIGKILL after the grace period; resolves when it has exited. */
async function terminate(pid: number, child: Deno.ChildProcess): Promise<void> {
  try {
    child.kill("SIGTERM");
  } catch {
    return; // exited already
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const killed = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      try {
        log.warn(`Process ${pid} ignored SIGTERM; killing it.`);
        child.kill("SIGKILL");
      } catch { /* exited */ }
      resolve();
    }, STOP_GRACE_MS);
  });
  await Promise.race([child.status, killed]);
  clearTimeout(timer);
  await child.status;
}
