/**
 * FRCT, the end-to-end protocol of one flow end, wire-compatible with
 * Ouroboros 0.23.0 (spec/frct.md), as a pure state machine: no sockets, no
 * timers, no clock. Every call takes the current time `now` in milliseconds
 * (monotonic, may be fractional).
 *
 * What runs is chosen by the flow's QoS (spec 1):
 * - `inOrder == 0`: raw flow, no FRCT header; `ber == 0` adds the CRC.
 * - `inOrder != 0, loss == 0`: reliable FRCT (ordering, cumulative ACKs that
 *   mean "consumed by the application", retransmission, flow control with
 *   rendez-vous, linger at close).
 * - `inOrder != 0, loss != 0`: partially reliable FRCT (in order, late
 *   packets dropped, no waiting for gaps, no retransmission; the window is
 *   advisory: our writer never blocks on it, our reader never drops on it).
 * - `ber == 0`: a CRC-32 trailer on every non-empty packet we send (data,
 *   retransmissions and control packets alike), checked on every non-empty
 *   packet we receive.
 * - `timeout` (ms, 0 = off): keepalive after timeout/4 without an application
 *   send, flow down after `timeout` without receiving anything.
 *
 * API:
 *
 *     const f = new FlowEnd({ qos, mplMs, now, random });
 *     f.write(payload, now)  // "ok" | "window_closed" | "down" | "closed"
 *     f.receive(packet, now) // a packet from the IPCP (the bytes after the eid)
 *     f.read(now)            // next payload for the application, or null
 *     f.tick(now)            // run the timers due at or before now
 *     f.close(now)           // deallocation: linger (reliable) or close
 *     f.takeOutput()         // packets for the IPCP (without eid), drained
 *     f.nextDeadline()       // when tick must next run, or null
 *     f.state, f.downReason, f.canWrite, f.readable, f.stats
 *
 * - `random()` returns an unsigned 32-bit integer; it draws the initial
 *   sequence number once, at construction.
 * - `write` copies the payload once into the packet it builds; a
 *   "window_closed" write sent nothing and may be retried once `canWrite` is
 *   true again (after a `receive`). A zero-length write leaves as an empty
 *   packet (no header, no CRC) and is never delivered: the peer sees a
 *   keepalive.
 * - `read` returns a view into the packet given to `receive` (no copy): the
 *   caller must not reuse that packet's buffer.
 * - Packets from `takeOutput` must be treated as read-only: the flow keeps
 *   the data packets it sent for retransmission. `takeOutput` also flushes a
 *   pending acknowledgement, so a batch of reads costs one ACK.
 * - `close` discards unread data; a reliable flow with unacknowledged data
 *   then lingers (state "lingering", retransmitting) until everything is
 *   acknowledged ("closed") or the flow goes down ("down").
 * - Down: `downReason` is "peer_timeout" (nothing received for `timeout` ms)
 *   or "retransmission_limit" (a packet unacknowledged for `rtxLimitMs`,
 *   at most 120 s). Data already in order in the receive queue can still be
 *   read; writes return "down"; nothing more is sent.
 * - Also: `outstanding`, `queued`, `nextSeqno`, `snapshot()` (sequence
 *   state, for tests and diagnostics).
 *
 * Choices within the interop rules (spec 10, I1-I7), where C 0.23 differs:
 * - Acknowledgement (reliable): ackno = next packet not yet read; a pure
 *   ACK (ACK|FC|DRF) leaves as soon as a read moved it, one per batch (at
 *   the next takeOutput or tick), and once per batch of duplicates; no
 *   delayed-ACK wheel, no 5 ms suppression. A gap is signalled as a
 *   duplicate ACK (the same pure ACK again): when data arrives beyond a gap
 *   whose start the last ACK told; at the next flush after reads stopped at
 *   a gap with data beyond it (a full window sends nothing more that would
 *   make the ACK repeat), unless the gap filled meanwhile; and at once,
 *   twice, when reads went past a signalled gap up to the next one. A C
 *   sender ignores ACKs that do not move its edge.
 * - Retransmission: one timer, for the oldest unacknowledged packet,
 *   restarted when the edge moves; at a timeout only that packet is copied
 *   (twice if its copy was lost too) and a recovery starts. Evidence of a
 *   loss copies sooner: a duplicate ACK (a pure ACK repeating snd.lwe)
 *   copies the packet at snd.lwe at once; during a recovery, an ACK that
 *   leaves the edge at a packet not yet copied copies it if no further ACK
 *   moves the edge within a quarter of srtt (an ACK stream that goes on is
 *   no loss: the originals were late, or the peer acknowledges as it
 *   reads); when the ACKs stop right after our copies, the whole window
 *   after them was lost (before the peer's run started): two copies per
 *   packet acknowledged, and from there on at once. Never a copy of a
 *   packet copied less than an rto ago on such a sign (the duplicate ACKs
 *   may come from packets sent before that copy, which waits behind them),
 *   the timer aside. A copy that an ACK covers less than half the smallest
 *   RTT after it left was needless: the duplicate ACK its arrival causes
 *   is ignored. On a path that lost more than 4% of the last packets, a
 *   copy sent while the window is closed goes twice (nothing follows it
 *   that would show its loss before the timer). The timer waits the rto,
 *   during a recovery at most 4 recent RTTs (min(srtt, 2 x the smallest
 *   sample, which rises slowly towards larger ones)), never below 20 ms
 *   (I6); it doubles per consecutive timeout up to 2 s (or the rto if
 *   longer) and resets on progress. A tick more than 5 ms late waits 1 ms
 *   once, for ACKs the event loop has not handed over yet.
 * - RTT (RFC 6298, Karn): one sample per ACK that moves the edge, from the
 *   latest transmission among the packets it covers; none if one of them
 *   was last sent by the timer without a gap shown (its original may be
 *   what arrived), if they were sent before our last copy and after the
 *   packet it copied (they waited for it at the peer), if the ACK rode on
 *   a peer retransmission, or if under a quarter of the smallest RTT;
 *   estimator of spec 5.1 with FRCT_LINUX_RTT_ESTIMATOR off (srtt += err /
 *   8, mdev += (|err| - mdev) / 4); rto = srtt + 4 mdev in [20 ms, 60 s].
 * - Copies carry the current ackno and window (C keeps the first copy's
 *   rwe, which can move a C sender's edge back).
 * - The sequence never restarts (I1): the sender ignores C's 146 s
 *   inactivity rule; a C receiver takes our next DRF packet as a new run.
 */
import { crc32 } from "../wire/crc32.ts";

// ---------------------------------------------------------------------------
// Wire format (spec 2)

/** Length of the FRCT header. */
export const HEADER_LEN = 12;
/** Length of the CRC-32 trailer. */
export const CRC_LEN = 4;

/** Flag bits (spec 2.2). */
export const FLAG_DATA = 0x01;
export const FLAG_DRF = 0x02;
export const FLAG_ACK = 0x04;
export const FLAG_FC = 0x08;
export const FLAG_RDVS = 0x10;
export const FLAG_FFGM = 0x20;
export const FLAG_MFGM = 0x40;

