/**
 * The N-1 flows' connections (n1_conns.ts) without a Worker: an N1Side on
 * an epoll instance of the test's, driven pass by pass as the data path's
 * loop drives it, each flow's lower IPCP the test's end of a socketpair.
 * The status frame; control packets in order, whatever the reads cut;
 * refusals, broken frames, ends; writes intact, large and many, before the
 * status too; a socket that does not take them: queued, dropped beyond
 * the bound (data) or kept (control) until hopeless, and then flowing once
 * read, never torn; dt frames as views, forwarded without a copy of their
 * own; multi-bit ECN marks by the exact count of queued frames; nothing
 * left open.
 */
import { assert, assertEquals, assertMatch } from "../../tests/assert.ts";
import {
  closeFd,
  Epoll,
  readFd,
  socketPair,
  unwrap,
  writeFd,
} from "../../lib/sys/mod.ts";
import { fdTest } from "../../lib/sys/testing.ts";
import { getU32, putU32 } from "../../lib/ipc/framing.ts";
import { DP_COUNTERS, DpCounter, MAX_N1_PACKET } from "../common/dp_msg.ts";
import {
  N1_LINGER_MS,
  type N1Conn,
  N1Side,
  type N1SideOptions,
} from "./n1_conns.ts";
import { DT_DEFAULT, encodeDt } from "./dt.ts";
import {
  concat,
  frame,
  lyingFrame,
  packet,
  sameBytes,
  samePackets,
  statusFrame,
} from "../common/testing.ts";

/** A packet of `n` bytes that says which it is all through. */
function pkt(seq: number, n: number): Uint8Array {
  const p = packet(seq, n);
  if (n >= 4) putU32(p, 0, seq);
  return p;
}

type Opts = Partial<
  Pick<N1SideOptions, "queueBytes" | "hopelessBytes" | "maxPacket">
>;

/** An N1Side and what it reported. */
class Side {
  readonly epoll = unwrap(Epoll.open(64));
  readonly counters = new Float64Array(DP_COUNTERS);
  readonly control: [number, Uint8Array][] = [];
  readonly dt: [number, Uint8Array][] = [];
  readonly downs: [number, string][] = [];
  /** What a dt frame does (by default: kept, copied). */
  onDt: (c: N1Conn, frame: Uint8Array) => void = (c, f) =>
    this.dt.push([c.id, f.slice(4)]);
  othersFlushed = 0;
  readonly n1: N1Side;

  constructor(o: Opts = {}) {
    this.n1 = new N1Side({
      epoll: this.epoll,
      counters: this.counters,
      maxPacket: o.maxPacket ?? MAX_N1_PACKET,
      ...(o.queueBytes === undefined ? {} : { queueBytes: o.queueBytes }),
      ...(o.hopelessBytes === undefined
        ? {}
        : { hopelessBytes: o.hopelessBytes }),
      control: (c, p) => this.control.push([c.id, p.slice()]),
      dt: (c, f) => this.onDt(c, f),
      flushOthers: () => this.othersFlushed++,
      down: (id, reason) => this.downs.push([id, reason]),
      log: () => {},
    });
  }

  /** One pass of the data path's loop, as far as N-1 flows go. */
  pass(): void {
    unwrap(this.epoll.wait(0));
    for (let i = 0; i < this.epoll.ready; i++) {
      assert(this.n1.onEvent(this.epoll.tag(i), this.epoll.events(i)));
    }
    this.n1.readReady();
    this.n1.flush();
  }

  passes(n = 4): void {
    for (let i = 0; i < n; i++) this.pass();
  }

  /** Passes until `check` holds (at most `n`). */
  until(what: string, check: () => boolean, n = 10_000): void {
    for (let i = 0; i < n && !check(); i++) this.pass();
    assert(check(), what);
  }

  close(): void {
    this.n1.closeAll();
    this.epoll.close();
  }
}

/** The lower IPCP's end of a flow: the other end of a socketpair. */
class Lower {
  #got: Uint8Array[] = [];
  #have = new Uint8Array(0);
  closed = false;

  constructor(readonly fd: number) {}

