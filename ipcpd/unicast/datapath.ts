/**
 * The unicast IPCP's data path, in a thread of its own (the data-path
 * Worker of ipcpd/common/dp_host.ts, like the UDP and local IPCPs'). It
 * moves the flows' data packets: a packet read from a flow's application
 * gets the DT header towards the flow's peer (its address, cube and
 * endpoint id) and goes where the member's data transfer (./dt_node.ts)
 * sends it: to a flow of this member (a flow whose peer is another flow of
 * this IPCP: decoded again as an arriving DT packet, it goes by its
 * endpoint id to that flow's application), or on the N-1 flow the
 * forwarding table names; with no route it is dropped and counted
 * (DpCounter.NoRoute).
 *
 * The N-1 flows (./n1_conns.ts): connections to the lower IPCPs, given by
 * the control thread (N1_ADD). A flow starts in control mode: what it
 * reads (CEP, enrollment, LSAs) goes to the control thread ("n1" events,
 * batched per pass and bounded as the UDP data path's management frames
 * are). Once a dt flow (N1_DT), each packet it reads goes through DT: for
 * this member, by endpoint id to an application, or, for the FA and the
 * DHT (below 64), to the control thread, whole; not for us, its TTL
 * decremented, on the N-1 flow of the table of the arriving flow's cube;
 * else dropped and counted. The control thread writes its own packets
 * (N1_WRITE: CEP, enrollment, LSAs, and the DT packets of its FA and DHT,
 * which it routes itself) and gives the forwarding tables (TABLES,
 * `encodeTables`); until the first, there are no routes.
 *
 * A flow's peer comes with its ADD command, in the record's address bytes
 * (`encodeFlowPeer`): the random high half of the flow's own 64-bit
 * endpoint id (the low half is the flow's handle), the peer's endpoint id,
 * the peer's address and the flow's cube. A packet whose endpoint id
 * matches no flow's, all 64 bits, is dropped and counted.
 *
 * Copies. A packet from an application is copied once, into a staging
 * buffer, as `[u32][DT header][packet]`: that frame is written on its N-1
 * flow as it is (the length made the DT packet's); one for this member is
 * decoded again, the length written over the header's last 4 bytes and the
 * frame delivered from there. A packet read on an N-1 flow stays in that
 * flow's read buffer: forwarded, its frame is written from there; for an
 * application, delivered from there in the same way. Each pass writes what
 * it gathered with one writev per connection; only what a socket does not
 * take is copied, into its queue.
 *
 * Multi-bit ECN (spec/unicast.md 2.7.4), when the LAYER command says the
 * layer uses it: the N-1 flows mark every data packet they are given with
 * their queue (./n1_conns.ts), and each application flow keeps the level
 * of what it receives (`ecnReceive`, fed with the ecn byte of every DT
 * packet delivered to it); when that says so, the data path sends the
 * flow's peer a FLOW_UPDATE (to its address, eid 0, cube 0, the layer's
 * TTL), routed as its applications' packets are. The sending side (a rate
 * window) is not done: a FLOW_UPDATE that arrives goes to the control
 * thread, which ignores it, as C's nop policy does.
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
  CommandReader,
  counterView,
  type DpCommand,
  DpCounter,
  type DpInit,
  DpWord,
  MAX_N1_PACKET,
  Op,
  wordView,
} from "../common/dp_msg.ts";
import { RingReader } from "../common/ring.ts";
import { runPasses, waitUntil } from "../common/dp_loop.ts";
import { Staging } from "../common/staging.ts";
import {
  dtLayout,
  type DtPacket,
  EID_FA,
  QC_BE,
  QC_VOICE,
  writeDtHeader,
} from "./dt.ts";
import {
  ECN_RX_IDLE,
  ecnReceive,
  type EcnRx,
  encodeFa,
  flowUpdate,
} from "./fa.ts";
import { DtNode, isFlowEid } from "./dt_node.ts";
import { type N1Conn, N1Side } from "./n1_conns.ts";
import type { ForwardingTable, ForwardingTables } from "./routing.ts";

/** The longest DT header (8-byte address and eid). */
const MAX_HDR = 19;

// ------------------------------------------------------------ tables

const TABLES_VERSION = 1;

/** Whether two forwarding tables hold the same entries, in the same order. */
function sameTable(a: ForwardingTable, b: ForwardingTable): boolean {
  if (a === b) return true;
  if (a.size !== b.size) return false;
  const ia = a.entries();
  const ib = b.entries();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done === true || y.done === true) return x.done === y.done;
    const [da, fa] = x.value;
    const [db, fb] = y.value;
    if (da !== db || fa.length !== fb.length) return false;
    for (let i = 0; i < fa.length; i++) if (fa[i] !== fb[i]) return false;
  }
}

