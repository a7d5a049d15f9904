/**
 * A simulated wire for FRCT tests: two FlowEnds joined by a seeded
 * impairment model (loss, duplication, reordering, delay, corruption) and a
 * simulated clock that jumps from event to event (packet arrival, protocol
 * deadline, application wake-up). Everything is deterministic from the seed.
 *
 *     const sim = new Sim({ seed, qos, ab: { loss: 0.1 }, ba: { loss: 0.1 } });
 *     const r = sim.run({ a: writerApp, b: readerApp }, { untilMs: 60_000, done });
 *
 * An App is polled after every event of the simulation; it reads and writes
 * on its FlowEnd and returns the next time it wants to be polled even when
 * nothing happens (or null).
 */
import { uniform, xorshift32 } from "../../tests/rng.ts";
import { FlowEnd, type FrctQos } from "./frct.ts";

/** One direction of the wire. Probabilities are per packet. */
export interface Impairment {
  /** dropped */
  loss?: number;
  /** delivered twice (the copy with its own delay) */
  duplicate?: number;
  /** held back by an extra uniform delay in [0, reorderMs] */
  reorder?: number;
  reorderMs?: number;
  /** base one-way delay, ms */
  delayMs?: number;
  /** extra uniform delay in [0, jitterMs] (reorders packets too) */
  jitterMs?: number;
  /** 1 to 3 bits flipped (in a copy) */
  corrupt?: number;
}

export interface LinkStats {
  sent: number;
  lost: number;
  duplicated: number;
  corrupted: number;
  delivered: number;
}

export interface SimOptions {
  seed: number;
  qos: FrctQos;
  /** the QoS of end b, when it differs */
  qosB?: FrctQos;
  mplMs?: number;
  rtxLimitMs?: number;
  /** a -> b */
  ab?: Impairment;
  /** b -> a */
  ba?: Impairment;
  startMs?: number;
}

export interface App {
  poll(end: FlowEnd, now: number): number | null;
}

export type RunResult = "done" | "idle" | "time";

interface InFlight {
  t: number;
  order: number;
  to: 0 | 1;
  bytes: Uint8Array;
}

/** Binary min-heap of packets in flight by (arrival time, send order). */
class FlightHeap {
  private readonly h: InFlight[] = [];

  get size(): number {
    return this.h.length;
  }

  peek(): InFlight | undefined {
    return this.h[0];
  }

