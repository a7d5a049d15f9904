/**
 * Bulk transfers on the simulated wire (sim.ts) over a path like the real
 * one between two nodes on one busy machine: a bottleneck whose queue holds
 * the whole window (so the RTT grows with what is in flight), ends that run
 * in event-loop turns, handle packets in batches and late, and stall now and
 * then. Used by the efficiency tests and by `sim_report.ts`.
 *
 *     const r = bulk({ seed: 1, loss: 0.01 });
 *     r.retransmitted / r.sent, r.goodputMbps, r.srtt, ...
 */
import type { FlowEnd, FlowStats, FrctQos } from "./frct.ts";
import type { App, EventLoop, Impairment } from "./sim.ts";
import { Sim } from "./sim.ts";

export const RELIABLE: FrctQos = {
  loss: 0,
  ber: 1,
  inOrder: 1,
  timeout: 120_000,
};

/** The busy end of a flow on a loaded machine (ms). */
export const BUSY_LOOP: EventLoop = {
  turnMs: 0.05,
  perPacketMs: 0.004,
  timerLateMs: 1,
  stallEveryMs: 200,
  stallMs: 20,
  timersFirst: true,
};

export interface BulkOptions {
  seed: number;
  /** random loss on the data direction (a -> b), and on the ACKs unless `ackLoss` */
  loss?: number;
  ackLoss?: number;
  /** packets to move */
  count?: number;
  /** payload bytes */
  size?: number;
  /** bottleneck rate, Mb/s, both directions */
  rateMbps?: number;
  /** bottleneck queue, packets (unbounded if absent) */
  queue?: number;
  /** one-way delay, ms */
  delayMs?: number;
  /** per-packet reordering probability and extra delay */
  reorder?: number;
  reorderMs?: number;
  /** the ends' event loops (BUSY_LOOP if absent; null: instant ends) */
  loop?: EventLoop | null;
  /** most writes per application turn */
  burst?: number;
  /** the reader's library sends what is due after every read (an ACK per
   * packet read), instead of once per turn */
  sendPerRead?: boolean;
  /** give up at this simulated time, ms */
  untilMs?: number;
}

export interface BulkResult {
  /** every packet delivered, once, in order */
  complete: boolean;
  delivered: number;
  /** first copies and retransmitted copies sent by the writer */
  sent: number;
  retransmitted: number;
  /** data packets dropped on the wire (random loss and full queue) */
  lost: number;
  /** copies the reader already had */
  duplicates: number;
  /** control packets the reader sent */
  acks: number;
  /** time from the first write to the last packet read, ms */
  ms: number;
  /** payload bits delivered per second, Mb/s */
  goodputMbps: number;
  /** the writer's RTT estimate and rto at the end, ms */
  srtt: number;
  rto: number;
  /** most packets waiting in the data direction's bottleneck */
  maxQueue: number;
  writer: FlowStats;
  reader: FlowStats;
}

/** Writes `count` numbered packets, at most `burst` per turn. */
class BulkWriter implements App {
  next = 0;
  firstAt = -1;
  private readonly payload: Uint8Array;
  constructor(
    readonly count: number,
    size: number,
    readonly burst: number,
  ) {
    this.payload = new Uint8Array(size);
  }
  poll(f: FlowEnd, now: number): number | null {
    if (this.firstAt < 0) this.firstAt = now;
    for (let k = 0; k < this.burst && this.next < this.count; k++) {
      const p = this.payload;
      new DataView(p.buffer).setUint32(0, this.next);
      if (f.write(p, now) !== "ok") return null;
      this.next++;
    }
    // more to write and the window open: come back at the next turn
    return this.next < this.count && f.canWrite ? now : null;
  }
}

/** Reads everything, checking the order. */
class BulkReader implements App {
  got = 0;
  bad = 0;
  lastAt = 0;
  constructor(readonly sendPerRead: boolean) {}
  poll(f: FlowEnd, now: number, send: () => void): number | null {
    for (let m = f.read(now); m !== null; m = f.read(now)) {
      const i = new DataView(m.buffer, m.byteOffset, 4).getUint32(0);
      if (i !== this.got) this.bad++;
      this.got++;
      this.lastAt = now;
      if (this.sendPerRead) send();
    }
    return null;
  }
}

/** One bulk transfer a -> b; see BulkOptions for the path. */
export function bulk(o: BulkOptions): BulkResult {
  const count = o.count ?? 5000;
  const size = o.size ?? 1000;
  const loss = o.loss ?? 0;
  const link = (l: number): Impairment => ({
    ...(l > 0 ? { loss: l } : {}),
    delayMs: o.delayMs ?? 0.05,
    rateMbps: o.rateMbps ?? 500,
    ...(o.queue !== undefined ? { queue: o.queue } : {}),
    ...(o.reorder !== undefined
      ? { reorder: o.reorder, reorderMs: o.reorderMs ?? 1 }
      : {}),
  });
  const loop = o.loop === undefined ? BUSY_LOOP : o.loop;
  const sim = new Sim({
    // spread small seeds (a small xorshift seed starts with small numbers:
    // every run would lose its first packet)
    seed: Math.imul(o.seed, 0x9e3779b1) >>> 0 || 1,
    qos: RELIABLE,
    ab: link(loss),
    ba: link(o.ackLoss ?? loss),
    ...(loop !== null ? { loopA: loop, loopB: loop } : {}),
  });
  const w = new BulkWriter(count, size, o.burst ?? 64);
  const r = new BulkReader(o.sendPerRead ?? false);
  sim.run({ a: w, b: r }, {
    untilMs: o.untilMs ?? 600_000,
    done: () => r.got === count,
  });
  const ms = r.lastAt - Math.max(0, w.firstAt);
  const ws = sim.a.stats;
  return {
    complete: r.got === count && r.bad === 0,
    delivered: r.got,
    sent: ws.sent,
    retransmitted: ws.retransmitted,
    lost: sim.ab.lost + sim.ab.queueDrops,
    duplicates: sim.b.stats.duplicates,
    acks: sim.b.stats.controlSent,
    ms,
    goodputMbps: ms > 0 ? (r.got * size * 8) / (ms * 1000) : 0,
    srtt: ws.srtt,
    rto: ws.rto,
    maxQueue: sim.ab.maxQueue,
    writer: { ...ws },
    reader: { ...sim.b.stats },
  };
}