const FLAG_NAMES: readonly [number, string][] = [
  [FLAG_DATA, "DATA"],
  [FLAG_DRF, "DRF"],
  [FLAG_ACK, "ACK"],
  [FLAG_FC, "FC"],
  [FLAG_RDVS, "RDVS"],
  [FLAG_FFGM, "FFGM"],
  [FLAG_MFGM, "MFGM"],
];

/** "DATA|DRF|ACK|FC" for 0x0f; "" for 0. */
export function flagNames(flags: number): string {
  const names: string[] = [];
  for (const [bit, name] of FLAG_NAMES) if (flags & bit) names.push(name);
  return names.join("|");
}

/** The 12-byte FRCT header, fields as on the wire. */
export interface FrctHeader {
  /** u8 (spec 2.2) */
  flags: number;
  /** low 24 bits of the sender's receive right window edge (valid with FC) */
  rwe: number;
  /** u32 (valid with DATA) */
  seqno: number;
  /** u32, the next seqno the sender of the ACK expects (valid with ACK) */
  ackno: number;
}

/** A value or the reason there is none; decoders never throw. */
export type Decoded<T> = { ok: true; value: T } | { ok: false; error: string };

function u32At(b: Uint8Array, off: number): number {
  return ((b[off]! << 24) | (b[off + 1]! << 16) | (b[off + 2]! << 8) |
    b[off + 3]!) >>> 0;
}

function putU32(b: Uint8Array, off: number, v: number): void {
  b[off] = v >>> 24;
  b[off + 1] = v >>> 16;
  b[off + 2] = v >>> 8;
  b[off + 3] = v;
}

/**
 * Writes a header into the first 12 bytes of `out` (which must hold them).
 * Values are truncated to their field widths.
 */
export function writeHeader(
  out: Uint8Array,
  flags: number,
  rwe: number,
  seqno: number,
  ackno: number,
): void {
  out[0] = flags;
  out[1] = rwe >>> 16;
  out[2] = rwe >>> 8;
  out[3] = rwe;
  putU32(out, 4, seqno);
  putU32(out, 8, ackno);
}

/** Decodes the header at the start of `packet` (a CRC trailer already cut off). */
export function decodeHeader(packet: Uint8Array): Decoded<FrctHeader> {
  if (packet.length < HEADER_LEN) {
    return {
      ok: false,
      error: `short FRCT packet: ${packet.length} < ${HEADER_LEN} bytes`,
    };
  }
  return {
    ok: true,
    value: {
      flags: packet[0]!,
      rwe: ((packet[1]! << 16) | (packet[2]! << 8) | packet[3]!) >>> 0,
      seqno: u32At(packet, 4),
      ackno: u32At(packet, 8),
    },
  };
}

/**
 * Header + payload (+ CRC trailer when `withCrc`) as one new packet. Throws
 * a RangeError for a field outside its range (a programming error).
 */
export function encodePacket(
  h: FrctHeader,
  payload: Uint8Array = new Uint8Array(0),
  withCrc = false,
): Uint8Array {
  checkField("flags", h.flags, 0xff);
  checkField("rwe", h.rwe, 0xffffff);
  checkField("seqno", h.seqno, 0xffffffff);
  checkField("ackno", h.ackno, 0xffffffff);
  const body = HEADER_LEN + payload.length;
  const out = new Uint8Array(body + (withCrc ? CRC_LEN : 0));
  writeHeader(out, h.flags, h.rwe, h.seqno, h.ackno);
  out.set(payload, HEADER_LEN);
  if (withCrc) putCrc(out, body);
  return out;
}

function checkField(name: string, v: number, max: number): void {
  if (!Number.isInteger(v) || v < 0 || v > max) {
    throw new RangeError(`FRCT ${name} out of range: ${v}`);
  }
}

/** CRC-32 (IEEE 802.3 / zlib) of `bytes`. */
export function crcOf(bytes: Uint8Array): number {
  return crc32(bytes);
}

/** Writes the CRC of `b[0..len)` big-endian at `b[len..len+4)`. */
function putCrc(b: Uint8Array, len: number): void {
  putU32(b, len, crc32(b.subarray(0, len)));
}

/** `body` followed by its CRC-32 trailer, as a new array. */
export function appendCrc(body: Uint8Array): Uint8Array {
  const out = new Uint8Array(body.length + CRC_LEN);
  out.set(body);
  putCrc(out, body.length);
  return out;
}

/** Checks and removes the CRC trailer: the body as a view, or why not. */
export function stripCrc(packet: Uint8Array): Decoded<Uint8Array> {
  if (packet.length < CRC_LEN) {
    return { ok: false, error: `short packet: ${packet.length} < 4 bytes` };
  }
  const n = packet.length - CRC_LEN;
  const body = packet.subarray(0, n);
  if (crc32(body) >>> 0 !== u32At(packet, n)) {
    return { ok: false, error: "bad CRC" };
  }
  return { ok: true, value: body };
}

/** Header and payload of a non-empty FRCT packet (CRC checked when `withCrc`). */
export function decodePacket(
  packet: Uint8Array,
  withCrc: boolean,
): Decoded<{ header: FrctHeader; payload: Uint8Array }> {
  let body = packet;
  if (withCrc) {
    const s = stripCrc(packet);
    if (!s.ok) return s;
    body = s.value;
  }
  const h = decodeHeader(body);
  if (!h.ok) return h;
  return {
    ok: true,
    value: { header: h.value, payload: body.subarray(HEADER_LEN) },
  };
}

/**
 * Bytes FRCT adds to each non-empty packet of a flow with this QoS (header
 * and CRC trailer), for callers that bound write sizes to the IPCP's limit.
 */
export function frctOverhead(qos: FrctQos): number {
  return (qos.inOrder !== 0 ? HEADER_LEN : 0) + (qos.ber === 0 ? CRC_LEN : 0);
}

// ---------------------------------------------------------------------------
// Sequence numbers (u32, compared modulo 2^32)

/** `a` before `b` modulo 2^32. */
export function seqBefore(a: number, b: number): boolean {
  return ((a - b) | 0) < 0;
}

/** `a` after `b` modulo 2^32. */
export function seqAfter(a: number, b: number): boolean {
  return ((a - b) | 0) > 0;
}

/**
 * The 32-bit edge nearest to `current` whose low 24 bits are `rwe24`: both
 * wrap directions (an edge just past a 2^24 boundary, and an old one just
 * below it).
 */
export function rebuildEdge(rwe24: number, current: number): number {
  const d = ((rwe24 - current) << 8) >> 8; // signed 24-bit distance
  return (current + d) >>> 0;
}

// ---------------------------------------------------------------------------
// Constants (spec 3.1, 5, 6, 7; interop rules I1-I7)

/** Reorder queue and largest send window, in packets. */
const RQ_SIZE = 256;
const RQ_MASK = RQ_SIZE - 1;
/** Send window before the peer's first FC. */
const START_WINDOW = 64;
/** Delta-t: max time to ACK and to keep retransmitting (ms). */
const DELTA_T_ACK = 10_000;
const DELTA_T_RTX = 120_000;
const RTO_INIT = 1000;
const MDEV_INIT = 10;
/** I6: our retransmission timer never goes below this. */
const RTO_MIN = 20;
/** Largest wait between two copies of a packet. */
const RTO_MAX = 60_000;
/** Backoff stops doubling the wait here (unless the rto itself is longer). */
const BACKOFF_CAP = 2000;
/** Most recovery copies sent for one ACK. */
const RTX_BURST = 16;
/** A tick this late (ms) after the retransmission timer was due ... */
const LATE_TICK = 5;
/** ... waits this long (ms) for ACKs that arrived meanwhile, once. */
const LATE_GRACE = 1;
/** During a recovery, the ACKs have stopped when none came for this part
 * of the RTT. */
