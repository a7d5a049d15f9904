/**
 * ipcpd-unicast, the control side: a member of a unicast layer
 * (spec/unicast.md 1). It bootstraps a layer or enrolls into one, connects
 * to neighbours over N-1 flows of the layers below it, and carries its
 * programs' flows to members anywhere in the layer. The components:
 *
 * - addr_auth.ts: the member's address;
 * - connmgr.ts: the N-1 flows, allocated and accepted through this
 *   IPCP's irmd as any program's (an application session of its own), and
 *   their CEP exchange;
 * - enroll.ts: the enrollment exchange, served and joined;
 * - routing.ts (`LinkState`): LSAs on the mgmt flows, the forwarding
 *   tables over the dt flows;
 * - dt_node.ts: where a DT packet goes (this member by endpoint id, or
 *   the N-1 flow of the forwarding table);
 * - directory.ts over dir.ts (`Dht`): name hash -> address;
 * - flow_alloc.ts over fa.ts: FLOW_REQ / FLOW_REPLY for the programs'
 *   flows;
 * - datapath.ts: the flows' data packets and the dt N-1 flows, in the
 *   data-path Worker.
 *
 * The data path owns every N-1 flow's connection. What this thread reads
 * of them (CEPs, enrollment messages, LSAs, and the DT packets for this
 * member's FA and DHT) comes as `n1` events; what it writes (the same, and
 * the FA and DHT messages it routes itself by its copy of the forwarding
 * tables) goes as N1Write commands. FA and DHT messages for this member's
 * own address are decoded again here, never leaving the thread. The
 * flows' data packets never reach this thread.
 */
import type { CtrlConn } from "../../lib/ipc/ctrl.ts";
import {
  type FlowGrant,
  type QosSpec,
  type Req,
  type Res,
  udpKeysIn,
} from "../../lib/ipc/proto.ts";
import { encodeAttach } from "../../lib/ipc/dataplane.ts";
import { putU32 } from "../../lib/ipc/framing.ts";
import { Ouroboros } from "../../lib/app/dev.ts";
import { closeFd, describe, unixConnect, writeFd } from "../../lib/sys/mod.ts";
import { QOS_CUBES } from "../../lib/wire/udp_wire.ts";
import { OuroborosError } from "../../lib/util/errors.ts";
import { Logger } from "../../lib/util/log.ts";
import { toHex } from "../../lib/wire/hex.ts";
import {
  DEFAULT_LOCAL_HASH,
  HASH_LEN,
  isSha3,
  SHA3_ALGOS,
  type Sha3Algo,
} from "../../lib/wire/name_hash.ts";
import { MAX_PAYLOAD_V6 } from "../../lib/wire/udp_wire.ts";
import type { DatapathCounters, DatapathEvents } from "../common/dp_host.ts";
import { type DpCommand, Op } from "../common/dp_msg.ts";
import {
  ATTACH_DEADLINE_MS,
  closeDataPath,
  type DataPath,
  dataPathTrouble,
  dataSocketPath,
  EndedNotices,
  openDataPath,
} from "../common/ipcp_flows.ts";
import type { Ipcp } from "../common/ipcp_main.ts";
import { addrMemoryHex, flatAddress } from "./addr_auth.ts";
import { Directory } from "./directory.ts";
import { DT_DEFAULT, dtLayoutOf, EID_DHT, EID_FA, QC_BE } from "./dt.ts";
import { DtNode, type DtRoute } from "./dt_node.ts";
import {
  CONG_MB_ECN,
  encodeEnrollAck,
  ENROLL_ID_LEN,
  ENROLL_WARN_OFFSET_MS,
  type IpcpConfig,
  LS_ECMP,
  requestEnrollment,
  serveEnrollment,
  type UnicastLayer,
} from "./enroll.ts";
import { FlowAllocator, qosCube } from "./flow_alloc.ts";
import { bootstrapConfig, sha3OfDirHash } from "./layer.ts";
import { type ForwardingTables, LinkState, type LsOutput } from "./routing.ts";
import { ConnMgr, type N1Flow } from "./connmgr.ts";
import { encodeTables } from "./datapath.ts";

const ipcpLog = new Logger("ipcpd/ipcp");
const log = new Logger("ipcpd/unicast");

