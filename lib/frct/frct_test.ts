/**
 * Unit tests of the FRCT state machine, one rule at a time (spec/frct.md;
 * "bug 10.n" = C behaviour of spec 10 that we must not copy).
 */
import * as assert from "node:assert/strict";
import {
  appendCrc,
  CRC_LEN,
  crcOf,
  decodeHeader,
  decodePacket,
  encodePacket,
  FLAG_ACK,
  FLAG_DATA,
  FLAG_DRF,
  FLAG_FC,
  FLAG_RDVS,
  flagNames,
  FlowEnd,
  type FlowEndOptions,
  type FrctHeader,
  frctOverhead,
  type FrctQos,
  HEADER_LEN,
  rebuildEdge,
  seqAfter,
  seqBefore,
  stripCrc,
} from "./frct.ts";

const RELIABLE: FrctQos = { loss: 0, ber: 1, inOrder: 1, timeout: 120_000 };
const RELIABLE_CRC: FrctQos = { ...RELIABLE, ber: 0 };
const PARTIAL: FrctQos = { loss: 1, ber: 1, inOrder: 1, timeout: 120_000 };
const RAW: FrctQos = { loss: 1, ber: 1, inOrder: 0, timeout: 120_000 };
const ISN = 0x1000_0000;
const PEER = 0x7000_0000;

function end(
  qos: FrctQos,
  more: Partial<FlowEndOptions> = {},
): FlowEnd {
  return new FlowEnd({ qos, mplMs: 100, now: 0, random: () => ISN, ...more });
}

function pkt(
  flags: number,
  seqno: number,
  ackno = 0,
  rwe = 0,
  payload: Uint8Array = new Uint8Array(0),
  crc = false,
): Uint8Array {
  return encodePacket(
    { flags, rwe: rwe & 0xffffff, seqno: seqno >>> 0, ackno: ackno >>> 0 },
    payload,
    crc,
  );
}

function data(
  seqno: number,
  flags = FLAG_DATA,
  byte = seqno & 255,
): Uint8Array {
  return pkt(flags, seqno, 0, 0, new Uint8Array([byte, 1, 2]));
}

function headers(out: readonly Uint8Array[]): FrctHeader[] {
  return out.filter((p) => p.length > 0).map((p) => {
    const h = decodeHeader(p);
    if (!h.ok) throw new Error(h.error);
    return h.value;
  });
}

/** Runs the timers up to `until`, returning [time, packets] per firing. */
function runTimers(f: FlowEnd, until: number): [number, Uint8Array[]][] {
  const out: [number, Uint8Array[]][] = [];
  for (;;) {
    const d = f.nextDeadline();
    if (d === null || d > until) return out;
    f.tick(d);
    const after = f.nextDeadline();
    assert.ok(after === null || after > d, `tick(${d}) left it due`);
    out.push([d, [...f.takeOutput()]]);
  }
}

/** An end whose receive run started at PEER (one packet read). */
function withRun(qos = RELIABLE): FlowEnd {
  const f = end(qos);
  f.receive(data(PEER, FLAG_DATA | FLAG_DRF), 0);
  assert.ok(f.read(0) !== null);
  f.takeOutput();
  return f;
}

// ---------------------------------------------------------------------------
// Codec

Deno.test("codec: short packets are error values, never throws", () => {
  for (let n = 0; n < HEADER_LEN; n++) {
    const r = decodeHeader(new Uint8Array(n));
    assert.equal(r.ok, false, `${n} bytes`);
  }
  assert.equal(decodeHeader(new Uint8Array(12)).ok, true);
  for (let n = 0; n < CRC_LEN; n++) {
    assert.equal(stripCrc(new Uint8Array(n)).ok, false);
    assert.equal(decodePacket(new Uint8Array(n), true).ok, false);
  }
  // valid CRC around a body too short for the header
  const r = decodePacket(appendCrc(new Uint8Array(11)), true);
  assert.equal(r.ok, false);
  assert.match(r.ok ? "" : r.error, /short/);
  const bad = appendCrc(new Uint8Array(20));
  bad[3]! ^= 0x10;
  const b = decodePacket(bad, true);
  assert.equal(b.ok ? "" : b.error, "bad CRC");
});

Deno.test("codec: header fields round-trip; out-of-range fields throw RangeError", () => {
  const h = {
    flags: 0x0f,
    rwe: 0xbdf3b8,
    seqno: 0xd0d97947,
    ackno: 0x3fbdf2b8,
  };
  const p = encodePacket(h, new Uint8Array([9, 8, 7]));
  assert.deepEqual(
    Array.from(p.subarray(0, 12)),
    [0x0f, 0xbd, 0xf3, 0xb8, 0xd0, 0xd9, 0x79, 0x47, 0x3f, 0xbd, 0xf2, 0xb8],
  );
  const d = decodePacket(p, false);
  assert.ok(d.ok);
  assert.deepEqual(d.value.header, h);
  assert.deepEqual(Array.from(d.value.payload), [9, 8, 7]);
  assert.throws(() => encodePacket({ ...h, rwe: 0x1000000 }), RangeError);
  assert.throws(() => encodePacket({ ...h, flags: 256 }), RangeError);
  assert.throws(() => encodePacket({ ...h, seqno: -1 }), RangeError);
  assert.equal(flagNames(0x1f), "DATA|DRF|ACK|FC|RDVS");
  assert.equal(frctOverhead(RELIABLE), 12);
  assert.equal(frctOverhead(RELIABLE_CRC), 16);
  assert.equal(frctOverhead({ ...RAW, ber: 0 }), 4);
});

