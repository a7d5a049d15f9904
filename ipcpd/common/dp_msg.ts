/**
 * The messages between an IPCP's control thread (its main thread) and its
 * data-path thread (a Worker, ipcpd/common/dp_host.ts starts it).
 *
 * Control -> data path: records in a shared ring (ring.ts), followed by an
 * eventfd write that wakes the data path from epoll_wait; the data path
 * never needs its event loop to read them:
 *
 *   SOCKET    the lower layer's socket (the UDP socket, once bootstrapped)
 *   ADD       a flow: endpoint id, the peer's, allocated or pending, the
 *             token an application must show to attach, the peer's address
 *             (in a local layer, the peer is the partner flow of the same
 *             IPCP, and there is no address)
 *   ALLOCATED a pending flow is allocated (with the peer's endpoint id)
 *   REMOVE    a flow ended: its application connection is closed
 *   STOP      close everything and report "stopped"
 *   LAYER     a unicast layer was bootstrapped: its DT settings (our
 *             address, the DT field sizes, the initial TTL)
 *
 * The unicast IPCP's N-1 flows (its flows in the layers below, each a Unix
 * stream connection to the lower IPCP's data socket, attach frame already
 * written by the control thread):
 *
 *   N1_ADD    an N-1 flow: its id and its connection's descriptor, which
 *             the data path owns from then on; packets read on it go to
 *             the control thread (event "n1") until N1_DT
 *   N1_DT     the flow carries DT packets now, of cube qc
 *   N1_REMOVE close the flow's connection (no event follows)
 *   N1_WRITE  + bytes: one packet to write on the flow
 *   TABLES    + bytes: the forwarding tables (unicast/datapath.ts's
 *             encodeTables)
 *
 * A command "+ bytes" is its record, with the length of the bytes, followed
 * by ceil(length / 64) raw records of them, written all at once
 * (RingWriter.writeWithBytes); CommandReader puts them back together.
 *
 * Data path -> control: postMessage of DpEvent (the control thread waits
 * in its event loop anyway): management frames that arrived, applications
 * attached and gone, flow activity for liveness (at most every
 * ACTIVITY_MS), log lines, accept failures, "stopped"; in a unicast IPCP,
 * the packets of its N-1 flows that are not data (CEP, enrollment, LSAs,
 * the DT packets for its FA and DHT) and N-1 flows that went down. No data
 * packet of an application is ever among them.
 *
 * Counters live in shared memory (DpCounter indices), written by the data
 * path and read by the control thread when asked for statistics.
 */
import { RECORD_BYTES } from "./ring.ts";
import { TOKEN_LEN } from "../../lib/ipc/dataplane.ts";

/** The name the data-path Worker is started under (main.ts checks it). */
export { DATAPATH_WORKER_NAME } from "../../lib/util/self.ts";

/** How often, at most, the data path reports flow activity (ms). */
export const ACTIVITY_MS = 250;

/** Largest peer address a record carries (a sockaddr_in6 is 28 bytes). */
export const MAX_ADDR_BYTES = 28;

export const Op = {
  Socket: 1,
  Add: 2,
  Allocated: 3,
  Remove: 4,
  Stop: 5,
  Layer: 6,
  N1Add: 7,
  N1Dt: 8,
  N1Remove: 9,
  N1Write: 10,
  Tables: 11,
} as const;

/**
 * The largest packet on an N-1 flow: a DT packet of the largest payload
 * (65535 bytes) with the longest DT header (19 bytes). An N1_WRITE carries
 * at most this; a longer frame read on an N-1 flow breaks the flow.
 */
export const MAX_N1_PACKET = 65535 + 19;

/** Whether a command is followed by bytes (RingWriter.writeWithBytes). */
export function hasBytes(op: number): boolean {
  return op === Op.N1Write || op === Op.Tables;
}

export type DpCommand =
  | { readonly op: typeof Op.Socket; readonly fd: number }
  | {
    readonly op: typeof Op.Add;
    readonly eid: number;
    readonly peerEid: number;
    readonly allocated: boolean;
    readonly token: Uint8Array;
    readonly addr: Uint8Array;
  }
  | {
    readonly op: typeof Op.Allocated;
    readonly eid: number;
    readonly peerEid: number;
  }
  | { readonly op: typeof Op.Remove; readonly eid: number }
  | { readonly op: typeof Op.Stop }
  | {
    readonly op: typeof Op.Layer;
    /** our address (at most 8 bytes) */
    readonly addr: bigint;
    readonly addrSize: number;
    readonly eidSize: number;
    readonly maxTtl: number;
    /** forward per packet round robin over a destination's flows (ECMP) */
    readonly multipath: boolean;
    /**
     * the layer's congestion avoidance is multi-bit ECN (spec/unicast.md
     * 2.7.4): mark the DT packets written on N-1 flows, answer with
     * FLOW_UPDATEs
     */
    readonly ecn: boolean;
  }
  | {
    readonly op: typeof Op.N1Add;
    /** the N-1 flow's id, chosen by the control thread (u32) */
    readonly id: number;
    /** its connection to the lower IPCP; the data path's from now on */
    readonly fd: number;
  }
  | { readonly op: typeof Op.N1Dt; readonly id: number; readonly qc: number }
  | { readonly op: typeof Op.N1Remove; readonly id: number }
  /** + bytes: the packet */
  | { readonly op: typeof Op.N1Write; readonly id: number }
  /** + bytes: the forwarding tables */
  | { readonly op: typeof Op.Tables };

