/**
 * A UDP ping-pong on 127.0.0.1 between the main thread and a Worker, to
 * compare the round trips per second of this layer with those of Deno's own
 * datagram sockets. Not a test: run it by hand.
 *
 *   ./bin/deno run -A lib/sys/bench_pingpong.ts [--mode M] [--seconds S] [--size B]
 *
 * Modes:
 *   ffi    blocking sendto()/read() through lib/sys, one packet per call
 *   batch  blocking sendmmsg()/recvmmsg() through lib/sys, batches of one
 *   deno   Deno.listenDatagram (needs --unstable-net, or deno.json's
 *          "unstable": ["net"], which this project has)
 *
 * Each side bounces every packet back as it arrives; a 1-byte packet tells
 * the Worker to stop. The figure is round trips per second over S seconds
 * (default 5) of B-byte packets (default 64), after 2,000 round trips of
 * warm-up. Both sides block in the kernel between packets, as a C ping-pong
 * with blocking recv/sendto does.
 */
import { unwrap } from "./result.ts";
import {
  bindAddr,
  closeFd,
  connectAddr,
  localPort,
  PacketBatch,
  readFd,
  recvBatch,
  sendBatch,
  sendTo,
  udpSocket,
} from "./sys.ts";

/** The parts of a Worker's global scope used here (typed without the
 * worker lib, which would change the globals of every file checked with
 * this one). */
interface WorkerScope {
  postMessage(message: unknown): void;
  onmessage: ((e: MessageEvent<unknown>) => void) | null;
}

const scope = globalThis as unknown as WorkerScope;

type Mode = "ffi" | "batch" | "deno";

interface Start {
  readonly mode: Mode;
  readonly size: number;
  /** ffi, batch: the Worker's socket, connected to the main thread's. */
  readonly fd: number;
  /** deno: the main thread's port, to which the Worker answers. */
  readonly peerPort: number;
}

const HOST = "127.0.0.1";
const STOP_LEN = 1;
const WARMUP = 2000;

function isStart(x: unknown): x is Start {
  if (typeof x !== "object" || x === null) return false;
  const s = x as Record<string, unknown>;
  return (s.mode === "ffi" || s.mode === "batch" || s.mode === "deno") &&
    typeof s.size === "number" && typeof s.fd === "number" &&
    typeof s.peerPort === "number";
}

// The Worker's side: bounce packets until the stop packet.

function pongFfi(fd: number, size: number): void {
  const buf = new Uint8Array(Math.max(size, 16));
  for (;;) {
    const n = unwrap(readFd(fd, buf));
    if (n === STOP_LEN) return;
    unwrap(sendTo(fd, buf.subarray(0, n)));
  }
}

function pongBatch(fd: number, size: number): void {
  const batch = new PacketBatch(1, Math.max(size, 16));
  for (;;) {
    unwrap(recvBatch(fd, batch, 1));
    const n = batch.lens[0]!;
    if (n === STOP_LEN) return;
    unwrap(sendBatch(fd, batch, [batch.packet(0)]));
  }
}

async function pongDeno(
  peerPort: number,
  size: number,
  ready: (port: number) => void,
): Promise<void> {
  const conn = Deno.listenDatagram({
    hostname: HOST,
    port: 0,
    transport: "udp",
  });
  try {
    const own = conn.addr as Deno.NetAddr;
    ready(own.port);
    const peer: Deno.NetAddr = {
      transport: "udp",
      hostname: HOST,
      port: peerPort,
    };
    const buf = new Uint8Array(Math.max(size, 16));
    for (;;) {
      const [data] = await conn.receive(buf);
      if (data.length === STOP_LEN) return;
      await conn.send(data, peer);
    }
  } finally {
    conn.close();
  }
}

function workerMain(): void {
  scope.onmessage = async (e: MessageEvent<unknown>) => {
    const s = e.data;
    if (!isStart(s)) throw new Error(`bad start message ${JSON.stringify(s)}`);
    if (s.mode === "deno") {
      await pongDeno(s.peerPort, s.size, (port) => scope.postMessage({ port }));
    } else {
      scope.postMessage({ port: 0 });
      if (s.mode === "ffi") pongFfi(s.fd, s.size);
      else pongBatch(s.fd, s.size);
    }
    scope.postMessage({ done: true });
  };
}

// The main thread's side: ping, wait for the pong, count.

interface Figure {
  readonly roundTrips: number;
  readonly seconds: number;
}

function pingLoop(
  once: () => void,
  seconds: number,
): Figure {
  for (let i = 0; i < WARMUP; i++) once();
  const t0 = performance.now();
  const until = t0 + seconds * 1000;
  let n = 0;
  for (;;) {
    for (let i = 0; i < 256; i++) once();
    n += 256;
    const now = performance.now();
    if (now >= until) return { roundTrips: n, seconds: (now - t0) / 1000 };
  }
}

