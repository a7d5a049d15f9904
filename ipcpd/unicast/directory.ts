/**
 * The directory of the unicast IPCP: the DHT core (./dir.ts, `Dht`) with
 * its edges, the clock, the timers and the DT, as ports (so that its unit
 * tests run it on a simulated clock).
 *
 * A name registered at this member resolves to this member's own address
 * here, before the DHT is asked: the core never answers a lookup with our
 * own address (a C member finds a local name by direct IPC instead), and
 * a flow to a name of this member goes through the layer all the same.
 * Any other name is looked up in the DHT: a member alone in its layer has
 * no contacts, and the lookup answers "not found" at once, with nothing
 * sent.
 */
import { Dht, type DhtOutput } from "./dir.ts";
import type { DhtConfig } from "./enroll.ts";

export interface DirectoryPorts {
  /** Unix time, ms. */
  now(): number;
  /** A DHT message for eid 1 of `dst` (DT, cube 0). */
  sendDht(dst: bigint, bytes: Uint8Array): void;
  /** A timer; returns its cancel. */
  timer(ms: number, f: () => void): () => void;
  /** An unsigned 32-bit random number. */
  random32(): number;
}

export interface DirectoryOptions {
  readonly addr: bigint;
  /** the layer's name hash length: keys and node ids */
  readonly hashLen: number;
  readonly conf: DhtConfig;
  readonly ports: DirectoryPorts;
}

/** The longest a timer of the DHT is set for at once (ms). */
const MAX_TIMER_MS = 0x7fff_ffff;

export class Directory {
  readonly dht: Dht;
  readonly #p: DirectoryPorts;
  readonly #waiting = new Map<number, (addrs: bigint[]) => void>();
  #nextReq = 1;
  #cancelTimer: (() => void) | undefined;
  #timerAt = Infinity;
  #stopped = false;

  constructor(o: DirectoryOptions) {
    this.#p = o.ports;
    const id = new Uint8Array(o.hashLen);
    for (let i = 0; i < id.length; i++) id[i] = o.ports.random32() & 0xff;
    this.dht = new Dht({
      addr: o.addr,
      id,
      hashLen: o.hashLen,
      conf: o.conf,
      now: o.ports.now(),
      random: () => o.ports.random32() >>> 0,
    });
    this.#schedule();
  }

  /** Publishes a name hash with our address. */
  register(hash: Uint8Array): void {
    this.#run(this.dht.register(hash, this.#p.now()));
  }

  /** Withdraws it (copies elsewhere expire). */
  unregister(hash: Uint8Array): void {
    this.#run(this.dht.unregister(hash, this.#p.now()));
  }

  /** The addresses a name hash resolves to; empty when nobody has it. */
  resolve(hash: Uint8Array): Promise<bigint[]> {
    if (this.dht.registered(hash)) return Promise.resolve([this.dht.addr]);
    if (this.#stopped) return Promise.resolve([]);
    const req = this.#nextReq++;
    const p = new Promise<bigint[]>((r) => this.#waiting.set(req, r));
    this.#run(this.dht.lookup(req, hash, this.#p.now()));
    return p;
  }

  /** A DHT message that arrived for eid 1. Never throws. */
  receive(bytes: Uint8Array): void {
    this.#run(this.dht.receive(bytes, this.#p.now()));
  }

  /** Stops the timers; lookups in progress answer "not found". */
  stop(): void {
    this.#stopped = true;
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    for (const [req, r] of this.#waiting) {
      this.dht.cancel(req);
      r([]);
    }
    this.#waiting.clear();
  }

  #run(out: DhtOutput): void {
    for (const s of out.sends) this.#p.sendDht(s.dst, s.bytes);
    for (const a of out.answers) {
      const r = this.#waiting.get(a.req);
      this.#waiting.delete(a.req);
      r?.(a.addrs);
    }
    this.#schedule();
  }

  #schedule(): void {
    if (this.#stopped) return;
    const at = this.dht.nextDeadline();
    if (at === this.#timerAt && this.#cancelTimer !== undefined) return;
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    this.#timerAt = at;
    if (!Number.isFinite(at)) return;
    const ms = Math.min(MAX_TIMER_MS, Math.max(0, at - this.#p.now()));
    this.#cancelTimer = this.#p.timer(ms, () => {
      this.#cancelTimer = undefined;
      this.#timerAt = Infinity;
      this.#run(this.dht.tick(this.#p.now()));
    });
  }
}