// Record layout: [0] op; [4..8) eid or fd; [8..12) peer eid; [12] allocated;
// [13] address length; [16..32) token; [32..60) address. LAYER: [4] addr
// size, [5] eid size, [6] max TTL, [7] multipath, [3] mb-ecn (0/1),
// [8..16) our address (big-endian u64).
// The N-1 flows' (all big-endian): [4..8) the flow's id (u32); N1_ADD
// [8..12) fd (i32); N1_DT [12] qc; N1_WRITE and TABLES [8..12) the length
// of the bytes that follow (u32; TABLES has no id).
const OFF_A = 4;
const OFF_B = 8;
const OFF_FLAG = 12;
const OFF_QC = 12;
const OFF_BYTES = 8;
const OFF_ALEN = 13;
const OFF_TOKEN = 16;
const OFF_ADDR = 32;

if (OFF_ADDR + MAX_ADDR_BYTES > RECORD_BYTES) {
  throw new Error("a data-path record does not fit its ring slot");
}

/**
 * Writes a command into a zeroed record at `at`; `bytes`: the length of the
 * bytes that follow it, for a command that has them.
 */
export function encodeCommand(
  v: DataView,
  at: number,
  c: DpCommand,
  bytes = 0,
): void {
  v.setUint8(at, c.op);
  if (bytes !== 0 && !hasBytes(c.op)) {
    throw new RangeError(`op ${c.op} carries no bytes`);
  }
  switch (c.op) {
    case Op.Socket:
      v.setInt32(at + OFF_A, c.fd);
      return;
    case Op.Add: {
      if (c.token.length !== TOKEN_LEN) {
        throw new RangeError(`token of ${c.token.length} bytes`);
      }
      if (c.addr.length > MAX_ADDR_BYTES) {
        throw new RangeError(`peer address of ${c.addr.length} bytes`);
      }
      v.setUint32(at + OFF_A, c.eid);
      v.setUint32(at + OFF_B, c.peerEid);
      v.setUint8(at + OFF_FLAG, c.allocated ? 1 : 0);
      v.setUint8(at + OFF_ALEN, c.addr.length);
      const bytes = new Uint8Array(v.buffer, v.byteOffset + at, RECORD_BYTES);
      bytes.set(c.token, OFF_TOKEN);
      bytes.set(c.addr, OFF_ADDR);
      return;
    }
    case Op.Allocated:
      v.setUint32(at + OFF_A, c.eid);
      v.setUint32(at + OFF_B, c.peerEid);
      return;
    case Op.Remove:
      v.setUint32(at + OFF_A, c.eid);
      return;
    case Op.Stop:
      return;
    case Op.Layer:
      v.setUint8(at + 4, c.addrSize);
      v.setUint8(at + 5, c.eidSize);
      v.setUint8(at + 6, c.maxTtl);
      v.setUint8(at + 7, c.multipath ? 1 : 0);
      v.setUint8(at + 3, c.ecn ? 1 : 0);
      v.setBigUint64(at + 8, c.addr);
      return;
    case Op.N1Add:
      v.setUint32(at + OFF_A, c.id);
      v.setInt32(at + OFF_B, c.fd);
      return;
    case Op.N1Dt:
      v.setUint32(at + OFF_A, c.id);
      v.setUint8(at + OFF_QC, c.qc);
      return;
    case Op.N1Remove:
      v.setUint32(at + OFF_A, c.id);
      return;
    case Op.N1Write:
      v.setUint32(at + OFF_A, c.id);
      v.setUint32(at + OFF_BYTES, bytes);
      return;
    case Op.Tables:
      v.setUint32(at + OFF_BYTES, bytes);
      return;
  }
}

/** The length of the bytes that follow the record at `at` (0: none). */
export function bytesAfter(v: DataView, at: number): number {
  return hasBytes(v.getUint8(at)) ? v.getUint32(at + OFF_BYTES) : 0;
}

