/**
 * FRCT end to end through an impairment relay (tests/impair.ts) between
 * two nodes: reordering, duplication, delay with jitter, corruption (with
 * the CRC asked for through the API, `ber: 0`) and a mix of everything
 * with loss. Over "data" every packet arrives exactly once, in order, with
 * equal SHA-256 hashes, in both directions at once; with corruption the
 * receiving flows count bad CRCs and deliver no damaged packet. Over
 * "best" nothing is ever delivered twice nor after a newer packet.
 *
 * The test process is both applications: bound to the name on the server
 * node, it accepts; on the client node it allocates. The client's hosts
 * file points the name at the relay, which impersonates each IPCP to the
 * other (see tests/impair.ts).
 */
import { assert, assertEquals } from "./assert.ts";
import { Node } from "./harness.ts";
import {
  type Direction,
  type Impairment,
  ImpairRelay,
  type UdpAddr,
} from "./impair.ts";
import { xorshift32 } from "./rng.ts";
import { together, within } from "./deadline.ts";
import { type Flow, Ouroboros, type QosSpec } from "../lib/app/dev.ts";
import { QOS_CUBES } from "../lib/wire/udp_wire.ts";
import { nameHashHex } from "../lib/wire/name_hash.ts";

const SERVER_IP = "127.0.0.81";
const CLIENT_IP = "127.0.0.82";
/** The relay's socket the client sends to (the name's address in its hosts file). */
const RELAY_CLIENT_FACING = "127.0.0.83";
/** The relay's socket the server takes for the client. */
const RELAY_SERVER_FACING = "127.0.0.84";
const NAME = "frct-sink";
/** Per read: far above what any transfer here needs between two packets. */
const READ_TIMEOUT_MS = 20_000;
/** Per test transfer, both directions. */
const TRANSFER_DEADLINE_MS = 120_000;

function nodeConfig(ip: string, port: number, reg: boolean): string {
  return `[udp.wifi1]
bootstrap="wifi-network"
ip="${ip}"
port=${port}
hosts="@DIR@/hosts"
${reg ? `reg=["${NAME}"]\n` : ""}`;
}

interface Relayed {
  relay: ImpairRelay;
  /** client side (allocated) and server side (accepted) of one flow */
  fa: Flow;
  fb: Flow;
  close: () => Promise<void>;
}

/**
 * Two nodes on `port` talking through a relay, and one flow of `qos`
 * between them, allocated before any impairment.
 */
async function relayedFlow(
  port: number,
  qos: QosSpec,
  seed: number,
): Promise<Relayed> {
  const addr = (hostname: string): UdpAddr => ({ hostname, port });
  const cleanup: (() => Promise<void>)[] = [];
  const close = async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  };
  try {
    const relay = ImpairRelay.start({
      clientFacing: addr(RELAY_CLIENT_FACING),
      serverFacing: addr(RELAY_SERVER_FACING),
      client: addr(CLIENT_IP),
      server: addr(SERVER_IP),
      seed,
    });
    cleanup.push(() => relay.close());
    const server = await Node.start("impair-server", {
      config: nodeConfig(SERVER_IP, port, true),
      hosts: "",
      ready: new RegExp(`Registered ${NAME} with IPCP`),
    });
    cleanup.push(() => server.close());
    const client = await Node.start("impair-client", {
      config: nodeConfig(CLIENT_IP, port, false),
      hosts: `${RELAY_CLIENT_FACING} ${nameHashHex(NAME)} #${NAME}\n`,
      ready: /Bootstrapped IPCP \d+ in layer/,
    });
    cleanup.push(() => client.close());
    const b = await Ouroboros.connect({
      rundir: server.rundir,
      prog: "impair-sink",
    });
    cleanup.push(() => b.close());
    const bound = await server.run("irm", [
      "bind",
      "process",
      String(Deno.pid),
      "name",
      NAME,
    ]);
    assertEquals(bound.code, 0, bound.stderr);
    const a = await Ouroboros.connect({
      rundir: client.rundir,
      prog: "impair-source",
    });
    cleanup.push(() => a.close());
    const accepting = b.accept({ timeoutMs: 15_000 });
    accepting.catch(() => {}); // its failure is the allocation's too
    const fa = await a.allocate(NAME, { qos, timeoutMs: 15_000 });
    const fb = await accepting;
    // The flow's management frames went through the relay.
    assertEquals(relay.counters("toServer").mgmt, 1);
    assertEquals(relay.counters("toClient").mgmt, 1);
    return { relay, fa, fb, close };
  } catch (e) {
    await close();
    throw e;
  }
}