Deno.test("crc: CRC-32 of zlib, trailer most significant byte first", () => {
  const check = new TextEncoder().encode("123456789");
  assert.equal(crcOf(check), 0xcbf43926);
  const p = appendCrc(check);
  assert.deepEqual(Array.from(p.subarray(9)), [0xcb, 0xf4, 0x39, 0x26]);
  const s = stripCrc(p);
  assert.ok(s.ok);
  assert.deepEqual(s.value, check);
});

Deno.test("seqno: compared modulo 2^32", () => {
  assert.ok(seqBefore(0xffffffff, 0));
  assert.ok(seqAfter(0, 0xffffffff));
  assert.ok(!seqBefore(5, 5) && !seqAfter(5, 5));
  assert.ok(seqBefore(0x7fffffff, 0xfffffffe));
});

Deno.test("rwe: the 24-bit edge is rebuilt across 2^24 in both directions", () => {
  // forward: an edge just past a 2^24 boundary
  assert.equal(rebuildEdge(0x000010, 0x12fffff0), 0x13000010);
  // backward: an old edge just below it (C adds 2^24 here, bug 10.4)
  assert.equal(rebuildEdge(0xfffff0, 0x13000010), 0x12fffff0);
  assert.equal(rebuildEdge(0x345678, 0x12345600), 0x12345678);
  // across 2^32
  assert.equal(rebuildEdge(0x000005, 0xfffffff0), 0x00000005);
});

// ---------------------------------------------------------------------------
// Sender

Deno.test("sender: random ISN; DRF iff nothing unacknowledged (I2); ACK/FC only with a receive run", () => {
  const f = end(RELIABLE);
  for (let i = 0; i < 3; i++) f.write(new Uint8Array([i]), 1);
  const hs = headers(f.takeOutput());
  assert.deepEqual(hs.map((h) => h.seqno), [ISN, ISN + 1, ISN + 2]);
  assert.deepEqual(hs.map((h) => h.flags), [0x03, 0x01, 0x01]);
  assert.ok(hs.every((h) => h.rwe === 0 && h.ackno === 0));
  // the peer's first packet acknowledges all three and starts our run
  f.receive(
    pkt(FLAG_DATA | FLAG_DRF | FLAG_ACK | FLAG_FC, PEER, ISN + 3, ISN + 259),
    2,
  );
  assert.equal(f.outstanding, 0);
  f.read(2);
  f.write(new Uint8Array([3]), 3);
  f.write(new Uint8Array([4]), 3);
  const [h3, h4] = headers(f.takeOutput());
  assert.equal(h3!.flags, FLAG_DATA | FLAG_DRF | FLAG_ACK | FLAG_FC);
  assert.equal(h4!.flags, FLAG_DATA | FLAG_ACK | FLAG_FC);
  assert.equal(h3!.ackno, PEER + 1);
  assert.equal(h3!.rwe, (PEER + 1 + 256) & 0xffffff);
  // another random source, another ISN
  const g = end(RELIABLE, { random: () => 0xdeadbeef });
  g.write(new Uint8Array([0]), 0);
  assert.equal(headers(g.takeOutput())[0]!.seqno, 0xdeadbeef);
});

Deno.test("sender: start window of 64, then window_closed; one stall counted; FC reopens", () => {
  const f = end(RELIABLE);
  for (let i = 0; i < 64; i++) {
    assert.equal(f.write(new Uint8Array([i]), 0), "ok");
  }
  assert.equal(f.canWrite, false);
  assert.equal(f.write(new Uint8Array([64]), 1), "window_closed");
  assert.equal(f.write(new Uint8Array([64]), 2), "window_closed");
  assert.equal(f.stats.windowStalls, 1);
  assert.equal(headers(f.takeOutput()).length, 64, "nothing sent while closed");
  f.receive(pkt(FLAG_FC | FLAG_DRF, PEER, 0, ISN + 256), 3);
  assert.equal(f.canWrite, true);
  assert.equal(f.write(new Uint8Array([64]), 4), "ok");
  // the ring of 256 unacknowledged packets bounds the window too
  for (let i = 65; i < 256; i++) f.write(new Uint8Array([i]), 5);
  f.receive(pkt(FLAG_FC | FLAG_DRF, PEER, 0, ISN + 100_000), 6);
  assert.equal(f.outstanding, 256);
  assert.equal(f.write(new Uint8Array([0]), 7), "window_closed");
  assert.equal(f.stats.windowStalls, 2);
});

Deno.test("sender: an ACK outside (snd.lwe, snd.seqno] is ignored (bug 10.3)", () => {
  const f = end(RELIABLE);
  f.write(new Uint8Array([1]), 0);
  f.write(new Uint8Array([2]), 0);
  f.takeOutput();
  // beyond snd.seqno: C would take it and never retransmit
  f.receive(pkt(FLAG_ACK | FLAG_DRF, PEER, ISN + 5), 1);
  assert.equal(f.outstanding, 2);
  // not after snd.lwe
  f.receive(pkt(FLAG_ACK | FLAG_DRF, PEER, ISN), 2);
  f.receive(pkt(FLAG_ACK | FLAG_DRF, PEER, ISN - 7), 2);
  assert.equal(f.outstanding, 2);
  const fired = runTimers(f, 1500);
  assert.equal(headers(fired[0]![1])[0]!.seqno, ISN, "still retransmitted");
  f.receive(pkt(FLAG_ACK | FLAG_DRF, PEER, ISN + 1), 1600);
  assert.equal(f.outstanding, 1);
  f.receive(pkt(FLAG_ACK | FLAG_DRF, PEER, ISN + 2), 1601);
  assert.equal(f.outstanding, 0);
});