/** Reads the record at `at`; undefined for an unknown op. */
export function decodeCommand(v: DataView, at: number): DpCommand | undefined {
  const op = v.getUint8(at);
  switch (op) {
    case Op.Socket:
      return { op, fd: v.getInt32(at + OFF_A) };
    case Op.Add: {
      const bytes = new Uint8Array(v.buffer, v.byteOffset + at, RECORD_BYTES);
      const alen = Math.min(v.getUint8(at + OFF_ALEN), MAX_ADDR_BYTES);
      return {
        op,
        eid: v.getUint32(at + OFF_A),
        peerEid: v.getUint32(at + OFF_B),
        allocated: v.getUint8(at + OFF_FLAG) !== 0,
        token: bytes.slice(OFF_TOKEN, OFF_TOKEN + TOKEN_LEN),
        addr: bytes.slice(OFF_ADDR, OFF_ADDR + alen),
      };
    }
    case Op.Allocated:
      return {
        op,
        eid: v.getUint32(at + OFF_A),
        peerEid: v.getUint32(at + OFF_B),
      };
    case Op.Remove:
      return { op, eid: v.getUint32(at + OFF_A) };
    case Op.Stop:
      return { op };
    case Op.Layer:
      return {
        op,
        addrSize: v.getUint8(at + 4),
        eidSize: v.getUint8(at + 5),
        maxTtl: v.getUint8(at + 6),
        multipath: v.getUint8(at + 7) !== 0,
        ecn: v.getUint8(at + 3) !== 0,
        addr: v.getBigUint64(at + 8),
      };
    case Op.N1Add:
      return { op, id: v.getUint32(at + OFF_A), fd: v.getInt32(at + OFF_B) };
    case Op.N1Dt:
      return { op, id: v.getUint32(at + OFF_A), qc: v.getUint8(at + OFF_QC) };
    case Op.N1Remove:
    case Op.N1Write:
      return { op, id: v.getUint32(at + OFF_A) };
    case Op.Tables:
      return { op };
    default:
      return undefined;
  }
}

/**
 * The reading side's commands: the ring's records, one at a time, made
 * into commands again, with the bytes of those that carry them put back
 * together from the raw records that follow.
 */
export class CommandReader {
  #c: DpCommand | undefined;
  #bytes: Uint8Array | undefined;
  #have = 0;

