/**
 * The unicast IPCP's data path, in a thread of its own (the data-path
 * Worker of ipcpd/common/dp_host.ts, like the UDP and local IPCPs'). It
 * moves the flows' data packets: a packet read from a flow's application
 * gets the DT header towards the flow's peer (its address, cube and
 * endpoint id) and goes where the member's data transfer (./dt_node.ts)
 * sends it. For now a layer has one member and no N-1 flows: a packet is
 * for this member (a flow whose peer is another flow of this IPCP), is
 * decoded again as an arriving DT packet, and goes by its endpoint id to
 * that flow's application. A packet for another address has no route and
 * is dropped and counted (DpCounter.NoRoute); a later step writes it to
 * the N-1 flow of the forwarding table, and hands the control thread the
 * packets that arrive for the FA and the DHT (endpoint ids 0 and 1), which
 * for now the control thread loops itself.
 *
 * A flow's peer comes with its ADD command, in the record's address bytes
 * (`encodeFlowPeer`): the random high half of the flow's own 64-bit
 * endpoint id (the low half is the flow's handle), the peer's endpoint id,
 * the peer's address and the flow's cube. A packet whose endpoint id
 * matches no flow's, all 64 bits, is dropped and counted.
 *
 * Frames from and to applications are `[u32 length][packet]`: a packet is
 * copied once, into a staging buffer, as `[u32][DT header][packet]`; once
 * decoded, the length is written over the header's last 4 bytes and the
 * frame delivered from there, written with the other frames of the pass
 * for the same flow by one writev.
 */
import type { Epoll } from "../../lib/sys/mod.ts";
import { putU32 } from "../../lib/ipc/framing.ts";
import {
  AppSide,
  appSideLimits,
  type DpFlow,
  dpFlowOf,
} from "../common/app_conns.ts";
import { type Post, rateLimitedLog } from "../common/dp_log.ts";
import {
  counterView,
  decodeCommand,
  DpCounter,
  type DpInit,
  Op,
} from "../common/dp_msg.ts";
import { RingReader } from "../common/ring.ts";
import { runPasses, waitUntil } from "../common/dp_loop.ts";
import { Staging } from "../common/staging.ts";
import { dtLayout, QC_VOICE, writeDtHeader } from "./dt.ts";
import { DtNode, isFlowEid } from "./dt_node.ts";

/** The longest DT header (8-byte address and eid). */
const MAX_HDR = 19;

/** A flow's peer, as its ADD record carries it. */
export interface FlowPeer {
  /** the random high half of the flow's own endpoint id */
  readonly eidHigh: number;
  /** the peer's endpoint id */
  readonly peerEid: bigint;
  /** the peer's address */
  readonly peerAddr: bigint;
  /** the flow's QoS cube (the qc byte) */
  readonly qc: number;
}

/** The bytes of a FlowPeer in an ADD record. */
export const FLOW_PEER_LEN = 21;

export function encodeFlowPeer(p: FlowPeer): Uint8Array {
  const out = new Uint8Array(FLOW_PEER_LEN);
  const v = new DataView(out.buffer);
  v.setUint32(0, p.eidHigh);
  v.setBigUint64(4, p.peerEid);
  v.setBigUint64(12, p.peerAddr);
  v.setUint8(20, p.qc);
  return out;
}

/** Reads a FlowPeer; undefined when the bytes are not one. */
export function decodeFlowPeer(b: Uint8Array): FlowPeer | undefined {
  if (b.length !== FLOW_PEER_LEN) return undefined;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const qc = v.getUint8(20);
  if (qc > QC_VOICE) return undefined;
  return {
    eidHigh: v.getUint32(0),
    peerEid: v.getBigUint64(4),
    peerAddr: v.getBigUint64(12),
    qc,
  };
}

/** The 64-bit endpoint id of a flow: its random high half, its handle. */
export function flowEid(eidHigh: number, handle: number): bigint {
  return BigInt(eidHigh >>> 0) << 32n | BigInt(handle >>> 0);
}

interface PeerState {
  /** the flow's own endpoint id, all 64 bits */
  readonly eid: bigint;
  readonly peer: FlowPeer;
  /** the DT header of the flow's packets, written once */
  readonly hdr: Uint8Array;
}

/**
 * Runs the data path until told to stop; returns then, everything it
 * opened closed (the descriptors the control thread gave stay its own).
 */
