/**
 * The unicast IPCP with its real data path (a Worker, as in ipcpd-unicast)
 * on a fake irmd: a flow from this member to a name of its own, its two
 * ends real Unix connections speaking lib/ipc/dataplane.ts. Every packet
 * gets the DT header, loops through the DT decoder and comes out
 * unchanged and in order, both ways, 1 byte to the MTU and in bursts; an
 * end that goes away takes the other down; nothing is left open.
 */
import {
  assert,
  assertEquals,
  assertMatch,
  assertThrows,
} from "../../tests/assert.ts";
import { MAX_PAYLOAD_V6 } from "../../lib/wire/udp_wire.ts";
import {
  closeFd,
  unixConnect,
  unixListen,
  unwrap,
  writeFd,
} from "../../lib/sys/mod.ts";
import { assertNoNewFds, watchedFds } from "../../lib/sys/testing.ts";
import { Logger } from "../../lib/util/log.ts";
import { encodeAttach } from "../../lib/ipc/dataplane.ts";
import { putU32 } from "../../lib/ipc/framing.ts";
import {
  Datapath,
  type DatapathCounters,
  MGMT_BACKLOG,
} from "../common/dp_host.ts";
import { MAX_N1_PACKET, Op } from "../common/dp_msg.ts";
import {
  App,
  concat,
  EventLog,
  eventually,
  frame,
  FrameStream,
  ipcpRig,
  packet,
  sameBytes,
  samePackets,
  statusFrame,
} from "../common/testing.ts";
import {
  decodeFlowPeer,
  decodeTables,
  encodeFlowPeer,
  encodeTables,
  FLOW_PEER_LEN,
  flowEid,
  type FlowPeer,
} from "./datapath.ts";
import { decodeDt, DT_DEFAULT, encodeDt } from "./dt.ts";
import {
  decodeFa,
  ECN_RX_IDLE,
  ecnReceive,
  FA_HDR_LEN,
  FLOW_UPDATE,
  flowUpdate,
  type FlowUpdateMsg,
} from "./fa.ts";
import type { ForwardingTables } from "./routing.ts";
import { UNICAST_MTU, UnicastIpcp } from "./ipcp.ts";

/** A unicast member with its data path, on a fake irmd, "oping" registered. */
const rig = () =>
  ipcpRig((rundir) => new UnicastIpcp("u1", rundir), "net1", UNICAST_MTU);

Deno.test("a flow's peer in an ADD record: encoded and decoded, bad cubes refused", () => {
  const p = {
    eidHigh: 0xcfbf5075,
    peerEid: 0x107f5af400000042n,
    peerAddr: 0xcb475e84n,
    qc: 2,
  };
  const b = encodeFlowPeer(p);
  assertEquals(b.length, FLOW_PEER_LEN);
  assertEquals(decodeFlowPeer(b), p);
  b[20] = 3;
  assertEquals(decodeFlowPeer(b), undefined);
  assertEquals(decodeFlowPeer(new Uint8Array(3)), undefined);
});

Deno.test("unicast data path: packets loop through DT unchanged and in order, both ways, 1 byte to the MTU", async () => {
  const r = await rig();
  try {
    const f = await r.allocate();
    const server = await r.attach(f.server);
    assertEquals(await server.status(), 0);
    const sizes = [1, 2, 64, 1500, UNICAST_MTU];
    const client = await r.attach(
      f.client,
      sizes.map((n, i) => frame(packet(i, n))),
    );
    assertEquals(await client.status(), 0);
    for (let i = 0; i < sizes.length; i++) {
      assertEquals(await server.next(), packet(i, sizes[i]!), `packet ${i}`);
    }
    await server.write([frame(packet(99, 100))]);
    assertEquals(await client.next(), packet(99, 100));
    const n = 2000;
    const size = (i: number) => 1 + (i * 37) % 1400;
    const sent = Array.from({ length: n }, (_, i) => frame(packet(i, size(i))));
    const reading = (async () => {
      for (let i = 0; i < n; i++) {
        const got = await server.next();
        assert(got !== null, `stream ended at ${i}`);
        assertEquals(got, packet(i, size(i)), `packet ${i}`);
      }
    })();
    await client.write(sent);
    await reading;
    const c = r.ipcp.dataPathCounters()!;
    assertEquals(c.noRoute, 0);
    assertEquals(c.unknownEid, 0);
    assertEquals(c.txPackets, sizes.length + 1 + n);
    await eventually(
      "all delivered",
      () => r.ipcp.dataPathCounters()!.rxPackets === c.txPackets,
    );

    // The client goes away: the server's end goes down, the irmd hears.
    client.close();
    assert(await server.ends());
    await r.irmd.until(
      "the server side reported",
      () => r.irmd.ended.length >= 1,
    );
    assertEquals(r.ipcp.stats().flows, 0);
  } finally {
    await r.close();
  }
});