  push(x: InFlight): void {
    const h = this.h;
    h.push(x);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  pop(): InFlight | undefined {
    const h = this.h;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last !== undefined) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && less(h[l]!, h[m]!)) m = l;
        if (r < h.length && less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

function less(a: InFlight, b: InFlight): boolean {
  return a.t < b.t || (a.t === b.t && a.order < b.order);
}

function newLinkStats(): LinkStats {
  return { sent: 0, lost: 0, duplicated: 0, corrupted: 0, delivered: 0 };
}

/** Steps at one instant after which the simulation is taken to be stuck. */
const MAX_STEPS_AT_ONE_TIME = 100_000;

export class Sim {
  now: number;
  readonly a: FlowEnd;
  readonly b: FlowEnd;
  readonly ab: LinkStats = newLinkStats();
  readonly ba: LinkStats = newLinkStats();
  /** an end that vanished: not run, and nothing reaches it */
  private readonly dead: [boolean, boolean] = [false, false];
  private readonly imp: [Impairment, Impairment];
  private readonly rnd: () => number;
  private readonly flight = new FlightHeap();
  private order = 0;

  constructor(opts: SimOptions) {
    this.now = opts.startMs ?? 0;
    this.rnd = uniform(opts.seed);
    const isn = xorshift32((opts.seed ^ 0x5bd1e995) >>> 0);
    const mplMs = opts.mplMs ?? 100;
    const common = {
      mplMs,
      now: this.now,
      random: isn,
      ...(opts.rtxLimitMs !== undefined ? { rtxLimitMs: opts.rtxLimitMs } : {}),
    };
    this.a = new FlowEnd({ ...common, qos: opts.qos });
    this.b = new FlowEnd({ ...common, qos: opts.qosB ?? opts.qos });
    this.imp = [opts.ab ?? {}, opts.ba ?? {}];
  }

  /** End `side` vanishes now (its process died). */
  kill(side: "a" | "b"): void {
    this.dead[side === "a" ? 0 : 1] = true;
  }

  /** Packets still in flight. */
  get inFlight(): number {
    return this.flight.size;
  }

  /**
   * Runs until `done()` holds ("done"), nothing is left to happen ("idle"),
   * or the next event is after `untilMs` ("time"; the clock then stops at
   * `untilMs`).
   */
  run(
    apps: { a?: App; b?: App },
    opts: { untilMs: number; done?: () => boolean },
  ): RunResult {
    const ends = [this.a, this.b] as const;
    const appList = [apps.a, apps.b] as const;
    const wake = [this.now, this.now];
    let sameTime = 0;
    for (;;) {
      if (opts.done?.()) return "done";
      let t = Infinity;
      const f = this.flight.peek();
      if (f !== undefined) t = f.t;
      for (let i = 0; i < 2; i++) {
        if (this.dead[i]) continue;
        const d = ends[i]!.nextDeadline();
        if (d !== null && d < t) t = d;
        if (appList[i] !== undefined && wake[i]! < t) t = wake[i]!;
      }
      if (t === Infinity) return "idle";
      if (t > opts.untilMs) {
        this.now = opts.untilMs;
        return "time";
      }
      if (t > this.now) {
        this.now = t;
        sameTime = 0;
      } else if (++sameTime > MAX_STEPS_AT_ONE_TIME) {
        throw new Error(`simulation stuck at t=${this.now} ms`);
      }
      const now = this.now;
      for (
        let x = this.flight.peek();
        x !== undefined && x.t <= now;
        x = this.flight.peek()
      ) {
        this.flight.pop();
        if (this.dead[x.to]) continue;
        (x.to === 0 ? this.ba : this.ab).delivered++;
        ends[x.to]!.receive(x.bytes, now);
      }
      for (let i = 0; i < 2; i++) {
        if (this.dead[i]) continue;
        const e = ends[i]!;
        e.tick(now);
        const app = appList[i];
        if (app !== undefined) wake[i] = app.poll(e, now) ?? Infinity;
        const out = e.takeOutput();
        for (let k = 0; k < out.length; k++) this.transmit(i, out[k]!);
      }
    }
  }

  private transmit(from: number, bytes: Uint8Array): void {
    const to: 0 | 1 = from === 0 ? 1 : 0;
    const imp = this.imp[from]!;
    const st = from === 0 ? this.ab : this.ba;
    const rnd = this.rnd;
    st.sent++;
    if (imp.loss !== undefined && rnd() < imp.loss) {
      st.lost++;
      return;
    }
    const copies = imp.duplicate !== undefined && rnd() < imp.duplicate ? 2 : 1;
    if (copies === 2) st.duplicated++;
    for (let c = 0; c < copies; c++) {
      let b = bytes;
      if (imp.corrupt !== undefined && b.length > 0 && rnd() < imp.corrupt) {
        b = b.slice();
        const bits = 1 + Math.floor(rnd() * 3);
        for (let k = 0; k < bits; k++) {
          const bit = Math.floor(rnd() * b.length * 8);
          b[bit >> 3]! ^= 1 << (bit & 7);
        }
        st.corrupted++;
      }
      let delay = imp.delayMs ?? 0;
      if (imp.jitterMs !== undefined) delay += rnd() * imp.jitterMs;
      if (imp.reorder !== undefined && rnd() < imp.reorder) {
        delay += rnd() * (imp.reorderMs ?? 10);
      }
      this.flight.push({
        t: this.now + delay,
        order: this.order++,
        to,
        bytes: b,
      });
    }
  }
}
