/**
 * An impairment relay for the multi-process tests: a UDP relay on loopback
 * between two UDP IPCPs that drops, duplicates, reorders, delays and
 * corrupts the datagrams it forwards, per direction, from a seed.
 *
 * How the two IPCPs talk through it. A UDP IPCP sends a FLOW_REQ to the
 * address its hosts file gives for the name, on its own port; it takes the
 * FLOW_REPLY, and later the flow's data, only from that address and port.
 * The other IPCP takes the requester's source address and port as the
 * flow's peer and answers there. So the relay has two sockets, on the
 * IPCPs' port, each on an address of its own (every 127.0.0.x lives on lo):
 *
 *     client IPCP  <->  [clientFacing]  relay  [serverFacing]  <->  server IPCP
 *     C:P               A:P                    B:P                  S:P
 *
 * The client's hosts file points the name at A. What arrives on A from C:P
 * leaves from B to S:P; what arrives on B from S:P leaves from A to C:P.
 * Each IPCP thus sees the other at the address it sends to, and the relay
 * rewrites no byte (except a corruption it was told to make).
 *
 * Management frames (eid 0: FLOW_REQ, FLOW_REPLY) pass untouched unless
 * `impairMgmt` is set: a lost FLOW_REQ costs the allocation's timeout and
 * is no part of what the FRCT tests look at. Impairments can be changed at
 * any time with `set`, e.g. once a flow is allocated.
 *
 * Decisions are drawn per direction from a xorshift32 stream (tests/rng.ts)
 * seeded from `seed`, one draw sequence per datagram: the same datagrams in
 * the same order meet the same fate.
 */
import { uniform } from "./rng.ts";

export interface UdpAddr {
  hostname: string;
  port: number;
}

/** Holding some datagrams back, so that later ones overtake them. */
export interface Reorder {
  /** probability that a datagram is held back */
  p: number;
  /** held for this long (ms) ... */
  holdMs?: number;
  /** ... or until this many later datagrams of its direction have left
   * (at most `holdMs`, default 50 ms, when fewer come) */
  behind?: number;
}

export interface Delay {
  /** fixed delay, ms */
  ms: number;
  /** plus a uniform extra in [0, jitterMs) (reorders when larger than the
   * gap between datagrams) */
  jitterMs?: number;
}

/** What the relay does to the datagrams of one direction. */
export interface Impairment {
  /** probability of a drop */
  drop?: number;
  /** probability that a second copy leaves too (with its own delay) */
  duplicate?: number;
  reorder?: Reorder;
  delay?: Delay;
  /** probability that one bit after the 4-byte eid is flipped (a datagram
   * of just the eid, a keepalive, is never corrupted) */
  corrupt?: number;
  /** impair management frames (eid 0) too */
  impairMgmt?: boolean;
}

export type Direction = "toServer" | "toClient";

export interface DirectionCounters {
  /** datagrams that arrived from the expected sender */
  received: number;
  /** datagrams sent on (copies included) */
  forwarded: number;
  dropped: number;
  duplicated: number;
  reordered: number;
  delayed: number;
  corrupted: number;
  /** management frames seen (eid 0) */
  mgmt: number;
  /** datagrams from another address than the expected sender, not forwarded */
  strays: number;
  sendErrors: number;
}

export interface RelayOptions {
  /** the relay's socket the client IPCP sends to (its hosts file's address) */
  clientFacing: UdpAddr;
  /** the relay's socket the server IPCP sees as the client */
  serverFacing: UdpAddr;
  /** the client IPCP's own address and port */
  client: UdpAddr;
  /** the server IPCP's own address and port */
  server: UdpAddr;
  seed: number;
}

interface Scheduled {
  at: number;
  order: number;
  bytes: Uint8Array;
  /** once due, held back behind this many later datagrams */
  behind?: number;
  holdMs?: number;
}

interface Held {
  left: number;
  until: number;
  bytes: Uint8Array;
}

