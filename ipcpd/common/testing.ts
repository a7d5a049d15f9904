/**
 * Test helpers for the IPCPs: a fake irmd on a Unix socket in a fresh
 * runtime directory, which answers the IPCP's "flow request arrived" as a
 * test says and records the flows the IPCP reports ended; waiting for what
 * it saw, with a deadline; a stream of `[u32 length][payload]` frames read
 * with deadlines, and on it an application's end of a flow on the data
 * socket (lib/ipc/dataplane.ts); frames, status frames and packets that
 * say which they are; byte comparisons that say where bytes differ; an
 * IPCP with its real data path on the fake irmd (`ipcpRig`).
 */
import { assert } from "../../tests/assert.ts";
import { encodeAttach, encodeStatus } from "../../lib/ipc/dataplane.ts";
import { FrameReader, putU32 } from "../../lib/ipc/framing.ts";
import { connectCtrl, CtrlConn } from "../../lib/ipc/ctrl.ts";
import type { Req, Res } from "../../lib/ipc/proto.ts";
import { irmdSocketPath } from "../../lib/ipc/rundir.ts";
import { nameHashWith } from "../../lib/wire/name_hash.ts";
import type { Ipcp } from "./ipcp_main.ts";

/** How the fake irmd answers a flow request (throw to refuse it). */
export type OnFlowReq = (
  r: Req<"flow.req.arr">,
) => Res<"flow.req.arr"> | Promise<Res<"flow.req.arr">>;

export class FakeIrmd {
  /** The flow requests the IPCP made, in order. */
  readonly reqs: Req<"flow.req.arr">[] = [];
  /** The flows the IPCP said ended, in order. */
  readonly ended: Req<"flow.ended">[] = [];
  #wake: (() => void)[] = [];
  #irmdSide: CtrlConn | undefined;

  private constructor(
    readonly rundir: string,
    readonly listener: Deno.UnixListener,
    /** The IPCP's end of the control connection. */
    readonly ctrl: CtrlConn,
    public onFlowReq: OnFlowReq,
  ) {}

  /** A fake irmd in a new runtime directory, and a connection to it. */
  static async start(onFlowReq: OnFlowReq): Promise<FakeIrmd> {
    const rundir = await Deno.makeTempDir({ prefix: "o7s-local-test-" });
    const listener = Deno.listen({
      transport: "unix",
      path: irmdSocketPath(rundir),
    });
    const accepted = listener.accept();
    const ctrl = await connectCtrl(irmdSocketPath(rundir));
    const irmd = new FakeIrmd(rundir, listener, ctrl, onFlowReq);
    irmd.#irmdSide = new CtrlConn(await accepted, {
      "flow.req.arr": (r) => {
        irmd.reqs.push(r);
        irmd.#notify();
        return irmd.onFlowReq(r);
      },
      "flow.ended": (r) => {
        irmd.ended.push(r);
        irmd.#notify();
        return {};
      },
    });
    return irmd;
  }

  #notify(): void {
    const w = this.#wake;
    this.#wake = [];
    for (const f of w) f();
  }

  /** Waits until `check` holds for what the fake irmd saw, within `ms`. */
  async until(what: string, check: () => boolean, ms = 5000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!check()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${what}: not so within ${ms} ms`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((r) => {
        this.#wake.push(r);
        timer = setTimeout(r, left);
      });
      clearTimeout(timer);
    }
  }

  /** The handles of the flows reported ended, sorted. */
  endedHandles(): number[] {
    return this.ended.map((e) => e.handle).sort((a, b) => a - b);
  }

  async close(): Promise<void> {
    this.ctrl.close();
    await this.ctrl.done;
    this.#irmdSide?.close();
    await this.#irmdSide?.done;
    this.listener.close();
    await Deno.remove(this.rundir, { recursive: true });
  }
}

/** What a data path reported, in order; waiting for an event of it. */
export class EventLog<E> {
  readonly all: E[] = [];
  #wake: (() => void) | undefined;

  push(e: E): void {
    this.all.push(e);
    this.#wake?.();
  }

  /** The first event (from index `from`) that `match` takes, within 5 s. */
  async first<T extends E>(
    what: string,
    match: (e: E) => e is T,
    from = 0,
    timeoutMs = 5000,
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const e = this.all.slice(from).find(match);
      if (e !== undefined) return e;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${what} event within ${timeoutMs} ms`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((r) => {
        this.#wake = r;
        timer = setTimeout(r, left);
      });
      clearTimeout(timer);
    }
  }
}

