/**
 * Unit tests of loss recovery and RTT estimation in reliable flows: what
 * the sender copies on which sign, what it does not copy, and the
 * receiver's signal of a gap (frct.ts header, "Retransmission").
 */
import * as assert from "node:assert/strict";
import {
  decodeHeader,
  encodePacket,
  FLAG_ACK,
  FLAG_DATA,
  FLAG_DRF,
  FLAG_FC,
  FlowEnd,
  type FrctHeader,
  type FrctQos,
} from "./frct.ts";

const RELIABLE: FrctQos = { loss: 0, ber: 1, inOrder: 1, timeout: 0 };
const ISN = 0x1000_0000;
const PEER = 0x7000_0000;

function end(random = ISN): FlowEnd {
  return new FlowEnd({
    qos: RELIABLE,
    mplMs: 100,
    now: 0,
    random: () => random,
  });
}

/** A pure ACK from the peer (ACK|FC|DRF, I3). */
function ack(ackno: number): Uint8Array {
  return encodePacket({
    flags: FLAG_ACK | FLAG_FC | FLAG_DRF,
    rwe: (ackno + 256) & 0xffffff,
    seqno: PEER,
    ackno: ackno >>> 0,
  });
}

function data(seqno: number, flags = FLAG_DATA): Uint8Array {
  return encodePacket(
    { flags, rwe: 0, seqno: seqno >>> 0, ackno: 0 },
    new Uint8Array([seqno & 255]),
  );
}

function headers(out: readonly Uint8Array[]): FrctHeader[] {
  return out.map((p) => {
    const h = decodeHeader(p);
    if (!h.ok) throw new Error(h.error);
    return h.value;
  });
}

/** Sequence numbers of the data packets in `out`, relative to ISN. */
function copies(out: readonly Uint8Array[]): number[] {
  return headers(out).filter((h) => (h.flags & FLAG_DATA) !== 0).map((h) =>
    (h.seqno - ISN) >>> 0
  );
}

/** A writer with `n` packets out at time 0 and an RTT sample of 5 ms. */
function writer(n: number): FlowEnd {
  const f = end();
  for (let i = 0; i < n; i++) f.write(new Uint8Array([i]), 0);
  f.takeOutput();
  f.receive(ack(ISN + 1), 5);
  assert.ok(Math.abs(f.stats.srtt - 5) < 1e-9);
  f.takeOutput();
  return f;
}

Deno.test("recovery: a duplicate ACK copies the packet it repeats, once; data repeating it is no sign", () => {
  const f = writer(20);
  // the peer's data repeats our edge too (it acknowledges what it read):
  // no sign of a gap
  f.receive(
    encodePacket({
      flags: FLAG_DATA | FLAG_DRF | FLAG_ACK | FLAG_FC,
      rwe: 0,
      seqno: PEER,
      ackno: ISN + 1,
    }, new Uint8Array([1])),
    6,
  );
  assert.deepEqual(copies(f.takeOutput()), []);
  f.receive(ack(ISN + 1), 6);
  assert.deepEqual(copies(f.takeOutput()), [1]);
  assert.equal(f.stats.fastRetransmits, 1);
  // more duplicates while the copy is on its way: nothing more
  for (let t = 6.1; t < 9; t += 0.5) f.receive(ack(ISN + 1), t);
  assert.deepEqual(copies(f.takeOutput()), []);
  assert.equal(f.stats.retransmitted, 1);
});

Deno.test("recovery: after a timeout, ACKs of the originals stepping past the copy copy nothing more", () => {
  const f = writer(40);
  const due = f.nextDeadline()!;
  f.tick(due); // the ACKs are late, not lost
  assert.deepEqual(copies(f.takeOutput()), [1]);
  assert.equal(f.stats.timeouts, 1);
  let t = due + 1;
  for (let a = 4; a <= 40; a += 3) {
    f.receive(ack(ISN + a), t);
    t += 0.1;
    const d = f.nextDeadline();
    if (d !== null && d <= t) f.tick(t);
  }
  f.receive(ack(ISN + 40), t);
  assert.deepEqual(copies(f.takeOutput()), []);
  assert.equal(f.stats.retransmitted, 1, "one copy for one spurious timeout");
  assert.equal(f.outstanding, 0);
});

Deno.test("recovery: when the ACKs stop at a packet during a recovery, it is copied after a quarter RTT", () => {
  const f = writer(40);
  f.receive(ack(ISN + 1), 6); // a gap at ISN + 1
  assert.deepEqual(copies(f.takeOutput()), [1]);
  // the copy got through; the ACK stops at the next gap
  f.receive(ack(ISN + 9), 11);
  assert.deepEqual(copies(f.takeOutput()), [], "not at once");
  const d = f.nextDeadline()!;
  assert.ok(d > 11 && d <= 11 + f.stats.srtt / 4 + 1e-9, `deadline ${d}`);
  f.tick(d);
  assert.deepEqual(copies(f.takeOutput()), [9]);
  // if ACKs had gone on moving the edge, nothing would have been copied
  const g = writer(40);
  g.receive(ack(ISN + 1), 6);
  g.takeOutput();
  g.receive(ack(ISN + 9), 11);
  g.receive(ack(ISN + 12), 11.5);
  g.receive(ack(ISN + 20), 12);
  g.receive(ack(ISN + 40), 12.5);
  g.tick(20);
  assert.deepEqual(copies(g.takeOutput()), []);
});

