/**
 * FRCT against real C 0.23.0 traffic: the annotated captures
 * (tests/vectors/c023-oping-qos-data-frct.txt, c023-frct-loss.txt) and the
 * pcaps behind the loss capture.
 */
import * as assert from "node:assert/strict";
import { loadVectors } from "../../tests/vectors.ts";
import {
  type Annotated,
  type Frame,
  loadAnnotated,
  loadPcap,
} from "./captures.ts";
import {
  decodeHeader,
  encodePacket,
  FLAG_ACK,
  FLAG_DATA,
  FLAG_DRF,
  FLAG_FC,
  FLAG_RDVS,
  flagNames,
  FlowEnd,
  type FrctHeader,
  type FrctQos,
  HEADER_LEN,
  seqAfter,
  seqBefore,
} from "./frct.ts";

/** qos data as a default C requester sends it (ber forced to 1). */
const DATA_CUBE: FrctQos = { loss: 0, ber: 1, inOrder: 1, timeout: 120_000 };
const UDP_MPL = 5000;

function eidOf(b: Uint8Array): number {
  return ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
}

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");
}

function header(p: Uint8Array): FrctHeader {
  const h = decodeHeader(p);
  if (!h.ok) throw new Error(h.error);
  return h.value;
}

/** The number after " = " in an annotation (hex with 0x, else decimal). */
function annotatedNumber(desc: string): number {
  const m = /= (0x[0-9a-f]+|\d+)/.exec(desc);
  if (!m) throw new Error(`no value in ${JSON.stringify(desc)}`);
  return Number(m[1]);
}

function hx(n: number, w = 8): string {
  return n.toString(16).padStart(w, "0");
}

// ---------------------------------------------------------------------------
// Codec: every FRCT datagram of both captures

function checkCodec(a: Annotated, where: string): boolean {
  const d = a.d;
  if (eidOf(d.bytes) === 0 || d.bytes.length <= 4) return false;
  const frct = d.bytes.subarray(4);
  const h = header(frct);
  const field = (start: number) => {
    const f = d.fields.find((f) => f.start === start);
    if (f === undefined) assert.fail(`${where}: no field at ${start}`);
    return f;
  };
  const fl = field(4);
  assert.equal(h.flags, annotatedNumber(fl.desc), `${where}: flags`);
  const names = /= 0x[0-9a-f]{2} ([A-Z|]+)/.exec(fl.desc)?.[1];
  assert.equal(flagNames(h.flags), names, `${where}: flag names`);
  assert.equal(h.rwe, annotatedNumber(field(5).desc), `${where}: rwe`);
  assert.equal(h.seqno, annotatedNumber(field(8).desc), `${where}: seqno`);
  assert.equal(h.ackno, annotatedNumber(field(12).desc), `${where}: ackno`);
  for (const start of [4, 5, 8, 12]) {
    const f = field(start);
    assert.deepEqual(f.bytes, d.bytes.subarray(f.start, f.end + 1), where);
  }
  const again = encodePacket(h, frct.subarray(HEADER_LEN));
  assert.equal(hex(again), hex(frct), `${where}: re-encoded`);
  return true;
}

Deno.test("golden: every FRCT datagram of both captures decodes as annotated and re-encodes byte for byte", () => {
  let n = 0;
  for (const a of loadAnnotated("c023-oping-qos-data-frct.txt").flat()) {
    if (checkCodec(a, `qos-data #${a.d.index}`)) n++;
  }
  assert.equal(n, 5);
  const sections = loadAnnotated("c023-frct-loss.txt");
  assert.equal(sections.length, 3);
  sections.forEach((sec, i) => {
    for (const a of sec) {
      if (checkCodec(a, `loss section ${i + 1} #${a.d.index}`)) n++;
    }
  });
  assert.equal(n, 5 + 31 + 24 + 22);
});

const PCAPS = [
  ["c023-frct-loss-oping.pcap", "c023-frct-loss-oping-drops.pcap"],
  ["c023-frct-flowctl-rdvs.pcap", undefined],
  ["c023-frct-peer-gone.pcap", undefined],
] as const;

function pcapSection(i: number): Frame[] {
  const [name, drops] = PCAPS[i]!;
  return loadPcap(name, drops);
}

