/**
 * The oping echo message, compatible with C 0.23.0: 24 packed bytes,
 * zero-padded to the packet size (64..1500):
 *   0 type u32 BE (0 echo request, 1 echo reply) | 4 id u32 BE |
 *   8 tv_sec u64 | 16 tv_nsec u64, both in HOST byte order (little-endian
 *   on x86 and ARM, which is what we write and read).
 * The server echoes every byte back with the type set to 1.
 */
import { err, ok, type Result } from "../util/result.ts";

export const ECHO_REQUEST = 0;
export const ECHO_REPLY = 1;
export const OPING_MIN_SIZE = 64;
export const OPING_MAX_SIZE = 1500;
export const OPING_HDR_LEN = 24;

export interface OpingMsg {
  /** ECHO_REQUEST or ECHO_REPLY */
  type: number;
  /** sequence number (u32) */
  id: number;
  /** seconds of the sender's monotonic clock (u64) */
  sec: bigint;
  /** nanoseconds (u64) */
  nsec: bigint;
}

function view(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** Checks an oping packet size (64..1500 bytes). */
export function checkOpingSize(size: number): Result<number> {
  if (
    !Number.isInteger(size) || size < OPING_MIN_SIZE || size > OPING_MAX_SIZE
  ) {
    return err(
      `invalid oping packet size ${size}: must be ${OPING_MIN_SIZE}..${OPING_MAX_SIZE} bytes`,
    );
  }
  return ok(size);
}

/** A zeroed packet of `size` bytes (64..1500; RangeError otherwise). */
export function newOpingPacket(size: number = OPING_MIN_SIZE): Uint8Array {
  const s = checkOpingSize(size);
  if (!s.ok) throw new RangeError(s.error);
  return new Uint8Array(size);
}

/**
 * Writes the 24 header bytes of `m` at the start of `buf` (>= 24 bytes);
 * the padding is left as it is (use newOpingPacket for a zeroed buffer).
 * Throws a RangeError for a short buffer or out-of-range fields.
 */
export function encodeOping(buf: Uint8Array, m: OpingMsg): void {
  if (buf.length < OPING_HDR_LEN) {
    throw new RangeError(
      `oping buffer of ${buf.length} bytes is shorter than ${OPING_HDR_LEN}`,
    );
  }
  for (const [name, val] of [["type", m.type], ["id", m.id]] as const) {
    if (!Number.isInteger(val) || val < 0 || val > 0xffffffff) {
      throw new RangeError(`oping ${name} ${val} is not a u32`);
    }
  }
  for (const [name, val] of [["sec", m.sec], ["nsec", m.nsec]] as const) {
    if (val < 0n || val > 0xffff_ffff_ffff_ffffn) {
      throw new RangeError(`oping ${name} ${val} is not a u64`);
    }
  }
  const v = view(buf);
  v.setUint32(0, m.type);
  v.setUint32(4, m.id);
  v.setBigUint64(8, m.sec, true);
  v.setBigUint64(16, m.nsec, true);
}

/** Decodes the header of an oping packet (>= 24 bytes, type 0 or 1). */
export function decodeOping(buf: Uint8Array): Result<OpingMsg> {
  if (buf.length < OPING_HDR_LEN) {
    return err(
      `oping message too short: ${buf.length} bytes, header is ${OPING_HDR_LEN}`,
    );
  }
  const v = view(buf);
  const type = v.getUint32(0);
  if (type !== ECHO_REQUEST && type !== ECHO_REPLY) {
    return err(`unknown oping message type ${type}`);
  }
  return ok({
    type,
    id: v.getUint32(4),
    sec: v.getBigUint64(8, true),
    nsec: v.getBigUint64(16, true),
  });
}

/** Sets the type of an oping packet in place (the echo server's reply). */
export function setOpingType(buf: Uint8Array, type: number): void {
  if (buf.length < OPING_HDR_LEN) {
    throw new RangeError(
      `oping buffer of ${buf.length} bytes is shorter than ${OPING_HDR_LEN}`,
    );
  }
  if (!Number.isInteger(type) || type < 0 || type > 0xffffffff) {
    throw new RangeError(`oping type ${type} is not a u32`);
  }
  view(buf).setUint32(0, type);
}
