/**
 * The UDP data path in its Worker, driven in this process as the IPCP's
 * control thread drives it (ipcpd/common/dp_host.ts): commands through the
 * shared ring, a real UDP socket and Unix listener, peers on loopback UDP
 * sockets and applications on real Unix connections speaking
 * lib/ipc/dataplane.ts. Packets both ways; every drop counted and nothing
 * dropped handed on; attach refusals; a pending flow that parks its
 * application until allocated; early packets; a stalled reader; an
 * application that goes away; stop in the middle of a flood, without a
 * descriptor left open.
 */
import { assert, assertEquals, assertMatch } from "../../tests/assert.ts";
import { PeerSocket } from "../../tests/udp_peer.ts";
import {
  bindAddr,
  closeFd,
  localPort,
  packAddr,
  setBuffer,
  udpSocket,
  unixListen,
  unwrap,
} from "../../lib/sys/mod.ts";
import { assertNoNewFds, watchedFds } from "../../lib/sys/testing.ts";
import { Logger } from "../../lib/util/log.ts";
import { encodeAttach } from "../../lib/ipc/dataplane.ts";
import { getU32, putU32 } from "../../lib/ipc/framing.ts";
import { Datapath, type DatapathCounters } from "../common/dp_host.ts";
import { type MgmtFrame, Op } from "../common/dp_msg.ts";
import { MAX_PAYLOAD_V4 } from "../../lib/wire/udp_wire.ts";
import { EventLog, frame, FrameStream, lyingFrame } from "../common/testing.ts";

const HOST = "127.0.0.1";
const OTHER_HOST = "127.0.0.3";

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Event =
  | { t: "mgmt"; frames: MgmtFrame[] }
  | { t: "attached"; eid: number }
  | { t: "detached"; eid: number; reason: string }
  | { t: "activity"; flows: number[] }
  | { t: "fatal"; error: string };

interface RigOptions {
  appQueueBytes?: number;
  preAttachQueue?: number;
  helloMs?: number;
}

/** A data path with its sockets, and what it reported. */
class Rig {
  readonly log = new EventLog<Event>();
  get events(): Event[] {
    return this.log.all;
  }
  readonly dp: Datapath;
  readonly port: number;
  readonly conns: Deno.UnixConn[] = [];

  private constructor(
    readonly dir: string,
    readonly path: string,
    readonly udpFd: number,
    readonly listenFd: number,
    o: RigOptions,
  ) {
    this.port = unwrap(localPort(udpFd));
    const push = (e: Event) => this.log.push(e);
    this.dp = Datapath.start({
      family: 4,
      mtu: MAX_PAYLOAD_V4,
      listenFd,
      appQueueBytes: o.appQueueBytes ?? 1 << 20,
      preAttachQueue: o.preAttachQueue ?? 256,
      helloMs: o.helloMs ?? 5000,
      acceptRetryMs: 100,
      log: new Logger("datapath-test"),
      events: {
        mgmt: (frames) => push({ t: "mgmt", frames }),
        attached: (eid) => push({ t: "attached", eid }),
        detached: (eid, reason) => push({ t: "detached", eid, reason }),
        activity: (a) => push({ t: "activity", flows: [...a] }),
        acceptFailed: () => {},
        acceptResumed: () => {},
        fatal: (error) => push({ t: "fatal", error }),
      },
    });
    this.dp.send({ op: Op.Socket, fd: udpFd });
  }

  static async start(o: RigOptions = {}): Promise<Rig> {
    const dir = await Deno.makeTempDir({ prefix: "o7s-dp-" });
    const path = `${dir}/dp.sock`;
    const udp = unwrap(udpSocket("inet", { nonBlocking: true }));
    unwrap(bindAddr(udp, HOST, 0));
    // As the IPCP does: room for the tests' bursts.
    for (const kind of ["rcv", "snd"] as const) {
      if (!setBuffer(udp, kind, 4 << 20, true).ok) {
        unwrap(setBuffer(udp, kind, 4 << 20));
      }
    }
    const listen = unwrap(unixListen(path, 64, { nonBlocking: true }));
    const rig = new Rig(dir, path, udp, listen, o);
    await rig.dp.ready;
    return rig;
  }

  /** The first event (from index `from`) that `match` takes, within 5 s. */
  event<E extends Event>(
    what: string,
    match: (e: Event) => e is E,
    from = 0,
    timeoutMs = 5000,
  ): Promise<E> {
    return this.log.first(what, match, from, timeoutMs);
  }

  /** Counters once `check` holds for them (within 5 s). */
  async counters(
    check: (c: DatapathCounters) => boolean,
  ): Promise<DatapathCounters> {
    const deadline = Date.now() + 5000;
    for (;;) {
      const c = this.dp.counters();
      if (check(c)) return c;
      if (Date.now() > deadline) {
        throw new Error(`counters not as expected: ${JSON.stringify(c)}`);
      }
      await delay(10);
    }
  }

