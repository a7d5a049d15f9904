/**
 * The link-state core (`LinkState` in routing.ts): the C captures replayed
 * into it, flooding, timers, routes by policy, hostile input, and simulated
 * networks of cores on a simulated clock (seeded).
 */
import { assert, assertEquals } from "../../tests/assert.ts";
import { uniform } from "../../tests/rng.ts";
import { hexOf, pcapSdus } from "./captures.ts";
import { decodeCep } from "./cep.ts";
import { QC_BE, QC_VIDEO, QC_VOICE } from "./dt.ts";
import { LS_ECMP, LS_LFA, LS_SIMPLE } from "./enroll.ts";
import { fuzzSeed } from "./fuzz.ts";
import {
  decodeLsa,
  encodeLsa,
  type FlowHandle,
  type ForwardingTables,
  LinkState,
  type LsOutput,
  RECALC_BURST,
} from "./routing.ts";

const T_RECALC = 4_000;
const T_UPDATE = 15_000;
const T_TIMEO = 60_000;

function lsConf(pol = LS_SIMPLE) {
  return { pol, tRecalc: 4, tUpdate: 15, tTimeo: 60 };
}

function core(addr: bigint, pol = LS_SIMPLE, now = 0): LinkState {
  return new LinkState({ addr, ls: lsConf(pol), now });
}

function lsa(src: bigint, dst: bigint, seqno: bigint): Uint8Array {
  return encodeLsa({ sAddr: src, dAddr: dst, seqno });
}

/** The sends of an output as "flow:src>dst#seqno". */
function sent(o: LsOutput): string[] {
  return o.send.map((s) => {
    const l = decodeLsa(s.sdu);
    assert(l.ok);
    const v = l.value;
    return `${s.flow}:${v.sAddr}>${v.dAddr}#${v.seqno}`;
  });
}

/** destination -> next-hop addresses, as plain data. */
function hops(t: ForwardingTables): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [d, h] of t.nextHops) out[`${d}`] = h.map(String);
  return out;
}

function lsdbOf(ls: LinkState): string[] {
  return ls.lsdb().map((e) => `${e.src}>${e.dst}#${e.seqno}`);
}

// ---------------------------------------------------------------------------
// The captures, replayed

const IPS = ["127.0.0.1", "127.0.0.2", "127.0.0.3"];

interface Replayed {
  ls: LinkState;
  /** mgmt/dt flow handle of each peer ip */
  flowOf: (ip: string, comp: "management" | "dt") => FlowHandle;
  addrOf: Map<string, bigint>;
  /** flow -> [t, hex] of what the core sent, and of what the pcap shows */
  ours: Map<FlowHandle, [number, string][]>;
  theirs: Map<FlowHandle, [number, string][]>;
  /** destination -> when a route to it first appeared */
  routeAt: Map<bigint, number>;
}

/**
 * Replays what node `ip` of a pcap received into a core: the end of every
 * CEP exchange is a connection up (mgmt or dt, at both ends), every LSA
 * that arrived is received, and the timers run on the capture's clock. The
 * refresh phase (the IPCP's start-up, not in the capture) is taken from the
 * node's first refresh.
 */
function replay(pcap: string, ip: string): Replayed {
  const sdus = pcapSdus(pcap);
  const addrOf = new Map<string, bigint>();
  for (const s of sdus) {
    if (s.kind === "cep" && s.comp === "management") {
      const c = decodeCep(s.sdu);
      assert(c.ok);
      addrOf.set(s.src, c.value.address);
    }
  }
  const me = addrOf.get(ip)!;
  const handles = new Map<string, FlowHandle>();
  const flowOf = (peer: string, comp: "management" | "dt") => {
    const k = `${peer}/${comp}`;
    if (!handles.has(k)) handles.set(k, handles.size + 1);
    return handles.get(k)!;
  };
  const lsas = sdus.filter((s) => s.comp === "management" && s.kind === "msg");
  const refresh = lsas.find((s) => {
    const l = decodeLsa(s.sdu);
    return s.src === ip && l.ok && l.value.sAddr === me &&
      l.value.seqno === 1n;
  })!;
  const ls = new LinkState({
    addr: me,
    ls: lsConf(),
    now: refresh.tMs - T_UPDATE,
  });
  const ours = new Map<FlowHandle, [number, string][]>();
  const theirs = new Map<FlowHandle, [number, string][]>();
  const routeAt = new Map<bigint, number>();
  let now = -Infinity;
  const take = (o: LsOutput) => {
    for (const s of o.send) {
      const l = ours.get(s.flow) ?? [];
      l.push([now, hexOf(s.sdu)]);
      ours.set(s.flow, l);
    }
    for (const d of o.tables?.nextHops.keys() ?? []) {
      if (!routeAt.has(d)) routeAt.set(d, now);
    }
  };
  const until = (t: number) => {
    while (ls.nextDeadline() <= t) {
      now = ls.nextDeadline();
      take(ls.tick(now));
    }
    now = t;
  };
  for (const s of sdus) {
    if (s.src !== ip && s.dst !== ip) continue;
    const peer = s.src === ip ? s.dst : s.src;
    if (s.kind === "cep" && !s.fromAllocator) {
      until(s.tMs);
      const nb = addrOf.get(peer)!;
      if (s.comp === "management") {
        take(ls.mgmtUp(flowOf(peer, "management"), nb, now));
      } else if (s.comp === "dt") {
        take(ls.dtUp(flowOf(peer, "dt"), nb, QC_BE, now));
      }
    } else if (s.comp === "management" && s.kind === "msg") {
      const f = flowOf(peer, "management");
      if (s.dst === ip) {
        until(s.tMs);
        take(ls.receive(f, s.sdu, now));
      } else {
        const l = theirs.get(f) ?? [];
        l.push([s.tMs, hexOf(s.sdu)]);
        theirs.set(f, l);
      }
    }
  }
  until(sdus[sdus.length - 1]!.tMs + 1);
  return { ls, flowOf, addrOf, ours, theirs, routeAt };
}

