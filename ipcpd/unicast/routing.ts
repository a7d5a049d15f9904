/**
 * Link-state advertisements: one per SDU on a mgmt flow (spec/unicast.md
 * 2.8). An LSA says "s_addr has a dt connection to d_addr"; 24 bytes,
 * three u64 big-endian:
 *
 *   0 d_addr (the neighbour) | 8 s_addr (the announcing node) | 16 seqno
 *
 * Seqnos start at 0 per adjacency and grow by one every refresh, compared
 * as unsigned 64-bit numbers; there is no age field.
 */
import { err, ok, type Result } from "../../lib/util/result.ts";

export const LSA_LEN = 24;

export interface Lsa {
  /** the neighbour */
  dAddr: bigint;
  /** the announcing node */
  sAddr: bigint;
  seqno: bigint;
}

const U64_MAX = 0xffff_ffff_ffff_ffffn;

/** Encodes an LSA; throws a RangeError for a field that is not a u64. */
export function encodeLsa(l: Lsa): Uint8Array {
  for (
    const [name, v] of [["dAddr", l.dAddr], ["sAddr", l.sAddr], [
      "seqno",
      l.seqno,
    ]] as const
  ) {
    if (v < 0n || v > U64_MAX) {
      throw new RangeError(`${name} ${v} is not a u64`);
    }
  }
  const out = new Uint8Array(LSA_LEN);
  const v = new DataView(out.buffer);
  v.setBigUint64(0, l.dAddr);
  v.setBigUint64(8, l.sAddr);
  v.setBigUint64(16, l.seqno);
  return out;
}

/**
 * Decodes an LSA. Never throws; any length but 24 is an error (C ignores
 * such a read).
 */
export function decodeLsa(buf: Uint8Array): Result<Lsa> {
  if (buf.length !== LSA_LEN) {
    return err(`LSA of ${buf.length} bytes, not ${LSA_LEN}`);
  }
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  return ok({
    dAddr: v.getBigUint64(0),
    sAddr: v.getBigUint64(8),
    seqno: v.getBigUint64(16),
  });
}
