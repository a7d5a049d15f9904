/**
 * A simulated wire for FRCT tests: two FlowEnds joined by a seeded
 * impairment model (loss, duplication, reordering, delay, corruption) and a
 * simulated clock that jumps from event to event (packet arrival, protocol
 * deadline, application wake-up). Everything is deterministic from the seed.
 *
 * Two more models make it look like a real path on one busy machine:
 * - a bottleneck per direction (`rateMbps`, `queue`): packets leave one
 *   after another at that rate, so the delay grows with what is in flight,
 *   and a full queue drops what arrives (tail drop);
 * - an event loop per end (`loopA`, `loopB`): an end runs in turns, each
 *   costing time per packet handled, so what arrives while it is busy is
 *   handled late and in one batch; its timers run late; it sometimes stalls
 *   (garbage collection, another process on the CPU); with `timersFirst` a
 *   turn runs the protocol's timers before it takes the packets that
 *   arrived meanwhile.
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
  /** bottleneck rate, Mb/s: packets are serialised one after another */
  rateMbps?: number;
  /** packets the bottleneck holds (beyond: tail drop); unbounded if absent */
  queue?: number;
}

/**
 * How an end's event loop runs. Without one, an end handles every event at
 * once, at no cost.
 */
export interface EventLoop {
  /** cost of one turn, ms */
  turnMs?: number;
  /** cost of each packet received or sent in a turn, ms */
  perPacketMs?: number;
  /** protocol deadlines and application wake-ups run this much late, ms */
  timerLateMs?: number;
  /** a stall of up to `stallMs` (uniform), on average once per `stallEveryMs` */
  stallEveryMs?: number;
  stallMs?: number;
  /** a turn runs the timers before it takes the packets that arrived */
  timersFirst?: boolean;
}

export interface LinkStats {
  sent: number;
  lost: number;
  duplicated: number;
  corrupted: number;
  delivered: number;
  /** dropped by a full bottleneck queue */
  queueDrops: number;
  /** most packets waiting in the bottleneck at once */
  maxQueue: number;
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
  /** the event loops of a and b */
  loopA?: EventLoop;
  loopB?: EventLoop;
  startMs?: number;
}

export interface App {
  /**
   * `send()` hands what the end has to send to the wire at once (as an
   * application library that flushes after every read would).
   */
  poll(end: FlowEnd, now: number, send: () => void): number | null;
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
  return {
    sent: 0,
    lost: 0,
    duplicated: 0,
    corrupted: 0,
    delivered: 0,
    queueDrops: 0,
    maxQueue: 0,
  };
}

/** A bottleneck: when it is next free, and when each waiting packet leaves. */
interface Bottleneck {
  freeAt: number;
  leaving: number[];
  head: number;
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
  private readonly loops: [EventLoop | undefined, EventLoop | undefined];
  private readonly rnd: () => number;
  /** the event loops' own stream (stalls), apart from the wire's */
  private readonly loopRnd: () => number;
  /** packets in flight to a and to b */
  private readonly flight = [new FlightHeap(), new FlightHeap()] as const;
  private readonly links: [Bottleneck, Bottleneck] = [
    { freeAt: -Infinity, leaving: [], head: 0 },
    { freeAt: -Infinity, leaving: [], head: 0 },
  ];
  /** event loops: busy until, and when the last turn started */
  private readonly busyUntil = [-Infinity, -Infinity];
  private readonly lastTurn = [-Infinity, -Infinity];
  private order = 0;

  constructor(opts: SimOptions) {
    this.now = opts.startMs ?? 0;
    this.rnd = uniform(opts.seed);
    this.loopRnd = uniform((opts.seed ^ 0x9e3779b9) >>> 0);
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
    this.loops = [opts.loopA, opts.loopB];
  }

  /** End `side` vanishes now (its process died). */
  kill(side: "a" | "b"): void {
    this.dead[side === "a" ? 0 : 1] = true;
  }

