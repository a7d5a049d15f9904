/**
 * A small DNS message codec: what a UDP layer's dynamic DNS needs, and no
 * more. Queries for A and AAAA records (RFC 1035, RFC 3596), their
 * responses, and UPDATE messages (RFC 2136) that add and delete records.
 *
 * Pure functions over bytes. Malformed input (short, truncated, bad labels,
 * compression loops) gives an error Result; nothing here throws.
 *
 * Names are dotted text, fully qualified with a trailing dot (the root is
 * "."); bytes of a label outside printable ASCII, and "." and "\" inside a
 * label, are written `\DDD` as in zone files.
 */
import { isIPv4, isIPv6 } from "../util/ip.ts";
import { err, ok, type Result } from "../util/result.ts";

export const TYPE_A = 1;
export const TYPE_NS = 2;
export const TYPE_CNAME = 5;
export const TYPE_SOA = 6;
export const TYPE_AAAA = 28;
export const TYPE_ANY = 255;

export const CLASS_IN = 1;
/** RFC 2136 2.5.4: "delete an RR from an RRset". */
export const CLASS_NONE = 254;
/** RFC 2136 2.5.2: "delete an RRset" (with type) or all RRsets (type ANY). */
export const CLASS_ANY = 255;

export const OPCODE_QUERY = 0;
export const OPCODE_UPDATE = 5;

export const RCODE_NOERROR = 0;
export const RCODE_FORMERR = 1;
export const RCODE_SERVFAIL = 2;
export const RCODE_NXDOMAIN = 3;
export const RCODE_NOTIMP = 4;
export const RCODE_REFUSED = 5;
export const RCODE_NOTAUTH = 9;
export const RCODE_NOTZONE = 10;

const RCODE_NAMES: Record<number, string> = {
  0: "NOERROR",
  1: "FORMERR",
  2: "SERVFAIL",
  3: "NXDOMAIN",
  4: "NOTIMP",
  5: "REFUSED",
  6: "YXDOMAIN",
  7: "YXRRSET",
  8: "NXRRSET",
  9: "NOTAUTH",
  10: "NOTZONE",
};

/** The mnemonic of a response code, e.g. `REFUSED`, or `RCODE 23`. */
export function rcodeName(rcode: number): string {
  return RCODE_NAMES[rcode] ?? `RCODE ${rcode}`;
}

export const HEADER_LEN = 12;
export const MAX_LABEL = 63;
/** Longest name on the wire, length octets and the final zero included. */
export const MAX_NAME_WIRE = 255;
/** Most compression pointers followed in one name. */
const MAX_POINTERS = 64;

export interface Header {
  id: number;
  /** True in a response. */
  qr: boolean;
  opcode: number;
  /** Authoritative answer. */
  aa: boolean;
  /** Truncated: the full answer did not fit. */
  tc: boolean;
  rd: boolean;
  ra: boolean;
  rcode: number;
  /** QDCOUNT (ZOCOUNT in an UPDATE). */
  qdcount: number;
  /** ANCOUNT (PRCOUNT). */
  ancount: number;
  /** NSCOUNT (UPCOUNT). */
  nscount: number;
  arcount: number;
}

export interface Question {
  name: string;
  type: number;
  class: number;
}

export interface ResourceRecord {
  name: string;
  type: number;
  class: number;
  /** Seconds (unsigned 32 bits). */
  ttl: number;
  rdata: Uint8Array;
}

export interface Message {
  header: Header;
  /** The question section (the zone section of an UPDATE). */
  questions: Question[];
  /** The answer section (prerequisites of an UPDATE). */
  answers: ResourceRecord[];
  /** The authority section (updates of an UPDATE). */
  authority: ResourceRecord[];
  additional: ResourceRecord[];
}

// ---------------------------------------------------------------------------
// Names

/** `label.zone.` as a fully qualified name; zone "." (or "") is the root. */
export function fqdn(label: string, zone: string): string {
  const z = zone.replace(/\.+$/, "");
  return z === "" ? `${label}.` : `${label}.${z}.`;
}