/** Packet `i` of a stream: its number, then content drawn from the seed. */
function packetOf(seed: number, i: number, size: number): Uint8Array {
  const p = new Uint8Array(size);
  const v = new DataView(p.buffer);
  const rng = xorshift32((seed ^ Math.imul(i + 1, 0x9e37_79b1)) >>> 0);
  for (let k = 4; k + 4 <= size; k += 4) v.setUint32(k, rng());
  for (let k = size & ~3; k < size; k++) p[k] = rng() & 0xff;
  v.setUint32(0, i);
  return p;
}

function seqOf(p: Uint8Array): number {
  return new DataView(p.buffer, p.byteOffset, 4).getUint32(0);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

async function sha256hex(parts: Uint8Array[]): Promise<string> {
  let n = 0;
  for (const p of parts) n += p.length;
  const all = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    all.set(p, o);
    o += p.length;
  }
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", all));
  return Array.from(d, (x) => x.toString(16).padStart(2, "0")).join("");
}

/**
 * A reliable transfer: `count` packets from `from` to `to` while `to`
 * reads. Each packet must arrive exactly once and in order, undamaged; the
 * hashes of what was sent and what arrived must be equal; then one more
 * packet (number `count`) must be the next to arrive.
 */
async function reliableTransfer(
  from: Flow,
  to: Flow,
  count: number,
  size: number,
  seed: number,
  label: string,
): Promise<void> {
  const sent: Uint8Array[] = [];
  const received: Uint8Array[] = [];
  const reading = (async () => {
    for (let i = 0; i <= count; i++) {
      const p = await to.read({ timeoutMs: READ_TIMEOUT_MS });
      const seq = seqOf(p);
      if (seq !== i) {
        throw new Error(
          `${label}: packet ${i} expected, packet ${seq} delivered (seed ${seed})`,
        );
      }
      if (!sameBytes(p, packetOf(seed, i, size))) {
        throw new Error(
          `${label}: packet ${i} delivered damaged (seed ${seed})`,
        );
      }
      if (i < count) received.push(p.slice());
    }
  })();
  const writing = (async () => {
    for (let i = 0; i <= count; i++) {
      const p = packetOf(seed, i, size);
      if (i < count) sent.push(p);
      await from.write(p);
    }
  })();
  await Promise.all([reading, writing]);
  assertEquals(received.length, count, label);
  assertEquals(await sha256hex(received), await sha256hex(sent), label);
}

/** Both directions at once; impairments from the moment the flow is up. */
async function reliableBothWays(
  r: Relayed,
  count: number,
  size: number,
  seed: number,
): Promise<void> {
  await together(
    [
      reliableTransfer(r.fa, r.fb, count, size, seed, "client to server"),
      reliableTransfer(r.fb, r.fa, count, size, seed + 1, "server to client"),
    ],
    TRANSFER_DEADLINE_MS,
    "the transfer",
    () => abortFlows(r),
  );
}

function show(r: Relayed): string {
  const c = (d: Direction) => JSON.stringify(r.relay.counters(d));
  return `relay toServer ${c("toServer")}\nrelay toClient ${
    c("toClient")
  }\nclient flow ${JSON.stringify(r.fa.stats)}\nserver flow ${
    JSON.stringify(r.fb.stats)
  }`;
}

/** Ends both flows at once (a failed transfer). */
async function abortFlows(r: Relayed): Promise<void> {
  await Promise.all([r.fa.close(0), r.fb.close(0)]);
}

/** Closes both ends (each lingering until the other has everything). */
async function closeFlows(r: Relayed): Promise<void> {
  await Promise.all([r.fa.close(10_000), r.fb.close(10_000)]);
}

const COUNT = 2000;
const SIZE = 1000;

interface Case {
  name: string;
  port: number;
  seed: number;
  qos: QosSpec;
  toServer: Impairment;
  toClient: Impairment;
  /** what must show that the impairment was met */
  check: (r: Relayed) => void;
}

const DATA_CRC: QosSpec = { ...QOS_CUBES.data, ber: 0 };