Deno.test("golden: the annotated loss capture is the pcaps' bytes, times and drops", () => {
  loadAnnotated("c023-frct-loss.txt").forEach((sec, i) => {
    const frames = pcapSection(i);
    for (const a of sec) {
      const f = frames[a.d.index - 1]!;
      const where = `section ${i + 1} #${a.d.index}`;
      assert.equal(f.n, a.d.index, where);
      assert.equal(hex(f.payload), hex(a.d.bytes), where);
      assert.ok(Math.abs(f.tMs - a.d.tMs) < 0.001, where);
      assert.equal(f.dropped, a.dropped, `${where}: dropped`);
    }
  });
  assert.equal(pcapSection(0).filter((f) => f.dropped).length, 25);
});

// ---------------------------------------------------------------------------
// Spec 11: c023-oping-qos-data-frct.txt #3..#7 with their timing

function qosDataCapture(): Map<number, Uint8Array> {
  const m = new Map<number, Uint8Array>();
  for (const d of loadVectors("c023-oping-qos-data-frct.txt")) {
    m.set(d.index, d.bytes.subarray(4));
  }
  return m;
}

const T3 = 1001.557;
const T4 = 1001.972;
const T5 = 1017.375;
const T6 = 2001.737;
const T7 = 2001.897;

Deno.test("golden: spec 11 as the client (eid 64): #3 and #6 byte for byte, state after #4 and #7", () => {
  const c = qosDataCapture();
  const f = new FlowEnd({
    qos: DATA_CUBE,
    mplMs: UDP_MPL,
    now: 0.625,
    random: () => 0x3fbdf2b7,
  });
  assert.equal(f.write(c.get(3)!.subarray(HEADER_LEN), T3), "ok");
  assert.deepEqual(f.takeOutput().map(hex), [hex(c.get(3)!)]);
  let s = f.snapshot();
  assert.equal(hx(s.sndLwe), "3fbdf2b7");
  assert.equal(hx(s.sndSeqno), "3fbdf2b8");
  assert.equal(hx(s.sndRwe), "3fbdf2f7");

  f.receive(c.get(4)!, T4);
  s = f.snapshot();
  assert.equal(hx(s.sndLwe), "3fbdf2b8", "#4 acknowledges #3");
  assert.equal(f.outstanding, 0);
  assert.ok(Math.abs(f.stats.srtt - 0.415) < 1e-6, `srtt ${f.stats.srtt}`);
  assert.ok(Math.abs(f.stats.mdev - 0.2075) < 1e-6, `mdev ${f.stats.mdev}`);
  // C's rto would be 1.245 ms; I6 floors ours at 20 ms
  assert.equal(f.stats.rto, 20);
  assert.equal(hx(s.sndRwe), "3fbdf3b8", "rwe24 bdf3b8 rebuilt from 3fbdf2f7");
  assert.equal(hx(s.rcvLwe), "d0d97947");
  assert.equal(hx(s.rcvRwe), "d0d97a47");
  assert.deepEqual(f.read(T4), c.get(4)!.subarray(HEADER_LEN));
  s = f.snapshot();
  assert.equal(hx(s.rcvLwe), "d0d97948");
  assert.equal(hx(s.rcvRwe), "d0d97a48");
  // C's delayed ACK #5 is `0c d97a48 00000000 d0d97948`, 15.4 ms later; ours
  // leaves at once (I5) and carries DRF with seqno = snd.lwe (I3)
  assert.deepEqual(f.takeOutput().map(hex), [
    "0e d9 7a 48 3f bd f2 b8 d0 d9 79 48",
  ]);
  assert.equal(f.nextDeadline(), T3 + 30_000, "only the keepalive is left");

  assert.equal(f.write(c.get(6)!.subarray(HEADER_LEN), T6), "ok");
  assert.deepEqual(f.takeOutput().map(hex), [hex(c.get(6)!)]);
  f.receive(c.get(7)!, T7);
  assert.equal(f.outstanding, 0);
  assert.ok(Math.abs(f.stats.srtt - 0.383125) < 1e-6, `srtt ${f.stats.srtt}`);
  assert.ok(f.read(T7) !== null);
  // the C client's next ACK (spec 11): `0c d9 7a 49 00 00 00 00 d0 d9 79 49`
  assert.deepEqual(f.takeOutput().map(hex), [
    "0e d9 7a 49 3f bd f2 b9 d0 d9 79 49",
  ]);
});

