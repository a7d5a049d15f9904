/**
 * Reliable flows when the other end misbehaves, between two nodes:
 *
 * - A killed peer: the far application, a child process, is killed with
 *   SIGKILL mid-transfer (once as the end that allocated the flow, once as
 *   the end that accepted it). Nothing tells the near side on the wire; its
 *   IPCP's peer timeout ends the flow, and the near application's reads and
 *   writes fail with flow_down within that timeout (plus the IPCP's 250 ms
 *   check). The flows here ask for a timeout of 2 s through the API: with
 *   the cubes' default of 120 s, the peer timeout and FRCT's retransmission
 *   limit (also 120 s) would both take two minutes.
 * - A slow reader: the far application reads one packet every few ms, and
 *   stops reading for a second once, while the near one writes as fast as it
 *   can over "data": the writer blocks on the window (and asks with
 *   rendez-vous packets while it stays closed), nothing is lost, everything
 *   arrives in order, and the flows' queues and the IPCPs' memory stay
 *   bounded.
 *
 * The op and resource sanitizers check that no timer or socket of a flow
 * is left behind.
 */
import { assert, assertEquals } from "./assert.ts";
import { eventually, flowCounts, irmdRequest, Node, REPO } from "./harness.ts";
import { type Flow, Ouroboros, type QosSpec } from "../lib/app/dev.ts";
import { OuroborosError } from "../lib/util/errors.ts";
import { QOS_CUBES } from "../lib/wire/udp_wire.ts";
import { nameHashHex } from "../lib/wire/name_hash.ts";
import { xorshift32 } from "./rng.ts";
import { together, within } from "./deadline.ts";

const SERVER_IP = "127.0.0.85";
const CLIENT_IP = "127.0.0.86";
const NAME = "frct-fault-sink";
/** The peer timeout the flows of the killed-peer tests ask for (ms). */
const PEER_TIMEOUT_MS = 2000;
/** How often the IPCP checks liveness (ipcpd/udp/ipcp.ts TICK_MS). */
const IPCP_TICK_MS = 250;
/** Room for a loaded machine beyond the timeout and the check. */
const MARGIN_MS = 3000;

function nodeConfig(ip: string, port: number, reg: boolean): string {
  return `[udp.wifi1]
bootstrap="wifi-network"
ip="${ip}"
port=${port}
hosts="@DIR@/hosts"
${reg ? `reg=["${NAME}"]\n` : ""}`;
}

/** Two nodes on `port`: the server registers NAME, the client resolves it. */
async function twoNodes(
  port: number,
): Promise<{ server: Node; client: Node; close: () => Promise<void> }> {
  const hosts = `${SERVER_IP} ${nameHashHex(NAME)} #${NAME}\n`;
  const server = await Node.start("faults-server", {
    config: nodeConfig(SERVER_IP, port, true),
    hosts,
    ready: new RegExp(`Registered ${NAME} with IPCP`),
  });
  try {
    const client = await Node.start("faults-client", {
      config: nodeConfig(CLIENT_IP, port, false),
      hosts,
      ready: /Bootstrapped IPCP \d+ in layer/,
    });
    return {
      server,
      client,
      close: async () => {
        await client.close();
        await server.close();
      },
    };
  } catch (e) {
    await server.close();
    throw e;
  }
}

/** Binds this test process to NAME on `node` (after it has connected). */
async function bindSelf(node: Node): Promise<void> {
  const r = await node.run("irm", [
    "bind",
    "process",
    String(Deno.pid),
    "name",
    NAME,
  ]);
  assertEquals(r.code, 0, r.stderr);
}