/** The name in lower case with exactly one trailing dot ("." for the root). */
export function canonicalName(name: string): string {
  const n = name.replace(/\.+$/, "").toLowerCase();
  return n === "" ? "." : `${n}.`;
}

/** True when `name` is `zone` or below it (case-insensitive). */
export function inZone(name: string, zone: string): boolean {
  const n = canonicalName(name);
  const z = canonicalName(zone);
  return z === "." || n === z || n.endsWith(`.${z}`);
}

const encoder = new TextEncoder();

/** A dotted name in wire form (labels with length octets, no compression). */
export function encodeName(name: string): Result<Uint8Array> {
  const trimmed = name.endsWith(".") ? name.slice(0, -1) : name;
  const labels = trimmed === "" ? [] : trimmed.split(".");
  const parts: Uint8Array[] = [];
  let len = 1;
  for (const l of labels) {
    const b = encoder.encode(l);
    if (b.length === 0) {
      return err(`invalid DNS name ${JSON.stringify(name)}: empty label`);
    }
    if (b.length > MAX_LABEL) {
      return err(
        `invalid DNS name ${
          JSON.stringify(name)
        }: a label is longer than ${MAX_LABEL} bytes`,
      );
    }
    parts.push(b);
    len += 1 + b.length;
  }
  if (len > MAX_NAME_WIRE) {
    return err(
      `invalid DNS name ${
        JSON.stringify(name)
      }: longer than ${MAX_NAME_WIRE} bytes`,
    );
  }
  const out = new Uint8Array(len);
  let off = 0;
  for (const p of parts) {
    out[off++] = p.length;
    out.set(p, off);
    off += p.length;
  }
  out[off] = 0;
  return ok(out);
}

function labelText(b: Uint8Array): string {
  let s = "";
  for (const c of b) {
    if (c > 0x20 && c < 0x7f && c !== 0x2e && c !== 0x5c) {
      s += String.fromCharCode(c);
    } else {
      s += "\\" + String(c).padStart(3, "0");
    }
  }
  return s;
}

/**
 * Reads a name at `off`, following compression pointers (RFC 1035 4.1.4).
 * A pointer must point backwards, at most 64 are followed, and the name may
 * not exceed 255 bytes: loops and forward tricks are errors.
 * `next` is the offset just after the name where it was found.
 */
export function readName(
  buf: Uint8Array,
  off: number,
): Result<{ name: string; next: number }> {
  const labels: string[] = [];
  let pos = off;
  let next = -1;
  let pointers = 0;
  let wire = 1;
  for (;;) {
    if (pos >= buf.length) {
      return err("a name runs past the end of the message");
    }
    const len = buf[pos]!;
    const kind = len & 0xc0;
    if (kind === 0xc0) {
      if (pos + 1 >= buf.length) {
        return err("a compression pointer runs past the end of the message");
      }
      const target = ((len & 0x3f) << 8) | buf[pos + 1]!;
      if (target >= pos) {
        return err(`a compression pointer at ${pos} does not point backwards`);
      }
      if (++pointers > MAX_POINTERS) {
        return err("too many compression pointers");
      }
      if (next < 0) next = pos + 2;
      pos = target;
      continue;
    }
    if (kind !== 0) {
      return err(`reserved label type 0x${kind.toString(16)} at ${pos}`);
    }
    if (len === 0) {
      if (next < 0) next = pos + 1;
      break;
    }
    if (pos + 1 + len > buf.length) {
      return err("a label runs past the end of the message");
    }
    wire += 1 + len;
    if (wire > MAX_NAME_WIRE) {
      return err(`a name is longer than ${MAX_NAME_WIRE} bytes`);
    }
    labels.push(labelText(buf.subarray(pos + 1, pos + 1 + len)));
    pos += 1 + len;
  }
  return ok({ name: labels.length === 0 ? "." : labels.join(".") + ".", next });
}