function nextMessage(w: Worker): Promise<Record<string, unknown>> {
  return new Promise((resolve) => {
    w.onmessage = (e: MessageEvent<Record<string, unknown>>) => resolve(e.data);
  });
}

async function runFfi(
  mode: "ffi" | "batch",
  size: number,
  seconds: number,
): Promise<Figure> {
  const a = unwrap(udpSocket("inet"));
  const b = unwrap(udpSocket("inet"));
  const w = new Worker(import.meta.url, { type: "module", name: "pong" });
  try {
    unwrap(bindAddr(a, HOST, 0));
    unwrap(bindAddr(b, HOST, 0));
    unwrap(connectAddr(b, HOST, unwrap(localPort(a))));
    unwrap(connectAddr(a, HOST, unwrap(localPort(b))));
    const started = nextMessage(w);
    w.postMessage({ mode, size, fd: b, peerPort: 0 } satisfies Start);
    await started;
    const done = nextMessage(w);
    const ping = new Uint8Array(size).fill(0x5a);
    let fig: Figure;
    if (mode === "ffi") {
      const buf = new Uint8Array(Math.max(size, 16));
      fig = pingLoop(() => {
        unwrap(sendTo(a, ping));
        unwrap(readFd(a, buf));
      }, seconds);
    } else {
      const batch = new PacketBatch(1, Math.max(size, 16));
      const pkts = [ping];
      fig = pingLoop(() => {
        unwrap(sendBatch(a, batch, pkts));
        unwrap(recvBatch(a, batch, 1));
      }, seconds);
    }
    unwrap(sendTo(a, new Uint8Array(STOP_LEN)));
    await done;
    return fig;
  } finally {
    w.terminate();
    closeFd(a);
    closeFd(b);
  }
}

async function runDeno(size: number, seconds: number): Promise<Figure> {
  const conn = Deno.listenDatagram({
    hostname: HOST,
    port: 0,
    transport: "udp",
  });
  const w = new Worker(import.meta.url, { type: "module", name: "pong" });
  try {
    const own = (conn.addr as Deno.NetAddr).port;
    const started = nextMessage(w);
    w.postMessage(
      { mode: "deno", size, fd: -1, peerPort: own } satisfies Start,
    );
    const { port } = await started;
    if (typeof port !== "number") throw new Error("no port from the worker");
    const done = nextMessage(w);
    const peer: Deno.NetAddr = { transport: "udp", hostname: HOST, port };
    const ping = new Uint8Array(size).fill(0x5a);
    const buf = new Uint8Array(Math.max(size, 16));
    const once = async () => {
      await conn.send(ping, peer);
      await conn.receive(buf);
    };
    for (let i = 0; i < WARMUP; i++) await once();
    const t0 = performance.now();
    const until = t0 + seconds * 1000;
    let n = 0;
    let now = t0;
    while (now < until) {
      for (let i = 0; i < 256; i++) await once();
      n += 256;
      now = performance.now();
    }
    await conn.send(new Uint8Array(STOP_LEN), peer);
    await done;
    return { roundTrips: n, seconds: (now - t0) / 1000 };
  } finally {
    w.terminate();
    conn.close();
  }
}

function option(args: string[], name: string, fallback: string): string {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1]! : fallback;
}

async function main(args: string[]): Promise<void> {
  const mode = option(args, "--mode", "ffi");
  const seconds = Number(option(args, "--seconds", "5"));
  const size = Number(option(args, "--size", "64"));
  if (mode !== "ffi" && mode !== "batch" && mode !== "deno") {
    throw new Error(`--mode ${mode}: ffi, batch or deno`);
  }
  if (!(seconds > 0) || !Number.isInteger(size) || size < 2 || size > 65507) {
    throw new Error("--seconds must be positive, --size from 2 to 65507");
  }
  const fig = mode === "deno"
    ? await runDeno(size, seconds)
    : await runFfi(mode, size, seconds);
  const rate = fig.roundTrips / fig.seconds;
  console.log(
    `${mode}: ${size} B UDP ping-pong on ${HOST}, main thread <-> Worker, ` +
      `${Deno.build.arch}: ${fig.roundTrips} round trips in ` +
      `${fig.seconds.toFixed(2)} s = ${Math.round(rate)} round trips/s ` +
      `(${(1e6 / rate).toFixed(1)} us each)`,
  );
}

const inWorker =
  typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !==
    "undefined";
if (inWorker) workerMain();
else if (import.meta.main) await main(Deno.args);
