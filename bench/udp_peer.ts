/**
 * The raw-UDP reference for the benchmark: what two Deno processes reach
 * without Ouroboros in between. Run as its own process:
 *
 *   udp_peer.ts echo  --bind IP:PORT [--ms T]
 *   udp_peer.ts ping  --bind IP:PORT --to IP:PORT [-c N] [-s B]
 *   udp_peer.ts sink  --bind IP:PORT [--ms T]
 *   udp_peer.ts blast --bind IP:PORT --to IP:PORT [-s B] [--ms T]
 *
 * `echo` returns every datagram to its sender; `ping` sends 64-byte
 * datagrams one at a time (the next when the reply came) and prints one JSON
 * line with the round trips/s and every RTT; `blast` sends as fast as the
 * socket accepts for T ms, one packet at a time with a sequence number;
 * `sink` counts what arrives until T ms after the first packet (or 2 s of
 * silence) and prints one JSON line. All use one reused receive buffer.
 */

interface Args {
  mode: string;
  bind: Deno.NetAddr;
  to: Deno.NetAddr | undefined;
  count: number;
  size: number;
  ms: number;
}

function addr(s: string): Deno.NetAddr {
  const i = s.lastIndexOf(":");
  return {
    transport: "udp",
    hostname: s.slice(0, i),
    port: Number(s.slice(i + 1)),
  };
}

function parse(argv: string[]): Args {
  const a: Args = {
    mode: argv[0] ?? "",
    bind: addr("127.0.0.1:0"),
    to: undefined,
    count: 10_000,
    size: 64,
    ms: 10_000,
  };
  for (let i = 1; i < argv.length; i += 2) {
    const v = argv[i + 1] ?? "";
    switch (argv[i]) {
      case "--bind":
        a.bind = addr(v);
        break;
      case "--to":
        a.to = addr(v);
        break;
      case "-c":
        a.count = Number(v);
        break;
      case "-s":
        a.size = Number(v);
        break;
      case "--ms":
        a.ms = Number(v);
        break;
      default:
        throw new Error(`udp_peer: unknown argument ${argv[i]}`);
    }
  }
  return a;
}

function listen(a: Deno.NetAddr): Deno.DatagramConn {
  return Deno.listenDatagram({
    transport: "udp",
    hostname: a.hostname,
    port: a.port,
  });
}

async function echo(a: Args): Promise<void> {
  const sock = listen(a.bind);
  console.log("ready");
  const buf = new Uint8Array(65536);
  const end = setTimeout(() => sock.close(), a.ms);
  try {
    for (;;) {
      const [d, from] = await sock.receive(buf);
      await sock.send(d, from);
    }
  } catch {
    // closed
  } finally {
    clearTimeout(end);
  }
}

async function ping(a: Args): Promise<void> {
  const sock = listen(a.bind);
  const to = a.to!;
  const buf = new Uint8Array(65536);
  const pkt = new Uint8Array(a.size);
  const view = new DataView(pkt.buffer);
  const rtts = new Float64Array(a.count);
  // Warm up (JIT, ARP-free loopback path) before timing.
  for (let i = 0; i < 200; i++) {
    await sock.send(pkt, to);
    await sock.receive(buf);
  }
  const start = performance.now();
  for (let i = 0; i < a.count; i++) {
    view.setUint32(4, i);
    const t0 = performance.now();
    await sock.send(pkt, to);
    await sock.receive(buf);
    rtts[i] = performance.now() - t0;
  }
  const elapsed = performance.now() - start;
  sock.close();
  console.log(JSON.stringify({
    count: a.count,
    elapsedMs: elapsed,
    rtPerSec: a.count / (elapsed / 1000),
    rttMs: Array.from(rtts, (x) => Math.round(x * 1e4) / 1e4),
  }));
}

async function blast(a: Args): Promise<void> {
  const sock = listen(a.bind);
  const to = a.to!;
  const pkt = new Uint8Array(a.size);
  const view = new DataView(pkt.buffer);
  const end = performance.now() + a.ms;
  let seq = 0;
  let failed = 0;
  while (performance.now() < end) {
    // A small burst between clock reads.
    for (let k = 0; k < 16; k++) {
      view.setUint32(0, seq);
      try {
        await sock.send(pkt, to);
        seq++;
      } catch {
        failed++;
      }
    }
  }
  sock.close();
  console.log(JSON.stringify({ sent: seq, failed, ms: a.ms }));
}

async function sink(a: Args): Promise<void> {
  const sock = listen(a.bind);
  console.log("ready");
  const buf = new Uint8Array(65536);
  let packets = 0;
  let bytes = 0;
  let first = 0;
  let last = 0;
  let highest = -1;
  let outOfOrder = 0;
  let idle: ReturnType<typeof setTimeout> | undefined;
  const arm = (ms: number) => {
    clearTimeout(idle);
    idle = setTimeout(() => sock.close(), ms);
  };
  arm(30_000);
  try {
    for (;;) {
      const [d] = await sock.receive(buf);
      const now = performance.now();
      if (packets === 0) first = now;
      last = now;
      packets++;
      bytes += d.length;
      const seq = ((d[0]! << 24) | (d[1]! << 16) | (d[2]! << 8) | d[3]!) >>> 0;
      if (seq < highest) outOfOrder++;
      else highest = seq;
      if ((packets & 1023) === 0) arm(1000);
      if (now - first > a.ms + 3000) break;
    }
  } catch {
    // closed after the silence
  }
  clearTimeout(idle);
  try {
    sock.close();
  } catch { /* closed */ }
  console.log(JSON.stringify({
    packets,
    bytes,
    highest,
    outOfOrder,
    activeMs: last - first,
  }));
}

if (import.meta.main) {
  const a = parse(Deno.args);
  const run = { echo, ping, blast, sink }[a.mode];
  if (run === undefined) {
    console.error("udp_peer: mode is one of echo, ping, blast, sink");
    Deno.exit(2);
  }
  await run(a);
}