Deno.test("sender: snd.rwe never moves back, even across 2^24 (bug 10.4)", () => {
  // snd.rwe starts at 0x01000030, just past a 2^24 boundary
  const f = end(RELIABLE, { random: () => 0x00fffff0 });
  assert.equal(f.snapshot().sndRwe, 0x01000030);
  // an old edge just below the boundary: C makes it 0x01fffff8 (2^24 ahead)
  f.receive(pkt(FLAG_FC | FLAG_DRF, PEER, 0, 0xfffff8), 1);
  assert.equal(f.snapshot().sndRwe, 0x01000030);
  // a real update past the boundary
  f.receive(pkt(FLAG_FC | FLAG_DRF, PEER, 0, 0x0000f0), 2);
  assert.equal(f.snapshot().sndRwe, 0x010000f0);
  // an older one now: ignored (C stores it unconditionally)
  f.receive(pkt(FLAG_FC | FLAG_DRF, PEER, 0, 0x000040), 3);
  assert.equal(f.snapshot().sndRwe, 0x010000f0);
});

Deno.test("rtt: spec 5.1 estimator from the oldest packet an ACK covers; rto floor 20 ms (I6)", () => {
  const f = end(RELIABLE);
  assert.equal(f.stats.rto, 1000, "initial rto");
  f.write(new Uint8Array([0]), 0);
  f.receive(pkt(FLAG_ACK | FLAG_DRF, PEER, ISN + 1), 0.4);
  assert.ok(Math.abs(f.stats.srtt - 0.4) < 1e-9);
  assert.ok(Math.abs(f.stats.mdev - 0.2) < 1e-9);
  assert.equal(f.stats.rto, 20, "C's rto would be 1.2 ms");
  f.write(new Uint8Array([1]), 10);
  f.receive(pkt(FLAG_ACK | FLAG_DRF, PEER, ISN + 2), 110);
  // err = 99.6: srtt += err / 8, mdev += (|err| - mdev) / 4
  assert.ok(Math.abs(f.stats.srtt - (0.4 + 99.6 / 8)) < 1e-9);
  assert.ok(Math.abs(f.stats.mdev - (0.2 + (99.6 - 0.2) / 4)) < 1e-9);
  assert.ok(Math.abs(f.stats.rto - (f.stats.srtt + 4 * f.stats.mdev)) < 1e-9);
  // a sample close to srtt: mdev falls by a quarter of the gap (5.1 with
  // FRCT_LINUX_RTT_ESTIMATOR off; on, it would fall by 1/32)
  const [s1, d1] = [f.stats.srtt, f.stats.mdev];
  f.write(new Uint8Array([9]), 120);
  f.receive(pkt(FLAG_ACK | FLAG_DRF, PEER, ISN + 3), 120 + s1);
  assert.ok(Math.abs(f.stats.mdev - (d1 - d1 / 4)) < 1e-9);
  assert.ok(Math.abs(f.stats.srtt - s1) < 1e-9);
  // a copy sent by a timeout gives no sample (Karn)
  const before = f.stats.srtt;
  f.write(new Uint8Array([2]), 200);
  runTimers(f, 200 + f.stats.rto);
  assert.ok(f.stats.retransmitted > 0);
  f.receive(pkt(FLAG_ACK | FLAG_DRF, PEER, ISN + 4), 600);
  assert.equal(f.stats.srtt, before);
});

Deno.test("rtt: no sample from an ACK riding on a copy the peer's timer resent", () => {
  const f = withRun(); // PEER delivered
  f.write(new Uint8Array([1]), 10);
  // the peer resends PEER (we have it): its ACK of our packet counts, but
  // its timing is the peer's timer, not our RTT
  f.receive(
    pkt(
      FLAG_DATA | FLAG_ACK | FLAG_FC,
      PEER,
      ISN + 1,
      ISN + 257,
      new Uint8Array([1]),
    ),
    510,
  );
  assert.equal(f.outstanding, 0);
  assert.equal(f.stats.srtt, 0);
  f.write(new Uint8Array([2]), 600);
  f.receive(pkt(FLAG_ACK | FLAG_DRF, PEER, ISN + 2), 605);
  assert.equal(f.stats.srtt, 5);
});

Deno.test("rto: a long RTT never disables retransmission (bug 10.12); backoff for any packet (bug 10.13)", () => {
  const f = end({ ...RELIABLE, timeout: 0 });
  f.write(new Uint8Array([1]), 0);
  f.receive(pkt(FLAG_ACK | FLAG_DRF, PEER, ISN + 1), 90_000); // 90 s sample
  assert.ok(f.stats.rto <= 60_000, `rto ${f.stats.rto}`);
  f.write(new Uint8Array([2]), 90_000);
  f.takeOutput();
  const fired = runTimers(f, 200_000).filter(([, ps]) => ps.length > 0);
  assert.ok(fired.length > 0, "never retransmitted");
  assert.ok(fired[0]![0] <= 150_000);
  // a packet that is not the first sent (C: no backoff for it)
  const g = end({ ...RELIABLE, timeout: 0 });
  g.write(new Uint8Array([1]), 0);
  g.receive(pkt(FLAG_ACK | FLAG_DRF, PEER, ISN + 1), 50); // rto 125 ms
  g.write(new Uint8Array([2]), 100);
  g.write(new Uint8Array([3]), 100);
  g.receive(pkt(FLAG_ACK | FLAG_DRF, PEER, ISN + 2), 150);
  g.takeOutput();
  const times = runTimers(g, 8000).filter(([, ps]) => ps.length > 0)
    .map(([t]) => t);
  const gaps = times.slice(1).map((t, i) => t - times[i]!);
  assert.ok(gaps.length >= 3);
  for (let i = 1; i < gaps.length; i++) {
    assert.ok(gaps[i]! > gaps[i - 1]! || gaps[i] === 2000, `gaps ${gaps}`);
  }
});

