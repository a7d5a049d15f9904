/**
 * Link-state routing of the unicast IPCP (spec/unicast.md 2.8, 4, 5, 8): the
 * LSA codec and `LinkState`, the pure core that floods LSAs and computes the
 * forwarding tables.
 *
 * Link-state advertisements: one per SDU on a mgmt flow (spec 2.8). An LSA
 * says "s_addr has a dt connection to d_addr"; 24 bytes, three u64
 * big-endian:
 *
 *   0 d_addr (the neighbour) | 8 s_addr (the announcing node) | 16 seqno
 *
 * Seqnos start at 0 per adjacency and grow by one every refresh, compared
 * as unsigned 64-bit numbers; there is no age field.
 */
import { err, ok, type Result } from "../../lib/util/result.ts";
import { QC_BE, QC_VIDEO, QC_VOICE } from "./dt.ts";
import { LS_ECMP, LS_LFA, LS_SIMPLE, type LsConfig } from "./enroll.ts";

export const LSA_LEN = 24;

export interface Lsa {
  /** the neighbour */
  dAddr: bigint;
  /** the announcing node */
  sAddr: bigint;
  seqno: bigint;
}

const U64_MAX = 0xffff_ffff_ffff_ffffn;

/** Encodes an LSA; throws a RangeError for a field that is not a u64. */
export function encodeLsa(l: Lsa): Uint8Array {
  for (
    const [name, v] of [["dAddr", l.dAddr], ["sAddr", l.sAddr], [
      "seqno",
      l.seqno,
    ]] as const
  ) {
    if (v < 0n || v > U64_MAX) {
      throw new RangeError(`${name} ${v} is not a u64`);
    }
  }
  const out = new Uint8Array(LSA_LEN);
  const v = new DataView(out.buffer);
  v.setBigUint64(0, l.dAddr);
  v.setBigUint64(8, l.sAddr);
  v.setBigUint64(16, l.seqno);
  return out;
}

/**
 * Decodes an LSA. Never throws; any length but 24 is an error (C ignores
 * such a read).
 */
export function decodeLsa(buf: Uint8Array): Result<Lsa> {
  if (buf.length !== LSA_LEN) {
    return err(`LSA of ${buf.length} bytes, not ${LSA_LEN}`);
  }
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  return ok({
    dAddr: v.getBigUint64(0),
    sAddr: v.getBigUint64(8),
    seqno: v.getBigUint64(16),
  });
}

// ---------------------------------------------------------------------------
// The link-state core

