/**
 * Property tests of FRCT on the simulated wire: thousands of seeded runs
 * with random loss, duplication, reordering, delay and corruption. A failure
 * names its seed; `FRCT_SEED=<seed>` reruns that one alone.
 */
import * as assert from "node:assert/strict";
import { uniform } from "../../tests/rng.ts";
import type { FlowEnd, FrctQos } from "./frct.ts";
import { type App, type Impairment, Sim } from "./sim.ts";

const RELIABLE: FrctQos = { loss: 0, ber: 1, inOrder: 1, timeout: 120_000 };
const RELIABLE_CRC: FrctQos = { loss: 0, ber: 0, inOrder: 1, timeout: 120_000 };
const PARTIAL: FrctQos = { loss: 1, ber: 0, inOrder: 1, timeout: 120_000 };
const RAW: FrctQos = { loss: 1, ber: 0, inOrder: 0, timeout: 120_000 };

const ONLY = Deno.env.get("FRCT_SEED");

/** Runs `body` for `n` seeds from `base` (or the one in FRCT_SEED). */
function forSeeds(base: number, n: number, body: (seed: number) => void): void {
  const seeds = ONLY !== undefined
    ? [Number(ONLY)]
    : Array.from({ length: n }, (_, i) => base + i);
  for (const seed of seeds) {
    try {
      body(seed);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      throw new Error(`seed ${seed} (FRCT_SEED=${seed}): ${msg}`, {
        cause: e,
      });
    }
  }
}

/** Message i: [u32 i][u32 length][bytes (i * 31 + k) & 255]. */
function message(i: number, len: number): Uint8Array {
  const m = new Uint8Array(Math.max(8, len));
  const v = new DataView(m.buffer);
  v.setUint32(0, i);
  v.setUint32(4, m.length);
  for (let k = 8; k < m.length; k++) m[k] = (i * 31 + k) & 255;
  return m;
}

/** The index of a message, after checking its bytes; -1 if damaged. */
function indexOf(m: Uint8Array): number {
  if (m.length < 8) return -1;
  const v = new DataView(m.buffer, m.byteOffset, m.byteLength);
  const i = v.getUint32(0);
  if (v.getUint32(4) !== m.length) return -1;
  for (let k = 8; k < m.length; k++) {
    if (m[k] !== ((i * 31 + k) & 255)) return -1;
  }
  return i;
}

/** Writes `count` messages of random sizes as fast as the window allows. */
class Writer implements App {
  next = 0;
  blocked = 0;
  private readonly sizes: number[];
  constructor(readonly count: number, rnd: () => number, maxLen = 600) {
    this.sizes = Array.from(
      { length: count },
      () => Math.floor(rnd() * maxLen),
    );
  }
  poll(f: FlowEnd, now: number): number | null {
    while (this.next < this.count) {
      const r = f.write(message(this.next, this.sizes[this.next]!), now);
      if (r !== "ok") {
        if (r === "window_closed") this.blocked++;
        break;
      }
      this.next++;
    }
    return null;
  }
}

/** Reads everything, or one message per `periodMs` when slow. */
class Reader implements App {
  readonly got: number[] = [];
  damaged = 0;
  private nextRead = 0;
  constructor(readonly periodMs = 0) {}
  poll(f: FlowEnd, now: number): number | null {
    if (this.periodMs === 0) {
      for (let m = f.read(now); m !== null; m = f.read(now)) this.take(m);
      return null;
    }
    if (now >= this.nextRead) {
      const m = f.read(now);
      if (m !== null) {
        this.take(m);
        this.nextRead = now + this.periodMs;
      }
    }
    return this.nextRead > now ? this.nextRead : null;
  }
  private take(m: Uint8Array): void {
    const i = indexOf(m);
    if (i < 0) this.damaged++;
    else this.got.push(i);
  }
}

/** Both directions at once: a writer and a reader on each end. */
class Both implements App {
  constructor(readonly w: Writer, readonly r: Reader) {}
  poll(f: FlowEnd, now: number): number | null {
    const a = this.r.poll(f, now);
    const b = this.w.poll(f, now);
    if (a === null) return b;
    if (b === null) return a;
    return Math.min(a, b);
  }
}

function randomImpairment(rnd: () => number, corrupt: boolean): Impairment {
  return {
    loss: rnd() * 0.3,
    duplicate: rnd() * 0.1,
    reorder: rnd() * 0.2,
    reorderMs: 1 + rnd() * 40,
    delayMs: 0.1 + rnd() * 30,
    jitterMs: rnd() * 10,
    ...(corrupt ? { corrupt: rnd() * 0.1 } : {}),
  };
}

function inOrder(got: number[], count: number): void {
  assert.equal(got.length, count, `delivered ${got.length} of ${count}`);
  for (let i = 0; i < count; i++) {
    if (got[i] !== i) assert.fail(`position ${i} holds message ${got[i]}`);
  }
}

