/**
 * The protobuf messages of the unicast IPCP, loaded from the .proto files in
 * proto/ (compiled into the module graph as text, parsed once at start-up by
 * protobufjs: no generated code).
 *
 * The codecs of the components go through two functions:
 *
 * - `pbDecode(type, bytes, read)`: never throws. Bytes that are no valid
 *   `type` (truncated, a required field missing, a nested message too deep)
 *   give an error value; so does anything `read` rejects through the `PbObj`
 *   accessors or `PbObj.fail`.
 * - `pbEncode(type, fields)`: the proto2 encoding the C peers use (protobuf-c):
 *   fields in field-number order, every required field present even when it
 *   is zero, an optional field only when given, repeated fields unpacked.
 *   64-bit values are passed as bigints.
 *
 * Field names are those of the .proto files (snake_case).
 */
import { parse, Root, type Type } from "protobufjs";
import { err, ok, type Result } from "../../lib/util/result.ts";
import cepProto from "./proto/cep.proto" with { type: "text" };
import dhtProto from "./proto/dht.proto" with { type: "text" };
import enrollProto from "./proto/enroll.proto" with { type: "text" };
import ipcpConfigProto from "./proto/ipcp_config.proto" with { type: "text" };
import modelProto from "./proto/model.proto" with { type: "text" };

/** The .proto files by name, as parsed into the root (for the tests). */
export const PROTO_FILES: Readonly<Record<string, string>> = Object.freeze({
  "cep.proto": cepProto,
  "dht.proto": dhtProto,
  "enroll.proto": enrollProto,
  "ipcp_config.proto": ipcpConfigProto,
  "model.proto": modelProto,
});

const root = new Root();
for (const text of Object.values(PROTO_FILES)) {
  parse(text, root, { keepCase: true });
}
root.resolveAll();

/** A message type of the schema (protobufjs reflection). */
export type PbType = Type;

/** A message type of proto/ by its name (e.g. "cep_msg"). */
export function pbType(name: string): Type {
  return root.lookupType(name);
}

/** What `PbObj` accessors and `fail` throw; `pbDecode` turns it into an error. */
class PbReject extends Error {}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (v instanceof Uint8Array) return `${v.length} bytes`;
  return typeof v;
}

/**
 * Read access to a decoded message: typed getters for its fields, each
 * failing the decode when the field is not what the schema says.
 */
export class PbObj {
  readonly #o: Readonly<Record<string, unknown>>;
  readonly #path: string;

  constructor(o: Readonly<Record<string, unknown>>, path: string) {
    this.#o = o;
    this.#path = path;
  }

  /** Fails the decode with `why` (a field's value is out of range, ...). */
  fail(why: string): never {
    throw new PbReject(`${this.#path}: ${why}`);
  }

  #get(name: string): unknown {
    const v = this.#o[name];
    if (v === undefined || v === null) this.fail(`${name} is missing`);
    return v;
  }

  #bad(name: string, want: string, v: unknown): never {
    this.fail(`${name} is ${describe(v)}, not ${want}`);
  }

  /** A 32-bit integer field (int32 or uint32). */
  int(name: string): number {
    const v = this.#get(name);
    if (typeof v !== "number" || !Number.isInteger(v)) {
      this.#bad(name, "an integer", v);
    }
    return v;
  }

  /** A 64-bit integer field (int64 or uint64). */
  long(name: string): bigint {
    const v = this.#get(name);
    if (typeof v !== "string" || !/^-?\d+$/.test(v)) {
      this.#bad(name, "a 64-bit integer", v);
    }
    return BigInt(v);
  }

  str(name: string): string {
    const v = this.#get(name);
    if (typeof v !== "string") this.#bad(name, "a string", v);
    return v;
  }

  /** A bytes field, copied (never a view into the decoded buffer). */
  bytes(name: string): Uint8Array {
    const v = this.#get(name);
    if (!(v instanceof Uint8Array)) this.#bad(name, "bytes", v);
    return new Uint8Array(v);
  }

  /** A message field that must be present. */
  msg(name: string): PbObj {
    const m = this.opt(name);
    if (m === undefined) this.fail(`${name} is missing`);
    return m;
  }

  /** An optional message field. */
  opt(name: string): PbObj | undefined {
    const v = this.#o[name];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "object" || v instanceof Uint8Array || Array.isArray(v)) {
      this.#bad(name, "a message", v);
    }
    return new PbObj(v as Record<string, unknown>, `${this.#path}.${name}`);
  }

  #list(name: string): unknown[] {
    const v = this.#o[name];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) this.#bad(name, "a list", v);
    return v;
  }

  /** A repeated 32-bit integer field. */
  ints(name: string): number[] {
    return this.#list(name).map((v) => {
      if (typeof v !== "number" || !Number.isInteger(v)) {
        this.#bad(name, "a list of integers", v);
      }
      return v;
    });
  }

  /** A repeated bytes field, each element copied. */
  bytesList(name: string): Uint8Array[] {
    return this.#list(name).map((v) => {
      if (!(v instanceof Uint8Array)) this.#bad(name, "a list of bytes", v);
      return new Uint8Array(v);
    });
  }

  /** A repeated message field. */
  msgs(name: string): PbObj[] {
    return this.#list(name).map((v, i) => {
      if (typeof v !== "object" || v === null || v instanceof Uint8Array) {
        this.#bad(name, "a list of messages", v);
      }
      return new PbObj(
        v as Record<string, unknown>,
        `${this.#path}.${name}[${i}]`,
      );
    });
  }
}