/** The maximum packet lifetime of a unicast layer's flows (ms): C's IPCP_UNICAST_MPL. */
export const UNICAST_MPL_MS = 100;
/**
 * The largest packet of a unicast flow: a DT packet of that size (with
 * the 15-byte header of the only DT settings a layer runs with) fits the
 * smallest N-1 flow this implementation has, UDP over IPv6.
 */
export const UNICAST_MTU = MAX_PAYLOAD_V6 - DT_DEFAULT.hdrLen;
/**
 * Adjacencies in the LSDB, at most: the forwarding tables of as many
 * members (about 13 bytes each per cube) must fit one data-path command.
 */
const MAX_ADJACENCIES = 16_384;

/** How long the irmd may take over a flow request that arrived (ms). */
const REQ_ARR_MS = 20_000;

/** The data path's side, replaced by a record in the unit tests. */
export interface UnicastPorts {
  command(c: DpCommand): void;
  /** A command with a payload (N1Write, Tables). */
  bytes(c: DpCommand, payload: Uint8Array): void;
}

/** The irmd's side of the N-1 flows, replaced in the unit tests. */
export interface N1Session {
  allocateGrant(name: string, opts: { qos: QosSpec }): Promise<FlowGrant>;
  acceptGrant(): Promise<FlowGrant>;
  close(): Promise<void>;
  readonly done: Promise<void>;
}

/** What drops the control thread counted. */
export interface UnicastCounters {
  /** DT packets that did not decode */
  malformed: number;
  /** DT packets for a component endpoint id that has none */
  unknownEid: number;
  /** DT packets for an address without a route */
  noRoute: number;
}

/** A running member: its components, once bootstrapped or enrolled. */
interface Member {
  readonly layer: UnicastLayer;
  readonly config: IpcpConfig;
  readonly hash: Sha3Algo;
  readonly addr: bigint;
  readonly dt: DtNode;
  readonly routing: LinkState;
  readonly dir: Directory;
  readonly fa: FlowAllocator;
}

const random32 = () => crypto.getRandomValues(new Uint32Array(1))[0]!;

/** A timer that does not keep the process alive; returns its cancel. */
function timer(ms: number, f: () => void): () => void {
  const t = setTimeout(f, ms);
  Deno.unrefTimer(t);
  return () => clearTimeout(t);
}

/** The component names of irm and the IPC protocol, as the CEP calls them. */
const COMP_OF = { dt: "dt", mgmt: "management" } as const;

/**
 * An N-1 flow's connection to its IPCP's data socket, its attach frame
 * written (a fresh socket takes 24 bytes at once): the descriptor the data
 * path takes over.
 */
function openGrant(grant: FlowGrant): number {
  const c = unixConnect(grant.path);
  if (!c.ok) {
    throw new Error(`cannot reach ${grant.path}: ${describe(c)}`);
  }
  const attach = encodeAttach(grant.handle, grant.token);
  const frame = new Uint8Array(4 + attach.length);
  putU32(frame, 0, attach.length);
  frame.set(attach, 4);
  const w = writeFd(c.value, frame);
  if (!w.ok || w.value !== frame.length) {
    closeFd(c.value);
    throw new Error(
      `cannot attach to ${grant.path}: ${w.ok ? "a short write" : describe(w)}`,
    );
  }
  return c.value;
}

export class UnicastIpcp implements Ipcp {
  readonly dataPath: string;
  readonly counters: UnicastCounters = {
    malformed: 0,
    unknownEid: 0,
    noRoute: 0,
  };
  #data: DataPath | undefined;
  #ports: UnicastPorts;
  #ctrl: CtrlConn | undefined;
  #m: Member | undefined;
  /** Set while an enrollment is under way. */
  #enrolling = false;
  /** How this member got its layer. */
  #joined: "bootstrapped" | "enrolled" = "bootstrapped";
  /** Registered names: hex of the hash -> the name (for log lines). */
  #regs = new Map<string, string>();
  #routingTimer: (() => void) | undefined;
  /** When the routing timer fires next (ms). */
  #routingAt = Infinity;
  /** Set while the routing timer's work runs (it re-arms itself after). */
  #inTick = false;
  /** When the last LSA about our address from elsewhere was logged. */
  #conflictLogged = 0;
  /** When each mgmt flow last brought an SDU (ms). */
  #heard = new Map<number, number>();
  #stopped = false;
  #notices = new EndedNotices();
  #session: Promise<N1Session> | undefined;
  #makeSession: () => Promise<N1Session>;
  #accepting = false;
  readonly conns: ConnMgr;
  /** Called when the data path fails and the IPCP cannot go on. */
  onFatal: (why: string) => void = () => {};