Deno.test("golden: spec 11 as the server (eid 65): #4 and #7 byte for byte, state after #3 and #5", () => {
  const c = qosDataCapture();
  const f = new FlowEnd({
    qos: DATA_CUBE,
    mplMs: UDP_MPL,
    now: 0.625,
    random: () => 0xd0d97947,
  });
  f.receive(c.get(3)!, T3);
  let s = f.snapshot();
  assert.ok(s.rcvRun, "inactive + DRF starts a run");
  assert.equal(hx(s.rcvLwe), "3fbdf2b7");
  assert.equal(hx(s.rcvRwe), "3fbdf3b7");
  assert.deepEqual(f.read(T3), c.get(3)!.subarray(HEADER_LEN));
  s = f.snapshot();
  assert.equal(hx(s.rcvLwe), "3fbdf2b8");
  assert.equal(hx(s.rcvRwe), "3fbdf3b8");
  // the reply leaves before the ACK is flushed and carries it
  assert.equal(f.write(c.get(4)!.subarray(HEADER_LEN), T4), "ok");
  assert.deepEqual(f.takeOutput().map(hex), [hex(c.get(4)!)]);

  f.receive(c.get(5)!, T5);
  s = f.snapshot();
  assert.equal(hx(s.sndLwe), "d0d97948");
  assert.equal(hx(s.sndRwe), "d0d97a48", "from d0d97987 (ISN + 64)");
  assert.ok(Math.abs(f.stats.srtt - 15.403) < 1e-6);
  assert.ok(Math.abs(f.stats.mdev - 7.7015) < 1e-6);
  assert.ok(Math.abs(f.stats.rto - 46.209) < 1e-6, `rto ${f.stats.rto}`);
  // like C's delayed check: rcv.lwe == the ackno sent, nothing to send
  assert.deepEqual(f.takeOutput(), []);

  f.receive(c.get(6)!, T6);
  assert.deepEqual(f.read(T6), c.get(6)!.subarray(HEADER_LEN));
  assert.equal(f.write(c.get(7)!.subarray(HEADER_LEN), T7), "ok");
  assert.deepEqual(f.takeOutput().map(hex), [hex(c.get(7)!)]);
});

// ---------------------------------------------------------------------------
// Replays of the loss capture's pcaps, one receiving side at a time

interface Sent {
  t: number;
  p: Uint8Array;
}

/** What a C node accepts from us, checked on every packet we send. */
class CInteropCheck {
  private lastAckno: number | null = null;
  /** highest seqno + 1 the C peer sent so far */
  peerNext: number | null = null;
  private readonly firstCopies = new Map<number, string>();
  constructor(readonly f: FlowEnd, readonly name: string) {}

  peerSent(frct: Uint8Array): void {
    const h = header(frct);
    if ((h.flags & FLAG_DATA) === 0) return;
    const next = (h.seqno + 1) >>> 0;
    if (this.peerNext === null || seqAfter(next, this.peerNext)) {
      this.peerNext = next;
    }
  }

  ours(s: Sent): void {
    const where = `${this.name} t=${s.t.toFixed(3)} ${
      hex(s.p.subarray(0, 12))
    }`;
    if (s.p.length === 0) return; // keepalive
    assert.ok(s.p.length >= HEADER_LEN, where);
    const h = header(s.p);
    if (h.flags & FLAG_RDVS) {
      assert.equal(h.flags, FLAG_RDVS | FLAG_DRF, `${where}: RDVS alone`);
    }
    if (h.flags & FLAG_ACK) {
      // C takes any ackno after its snd.lwe (bug 10.3): never more than it sent
      assert.ok(this.peerNext !== null, `${where}: ACK before any data`);
      assert.ok(
        !seqAfter(h.ackno, this.peerNext),
        `${where}: ACK of unsent data`,
      );
      if (this.lastAckno !== null) {
        assert.ok(!seqBefore(h.ackno, this.lastAckno), `${where}: ackno back`);
      }
      this.lastAckno = h.ackno;
      if (h.flags & FLAG_FC) {
        // rwe = ackno + 256 (spec 6): C rebuilds it from its snd.rwe
        assert.equal(h.rwe, (h.ackno + 256) & 0xffffff, `${where}: rwe`);
      }
    }
    if ((h.flags & FLAG_DATA) === 0) {
      // I3
      assert.ok(h.flags & FLAG_DRF, `${where}: control without DRF`);
      assert.ok(
        !seqAfter(h.seqno, this.f.nextSeqno),
        `${where}: control seqno beyond snd.seqno`,
      );
      assert.equal(s.p.length, HEADER_LEN, where);
      return;
    }
    const body = hex(s.p.subarray(HEADER_LEN));
    const first = this.firstCopies.get(h.seqno);
    if (first === undefined) this.firstCopies.set(h.seqno, body);
    else assert.equal(body, first, `${where}: copy differs from the original`);
  }
}

