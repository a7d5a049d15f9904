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
 *
 * `Dht`, below the codec, is the directory itself: Kademlia over these
 * messages as a pure state machine (its comment says what it does).
 */
import { err, ok, type Result } from "../../lib/util/result.ts";
import type { DhtConfig } from "./enroll.ts";
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

// ------------------------------------------------------------------ the core

/**
 * The directory's DHT (spec/unicast.md 2.9) as a pure state machine: no
 * sockets, no timers, no clock. Every call takes `now`, the wall clock as
 * Unix time in milliseconds (STORE expiries are absolute Unix seconds, so
 * the one clock serves both), and returns what to do:
 *
 *     const d = new Dht({ addr, id, hashLen, conf, now, random });
 *     d.receive(bytes, now)     // a DHT message from DT eid 1
 *     d.register(key, now)      // publish key -> our address
 *     d.unregister(key, now)    // withdraw it (copies elsewhere expire)
 *     d.lookup(req, key, now)   // the addresses of a name hash, answered once
 *     d.cancel(req)             // the asker gave up
 *     d.tick(now)               // timers due at or before now
 *     d.nextDeadline()          // when tick must run next (ms)
 *
 * Each call returns `{ sends, answers }`: messages to put in DT packets to
 * eid 1 of `dst` (cube 0), and answers to lookups (`addrs` empty = not
 * found). An answer may come from the call that asked (local values, the
 * cache, no contacts) or from a later one. Messages carry no sender address
 * outside themselves: `src` of a message is all a receiver learns.
 *
 * `conf` is the layer's DHT configuration: alpha, k, t_expire, t_refresh,
 * t_replicate (seconds) and `peer`, the enrollment peer to join through
 * (0 when this member bootstrapped the layer). `random` returns unsigned
 * 32-bit integers; it draws the magic cookie (at construction), request
 * cookies and the ids that refresh buckets.
 *
 * What it does:
 *
 * - Contacts: one bucket per length of the prefix shared with our id,
 *   k contacts each plus up to k spares; distance is the XOR of the ids
 *   compared byte by byte from the first (the order of C's XOR of the
 *   first 8 bytes, with ties broken by the rest). The sender of every valid
 *   message becomes or refreshes a contact; contacts listed in answers are
 *   added too (as C does) but never displace one we heard from, nor
 *   rename a known id or address. A contact that leaves `maxFails`
 *   requests in a row unanswered is evicted and the newest spare takes its
 *   place. A contact with our address and another id is a duplicate
 *   address: counted (`addrConflicts`), never added.
 * - Lookups are iterative: up to alpha requests in flight to the closest
 *   candidates not yet asked among the k closest known, each with its own
 *   timeout; a lookup ends when the k closest candidates still standing
 *   have all answered, when a FIND_VALUE_RSP brings values, or at its
 *   deadline. A value lookup with nothing found answers "not found" then
 *   (C leaves the asker waiting); with no contacts at all it answers at
 *   once and sends nothing. Values found are cached for `cacheMs`.
 * - Answers: FIND_NODE_RSP and FIND_VALUE_RSP list the k closest contacts
 *   to the key (the requester included, never ourselves); values are the
 *   stored ones first, then our own, at most 8. Our own address is never
 *   an answer to a local lookup.
 * - Publishing: STORE with exp = now + t_expire to the k closest contacts
 *   at once, then a node lookup for the key and a STORE to those of the k
 *   closest that answered it and did not have one yet. Own values are
 *   published again when the first contact appears and every
 *   min(t_replicate, t_expire / 2); every stored value is replicated to
 *   the k closest contacts with its own expiry every t_replicate; values
 *   are dropped at their expiry (taken no later than now + t_expire).
 * - Buckets where no lookup went for t_refresh are refreshed with a node
 *   lookup for a random id in their range.
 * - The join: FIND_NODE_REQ for our own id with the magic cookie to the
 *   enrollment peer, sent again with a doubling wait (from
 *   `joinRetryMs` to `joinRetryMaxMs`) until it is answered, then continued
 *   as a lookup of our id; done again whenever no contact is left.
 * - Hostile input never throws: undecodable bytes, a sender with our
 *   address or id, a response matching no request of ours (cookie, key,
 *   responder and code all checked), more than k contacts or 8 values,
 *   contacts with address 0, values that are no address, expired STOREs or
 *   STOREs beyond `maxKeys` keys (8 values a key) are dropped and counted
 *   in `stats`.
 */