/**
 * `LinkState`: the LSDB, flooding and route computation of one member, as a
 * pure state machine. No flows, no timers, no clock: every call takes the
 * time `now` in ms (monotonic; an earlier time counts as the latest seen)
 * and returns what to send and, when they changed, the new tables.
 *
 *     const ls = new LinkState({ addr, ls: conf.ls, now });
 *     ls.dtUp(flow, nbAddr, qc, now)  // a dt N-1 flow to a neighbour is up
 *     ls.dtDown(flow, now)            // ... is gone (dealloc or FLOW_DOWN)
 *     ls.mgmtUp(flow, nbAddr, now)    // a mgmt N-1 flow is up: LSDB dump
 *     ls.mgmtDown(flow, now)
 *     ls.receive(flow, sdu, now)      // an SDU read from a mgmt flow
 *     ls.tick(now)                    // at nextDeadline(), or any time
 *     ls.nextDeadline()               // when tick must next run (always set)
 *     ls.tables, ls.lsdb(), ls.stats
 *
 * Each call returns `{ send, tables }`: `send` lists the SDUs to write, each
 * on its mgmt flow, in order (the bytes are shared between flows and must
 * not be modified); `tables` is null unless the forwarding tables changed.
 * Malformed or hostile LSAs are dropped and counted in `stats`; nothing
 * here throws on input from the wire.
 *
 * Flooding is C's (spec 2.8): a dt connection up sends (self, nb, seqno) to
 * every mgmt neighbour; a mgmt connection up sends the newcomer the whole
 * LSDB, one LSA each, in (d_addr, s_addr) order with the stored seqnos;
 * every t_update, phased from construction, each own adjacency gets
 * seqno + 1 and goes to every mgmt neighbour; an LSA that is new or has a
 * greater seqno is stored and relayed, the same 24 bytes, to every mgmt
 * neighbour but the flow it came on; anything else is dropped, which is
 * what ends a flood. Mgmt neighbours are served in C's order (descending
 * address), so the bytes on each flow come in the order a C node sends them.
 *
 * Routes (spec 4): an edge is usable when both directions are in the LSDB;
 * every edge weighs 1. The primary next hop of a destination is the first
 * hop of a shortest path, ties broken as C's Dijkstra breaks them: a node's
 * first hop is that of its lowest-address predecessor on a shortest path
 * (deterministic, independent of arrival order). `LS_LFA` adds, after the
 * primary, every other neighbour n with
 * dist(n, dst) < dist(n, self) + dist(self, dst), closest first then by
 * address; `LS_ECMP` adds every other neighbour n with
 * dist(n, dst) + 1 = dist(self, dst), by address. A neighbour that cannot
 * reach the destination is no candidate. There is one table per QoS cube:
 * the routes are the same (hop count), the flow to a next hop is the dt
 * flow of that cube to it if there is one, else its lowest-handle dt flow.
 *
 * When the tables are recomputed: at once, after every change of the usable
 * graph (a new LSA that completes a two-way edge, an adjacency that times
 * out) or of our own dt flows. C does it at once for new adjacencies (the
 * captures show a joining node's first DT packet within ms of its link
 * becoming two-way) and leaves removals to its t_recalc thread; we also
 * apply removals at once, because a removal is a failure to route around
 * and every removal follows an addition that was computed at once anyway,
 * so waiting would bound nothing. What t_recalc bounds here is a storm: at
 * most `RECALC_BURST` computations for LSAs and timeouts per t_recalc
 * window; past that, the changes wait for the end of the window (one
 * computation). Our own flow events are always applied at once. Tables
 * that come out the same are not returned again.
 *
 * An entry that is not refreshed is removed t_timeo after its last update,
 * to the ms (C checks only at its refresh: 60-75 s); a vanished neighbour's
 * links are gone from the tables within t_timeo.
 *
 * Where we differ from C (spec 8, all wire-compatible):
 * - A dt flow that goes down stops our advertising of that adjacency at
 *   once and recomputes; so does an adjacency that times out.
 * - An adjacency to a neighbour we had before resumes at the last seqno + 1
 *   instead of 0, so peers that still hold the old one accept it at once
 *   (with 0 they would ignore it until their copy timed out).
 * - An LSA with s_addr = our address is never stored or relayed: an echo of
 *   ours is normal in a ring; one with a greater seqno than ours, or about
 *   an adjacency we never had, is counted in `selfConflicts` (another node
 *   with our address, or a forger) for the caller to log loudly.
 * - LSAs with address 0, s_addr = d_addr or an address wider than addr_size
 *   are dropped, and the LSDB holds at most `maxAdjacencies` entries.
 * - Seqnos compare as unsigned 64-bit (spec 2.8: no wrap handling); a
 *   forged seqno of 2^64-1 pins that entry until it times out, t_timeo
 *   later, after which the owner's refreshes are taken again.
 * - Timers below 1 s are raised to 1 s (C would spin on 0).
 */

/** A handle of an N-1 flow, chosen by the caller (e.g. its fd). */
export type FlowHandle = number;

export interface LsSend {
  flow: FlowHandle;
  /** one LSA; shared between the flows it goes to: read-only */
  sdu: Uint8Array;
}

/** Destination address -> dt flows, the primary first. */
export type ForwardingTable = ReadonlyMap<bigint, readonly FlowHandle[]>;

export interface ForwardingTables {
  /** destination -> next-hop addresses, the primary first, ascending dst */
  readonly nextHops: ReadonlyMap<bigint, readonly bigint[]>;
  /** the table of each QoS cube, indexed by QC_BE, QC_VIDEO, QC_VOICE */
  readonly flows: readonly [ForwardingTable, ForwardingTable, ForwardingTable];
}

export interface LsOutput {
  send: LsSend[];
  /** the new tables, null when they did not change */
  tables: ForwardingTables | null;
}

export interface LsdbEntry {
  src: bigint;
  dst: bigint;
  seqno: bigint;
  /** ms, last update (own adjacencies: last refresh) */
  updatedAt: number;
}