// ------------------------------------------------------------ N-1 flows
//
// The data path alone (no control thread but the test's): its Worker
// started through dp_host.ts, the lower IPCPs emulated by a Unix listener
// of the test's, each N-1 flow a real connection to it, the attach frame
// written by the test as the control thread writes it.

const MTU = MAX_PAYLOAD_V6 - DT_DEFAULT.hdrLen;
const ME = 0x0a0a_0a0an;
const NEIGHBOUR = 0x0b0b_0b0bn;
const FAR = 0x0c0c_0c0cn;
const MAX_TTL = 60;

type NetEvent =
  | { t: "n1"; id: number; sdus: Uint8Array[] }
  | { t: "n1Down"; id: number; reason: string }
  | { t: "attached"; eid: number }
  | { t: "detached"; eid: number; reason: string }
  | { t: "fatal"; error: string };

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A lower IPCP's end of an N-1 flow. */
class Lower extends FrameStream {
  constructor(conn: Deno.UnixConn) {
    super(conn, MAX_N1_PACKET);
  }

  status(s: number): Promise<void> {
    return this.write([statusFrame(s)]);
  }
}

/** A data path of address ME, and what it reported. */
class NetRig {
  readonly log = new EventLog<NetEvent>();
  get events(): NetEvent[] {
    return this.log.all;
  }
  readonly dp: Datapath;
  readonly lowers: Lower[] = [];
  readonly apps: App[] = [];

  private constructor(
    readonly dir: string,
    readonly listenFd: number,
    readonly lower: Deno.UnixListener,
    ecn: boolean,
  ) {
    const push = (e: NetEvent) => this.log.push(e);
    this.dp = Datapath.start({
      kind: "unicast",
      family: undefined,
      mtu: MTU,
      listenFd,
      appQueueBytes: 1 << 20,
      preAttachQueue: 256,
      helloMs: 5000,
      acceptRetryMs: 100,
      log: new Logger("unicast-datapath-test"),
      events: {
        mgmt: () => {},
        n1: (id, sdus) => push({ t: "n1", id, sdus }),
        n1Down: (id, reason) => push({ t: "n1Down", id, reason }),
        attached: (eid) => push({ t: "attached", eid }),
        detached: (eid, reason) => push({ t: "detached", eid, reason }),
        activity: () => {},
        acceptFailed: () => {},
        acceptResumed: () => {},
        fatal: (error) => push({ t: "fatal", error }),
      },
    });
    this.dp.send({
      op: Op.Layer,
      addr: ME,
      addrSize: 4,
      eidSize: 8,
      maxTtl: MAX_TTL,
      multipath: false,
      ecn,
    });
  }

  get dataPath(): string {
    return `${this.dir}/dp.sock`;
  }

  /** `ecn`: the layer's congestion avoidance is multi-bit ECN. */
  static async start(ecn = false): Promise<NetRig> {
    const dir = await Deno.makeTempDir({ prefix: "o7s-udp-n1-" });
    const listen = unwrap(
      unixListen(`${dir}/dp.sock`, 64, { nonBlocking: true }),
    );
    const lower = Deno.listen({ transport: "unix", path: `${dir}/lower.sock` });
    const rig = new NetRig(dir, listen, lower, ecn);
    await rig.dp.ready;
    return rig;
  }