Deno.test("retransmission: same bytes with fresh ACK, backoff, flow down at the 120 s limit", () => {
  const f = end({ ...RELIABLE, timeout: 0 });
  f.write(new Uint8Array([42, 43]), 0);
  const [orig] = f.takeOutput();
  const fired = runTimers(f, 200_000);
  const copies = fired.filter(([, ps]) => ps.length > 0);
  const times = copies.map(([t]) => t);
  // doubling from the 1 s initial rto, capped at 2 s between copies
  assert.deepEqual(times.slice(0, 4), [1000, 3000, 5000, 7000]);
  for (const [, [p]] of copies) assert.deepEqual(p, orig);
  assert.equal(f.state, "down");
  assert.equal(f.downReason, "retransmission_limit");
  const downAt = fired.at(-1)![0];
  assert.ok(downAt <= 120_000, `down at ${downAt}`);
  assert.ok(times.at(-1)! < 120_000);
  assert.equal(f.write(new Uint8Array([1]), downAt), "down");
  assert.equal(f.nextDeadline(), null);
  // a shorter limit
  const g = end({ ...RELIABLE, timeout: 0 }, { rtxLimitMs: 5000 });
  g.write(new Uint8Array([1]), 0);
  runTimers(g, 10_000);
  assert.equal(g.state, "down");
  // the limit cannot be raised beyond 120 s
  const h = end({ ...RELIABLE, timeout: 0 }, { rtxLimitMs: 1e9 });
  h.write(new Uint8Array([1]), 0);
  const last = runTimers(h, 1e9).at(-1)![0];
  assert.ok(last <= 120_000);
});

Deno.test("retransmission: a copy carries the current ACK and window, not the first copy's", () => {
  const f = end(RELIABLE);
  f.write(new Uint8Array([7]), 0);
  const first = headers(f.takeOutput())[0]!;
  assert.equal(first.flags, FLAG_DATA | FLAG_DRF);
  f.receive(data(PEER, FLAG_DATA | FLAG_DRF), 10);
  f.read(10);
  f.takeOutput();
  const copy = headers(runTimers(f, 1500)[0]![1])[0]!;
  assert.equal(copy.seqno, ISN);
  assert.equal(copy.flags, FLAG_DATA | FLAG_DRF | FLAG_ACK | FLAG_FC);
  assert.equal(copy.ackno, PEER + 1);
  assert.equal(copy.rwe, (PEER + 1 + 256) & 0xffffff);
});

Deno.test("retransmission: after a timeout, copies follow partial ACKs and grow when a whole window was lost", () => {
  const f = end(RELIABLE);
  for (let i = 0; i < 64; i++) f.write(new Uint8Array([i]), 0);
  f.takeOutput();
  // everything lost; at 1 s the head is copied
  const [t1, p1] = runTimers(f, 1000)[0]!;
  assert.equal(t1, 1000);
  assert.deepEqual(headers(p1).map((h) => h.seqno), [ISN]);
  // the copy got through, nothing else had: ACK ISN + 1 asks for more
  f.receive(pkt(FLAG_ACK | FLAG_FC | FLAG_DRF, PEER, ISN + 1, ISN + 257), 1010);
  assert.deepEqual(headers(f.takeOutput()).map((h) => h.seqno), [
    ISN + 1,
    ISN + 2,
  ]);
  f.receive(pkt(FLAG_ACK | FLAG_FC | FLAG_DRF, PEER, ISN + 3, ISN + 259), 1020);
  assert.deepEqual(
    headers(f.takeOutput()).map((h) => h.seqno - ISN),
    [3, 4, 5, 6],
  );
  // an ACK beyond our copies: the originals up to it arrived
  f.receive(
    pkt(FLAG_ACK | FLAG_FC | FLAG_DRF, PEER, ISN + 40, ISN + 296),
    1030,
  );
  assert.deepEqual(headers(f.takeOutput()).map((h) => h.seqno - ISN), [40]);
});

Deno.test("crc: with ber = 0 every packet we send carries it (I7; bug 10.7): data, copies, ACK, FC, RDVS, final ACK", () => {
  const a = end(RELIABLE_CRC);
  const b = end(RELIABLE_CRC, { random: () => PEER });
  const all: Uint8Array[] = [];
  const pump = (now: number) => {
    for (let i = 0; i < 10; i++) {
      const x = [...a.takeOutput()];
      const y = [...b.takeOutput()];
      if (x.length + y.length === 0) return;
      all.push(...x, ...y);
      for (const p of x) b.receive(p, now);
      for (const p of y) a.receive(p, now);
    }
  };
  // data and its ACK
  a.write(new Uint8Array([1, 2, 3]), 0);
  pump(0);
  b.read(0);
  pump(0);
  // a retransmission
  a.write(new Uint8Array([4]), 10);
  all.push(...a.takeOutput()); // lost
  // data from b read meanwhile: the copy carries another ackno than the
  // original, so its trailer must be computed anew
  b.write(new Uint8Array([5]), 11);
  pump(11);
  assert.ok(a.read(11) !== null);
  pump(11);
  const t = 10 + a.stats.rto;
  const copies = runTimers(a, t).flatMap(([, ps]) => ps);
  assert.equal(headers(copies)[0]!.seqno, ISN + 1, "a copy of it");
  for (const p of copies) b.receive(p, t);
  all.push(...copies);
  pump(t);
  // a closed window, an RDVS and its answer
  for (let i = 0; i < 300; i++) a.write(new Uint8Array([i]), 100);
  all.push(...a.takeOutput()); // lost: the window stays closed
  const rdvs = runTimers(a, 300).flatMap(([, ps]) => ps);
  assert.ok(headers(rdvs).some((h) => h.flags & FLAG_RDVS));
  for (const p of rdvs) b.receive(p, 300);
  all.push(...rdvs);
  pump(300);
  // a final ACK
  b.write(new Uint8Array([9]), 400);
  pump(400);
  a.read(400);
  a.close(400);
  pump(400);
  const kinds = new Set<number>();
  for (const p of all) {
    if (p.length === 0) continue;
    assert.ok(stripCrc(p).ok, `no valid CRC on ${flagNames(p[0]!)}`);
    kinds.add(p[0]! & ~FLAG_DRF);
  }
  for (
    const k of [
      FLAG_DATA,
      FLAG_DATA | FLAG_ACK | FLAG_FC,
      FLAG_ACK | FLAG_FC,
      FLAG_RDVS,
      FLAG_ACK,
    ]
  ) assert.ok(kinds.has(k), `no ${flagNames(k)} packet seen`);
  assert.equal(a.stats.badCrc + b.stats.badCrc, 0);
});