function checkSends(r: Replayed, what: string): number {
  const flows = new Set([...r.ours.keys(), ...r.theirs.keys()]);
  let n = 0;
  for (const f of flows) {
    const ours = r.ours.get(f) ?? [];
    const theirs = r.theirs.get(f) ?? [];
    assertEquals(
      ours.map(([, h]) => h),
      theirs.map(([, h]) => h),
      `${what}: LSAs on flow ${f}`,
    );
    ours.forEach(([t], i) => {
      const c = theirs[i]![0];
      assert(Math.abs(t - c) <= 2, `${what}: LSA ${i} at ${t}, C at ${c}`);
    });
    n += ours.length;
  }
  return n;
}

Deno.test("captures: two C nodes replayed into the core: the same LSAs on each flow, in order, at the same ms; LSDB and tables", () => {
  const pcap = "c023-unicast-2node.pcap";
  const sdus = pcapSdus(pcap);
  const at = (n: number) => sdus.find((s) => s.n === n)!.tMs;
  const [a, b] = [replay(pcap, IPS[0]!), replay(pcap, IPS[1]!)];
  const A = a.addrOf.get(IPS[0]!)!;
  const B = a.addrOf.get(IPS[1]!)!;
  // A: #16 at connect, #31 #33 #37 #39 #43 refreshes; B: #17, #32 ... #44
  assertEquals([checkSends(a, "A"), checkSends(b, "B")], [6, 6]);
  for (const r of [a, b]) {
    // (dst, src) order: B < A here
    assertEquals(lsdbOf(r.ls), [`${A}>${B}#5`, `${B}>${A}#5`]);
    assertEquals(r.ls.stats.stale + r.ls.stats.malformed, 0);
  }
  assertEquals(hops(a.ls.tables), { [`${B}`]: [`${B}`] });
  assertEquals(hops(b.ls.tables), { [`${A}`]: [`${A}`] });
  const dtA = a.flowOf(IPS[1]!, "dt");
  for (const t of a.ls.tables.flows) assertEquals(t.get(B), [dtA]);
  // the route appears when the second LSA of the link arrives
  assertEquals(a.routeAt.get(B), at(17));
  assertEquals(b.routeAt.get(A), at(16));
});

Deno.test("captures: three C nodes A-B-C replayed into each core: dump, dt-up LSAs, relays, refreshes byte for byte; four adjacencies; C routed through B", () => {
  const pcap = "c023-unicast-3node.pcap";
  const sdus = pcapSdus(pcap);
  const at = (n: number) => sdus.find((s) => s.n === n)!.tMs;
  const [a, b, c] = IPS.map((ip) => replay(pcap, ip)) as [
    Replayed,
    Replayed,
    Replayed,
  ];
  const [A, B, C] = IPS.map((ip) => a.addrOf.get(ip)!) as [
    bigint,
    bigint,
    bigint,
  ];
  // A: #16, 5 refreshes; B: #17, dump #33 #34, #39 #40, relays, 5 x 4
  // refreshes; C: #41, 4 refreshes
  assertEquals(
    [checkSends(a, "A"), checkSends(b, "B"), checkSends(c, "C")],
    [6, 2 + 1 + 2 + 1 + 5 + 4 + 20, 5],
  );
  // B's dump to C on mgmt up: (dst, src) order, stored seqnos
  assertEquals(
    b.ours.get(b.flowOf(IPS[2]!, "management"))!.slice(0, 2).map(([, h]) => h),
    [hexOf(lsa(B, A, 0n)), hexOf(lsa(A, B, 0n))],
  );
  const db = [`${B}>${A}#5`, `${A}>${B}#5`, `${C}>${B}#4`, `${B}>${C}#5`];
  for (const r of [a, b, c]) assertEquals(lsdbOf(r.ls), db);
  assertEquals(hops(a.ls.tables), { [`${B}`]: [`${B}`], [`${C}`]: [`${B}`] });
  assertEquals(hops(b.ls.tables), { [`${A}`]: [`${A}`], [`${C}`]: [`${C}`] });
  assertEquals(hops(c.ls.tables), { [`${A}`]: [`${B}`], [`${B}`]: [`${B}`] });
  assertEquals(a.ls.tables.flows[QC_BE].get(C), [a.flowOf(IPS[1]!, "dt")]);
  // routes appear as soon as both LSAs of every link on the path are known
  assertEquals([a.routeAt.get(B), a.routeAt.get(C)], [at(17), at(42)]);
  assertEquals([b.routeAt.get(A), b.routeAt.get(C)], [at(16), at(41)]);
  assertEquals([c.routeAt.get(A), c.routeAt.get(B)], [at(39), at(39)]);
  // nothing was ever sent back where it came from, nothing dropped as bad
  for (const r of [a, b, c]) {
    const s = r.ls.stats;
    assertEquals([s.malformed, s.badAddress, s.aboutSelf, s.unknownFlow], [
      0,
      0,
      0,
      0,
    ]);
  }
});

// ---------------------------------------------------------------------------
// One core: flooding and timers

const S = 0x50n;

Deno.test("flooding: dt up announces seqno 0 to every mgmt neighbour, in C's order (descending address); nothing without mgmt neighbours", () => {
  const ls = core(S);
  assertEquals(sent(ls.dtUp(1, 0x10n, QC_BE, 0)), []);
  ls.mgmtUp(11, 0x10n, 1);
  ls.mgmtUp(12, 0x90n, 1);
  ls.mgmtUp(13, 0x30n, 1);
  assertEquals(sent(ls.dtUp(2, 0x30n, QC_BE, 2)), [
    `12:${S}>${0x30n}#0`,
    `13:${S}>${0x30n}#0`,
    `11:${S}>${0x30n}#0`,
  ]);
  // a second flow to the same neighbour is no new adjacency
  assertEquals(sent(ls.dtUp(3, 0x30n, QC_VOICE, 3)), []);
});

Deno.test("flooding: a new mgmt neighbour gets the whole LSDB, ours included, in (dst, src) order with stored seqnos", () => {
  const ls = core(S);
  ls.mgmtUp(11, 0x10n, 0);
  ls.dtUp(1, 0x10n, QC_BE, 0);
  ls.receive(11, lsa(0x10n, S, 3n), 1);
  ls.receive(11, lsa(0x10n, 0x20n, 7n), 1);
  ls.receive(11, lsa(0x20n, 0x10n, 0n), 1);
  assertEquals(sent(ls.mgmtUp(12, 0x60n, 2)), [
    `12:${0x20n}>${0x10n}#0`,
    `12:${S}>${0x10n}#0`,
    `12:${0x10n}>${0x20n}#7`,
    `12:${0x10n}>${S}#3`,
  ]);
});