const CASES: Case[] = [
  {
    name: "reordering (10% held behind 3 later packets / for 8 ms)",
    port: 3811,
    seed: 11,
    qos: QOS_CUBES.data,
    toServer: { reorder: { p: 0.1, behind: 3 } },
    toClient: { reorder: { p: 0.1, holdMs: 8 } },
    check: (r) => {
      assert(r.relay.counters("toServer").reordered > 0, "nothing reordered");
      assert(r.relay.counters("toClient").reordered > 0, "nothing reordered");
      assert(r.fb.stats!.outOfOrder > 0, "nothing arrived out of order");
      assert(r.fa.stats!.outOfOrder > 0, "nothing arrived out of order");
    },
  },
  {
    name: "duplication (10%, the copy within 0-3 ms)",
    port: 3812,
    seed: 12,
    qos: QOS_CUBES.data,
    toServer: { duplicate: 0.1 },
    toClient: { duplicate: 0.1, delay: { ms: 0, jitterMs: 3 } },
    check: (r) => {
      assert(r.relay.counters("toServer").duplicated > 0, "no duplicate");
      assert(r.fb.stats!.duplicates > 0, "no duplicate reached the server");
      assert(r.fa.stats!.duplicates > 0, "no duplicate reached the client");
    },
  },
  {
    name: "delay with jitter (3 ms + 0-6 ms)",
    port: 3813,
    seed: 13,
    qos: QOS_CUBES.data,
    toServer: { delay: { ms: 3, jitterMs: 6 } },
    toClient: { delay: { ms: 3, jitterMs: 6 } },
    check: (r) => {
      assert(r.relay.counters("toServer").delayed > 0, "nothing delayed");
      assert(r.fb.stats!.outOfOrder > 0, "the jitter reordered nothing");
    },
  },
  {
    name: "corruption (3% with one bit flipped) on a flow with the CRC (ber 0)",
    port: 3814,
    seed: 14,
    qos: DATA_CRC,
    toServer: { corrupt: 0.03 },
    toClient: { corrupt: 0.03 },
    check: (r) => {
      assert(r.relay.counters("toServer").corrupted > 0, "nothing corrupted");
      assert(r.fb.stats!.badCrc > 0, "the server's flow saw no bad CRC");
      assert(r.fa.stats!.badCrc > 0, "the client's flow saw no bad CRC");
    },
  },
  {
    name:
      "everything at once: 2% loss, 5% duplicates, 5% reordered, 1 ms + 0-2 ms, 2% corrupted, with the CRC",
    port: 3815,
    seed: 15,
    qos: DATA_CRC,
    toServer: {
      drop: 0.02,
      duplicate: 0.05,
      reorder: { p: 0.05, behind: 2 },
      delay: { ms: 1, jitterMs: 2 },
      corrupt: 0.02,
    },
    toClient: {
      drop: 0.02,
      duplicate: 0.05,
      reorder: { p: 0.05, holdMs: 5 },
      delay: { ms: 1, jitterMs: 2 },
      corrupt: 0.02,
    },
    check: (r) => {
      assert(r.relay.counters("toServer").dropped > 0, "nothing dropped");
      assert(r.fa.stats!.retransmitted > 0, "the loss cost no retransmission");
      assert(r.fb.stats!.retransmitted > 0, "the loss cost no retransmission");
      assert(r.fb.stats!.badCrc > 0, "the server's flow saw no bad CRC");
      assert(r.fa.stats!.badCrc > 0, "the client's flow saw no bad CRC");
    },
  },
];

for (const c of CASES) {
  Deno.test(`data through the relay, ${c.name}: ${COUNT} packets each way at once, exactly once, in order, equal hashes`, async () => {
    const r = await relayedFlow(c.port, c.qos, c.seed);
    try {
      r.relay.set("toServer", c.toServer);
      r.relay.set("toClient", c.toClient);
      try {
        await reliableBothWays(r, COUNT, SIZE, c.seed * 1000);
        c.check(r);
      } catch (e) {
        console.log(show(r));
        throw e;
      }
      await closeFlows(r);
    } finally {
      await r.close();
    }
  });
}

/**
 * How far a writer on a "best" flow may run ahead of the newest packet
 * delivered: a best flow has no flow control, and a writer that ran free
 * would mostly measure the sockets' buffers.
 */
const BEST_AHEAD = 64;
/** A writer waiting on its reader writes again after this long regardless. */
const BEST_RESUME_MS = 100;