/**
 * The forwarding tables in a TABLES command's bytes (the data path needs
 * only their flows: `nextHops` is not carried, and comes back empty):
 *
 *   [u8 version = 1][u8 same]
 *   then for each cube 0, 1, 2 whose bit is not set in `same`:
 *     [u32 entries] then per entry: [u64 dst][u8 n][n x u32 flow]
 *
 * big-endian; bit 1 of `same`: cube 1's table is cube 0's, bit 2: cube 2's
 * is (routing computes the three alike), so an entry takes 13 bytes
 * (one flow), and the ring's 256 KiB hold some 20000 destinations. Throws
 * a RangeError for a flow that is not a u32, more than 255 flows for a
 * destination, or an address that is not a u64.
 */
export function encodeTables(t: ForwardingTables): Uint8Array {
  const [t0, t1, t2] = t.flows;
  const same = (sameTable(t1, t0) ? 2 : 0) | (sameTable(t2, t0) ? 4 : 0);
  const tables = [
    t0,
    (same & 2) === 0 ? t1 : null,
    (same & 4) === 0 ? t2 : null,
  ];
  let size = 2;
  for (const tb of tables) {
    if (tb === null) continue;
    size += 4;
    for (const flows of tb.values()) size += 9 + 4 * flows.length;
  }
  const out = new Uint8Array(size);
  const v = new DataView(out.buffer);
  v.setUint8(0, TABLES_VERSION);
  v.setUint8(1, same);
  let at = 2;
  for (const tb of tables) {
    if (tb === null) continue;
    v.setUint32(at, tb.size);
    at += 4;
    for (const [dst, flows] of tb) {
      if (dst < 0n || dst > 0xffff_ffff_ffff_ffffn) {
        throw new RangeError(`address ${dst} is not a u64`);
      }
      if (flows.length > 0xff) {
        throw new RangeError(`${flows.length} flows towards ${dst}`);
      }
      v.setBigUint64(at, dst);
      v.setUint8(at + 8, flows.length);
      at += 9;
      for (const f of flows) {
        if (!Number.isInteger(f) || f < 0 || f > 0xffff_ffff) {
          throw new RangeError(`flow ${f} is not a u32`);
        }
        v.setUint32(at, f);
        at += 4;
      }
    }
  }
  return out;
}

/** The tables of encodeTables' bytes; undefined when they are not. */
export function decodeTables(b: Uint8Array): ForwardingTables | undefined {
  if (b.length < 2 || b[0] !== TABLES_VERSION || (b[1]! & ~6) !== 0) {
    return undefined;
  }
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const same = b[1]!;
  let at = 2;
  const table = (): ForwardingTable | undefined => {
    if (b.length - at < 4) return undefined;
    const n = v.getUint32(at);
    at += 4;
    const m = new Map<bigint, number[]>();
    for (let i = 0; i < n; i++) {
      if (b.length - at < 9) return undefined;
      const dst = v.getBigUint64(at);
      const k = v.getUint8(at + 8);
      at += 9;
      if (b.length - at < 4 * k) return undefined;
      const flows: number[] = [];
      for (let j = 0; j < k; j++, at += 4) flows.push(v.getUint32(at));
      m.set(dst, flows);
    }
    return m;
  };
  const t0 = table();
  if (t0 === undefined) return undefined;
  const t1 = (same & 2) !== 0 ? t0 : table();
  if (t1 === undefined) return undefined;
  const t2 = (same & 4) !== 0 ? t0 : table();
  if (t2 === undefined || at !== b.length) return undefined;
  return { nextHops: new Map(), flows: [t0, t1, t2] };
}

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
  /** the congestion level of what it receives (multi-bit ECN) */
  rx: EcnRx;
}

/**
 * Runs the data path until told to stop; returns then, everything it
 * opened closed (the descriptors the control thread gave stay its own,
 * but for the N-1 flows' connections, which it closes).
 */