  /**
   * An N-1 flow `id`: connected to the lower listener, the attach frame
   * written (as the control thread does), given to the data path; the
   * lower end has read the attach frame.
   */
  async n1(id: number): Promise<Lower> {
    const fd = unwrap(unixConnect(`${this.dir}/lower.sock`));
    const conn = await this.lower.accept();
    const token = new Uint8Array(16).fill(id);
    const attach = frame(encodeAttach(1000 + id, token));
    assertEquals(unwrap(writeFd(fd, attach)), attach.length);
    this.dp.send({ op: Op.N1Add, id, fd });
    const lo = new Lower(conn);
    this.lowers.push(lo);
    assertEquals(await lo.next(), encodeAttach(1000 + id, token));
    return lo;
  }

  /** An N-1 flow that is up, carrying DT of cube `qc`. */
  async dtFlow(id: number, qc = 0): Promise<Lower> {
    const lo = await this.n1(id);
    await lo.status(0);
    this.dp.send({ op: Op.N1Dt, id, qc });
    return lo;
  }

  /** The tables: per cube, [destination, flow] pairs. */
  tables(flows: [[bigint, number][], [bigint, number][], [bigint, number][]]) {
    const table = (q: [bigint, number][]) =>
      new Map(q.map(([d, f]) => [d, [f]]));
    const t: ForwardingTables = {
      nextHops: new Map(),
      flows: [table(flows[0]), table(flows[1]), table(flows[2])],
    };
    this.dp.sendBytes({ op: Op.Tables }, encodeTables(t));
  }

  /** An application flow `handle`, its peer `peer`, attached. */
  async app(
    handle: number,
    eidHigh: number,
    peer: Omit<FlowPeer, "eidHigh">,
  ): Promise<App> {
    const token = crypto.getRandomValues(new Uint8Array(16));
    this.dp.send({
      op: Op.Add,
      eid: handle,
      peerEid: 0,
      allocated: true,
      token,
      addr: encodeFlowPeer({ ...peer, eidHigh }),
    });
    const app = await App.attach(this.dataPath, MTU, handle, token);
    this.apps.push(app);
    assertEquals(await app.status(), 0);
    return app;
  }

  /** The first event from `from` on that `match` takes, within 5 s. */
  event<E extends NetEvent>(
    what: string,
    match: (e: NetEvent) => e is E,
    from = 0,
    timeoutMs = 5000,
  ): Promise<E> {
    return this.log.first(what, match, from, timeoutMs);
  }

  /** The packets of "n1" events of flow `id`, once there are `n`. */
  async n1Packets(id: number, n: number): Promise<Uint8Array[]> {
    const got = () =>
      this.log.all.flatMap((e) => e.t === "n1" && e.id === id ? e.sdus : []);
    await eventually(`${n} packets of N-1 flow ${id}`, () => got().length >= n);
    return got();
  }

  async counters(
    check: (c: DatapathCounters) => boolean,
  ): Promise<DatapathCounters> {
    let c = this.dp.counters();
    await eventually(
      "the counters",
      () => check(c = this.dp.counters()),
    ).catch(() => {
      throw new Error(`counters not as expected: ${JSON.stringify(c)}`);
    });
    return c;
  }

  async stop(): Promise<void> {
    await this.dp.stop();
    for (const l of this.lowers) l.close();
    for (const a of this.apps) a.close();
    this.lower.close();
    closeFd(this.listenFd);
    await Deno.remove(this.dir, { recursive: true });
  }
}

const isN1Down =
  (id: number) => (e: NetEvent): e is Extract<NetEvent, { t: "n1Down" }> =>
    e.t === "n1Down" && e.id === id;

/** A DT packet: the header, then `payload`. */
function dt(
  dst: bigint,
  eid: bigint,
  payload: Uint8Array,
  ttl = MAX_TTL,
  qc = 0,
  ecn = 0,
) {
  return encodeDt({ dst, qc, ttl, ecn, eid }, payload);
}