  /** A pair: the data path's end (given to `side`), ours. */
  static pair(side: Side, id: number): Lower {
    const [a, b] = unwrap(socketPair({ nonBlocking: true }));
    side.n1.add(id, a);
    return new Lower(b);
  }

  /** Writes all of `bytes`, passing the side while the socket is full. */
  write(side: Side, bytes: Uint8Array): void {
    for (let off = 0; off < bytes.length;) {
      const r = writeFd(this.fd, bytes.subarray(off));
      if (r.ok) off += r.value;
      else if (r.wouldBlock) side.pass();
      else throw new Error(`write: ${r.name}`);
    }
  }

  /** Reads what waits; the bytes read, -1 at the end of the stream. */
  read(): number {
    const buf = new Uint8Array(256 * 1024);
    let n = 0;
    for (;;) {
      const r = readFd(this.fd, buf);
      if (!r.ok) {
        if (r.wouldBlock) return n;
        return -1;
      }
      if (r.value === 0) return n > 0 ? n : -1;
      this.#got.push(buf.slice(0, r.value));
      n += r.value;
    }
  }

  /** The whole frames read so far (taken), checking none is torn. */
  frames(): Uint8Array[] {
    const all = concat([this.#have, ...this.#got]);
    this.#got = [];
    const out: Uint8Array[] = [];
    let at = 0;
    while (all.length - at >= 4) {
      const len = getU32(all, at);
      assert(len <= MAX_N1_PACKET, `a frame length of ${len}: torn`);
      if (all.length - at < 4 + len) break;
      out.push(all.slice(at + 4, at + 4 + len));
      at += 4 + len;
    }
    this.#have = all.slice(at);
    return out;
  }

  /** Reads (passing the side) until `n` frames came, or the stream ended. */
  collect(side: Side, n: number, rounds = 10_000): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (let i = 0; i < rounds && out.length < n; i++) {
      side.pass();
      if (this.read() < 0) {
        this.closed = true;
        out.push(...this.frames());
        break;
      }
      out.push(...this.frames());
    }
    return out;
  }

  /** Whether the other end closed (reads, passing the side a few times). */
  ended(side: Side): boolean {
    for (let i = 0; i < 20; i++) {
      side.pass();
      if (this.read() < 0) return true;
    }
    return false;
  }

  #open = true;

  close(): void {
    if (this.#open) closeFd(this.fd);
    this.#open = false;
  }
}

fdTest(
  "n1: the status, then control packets in order, however the reads cut them",
  () => {
    const side = new Side();
    const lo = Lower.pair(side, 7);
    try {
      side.passes();
      assertEquals(side.control, []);
      assertEquals(side.downs, []);
      const sizes = [1, 0, 24, 1500, 9000, MAX_N1_PACKET, 3];
      const bytes = concat([
        statusFrame(0),
        ...sizes.map((n, i) => frame(pkt(i, n))),
      ]);
      // A byte at a time for the first 40, then in uneven pieces.
      let at = 0;
      for (; at < 40; at++) {
        lo.write(side, bytes.subarray(at, at + 1));
        side.pass();
      }
      for (let k = 1; at < bytes.length; k++) {
        const n = (k * 7919) % 20000 + 1;
        lo.write(side, bytes.subarray(at, at + n));
        at += n;
        side.pass();
      }
      side.until("all seven", () => side.control.length === sizes.length);
      assert(side.control.every(([id]) => id === 7));
      samePackets(
        side.control.map(([, p]) => p),
        sizes.map((n, i) => pkt(i, n)),
      );
      assertEquals(side.downs, []);
      assertEquals(side.n1.get(7)?.phase, "up");
    } finally {
      side.close();
      lo.close();
    }
  },
);

fdTest(
  "n1: a refused status, or a first frame that is none, ends the flow; its end is closed",
  () => {
    const side = new Side();
    const a = Lower.pair(side, 1);
    const b = Lower.pair(side, 2);
    const c = Lower.pair(side, 3);
    try {
      a.write(side, concat([statusFrame(-13), frame(pkt(0, 10))]));
      b.write(side, frame(pkt(0, 10)));
      c.write(side, statusFrame(0).subarray(0, 6)); // not all of it yet
      side.passes();
      assertEquals(side.downs.length, 2);
      const why = new Map(side.downs);
      assertMatch(why.get(1)!, /refused the flow \(EACCES\)/);
      assertMatch(why.get(2)!, /first frame \(10 bytes\) is no status/);
      assertEquals(side.control, [], "nothing after a refusal is handed on");
      assert(a.ended(side));
      assert(b.ended(side));
      assertEquals(side.n1.get(1), undefined);
      assertEquals(side.n1.get(3)?.phase, "status");
      // The rest of c's status: up; then its end goes away inside a frame.
      c.write(side, concat([statusFrame(0).subarray(6), frame(pkt(1, 10))]));
      c.write(side, frame(pkt(2, 100)).subarray(0, 50));
      side.until("c's packet", () => side.control.length === 1);
      c.close();
      side.until("c down", () => side.downs.length === 3);
      assertEquals(side.downs[2], [
        3,
        "the lower layer's stream ended inside a frame",
      ]);
      assertEquals(side.n1.size, 0);
    } finally {
      side.close();
      for (const l of [a, b]) l.close();
    }
  },
);

fdTest(
  "n1: a frame longer than the largest packet, or the end of the stream, ends the flow",
  () => {
    const side = new Side({ maxPacket: 1000 });
    const a = Lower.pair(side, 1);
    const b = Lower.pair(side, 2);
    const d = Lower.pair(side, 3);
    try {
      a.write(
        side,
        concat([
          statusFrame(0),
          frame(pkt(0, 1000)),
          lyingFrame(pkt(1, 5), 1001),
        ]),
      );
      b.write(side, concat([statusFrame(0), frame(pkt(0, 10))]));
      side.passes();
      assertEquals(side.downs, [[
        1,
        "the lower layer sent a packet of 1001 bytes, over 1000",
      ]]);
      assertEquals(side.control, [[1, pkt(0, 1000)], [2, pkt(0, 10)]]);
      assert(a.ended(side));
      b.close();
      side.until("b down", () => side.downs.length === 2);
      assertEquals(side.downs[1], [2, "the lower layer ended the flow"]);
      d.close();
      side.until("d down", () => side.downs.length === 3);
      assertEquals(side.downs[2], [
        3,
        "the lower layer closed the flow before its status",
      ]);
    } finally {
      side.close();
      a.close();
    }
  },
);

fdTest(
  "n1: remove closes the connection with no event; an id in use is refused, the first kept",
  () => {
    const side = new Side();
    const a = Lower.pair(side, 1);
    const dup = Lower.pair(side, 1); // refused: its fd closed
    try {
      a.write(side, statusFrame(0));
      side.passes();
      assert(dup.ended(side));
      assertEquals(side.n1.get(1)?.phase, "up");
      side.n1.remove(1);
      assert(a.ended(side));
      assertEquals(side.downs, []);
      assertEquals(side.n1.size, 0);
      side.n1.remove(1); // twice: nothing
    } finally {
      side.close();
      a.close();
      dup.close();
    }
  },
);

fdTest(
  "n1: control writes arrive intact, before the status too, a 64 KiB one and thousands back to back",
  () => {
    const side = new Side();
    const lo = Lower.pair(side, 4);
    try {
      const c = side.n1.get(4)!;
      side.n1.sendControl(c, pkt(0, 24));
      side.n1.sendControl(c, pkt(1, MAX_N1_PACKET));
      side.pass();
      samePackets(lo.collect(side, 2), [pkt(0, 24), pkt(1, MAX_N1_PACKET)]);
      lo.write(side, statusFrame(0));
      const n = 5000;
      const size = (i: number) => i % 100 === 0 ? 65536 : 1 + (i * 37) % 1500;
      for (let i = 0; i < n; i++) {
        side.n1.sendControl(c, pkt(i, size(i)));
        if (i % 700 === 0) side.pass();
      }
      const got = lo.collect(side, n);
      assertEquals(got.length, n);
      for (let i = 0; i < n; i++) {
        sameBytes(got[i], pkt(i, size(i)), `packet ${i}`);
      }
      assertEquals(side.counters[DpCounter.N1Dropped], 0);
      assertEquals(side.downs, []);
    } finally {
      side.close();
      lo.close();
    }
  },
);

fdTest(
  "n1: a socket that takes nothing: data queues to its bound, then is dropped and counted; all flows once read, none torn",
  () => {
    const bound = 1 << 20;
    const side = new Side({ queueBytes: bound });
    const lo = Lower.pair(side, 1);
    try {
      lo.write(side, statusFrame(0));
      side.passes();
      const c = side.n1.get(1)!;
      const size = (i: number) => 100 + (i * 7919) % 9000;
      const sent: number[] = [];
      let i = 0;
      // Writes until the queue refuses: the socket's buffer, then the bound.
      for (; i < 100_000; i++) {
        const f = frame(pkt(i, size(i)));
        if (!side.n1.sendData(c, f)) break;
        sent.push(i);
        if (i % 50 === 0) side.pass();
      }
      assert(i < 100_000, "the queue never filled");
      assert(
        c.queued > bound - 10_000 && c.queued <= bound,
        `queued ${c.queued}`,
      );
      assertEquals(side.counters[DpCounter.N1Dropped], 1);
      // Control packets are queued all the same.
      side.n1.sendControl(c, pkt(1_000_000, 5000));
      assert(c.queued > bound);
      assert(!side.n1.sendData(c, frame(pkt(i + 1, 10))));
      assertEquals(side.counters[DpCounter.N1Dropped], 2);
      side.passes();
      // Read it all: in order, intact, the control packet last.
      const got = lo.collect(side, sent.length + 1);
      assertEquals(got.length, sent.length + 1);
      for (let k = 0; k < sent.length; k++) {
        sameBytes(got[k], pkt(sent[k]!, size(sent[k]!)), `frame ${k}`);
      }
      assertEquals(got[sent.length], pkt(1_000_000, 5000));
      assertEquals(c.queued, 0);
      assertEquals(c.wantOut, false);
      // And the flow takes data again.
      assert(side.n1.sendData(c, frame(pkt(7, 70))));
      assertEquals(lo.collect(side, 1), [pkt(7, 70)]);
      assertEquals(side.downs, []);
    } finally {
      side.close();
      lo.close();
    }
  },
);

fdTest(
  "n1: a flow whose control packets pile up far beyond the bound is ended",
  () => {
    const side = new Side({ queueBytes: 1 << 16, hopelessBytes: 1 << 20 });
    const lo = Lower.pair(side, 9);
    try {
      const c = side.n1.get(9)!;
      for (let i = 0; i < 1000 && side.downs.length === 0; i++) {
        side.n1.sendControl(c, pkt(i, 10_000));
        side.pass();
      }
      assertEquals(side.downs, [[9, "the lower layer does not take packets"]]);
      assertEquals(side.n1.get(9), undefined);
      // What it had taken is there, whole frames, then the end.
      lo.collect(side, 1_000_000, 50);
      assert(lo.closed);
    } finally {
      side.close();
      lo.close();
    }
  },
);

fdTest(
  "n1: dt frames come as views of the read buffer, forwarded as they are, in order, large ones too",
  () => {
    const side = new Side();
    const a = Lower.pair(side, 1);
    const b = Lower.pair(side, 2);
    try {
      a.write(side, statusFrame(0));
      b.write(side, statusFrame(0));
      side.passes();
      side.n1.setDt(1, 2);
      side.n1.setDt(2, 0);
      assertEquals(side.n1.get(1)?.qc, 2);
      const out = side.n1.get(2)!;
      let views = 0;
      side.onDt = (c, f) => {
        assertEquals(c.id, 1);
        if (f.buffer === c.buf.buffer) views++;
        f[4] = f[4]! ^ 0xff; // changed in place: goes out so
        assert(side.n1.sendData(out, f));
      };
      const n = 3000;
      const size = (i: number) =>
        i % 500 === 0 ? MAX_N1_PACKET : 4 + (i * 13) % 3000;
      const all = concat(
        Array.from({ length: n }, (_, i) => frame(pkt(i, size(i)))),
      );
      const got: Uint8Array[] = [];
      for (let at = 0; at < all.length; at += 100_000) {
        a.write(side, all.subarray(at, at + 100_000));
        side.pass();
        b.read();
        got.push(...b.frames());
      }
      got.push(...b.collect(side, n - got.length));
      assertEquals(got.length, n);
      for (let i = 0; i < n; i++) {
        const want = pkt(i, size(i));
        want[0] = want[0]! ^ 0xff;
        sameBytes(got[i], want, `packet ${i}`);
      }
      assertEquals(views, n);
      assert(side.othersFlushed > 0);
      assertEquals(side.control, []);
    } finally {
      side.close();
      a.close();
      b.close();
    }
  },
);

fdTest(
  "n1: a lower end gone with packets we have not read: they are handed on, then the flow is down; a write meanwhile does no harm",
  () => {
    const side = new Side();
    const lo = Lower.pair(side, 5);
    try {
      lo.write(
        side,
        concat([statusFrame(0), frame(pkt(0, 10)), frame(pkt(1, 10))]),
      );
      lo.close();
      const c = side.n1.get(5)!;
      side.n1.sendControl(c, pkt(9, 10));
      side.passes();
      assertEquals(side.control, [[5, pkt(0, 10)], [5, pkt(1, 10)]]);
      assertEquals(side.downs.length, 1);
      assertEquals(side.downs[0]![0], 5);
    } finally {
      side.close();
    }
  },
);

fdTest(
  "n1: a removed flow writes what it was given first (its last packet too), then closes; at most N1_LINGER_MS",
  () => {
    const side = new Side();
    const a = Lower.pair(side, 1);
    const b = Lower.pair(side, 2);
    try {
      a.write(side, statusFrame(0));
      b.write(side, statusFrame(0));
      side.passes();
      // The last packet given in the same pass as the removal: not lost.
      const ca = side.n1.get(1)!;
      side.n1.sendControl(ca, pkt(1, 30));
      side.n1.remove(1);
      assertEquals(side.n1.get(1), undefined, "the id is free at once");
      assertEquals(a.collect(side, 2), [pkt(1, 30)]);
      assert(a.closed, "then the end");
      // More than the socket takes: written as the reader reads, then the end.
      const cb = side.n1.get(2)!;
      const n = 100;
      for (let i = 0; i < n; i++) side.n1.sendControl(cb, pkt(i, 20_000));
      side.pass();
      side.n1.remove(2);
      const again = Lower.pair(side, 2); // the id may be used again now
      assertEquals(side.n1.get(2)?.phase, "status");
      side.passes();
      const got = b.collect(side, n + 1);
      assertEquals(got.length, n);
      got.forEach((p, i) => sameBytes(p, pkt(i, 20_000), `packet ${i}`));
      assert(b.closed);
      again.close();
      side.until("the new flow down", () => side.downs.length === 1);
      assertEquals(side.downs[0]![0], 2);
    } finally {
      side.close();
      a.close();
      b.close();
    }
  },
);

fdTest(
  "n1: a removed flow that is not read is closed N1_LINGER_MS later",
  () => {
    const side = new Side();
    const a = Lower.pair(side, 1);
    try {
      const c = side.n1.get(1)!;
      for (let i = 0; i < 100; i++) side.n1.sendControl(c, pkt(i, 20_000));
      side.passes();
      side.n1.now = 1000;
      side.n1.remove(1);
      assertEquals(side.n1.nextDeadline(), 1000 + N1_LINGER_MS);
      side.n1.now += N1_LINGER_MS - 1;
      side.n1.timers();
      side.passes();
      assertEquals(side.n1.nextDeadline(), 1000 + N1_LINGER_MS, "still open");
      side.n1.now += 1;
      side.n1.timers();
      assertEquals(side.n1.nextDeadline(), Infinity);
      a.collect(side, 1000, 50);
      assert(a.closed);
      assertEquals(side.downs, []);
    } finally {
      side.close();
      a.close();
    }
  },
);

fdTest(
  "n1: a read buffer whose views are not flushed yet is not read into again",
  () => {
    const side = new Side();
    const a = Lower.pair(side, 1);
    try {
      a.write(side, statusFrame(0));
      side.passes();
      side.n1.setDt(1, 0);
      const held: Uint8Array[] = [];
      side.onDt = (_c, f) => held.push(f.subarray(4)); // views, not copies
      const read = () => {
        unwrap(side.epoll.wait(100));
        for (let i = 0; i < side.epoll.ready; i++) {
          side.n1.onEvent(side.epoll.tag(i), side.epoll.events(i));
        }
        side.n1.readReady(); // and no flush
      };
      a.write(
        side,
        concat([frame(pkt(1, 100)), frame(pkt(2, 100)).subarray(0, 50)]),
      );
      read();
      assertEquals(held.length, 1);
      a.write(
        side,
        concat([frame(pkt(2, 100)).subarray(50), frame(pkt(3, 100))]),
      );
      read();
      assertEquals(held, [pkt(1, 100), pkt(2, 100), pkt(3, 100)]);
      side.n1.flush();
    } finally {
      side.close();
      a.close();
    }
  },
);

fdTest(
  "n1: the last packet and the end in one event: the packet is taken, and the end is seen without another event",
  () => {
    const side = new Side();
    const a = Lower.pair(side, 1);
    try {
      // Status, a packet and the end, all before the side's first look:
      // epoll reports them as one edge (IN | RDHUP).
      a.write(side, concat([statusFrame(0), frame(pkt(0, 16))]));
      a.close();
      side.passes(3);
      assertEquals(side.control, [[1, pkt(0, 16)]]);
      assertEquals(side.downs, [[1, "the lower layer ended the flow"]]);
    } finally {
      side.close();
      a.close();
    }
  },
);

// ------------------------------------------------------------ mb-ecn

/** A DT packet (default layout) for FAR with ecn byte `ecn`, frame `seq`. */
function dtFrame(seq: number, n: number, ecn = 0): Uint8Array {
  return frame(
    encodeDt(
      { dst: 0x0c0c_0c0cn, qc: 0, ttl: 60, ecn, eid: 77n },
      pkt(seq, n),
    ),
  );
}

/** The ecn byte of a DT packet of the default layout. */
const ecnOf = (p: Uint8Array) => p[DT_DEFAULT.addrSize + 2]!;

fdTest(
  "n1: mb-ecn: in one pass, frame k gets (k queued before it) >> 4 ORed into its ecn byte; an ecn already set is kept; ECN off, untouched",
  () => {
    const side = new Side();
    const lo = Lower.pair(side, 1);
    try {
      lo.write(side, statusFrame(0));
      side.passes();
      side.n1.setDt(1, 0);
      const c = side.n1.get(1)!;
      side.n1.setEcn(DT_DEFAULT);
      // A control packet counts as a frame too (it is written first).
      side.n1.sendControl(c, pkt(999, 20));
      const pre = (k: number) => k % 3 === 0 ? 0x80 : k % 3 === 1 ? 0x21 : 0;
      // Fewer parts than IOV_MAX: all gathered, none written before flush.
      const n = 1000;
      for (let k = 0; k < n; k++) {
        assertEquals(c.queuedFrames, k + 1);
        assert(side.n1.sendData(c, dtFrame(k, 5, pre(k))));
      }
      const got = lo.collect(side, n + 1);
      assertEquals(got.length, n + 1);
      assertEquals(got[0], pkt(999, 20));
      for (let k = 0; k < n; k++) {
        assertEquals(ecnOf(got[k + 1]!), pre(k) | (k + 1) >> 4, `frame ${k}`);
        assertEquals(got[k + 1]!.subarray(DT_DEFAULT.hdrLen), pkt(k, 5));
      }
      assertEquals(c.queuedFrames, 0);
      // ECN off: as given.
      side.n1.setEcn(undefined);
      for (let k = 0; k < 100; k++) side.n1.sendData(c, dtFrame(k, 5, pre(k)));
      const off = lo.collect(side, 100);
      assertEquals(
        off.map(ecnOf),
        Array.from({ length: 100 }, (_, k) => pre(k)),
      );
      assertEquals(side.downs, []);
    } finally {
      side.close();
      lo.close();
    }
  },
);

fdTest(
  "n1: mb-ecn: behind a full socket, the marks go on rising with the queue, up to 255 from 4080 queued frames",
  () => {
    const side = new Side();
    const lo = Lower.pair(side, 1);
    try {
      lo.write(side, statusFrame(0));
      side.passes();
      side.n1.setDt(1, 0);
      side.n1.setEcn(DT_DEFAULT);
      const c = side.n1.get(1)!;
      // Fill the socket (ECN off for those): the queue holds something.
      side.n1.setEcn(undefined);
      let filler = 0;
      for (; c.out.pending === 0; filler++) {
        side.n1.sendData(c, dtFrame(filler, 1000));
        side.pass();
      }
      side.n1.setEcn(DT_DEFAULT);
      const q0 = c.queuedFrames;
      assert(q0 > 0);
      const n = 5000;
      for (let k = 0; k < n; k++) {
        assertEquals(c.queuedFrames, q0 + k);
        assert(side.n1.sendData(c, dtFrame(k, 5)));
        if (k % 100 === 0) side.pass(); // the socket takes nothing
      }
      const got = lo.collect(side, filler + n).slice(filler);
      assertEquals(got.length, n);
      for (let k = 0; k < n; k++) {
        assertEquals(
          ecnOf(got[k]!),
          Math.min(255, (q0 + k) >> 4),
          `frame ${k}`,
        );
      }
      assertEquals(ecnOf(got[n - 1]!), 255);
      assertEquals(c.queuedFrames, 0);
    } finally {
      side.close();
      lo.close();
    }
  },
);

fdTest(
  "n1: mb-ecn: a socket that does not take it all: the count of queued frames is exact (the out-queue's frames, one taken in part included, control ones of two parts too), and so the marks",
  () => {
    const side = new Side();
    const lo = Lower.pair(side, 1);
    try {
      lo.write(side, statusFrame(0));
      side.passes();
      side.n1.setDt(1, 0);
      side.n1.setEcn(DT_DEFAULT);
      const c = side.n1.get(1)!;
      // Where each frame ends in the stream the data path writes.
      const ends: number[] = [];
      let total = 0;
      let head = 0;
      const want: number[] = [];
      const size = (i: number) => 200 + (i * 7919) % 3000;
      const n = 3000;
      let maxQueued = 0;
      for (let i = 0; i < n; i++) {
        // The frames not wholly taken by the socket yet.
        const taken = total - c.queued;
        while (head < ends.length && ends[head]! <= taken) head++;
        const queued = ends.length - head;
        assertEquals(c.queuedFrames, queued, `before frame ${i}`);
        maxQueued = Math.max(maxQueued, queued);
        if (i % 10 === 9) {
          side.n1.sendControl(c, pkt(i, size(i)));
          want.push(-1);
        } else {
          assert(side.n1.sendData(c, dtFrame(i, size(i))), `frame ${i}`);
          want.push(Math.min(255, queued >> 4));
        }
        total += 4 + DT_DEFAULT.hdrLen * (i % 10 === 9 ? 0 : 1) + size(i);
        ends.push(total);
        if (i % 23 === 0) side.pass();
        // Now and then the lower layer reads what waits: the queue drains.
        if (i % 700 === 699) lo.read();
      }
      assert(maxQueued > 64, `only ${maxQueued} queued at most`);
      const got = lo.collect(side, n);
      assertEquals(got.length, n);
      for (let i = 0; i < n; i++) {
        if (want[i] === -1) sameBytes(got[i], pkt(i, size(i)), `control ${i}`);
        else assertEquals(ecnOf(got[i]!), want[i], `frame ${i}`);
      }
      assertEquals(c.queuedFrames, 0);
      assertEquals(side.counters[DpCounter.N1Dropped], 0);
    } finally {
      side.close();
      lo.close();
    }
  },
);