Deno.test("rdvs: every 100 ms while the window stays closed, from the first closing, past 1 s (bug 10.6)", () => {
  const f = end(RELIABLE);
  for (let i = 0; i < 64; i++) f.write(new Uint8Array([i]), 0);
  f.takeOutput();
  assert.equal(f.write(new Uint8Array([64]), 10), "window_closed");
  const fired = runTimers(f, 2500);
  const rdvs = fired.flatMap(([t, ps]) =>
    headers(ps).filter((h) => h.flags & FLAG_RDVS).map((h) => ({ t, h }))
  );
  assert.deepEqual(
    rdvs.map((r) => r.t),
    Array.from({ length: 24 }, (_, i) => 110 + 100 * i),
  );
  for (const { h } of rdvs) {
    // RDVS alone (a C receiver processes nothing else), DRF + snd.lwe (I3)
    assert.equal(h.flags, FLAG_RDVS | FLAG_DRF);
    assert.equal(h.seqno, ISN);
    assert.equal(h.ackno, 0);
    assert.equal(h.rwe, 0);
  }
  assert.equal(f.stats.rdvsSent, 24);
  f.receive(
    pkt(FLAG_ACK | FLAG_FC | FLAG_DRF, PEER, ISN + 64, ISN + 320),
    2500,
  );
  assert.equal(f.canWrite, true);
  const later = runTimers(f, 5000).flatMap(([, ps]) => headers(ps));
  assert.ok(later.every((h) => (h.flags & FLAG_RDVS) === 0));
});

Deno.test("rdvs: answered at once with our window; nothing else in an RDVS counts", () => {
  const f = withRun();
  f.write(new Uint8Array([1]), 1);
  f.takeOutput();
  // a C RDVS (0x10); one with an ACK bit too must not acknowledge anything
  f.receive(pkt(FLAG_RDVS | FLAG_ACK, 0, ISN + 1), 5);
  const [h] = headers(f.takeOutput());
  assert.equal(h!.flags, FLAG_ACK | FLAG_FC | FLAG_DRF);
  assert.equal(h!.ackno, PEER + 1);
  assert.equal(h!.rwe, (PEER + 1 + 256) & 0xffffff);
  assert.equal(h!.seqno, ISN, "I3: seqno = snd.lwe");
  assert.equal(f.outstanding, 1);
  // no run, no window to give
  const g = end(RELIABLE);
  g.receive(pkt(FLAG_RDVS, 0), 1);
  assert.deepEqual(g.takeOutput(), []);
});

// ---------------------------------------------------------------------------
// Receiver

Deno.test("receiver: a control packet at an inactive receiver starts no run (bug 10.1)", () => {
  const f = end(RELIABLE);
  f.write(new Uint8Array([0]), 0);
  f.takeOutput();
  // the C server's delayed ACK beats its reply (0x0c, seqno 0)
  f.receive(pkt(FLAG_ACK | FLAG_FC, 0, ISN + 1, ISN + 257), 12);
  assert.equal(f.outstanding, 0, "its ACK still counts for our sender");
  assert.equal(f.snapshot().rcvRun, false);
  // the reply (DRF) starts the run and is delivered
  f.receive(data(PEER, FLAG_DATA | FLAG_DRF | FLAG_ACK | FLAG_FC), 15);
  assert.ok(f.read(15) !== null);
  f.write(new Uint8Array([1]), 16);
  const [h] = headers(f.takeOutput());
  // C would send ackno 0 and rwe 0 from now on
  assert.equal(h!.ackno, PEER + 1);
  assert.equal(h!.rwe, (PEER + 257) & 0xffffff);
});

Deno.test("receiver: DATA without DRF at an inactive receiver is dropped", () => {
  const f = end(RELIABLE);
  f.receive(data(PEER + 1), 0);
  assert.equal(f.read(0), null);
  assert.equal(f.stats.droppedNoRun, 1);
  assert.deepEqual(f.takeOutput(), []);
});

Deno.test("receiver: a DRF control packet (I3) starts the run at its seqno", () => {
  const f = end(RELIABLE);
  f.receive(pkt(FLAG_ACK | FLAG_FC | FLAG_DRF, PEER, 0), 0);
  assert.ok(f.snapshot().rcvRun);
  f.receive(data(PEER), 1);
  assert.ok(f.read(1) !== null);
});

Deno.test("receiver: only DATA keeps a run alive (bug 10.2); a DRF at an active run is ignored", () => {
  const f = end(RELIABLE); // mpl 100 ms: rcv.inact = 131 s
  f.receive(data(PEER, FLAG_DATA | FLAG_DRF), 0);
  f.read(0);
  // within the run: DRF on another seqno does not restart it
  f.receive(data(PEER + 500, FLAG_DATA | FLAG_DRF), 1000);
  assert.equal(f.read(1000), null);
  assert.equal(f.snapshot().rcvLwe, PEER + 1);
  // the peer only sends ACKs for 200 s...
  for (let t = 10_000; t <= 200_000; t += 10_000) {
    f.receive(pkt(FLAG_ACK | FLAG_FC, 0, ISN), t);
  }
  // ... then starts a new run: accepted (C would drop it for 141 s more)
  const other = 0x2222_0000;
  f.receive(data(other, FLAG_DATA | FLAG_DRF, 0x55), 200_001);
  const m = f.read(200_001);
  assert.ok(m !== null);
  assert.equal(m[0], 0x55);
});