const HOLE_WAIT = 0.25;
/** During a recovery, a copy is taken for lost after this many RTTs. */
const RECOVERY_RTTS = 4;
/** The smallest RTT rises by 1/this of the gap per larger sample. */
const MIN_RTT_RISE = 64;
/** Above this part of packets lost of late, a path is lossy ... */
const LOSSY = 0.04;
/** ... over about this many packets acknowledged. */
const LOSS_WINDOW = 1024;
/** I6: rendez-vous cadence while the window stays closed. */
const RDVS_INTERVAL = 100;
/** I5: FC packet after this many packets consumed (partially reliable). */
const FC_EVERY = 32;
/** ... or when the peer's data comes this close to the advertised edge. */
const FC_NEAR = 64;
/** Receive queue of raw flows (C's per-flow queue). */
const RAW_QUEUE = 1024;

// ---------------------------------------------------------------------------
// The flow end

/** The QoS fields that matter to FRCT, numbers as in a FLOW_REQ. */
export interface FrctQos {
  loss: number;
  ber: number;
  inOrder: number;
  /** ms; 0 disables keepalives and the peer timeout */
  timeout: number;
}

export interface FlowEndOptions {
  qos: FrctQos;
  /** maximum packet lifetime of the layer (IPCP), ms: sets the receiver's
   * inactivity period (spec 3.1) */
  mplMs: number;
  /** creation time, ms */
  now: number;
  /** unsigned 32-bit random numbers (the initial sequence number) */
  random: () => number;
  /** give up retransmitting a packet after this long (ms, <= 120000) */
  rtxLimitMs?: number;
}

export type WriteResult = "ok" | "window_closed" | "down" | "closed";
export type FlowState = "open" | "lingering" | "closed" | "down";
export type DownReason = "peer_timeout" | "retransmission_limit";

/** Per-flow counters; packets unless noted. */
export interface FlowStats {
  /** application packets sent (first copies; zero-length writes included) */
  sent: number;
  /** retransmitted copies */
  retransmitted: number;
  /** retransmission timer firings that sent a copy */
  timeouts: number;
  /** copies sent on a sign of a gap (a duplicate or a partial ACK) */
  fastRetransmits: number;
  /** control packets sent (ACK, FC, RDVS, answers, final ACK) */
  controlSent: number;
  /** packets handed to receive() (of every kind) */
  received: number;
  /** payloads handed to the application */
  delivered: number;
  /** data already delivered or already queued */
  duplicates: number;
  /** data that arrived after a higher seqno */
  outOfOrder: number;
  /** failed the CRC check */
  badCrc: number;
  /** too old for the receiver (partially reliable: behind the newest) */
  droppedLate: number;
  /** beyond the receive window */
  droppedWindow: number;
  /** too short for the CRC or the FRCT header */
  droppedShort: number;
  /** data with no run to belong to (not DRF at an inactive receiver) */
  droppedNoRun: number;
  /** receive queue full (raw and partially reliable flows) */
  droppedOverflow: number;
  /** data after close() */
  droppedClosed: number;
  /** smoothed RTT and its mean deviation, ms (0 until the first sample) */
  srtt: number;
  mdev: number;
  /** retransmission timeout, ms (before backoff) */
  rto: number;
  /** times a writer found the window closed (one per closed episode) */
  windowStalls: number;
  /** rendez-vous packets sent */
  rdvsSent: number;
  keepalivesSent: number;
  keepalivesReceived: number;
}

/** See FlowEnd.snapshot(). */
export interface FrctSnapshot {
  /** oldest unacknowledged seqno */
  sndLwe: number;
  /** next seqno to send */
  sndSeqno: number;
  /** the peer's right window edge */
  sndRwe: number;
  /** a receive run was started */
  rcvRun: boolean;
  /** next seqno to hand up (partially reliable: one past the newest) */
  rcvLwe: number;
  /** the edge we advertise */
  rcvRwe: number;
  /** the ackno we last sent */
  ackSent: number;
}

function newStats(): FlowStats {
  return {
    sent: 0,
    retransmitted: 0,
    timeouts: 0,
    fastRetransmits: 0,
    controlSent: 0,
    received: 0,
    delivered: 0,
    duplicates: 0,
    outOfOrder: 0,
    badCrc: 0,
    droppedLate: 0,
    droppedWindow: 0,
    droppedShort: 0,
    droppedNoRun: 0,
    droppedOverflow: 0,
    droppedClosed: 0,
    srtt: 0,
    mdev: 0,
    rto: RTO_INIT,
    windowStalls: 0,
    rdvsSent: 0,
    keepalivesSent: 0,
    keepalivesReceived: 0,
  };
}

const EMPTY = new Uint8Array(0);
const NO_PACKETS: readonly Uint8Array[] = Object.freeze([]);

export class FlowEnd {
  /** live counters */
  readonly stats: FlowStats = newStats();
  private st: FlowState = "open";
  private why: DownReason | null = null;

  readonly frct: boolean;
  readonly reliable: boolean;
  readonly crc: boolean;
  private readonly timeout: number;
  private readonly rcvInact: number;
  private readonly rtxLimit: number;

  /** packets for the IPCP */
  private out: Uint8Array[] = [];

  // sender (spec 3.2, 5): ring of unacknowledged packets, slot = seqno & 255
  private sndLwe: number;
  private sndSeq: number;
  private sndRwe: number;
  private readonly sndBuf: (Uint8Array | undefined)[] = new Array<
    Uint8Array | undefined
  >(RQ_SIZE).fill(undefined);
  /** first transmission (the give-up clock) and last transmission */
  private readonly sndT0 = new Float64Array(RQ_SIZE);
  private readonly sndTx = new Float64Array(RQ_SIZE);
  /** transmissions so far (1: never copied), and whether the last one may
   * be timed (Karn) */
  private readonly sndCount = new Uint8Array(RQ_SIZE);
  private readonly sndTimed = new Uint8Array(RQ_SIZE);
  /** when the oldest unacknowledged packet is next retransmitted */
  private rtxAt = Infinity;
  /** the timer already waited once for ACKs held up by a late tick */
  private rtxGraced = false;
  /** doublings of the timer since the last progress */
  private backoff = 0;
  /** after a loss was seen, until everything sent before it is acknowledged */
  private recovering = false;
  private recoverSeq = 0;
  /** the recovery began with a duplicate ACK (a gap the peer saw) */
  private gapRecovery = false;
  /** ACKs of this recovery stopped right after our copies: what follows
   * them is copied at once */
  private copiesThrough = false;
  /** when the packet at snd.lwe is copied if no ACK moves the edge, and
   * how many copies from there */
  private holeAt = Infinity;
  private holeCopies = 1;
  /** one past the last packet copied during this recovery */
  private rtxFront = 0;
  /** duplicate ACKs until then may answer our needless copies */
  private dupIgnoreUntil = -Infinity;
  /** packets taken for lost and packets acknowledged of late (halved
   * every LOSS_WINDOW acknowledged) */
  private lossSeen = 0;
  private ackedSeen = 0;
  /** when we last sent a copy, and of which packet */
  private lastCopyAt = -Infinity;
  private lastCopySeq = 0;
  private srtt = 0;
  private mdev = MDEV_INIT;
  private rto = RTO_INIT;
  /** the last RTT sample */
  private lastRtt = 0;
  /** the smallest RTT sample, rising slowly (MIN_RTT_RISE) */
  private minRtt = Infinity;
  private stalled = false;
  private rdvsAt = Infinity;
  /** last application write or keepalive */
  private lastAppSend: number;