// A Worker started and ended before the leak checks (see the UDP tests).
{
  const rig = await NetRig.start();
  await rig.stop();
}

function netTest(
  name: string,
  fn: (rig: NetRig) => Promise<void>,
  ecn = false,
): void {
  Deno.test(name, async () => {
    const before = watchedFds();
    const rig = await NetRig.start(ecn);
    try {
      await fn(rig);
      assertEquals(
        rig.events.filter((e) => e.t === "fatal"),
        [],
        "no fatal event",
      );
    } finally {
      await rig.stop();
    }
    await assertNoNewFds(before, 2000);
  });
}

netTest(
  "unicast data path: an N-1 flow's status, then its packets to the control thread in order; writes intact, before the status, 64 KiB ones, thousands back to back, across the ring's end",
  async (rig) => {
    const lo = await rig.n1(1);
    // Written before the status is read: the lower IPCP takes them at once.
    rig.dp.sendBytes({ op: Op.N1Write, id: 1 }, packet(0, 24));
    assertEquals(await lo.next(), packet(0, 24));
    const sizes = [1, 24, 1500, MAX_N1_PACKET, 0, 7];
    await lo.write([
      statusFrame(0),
      ...sizes.map((n, i) => frame(packet(i, n))),
    ]);
    const got = await rig.n1Packets(1, sizes.length);
    samePackets(got, sizes.map((n, i) => packet(i, n)));
    // Many more than the ring's 4096 records hold at once (a 64 KiB packet
    // takes 1026): the backlog waits, the order is kept, with send() too.
    const n = 3000;
    const size = (i: number) =>
      i % 50 === 0
        ? MAX_N1_PACKET
        : i % 7 === 0
        ? 64 * (i % 5)
        : (i * 37) % 1500;
    const reading = (async () => {
      for (let i = 0; i < n; i++) {
        const f = await lo.next();
        assert(f !== null, `stream ended at ${i}`);
        sameBytes(f, packet(i, size(i)), `packet ${i}`);
      }
      return await lo.next();
    })();
    for (let i = 0; i < n; i++) {
      rig.dp.sendBytes({ op: Op.N1Write, id: 1 }, packet(i, size(i)));
    }
    rig.dp.send({ op: Op.N1Remove, id: 1 });
    assertEquals(await reading, null, "then the end: N1Remove came after");
    await delay(50);
    assertEquals(rig.events.filter((e) => e.t === "n1Down"), [], "no event");
  },
);

netTest(
  "unicast data path: packets for a control thread that is behind are bounded as management frames are: beyond the backlog, dropped and counted",
  async (rig) => {
    const lo = await rig.n1(1);
    const n = 3000;
    await lo.write([
      statusFrame(0),
      ...Array.from({ length: n }, (_, i) => frame(packet(i, 10))),
    ]);
    // This thread takes nothing for a while: the data path reads them all.
    const until = Date.now() + 500;
    while (Date.now() < until) { /* busy */ }
    const c = await rig.counters((c) => c.mgmtOverflow === n - MGMT_BACKLOG);
    assertEquals(c.mgmtOverflow, n - MGMT_BACKLOG);
    const got = await rig.n1Packets(1, MGMT_BACKLOG);
    assertEquals(
      got,
      Array.from({ length: MGMT_BACKLOG }, (_, i) => packet(i, 10)),
    );
    // Taken now: the next ones come through.
    await lo.write([frame(packet(n, 10))]);
    assertEquals(
      (await rig.n1Packets(1, MGMT_BACKLOG + 1))[MGMT_BACKLOG],
      packet(n, 10),
    );
  },
);