Deno.test("receiver: holds 256 out of order, hands up in order; duplicates and out-of-window dropped", () => {
  const f = withRun(); // next expected PEER + 1
  const base = PEER + 1;
  for (const i of [3, 1, 2, 255]) f.receive(data(base + i), 1);
  assert.equal(f.read(1), null, "waits for the gap");
  f.receive(data(base + 256), 1); // one past the window
  assert.equal(f.stats.droppedWindow, 1);
  f.receive(data(base + 2), 1);
  assert.equal(f.stats.duplicates, 1);
  f.receive(data(base), 2);
  const got: number[] = [];
  for (let m = f.read(2); m !== null; m = f.read(2)) got.push(m[0]!);
  assert.deepEqual(got, [0, 1, 2, 3].map((i) => (base + i) & 255));
  assert.equal(f.queued, 1);
  assert.ok(f.stats.outOfOrder >= 3);
  f.receive(data(base - 1), 3); // delivered already
  assert.equal(f.stats.duplicates, 2);
  assert.equal(f.stats.delivered, 5);
});

Deno.test("receiver: ACK = consumed; one prompt ACK per batch of reads, rwe = ackno + 256 (I5)", () => {
  const f = withRun();
  for (let i = 1; i <= 5; i++) f.receive(data(PEER + i), 10);
  assert.deepEqual(f.takeOutput(), [], "arrival alone: no ACK");
  assert.ok(f.read(11) !== null);
  assert.ok(f.read(11) !== null);
  assert.equal(f.nextDeadline(), 11, "an ACK is due at once");
  const [h] = headers(f.takeOutput());
  assert.equal(h!.flags, FLAG_ACK | FLAG_FC | FLAG_DRF);
  assert.equal(h!.ackno, PEER + 3);
  assert.equal(h!.rwe, (PEER + 3 + 256) & 0xffffff);
  assert.deepEqual(f.takeOutput(), []);
  // or tick sends it
  f.read(12);
  f.tick(12);
  assert.equal(headers(f.takeOutput())[0]!.ackno, PEER + 4);
});

Deno.test("receiver: an ACK due just after we sent data is not skipped (bug 10.9)", () => {
  const f = withRun();
  f.write(new Uint8Array([1]), 100); // carries ackno PEER + 1
  f.takeOutput();
  f.receive(data(PEER + 1), 101);
  f.read(101);
  const hs = headers(f.takeOutput());
  assert.deepEqual(hs.map((h) => h.ackno), [PEER + 2]);
});

Deno.test("receiver: duplicates of delivered data force one ACK per batch, not one per copy", () => {
  const f = withRun();
  for (let i = 0; i < 64; i++) f.receive(data(PEER), 20);
  const hs = headers(f.takeOutput());
  assert.equal(hs.length, 1, "C answers each of the 64 copies");
  assert.equal(hs[0]!.ackno, PEER + 1);
  assert.equal(f.stats.duplicates, 64);
});

// ---------------------------------------------------------------------------
// Partially reliable flows

Deno.test("partial: newest first, gaps skipped for good, late ones dropped; no ACK, no retransmission", () => {
  const f = end(PARTIAL);
  f.receive(data(PEER, FLAG_DATA | FLAG_DRF), 0);
  for (const i of [1, 2, 4, 5, 3, 9, 7]) {
    f.receive(data(PEER + i, FLAG_DATA | FLAG_DRF), 1);
  }
  f.receive(data(PEER + 9, FLAG_DATA | FLAG_DRF), 1); // a copy
  const got: number[] = [];
  for (let m = f.read(2); m !== null; m = f.read(2)) {
    got.push(m[0]! - (PEER & 255));
  }
  assert.deepEqual(got, [0, 1, 2, 4, 5, 9]);
  assert.equal(f.stats.droppedLate, 3);
  // sender: all DRF, never ACK, nothing kept
  f.write(new Uint8Array([1]), 3);
  f.write(new Uint8Array([2]), 3);
  const hs = headers(f.takeOutput());
  assert.ok(hs.every((h) => (h.flags & (FLAG_DRF | FLAG_ACK)) === FLAG_DRF));
  assert.equal(f.outstanding, 0);
  assert.ok(
    runTimers(f, 20_000).every(([, ps]) => ps.every((p) => p.length === 0)),
  );
});

Deno.test("partial: a skipped seqno never surfaces later (bug 10.5); the edge still moves", () => {
  const f = end(PARTIAL);
  f.receive(data(PEER, FLAG_DATA | FLAG_DRF, 0xaa), 0);
  // PEER + 1 is lost; C keeps PEER's slot and hands it up as PEER + 256
  const got: number[] = [];
  for (let i = 2; i <= 300; i++) {
    f.receive(data(PEER + i, FLAG_DATA | FLAG_DRF, i & 255), i);
    for (let m = f.read(i); m !== null; m = f.read(i)) got.push(m[0]!);
  }
  assert.equal(got.length, 300);
  assert.equal(got[0], 0xaa);
  assert.deepEqual(
    got.slice(1),
    Array.from({ length: 299 }, (_, k) => (k + 2) & 255),
  );
  // the advertised edge follows what was read, gaps notwithstanding
  assert.equal(f.snapshot().rcvRwe, (PEER + 301 + 256) >>> 0);
});

