/**
 * Name hashing for UDP layers: a name is known on the wire (FLOW_REQ) by the
 * 16-byte MD5 of its UTF-8 bytes (no terminator) and in the directory by the
 * lowercase hex of that digest. UDP layers always use MD5.
 */
import { md5 } from "./digest.ts";
import { toHex } from "./hex.ts";

export { fromHex, toHex } from "./hex.ts";

/** Length of a name hash in a UDP layer (MD5). */
export const NAME_HASH_LEN = 16;

const encoder = new TextEncoder();

/** The MD5 of the UTF-8 bytes of `name`: 16 bytes. */
export function nameHash(name: string): Uint8Array {
  return md5(encoder.encode(name));
}

/** The directory key of `name`: lowercase hex of its MD5 (32 characters). */
export function nameHashHex(name: string): string {
  return toHex(nameHash(name));
}
