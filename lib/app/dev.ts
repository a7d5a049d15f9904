/**
 * The application API: allocate flows to names, accept flows, read and
 * write packets.
 *
 * ```ts
 * await using node = await Ouroboros.connect({ prog: "myapp" });
 * await using flow = await node.allocate("oping-server", { qos: "raw" });
 * await flow.write(packet);
 * const reply = await flow.read({ timeoutMs: 2000 });
 * ```
 *
 * Control goes to the irmd (lib/ipc/ctrl.ts); packets go straight to the IPCP
 * over the flow's own Unix connection (lib/ipc/dataplane.ts), batched under load.
 */
import { connectCtrl, type CtrlConn } from "../ipc/ctrl.ts";
import { decodeStatus, encodeAttach } from "../ipc/dataplane.ts";
import { OuroborosError } from "../util/errors.ts";
import {
  type ByteReader,
  type ByteWriter,
  FrameReader,
  FrameWriter,
} from "../ipc/framing.ts";
import type { FlowGrant, QosSpec } from "../ipc/proto.ts";
import { irmdSocketPath, resolveRundir } from "../ipc/rundir.ts";
import { QOS_CUBES } from "../wire/udp_wire.ts";
import { CRC_LEN, FlowEnd, type FlowStats, HEADER_LEN } from "../frct/frct.ts";
import { loadNativeCrc32 } from "../wire/crc32.ts";

export type { FlowGrant, FlowStats };

/**
 * The maximum packet lifetime of the layer below a flow, for FRCT's timers
 * (spec/frct.md 3.1), when the flow's grant does not say it: what C's UDP
 * IPCP gives its flows.
 */
export const UDP_MPL_MS = 5000;

export type QosName = keyof typeof QOS_CUBES;
export type { QosSpec };

export const DEFAULT_ALLOC_TIMEOUT_MS = 20_000;

export const IRMD_UNREACHABLE =
  "Failed to communicate with the Ouroboros IPC Resource Manager daemon";