Deno.test("partial and raw: a full receive queue drops its oldest packet", () => {
  const f = end(PARTIAL);
  for (let i = 0; i < 300; i++) {
    f.receive(data(PEER + i, FLAG_DATA | FLAG_DRF, i & 255), i);
  }
  assert.equal(f.queued, 256);
  assert.equal(f.stats.droppedOverflow, 44);
  const got: number[] = [];
  for (let m = f.read(400); m !== null; m = f.read(400)) got.push(m[0]!);
  assert.deepEqual(got, Array.from({ length: 256 }, (_, k) => (k + 44) & 255));
  const r = end(RAW);
  for (let i = 0; i < 1030; i++) r.receive(new Uint8Array([i & 255]), 0);
  assert.equal(r.queued, 1024);
  assert.equal(r.read(0)![0], 6);
});

Deno.test("partial: the window is advisory (bug 10.5): 300 writes without any FC all leave", () => {
  const f = end(PARTIAL);
  for (let i = 0; i < 300; i++) {
    assert.equal(f.write(new Uint8Array([i]), 0), "ok");
  }
  assert.equal(headers(f.takeOutput()).length, 300);
  assert.equal(f.stats.windowStalls, 0);
  // and the receiver does not drop beyond its edge
  const g = end(PARTIAL);
  g.receive(data(PEER, FLAG_DATA | FLAG_DRF), 0);
  g.receive(data(PEER + 1000, FLAG_DATA | FLAG_DRF), 1);
  assert.ok(g.read(1) !== null && g.read(1) !== null);
});

Deno.test("partial: an FC packet every 32 packets consumed (I5), and near the advertised edge", () => {
  const f = end(PARTIAL);
  f.receive(data(PEER, FLAG_DATA | FLAG_DRF), 0);
  f.read(0);
  // the peer assumes PEER + 64: the first packets near it get an FC
  const first = headers(f.takeOutput());
  assert.equal(first.length, 1);
  assert.equal(first[0]!.flags, FLAG_FC | FLAG_DRF);
  assert.equal(first[0]!.seqno, ISN, "I3");
  assert.equal(first[0]!.rwe, (PEER + 1 + 256) & 0xffffff);
  const fcs: number[] = [];
  for (let i = 1; i <= 96; i++) {
    f.receive(data(PEER + i, FLAG_DATA | FLAG_DRF), i);
    f.read(i);
    for (const h of headers(f.takeOutput())) {
      assert.equal(h.flags, FLAG_FC | FLAG_DRF);
      fcs.push(i);
    }
  }
  assert.deepEqual(fcs, [32, 64, 96]);
});

// ---------------------------------------------------------------------------
// Keepalives, liveness, zero-length writes

Deno.test("keepalive: an empty packet after timeout/4 without app writes, raw and FRCT; ACKs and copies do not count", () => {
  const raw = end({ ...RAW, timeout: 1000 });
  let fired = runTimers(raw, 260);
  assert.deepEqual(fired.map(([t, ps]) => [t, ps.map((p) => p.length)]), [[
    250,
    [0],
  ]]);
  raw.write(new Uint8Array([1]), 300);
  raw.takeOutput();
  fired = runTimers(raw, 560);
  assert.deepEqual(fired.map(([t]) => t), [550]);
  assert.equal(raw.stats.keepalivesSent, 2);
  // FRCT: the flow sends ACKs and a retransmission, yet keepalives leave
  const f = end({ ...RELIABLE, timeout: 8000 });
  f.write(new Uint8Array([1]), 0);
  f.takeOutput();
  f.receive(data(PEER, FLAG_DATA | FLAG_DRF), 500);
  f.read(500);
  f.takeOutput(); // a pure ACK
  fired = runTimers(f, 2000);
  const ka = fired.filter(([, ps]) => ps.some((p) => p.length === 0));
  assert.deepEqual(ka.map(([t]) => t), [2000]);
  assert.ok(f.stats.retransmitted >= 1);
  // a received keepalive is never delivered
  const g = withRun();
  g.receive(new Uint8Array(0), 5);
  assert.equal(g.read(5), null);
  assert.equal(g.stats.keepalivesReceived, 1);
});

Deno.test("zero-length write: an empty packet on the wire, never delivered", () => {
  for (const qos of [RELIABLE, RELIABLE_CRC, PARTIAL, RAW]) {
    const a = end(qos);
    assert.equal(a.write(new Uint8Array(0), 0), "ok");
    const out = a.takeOutput();
    assert.deepEqual(out.map((p) => p.length), [0]);
    const b = end(qos);
    b.receive(out[0]!, 1);
    assert.equal(b.read(1), null);
    assert.equal(b.readable, false);
  }
});

Deno.test("peer timeout: nothing received for `timeout` ms brings the flow down; any packet refreshes", () => {
  const f = end({ ...RELIABLE_CRC, timeout: 4000 });
  f.receive(appendCrc(data(PEER, FLAG_DATA | FLAG_DRF)), 1000);
  const bad = appendCrc(data(PEER + 1));
  bad[bad.length - 1]! ^= 1;
  f.receive(bad, 2000); // bad CRC: still proof of life
  assert.equal(f.stats.badCrc, 1);
  runTimers(f, 5999);
  assert.equal(f.state, "open");
  f.receive(new Uint8Array(0), 4000); // a keepalive, the last sign of life
  runTimers(f, 7999);
  assert.equal(f.state, "open");
  runTimers(f, 8000);
  assert.equal(f.state, "down");
  assert.equal(f.downReason, "peer_timeout");
  // what had arrived in order can still be read
  assert.ok(f.read(8001) !== null);
  assert.equal(f.read(8001), null);
  // timeout 0: neither keepalives nor a peer timeout
  const g = end({ ...RAW, timeout: 0 });
  assert.equal(g.nextDeadline(), null);
});

