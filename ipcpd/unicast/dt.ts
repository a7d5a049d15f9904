/**
 * The DT header: `[dst][qc][ttl][ecn][eid]` before every SDU on a dt flow
 * (spec/unicast.md 2.5). dst takes the layer's addr_size bytes and eid its
 * eid_size bytes, both **little-endian** (C writes them in host order, and
 * every C host we meet is little-endian; the captures confirm it), unlike
 * every other integer of the unicast IPCP. With the defaults (4, 8) the
 * header is 15 bytes.
 *
 * No source address, no length, no checksum. A forwarding node changes the
 * ttl byte (`dtDecrementTtl`) and raises the ecn byte (`dtRaiseEcn`) in
 * place and writes the packet on unchanged.
 */
import { err, ok, type Result } from "../../lib/util/result.ts";
import type { DtConfig } from "./enroll.ts";

/** QoS cubes (the qc byte). */
export const QC_BE = 0;
export const QC_VIDEO = 1;
export const QC_VOICE = 2;

/** Endpoint ids of the components: the flow allocator and the directory. */
export const EID_FA = 0n;
export const EID_DHT = 1n;
/** eids below this are components; N+1 flows have eids from here on. */
export const EID_FLOW_MIN = 64n;

/** Field sizes of a layer's DT header. */
export interface DtLayout {
  /** bytes of dst, 1..8 */
  readonly addrSize: number;
  /** bytes of eid, 1..8 */
  readonly eidSize: number;
  /** addrSize + 3 + eidSize */
  readonly hdrLen: number;
}

/** The layout of the defaults (addr_size 4, eid_size 8): 15 bytes. */
export const DT_DEFAULT: DtLayout = Object.freeze({
  addrSize: 4,
  eidSize: 8,
  hdrLen: 15,
});

/** The layout for the given sizes; each must be 1..8. */
export function dtLayout(addrSize: number, eidSize: number): Result<DtLayout> {
  const size = (n: number) => Number.isInteger(n) && n >= 1 && n <= 8;
  if (!size(addrSize)) return err(`addr_size ${addrSize} is not 1..8 bytes`);
  if (!size(eidSize)) return err(`eid_size ${eidSize} is not 1..8 bytes`);
  const hdrLen = addrSize + 3 + eidSize;
  return ok(Object.freeze({ addrSize, eidSize, hdrLen }));
}

/** The layout of a layer's dt configuration. */
export function dtLayoutOf(c: DtConfig): Result<DtLayout> {
  return dtLayout(c.addrSize, c.eidSize);
}

export interface DtHeader {
  /** destination address */
  dst: bigint;
  /** QoS cube: QC_BE, QC_VIDEO or QC_VOICE */
  qc: number;
  ttl: number;
  /** congestion level, 0 = none */
  ecn: number;
  /** endpoint id at the destination */
  eid: bigint;
}

export interface DtPacket extends DtHeader {
  /** what follows the header: a view into the decoded buffer */
  payload: Uint8Array;
}

function readLe(buf: Uint8Array, off: number, n: number): bigint {
  if (n === 4) {
    return BigInt(
      (buf[off]! | buf[off + 1]! << 8 | buf[off + 2]! << 16 |
        buf[off + 3]! << 24) >>> 0,
    );
  }
  let v = 0n;
  for (let i = n - 1; i >= 0; i--) v = v << 8n | BigInt(buf[off + i]!);
  return v;
}

function writeLe(buf: Uint8Array, off: number, n: number, v: bigint): void {
  for (let i = 0; i < n; i++) {
    buf[off + i] = Number(v & 0xffn);
    v >>= 8n;
  }
}

/**
 * Decodes the DT header at the start of `buf`. Never throws; an error when
 * `buf` is shorter than the header or the qc byte names no cube.
 */