  /**
   * `ports` replaces the data path and `session` the irmd's application
   * session (the unit tests); without them startDataSocket() starts the
   * real data path and the first need opens the real session.
   */
  constructor(
    readonly name: string,
    readonly rundir: string,
    ports?: UnicastPorts,
    session?: () => Promise<N1Session>,
    open: (g: FlowGrant) => number = openGrant,
  ) {
    this.dataPath = dataSocketPath(rundir);
    this.#ports = ports ?? {
      command: (c) => this.#data?.dp.send(c, c.op !== Op.Add),
      bytes: (c, b) => this.#data?.dp.sendBytes(c, b),
    };
    this.#makeSession = session ??
      (() => Ouroboros.connect({ prog: "ipcpd-unicast", rundir }));
    this.conns = new ConnMgr({
      allocate: async (dst, qos) =>
        await (await this.#n1Session()).allocateGrant(dst, { qos }),
      open,
      add: (id, fd) => this.#ports.command({ op: Op.N1Add, id, fd }),
      dt: (id, qc) => this.#ports.command({ op: Op.N1Dt, id, qc }),
      write: (id, sdu) => this.#ports.bytes({ op: Op.N1Write, id }, sdu),
      remove: (id) => this.#ports.command({ op: Op.N1Remove, id }),
      timer,
    }, {
      addr: () => this.#m?.addr,
      badAddr: (a) => {
        const m = this.#m;
        if (m === undefined) return "no member yet";
        if (a === m.addr) {
          return `our own address ${a} (a connection to ourselves, or another member with our address)`;
        }
        if (a >= 1n << BigInt(8 * m.layer.uni.dt.addrSize)) {
          return `address ${a}, wider than ${m.layer.uni.dt.addrSize} bytes`;
        }
        return undefined;
      },
      cube: (q) => qosCube(q),
      up: (f) => this.#connUp(f),
      sdu: (f, sdu) => this.#connSdu(f, sdu),
      down: (f, why) => this.#connDown(f, why),
      enroll: (f) => this.#serveEnrollment(f),
      log: (level, text) => log[level](text),
    });
  }

  attachCtrl(ctrl: CtrlConn): void {
    this.#ctrl = ctrl;
  }

  /** This member's address, once bootstrapped or enrolled. */
  get address(): bigint | undefined {
    return this.#m?.addr;
  }

  get layer(): string | undefined {
    return this.#m?.layer.name;
  }

  /** The layer's configuration, as an enrollment would hand it out. */
  get layerConfig(): IpcpConfig | undefined {
    return this.#m?.config;
  }

  /** The routing core, once a member (for tests and statistics). */
  get routing(): LinkState | undefined {
    return this.#m?.routing;
  }

  /** The directory, once a member. */
  get directory(): Directory | undefined {
    return this.#m?.dir;
  }

  /** The open flows: handle -> its peer's handle when the peer is ours. */
  pairs(): Map<number, number | undefined> {
    return this.#m?.fa.pairs() ?? new Map();
  }

  get datapathThread(): Promise<number> {
    return this.#data?.dp.ready ?? Promise.reject(new Error("no data path"));
  }

  /** The data-path events, as the data path reports them. */
  readonly events: DatapathEvents = {
    mgmt: () => {}, // no lower layer of its own: N-1 flows come as n1
    attached: (eid) => this.#m?.fa.attached(eid),
    detached: (eid, reason) => this.#m?.fa.detached(eid, reason),
    activity: () => {}, // flows end with their N-1 flows or applications
    n1: (id, sdus) => this.conns.n1(id, sdus),
    n1Down: (id, reason) => this.conns.n1Down(id, reason),
    ...dataPathTrouble(log, () => this.dataPath, (e) => this.onFatal(e)),
  };