Deno.test("reliable: every message once, in order, both directions, under loss/dup/reorder/corruption", () => {
  let runs = 0;
  const seen = {
    lost: 0,
    duplicated: 0,
    corrupted: 0,
    rtx: 0,
    badCrc: 0,
    ooo: 0,
  };
  forSeeds(1, 3000, (seed) => {
    const rnd = uniform(seed);
    const crc = rnd() < 0.5;
    const sim = new Sim({
      seed,
      qos: crc ? RELIABLE_CRC : RELIABLE,
      ab: randomImpairment(rnd, crc),
      ba: randomImpairment(rnd, crc),
    });
    const na = 1 + Math.floor(rnd() * 120);
    const nb = Math.floor(rnd() * 60);
    const a = new Both(new Writer(na, rnd), new Reader());
    const b = new Both(new Writer(nb, rnd), new Reader());
    const done = () => a.r.got.length === nb && b.r.got.length === na;
    const res = sim.run({ a, b }, { untilMs: 60_000, done });
    assert.equal(
      res,
      "done",
      `stalled at t=${
        sim.now.toFixed(1)
      }: a got ${a.r.got.length}/${nb}, b got ${b.r.got.length}/${na}`,
    );
    inOrder(b.r.got, na);
    inOrder(a.r.got, nb);
    assert.equal(a.r.damaged + b.r.damaged, 0, "damaged payload delivered");
    assert.equal(sim.a.state, "open");
    assert.equal(sim.b.state, "open");
    for (const l of [sim.ab, sim.ba]) {
      seen.lost += l.lost;
      seen.duplicated += l.duplicated;
      seen.corrupted += l.corrupted;
    }
    for (const e of [sim.a, sim.b]) {
      seen.rtx += e.stats.retransmitted;
      seen.badCrc += e.stats.badCrc;
      seen.ooo += e.stats.outOfOrder;
    }
    runs++;
  });
  if (ONLY === undefined) {
    assert.equal(runs, 3000);
    // the impairments were exercised
    for (const [k, v] of Object.entries(seen)) {
      assert.ok(v > 1000, `${k}: ${v}`);
    }
  }
});

Deno.test("reliable: close() lingers until everything is acknowledged, then closed", () => {
  forSeeds(5000, 500, (seed) => {
    const rnd = uniform(seed);
    const sim = new Sim({
      seed,
      qos: RELIABLE_CRC,
      ab: randomImpairment(rnd, true),
      ba: randomImpairment(rnd, true),
    });
    const n = 1 + Math.floor(rnd() * 100);
    const w = new Writer(n, rnd);
    const r = new Reader();
    let closedAt = -1;
    const a: App = {
      poll(f, now) {
        w.poll(f, now);
        if (w.next === n && f.state === "open") {
          f.close(now);
          closedAt = now;
        }
        return null;
      },
    };
    const res = sim.run({ a, b: r }, {
      untilMs: 120_000,
      done: () => sim.a.state === "closed" && r.got.length === n,
    });
    assert.equal(res, "done", `a ${sim.a.state}, b got ${r.got.length}/${n}`);
    assert.ok(closedAt >= 0);
    inOrder(r.got, n);
    assert.equal(sim.a.outstanding, 0);
  });
});

Deno.test("partially reliable: increasing order, no duplicates, never waits for gaps", () => {
  forSeeds(10_000, 2000, (seed) => {
    const rnd = uniform(seed);
    const sim = new Sim({
      seed,
      qos: PARTIAL,
      ab: randomImpairment(rnd, true),
      ba: randomImpairment(rnd, true),
    });
    const na = 1 + Math.floor(rnd() * 150);
    const nb = Math.floor(rnd() * 50);
    const a = new Both(new Writer(na, rnd), new Reader());
    const b = new Both(new Writer(nb, rnd), new Reader());
    // writers never block; once both wrote, let the wire drain
    const res = sim.run({ a, b }, {
      untilMs: 10_000,
      done: () => a.w.next === na && b.w.next === nb && sim.inFlight === 0,
    });
    assert.equal(res, "done");
    assert.equal(a.w.blocked + b.w.blocked, 0, "a writer was refused");
    for (const got of [a.r.got, b.r.got]) {
      for (let i = 1; i < got.length; i++) {
        if (!(got[i]! > got[i - 1]!)) {
          assert.fail(`message ${got[i]} after ${got[i - 1]}`);
        }
      }
    }
    assert.equal(a.r.damaged + b.r.damaged, 0, "damaged payload delivered");
    assert.equal(sim.a.stats.retransmitted + sim.b.stats.retransmitted, 0);
    // without loss nothing may be missing
    if (sim.ab.lost === 0 && sim.ab.corrupted === 0 && b.r.got.length > 0) {
      assert.equal(
        b.r.got[b.r.got.length - 1],
        na - 1,
        "newest message not delivered",
      );
    }
  });
});