Deno.test("best through the relay (3% loss, 10% duplicates, 10% reordered, 1 ms delay): never a duplicate, never older than what was delivered", async () => {
  const seed = 21;
  const r = await relayedFlow(3816, QOS_CUBES.best, seed);
  const imp: Impairment = {
    drop: 0.03,
    duplicate: 0.1,
    reorder: { p: 0.1, behind: 3 },
    delay: { ms: 1 },
  };
  try {
    r.relay.set("both", imp);
    const oneWay = async (
      from: Flow,
      to: Flow,
      dir: Direction,
      s: number,
    ): Promise<number[]> => {
      const got: number[] = [];
      let newest = -1;
      let progress: (() => void) | undefined;
      let done = false;
      const reading = (async () => {
        try {
          for (;;) {
            const p = await to.read({ timeoutMs: READ_TIMEOUT_MS });
            const seq = seqOf(p);
            if (seq <= newest) {
              throw new Error(
                `${dir}: packet ${seq} delivered after packet ${newest} (seed ${seed})`,
              );
            }
            newest = seq;
            progress?.();
            if (seq >= COUNT) return; // an end marker
            if (!sameBytes(p, packetOf(s, seq, SIZE))) {
              throw new Error(`${dir}: packet ${seq} delivered damaged`);
            }
            got.push(seq);
          }
        } finally {
          done = true;
          progress?.();
        }
      })();
      /** The reader's next delivery, or BEST_RESUME_MS (all in flight lost). */
      const readerMoves = async () => {
        let timer: ReturnType<typeof setTimeout> | undefined;
        await new Promise<void>((res) => {
          progress = res;
          timer = setTimeout(res, BEST_RESUME_MS);
        });
        progress = undefined;
        clearTimeout(timer);
      };
      for (let i = 0; i < COUNT && !done; i++) {
        while (i - newest > BEST_AHEAD && !done) await readerMoves();
        await from.write(packetOf(s, i, SIZE));
      }
      // End markers pass unimpaired; sent until the reader has seen one.
      r.relay.set(dir, {});
      for (let i = COUNT; !done; i++) {
        await from.write(packetOf(s, i, SIZE));
        await readerMoves();
      }
      await reading;
      return got;
    };
    let up: number[] = [];
    let down: number[] = [];
    try {
      [up = [], down = []] = await together(
        [
          oneWay(r.fa, r.fb, "toServer", seed * 1000),
          oneWay(r.fb, r.fa, "toClient", seed * 1000 + 1),
        ],
        TRANSFER_DEADLINE_MS,
        "the transfer",
        () => abortFlows(r),
      );
      for (const [d, f] of [["toServer", r.fb], ["toClient", r.fa]] as const) {
        const rc = r.relay.counters(d);
        assert(
          rc.dropped > 0 && rc.duplicated > 0 && rc.reordered > 0,
          `${d}: the relay did not impair as told`,
        );
        assert(
          f.stats!.droppedLate > 0,
          `${d}: no late or duplicate packet was refused`,
        );
      }
      // Lost packets stay lost, but most of them got through.
      assert(up.length > COUNT / 2, `only ${up.length} arrived`);
      assert(down.length > COUNT / 2, `only ${down.length} arrived`);
    } catch (e) {
      console.log(show(r));
      throw e;
    }
    await closeFlows(r);
  } finally {
    await r.close();
  }
});