interface ReplaySide {
  /** our address in the capture */
  me: string;
  f: FlowEnd;
  /** after a frame reached us (not called for dropped ones) */
  received?(now: number, frct: Uint8Array): void;
  /** a frame the C node at our place sent */
  cSent?(now: number, frct: Uint8Array): void;
  /** extra application wake-ups (sorted) */
  wakeups?: { t: number; run(now: number): void }[];
}

/**
 * Feeds the frames for `side.me` that were not dropped, at their times, with
 * the timers run in between; returns everything we sent.
 */
function replay(
  frames: Frame[],
  side: ReplaySide,
  check: CInteropCheck,
  endMs: number,
): Sent[] {
  const { f } = side;
  const sent: Sent[] = [];
  const wakeups = [...(side.wakeups ?? [])];
  let now = 0;
  const drain = () => {
    for (const p of f.takeOutput()) {
      const s = { t: now, p };
      check.ours(s);
      sent.push(s);
    }
  };
  const advance = (t: number) => {
    for (;;) {
      const d = f.nextDeadline() ?? Infinity;
      const w = wakeups[0]?.t ?? Infinity;
      const next = Math.min(d, w);
      if (next > t) break;
      now = Math.max(now, next);
      if (w <= d) wakeups.shift()!.run(now);
      else f.tick(now);
      drain();
    }
    now = Math.max(now, t);
  };
  for (const fr of frames) {
    if (eidOf(fr.payload) === 0) continue; // FLOW_REQ / FLOW_REPLY
    const frct = fr.payload.subarray(4);
    advance(fr.tMs);
    if (fr.src === side.me) {
      side.cSent?.(now, frct);
    } else {
      check.peerSent(frct);
      if (fr.dropped) continue;
      f.receive(frct, now);
      side.received?.(now, frct);
    }
    drain();
  }
  advance(endMs);
  return sent;
}

const A = "127.0.0.1";
const B = "127.0.0.3";

/** oping payload: u32 type (0 request, 1 reply), u32 id, ... */
function opingId(p: Uint8Array): number {
  return new DataView(p.buffer, p.byteOffset, p.byteLength).getUint32(4);
}

function firstCopies(frames: Frame[], src: string): Map<number, Frame> {
  const m = new Map<number, Frame>();
  for (const fr of frames) {
    if (fr.src !== src || eidOf(fr.payload) === 0) continue;
    const h = header(fr.payload.subarray(4));
    if ((h.flags & FLAG_DATA) && !m.has(h.seqno)) m.set(h.seqno, fr);
  }
  return m;
}

