/**
 * The flow allocator of the unicast IPCP (spec/unicast.md 2.6, 2.7): the
 * flows of this member's applications and the FA messages that allocate
 * them. It does no I/O itself: `FaPorts` are the DT (FA messages to eid 0
 * of an address), the data path (flows added, allocated, removed), the
 * irmd (a flow request arrived, a flow ended), the clock's timers and the
 * random numbers, so that its unit tests run it against fakes.
 *
 * - Allocating (the client side): a fresh handle and endpoint id (random
 *   high half, the handle as low half, so stale packets never match a new
 *   flow), a FLOW_REQ to the destination's address, and a wait for the
 *   FLOW_REPLY that names our endpoint id, bounded by the irmd's timeout.
 *   An accepted reply adds the flow to the data path, allocated, with the
 *   peer's endpoint id and address; a refusal fails the allocation with
 *   the peer's errno.
 * - A FLOW_REQ (the server side): a flow is added to the data path,
 *   pending, with the requester's endpoint id and address, the irmd is
 *   asked ("flow request arrived"), and its answer goes back as a
 *   FLOW_REPLY: accepted with the OAP response, or refused with a negative
 *   errno (C stays silent where we answer, spec 8). Requests are handled
 *   concurrently: a slow accept never holds up the others nor any reply.
 * - FLOW_UPDATE (congestion) is accepted and ignored, which is
 *   wire-compatible; the FA sends none.
 * - Nothing goes on the wire when a flow ends. A flow whose peer is
 *   another flow of this same member (a one-member layer, or a member
 *   talking to itself) ends its peer with it, as the local IPCP does; a
 *   flow with a remote peer will end by the peer's liveness.
 *
 * Hostile input never throws: an FA message that does not decode, a reply
 * that matches no pending flow (all 64 bits of the endpoint id) or comes
 * twice is dropped and counted.
 */
import type { Req, Res } from "../../lib/ipc/proto.ts";
import { ERRNO, OuroborosError, refusalCause } from "../../lib/util/errors.ts";
import type { Qos } from "../../lib/wire/udp_wire.ts";
import { Op } from "../common/dp_msg.ts";
import { EidSource, randomToken } from "../common/ipcp_flows.ts";
import { QC_BE, QC_VIDEO, QC_VOICE } from "./dt.ts";
import {
  decodeFa,
  encodeFa,
  FLOW_REPLY,
  FLOW_REQ,
  type FlowReplyMsg,
  type FlowReqMsg,
} from "./fa.ts";
import { encodeFlowPeer, flowEid } from "./datapath.ts";

/** The QoS cube of a flow's QoS (C's qos_spec_to_cube). */
export function qosCube(q: Qos): number {
  if (
    q.delay <= 50 && q.bandwidth <= 100_000n && q.availability >= 5 &&
    q.maxGap <= 50
  ) return QC_VOICE;
  if (q.delay <= 100 && q.availability >= 3 && q.maxGap <= 100) {
    return QC_VIDEO;
  }
  return QC_BE;
}

/** The data-path commands the flow allocator gives. */
export type FaCommand =
  | {
    op: typeof Op.Add;
    eid: number;
    peerEid: number;
    allocated: boolean;
    token: Uint8Array;
    addr: Uint8Array;
  }
  | { op: typeof Op.Allocated; eid: number; peerEid: number }
  | { op: typeof Op.Remove; eid: number };

export interface FaPorts {
  /** An FA message for eid 0 of `dst` (DT, cube 0). */
  sendFa(dst: bigint, msg: Uint8Array): void;
  /** A command for the data path. */
  command(c: FaCommand): void;
  /** Asks the irmd for a server side; rejects when it refuses. */
  flowReqArr(r: Req<"flow.req.arr">, timeoutMs: number): Promise<{
    oap: Uint8Array;
  }>;
  /** Tells the irmd that a flow it holds ended. */
  flowEnded(handle: number, reason: string): void;
  /** A timer; returns its cancel. */
  timer(ms: number, f: () => void): () => void;
  /** An unsigned 32-bit random number. */
  random32(): number;
  debug(text: string): void;
}

export interface FlowAllocatorOptions {
  /** this member's address */
  readonly addr: bigint;
  /** the layer's name hash length (bytes) */
  readonly hashLen: number;
  /** the data socket's path (for grants) */
  readonly path: string;
  /** the largest packet of a flow */
  readonly mtu: number;
  /** how long an allocated flow waits for its application (ms) */
  readonly attachMs: number;
  /** how long the irmd may take over a flow request (ms) */
  readonly reqArrMs: number;
  readonly ports: FaPorts;
}