Deno.test("flooding: new and newer LSAs are relayed unchanged to every other mgmt neighbour, never back; equal or older ones are dropped", () => {
  const ls = core(S);
  for (const [f, a] of [[11, 0x10n], [12, 0x20n], [13, 0x30n]] as const) {
    ls.mgmtUp(f, a, 0);
  }
  const one = lsa(0x20n, 0x77n, 5n);
  const o = ls.receive(12, one, 1);
  assertEquals(sent(o), [`13:32>119#5`, `11:32>119#5`]);
  assertEquals(hexOf(o.send[0]!.sdu), hexOf(one));
  assertEquals(sent(ls.receive(11, one, 2)), [], "a copy");
  assertEquals(sent(ls.receive(13, lsa(0x20n, 0x77n, 4n), 3)), [], "older");
  assertEquals(sent(ls.receive(13, lsa(0x20n, 0x77n, 6n), 4)), [
    `12:32>119#6`,
    `11:32>119#6`,
  ]);
  // unsigned: 2^63 is greater than 6
  assertEquals(sent(ls.receive(11, lsa(0x20n, 0x77n, 1n << 63n), 5)).length, 2);
  // a mgmt neighbour that went away gets nothing more
  ls.mgmtDown(13, 6);
  assertEquals(sent(ls.receive(12, lsa(0x20n, 0x78n, 0n), 7)), ["11:32>120#0"]);
  assertEquals(ls.stats.stale, 2);
  assertEquals([ls.stats.added, ls.stats.refreshed], [2, 2]);
});

Deno.test("timers: every t_update from start-up (not from the connect), each own adjacency seqno + 1 to every mgmt neighbour", () => {
  const ls = core(S, LS_SIMPLE, 1_000);
  assertEquals(ls.nextDeadline(), 16_000);
  ls.mgmtUp(11, 0x10n, 9_000);
  ls.dtUp(1, 0x10n, QC_BE, 9_000);
  ls.dtUp(2, 0x08n, QC_BE, 9_000);
  assertEquals(sent(ls.tick(15_999)), []);
  assertEquals(sent(ls.tick(16_000)), [`11:${S}>8#1`, `11:${S}>16#1`]);
  assertEquals(ls.nextDeadline(), 31_000);
  // late by several periods: one refresh, the phase kept
  assertEquals(sent(ls.tick(77_000)), [`11:${S}>8#2`, `11:${S}>16#2`]);
  assertEquals(ls.nextDeadline(), 91_000);
});

Deno.test("timers: an adjacency not refreshed for t_timeo is removed, to the ms; a refreshed one stays; the route goes with it", () => {
  const ls = core(S);
  ls.mgmtUp(11, 0x10n, 0);
  ls.dtUp(1, 0x10n, QC_BE, 0);
  ls.receive(11, lsa(0x10n, S, 0n), 100);
  ls.receive(11, lsa(0x10n, 0x20n, 0n), 100);
  ls.receive(11, lsa(0x20n, 0x10n, 0n), 200);
  assertEquals(hops(ls.tables), { "16": ["16"], "32": ["16"] });
  ls.receive(11, lsa(0x10n, S, 1n), 30_000);
  ls.receive(11, lsa(0x20n, 0x10n, 1n), 30_000);
  ls.tick(45_000);
  assertEquals(ls.nextDeadline(), 60_000, "the refresh first");
  ls.tick(60_000);
  assertEquals(ls.nextDeadline(), 100 + T_TIMEO);
  assertEquals(ls.tick(60_099).tables, null);
  const o = ls.tick(60_100);
  assertEquals(hops(o.tables!), { "16": ["16"] });
  // no tick at 15 s: the refresh of 30 s was the first (one for both)
  assertEquals(lsdbOf(ls), [`32>16#1`, `${S}>16#3`, `16>${S}#1`]);
  assertEquals(ls.stats.expired, 1);
});

Deno.test("timers: tick at nextDeadline() never leaves it due (no busy loop), whatever the events", () => {
  const rand = uniform(fuzzSeed());
  const ls = core(S, LS_ECMP);
  let now = 0;
  for (let i = 0; i < 3000; i++) {
    now += Math.floor(rand() * 5000);
    const nb = BigInt(1 + Math.floor(rand() * 6));
    const f = Math.floor(rand() * 4);
    switch (Math.floor(rand() * 6)) {
      case 0:
        ls.dtUp(f, nb, QC_BE, now);
        break;
      case 1:
        ls.dtDown(f, now);
        break;
      case 2:
        ls.mgmtUp(10 + f, nb, now);
        break;
      default: {
        const s = BigInt(1 + Math.floor(rand() * 6));
        ls.receive(10 + f, lsa(s, nb, BigInt(i)), now);
      }
    }
    const d = ls.nextDeadline();
    assert(d > now, `deadline ${d} at ${now}`);
    ls.tick(d);
    assert(ls.nextDeadline() > d, `still due at ${d}`);
    now = d;
  }
});

Deno.test("recompute: at once when an LSA completes a two-way edge or a link times out; a storm waits for the end of the t_recalc window", () => {
  const ls = core(S);
  ls.mgmtUp(11, 0x10n, 0);
  ls.dtUp(1, 0x10n, QC_BE, 0);
  assertEquals(ls.receive(11, lsa(0x10n, 0x99n, 0n), 10).tables, null);
  assert(ls.receive(11, lsa(0x10n, S, 0n), 10).tables !== null);
  // a storm of new two-way edges: RECALC_BURST computations, then the rest
  // waits for the end of the window
  const base = ls.stats.recomputes;
  let t = 20_000;
  let lastTables = -1;
  for (let i = 0; i < 3 * RECALC_BURST; i++) {
    const x = 0x1000n + BigInt(i);
    ls.receive(11, lsa(0x10n, x, 0n), t);
    if (ls.receive(11, lsa(x, 0x10n, 0n), t).tables !== null) lastTables = i;
  }
  assertEquals(ls.stats.recomputes - base, RECALC_BURST);
  assertEquals(lastTables, RECALC_BURST - 1);
  assertEquals(ls.tables.nextHops.size, 1 + RECALC_BURST);
  assertEquals(ls.nextDeadline(), t + T_RECALC);
  t += T_RECALC;
  assertEquals(ls.tick(t).tables!.nextHops.size, 1 + 3 * RECALC_BURST);
  // our own flows are never held back
  for (let i = 0; i < 3 * RECALC_BURST; i++) {
    ls.dtUp(100 + i, 0x2000n + BigInt(i), QC_BE, t);
  }
  assertEquals(ls.dtDown(1, t).tables!.nextHops.size, 0);
});

