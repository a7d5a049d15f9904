/**
 * The application side of an IPCP's data path, in its data-path thread:
 * the listening Unix socket applications attach their flows on, and one
 * non-blocking stream connection per attached flow (lib/ipc/dataplane.ts
 * is the protocol: an attach frame, a status frame, then one
 * `[u32 length][packet]` frame per packet both ways).
 *
 * Everything here runs in one thread, driven by the data path's epoll
 * loop: connections are registered edge-triggered and kept on a ready list
 * until a read comes back short, so a connection is read once per pass
 * (fairness) and never while the lower layer cannot take more (`blocked`).
 * Packets towards an application are written in place: the caller turns
 * each received datagram's header into the frame's length, and one
 * writev per flow per burst takes the whole burst; only what the socket
 * does not take is copied, into a queue bounded by `appQueueBytes`, beyond
 * which packets are dropped and counted (a stalled reader costs bounded
 * memory).
 */
import {
  acceptFd,
  closeFd,
  describe,
  EMFILE,
  ENFILE,
  ENOBUFS,
  ENOMEM,
  EPERM,
  type Epoll,
  EPOLLERR,
  EPOLLET,
  EPOLLHUP,
  EPOLLIN,
  EPOLLOUT,
  EPOLLRDHUP,
  readFd,
  type SysFailure,
  writeFd,
  writevFd,
} from "../../lib/sys/mod.ts";
import { KEEP_OUT_BYTES, OutQueue } from "./out_queue.ts";
import {
  decodeAttach,
  encodeStatus,
  sameToken,
} from "../../lib/ipc/dataplane.ts";
import { getU32, putU32 } from "../../lib/ipc/framing.ts";
import {
  type DpCommand,
  DpCounter,
  type DpEvent,
  type DpInit,
  type LogLevel,
  type Op,
} from "./dp_msg.ts";

/** The epoll tag of the listening socket. */
export const TAG_LISTEN = 2;
/** Tags from here on are application connections. */
const FIRST_CONN_TAG = 16;

/** Bytes read from an application in one call (and the largest burst). */
const READ_BYTES = 256 * 1024;
/** Connections accepted per wakeup, at most. */
const ACCEPT_BURST = 64;

const CONN_EVENTS = EPOLLIN | EPOLLRDHUP | EPOLLET;

/** A flow as the data path holds it. */
export interface DpFlow {
  readonly eid: number;
  peerEid: number;
  allocated: boolean;
  readonly token: Uint8Array;
  /** The peer's address in the lower layer (a packed sockaddr for UDP). */
  readonly addr: Uint8Array;
  /** The application connection attached (or waiting to be) to it. */
  conn: AppConn | undefined;
  /** Packets that arrived before the application attached. */
  early: Uint8Array[];
  lastRecv: number;
  lastSend: number;
  /** Whether the flow saw traffic since the last activity report. */
  active: boolean;
}

type Phase = "hello" | "parked" | "live" | "closed";

/** One application connection. */
export class AppConn {
  phase: Phase = "hello";
  flow: DpFlow | undefined = undefined;
  /** Read but not taken yet: part of a frame, or frames held while parked. */
  rem: Uint8Array | null = null;
  remLen = 0;
  /** What the socket did not take yet, towards the application. */
  readonly out = new OutQueue();
  /** EPOLLOUT is registered. */
  wantOut = false;
  /** On the ready list. */
  ready = false;
  /**
   * An event said the peer hung up: a short read does not mean drained
   * then (edge-triggered, the end that came with the last bytes raises no
   * other event), so the connection is read until the end is seen.
   */
  hup = false;
  /** Frames of this burst, written in place in the receive batch. */
  readonly iov: Uint8Array[] = [];
  iovBytes = 0;
  dirty = false;

  constructor(
    readonly id: number,
    readonly fd: number,
    readonly deadline: number,
  ) {}

  get queued(): number {
    return this.out.pending + this.iovBytes;
  }
}

