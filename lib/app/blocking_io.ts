/**
 * The fast path of the application API: a flow whose packets move through
 * system calls made on the program's own thread (lib/sys), instead of
 * Deno's asynchronous sockets (about 2.5 times slower per packet here).
 *
 * A `SysStream` is the flow's Unix connection to its IPCP as a non-blocking
 * descriptor: reads and writes of what is there now (`readNow`,
 * `writeNow`), the thread's own waits for one stream or many (`waitNow`,
 * `waitAnyNow`, for the flow's synchronous calls), and the `read`/`write`
 * shape of a Deno connection. When the flow's pump or writer must wait, the
 * stream waits in the `Reactor`: one loop per thread that blocks
 * in poll(2) on every stream that waits, wakes the ready ones, and gives
 * the event loop one turn between polls (`EventLoopTurn`): the promises of
 * the woken flows run to their next wait, due timers fire (a read's
 * timeout, FRCT's timers: poll never sleeps past the deadlines the flows
 * tell it), and every few dozen turns Deno looks at its own sockets. While
 * nothing is ready it sleeps in poll for at most IDLE_SLICE_MS at a time,
 * and every IO_TURN_MS it gives Deno a whole turn of its event loop, so
 * that its sockets and signals (the irmd's control connection, Ctrl-C) are
 * not left waiting while the flows are idle.
 *
 * So a program that uses these flows gives its thread to them: while one of
 * them waits for a packet, the thread sleeps in poll(2), not in Deno's
 * event loop, and the program's other timers run late by up to
 * IDLE_SLICE_MS, its other sockets by up to IO_TURN_MS. That is the trade of the fast path; ordinary programs use
 * the default asynchronous flows. With `busy` the reactor never sleeps: it
 * looks again at once (the lowest latency, a whole CPU while it waits).
 */
import {
  closeFd,
  describe,
  ECONNRESET,
  EPIPE,
  POLLERR,
  POLLHUP,
  POLLIN,
  POLLNVAL,
  POLLOUT,
  PollSet,
  readFd,
  sendStream,
  setNonBlocking,
  type SysFailure,
  unixConnect,
} from "../sys/mod.ts";
import { EventLoopTurn } from "./turn.ts";

export { EventLoopTurn };

/** The longest poll(2) while nothing is ready, before the event loop turns. */
export const IDLE_SLICE_MS = 2;
/**
 * While nothing is ready, Deno's own sockets and signals (the irmd's
 * control connection, Ctrl-C) get a whole turn of its event loop, a 0 ms
 * timer of about 2 ms, this often. A turn between polls runs promises and
 * due timers, but Deno looks at its sockets only every few dozen turns:
 * often enough while packets keep it busy, not while it sleeps in slices.
 */
export const IO_TURN_MS = 20;
/** And at least this often while packets keep coming. */
export const GUARD_MS = 100;

/** How long a connect waits for a full backlog to clear. */
export const CONNECT_MS = 5000;
const CONNECT_RETRY_MS = 5;

/** Why a stream failed, for the flow's message. */
export class StreamError extends Error {
  constructor(readonly failure: SysFailure) {
    super(describe(failure));
  }
}

/** A flow's Unix connection as a non-blocking descriptor. */
export class SysStream {
  #fd: number;
  #closed = false;
  /** For `waitNow`, made at its first call. */
  #polls: PollSet | undefined;
  /** Woken when the descriptor may be readable / writable again. */
  readWaiter: (() => void) | undefined;
  writeWaiter: (() => void) | undefined;
  /**
   * When the owner next needs the thread back (a read timeout, a protocol
   * timer), as performance.now() time; Infinity if never.
   */
  deadline: () => number = () => Infinity;

  private constructor(fd: number, private readonly reactor: Reactor) {
    this.#fd = fd;
  }

  /**
   * Connects to a Unix stream socket, without blocking the thread: a
   * listener whose backlog is full (an IPCP that is not accepting for a
   * while) makes a non-blocking connect fail with EAGAIN, and it is tried
   * again every CONNECT_RETRY_MS for CONNECT_MS, the event loop running
   * meanwhile; then it fails.
   */
  static async connect(
    path: string,
    reactor: Reactor = defaultReactor,
    waitMs: number = CONNECT_MS,
  ): Promise<SysStream> {
    const until = performance.now() + waitMs;
    for (;;) {
      const fd = unixConnect(path, { nonBlocking: true });
      if (fd.ok) return new SysStream(fd.value, reactor);
      if (!fd.wouldBlock || performance.now() >= until) {
        throw new StreamError(fd);
      }
      await new Promise((r) => setTimeout(r, CONNECT_RETRY_MS));
    }
  }

  /** Takes over a connected stream descriptor (made non-blocking). */
  static adopt(fd: number, reactor: Reactor = defaultReactor): SysStream {
    const nb = setNonBlocking(fd, true);
    if (!nb.ok) throw new StreamError(nb);
    return new SysStream(fd, reactor);
  }