netTest(
  "unicast data path: a refused status, a broken frame, the lower end gone: the flow is down; N1Remove closes it with no event",
  async (rig) => {
    const refused = await rig.n1(1);
    await refused.status(-13);
    const e1 = await rig.event("n1Down", isN1Down(1));
    assertMatch(e1.reason, /refused the flow \(EACCES\)/);
    assert(await refused.ends());

    const broken = await rig.n1(2);
    const b = new Uint8Array(8);
    putU32(b, 0, 0x00ff_ffff);
    // In one write: read in one pass, the packet and the broken frame.
    await broken.write([statusFrame(0), frame(packet(1, 10)), b]);
    const e2 = await rig.event("n1Down", isN1Down(2));
    assertMatch(e2.reason, /a packet of 16777215 bytes/);
    // What it read before is handed on, and comes first.
    const i2 = rig.events.indexOf(e2);
    const p2 = rig.events.findIndex((e) => e.t === "n1" && e.id === 2);
    assert(
      p2 >= 0 && p2 < i2,
      "the packet before the event",
    );

    const gone = await rig.n1(3);
    await gone.status(0);
    await gone.write([frame(packet(3, 30))]);
    await rig.n1Packets(3, 1);
    gone.close();
    const e3 = await rig.event("n1Down", isN1Down(3));
    assertEquals(e3.reason, "the lower layer ended the flow");

    const removed = await rig.n1(4);
    await removed.status(0);
    rig.dp.send({ op: Op.N1Remove, id: 4 });
    assert(await removed.ends());
    // A write for it now goes nowhere, and says nothing.
    rig.dp.sendBytes({ op: Op.N1Write, id: 4 }, packet(4, 4));
    await delay(100);
    assertEquals(rig.events.filter((e) => e.t === "n1Down").length, 3);
    assertEquals(rig.events.find(isN1Down(4)), undefined);
  },
);

netTest(
  "unicast data path: dt flows forward with the TTL decremented, deliver to this member's flows and components, and carry its applications' packets; no route, TTL and runts counted",
  async (rig) => {
    const eidHigh = 0x1234_5678;
    const handle = 70;
    const myEid = flowEid(eidHigh, handle);
    const peerEid = 0x99n << 32n | 5n;
    const l1 = await rig.dtFlow(1);
    const l2 = await rig.dtFlow(2);
    const l3 = await rig.dtFlow(3, 1); // a video flow: the video table
    const app = await rig.app(handle, eidHigh, {
      peerEid,
      peerAddr: NEIGHBOUR,
      qc: 0,
    });

    // No tables yet: no routes, from a flow or from the application.
    await l1.write([frame(dt(FAR, 100n, packet(0, 10)))]);
    await app.write([frame(packet(1, 10))]);
    await rig.counters((c) => c.noRoute === 2);

    // FAR through flow 2 (in the best-effort table only), the neighbour
    // through flow 1.
    rig.tables([[[FAR, 2], [NEIGHBOUR, 1]], [[NEIGHBOUR, 1]], []]);
    const through = dt(FAR, 0x77n, packet(2, 1000));
    await l1.write([frame(through)]);
    const out = await l2.next();
    const want = through.slice();
    want[5] = MAX_TTL - 1;
    assertEquals(out, want, "the same packet, its TTL one less");
    // Large ones too, and bursts, in order.
    const burst = Array.from(
      { length: 500 },
      (_, i) => dt(FAR, BigInt(i), packet(i, i % 10 === 0 ? MTU : 1 + i * 3)),
    );
    const reading = (async () => {
      for (let i = 0; i < burst.length; i++) {
        const w = burst[i]!.slice();
        w[5] = MAX_TTL - 1;
        sameBytes(await l2.next(), w, `packet ${i}`);
      }
    })();
    await l1.write(burst.map((b) => frame(b)));
    await reading;

    // For this member: to the application, to the FA (whole).
    const data = packet(3, 777);
    await l2.write([frame(dt(ME, myEid, data))]);
    assertEquals(await app.next(), data);
    const fa = dt(ME, 0n, packet(4, 61));
    const dht = dt(ME, 1n, packet(5, 40));
    await l2.write([frame(fa), frame(dht)]);
    assertEquals(await rig.n1Packets(2, 2), [fa, dht]);

    // The application's packet, towards the neighbour: on flow 1.
    const q = packet(6, 1400);
    await app.write([frame(q)]);
    assertEquals(await l1.next(), dt(NEIGHBOUR, peerEid, q));

    // TTL 1, a runt, an unknown eid, FAR in the video cube (the qc byte
    // chooses the table, whatever flow it came on): dropped.
    const before = rig.dp.counters();
    await l1.write([
      frame(dt(FAR, 5n, packet(7, 10), 1)),
      frame(new Uint8Array(5)),
      frame(dt(ME, flowEid(eidHigh + 1, handle), packet(8, 10))),
    ]);
    await l3.write([frame(dt(FAR, 5n, packet(9, 10), MAX_TTL, 1))]);
    // And after them, one that goes through: the drops came first.
    await l3.write([frame(dt(NEIGHBOUR, 5n, packet(10, 10), 2, 1))]);
    const last = dt(NEIGHBOUR, 5n, packet(10, 10), 1, 1);
    assertEquals(await l1.next(), last);
    // A best-effort packet for FAR that came on the video flow: by the
    // best-effort table, on flow 2.
    await l3.write([frame(dt(FAR, 6n, packet(11, 10)))]);
    assertEquals(await l2.next(), dt(FAR, 6n, packet(11, 10), MAX_TTL - 1));
    const c = await rig.counters((c) => c.ttlExpired === before.ttlExpired + 1);
    assertEquals(c.short, before.short + 1);
    assertEquals(c.unknownEid, before.unknownEid + 1);
    assertEquals(c.noRoute, before.noRoute + 1);
    assertEquals(c.n1Dropped, 0);
    assertEquals(rig.events.filter((e) => e.t === "n1Down"), []);
  },
);

