/**
 * The N-1 flows of a unicast IPCP's data path, in its data-path thread: one
 * Unix stream connection per flow to the lower IPCP's data socket
 * (lib/ipc/dataplane.ts), given by the control thread with its attach frame
 * already written. The first frame read is the lower IPCP's status frame;
 * then, both ways, one `[u32 length][packet]` frame per packet.
 *
 * Driven by the data path's epoll loop as the applications' side
 * (ipcpd/common/app_conns.ts) is: connections registered edge-triggered,
 * kept on a ready list until a read comes back short, each read once per
 * pass.
 *
 * Reading. Each connection reads into a buffer of its own (it starts small
 * and grows while reads fill it), and the frames of a read are handed on as
 * views into it: a DT packet to forward goes to the writes of its next N-1
 * flow, one for this member's applications to their deliveries, without a
 * copy. The buffer is read into again only after flush(), which writes
 * (or copies into queues) everything that views it; only the unfinished
 * frame at its end is moved, to its start.
 *
 * Writing. What a pass sends on a flow is gathered (views: the read
 * buffers, the data path's staging buffer, the control thread's packets)
 * and written by one writev per flow at flush(); what the socket does not
 * take is copied, in order, into the flow's queue, written on EPOLLOUT. A
 * frame the socket took in part is always finished before any other bytes:
 * the stream's framing stays intact. Data packets are dropped and counted
 * (DpCounter.N1Dropped) beyond N1_QUEUE_BYTES; the control thread's packets
 * are queued all the same, up to N1_HOPELESS_BYTES, beyond which the flow
 * is given up. A flow the control thread removes is closed once what it
 * was given is written (its last packet is often the one that matters:
 * an enrollment's ack), or N1_LINGER_MS later.
 *
 * Multi-bit ECN (spec/unicast.md 2.7.4), when the layer uses it
 * (`setEcn`): every data frame sendData takes gets ecnForQueue(queued) ORed
 * into its DT header's ecn byte, `queued` being the frames waiting to be
 * written on that connection before it: those gathered this pass (not
 * written yet) plus those in its queue, a frame the socket took in part
 * counted whole, the control thread's included. The count is exact: the
 * queue keeps the stream offsets at which its frames end (a FIFO of
 * numbers), popped as the socket takes them (ipcpd/common/out_queue.ts).
 */
import {
  closeFd,
  describe,
  type Epoll,
  EPOLLERR,
  EPOLLET,
  EPOLLHUP,
  EPOLLIN,
  EPOLLOUT,
  EPOLLRDHUP,
  errnoName,
  IOV_MAX,
  readFd,
  setNonBlocking,
  writevFd,
} from "../../lib/sys/mod.ts";
import { getU32, putU32 } from "../../lib/ipc/framing.ts";
import { DpCounter, type LogLevel } from "../common/dp_msg.ts";
import { OutQueue } from "../common/out_queue.ts";
import { type DtLayout, dtRaiseEcn } from "./dt.ts";
import { ecnForQueue } from "./fa.ts";

/**
 * The epoll tags of N-1 connections are from here on: the applications'
 * connections' tags stay below 2^31, the loop's own are small.
 */
export const FIRST_N1_TAG = 0x8000_0000;
const LAST_N1_TAG = 0xffff_ffff;

/**
 * Bytes queued towards the lower layer on one N-1 flow before its data
 * packets are dropped: a few hundred milliseconds of a fast flow (4 MiB is
 * 30 ms at 1 Gb/s, 3 s at 10 Mb/s), enough to ride out a lower IPCP that
 * is busy for a moment, without holding megabytes per stalled flow for
 * packets that would arrive too late anyway.
 */
export const N1_QUEUE_BYTES = 4 << 20;
/**
 * The control thread's packets are not dropped for a full queue; a flow
 * whose queue grows this far beyond the bound takes nothing at all: it is
 * ended (n1Down) rather than kept growing.
 */
export const N1_HOPELESS_BYTES = 4 * N1_QUEUE_BYTES;

/**
 * How long a removed flow's connection may take to write what is queued
 * before it is closed all the same.
 */
export const N1_LINGER_MS = 2000;

/** A connection's read buffer starts this small (most N-1 flows are quiet)... */
const FIRST_READ_BYTES = 16 * 1024;
/** ...and doubles while reads fill it, up to this (one read at most). */
const READ_BYTES = 256 * 1024;

const CONN_EVENTS = EPOLLIN | EPOLLRDHUP | EPOLLET;

