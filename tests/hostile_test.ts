/**
 * Hostile input: a fuzzed UDP socket, spoofed data and replies, garbage on
 * the control and data sockets, and configurations that must not start
 * anything. The node keeps serving throughout.
 */
import { assert, assertEquals, assertMatch, unwrap } from "./assert.ts";
import { uniform } from "./rng.ts";
import {
  eventually,
  irmdRequest,
  Node,
  tutorialHosts,
  tutorialServerConfig,
} from "./harness.ts";
import { freshReq, hex, isData, isMgmt, PeerSocket } from "./udp_peer.ts";
import { loadVectors } from "./vectors.ts";
import { type Flow, Ouroboros } from "../lib/app/dev.ts";
import {
  ECHO_REPLY,
  ECHO_REQUEST,
  encodeOping,
  newOpingPacket,
} from "../lib/wire/oping_msg.ts";
import {
  encodeFlowReply,
  FLOW_REPLY,
  FLOW_REQ,
  MGMT_HDR_LEN,
} from "../lib/wire/udp_wire.ts";
import { buildOapResponse } from "../lib/wire/oap.ts";
import { nameHashHex } from "../lib/wire/name_hash.ts";
import { ERRNO } from "../lib/util/errors.ts";
import { ipcpSocketPath, irmdSocketPath } from "../lib/ipc/rundir.ts";

const SERVER_IP = "127.0.0.61";
const PEER_IP = "127.0.0.65";
const SPOOF_IP = "127.0.0.66";
const PORT = 3435;

function echoRequest(id: number): Uint8Array {
  const p = newOpingPacket(64);
  encodeOping(p, { type: ECHO_REQUEST, id, sec: 0n, nsec: 0n });
  return p;
}

async function ping(flow: Flow, id: number): Promise<void> {
  await flow.write(echoRequest(id));
  const r = await flow.read({ timeoutMs: 2000 });
  assertEquals(new DataView(r.buffer, r.byteOffset).getUint32(0), ECHO_REPLY);
  assertEquals(new DataView(r.buffer, r.byteOffset).getUint32(4), id);
}

/**
 * A ping through an overloaded layer: UDP may lose a packet when the
 * receiver's socket buffer overflows, so a few tries are allowed; replies to
 * earlier tries are skipped by their id.
 */
async function pingUnderLoad(
  flow: Flow,
  id: number,
  tries = 5,
): Promise<number> {
  for (let t = 0; t < tries; t++) {
    const want = id * 16 + t;
    await flow.write(echoRequest(want));
    const deadline = Date.now() + 1000;
    while (Date.now() < deadline) {
      let r: Uint8Array;
      try {
        r = await flow.read({ timeoutMs: Math.max(1, deadline - Date.now()) });
      } catch {
        break;
      }
      const v = new DataView(r.buffer, r.byteOffset);
      if (v.getUint32(0) === ECHO_REPLY && v.getUint32(4) === want) {
        return t + 1;
      }
    }
  }
  throw new Error(`no echo reply in ${tries} tries`);
}

async function serverNode(label: string, maxFiles?: number): Promise<Node> {
  const node = await Node.start(label, {
    config: tutorialServerConfig(SERVER_IP),
    hosts: tutorialHosts(SERVER_IP),
    ready: /Registered oping-server2 with IPCP/,
    ...(maxFiles === undefined ? {} : { maxFiles }),
  });
  const from = node.irmd.lines.length;
  node.spawnPath(node.bin("oping"), ["-l", "-Q"], `${label}/oping-l`);
  await node.irmd.waitFor(/This process accepts flows for:/, 10_000, from);
  return node;
}