  // receiver (spec 3.3): reliable flows use rq by seqno & 255; raw and
  // partially reliable flows a FIFO ring (rq/qSeq from qHead, qCount long)
  private run = false;
  /** reliable: next seqno to hand up; partially reliable: one past the
   * newest accepted */
  private rcvLwe = 0;
  /** one past the highest seqno accepted (for the out-of-order count) */
  private rcvHigh = 0;
  private lastDataAt = -Infinity;
  private readonly rq: (Uint8Array | undefined)[];
  private rqCount = 0;
  private readonly qSeq: Uint32Array;
  private qHead = 0;
  private qCount = 0;
  /** the ackno we last sent */
  private ackSent = 0;
  /** a pure ACK is wanted (since this time) */
  private ackAt = Infinity;
  /** ... even if ackno did not move (answer to a duplicate) */
  private ackForced = false;
  /** ... even if ackno did not move, if a gap is still open at flush: data
   * arrived beyond the packet whose absence we already acknowledged */
  private gapAck = false;
  /** our last ACK showed the sender a gap (it came twice) */
  private gapSignalled = false;
  /** the latest time given to any call */
  private clock: number;
  /** partially reliable: an FC packet is wanted */
  private fcAt = Infinity;
  private consumedSinceFc = 0;
  /** the edge we last advertised */
  private advRwe = 0;
  /** last packet of any kind received */
  private lastRecv: number;

  constructor(opts: FlowEndOptions) {
    const { qos } = opts;
    this.frct = qos.inOrder !== 0;
    this.reliable = this.frct && qos.loss === 0;
    this.crc = qos.ber === 0;
    this.timeout = qos.timeout;
    // 3.1: floor((2 mpl + a + r) / 1 s) + 1 s
    this.rcvInact =
      (Math.floor((2 * opts.mplMs + DELTA_T_ACK + DELTA_T_RTX) / 1000) + 1) *
      1000;
    this.rtxLimit = Math.min(opts.rtxLimitMs ?? DELTA_T_RTX, DELTA_T_RTX);
    // I1: random ISN once; the sequence stays contiguous for the flow's life
    const isn = this.frct ? opts.random() >>> 0 : 0;
    this.sndLwe = isn;
    this.sndSeq = isn;
    this.sndRwe = (isn + START_WINDOW) >>> 0;
    this.lastAppSend = opts.now;
    this.lastRecv = opts.now;
    this.clock = opts.now;
    const cap = this.frct ? RQ_SIZE : RAW_QUEUE;
    this.rq = new Array<Uint8Array | undefined>(cap).fill(undefined);
    this.qSeq = new Uint32Array(this.reliable ? 0 : cap);
  }

  // ---- queries ------------------------------------------------------------

  /** "open", "lingering" (closed by the application, still retransmitting),
   * "closed", or "down" (see downReason) */
  get state(): FlowState {
    return this.st;
  }

  /** Why the flow went down; null while it has not. */
  get downReason(): DownReason | null {
    return this.why;
  }

  /** A write now would not be refused for the window. */
  get canWrite(): boolean {
    return this.st === "open" && (!this.reliable || this.windowOpen());
  }

  /** read() would return a payload. */
  get readable(): boolean {
    if (this.st === "closed" || this.st === "lingering") return false;
    if (this.reliable) return this.rq[this.rcvLwe & RQ_MASK] !== undefined;
    return this.qCount > 0;
  }

  /** Unacknowledged packets held for retransmission. */
  get outstanding(): number {
    return this.reliable ? (this.sndSeq - this.sndLwe) >>> 0 : 0;
  }

  /** Packets received and not yet read. */
  get queued(): number {
    return this.reliable ? this.rqCount : this.qCount;
  }

  /** Next seqno we send (FRCT flows). */
  get nextSeqno(): number {
    return this.sndSeq;
  }

  /** The sequence-number state (spec 3.1), for tests and diagnostics. */
  snapshot(): FrctSnapshot {
    return {
      sndLwe: this.sndLwe,
      sndSeqno: this.sndSeq,
      sndRwe: this.sndRwe,
      rcvRun: this.run,
      rcvLwe: this.rcvLwe,
      rcvRwe: this.rcvEdge(),
      ackSent: this.ackSent,
    };
  }

  /** When tick() must run next; null when no timer is left. */
  nextDeadline(): number | null {
    if (this.st === "closed" || this.st === "down") return null;
    let d = this.rtxAt;
    if (this.holeAt < d) d = this.holeAt;
    if (this.ackAt < d) d = this.ackAt;
    if (this.fcAt < d) d = this.fcAt;
    if (this.stalled && this.rdvsAt < d) d = this.rdvsAt;
    if (this.timeout > 0) {
      const peer = this.lastRecv + this.timeout;
      if (peer < d) d = peer;
      const ka = this.lastAppSend + this.timeout / 4;
      if (ka < d) d = ka;
    }
    return d === Infinity ? null : d;
  }

  /** Drains the packets to send (without eid), after flushing a due ACK. */
  takeOutput(): readonly Uint8Array[] {
    if (this.ackAt !== Infinity || this.fcAt !== Infinity) this.flushControl();
    const o = this.out;
    if (o.length === 0) return NO_PACKETS;
    this.out = [];
    return o;
  }

  // ---- application side ---------------------------------------------------