interface Flow {
  readonly handle: number;
  /** our endpoint id, all 64 bits */
  readonly eid: bigint;
  readonly side: "client" | "server";
  readonly token: Uint8Array;
  readonly peerAddr: bigint;
  /** the peer's endpoint id (a client learns it from the reply) */
  peerEid: bigint;
  readonly qc: number;
  allocated: boolean;
  /** the irmd holds it (it hears when it ends) */
  granted: boolean;
  attached: boolean;
  cancelAttach: (() => void) | undefined;
}

interface Pending {
  readonly flow: Flow;
  resolve(m: FlowReplyMsg): void;
  reject(e: OuroborosError): void;
}

export interface FaStats {
  /** FA messages that did not decode */
  malformed: number;
  /** replies matching no pending allocation */
  unsolicited: number;
  /** FLOW_UPDATEs taken (and ignored) */
  updates: number;
  requests: number;
  refused: number;
  /** requests refused at once: MAX_WAITING_REQS were waiting already */
  overflow: number;
}

/**
 * Flow requests waiting for the irmd's answer, at most: each holds a
 * pending flow for up to the irmd's timeout, so a flood of FLOW_REQs from
 * a broken or hostile member is refused at once (EBUSY) beyond this.
 */
export const MAX_WAITING_REQS = 256;

export class FlowAllocator {
  readonly stats: FaStats = {
    malformed: 0,
    unsolicited: 0,
    updates: 0,
    requests: 0,
    overflow: 0,
    refused: 0,
  };
  readonly #o: FlowAllocatorOptions;
  readonly #flows = new Map<number, Flow>();
  readonly #pending = new Map<bigint, Pending>();
  /** Flow requests waiting for the irmd's answer. */
  #waitingReqs = 0;
  readonly #eids = new EidSource();
  #stopped = false;

  constructor(o: FlowAllocatorOptions) {
    this.#o = o;
  }

  /** Open flows (pending ones included). */
  get size(): number {
    return this.#flows.size;
  }

  /** The open flows: handle -> the handle of its peer when it is ours. */
  pairs(): Map<number, number | undefined> {
    const out = new Map<number, number | undefined>();
    for (const f of this.#flows.values()) {
      out.set(f.handle, this.#partner(f)?.handle);
    }
    return out;
  }

  #freshFlow(
    side: Flow["side"],
    peerAddr: bigint,
    peerEid: bigint,
    qc: number,
  ): Flow {
    const handle = this.#eids.fresh((h) => this.#flows.has(h));
    let high = 0;
    while (high === 0) high = this.#o.ports.random32() >>> 0;
    const f: Flow = {
      handle,
      eid: flowEid(high, handle),
      side,
      token: randomToken(),
      peerAddr,
      peerEid,
      qc,
      allocated: false,
      granted: false,
      attached: false,
      cancelAttach: undefined,
    };
    this.#flows.set(handle, f);
    return f;
  }