// ---------------------------------------------------------------------------
// Addresses

/** The 4 (IPv4) or 16 (IPv6) bytes of an address literal. */
export function encodeAddress(ip: string): Result<Uint8Array> {
  if (isIPv4(ip)) return ok(new Uint8Array(ip.split(".").map(Number)));
  if (!isIPv6(ip)) return err(`${JSON.stringify(ip)} is not an IP address`);
  const out = new Uint8Array(16);
  let text = ip;
  let v4: number[] | undefined;
  const lastColon = text.lastIndexOf(":");
  if (text.slice(lastColon + 1).includes(".")) {
    // An embedded IPv4 tail: parse the rest with two zero groups in its place.
    v4 = text.slice(lastColon + 1).split(".").map(Number);
    text = text.slice(0, lastColon + 1) + "0:0";
  }
  const [head, rest] = text.split("::") as [string, string | undefined];
  const hs = head === "" ? [] : head.split(":");
  const rs = rest === undefined || rest === "" ? [] : rest.split(":");
  const groups = rest === undefined
    ? hs
    : [...hs, ...new Array<string>(8 - hs.length - rs.length).fill("0"), ...rs];
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[2 * i] = v >> 8;
    out[2 * i + 1] = v & 0xff;
  });
  if (v4 !== undefined) out.set(v4, 12);
  return ok(out);
}