Deno.test("own links: a dt flow that goes down is no longer advertised (nothing sent); back up, it resumes at seqno + 1 and a peer takes it at once", () => {
  const a = core(0x0an, LS_SIMPLE, 0);
  const b = core(0x0bn, LS_SIMPLE, 500);
  // wire a and b: mgmt flow 1 at both, dt flow 2 at both
  const deliver = (o: LsOutput, to: LinkState, now: number) => {
    for (const s of o.send) to.receive(1, s.sdu, now);
  };
  a.mgmtUp(1, 0x0bn, 0);
  b.mgmtUp(1, 0x0an, 0);
  deliver(a.dtUp(2, 0x0bn, QC_BE, 0), b, 0);
  deliver(b.dtUp(2, 0x0an, QC_BE, 0), a, 0);
  for (let t = 1000; t <= 40_000; t += 1000) {
    deliver(a.tick(t), b, t);
    deliver(b.tick(t), a, t);
  }
  assertEquals(lsdbOf(b), ["11>10#2", "10>11#2"]);
  const down = a.dtDown(2, 40_000);
  assertEquals(sent(down), []);
  assertEquals(hops(down.tables!), {});
  assertEquals(lsdbOf(a), ["11>10#2"]);
  assertEquals(sent(a.tick(45_000)), [], "no refresh of a gone link");
  const up = a.dtUp(3, 0x0bn, QC_BE, 50_000);
  assertEquals(sent(up), ["1:10>11#3"]);
  deliver(up, b, 50_000);
  assertEquals(hops(b.tables), { "10": ["10"] });
  assertEquals(hops(a.tables), { "11": ["11"] });
});

Deno.test("cubes: one table per QoS cube; the flow of that cube to a next hop if there is one, else the lowest handle; a second flow keeps the adjacency", () => {
  const ls = core(S);
  ls.mgmtUp(11, 0x10n, 0);
  ls.dtUp(7, 0x10n, QC_VOICE, 0);
  ls.dtUp(5, 0x10n, QC_BE, 0);
  ls.receive(11, lsa(0x10n, S, 0n), 0);
  ls.receive(11, lsa(0x10n, 0x20n, 0n), 0);
  ls.receive(11, lsa(0x20n, 0x10n, 0n), 0);
  const f = ls.tables.flows;
  assertEquals([f[QC_BE].get(0x20n), f[QC_VIDEO].get(0x20n)], [[5], [5]]);
  assertEquals(f[QC_VOICE].get(0x20n), [7]);
  const o = ls.dtDown(5, 1);
  assertEquals(sent(o), []);
  assertEquals(o.tables!.flows[QC_BE].get(0x20n), [7]);
  assertEquals(lsdbOf(ls).includes(`${S}>16#0`), true);
  // events that cannot be: ignored and counted
  const bad = [
    ls.dtUp(8, S, QC_BE, 2),
    ls.dtUp(8, 0n, QC_BE, 2),
    ls.dtUp(8, 0x30n, 3, 2),
    ls.mgmtUp(12, 1n << 32n, 2),
    ls.dtDown(99, 2),
    ls.mgmtDown(99, 2),
  ];
  assertEquals(bad.flatMap(sent), []);
  assertEquals(ls.stats.badEvents, 6);
  assertEquals(lsdbOf(ls).length, 4);
});

// ---------------------------------------------------------------------------
// One core: routes by policy, from a topology given as LSAs

/**
 * A core at `self` in a topology of undirected edges: a dt flow to each
 * neighbour (handle = the neighbour's address), the rest learned as LSAs
 * on one mgmt flow (handle 0), in the given order.
 */
function topology(
  self: bigint,
  edges: [bigint, bigint][],
  pol = LS_SIMPLE,
): LinkState {
  const ls = core(self, pol);
  ls.mgmtUp(0, 0xffffn, 0);
  for (const [x, y] of edges) {
    for (const [s, d] of [[x, y], [y, x]] as const) {
      if (s === self) ls.dtUp(Number(d), d, QC_BE, 0);
      else ls.receive(0, lsa(s, d, 0n), 0);
    }
  }
  return ls;
}

/** A ring of `n` nodes 1..n. */
function ring(n: number): [bigint, bigint][] {
  return Array.from(
    { length: n },
    (_, i) => [BigInt(i + 1), BigInt((i + 1) % n + 1)] as [bigint, bigint],
  );
}

Deno.test("routes: a line A-B-C; a one-way link is no link", () => {
  const line: [bigint, bigint][] = [[1n, 2n], [2n, 3n]];
  assertEquals(hops(topology(1n, line).tables), { "2": ["2"], "3": ["2"] });
  assertEquals(hops(topology(2n, line).tables), { "1": ["1"], "3": ["3"] });
  const ls = core(1n);
  ls.mgmtUp(0, 9n, 0);
  ls.dtUp(2, 2n, QC_BE, 0);
  ls.receive(0, lsa(2n, 1n, 0n), 0);
  ls.receive(0, lsa(2n, 3n, 0n), 0);
  assertEquals(hops(ls.tables), { "2": ["2"] }, "3 never announced 2");
  ls.receive(0, lsa(3n, 2n, 0n), 0);
  assertEquals(hops(ls.tables), { "2": ["2"], "3": ["2"] });
});