Deno.test("the relay forwards each way between the sockets the IPCPs expect, and impairs as told", async () => {
  const port = 3817;
  const client = Deno.listenDatagram({
    transport: "udp",
    hostname: CLIENT_IP,
    port,
  });
  const server = Deno.listenDatagram({
    transport: "udp",
    hostname: SERVER_IP,
    port,
  });
  const stray = Deno.listenDatagram({
    transport: "udp",
    hostname: CLIENT_IP,
    port: port + 1,
  });
  const relay = ImpairRelay.start({
    clientFacing: { hostname: RELAY_CLIENT_FACING, port },
    serverFacing: { hostname: RELAY_SERVER_FACING, port },
    client: { hostname: CLIENT_IP, port },
    server: { hostname: SERVER_IP, port },
    seed: 7,
  });
  const toRelay = { transport: "udp" as const, port };
  const data = (eid: number, n: number, len = 16) => {
    const d = new Uint8Array(len);
    new DataView(d.buffer).setUint32(0, eid);
    if (len >= 8) new DataView(d.buffer).setUint32(4, n);
    return d;
  };
  const buf = new Uint8Array(2048);
  const recv = async (sock: Deno.DatagramConn) => {
    const [d, a] = await within(sock.receive(buf), 5000, "a datagram");
    return { d: d.slice(), from: a as Deno.NetAddr };
  };
  /** The numbers of the next `n` datagrams at the server. */
  const seqs = async (n: number) => {
    const got = [];
    for (let i = 0; i < n; i++) {
      got.push(new DataView((await recv(server)).d.buffer).getUint32(4));
    }
    return got;
  };
  try {
    // Clean: each side sees the other at the address it sends to.
    await client.send(data(5, 1), {
      ...toRelay,
      hostname: RELAY_CLIENT_FACING,
    });
    const s1 = await recv(server);
    assertEquals(s1.from.hostname, RELAY_SERVER_FACING);
    assertEquals(s1.from.port, port);
    assertEquals(s1.d, data(5, 1));
    await server.send(data(6, 2), {
      ...toRelay,
      hostname: RELAY_SERVER_FACING,
    });
    const c1 = await recv(client);
    assertEquals(c1.from.hostname, RELAY_CLIENT_FACING);
    assertEquals(c1.d, data(6, 2));

    // Drop everything: management frames still pass, data does not.
    relay.set("toServer", { drop: 1 });
    await client.send(data(5, 3), {
      ...toRelay,
      hostname: RELAY_CLIENT_FACING,
    });
    await client.send(data(0, 4), {
      ...toRelay,
      hostname: RELAY_CLIENT_FACING,
    });
    assertEquals((await recv(server)).d, data(0, 4));
    assertEquals(relay.counters("toServer").dropped, 1);

    // A stranger's datagram is not forwarded.
    await stray.send(data(5, 5), {
      ...toRelay,
      hostname: RELAY_CLIENT_FACING,
    });
    relay.set("toServer", {});
    await client.send(data(5, 6), {
      ...toRelay,
      hostname: RELAY_CLIENT_FACING,
    });
    assertEquals((await recv(server)).d, data(5, 6));
    assertEquals(relay.counters("toServer").strays, 1);

    // Duplicate all.
    relay.set("toServer", { duplicate: 1 });
    await client.send(data(5, 7), {
      ...toRelay,
      hostname: RELAY_CLIENT_FACING,
    });
    assertEquals((await recv(server)).d, data(5, 7));
    assertEquals((await recv(server)).d, data(5, 7));

    // Corrupt all: one bit, never in the eid; a bare eid is left alone.
    relay.set("toServer", { corrupt: 1 });
    for (let n = 0; n < 50; n++) {
      const sent = data(5, 100 + n, 12);
      await client.send(sent, { ...toRelay, hostname: RELAY_CLIENT_FACING });
      const got = (await recv(server)).d;
      assertEquals(got.subarray(0, 4), sent.subarray(0, 4));
      let bits = 0;
      for (let i = 4; i < 12; i++) {
        let x = got[i]! ^ sent[i]!;
        for (; x !== 0; x &= x - 1) bits++;
      }
      assertEquals(bits, 1, `datagram ${n}`);
    }
    await client.send(data(5, 0, 4), {
      ...toRelay,
      hostname: RELAY_CLIENT_FACING,
    });
    assertEquals((await recv(server)).d, data(5, 0, 4));

    // Held behind the next 2: the first leaves third.
    relay.set("toServer", { reorder: { p: 1, behind: 2 } });
    const before = relay.counters("toServer").received;
    await client.send(data(5, 200), {
      ...toRelay,
      hostname: RELAY_CLIENT_FACING,
    });
    await within(relay.received("toServer", before + 1), 5000, "datagram 200");
    relay.set("toServer", {});
    for (const n of [201, 202]) {
      await client.send(data(5, n), {
        ...toRelay,
        hostname: RELAY_CLIENT_FACING,
      });
    }
    assertEquals(await seqs(3), [201, 202, 200]);

    // Held behind 1 after a delay: overtaken by the next one only, not by
    // one that came before it and is still delayed.
    const one = async (n: number, imp: Impairment) => {
      relay.set("toServer", imp);
      const at = relay.counters("toServer").received;
      await client.send(data(5, n), {
        ...toRelay,
        hostname: RELAY_CLIENT_FACING,
      });
      await within(relay.received("toServer", at + 1), 5000, `datagram ${n}`);
    };
    await one(210, { delay: { ms: 30 } });
    await one(211, { delay: { ms: 30 }, reorder: { p: 1, behind: 1 } });
    await one(212, { delay: { ms: 30 } });
    assertEquals(await seqs(3), [210, 212, 211]);

    // Delayed: nothing is forwarded before its time.
    relay.set("toClient", { delay: { ms: 100 } });
    const t0 = performance.now();
    await server.send(data(6, 300), {
      ...toRelay,
      hostname: RELAY_SERVER_FACING,
    });
    assertEquals((await recv(client)).d, data(6, 300));
    assert(performance.now() - t0 >= 99, "forwarded before its delay");
    await relay.drained();
  } finally {
    await relay.close();
    client.close();
    server.close();
    stray.close();
  }
});