export class Dht {
  readonly addr: bigint;
  readonly id: Uint8Array;
  readonly hashLen: number;
  /** the cookie of every join request */
  readonly magicCookie: bigint;
  readonly stats: DhtStats = {
    received: 0,
    malformed: 0,
    badSender: 0,
    unsolicited: 0,
    late: 0,
    oversized: 0,
    badContacts: 0,
    badValues: 0,
    storeRefused: 0,
    addrConflicts: 0,
    timeouts: 0,
    evicted: 0,
    busy: 0,
  };

  private readonly alpha: number;
  private readonly k: number;
  private readonly tExpire: number;
  private readonly tRefreshMs: number;
  private readonly tReplicateMs: number;
  private readonly tRepublishMs: number;
  private readonly peer: bigint;
  private readonly random: () => number;
  private readonly lim: DhtLimits;
  private readonly self: DhtContact;

  private readonly buckets = new Map<number, Bucket>();
  private readonly byId = new Map<string, Contact>();
  private readonly byAddr = new Map<bigint, Contact>();
  private live = 0;

  private readonly lookups = new Set<Lookup>();
  private readonly valueLookups = new Map<string, Lookup>();
  private readonly pending = new Map<bigint, Pending>();
  private readonly closed = new Set<bigint>();
  private readonly closedOrder: bigint[] = [];
  private join: Join | undefined;

  private readonly own = new Map<string, Uint8Array>();
  private readonly stored = new Map<string, Stored>();
  private readonly cache = new Map<
    string,
    { addrs: bigint[]; until: number }
  >();
  private expiryAt = Infinity;
  private replicateAt: number;
  private republishAt: number;
  private refreshAt: number;
  private republishDue = false;
  private out: DhtOutput = { sends: [], answers: [] };

  constructor(init: DhtInit) {
    const { addr, id, hashLen, conf, now } = init;
    if (addr <= 0n || addr >= 1n << 64n) {
      throw new RangeError(`address ${addr} is not a non-zero u64`);
    }
    if (id.length !== hashLen || hashLen < 8) {
      throw new RangeError(`node id of ${id.length} bytes, hash ${hashLen}`);
    }
    for (const [name, v] of Object.entries(conf)) {
      if (typeof v === "number" && !(Number.isInteger(v) && v >= 1)) {
        throw new RangeError(`DHT ${name} ${v} is not a positive integer`);
      }
    }
    this.addr = addr;
    this.id = id.slice();
    this.hashLen = hashLen;
    this.self = { id: this.id, addr };
    this.alpha = conf.alpha;
    this.k = conf.k;
    this.tExpire = conf.tExpire;
    this.tRefreshMs = conf.tRefresh * 1000;
    this.tReplicateMs = conf.tReplicate * 1000;
    this.tRepublishMs = Math.min(conf.tReplicate, conf.tExpire / 2) * 1000;
    this.peer = conf.peer === addr ? 0n : conf.peer;
    this.random = init.random;
    this.lim = { ...DHT_LIMITS, ...init.limits };
    let magic = 0n;
    while (magic === 0n) magic = this.rand64();
    this.magicCookie = magic;
    this.replicateAt = now + this.tReplicateMs;
    this.republishAt = now + this.tRepublishMs;
    this.refreshAt = now + this.tRefreshMs;
    if (this.peer !== 0n) this.startJoin(now);
  }

  // ------------------------------------------------------------ the API

  /** A DHT message that arrived for DT eid 1. Never throws. */
  receive(bytes: Uint8Array, now: number): DhtOutput {
    this.advance(now);
    this.stats.received++;
    const r = decodeDht(bytes, this.hashLen);
    if (!r.ok) {
      this.stats.malformed++;
      return this.flush(now);
    }
    const m = r.value;
    if (m.src.addr === this.addr || equalBytes(m.src.id, this.id)) {
      if (m.src.addr === this.addr && !equalBytes(m.src.id, this.id)) {
        this.stats.addrConflicts++;
      }
      this.stats.badSender++;
      return this.flush(now);
    }
    switch (m.code) {
      case DHT_STORE:
        this.onStore(m.src, m.store, now);
        break;
      case DHT_FIND_NODE_REQ:
      case DHT_FIND_VALUE_REQ:
        this.heard(m.src, now, true);
        this.answer(m.code, m.src.addr, m.find, now);
        break;
      case DHT_FIND_NODE_RSP:
        this.onResponse(m.code, m.src, m.node, undefined, now);
        break;
      case DHT_FIND_VALUE_RSP:
        this.onResponse(m.code, m.src, m.node, m.val.values, now);
        break;
    }
    return this.flush(now);
  }

  /**
   * Publishes `key` (a name hash, `hashLen` bytes) with our address.
   * Throws a RangeError for a key of another length.
   */
  register(key: Uint8Array, now: number): DhtOutput {
    this.checkKey(key);
    this.advance(now);
    const k = key.slice();
    this.own.set(hexOf(k), k);
    this.publish(k, now);
    return this.flush(now);
  }

