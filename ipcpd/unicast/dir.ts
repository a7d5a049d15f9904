/**
 * The directory's DHT messages: one `dht_msg` per DT packet to eid 1 of the
 * destination, cube 0 (spec/unicast.md 2.9; proto/dht.proto).
 *
 * Every message names its sender in `src` (node id and address: answers go
 * to `src.addr`). Keys and node ids have the layer's hash length (32 bytes
 * with SHA3-256); a value is the registering member's address as 8 bytes
 * big-endian (`dhtAddrValue`). Which sub-message a code carries:
 *
 * | code | kind | carries |
 * |---|---|---|
 * | 0 | STORE | store {key, val, exp: absolute Unix seconds} |
 * | 1 | FIND_NODE_REQ | find {cookie, key} |
 * | 2 | FIND_NODE_RSP | node {cookie, key, contacts} |
 * | 3 | FIND_VALUE_REQ | find {cookie, key} |
 * | 4 | FIND_VALUE_RSP | node {...} and val {values}; val is sent even empty |
 *
 * A response echoes its request's cookie and key.
 */
import { err, ok, type Result } from "../../lib/util/result.ts";
import {
  checkU32,
  checkU64,
  pbDecode,
  pbEncode,
  type PbFields,
  type PbObj,
  pbType,
} from "./pb.ts";

export const DHT_STORE = 0;
export const DHT_FIND_NODE_REQ = 1;
export const DHT_FIND_NODE_RSP = 2;
export const DHT_FIND_VALUE_REQ = 3;
export const DHT_FIND_VALUE_RSP = 4;

/** Length of a value: an address, u64 big-endian. */
export const DHT_VALUE_LEN = 8;

export interface DhtContact {
  /** node id, the layer's hash length */
  id: Uint8Array;
  addr: bigint;
}

export interface DhtStore {
  key: Uint8Array;
  /** non-empty */
  val: Uint8Array;
  /** absolute Unix time, seconds (u32) */
  exp: number;
}

export interface DhtFind {
  cookie: bigint;
  key: Uint8Array;
}

export interface DhtNodes {
  cookie: bigint;
  key: Uint8Array;
  contacts: DhtContact[];
}

export interface DhtValues {
  values: Uint8Array[];
}

export type DhtMsg =
  | { code: typeof DHT_STORE; src: DhtContact; store: DhtStore }
  | {
    code: typeof DHT_FIND_NODE_REQ | typeof DHT_FIND_VALUE_REQ;
    src: DhtContact;
    find: DhtFind;
  }
  | { code: typeof DHT_FIND_NODE_RSP; src: DhtContact; node: DhtNodes }
  | {
    code: typeof DHT_FIND_VALUE_RSP;
    src: DhtContact;
    node: DhtNodes;
    val: DhtValues;
  };

const DHT_MSG = pbType("dht_msg");

function contactFields(c: DhtContact): PbFields {
  checkU64("contact.addr", c.addr);
  return { id: c.id, addr: c.addr };
}

function nodesFields(n: DhtNodes): PbFields {
  checkU64("node.cookie", n.cookie);
  return {
    cookie: n.cookie,
    key: n.key,
    contacts: n.contacts.map(contactFields),
  };
}

/**
 * Encodes a DHT message with exactly the sub-messages its code carries.
 * Throws a RangeError for a value out of its field's range.
 */
export function encodeDht(m: DhtMsg): Uint8Array {
  const f: { [name: string]: PbFields | number } = {
    code: m.code,
    src: contactFields(m.src),
  };
  switch (m.code) {
    case DHT_STORE:
      checkU32("store.exp", m.store.exp);
      f.store = { key: m.store.key, val: m.store.val, exp: m.store.exp };
      break;
    case DHT_FIND_NODE_REQ:
    case DHT_FIND_VALUE_REQ:
      checkU64("find.cookie", m.find.cookie);
      f.find = { cookie: m.find.cookie, key: m.find.key };
      break;
    case DHT_FIND_NODE_RSP:
      f.node = nodesFields(m.node);
      break;
    case DHT_FIND_VALUE_RSP:
      f.node = nodesFields(m.node);
      f.val = { values: m.val.values };
      break;
    default:
      throw new RangeError(`unknown DHT code ${(m as DhtMsg).code}`);
  }
  return pbEncode(DHT_MSG, f);
}

function readId(m: PbObj, name: string, hashLen: number): Uint8Array {
  const id = m.bytes(name);
  if (id.length !== hashLen) {
    m.fail(`${name} of ${id.length} bytes, not ${hashLen}`);
  }
  return id;
}

function readContact(m: PbObj, hashLen: number): DhtContact {
  return { id: readId(m, "id", hashLen), addr: m.long("addr") };
}

function readNodes(m: PbObj, hashLen: number): DhtNodes {
  return {
    cookie: m.long("cookie"),
    key: readId(m, "key", hashLen),
    contacts: m.msgs("contacts").map((c) => readContact(c, hashLen)),
  };
}

function readDht(m: PbObj, hashLen: number): DhtMsg {
  const code = m.int("code");
  const src = readContact(m.msg("src"), hashLen);
  if (src.addr === 0n) m.fail("src.addr is 0");
  switch (code) {
    case DHT_STORE: {
      const s = m.msg("store");
      const store = {
        key: readId(s, "key", hashLen),
        val: s.bytes("val"),
        exp: s.int("exp"),
      };
      if (store.val.length === 0) s.fail("val is empty");
      return { code, src, store };
    }
    case DHT_FIND_NODE_REQ:
    case DHT_FIND_VALUE_REQ: {
      const f = m.msg("find");
      return {
        code,
        src,
        find: { cookie: f.long("cookie"), key: readId(f, "key", hashLen) },
      };
    }
    case DHT_FIND_NODE_RSP:
      return { code, src, node: readNodes(m.msg("node"), hashLen) };
    case DHT_FIND_VALUE_RSP: {
      const val = m.opt("val");
      return {
        code,
        src,
        node: readNodes(m.msg("node"), hashLen),
        val: { values: val === undefined ? [] : val.bytesList("values") },
      };
    }
    default:
      m.fail(`unknown code ${code}`);
  }
}

/**
 * Decodes a DHT message for a layer whose hashes take `hashLen` bytes.
 * Never throws. Errors: bytes that are no dht_msg, an unknown code, the
 * code's sub-message missing, a node id or key not `hashLen` bytes (the
 * contacts' ids included), src.addr 0, an empty STORE value. A
 * FIND_VALUE_RSP without `val` reads as one with no values; sub-messages
 * the code does not carry are ignored.
 */
export function decodeDht(buf: Uint8Array, hashLen = 32): Result<DhtMsg> {
  return pbDecode(DHT_MSG, buf, (m) => readDht(m, hashLen));
}

/** A DHT value for address `addr`: u64 big-endian. */
export function dhtAddrValue(addr: bigint): Uint8Array {
  checkU64("addr", addr);
  const out = new Uint8Array(DHT_VALUE_LEN);
  new DataView(out.buffer).setBigUint64(0, addr);
  return out;
}

/** The address a DHT value holds; an error unless it is 8 bytes. */
export function dhtValueAddr(v: Uint8Array): Result<bigint> {
  if (v.length !== DHT_VALUE_LEN) {
    return err(`DHT value of ${v.length} bytes, not ${DHT_VALUE_LEN}`);
  }
  return ok(new DataView(v.buffer, v.byteOffset, 8).getBigUint64(0));
}
