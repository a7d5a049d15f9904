/**
 * Name hashing for UDP layers: a name is known on the wire (FLOW_REQ) by the
 * 16-byte MD5 of its UTF-8 bytes (no terminator) and in the directory by the
 * lowercase hex of that digest. UDP layers always use MD5.
 */
import { createHash } from "node:crypto";
import { err, ok, type Result } from "./result.ts";

/** Length of a name hash in a UDP layer (MD5). */
export const NAME_HASH_LEN = 16;

const encoder = new TextEncoder();

/** The MD5 of the UTF-8 bytes of `name`: 16 bytes. */
export function nameHash(name: string): Uint8Array {
  const digest = createHash("md5").update(encoder.encode(name)).digest();
  return new Uint8Array(digest.buffer, digest.byteOffset, digest.byteLength)
    .slice();
}

/** The directory key of `name`: lowercase hex of its MD5 (32 characters). */
export function nameHashHex(name: string): string {
  return toHex(nameHash(name));
}

const HEX_DIGITS = "0123456789abcdef";

/** Lowercase hex of `bytes`, two digits a byte, no separators. */
export function toHex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) {
    s += HEX_DIGITS[b >> 4]! + HEX_DIGITS[b & 0xf]!;
  }
  return s;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30; // 0-9
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10; // a-f
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10; // A-F
  return -1;
}

/**
 * Parses hex digits (either case, no separators, no prefix) into bytes.
 * An odd number of digits or any non-hex character is an error.
 */
export function fromHex(str: string): Result<Uint8Array> {
  if (str.length % 2 !== 0) {
    return err(`hex string has an odd number of digits (${str.length})`);
  }
  const out = new Uint8Array(str.length / 2);
  for (let i = 0; i < out.length; i++) {
    const hi = hexValue(str.charCodeAt(2 * i));
    const lo = hexValue(str.charCodeAt(2 * i + 1));
    if (hi < 0 || lo < 0) {
      const pos = hi < 0 ? 2 * i : 2 * i + 1;
      return err(
        `invalid hex digit ${JSON.stringify(str[pos])} at position ${pos}`,
      );
    }
    out[i] = (hi << 4) | lo;
  }
  return ok(out);
}