export interface AppSideOptions {
  readonly epoll: Epoll;
  readonly listenFd: number;
  readonly mtu: number;
  readonly flows: Map<number, DpFlow>;
  readonly counters: Float64Array;
  readonly appQueueBytes: number;
  readonly preAttachQueue: number;
  readonly helloMs: number;
  readonly acceptRetryMs: number;
  /**
   * A packet from a live flow's application: `frame` is `[u32 length]
   * [packet]`, a view valid only during the call, that the callee may
   * change in place.
   */
  readonly packet: (flow: DpFlow, frame: Uint8Array) => void;
  /** Whether the lower layer cannot take more packets now. */
  readonly blocked: () => boolean;
  readonly event: (e: DpEvent) => void;
  readonly log: (key: string, level: LogLevel, text: string) => void;
}

/** A flow as the control thread's Add command describes it, at `now`. */
export function dpFlowOf(
  c: Extract<DpCommand, { op: typeof Op.Add }>,
  now: number,
): DpFlow {
  return {
    eid: c.eid,
    peerEid: c.peerEid,
    allocated: c.allocated,
    token: c.token,
    addr: c.addr,
    conn: undefined,
    early: [],
    lastRecv: now,
    lastSend: now,
    active: false,
  };
}

/** The limits and descriptors of AppSideOptions that a DpInit gives. */
export function appSideLimits(
  init: DpInit,
): Pick<
  AppSideOptions,
  | "listenFd"
  | "mtu"
  | "appQueueBytes"
  | "preAttachQueue"
  | "helloMs"
  | "acceptRetryMs"
> {
  return {
    listenFd: init.listenFd,
    mtu: init.mtu,
    appQueueBytes: init.appQueueBytes,
    preAttachQueue: init.preAttachQueue,
    helloMs: init.helloMs,
    acceptRetryMs: init.acceptRetryMs,
  };
}

/** A connection's phase, read afresh (calls may have changed it). */
function phaseOf(c: AppConn): Phase {
  return c.phase;
}

function acceptProblem(f: SysFailure): string {
  const what = f.errno === EMFILE
    ? "too many open files"
    : f.errno === ENFILE
    ? "too many open files in the system"
    : f.errno === ENOBUFS || f.errno === ENOMEM
    ? "out of memory"
    : undefined;
  return what === undefined ? describe(f) : `${what} (${describe(f)})`;
}

/** The application connections of one data path. */
export class AppSide {
  readonly #o: AppSideOptions;
  readonly #conns = new Map<number, AppConn>();
  /** Connections that have not sent their attach frame, oldest first. */
  readonly #hello = new Set<AppConn>();
  #ready: AppConn[] = [];
  #dirty: AppConn[] = [];
  #nextId = FIRST_CONN_TAG;
  readonly #rb = new Uint8Array(READ_BYTES);
  #acceptFailures = 0;
  /** When to try accepting again (0: the listener is in the epoll set). */
  #retryAt = 0;
  /** The time of this pass (Date.now()), set by the loop. */
  now = 0;

  constructor(opts: AppSideOptions) {
    this.#o = opts;
  }

  /** Registers the listening socket; false if epoll refused it. */
  start(): SysFailure | null {
    const r = this.#o.epoll.add(this.#o.listenFd, EPOLLIN, TAG_LISTEN);
    return r.ok ? null : r;
  }

  get connections(): number {
    return this.#conns.size;
  }

  // ------------------------------------------------------------ events