  addFlow(
    eid: number,
    peerEid: number,
    peer: PeerSocket,
    allocated = true,
  ): Uint8Array {
    const token = crypto.getRandomValues(new Uint8Array(16));
    this.dp.send({
      op: Op.Add,
      eid,
      peerEid,
      allocated,
      token,
      addr: unwrap(packAddr(peer.hostname, portOf(peer))),
    });
    return token;
  }

  async connect(): Promise<Deno.UnixConn> {
    const c = await Deno.connect({ transport: "unix", path: this.path });
    this.conns.push(c);
    return c;
  }

  async stop(): Promise<void> {
    await this.dp.stop();
    for (const c of this.conns) {
      try {
        c.close();
      } catch { /* closed by the test */ }
    }
    closeFd(this.udpFd);
    closeFd(this.listenFd);
    await Deno.remove(this.dir, { recursive: true });
  }
}

function datagram(eid: number, payload: Uint8Array | string): Uint8Array {
  const f = frame(payload);
  putU32(f, 0, eid);
  return f;
}

const text = (b: Uint8Array) => new TextDecoder().decode(b);

/** The port a test peer's socket is bound to. */
const portOf = (p: PeerSocket) => (p.sock.addr as Deno.NetAddr).port;

/** An application's end: its frames, each within a deadline. */
class App extends FrameStream {
  constructor(conn: Deno.UnixConn) {
    super(conn, 65536);
  }

  async status(): Promise<number | null> {
    const s = await this.next();
    if (s === null) return null;
    assertEquals(s.length, 4);
    return new DataView(s.buffer).getInt32(0);
  }
}

const isData = (eid: number) => (r: { data: Uint8Array }) =>
  r.data.length >= 4 && getU32(r.data, 0) === eid;

// A Worker started and ended before the tests: Deno keeps the last Worker's
// runtime descriptors until the next one starts, which every leak check
// then starts from.
{
  const rig = await Rig.start();
  await rig.stop();
}

Deno.test("data path: packets both ways in place; every drop counted, none handed on", async () => {
  const rig = await Rig.start();
  const peer = new PeerSocket(HOST, 0);
  const otherPort = new PeerSocket(HOST, 0);
  const otherHost = new PeerSocket(OTHER_HOST, 0);
  try {
    const token = rig.addFlow(100, 7, peer);
    const app = new App(await rig.connect());
    // The attach frame and a packet at once, as lib/app/dev.ts writes them.
    const attach = frame(encodeAttach(100, token));
    const hello = frame("hello");
    await app.write([attach, hello]);
    assertEquals(await app.status(), 0);
    await rig.event("attached", (e): e is Event => e.t === "attached");
    const out = await peer.receive("the app's packet", isData(7));
    assertEquals(text(out.data.subarray(4)), "hello");
    assertEquals(out.from.port, rig.port);

    await peer.send(datagram(100, "abc"), HOST, rig.port);
    assertEquals(text((await app.next())!), "abc");

    // What must be dropped, then a packet that must arrive right after
    // "abc": the socket keeps datagrams in order, so anything dropped that
    // were handed on would come first.
    const mgmt = new Uint8Array(60);
    mgmt[44] = 1;
    await peer.send(datagram(100, ""), HOST, rig.port); // keepalive
    await otherPort.send(datagram(100, "spoof port"), HOST, rig.port);
    await otherHost.send(datagram(100, "spoof host"), HOST, rig.port);
    await peer.send(datagram(555, "nobody"), HOST, rig.port);
    await peer.send(new Uint8Array([0, 0]), HOST, rig.port);
    await peer.send(new Uint8Array(10), HOST, rig.port); // a runt of eid 0
    await peer.send(mgmt, HOST, rig.port);
    await peer.send(
      datagram(100, new Uint8Array(MAX_PAYLOAD_V4 + 1)),
      HOST,
      rig.port,
    );
    await peer.send(datagram(100, "end"), HOST, rig.port);
    assertEquals(text((await app.next())!), "end");
    const c = rig.dp.counters();
    assertEquals(
      [c.wrongSource, c.unknownEid, c.short, c.badMgmt, c.oversized],
      [2, 1, 1, 1, 1],
    );
    assertEquals(c.rxPackets, 2);
    const m = await rig.event(
      "mgmt",
      (e): e is Extract<Event, { t: "mgmt" }> => e.t === "mgmt",
    );
    assertEquals(m.frames.length, 1);
    assertEquals(m.frames[0]!.data, mgmt);
    assertEquals(m.frames[0]!.host, HOST);
    assertEquals(m.frames[0]!.port, portOf(peer));
    // The flow's traffic reaches the control thread as activity.
    const act = await rig.event(
      "activity",
      (e): e is Extract<Event, { t: "activity" }> =>
        e.t === "activity" && e.flows[0] === 100,
    );
    assert(act.flows[1]! > 0 && act.flows[2]! > 0, JSON.stringify(act));

    // An empty frame sends nothing; a burst of frames in one write goes
    // out whole and in order.
    const burst: Uint8Array[] = [frame("")];
    for (let i = 0; i < 200; i++) burst.push(frame(`p${i}`));
    await app.write(burst);
    for (let i = 0; i < 200; i++) {
      const d = await peer.receive(`packet ${i}`, isData(7));
      assertEquals(text(d.data.subarray(4)), `p${i}`);
    }
    assertEquals(
      (await rig.counters((c) => c.txPackets >= 201)).txPackets,
      201,
    );

    // A packet over the MTU ends the flow: the application is told (its
    // connection closes) and so is the control thread.
    const from = rig.events.length;
    await app.write([lyingFrame("x", MAX_PAYLOAD_V4 + 1)]);
    assertEquals(await app.next(), null);
    const gone = await rig.event(
      "detached",
      (e): e is Extract<Event, { t: "detached" }> => e.t === "detached",
      from,
    );
    assertEquals(gone.eid, 100);
    assertMatch(gone.reason, /over 8980 bytes/);
    // The flow is gone from the data path: its data is now unknown.
    await peer.send(datagram(100, "late"), HOST, rig.port);
    await rig.counters((c) => c.unknownEid === 2);
  } finally {
    await otherHost.close();
    await otherPort.close();
    await peer.close();
    await rig.stop();
  }
});

