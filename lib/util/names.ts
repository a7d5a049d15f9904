/** Names: any UTF-8 string of 1 to 255 bytes. */

export const MAX_NAME_BYTES = 255;

const encoder = new TextEncoder();

export function utf8Length(s: string): number {
  return encoder.encode(s).length;
}

/** Why a string is not a valid name, or undefined if it is one. */
export function checkName(s: string, what = "name"): string | undefined {
  if (s.length === 0) return `empty ${what}`;
  const n = utf8Length(s);
  if (n > MAX_NAME_BYTES) {
    return `${what} is ${n} bytes long in UTF-8, at most ${MAX_NAME_BYTES} allowed`;
  }
  return undefined;
}