function packetOf(seed: number, i: number, size: number): Uint8Array {
  const p = new Uint8Array(size);
  const v = new DataView(p.buffer);
  const rng = xorshift32((seed ^ Math.imul(i + 1, 0x9e37_79b1)) >>> 0);
  for (let k = 4; k + 4 <= size; k += 4) v.setUint32(k, rng());
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

// ---------------------------------------------------------------- killed peer

/**
 * The far application: allocates a flow to NAME (`alloc`) or binds itself
 * to NAME and accepts one (`accept`), then writes numbered packets as fast
 * as the flow takes them while reading what comes, and prints how far it
 * got. It ends itself after 60 s whatever happens.
 */
const PEER_SCRIPT = `
import { Ouroboros } from "${new URL("lib/app/dev.ts", `file://${REPO}`).href}";
import { QOS_CUBES } from "${
  new URL("lib/wire/udp_wire.ts", `file://${REPO}`).href
}";
const [mode, name, timeout, irm] = Deno.args;
const deadline = setTimeout(() => {
  console.log("peer: deadline reached");
  Deno.exit(3);
}, 60_000);
Deno.unrefTimer(deadline);
const node = await Ouroboros.connect({ prog: "frct-fault-peer" });
let flow;
if (mode === "alloc") {
  flow = await node.allocate(name, {
    qos: { ...QOS_CUBES.data, timeout: Number(timeout) },
    timeoutMs: 15_000,
  });
} else {
  const bound = await new Deno.Command(irm, {
    args: ["bind", "process", String(Deno.pid), "name", name],
  }).output();
  if (bound.code !== 0) throw new Error("irm bind failed");
  console.log("peer: bound");
  flow = await node.accept({ timeoutMs: 15_000 });
}
console.log("peer: flow up");
let read = 0;
const reading = (async () => {
  for (;;) {
    await flow.read({ timeoutMs: 30_000 });
    if (++read % 100 === 0) console.log("peer: read " + read);
  }
})();
let wrote = 0;
for (;;) {
  const p = new Uint8Array(1000);
  new DataView(p.buffer).setUint32(0, wrote);
  await flow.write(p);
  if (++wrote % 100 === 0) console.log("peer: wrote " + wrote);
}
await reading;
`;

interface Ended {
  error: unknown;
  at: number;
  count: number;
}

/** Reads until the flow fails; resolves with the error, its time and the count. */
async function readUntilDown(flow: Flow): Promise<Ended> {
  let count = 0;
  for (;;) {
    try {
      await flow.read({ timeoutMs: 30_000 });
      count++;
    } catch (error) {
      return { error, at: performance.now(), count };
    }
  }
}

/** Writes until the flow fails. */
async function writeUntilDown(flow: Flow): Promise<Ended> {
  let count = 0;
  for (;;) {
    try {
      await flow.write(packetOf(7, count, 1000));
      count++;
    } catch (error) {
      return { error, at: performance.now(), count };
    }
  }
}

function codeOf(e: unknown): string | undefined {
  return e instanceof OuroborosError ? e.code : undefined;
}

async function killedPeer(port: number, farAllocates: boolean): Promise<void> {
  const nodes = await twoNodes(port);
  // The near application's node, and the far one's.
  const near = farAllocates ? nodes.server : nodes.client;
  const far = farAllocates ? nodes.client : nodes.server;
  let app: Ouroboros | undefined;
  try {
    const script = `${far.dir}/peer.ts`;
    await Deno.writeTextFile(script, PEER_SCRIPT);
    app = await Ouroboros.connect({
      rundir: near.rundir,
      prog: "frct-fault-near",
    });
    const from = far.irmd.lines.length;
    const peer = far.spawnPath(
      Deno.execPath(),
      [
        "run",
        "-q",
        "--no-config",
        "-A",
        script,
        farAllocates ? "alloc" : "accept",
        NAME,
        String(PEER_TIMEOUT_MS),
        far.bin("irm"),
      ],
      `${far.label}/peer`,
    );
    let flow: Flow;
    if (farAllocates) {
      await bindSelf(near);
      const accepting = app.accept({ timeoutMs: 20_000 });
      await peer.waitFor(/^peer: flow up$/, 20_000);
      flow = await accepting;
    } else {
      await peer.waitFor(/^peer: bound$/, 20_000);
      // The irmd has the peer's accept (it says so at the first one).
      await far.irmd.waitFor(/This process accepts flows for:/, 20_000, from);
      flow = await app.allocate(NAME, {
        qos: { ...QOS_CUBES.data, timeout: PEER_TIMEOUT_MS },
        timeoutMs: 15_000,
      });
    }
    assertEquals(flow.qos.timeout, PEER_TIMEOUT_MS);
    assertEquals(flow.qos.loss, 0); // reliable
    const reading = readUntilDown(flow);
    const writing = writeUntilDown(flow);
    // Mid-transfer, both ways: the peer has read and written some.
    await peer.waitFor(/^peer: read 300$/, 20_000);
    await peer.waitFor(/^peer: wrote 300$/, 20_000);
    peer.kill("SIGKILL");
    const killedAt = performance.now();
    const [r, w] = await within(
      Promise.all([reading, writing]),
      PEER_TIMEOUT_MS + IPCP_TICK_MS + MARGIN_MS,
      "flow_down on both the reads and the writes",
    );
    assertEquals((await peer.status).signal, "SIGKILL");
    for (const [what, e] of [["read", r], ["write", w]] as const) {
      assertEquals(codeOf(e.error), "flow_down", `${what}: ${e.error}`);
      const after = e.at - killedAt;
      // Not before the timeout: nothing else tells the near side.
      assert(
        after >= PEER_TIMEOUT_MS / 2,
        `${what} failed ${after.toFixed(0)} ms after the kill`,
      );
    }
    assert(r.count > 0 && w.count > 0, "nothing moved before the kill");
    // Once down, the flow stays so, at once.
    const again = await flow.read({ timeoutMs: 1000 }).catch((e) => e);
    assertEquals(codeOf(again), "flow_down");
    const wAgain = await flow.write(new Uint8Array(10)).catch((e) => e);
    assertEquals(codeOf(wAgain), "flow_down");
    await flow.close();
    // Neither node keeps the flow.
    for (const n of [near, far]) {
      await eventually(`${n.label} forgot the flow`, async () => {
        const c = await flowCounts(n);
        return c.irmd === 0 && c.ipcps === 0;
      });
    }
  } finally {
    await app?.close();
    await nodes.close();
  }
}

Deno.test(`a reliable flow whose allocating peer is SIGKILLed mid-transfer: the near reads and writes end with flow_down within the ${PEER_TIMEOUT_MS} ms peer timeout`, async () => {
  await killedPeer(3831, true);
});

Deno.test(`a reliable flow whose accepting peer is SIGKILLed mid-transfer: the near reads and writes end with flow_down within the ${PEER_TIMEOUT_MS} ms peer timeout`, async () => {
  await killedPeer(3832, false);
});

// ---------------------------------------------------------------- slow reader

/** VmRSS of a live process, kB; an error when it cannot be read. */
async function rssKb(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1];
  if (kb === undefined) throw new Error(`no VmRSS for process ${pid}`);
  return Number(kb);
}

async function ipcpOf(node: Node): Promise<number> {
  const s = await irmdRequest(node, "irm.ipcp.stats", {});
  assertEquals(s.ipcps.length, 1);
  return s.ipcps[0]!.pid;
}

/** Packets sent over the slow reader's flow. */
const SLOW_COUNT = 1500;
const SLOW_SIZE = 1000;
/** The reader's pause after each packet (ms). */
const SLOW_READ_MS = 3;
/** ... and once, after this many packets, a longer one. */
const STALL_AT = 500;
const STALL_MS = 1000;
/** FRCT's window and reorder queue (spec/frct.md 6), in packets. */
const WINDOW = 256;
/** IPCP memory may grow this much (kB) during the transfer: generous. */
const RSS_GROWTH_KB = 100 * 1024;

Deno.test(`a slow reader on a data flow (one packet per ${SLOW_READ_MS} ms, a ${STALL_MS} ms stall): the writer blocks on the window, nothing lost, in order, bounded queues and memory`, async () => {
  const nodes = await twoNodes(3833);
  const qos: QosSpec = QOS_CUBES.data;
  let a: Ouroboros | undefined;
  let b: Ouroboros | undefined;
  try {
    b = await Ouroboros.connect({
      rundir: nodes.server.rundir,
      prog: "frct-slow-reader",
    });
    await bindSelf(nodes.server);
    a = await Ouroboros.connect({
      rundir: nodes.client.rundir,
      prog: "frct-fast-writer",
    });
    const accepting = b.accept({ timeoutMs: 15_000 });
    accepting.catch(() => {}); // its failure is the allocation's too
    const fw = await a.allocate(NAME, { qos, timeoutMs: 15_000 });
    const fr = await accepting;
    const pids = [await ipcpOf(nodes.client), await ipcpOf(nodes.server)];
    const base = await Promise.all(pids.map(rssKb));
    const peak = [...base];
    const sample = async () => {
      const now = await Promise.all(pids.map(rssKb));
      now.forEach((kb, i) => peak[i] = Math.max(peak[i]!, kb));
    };
    const seed = 33;
    let bound = 0;
    /** The invariants of a blocked writer, checked at every step. */
    const check = (where: string) => {
      const ahead = fw.stats!.sent - fr.stats!.delivered;
      if (ahead > bound) bound = ahead;
      if (ahead > WINDOW) {
        throw new Error(
          `${where}: the writer is ${ahead} packets ahead of the reader`,
        );
      }
      if (fr.pending > WINDOW) {
        throw new Error(`${where}: ${fr.pending} packets wait for the reader`);
      }
    };
    let deliveredWhenWritten = -1;
    const writing = (async () => {
      for (let i = 0; i < SLOW_COUNT; i++) {
        await fw.write(packetOf(seed, i, SLOW_SIZE));
        check(`write ${i}`);
      }
      deliveredWhenWritten = fr.stats!.delivered;
    })();
    const reading = (async () => {
      for (let i = 0; i < SLOW_COUNT; i++) {
        const p = await fr.read({ timeoutMs: 20_000 });
        if (seqOf(p) !== i) {
          throw new Error(`packet ${i} expected, packet ${seqOf(p)} read`);
        }
        if (!sameBytes(p, packetOf(seed, i, SLOW_SIZE))) {
          throw new Error(`packet ${i} damaged`);
        }
        check(`read ${i}`);
        if (i % 100 === 0) await sample();
        await new Promise((r) =>
          setTimeout(r, i === STALL_AT ? STALL_MS : SLOW_READ_MS)
        );
      }
    })();
    await together(
      [writing, reading],
      60_000,
      "the slow transfer",
      async () => {
        await Promise.all([fw.close(0), fr.close(0)]);
      },
    );
    await sample();
    const ws = fw.stats!;
    const rs = fr.stats!;
    const info = `writer ${JSON.stringify(ws)}\nreader ${
      JSON.stringify(rs)
    }\nIPCP VmRSS kB: base ${base}, peak ${peak}; most ahead ${bound}`;
    console.log(info);
    // The writer blocked on the window, and asked while it stayed closed.
    assert(ws.windowStalls > 0, `the writer never found the window closed`);
    assert(ws.rdvsSent > 0, `no rendez-vous during the stall`);
    assert(
      deliveredWhenWritten >= SLOW_COUNT - WINDOW,
      `the writer was done when ${deliveredWhenWritten} packets were read`,
    );
    // Nothing lost anywhere: no packet beyond the window, none dropped by
    // an IPCP for a slow reader.
    assertEquals(rs.delivered, SLOW_COUNT);
    assertEquals(rs.droppedWindow, 0);
    assertEquals(rs.droppedOverflow, 0);
    for (const n of [nodes.client, nodes.server]) {
      const s = await irmdRequest(n, "irm.ipcp.stats", {});
      assertEquals(s.ipcps[0]!.dropped.slowReader, 0, n.label);
    }
    assertEquals(fr.tryRead(), undefined);
    peak.forEach((kb, i) =>
      assert(
        kb - base[i]! <= RSS_GROWTH_KB,
        `IPCP ${pids[i]} grew from ${base[i]} to ${kb} kB`,
      )
    );
    await Promise.all([fw.close(10_000), fr.close(10_000)]);
  } finally {
    await a?.close();
    await b?.close();
    await nodes.close();
  }
});