Deno.test("crc: bad or short packets are dropped and counted, never delivered; raw flows too", () => {
  const f = end({ ...RAW, ber: 0 });
  f.receive(appendCrc(new Uint8Array([1, 2, 3])), 0);
  const bad = appendCrc(new Uint8Array([4, 5, 6]));
  bad[0]! ^= 0x80;
  f.receive(bad, 0);
  f.receive(new Uint8Array([1, 2]), 0);
  assert.deepEqual(Array.from(f.read(0) ?? []), [1, 2, 3]);
  assert.equal(f.read(0), null);
  assert.equal(f.stats.badCrc, 1);
  assert.equal(f.stats.droppedShort, 1);
  f.write(new Uint8Array([7]), 1);
  const [p] = f.takeOutput();
  assert.deepEqual(Array.from(p!), Array.from(appendCrc(new Uint8Array([7]))));
  // FRCT: a body shorter than the header
  const g = end(RELIABLE);
  g.receive(new Uint8Array(11), 0);
  assert.equal(g.stats.droppedShort, 1);
});

// ---------------------------------------------------------------------------
// Linger

Deno.test("linger: close() keeps retransmitting until acknowledged; final ACK once, not every 5 ms", () => {
  const f = withRun();
  f.receive(data(PEER + 1), 1);
  f.read(1); // an ACK is due
  f.write(new Uint8Array([1]), 1);
  f.write(new Uint8Array([2]), 1);
  f.takeOutput(); // the data carried the ACK
  f.receive(data(PEER + 2), 2);
  f.read(2); // due again
  f.close(3);
  assert.equal(f.state, "lingering");
  assert.equal(f.read(3), null);
  assert.equal(f.write(new Uint8Array([3]), 3), "closed");
  const fin = headers(f.takeOutput());
  assert.equal(fin.length, 1);
  assert.equal(fin[0]!.flags, FLAG_ACK | FLAG_DRF, "final ACK: no window");
  assert.equal(fin[0]!.ackno, PEER + 3);
  // 5 s of lingering: copies of the data only
  const fired = runTimers(f, 5000).flatMap(([, ps]) => headers(ps));
  assert.ok(fired.length > 0 && fired.length < 10, `${fired.length} packets`);
  assert.ok(fired.every((h) => (h.flags & FLAG_DATA) !== 0));
  // the peer resends its last packet: it missed the final ACK, say it again
  f.receive(data(PEER + 2), 5001);
  const again = headers(f.takeOutput());
  assert.deepEqual(again.map((h) => [h.flags, h.ackno]), [[
    FLAG_ACK | FLAG_DRF,
    PEER + 3,
  ]]);
  // new data after close: dropped, not acknowledged
  f.receive(data(PEER + 3), 5002);
  assert.deepEqual(f.takeOutput(), []);
  assert.equal(f.stats.droppedClosed, 1);
  f.receive(pkt(FLAG_ACK | FLAG_DRF, PEER + 3, ISN + 2), 5003);
  assert.equal(f.state, "closed");
  assert.equal(f.nextDeadline(), null);
});

Deno.test("linger: no final ACK when none is due; ends down within 120 s when the peer is gone", () => {
  const f = withRun();
  f.write(new Uint8Array([1]), 1); // carries the ACK
  f.takeOutput();
  f.close(2);
  assert.deepEqual(f.takeOutput(), []);
  assert.equal(f.state, "lingering");
  runTimers(f, 300_000);
  assert.equal(f.state, "down");
  assert.ok(f.downReason !== null);
  // unreliable and raw flows close at once
  for (const qos of [PARTIAL, RAW]) {
    const g = end(qos);
    g.write(new Uint8Array([1]), 0);
    g.close(1);
    assert.equal(g.state, "closed");
  }
  const h = end(RELIABLE);
  h.close(0);
  assert.equal(h.state, "closed", "nothing outstanding: no linger");
});

// ---------------------------------------------------------------------------
// Counters and timers

Deno.test("stats: per-flow counters", () => {
  const a = end(RELIABLE);
  const b = end(RELIABLE, { random: () => PEER });
  for (let i = 0; i < 5; i++) a.write(new Uint8Array([i]), 0);
  const out = [...a.takeOutput()];
  for (const p of [out[0]!, out[2]!, out[1]!, out[1]!, out[4]!]) {
    b.receive(p, 1);
  }
  for (let m = b.read(2); m !== null; m = b.read(2));
  for (const p of b.takeOutput()) a.receive(p, 3);
  runTimers(a, 30); // rto 20 ms (floor): one copy of the lost packet
  const s = b.stats;
  assert.deepEqual(
    [s.received, s.delivered, s.duplicates, s.outOfOrder],
    [5, 3, 1, 1],
  );
  assert.deepEqual([a.stats.sent, a.stats.retransmitted], [5, 1]);
  assert.equal(b.stats.controlSent, 1);
  assert.ok(a.stats.srtt > 0 && a.stats.rto >= 20);
});

Deno.test("timers: tick at nextDeadline never leaves it due (no busy loop)", () => {
  let x = 12345;
  const rnd = () => {
    x = (x * 1103515245 + 12345) >>> 0;
    return x / 2 ** 32;
  };
  for (const qos of [RELIABLE, RELIABLE_CRC, PARTIAL, RAW]) {
    const a = end({ ...qos, timeout: 3000 });
    const b = end({ ...qos, timeout: 3000 }, { random: () => PEER });
    let now = 0;
    for (let step = 0; step < 2000; step++) {
      now += rnd() * 50;
      if (rnd() < 0.5) a.write(new Uint8Array([step & 255]), now);
      if (rnd() < 0.3) b.read(now);
      for (const p of a.takeOutput()) if (rnd() < 0.8) b.receive(p, now);
      for (const p of b.takeOutput()) if (rnd() < 0.8) a.receive(p, now);
      for (const f of [a, b]) {
        const d = f.nextDeadline();
        if (d !== null && d <= now) {
          f.tick(now);
          const e = f.nextDeadline();
          assert.ok(e === null || e > now, `${e} <= ${now}`);
        }
      }
    }
  }
});