  get fd(): number {
    return this.#fd;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Reads what is there (at most p.length bytes); null at the end of the
   * stream (the IPCP closed it, or this end did). Waits in the reactor
   * while there is nothing. (A flow reads with `readNow` instead, and its
   * frame reader saves the read that would come back empty.)
   */
  async read(p: Uint8Array): Promise<number | null> {
    for (;;) {
      const n = this.tryRead(p);
      if (n !== 0) return n;
      await this.readable();
    }
  }

  /**
   * Reads what is there without waiting: the bytes read, 0 when nothing
   * is, null at the end of the stream.
   */
  tryRead(p: Uint8Array): number | null {
    if (this.#closed) return null;
    const r = readFd(this.#fd, p);
    if (r.ok) return r.value === 0 ? null : r.value;
    if (r.wouldBlock) return 0;
    if (r.errno === ECONNRESET) return null;
    throw new StreamError(r);
  }

  /** `tryRead`, as the frame reader's NowReader. */
  readNow(p: Uint8Array): number | null {
    return this.tryRead(p);
  }

  /** Resolves when the descriptor may be readable (in the reactor). */
  readable(): Promise<void> {
    return this.reactor.wait(this, POLLIN);
  }

  /**
   * Blocks this thread in poll(2) until one of `streams` may be readable
   * (or has hung up, or is closed), or `timeoutMs` passed: the indices in
   * `streams` of those that may be ([] on timeout).
   */
  waitAnyNow(streams: readonly SysStream[], timeoutMs: number): number[] {
    const polls = this.#polls ??= new PollSet(Math.max(1, streams.length));
    polls.clear();
    const ready: number[] = [];
    const index: number[] = [];
    for (let i = 0; i < streams.length; i++) {
      const s = streams[i]!;
      if (s.#closed) ready.push(i);
      else {
        polls.add(s.#fd, POLLIN);
        index.push(i);
      }
    }
    if (ready.length > 0) return ready;
    const r = polls.wait(
      timeoutMs >= 2 ** 31 - 1 ? -1 : Math.max(0, timeoutMs),
    );
    if (!r.ok) throw new StreamError(r);
    if (r.value > 0) {
      for (let j = 0; j < index.length; j++) {
        if (polls.revents(j) !== 0) ready.push(index[j]!);
      }
    }
    return ready;
  }

  /** Resolves when the descriptor may be writable (in the reactor). */
  writable(): Promise<void> {
    return this.reactor.wait(this, POLLOUT);
  }

  /**
   * Writes what the socket takes now, without waiting: the bytes written,
   * 0 when it is full.
   */
  writeNow(p: Uint8Array): number {
    if (this.#closed) throw new Error("the flow's connection is closed");
    const r = sendStream(this.#fd, p);
    this.reactor.noteWrite();
    if (r.ok) return r.value;
    if (r.wouldBlock) return 0;
    if (r.errno === EPIPE || r.errno === ECONNRESET) {
      throw new Error("the IPCP closed the flow's connection");
    }
    throw new StreamError(r);
  }

  /**
   * Blocks this thread in poll(2) until the descriptor is readable or
   * writable, as `what` says, or `timeoutMs` passed: whether it is (a
   * hang-up or an error counts as ready: the next read or write says
   * which). Nothing else of the program runs meanwhile.
   */
  waitNow(what: "read" | "write", timeoutMs: number): boolean {
    if (this.#closed) return true;
    const polls = this.#polls ??= new PollSet(1);
    polls.clear();
    polls.add(this.#fd, what === "read" ? POLLIN : POLLOUT);
    // poll(2) takes an int of milliseconds; beyond it, no limit.
    const r = polls.wait(
      timeoutMs >= 2 ** 31 - 1 ? -1 : Math.max(0, timeoutMs),
    );
    if (!r.ok) throw new StreamError(r);
    return r.value > 0;
  }

  /** Writes some of `p` (all of it unless the socket is full). */
  async write(p: Uint8Array): Promise<number> {
    for (;;) {
      const n = this.writeNow(p);
      if (n > 0 || p.length === 0) return n;
      await this.writable();
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.reactor.forget(this);
    closeFd(this.#fd);
    this.#wake(POLLIN | POLLOUT);
  }

  /** Wakes the waiters the events concern (hang-ups and errors wake both). */
  wakeFor(revents: number): void {
    this.#wake(
      (revents & (POLLERR | POLLHUP | POLLNVAL)) !== 0
        ? POLLIN | POLLOUT
        : revents,
    );
  }

  #wake(events: number): void {
    if ((events & POLLIN) !== 0) {
      const w = this.readWaiter;
      this.readWaiter = undefined;
      w?.();
    }
    if ((events & POLLOUT) !== 0) {
      const w = this.writeWaiter;
      this.writeWaiter = undefined;
      w?.();
    }
  }
}

/** A timer of 0 ms: a whole turn of Deno's event loop, its I/O included. */
function timerTurn(): Promise<void> {
  return new Promise((r) => setTimeout(r, 0));
}

/** The poll(2) loop of one thread's blocking streams. */
export class Reactor {
  #waiting = new Set<SysStream>();
  #running = false;
  #polls = new PollSet(16);
  #order: SysStream[] = [];
  #turn: EventLoopTurn | undefined;
  /** Never sleep in poll(2): look again at once (`busy` polling). */
  busy = false;
  /** Rounds made and rounds that slept, for the tests and the bench. */
  rounds = 0;
  idleRounds = 0;
  /**
   * Writes made right after a round that slept and found nothing: a write
   * that was on its way when poll(2) went to sleep, and so waited for the
   * slice to end (or a write a timer made, which is not late). The tests
   * count them where no timer writes.
   */
  lateWrites = 0;
  #sleptIdle = false;
  /** poll(2) failed: every wait fails from then on. */
  #broken: SysFailure | undefined;

  /** A stream wrote: counted as late if the last round slept for nothing. */
  noteWrite(): void {
    if (this.#sleptIdle) {
      this.lateWrites++;
      this.#sleptIdle = false;
    }
  }

  /**
   * Resolves when the stream may be readable (POLLIN) or writable (POLLOUT)
   * again; one waiter of each kind per stream. Rejects once poll(2) itself
   * has failed (a fault no retry mends), rather than spin.
   */
  wait(s: SysStream, events: typeof POLLIN | typeof POLLOUT): Promise<void> {
    if (this.#broken !== undefined) {
      return Promise.reject(new StreamError(this.#broken));
    }
    if (s.closed) return Promise.resolve();
    const read = events === POLLIN;
    if ((read ? s.readWaiter : s.writeWaiter) !== undefined) {
      return Promise.reject(
        new Error(`another ${read ? "read" : "write"} waits on this stream`),
      );
    }
    const p = new Promise<void>((resolve) => {
      if (read) s.readWaiter = resolve;
      else s.writeWaiter = resolve;
    });
    this.#waiting.add(s);
    if (!this.#running) void this.#run();
    return p;
  }

  /** A closed stream: no longer polled. */
  forget(s: SysStream): void {
    this.#waiting.delete(s);
  }

  /** Whether the loop is running (some stream waits). */
  get running(): boolean {
    return this.#running;
  }

  async #run(): Promise<void> {
    this.#running = true;
    this.#turn ??= new EventLoopTurn();
    const turn = this.#turn;
    let lastTimerTurn = performance.now();
    try {
      // Started from inside a wait: whatever else is under way (another
      // flow's write) runs before the first poll may sleep.
      await turn.next();
      while (this.#waiting.size > 0) {
        this.rounds++;
        const polls = this.#polls;
        const order = this.#order;
        polls.clear();
        order.length = 0;
        let deadline = Infinity;
        for (const s of this.#waiting) {
          const ev = (s.readWaiter !== undefined ? POLLIN : 0) |
            (s.writeWaiter !== undefined ? POLLOUT : 0);
          if (ev === 0 || s.closed) {
            this.#waiting.delete(s);
            continue;
          }
          polls.add(s.fd, ev);
          order.push(s);
          const d = s.deadline();
          if (d < deadline) deadline = d;
        }
        if (order.length === 0) break;
        let now = performance.now();
        const timeout = this.busy
          ? 0
          : Math.max(0, Math.min(IDLE_SLICE_MS, deadline - now));
        const r = polls.wait(timeout);
        this.#sleptIdle = false;
        let woke = false;
        if (!r.ok) {
          // Nothing a retry would fix (EINTR is retried below poll): every
          // waiter is woken, and its next wait fails with the reason.
          this.#broken = r;
          for (const s of order) s.wakeFor(POLLERR);
          woke = true;
        } else if (r.value > 0) {
          for (let i = 0; i < order.length; i++) {
            const ev = polls.revents(i);
            if (ev !== 0) order[i]!.wakeFor(ev);
          }
          woke = true;
        }
        now = performance.now();
        if (!woke) {
          this.idleRounds++;
          this.#sleptIdle = timeout > 0;
        }
        const sinceTimer = now - lastTimerTurn;
        if (sinceTimer >= GUARD_MS || !woke && sinceTimer >= IO_TURN_MS) {
          await timerTurn();
          lastTimerTurn = performance.now();
        } else {
          // Promises and due timers (a read's timeout, FRCT's) run here.
          await turn.next();
        }
      }
    } finally {
      this.#running = false;
      this.#sleptIdle = false;
      if (this.#waiting.size === 0) {
        this.#turn?.close();
        this.#turn = undefined;
      } else {
        // Someone waits again already (a wait between the last round and
        // here): keep serving, from a fresh task.
        queueMicrotask(() => {
          if (!this.#running && this.#waiting.size > 0) void this.#run();
        });
      }
    }
  }
}

/** The reactor of the main thread (each Worker importing this has its own). */
export const defaultReactor: Reactor = new Reactor();
