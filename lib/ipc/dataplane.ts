/**
 * The data path between an application and its IPCP: one Unix stream
 * connection per flow, to the IPCP's data socket.
 *
 *   app -> IPCP, first frame: attach   [u32 handle][16-byte token]
 *   IPCP -> app, reply frame:  status  [i32 status] (0 = attached, else -errno)
 *   (the application may write packets right after its attach frame; the
 *   IPCP sends them once the flow is attached, and drops them otherwise)
 *   then, both ways, one frame per packet: [u32 length][packet]
 *
 * Frames are lib/ipc/framing.ts frames. The IPCP turns a packet frame into a
 * datagram in place: the 4-byte length becomes the peer's endpoint id, so
 * packets are neither re-encoded nor copied on their way out. Closing the
 * connection deallocates the flow; the IPCP closes it when the flow goes down.
 */
import { err, ok, type Result } from "../util/result.ts";

export const ATTACH_LEN = 20;
export const TOKEN_LEN = 16;

export function encodeAttach(handle: number, token: Uint8Array): Uint8Array {
  const b = new Uint8Array(ATTACH_LEN);
  new DataView(b.buffer).setUint32(0, handle);
  b.set(token.subarray(0, TOKEN_LEN), 4);
  return b;
}

export function decodeAttach(
  p: Uint8Array,
): Result<{ handle: number; token: Uint8Array }> {
  if (p.length !== ATTACH_LEN) {
    return err(`attach frame of ${p.length} bytes, expected 20`);
  }
  const handle = new DataView(p.buffer, p.byteOffset, 4).getUint32(0);
  return ok({ handle, token: p.slice(4, ATTACH_LEN) });
}

export function encodeStatus(status: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, status);
  return b;
}

export function decodeStatus(p: Uint8Array): Result<number> {
  if (p.length !== 4) {
    return err(`status frame of ${p.length} bytes, expected 4`);
  }
  return ok(new DataView(p.buffer, p.byteOffset, 4).getInt32(0));
}

/** Constant-time comparison of two tokens. */
export function sameToken(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}