netTest(
  "unicast data path: an N-1 flow that is not read: its frames queue, then flow once it is, none torn; beyond the bound, dropped and counted",
  async (rig) => {
    const l1 = await rig.dtFlow(1);
    rig.tables([[[NEIGHBOUR, 1]], [], []]);
    const peerEid = 0x42n;
    const app = await rig.app(80, 1, { peerEid, peerAddr: NEIGHBOUR, qc: 0 });
    // 2000 packets of about 7 KiB, 14 MiB: more than the socket and the
    // 4 MiB queue hold.
    const n = 2000;
    const size = (i: number) => 6000 + i; // which it is
    await app.write(
      Array.from({ length: n }, (_, i) => frame(packet(i, size(i)))),
    );
    const c = await rig.counters((c) => c.txPackets === n);
    assert(c.n1Dropped > 0, "some were dropped");
    // Now read: whole DT packets, in order, as many as were not dropped.
    let seq = -1;
    let count = 0;
    for (; count < n - c.n1Dropped; count++) {
      const f = await l1.next();
      assert(f !== null);
      const p = decodeDt(f);
      assert(p.ok, "a whole DT packet");
      assertEquals(p.value.dst, NEIGHBOUR);
      assertEquals(p.value.eid, peerEid);
      assertEquals(p.value.ecn, 0, "no marks: congestion none");
      const k = p.value.payload.length - 6000;
      assert(k > seq && k < n, `frame ${count}: packet ${k} after ${seq}`);
      sameBytes(p.value.payload, packet(k, size(k)), `frame ${count}`);
      seq = k;
    }
    // Nothing more, and the flow takes packets again.
    const last = packet(n, 100);
    await app.write([frame(last)]);
    assertEquals(await l1.next(), dt(NEIGHBOUR, peerEid, last));
    assertEquals(rig.events.filter((e) => e.t === "n1Down"), []);
  },
);