Deno.test("recovery: the answer to a needless copy (a duplicate at the peer) is not taken for a gap", () => {
  const f = writer(40);
  f.receive(ack(ISN + 1), 6); // reordering looked like a gap
  assert.deepEqual(copies(f.takeOutput()), [1]);
  // the original was only late: its ACK comes at once
  f.receive(ack(ISN + 10), 6.2);
  // the copy then reaches the peer as a duplicate; it repeats its edge
  f.receive(ack(ISN + 10), 11);
  assert.deepEqual(copies(f.takeOutput()), []);
  // later, a real gap there is copied
  f.receive(ack(ISN + 10), 40);
  assert.deepEqual(copies(f.takeOutput()), [10]);
});

Deno.test("recovery: a tick late by more than 5 ms waits 1 ms for ACKs held up meanwhile, once", () => {
  const f = writer(3);
  const due = f.nextDeadline()!;
  f.tick(due + 30); // the event loop was held up
  assert.deepEqual(copies(f.takeOutput()), []);
  assert.equal(f.nextDeadline(), due + 31);
  // the ACK that was waiting: nothing to copy
  f.receive(ack(ISN + 3), due + 30.5);
  assert.equal(f.nextDeadline(), null);
  assert.equal(f.stats.retransmitted, 0);
  // without it, the copy leaves 1 ms later
  const g = writer(3);
  const d = g.nextDeadline()!;
  g.tick(d + 30);
  g.tick(d + 31);
  assert.deepEqual(copies(g.takeOutput()), [1]);
});

Deno.test("rtt: sampled from the latest transmission an ACK covers, not from packets that waited for a copy", () => {
  const f = end();
  f.write(new Uint8Array([0]), 0);
  f.write(new Uint8Array([1]), 10);
  f.receive(ack(ISN + 2), 15); // covers both: the later one answers
  assert.ok(Math.abs(f.stats.srtt - 5) < 1e-9, `srtt ${f.stats.srtt}`);
  // a gap at ISN + 2; ISN + 3..5 wait for it at the peer
  for (let i = 2; i < 6; i++) f.write(new Uint8Array([i]), 20);
  f.takeOutput();
  f.receive(ack(ISN + 2), 25);
  assert.deepEqual(copies(f.takeOutput()), [2]);
  const srtt = f.stats.srtt;
  // per-read ACKs after the copy arrived: the first times the copy (5 ms)
  f.receive(ack(ISN + 3), 30);
  assert.ok(Math.abs(f.stats.srtt - (srtt + (5 - srtt) / 8)) < 1e-9);
  const after = f.stats.srtt;
  // the others cover packets sent before the copy, held behind it: no
  // sample (they would say 10 ms)
  f.receive(ack(ISN + 4), 30);
  f.receive(ack(ISN + 6), 30);
  assert.equal(f.stats.srtt, after);
});

Deno.test("receiver: reads stopped at a gap with data beyond: the same ACK again at the next flush, unless the gap filled", () => {
  const r = end(PEER);
  r.receive(data(ISN, FLAG_DATA | FLAG_DRF), 0);
  for (const i of [1, 3, 4, 5]) r.receive(data(ISN + i), 0);
  while (r.read(0) !== null);
  const first = headers(r.takeOutput());
  assert.deepEqual(first.map((h) => h.ackno - ISN), [2]);
  // nothing else arrives (the sender's window is full): say it again
  assert.equal(r.nextDeadline(), 0);
  r.tick(0.1);
  const again = headers(r.takeOutput());
  assert.deepEqual(again.map((h) => [h.flags, h.ackno - ISN]), [[
    FLAG_ACK | FLAG_FC | FLAG_DRF,
    2,
  ]]);
  // once is enough
  r.tick(1);
  assert.deepEqual(r.takeOutput(), []);
  // the gap fills before the next flush: no repeat
  const s = end(PEER);
  s.receive(data(ISN, FLAG_DATA | FLAG_DRF), 0);
  for (const i of [1, 3]) s.receive(data(ISN + i), 0);
  while (s.read(0) !== null);
  s.takeOutput();
  s.receive(data(ISN + 2), 0.05);
  s.tick(0.1);
  assert.deepEqual(headers(s.takeOutput()), []);
  // and a gap the sender knows, repaired up to the next one: that ACK
  // leaves twice at once
  const u = end(PEER);
  u.receive(data(ISN, FLAG_DATA | FLAG_DRF), 0);
  for (const i of [1, 3, 5]) u.receive(data(ISN + i), 0);
  while (u.read(0) !== null);
  u.takeOutput();
  u.tick(0.1);
  assert.equal(u.takeOutput().length, 1, "the gap at 2 is signalled");
  u.receive(data(ISN + 2), 1); // the copy
  while (u.read(1) !== null);
  assert.deepEqual(headers(u.takeOutput()).map((h) => h.ackno - ISN), [4, 4]);
});