Deno.test("routes: ties go as in C's Dijkstra (first hop of the lowest-address predecessor), whatever order the LSAs came in", () => {
  // 1 - {2, 3}; 2 - 9 - 7; 3 - 8 - 7: 7 is reached from 8 (< 9), so via 3
  const g: [bigint, bigint][] = [
    [1n, 2n],
    [1n, 3n],
    [2n, 9n],
    [3n, 8n],
    [9n, 7n],
    [8n, 7n],
  ];
  const want = { "2": ["2"], "3": ["3"], "7": ["3"], "8": ["3"], "9": ["2"] };
  assertEquals(hops(topology(1n, g).tables), want);
  assertEquals(hops(topology(1n, [...g].reverse()).tables), want);
  // a diamond: the lower neighbour
  const d: [bigint, bigint][] = [[1n, 5n], [1n, 4n], [5n, 6n], [4n, 6n]];
  assertEquals(hops(topology(1n, d).tables)["6"], ["4"]);
  assertEquals(hops(topology(1n, [...d].reverse()).tables)["6"], ["4"]);
});

Deno.test("ecmp: both next hops to the far side of a ring of four, primary first; one where there is one path", () => {
  const ls = topology(1n, ring(4), LS_ECMP);
  assertEquals(hops(ls.tables), { "2": ["2"], "3": ["2", "4"], "4": ["4"] });
  assertEquals(ls.tables.flows[QC_BE].get(3n), [2, 4]);
  assertEquals(hops(topology(1n, ring(4), LS_SIMPLE).tables)["3"], ["2"]);
  // a ring of five: no equal-cost pair from 1
  assertEquals(hops(topology(1n, ring(5), LS_ECMP).tables), {
    "2": ["2"],
    "3": ["2"],
    "4": ["5"],
    "5": ["5"],
  });
});

Deno.test("lfa: a loop-free alternate where one exists, none where the neighbour's only way goes back through us", () => {
  // triangle: each neighbour is the other's alternate
  const tri = topology(1n, [[1n, 2n], [2n, 3n], [3n, 1n]], LS_LFA);
  assertEquals(hops(tri.tables), { "2": ["2", "3"], "3": ["3", "2"] });
  // ring of four: the far side has an alternate, the neighbours none
  assertEquals(hops(topology(1n, ring(4), LS_LFA).tables), {
    "2": ["2"],
    "3": ["2", "4"],
    "4": ["4"],
  });
  // ring of five: 3 via 2, and 5 is loop-free (5-4-3 is 2 hops < 1 + 2)
  assertEquals(hops(topology(1n, ring(5), LS_LFA).tables), {
    "2": ["2"],
    "3": ["2", "5"],
    "4": ["5", "2"],
    "5": ["5"],
  });
  // a stub: 1 - 2 - 3 and 1 - 4 (4 is a leaf): no alternate via 4
  const stub = topology(1n, [[1n, 2n], [2n, 3n], [1n, 4n]], LS_LFA);
  assertEquals(hops(stub.tables)["3"], ["2"]);
  // closest alternate first: 1-{2,3,4}, 2-9, 3-9, 4-5-9
  const many = topology(1n, [
    [1n, 4n],
    [1n, 3n],
    [1n, 2n],
    [2n, 9n],
    [3n, 9n],
    [4n, 5n],
    [5n, 9n],
  ], LS_LFA);
  assertEquals(hops(many.tables)["9"], ["2", "3", "4"]);
});

// ---------------------------------------------------------------------------
// Hostile input

Deno.test("hostile: bad lengths, zero, looped or too wide addresses, unknown flows, a full LSDB are dropped and counted, never relayed", () => {
  const ls = new LinkState({
    addr: S,
    ls: lsConf(),
    now: 0,
    maxAdjacencies: 3,
  });
  ls.mgmtUp(11, 0x10n, 0);
  ls.mgmtUp(12, 0x20n, 0);
  const none = (sdu: Uint8Array, flow = 11) =>
    assertEquals(sent(ls.receive(flow, sdu, 1)), []);
  none(new Uint8Array(0));
  none(new Uint8Array(23));
  none(new Uint8Array(25));
  none(new Uint8Array(1 << 16));
  none(lsa(0n, 0x10n, 1n));
  none(lsa(0x10n, 0n, 1n));
  none(lsa(0x10n, 0x10n, 1n));
  none(lsa(1n << 32n, 0x10n, 1n));
  none(lsa(0x10n, (1n << 64n) - 1n, 1n));
  none(lsa(0x10n, 0x20n, 1n), 99);
  for (let i = 1n; i <= 3n; i++) ls.receive(11, lsa(0x10n, 0x100n + i, 0n), 2);
  none(lsa(0x10n, 0x200n, 0n));
  const s = ls.stats;
  assertEquals(
    [s.malformed, s.badAddress, s.unknownFlow, s.full, s.added],
    [4, 5, 1, 1, 3],
  );
  assertEquals(s.received, 14);
  // room again once they time out
  ls.tick(2 + T_TIMEO);
  assertEquals(sent(ls.receive(11, lsa(0x10n, 0x200n, 0n), 2 + T_TIMEO)), [
    "12:16>512#0",
  ]);
});

Deno.test("hostile: LSAs about ourselves are never stored or relayed; an echo is fine, a greater seqno or a link we never had is a conflict", () => {
  const ls = core(S);
  ls.mgmtUp(11, 0x10n, 0);
  ls.mgmtUp(12, 0x20n, 0);
  ls.dtUp(1, 0x10n, QC_BE, 0);
  ls.tick(T_UPDATE); // seqno 1
  const none = (l: Uint8Array) => assertEquals(sent(ls.receive(12, l, 1)), []);
  none(lsa(S, 0x10n, 1n)); // echo around a ring
  none(lsa(S, 0x10n, 0n)); // an old copy
  assertEquals(ls.stats.selfConflicts, 0);
  none(lsa(S, 0x10n, 2n)); // greater than ours
  none(lsa(S, 0x77n, 0n)); // a link we never had
  assertEquals([ls.stats.aboutSelf, ls.stats.selfConflicts], [4, 2]);
  // a link we had: old copies are no conflict
  ls.dtDown(1, 2);
  none(lsa(S, 0x10n, 1n));
  assertEquals(ls.stats.selfConflicts, 2);
  assertEquals(lsdbOf(ls), []);
  // our own seqno was not moved by the forged one
  assertEquals(sent(ls.dtUp(1, 0x10n, QC_BE, 3)), [
    `12:${S}>16#2`,
    `11:${S}>16#2`,
  ]);
});