  /** An epoll event with a connection's tag. */
  onEvent(tag: number, events: number): void {
    const c = this.#conns.get(tag);
    if (c === undefined) return; // closed earlier in this pass
    if ((events & EPOLLOUT) !== 0) this.#flushOut(c);
    if ((events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) !== 0) c.hup = true;
    if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) !== 0) {
      this.#markReady(c);
    }
  }

  /** Whether connections wait to be read (the loop then does not sleep). */
  get hasReady(): boolean {
    return this.#ready.length > 0;
  }

  /** Reads each ready connection once (unless the lower layer is blocked). */
  readReady(): void {
    if (this.#ready.length === 0) return;
    const list = this.#ready;
    this.#ready = [];
    for (const c of list) {
      c.ready = false;
      if (c.phase !== "hello" && c.phase !== "live") continue;
      if (this.#o.blocked()) {
        this.#markReady(c);
        continue;
      }
      if (this.#read(c)) this.#markReady(c);
    }
  }

  #markReady(c: AppConn): void {
    if (c.ready || c.phase === "closed" || c.phase === "parked") return;
    c.ready = true;
    this.#ready.push(c);
  }

  // ------------------------------------------------------------ accept

  /** The listening socket is readable: accepts what waits. */
  onListen(): void {
    for (let i = 0; i < ACCEPT_BURST; i++) {
      const r = acceptFd(this.#o.listenFd, { nonBlocking: true });
      if (!r.ok) {
        if (r.wouldBlock) return;
        this.#acceptFailed(r);
        return;
      }
      if (this.#acceptFailures > 0) {
        this.#o.event({
          t: "acceptResumed",
          failures: this.#acceptFailures,
        });
        this.#acceptFailures = 0;
      }
      this.#addConn(r.value);
    }
  }

  #acceptFailed(f: SysFailure): void {
    if (this.#acceptFailures++ === 0) {
      this.#o.event({ t: "acceptFailed", error: acceptProblem(f) });
    }
    // The connection stays queued, and the listener readable: out of the
    // epoll set until the retry, or the loop would spin.
    this.#o.epoll.remove(this.#o.listenFd);
    this.#retryAt = this.now + this.#o.acceptRetryMs;
  }

  #addConn(fd: number): void {
    const id = this.#nextId;
    this.#nextId = this.#nextId >= 0x7fff_ffff
      ? FIRST_CONN_TAG
      : this.#nextId + 1;
    const r = this.#o.epoll.add(fd, CONN_EVENTS, id);
    if (!r.ok) {
      closeFd(fd);
      this.#o.log(
        "epoll",
        "error",
        `Cannot watch an application: ${describe(r)}.`,
      );
      return;
    }
    const c = new AppConn(id, fd, this.now + this.#o.helloMs);
    this.#conns.set(id, c);
    this.#hello.add(c);
    this.#markReady(c);
  }

  // ------------------------------------------------------------ timers

  /** The next time `timers` has something to do, or Infinity. */
  nextDeadline(): number {
    let at = this.#retryAt > 0 ? this.#retryAt : Infinity;
    for (const c of this.#hello) {
      at = Math.min(at, c.deadline); // oldest first: the earliest deadline
      break;
    }
    return at;
  }

  timers(): void {
    const now = this.now;
    for (const c of this.#hello) {
      if (c.deadline > now) break;
      this.#refuse(c); // no attach frame in time
    }
    if (this.#retryAt > 0 && now >= this.#retryAt) {
      this.#retryAt = 0;
      const r = this.#o.epoll.add(this.#o.listenFd, EPOLLIN, TAG_LISTEN);
      if (!r.ok) this.#retryAt = now + this.#o.acceptRetryMs;
      else this.onListen();
    }
  }

  // ------------------------------------------------------------ reading

  /** One read of `c`; true when it may have more to read. */
  #read(c: AppConn): boolean {
    const rb = this.#rb;
    let have = 0;
    if (c.remLen > 0 && c.rem !== null) {
      rb.set(c.rem.subarray(0, c.remLen));
      have = c.remLen;
      c.remLen = 0;
    }
    const space = rb.length - have;
    const r = readFd(c.fd, rb.subarray(have));
    if (!r.ok) {
      this.#keep(c, rb, 0, have);
      if (r.wouldBlock) return false;
      this.#close(c, `application connection: ${describe(r)}`);
      return false;
    }
    if (r.value === 0) {
      this.#close(
        c,
        have > 0
          ? "application connection: stream ended inside a frame"
          : "deallocated by the application",
      );
      return false;
    }
    const end = have + r.value;
    const stop = this.#parse(c, rb, end);
    if (c.phase === "closed") return false;
    this.#keep(c, rb, stop, end);
    return c.phase !== "parked" && (r.value === space || c.hup);
  }

  /** Keeps `buf[from, to)` as the connection's unread bytes. */
  #keep(c: AppConn, buf: Uint8Array, from: number, to: number): void {
    const n = to - from;
    if (n <= 0) {
      c.remLen = 0;
      if (c.rem !== null && c.rem.length > KEEP_OUT_BYTES) c.rem = null;
      return;
    }
    if (buf === c.rem) {
      buf.copyWithin(0, from, to);
    } else {
      if (c.rem === null || c.rem.length < n) {
        c.rem = new Uint8Array(Math.max(n, 4096));
      }
      c.rem.set(buf.subarray(from, to));
    }
    c.remLen = n;
  }

  /**
   * Takes the whole frames of `buf[0, end)`; returns where the first
   * incomplete one starts (or where a parked connection stopped).
   */
  #parse(c: AppConn, buf: Uint8Array, end: number): number {
    const mtu = this.#o.mtu;
    let at = 0;
    while (end - at >= 4) {
      const len = getU32(buf, at);
      if (len > mtu) {
        if (c.phase === "hello") this.#refuse(c);
        else {
          this.#close(c, `the application sent a packet over ${mtu} bytes`);
        }
        return end;
      }
      if (end - at < 4 + len) break;
      const frame = buf.subarray(at, at + 4 + len);
      at += 4 + len;
      if (c.phase === "hello") {
        this.#attach(c, frame);
        const now = phaseOf(c);
        if (now === "live") continue;
        return now === "parked" ? at : end;
      }
      if (len === 0) continue;
      this.#o.packet(c.flow!, frame);
    }
    return at;
  }

  // ------------------------------------------------------------ attach

  #attach(c: AppConn, frame: Uint8Array): void {
    this.#hello.delete(c);
    const a = decodeAttach(frame.subarray(4));
    const flow = a.ok ? this.#o.flows.get(a.value.handle) : undefined;
    if (
      !a.ok || flow === undefined || flow.conn !== undefined ||
      !sameToken(flow.token, a.value.token)
    ) {
      this.#refuse(c);
      return;
    }
    flow.conn = c;
    c.flow = flow;
    if (!flow.allocated) {
      c.phase = "parked"; // until the flow is allocated (or ends)
      return;
    }
    this.#goLive(c, flow);
  }

  /** Answers with a refusal and closes (nothing was attached). */
  #refuse(c: AppConn): void {
    this.#hello.delete(c);
    this.#status(c, -EPERM);
    this.#close(c, undefined);
  }

  /** Writes a status frame; false (and the connection closed) on failure. */
  #status(c: AppConn, status: number): boolean {
    const f = new Uint8Array(8);
    putU32(f, 0, 4);
    f.set(encodeStatus(status), 4);
    // The first bytes on a fresh connection: the socket takes them whole.
    const r = writeFd(c.fd, f);
    return r.ok && r.value === f.length;
  }

  #goLive(c: AppConn, flow: DpFlow): void {
    if (!this.#status(c, 0)) {
      this.#close(c, "application connection: cannot send its status");
      return;
    }
    c.phase = "live";
    this.#o.event({ t: "attached", eid: flow.eid });
    if (flow.early.length > 0) {
      const hdr = new Uint8Array(4);
      for (const p of flow.early) {
        putU32(hdr, 0, p.length);
        c.out.append(hdr);
        c.out.append(p);
      }
      // Counted before they can be read (a reader may look at once).
      this.#o.counters[DpCounter.RxPackets]! += flow.early.length;
      flow.early = [];
      this.#flushOut(c);
    }
  }

  // ------------------------------------------------------------ flows

  /** The control thread allocated a flow: a parked application goes live. */
  flowAllocated(flow: DpFlow): void {
    const c = flow.conn;
    if (c === undefined || c.phase !== "parked") return;
    this.#goLive(c, flow);
    if (phaseOf(c) !== "live") return;
    const held = c.rem;
    const n = c.remLen;
    if (held !== null && n > 0) {
      c.remLen = 0;
      const stop = this.#parse(c, held, n);
      if (phaseOf(c) !== "live") return;
      this.#keep(c, held, stop, n);
    }
    this.#markReady(c);
  }

  /** The control thread ended a flow: its connection closes. */
  flowRemoved(flow: DpFlow): void {
    this.#o.flows.delete(flow.eid);
    const c = flow.conn;
    if (c !== undefined) this.#close(c, undefined);
    flow.early = [];
  }

  /**
   * Closes a connection. With a reason, the application went away (or broke
   * the protocol): its flow ends here and the control thread hears why.
   */
  #close(c: AppConn, reason: string | undefined): void {
    if (c.phase === "closed") return;
    c.phase = "closed";
    this.#hello.delete(c);
    this.#conns.delete(c.id);
    closeFd(c.fd); // also leaves the epoll set
    c.out.clear();
    c.rem = null;
    c.iov.length = 0;
    c.iovBytes = 0;
    const flow = c.flow;
    if (flow === undefined || flow.conn !== c) return;
    flow.conn = undefined;
    if (reason === undefined) return;
    if (this.#o.flows.get(flow.eid) === flow) this.#o.flows.delete(flow.eid);
    this.#o.event({ t: "detached", eid: flow.eid, reason });
  }

  /** Closes every connection (the data path stops). */
  closeAll(): void {
    for (const c of [...this.#conns.values()]) this.#close(c, undefined);
  }

  // ------------------------------------------------------------ delivery

  /**
   * A packet for `flow`'s application, before it attached: kept (copied)
   * up to the pre-attach limit of packets and the application queue's
   * bytes (large packets would otherwise hold megabytes per flow), else
   * dropped and counted.
   */
  early(flow: DpFlow, payload: Uint8Array): void {
    const q = flow.early;
    let bytes = payload.length;
    for (const p of q) bytes += p.length;
    if (q.length < this.#o.preAttachQueue && bytes <= this.#o.appQueueBytes) {
      q.push(payload.slice());
    } else this.#o.counters[DpCounter.SlowReader]!++;
  }

  /** Whether `flow` has a live application to deliver to. */
  live(flow: DpFlow): boolean {
    return flow.conn !== undefined && flow.conn.phase === "live";
  }

  /**
   * A frame for a live flow's application (`[u32 length][packet]`, in the
   * receive batch): written at the next flushDeliveries(), with the other
   * frames of the burst, or copied behind what the socket has not taken;
   * dropped and counted when the queue is full.
   */
  deliver(flow: DpFlow, frame: Uint8Array): void {
    const c = flow.conn!;
    const queued = c.queued;
    if (queued > 0 && queued + frame.length > this.#o.appQueueBytes) {
      this.#o.counters[DpCounter.SlowReader]!++;
      return;
    }
    if (c.out.pending > 0) {
      c.out.append(frame);
      this.#o.counters[DpCounter.RxPackets]!++;
      if (!c.wantOut) this.#flushOut(c);
      return;
    }
    c.iov.push(frame);
    c.iovBytes += frame.length;
    if (!c.dirty) {
      c.dirty = true;
      this.#dirty.push(c);
    }
  }

  /** Writes each flow's burst (one writev each); before the batch is reused. */
  flushDeliveries(): void {
    const counters = this.#o.counters;
    if (this.#dirty.length === 0) return;
    const list = this.#dirty;
    this.#dirty = [];
    for (const c of list) {
      c.dirty = false;
      const iov = c.iov;
      const total = c.iovBytes;
      const count = iov.length;
      if (c.phase !== "live" || count === 0) {
        iov.length = 0;
        c.iovBytes = 0;
        continue;
      }
      // Counted before they can be read (a reader may look at once).
      counters[DpCounter.RxPackets]! += count;
      const r = writevFd(c.fd, iov);
      let done = 0;
      if (r.ok) done = r.value;
      else if (!r.wouldBlock) {
        // The application is gone: its read side says so.
        counters[DpCounter.RxPackets]! -= count;
        iov.length = 0;
        c.iovBytes = 0;
        this.#markReady(c);
        continue;
      }
      if (done < total) {
        // Keep the rest: copies of what the socket did not take.
        c.out.appendUnwritten(iov, done);
        this.#setWantOut(c, true);
      }
      iov.length = 0;
      c.iovBytes = 0;
    }
  }

  /** Writes what is queued towards the application, as far as it goes. */
  #flushOut(c: AppConn): void {
    if (c.phase !== "live") return;
    const r = c.out.write(c.fd);
    if (r === "idle") return;
    if (r === "blocked") this.#setWantOut(c, true);
    else if (r === "drained") this.#setWantOut(c, false);
    else this.#markReady(c); // gone: the read side says so
  }

  #setWantOut(c: AppConn, on: boolean): void {
    if (c.wantOut === on || c.phase === "closed") return;
    const r = this.#o.epoll.modify(
      c.fd,
      CONN_EVENTS | (on ? EPOLLOUT : 0),
      c.id,
    );
    if (r.ok) c.wantOut = on;
  }
}