export function decodeDt(
  buf: Uint8Array,
  layout: DtLayout = DT_DEFAULT,
): Result<DtPacket> {
  const { addrSize: a, eidSize: e, hdrLen } = layout;
  if (buf.length < hdrLen) {
    return err(`DT packet of ${buf.length} bytes, header is ${hdrLen}`);
  }
  const qc = buf[a]!;
  if (qc > QC_VOICE) return err(`DT qc ${qc} is no QoS cube`);
  return ok({
    dst: readLe(buf, 0, a),
    qc,
    ttl: buf[a + 1]!,
    ecn: buf[a + 2]!,
    eid: readLe(buf, a + 3, e),
    payload: buf.subarray(hdrLen),
  });
}

function checkHeader(h: DtHeader, layout: DtLayout): void {
  const bits = (n: number) => (1n << BigInt(8 * n)) - 1n;
  if (h.dst < 0n || h.dst > bits(layout.addrSize)) {
    throw new RangeError(
      `dst ${h.dst} does not fit ${layout.addrSize} bytes`,
    );
  }
  if (h.eid < 0n || h.eid > bits(layout.eidSize)) {
    throw new RangeError(`eid ${h.eid} does not fit ${layout.eidSize} bytes`);
  }
  if (!Number.isInteger(h.qc) || h.qc < 0 || h.qc > QC_VOICE) {
    throw new RangeError(`qc ${h.qc} is no QoS cube`);
  }
  for (const [name, v] of [["ttl", h.ttl], ["ecn", h.ecn]] as const) {
    if (!Number.isInteger(v) || v < 0 || v > 0xff) {
      throw new RangeError(`${name} ${v} is not a byte`);
    }
  }
}

/**
 * Writes the header `h` at `buf[off..off + hdrLen)`. Throws a RangeError
 * for a field that does not fit or a buffer too short.
 */
export function writeDtHeader(
  buf: Uint8Array,
  h: DtHeader,
  layout: DtLayout = DT_DEFAULT,
  off = 0,
): void {
  checkHeader(h, layout);
  if (off < 0 || buf.length - off < layout.hdrLen) {
    throw new RangeError(
      `no room for a ${layout.hdrLen}-byte DT header at ${off} of ${buf.length}`,
    );
  }
  const a = layout.addrSize;
  writeLe(buf, off, a, h.dst);
  buf[off + a] = h.qc;
  buf[off + a + 1] = h.ttl;
  buf[off + a + 2] = h.ecn;
  writeLe(buf, off + a + 3, layout.eidSize, h.eid);
}

/** A DT packet: the header `h` followed by `payload` (copied). */
export function encodeDt(
  h: DtHeader,
  payload: Uint8Array,
  layout: DtLayout = DT_DEFAULT,
): Uint8Array {
  const out = new Uint8Array(layout.hdrLen + payload.length);
  writeDtHeader(out, h, layout);
  out.set(payload, layout.hdrLen);
  return out;
}

/**
 * Decrements the ttl byte of the DT packet in `buf` in place and returns
 * the new value; a packet that arrives with ttl 0 stays 0 (-1 is returned:
 * drop it; C would wrap it to 255). Throws a RangeError for a buffer
 * shorter than the header.
 */
export function dtDecrementTtl(
  buf: Uint8Array,
  layout: DtLayout = DT_DEFAULT,
): number {
  if (buf.length < layout.hdrLen) {
    throw new RangeError(
      `DT packet of ${buf.length} bytes, header is ${layout.hdrLen}`,
    );
  }
  const at = layout.addrSize + 1;
  const ttl = buf[at]!;
  if (ttl === 0) return -1;
  buf[at] = ttl - 1;
  return ttl - 1;
}

/**
 * ORs `level` (0..255) into the ecn byte of the DT packet in `buf`, in
 * place, and returns the new byte. Throws a RangeError for a buffer shorter
 * than the header or a level that is not a byte.
 */
export function dtRaiseEcn(
  buf: Uint8Array,
  level: number,
  layout: DtLayout = DT_DEFAULT,
): number {
  if (buf.length < layout.hdrLen) {
    throw new RangeError(
      `DT packet of ${buf.length} bytes, header is ${layout.hdrLen}`,
    );
  }
  if (!Number.isInteger(level) || level < 0 || level > 0xff) {
    throw new RangeError(`ecn level ${level} is not a byte`);
  }
  const at = layout.addrSize + 2;
  buf[at] = buf[at]! | level;
  return buf[at]!;
}