export interface LsStats {
  /** SDUs given to receive */
  received: number;
  /** LSAs stored as a new adjacency / with a greater seqno */
  added: number;
  refreshed: number;
  /** LSAs with a seqno not greater than the stored one: dropped */
  stale: number;
  /** SDUs that are not 24 bytes */
  malformed: number;
  /** address 0, s_addr = d_addr, or wider than addr_size */
  badAddress: number;
  /** SDUs on a flow that is no mgmt neighbour's */
  unknownFlow: number;
  /** LSAs announcing an adjacency of ours, from elsewhere */
  aboutSelf: number;
  /** of those, the ones that cannot be an echo of ours */
  selfConflicts: number;
  /** new adjacencies dropped because the LSDB was full */
  full: number;
  /** adjacencies removed after t_timeo without update */
  expired: number;
  /** events with a bad address, cube or flow handle: ignored */
  badEvents: number;
  /** SDUs returned to send */
  sent: number;
  /** route computations */
  recomputes: number;
}

export interface LinkStateOptions {
  /** our address */
  addr: bigint;
  /** the layer's link-state policy and timers (seconds) */
  ls: LsConfig;
  /** ms, the start-up: the phase of the refresh */
  now: number;
  /** bytes of an address (addr_size, 1..8); default 4 */
  addrSize?: number;
  /** the most adjacencies the LSDB holds; default 65536 */
  maxAdjacencies?: number;
}

interface Adj {
  src: bigint;
  dst: bigint;
  seqno: bigint;
  at: number;
}

interface DtNb {
  addr: bigint;
  qc: number;
}

/** Computations for LSAs and timeouts per t_recalc before they wait. */
export const RECALC_BURST = 16;

const U64_MOD = 1n << 64n;
/** Own seqnos remembered for neighbours that went away. */
const LAST_OWN_MAX = 4096;
const CUBES = [QC_BE, QC_VIDEO, QC_VOICE] as const;

const NO_ROUTES: ForwardingTables = {
  nextHops: new Map(),
  flows: [new Map(), new Map(), new Map()],
};