Deno.test("forwarding tables: encoded and decoded, the cubes that are alike once; bad bytes refused", () => {
  const t0 = new Map([[1n, [7]], [0xffff_ffff_ffff_ffffn, [0xffff_ffff, 3]]]);
  const t: ForwardingTables = {
    nextHops: new Map([[1n, [2n]]]),
    flows: [t0, new Map(t0), new Map([[5n, [1]]])],
  };
  const b = encodeTables(t);
  assertEquals(b.length, 2 + 4 + 13 + 17 + 4 + 13);
  const back = decodeTables(b)!;
  assertEquals(back.flows, t.flows);
  assertEquals(back.nextHops.size, 0);
  const none: ForwardingTables = {
    nextHops: new Map(),
    flows: [new Map(), new Map(), new Map()],
  };
  assertEquals(decodeTables(encodeTables(none))!.flows, none.flows);
  assertEquals(encodeTables(none).length, 6);
  for (let cut = 0; cut < b.length; cut++) {
    assertEquals(decodeTables(b.subarray(0, cut)), undefined, `cut at ${cut}`);
  }
  assertEquals(decodeTables(concat([b, new Uint8Array(1)])), undefined);
  const v2 = b.slice();
  v2[0] = 2;
  assertEquals(decodeTables(v2), undefined);
  assertThrows(() =>
    encodeTables({
      ...none,
      flows: [new Map([[1n, [-1]]]), new Map(), new Map()],
    })
  );
});

// ------------------------------------------------------------ mb-ecn

netTest(
  "unicast data path, mb-ecn: towards a lower layer that does not read, the application's packets get rising ecn bytes (queued >> 4), forwarded ones too, ORed with what they had",
  async (rig) => {
    const l1 = await rig.dtFlow(1);
    const l2 = await rig.dtFlow(2);
    rig.tables([[[NEIGHBOUR, 2], [FAR, 2]], [], []]);
    const peerEid = 0x42n;
    const app = await rig.app(80, 1, { peerEid, peerAddr: NEIGHBOUR, qc: 0 });
    // 1000 packets of 1 KiB, more than the socket holds, fewer than the
    // queue's bound: none dropped.
    const n = 1000;
    await app.write(
      Array.from({ length: n }, (_, i) => frame(packet(i, 1000))),
    );
    await rig.counters((c) => c.txPackets === n);
    // And forwarded ones behind them, some marked already.
    const m = 300;
    await l1.write(
      Array.from(
        { length: m },
        (_, i) => frame(dt(FAR, 9n, packet(i, 500), MAX_TTL, 0, i % 2 * 0x80)),
      ),
    );
    await rig.counters((c) => c.n1Dropped === 0);
    let last = 0;
    for (let i = 0; i < n; i++) {
      const p = decodeDt((await l2.next())!);
      assert(p.ok);
      sameBytes(p.value.payload, packet(i, 1000), `packet ${i}`);
      // At most the packets before it waited; once the socket is full (far
      // sooner than half of them), a queue that only grows.
      assert(p.value.ecn <= i >> 4, `packet ${i}: ecn ${p.value.ecn}`);
      if (i > n / 2) {
        assert(p.value.ecn >= last, `packet ${i}: ${p.value.ecn} < ${last}`);
      }
      last = p.value.ecn;
    }
    assert(last >= 16, `the last one's ecn ${last}: 256 and more queued`);
    let sawMarked = false;
    for (let i = 0; i < m; i++) {
      const p = decodeDt((await l2.next())!);
      assert(p.ok);
      sameBytes(p.value.payload, packet(i, 500), `forwarded ${i}`);
      assertEquals(p.value.ttl, MAX_TTL - 1);
      assertEquals(p.value.ecn & 0x80, i % 2 * 0x80, `forwarded ${i}`);
      if ((p.value.ecn & 0x7f) > 0) sawMarked = true;
    }
    assert(sawMarked, "the forwarded ones queued behind the others: marked");
    assertEquals(rig.dp.counters().n1Dropped, 0);
  },
  true,
);

/** The FLOW_UPDATEs ecnReceive says a flow sends for packets of `ecns`. */
function updatesFor(ecns: number[]): number[] {
  let s = ECN_RX_IDLE;
  const out: number[] = [];
  for (const e of ecns) {
    const r = ecnReceive(s, e);
    s = r.state;
    if (r.update) out.push(s.ece);
  }
  return out;
}