Deno.test("hostile: a forged seqno 2^64-1 holds an entry only until it times out; then the owner's LSAs are taken again", () => {
  const ls = core(S);
  ls.mgmtUp(11, 0x10n, 0);
  ls.receive(11, lsa(0x10n, 0x20n, 0n), 0);
  ls.receive(11, lsa(0x10n, 0x20n, (1n << 64n) - 1n), 1_000);
  for (let t = 15_000; t < 61_000; t += 15_000) {
    assertEquals(sent(ls.receive(11, lsa(0x10n, 0x20n, 9n), t)), []);
  }
  ls.tick(61_000);
  assertEquals(lsdbOf(ls), []);
  ls.receive(11, lsa(0x10n, 0x20n, 10n), 75_000);
  assertEquals(lsdbOf(ls), ["16>32#10"]);
});

Deno.test("fuzz: random and mutated LSAs, events and clock jumps never throw; the core stays consistent", () => {
  const seed = fuzzSeed();
  const rand = uniform(seed);
  const int = (n: number) => Math.floor(rand() * n);
  const addrs = [S, 1n, 2n, 3n, 4n, 0n, (1n << 32n) - 1n, 1n << 32n];
  const seqs = [0n, 1n, 2n, (1n << 63n) - 1n, 1n << 63n, (1n << 64n) - 1n];
  for (const pol of [LS_SIMPLE, LS_LFA, LS_ECMP]) {
    const ls = new LinkState({
      addr: S,
      ls: lsConf(pol),
      now: 0,
      maxAdjacencies: 40,
    });
    let now = 0;
    let run = 0;
    try {
      for (; run < 4000; run++) {
        now += [0, 1, 500, 20_000, 70_000][int(5)]!;
        const nb = addrs[int(addrs.length)]!;
        let o: LsOutput;
        switch (int(10)) {
          case 0:
            o = ls.dtUp(int(5), nb, int(4), now);
            break;
          case 1:
            o = ls.dtDown(int(5), now);
            break;
          case 2:
            o = ls.mgmtUp(10 + int(3), nb, now);
            break;
          case 3:
            o = ls.mgmtDown(10 + int(3), now);
            break;
          case 4:
            o = ls.tick(now - int(3) * 1000);
            break;
          case 5: {
            const b = new Uint8Array(int(50)).map(() => int(256));
            o = ls.receive(10 + int(4), b, now);
            break;
          }
          default: {
            const b = lsa(
              addrs[int(addrs.length - 2)]!,
              nb > 0xffff_ffffn ? 1n : nb,
              seqs[int(seqs.length)]!,
            );
            if (int(3) === 0) b[int(24)]! ^= 1 << int(8);
            o = ls.receive(10 + int(3), b, now);
          }
        }
        for (const s of o.send) {
          const l = decodeLsa(s.sdu);
          assert(l.ok, "sent a bad LSA");
          assert(l.value.sAddr !== 0n && l.value.dAddr !== 0n);
        }
        const db = ls.lsdb();
        assert(db.length <= 40 + 5, `LSDB ${db.length}`);
        for (const [dst, h] of ls.tables.nextHops) {
          assert(dst !== S && h.length > 0);
          for (const t of ls.tables.flows) {
            assertEquals(t.get(dst)!.length, h.length);
          }
        }
        assert(ls.nextDeadline() > now - 3000);
      }
    } catch (e) {
      throw new Error(
        `fuzz seed ${seed} (O7S_FUZZ_SEED=${seed} repeats it), policy ${pol}, run ${run}: ${
          e instanceof Error ? e.message : String(e)
        }`,
        { cause: e },
      );
    }
    const s = ls.stats;
    assert(s.malformed > 0 && s.badAddress > 0 && s.added > 0, `${pol}`);
  }
});

// ---------------------------------------------------------------------------
// Simulated networks of cores

interface SimFlow {
  peer: bigint;
  peerFlow: FlowHandle;
  up: boolean;
  /** delivery time of the last SDU sent on it (FIFO) */
  lastAt: number;
}

interface SimNode {
  addr: bigint;
  ls: LinkState;
  flows: Map<FlowHandle, SimFlow>;
  dtTo: Map<bigint, FlowHandle>;
  nextFlow: number;
  gone: boolean;
}

/**
 * Cores joined by pairs of N-1 flows (mgmt and dt per link), on one
 * simulated clock; every SDU takes 0.1-2.1 ms (seeded), in order per flow.
 */
class Net {
  now = 0;
  readonly nodes = new Map<bigint, SimNode>();
  readonly edges = new Set<string>();
  /** transmissions per (sender, flow, bytes), per LSA (bytes) */
  readonly perHop = new Map<string, number>();
  readonly perLsa = new Map<string, { first: number; n: number }>();
  private q: { at: number; n: number; go: () => void }[] = [];
  private seq = 0;
  private readonly links = new Map<
    string,
    [[FlowHandle, FlowHandle], [FlowHandle, FlowHandle]]
  >();

  constructor(readonly rand: () => number, readonly pol = LS_SIMPLE) {}

  /** A node that started up `ago` ms before now. */
  add(addr: bigint, ago = this.rand() * T_UPDATE): void {
    this.nodes.set(addr, {
      addr,
      ls: new LinkState({ addr, ls: lsConf(this.pol), now: this.now - ago }),
      flows: new Map(),
      dtTo: new Map(),
      nextFlow: 1,
      gone: false,
    });
  }

  /** `irm ipcp connect`: mgmt then dt, both ends. */
  link(x: bigint, y: bigint): void {
    const a = this.nodes.get(x)!;
    const b = this.nodes.get(y)!;
    const [am, bm] = this.pair(a, b);
    this.handle(a, a.ls.mgmtUp(am, y, this.now));
    this.handle(b, b.ls.mgmtUp(bm, x, this.now));
    const [ad, bd] = this.pair(a, b);
    a.dtTo.set(y, ad);
    b.dtTo.set(x, bd);
    this.handle(a, a.ls.dtUp(ad, y, QC_BE, this.now));
    this.handle(b, b.ls.dtUp(bd, x, QC_BE, this.now));
    this.links.set(Net.key(x, y), [[am, bm], [ad, bd]]);
    this.edges.add(Net.key(x, y));
  }