export function runUnicastDatapath(
  init: DpInit,
  epoll: Epoll,
  post: Post,
): void {
  const counters = counterView(init.counters);
  const ring = new RingReader(init.ring);
  const flows = new Map<number, DpFlow>();
  const peers = new Map<number, PeerState>();
  let node: DtNode | undefined;
  let now = Date.now();
  let stopping = false;
  const log = rateLimitedLog(post, () => now);

  // ---------------------------------------------------------- moving

  const stage = new Staging(
    init.mtu + 4 + MAX_HDR,
    () => apps.flushDeliveries(),
  );
  const staging = stage.buf;
  const flush = () => stage.flush();

  /** A packet frame from `flow`'s application: DT, then where DT says. */
  const packet = (flow: DpFlow, frame: Uint8Array) => {
    const st = peers.get(flow.eid);
    if (node === undefined || st === undefined) {
      counters[DpCounter.UnknownEid]!++;
      return;
    }
    const hdrLen = st.hdr.length;
    const len = frame.length - 4;
    const need = 4 + hdrLen + len;
    const start = stage.reserve(need) + 4;
    staging.set(st.hdr, start);
    staging.set(frame.subarray(4), start + hdrLen);
    const end = start + hdrLen + len;
    counters[DpCounter.TxPackets]!++;
    const route = node.originated(staging.subarray(start, end));
    if (route.t === "drop") {
      if (route.why === "no-route") counters[DpCounter.NoRoute]!++;
      else counters[DpCounter.Short]!++;
      return;
    }
    if (route.t === "forward") {
      // No N-1 flows yet: routing has no table entries, so this is not
      // reached; counted as unroutable all the same.
      counters[DpCounter.NoRoute]!++;
      return;
    }
    const p = route.packet;
    if (!isFlowEid(p.eid)) {
      // A flow whose peer is a component: nothing sends such a packet.
      counters[DpCounter.UnknownEid]!++;
      return;
    }
    const handle = Number(p.eid & 0xffff_ffffn);
    const target = flows.get(handle);
    const tst = peers.get(handle);
    if (target === undefined || tst === undefined || tst.eid !== p.eid) {
      // The peer flow ended (its end goes down too), or a stale eid.
      counters[DpCounter.UnknownEid]!++;
      return;
    }
    if (!apps.live(target)) {
      apps.early(target, p.payload);
      return;
    }
    const at = end - p.payload.length - 4;
    putU32(staging, at, p.payload.length);
    apps.deliver(target, staging.subarray(at, end));
    stage.commit(end);
  };

  const apps = new AppSide({
    ...appSideLimits(init),
    epoll,
    flows,
    counters,
    packet,
    // The receiving application's queue is bounded on its own.
    blocked: () => false,
    event: (e) => post(e),
    log,
  });
  apps.now = now;

  // ---------------------------------------------------------- commands

  const command = (v: DataView, at: number) => {
    const c = decodeCommand(v, at);
    if (c === undefined) return;
    switch (c.op) {
      case Op.Socket:
        return; // no lower layer of its own
      case Op.Layer: {
        const layout = dtLayout(c.addrSize, c.eidSize);
        if (!layout.ok) {
          log("layer", "error", `Bad DT settings: ${layout.error}.`);
          return;
        }
        node = new DtNode({
          addr: c.addr,
          layout: layout.value,
          maxTtl: c.maxTtl,
        });
        return;
      }
      case Op.Add: {
        if (flows.has(c.eid) || node === undefined) return;
        const peer = decodeFlowPeer(c.addr);
        if (peer === undefined) {
          log("add", "error", `Flow ${c.eid} without a valid peer.`);
          return;
        }
        const hdr = new Uint8Array(node.layout.hdrLen);
        try {
          writeDtHeader(hdr, {
            dst: peer.peerAddr,
            qc: peer.qc,
            ttl: node.maxTtl,
            ecn: 0,
            eid: peer.peerEid,
          }, node.layout);
        } catch (e) {
          log("add", "error", `Flow ${c.eid}: ${(e as Error).message}.`);
          return;
        }
        peers.set(c.eid, { eid: flowEid(peer.eidHigh, c.eid), peer, hdr });
        flows.set(c.eid, dpFlowOf(c, now));
        return;
      }
      case Op.Allocated: {
        const flow = flows.get(c.eid);
        if (flow === undefined) return;
        flow.allocated = true;
        apps.flowAllocated(flow);
        flush();
        return;
      }
      case Op.Remove: {
        const flow = flows.get(c.eid);
        peers.delete(c.eid);
        if (flow !== undefined) apps.flowRemoved(flow);
        return;
      }
      case Op.Stop:
        stopping = true;
        return;
    }
  };

  // ---------------------------------------------------------- the loop

  runPasses({
    init,
    epoll,
    ring,
    apps,
    counters,
    post,
    command,
    stopping: () => stopping,
  }, {
    // No lower layer yet: every descriptor is an application's.
    event: () => false,
    work: () => {
      apps.readReady();
      flush();
      apps.timers();
    },
    waitMs: () => apps.hasReady ? 0 : waitUntil(apps.nextDeadline()),
    setNow: (t) => now = t,
  });
}