  /**
   * Withdraws our value for `key`. Nothing is sent (there is no delete
   * message): copies elsewhere live until they expire.
   */
  unregister(key: Uint8Array, now: number): DhtOutput {
    this.checkKey(key);
    this.advance(now);
    this.own.delete(hexOf(key));
    return this.flush(now);
  }

  /**
   * Looks `key` up; request `req` gets exactly one answer, in this call's
   * output or a later one (unless cancelled): the addresses registered for
   * the key other than ours, or none when the search is exhausted.
   */
  lookup(req: number, key: Uint8Array, now: number): DhtOutput {
    this.checkKey(key);
    this.advance(now);
    const hex = hexOf(key);
    const local = this.localAddrs(hex, now);
    const running = this.valueLookups.get(hex);
    if (local.length > 0) {
      this.out.answers.push({ req, key: key.slice(), addrs: local });
    } else if (running !== undefined) {
      running.reqs.push(req);
    } else if (this.live === 0) {
      this.out.answers.push({ req, key: key.slice(), addrs: [] });
    } else if (this.lookups.size >= this.lim.maxLookups) {
      this.stats.busy++;
      this.out.answers.push({ req, key: key.slice(), addrs: [] });
    } else {
      this.step(this.startLookup("value", key.slice(), now, [req]), now);
    }
    return this.flush(now);
  }

  /** Forgets request `req`: it gets no answer. */
  cancel(req: number): void {
    for (const l of this.valueLookups.values()) {
      const i = l.reqs.indexOf(req);
      if (i >= 0) l.reqs.splice(i, 1);
    }
  }

  /** Runs the timers due at or before `now`. */
  tick(now: number): DhtOutput {
    this.advance(now);
    return this.flush(now);
  }

  /** When `tick` must run next (Unix ms). */
  nextDeadline(): number {
    let d = Math.min(
      this.replicateAt,
      this.republishAt,
      this.refreshAt,
      this.expiryAt,
    );
    if (this.join !== undefined && this.join.nextAt < d) d = this.join.nextAt;
    for (const p of this.pending.values()) {
      if (p.cand !== undefined && p.deadline < d) d = p.deadline;
    }
    for (const l of this.lookups) if (l.deadline < d) d = l.deadline;
    return d;
  }

  /** The contacts in use (spares left out), closest to our id first. */
  contacts(): DhtContact[] {
    return this.closest(this.id, this.byId.size)
      .map((c) => ({ id: c.id.slice(), addr: c.addr }));
  }

  /** Whether we publish `key` ourselves (registered, not withdrawn). */
  registered(key: Uint8Array): boolean {
    return this.own.has(hexOf(key));
  }

  /** The values stored here for others under `key` (not our own). */
  storedAddrs(key: Uint8Array): bigint[] {
    return [...(this.stored.get(hexOf(key))?.vals.keys() ?? [])];
  }

  /** Sizes of the state, for diagnostics and tests. */
  snapshot(): DhtSnapshot {
    let values = 0;
    for (const s of this.stored.values()) values += s.vals.size;
    return {
      contacts: this.live,
      spares: this.byId.size - this.live,
      keys: this.stored.size,
      values,
      own: this.own.size,
      lookups: this.lookups.size,
      pending: this.pending.size,
      cached: this.cache.size,
      joining: this.join !== undefined,
    };
  }

  // ------------------------------------------------------ incoming messages

  private onStore(src: DhtContact, s: DhtStore, now: number): void {
    const v = dhtValueAddr(s.val);
    if (!v.ok || v.value === 0n) {
      this.stats.badValues++;
      this.stats.storeRefused++;
      return;
    }
    this.heard(src, now, true);
    if (s.exp * 1000 <= now) {
      this.stats.storeRefused++;
      return;
    }
    // our own address is kept only as our own registration
    if (v.value === this.addr) return;
    const exp = Math.min(s.exp, this.nowSec(now) + this.tExpire);
    this.put(s.key, v.value, exp);
  }

  private put(key: Uint8Array, addr: bigint, exp: number): void {
    const hex = hexOf(key);
    let s = this.stored.get(hex);
    if (s === undefined) {
      if (this.stored.size >= this.lim.maxKeys) {
        this.stats.storeRefused++;
        return;
      }
      s = { key: key.slice(), vals: new Map() };
      this.stored.set(hex, s);
    }
    const had = s.vals.get(addr);
    if (had !== undefined) {
      if (exp > had) s.vals.set(addr, exp);
      return;
    }
    if (s.vals.size >= DHT_MAX_VALUES) {
      let first: bigint | undefined;
      let firstExp = Infinity;
      for (const [a, e] of s.vals) {
        if (e < firstExp) [first, firstExp] = [a, e];
      }
      if (first === undefined || firstExp >= exp) {
        this.stats.storeRefused++;
        return;
      }
      s.vals.delete(first);
    }
    s.vals.set(addr, exp);
    if (exp * 1000 < this.expiryAt) this.expiryAt = exp * 1000;
  }