Deno.test("data path: attach refusals; a pending flow parks its application until allocated; early packets wait", async () => {
  const rig = await Rig.start({ helloMs: 300, preAttachQueue: 4 });
  const peer = new PeerSocket(HOST, 0);
  try {
    const token = rig.addFlow(200, 0, peer, false);
    // Refused with EPERM: a wrong token, an unknown flow, a short attach.
    for (
      const bad of [
        frame(encodeAttach(200, new Uint8Array(16))),
        frame(encodeAttach(201, token)),
        frame("short"),
      ]
    ) {
      const app = new App(await rig.connect());
      await app.write([bad]);
      assertEquals(await app.status(), -1);
      assertEquals(await app.next(), null);
    }
    // An oversized first frame, and silence: refused and closed (silence
    // after helloMs).
    const big = new App(await rig.connect());
    await big.write([lyingFrame("x", 0xffff_ffff)]);
    assertEquals(await big.status(), -1);
    assertEquals(await big.next(), null);
    const silent = new App(await rig.connect());
    const t0 = Date.now();
    assertEquals(await silent.status(), -1);
    assertEquals(await silent.next(), null);
    assert(Date.now() - t0 >= 250, "closed before its attach deadline");

    // Data from the peer before the flow is allocated waits for its
    // application (the FLOW_REPLY and the first data can come in one batch).
    await peer.send(datagram(200, "early"), HOST, rig.port);
    const app = new App(await rig.connect());
    await app.write([frame(encodeAttach(200, token))]);
    await app.write([frame("from the app")]);
    // Parked: neither a status nor a packet out yet.
    const first = app.next(300).catch(() => "nothing");
    assertEquals(await first, "nothing");
    assertEquals(peer.queue.length, 0);
    const from = rig.events.length;
    rig.dp.send({ op: Op.Allocated, eid: 200, peerEid: 9 });
    assertEquals(await app.status(), 0);
    assertEquals(text((await app.next())!), "early");
    const out = await peer.receive("the parked packet", isData(9));
    assertEquals(text(out.data.subarray(4)), "from the app");
    await rig.event("attached", (e): e is Event => e.t === "attached", from);
    // A second application for the same flow is refused.
    const second = new App(await rig.connect());
    await second.write([frame(encodeAttach(200, token))]);
    assertEquals(await second.status(), -1);
    // The control thread ends the flow: the application sees the end, and
    // no "detached" comes back (the control thread knows).
    rig.dp.send({ op: Op.Remove, eid: 200 });
    assertEquals(await app.next(), null);
    await delay(100);
    assertEquals(rig.events.filter((e) => e.t === "detached").length, 0);

    // At most preAttachQueue packets wait for an application; the rest are
    // counted as dropped for a slow reader.
    const t2 = rig.addFlow(300, 30, peer);
    for (let i = 0; i < 7; i++) {
      await peer.send(datagram(300, `q${i}`), HOST, rig.port);
    }
    await rig.counters((c) => c.slowReader === 3);
    const late = new App(await rig.connect());
    await late.write([frame(encodeAttach(300, t2))]);
    assertEquals(await late.status(), 0);
    for (let i = 0; i < 4; i++) {
      assertEquals(text((await late.next())!), `q${i}`);
    }
    await peer.send(datagram(300, "after"), HOST, rig.port);
    assertEquals(text((await late.next())!), "after");
  } finally {
    await peer.close();
    await rig.stop();
  }
});

