/**
 * A small validator for the messages that cross process boundaries. A schema
 * both checks an untrusted value and gives its TypeScript type, so that each
 * message is defined once.
 */
import { err, ok, type Result } from "../util/result.ts";

export interface Schema<T> {
  readonly describe: string;
  parse(v: unknown, path: string): Result<T>;
}

export type Infer<S> = S extends Schema<infer T> ? T : never;

function typeOf(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  return typeof v === "object" ? "an object" : `a ${typeof v}`;
}

function mismatch<T>(path: string, expected: string, v: unknown): Result<T> {
  return err(`${path}: expected ${expected}, got ${typeOf(v)}`);
}

export function str(opts: { min?: number; max?: number } = {}): Schema<string> {
  const min = opts.min ?? 0;
  const max = opts.max ?? 4096;
  return {
    describe: "a string",
    parse(v, path) {
      if (typeof v !== "string") return mismatch(path, "a string", v);
      if (v.length < min) {
        return err(`${path}: must not be shorter than ${min}`);
      }
      if (v.length > max) return err(`${path}: longer than ${max} characters`);
      return ok(v);
    },
  };
}

export function int(min: number, max: number): Schema<number> {
  return {
    describe: `an integer from ${min} to ${max}`,
    parse(v, path) {
      if (typeof v !== "number" || !Number.isInteger(v)) {
        return mismatch(path, "an integer", v);
      }
      if (v < min || v > max) {
        return err(`${path}: ${v} is outside ${min}..${max}`);
      }
      return ok(v);
    },
  };
}

export const bool: Schema<boolean> = {
  describe: "a boolean",
  parse(v, path) {
    return typeof v === "boolean" ? ok(v) : mismatch(path, "a boolean", v);
  },
};

export function lit<const L extends string>(...values: L[]): Schema<L> {
  const d = values.map((x) => JSON.stringify(x)).join(" or ");
  return {
    describe: d,
    parse(v, path) {
      return typeof v === "string" && (values as string[]).includes(v)
        ? ok(v as L)
        : err(`${path}: expected ${d}`);
    },
  };
}

/** The value of each lowercase hex digit by its char code; -1 otherwise. */
const HEX_VALUE = new Int8Array(128).fill(-1);
for (let d = 0; d < 16; d++) HEX_VALUE["0123456789abcdef".charCodeAt(d)] = d;

/** Whether every character of `v` is a lowercase hex digit. */
function allHexDigits(v: string): boolean {
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c >= 128 || HEX_VALUE[c]! < 0) return false;
  }
  return true;
}

/** Bytes travel as lowercase hex strings. */
export function hex(
  opts: { len?: number; max?: number } = {},
): Schema<Uint8Array> {
  const max = opts.max ?? 65536;
  return {
    describe: "hex bytes",
    parse(v, path) {
      if (typeof v !== "string") return mismatch(path, "a hex string", v);
      if (v.length % 2 !== 0 || !allHexDigits(v)) {
        return err(`${path}: not lowercase hex`);
      }
      const n = v.length / 2;
      if (opts.len !== undefined && n !== opts.len) {
        return err(`${path}: expected ${opts.len} bytes, got ${n}`);
      }
      if (n > max) return err(`${path}: more than ${max} bytes`);
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) {
        out[i] = (HEX_VALUE[v.charCodeAt(2 * i)]! << 4) |
          HEX_VALUE[v.charCodeAt(2 * i + 1)]!;
      }
      return ok(out);
    },
  };
}

export function bigintStr(): Schema<bigint> {
  return {
    describe: "an unsigned 64-bit integer as a decimal string",
    parse(v, path) {
      if (typeof v !== "string" || !/^[0-9]{1,20}$/.test(v)) {
        return mismatch(path, "a decimal string", v);
      }
      const b = BigInt(v);
      if (b > 0xffff_ffff_ffff_ffffn) {
        return err(`${path}: larger than 64 bits`);
      }
      return ok(b);
    },
  };
}

export function arr<T>(item: Schema<T>, max = 1024): Schema<T[]> {
  return {
    describe: `an array of ${item.describe}`,
    parse(v, path) {
      if (!Array.isArray(v)) return mismatch(path, `an array`, v);
      if (v.length > max) return err(`${path}: more than ${max} entries`);
      const out: T[] = [];
      for (let i = 0; i < v.length; i++) {
        const r = item.parse(v[i], `${path}[${i}]`);
        if (!r.ok) return r;
        out.push(r.value);
      }
      return ok(out);
    },
  };
}

