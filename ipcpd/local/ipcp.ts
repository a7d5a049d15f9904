/**
 * ipcpd-local: an IPC process whose layer never leaves the machine. Its
 * flows come in pairs: the client side's allocation makes this IPCP ask its
 * own irmd, at once, for the server side (a "flow request arrived" with the
 * same name hash, QoS and allocation header), and when the irmd answers for
 * the server side the client side is answered with that response. From
 * then on every packet read from one flow is moved, unchanged, to its
 * partner (ipcpd/local/datapath.ts, in the data-path Worker shared with the
 * UDP IPCP). When one side is deallocated or its application goes away, the
 * pair is undone and the other side goes down: its application's
 * connection is closed and the irmd told, as when a UDP flow's peer times
 * out, but at once, since this IPCP sees both ends.
 *
 * Its only configuration is the layer name and the layer's name hash
 * (SHA3-256 unless the bootstrap chose SHA3-224, -384 or -512). A
 * registration adds a hash to a set; a query is answered yes iff the hash
 * is in it. There is no address, no peer, no enrollment.
 */
import type { CtrlConn } from "../../lib/ipc/ctrl.ts";
import { type Req, type Res, udpKeysIn } from "../../lib/ipc/proto.ts";
import { ERRNO, OuroborosError } from "../../lib/util/errors.ts";
import { Logger } from "../../lib/util/log.ts";
import { toHex } from "../../lib/wire/hex.ts";
import {
  DEFAULT_LOCAL_HASH,
  HASH_LEN,
  isSha3,
  SHA3_ALGOS,
  type Sha3Algo,
} from "../../lib/wire/name_hash.ts";
import type { DatapathCounters, DatapathEvents } from "../common/dp_host.ts";
import { Op } from "../common/dp_msg.ts";
import {
  ATTACH_DEADLINE_MS,
  closeDataPath,
  type DataPath,
  dataPathTrouble,
  dataSocketPath,
  EidSource,
  EndedNotices,
  openDataPath,
  randomToken,
} from "../common/ipcp_flows.ts";
import type { Ipcp } from "../common/ipcp_main.ts";

const ipcpLog = new Logger("ipcpd/ipcp");
const log = new Logger("ipcpd/local");

/** The maximum packet lifetime of a local layer's flows (ms), as in C. */
export const LOCAL_MPL_MS = 100;
/** The largest packet a local flow carries (the largest a grant allows). */
export const LOCAL_MTU = 65535;
/**
 * How long the server side's flow request may wait for the irmd's answer:
 * longer than the irmd's wait for an accept plus an autostart (as the UDP
 * IPCP waits).
 */
const FLOW_REQ_MS = 30_000;

/** One side of a pair. */
interface LocalFlow {
  readonly eid: number;
  /** The other side's endpoint id. */
  readonly partner: number;
  readonly side: "client" | "server";
  readonly token: Uint8Array;
  allocated: boolean;
  /** The irmd holds it: it was handed out (it hears when it ends). */
  granted: boolean;
  /** Its application attached (the data path said so). */
  attached: boolean;
  attachTimer: ReturnType<typeof setTimeout> | undefined;
}

/** What the data path and the irmd are told; a fake in the unit tests. */
export interface LocalPorts {
  /** Gives the data path a command. */
  command(
    c:
      | {
        op: typeof Op.Add;
        eid: number;
        peerEid: number;
        allocated: boolean;
        token: Uint8Array;
        addr: Uint8Array;
      }
      | { op: typeof Op.Allocated; eid: number; peerEid: number }
      | { op: typeof Op.Remove; eid: number },
  ): void;
}

const NO_ADDR = new Uint8Array(0);