/**
 * Polls `check` every 10 ms until it holds, within `ms` (for state that
 * sends no event, such as the data path's counters).
 */
export async function eventually(
  what: string,
  check: () => boolean,
  ms = 5000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) {
      throw new Error(`${what}: not so within ${ms} ms`);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A QoS spec of the raw cube's values, with a timeout of `timeout` ms. */
export function rawQos(timeout = 120_000): Req<"flow.req.arr">["qos"] {
  return {
    bandwidth: 0n,
    delay: 0xffff_ffff,
    loss: 1,
    ber: 1,
    maxGap: 0xffff_ffff,
    timeout,
    availability: 0,
    inOrder: 0,
  };
}

/**
 * A peer's end of a stream of `[u32 length][payload]` frames (an
 * application's on the data socket, a lower IPCP's on an N-1 flow): each
 * frame read within a deadline, frames written whole.
 */
export class FrameStream {
  readonly #reader: FrameReader;
  /** A read that outlived its deadline: the next call takes its frame. */
  #pending: Promise<Uint8Array | null> | undefined;

  constructor(readonly conn: Deno.UnixConn, maxFrame: number) {
    this.#reader = new FrameReader(conn, maxFrame);
  }

  /** The next frame's payload, or null at the end of the stream. */
  async next(timeoutMs = 5000): Promise<Uint8Array | null> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const read = this.#pending ??= this.#reader.next();
    try {
      const f = await Promise.race([
        read,
        new Promise<never>((_, reject) =>
          timer = setTimeout(
            () => reject(new Error("no frame in time")),
            timeoutMs,
          )
        ),
      ]);
      this.#pending = undefined;
      return f === null ? null : f.slice(4);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Whether the stream ends (or breaks: a socket closed with bytes unread
   * resets) next.
   */
  async ends(): Promise<boolean> {
    try {
      return await this.next() === null;
    } catch (e) {
      return e instanceof Deno.errors.ConnectionReset;
    }
  }

  /** Writes all of `frames`, in order. */
  async write(frames: Uint8Array[]): Promise<void> {
    const all = concat(frames);
    for (let off = 0; off < all.length;) {
      off += await this.conn.write(all.subarray(off));
    }
  }

  close(): void {
    try {
      this.conn.close();
    } catch { /* closed already */ }
  }
}

/** An application's end of a flow: a connection to the data socket. */
export class App extends FrameStream {
  private constructor(conn: Deno.UnixConn, maxFrame: number) {
    super(conn, maxFrame);
  }

  /** Connects to the data socket and sends the attach frame (and `then`). */
  static async attach(
    path: string,
    mtu: number,
    handle: number,
    token: Uint8Array,
    then: Uint8Array[] = [],
  ): Promise<App> {
    const conn = await Deno.connect({ transport: "unix", path });
    const app = new App(conn, mtu + 4);
    await app.write([frame(encodeAttach(handle, token)), ...then]);
    return app;
  }

  async status(): Promise<number> {
    const s = await this.next();
    assert(s !== null && s.length === 4, "a status frame");
    return new DataView(s.buffer).getInt32(0);
  }
}

/** `[u32 length][payload]`, a string payload in UTF-8. */
export function frame(payload: Uint8Array | string): Uint8Array {
  const p = typeof payload === "string"
    ? new TextEncoder().encode(payload)
    : payload;
  return lyingFrame(p, p.length);
}

/** A frame whose length says `length`, whatever its payload's is. */
export function lyingFrame(
  payload: Uint8Array | string,
  length: number,
): Uint8Array {
  const p = typeof payload === "string"
    ? new TextEncoder().encode(payload)
    : payload;
  const f = new Uint8Array(4 + p.length);
  putU32(f, 0, length);
  f.set(p, 4);
  return f;
}

/** A status frame (lib/ipc/dataplane.ts): 0, or a negated errno. */
export function statusFrame(status: number): Uint8Array {
  return frame(encodeStatus(status));
}

/** The parts, one after the other. */
export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Fails unless `got` holds `want`'s bytes, saying where they differ
 * (assertEquals would print every byte of a large packet: slowly).
 */
export function sameBytes(
  got: Uint8Array | null | undefined,
  want: Uint8Array,
  what = "bytes",
): void {
  if (got === null || got === undefined) throw new Error(`${what}: none`);
  if (got.length !== want.length) {
    throw new Error(`${what}: ${got.length} bytes, not ${want.length}`);
  }
  for (let i = 0; i < got.length; i++) {
    if (got[i] !== want[i]) {
      throw new Error(`${what}: byte ${i} is ${got[i]}, not ${want[i]}`);
    }
  }
}

/** sameBytes for each of a list, and the list's length. */
export function samePackets(
  got: Uint8Array[],
  want: Uint8Array[],
  what = "packets",
): void {
  if (got.length !== want.length) {
    throw new Error(`${what}: ${got.length}, not ${want.length}`);
  }
  got.forEach((g, i) => sameBytes(g, want[i]!, `${what}: ${i}`));
}

/** A packet of `n` bytes that says which it is (`seq`) all through. */
export function packet(seq: number, n: number): Uint8Array {
  const p = new Uint8Array(n);
  for (let i = 0; i < n; i++) p[i] = (seq * 31 + i * 7) & 0xff;
  return p;
}

/** An end of a flow: what an application attaches with. */
export interface FlowEnd {
  handle: number;
  token: Uint8Array;
}

/**
 * An IPCP with its data path on a fake irmd, bootstrapped in `layer` with
 * "oping" registered (SHA3-256, the layers' default): flows to it are
 * allocated, their two ends attached as applications, and all of it
 * ended by close().
 */
export interface IpcpRig<I extends Ipcp> {
  irmd: FakeIrmd;
  ipcp: I;
  allocate(): Promise<{ client: FlowEnd; server: FlowEnd }>;
  attach(end: FlowEnd, then?: Uint8Array[]): Promise<App>;
  close(): Promise<void>;
}

export async function ipcpRig<I extends Ipcp>(
  make: (rundir: string) => I,
  layer: string,
  mtu: number,
): Promise<IpcpRig<I>> {
  const irmd = await FakeIrmd.start(() => ({ oap: new Uint8Array([5]) }));
  const ipcp = make(irmd.rundir);
  ipcp.startDataSocket();
  ipcp.attachCtrl(irmd.ctrl);
  await ipcp.datapathThread;
  await ipcp.bootstrap({ layer });
  const hash = nameHashWith("SHA3_256", "oping");
  await ipcp.register("oping", hash);
  const apps: App[] = [];
  /** Allocates a flow; the two ends' handles and tokens. */
  const allocate = async () => {
    const n = irmd.reqs.length;
    const c = await ipcp.allocate({
      name: "oping",
      hash,
      qos: rawQos(),
      oap: new Uint8Array([1]),
      timeoutMs: 5000,
    });
    const s = irmd.reqs[n]!;
    return {
      client: { handle: c.handle, token: c.token },
      server: { handle: s.handle, token: s.token },
    };
  };
  const attach = async (end: FlowEnd, then: Uint8Array[] = []) => {
    const app = await App.attach(
      ipcp.dataPath,
      mtu,
      end.handle,
      end.token,
      then,
    );
    apps.push(app);
    return app;
  };
  return {
    irmd,
    ipcp,
    allocate,
    attach,
    async close() {
      await ipcp.stop();
      for (const a of apps) a.close();
      await irmd.close();
    },
  };
}