/**
 * Decodes `bytes` as a `type` and maps it with `read`. Never throws: bytes
 * protobufjs cannot decode, and anything `read` rejects through its `PbObj`,
 * give an error value. An exception of any other kind from `read` is a bug
 * of the caller and is not caught.
 */
export function pbDecode<T>(
  type: Type,
  bytes: Uint8Array,
  read: (m: PbObj) => T,
): Result<T> {
  let o: Record<string, unknown>;
  try {
    o = type.toObject(type.decode(bytes), { longs: String, arrays: true });
  } catch (e) {
    return err(`${type.name}: ${e instanceof Error ? e.message : String(e)}`);
  }
  try {
    return ok(read(new PbObj(o, type.name)));
  } catch (e) {
    if (e instanceof PbReject) return err(e.message);
    throw e;
  }
}

/** A field value to encode: 64-bit integers are bigints. */
export type PbValue =
  | number
  | bigint
  | string
  | Uint8Array
  | PbFields
  | readonly PbValue[];

/** The fields of a message to encode; an undefined field is left out. */
export interface PbFields {
  readonly [name: string]: PbValue | undefined;
}

function toPlain(v: PbValue): unknown {
  if (typeof v === "bigint") return v.toString();
  if (typeof v !== "object" || v instanceof Uint8Array) return v;
  if (Array.isArray(v)) return v.map(toPlain);
  return plainFields(v as PbFields);
}

function plainFields(f: PbFields): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(f)) {
    if (v !== undefined) out[k] = toPlain(v);
  }
  return out;
}

/**
 * Encodes `fields` as a `type`. Values must already be in range (the
 * callers check them with the `check*` functions below); a field unknown to
 * the schema or a required one left out is a RangeError.
 */
export function pbEncode(type: Type, fields: PbFields): Uint8Array {
  const plain = plainFields(fields);
  checkKnown(type, plain);
  // a copy: protobufjs may hand out a view into a shared slab
  return new Uint8Array(type.encode(type.fromObject(plain)).finish());
}

function checkKnown(type: Type, plain: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(plain)) {
    const f = type.fields[k];
    if (f === undefined) {
      throw new RangeError(`${type.name}: no field ${k}`);
    }
    const sub = f.resolvedType;
    if (sub !== null && "fields" in sub) {
      const subType = sub as Type;
      for (const e of Array.isArray(v) ? v : [v]) {
        checkKnown(subType, e as Record<string, unknown>);
      }
    }
  }
  for (const f of type.fieldsArray) {
    if (f.required && plain[f.name] === undefined) {
      throw new RangeError(`${type.name}: required field ${f.name} missing`);
    }
  }
}

const U32_MAX = 0xffff_ffff;
const U64_MAX = 0xffff_ffff_ffff_ffffn;

/** Throws a RangeError unless `v` is an integer in 0..2^32-1. */
export function checkU32(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > U32_MAX) {
    throw new RangeError(`${name} ${v} is not a u32`);
  }
}

/** Throws a RangeError unless `v` is an integer in -2^31..2^31-1. */
export function checkI32(name: string, v: number): void {
  if (!Number.isInteger(v) || v < -0x8000_0000 || v > 0x7fff_ffff) {
    throw new RangeError(`${name} ${v} is not an i32`);
  }
}

/** Throws a RangeError unless `v` is in 0..2^64-1. */
export function checkU64(name: string, v: bigint): void {
  if (typeof v !== "bigint" || v < 0n || v > U64_MAX) {
    throw new RangeError(`${name} ${v} is not a u64`);
  }
}

/** Throws a RangeError unless `v` is in -2^63..2^63-1. */
export function checkI64(name: string, v: bigint): void {
  if (typeof v !== "bigint" || v !== BigInt.asIntN(64, v)) {
    throw new RangeError(`${name} ${v} is not an i64`);
  }
}
