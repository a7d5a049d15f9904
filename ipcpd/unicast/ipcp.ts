/**
 * ipcpd-unicast, the control side: a member of a unicast layer
 * (spec/unicast.md 1). This first step runs a layer of one member: it
 * bootstraps (a flat random address, the member alone in its routing and
 * its DHT) and carries flows between programs of its own node through the
 * layer's real wire formats. Enrollment, connections and N-1 flows come
 * later; the components are laid out for them:
 *
 * - addr_auth.ts: the member's address;
 * - dt_node.ts: where a DT packet goes (this member by endpoint id, or
 *   the N-1 flow of the forwarding table; none yet);
 * - routing.ts (`LinkState`): the forwarding tables; with no neighbour it
 *   has no route, and its timers run all the same;
 * - directory.ts over dir.ts (`Dht`): name hash -> address;
 * - flow_alloc.ts over fa.ts: FLOW_REQ / FLOW_REPLY for the applications'
 *   flows;
 * - datapath.ts: the flows' data packets, in the data-path Worker.
 *
 * FA and DHT messages for this member's own address are encoded as DT
 * packets and decoded again here, on the control thread, and handed to the
 * component their endpoint id names (FA 0, DHT 1): every one goes through
 * the DT and FA codecs, and none crosses to the data path and back (a
 * later step sends those for other addresses to the data path's N-1
 * flows). The flows' data packets never reach this thread: the data path
 * writes the DT header, loops the packet and delivers it.
 */
import type { CtrlConn } from "../../lib/ipc/ctrl.ts";
import { type Req, type Res, udpKeysIn } from "../../lib/ipc/proto.ts";
import { OuroborosError } from "../../lib/util/errors.ts";
import { Logger } from "../../lib/util/log.ts";
import { toHex } from "../../lib/wire/hex.ts";
import {
  DEFAULT_LOCAL_HASH,
  HASH_LEN,
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
import type { IpcpConfig, UnicastLayer } from "./enroll.ts";
import { FlowAllocator } from "./flow_alloc.ts";
import { bootstrapConfig } from "./layer.ts";
import { LinkState, type LsOutput } from "./routing.ts";

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
/** How long the irmd may take over a flow request that arrived (ms). */
const REQ_ARR_MS = 20_000;

/** The data path's side, replaced by a record in the unit tests. */
export interface UnicastPorts {
  command(c: DpCommand): void;
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

function isSha3(a: string): a is Sha3Algo {
  return (SHA3_ALGOS as readonly string[]).includes(a);
}

/** A running member: its components, once bootstrapped. */
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
  /** Registered names: hex of the hash -> the name (for log lines). */
  #regs = new Map<string, string>();
  #routingTimer: (() => void) | undefined;
  #stopped = false;
  #notices = new EndedNotices();
  /** Called when the data path fails and the IPCP cannot go on. */
  onFatal: (why: string) => void = () => {};

  /**
   * `ports` replaces the data path (the unit tests); without it
   * startDataSocket() starts the real one.
   */
  constructor(
    readonly name: string,
    readonly rundir: string,
    ports?: UnicastPorts,
  ) {
    this.dataPath = dataSocketPath(rundir);
    this.#ports = ports ?? {
      command: (c) => this.#data?.dp.send(c, c.op !== Op.Add),
    };
  }

  attachCtrl(ctrl: CtrlConn): void {
    this.#ctrl = ctrl;
  }

  /** This member's address, once bootstrapped. */
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

  /** The open flows: handle -> its peer's handle when the peer is ours. */
  pairs(): Map<number, number | undefined> {
    return this.#m?.fa.pairs() ?? new Map();
  }

  get datapathThread(): Promise<number> {
    return this.#data?.dp.ready ?? Promise.reject(new Error("no data path"));
  }

  /** The data-path events, as the data path reports them. */
  readonly events: DatapathEvents = {
    mgmt: () => {}, // no N-1 flows yet
    attached: (eid) => this.#m?.fa.attached(eid),
    detached: (eid, reason) => this.#m?.fa.detached(eid, reason),
    activity: () => {}, // both ends of every flow are here
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

  // ------------------------------------------------------------ control

  bootstrap(b: Req<"ipcp.bootstrap">): Res<"ipcp.bootstrap"> {
    if (this.#m !== undefined) {
      throw new OuroborosError(
        "exists",
        `IPCP ${this.name} is already bootstrapped in ${this.#m.layer.name}`,
      );
    }
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
    const { layer, config } = c.value;
    const layout = dtLayoutOf(layer.uni.dt);
    if (!layout.ok) return fail(layout.error);
    const addr = flatAddress(layer.uni.dt.addrSize);
    const now = Date.now();
    const dt = new DtNode({
      addr,
      layout: layout.value,
      maxTtl: layer.uni.dt.maxTtl,
    });
    const routing = new LinkState({
      addr,
      ls: layer.uni.dt.routing.ls,
      now,
      addrSize: layer.uni.dt.addrSize,
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
    });
    this.#routingTick();
    ipcpLog.info(
      `IPCP got address ${addr} (${
        addrMemoryHex(addr, layer.uni.dt.addrSize)
      }).`,
    );
    log.debug(
      `Bootstrapped unicast IPCP with pid ${Deno.pid} in layer ${b.layer}, names hashed with ${hash}.`,
    );
    ipcpLog.info("Finished bootstrapping: 0.");
    return { hash, mplMs: UNICAST_MPL_MS };
  }

  /** Runs routing's timers (LSA refresh, timeouts); reschedules itself. */
  #routingTick(): void {
    const m = this.#m;
    if (m === undefined || this.#stopped) return;
    this.#routingOut(m.routing.tick(Date.now()));
    const ms = Math.max(1, m.routing.nextDeadline() - Date.now());
    this.#routingTimer = timer(Math.min(ms, 0x7fff_ffff), () => {
      this.#routingTimer = undefined;
      this.#routingTick();
    });
  }

  #routingOut(out: LsOutput): void {
    // LSAs go on mgmt N-1 flows: with none, routing sends nothing.
    if (out.tables !== null) this.#m?.dt.setTables(out.tables);
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
      // No N-1 flows yet: routing never has a next hop.
      this.counters.noRoute++;
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
        `IPCP ${this.name} is not bootstrapped`,
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
   * count as short, FA messages that did not as bad management frames,
   * and packets for an unknown endpoint id or an address without a route
   * as unknown endpoint ids.
   */
  stats(): Res<"ipcp.stats"> {
    const d = this.#data?.dp.counters();
    return {
      flows: this.#m?.fa.size ?? 0,
      dropped: {
        short: (d?.short ?? 0) + this.counters.malformed,
        oversized: 0,
        badMgmt: this.#m?.fa.stats.malformed ?? 0,
        mgmtOverflow: 0,
        unknownEid: (d?.unknownEid ?? 0) + this.counters.unknownEid +
          (d?.noRoute ?? 0) + this.counters.noRoute,
        wrongSource: 0,
        slowReader: d?.slowReader ?? 0,
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
    this.#notices.flush();
    await closeDataPath(this.#data, this.dataPath);
    this.#data = undefined;
  }
}