export class LocalIpcp implements Ipcp {
  readonly dataPath: string;
  #data: DataPath | undefined;
  #ports: LocalPorts;
  #ctrl: CtrlConn | undefined;
  #layer: string | undefined;
  #hash: Sha3Algo | undefined;
  /** Registered names: hex of the hash -> the name (for log lines). */
  #regs = new Map<string, string>();
  #flows = new Map<number, LocalFlow>();
  #notices = new EndedNotices();
  #eids = new EidSource();
  #stopped = false;
  /** Called when the data path fails and the IPCP cannot go on. */
  onFatal: (why: string) => void = () => {};

  /**
   * `ports` replaces the data path (the unit tests); without it
   * startDataSocket() starts the real one.
   */
  constructor(
    readonly name: string,
    readonly rundir: string,
    ports?: LocalPorts,
  ) {
    this.dataPath = dataSocketPath(rundir);
    this.#ports = ports ?? {
      command: (c) => this.#data?.dp.send(c, c.op !== Op.Add),
    };
  }

  attachCtrl(ctrl: CtrlConn): void {
    this.#ctrl = ctrl;
  }

  get layer(): string | undefined {
    return this.#layer;
  }

  get hash(): Sha3Algo | undefined {
    return this.#hash;
  }

  /** The endpoint ids of the open flows and their partners (for tests). */
  pairs(): Map<number, number> {
    return new Map([...this.#flows.values()].map((f) => [f.eid, f.partner]));
  }

  get datapathThread(): Promise<number> {
    return this.#data?.dp.ready ?? Promise.reject(new Error("no data path"));
  }

  /** The data-path events, as the data path reports them. */
  readonly events: DatapathEvents = {
    mgmt: () => {}, // no lower layer: no management frames
    attached: (eid) => {
      const flow = this.#flows.get(eid);
      if (flow === undefined) return;
      flow.attached = true;
      clearTimeout(flow.attachTimer);
      flow.attachTimer = undefined;
    },
    detached: (eid, reason) => {
      const flow = this.#flows.get(eid);
      if (flow !== undefined) this.#endPair(flow, reason, true);
    },
    activity: () => {}, // no keepalives: both ends are here
    ...dataPathTrouble(log, () => this.dataPath, (e) => this.onFatal(e)),
  };

  startDataSocket(): void {
    this.#data = openDataPath({
      kind: "local",
      family: undefined,
      mtu: LOCAL_MTU,
      path: this.dataPath,
      log,
      events: this.events,
    });
  }

  // ------------------------------------------------------------ control

  bootstrap(b: Req<"ipcp.bootstrap">): Res<"ipcp.bootstrap"> {
    if (this.#layer !== undefined) {
      throw new OuroborosError(
        "exists",
        `IPCP ${this.name} is already bootstrapped in ${this.#layer}`,
      );
    }
    ipcpLog.info("Bootstrapping...");
    const udp = udpKeysIn(b);
    const hash = b.hash ?? DEFAULT_LOCAL_HASH;
    if (udp.length > 0 || !isSha3(hash)) {
      ipcpLog.info("Finished bootstrapping: -1.");
      throw new OuroborosError(
        "invalid",
        udp.length > 0
          ? `${
            udp.join(", ")
          }: not for a local IPCP (its only options are the layer and the hash)`
          : `a local layer hashes names with ${
            SHA3_ALGOS.join(", ")
          }, not ${hash}`,
      );
    }
    this.#layer = b.layer;
    this.#hash = hash;
    log.debug(
      `Bootstrapped local IPCP with pid ${Deno.pid} in layer ${b.layer}, names hashed with ${hash}.`,
    );
    ipcpLog.info("Finished bootstrapping: 0.");
    return { hash: this.#hash, mplMs: LOCAL_MPL_MS };
  }

  /** Adds the name's hash to the set of registered ones. */
  register(name: string, hash: Uint8Array): void {
    this.#checkHash(hash);
    this.#regs.set(toHex(hash), name);
    log.debug(`Registered ${toHex(hash)} (${name}).`);
  }

  unregister(name: string, hash: Uint8Array): void {
    this.#checkHash(hash);
    this.#regs.delete(toHex(hash));
    log.debug(`Unregistered ${toHex(hash)} (${name}).`);
  }

  /** Whether a name with this hash is registered here. */
  query(hash: Uint8Array): boolean {
    return this.#regs.has(toHex(hash));
  }

  /** A hash of this layer's algorithm, once bootstrapped; else an error. */
  #checkHash(hash: Uint8Array): void {
    const algo = this.#hash;
    if (algo === undefined) {
      throw new OuroborosError(
        "invalid",
        `IPCP ${this.name} is not bootstrapped`,
      );
    }
    if (hash.length !== HASH_LEN[algo]) {
      throw new OuroborosError(
        "invalid",
        `a name hash of ${hash.length} bytes: layer ${this.#layer} hashes names with ${algo} (${
          HASH_LEN[algo]
        } bytes)`,
      );
    }
  }

  /**
   * The client side: pairs a new flow with a server-side one, asks the irmd
   * for the server side, and answers with the irmd's response.
   */
  async allocate(r: Req<"ipcp.flow.alloc">): Promise<Res<"ipcp.flow.alloc">> {
    this.#checkHash(r.hash);
    const hex = toHex(r.hash);
    if (!this.#regs.has(hex)) {
      throw new OuroborosError(
        "unknown_name",
        `${r.name} (${
          hex.slice(0, 16)
        }...) is not registered in layer ${this.#layer}`,
      );
    }
    const ctrl = this.#ctrl;
    if (ctrl === undefined || ctrl.isClosed || this.#stopped) {
      throw new OuroborosError("failed", "not connected to the irmd");
    }
    // The QoS goes to the server side as it came: FRCT runs end to end in
    // the applications, and this layer moves every packet as it is.
    const client = this.#pairUp();
    const server = this.#flows.get(client.partner)!;
    let oap: Uint8Array;
    try {
      const res = await ctrl.request("flow.req.arr", {
        handle: server.eid,
        token: server.token,
        path: this.dataPath,
        mtu: LOCAL_MTU,
        hash: r.hash,
        qos: r.qos,
        oap: r.oap,
        // As long as the irmd may take (waiting for an accept, then an
        // autostart), whatever the client's own timeout: giving up sooner
        // would leave the irmd granting a flow that is gone. A client that
        // has given up meanwhile never attaches, and the attach deadline
        // ends the pair.
      }, FLOW_REQ_MS);
      oap = res.oap;
      server.granted = true;
    } catch (e) {
      // Refused (or not answered): the client is told, and nothing stays.
      // The irmd refused the server side: it holds neither.
      this.#endPair(client, "refused", false, false);
      const errno = e instanceof OuroborosError && e.errno !== undefined
        ? -Math.abs(e.errno)
        : -ERRNO.ECONNREFUSED;
      const why = e instanceof Error ? e.message : String(e);
      log.debug(`Flow request for ${hex.slice(0, 16)}... refused: ${why}.`);
      if (e instanceof OuroborosError && e.code === "timed_out") {
        throw new OuroborosError("timed_out", why);
      }
      throw new OuroborosError("refused", why, errno);
    }
    if (
      this.#flows.get(client.eid) !== client ||
      this.#flows.get(server.eid) !== server
    ) {
      // One side ended meanwhile (the accepting process went away, or the
      // IPCP is stopping): the other went with it.
      this.#endPair(client, "the server side went away", true);
      throw new OuroborosError(
        "flow_down",
        "the server side of the flow went away before it was allocated",
      );
    }
    client.granted = true;
    for (const f of [server, client]) {
      f.allocated = true;
      this.#ports.command({ op: Op.Allocated, eid: f.eid, peerEid: f.partner });
      this.#armAttachDeadline(f);
    }
    log.debug(`Flow allocated: eid ${client.eid} <-> eid ${server.eid}.`);
    return {
      handle: client.eid,
      token: client.token,
      path: this.dataPath,
      mtu: LOCAL_MTU,
      oap,
    };
  }

  /** The irmd ends a flow (its application went away, or gave it up). */
  deallocate(handle: number): void {
    const flow = this.#flows.get(handle);
    if (flow !== undefined) this.#endPair(flow, "deallocated", false);
  }

  /** The data path's own counters (packets moved and more), if it runs. */
  dataPathCounters(): DatapathCounters | undefined {
    return this.#data?.dp.counters();
  }

  stats(): Res<"ipcp.stats"> {
    const d = this.#data?.dp.counters();
    return {
      flows: this.#flows.size,
      dropped: {
        short: 0,
        oversized: 0,
        badMgmt: 0,
        mgmtOverflow: 0,
        // Packets of a flow whose partner had ended.
        unknownEid: d?.unknownEid ?? 0,
        wrongSource: 0,
        slowReader: d?.slowReader ?? 0,
      },
    };
  }

  // ------------------------------------------------------------ flows

  /** Two new flows, each the other's partner, both pending. */
  #pairUp(): LocalFlow {
    const inUse = (eid: number) => this.#flows.has(eid);
    const c = this.#eids.fresh(inUse);
    const s = this.#eids.fresh((eid) => eid === c || inUse(eid));
    const make = (eid: number, partner: number, side: LocalFlow["side"]) => {
      const f: LocalFlow = {
        eid,
        partner,
        side,
        token: randomToken(),
        allocated: false,
        granted: false,
        attached: false,
        attachTimer: undefined,
      };
      this.#flows.set(eid, f);
      // The data path knows the flow before the irmd can hand it out.
      this.#ports.command({
        op: Op.Add,
        eid,
        peerEid: partner,
        allocated: false,
        token: f.token,
        addr: NO_ADDR,
      });
      return f;
    };
    make(s, c, "server");
    return make(c, s, "client");
  }

  #armAttachDeadline(flow: LocalFlow): void {
    if (flow.attached) return;
    flow.attachTimer = setTimeout(() => {
      flow.attachTimer = undefined;
      if (this.#flows.get(flow.eid) === flow && !flow.attached) {
        this.#endPair(flow, "no application attached in time", true);
      }
    }, ATTACH_DEADLINE_MS);
    Deno.unrefTimer(flow.attachTimer);
  }

  /**
   * Ends a flow and its partner. The irmd hears of each side it holds and
   * did not end itself: of `flow` when `notify`, of the partner unless
   * `notifyPartner` is false.
   */
  #endPair(
    flow: LocalFlow,
    reason: string,
    notify: boolean,
    notifyPartner = true,
  ): void {
    this.#end(flow, reason, notify);
    const partner = this.#flows.get(flow.partner);
    if (partner !== undefined && partner.partner === flow.eid) {
      this.#end(partner, `its partner flow ended (${reason})`, notifyPartner);
    }
  }

  #end(flow: LocalFlow, reason: string, notify: boolean): void {
    if (this.#flows.get(flow.eid) !== flow) return;
    this.#flows.delete(flow.eid);
    clearTimeout(flow.attachTimer);
    flow.attachTimer = undefined;
    this.#ports.command({ op: Op.Remove, eid: flow.eid });
    log.debug(`Flow ${flow.eid} (${flow.side} side) ended: ${reason}.`);
    // The server side is known to the irmd from the moment it was asked
    // about it (it ignores a handle it does not hold).
    if (notify && (flow.granted || flow.side === "server")) {
      this.#notices.send(this.#ctrl, flow.eid, reason);
    }
  }

  // ------------------------------------------------------------ shutdown

  /** Ends every flow, stops the data path and closes the data socket. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const flow of [...this.#flows.values()]) {
      this.#end(flow, "IPCP stopping", false);
    }
    this.#notices.flush();
    await closeDataPath(this.#data, this.dataPath);
    this.#data = undefined;
  }
}