  private answer(
    code: typeof DHT_FIND_NODE_REQ | typeof DHT_FIND_VALUE_REQ,
    to: bigint,
    find: DhtFind,
    now: number,
  ): void {
    const node: DhtNodes = {
      cookie: find.cookie,
      key: find.key,
      contacts: this.closest(find.key, this.k)
        .map((c) => ({ id: c.id, addr: c.addr })),
    };
    if (code === DHT_FIND_NODE_REQ) {
      this.send(to, { code: DHT_FIND_NODE_RSP, src: this.self, node });
      return;
    }
    const hex = hexOf(find.key);
    const addrs = [...(this.stored.get(hex)?.vals ?? [])]
      .filter(([, e]) => e * 1000 > now).map(([a]) => a);
    if (this.own.has(hex)) addrs.push(this.addr);
    const values = addrs.slice(0, DHT_MAX_VALUES).map(dhtAddrValue);
    this.send(to, {
      code: DHT_FIND_VALUE_RSP,
      src: this.self,
      node,
      val: { values },
    });
  }

  private onResponse(
    code: typeof DHT_FIND_NODE_RSP | typeof DHT_FIND_VALUE_RSP,
    src: DhtContact,
    node: DhtNodes,
    values: Uint8Array[] | undefined,
    now: number,
  ): void {
    const p = this.pending.get(node.cookie);
    if (p === undefined) {
      if (this.closed.has(node.cookie)) this.stats.late++;
      else this.stats.unsolicited++;
      return;
    }
    const l = p.lookup;
    if (
      p.to !== src.addr || code !== p.code + 1 ||
      !equalBytes(node.key, l.key)
    ) {
      this.stats.unsolicited++;
      return;
    }
    if (
      node.contacts.length > this.k ||
      (values !== undefined && values.length > DHT_MAX_VALUES)
    ) {
      // no member of this layer answers so: leave the request to time out
      this.stats.oversized++;
      return;
    }
    this.closePending(p);
    this.heard(src, now, true);
    if (p.cand !== undefined) {
      p.cand.state = DONE;
      l.inflight--;
    } else {
      // the join's answer: the peer is known from now on
      this.join = undefined;
      l.deadline = now + this.lim.lookupTimeoutMs;
      this.addCand(l, src).state = DONE;
    }
    for (const c of node.contacts) {
      if (c.addr === 0n) {
        this.stats.badContacts++;
        continue;
      }
      if (c.addr === this.addr || equalBytes(c.id, this.id)) {
        if (c.addr === this.addr && !equalBytes(c.id, this.id)) {
          this.stats.addrConflicts++;
        }
        continue;
      }
      this.heard(c, now, false);
      this.addCand(l, c);
    }
    if (values !== undefined && l.purpose === "value") {
      const found: bigint[] = [];
      for (const v of values) {
        const a = dhtValueAddr(v);
        if (!a.ok || a.value === 0n) {
          this.stats.badValues++;
        } else if (a.value !== this.addr && !found.includes(a.value)) {
          found.push(a.value);
        }
      }
      if (found.length > 0) {
        this.cache.set(l.hex, { addrs: found, until: now + this.lim.cacheMs });
        for (const req of l.reqs) {
          this.out.answers.push({ req, key: l.key.slice(), addrs: found });
        }
        l.reqs = [];
        this.finish(l, now);
        return;
      }
    }
    this.step(l, now);
  }

  // ------------------------------------------------------------- lookups

  private startLookup(
    purpose: Purpose,
    key: Uint8Array,
    now: number,
    reqs: number[] = [],
  ): Lookup {
    const l: Lookup = {
      purpose,
      key,
      hex: hexOf(key),
      cands: new Map(),
      inflight: 0,
      reqs,
      deadline: now + this.lim.lookupTimeoutMs,
      cookies: new Set(),
      storedTo: new Set(),
      done: false,
    };
    this.lookups.add(l);
    if (purpose === "value") this.valueLookups.set(l.hex, l);
    const b = bucketOf(this.id, key);
    const bucket = this.buckets.get(b);
    if (bucket !== undefined) bucket.used = now;
    for (const c of this.closest(key, this.k)) this.addCand(l, c);
    return l;
  }