  write(payload: Uint8Array, now: number): WriteResult {
    this.clock = now;
    if (this.st === "down") return "down";
    if (this.st !== "open") return "closed";
    const n = payload.length;
    if (n === 0) {
      // an empty packet: the peer takes it for a keepalive (spec 2.3)
      this.out.push(EMPTY);
      this.lastAppSend = now;
      this.stats.sent++;
      return "ok";
    }
    if (!this.frct) {
      const len = n + (this.crc ? CRC_LEN : 0);
      const buf = new Uint8Array(len);
      buf.set(payload);
      if (this.crc) putCrc(buf, n);
      this.out.push(buf);
      this.lastAppSend = now;
      this.stats.sent++;
      return "ok";
    }
    if (this.reliable && !this.windowOpen()) {
      if (!this.stalled) {
        this.stalled = true;
        this.rdvsAt = now + RDVS_INTERVAL;
        this.stats.windowStalls++;
      }
      return "window_closed";
    }
    const seqno = this.sndSeq;
    // I2: DRF iff nothing is unacknowledged
    let flags = FLAG_DATA;
    if (seqno === this.sndLwe) flags |= FLAG_DRF;
    let rwe = 0;
    let ackno = 0;
    if (this.runActive(now)) {
      flags |= FLAG_FC;
      rwe = this.rcvEdge();
      this.advRwe = rwe;
      this.consumedSinceFc = 0;
      if (this.reliable) {
        flags |= FLAG_ACK;
        ackno = this.rcvLwe;
        this.ackSent = ackno;
        // a gap signal must be a pure ACK: the peer does not count data
        if (!this.gapAck) this.ackAt = Infinity;
        this.ackForced = false;
      }
    }
    const body = HEADER_LEN + n;
    const buf = new Uint8Array(body + (this.crc ? CRC_LEN : 0));
    writeHeader(buf, flags, rwe, seqno, ackno);
    buf.set(payload, HEADER_LEN);
    if (this.crc) putCrc(buf, body);
    this.out.push(buf);
    this.sndSeq = (seqno + 1) >>> 0;
    this.lastAppSend = now;
    this.stats.sent++;
    if (this.reliable) {
      const slot = seqno & RQ_MASK;
      this.sndBuf[slot] = buf;
      this.sndT0[slot] = now;
      this.sndTx[slot] = now;
      this.sndCount[slot] = 1;
      this.sndTimed[slot] = 1;
      if (this.rtxAt === Infinity) {
        this.rtxAt = now + this.rto;
        this.rtxGraced = false;
      }
    } else {
      // partially reliable: nothing is kept, so every packet is DRF
      this.sndLwe = this.sndSeq;
    }
    return "ok";
  }

  read(now: number): Uint8Array | null {
    this.clock = now;
    const st = this.st;
    if (st === "closed" || st === "lingering") return null;
    if (this.reliable) {
      const slot = this.rcvLwe & RQ_MASK;
      const p = this.rq[slot];
      if (p === undefined) return null;
      this.rq[slot] = undefined;
      this.rqCount--;
      this.rcvLwe = (this.rcvLwe + 1) >>> 0;
      this.stats.delivered++;
      // I5: ACK promptly; ACK = consumed (spec 4)
      if (this.ackAt === Infinity && st === "open") this.ackAt = now;
      return p;
    }
    if (this.qCount === 0) return null;
    const h = this.qHead;
    const p = this.rq[h]!;
    this.rq[h] = undefined;
    this.qHead = (h + 1) % this.rq.length;
    this.qCount--;
    this.stats.delivered++;
    if (this.frct && ++this.consumedSinceFc >= FC_EVERY && st === "open") {
      if (this.fcAt === Infinity) this.fcAt = now;
    }
    return p;
  }

  /** Deallocation (spec 9): final ACK if one is due, then linger or close. */
  close(now: number): void {
    this.clock = now;
    if (this.st !== "open") return;
    this.dropUnread();
    this.stalled = false;
    this.rdvsAt = Infinity;
    this.fcAt = Infinity;
    this.ackAt = Infinity;
    this.ackForced = false;
    this.gapAck = false;
    if (this.reliable && this.run && this.rcvLwe !== this.ackSent) {
      this.sendAck(false);
    }
    if (this.reliable && this.sndLwe !== this.sndSeq) {
      this.st = "lingering";
      if (this.rtxAt === Infinity) this.rtxAt = now + this.rto;
    } else {
      this.finish();
    }
  }

  // ---- network side -------------------------------------------------------

  receive(packet: Uint8Array, now: number): void {
    this.clock = now;
    const st = this.st;
    if (st === "closed" || st === "down") return;
    const stats = this.stats;
    stats.received++;
    this.lastRecv = now; // liveness: any packet counts (spec 7)
    let len = packet.length;
    if (len === 0) {
      stats.keepalivesReceived++;
      return;
    }
    if (this.crc) {
      if (len < CRC_LEN) {
        stats.droppedShort++;
        return;
      }
      len -= CRC_LEN;
      if (crc32(packet.subarray(0, len)) >>> 0 !== u32At(packet, len)) {
        stats.badCrc++;
        return;
      }
    }
    if (!this.frct) {
      if (len === 0) {
        stats.droppedShort++;
        return;
      }
      if (st !== "open") {
        stats.droppedClosed++;
        return;
      }
      this.enqueue(len === packet.length ? packet : packet.subarray(0, len), 0);
      return;
    }
    if (len < HEADER_LEN) {
      stats.droppedShort++;
      return;
    }
    const flags = packet[0]!;
    const seqno = u32At(packet, 4);
    // I4: only DRF starts a run, and only at an inactive receiver
    if ((flags & FLAG_DRF) !== 0 && !this.runActive(now)) {
      this.startRun(seqno, now);
    }
    if ((flags & FLAG_RDVS) !== 0) {
      // answer with our window; nothing else in the packet counts (spec 2.2)
      if (st === "open" && this.run) this.sendFc();
      return;
    }
    if ((flags & FLAG_ACK) !== 0 && this.reliable) {
      const ackno = u32At(packet, 8);
      // I4: only (snd.lwe, snd.seqno] moves the edge (bug 10.3)
      if (seqAfter(ackno, this.sndLwe) && !seqAfter(ackno, this.sndSeq)) {
        this.onAck(ackno, now, !this.isOldData(flags, seqno, now));
        if (this.st !== "open" && this.st !== "lingering") return;
      } else if (
        ackno === this.sndLwe && (flags & FLAG_DATA) === 0 &&
        this.sndLwe !== this.sndSeq
      ) {
        this.onDupAck(now);
      }
    }
    if ((flags & FLAG_FC) !== 0) {
      const rwe24 = (packet[1]! << 16) | (packet[2]! << 8) | packet[3]!;
      const edge = rebuildEdge(rwe24, this.sndRwe);
      // I4: the edge never moves back (bug 10.4)
      if (seqAfter(edge, this.sndRwe)) {
        this.sndRwe = edge;
        if (this.stalled && this.windowOpen()) this.unstall();
      }
    }
    if ((flags & FLAG_DATA) === 0) return;
    if (!this.runActive(now)) {
      stats.droppedNoRun++;
      return;
    }
    this.lastDataAt = now; // I4: only DATA keeps the run alive
    const payload = packet.subarray(HEADER_LEN, len);
    if (this.reliable) this.receiveReliable(seqno, payload, now);
    else this.receivePartial(seqno, payload, now);
  }

  /** Runs the timers due at or before `now`. */
  tick(now: number): void {
    this.clock = now;
    const st = this.st;
    if (st === "closed" || st === "down") return;
    const t = this.timeout;
    if (t > 0 && now >= this.lastRecv + t) {
      this.goDown("peer_timeout");
      return;
    }
    if (this.rtxAt <= now) {
      if (!this.rtxGraced && now - this.rtxAt > LATE_TICK) {
        // Called late: the event loop was held up, and ACKs that arrived
        // meanwhile may not have been handed to receive() yet. Let them
        // be, once, before taking the head for lost.
        this.rtxGraced = true;
        this.rtxAt = now + LATE_GRACE;
      } else {
        this.onRtxTimer(now);
        if (this.st === "down") return;
      }
    }
    if (this.holeAt <= now) this.copyHole(now);
    if (this.stalled && this.rdvsAt <= now) {
      this.sendControl(FLAG_RDVS, 0, 0);
      this.stats.rdvsSent++;
      this.rdvsAt += RDVS_INTERVAL;
      if (this.rdvsAt <= now) this.rdvsAt = now + RDVS_INTERVAL;
    }
    if (this.ackAt <= now || this.fcAt <= now) this.flushControl();
    if (t > 0 && now >= this.lastAppSend + t / 4) {
      this.out.push(EMPTY);
      this.lastAppSend = now;
      this.stats.keepalivesSent++;
    }
  }