const DEFAULT_BEHIND_HOLD_MS = 50;

function newCounters(): DirectionCounters {
  return {
    received: 0,
    forwarded: 0,
    dropped: 0,
    duplicated: 0,
    reordered: 0,
    delayed: 0,
    corrupted: 0,
    mgmt: 0,
    strays: 0,
    sendErrors: 0,
  };
}

/** A binary min-heap of scheduled datagrams, by time then arrival. */
class Schedule {
  #h: Scheduled[] = [];

  get size(): number {
    return this.#h.length;
  }

  peek(): Scheduled | undefined {
    return this.#h[0];
  }

  static #less(a: Scheduled, b: Scheduled): boolean {
    return a.at < b.at || (a.at === b.at && a.order < b.order);
  }

  push(s: Scheduled): void {
    const h = this.#h;
    h.push(s);
    let i = h.length - 1;
    while (i > 0) {
      const up = (i - 1) >> 1;
      if (!Schedule.#less(h[i]!, h[up]!)) break;
      [h[i], h[up]] = [h[up]!, h[i]!];
      i = up;
    }
  }

  pop(): Scheduled | undefined {
    const h = this.#h;
    const top = h[0];
    const last = h.pop();
    if (top === undefined || last === undefined || h.length === 0) return top;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && Schedule.#less(h[l]!, h[m]!)) m = l;
      if (r < h.length && Schedule.#less(h[r]!, h[m]!)) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
    return top;
  }

  clear(): void {
    this.#h = [];
  }
}

/** One direction: where datagrams come from, where they go, what befalls them. */
class Lane {
  readonly counters = newCounters();
  imp: Impairment = {};
  readonly #rnd: () => number;
  readonly #schedule = new Schedule();
  #held: Held[] = [];
  #order = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;
  #sendQueue: Uint8Array[] = [];
  #sending: Promise<void> | undefined;
  #closed = false;
  #idleWaiters: (() => void)[] = [];
  #receivedWaiters: { n: number; resolve: () => void }[] = [];

  constructor(
    readonly from: UdpAddr,
    readonly out: Deno.DatagramConn,
    readonly to: UdpAddr,
    seed: number,
  ) {
    this.#rnd = uniform(seed);
  }

  /** Nothing scheduled, held or being sent. */
  get idle(): boolean {
    return this.#schedule.size === 0 && this.#held.length === 0 &&
      this.#sendQueue.length === 0 && this.#sending === undefined;
  }

  whenIdle(): Promise<void> {
    if (this.idle) return Promise.resolve();
    return new Promise((r) => this.#idleWaiters.push(r));
  }

  #checkIdle(): void {
    if (!this.idle || this.#idleWaiters.length === 0) return;
    for (const w of this.#idleWaiters.splice(0)) w();
  }

  /** Resolves once `n` datagrams have arrived in this direction. */
  whenReceived(n: number): Promise<void> {
    if (this.counters.received >= n) return Promise.resolve();
    return new Promise((resolve) => this.#receivedWaiters.push({ n, resolve }));
  }

  take(d: Uint8Array, now: number): void {
    const c = this.counters;
    c.received++;
    this.#decide(d, now);
    if (this.#receivedWaiters.length > 0) {
      this.#receivedWaiters = this.#receivedWaiters.filter((w) => {
        if (c.received < w.n) return true;
        w.resolve();
        return false;
      });
    }
  }

  #decide(d: Uint8Array, now: number): void {
    const c = this.counters;
    const mgmt = d.length >= 4 && d[0] === 0 && d[1] === 0 && d[2] === 0 &&
      d[3] === 0;
    if (mgmt) c.mgmt++;
    const imp = this.imp;
    if (mgmt && imp.impairMgmt !== true) {
      this.#release(d.slice(), now);
      return;
    }
    // The same draws for every datagram, whatever is enabled, so that a
    // seed gives the same fates whatever the mix.
    const rnd = this.#rnd;
    const rDrop = rnd();
    const rCorrupt = rnd();
    const rBit = rnd();
    const rDup = rnd();
    const rReorder = [rnd(), rnd()] as const;
    const rJitter = [rnd(), rnd()] as const;
    if (rDrop < (imp.drop ?? 0)) {
      c.dropped++;
      return;
    }
    const bytes = d.slice();
    if (rCorrupt < (imp.corrupt ?? 0) && bytes.length > 4) {
      const bits = (bytes.length - 4) * 8;
      const bit = Math.min(bits - 1, Math.floor(rBit * bits));
      bytes[4 + (bit >> 3)]! ^= 1 << (bit & 7);
      c.corrupted++;
    }
    const copies = rDup < (imp.duplicate ?? 0) ? 2 : 1;
    if (copies === 2) c.duplicated++;
    for (let k = 0; k < copies; k++) {
      const b = k === 0 ? bytes : bytes.slice();
      let at = now;
      if (imp.delay !== undefined) {
        at += imp.delay.ms + rJitter[k]! * (imp.delay.jitterMs ?? 0);
        c.delayed++;
      }
      const ro = imp.reorder;
      const s: Scheduled = { at, order: this.#order++, bytes: b };
      if (ro !== undefined && rReorder[k]! < ro.p) {
        c.reordered++;
        if (ro.behind !== undefined) {
          // Held once its delay has passed, so that it is overtaken by
          // datagrams that came after it, not by those that came before.
          s.behind = ro.behind;
          s.holdMs = ro.holdMs ?? DEFAULT_BEHIND_HOLD_MS;
        } else s.at += ro.holdMs ?? 0;
      }
      if (s.at <= now && s.behind === undefined) this.#release(b, now);
      else if (s.at <= now) {
        this.#releaseDue(now);
        this.#hold(s, now);
      } else {
        this.#schedule.push(s);
        this.#arm();
      }
    }
  }

  #hold(s: Scheduled, now: number): void {
    this.#held.push({
      left: s.behind!,
      until: now + s.holdMs!,
      bytes: s.bytes,
    });
    this.#arm();
  }

  /** Sends a datagram now, after those due before it. */
  #release(b: Uint8Array, now: number): void {
    this.#releaseDue(now);
    this.#emit(b);
  }

  /** Sends a datagram; held ones it was the last to overtake follow it. */
  #emit(b: Uint8Array): void {
    this.#send(b);
    if (this.#held.length === 0) return;
    const still: Held[] = [];
    for (const h of this.#held) {
      if (--h.left <= 0) this.#send(h.bytes);
      else still.push(h);
    }
    this.#held = still;
  }

  #releaseDue(now: number): void {
    for (;;) {
      const top = this.#schedule.peek();
      if (top === undefined || top.at > now) break;
      this.#schedule.pop();
      if (top.behind !== undefined) this.#hold(top, now);
      else this.#emit(top.bytes);
    }
    if (this.#held.length > 0) {
      const still: Held[] = [];
      for (const h of this.#held) {
        if (h.until <= now) this.#send(h.bytes);
        else still.push(h);
      }
      this.#held = still;
    }
  }

  #arm(): void {
    let at = this.#schedule.peek()?.at ?? Infinity;
    for (const h of this.#held) if (h.until < at) at = h.until;
    if (at === this.#timerAt || this.#closed) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = at;
    if (at === Infinity) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#timerAt = Infinity;
      this.#releaseDue(performance.now());
      this.#arm();
      this.#checkIdle();
    }, Math.max(0, at - performance.now()));
  }

  /** In order, one send at a time (as an IPCP sends). */
  #send(b: Uint8Array): void {
    if (this.#closed) return;
    this.#sendQueue.push(b);
    this.#sending ??= this.#drain();
  }

  async #drain(): Promise<void> {
    for (let i = 0;; i++) {
      if (i >= 1024) {
        // let go of what has left, so that a queue that never empties
        // does not keep every datagram it sent
        this.#sendQueue = this.#sendQueue.slice(i);
        i = 0;
      }
      const b = this.#sendQueue[i];
      if (b === undefined || this.#closed) break;
      try {
        await this.out.send(b, { transport: "udp", ...this.to });
        this.counters.forwarded++;
      } catch {
        if (this.#closed) break;
        this.counters.sendErrors++;
      }
    }
    this.#sendQueue = [];
    this.#sending = undefined;
    this.#checkIdle();
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#schedule.clear();
    this.#held = [];
    await this.#sending;
    for (const w of this.#idleWaiters.splice(0)) w();
    for (const w of this.#receivedWaiters.splice(0)) w.resolve();
  }
}

/** The relay; `close()` ends its sockets, timers and loops. */
export class ImpairRelay {
  readonly #clientSock: Deno.DatagramConn;
  readonly #serverSock: Deno.DatagramConn;
  readonly #lanes: Record<Direction, Lane>;
  readonly #loops: Promise<void>[];
  #closed = false;

  private constructor(opts: RelayOptions) {
    this.#clientSock = Deno.listenDatagram({
      transport: "udp",
      ...opts.clientFacing,
    });
    try {
      this.#serverSock = Deno.listenDatagram({
        transport: "udp",
        ...opts.serverFacing,
      });
    } catch (e) {
      this.#clientSock.close();
      throw e;
    }
    const seed = opts.seed >>> 0;
    this.#lanes = {
      toServer: new Lane(opts.client, this.#serverSock, opts.server, seed),
      toClient: new Lane(
        opts.server,
        this.#clientSock,
        opts.client,
        (seed ^ 0x9e37_79b9) >>> 0,
      ),
    };
    this.#loops = [
      this.#receive(this.#clientSock, this.#lanes.toServer),
      this.#receive(this.#serverSock, this.#lanes.toClient),
    ];
  }

  static start(opts: RelayOptions): ImpairRelay {
    return new ImpairRelay(opts);
  }

  /** Sets what befalls the datagrams of one direction, or of both. */
  set(dir: Direction | "both", imp: Impairment): void {
    for (
      const d of dir === "both" ? ["toServer", "toClient"] as const : [dir]
    ) {
      this.#lanes[d].imp = { ...imp };
    }
  }

  counters(dir: Direction): Readonly<DirectionCounters> {
    return this.#lanes[dir].counters;
  }

  /**
   * Resolves once `n` datagrams in all have arrived in `dir` and met their
   * fate (sent on, scheduled, held or dropped).
   */
  received(dir: Direction, n: number): Promise<void> {
    return this.#lanes[dir].whenReceived(n);
  }

  /** Resolves once nothing is scheduled, held or being sent in either direction. */
  async drained(): Promise<void> {
    await Promise.all([
      this.#lanes.toServer.whenIdle(),
      this.#lanes.toClient.whenIdle(),
    ]);
  }

  async #receive(sock: Deno.DatagramConn, lane: Lane): Promise<void> {
    const buf = new Uint8Array(65536);
    for (;;) {
      let d: Uint8Array;
      let a: Deno.Addr;
      try {
        [d, a] = await sock.receive(buf);
      } catch (e) {
        if (this.#closed || e instanceof Deno.errors.BadResource) return;
        continue; // an ICMP error on loopback: not fatal
      }
      const from = a as Deno.NetAddr;
      if (
        from.hostname !== lane.from.hostname || from.port !== lane.from.port
      ) {
        lane.counters.strays++;
        continue;
      }
      lane.take(d, performance.now());
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([
      this.#lanes.toServer.close(),
      this.#lanes.toClient.close(),
    ]);
    for (const s of [this.#clientSock, this.#serverSock]) {
      try {
        s.close();
      } catch { /* closed */ }
    }
    await Promise.all(this.#loops);
  }
}
