/**
 * The control thread's handle on an IPCP's data path: starts the data-path
 * Worker (this program's own main module, under DATAPATH_WORKER_NAME, so
 * that it exists from source, in the bundle and in a compiled program),
 * gives it commands through the shared ring and wakes it with the eventfd,
 * hands its events to the IPCP, and stops it.
 *
 * A Worker blocked in epoll_wait cannot run onmessage, nor be terminated:
 * every command is a ring record followed by an eventfd write, and stop()
 * waits for the Worker's "stopped" before it terminates it. A command with
 * bytes (sendBytes) is its record and the raw records of the bytes, written
 * all at once; commands that find the ring full wait in a backlog, in the
 * order they were given.
 */
import {
  closeFd,
  describe,
  eventfd,
  eventfdSignal,
} from "../../lib/sys/mod.ts";
import { DATAPATH_WORKER_NAME, mainModuleUrl } from "../../lib/util/self.ts";
import type { Logger } from "../../lib/util/log.ts";
import {
  counterBuffer,
  counterView,
  type DpCommand,
  DpCounter,
  type DpInit,
  type DpKind,
  DpWord,
  encodeCommand,
  hasBytes,
  isDpEvent,
  type MgmtFrame,
  Op,
  wordView,
} from "./dp_msg.ts";
import { RECORD_BYTES, recordsFor, ringBuffer, RingWriter } from "./ring.ts";

/** Records in the command ring. */
const RING_RECORDS = 4096;
/**
 * The most bytes a command carries (sendBytes): what fits the ring with its
 * record, about 256 KiB (an N-1 packet is at most MAX_N1_PACKET).
 */
export const MAX_COMMAND_BYTES = (RING_RECORDS - 1) * RECORD_BYTES;
/** Management frames in flight to this thread, at most. */
export const MGMT_BACKLOG = 1024;
/** How long the Worker may take to start (its module loads first: long
 * under emulation). */
const START_MS = 120_000;
/** The retry of commands that found the ring full (ms). */
const RING_RETRY_MS = 1;

export interface DatapathEvents {
  mgmt(frames: MgmtFrame[]): void;
  /**
   * Packets of an N-1 flow for the control thread (unicast), in order:
   * what a control-mode flow read, or the DT packets for this member's
   * components. Optional: the UDP and local IPCPs have no N-1 flows.
   */
  n1?(id: number, sdus: Uint8Array[]): void;
  /** An N-1 flow ended; its descriptor is closed (not after N1Remove). */
  n1Down?(id: number, reason: string): void;
  attached(eid: number): void;
  detached(eid: number, reason: string): void;
  /** [eid, last receive, last send] triples. */
  activity(flows: Float64Array): void;
  acceptFailed(error: string): void;
  acceptResumed(failures: number): void;
  /** The data path cannot go on. */
  fatal(error: string): void;
}

export interface DatapathOptions {
  /** Which data path: the UDP IPCP's (the default), the local or the unicast IPCP's. */
  readonly kind?: DpKind;
  /** The IP family of a UDP layer; undefined for a local one. */
  readonly family: 4 | 6 | undefined;
  readonly mtu: number;
  readonly listenFd: number;
  readonly appQueueBytes: number;
  readonly preAttachQueue: number;
  readonly helloMs: number;
  readonly acceptRetryMs: number;
  readonly events: DatapathEvents;
  readonly log: Logger;
}

/** What the data path counted, read from shared memory. */
export interface DatapathCounters {
  short: number;
  badMgmt: number;
  unknownEid: number;
  wrongSource: number;
  slowReader: number;
  oversized: number;
  mgmtOverflow: number;
  rxPackets: number;
  txPackets: number;
  txErrors: number;
  wakeups: number;
  noRoute: number;
  ttlExpired: number;
  n1Dropped: number;
}

interface Queued {
  readonly c: DpCommand;
  readonly bytes: Uint8Array | undefined;
}

export class Datapath {
  readonly #worker: Worker;
  readonly #wakeFd: number;
  readonly #ring: RingWriter;
  readonly #counters: Float64Array;
  readonly #words: Int32Array;
  readonly #o: DatapathOptions;
  #backlog: Queued[] = [];
  #retry: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;
  #onStopped: (() => void) | undefined;
  #hasStopped = false;
  /** The data path's thread id, once it runs. */
  readonly ready: Promise<number>;
  #ready: ((tid: number) => void) | undefined;
  #startTimer: ReturnType<typeof setTimeout> | undefined;