  // ---- internals: receiver ------------------------------------------------

  /** DATA we already hold or handed up: a copy resent by the peer. */
  private isOldData(flags: number, seqno: number, now: number): boolean {
    if ((flags & FLAG_DATA) === 0 || !this.runActive(now)) return false;
    if (seqBefore(seqno, this.rcvLwe)) return true;
    return this.reliable && ((seqno - this.rcvLwe) >>> 0) < RQ_SIZE &&
      this.rq[seqno & RQ_MASK] !== undefined;
  }

  private runActive(now: number): boolean {
    return this.run && now - this.lastDataAt <= this.rcvInact;
  }

  private startRun(seqno: number, now: number): void {
    if (this.reliable && this.rqCount > 0) {
      this.stats.droppedNoRun += this.rqCount;
      this.rq.fill(undefined);
      this.rqCount = 0;
    }
    this.run = true;
    this.rcvLwe = seqno;
    this.rcvHigh = seqno;
    this.lastDataAt = now;
    this.ackSent = seqno;
    this.ackAt = Infinity;
    this.ackForced = false;
    this.gapAck = false;
    // what a peer assumes before our first FC
    this.advRwe = (seqno + START_WINDOW) >>> 0;
    this.consumedSinceFc = 0;
  }

  /** The edge we advertise: 256 past the next packet to hand up. */
  private rcvEdge(): number {
    if (this.reliable || this.qCount === 0) {
      return (this.rcvLwe + RQ_SIZE) >>> 0;
    }
    return (this.qSeq[this.qHead]! + RQ_SIZE) >>> 0;
  }

  private receiveReliable(
    seqno: number,
    payload: Uint8Array,
    now: number,
  ): void {
    const stats = this.stats;
    const d = (seqno - this.rcvLwe) | 0;
    if (d < 0) {
      // already delivered: the peer missed our ACK, so say it again
      stats.duplicates++;
      this.wantAck(now, true);
      return;
    }
    if (this.st !== "open") {
      stats.droppedClosed++;
      return;
    }
    if (d >= RQ_SIZE) {
      stats.droppedWindow++;
      this.wantAck(now, true);
      return;
    }
    const slot = seqno & RQ_MASK;
    if (this.rq[slot] !== undefined) {
      stats.duplicates++;
      return;
    }
    this.rq[slot] = payload;
    this.rqCount++;
    if (seqBefore(seqno, this.rcvHigh)) stats.outOfOrder++;
    else this.rcvHigh = (seqno + 1) >>> 0;
    // beyond a gap whose start the peer already knows from our last ACK:
    // say it again (a duplicate ACK), so that it resends the missing one
    // without waiting for its timer
    if (d > 0 && this.ackSent === this.rcvLwe) {
      this.gapAck = true;
      if (this.ackAt === Infinity) this.ackAt = now;
    }
  }

  private receivePartial(
    seqno: number,
    payload: Uint8Array,
    now: number,
  ): void {
    const stats = this.stats;
    if (seqBefore(seqno, this.rcvLwe)) {
      stats.droppedLate++;
      stats.outOfOrder++;
      return;
    }
    if (this.st !== "open") {
      stats.droppedClosed++;
      return;
    }
    this.rcvLwe = (seqno + 1) >>> 0;
    this.rcvHigh = this.rcvLwe;
    this.enqueue(payload, seqno);
    // I5: keep a C writer's window open even when packets are lost
    if (
      this.fcAt === Infinity &&
      ((this.advRwe - seqno) | 0) <= FC_NEAR &&
      seqAfter(this.rcvEdge(), this.advRwe)
    ) {
      this.fcAt = now;
    }
  }

  /** FIFO for raw and partially reliable flows; drops the oldest when full. */
  private enqueue(payload: Uint8Array, seqno: number): void {
    const cap = this.rq.length;
    if (this.qCount === cap) {
      this.rq[this.qHead] = undefined;
      this.qHead = (this.qHead + 1) % cap;
      this.qCount--;
      this.stats.droppedOverflow++;
    }
    const i = (this.qHead + this.qCount) % cap;
    this.rq[i] = payload;
    this.qSeq[i] = seqno;
    this.qCount++;
  }

  private dropUnread(): void {
    this.rq.fill(undefined);
    this.rqCount = 0;
    this.qCount = 0;
    this.qHead = 0;
  }

  private wantAck(now: number, forced: boolean): void {
    if (!this.reliable || !this.run) return;
    if (forced) this.ackForced = true;
    if (this.ackAt === Infinity) this.ackAt = now;
  }

  private flushControl(): void {
    if (this.ackAt !== Infinity) {
      this.ackAt = Infinity;
      // a gap at the next packet to hand up, with data beyond it
      const atGap = this.rqCount > 0 &&
        this.rq[this.rcvLwe & RQ_MASK] === undefined;
      // (still there: a reordered packet may have filled it)
      const gap = this.gapAck && atGap;
      const moved = this.rcvLwe !== this.ackSent;
      const forced = this.ackForced;
      this.ackForced = false;
      this.gapAck = false;
      if (this.run && (forced || gap || moved)) {
        this.sendAck(this.st === "open");
        if (moved && atGap) {
          if (this.gapSignalled) {
            // reads went past a gap we signalled, up to the next one: the
            // sender is repairing them, so tell it at once (the same ACK
            // again is that signal; it also survives the loss of one)
            this.sendAck(this.st === "open");
          } else {
            // reads stopped at a gap: say so a moment later (at the next
            // flush), unless what is missing arrives meanwhile; with a
            // full window nothing else arrives to make that ACK repeat
            this.gapAck = true;
            this.ackAt = this.clock;
          }
        }
        this.gapSignalled = atGap && (gap || this.gapSignalled);
      }
    }
    if (this.fcAt !== Infinity) {
      this.fcAt = Infinity;
      if (this.run && this.st === "open") {
        if (seqAfter(this.rcvEdge(), this.advRwe)) this.sendFc();
      }
    }
  }

  /** A pure ACK (with our window while open; without it at close). */
  private sendAck(withFc: boolean): void {
    const ackno = this.rcvLwe;
    this.ackSent = ackno;
    if (withFc) {
      const rwe = this.rcvEdge();
      this.advRwe = rwe;
      this.sendControl(FLAG_ACK | FLAG_FC, rwe, ackno);
    } else {
      this.sendControl(FLAG_ACK, 0, ackno);
    }
  }

