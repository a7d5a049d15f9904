/**
 * Flow allocator messages, carried in DT packets to eid 0 (spec/unicast.md
 * 2.7), and the two things of multi-bit ECN congestion avoidance that show
 * on the wire: the DT header's ecn byte and FLOW_UPDATE (2.7.4).
 *
 * Every message starts with a packed 61-byte header, all fields big-endian:
 *
 *   0 s_addr u64 | 8 r_eid u64 | 16 s_eid u64 | 24 bandwidth u64 |
 *   32 response i32 | 36 delay u32 | 40 loss u32 | 44 ber u32 |
 *   48 max_gap u32 | 52 timeout u32 | 56 ece u16 | 58 code u8 |
 *   59 availability u8 | 60 in_order u8
 *
 * - FLOW_REQ (code 0): s_addr, s_eid and the QoS; then the destination
 *   name's hash (the layer's hash length) and the OAP request.
 * - FLOW_REPLY (code 1): r_eid (the requester's), s_eid (the responder's),
 *   response; then the OAP response (nothing when refused).
 * - FLOW_UPDATE (code 2): r_eid (the flow's eid at the receiver) and ece.
 *
 * Codes start at 0 here, unlike the UDP layer's. The fields a kind does not
 * use are sent as zeros and ignored on receipt, as C does.
 */
import { err, ok, type Result } from "../../lib/util/result.ts";
import type { Qos } from "../../lib/wire/udp_wire.ts";

export type { Qos } from "../../lib/wire/udp_wire.ts";

export const FA_HDR_LEN = 61;
/** The longest flow allocator message a C peer accepts. */
export const FA_MAX_LEN = 2048;

export const FLOW_REQ = 0;
export const FLOW_REPLY = 1;
export const FLOW_UPDATE = 2;

const OFF_S_ADDR = 0;
const OFF_R_EID = 8;
const OFF_S_EID = 16;
const OFF_BANDWIDTH = 24;
const OFF_RESPONSE = 32;
const OFF_DELAY = 36;
const OFF_LOSS = 40;
const OFF_BER = 44;
const OFF_MAX_GAP = 48;
const OFF_TIMEOUT = 52;
const OFF_ECE = 56;
const OFF_CODE = 58;
const OFF_AVAILABILITY = 59;
const OFF_IN_ORDER = 60;

export interface FlowReqMsg {
  code: typeof FLOW_REQ;
  /** the requester's address */
  sAddr: bigint;
  /** the requester's eid for the flow */
  sEid: bigint;
  qos: Qos;
  /** the destination name's hash (a view into the decoded buffer) */
  hash: Uint8Array;
  /** the OAP request, opaque here (a view into the decoded buffer) */
  oap: Uint8Array;
}

export interface FlowReplyMsg {
  code: typeof FLOW_REPLY;
  /** the requester's eid, from its FLOW_REQ */
  rEid: bigint;
  /** the responder's eid for the flow */
  sEid: bigint;
  /** 0 = accepted, negative errno = refused (i32) */
  response: number;
  /** the OAP response; empty when refused (a view into the decoded buffer) */
  oap: Uint8Array;
}

export interface FlowUpdateMsg {
  code: typeof FLOW_UPDATE;
  /** the flow's eid at the receiver of this message */
  rEid: bigint;
  /** congestion level (u16) */
  ece: number;
}

export type FaMsg = FlowReqMsg | FlowReplyMsg | FlowUpdateMsg;

const U32_MAX = 0xffff_ffff;
const U64_MAX = 0xffff_ffff_ffff_ffffn;

function checkUint(name: string, v: number, max: number): void {
  if (!Number.isInteger(v) || v < 0 || v > max) {
    throw new RangeError(`${name} ${v} is not an integer in 0..${max}`);
  }
}

function checkU64(name: string, v: bigint): void {
  if (v < 0n || v > U64_MAX) throw new RangeError(`${name} ${v} is not a u64`);
}