/** What a flow carries: packets for the control thread, or DT packets. */
export type N1Mode = "control" | "dt";

/** One N-1 flow's connection. */
export class N1Conn {
  /**
   * Waiting for the status frame, up, removed but writing what is queued
   * (not read any more), or closed.
   */
  phase: "status" | "up" | "closing" | "closed" = "status";
  /** When a closing connection is closed, written or not. */
  closeAt = 0;
  mode: N1Mode = "control";
  /** The QoS cube of a dt flow. */
  qc = 0;
  /** The read buffer: bytes [start, end) are read but not parsed yet. */
  buf = new Uint8Array(FIRST_READ_BYTES);
  start = 0;
  end = 0;
  /** The last read filled the buffer: grow it. */
  grow = false;
  /** The flush epoch in which views of `buf` were last handed out. */
  viewEpoch = -1;
  /** On the ready list. */
  ready = false;
  /** Frames of this pass, written at the next flush. */
  readonly iov: Uint8Array[] = [];
  /** Per part of `iov`: whether a frame ends with it. */
  readonly iovEnds: boolean[] = [];
  iovBytes = 0;
  /** The frames of `iov` (a control packet is two parts, one frame). */
  iovFrames = 0;
  dirty = false;
  /** What the socket did not take yet, and how many frames that is. */
  readonly out = new OutQueue();
  /** EPOLLOUT is registered. */
  wantOut = false;
  /**
   * An event said the peer hung up: read until the end is seen (a short
   * read does not mean drained then: edge-triggered, the end that came
   * with the last bytes raises no other event).
   */
  hup = false;
  /** Why writing failed: the flow ends once the read side has no more. */
  broken: string | undefined = undefined;

  constructor(
    readonly id: number,
    readonly fd: number,
    readonly tag: number,
  ) {}

  /** Bytes waiting to be written. */
  get queued(): number {
    return this.out.pending + this.iovBytes;
  }

  /** Frames waiting to be written: this pass's and the queue's. */
  get queuedFrames(): number {
    return this.iovFrames + this.out.frames;
  }
}

export interface N1SideOptions {
  readonly epoll: Epoll;
  readonly counters: Float64Array;
  /** The longest packet a flow may send (a longer frame breaks the flow). */
  readonly maxPacket: number;
  /** Data bytes queued per flow before drops (default N1_QUEUE_BYTES). */
  readonly queueBytes?: number;
  /** Queued bytes at which a flow is given up (default N1_HOPELESS_BYTES). */
  readonly hopelessBytes?: number;
  /**
   * A packet read on a control-mode flow: a view valid only during the
   * call (copy it to keep it).
   */
  readonly control: (conn: N1Conn, packet: Uint8Array) => void;
  /**
   * A frame read on a dt flow, `[u32 length][DT packet]`: a view valid
   * until the next flush(), which the callee may change in place and hand
   * to send() or to the applications' deliveries.
   */
  readonly dt: (conn: N1Conn, frame: Uint8Array) => void;
  /**
   * Writes what else holds views of the read buffers (the applications'
   * deliveries); flush() calls it first.
   */
  readonly flushOthers: () => void;
  /** A flow ended (its connection is closed): why. */
  readonly down: (id: number, reason: string) => void;
  readonly log: (key: string, level: LogLevel, text: string) => void;
}

/** The N-1 flows of one data path. */
export class N1Side {
  readonly #o: N1SideOptions;
  readonly #queueBytes: number;
  readonly #hopelessBytes: number;
  readonly #byId = new Map<number, N1Conn>();
  readonly #byTag = new Map<number, N1Conn>();
  #nextTag = FIRST_N1_TAG;
  #ready: N1Conn[] = [];
  #dirty: N1Conn[] = [];
  /** Counts flushes: a buffer viewed in this epoch is not read into. */
  #epoch = 0;
  /** Removed flows still writing, oldest first. */
  readonly #closing = new Set<N1Conn>();
  /** The time of this pass (Date.now()), set by the loop. */
  now = 0;
  /** The DT layout of the layer when it uses multi-bit ECN. */
  #ecn: DtLayout | undefined;

  constructor(o: N1SideOptions) {
    this.#o = o;
    this.#queueBytes = o.queueBytes ?? N1_QUEUE_BYTES;
    this.#hopelessBytes = o.hopelessBytes ?? N1_HOPELESS_BYTES;
  }

  get size(): number {
    return this.#byId.size;
  }