Deno.test("fuzzing the UDP socket with 100,000 datagrams: no crash, no leaked state, a real flow keeps working", async () => {
  const node = await serverNode("fuzz");
  const app = await Ouroboros.connect({
    rundir: node.rundir,
    prog: "fuzz-test",
  });
  const fuzzer = new PeerSocket(PEER_IP);
  try {
    const flow = await app.allocate("oping-server", { timeoutMs: 5000 });
    await ping(flow, 0);
    const before = await irmdRequest(node, "irm.ipcp.stats", {});
    const ipcpPid = before.ipcps[0]!.pid;
    const seeds = [
      ...loadVectors("c023-oping-raw.txt"),
      ...loadVectors("c023-keepalive.txt"),
      ...loadVectors("c023-no-server.txt"),
      ...loadVectors("c023-oping-qos-data-frct.txt"),
    ].map((d) => d.bytes);
    const seed = Number(Deno.env.get("O7S_FUZZ_SEED") ?? "20261124");
    const rand = uniform(seed);
    const pick = <T>(a: T[]): T => a[Math.floor(rand() * a.length)]!;
    const dst = { transport: "udp" as const, hostname: SERVER_IP, port: PORT };
    const N = 100_000;
    for (let i = 0; i < N; i++) {
      let d: Uint8Array;
      const kind = i % 8;
      if (kind === 0) {
        d = new Uint8Array(Math.floor(rand() * 200));
        for (let j = 0; j < d.length; j++) d[j] = rand() * 256;
      } else if (kind === 1) {
        const s = pick(seeds);
        d = s.slice(0, Math.floor(rand() * s.length));
      } else if (kind === 2 || kind === 3) {
        d = pick(seeds).slice();
        for (let f = 0; f < 1 + rand() * 4; f++) {
          const bit = Math.floor(rand() * d.length * 8);
          d[bit >> 3]! ^= 1 << (bit & 7);
        }
      } else if (kind === 4) {
        // A FLOW_REQ whose OAP claims huge certificate/key/data lengths.
        d = freshReq(64 + i).slice();
        const v = new DataView(d.buffer);
        v.setUint16(63 + 30 + 2 * Math.floor(rand() * 3), 0xffff);
      } else if (kind === 5) {
        // Data for endpoint ids that are not open flows.
        d = echoRequest(i);
        const frame = new Uint8Array(4 + d.length);
        new DataView(frame.buffer).setUint32(
          0,
          1 + Math.floor(rand() * 0xfffffffe),
        );
        frame.set(d, 4);
        d = frame;
      } else if (kind === 6) {
        // Replies to requests that were never made.
        d = encodeFlowReply({
          sEid: 1 + Math.floor(rand() * 0xfffffffe),
          dEid: 1 + i,
          response: rand() < 0.5 ? 0 : -111,
          oap: new Uint8Array(Math.floor(rand() * 100)),
        });
      } else {
        // A FLOW_REQ for a name nobody has here.
        d = freshReq(64 + i, `fuzz-${i}`);
      }
      await fuzzer.sock.send(d, dst);
      if (i % 20_000 === 0) await pingUnderLoad(flow, i);
    }
    // The flow answers once the fuzzing stops (after the backlog of datagrams).
    await pingUnderLoad(flow, N);
    await ping(flow, N + 1);
    // Still the same IPCP, with only the real flow's two ends open once the
    // flow requests the irmd was still deciding on are answered (the data
    // path does not wait behind them: the flow answered before).
    let after = await irmdRequest(node, "irm.ipcp.stats", {});
    await eventually("only the real flow's two ends open", async () => {
      after = await irmdRequest(node, "irm.ipcp.stats", {});
      return after.ipcps[0]!.flows === 2;
    }, 15_000);
    assertEquals(after.ipcps[0]!.pid, ipcpPid);
    assertEquals(after.ipcps[0]!.flows, 2);
    const d = after.ipcps[0]!.dropped;
    assert(d.short > 0 && d.badMgmt > 0 && d.unknownEid > 0, JSON.stringify(d));
    await flow.close();
  } finally {
    await fuzzer.close();
    await app.close();
    await node.close();
  }
});