function checkQos(q: Qos): void {
  checkU64("qos.bandwidth", q.bandwidth);
  checkUint("qos.delay", q.delay, U32_MAX);
  checkUint("qos.loss", q.loss, U32_MAX);
  checkUint("qos.ber", q.ber, U32_MAX);
  checkUint("qos.maxGap", q.maxGap, U32_MAX);
  checkUint("qos.timeout", q.timeout, U32_MAX);
  checkUint("qos.availability", q.availability, 0xff);
  checkUint("qos.inOrder", q.inOrder, 0xff);
}

/**
 * Encodes a flow allocator message: the header, then (FLOW_REQ) the hash
 * and the OAP request or (FLOW_REPLY) the OAP response. Throws a RangeError
 * for a value out of its field's range or a message over FA_MAX_LEN.
 */
export function encodeFa(m: FaMsg): Uint8Array {
  let body: Uint8Array[] = [];
  switch (m.code) {
    case FLOW_REQ:
      checkU64("sAddr", m.sAddr);
      checkU64("sEid", m.sEid);
      checkQos(m.qos);
      body = [m.hash, m.oap];
      break;
    case FLOW_REPLY:
      checkU64("rEid", m.rEid);
      checkU64("sEid", m.sEid);
      if (!Number.isInteger(m.response) || m.response !== (m.response | 0)) {
        throw new RangeError(`response ${m.response} is not an i32`);
      }
      body = [m.oap];
      break;
    case FLOW_UPDATE:
      checkU64("rEid", m.rEid);
      checkUint("ece", m.ece, 0xffff);
      break;
    default:
      throw new RangeError(`unknown flow allocator code ${(m as FaMsg).code}`);
  }
  const len = body.reduce((n, b) => n + b.length, FA_HDR_LEN);
  if (len > FA_MAX_LEN) {
    throw new RangeError(
      `flow allocator message of ${len} bytes exceeds ${FA_MAX_LEN} bytes`,
    );
  }
  const out = new Uint8Array(len);
  const v = new DataView(out.buffer);
  v.setUint8(OFF_CODE, m.code);
  if (m.code === FLOW_REQ) {
    v.setBigUint64(OFF_S_ADDR, m.sAddr);
    v.setBigUint64(OFF_S_EID, m.sEid);
    v.setBigUint64(OFF_BANDWIDTH, m.qos.bandwidth);
    v.setUint32(OFF_DELAY, m.qos.delay);
    v.setUint32(OFF_LOSS, m.qos.loss);
    v.setUint32(OFF_BER, m.qos.ber);
    v.setUint32(OFF_MAX_GAP, m.qos.maxGap);
    v.setUint32(OFF_TIMEOUT, m.qos.timeout);
    v.setUint8(OFF_AVAILABILITY, m.qos.availability);
    v.setUint8(OFF_IN_ORDER, m.qos.inOrder);
  } else if (m.code === FLOW_REPLY) {
    v.setBigUint64(OFF_R_EID, m.rEid);
    v.setBigUint64(OFF_S_EID, m.sEid);
    v.setInt32(OFF_RESPONSE, m.response);
  } else {
    v.setBigUint64(OFF_R_EID, m.rEid);
    v.setUint16(OFF_ECE, m.ece);
  }
  let off = FA_HDR_LEN;
  for (const b of body) {
    out.set(b, off);
    off += b.length;
  }
  return out;
}

/**
 * Decodes a flow allocator message. Never throws. Errors: a length outside
 * 61..2048 (C drops those), an unknown code, a FLOW_REQ too short for a
 * `hashLen`-byte hash. Bytes after a FLOW_UPDATE's header are ignored, as
 * are the header fields a kind does not use. `hash` and `oap` are views
 * into `buf`.
 */