  private startJoin(now: number): void {
    const l = this.startLookup("join", this.id, now);
    l.deadline = Infinity;
    this.join = { lookup: l, nextAt: now, wait: this.lim.joinRetryMs };
  }

  private sendJoin(now: number): void {
    const j = this.join;
    if (j === undefined) return;
    const cookie = this.magicCookie;
    this.pending.set(cookie, {
      cookie,
      to: this.peer,
      code: DHT_FIND_NODE_REQ,
      lookup: j.lookup,
      cand: undefined,
      deadline: Infinity,
    });
    j.lookup.cookies.add(cookie);
    this.send(this.peer, {
      code: DHT_FIND_NODE_REQ,
      src: this.self,
      find: { cookie, key: this.id },
    });
    j.nextAt = now + j.wait;
    j.wait = Math.min(2 * j.wait, this.lim.joinRetryMaxMs);
  }

  private addCand(l: Lookup, c: DhtContact): Cand {
    const hex = hexOf(c.id);
    let cand = l.cands.get(hex);
    if (cand === undefined) {
      cand = { id: c.id.slice(), addr: c.addr, state: NEW };
      l.cands.set(hex, cand);
    }
    return cand;
  }

  /** Sends what the lookup may send; ends it when nothing is left to do. */
  private step(l: Lookup, now: number): void {
    if (l.done || (this.join !== undefined && this.join.lookup === l)) return;
    const top = this.topCands(l);
    for (const c of top) {
      if (l.inflight >= this.alpha) break;
      if (c.state === NEW) this.request(l, c, now);
    }
    if (!top.some((c) => c.state === NEW || c.state === PENDING)) {
      this.finish(l, now);
    }
  }

  private topCands(l: Lookup): Cand[] {
    const standing = [...l.cands.values()].filter((c) => c.state !== FAILED);
    standing.sort((a, b) => compareDistance(l.key, a.id, b.id));
    return standing.slice(0, this.k);
  }

  private request(l: Lookup, c: Cand, now: number): void {
    const cookie = this.newCookie();
    const code = l.purpose === "value" ? DHT_FIND_VALUE_REQ : DHT_FIND_NODE_REQ;
    this.pending.set(cookie, {
      cookie,
      to: c.addr,
      code,
      lookup: l,
      cand: c,
      deadline: now + this.lim.reqTimeoutMs,
    });
    l.cookies.add(cookie);
    c.state = PENDING;
    l.inflight++;
    this.send(c.addr, { code, src: this.self, find: { cookie, key: l.key } });
  }

  private finish(l: Lookup, now: number): void {
    if (l.done) return;
    l.done = true;
    this.lookups.delete(l);
    if (this.valueLookups.get(l.hex) === l) this.valueLookups.delete(l.hex);
    if (this.join !== undefined && this.join.lookup === l) {
      this.join = undefined;
    }
    for (const cookie of l.cookies) {
      const p = this.pending.get(cookie);
      if (p !== undefined) this.closePending(p);
    }
    for (const req of l.reqs) {
      this.out.answers.push({ req, key: l.key.slice(), addrs: [] });
    }
    l.reqs = [];
    if (l.purpose === "publish" && this.own.has(l.hex)) {
      const exp = this.nowSec(now) + this.tExpire;
      for (const c of this.topCands(l)) {
        if (c.state === DONE && !l.storedTo.has(c.addr)) {
          this.sendStore(c.addr, l.key, this.addr, exp);
        }
      }
    }
  }

  private closePending(p: Pending): void {
    this.pending.delete(p.cookie);
    p.lookup.cookies.delete(p.cookie);
    if (this.closed.has(p.cookie)) return;
    this.closed.add(p.cookie);
    this.closedOrder.push(p.cookie);
    if (this.closedOrder.length > CLOSED_COOKIES) {
      const old = this.closedOrder.shift();
      if (old !== undefined && !this.pending.has(old)) this.closed.delete(old);
    }
  }

  // -------------------------------------------------------------- timers

  private advance(now: number): void {
    const due: Pending[] = [];
    for (const p of this.pending.values()) {
      if (p.cand !== undefined && p.deadline <= now) due.push(p);
    }
    for (const p of due) {
      if (!this.pending.has(p.cookie) || p.cand === undefined) continue;
      this.closePending(p);
      this.stats.timeouts++;
      p.cand.state = FAILED;
      p.lookup.inflight--;
      this.failed(p.to);
      this.step(p.lookup, now);
    }
    for (const l of [...this.lookups]) {
      if (l.deadline <= now) this.finish(l, now);
    }
    if (this.join !== undefined && this.join.nextAt <= now) this.sendJoin(now);
    if (this.expiryAt <= now) this.expire(now);
    if (this.republishAt <= now) {
      this.republishAt = now + this.tRepublishMs;
      this.republishDue = true;
    }
    if (this.replicateAt <= now) {
      this.replicateAt = now + this.tReplicateMs;
      this.replicate(now);
    }
    if (this.refreshAt <= now) {
      this.refreshAt = now + this.tRefreshMs;
      this.refresh(now);
    }
  }