  private constructor(o: DatapathOptions, wakeFd: number) {
    this.#o = o;
    this.#wakeFd = wakeFd;
    const ring = ringBuffer(RING_RECORDS);
    const counters = counterBuffer();
    this.#ring = new RingWriter(ring);
    this.#counters = counterView(counters);
    this.#words = wordView(counters);
    this.ready = new Promise((r) => this.#ready = r);
    this.#startTimer = setTimeout(
      () => this.#fatal(`the data path did not start within ${START_MS} ms`),
      START_MS,
    );
    Deno.unrefTimer(this.#startTimer);
    this.#worker = new Worker(mainModuleUrl().href, {
      type: "module",
      name: DATAPATH_WORKER_NAME,
    });
    this.#worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      this.#fatal(e.message);
    };
    const init: DpInit = {
      kind: o.kind ?? "udp",
      family: o.family,
      mtu: o.mtu,
      listenFd: o.listenFd,
      wakeFd,
      ring,
      counters,
      mgmtBacklog: MGMT_BACKLOG,
      appQueueBytes: o.appQueueBytes,
      preAttachQueue: o.preAttachQueue,
      helloMs: o.helloMs,
      acceptRetryMs: o.acceptRetryMs,
    };
    this.#worker.onmessage = (e: MessageEvent<unknown>) => {
      if (isDpEvent(e.data) && e.data.t === "listening") {
        this.#worker.postMessage(init);
      } else this.#event(e.data);
    };
  }

  /** Starts the data-path Worker; throws when the eventfd cannot be made. */
  static start(o: DatapathOptions): Datapath {
    const efd = eventfd();
    if (!efd.ok) throw new Error(`eventfd: ${describe(efd)}`);
    try {
      return new Datapath(o, efd.value);
    } catch (e) {
      closeFd(efd.value);
      throw e;
    }
  }

  /**
   * Gives the data path a command and wakes it. `wake: false` leaves the
   * command for the data path's next wakeup, for a command that matters
   * only to what would wake it anyway (a new flow: its application's
   * connection or its first datagram; the data path reads the ring before
   * it handles them); a ring half full wakes it all the same.
   */
  send(c: DpCommand, wake = true): void {
    if (this.#stopped) return;
    const q = { c, bytes: undefined };
    if (this.#backlog.length > 0 || !this.#write(q)) {
      this.#queue(q);
      return;
    }
    if (wake || this.#ring.pending > RING_RECORDS / 2) this.#wake();
  }

  /**
   * Gives the data path a command that carries bytes (Op.N1Write: the
   * packet; Op.Tables: the encoded tables) and wakes it; in order with
   * send(). The bytes are copied (into the ring, or kept while it is full).
   * Throws a RangeError for an op without bytes or more than
   * MAX_COMMAND_BYTES.
   */
  sendBytes(c: DpCommand, bytes: Uint8Array): void {
    if (!hasBytes(c.op)) throw new RangeError(`op ${c.op} carries no bytes`);
    if (recordsFor(bytes.length) > RING_RECORDS) {
      throw new RangeError(
        `a command of ${bytes.length} bytes, at most ${MAX_COMMAND_BYTES}`,
      );
    }
    if (this.#stopped) return;
    if (this.#backlog.length > 0 || !this.#write({ c, bytes })) {
      this.#queue({ c, bytes: bytes.slice() });
      return;
    }
    this.#wake();
  }

  #queue(q: Queued): void {
    this.#backlog.push(q);
    this.#retry ??= setTimeout(() => this.#flushBacklog(), RING_RETRY_MS);
  }

  #write(q: Queued): boolean {
    const { c, bytes } = q;
    if (bytes === undefined) {
      return this.#ring.write((v, at) => encodeCommand(v, at, c));
    }
    return this.#ring.writeWithBytes(
      (v, at) => encodeCommand(v, at, c, bytes.length),
      bytes,
    );
  }

  #wake(): void {
    const r = eventfdSignal(this.#wakeFd);
    if (!r.ok) this.#o.log.error(`Cannot wake the data path: ${describe(r)}.`);
  }

  #flushBacklog(): void {
    this.#retry = undefined;
    let n = 0;
    while (this.#backlog.length > n && this.#write(this.#backlog[n]!)) n++;
    this.#backlog = this.#backlog.slice(n);
    if (n > 0) this.#wake();
    if (this.#backlog.length > 0) {
      this.#retry = setTimeout(() => this.#flushBacklog(), RING_RETRY_MS);
    }
  }

  /** The counters as they are now. */
  counters(): DatapathCounters {
    const c = this.#counters;
    return {
      short: c[DpCounter.Short]!,
      badMgmt: c[DpCounter.BadMgmt]!,
      unknownEid: c[DpCounter.UnknownEid]!,
      wrongSource: c[DpCounter.WrongSource]!,
      slowReader: c[DpCounter.SlowReader]!,
      oversized: c[DpCounter.Oversized]!,
      mgmtOverflow: c[DpCounter.MgmtOverflow]!,
      rxPackets: c[DpCounter.RxPackets]!,
      txPackets: c[DpCounter.TxPackets]!,
      txErrors: c[DpCounter.TxErrors]!,
      wakeups: c[DpCounter.Wakeups]!,
      noRoute: c[DpCounter.NoRoute]!,
      ttlExpired: c[DpCounter.TtlExpired]!,
      n1Dropped: c[DpCounter.N1Dropped]!,
    };
  }

  #event(x: unknown): void {
    if (!isDpEvent(x)) return;
    const ev = this.#o.events;
    switch (x.t) {
      case "listening":
        return;
      case "ready":
        clearTimeout(this.#startTimer);
        this.#ready?.(x.tid);
        this.#ready = undefined;
        return;
      case "mgmt":
        try {
          ev.mgmt(x.frames);
        } finally {
          Atomics.add(this.#words, DpWord.MgmtTaken, x.frames.length);
        }
        return;
      case "n1":
        try {
          ev.n1?.(x.id, x.sdus);
        } finally {
          Atomics.add(this.#words, DpWord.MgmtTaken, x.sdus.length);
        }
        return;
      case "n1Down":
        ev.n1Down?.(x.id, x.reason);
        return;
      case "attached":
        ev.attached(x.eid);
        return;
      case "detached":
        ev.detached(x.eid, x.reason);
        return;
      case "activity":
        ev.activity(x.flows);
        return;
      case "log":
        this.#o.log[x.level](x.text);
        return;
      case "acceptFailed":
        ev.acceptFailed(x.error);
        return;
      case "acceptResumed":
        ev.acceptResumed(x.failures);
        return;
      case "fatal":
        this.#fatal(x.error);
        return;
      case "stopped":
        this.#hasStopped = true;
        this.#onStopped?.();
        return;
    }
  }

  #fatal(error: string): void {
    if (this.#stopped) {
      this.#o.log.debug(`Data path: ${error}`);
      return;
    }
    this.#o.events.fatal(error);
  }

  /**
   * Stops the data path: it closes its connections and epoll instance and
   * says so, or `timeoutMs` passes; then the Worker is ended and the
   * eventfd closed. The descriptors given to it stay the caller's.
   */
  async stop(timeoutMs = 2000): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearTimeout(this.#startTimer);
    clearTimeout(this.#retry);
    this.#retry = undefined;
    this.#backlog = [];
    const stopped = new Promise<boolean>((resolve) => {
      if (this.#hasStopped) return resolve(true);
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.#onStopped = () => {
        clearTimeout(timer);
        resolve(true);
      };
    });
    // A full ring is drained by a live data path within a pass; if the
    // record still does not fit, the data path is not running anyway.
    for (
      let i = 0;
      i < 100 && !this.#write({ c: { op: Op.Stop }, bytes: undefined });
      i++
    ) {
      await new Promise((r) => setTimeout(r, 5));
    }
    this.#wake();
    if (!await stopped) {
      this.#o.log.warn(`The data path did not stop within ${timeoutMs} ms.`);
    }
    this.#onStopped = undefined;
    this.#worker.terminate();
    closeFd(this.#wakeFd);
  }
}
