/**
 * This member's data transfer (spec/unicast.md 2.5) as a pure function of
 * its address, its layer's DT settings and its forwarding tables: given a
 * packet to send or one that arrived, it says where the packet goes. No
 * I/O: the control thread (FA and DHT messages) and the data path (flows'
 * data) act on the answer.
 *
 * - A packet addressed to this member is delivered locally, by endpoint
 *   id: below 64 to a component (FA 0, DHT 1), from 64 on to a flow. A
 *   member that sends to its own address loops the packet: it is encoded
 *   and decoded like any other, and never leaves the member.
 * - Any other packet is forwarded on the N-1 flow of the forwarding table
 *   of its qc byte, its TTL decremented (a packet that arrives with TTL 0
 *   or 1, not for us, is dropped, unlike C, which wraps 0 to 255); no
 *   route, no forwarding.
 */
import {
  decodeDt,
  dtDecrementTtl,
  type DtLayout,
  type DtPacket,
  EID_FLOW_MIN,
  encodeDt,
} from "./dt.ts";
import type { FlowHandle, ForwardingTables } from "./routing.ts";

export type DtRoute =
  /** for this member: `packet.eid` says for whom */
  | { readonly t: "local"; readonly packet: DtPacket }
  /** to the N-1 flow `flow`: `bytes` is the whole packet, TTL decremented */
  | {
    readonly t: "forward";
    readonly flow: FlowHandle;
    readonly bytes: Uint8Array;
  }
  | { readonly t: "drop"; readonly why: "malformed" | "ttl" | "no-route" };

export interface DtNodeOptions {
  /** this member's address */
  readonly addr: bigint;
  readonly layout: DtLayout;
  /** the TTL of the packets this member originates */
  readonly maxTtl: number;
  /**
   * ECMP (spec 4): a destination's packets go round robin over all its
   * next hops' flows, one packet each; otherwise on the first (the
   * primary; LFA's alternates follow it, for when it is gone).
   */
  readonly multipath?: boolean;
}

export class DtNode {
  readonly addr: bigint;
  readonly layout: DtLayout;
  readonly maxTtl: number;
  readonly multipath: boolean;
  #tables: ForwardingTables | undefined;
  #turn = 0;

  constructor(o: DtNodeOptions) {
    this.addr = o.addr;
    this.layout = o.layout;
    this.maxTtl = o.maxTtl;
    this.multipath = o.multipath ?? false;
  }

  /** The forwarding tables routing computed last. */
  setTables(t: ForwardingTables): void {
    this.#tables = t;
  }

  /**
   * A packet this member originates: `payload` for endpoint `eid` at `dst`,
   * in cube `qc` (0 for FA and DHT messages).
   */
  send(dst: bigint, eid: bigint, qc: number, payload: Uint8Array): DtRoute {
    const bytes = encodeDt(
      { dst, qc, ttl: this.maxTtl, ecn: 0, eid },
      payload,
      this.layout,
    );
    if (dst === this.addr) return this.arrived(bytes);
    return this.#forward(bytes, dst, qc);
  }

  /**
   * A DT packet this member wrote itself, header included (the data path
   * writes its flows' packets in place): delivered here when it is for
   * us, else forwarded with its TTL as it is. Never throws.
   */
  originated(bytes: Uint8Array): DtRoute {
    const r = decodeDt(bytes, this.layout);
    if (!r.ok) return { t: "drop", why: "malformed" };
    const p = r.value;
    if (p.dst === this.addr) return { t: "local", packet: p };
    return this.#forward(bytes, p.dst, p.qc);
  }

  /** A DT packet that arrived (or looped): where it goes. Never throws. */
  arrived(bytes: Uint8Array): DtRoute {
    const r = decodeDt(bytes, this.layout);
    if (!r.ok) return { t: "drop", why: "malformed" };
    const p = r.value;
    if (p.dst === this.addr) return { t: "local", packet: p };
    if (dtDecrementTtl(bytes, this.layout) <= 0) {
      return { t: "drop", why: "ttl" };
    }
    return this.#forward(bytes, p.dst, p.qc);
  }

  #forward(bytes: Uint8Array, dst: bigint, qc: number): DtRoute {
    const flows = this.#tables?.flows[qc as 0 | 1 | 2]?.get(dst);
    const flow = flows === undefined || flows.length < 2 || !this.multipath
      ? flows?.[0]
      : flows[this.#turn++ % flows.length];
    if (this.#turn > 0x3fff_ffff) this.#turn = 0;
    if (flow === undefined) return { t: "drop", why: "no-route" };
    return { t: "forward", flow, bytes };
  }
}

/** Whether an endpoint id is a flow's (not a component's). */
export function isFlowEid(eid: bigint): boolean {
  return eid >= EID_FLOW_MIN;
}