Deno.test("spoofing: data for a real flow from another address or another port is dropped and counted", async () => {
  const node = await serverNode("spoof");
  const peer = new PeerSocket(PEER_IP);
  // The peer's address with another port, and another address with the
  // peer's port: each half of the source check on its own.
  const otherPort = new PeerSocket(PEER_IP, PORT + 1);
  const otherIp = new PeerSocket(SPOOF_IP);
  try {
    // A flow from a C-like peer.
    await peer.send(freshReq(64), SERVER_IP);
    const reply = await peer.receive("FLOW_REPLY", isMgmt(FLOW_REPLY, 64));
    const dEid = new DataView(reply.data.buffer).getUint32(8);
    const echoFrame = (id: number) => {
      const f = new Uint8Array(68);
      new DataView(f.buffer).setUint32(0, dEid);
      f.set(echoRequest(id), 4);
      return f;
    };
    // Spoofed echo requests first (ids 1 and 2), then the peer's own (id 3).
    // The IPCP handles its datagrams in order and the echo server answers in
    // order, so an accepted spoof would be answered, to the flow's peer,
    // before id 3.
    await otherPort.send(echoFrame(1), SERVER_IP);
    await otherIp.send(echoFrame(2), SERVER_IP);
    await peer.send(echoFrame(3), SERVER_IP);
    const echo = await peer.receive("echo reply", isData(64));
    const v = new DataView(echo.data.buffer);
    assertEquals(v.getUint32(4), ECHO_REPLY);
    assertEquals(
      v.getUint32(8),
      3,
      "the first echo answers the peer's request",
    );
    const stats = await irmdRequest(node, "irm.ipcp.stats", {});
    assertEquals(stats.ipcps[0]!.dropped.wrongSource, 2);
    assertEquals(otherPort.queue.length, 0);
    assertEquals(otherIp.queue.length, 0);
    assertEquals(peer.queue.filter(isData(64)).length, 0);
    // The counters are visible with irm.
    const irm = await node.run("irm", ["ipcp", "stats"]);
    assertMatch(irm.stdout, /wrong source/);
    assertMatch(irm.stdout, /\|\s+2 \|\s+0 \|\n\+/);
  } finally {
    await otherIp.close();
    await otherPort.close();
    await peer.close();
    await node.close();
  }
});

Deno.test("spoofing: a FLOW_REPLY from another address or another port does not answer our request", async () => {
  // "c-server" resolves to the test socket that plays a C server.
  const node = await Node.start("spoofreply", {
    config: tutorialServerConfig(SERVER_IP),
    hosts: tutorialHosts(SERVER_IP) +
      `${PEER_IP} ${nameHashHex("c-server")} #c-server\n`,
    ready: /Registered oping-server2 with IPCP/,
  });
  const app = await Ouroboros.connect({
    rundir: node.rundir,
    prog: "spoof-reply-test",
  });
  const peer = new PeerSocket(PEER_IP);
  const otherPort = new PeerSocket(PEER_IP, PORT + 1);
  const otherIp = new PeerSocket(SPOOF_IP);
  let allocating: Promise<Flow | Error> | undefined;
  try {
    allocating = app.allocate("c-server", { timeoutMs: 10_000 }).catch((e) =>
      e instanceof Error ? e : new Error(String(e))
    );
    const req = await peer.receive("FLOW_REQ", isMgmt(FLOW_REQ), 10_000);
    const sEid = new DataView(req.data.buffer).getUint32(4);
    // Refusals for that request from the wrong sources: taken, they would
    // fail the allocation.
    const refusal = encodeFlowReply({
      sEid,
      dEid: 0,
      response: -ERRNO.EPERM,
      oap: new Uint8Array(0),
    });
    await otherPort.send(refusal, SERVER_IP);
    await otherIp.send(refusal, SERVER_IP);
    // Then the peer's acceptance, handled after them (one socket, in order).
    const oap = unwrap(
      buildOapResponse(req.data.subarray(MGMT_HDR_LEN + 16)),
    );
    await peer.send(
      encodeFlowReply({ sEid, dEid: 65, response: 0, oap }),
      SERVER_IP,
    );
    const flow = await allocating;
    if (flow instanceof Error) {
      throw new Error(`a spoofed reply answered the request: ${flow.message}`);
    }
    // The flow is the peer's: data goes to the eid the peer gave.
    await flow.write(echoRequest(9));
    const data = await peer.receive("data on eid 65", isData(65));
    assertEquals(new DataView(data.data.buffer).getUint32(8), 9);
    const stats = await irmdRequest(node, "irm.ipcp.stats", {});
    assertEquals(stats.ipcps[0]!.dropped.badMgmt, 2);
    assertEquals(otherPort.queue.length, 0);
    assertEquals(otherIp.queue.length, 0);
    await flow.close();
  } finally {
    await allocating;
    await otherIp.close();
    await otherPort.close();
    await peer.close();
    await app.close();
    await node.close();
  }
});

/** True once `b` holds a whole length-prefixed frame. */
function wholeFrame(b: Uint8Array): boolean {
  return b.length >= 4 && b.length >= 4 + new DataView(b.buffer).getUint32(0);
}

