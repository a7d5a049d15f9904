/** Bytes as lowercase hex and back. */
import { err, ok, type Result } from "../util/result.ts";

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