export function runUnicastDatapath(
  init: DpInit,
  epoll: Epoll,
  post: Post,
): void {
  const counters = counterView(init.counters);
  const words = wordView(init.counters);
  const ring = new RingReader(init.ring);
  const reader = new CommandReader();
  const flows = new Map<number, DpFlow>();
  const peers = new Map<number, PeerState>();
  let node: DtNode | undefined;
  /** The layer's congestion avoidance is multi-bit ECN. */
  let ecn = false;
  let now = Date.now();
  let stopping = false;
  const log = rateLimitedLog(post, () => now);

  // ---------------------------------------------------------- to control

  /** Packets for the control thread in this pass, per N-1 flow, in order. */
  const toControl = new Map<number, Uint8Array[]>();
  let toControlCount = 0;
  /** Packets posted so far (wraps as DpWord.MgmtTaken does). */
  let posted = 0;

  /** A packet (a view, copied here) for the control thread, if it keeps up. */
  const control = (id: number, bytes: Uint8Array) => {
    if (
      ((posted - Atomics.load(words, DpWord.MgmtTaken)) >>> 0) +
          toControlCount >= init.mgmtBacklog
    ) {
      counters[DpCounter.MgmtOverflow]!++;
      return;
    }
    let list = toControl.get(id);
    if (list === undefined) toControl.set(id, list = []);
    list.push(bytes.slice());
    toControlCount++;
  };

  const postControl = () => {
    if (toControlCount === 0) return;
    for (const [id, sdus] of toControl) {
      post({ t: "n1", id, sdus }, sdus.map((s) => s.buffer as ArrayBuffer));
    }
    posted = (posted + toControlCount) | 0;
    toControl.clear();
    toControlCount = 0;
  };

  // ---------------------------------------------------------- moving

  /**
   * Tells the peer of flow `st` its level (a FLOW_UPDATE), routed as the
   * applications' packets are; `via`: the N-1 flow the packet that moved
   * the level came on, for an update that loops to this member's own FA
   * (the control thread's, as an FA message read there).
   */
  const sendUpdate = (st: PeerState, via: number | undefined) => {
    if (node === undefined) return;
    const fa = encodeFa(flowUpdate(st.peer.peerEid, st.rx.ece));
    const hdrLen = node.layout.hdrLen;
    const f = new Uint8Array(4 + hdrLen + fa.length);
    putU32(f, 0, hdrLen + fa.length);
    writeDtHeader(
      f,
      {
        dst: st.peer.peerAddr,
        qc: QC_BE,
        ttl: node.maxTtl,
        ecn: 0,
        eid: EID_FA,
      },
      node.layout,
      4,
    );
    f.set(fa, 4 + hdrLen);
    const route = node.originated(f.subarray(4));
    if (route.t === "drop") dropped(route.why);
    else if (route.t === "forward") {
      const out = dtFlow(route.flow);
      if (out === undefined) counters[DpCounter.NoRoute]!++;
      else n1.sendData(out, f);
    } else if (via !== undefined) control(via, f.subarray(4));
  };

  /**
   * A DT packet for this member and a flow's endpoint id, decoded from a
   * buffer that holds its frame (`[u32][header][payload]`, read or
   * staged): the header's last 4 bytes become the delivered frame's
   * length. True when handed to a live application's writes (its bytes
   * must stay until flushed). `via`: the N-1 flow it came on.
   */
  const deliverLocal = (p: DtPacket, via?: number): boolean => {
    const handle = Number(p.eid & 0xffff_ffffn);
    const target = flows.get(handle);
    const tst = peers.get(handle);
    if (target === undefined || tst === undefined || tst.eid !== p.eid) {
      // The peer flow ended (its end goes down too), or a stale eid.
      counters[DpCounter.UnknownEid]!++;
      return false;
    }
    if (ecn) {
      const r = ecnReceive(tst.rx, p.ecn);
      tst.rx = r.state;
      if (r.update) sendUpdate(tst, via);
    }
    const pl = p.payload;
    if (!apps.live(target)) {
      apps.early(target, pl);
      return false;
    }
    const f = new Uint8Array(pl.buffer, pl.byteOffset - 4, pl.length + 4);
    putU32(f, 0, pl.length);
    apps.deliver(target, f);
    return true;
  };

  const dropped = (why: "malformed" | "ttl" | "no-route") => {
    counters[
      why === "no-route"
        ? DpCounter.NoRoute
        : why === "ttl"
        ? DpCounter.TtlExpired
        : DpCounter.Short
    ]!++;
  };

  /** The dt flow a route names, if it is one. */
  const dtFlow = (id: number): N1Conn | undefined => {
    const c = n1.get(id);
    return c !== undefined && c.mode === "dt" ? c : undefined;
  };

  const stage = new Staging(init.mtu + 4 + MAX_HDR, () => n1.flush());
  const staging = stage.buf;

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
    const at = stage.reserve(need);
    const start = at + 4;
    staging.set(st.hdr, start);
    staging.set(frame.subarray(4), start + hdrLen);
    const end = start + hdrLen + len;
    counters[DpCounter.TxPackets]!++;
    const route = node.originated(staging.subarray(start, end));
    if (route.t === "drop") {
      dropped(route.why);
      return;
    }
    if (route.t === "forward") {
      const out = dtFlow(route.flow);
      if (out === undefined) {
        counters[DpCounter.NoRoute]!++;
        return;
      }
      putU32(staging, at, hdrLen + len);
      if (n1.sendData(out, staging.subarray(at, end))) stage.commit(end);
      return;
    }
    const p = route.packet;
    if (!isFlowEid(p.eid)) {
      // A flow whose peer is a component: nothing sends such a packet.
      counters[DpCounter.UnknownEid]!++;
      return;
    }
    if (deliverLocal(p)) stage.commit(end);
  };

  /** A frame read on a dt flow (a view of its read buffer). */
  const arrived = (conn: N1Conn, frame: Uint8Array) => {
    if (node === undefined) {
      counters[DpCounter.NoRoute]!++;
      return;
    }
    const bytes = frame.subarray(4);
    // By its qc byte's table (spec 8: C uses the arriving flow's cube, a
    // FIXME of its own; the tables agree on routes either way).
    const route = node.arrived(bytes);
    switch (route.t) {
      case "drop":
        dropped(route.why);
        return;
      case "forward": {
        const out = dtFlow(route.flow);
        if (out === undefined) counters[DpCounter.NoRoute]!++;
        // The same length, the same bytes but the TTL: the frame as read.
        else n1.sendData(out, frame);
        return;
      }
      case "local":
        if (isFlowEid(route.packet.eid)) deliverLocal(route.packet, conn.id);
        else control(conn.id, bytes); // the FA's, the DHT's: whole
        return;
    }
  };

  const apps = new AppSide({
    ...appSideLimits(init),
    epoll,
    flows,
    counters,
    packet,
    // The receiving application's queue is bounded on its own, and so is
    // each N-1 flow's.
    blocked: () => false,
    event: (e) => post(e),
    log,
  });
  apps.now = now;

  const n1 = new N1Side({
    epoll,
    counters,
    maxPacket: MAX_N1_PACKET,
    control: (conn, bytes) => control(conn.id, bytes),
    dt: arrived,
    flushOthers: () => apps.flushDeliveries(),
    down: (id, reason) => {
      postControl(); // what it read comes first
      post({ t: "n1Down", id, reason });
    },
    log,
  });
  n1.now = now;

  // ---------------------------------------------------------- commands

  const run = (c: DpCommand, bytes: Uint8Array) => {
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
          multipath: c.multipath,
        });
        ecn = c.ecn;
        n1.setEcn(ecn ? layout.value : undefined);
        if (tables !== undefined) node.setTables(tables);
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
        peers.set(c.eid, {
          eid: flowEid(peer.eidHigh, c.eid),
          peer,
          hdr,
          rx: ECN_RX_IDLE,
        });
        flows.set(c.eid, dpFlowOf(c, now));
        return;
      }
      case Op.Allocated: {
        const flow = flows.get(c.eid);
        if (flow === undefined) return;
        flow.allocated = true;
        apps.flowAllocated(flow);
        n1.flush();
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
      case Op.N1Add:
        n1.add(c.id, c.fd);
        return;
      case Op.N1Dt:
        if (c.qc > QC_VOICE) {
          log("n1dt", "error", `N-1 flow ${c.id}: no QoS cube ${c.qc}.`);
          return;
        }
        n1.setDt(c.id, c.qc);
        return;
      case Op.N1Remove:
        n1.remove(c.id);
        return;
      case Op.N1Write: {
        const conn = n1.get(c.id);
        if (conn === undefined) {
          log("n1write", "debug", `No N-1 flow ${c.id} to write on.`);
        } else if (bytes.length > MAX_N1_PACKET) {
          log(
            "n1write",
            "error",
            `A packet of ${bytes.length} bytes for N-1 flow ${c.id}, over ${MAX_N1_PACKET}.`,
          );
        } else n1.sendControl(conn, bytes);
        return;
      }
      case Op.Tables: {
        const t = decodeTables(bytes);
        if (t === undefined) {
          log("tables", "error", "Forwarding tables that do not decode.");
          return;
        }
        tables = t;
        node?.setTables(t);
        return;
      }
    }
  };
  /** The tables last given, for a node made after them. */
  let tables: ForwardingTables | undefined;

  const command = (v: DataView, at: number) => reader.record(v, at, run);

  // ---------------------------------------------------------- the loop

  try {
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
      event: (tag, events) => n1.onEvent(tag, events),
      work: () => {
        apps.readReady();
        n1.readReady();
        stage.flush();
        n1.flush();
        postControl();
        apps.timers();
        n1.timers();
      },
      waitMs: () =>
        apps.hasReady || n1.hasReady
          ? 0
          : waitUntil(Math.min(apps.nextDeadline(), n1.nextDeadline())),
      setNow: (t) => now = n1.now = t,
    });
  } finally {
    n1.closeAll();
  }
}