  startDataSocket(): void {
    this.#data = openDataPath({
      kind: "unicast",
      family: undefined,
      mtu: UNICAST_MTU,
      path: this.dataPath,
      log,
      events: this.events,
    });
  }

  // ------------------------------------------------------------ the irmd session

  /** The application session on the irmd for the N-1 flows, opened once. */
  #n1Session(): Promise<N1Session> {
    if (this.#session === undefined) {
      const s = this.#makeSession();
      this.#session = s;
      s.catch(() => {
        if (this.#session === s) this.#session = undefined;
      });
    }
    return this.#session;
  }

  /** Takes the N-1 flows the irmd gives this IPCP, for as long as it runs. */
  async #acceptLoop(): Promise<void> {
    if (this.#accepting) return;
    this.#accepting = true;
    try {
      const s = await this.#n1Session();
      while (!this.#stopped) {
        const grant = await s.acceptGrant();
        void this.conns.accepted(grant);
      }
    } catch (e) {
      if (!this.#stopped) {
        log.warn(
          `No longer accepting N-1 flows: ${
            e instanceof Error ? e.message : e
          }.`,
        );
      }
    } finally {
      this.#accepting = false;
    }
  }

  // ------------------------------------------------------------ control

  bootstrap(b: Req<"ipcp.bootstrap">): Res<"ipcp.bootstrap"> {
    this.#notMember();
    ipcpLog.info("Bootstrapping...");
    const fail = (why: string): never => {
      ipcpLog.info("Finished bootstrapping: -1.");
      throw new OuroborosError("invalid", why);
    };
    const udp = udpKeysIn(b);
    if (udp.length > 0) {
      fail(`${udp.join(", ")}: not for a unicast IPCP`);
    }
    const hash = b.hash ?? DEFAULT_LOCAL_HASH;
    if (!isSha3(hash)) {
      return fail(
        `a unicast layer hashes names with ${
          SHA3_ALGOS.join(", ")
        }, not ${hash}`,
      );
    }
    const c = bootstrapConfig(b.layer, hash, b.unicast);
    if (!c.ok) return fail(c.error);
    const started = this.#start(c.value.layer, c.value.config, hash);
    if (started !== undefined) return fail(started);
    log.debug(
      `Bootstrapped unicast IPCP with pid ${Deno.pid} in layer ${b.layer}, names hashed with ${hash}.`,
    );
    ipcpLog.info("Finished bootstrapping: 0.");
    return { hash, mplMs: UNICAST_MPL_MS, address: String(this.#m!.addr) };
  }

  #notMember(): void {
    if (this.#m !== undefined) {
      throw new OuroborosError(
        "exists",
        `IPCP ${this.name} is already ${this.#joined} in layer ${this.#m.layer.name}`,
      );
    }
    if (this.#enrolling) {
      throw new OuroborosError(
        "exists",
        `IPCP ${this.name} is enrolling`,
      );
    }
  }

  /**
   * Starts the member's components with a vetted configuration; returns
   * why it cannot, or undefined.
   */
  #start(
    layer: UnicastLayer,
    config: IpcpConfig,
    hash: Sha3Algo,
  ): string | undefined {
    if (this.#stopped) return "the IPCP is stopping";
    try {
      return this.#startComponents(layer, config, hash);
    } catch (e) {
      // A setting out of the components' range (vetted, but the cores
      // check their own): refused, never a crash.
      this.#m = undefined;
      return e instanceof Error ? e.message : String(e);
    }
  }

  #startComponents(
    layer: UnicastLayer,
    config: IpcpConfig,
    hash: Sha3Algo,
  ): string | undefined {
    const layout = dtLayoutOf(layer.uni.dt);
    if (!layout.ok) return layout.error;
    const addr = flatAddress(layer.uni.dt.addrSize);
    const now = Date.now();
    const multipath = layer.uni.dt.routing.ls.pol === LS_ECMP;
    const dt = new DtNode({
      addr,
      layout: layout.value,
      maxTtl: layer.uni.dt.maxTtl,
      multipath,
    });
    const routing = new LinkState({
      addr,
      ls: layer.uni.dt.routing.ls,
      now,
      addrSize: layer.uni.dt.addrSize,
      maxAdjacencies: MAX_ADJACENCIES,
    });
    dt.setTables(routing.tables);
    const dir = new Directory({
      addr,
      hashLen: layer.hashLen,
      conf: layer.uni.dir.dht,
      ports: {
        now: () => Date.now(),
        sendDht: (dst, bytes) => this.#send(dst, EID_DHT, bytes),
        timer,
        random32,
      },
    });
    const fa = new FlowAllocator({
      addr,
      hashLen: layer.hashLen,
      path: this.dataPath,
      mtu: UNICAST_MTU,
      attachMs: ATTACH_DEADLINE_MS,
      reqArrMs: REQ_ARR_MS,
      ports: {
        sendFa: (dst, bytes) => this.#send(dst, EID_FA, bytes),
        command: (cmd) => this.#ports.command(cmd),
        flowReqArr: (r, ms) => {
          const ctrl = this.#ctrl;
          if (ctrl === undefined || ctrl.isClosed) {
            return Promise.reject(
              new OuroborosError("failed", "not connected to the irmd"),
            );
          }
          return ctrl.request("flow.req.arr", r, ms);
        },
        flowEnded: (handle, reason) =>
          this.#notices.send(this.#ctrl, handle, reason),
        timer,
        random32,
        debug: (t) => log.debug(t),
      },
    });
    this.#m = { layer, config, hash, addr, dt, routing, dir, fa };
    this.#ports.command({
      op: Op.Layer,
      addr,
      addrSize: layout.value.addrSize,
      eidSize: layout.value.eidSize,
      maxTtl: layer.uni.dt.maxTtl,
      multipath,
      ecn: layer.uni.congAvoid === CONG_MB_ECN,
    });
    this.#routingTick();
    ipcpLog.info(
      `IPCP got address ${addr} (${
        addrMemoryHex(addr, layer.uni.dt.addrSize)
      }).`,
    );
    void this.#acceptLoop();
    return undefined;
  }

  /**
   * Enrolls into the layer of `dst` (a member's name, or the layer's, in a
   * lower layer): an N-1 flow to it, the enrollment exchange, then this
   * member starts with the layer's configuration and a fresh address. No
   * connection is made: `connect` does that.
   */
  async enroll(r: Req<"ipcp.enroll">): Promise<Res<"ipcp.enroll">> {
    this.#notMember();
    this.#enrolling = true;
    const id = crypto.getRandomValues(new Uint8Array(ENROLL_ID_LEN));
    const tag = `[${toHex(id)}]`;
    let f: N1Flow | undefined;
    try {
      log.info(`${tag} Requesting enrollment with ${r.dst}.`);
      try {
        f = await this.conns.connect(r.dst, "enrollment", QOS_CUBES.raw);
      } catch (e) {
        throw new OuroborosError(
          "failed",
          `cannot enroll with ${r.dst}: ${e instanceof Error ? e.message : e}`,
        );
      }
      let got;
      try {
        got = await requestEnrollment(f, id);
      } catch (e) {
        // An enroller that answered waits for our ack (a C one for ever,
        // serving nobody else meanwhile): it hears that we failed. One
        // that never answered is not waiting, and drops it.
        f.send(encodeEnrollAck({ id, result: -1 }));
        throw new OuroborosError(
          "failed",
          `enrollment with ${r.dst} failed: ${
            e instanceof Error ? e.message : e
          }`,
        );
      }
      if (
        Math.abs(got.offsetMs) > got.rttMs / 2 + ENROLL_WARN_OFFSET_MS
      ) {
        log.warn(
          `${tag} Clock offset above threshold: ${
            Math.round(got.offsetMs)
          } ms.`,
        );
      }
      const hash = sha3OfDirHash(got.layer.dirHashAlgo);
      const why = hash === undefined
        ? `unknown directory hash ${got.layer.dirHashAlgo}`
        : this.#start(got.layer, got.conf, hash);
      f.send(encodeEnrollAck({ id, result: why === undefined ? 0 : -1 }));
      if (why !== undefined || hash === undefined) {
        throw new OuroborosError(
          "failed",
          `cannot run layer ${got.layer.name}: ${why}`,
        );
      }
      this.#joined = "enrolled";
      log.info(`${tag} Enrolled with ${r.dst} in layer ${got.layer.name}.`);
      return {
        layer: got.layer.name,
        hash,
        mplMs: UNICAST_MPL_MS,
        address: String(this.#m!.addr),
      };
    } finally {
      this.#enrolling = false;
      if (f !== undefined) {
        // The ack is written before the connection is closed: the data
        // path handles the two in order.
        this.conns.give(f, "enrollment over");
      }
    }
  }

  async #serveEnrollment(f: N1Flow): Promise<void> {
    const m = this.#m;
    if (m === undefined) return;
    log.info(`Serving an enrollment on N-1 flow ${f.id}.`);
    try {
      const result = await serveEnrollment(f, m.config, m.addr);
      if (result === 0) log.info("Enrollment completed.");
      else log.warn(`Enrollment failed at the enrollee (${result}).`);
    } catch (e) {
      log.warn(
        `Enrollment failed: ${e instanceof Error ? e.message : e}.`,
      );
    }
  }

  /** Connects to `dst` (a member's name in a lower layer) for a component. */
  async connect(r: Req<"ipcp.connect">): Promise<void> {
    this.#member();
    const comp = COMP_OF[r.component];
    const qos = r.component === "mgmt" ? QOS_CUBES.raw : r.qos;
    try {
      const f = await this.conns.connect(r.dst, comp, qos);
      log.info(`Connected ${f.describe()}.`);
    } catch (e) {
      throw new OuroborosError(
        "failed",
        e instanceof Error ? e.message : String(e),
      );
    }
  }

  /** Ends the connections to `dst` of a component that this IPCP made. */
  disconnect(r: Req<"ipcp.disconnect">): Promise<void> {
    this.#member();
    const comp = COMP_OF[r.component];
    const fs = this.conns.allocatedTo(r.dst, comp);
    if (fs.length === 0) {
      return Promise.reject(
        new OuroborosError(
          "not_found",
          `IPCP ${this.name} has no ${r.component} connection to ${r.dst} (it can end only those it made)`,
        ),
      );
    }
    for (const f of fs) this.conns.give(f, "disconnected");
    return Promise.resolve();
  }

  // ------------------------------------------------------------ connections

  #connUp(f: N1Flow): void {
    const m = this.#m;
    if (m === undefined) return;
    const now = Date.now();
    if (f.comp === "management") {
      this.#heard.set(f.id, now);
      log.info(`Added management neighbour ${f.nb} (N-1 flow ${f.id}).`);
      this.#routingOut(m.routing.mgmtUp(f.id, f.nb, now));
    } else if (f.comp === "dt") {
      log.info(`Added dt neighbour ${f.nb} (N-1 flow ${f.id}).`);
      this.#routingOut(m.routing.dtUp(f.id, f.nb, f.qc, now));
    }
  }

  #connSdu(f: N1Flow, sdu: Uint8Array): void {
    const m = this.#m;
    if (m === undefined) return;
    if (f.comp === "management") {
      this.#heard.set(f.id, Date.now());
      const before = m.routing.stats.selfConflicts;
      this.#routingOut(m.routing.receive(f.id, sdu, Date.now()));
      if (
        m.routing.stats.selfConflicts > before &&
        Date.now() - this.#conflictLogged > 10_000
      ) {
        this.#conflictLogged = Date.now();
        log.error(
          `An LSA from ${f.nb} claims an adjacency of our address ${m.addr}: another member has our address, or a forger.`,
        );
      }
    } else if (f.comp === "dt") {
      // A DT packet for one of this member's components.
      this.#route(m.dt.arrived(sdu));
    }
  }

  #connDown(f: N1Flow, why: string): void {
    const m = this.#m;
    if (m === undefined || this.#stopped) return;
    const now = Date.now();
    if (f.comp === "management") {
      this.#heard.delete(f.id);
      log.info(`Removed management neighbour ${f.nb}: ${why}.`);
      this.#routingOut(m.routing.mgmtDown(f.id, now));
    } else if (f.comp === "dt") {
      log.info(`Removed dt neighbour ${f.nb}: ${why}.`);
      this.#routingOut(m.routing.dtDown(f.id, now));
    }
  }

  /** Runs routing's timers (LSA refresh, timeouts); reschedules itself. */
  #routingTick(): void {
    const m = this.#m;
    if (m === undefined || this.#stopped) return;
    const now = Date.now();
    this.#inTick = true;
    try {
      this.#dropSilent(m, now);
      this.#routingOut(m.routing.tick(now));
    } finally {
      this.#inTick = false;
    }
    // At least every t_update: the silence of neighbours is looked at then.
    const at = Math.min(
      m.routing.nextDeadline(),
      now + m.layer.uni.dt.routing.ls.tUpdate * 1000,
    );
    const ms = Math.max(1, at - now);
    this.#routingTimer?.();
    this.#routingAt = now + ms;
    this.#routingTimer = timer(Math.min(ms, 0x7fff_ffff), () => {
      this.#routingTimer = undefined;
      this.#routingTick();
    });
  }

  /**
   * A neighbour announces its adjacencies on every mgmt flow at least
   * every t_update; one silent for t_timeo is gone (its link is cut, or
   * it died without its lower layer noticing yet): its connections are
   * given up, and routing goes round it. C waits for the lower layer to
   * end the flows (the UDP layer's 120 s), and meanwhile a ring keeps the
   * cut link alive with the relayed LSAs of both its ends.
   */
  #dropSilent(m: Member, now: number): void {
    const limit = m.layer.uni.dt.routing.ls.tTimeo * 1000;
    const dtNbs = new Set(this.conns.flows("dt").map((g) => g.nb));
    for (const f of this.conns.flows("management")) {
      const heard = this.#heard.get(f.id) ?? now;
      // A neighbour with no dt connection to us has no adjacency to
      // refresh: its silence says nothing.
      if (now - heard <= limit || !dtNbs.has(f.nb)) continue;
      log.warn(
        `Neighbour ${f.nb} has been silent for ${
          Math.round((now - heard) / 1000)
        } s: its connections are given up.`,
      );
      for (const g of this.conns.flows()) {
        if (g.nb === f.nb) this.conns.give(g, "silent neighbour");
      }
    }
  }

  #routingOut(out: LsOutput): void {
    for (const s of out.send) {
      this.#ports.bytes({ op: Op.N1Write, id: s.flow }, s.sdu);
    }
    if (out.tables !== null) this.#setTables(out.tables);
    // An event may bring routing's next deadline forward (a recomputation
    // held back by the storm guard).
    const m = this.#m;
    if (
      m !== undefined && !this.#stopped && !this.#inTick &&
      m.routing.nextDeadline() < this.#routingAt
    ) this.#routingTick();
  }

  #setTables(t: ForwardingTables): void {
    const m = this.#m;
    if (m === undefined) return;
    try {
      this.#ports.bytes({ op: Op.Tables }, encodeTables(t));
    } catch (e) {
      log.error(
        `Cannot use the new forwarding tables: ${
          e instanceof Error ? e.message : e
        }; the old ones stay.`,
      );
      return;
    }
    m.dt.setTables(t);
    const hops = [...t.nextHops].map(([d, h]) => `${d} via ${h.join("/")}`);
    log.debug(
      `Forwarding tables: ${
        hops.length === 0 ? "no routes" : hops.join(", ")
      }.`,
    );
  }

  /** A DT packet from this member's FA or DHT. */
  #send(dst: bigint, eid: bigint, payload: Uint8Array): void {
    const m = this.#m;
    if (m === undefined) return;
    let route: DtRoute;
    try {
      route = m.dt.send(dst, eid, QC_BE, payload);
    } catch (e) {
      log.warn(`Cannot send a DT packet to ${dst}: ${(e as Error).message}.`);
      return;
    }
    if (route.t === "forward") {
      this.#ports.bytes({ op: Op.N1Write, id: route.flow }, route.bytes);
      return;
    }
    // Delivered from a fresh task: a component never runs inside the
    // call that sent to it.
    queueMicrotask(() => this.#route(route));
  }

  #route(route: DtRoute): void {
    const m = this.#m;
    if (m === undefined || this.#stopped) return;
    if (route.t === "drop") {
      if (route.why === "no-route") this.counters.noRoute++;
      else this.counters.malformed++;
      return;
    }
    if (route.t === "forward") {
      // The data path forwards what arrives; a packet here is ours.
      this.#ports.bytes({ op: Op.N1Write, id: route.flow }, route.bytes);
      return;
    }
    const p = route.packet;
    if (p.eid === EID_FA) m.fa.receive(p.payload);
    else if (p.eid === EID_DHT) m.dir.receive(p.payload);
    else {
      this.counters.unknownEid++;
      log.debug(`No registered component on eid ${p.eid}.`);
    }
  }

  /** Publishes the name's hash in the directory. */
  register(name: string, hash: Uint8Array): void {
    const m = this.#member();
    this.#checkHash(m, hash);
    m.dir.register(hash);
    this.#regs.set(toHex(hash), name);
    log.debug(`Registered ${toHex(hash)} (${name}).`);
  }

  unregister(name: string, hash: Uint8Array): void {
    const m = this.#member();
    this.#checkHash(m, hash);
    m.dir.unregister(hash);
    this.#regs.delete(toHex(hash));
    log.debug(`Unregistered ${toHex(hash)} (${name}).`);
  }

  /** The addresses the directory has for a name hash (a query). */
  query(hash: Uint8Array): Promise<bigint[]> {
    const m = this.#member();
    this.#checkHash(m, hash);
    return m.dir.resolve(hash);
  }

  #member(): Member {
    if (this.#m === undefined) {
      throw new OuroborosError(
        "invalid",
        `IPCP ${this.name} is not bootstrapped or enrolled`,
      );
    }
    return this.#m;
  }

  #checkHash(m: Member, hash: Uint8Array): void {
    if (hash.length !== HASH_LEN[m.hash]) {
      throw new OuroborosError(
        "invalid",
        `a name hash of ${hash.length} bytes: layer ${m.layer.name} hashes names with ${m.hash} (${
          HASH_LEN[m.hash]
        } bytes)`,
      );
    }
  }

  /**
   * Allocates a flow: the directory finds the name's address, the flow
   * allocator asks it for the flow. A name that does not resolve fails at
   * once, so that the irmd tries its other layers.
   */
  async allocate(r: Req<"ipcp.flow.alloc">): Promise<Res<"ipcp.flow.alloc">> {
    const m = this.#member();
    this.#checkHash(m, r.hash);
    const ctrl = this.#ctrl;
    if (ctrl === undefined || ctrl.isClosed || this.#stopped) {
      // Not "failed": the irmd then tries its other layers.
      throw new OuroborosError("unreachable", "not connected to the irmd");
    }
    const addrs = await m.dir.resolve(r.hash);
    const dst = addrs[0];
    if (dst === undefined) {
      throw new OuroborosError(
        "unknown_name",
        `${r.name} (${
          toHex(r.hash).slice(0, 16)
        }...) is not registered in layer ${m.layer.name}`,
      );
    }
    return await m.fa.allocate(dst, r);
  }

  /** The irmd ends a flow (its application went away, or gave it up). */
  deallocate(handle: number): void {
    this.#m?.fa.deallocate(handle);
  }

  /** The data path's own counters, if it runs. */
  dataPathCounters(): DatapathCounters | undefined {
    return this.#data?.dp.counters();
  }

  /**
   * The counters in the irmd's columns: DT packets that did not decode
   * count as short; FA messages, LSAs and CEPs that did not, and N-1
   * flows refused, as bad management frames; packets for an unknown
   * endpoint id, an address without a route or whose TTL ran out as
   * unknown endpoint ids; packets a lower layer did not take in time as
   * a slow reader's.
   */
  stats(): Res<"ipcp.stats"> {
    const d = this.#data?.dp.counters();
    const c = this.conns.stats;
    return {
      flows: this.#m?.fa.size ?? 0,
      dropped: {
        short: (d?.short ?? 0) + this.counters.malformed,
        oversized: 0,
        badMgmt: (this.#m?.fa.stats.malformed ?? 0) +
          (this.#m?.routing.stats.malformed ?? 0) + c.cepFailed +
          c.cepUnknown + c.refused,
        mgmtOverflow: (d?.mgmtOverflow ?? 0) + c.dropped,
        unknownEid: (d?.unknownEid ?? 0) + this.counters.unknownEid +
          (d?.noRoute ?? 0) + this.counters.noRoute + (d?.ttlExpired ?? 0),
        wrongSource: 0,
        slowReader: (d?.slowReader ?? 0) + (d?.n1Dropped ?? 0),
      },
    };
  }

  // ------------------------------------------------------------ shutdown

  /** Ends every flow, stops the data path and closes the data socket. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#routingTimer?.();
    this.#routingTimer = undefined;
    this.#m?.fa.stop();
    this.#m?.dir.stop();
    this.conns.stop();
    this.#notices.flush();
    const s = this.#session;
    this.#session = undefined;
    if (s !== undefined) await s.then((x) => x.close(), () => {});
    await closeDataPath(this.#data, this.dataPath);
    this.#data = undefined;
  }
}