Deno.test("data path: a stalled reader costs dropped packets and bounded memory, and reads on afterwards", async () => {
  const rig = await Rig.start({ appQueueBytes: 64 * 1024 });
  const peer = new PeerSocket(HOST, 0);
  try {
    const token = rig.addFlow(400, 40, peer);
    const app = new App(await rig.connect());
    await app.write([frame(encodeAttach(400, token))]);
    assertEquals(await app.status(), 0);
    // 4 MB towards an application that reads nothing.
    const N = 4000;
    const p = new Uint8Array(1000);
    for (let i = 0; i < N; i++) {
      new DataView(p.buffer).setUint32(0, i);
      await peer.send(datagram(400, p), HOST, rig.port);
      if (i % 200 === 199) await delay(5); // the receive buffer keeps up
    }
    const c = await rig.counters((c) => c.rxPackets + c.slowReader === N);
    assert(c.slowReader > 0, JSON.stringify(c));
    // What was kept arrives whole and in order.
    let last = -1;
    let got = 0;
    while (got < c.rxPackets) {
      const f = (await app.next())!;
      assertEquals(f.length, 1000);
      const seq = new DataView(f.buffer).getUint32(0);
      assert(seq > last, `packet ${seq} after ${last}`);
      last = seq;
      got++;
    }
    // Bounded: the queue (64 KiB) and the sockets' buffers, not 4 MB.
    assert(got * 1000 < 2_000_000, `${got} packets were kept`);
    await peer.send(datagram(400, "again"), HOST, rig.port);
    assertEquals(text((await app.next())!), "again");
  } finally {
    await peer.close();
    await rig.stop();
  }
});

Deno.test("data path: an idle data path, blocked in epoll_wait, is woken to stop", async () => {
  const rig = await Rig.start();
  try {
    // Long enough for its last timers: then it waits with no deadline.
    await delay(600);
    const t0 = performance.now();
    await rig.dp.stop();
    const ms = performance.now() - t0;
    assert(ms < 1000, `the idle data path took ${ms} ms to stop`);
  } finally {
    await rig.stop();
  }
});

Deno.test("data path: an application that goes away, stop in the middle of a flood: no hang, no descriptor left", async () => {
  const before = watchedFds();
  const rig = await Rig.start();
  const peer = new PeerSocket(HOST, 0);
  let flooding = true;
  try {
    const apps: App[] = [];
    for (let i = 0; i < 3; i++) {
      const token = rig.addFlow(500 + i, 50 + i, peer);
      const app = new App(await rig.connect());
      await app.write([frame(encodeAttach(500 + i, token))]);
      assertEquals(await app.status(), 0);
      apps.push(app);
    }
    // One application goes away: its flow ends, the control thread hears it.
    const from = rig.events.length;
    apps[0]!.conn.close();
    const gone = await rig.event(
      "detached",
      (e): e is Extract<Event, { t: "detached" }> => e.t === "detached",
      from,
    );
    assertEquals(gone.eid, 500);
    assertEquals(gone.reason, "deallocated by the application");
    // A flood both ways on the others, then stop.
    const p = datagram(501, new Uint8Array(1400));
    const toPeer = frame(new Uint8Array(1400));
    const floods = [
      (async () => {
        while (flooding) {
          await peer.send(p, HOST, rig.port);
        }
      })(),
      ...apps.slice(1).map(async (a) => {
        while (flooding) {
          await a.write([toPeer]).catch(() => (flooding = false));
        }
      }),
      (async () => {
        for (;;) {
          if (await apps[1]!.next().catch(() => null) === null) return;
        }
      })(),
    ];
    await rig.counters((c) => c.rxPackets > 1000 && c.txPackets > 1000);
    const t0 = performance.now();
    await rig.dp.stop();
    const ms = performance.now() - t0;
    assert(ms < 1500, `the data path took ${ms} ms to stop`);
    // Its connections closed: the applications see the end (or a reset,
    // for one whose last packets were not read).
    assert(await apps[2]!.ends(), "an application's connection stayed open");
    flooding = false;
    await Promise.all(floods);
  } finally {
    flooding = false;
    await peer.close();
    await rig.stop();
  }
  await assertNoNewFds(before, 2000);
});