export function decodeFa(buf: Uint8Array, hashLen = 32): Result<FaMsg> {
  if (buf.length < FA_HDR_LEN || buf.length > FA_MAX_LEN) {
    return err(
      `flow allocator message of ${buf.length} bytes, not ${FA_HDR_LEN}..${FA_MAX_LEN}`,
    );
  }
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const code = v.getUint8(OFF_CODE);
  switch (code) {
    case FLOW_REQ: {
      if (buf.length < FA_HDR_LEN + hashLen) {
        return err(
          `FLOW_REQ of ${buf.length} bytes has no room for a ${hashLen}-byte hash`,
        );
      }
      return ok({
        code,
        sAddr: v.getBigUint64(OFF_S_ADDR),
        sEid: v.getBigUint64(OFF_S_EID),
        qos: {
          bandwidth: v.getBigUint64(OFF_BANDWIDTH),
          delay: v.getUint32(OFF_DELAY),
          loss: v.getUint32(OFF_LOSS),
          ber: v.getUint32(OFF_BER),
          maxGap: v.getUint32(OFF_MAX_GAP),
          timeout: v.getUint32(OFF_TIMEOUT),
          availability: v.getUint8(OFF_AVAILABILITY),
          inOrder: v.getUint8(OFF_IN_ORDER),
        },
        hash: buf.subarray(FA_HDR_LEN, FA_HDR_LEN + hashLen),
        oap: buf.subarray(FA_HDR_LEN + hashLen),
      });
    }
    case FLOW_REPLY:
      return ok({
        code,
        rEid: v.getBigUint64(OFF_R_EID),
        sEid: v.getBigUint64(OFF_S_EID),
        response: v.getInt32(OFF_RESPONSE),
        oap: buf.subarray(FA_HDR_LEN),
      });
    case FLOW_UPDATE:
      return ok({
        code,
        rEid: v.getBigUint64(OFF_R_EID),
        ece: v.getUint16(OFF_ECE),
      });
    default:
      return err(`unknown flow allocator code ${code}`);
  }
}

// ------------------------------------------------------ multi-bit ECN

/** A queue adds queued >> 4 to the congestion level. */
export const ECN_QUEUE_SHIFT = 4;

/**
 * The ecn level an outgoing N-1 flow with `queued` packets waiting adds to
 * a DT packet (OR it in with `dtRaiseEcn`): queued >> 4, saturating at 255
 * where C keeps only the low byte (4096 queued packets would read as 0).
 */
export function ecnForQueue(queued: number): number {
  if (!Number.isInteger(queued) || queued < 0) {
    throw new RangeError(`queue length ${queued} is not a count`);
  }
  return Math.min(0xff, queued >>> ECN_QUEUE_SHIFT);
}

/** A receiving flow's congestion state. */
export interface EcnRx {
  /** the level reported upstream (u16) */
  readonly ece: number;
  /** packets since congestion started, modulo 8 */
  readonly ctr: number;
}

export const ECN_RX_IDLE: EcnRx = Object.freeze({ ece: 0, ctr: 0 });

/**
 * One packet with ecn byte `ecn` arrives on a flow in state `s`: the new
 * state, and whether to send the peer a FLOW_UPDATE with the new level
 * (`flowUpdate(peerEid, state.ece)`). As C computes it:
 *
 * - no congestion and ecn 0: nothing;
 * - ecn 0 while congested: the level drops to a quarter; update when it
 *   reaches 0;
 * - the first ecn after none: the level is that ecn; update;
 * - later ones: level = level - level / 32 + ecn (u16); update on every
 *   eighth such packet, the second one first.
 */
export function ecnReceive(
  s: EcnRx,
  ecn: number,
): { state: EcnRx; update: boolean } {
  if (s.ece === 0 && ecn === 0) return { state: s, update: false };
  if (ecn === 0) {
    const ece = s.ece >>> 2;
    return { state: { ece, ctr: s.ctr }, update: ece === 0 };
  }
  if (s.ece === 0) return { state: { ece: ecn, ctr: 0 }, update: true };
  const ece = (s.ece - (s.ece >>> 5) + ecn) & 0xffff;
  return { state: { ece, ctr: (s.ctr + 1) & 7 }, update: s.ctr === 1 };
}

/** The FLOW_UPDATE that tells the peer our level `ece` for its flow `peerEid`. */
export function flowUpdate(peerEid: bigint, ece: number): FlowUpdateMsg {
  return { code: FLOW_UPDATE, rEid: peerEid, ece };
}
