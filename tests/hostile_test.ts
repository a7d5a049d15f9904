/**
 * Hostile input: a fuzzed UDP socket, spoofed data, garbage on the control
 * and data sockets, and configurations that must not start anything. The
 * node keeps serving throughout.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { uniform } from "./rng.ts";
import {
  irmdRequest,
  Node,
  tutorialHosts,
  tutorialServerConfig,
} from "./harness.ts";
import { freshReq, isData, isMgmt, PeerSocket } from "./udp_peer.ts";
import { loadVectors } from "./vectors.ts";
import { type Flow, Ouroboros } from "../lib/app/dev.ts";
import {
  ECHO_REPLY,
  ECHO_REQUEST,
  encodeOping,
  newOpingPacket,
} from "../lib/wire/oping_msg.ts";
import { encodeFlowReply, FLOW_REPLY } from "../lib/wire/udp_wire.ts";
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
    // Still the same IPCP, with only the real flow's two ends open.
    const after = await irmdRequest(node, "irm.ipcp.stats", {});
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

Deno.test("spoofing: data for a real flow from the wrong address is dropped and counted", async () => {
  const node = await serverNode("spoof");
  const peer = new PeerSocket(PEER_IP);
  const spoofer = new PeerSocket(SPOOF_IP);
  try {
    // A flow from a C-like peer.
    await peer.send(freshReq(64), SERVER_IP);
    const reply = await peer.receive("FLOW_REPLY", isMgmt(FLOW_REPLY, 64));
    const dEid = new DataView(reply.data.buffer).getUint32(8);
    const frame = new Uint8Array(68);
    new DataView(frame.buffer).setUint32(0, dEid);
    frame.set(echoRequest(1), 4);
    // From the wrong address: nothing comes back, to anyone.
    await spoofer.send(frame, SERVER_IP);
    // From the peer: the echo comes back (and only this one).
    await peer.send(frame, SERVER_IP);
    const echo = await peer.receive("echo reply", isData(64));
    assertEquals(new DataView(echo.data.buffer).getUint32(4), ECHO_REPLY);
    const stats = await irmdRequest(node, "irm.ipcp.stats", {});
    assertEquals(stats.ipcps[0]!.dropped.wrongSource, 1);
    assertEquals(spoofer.queue.length, 0);
    assertEquals(peer.queue.filter(isData(64)).length, 0);
    // The counters are visible with irm.
    const irm = await node.run("irm", ["ipcp", "stats"]);
    assertMatch(irm.stdout, /wrong source/);
    assertMatch(irm.stdout, /\|\s+1 \|\s+0 \|\n\+/);
  } finally {
    await spoofer.close();
    await peer.close();
    await node.close();
  }
});

async function sendRaw(path: string, bytes: Uint8Array): Promise<Uint8Array> {
  const conn = await Deno.connect({ transport: "unix", path });
  try {
    await conn.write(bytes);
    const buf = new Uint8Array(4096);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const n = await Promise.race([
      conn.read(buf).catch(() => null),
      new Promise<null>((r) => timer = setTimeout(() => r(null), 2000)),
    ]);
    clearTimeout(timer);
    return buf.subarray(0, n ?? 0);
  } finally {
    conn.close();
  }
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
    const notJson = await sendRaw(irmd, frame("{not json"));
    assertMatch(new TextDecoder().decode(notJson), /"code":"invalid"/);
    const badType = await sendRaw(
      irmd,
      frame(JSON.stringify({ i: 1, m: "hello", b: { role: 7 } })),
    );
    assertMatch(
      new TextDecoder().decode(badType),
      /"i":1,"e":\{"code":"invalid"/,
    );
    const unknown = await sendRaw(
      irmd,
      frame(JSON.stringify({ i: 2, m: "rm -rf", b: {} })),
    );
    assertMatch(new TextDecoder().decode(unknown), /unknown method/);
    const noHello = await sendRaw(
      irmd,
      frame(JSON.stringify({ i: 3, m: "irm.name.list", b: {} })),
    );
    assertMatch(new TextDecoder().decode(noHello), /say hello first/);
    const huge = await sendRaw(irmd, frame("x", 0xffff_fff0));
    assertMatch(new TextDecoder().decode(huge), /too_large/);
    await sendRaw(irmd, frame("{}").subarray(0, 3)); // truncated, then closed
    const random = new Uint8Array(1000);
    crypto.getRandomValues(random);
    await sendRaw(irmd, random);
    // The data socket: a bad attach, a forged token, an oversized frame.
    for (
      const bad of [
        frame("short"),
        frame(new Uint8Array(20)),
        frame("x", 0xffff_ffff),
        random,
      ]
    ) {
      const r = await sendRaw(data, bad);
      // Either a refusal status (-EPERM) or a closed connection; never an attach.
      if (r.length === 8) assert(new DataView(r.buffer).getInt32(4) < 0);
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
      const created = /Created IPCP (\d+)\./.exec(st.stdout);
      if (created !== null) {
        let alive = true;
        try {
          Deno.statSync(`/proc/${created[1]}`);
        } catch {
          alive = false;
        }
        assertEquals(alive, false, "the IPCP survived its irmd");
      }
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