  /**
   * One record of the ring (valid only during the call): `take` gets each
   * whole command, in order, with its bytes (empty for a command that has
   * none; its own copy). Unknown ops are skipped.
   */
  record(
    v: DataView,
    at: number,
    take: (c: DpCommand, bytes: Uint8Array) => void,
  ): void {
    const bytes = this.#bytes;
    if (bytes !== undefined) {
      const n = Math.min(RECORD_BYTES, bytes.length - this.#have);
      bytes.set(
        new Uint8Array(v.buffer, v.byteOffset + at, n),
        this.#have,
      );
      this.#have += n;
      if (this.#have < bytes.length) return;
      const c = this.#c!;
      this.#c = this.#bytes = undefined;
      take(c, bytes);
      return;
    }
    const c = decodeCommand(v, at);
    const len = bytesAfter(v, at);
    if (len > 0 && c !== undefined) {
      this.#c = c;
      this.#bytes = new Uint8Array(len);
      this.#have = 0;
      return;
    }
    if (c !== undefined) take(c, EMPTY);
  }
}

const EMPTY = new Uint8Array(0);

/** Counters of the data path, as indices into its shared Float64Array. */
export const DpCounter = {
  /** Datagrams shorter than an endpoint id. */
  Short: 0,
  /** Management frames shorter than their header. */
  BadMgmt: 1,
  UnknownEid: 2,
  WrongSource: 3,
  /** Packets for an application that did not take them in time. */
  SlowReader: 4,
  /** Datagrams longer than the layer's largest. */
  Oversized: 5,
  /** Management frames dropped while the control thread was behind. */
  MgmtOverflow: 6,
  /** Data packets delivered to applications. */
  RxPackets: 7,
  /** Data packets sent to peers. */
  TxPackets: 8,
  /** Datagrams the socket refused to send (other than "would block"). */
  TxErrors: 9,
  /** Times the data path woke up (epoll_wait returned). */
  Wakeups: 10,
  /** DT packets for an address this node has no route to (unicast). */
  NoRoute: 11,
  /** DT packets not for this node that arrived with TTL 0 or 1 (unicast). */
  TtlExpired: 12,
  /**
   * Data packets dropped because an N-1 flow's queue was full: the lower
   * layer did not take them fast enough (unicast).
   */
  N1Dropped: 13,
} as const;
export const DP_COUNTERS = 14;

/** Int32 indices of the shared control words (after the counters). */
export const DpWord = {
  /**
   * Management frames (and packets of "n1" events) the control thread has
   * taken (it adds to this).
   */
  MgmtTaken: 0,
} as const;
const DP_WORDS = 2;

/** The shared memory of the counters and control words. */
export function counterBuffer(): SharedArrayBuffer {
  return new SharedArrayBuffer(DP_COUNTERS * 8 + DP_WORDS * 4);
}

export function counterView(buf: SharedArrayBuffer): Float64Array {
  return new Float64Array(buf, 0, DP_COUNTERS);
}

export function wordView(buf: SharedArrayBuffer): Int32Array {
  return new Int32Array(buf, DP_COUNTERS * 8, DP_WORDS);
}

/** The data paths there are. */
export type DpKind = "udp" | "local" | "unicast";

/** What the data path is started with (postMessage, before it blocks). */
export interface DpInit {
  /** Which data path runs: the UDP, the local or the unicast IPCP's. */
  readonly kind: DpKind;
  /** The IP family of a UDP layer; undefined for the others. */
  readonly family: 4 | 6 | undefined;
  /** Largest packet an application may send or receive. */
  readonly mtu: number;
  /** The listening Unix socket applications attach their flows on. */
  readonly listenFd: number;
  /** The eventfd that wakes the data path. */
  readonly wakeFd: number;
  readonly ring: SharedArrayBuffer;
  readonly counters: SharedArrayBuffer;
  /** Management frames in flight to the control thread, at most. */
  readonly mgmtBacklog: number;
  /** Bytes queued towards a slow application before packets are dropped. */
  readonly appQueueBytes: number;
  /** Packets kept for a flow whose application has not attached yet. */
  readonly preAttachQueue: number;
  /** How long an application may take to send its attach frame (ms). */
  readonly helloMs: number;
  /** The wait before accepting again after accept failed (ms). */
  readonly acceptRetryMs: number;
}

export interface MgmtFrame {
  readonly data: Uint8Array;
  readonly host: string;
  readonly port: number;
}

export type LogLevel = "debug" | "info" | "warn" | "error";

export type DpEvent =
  /**
   * The Worker listens for its DpInit: sent only then, since a message
   * that arrives before a Worker's module has set onmessage is lost.
   */
  | { readonly t: "listening" }
  /** Running, in thread `tid`. */
  | { readonly t: "ready"; readonly tid: number }
  | { readonly t: "mgmt"; readonly frames: MgmtFrame[] }
  /**
   * Packets of N-1 flow `id`, in order: all it read while in control mode,
   * or the DT packets (header and all) for this member's components once
   * it carries DT. Bounded as "mgmt" is (DpInit.mgmtBacklog, MgmtTaken).
   */
  | { readonly t: "n1"; readonly id: number; readonly sdus: Uint8Array[] }
  /** N-1 flow `id` ended (the data path closed it); not after N1_REMOVE. */
  | { readonly t: "n1Down"; readonly id: number; readonly reason: string }
  | { readonly t: "attached"; readonly eid: number }
  | { readonly t: "detached"; readonly eid: number; readonly reason: string }
  /** [eid, last receive, last send] triples (Date.now() times). */
  | { readonly t: "activity"; readonly flows: Float64Array }
  | { readonly t: "log"; readonly level: LogLevel; readonly text: string }
  | { readonly t: "acceptFailed"; readonly error: string }
  | { readonly t: "acceptResumed"; readonly failures: number }
  | { readonly t: "stopped" }
  | { readonly t: "fatal"; readonly error: string };

const EVENT_TYPES = new Set([
  "listening",
  "ready",
  "mgmt",
  "n1",
  "n1Down",
  "attached",
  "detached",
  "activity",
  "log",
  "acceptFailed",
  "acceptResumed",
  "stopped",
  "fatal",
]);

/** A cheap check that a message is one of ours (both ends are this code). */
export function isDpEvent(x: unknown): x is DpEvent {
  return typeof x === "object" && x !== null &&
    EVENT_TYPES.has(String((x as { t?: unknown }).t));
}

function isObj(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null;
}

export function isDpInit(x: unknown): x is DpInit {
  if (!isObj(x)) return false;
  const kindOk = x.kind === "udp"
    ? x.family === 4 || x.family === 6
    : (x.kind === "local" || x.kind === "unicast") && x.family === undefined;
  return kindOk && typeof x.mtu === "number" &&
    typeof x.listenFd === "number" &&
    typeof x.wakeFd === "number" && x.ring instanceof SharedArrayBuffer &&
    x.counters instanceof SharedArrayBuffer &&
    typeof x.mgmtBacklog === "number" &&
    typeof x.appQueueBytes === "number" &&
    typeof x.preAttachQueue === "number" && typeof x.helloMs === "number" &&
    typeof x.acceptRetryMs === "number";
}