Deno.test("vanished peer: the flow goes down within the limit", () => {
  const cubes: [string, FrctQos][] = [
    ["reliable", RELIABLE],
    ["reliable, no peer timeout", { ...RELIABLE, timeout: 0 }],
    ["partial", PARTIAL],
    ["raw", RAW],
    ["reliable, short timeout", { ...RELIABLE_CRC, timeout: 5_000 }],
  ];
  forSeeds(20_000, 500, (seed) => {
    const rnd = uniform(seed);
    const [name, qos] = cubes[seed % cubes.length]!;
    const ba = randomImpairment(rnd, true);
    const sim = new Sim({ seed, qos, ab: randomImpairment(rnd, true), ba });
    const n = 20 + Math.floor(rnd() * 200);
    const w = new Writer(n, rnd);
    const vanishAt = rnd() * 2000;
    let lastReceivedByA = 0;
    const receive = sim.a.receive.bind(sim.a);
    sim.a.receive = (p: Uint8Array, now: number) => {
      lastReceivedByA = now;
      receive(p, now);
    };
    let killed = false;
    let extra = false;
    const a: App = {
      poll(f, now) {
        w.poll(f, now);
        if (killed && !extra) {
          // something left to deliver after the peer is gone
          extra = true;
          f.write(message(n, 10), now);
        }
        return null;
      },
    };
    sim.run({ a, b: new Reader() }, { untilMs: vanishAt });
    sim.kill("b");
    killed = true;
    const res = sim.run({ a }, {
      untilMs: vanishAt + 300_000,
      done: () => sim.a.state === "down",
    });
    assert.equal(
      res,
      "done",
      `${name}: ${res}, still ${sim.a.state}, outstanding ${sim.a.outstanding}, deadline ${sim.a.nextDeadline()}`,
    );
    const downAt = sim.now;
    // the last packet from b lands at most this long after it vanished
    const maxDelay = (ba.delayMs ?? 0) + (ba.jitterMs ?? 0) +
      (ba.reorderMs ?? 0);
    const limit = Math.min(
      qos.timeout > 0 ? lastReceivedByA + qos.timeout : Infinity,
      qos.loss === 0 && qos.inOrder !== 0
        ? vanishAt + maxDelay + 120_000
        : Infinity,
    );
    assert.ok(limit < Infinity, `${name}: no limit applies`);
    assert.ok(
      downAt <= limit + 1e-6,
      `${name}: down at ${downAt}, limit ${limit} (${sim.a.downReason})`,
    );
    if (qos.timeout === 0) {
      assert.equal(sim.a.downReason, "retransmission_limit");
    } else if (qos.loss !== 0 || qos.inOrder === 0) {
      assert.equal(sim.a.downReason, "peer_timeout");
    }
    assert.equal(sim.a.write(new Uint8Array(1), downAt), "down");
    assert.equal(sim.a.nextDeadline(), null);
  });
});

Deno.test("slow reader: the writer blocks on the window, nothing lost, queues bounded", () => {
  forSeeds(30_000, 100, (seed) => {
    const rnd = uniform(seed);
    const imp = (): Impairment => ({
      loss: rnd() * 0.05,
      delayMs: 0.5 + rnd() * 5,
      jitterMs: rnd() * 2,
    });
    const sim = new Sim({ seed, qos: RELIABLE, ab: imp(), ba: imp() });
    const n = 600 + Math.floor(rnd() * 300);
    const w = new Writer(n, rnd, 200);
    const r = new Reader(0.5 + rnd() * 4);
    let maxOut = 0;
    let maxQueued = 0;
    const a: App = {
      poll(f, now) {
        const x = w.poll(f, now);
        maxOut = Math.max(maxOut, f.outstanding);
        return x;
      },
    };
    const b: App = {
      poll(f, now) {
        maxQueued = Math.max(maxQueued, f.queued);
        return r.poll(f, now);
      },
    };
    const res = sim.run({ a, b }, {
      untilMs: 100_000,
      done: () => r.got.length === n,
    });
    assert.equal(res, "done", `b got ${r.got.length}/${n}`);
    inOrder(r.got, n);
    assert.ok(w.blocked > 0, "the writer never met a closed window");
    assert.ok(sim.a.stats.windowStalls > 0);
    assert.ok(maxOut <= 256, `outstanding ${maxOut}`);
    assert.ok(maxQueued <= 256, `queued ${maxQueued}`);
    assert.equal(sim.b.stats.droppedWindow, 0, "sender overran the window");
    assert.equal(sim.a.state, "open");
  });
});

Deno.test("simulation is deterministic from its seed", () => {
  const once = (seed: number) => {
    const rnd = uniform(seed);
    const sim = new Sim({
      seed,
      qos: RELIABLE_CRC,
      ab: randomImpairment(rnd, true),
      ba: randomImpairment(rnd, true),
    });
    const w = new Writer(80, rnd);
    const r = new Reader();
    sim.run({ a: w, b: r }, {
      untilMs: 60_000,
      done: () => r.got.length === 80,
    });
    return JSON.stringify([sim.now, sim.ab, sim.ba, sim.a.stats, sim.b.stats]);
  };
  assert.equal(once(77), once(77));
  assert.notEqual(once(77), once(78));
});