  /** The flow `id`, while it is open. */
  get(id: number): N1Conn | undefined {
    return this.#byId.get(id);
  }

  /** Whether connections wait to be read (the loop then does not sleep). */
  get hasReady(): boolean {
    return this.#ready.length > 0;
  }

  // ------------------------------------------------------------ flows

  /**
   * An N-1 flow on connection `fd` (now ours): watched from now on; a
   * flow that cannot be is closed and reported down. A second flow of an
   * id that is open is refused (its descriptor closed), the first kept.
   */
  add(id: number, fd: number): void {
    if (this.#byId.has(id)) {
      closeFd(fd);
      this.#o.log(
        "n1add",
        "error",
        `N-1 flow ${id} exists already: the new connection is closed.`,
      );
      return;
    }
    const nb = setNonBlocking(fd, true);
    if (!nb.ok) {
      closeFd(fd);
      this.#o.down(id, `cannot use the connection: ${describe(nb)}`);
      return;
    }
    const tag = this.#takeTag();
    const r = this.#o.epoll.add(fd, CONN_EVENTS, tag);
    if (!r.ok) {
      closeFd(fd);
      this.#o.down(id, `cannot watch the connection: ${describe(r)}`);
      return;
    }
    const c = new N1Conn(id, fd, tag);
    this.#byId.set(id, c);
    this.#byTag.set(tag, c);
    this.#markReady(c);
  }

  #takeTag(): number {
    for (;;) {
      const t = this.#nextTag;
      this.#nextTag = t >= LAST_N1_TAG ? FIRST_N1_TAG : t + 1;
      if (!this.#byTag.has(t)) return t;
    }
  }

  /**
   * Data frames are marked with their flow's queue from now on (the
   * layer's congestion avoidance is multi-bit ECN, its DT header
   * `layout`), or no more (undefined).
   */
  setEcn(layout: DtLayout | undefined): void {
    this.#ecn = layout;
  }

  /** Flow `id` carries DT packets of cube `qc` from now on. */
  setDt(id: number, qc: number): void {
    const c = this.#byId.get(id);
    if (c === undefined) return;
    c.mode = "dt";
    c.qc = qc;
  }

  /**
   * Ends flow `id`, with no event: its id is free at once; its connection
   * is closed once what it was given is written (or N1_LINGER_MS later).
   */
  remove(id: number): void {
    const c = this.#byId.get(id);
    if (c === undefined) return;
    this.#byId.delete(id);
    this.#writeIov(c);
    if (c.broken !== undefined || c.queued === 0) {
      this.#close(c);
      return;
    }
    c.phase = "closing";
    c.ready = false; // not read any more
    c.closeAt = this.now + N1_LINGER_MS;
    this.#closing.add(c);
  }

  /** The next time `timers` has something to do, or Infinity. */
  nextDeadline(): number {
    for (const c of this.#closing) return c.closeAt; // the oldest first
    return Infinity;
  }

  /** Closes the removed flows that took too long to write. */
  timers(): void {
    for (const c of this.#closing) {
      if (c.closeAt > this.now) break;
      this.#close(c);
    }
  }

  /** Closes every flow, with no events (the data path stops). */
  closeAll(): void {
    for (const c of [...this.#byTag.values()]) this.#close(c);
  }

  #close(c: N1Conn): void {
    if (c.phase === "closed") return;
    c.phase = "closed";
    if (this.#byId.get(c.id) === c) this.#byId.delete(c.id);
    this.#byTag.delete(c.tag);
    this.#closing.delete(c);
    closeFd(c.fd); // also leaves the epoll set
    c.out.clear();
    c.iov.length = 0;
    c.iovEnds.length = 0;
    c.iovBytes = 0;
    c.iovFrames = 0;
  }

  /** Closes a flow and says why (a removed one, silently). */
  #down(c: N1Conn, reason: string): void {
    if (c.phase === "closed") return;
    const removed = c.phase === "closing";
    this.#close(c);
    if (!removed) this.#o.down(c.id, reason);
  }

  // ------------------------------------------------------------ events

  /** An epoll event: false when the tag is not an N-1 connection's. */
  onEvent(tag: number, events: number): boolean {
    if (tag < FIRST_N1_TAG) return false;
    const c = this.#byTag.get(tag);
    if (c === undefined) return true; // closed earlier in this pass
    if ((events & EPOLLOUT) !== 0) this.#flushOut(c);
    if (c.phase === "closing" && (events & (EPOLLHUP | EPOLLERR)) !== 0) {
      this.#close(c); // nobody to write to
    }
    if ((events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) !== 0) c.hup = true;
    if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) !== 0) {
      this.#markReady(c);
    }
    return true;
  }

  #markReady(c: N1Conn): void {
    if (c.ready || c.phase === "closed" || c.phase === "closing") return;
    c.ready = true;
    this.#ready.push(c);
  }

  // ------------------------------------------------------------ reading

  /** Reads each ready connection once; flush() before the next call. */
  readReady(): void {
    if (this.#ready.length === 0) return;
    const list = this.#ready;
    this.#ready = [];
    for (const c of list) {
      c.ready = false;
      if (c.phase === "closed" || c.phase === "closing") continue;
      if (this.#read(c)) this.#markReady(c);
    }
  }

  /**
   * Makes room in `c`'s buffer for a read: the unparsed bytes move to its
   * start, into a new (larger) buffer when the old one is too small, must
   * grow, or may still be viewed by writes not flushed yet.
   */
  #room(c: N1Conn): void {
    const n = c.end - c.start;
    let need = 0;
    if (n >= 4 && c.phase === "up") {
      need = 4 + Math.min(getU32(c.buf, c.start), this.#o.maxPacket);
    }
    let size = c.buf.length;
    if (c.grow && size < READ_BYTES) size = Math.min(size * 2, READ_BYTES);
    // Room for the whole unfinished frame, and for some more.
    while (size < need + 4096) size *= 2;
    c.grow = false;
    if (size !== c.buf.length || c.viewEpoch === this.#epoch) {
      const b = new Uint8Array(size);
      b.set(c.buf.subarray(c.start, c.end));
      c.buf = b;
    } else if (c.start > 0) {
      c.buf.copyWithin(0, c.start, c.end);
    }
    c.start = 0;
    c.end = n;
  }

  /** One read of `c`; true when it may have more to read. */
  #read(c: N1Conn): boolean {
    this.#room(c);
    const space = c.buf.length - c.end;
    const r = readFd(c.fd, c.buf.subarray(c.end));
    if (!r.ok) {
      if (!r.wouldBlock) this.#down(c, `read: ${describe(r)}`);
      else if (c.broken !== undefined) this.#down(c, c.broken);
      return false;
    }
    if (r.value === 0) {
      this.#down(
        c,
        c.end > c.start
          ? "the lower layer's stream ended inside a frame"
          : c.phase === "status"
          ? "the lower layer closed the flow before its status"
          : "the lower layer ended the flow",
      );
      return false;
    }
    c.end += r.value;
    this.#parse(c);
    if (r.value < space) return c.hup && c.phase !== "closed";
    c.grow = true;
    return c.phase !== "closed";
  }

  /** Takes the whole frames of `c`'s unparsed bytes. */
  #parse(c: N1Conn): void {
    const max = this.#o.maxPacket;
    const buf = c.buf;
    const end = c.end;
    let at = c.start;
    while (end - at >= 4) {
      const len = getU32(buf, at);
      if (c.phase === "status") {
        if (len !== 4) {
          this.#down(
            c,
            `the lower layer's first frame (${len} bytes) is no status`,
          );
          return;
        }
        if (end - at < 8) break;
        const status = (buf[at + 4]! << 24 | buf[at + 5]! << 16 |
          buf[at + 6]! << 8 | buf[at + 7]!) | 0;
        at += 8;
        if (status !== 0) {
          this.#down(
            c,
            `the lower layer refused the flow (${
              status < 0 ? errnoName(-status) : status
            })`,
          );
          return;
        }
        c.phase = "up";
        continue;
      }
      if (len > max) {
        this.#down(
          c,
          `the lower layer sent a packet of ${len} bytes, over ${max}`,
        );
        return;
      }
      if (end - at < 4 + len) break;
      const frame = buf.subarray(at, at + 4 + len);
      at += 4 + len;
      if (c.mode === "control") this.#o.control(c, frame.subarray(4));
      else {
        c.viewEpoch = this.#epoch;
        this.#o.dt(c, frame);
      }
      if (c.phase === "closed") return;
    }
    c.start = at;
  }

  // ------------------------------------------------------------ writing

  /**
   * A data frame, `[u32 length][packet]`, for flow `c`: a view valid until
   * the next flush(), written then with the pass's others. False (and
   * counted) when it was dropped: the flow's queue is full, or it is going
   * down. With multi-bit ECN, the frame's ecn byte is raised (in place) by
   * the frames queued before it.
   */
  sendData(c: N1Conn, frame: Uint8Array): boolean {
    if (
      c.phase === "closed" || c.broken !== undefined ||
      c.queued + frame.length > this.#queueBytes
    ) {
      this.#o.counters[DpCounter.N1Dropped]!++;
      return false;
    }
    const ecn = this.#ecn;
    if (ecn !== undefined && frame.length >= 4 + ecn.hdrLen) {
      const level = ecnForQueue(c.queuedFrames);
      if (level > 0) dtRaiseEcn(frame.subarray(4), level, ecn);
    }
    this.#push(c, frame, true);
    return true;
  }

  /**
   * A packet of the control thread for flow `c` (its own bytes, kept as
   * they are until written): queued whatever the queue holds, unless the
   * flow takes nothing at all any more, which ends it.
   */
  sendControl(c: N1Conn, packet: Uint8Array): void {
    if (c.phase === "closed" || c.broken !== undefined) return;
    if (c.queued + 4 + packet.length > this.#hopelessBytes) {
      this.#down(c, "the lower layer does not take packets");
      return;
    }
    const hdr = new Uint8Array(4);
    putU32(hdr, 0, packet.length);
    this.#push(c, hdr, packet.length === 0);
    this.#push(c, packet, true);
  }

  /** A part of a frame, the last when `frameEnd`. */
  #push(c: N1Conn, part: Uint8Array, frameEnd: boolean): void {
    if (part.length === 0) return;
    if (c.out.pending > 0) {
      // Behind what the socket has not taken: in order, copied.
      c.out.append(part, frameEnd);
      return;
    }
    c.iov.push(part);
    c.iovEnds.push(frameEnd);
    c.iovBytes += part.length;
    if (frameEnd) c.iovFrames++;
    if (!c.dirty) {
      c.dirty = true;
      this.#dirty.push(c);
    }
    if (c.iov.length >= IOV_MAX) this.#writeIov(c);
  }

  /**
   * Writes every flow's frames of the pass (one writev each), after the
   * other holders of views; the read buffers may be read into again.
   */
  flush(): void {
    this.#o.flushOthers();
    if (this.#dirty.length > 0) {
      const list = this.#dirty;
      this.#dirty = [];
      for (const c of list) {
        c.dirty = false;
        this.#writeIov(c);
      }
    }
    this.#epoch++;
  }

  #writeIov(c: N1Conn): void {
    const iov = c.iov;
    const total = c.iovBytes;
    if (iov.length === 0) return;
    const ends = c.iovEnds;
    const clear = () => {
      iov.length = 0;
      ends.length = 0;
      c.iovBytes = 0;
      c.iovFrames = 0;
    };
    if (c.phase === "closed" || c.broken !== undefined) {
      clear();
      return;
    }
    const r = writevFd(c.fd, iov);
    let done = 0;
    if (r.ok) done = r.value;
    else if (!r.wouldBlock) {
      clear();
      this.#broke(c, `write: ${describe(r)}`);
      return;
    }
    if (done < total) {
      // The rest, copied, the unfinished frame first.
      c.out.appendUnwritten(iov, done, ends);
      this.#setWantOut(c, true);
    }
    clear();
  }

  /** Writing failed: nothing more is written; the read side ends the flow. */
  #broke(c: N1Conn, reason: string): void {
    if (c.phase === "closing") {
      this.#close(c);
      return;
    }
    c.broken ??= reason;
    c.out.clear();
    this.#markReady(c);
  }

  /** Writes what is queued, as far as the socket takes it. */
  #flushOut(c: N1Conn): void {
    if (c.phase === "closed") return;
    const r = c.out.write(c.fd);
    if (r === "idle") return;
    if (r === "blocked") this.#setWantOut(c, true);
    else if (r !== "drained") this.#broke(c, `write: ${describe(r)}`);
    else if (c.phase === "closing") this.#close(c);
    else this.#setWantOut(c, false);
  }

  #setWantOut(c: N1Conn, on: boolean): void {
    if (c.wantOut === on || c.phase === "closed") return;
    const r = this.#o.epoll.modify(
      c.fd,
      CONN_EVENTS | (on ? EPOLLOUT : 0),
      c.tag,
    );
    if (r.ok) c.wantOut = on;
    else if (on) this.#broke(c, `cannot watch the connection: ${describe(r)}`);
  }
}