/** The FLOW_UPDATE in a DT packet the data path sent, checked whole. */
function update(bytes: Uint8Array | null, dst: bigint): FlowUpdateMsg {
  assert(bytes !== null);
  const p = decodeDt(bytes);
  assert(p.ok);
  assertEquals(
    { dst: p.value.dst, qc: p.value.qc, ttl: p.value.ttl, eid: p.value.eid },
    { dst, qc: 0, ttl: MAX_TTL, eid: 0n },
  );
  assertEquals(p.value.payload.length, FA_HDR_LEN);
  const m = decodeFa(p.value.payload);
  assert(m.ok && m.value.code === FLOW_UPDATE, "a FLOW_UPDATE");
  return m.value;
}

netTest(
  "unicast data path, mb-ecn: a flow receiving marked packets sends its peer FLOW_UPDATEs with the levels ecnReceive gives, to its address and eid; one receiving unmarked ones, none",
  async (rig) => {
    const l1 = await rig.dtFlow(1);
    const l2 = await rig.dtFlow(2);
    rig.tables([[[NEIGHBOUR, 1], [FAR, 1]], [], []]);
    const eidHigh = 0x1234_5678;
    const peerEid = 0x99n << 32n | 5n;
    const app = await rig.app(70, eidHigh, {
      peerEid,
      peerAddr: NEIGHBOUR,
      qc: 0,
    });
    const quiet = await rig.app(71, eidHigh, {
      peerEid: 0x77n,
      peerAddr: FAR,
      qc: 0,
    });
    // Unmarked ones first, to both: nothing to say.
    const ecns = [
      0,
      0,
      ...Array.from({ length: 40 }, (_, i) => 1 + i % 7),
      ...Array.from({ length: 12 }, () => 0),
      3,
      0,
      0,
      0,
      0,
      0,
    ];
    const want = updatesFor(ecns);
    assert(want.length >= 6, `${want.length} updates`);
    await l2.write(
      ecns.flatMap((e, i) => [
        frame(dt(ME, flowEid(eidHigh, 70), packet(i, 100), MAX_TTL, 0, e)),
        frame(dt(ME, flowEid(eidHigh, 71), packet(i, 50))),
      ]),
    );
    for (let i = 0; i < ecns.length; i++) {
      assertEquals(await app.next(), packet(i, 100), `packet ${i}`);
      assertEquals(await quiet.next(), packet(i, 50), `quiet packet ${i}`);
    }
    const got: FlowUpdateMsg[] = [];
    for (let i = 0; i < want.length; i++) {
      got.push(update(await l1.next(), NEIGHBOUR));
    }
    assertEquals(got, want.map((ece) => flowUpdate(peerEid, ece)));
    // None for the quiet flow: its first marked packet gives the first.
    await l2.write([
      frame(dt(ME, flowEid(eidHigh, 71), packet(99, 50), MAX_TTL, 0, 9)),
    ]);
    assertEquals(await quiet.next(), packet(99, 50));
    assertEquals(update(await l1.next(), FAR), flowUpdate(0x77n, 9));
    assertEquals(rig.dp.counters().noRoute, 0);
  },
  true,
);

netTest(
  "unicast data path, congestion none: marked packets make no FLOW_UPDATE",
  async (rig) => {
    const l1 = await rig.dtFlow(1);
    const l2 = await rig.dtFlow(2);
    rig.tables([[[NEIGHBOUR, 1]], [], []]);
    const eidHigh = 5;
    const peerEid = 0x42n;
    const app = await rig.app(70, eidHigh, {
      peerEid,
      peerAddr: NEIGHBOUR,
      qc: 0,
    });
    await l2.write(
      Array.from({ length: 30 }, (_, i) =>
        frame(
          dt(ME, flowEid(eidHigh, 70), packet(i, 100), MAX_TTL, 0, 1 + i),
        )),
    );
    for (let i = 0; i < 30; i++) assertEquals(await app.next(), packet(i, 100));
    // The first packet on flow 1 is the application's, not an update.
    const q = packet(100, 10);
    await app.write([frame(q)]);
    assertEquals(await l1.next(), dt(NEIGHBOUR, peerEid, q));
  },
);