function cmpAddr(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function adjKey(src: bigint, dst: bigint): string {
  return `${src}>${dst}`;
}

/**
 * Breadth-first search from `src` over `g` (sorted adjacency lists): hop
 * counts, and with them each node's first hop, taken from its
 * lowest-address predecessor in the previous layer.
 */
function bfs(
  g: ReadonlyMap<bigint, readonly bigint[]>,
  src: bigint,
): { dist: Map<bigint, number>; first: Map<bigint, bigint> } {
  const dist = new Map<bigint, number>([[src, 0]]);
  const first = new Map<bigint, bigint>();
  let layer = [src];
  for (let d = 1; layer.length > 0; d++) {
    const next: bigint[] = [];
    for (const u of layer) {
      for (const v of g.get(u) ?? []) {
        if (dist.has(v)) continue;
        dist.set(v, d);
        first.set(v, u === src ? v : first.get(u)!);
        next.push(v);
      }
    }
    layer = next.sort(cmpAddr);
  }
  return { dist, first };
}

export class LinkState {
  readonly addr: bigint;
  /** LS_SIMPLE, LS_LFA or LS_ECMP */
  readonly policy: number;
  readonly tRecalcMs: number;
  readonly tUpdateMs: number;
  readonly tTimeoMs: number;
  readonly stats: LsStats = {
    received: 0,
    added: 0,
    refreshed: 0,
    stale: 0,
    malformed: 0,
    badAddress: 0,
    unknownFlow: 0,
    aboutSelf: 0,
    selfConflicts: 0,
    full: 0,
    expired: 0,
    badEvents: 0,
    sent: 0,
    recomputes: 0,
  };

  private readonly maxAddr: bigint;
  private readonly maxAdj: number;
  private now: number;
  private nextUpdate: number;
  /** other nodes' adjacencies, least recently updated first */
  private readonly db = new Map<string, Adj>();
  /** ours, by neighbour */
  private readonly own = new Map<bigint, Adj>();
  /** seqno of our adjacency to a neighbour that went away */
  private readonly lastOwn = new Map<bigint, bigint>();
  private readonly dt = new Map<FlowHandle, DtNb>();
  private readonly mgmt = new Map<FlowHandle, bigint>();
  private mgmtOrder: FlowHandle[] | null = null;
  private out: LsSend[] = [];
  /** our own flows changed: recompute before returning */
  private urgent = false;
  /** the graph changed: recompute within the budget */
  private pending = false;
  private windowStart = -Infinity;
  private windowCount = 0;
  private current: ForwardingTables = NO_ROUTES;
  private signature = "";
  private changed: ForwardingTables | null = null;

  constructor(o: LinkStateOptions) {
    const { pol } = o.ls;
    if (pol !== LS_SIMPLE && pol !== LS_LFA && pol !== LS_ECMP) {
      throw new RangeError(`unknown link-state policy ${pol}`);
    }
    const addrSize = o.addrSize ?? 4;
    if (!Number.isInteger(addrSize) || addrSize < 1 || addrSize > 8) {
      throw new RangeError(`addr_size ${addrSize} is not 1..8`);
    }
    this.maxAddr = (1n << BigInt(8 * addrSize)) - 1n;
    if (o.addr <= 0n || o.addr > this.maxAddr) {
      throw new RangeError(`address ${o.addr} does not fit addr_size`);
    }
    this.addr = o.addr;
    this.policy = pol;
    const ms = (s: number) => Math.max(1, Number.isFinite(s) ? s : 1) * 1000;
    this.tRecalcMs = ms(o.ls.tRecalc);
    this.tUpdateMs = ms(o.ls.tUpdate);
    this.tTimeoMs = ms(o.ls.tTimeo);
    this.maxAdj = o.maxAdjacencies ?? 65536;
    this.now = Number.isFinite(o.now) ? o.now : 0;
    this.nextUpdate = this.now + this.tUpdateMs;
  }

  /** The current forwarding tables. */
  get tables(): ForwardingTables {
    return this.current;
  }

  /** The LSDB, ours included, in (dst, src) order. */
  lsdb(): LsdbEntry[] {
    return this.entries().map((a) => ({
      src: a.src,
      dst: a.dst,
      seqno: a.seqno,
      updatedAt: a.at,
    }));
  }

  /** When tick must run next: always later than the last call's time. */
  nextDeadline(): number {
    let d = this.nextUpdate;
    const oldest = this.db.values().next();
    if (!oldest.done) d = Math.min(d, oldest.value.at + this.tTimeoMs);
    if (this.pending) d = Math.min(d, this.windowStart + this.tRecalcMs);
    return d;
  }

  /** Runs the timers due at `now`. */
  tick(now: number): LsOutput {
    this.advance(now);
    return this.finish();
  }

  /** A dt N-1 flow of cube `qc` to neighbour `nb` is up. */
  dtUp(flow: FlowHandle, nb: bigint, qc: number, now: number): LsOutput {
    this.advance(now);
    if (!this.isNeighbour(nb) || !CUBES.includes(qc as 0 | 1 | 2)) {
      this.stats.badEvents++;
      return this.finish();
    }
    const known = this.dt.get(flow);
    if (known !== undefined && known.addr !== nb) this.dropDt(flow);
    this.dt.set(flow, { addr: nb, qc });
    this.urgent = true;
    if (!this.own.has(nb)) {
      const last = this.lastOwn.get(nb);
      this.lastOwn.delete(nb);
      const seqno = last === undefined ? 0n : (last + 1n) % U64_MOD;
      this.own.set(nb, { src: this.addr, dst: nb, seqno, at: this.now });
      this.flood(encodeLsa({ dAddr: nb, sAddr: this.addr, seqno }));
    }
    return this.finish();
  }

  /** A dt N-1 flow is gone (deallocated, or down). */
  dtDown(flow: FlowHandle, now: number): LsOutput {
    this.advance(now);
    if (!this.dt.has(flow)) this.stats.badEvents++;
    else this.dropDt(flow);
    return this.finish();
  }

  /** A mgmt N-1 flow to neighbour `nb` is up: it gets the whole LSDB. */
  mgmtUp(flow: FlowHandle, nb: bigint, now: number): LsOutput {
    this.advance(now);
    if (!this.isNeighbour(nb)) {
      this.stats.badEvents++;
      return this.finish();
    }
    this.mgmt.set(flow, nb);
    this.mgmtOrder = null;
    for (const a of this.entries()) {
      this.emit(
        flow,
        encodeLsa({ dAddr: a.dst, sAddr: a.src, seqno: a.seqno }),
      );
    }
    return this.finish();
  }

  /** A mgmt N-1 flow is gone. */
  mgmtDown(flow: FlowHandle, now: number): LsOutput {
    this.advance(now);
    if (!this.mgmt.delete(flow)) this.stats.badEvents++;
    this.mgmtOrder = null;
    return this.finish();
  }

  /** An SDU read from mgmt flow `flow`. */
  receive(flow: FlowHandle, sdu: Uint8Array, now: number): LsOutput {
    this.advance(now);
    this.stats.received++;
    if (!this.mgmt.has(flow)) {
      this.stats.unknownFlow++;
      return this.finish();
    }
    const r = decodeLsa(sdu);
    if (!r.ok) {
      this.stats.malformed++;
      return this.finish();
    }
    const { sAddr: src, dAddr: dst, seqno } = r.value;
    if (
      src === 0n || dst === 0n || src === dst || src > this.maxAddr ||
      dst > this.maxAddr
    ) {
      this.stats.badAddress++;
      return this.finish();
    }
    if (src === this.addr) {
      this.stats.aboutSelf++;
      const ours = this.own.get(dst)?.seqno ?? this.lastOwn.get(dst);
      if (ours === undefined || seqno > ours) this.stats.selfConflicts++;
      return this.finish();
    }
    const k = adjKey(src, dst);
    const a = this.db.get(k);
    if (a === undefined) {
      if (this.db.size >= this.maxAdj) {
        this.stats.full++;
        return this.finish();
      }
      this.db.set(k, { src, dst, seqno, at: this.now });
      this.stats.added++;
      if (this.has(dst, src)) this.pending = true;
    } else if (seqno > a.seqno) {
      this.db.delete(k);
      a.seqno = seqno;
      a.at = this.now;
      this.db.set(k, a);
      this.stats.refreshed++;
    } else {
      this.stats.stale++;
      return this.finish();
    }
    this.flood(sdu.slice(), flow);
    return this.finish();
  }

  // ---- internals ------------------------------------------------------------

  private isNeighbour(a: bigint): boolean {
    return a > 0n && a <= this.maxAddr && a !== this.addr;
  }

  private has(src: bigint, dst: bigint): boolean {
    return src === this.addr
      ? this.own.has(dst)
      : this.db.has(adjKey(src, dst));
  }

  private entries(): Adj[] {
    return [...this.own.values(), ...this.db.values()].sort((x, y) =>
      cmpAddr(x.dst, y.dst) || cmpAddr(x.src, y.src)
    );
  }

  private dropDt(flow: FlowHandle): void {
    const nb = this.dt.get(flow)!;
    this.dt.delete(flow);
    this.urgent = true;
    for (const o of this.dt.values()) if (o.addr === nb.addr) return;
    const a = this.own.get(nb.addr);
    if (a === undefined) return;
    this.own.delete(nb.addr);
    if (this.lastOwn.size >= LAST_OWN_MAX) {
      this.lastOwn.delete(this.lastOwn.keys().next().value!);
    }
    this.lastOwn.set(nb.addr, a.seqno);
  }

  private mgmtFlows(): FlowHandle[] {
    if (this.mgmtOrder === null) {
      this.mgmtOrder = [...this.mgmt].sort(([f, a], [g, b]) =>
        cmpAddr(b, a) || f - g
      ).map(([f]) => f);
    }
    return this.mgmtOrder;
  }

  private emit(flow: FlowHandle, sdu: Uint8Array): void {
    this.out.push({ flow, sdu });
    this.stats.sent++;
  }

  private flood(sdu: Uint8Array, except?: FlowHandle): void {
    for (const f of this.mgmtFlows()) if (f !== except) this.emit(f, sdu);
  }

  private advance(now: number): void {
    if (Number.isFinite(now) && now > this.now) this.now = now;
    const t = this.now;
    for (const [k, a] of this.db) {
      if (a.at + this.tTimeoMs > t) break;
      this.db.delete(k);
      this.stats.expired++;
      if (this.has(a.dst, a.src)) this.pending = true;
    }
    if (t >= this.nextUpdate) {
      const own = [...this.own.values()].sort((x, y) => cmpAddr(x.dst, y.dst));
      for (const a of own) {
        a.seqno = (a.seqno + 1n) % U64_MOD;
        a.at = t;
        this.flood(encodeLsa({ dAddr: a.dst, sAddr: a.src, seqno: a.seqno }));
      }
      const periods = Math.floor((t - this.nextUpdate) / this.tUpdateMs) + 1;
      this.nextUpdate += periods * this.tUpdateMs;
    }
  }

  private finish(): LsOutput {
    if (this.urgent || this.pending) {
      if (this.now >= this.windowStart + this.tRecalcMs) {
        this.windowStart = this.now;
        this.windowCount = 0;
      }
      if (this.urgent || this.windowCount < RECALC_BURST) this.compute();
    }
    const o = { send: this.out, tables: this.changed };
    this.out = [];
    this.changed = null;
    return o;
  }

  private compute(): void {
    this.urgent = false;
    this.pending = false;
    this.windowCount++;
    this.stats.recomputes++;
    const g = new Map<bigint, bigint[]>();
    const link = (a: bigint, b: bigint) => {
      const l = g.get(a);
      if (l === undefined) g.set(a, [b]);
      else l.push(b);
    };
    for (const a of this.db.values()) {
      if (this.has(a.dst, a.src)) link(a.src, a.dst);
    }
    for (const nb of this.own.keys()) {
      if (this.db.has(adjKey(nb, this.addr))) link(this.addr, nb);
    }
    for (const l of g.values()) l.sort(cmpAddr);
    const { dist, first } = bfs(g, this.addr);
    const nbs = g.get(this.addr) ?? [];
    const nbDist = this.policy === LS_SIMPLE
      ? []
      : nbs.map((n) => bfs(g, n).dist);
    const nextHops = new Map<bigint, readonly bigint[]>();
    for (const dst of [...first.keys()].sort(cmpAddr)) {
      const d = dist.get(dst)!;
      const primary = first.get(dst)!;
      const hops = [primary];
      if (this.policy === LS_ECMP) {
        nbs.forEach((n, i) => {
          if (n !== primary && nbDist[i]!.get(dst) === d - 1) hops.push(n);
        });
      } else if (this.policy === LS_LFA) {
        const alt: [number, bigint][] = [];
        nbs.forEach((n, i) => {
          const dn = nbDist[i]!.get(dst);
          // (a neighbour that is the destination is its own primary)
          if (n === primary || dn === undefined) return;
          if (dn < 1 + d) alt.push([dn, n]);
        });
        alt.sort((x, y) => x[0] - y[0] || cmpAddr(x[1], y[1]));
        for (const [, n] of alt) hops.push(n);
      }
      nextHops.set(dst, hops);
    }
    // the dt flow of each cube to each neighbour: the lowest handle of that
    // cube, else the lowest handle
    const via = new Map<bigint, FlowHandle[]>();
    const byHandle = [...this.dt].sort(([f], [h]) => f - h);
    for (const [f, nb] of byHandle) {
      if (!via.has(nb.addr)) via.set(nb.addr, [f, f, f]);
    }
    const matched = new Set<string>();
    for (const [f, nb] of byHandle) {
      const k = `${nb.addr}/${nb.qc}`;
      if (matched.has(k)) continue;
      matched.add(k);
      via.get(nb.addr)![nb.qc] = f;
    }
    const flows = CUBES.map((qc) => {
      const t = new Map<bigint, readonly FlowHandle[]>();
      for (const [dst, hops] of nextHops) {
        t.set(dst, hops.map((h) => via.get(h)![qc]!));
      }
      return t;
    });
    let sig = "";
    for (const [dst, hops] of nextHops) {
      sig += `${dst}:${hops.join(",")}|${
        flows.map((t) => t.get(dst)!.join(",")).join("|")
      };`;
    }
    if (sig === this.signature) return;
    this.signature = sig;
    this.current = {
      nextHops,
      flows: [flows[0]!, flows[1]!, flows[2]!],
    };
    this.changed = this.current;
  }
}