/** Why the irmd's socket could not be used, in words. */
function unreachableWhy(e: unknown): string {
  if (e instanceof Deno.errors.NotFound) return "no such socket";
  if (e instanceof Deno.errors.ConnectionRefused) {
    return "nothing listens on it (a stale socket: the irmd is not running)";
  }
  if (e instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (e instanceof OuroborosError && e.code === "timed_out") {
    return "the irmd did not answer";
  }
  if (e instanceof OuroborosError && e.code === "closed") {
    return "the irmd closed the connection";
  }
  return e instanceof Error ? e.message : String(e);
}

/**
 * What every tool says when the irmd cannot be reached: the socket, why,
 * and what to do about it.
 */
export function irmdUnreachableText(path: string, e: unknown): string {
  return `${IRMD_UNREACHABLE} at ${path}: ${unreachableWhy(e)}. ` +
    `Start it with "irmd", or pass --rundir DIR (or set OUROBOROS_RUNDIR) for another node's.`;
}

export interface ConnectOptions {
  /** The runtime directory of the node (default: --rundir / OUROBOROS_RUNDIR / per user). */
  rundir?: string;
  /** The program name the irmd knows this process by (its names come from it). */
  prog?: string;
}

/**
 * How a flow's packets move between this program and its IPCP:
 * "async" (the default) through Deno's asynchronous sockets, like every
 * other I/O of the program; "blocking" through system calls on this
 * thread (lib/app/blocking_io.ts): faster, for a program that gives its
 * thread to its flows (while such a flow waits for a packet the thread
 * sleeps in poll(2), and the program's other timers run late by up to a
 * few milliseconds). Both carry the same packets, FRCT included.
 */
export type FlowIo = "async" | "blocking";

export interface AllocOptions {
  qos?: QosName | QosSpec;
  /** How long to wait for the peer (default 20 s). */
  timeoutMs?: number;
  /** How the flow's packets move (default "async"). */
  io?: FlowIo;
}

export interface AcceptOptions {
  timeoutMs?: number;
  /** How the flow's packets move (default "async"). */
  io?: FlowIo;
}

export interface ReadOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

function qosOf(q: QosName | QosSpec | undefined): QosSpec {
  if (q === undefined) return QOS_CUBES.raw;
  if (typeof q === "string") {
    const cube = QOS_CUBES[q];
    if (cube === undefined) {
      throw new OuroborosError("invalid", `unknown QoS cube "${q}"`);
    }
    return cube;
  }
  return q;
}

/** A session with the local irmd. */
export class Ouroboros implements AsyncDisposable {
  #ctrl: CtrlConn;
  #nextFd = 0;
  #flows = new Set<Flow>();

  private constructor(
    ctrl: CtrlConn,
    readonly irmdPid: number,
    readonly rundir: string,
  ) {
    this.#ctrl = ctrl;
  }

  /** Connects to the node's irmd; fails with irmd_not_running when there is none. */
  static async connect(opts: ConnectOptions = {}): Promise<Ouroboros> {
    const rundir = resolveRundir(opts.rundir);
    const path = irmdSocketPath(rundir);
    let ctrl: CtrlConn;
    try {
      ctrl = await connectCtrl(path);
    } catch (e) {
      throw new OuroborosError(
        "irmd_not_running",
        irmdUnreachableText(path, e),
      );
    }
    try {
      const hello = await ctrl.request("hello", {
        role: "app",
        pid: Deno.pid,
        prog: opts.prog ?? "app",
      }, 5000);
      return new Ouroboros(ctrl, hello.irmdPid, rundir);
    } catch (e) {
      ctrl.close();
      if (
        e instanceof OuroborosError &&
        (e.code === "closed" || e.code === "timed_out")
      ) {
        throw new OuroborosError(
          "irmd_not_running",
          irmdUnreachableText(path, e),
        );
      }
      throw irmdError(e);
    }
  }

  /** Resolves when the irmd connection has ended. */
  get done(): Promise<void> {
    return this.#ctrl.done;
  }

  /** Allocates a flow to a name. */
  async allocate(name: string, opts: AllocOptions = {}): Promise<Flow> {
    const grant = await this.allocateGrant(name, opts);
    return this.#attach(grant, opts.io ?? "async");
  }

  /**
   * Allocates a flow to a name and returns the irmd's grant without
   * attaching to it: for a program that moves the flow's packets itself
   * (an IPCP's N-1 flows, in its data path), by the protocol of
   * lib/ipc/dataplane.ts on a connection to `grant.path`.
   */
  async allocateGrant(
    name: string,
    opts: Omit<AllocOptions, "io"> = {},
  ): Promise<FlowGrant> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_ALLOC_TIMEOUT_MS;
    const qos = qosOf(opts.qos);
    try {
      return await this.#ctrl.request(
        "flow.alloc",
        { name, qos, timeoutMs },
        timeoutMs + 5000,
      );
    } catch (e) {
      throw irmdError(e);
    }
  }

  /** Waits for an incoming flow for any name this process serves. */
  async accept(opts: AcceptOptions = {}): Promise<Flow> {
    const grant = await this.acceptGrant(opts);
    return this.#attach(grant, opts.io ?? "async");
  }

  /** accept(), returning the grant unattached (as allocateGrant does). */
  async acceptGrant(
    opts: Omit<AcceptOptions, "io"> = {},
  ): Promise<FlowGrant> {
    try {
      const body = opts.timeoutMs === undefined
        ? {}
        : { timeoutMs: opts.timeoutMs };
      return await this.#ctrl.request("flow.accept", body);
    } catch (e) {
      throw irmdError(e);
    }
  }

  async #attach(grant: FlowGrant, io: FlowIo): Promise<Flow> {
    // A flow that checks a CRC uses node:zlib's (loaded now, once).
    if (grant.qos.ber === 0) await loadNativeCrc32();
    let conn: FlowConn;
    try {
      conn = io === "blocking"
        // Loaded on first use: the system-call layer binds libc's functions,
        // a few megabytes a program on asynchronous flows does not need.
        ? await (await import("./blocking_io.ts")).SysStream.connect(grant.path)
        : await Deno.connect({ transport: "unix", path: grant.path });
    } catch (e) {
      throw new OuroborosError(
        "flow_down",
        `cannot reach the IPCP's data socket ${grant.path}: ${
          e instanceof Error ? e.message : e
        }`,
      );
    }
    // The attach frame is the first frame the flow's writer sends; neither
    // its write nor the IPCP's status answer is awaited here: the status is
    // the first frame the flow reads (a refusal ends the flow as down), and
    // packets written meanwhile follow the attach frame.
    const flow = new Flow(
      this.#nextFd++,
      grant,
      conn,
      encodeAttach(grant.handle, grant.token),
      () => this.#flows.delete(flow),
    );
    this.#flows.add(flow);
    return flow;
  }

  /** Closes every flow and the irmd session. */
  async close(): Promise<void> {
    await Promise.all([...this.#flows].map((f) => f.close()));
    this.#ctrl.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

function irmdError(e: unknown): OuroborosError {
  if (e instanceof OuroborosError) {
    if (e.code === "closed") {
      return new OuroborosError(
        "irmd_not_running",
        `${IRMD_UNREACHABLE}: the irmd went away.`,
      );
    }
    return e;
  }
  return new OuroborosError(
    "failed",
    e instanceof Error ? e.message : String(e),
  );
}

/** How long close() waits at least for an FRCT flow's last packets to leave. */
const FINAL_ACK_FLUSH_MS = 200;

/** An FRCT flow acknowledges at least every this many reads. */
const FE_ACK_EVERY = 32;

/** Most packets buffered in the application before it stops reading the socket. */
const READ_QUEUE_LIMIT = 1024;

/** What a flow needs of its connection to the IPCP. */
export interface FlowConn extends ByteReader, ByteWriter {
  close(): void;
}

/**
 * A connection of the fast path (blocking_io.ts's SysStream): its waits
 * are the reactor's, which sleeps no longer than the owner's `deadline`.
 */
export interface BlockingConn extends FlowConn {
  deadline: () => number;
  /** The bytes there now (0: none yet), null at the end of the stream. */
  readNow(p: Uint8Array): number | null;
  /** The bytes the socket takes now, 0 when it is full. */
  writeNow(p: Uint8Array): number;
  /** Resolve when the connection may be readable / writable (the reactor). */
  readable(): Promise<void>;
  writable(): Promise<void>;
  /** Blocks the thread until readable / writable or `timeoutMs`: whether ready. */
  waitNow(what: "read" | "write", timeoutMs: number): boolean;
  /** Blocks until one of `conns` may be readable, or `timeoutMs`: which. */
  waitAnyNow(conns: readonly BlockingConn[], timeoutMs: number): number[];
}

function isBlocking(c: FlowConn): c is BlockingConn {
  return "deadline" in c;
}

/** A flow: packets in, packets out, in order, none larger than `mtu`. */
export class Flow implements AsyncDisposable {
  readonly name: string;
  readonly qos: QosSpec;
  readonly mtu: number;
  readonly flowId: number;
  #conn: FlowConn;
  #reader: FrameReader;
  #writer: FrameWriter;
  #queue: Uint8Array[] = [];
  #qhead = 0;
  #ended: OuroborosError | undefined;
  #waiter: (() => void) | undefined;
  #resume: (() => void) | undefined;
  #onClose: () => void;
  #readable: ReadableStream<Uint8Array> | undefined;
  #writable: WritableStream<Uint8Array> | undefined;
  /** FRCT and/or CRC, for flows whose QoS asks for them; else undefined. */
  #fe: FlowEnd | undefined;
  #feTimer: ReturnType<typeof setTimeout> | undefined;
  #feTimerAt = Infinity;
  #feFlushQueued = false;
  /** Reads since the last acknowledgement was made due. */
  #feReads = 0;
  /** Woken when the FRCT window opens again or the flow's state changes. */
  #feWaiters: (() => void)[] = [];
  /** When a waiting read times out (performance.now() time), or Infinity. */
  #readDeadline = Infinity;
  /** The IPCP has answered the attach frame (fast-path flows). */
  #attached = false;

  constructor(
    readonly fd: number,
    grant: FlowGrant,
    conn: FlowConn,
    attach: Uint8Array,
    onClose: () => void,
  ) {
    this.name = grant.name;
    this.qos = grant.qos;
    this.flowId = grant.flowId;
    const q = grant.qos;
    if (q.inOrder !== 0 || q.ber === 0) {
      // Liveness (keepalives, the peer timeout) is the IPCP's: timeout 0.
      this.#fe = new FlowEnd({
        qos: { loss: q.loss, ber: q.ber, inOrder: q.inOrder, timeout: 0 },
        mplMs: grant.mplMs ?? UDP_MPL_MS,
        now: performance.now(),
        random: () => crypto.getRandomValues(new Uint32Array(1))[0]!,
      });
    }
    const fe = this.#fe;
    this.mtu = grant.mtu - (fe?.frct ? HEADER_LEN : 0) -
      (fe?.crc ? CRC_LEN : 0);
    this.#conn = conn;
    if (isBlocking(conn)) {
      // The reactor sleeps no longer than this flow's next deadline.
      conn.deadline = () => Math.min(this.#readDeadline, this.#feTimerAt);
    }
    this.#reader = new FrameReader(conn, grant.mtu);
    this.#writer = new FrameWriter(conn, 256 * 1024, false);
    this.#writer.push(attach);
    this.#onClose = onClose;
    if (isBlocking(conn)) void this.#pumpNow(conn);
    else void this.#pump();
  }

  get isOpen(): boolean {
    return this.#ended === undefined;
  }

  /** How the flow's packets move ("blocking": the fast path). */
  get io(): FlowIo {
    return isBlocking(this.#conn) ? "blocking" : "async";
  }

  async #pump(): Promise<void> {
    try {
      // First, the IPCP's answer to the attach frame.
      const first = await this.#reader.next();
      const status = first === null
        ? undefined
        : decodeStatus(first.subarray(4));
      if (status === undefined || !status.ok || status.value !== 0) {
        this.#notAttached();
        return;
      }
      for (;;) {
        const frame = await this.#reader.next();
        if (frame === null) break;
        const fe = this.#fe;
        if (fe !== undefined) {
          // The flow's protocol keeps what arrives (in order, within its
          // window); the application reads from it.
          const now = performance.now();
          fe.receive(frame.subarray(4), now);
          for (
            let more = this.#reader.nextBuffered();
            more !== undefined;
            more = this.#reader.nextBuffered()
          ) fe.receive(more.subarray(4), now);
          this.#feAfter();
          if (this.#ended !== undefined) return;
          if (fe.readable) this.#wakeReader();
          continue;
        }
        // Take every frame of this read at once, then wake the reader once.
        const q = this.#queue;
        q.push(frame.subarray(4));
        for (
          let more = this.#reader.nextBuffered();
          more !== undefined && q.length - this.#qhead < READ_QUEUE_LIMIT;
          more = this.#reader.nextBuffered()
        ) q.push(more.subarray(4));
        this.#wakeReader();
        if (this.#queue.length - this.#qhead >= READ_QUEUE_LIMIT) {
          await new Promise<void>((r) => this.#resume = r);
          if (this.#ended !== undefined) return;
        }
      }
      this.#goneDown();
    } catch (e) {
      this.#failed(e);
    }
  }

  /**
   * The pump of a fast-path flow: takes what is there whenever the
   * reactor says the connection is readable. It never holds a buffer
   * across a wait (`#pullNow` reads only what is there), so `readSync` and
   * `writeSync` may take packets in between, on this thread.
   */
  async #pumpNow(conn: BlockingConn): Promise<void> {
    try {
      for (;;) {
        const r = this.#pullNow();
        if (r === "ended") return;
        if (r === "end") {
          this.#goneDown();
          return;
        }
        if (r === "full") {
          await new Promise<void>((r) => this.#resume = r);
        } else {
          await conn.readable();
          this.#reader.rearm();
        }
        if (this.#ended !== undefined) return;
      }
    } catch (e) {
      this.#failed(e);
    }
  }

  /**
   * Takes every frame there is now (without waiting): the IPCP's answer to
   * the attach frame first, then packets, into the read queue or FRCT;
   * wakes the reader. "empty" when nothing more is there for now, "full"
   * when the read queue is full, "end" at the end of the stream, "ended"
   * once the flow has ended.
   */
  #pullNow(): "empty" | "full" | "end" | "ended" {
    const reader = this.#reader;
    const fe = this.#fe;
    const q = this.#queue;
    let got = false;
    let result: "empty" | "full" | "end" = "empty";
    let now = 0;
    for (;;) {
      if (this.#ended !== undefined) return "ended";
      if (fe === undefined && q.length - this.#qhead >= READ_QUEUE_LIMIT) {
        result = "full";
        break;
      }
      const frame = reader.nextNow();
      if (frame === undefined) break;
      if (frame === null) {
        result = "end";
        break;
      }
      if (!this.#attached) {
        const status = decodeStatus(frame.subarray(4));
        if (!status.ok || status.value !== 0) {
          this.#notAttached();
          return "ended";
        }
        this.#attached = true;
        continue;
      }
      if (fe !== undefined) {
        if (!got) now = performance.now();
        fe.receive(frame.subarray(4), now);
      } else q.push(frame.subarray(4));
      got = true;
    }
    if (result === "end" && !this.#attached) {
      this.#notAttached();
      return "ended";
    }
    if (got) {
      if (fe !== undefined) {
        this.#feAfter();
        if (this.#ended !== undefined) return "ended";
        if (fe.readable) this.#wakeReader();
      } else this.#wakeReader();
    }
    return result;
  }

  /** The IPCP refused the attach frame, or closed before it answered. */
  #notAttached(): void {
    this.#end(
      new OuroborosError(
        "flow_down",
        `flow ${this.fd}: the IPCP did not attach it`,
      ),
    );
  }

  /** The connection ended: the flow is down. */
  #goneDown(): void {
    this.#end(
      new OuroborosError(
        "flow_down",
        `flow ${this.fd} is down (its peer or IPCP went away)`,
      ),
    );
  }

  /** The pump failed: the flow is down, with the reason. */
  #failed(e: unknown): void {
    if (this.#ended === undefined) {
      this.#end(
        new OuroborosError(
          "flow_down",
          `flow ${this.fd} is down: ${e instanceof Error ? e.message : e}`,
        ),
      );
    }
  }

  #wakeReader(): void {
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.();
  }

  /**
   * After the flow's protocol was called: send what it has to send, end the
   * flow if it went down, wake whoever waits on it, and set its timer.
   */
  #feAfter(): void {
    const fe = this.#fe!;
    for (const p of fe.takeOutput()) this.#writer.push(p);
    if (fe.state === "down" && this.#ended === undefined) {
      this.#end(
        new OuroborosError(
          "flow_down",
          fe.downReason === "retransmission_limit"
            ? `flow ${this.fd} is down: the peer acknowledged nothing for too long`
            : `flow ${this.fd} is down: nothing from the peer for too long`,
        ),
      );
    }
    if (this.#feWaiters.length > 0) {
      for (const w of this.#feWaiters.splice(0)) w();
    }
    this.#feArm();
  }

  #feArm(): void {
    const fe = this.#fe!;
    const at = this.#ended === undefined
      ? fe.nextDeadline() ?? Infinity
      : Infinity;
    if (at === this.#feTimerAt) return;
    if (this.#feTimer !== undefined) clearTimeout(this.#feTimer);
    this.#feTimer = undefined;
    this.#feTimerAt = at;
    if (at === Infinity) return;
    this.#feTimer = setTimeout(
      () => this.#feFire(),
      Math.max(0, at - performance.now()),
    );
  }

  /** The flow's protocol timer: due now. */
  #feFire(): void {
    if (this.#feTimer !== undefined) clearTimeout(this.#feTimer);
    this.#feTimer = undefined;
    this.#feTimerAt = Infinity;
    this.#fe!.tick(performance.now());
    this.#feAfter();
  }

  /** Sends what reads made due (an ACK, a window update) once per turn. */
  #feFlushSoon(): void {
    if (this.#feFlushQueued) return;
    this.#feFlushQueued = true;
    queueMicrotask(() => {
      this.#feFlushQueued = false;
      if (this.#ended === undefined) this.#feAfter();
    });
  }

  #feWait(): Promise<void> {
    return new Promise((r) => this.#feWaiters.push(r));
  }

  /** FRCT counters (sent, retransmitted, RTT, ...); undefined on raw flows. */
  get stats(): FlowStats | undefined {
    return this.#fe?.stats;
  }

  #end(e: OuroborosError): void {
    if (this.#ended !== undefined) return;
    this.#ended = e;
    if (this.#feTimer !== undefined) clearTimeout(this.#feTimer);
    this.#feTimer = undefined;
    this.#feTimerAt = Infinity;
    for (const w of this.#feWaiters.splice(0)) w();
    this.#writer.close();
    try {
      this.#conn.close();
    } catch { /* closed */ }
    this.#wakeReader();
    const r = this.#resume;
    this.#resume = undefined;
    r?.();
    this.#onClose();
  }

  /** Packets that arrived and wait to be read. */
  get pending(): number {
    if (this.#fe !== undefined) return this.#fe.queued;
    return this.#queue.length - this.#qhead;
  }

  /**
   * The next packet if one has arrived, without waiting (undefined if none;
   * `read` tells why once the flow is down).
   */
  tryRead(): Uint8Array | undefined {
    const fe = this.#fe;
    if (fe !== undefined) {
      if (!fe.readable) return undefined;
      const p = fe.read(performance.now());
      if (p === null) return undefined;
      // One acknowledgement once the reader has taken all that arrived in
      // order (it tells the sender where a gap is, not how far a loop of
      // reads has got), or every FE_ACK_EVERY reads of a reader that never
      // catches up; if the reader stops before that, the flow's timer sends
      // it.
      if (fe.readable && ++this.#feReads < FE_ACK_EVERY) this.#feArm();
      else {
        this.#feReads = 0;
        this.#feFlushSoon();
      }
      return p;
    }
    const q = this.#queue;
    if (this.#qhead >= q.length) return undefined;
    const p = q[this.#qhead]!;
    q[this.#qhead++] = EMPTY;
    if (this.#qhead === q.length) {
      q.length = 0;
      this.#qhead = 0;
    } else if (this.#qhead > 512 && this.#qhead * 2 > q.length) {
      this.#queue = q.slice(this.#qhead);
      this.#qhead = 0;
    }
    if (this.#resume !== undefined && this.pending < READ_QUEUE_LIMIT / 2) {
      const r = this.#resume;
      this.#resume = undefined;
      r();
    }
    return p;
  }

  /**
   * The next packet. Rejects with timed_out after `timeoutMs`, with
   * flow_down once the flow is down and its packets are read, with closed
   * after close().
   */
  async read(opts: ReadOptions = {}): Promise<Uint8Array> {
    for (;;) {
      const p = this.tryRead();
      if (p !== undefined) return p;
      if (this.#ended !== undefined) throw this.#ended;
      await this.#waitPacket(opts);
    }
  }

  /**
   * The next packet, waiting for it on this thread, in poll(2), for at
   * most `timeoutMs` (default: no limit): undefined if none came by then.
   * Throws as `read` does (flow_down once the flow is down and its packets
   * are read, closed after close()). For flows of the fast path (allocated
   * or accepted with `io: "blocking"`) only: a program that calls it gives
   * its thread to the flow, nothing else of it runs while it waits (not
   * its timers, not its other sockets, not its signal listeners), so it
   * should wait in short slices and give the event loop a turn in between
   * (`await` anything that takes one, such as a 0 ms timer). FRCT's
   * timers run inside the wait.
   */
  readSync(timeoutMs = Infinity): Uint8Array | undefined {
    const conn = this.#blockingConn("readSync");
    const until = performance.now() + timeoutMs;
    for (;;) {
      const p = this.tryRead();
      if (p !== undefined) return p;
      if (this.#ended !== undefined) throw this.#ended;
      this.#pullNowOrEnd();
      if (this.#hasPacket() || this.#ended !== undefined) continue;
      const now = performance.now();
      if (now >= this.#feTimerAt) {
        this.#feFire();
        continue;
      }
      if (now >= until) return undefined;
      if (conn.waitNow("read", Math.min(until, this.#feTimerAt) - now)) {
        this.#reader.rearm();
      }
    }
  }

  /**
   * Sends one packet and hands it to the IPCP before returning, waiting on
   * this thread while the connection is full (or, on a reliable flow,
   * while the peer's window is closed, taking in its acknowledgements).
   * Throws as `write` does. Fast-path flows only, as `readSync`.
   */
  writeSync(packet: Uint8Array): void {
    const conn = this.#blockingConn("writeSync");
    this.#checkWrite(packet);
    const fe = this.#fe;
    if (fe !== undefined) {
      while (!this.#feWrite(fe, packet)) {
        // The peer's window is closed: take in what it sends (its
        // acknowledgements open the window), run the protocol's timers.
        this.#pullNowOrEnd();
        if (this.#ended !== undefined) throw this.#ended;
        const now = performance.now();
        if (now >= this.#feTimerAt) this.#feFire();
        else if (conn.waitNow("read", Math.min(this.#feTimerAt - now, 100))) {
          this.#reader.rearm();
        }
      }
      this.#feAfter();
    } else this.#writer.push(packet);
    try {
      this.#writer.flushNow((ms) => conn.waitNow("write", ms));
    } catch {
      throw this.#ended ??
        new OuroborosError("flow_down", `flow ${this.fd} is down`);
    }
  }

  /**
   * Waits on this thread, in one poll(2), until one of `flows` (all of the
   * fast path) has a packet to read or has ended, or `timeoutMs` passed;
   * returns those that have (none on timeout). Their FRCT timers run
   * inside the wait. Gives the thread away as `readSync` does.
   */
  static readySync(flows: readonly Flow[], timeoutMs: number): Flow[] {
    const until = performance.now() + timeoutMs;
    const conns: BlockingConn[] = [];
    for (const f of flows) conns.push(f.#blockingConn("readySync"));
    for (;;) {
      const ready: Flow[] = [];
      let timerAt = Infinity;
      for (const f of flows) {
        if (f.#hasNow()) ready.push(f);
        else if (f.#feTimerAt < timerAt) timerAt = f.#feTimerAt;
      }
      if (ready.length > 0 || conns.length === 0) return ready;
      const now = performance.now();
      if (now >= timerAt) {
        for (const f of flows) if (now >= f.#feTimerAt) f.#feFire();
        continue;
      }
      if (now >= until) return ready;
      const woke = conns[0]!.waitAnyNow(conns, Math.min(until, timerAt) - now);
      for (const i of woke) flows[i]!.#reader.rearm();
    }
  }

  /** Whether a read would find a packet, or the flow's end, now. */
  #hasNow(): boolean {
    if (this.#ended !== undefined || this.#hasPacket()) return true;
    this.#pullNowOrEnd();
    return this.#ended !== undefined || this.#hasPacket();
  }

  /**
   * A packet waits to be read (`pending` also counts, on a reliable flow,
   * those that wait for an earlier one).
   */
  #hasPacket(): boolean {
    return this.#fe !== undefined ? this.#fe.readable : this.pending > 0;
  }

  #blockingConn(what: string): BlockingConn {
    const conn = this.#conn;
    if (!isBlocking(conn)) {
      throw new OuroborosError(
        "invalid",
        `${what} needs a flow of the fast path (io: "blocking")`,
      );
    }
    return conn;
  }

  /** `#pullNow`, ending the flow at the end of its stream. */
  #pullNowOrEnd(): void {
    if (this.#pullNow() === "end") this.#goneDown();
  }

  #waitPacket(opts: ReadOptions): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const onAbort = () => {
        cleanup();
        reject(new OuroborosError("timed_out", "read aborted"));
      };
      const cleanup = () => {
        if (timer !== undefined) clearTimeout(timer);
        this.#readDeadline = Infinity;
        opts.signal?.removeEventListener("abort", onAbort);
        if (this.#waiter === done) this.#waiter = undefined;
      };
      const done = () => {
        cleanup();
        resolve();
      };
      if (opts.signal?.aborted) {
        reject(new OuroborosError("timed_out", "read aborted"));
        return;
      }
      if (this.#waiter !== undefined) {
        reject(
          new OuroborosError(
            "invalid",
            "another read is already waiting on this flow",
          ),
        );
        return;
      }
      this.#waiter = done;
      opts.signal?.addEventListener("abort", onAbort);
      if (opts.timeoutMs !== undefined) {
        this.#readDeadline = performance.now() + opts.timeoutMs;
        timer = setTimeout(() => {
          cleanup();
          reject(
            new OuroborosError(
              "timed_out",
              `no packet within ${opts.timeoutMs} ms`,
            ),
          );
        }, opts.timeoutMs);
      }
    });
  }

  /** Sends one packet; waits only when the outgoing queue is full. */
  async write(packet: Uint8Array): Promise<void> {
    this.#checkWrite(packet);
    const fe = this.#fe;
    if (fe !== undefined) {
      while (!this.#feWrite(fe, packet)) {
        // The peer's window is closed: wait until it opens (the protocol
        // asks for it with rendez-vous packets meanwhile).
        await this.#feWait();
      }
      this.#feAfter();
      if (this.#writer.queued > 256 * 1024) await this.#writer.drained();
      if (this.#writer.closed) {
        throw this.#ended ??
          new OuroborosError("flow_down", `flow ${this.fd} is down`);
      }
      return;
    }
    if (!this.#writer.push(packet)) await this.#writer.drained();
    if (this.#writer.closed) {
      throw this.#ended ??
        new OuroborosError("flow_down", `flow ${this.fd} is down`);
    }
  }

  /**
   * Hands `packet` to the flow's protocol: true once it took it, false
   * while the peer's window is closed; throws once the flow is down.
   */
  #feWrite(fe: FlowEnd, packet: Uint8Array): boolean {
    const r = fe.write(packet, performance.now());
    if (r === "ok") return true;
    this.#feAfter();
    if (r !== "window_closed" || this.#ended !== undefined) {
      throw this.#ended ??
        new OuroborosError("flow_down", `flow ${this.fd} is down`);
    }
    return false;
  }

  #checkWrite(packet: Uint8Array): void {
    if (this.#ended !== undefined) throw this.#ended;
    if (packet.length > this.mtu) {
      throw new OuroborosError(
        "too_large",
        `packet of ${packet.length} bytes exceeds the flow's limit of ${this.mtu}`,
      );
    }
    if (packet.length === 0) {
      throw new OuroborosError("invalid", "empty packets cannot be sent");
    }
  }

  /** Resolves when every packet written so far has been handed to the IPCP. */
  async flush(): Promise<void> {
    await this.#writer.flushed();
  }

  get readable(): ReadableStream<Uint8Array> {
    this.#readable ??= new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        try {
          controller.enqueue(await this.read());
        } catch (e) {
          if (e instanceof OuroborosError && (e.code === "closed")) {
            controller.close();
          } else controller.error(e);
        }
      },
    });
    return this.#readable;
  }

  get writable(): WritableStream<Uint8Array> {
    this.#writable ??= new WritableStream<Uint8Array>({
      write: (chunk) => this.write(chunk),
      close: () => this.close(),
    });
    return this.#writable;
  }

  /**
   * Deallocates the flow. Packets already written are handed to the IPCP
   * first (waiting at most `lingerMs`); reads and writes end at once.
   */
  async close(lingerMs = 1000): Promise<void> {
    if (this.#ended !== undefined) return;
    const fe = this.#fe;
    if (fe !== undefined) {
      // Reliable flows linger until the peer has everything (or lingerMs).
      fe.close(performance.now());
      this.#feAfter();
      if (lingerMs > 0 && fe.state === "lingering") {
        let timer: ReturnType<typeof setTimeout> | undefined;
        let late = false;
        const timeout = new Promise<void>((r) =>
          timer = setTimeout(() => {
            late = true;
            r();
          }, lingerMs)
        );
        while (
          !late && fe.state === "lingering" && this.#ended === undefined
        ) {
          await Promise.race([this.#feWait(), timeout]);
        }
        clearTimeout(timer);
      }
      if (this.#ended !== undefined) return;
      // Whatever the linger, the last acknowledgement leaves: without it
      // the peer would retransmit what this end has already consumed.
      lingerMs = Math.max(lingerMs, FINAL_ACK_FLUSH_MS);
    }
    if (this.#writer.queued > 0 && lingerMs > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        this.#writer.flushed(),
        new Promise<void>((r) => timer = setTimeout(r, lingerMs)),
      ]);
      clearTimeout(timer);
    }
    this.#end(new OuroborosError("closed", `flow ${this.fd} was closed`));
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

const EMPTY = new Uint8Array(0);