  private flush(now: number): DhtOutput {
    if (this.peer !== 0n && this.live === 0 && this.join === undefined) {
      // no contact left: join again through the enrollment peer
      this.startJoin(now);
    }
    if (this.join !== undefined && this.join.nextAt <= now) this.sendJoin(now);
    if (this.republishDue) {
      this.republishDue = false;
      for (const key of this.own.values()) this.publish(key, now);
    }
    const out = this.out;
    this.out = { sends: [], answers: [] };
    return out;
  }

  private expire(now: number): void {
    let next = Infinity;
    for (const [hex, s] of this.stored) {
      for (const [a, e] of s.vals) {
        if (e * 1000 <= now) s.vals.delete(a);
        else if (e * 1000 < next) next = e * 1000;
      }
      if (s.vals.size === 0) this.stored.delete(hex);
    }
    for (const [hex, c] of this.cache) {
      if (c.until <= now) this.cache.delete(hex);
    }
    this.expiryAt = next;
  }

  private publish(key: Uint8Array, now: number): void {
    if (this.live === 0) return;
    const exp = this.nowSec(now) + this.tExpire;
    const sent = new Set<bigint>();
    for (const c of this.closest(key, this.k)) {
      this.sendStore(c.addr, key, this.addr, exp);
      sent.add(c.addr);
    }
    if (this.lookups.size < this.lim.maxLookups) {
      const l = this.startLookup("publish", key, now);
      l.storedTo = sent;
      this.step(l, now);
    }
  }

  private replicate(now: number): void {
    for (const s of this.stored.values()) {
      for (const [a, e] of s.vals) {
        if (e * 1000 <= now) continue;
        for (const c of this.closest(s.key, this.k)) {
          if (c.addr !== a) this.sendStore(c.addr, s.key, a, e);
        }
      }
    }
  }

  private refresh(now: number): void {
    const stale = [...this.buckets.entries()].filter(([, b]) =>
      b.live.length > 0 && b.used <= now - this.tRefreshMs
    );
    for (const [i] of stale) {
      if (this.lookups.size >= this.lim.maxLookups) break;
      this.step(this.startLookup("refresh", this.idInBucket(i), now), now);
    }
  }

  // ------------------------------------------------------------ contacts

  /**
   * Adds or refreshes a contact: `direct` when it is the sender of a
   * message, else one listed by another member (which never overrides).
   */
  private heard(c: DhtContact, now: number, direct: boolean): void {
    if (c.addr === 0n || c.addr === this.addr || equalBytes(c.id, this.id)) {
      return;
    }
    const hex = hexOf(c.id);
    let e = this.byId.get(hex);
    if (e !== undefined && e.addr !== c.addr) {
      if (!direct) return;
      this.remove(e);
      e = undefined;
    }
    const other = this.byAddr.get(c.addr);
    if (other !== undefined && other !== e) {
      if (!direct) return;
      this.remove(other);
    }
    if (e !== undefined) {
      if (direct) {
        e.fails = 0;
        e.seen = now;
        const b = this.buckets.get(e.bucket);
        if (b !== undefined) {
          const list = e.spare ? b.spare : b.live;
          list.splice(list.indexOf(e), 1);
          list.push(e);
        }
      }
      return;
    }
    const bi = bucketOf(this.id, c.id);
    let b = this.buckets.get(bi);
    if (b === undefined) {
      b = { live: [], spare: [], used: now };
      this.buckets.set(bi, b);
    }
    e = {
      id: c.id.slice(),
      hex,
      addr: c.addr,
      seen: now,
      fails: 0,
      spare: false,
      bucket: bi,
    };
    this.byId.set(hex, e);
    this.byAddr.set(c.addr, e);
    if (b.live.length < this.k) {
      b.live.push(e);
      if (++this.live === 1) this.republishDue = true;
    } else {
      e.spare = true;
      b.spare.push(e);
      if (b.spare.length > this.k) {
        const old = b.spare.shift();
        if (old !== undefined) this.unindex(old);
      }
    }
  }

  private failed(addr: bigint): void {
    const e = this.byAddr.get(addr);
    if (e === undefined || ++e.fails < this.lim.maxFails) return;
    this.stats.evicted++;
    this.remove(e);
  }