Deno.test("golden replay, loss section 1, as the server A: every ping once, in order; replies as C's", () => {
  const frames = pcapSection(0);
  const f = new FlowEnd({
    qos: DATA_CUBE,
    mplMs: UDP_MPL,
    now: frames[1]!.tMs,
    random: () => 0x8c85e321, // A's ISN in the capture
  });
  const check = new CInteropCheck(f, "A");
  const got: number[] = [];
  const sent = replay(
    frames,
    {
      me: A,
      f,
      received(now) {
        for (let m = f.read(now); m !== null; m = f.read(now)) {
          got.push(opingId(m));
          const reply = m.slice();
          reply[3] = 1; // ECHO_REPLY
          assert.equal(f.write(reply, now), "ok");
        }
      },
    },
    check,
    5000,
  );
  assert.deepEqual(got, Array.from({ length: 30 }, (_, i) => i));
  // our first copies are C's first copies, header and payload: same seqno,
  // ackno, rwe and DRF decisions from the same ACKs
  const theirs = firstCopies(frames, A);
  const ours = new Map<number, Sent>();
  for (const s of sent) {
    if (s.p.length === 0) continue;
    const h = header(s.p);
    if ((h.flags & FLAG_DATA) && !ours.has(h.seqno)) ours.set(h.seqno, s);
  }
  assert.equal(ours.size, 30);
  assert.equal(theirs.size, 30);
  for (const [seq, fr] of theirs) {
    const o = ours.get(seq);
    assert.ok(o !== undefined, `no reply ${hx(seq)}`);
    assert.equal(hex(o.p), hex(fr.payload.subarray(4)), `reply ${hx(seq)}`);
  }
  // the capture ends with C's final ACK 0x04 for everything
  assert.equal(f.outstanding, 0);
  assert.equal(f.stats.delivered, 30);
  assert.equal(f.stats.droppedWindow + f.stats.droppedNoRun, 0);
  // every duplicate request (8 here) got an ACK back
  assert.ok(f.stats.duplicates > 0);
});

Deno.test("golden replay, loss section 1, as the client B: every reply once, in order, ACKs valid for C", () => {
  const frames = pcapSection(0);
  const f = new FlowEnd({
    qos: DATA_CUBE,
    mplMs: UDP_MPL,
    now: frames[1]!.tMs,
    random: () => 0x579baa53, // B's ISN in the capture
  });
  const check = new CInteropCheck(f, "B");
  const firstReq = firstCopies(frames, B);
  const got: number[] = [];
  const seen = new Set<number>();
  const sent = replay(
    frames,
    {
      me: B,
      f,
      cSent(now, frct) {
        // our application writes the request when C's did
        const h = header(frct);
        if (!(h.flags & FLAG_DATA) || seen.has(h.seqno)) return;
        seen.add(h.seqno);
        assert.equal(f.write(frct.subarray(HEADER_LEN), now), "ok");
      },
      received(now) {
        for (let m = f.read(now); m !== null; m = f.read(now)) {
          got.push(opingId(m));
        }
      },
    },
    check,
    5000,
  );
  assert.deepEqual(got, Array.from({ length: 30 }, (_, i) => i));
  // our requests are C's, byte for byte, but for one: at 1404 ms C's client
  // had not yet taken the retransmitted reply 0x18 (arrived 1387 ms) off its
  // queue (spec 9: the library processes FRCT when the application reads),
  // so its ackno lags ours by the three replies we had consumed
  const ours = new Map<number, Uint8Array>();
  for (const s of sent) {
    if (s.p.length === 0) continue;
    const h = header(s.p);
    if ((h.flags & FLAG_DATA) && !ours.has(h.seqno)) ours.set(h.seqno, s.p);
  }
  assert.equal(firstReq.size, 30);
  const differ: string[] = [];
  for (const [seq, fr] of firstReq) {
    const o = ours.get(seq);
    assert.ok(o !== undefined, `no request ${hx(seq)}`);
    const c = fr.payload.subarray(4);
    if (hex(o) === hex(c)) continue;
    differ.push(hx(seq));
    const ho = header(o);
    const hc = header(c);
    assert.equal(ho.flags, hc.flags);
    assert.ok(seqAfter(ho.ackno, hc.ackno), "ours acknowledges more");
    assert.equal(hex(o.subarray(HEADER_LEN)), hex(c.subarray(HEADER_LEN)));
  }
  assert.deepEqual(differ, ["579baa6e"]);
  f.close(frames.at(-1)!.tMs);
  assert.equal(f.state, "closed", "everything was acknowledged");
});