  /** Both N-1 flows of a link go down, seen at both ends. */
  cut(x: bigint, y: bigint): void {
    const a = this.nodes.get(x)!;
    const b = this.nodes.get(y)!;
    const [[am, bm], [ad, bd]] = this.links.get(Net.key(x, y))!;
    for (const f of [a.flows.get(am)!, a.flows.get(ad)!]) f.up = false;
    for (const f of [b.flows.get(bm)!, b.flows.get(bd)!]) f.up = false;
    this.handle(a, a.ls.mgmtDown(am, this.now));
    this.handle(b, b.ls.mgmtDown(bm, this.now));
    this.handle(a, a.ls.dtDown(ad, this.now));
    this.handle(b, b.ls.dtDown(bd, this.now));
    a.dtTo.delete(y);
    b.dtTo.delete(x);
    this.edges.delete(Net.key(x, y));
  }

  /** A node stops, silently: nobody is told, its flows stay "up". */
  vanish(x: bigint): void {
    this.nodes.get(x)!.gone = true;
    for (const e of [...this.edges]) {
      if (e.split("-").includes(`${x}`)) this.edges.delete(e);
    }
  }

  /** Runs until `until`; a storm (endless events) fails instead of hanging. */
  run(until: number): void {
    for (let events = 0;; events++) {
      if (events > 1_000_000 || this.q.length > 10_000) {
        throw new Error(`a storm at ${this.now} ms`);
      }
      let at = Infinity;
      let node: SimNode | undefined;
      let qi = -1;
      this.q.forEach((e, i) => {
        if (e.at < at || (e.at === at && e.n < this.q[qi]!.n)) {
          at = e.at;
          qi = i;
        }
      });
      for (const nd of this.nodes.values()) {
        const d = nd.ls.nextDeadline();
        if (!nd.gone && d < at) {
          at = d;
          node = nd;
          qi = -1;
        }
      }
      if (at > until) break;
      this.now = at;
      if (qi >= 0) this.q.splice(qi, 1)[0]!.go();
      else this.handle(node!, node!.ls.tick(at));
    }
    this.now = until;
  }

  /** Nodes still running. */
  live(): SimNode[] {
    return [...this.nodes.values()].filter((n) => !n.gone);
  }

  /**
   * What is wrong with the tables, given the links left: every live node
   * has a route to every node it can reach, none to others, and following
   * primary next hops (and the dt flows of every cube) takes a shortest
   * path over existing links.
   */
  problems(): string[] {
    const g = new Map<bigint, bigint[]>();
    for (const e of this.edges) {
      const [x, y] = e.split("-").map(BigInt) as [bigint, bigint];
      g.set(x, [...g.get(x) ?? [], y]);
      g.set(y, [...g.get(y) ?? [], x]);
    }
    const out: string[] = [];
    for (const n of this.live()) {
      const dist = new Map<bigint, number>([[n.addr, 0]]);
      let layer = [n.addr];
      for (let d = 1; layer.length > 0; d++) {
        layer = layer.flatMap((u) =>
          (g.get(u) ?? []).filter((v) => !dist.has(v) && dist.set(v, d))
        );
      }
      const t = n.ls.tables;
      for (const [d] of t.nextHops) {
        if (!dist.has(d)) out.push(`${n.addr} has a route to ${d}`);
      }
      for (const [d, k] of dist) {
        if (d === n.addr) continue;
        let at = n;
        let steps = 0;
        while (at.addr !== d && steps <= k) {
          const h = at.ls.tables.nextHops.get(d)?.[0];
          const f = at.ls.tables.flows.map((c) => c.get(d)?.[0]);
          if (h === undefined || !Net.has(g, at.addr, h)) break;
          if (f.some((x) => x !== at.dtTo.get(h))) break;
          at = this.nodes.get(h)!;
          steps++;
        }
        if (at.addr !== d || steps !== k) {
          out.push(`${n.addr} to ${d}: stuck at ${at.addr} after ${steps}`);
        }
      }
    }
    return out;
  }

  /** The adjacencies in every live node's LSDB, as one sorted list each. */
  lsdbs(): string[][] {
    return this.live().map((n) =>
      n.ls.lsdb().map((e) => `${e.src}>${e.dst}`).sort()
    );
  }

  private static key(x: bigint, y: bigint): string {
    return x < y ? `${x}-${y}` : `${y}-${x}`;
  }

  private static has(g: Map<bigint, bigint[]>, x: bigint, y: bigint) {
    return g.get(x)?.includes(y) ?? false;
  }

  private pair(a: SimNode, b: SimNode): [FlowHandle, FlowHandle] {
    const fa = a.nextFlow++;
    const fb = b.nextFlow++;
    a.flows.set(fa, { peer: b.addr, peerFlow: fb, up: true, lastAt: 0 });
    b.flows.set(fb, { peer: a.addr, peerFlow: fa, up: true, lastAt: 0 });
    return [fa, fb];
  }

  private handle(node: SimNode, o: LsOutput): void {
    for (const s of o.send) {
      const f = node.flows.get(s.flow)!;
      const hex = hexOf(s.sdu);
      const hop = `${node.addr}/${s.flow}/${hex}`;
      this.perHop.set(hop, (this.perHop.get(hop) ?? 0) + 1);
      const l = this.perLsa.get(hex) ?? { first: this.now, n: 0 };
      l.n++;
      this.perLsa.set(hex, l);
      if (!f.up) continue;
      const at = Math.max(this.now + 0.1 + 2 * this.rand(), f.lastAt);
      f.lastAt = at;
      this.q.push({
        at,
        n: this.seq++,
        go: () => {
          const peer = this.nodes.get(f.peer)!;
          if (!f.up || node.gone || peer.gone) return;
          this.handle(peer, peer.ls.receive(f.peerFlow, s.sdu, this.now));
        },
      });
    }
  }
}

/** `n` distinct random non-zero 32-bit addresses. */
function addresses(rand: () => number, n: number): bigint[] {
  const s = new Set<bigint>();
  while (s.size < n) s.add(BigInt(1 + Math.floor(rand() * 0xffff_fffe)));
  return [...s];
}

function ringNet(seed: number, n: number, pol = LS_SIMPLE): [Net, bigint[]] {
  const net = new Net(uniform(seed), pol);
  const xs = addresses(net.rand, n);
  for (const x of xs) net.add(x);
  xs.forEach((x, i) => {
    net.run(1000 * (i + 1));
    net.link(x, xs[(i + 1) % n]!);
  });
  return [net, xs];
}