/**
 * Writes `bytes` on a new connection to `path` and reads until the other end
 * closes it, `enough` holds for what came back, or `timeoutMs` passes: what
 * came back, and whether the other end closed.
 */
async function sendRaw(
  path: string,
  bytes: Uint8Array,
  timeoutMs = 2000,
  enough: (reply: Uint8Array) => boolean = () => false,
): Promise<{ reply: Uint8Array; closed: boolean }> {
  const conn = await Deno.connect({ transport: "unix", path });
  const chunks: Uint8Array[] = [];
  let closed = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((r) =>
    timer = setTimeout(() => r("late"), timeoutMs)
  );
  try {
    await conn.write(bytes).catch(() => 0);
    for (;;) {
      const buf = new Uint8Array(4096);
      const n = await Promise.race([conn.read(buf).catch(() => null), late]);
      if (n === "late") break;
      if (n === null) {
        closed = true;
        break;
      }
      chunks.push(buf.subarray(0, n));
      if (enough(concat(chunks))) break;
    }
  } finally {
    clearTimeout(timer);
    conn.close();
  }
  return { reply: concat(chunks), closed };
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let off = 0;
  for (const c of chunks) {
    all.set(c, off);
    off += c.length;
  }
  return all;
}

function frame(payload: Uint8Array | string, length?: number): Uint8Array {
  const p = typeof payload === "string"
    ? new TextEncoder().encode(payload)
    : payload;
  const f = new Uint8Array(4 + p.length);
  new DataView(f.buffer).setUint32(0, length ?? p.length);
  f.set(p, 4);
  return f;
}