  /** Packets still in flight. */
  get inFlight(): number {
    return this.flight[0].size + this.flight[1].size;
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
      for (let i = 0; i < 2; i++) {
        if (this.dead[i]) {
          // what still reaches a vanished end is dropped when it lands
          const f = this.flight[i]!.peek();
          if (f !== undefined && f.t < t) t = f.t;
          continue;
        }
        const d = this.dueAt(i, appList[i] !== undefined ? wake[i]! : Infinity);
        if (d < t) t = d;
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
        throw new Error(
          `simulation stuck at t=${this.now} ms (deadlines: a ${this.a.nextDeadline()}, b ${this.b.nextDeadline()})`,
        );
      }
      const now = this.now;
      // arrivals at ends without an event loop (and at vanished ends) now
      for (let i = 0; i < 2; i++) {
        if (this.loops[i] !== undefined && !this.dead[i]) continue;
        const h = this.flight[i]!;
        for (let x = h.peek(); x !== undefined && x.t <= now; x = h.peek()) {
          h.pop();
          if (this.dead[i]) continue;
          (i === 0 ? this.ba : this.ab).delivered++;
          ends[i]!.receive(x.bytes, now);
        }
      }
      for (let i = 0; i < 2; i++) {
        if (this.dead[i]) continue;
        const e = ends[i]!;
        const app = appList[i];
        if (this.loops[i] !== undefined) {
          if (this.dueAt(i, app !== undefined ? wake[i]! : Infinity) <= now) {
            this.turn(i, app, wake);
          }
          continue;
        }
        e.tick(now);
        const send = () => {
          const out = e.takeOutput();
          for (let k = 0; k < out.length; k++) {
            this.transmit(i, out[k]!, now);
          }
        };
        if (app !== undefined) wake[i] = app.poll(e, now, send) ?? Infinity;
        send();
      }
    }
  }

  /** When end `i` next runs (an arrival, a deadline or its app's wake-up). */
  private dueAt(i: number, wake: number): number {
    const e = i === 0 ? this.a : this.b;
    const f = this.flight[i]!.peek()?.t ?? Infinity;
    const d = e.nextDeadline() ?? Infinity;
    const loop = this.loops[i];
    if (loop === undefined) return Math.min(f, d, wake);
    const late = loop.timerLateMs ?? 0;
    return Math.max(this.busyUntil[i]!, Math.min(f, d + late, wake + late));
  }

  /** One turn of end `i`'s event loop at `now`. */
  private turn(i: number, app: App | undefined, wake: number[]): void {
    const loop = this.loops[i]!;
    const now = this.now;
    const e = i === 0 ? this.a : this.b;
    // a stall: the process does not run for a while, and what arrives
    // meanwhile waits for the turn after it
    if (loop.stallEveryMs !== undefined && loop.stallMs !== undefined) {
      const last = this.lastTurn[i]!;
      const since = last === -Infinity
        ? 0
        : Math.min(now - last, loop.stallEveryMs);
      this.lastTurn[i] = now;
      if (this.loopRnd() < since / loop.stallEveryMs) {
        this.busyUntil[i] = now + this.loopRnd() * loop.stallMs;
        if (this.busyUntil[i]! > now) return;
      }
    }
    let n = 0;
    if (loop.timersFirst) e.tick(now);
    const h = this.flight[i]!;
    for (let x = h.peek(); x !== undefined && x.t <= now; x = h.peek()) {
      h.pop();
      (i === 0 ? this.ba : this.ab).delivered++;
      e.receive(x.bytes, now);
      n++;
    }
    if (!loop.timersFirst) e.tick(now);
    // what leaves during the turn, and when (each packet costs its time)
    const cost = loop.perPacketMs ?? 0;
    let t = now + (loop.turnMs ?? 0) + n * cost;
    const send = () => {
      const out = e.takeOutput();
      for (let k = 0; k < out.length; k++) {
        t += cost;
        this.transmit(i, out[k]!, t);
      }
    };
    if (app !== undefined) wake[i] = app.poll(e, now, send) ?? Infinity;
    send();
    this.busyUntil[i] = t;
  }

  /** `bytes` from end `from` enter the wire at time `at`. */
  private transmit(from: number, bytes: Uint8Array, at: number): void {
    const to: 0 | 1 = from === 0 ? 1 : 0;
    const imp = this.imp[from]!;
    const st = from === 0 ? this.ab : this.ba;
    const rnd = this.rnd;
    st.sent++;
    let base = at;
    if (imp.rateMbps !== undefined) {
      const link = this.links[from]!;
      const q = link.leaving;
      while (link.head < q.length && q[link.head]! <= at) link.head++;
      if (link.head > 1024 && link.head * 2 > q.length) {
        q.splice(0, link.head);
        link.head = 0;
      }
      const waiting = q.length - link.head;
      if (imp.queue !== undefined && waiting >= imp.queue) {
        st.queueDrops++;
        return;
      }
      if (waiting + 1 > st.maxQueue) st.maxQueue = waiting + 1;
      // bits / (Mb/s * 1000) = ms
      base = Math.max(at, link.freeAt) + (bytes.length * 8) /
          (imp.rateMbps * 1000);
      link.freeAt = base;
      q.push(base);
    }
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
      this.flight[to].push({
        t: base + delay,
        order: this.order++,
        to,
        bytes: b,
      });
    }
  }
}