Deno.test("golden replay, flow-control section 2, as the stalled reader A: 400 once, in order; RDVS answered at once", () => {
  const frames = pcapSection(1);
  const f = new FlowEnd({
    qos: DATA_CUBE,
    mplMs: UDP_MPL,
    now: frames[1]!.tMs,
    random: () => 0x12345678,
  });
  const check = new CInteropCheck(f, "A");
  const got: number[] = [];
  let reading = false;
  const readAll = (now: number) => {
    for (let m = f.read(now); m !== null; m = f.read(now)) {
      got.push(new DataView(m.buffer, m.byteOffset).getUint32(0));
    }
  };
  const rdvsAt: number[] = [];
  const sent = replay(
    frames,
    {
      me: A,
      f,
      received(now, frct) {
        if (header(frct).flags & FLAG_RDVS) rdvsAt.push(now);
        if (reading) readAll(now);
      },
      wakeups: [
        { // the C reader: one packet 900 ms after accepting, ...
          t: 901,
          run(now) {
            const m = f.read(now);
            assert.ok(m !== null);
            got.push(new DataView(m.buffer, m.byteOffset).getUint32(0));
          },
        },
        { // ... then everything after a 1.5 s pause
          t: 2401,
          run(now) {
            reading = true;
            readAll(now);
          },
        },
      ],
    },
    check,
    3000,
  );
  assert.deepEqual(got, Array.from({ length: 400 }, (_, i) => i));
  assert.equal(rdvsAt.length, 9);
  // each RDVS got its answer in the same instant, with the current window
  for (const t of rdvsAt) {
    const answer = sent.find((s) =>
      s.t === t && s.p.length > 0 && (header(s.p).flags & FLAG_FC) !== 0
    );
    assert.ok(answer !== undefined, `no answer to the RDVS at ${t}`);
    const h = header(answer.p);
    assert.equal(h.flags, FLAG_ACK | FLAG_FC | FLAG_DRF);
    assert.equal(hx(h.ackno), "f0ff5848", "one packet read");
    assert.equal(hx(h.rwe, 6), "ff5948", "lwe + 256");
  }
  assert.equal(f.stats.droppedWindow, 0, "C stayed within our window");
  assert.equal(f.stats.droppedNoRun, 0);
  // C's client sends ackno 0 / rwe 0 after bug 10.1; ours ignores both
  assert.equal(f.snapshot().sndRwe, (0x12345678 + 64) >>> 0);
});

Deno.test("golden replay, peer-gone section 3, as the client B: no final-ACK storm, down within 120 s", () => {
  const frames = pcapSection(2);
  const f = new FlowEnd({
    qos: DATA_CUBE,
    mplMs: UDP_MPL,
    now: frames[1]!.tMs,
    random: () => 0x33c6910a, // B's ISN in the capture
  });
  const check = new CInteropCheck(f, "B");
  const seen = new Set<number>();
  const got: number[] = [];
  let closedAt = -1;
  let lastFromA = 0;
  const sent = replay(
    frames,
    {
      me: B,
      f,
      cSent(now, frct) {
        const h = header(frct);
        if (h.flags === FLAG_ACK && closedAt < 0) {
          // C's first final ACK: its application deallocated here
          closedAt = now;
          f.close(now);
          return;
        }
        if (!(h.flags & FLAG_DATA) || seen.has(h.seqno)) return;
        seen.add(h.seqno);
        assert.equal(f.write(frct.subarray(HEADER_LEN), now), "ok");
      },
      received(now) {
        lastFromA = now;
        for (let m = f.read(now); m !== null; m = f.read(now)) {
          got.push(opingId(m));
        }
      },
    },
    check,
    200_000,
  );
  assert.deepEqual(got, [0, 1]);
  assert.equal(seen.size, 11, "requests 0..10 left before the dealloc");
  assert.ok(closedAt > 2000);
  const after = sent.filter((s) => s.t >= closedAt && s.p.length > 0);
  const control = after.filter((s) => (header(s.p).flags & FLAG_DATA) === 0);
  // C sent 3637 final ACKs in 21.7 s; ours: none was due (reply 1 was
  // acknowledged when read), and lingering sends data copies only
  assert.equal(control.length, 0);
  assert.equal(f.state, "down");
  assert.equal(f.downReason, "peer_timeout");
  const downAt = Math.max(...sent.map((s) => s.t));
  assert.ok(downAt <= lastFromA + 120_000 + 1e-6);
  // retransmissions back off: a few dozen copies in two minutes, not C's
  // thousands
  const copies = after.length;
  assert.ok(copies > 10 && copies < 200, `${copies} copies`);
});