Deno.test("garbage, truncated, oversized and silent clients on the control and data sockets", async () => {
  const node = await serverNode("ctrl");
  const app = await Ouroboros.connect({
    rundir: node.rundir,
    prog: "ctrl-test",
  });
  const silent: Deno.UnixConn[] = [];
  try {
    const irmd = irmdSocketPath(node.rundir);
    const ipcpPid =
      (await irmdRequest(node, "irm.ipcp.stats", {})).ipcps[0]!.pid;
    const data = ipcpSocketPath(node.rundir, ipcpPid);
    // Clients that connect and never write hold nothing up.
    for (const path of [irmd, irmd, data, data]) {
      silent.push(await Deno.connect({ transport: "unix", path }));
    }
    // Malformed control messages get an error reply, the connection lives on
    // until it is closed; oversized ones are refused and the connection closed.
    const text = async (b: Uint8Array) =>
      new TextDecoder().decode(
        (await sendRaw(irmd, b, 5000, wholeFrame)).reply,
      );
    assertMatch(await text(frame("{not json")), /"code":"invalid"/);
    assertMatch(
      await text(frame(JSON.stringify({ i: 1, m: "hello", b: { role: 7 } }))),
      /"i":1,"e":\{"code":"invalid"/,
    );
    assertMatch(
      await text(frame(JSON.stringify({ i: 2, m: "rm -rf", b: {} }))),
      /unknown method/,
    );
    assertMatch(
      await text(frame(JSON.stringify({ i: 3, m: "irm.name.list", b: {} }))),
      /say hello first/,
    );
    const huge = await sendRaw(irmd, frame("x", 0xffff_fff0), 5000);
    assertMatch(new TextDecoder().decode(huge.reply), /too_large/);
    assert(huge.closed, "an oversized control message leaves it open");
    // Truncated, then closed by the client; garbage, then closed.
    await sendRaw(irmd, frame("{}").subarray(0, 3), 0);
    const rand = uniform(20261125);
    const random = new Uint8Array(1000).map(() => rand() * 256);
    await sendRaw(irmd, random, 0);
    // The data socket: a bad attach, a forged token, an oversized frame,
    // garbage. The IPCP either refuses (a status frame with a negative
    // status) or just closes; it never attaches, and never leaves the
    // connection hanging. Its attach wait (5 s) bounds the garbage case.
    const status = (r: { reply: Uint8Array }) =>
      r.reply.length === 8 && new DataView(r.reply.buffer).getUint32(0) === 4
        ? new DataView(r.reply.buffer).getInt32(4)
        : undefined;
    for (
      const [what, bad, refused] of [
        ["a 5-byte attach", frame("short"), true],
        ["an attach with a forged token", frame(new Uint8Array(20)), true],
        ["an oversized frame", frame("x", 0xffff_ffff), false],
        ["garbage", random, false],
      ] as const
    ) {
      const r = await sendRaw(data, bad, 10_000);
      assert(r.closed, `${what}: the connection was left open`);
      if (refused) {
        assertEquals(status(r), -ERRNO.EPERM, `${what}: ${hex(r.reply)}`);
      } else {
        assert(
          r.reply.length === 0 || (status(r) ?? 0) < 0,
          `${what}: ${hex(r.reply)}`,
        );
      }
    }
    // Everything still serves, with the silent clients still connected.
    const flow = await app.allocate("oping-server", { timeoutMs: 5000 });
    await ping(flow, 1);
    await flow.close();
    const names = await irmdRequest(node, "irm.name.list", {});
    assertEquals(names.names.length, 2);
  } finally {
    for (const c of silent) c.close();
    await app.close();
    await node.close();
  }
});

Deno.test("a port in use: a clear error naming ip:port, exit non-zero, no process left", async () => {
  const busy = Deno.listenDatagram({
    transport: "udp",
    hostname: "127.0.0.62",
    port: PORT,
  });
  try {
    const node = await Node.start("busy", {
      config:
        `[udp.wifi1]\nbootstrap="wifi-network"\nip="127.0.0.62"\nhosts="@DIR@/hosts"\n`,
      hosts: "",
    }).catch((e) => e as Error);
    assert(node instanceof Node, String(node));
    try {
      const st = await node.irmd.exit(10_000);
      assertEquals(st.code, 1);
      assertMatch(st.stdout, /127\.0\.0\.62:3435: address already in use/);
      // The irmd created the IPCP, whose bootstrap failed; the IPCP does not
      // outlive its irmd (which waits for it to end before exiting).
      const created = /Created IPCP (\d+)\./.exec(st.stdout);
      assert(created !== null, st.stdout);
      let alive = true;
      try {
        Deno.statSync(`/proc/${created[1]}`);
      } catch {
        alive = false;
      }
      assertEquals(alive, false, "the IPCP survived its irmd");
    } finally {
      await node.close();
    }
    // A malformed configuration starts nothing at all.
    const bad = await Node.start("badconf", {}).catch((e) => e as Error);
    assert(bad instanceof Node);
    try {
      await Deno.writeTextFile(
        `${bad.dir}/bad.conf`,
        '[udp.x]\nbootstrap="l"\nip="127.0.0.63"\nport=70000\n',
      );
      const r = await bad.run("irmd", [
        "--rundir",
        `${bad.dir}/run2`,
        "-c",
        `${bad.dir}/bad.conf`,
      ]);
      assertEquals(r.code, 1);
      assertMatch(r.stderr, /bad\.conf:4:1: .*port.*70000/);
      assertEquals(r.stdout, "");
    } finally {
      await bad.close();
    }
  } finally {
    busy.close();
  }
});

Deno.test("an IPCP out of file descriptors accepts applications again once some are free", async () => {
  // 64 files: the IPCP holds about 30 once it runs, so the connections below
  // exhaust it.
  const node = await serverNode("nofiles", 64);
  const app = await Ouroboros.connect({
    rundir: node.rundir,
    prog: "nofiles-test",
  });
  const conns: Deno.UnixConn[] = [];
  try {
    const ipcpPid =
      (await irmdRequest(node, "irm.ipcp.stats", {})).ipcps[0]!.pid;
    const data = ipcpSocketPath(node.rundir, ipcpPid);
    const from = node.irmd.lines.length;
    // Connections the kernel queues for the IPCP, more than it can accept.
    for (let i = 0; i < 60; i++) {
      conns.push(await Deno.connect({ transport: "unix", path: data }));
    }
    await node.irmd.waitFor(
      /Cannot accept applications on .*open files.*; trying again/,
      10_000,
      from,
    );
    for (const c of conns.splice(0)) c.close();
    await node.irmd.waitFor(/Accepting applications again/, 10_000, from);
    const flow = await app.allocate("oping-server", { timeoutMs: 5000 });
    await ping(flow, 1);
    await flow.close();
  } finally {
    for (const c of conns) c.close();
    await app.close();
    await node.close();
  }
});