  /** A window update (answer to RDVS, I5 on partially reliable flows). */
  private sendFc(): void {
    const rwe = this.rcvEdge();
    this.advRwe = rwe;
    this.consumedSinceFc = 0;
    if (this.reliable) {
      this.ackSent = this.rcvLwe;
      this.ackAt = Infinity;
      this.ackForced = false;
      this.gapAck = false;
      this.sendControl(FLAG_ACK | FLAG_FC, rwe, this.rcvLwe);
    } else {
      this.sendControl(FLAG_FC, rwe, 0);
    }
  }

  /** I3: every control packet carries DRF and seqno = snd.lwe. */
  private sendControl(flags: number, rwe: number, ackno: number): void {
    const buf = new Uint8Array(HEADER_LEN + (this.crc ? CRC_LEN : 0));
    writeHeader(buf, flags | FLAG_DRF, rwe, this.sndLwe, ackno);
    if (this.crc) putCrc(buf, HEADER_LEN);
    this.out.push(buf);
    this.stats.controlSent++;
  }

  // ---- internals: sender --------------------------------------------------

  private windowOpen(): boolean {
    return ((this.sndSeq - this.sndLwe) >>> 0) < RQ_SIZE &&
      seqBefore(this.sndSeq, this.sndRwe);
  }

  private unstall(): void {
    this.stalled = false;
    this.rdvsAt = Infinity;
  }

  /**
   * An ACK that moves the edge to `ackno`. `timely`: it came in a packet
   * that is not a peer retransmission.
   */
  private onAck(ackno: number, now: number, timely: boolean): void {
    const buf = this.sndBuf;
    const tx = this.sndTx;
    const timed = this.sndTimed;
    // RTT from the last transmission among the packets this ACK covers
    // (the arrival that let the peer consume them all), unless one of them
    // was last sent by the timer (Karn: its original may be what arrived),
    // or the ACK rode on a copy the peer's timer resent (it measures that
    // timer)
    let latest = -Infinity;
    let karn = false;
    let copyAt = -Infinity;
    let needless = 0;
    for (let s = this.sndLwe; s !== ackno; s = (s + 1) >>> 0) {
      const slot = s & RQ_MASK;
      buf[slot] = undefined;
      if (timed[slot] === 0) karn = true;
      const t = tx[slot]!;
      if (t > latest) latest = t;
      // a copy sent less than half the smallest RTT ago cannot be what
      // this ACK answers: the original arrived, the copy was not needed
      if (this.sndCount[slot]! > 1 && now - t < this.minRtt / 2) {
        needless++;
        if (t > copyAt) copyAt = t;
      }
    }
    // That copy reaches the peer as a duplicate, which it answers with an
    // ACK of its edge about an RTT later: not a sign of a gap there. Nor
    // a loss the path made.
    if (needless > 0) {
      this.lossSeen = Math.max(0, this.lossSeen - needless);
      const until = copyAt + 2 * this.copyRtt();
      if (until > this.dupIgnoreUntil) this.dupIgnoreUntil = until;
    }
    // Packets sent before our last copy and after the packet it copied
    // waited for it at the peer: their ACK tells nothing of the RTT.
    const held = latest < this.lastCopyAt &&
      seqAfter((ackno - 1) >>> 0, this.lastCopySeq);
    // (nor one under a quarter of the smallest RTT: a copy this ACK cannot
    // answer, or an ACK that crossed our packet)
    const m = now - latest;
    if (
      timely && !karn && !held &&
      (this.minRtt === Infinity || m >= this.minRtt / 4)
    ) {
      this.rttSample(m);
    }
    const advanced = (ackno - this.sndLwe) >>> 0;
    this.ackedSeen += advanced;
    if (this.ackedSeen > LOSS_WINDOW) {
      this.ackedSeen /= 2;
      this.lossSeen /= 2;
    }
    this.sndLwe = ackno;
    this.backoff = 0;
    this.rtxGraced = false;
    if (ackno === this.sndSeq) {
      this.rtxAt = Infinity;
      this.holeAt = Infinity;
      this.recovering = false;
      if (this.st === "lingering") {
        this.finish();
        return;
      }
    } else {
      if (this.recovering) this.partialAck(ackno, advanced, now);
      const limit = this.sndT0[ackno & RQ_MASK]! + this.rtxLimit;
      this.rtxAt = Math.min(now + this.timerBase(), limit);
    }
    if (this.stalled && this.windowOpen()) this.unstall();
  }

  /**
   * An ACK during a recovery that leaves packets outstanding. The peer
   * consumed everything before `ackno`, and what we sent before our last
   * copy reached it first: the packet at `ackno` is missing, lost if the
   * ACKs stop there. A stream of ACKs that goes on (the originals were only
   * late, or the peer acknowledges as it reads) is no loss: the packet is
   * copied only if no further ACK moves the edge for a quarter of the RTT.
   * When the ACKs stop right after our copies, the originals after them
   * were lost too (a whole window, e.g. before the peer's run started):
   * two copies per packet acknowledged then, and from there on at once.
   */
  private partialAck(ackno: number, advanced: number, now: number): void {
    if (!seqBefore(ackno, this.recoverSeq)) {
      this.recovering = false;
      this.holeAt = Infinity;
      return;
    }
    if (seqBefore(ackno, this.rtxFront)) return; // its copy is on its way
    this.holeCopies = ackno === this.rtxFront && !this.gapRecovery
      ? Math.min(2 * advanced, RTX_BURST)
      : 1;
    const wait = this.copiesThrough ? 0 : this.srtt * HOLE_WAIT;
    if (wait > 0) this.holeAt = now + wait;
    else this.copyHole(now);
  }

  /**
   * The RTT of a copy sent now, for the waits of a recovery: srtt, but at
   * most twice the smallest recent sample (an ACK that was lost makes the
   * next one late, and its sample long; a copy leaves behind what is in
   * flight, as the recent samples did); 0 before any sample.
   */
  private recentRtt(): number {
    return Math.min(this.srtt, 2 * this.minRtt);
  }

  /**
   * The retransmission timer before backoff: the rto, but during a
   * recovery (our copies answer a loss already seen) at most
   * RECOVERY_RTTS recent RTTs, as a copy unanswered after that is most
   * likely lost too; one late ACK in the rto then does not make every lost
   * copy wait for seconds.
   */
  private timerBase(): number {
    if (!this.recovering || this.minRtt === Infinity) return this.rto;
    return Math.min(
      this.rto,
      Math.max(RTO_MIN, RECOVERY_RTTS * this.recentRtt()),
    );
  }

  /** The ACKs stopped at snd.lwe during a recovery: copy what is missing. */
  private copyHole(now: number): void {
    this.holeAt = Infinity;
    if (!this.recovering || seqAfter(this.rtxFront, this.sndLwe)) return;
    this.rtxFront = this.sndLwe;
    if (this.holeCopies > 1) this.copiesThrough = true;
    this.rtxBurst(this.holeCopies, now);
  }

  /**
   * A pure ACK that repeats snd.lwe: the peer saw a gap there, packets
   * after it arrived. Unless its last copy may still be on its way.
   */
  private onDupAck(now: number): void {
    const slot = this.sndLwe & RQ_MASK;
    if (now < this.dupIgnoreUntil || !this.mayCopy(slot, now)) return;
    if (!this.recovering) {
      this.recovering = true;
      this.recoverSeq = this.sndSeq;
      this.gapRecovery = true;
      this.copiesThrough = false;
    }
    this.holeAt = Infinity;
    this.copyLost(slot, now);
    if (!seqAfter(this.rtxFront, this.sndLwe)) {
      this.rtxFront = (this.sndLwe + 1) >>> 0;
    }
  }