Deno.test("sim: a line A-B-C and a ring of four converge: the same LSDB everywhere, shortest loop-free routes at every node", () => {
  const seed = fuzzSeed();
  const line = new Net(uniform(seed));
  const [a, b, c] = addresses(line.rand, 3) as [bigint, bigint, bigint];
  for (const x of [a, b, c]) line.add(x);
  line.link(a, b);
  line.run(3000);
  line.link(c, b);
  line.run(3100);
  assertEquals(line.problems(), [], `seed ${seed}`);
  assertEquals(hops(line.nodes.get(a)!.ls.tables), {
    [`${b}`]: [`${b}`],
    [`${c}`]: [`${b}`],
  });
  const [ring4] = ringNet(seed, 4);
  ring4.run(5000);
  assertEquals(ring4.problems(), [], `seed ${seed}`);
  const dbs = ring4.lsdbs();
  assertEquals(dbs[0]!.length, 8);
  for (const d of dbs) assertEquals(d, dbs[0]);
  ring4.run(100_000);
  assertEquals(ring4.problems(), [], "stays");
});

Deno.test("sim: cut a link of a ring of four: the ends route around at once, every node within t_timeo, and the link leaves every LSDB", () => {
  const seed = fuzzSeed();
  for (let k = 0; k < 8; k++) {
    const [net, xs] = ringNet(seed + k, 4);
    net.run(40_000);
    const T = net.now;
    net.cut(xs[0]!, xs[1]!);
    // the ends at once (their first hop: beyond it, nodes that still hold
    // the link may send a packet back until it times out there)
    const [x0, x1, x2, x3] = xs as [bigint, bigint, bigint, bigint];
    assertEquals(net.nodes.get(x0)!.ls.tables.nextHops.get(x1), [x3]);
    assertEquals(net.nodes.get(x1)!.ls.tables.nextHops.get(x0), [x2]);
    let firstOk = T;
    for (let t = T; t <= T + 2 * T_TIMEO; t += 100) {
      net.run(t);
      if (net.problems().length > 0) firstOk = t + 100;
    }
    assert(firstOk <= T + T_TIMEO, `seed ${seed + k}: ok at ${firstOk - T}`);
    for (const d of net.lsdbs()) assertEquals(d.length, 6);
  }
});

Deno.test("sim: a node that vanishes without a word is out of every table within t_timeo, and paths go around it", () => {
  const seed = fuzzSeed();
  for (let k = 0; k < 8; k++) {
    const [net, xs] = ringNet(seed + k, 5);
    net.run(40_000 + 1000 * k);
    const T = net.now;
    net.vanish(xs[2]!);
    let firstOk = T;
    for (let t = T; t <= T + 2 * T_TIMEO; t += 100) {
      net.run(t);
      if (net.problems().length > 0) firstOk = t + 100;
    }
    assert(firstOk <= T + T_TIMEO, `seed ${seed + k}: ok at ${firstOk - T}`);
    assert(firstOk > T, "routes through it lasted until it timed out");
    for (const n of net.live()) assert(!n.ls.tables.nextHops.has(xs[2]!));
  }
});

Deno.test("sim ecmp: a ring of four gives both next hops to the far node, at every node", () => {
  const [net, xs] = ringNet(fuzzSeed(), 4, LS_ECMP);
  net.run(6000);
  assertEquals(net.problems(), []);
  xs.forEach((x, i) => {
    const n = net.nodes.get(x)!;
    const far = xs[(i + 2) % 4]!;
    const sides = [xs[(i + 1) % 4]!, xs[(i + 3) % 4]!];
    assertEquals([...n.ls.tables.nextHops.get(far)!].sort(), sides.sort());
    assertEquals(
      [...n.ls.tables.flows[QC_BE].get(far)!].sort(),
      sides.map((s) => n.dtTo.get(s)!).sort(),
    );
    for (const s of sides) assertEquals(n.ls.tables.nextHops.get(s), [s]);
  });
});

Deno.test("sim flood: 24 cores on a random graph converge; no LSA crosses a flow twice; each refresh costs exactly 2E - N + 1 messages", () => {
  const seed = fuzzSeed();
  const N = 24;
  const net = new Net(uniform(seed));
  const xs = addresses(net.rand, N);
  for (const x of xs) net.add(x);
  const want = new Set<string>();
  const key = (x: bigint, y: bigint) => (x < y ? `${x}-${y}` : `${y}-${x}`);
  // a random tree, plus N random chords
  for (let i = 1; i < N; i++) {
    want.add(key(xs[i]!, xs[Math.floor(net.rand() * i)]!));
  }
  while (want.size < 2 * N - 1) {
    const x = xs[Math.floor(net.rand() * N)]!;
    const y = xs[Math.floor(net.rand() * N)]!;
    if (x !== y) want.add(key(x, y));
  }
  const order = [...want].sort(() => net.rand() - 0.5);
  order.forEach((e, i) => {
    net.run((10_000 * i) / order.length);
    const [x, y] = e.split("-").map(BigInt) as [bigint, bigint];
    net.link(x, y);
  });
  net.run(20_000);
  assertEquals(net.problems(), [], `seed ${seed}`);
  const E = want.size;
  const dbs = net.lsdbs();
  for (const d of dbs) assertEquals(d, dbs[0], `seed ${seed}`);
  assertEquals(dbs[0]!.length, 2 * E);
  net.run(80_000);
  assertEquals(net.problems(), [], `seed ${seed}`);
  assertEquals(Math.max(...net.perHop.values()), 1, "an LSA sent twice");
  let refreshes = 0;
  for (const [hex, l] of net.perLsa) {
    const v = decodeLsa(
      new Uint8Array(hex.match(/../g)!.map((h) => parseInt(h, 16))),
    );
    assert(v.ok);
    if (l.first < 30_000 || l.first > 75_000) continue;
    assertEquals(l.n, 2 * E - N + 1, `seed ${seed}: ${hex}`);
    refreshes++;
  }
  // three refresh rounds of every own adjacency in [30 s, 75 s]
  assert(refreshes >= 2 * 2 * E, `${refreshes}`);
});