  private remove(e: Contact): void {
    this.unindex(e);
    const b = this.buckets.get(e.bucket);
    if (b === undefined) return;
    if (e.spare) {
      b.spare.splice(b.spare.indexOf(e), 1);
      return;
    }
    b.live.splice(b.live.indexOf(e), 1);
    this.live--;
    const up = b.spare.pop();
    if (up !== undefined) {
      up.spare = false;
      b.live.push(up);
      this.live++;
    }
    if (b.live.length === 0) this.buckets.delete(e.bucket);
  }

  private unindex(e: Contact): void {
    if (this.byId.get(e.hex) === e) this.byId.delete(e.hex);
    if (this.byAddr.get(e.addr) === e) this.byAddr.delete(e.addr);
  }

  /** Up to `n` contacts in use, closest to `key` first. */
  private closest(key: Uint8Array, n: number): Contact[] {
    const all: Contact[] = [];
    for (const b of this.buckets.values()) all.push(...b.live);
    all.sort((a, b) => compareDistance(key, a.id, b.id));
    return all.slice(0, n);
  }

  // ------------------------------------------------------------- helpers

  private localAddrs(hex: string, now: number): bigint[] {
    const out: bigint[] = [];
    for (const [a, e] of this.stored.get(hex)?.vals ?? []) {
      if (e * 1000 > now && a !== this.addr) out.push(a);
    }
    const c = this.cache.get(hex);
    if (c !== undefined && c.until > now) {
      for (const a of c.addrs) if (!out.includes(a)) out.push(a);
    }
    return out;
  }

  private sendStore(
    to: bigint,
    key: Uint8Array,
    addr: bigint,
    exp: number,
  ): void {
    this.send(to, {
      code: DHT_STORE,
      src: this.self,
      store: { key, val: dhtAddrValue(addr), exp: Math.min(exp, U32_MAX) },
    });
  }

  private send(dst: bigint, msg: DhtMsg): void {
    if (dst === 0n || dst === this.addr) return;
    this.out.sends.push({ dst, msg, bytes: encodeDht(msg) });
  }

  private nowSec(now: number): number {
    return Math.max(0, Math.floor(now / 1000));
  }

  private checkKey(key: Uint8Array): void {
    if (key.length !== this.hashLen) {
      throw new RangeError(`key of ${key.length} bytes, not ${this.hashLen}`);
    }
  }

  private rand64(): bigint {
    const hi = BigInt(this.random() >>> 0);
    return (hi << 32n) | BigInt(this.random() >>> 0);
  }

  private newCookie(): bigint {
    for (;;) {
      const c = this.rand64();
      if (c !== 0n && c !== this.magicCookie && !this.pending.has(c)) {
        return c;
      }
    }
  }

  /** A random id sharing exactly `i` leading bits with ours. */
  private idInBucket(i: number): Uint8Array {
    const out = this.id.slice();
    const at = i >> 3;
    const bit = 0x80 >> (i & 7);
    const below = bit - 1;
    const own = out[at]!;
    out[at] = ((own ^ bit) & ~below & 0xff) | (this.random() & below);
    for (let j = at + 1; j < out.length; j++) out[j] = this.random() & 0xff;
    return out;
  }
}

/** Values in one answer, and kept for one key, at most (C: DHT_MAX_VALS). */
export const DHT_MAX_VALUES = 8;

export interface DhtLimits {
  /** wait for an answer to one request */
  reqTimeoutMs: number;
  /** a lookup ends by then at the latest */
  lookupTimeoutMs: number;
  /** first wait before the join request is sent again; it doubles... */
  joinRetryMs: number;
  /** ...up to this */
  joinRetryMaxMs: number;
  /** values found by a lookup are reused this long */
  cacheMs: number;
  /** lookups at once (local ones beyond answer "not found") */
  maxLookups: number;
  /** keys stored for others */
  maxKeys: number;
  /** requests left unanswered in a row that evict a contact */
  maxFails: number;
}

export const DHT_LIMITS: Readonly<DhtLimits> = Object.freeze({
  reqTimeoutMs: 2000,
  lookupTimeoutMs: 8000,
  joinRetryMs: 100,
  joinRetryMaxMs: 1000,
  cacheMs: 60_000,
  maxLookups: 128,
  maxKeys: 4096,
  maxFails: 2,
});

export interface DhtInit {
  /** our address, non-zero */
  addr: bigint;
  /** our node id, `hashLen` bytes */
  id: Uint8Array;
  /** bytes of a key and a node id (32 with SHA3-256) */
  hashLen: number;
  /** the layer's DHT configuration; `peer` = the enrollment peer, or 0 */
  conf: DhtConfig;
  /** Unix time, ms */
  now: number;
  /** unsigned 32-bit integers */
  random: () => number;
  limits?: Partial<DhtLimits>;
}