  /**
   * Whether the packet in `slot` may be copied on a sign of loss: never
   * sent again yet, or its last copy left an rto ago. What shows it missing
   * (a duplicate ACK) may come from packets sent before that copy, which
   * waits behind them, and the RTT grows with what is in flight faster
   * than srtt follows.
   */
  private mayCopy(slot: number, now: number): boolean {
    return this.sndCount[slot] === 1 || now >= this.sndTx[slot]! + this.rto;
  }

  /**
   * About the longest RTT of a copy sent now: srtt, or the last sample if
   * longer (the RTT grows with what is in flight, faster than srtt follows
   * it), + 2 mdev.
   */
  private copyRtt(): number {
    return Math.max(this.srtt, this.lastRtt) + 2 * this.mdev;
  }

  /**
   * Copies from rtxFront on, up to what was outstanding when the recovery
   * began; none of a packet whose last copy may still be on its way.
   */
  private rtxBurst(k: number, now: number): void {
    for (let i = 0; i < k; i++) {
      const s = this.rtxFront;
      if (!seqBefore(s, this.recoverSeq) || !seqBefore(s, this.sndSeq)) break;
      const slot = s & RQ_MASK;
      this.rtxFront = (s + 1) >>> 0;
      if (!this.mayCopy(slot, now)) continue;
      this.copyLost(slot, now);
    }
  }

  /**
   * A copy of a packet the ACKs show lost. When the window is closed no
   * packet follows it, so the loss of the copy shows only at the timer
   * (at least RTO_MIN): on a path that lost more than LOSSY of the last
   * packets (a start window of them acknowledged at least), the copy goes
   * twice.
   */
  private copyLost(slot: number, now: number): void {
    this.retransmit(slot, now, true);
    this.stats.fastRetransmits++;
    this.lossSeen++;
    if (
      !this.windowOpen() && this.ackedSeen >= START_WINDOW &&
      this.lossSeen > LOSSY * (this.lossSeen + this.ackedSeen)
    ) {
      this.retransmit(slot, now, true);
    }
  }

  /**
   * RFC 6298 (the estimator of spec 5.1 with FRCT_LINUX_RTT_ESTIMATOR off:
   * srtt += err / 8, mdev += (|err| - mdev) / 4), and the I6 floor.
   */
  private rttSample(sample: number): void {
    this.lastRtt = sample;
    // The smallest sample, rising slowly towards larger ones: it follows a
    // path whose queue stays, not one late ACK.
    const m = sample;
    if (m < this.minRtt) this.minRtt = m;
    else this.minRtt += (m - this.minRtt) / MIN_RTT_RISE;
    if (this.srtt === 0) {
      this.srtt = m;
      this.mdev = m / 2;
    } else {
      const err = m - this.srtt;
      this.srtt += err / 8;
      this.mdev += (Math.abs(err) - this.mdev) / 4;
    }
    if (this.srtt < 0.001) this.srtt = 0.001;
    if (this.mdev < 0.0001) this.mdev = 0.0001;
    this.rto = Math.min(Math.max(RTO_MIN, this.srtt + 4 * this.mdev), RTO_MAX);
    this.stats.srtt = this.srtt;
    this.stats.mdev = this.mdev;
    this.stats.rto = this.rto;
  }

  private onRtxTimer(now: number): void {
    if (this.sndLwe === this.sndSeq) {
      this.rtxAt = Infinity;
      return;
    }
    const slot = this.sndLwe & RQ_MASK;
    const limit = this.sndT0[slot]! + this.rtxLimit;
    if (now >= limit) {
      this.goDown("retransmission_limit");
      return;
    }
    this.rtxGraced = false;
    const last = this.sndTx[slot]!;
    const due = last + this.timerBase();
    if (this.sndCount[slot] !== 1 && now < due) {
      // copied since the timer was set (on a duplicate ACK): wait for it
      this.rtxAt = Math.min(due, limit);
      return;
    }
    // Only the oldest: the ACK of its copy tells what else is missing.
    // Its ACK times the copy if the packet is a gap the ACKs of a recovery
    // stopped at, sent once: its original is lost, not late (Karn). A gap
    // whose copy was lost too says the path loses much: two copies then.
    const n = this.sndCount[slot]!;
    this.retransmit(slot, now, this.recovering && n === 1);
    this.lossSeen++;
    if (this.recovering && n > 1) this.retransmit(slot, now, false);
    this.stats.timeouts++;
    this.holeAt = Infinity;
    this.recovering = true;
    this.gapRecovery = false;
    this.copiesThrough = false;
    this.recoverSeq = this.sndSeq;
    this.rtxFront = (this.sndLwe + 1) >>> 0;
    if (this.backoff < 30) this.backoff++;
    const base = this.timerBase();
    const wait = Math.min(
      base * 2 ** this.backoff,
      Math.max(base, BACKOFF_CAP),
    );
    this.rtxAt = Math.min(now + wait, limit);
  }

  /**
   * A copy of a kept packet with a fresh ACK and window (I7: fresh CRC).
   * `timed`: the copy answers a loss the peer's ACKs showed (the packets
   * before it were consumed, it was not, and its last copy left at least
   * an rto before), so the ACK that covers it answers this copy.
   */
  private retransmit(slot: number, now: number, timed: boolean): void {
    const orig = this.sndBuf[slot];
    if (orig === undefined) return;
    const n = this.sndCount[slot]!;
    this.sndTimed[slot] = timed ? 1 : 0;
    this.lastCopyAt = now;
    this.lastCopySeq = u32At(orig, 4);
    if (n < 255) this.sndCount[slot] = n + 1;
    this.sndTx[slot] = now;
    const copy = orig.slice();
    let flags = orig[0]! & (FLAG_DATA | FLAG_DRF);
    if (this.run) {
      flags |= FLAG_ACK;
      putU32(copy, 8, this.rcvLwe);
      this.ackSent = this.rcvLwe;
      if (this.st === "open" && this.runActive(now)) {
        flags |= FLAG_FC;
        const rwe = this.rcvEdge();
        this.advRwe = rwe;
        copy[1] = rwe >>> 16;
        copy[2] = rwe >>> 8;
        copy[3] = rwe;
      }
    }
    copy[0] = flags;
    if (this.crc) putCrc(copy, copy.length - CRC_LEN);
    this.out.push(copy);
    this.stats.retransmitted++;
  }

  private goDown(reason: DownReason): void {
    this.st = "down";
    this.why = reason;
    this.stopTimers();
  }

  private finish(): void {
    this.st = "closed";
    this.stopTimers();
  }

  private stopTimers(): void {
    this.rtxAt = Infinity;
    this.holeAt = Infinity;
    this.ackAt = Infinity;
    this.fcAt = Infinity;
    this.stalled = false;
    this.rdvsAt = Infinity;
    this.sndBuf.fill(undefined);
  }
}