  #add(f: Flow, allocated: boolean): void {
    this.#o.ports.command({
      op: Op.Add,
      eid: f.handle,
      peerEid: 0,
      allocated,
      token: f.token,
      addr: encodeFlowPeer({
        eidHigh: Number(f.eid >> 32n),
        peerEid: f.peerEid,
        peerAddr: f.peerAddr,
        qc: f.qc,
      }),
    });
  }

  // ------------------------------------------------------------ client side

  /**
   * Allocates a flow to the name whose hash is `r.hash`, registered at
   * address `dst`: resolves with what the irmd hands the application.
   */
  async allocate(
    dst: bigint,
    r: Req<"ipcp.flow.alloc">,
  ): Promise<Res<"ipcp.flow.alloc">> {
    if (this.#stopped) {
      throw new OuroborosError("failed", "the IPCP is stopping");
    }
    const qc = qosCube(r.qos);
    const flow = this.#freshFlow("client", dst, 0n, qc);
    const reply = new Promise<FlowReplyMsg>((resolve, reject) => {
      this.#pending.set(flow.eid, { flow, resolve, reject });
    });
    const cancel = this.#o.ports.timer(r.timeoutMs, () => {
      const p = this.#pending.get(flow.eid);
      if (p === undefined) return;
      this.#pending.delete(flow.eid);
      p.reject(
        new OuroborosError(
          "timed_out",
          `no FLOW_REPLY from address ${dst} for ${r.name} within ${r.timeoutMs} ms`,
        ),
      );
    });
    let m: FlowReplyMsg;
    try {
      const req: FlowReqMsg = {
        code: FLOW_REQ,
        sAddr: this.#o.addr,
        sEid: flow.eid,
        qos: r.qos,
        hash: r.hash,
        oap: r.oap,
      };
      let bytes: Uint8Array;
      try {
        bytes = encodeFa(req);
      } catch (e) {
        throw new OuroborosError("invalid", (e as Error).message);
      }
      this.#o.ports.sendFa(dst, bytes);
      m = await reply;
    } catch (e) {
      this.#pending.delete(flow.eid);
      this.#flows.delete(flow.handle);
      if (dst === this.#o.addr) {
        // A flow to ourselves: its server side, still waiting for the
        // irmd or already handed out, would have no partner left.
        for (const f of [...this.#flows.values()]) {
          if (f.side === "server" && f.peerEid === flow.eid) {
            this.#end(f, "the client gave up", true);
          }
        }
      }
      throw e;
    } finally {
      cancel();
    }
    if (this.#flows.get(flow.handle) !== flow) {
      throw new OuroborosError("flow_down", "the IPCP is stopping");
    }
    if (m.response !== 0) {
      this.#flows.delete(flow.handle);
      throw new OuroborosError(
        "refused",
        `the peer refused the flow: ${refusalCause(m.response)}`,
        m.response,
      );
    }
    flow.peerEid = m.sEid;
    flow.allocated = true;
    flow.granted = true;
    // Known to the data path before the irmd can hand the flow out.
    this.#add(flow, true);
    this.#armAttach(flow);
    this.#o.ports.debug(
      `Flow ${flow.handle} allocated: eid ${hex64(flow.eid)} <-> ${
        hex64(m.sEid)
      } at ${dst}.`,
    );
    return {
      handle: flow.handle,
      token: flow.token,
      path: this.#o.path,
      mtu: this.#o.mtu,
      oap: m.oap.slice(),
    };
  }

  // ------------------------------------------------------------ messages

  /** An FA message that arrived for eid 0. Never throws. */
  receive(bytes: Uint8Array): void {
    const d = decodeFa(bytes, this.#o.hashLen);
    if (!d.ok) {
      this.stats.malformed++;
      this.#o.ports.debug(`Dropped an FA message: ${d.error}.`);
      return;
    }
    const m = d.value;
    if (m.code === FLOW_REPLY) {
      const p = this.#pending.get(m.rEid);
      if (p === undefined) {
        this.stats.unsolicited++;
        this.#o.ports.debug(
          `Dropped a FLOW_REPLY for eid ${hex64(m.rEid)}: no such request.`,
        );
        return;
      }
      this.#pending.delete(m.rEid);
      p.resolve({ ...m, oap: m.oap.slice() });
      return;
    }
    if (m.code === FLOW_REQ) {
      void this.#onRequest({
        ...m,
        hash: m.hash.slice(),
        oap: m.oap.slice(),
      });
      return;
    }
    this.stats.updates++;
  }

  async #onRequest(m: FlowReqMsg): Promise<void> {
    this.stats.requests++;
    if (this.#stopped) return;
    // Addresses are 4 bytes (addr_size is 4 in every layer this IPCP
    // makes): a wider one could not go in a DT header back.
    if (m.sAddr === 0n || m.sAddr >= 1n << 32n || m.sEid < 64n) {
      this.stats.malformed++;
      return;
    }
    if (this.#waitingReqs >= MAX_WAITING_REQS) {
      this.stats.overflow++;
      this.#reply(m, 0n, -ERRNO.EBUSY, new Uint8Array(0));
      return;
    }
    const flow = this.#freshFlow("server", m.sAddr, m.sEid, qosCube(m.qos));
    // The irmd hands the flow to an application before it answers: the
    // data path knows it, pending, until the answer allocates it.
    this.#add(flow, false);
    let oap: Uint8Array;
    this.#waitingReqs++;
    try {
      const res = await this.#o.ports.flowReqArr({
        handle: flow.handle,
        token: flow.token,
        path: this.#o.path,
        mtu: this.#o.mtu,
        hash: m.hash,
        qos: m.qos,
        oap: m.oap,
      }, this.#o.reqArrMs);
      oap = res.oap;
      flow.granted = true;
    } catch (e) {
      this.stats.refused++;
      this.#end(flow, "refused", false);
      const errno = e instanceof OuroborosError && e.errno !== undefined
        ? -Math.abs(e.errno)
        : -ERRNO.ECONNREFUSED;
      this.#o.ports.debug(
        `Flow request from ${m.sAddr} refused (${errno}): ${
          e instanceof Error ? e.message : e
        }.`,
      );
      this.#reply(m, 0n, errno, new Uint8Array(0));
      return;
    } finally {
      this.#waitingReqs--;
    }
    if (this.#flows.get(flow.handle) !== flow) {
      // Ended meanwhile (the IPCP stops, or the application went away):
      // the requester hears of it as a refusal.
      this.#reply(m, 0n, -ERRNO.ECONNREFUSED, new Uint8Array(0));
      return;
    }
    flow.allocated = true;
    this.#o.ports.command({ op: Op.Allocated, eid: flow.handle, peerEid: 0 });
    this.#armAttach(flow);
    this.#reply(m, flow.eid, 0, oap);
  }

  #reply(m: FlowReqMsg, sEid: bigint, response: number, oap: Uint8Array): void {
    let bytes: Uint8Array;
    try {
      bytes = encodeFa({ code: FLOW_REPLY, rEid: m.sEid, sEid, response, oap });
    } catch (e) {
      this.#o.ports.debug(
        `Cannot answer a flow request: ${(e as Error).message}.`,
      );
      return;
    }
    this.#o.ports.sendFa(m.sAddr, bytes);
  }

  // ------------------------------------------------------------ ending

  /** The data path: a flow's application attached. */
  attached(handle: number): void {
    const f = this.#flows.get(handle);
    if (f === undefined) return;
    f.attached = true;
    f.cancelAttach?.();
    f.cancelAttach = undefined;
  }

  /** The data path: a flow's application went away. */
  detached(handle: number, reason: string): void {
    const f = this.#flows.get(handle);
    if (f !== undefined) this.#endBoth(f, reason, true);
  }

  /** The irmd ends a flow. */
  deallocate(handle: number): void {
    const f = this.#flows.get(handle);
    if (f !== undefined) this.#endBoth(f, "deallocated", false);
  }

  /** Ends every flow and fails every allocation in progress. */
  stop(): void {
    this.#stopped = true;
    for (const p of this.#pending.values()) {
      p.reject(new OuroborosError("flow_down", "the IPCP is stopping"));
    }
    this.#pending.clear();
    for (const f of [...this.#flows.values()]) {
      this.#end(f, "IPCP stopping", false);
    }
  }

  #armAttach(f: Flow): void {
    if (f.attached) return;
    f.cancelAttach = this.#o.ports.timer(this.#o.attachMs, () => {
      f.cancelAttach = undefined;
      if (this.#flows.get(f.handle) === f && !f.attached) {
        this.#endBoth(f, "no application attached in time", true);
      }
    });
  }

  /** The flow of this member that is `f`'s peer, if there is one. */
  #partner(f: Flow): Flow | undefined {
    if (f.peerAddr !== this.#o.addr || f.peerEid === 0n) return undefined;
    const p = this.#flows.get(Number(f.peerEid & 0xffff_ffffn));
    return p !== undefined && p.eid === f.peerEid && p.peerEid === f.eid
      ? p
      : undefined;
  }

  /**
   * Ends a flow and its peer when the peer is ours. The irmd hears of
   * each side it holds and did not end itself: of `f` when `notify`, of
   * the partner always.
   */
  #endBoth(f: Flow, reason: string, notify: boolean): void {
    const partner = this.#partner(f);
    this.#end(f, reason, notify);
    if (partner !== undefined) {
      this.#end(partner, `its peer flow ended (${reason})`, true);
    }
  }

  #end(f: Flow, reason: string, notify: boolean): void {
    if (this.#flows.get(f.handle) !== f) return;
    this.#flows.delete(f.handle);
    f.cancelAttach?.();
    f.cancelAttach = undefined;
    const p = this.#pending.get(f.eid);
    if (p !== undefined) {
      this.#pending.delete(f.eid);
      p.reject(new OuroborosError("flow_down", reason));
    }
    this.#o.ports.command({ op: Op.Remove, eid: f.handle });
    this.#o.ports.debug(`Flow ${f.handle} (${f.side} side) ended: ${reason}.`);
    // The irmd knows a server side from the moment it was asked about it
    // (it ignores a handle it does not hold).
    if (notify && (f.granted || f.side === "server")) {
      this.#o.ports.flowEnded(f.handle, reason);
    }
  }
}

function hex64(v: bigint): string {
  return `0x${v.toString(16).padStart(16, "0")}`;
}