export interface Optional<T> extends Schema<T | undefined> {
  readonly optional: true;
}

export function opt<T>(inner: Schema<T>): Optional<T> {
  return {
    optional: true,
    describe: `optional ${inner.describe}`,
    parse(v, path) {
      return v === undefined || v === null
        ? ok(undefined)
        : inner.parse(v, path);
    },
  };
}

type Shape = Record<string, Schema<unknown>>;
type OptionalKeys<S extends Shape> = {
  [K in keyof S]: S[K] extends Optional<unknown> ? K : never;
}[keyof S];
type RequiredKeys<S extends Shape> = Exclude<keyof S, OptionalKeys<S>>;
export type ObjectOf<S extends Shape> =
  & { [K in RequiredKeys<S>]: Infer<S[K]> }
  & { [K in OptionalKeys<S>]?: Exclude<Infer<S[K]>, undefined> };

export function obj<S extends Shape>(shape: S): Schema<ObjectOf<S>> {
  // Listed once: every message parses through here.
  const keys = Object.keys(shape);
  const schemas = keys.map((k) => shape[k]!);
  return {
    describe: "an object",
    parse(v, path) {
      if (typeof v !== "object" || v === null || Array.isArray(v)) {
        return mismatch(path, "an object", v);
      }
      const src = v as Record<string, unknown>;
      const out: Record<string, unknown> = {};
      for (let i = 0; i < keys.length; i++) {
        const k = keys[i]!;
        const r = schemas[i]!.parse(src[k], `${path}.${k}`);
        if (!r.ok) return r;
        if (r.value !== undefined) out[k] = r.value;
      }
      return ok(out as ObjectOf<S>);
    },
  };
}

/** The char codes of each byte's two lowercase hex digits. */
const HEX_CODES = new Uint16Array(512);
for (let b = 0; b < 256; b++) {
  const pair = b.toString(16).padStart(2, "0");
  HEX_CODES[2 * b] = pair.charCodeAt(0);
  HEX_CODES[2 * b + 1] = pair.charCodeAt(1);
}
/** Bytes turned into hex per String.fromCharCode call (its arguments). */
const HEX_CHUNK = 4096;
/**
 * The char codes of one chunk, reused (its length never changes: optimized
 * code would give up on an array that grows and shrinks).
 */
const hexScratch = new Uint16Array(2 * HEX_CHUNK);

/** Lowercase hex of `v`: one string, without one per byte on the way. */
export function hexString(v: Uint8Array): string {
  let s = "";
  for (let at = 0; at < v.length; at += HEX_CHUNK) {
    const end = Math.min(v.length, at + HEX_CHUNK);
    for (let i = at, j = 0; i < end; i++, j += 2) {
      const b = v[i]!;
      hexScratch[j] = HEX_CODES[2 * b]!;
      hexScratch[j + 1] = HEX_CODES[2 * b + 1]!;
    }
    // apply takes any array-like (and is several times faster than a
    // spread of the typed array); its type says number[] only.
    s += String.fromCharCode.apply(
      null,
      hexScratch.subarray(0, 2 * (end - at)) as unknown as number[],
    );
  }
  return s;
}

/**
 * JSON.stringify's replacer for the JSON form (toJsonValue): the same text
 * as JSON.stringify(toJsonValue(v)) for the plain data of messages, without
 * copying the value first.
 */
export function jsonReplacer(_key: string, v: unknown): unknown {
  if (v instanceof Uint8Array) return hexString(v);
  if (typeof v === "bigint") return v.toString();
  return v;
}

/** JSON form of a value: bytes as hex, bigints as decimal strings. */
export function toJsonValue(v: unknown): unknown {
  if (v instanceof Uint8Array) return hexString(v);
  if (typeof v === "bigint") return v.toString();
  if (Array.isArray(v)) return v.map(toJsonValue);
  if (typeof v === "object" && v !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      if (x !== undefined) out[k] = toJsonValue(x);
    }
    return out;
  }
  return v;
}