export interface DhtSend {
  /** the destination address (DT eid 1, cube 0) */
  dst: bigint;
  msg: DhtMsg;
  /** `msg` encoded */
  bytes: Uint8Array;
}

export interface DhtAnswer {
  /** the `lookup` request */
  req: number;
  key: Uint8Array;
  /** the addresses found; empty: not found */
  addrs: bigint[];
}

export interface DhtOutput {
  sends: DhtSend[];
  answers: DhtAnswer[];
}

/** Counters of what arrived and what was dropped. */
export interface DhtStats {
  /** messages given to `receive` */
  received: number;
  /** not a DHT message of this layer (decodeDht's errors) */
  malformed: number;
  /** sent with our address or our id */
  badSender: number;
  /** responses matching no request of ours */
  unsolicited: number;
  /** responses to requests already answered, timed out or ended */
  late: number;
  /** responses with more than k contacts or more than 8 values */
  oversized: number;
  /** listed contacts skipped for address 0 */
  badContacts: number;
  /** values that are no address */
  badValues: number;
  /** STOREs not kept: no address, expired, or no room */
  storeRefused: number;
  /** a sender or contact with our address and another id */
  addrConflicts: number;
  /** requests left unanswered */
  timeouts: number;
  /** contacts evicted for not answering */
  evicted: number;
  /** local lookups refused for too many lookups at once */
  busy: number;
}

export interface DhtSnapshot {
  contacts: number;
  spares: number;
  /** keys and values stored for others */
  keys: number;
  values: number;
  own: number;
  lookups: number;
  pending: number;
  cached: number;
  joining: boolean;
}

const NEW = 0;
const PENDING = 1;
const DONE = 2;
const FAILED = 3;

/** Cookies of finished requests remembered, to tell late answers apart. */
const CLOSED_COOKIES = 1024;
const U32_MAX = 0xffff_ffff;

type Purpose = "join" | "value" | "publish" | "refresh";

interface Contact {
  id: Uint8Array;
  hex: string;
  addr: bigint;
  /** last heard from directly (ms) */
  seen: number;
  /** requests unanswered in a row */
  fails: number;
  spare: boolean;
  bucket: number;
}

interface Bucket {
  /** least recently heard first */
  live: Contact[];
  spare: Contact[];
  /** when a lookup last went into this bucket */
  used: number;
}

interface Cand {
  id: Uint8Array;
  addr: bigint;
  state: typeof NEW | typeof PENDING | typeof DONE | typeof FAILED;
}

interface Lookup {
  purpose: Purpose;
  key: Uint8Array;
  hex: string;
  cands: Map<string, Cand>;
  inflight: number;
  /** local requests waiting (value lookups) */
  reqs: number[];
  deadline: number;
  /** its requests not answered yet */
  cookies: Set<bigint>;
  /** publish: addresses sent a STORE already */
  storedTo: Set<bigint>;
  done: boolean;
}

interface Pending {
  cookie: bigint;
  to: bigint;
  code: typeof DHT_FIND_NODE_REQ | typeof DHT_FIND_VALUE_REQ;
  lookup: Lookup;
  /** undefined for the join request (the peer's id is not known) */
  cand: Cand | undefined;
  deadline: number;
}

interface Join {
  lookup: Lookup;
  nextAt: number;
  wait: number;
}

interface Stored {
  key: Uint8Array;
  /** address -> expiry, Unix seconds */
  vals: Map<bigint, number>;
}

const HEX = Array.from(
  { length: 256 },
  (_, i) => i.toString(16).padStart(2, "0"),
);

function hexOf(b: Uint8Array): string {
  let s = "";
  for (const x of b) s += HEX[x];
  return s;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Negative when `a` is closer to `key` than `b` (XOR, first byte first). */
export function compareDistance(
  key: Uint8Array,
  a: Uint8Array,
  b: Uint8Array,
): number {
  const n = Math.min(key.length, a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a[i]! ^ key[i]!;
    const y = b[i]! ^ key[i]!;
    if (x !== y) return x - y;
  }
  return 0;
}

/** The number of leading bits `id` shares with `self`; -1 when equal. */
function bucketOf(self: Uint8Array, id: Uint8Array): number {
  for (let i = 0; i < self.length; i++) {
    const x = self[i]! ^ (id[i] ?? 0);
    if (x !== 0) return i * 8 + Math.clz32(x) - 24;
  }
  return -1;
}