/** IPv6 text as RFC 5952 writes it: lower case, longest zero run as "::". */
function ipv6Text(b: Uint8Array): string {
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push((b[i]! << 8) | b[i + 1]!);
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(":");
  if (best < 0) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

/** The address text of an A (4 bytes) or AAAA (16 bytes) record's data. */
export function decodeAddress(rdata: Uint8Array): Result<string> {
  if (rdata.length === 4) return ok([...rdata].join("."));
  if (rdata.length === 16) return ok(ipv6Text(rdata));
  return err(`address data of ${rdata.length} bytes (expected 4 or 16)`);
}

// ---------------------------------------------------------------------------
// Encoding

class Writer {
  #parts: Uint8Array[] = [];
  #len = 0;
  bytes(b: Uint8Array): void {
    this.#parts.push(b);
    this.#len += b.length;
  }
  u16(v: number): void {
    this.bytes(new Uint8Array([(v >> 8) & 0xff, v & 0xff]));
  }
  u32(v: number): void {
    this.u16((v >>> 16) & 0xffff);
    this.u16(v & 0xffff);
  }
  done(): Uint8Array {
    const out = new Uint8Array(this.#len);
    let off = 0;
    for (const p of this.#parts) {
      out.set(p, off);
      off += p.length;
    }
    return out;
  }
}

function checkU16(what: string, v: number): string | undefined {
  return Number.isInteger(v) && v >= 0 && v <= 0xffff
    ? undefined
    : `${what} must be an integer from 0 to 65535, not ${v}`;
}

function header(
  w: Writer,
  id: number,
  flags: number,
  counts: [number, number, number, number],
): void {
  w.u16(id);
  w.u16(flags);
  for (const c of counts) w.u16(c);
}

export interface QueryOptions {
  id: number;
  name: string;
  type: number;
  /** Recursion desired; off by default (we ask the authoritative server). */
  rd?: boolean;
}

/** A standard query with one question of class IN. */
export function encodeQuery(q: QueryOptions): Result<Uint8Array> {
  const bad = checkU16("a DNS id", q.id) ?? checkU16("a DNS type", q.type);
  if (bad !== undefined) return err(bad);
  const name = encodeName(q.name);
  if (!name.ok) return name;
  const w = new Writer();
  header(w, q.id, q.rd ? 0x0100 : 0, [1, 0, 0, 0]);
  w.bytes(name.value);
  w.u16(q.type);
  w.u16(CLASS_IN);
  return ok(w.done());
}

/** One change in an UPDATE's update section (RFC 2136 2.5). */
export type UpdateOp =
  /** Add an RR to an RRset (class IN). */
  | { op: "add"; name: string; type: number; ttl: number; rdata: Uint8Array }
  /** Delete an RRset: class ANY, TTL 0, no data. */
  | { op: "delete-rrset"; name: string; type: number }
  /** Delete one RR from an RRset: class NONE, TTL 0, its data. */
  | { op: "delete-rr"; name: string; type: number; rdata: Uint8Array };

export interface UpdateOptions {
  id: number;
  /** The zone section: this name, type SOA, class IN. */
  zone: string;
  updates: UpdateOp[];
}

/** An UPDATE message (opcode 5) with an empty prerequisite section. */
export function encodeUpdate(u: UpdateOptions): Result<Uint8Array> {
  const bad = checkU16("a DNS id", u.id) ??
    (u.updates.length > 0xffff ? "too many updates" : undefined);
  if (bad !== undefined) return err(bad);
  const zone = encodeName(u.zone);
  if (!zone.ok) return zone;
  const w = new Writer();
  header(w, u.id, OPCODE_UPDATE << 11, [1, 0, u.updates.length, 0]);
  w.bytes(zone.value);
  w.u16(TYPE_SOA);
  w.u16(CLASS_IN);
  for (const op of u.updates) {
    const name = encodeName(op.name);
    if (!name.ok) return name;
    if (!inZone(op.name, u.zone)) {
      return err(`${op.name} is not in zone ${canonicalName(u.zone)}`);
    }
    const t = checkU16("a DNS type", op.type);
    if (t !== undefined) return err(t);
    w.bytes(name.value);
    w.u16(op.type);
    switch (op.op) {
      case "add":
        if (!Number.isInteger(op.ttl) || op.ttl < 0 || op.ttl > 0x7fffffff) {
          return err(
            `a TTL must be an integer from 0 to 2147483647, not ${op.ttl}`,
          );
        }
        if (op.rdata.length > 0xffff) return err("record data too long");
        w.u16(CLASS_IN);
        w.u32(op.ttl);
        w.u16(op.rdata.length);
        w.bytes(op.rdata);
        break;
      case "delete-rrset":
        w.u16(CLASS_ANY);
        w.u32(0);
        w.u16(0);
        break;
      case "delete-rr":
        if (op.rdata.length > 0xffff) return err("record data too long");
        w.u16(CLASS_NONE);
        w.u32(0);
        w.u16(op.rdata.length);
        w.bytes(op.rdata);
        break;
    }
  }
  return ok(w.done());
}

// ---------------------------------------------------------------------------
// Decoding

function u16(b: Uint8Array, off: number): number {
  return (b[off]! << 8) | b[off + 1]!;
}

/** The 12-byte header alone (enough to match a response to its request). */
export function parseHeader(buf: Uint8Array): Result<Header> {
  if (buf.length < HEADER_LEN) {
    return err(`${buf.length} bytes, shorter than a DNS header (12)`);
  }
  const flags = u16(buf, 2);
  return ok({
    id: u16(buf, 0),
    qr: (flags & 0x8000) !== 0,
    opcode: (flags >> 11) & 0xf,
    aa: (flags & 0x0400) !== 0,
    tc: (flags & 0x0200) !== 0,
    rd: (flags & 0x0100) !== 0,
    ra: (flags & 0x0080) !== 0,
    rcode: flags & 0xf,
    qdcount: u16(buf, 4),
    ancount: u16(buf, 6),
    nscount: u16(buf, 8),
    arcount: u16(buf, 10),
  });
}

/** A whole message; anything cut short or malformed is an error. */
export function parseMessage(buf: Uint8Array): Result<Message> {
  const h = parseHeader(buf);
  if (!h.ok) return h;
  let off = HEADER_LEN;
  const questions: Question[] = [];
  for (let i = 0; i < h.value.qdcount; i++) {
    const n = readName(buf, off);
    if (!n.ok) return err(`question ${i + 1}: ${n.error}`);
    off = n.value.next;
    if (off + 4 > buf.length) {
      return err(`question ${i + 1} runs past the end of the message`);
    }
    questions.push({
      name: n.value.name,
      type: u16(buf, off),
      class: u16(buf, off + 2),
    });
    off += 4;
  }
  const section = (
    count: number,
    what: string,
  ): Result<ResourceRecord[]> => {
    const out: ResourceRecord[] = [];
    for (let i = 0; i < count; i++) {
      const n = readName(buf, off);
      if (!n.ok) return err(`${what} record ${i + 1}: ${n.error}`);
      off = n.value.next;
      if (off + 10 > buf.length) {
        return err(`${what} record ${i + 1} runs past the end of the message`);
      }
      const rdlen = u16(buf, off + 8);
      if (off + 10 + rdlen > buf.length) {
        return err(
          `${what} record ${i + 1}: its data runs past the end of the message`,
        );
      }
      out.push({
        name: n.value.name,
        type: u16(buf, off),
        class: u16(buf, off + 2),
        ttl: ((u16(buf, off + 4) << 16) >>> 0) + u16(buf, off + 6),
        rdata: buf.slice(off + 10, off + 10 + rdlen),
      });
      off += 10 + rdlen;
    }
    return ok(out);
  };
  const answers = section(h.value.ancount, "answer");
  if (!answers.ok) return answers;
  const authority = section(h.value.nscount, "authority");
  if (!authority.ok) return authority;
  const additional = section(h.value.arcount, "additional");
  if (!additional.ok) return additional;
  return ok({
    header: h.value,
    questions,
    answers: answers.value,
    authority: authority.value,
    additional: additional.value,
  });
}

export interface Expected {
  id: number;
  opcode: number;
  /** When the response repeats a question, it must be this one. */
  question?: { name: string; type: number };
}

/**
 * Checks that `buf` is the complete response to the request described by
 * `expect`; the error says why not (wrong id, not a response, truncated,
 * malformed, another question), so that the caller can log it and wait on.
 */
export function checkResponse(
  buf: Uint8Array,
  expect: Expected,
): Result<Message> {
  const h = parseHeader(buf);
  if (!h.ok) return err(`malformed: ${h.error}`);
  if (h.value.id !== expect.id) {
    return err(`wrong id ${h.value.id} (expected ${expect.id})`);
  }
  if (!h.value.qr) return err("not a response (QR bit clear)");
  if (h.value.opcode !== expect.opcode) {
    return err(`opcode ${h.value.opcode} (expected ${expect.opcode})`);
  }
  if (h.value.tc) return err("truncated (TC bit set)");
  const m = parseMessage(buf);
  if (!m.ok) return err(`malformed: ${m.error}`);
  const q = expect.question;
  const got = m.value.questions[0];
  if (q !== undefined && got !== undefined) {
    if (
      canonicalName(got.name) !== canonicalName(q.name) || got.type !== q.type
    ) {
      return err(`answers another question (${got.name} type ${got.type})`);
    }
  }
  return m;
}

/**
 * The addresses of the requested type in a response's answer section, and
 * the smallest TTL among them (seconds).
 */
export function answerAddresses(
  m: Message,
  type: typeof TYPE_A | typeof TYPE_AAAA,
): { addresses: string[]; ttl: number } {
  const addresses: string[] = [];
  let ttl = Number.MAX_SAFE_INTEGER;
  for (const rr of m.answers) {
    if (rr.type !== type || rr.class !== CLASS_IN) continue;
    const a = decodeAddress(rr.rdata);
    if (!a.ok || (type === TYPE_A) !== (rr.rdata.length === 4)) continue;
    addresses.push(a.value);
    ttl = Math.min(ttl, rr.ttl);
  }
  return { addresses, ttl: addresses.length === 0 ? 0 : ttl };
}
