/**
 * The connection manager and the enrollment exchange on a simulated clock:
 * two members' connection managers joined by a fake lower layer (what one
 * writes on an N-1 flow arrives as an SDU of the other's), the CEP
 * exchange both ways with the captured bytes, an unknown component, a
 * silent peer, flows ending; then enrollment served and joined over them.
 */
import { assert, assertEquals, assertRejects } from "../../tests/assert.ts";
import type { FlowGrant, QosSpec } from "../../lib/ipc/proto.ts";
import { QOS_CUBES } from "../../lib/wire/udp_wire.ts";
import { fromHex } from "../../lib/wire/hex.ts";
import { cepFor, decodeCep, encodeCep } from "./cep.ts";
import {
  CEP_WAIT_MS,
  type ConnHandlers,
  ConnMgr,
  MAX_CEP_WAITING,
  type N1Flow,
} from "./connmgr.ts";
import {
  decodeEnrollAck,
  defaultLayerConfig,
  encodeEnrollAck,
  requestEnrollment,
  serveEnrollment,
} from "./enroll.ts";
import { qosCube } from "./flow_alloc.ts";

/** Timers on a clock that moves only when told. */
class Clock {
  now = 0;
  #timers: { at: number; f: () => void; live: boolean }[] = [];
  timer = (ms: number, f: () => void) => {
    const t = { at: this.now + ms, f, live: true };
    this.#timers.push(t);
    return () => t.live = false;
  };
  async advance(ms: number): Promise<void> {
    const end = this.now + ms;
    for (;;) {
      await settle();
      const due = this.#timers.filter((t) => t.live && t.at <= end)
        .sort((x, y) => x.at - y.at)[0];
      if (due === undefined) break;
      this.now = due.at;
      due.live = false;
      due.f();
    }
    this.now = end;
    await settle();
  }
}

/** Lets every promise chain run to its next wait. */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

/** A grant of the irmd's for an N-1 flow to "B". */
function grantOf(qos: QosSpec, flowId: number): FlowGrant {
  return {
    handle: 1,
    token: new Uint8Array(16),
    path: "/nowhere",
    name: "B",
    qos,
    mtu: 1400,
    flowId,
    mplMs: 100,
  } as FlowGrant;
}

interface Side {
  mgr: ConnMgr;
  up: N1Flow[];
  sdus: [number, Uint8Array][];
  down: [number, string][];
  removed: number[];
  dtMode: [number, number][];
  written: [number, Uint8Array][];
  enrolled: N1Flow[];
  serve: (f: N1Flow) => Promise<void>;
  onAdd: (id: number) => void;
}

/**
 * Two members on one fake lower layer: `a` allocates to "B" and the flow
 * is accepted at `b`; each write arrives at the other end as an SDU.
 */
function pair(clock: Clock, addrA = 0xaaaan, addrB = 0xbbbbn) {
  /** flow id at one side -> [other side, its flow id] */
  const wire = new Map<string, [Side, number]>();
  let fd = 100;
  const grants: FlowGrant[] = [];
  const grant = (qos: QosSpec) => grantOf(qos, grants.length);
  let lost = false;
  const make = (name: string, addr: bigint): Side => {
    const side = {
      up: [],
      sdus: [],
      down: [],
      removed: [],
      dtMode: [],
      written: [],
      enrolled: [],
      serve: (f: N1Flow) => {
        side.enrolled.push(f);
        return Promise.resolve();
      },
      onAdd: () => {},
    } as unknown as Side;
    const h: ConnHandlers = {
      addr: () => addr,
      badAddr: (x) => x === addr ? "our own address" : undefined,
      cube: (q) => qosCube(q),
      up: (f) => side.up.push(f),
      sdu: (f, s) => side.sdus.push([f.id, s]),
      down: (f, why) => side.down.push([f.id, why]),
      enroll: (f) => side.serve(f),
      log: () => {},
    };
    side.mgr = new ConnMgr({
      allocate: (_dst, qos) => {
        const g = grant(qos);
        grants.push(g);
        return Promise.resolve(g);
      },
      open: () => fd++,
      add: (id) => side.onAdd(id),
      dt: (id, qc) => side.dtMode.push([id, qc]),
      write: (id, sdu) => {
        side.written.push([id, sdu]);
        if (lost) return;
        const to = wire.get(`${name}:${id}`);
        // delivered later, as the data path would
        if (to !== undefined) {
          queueMicrotask(() => to[0].mgr.n1(to[1], [sdu.slice()]));
        }
      },
      remove: (id) => {
        side.removed.push(id);
        const to = wire.get(`${name}:${id}`);
        if (to !== undefined) {
          queueMicrotask(() => to[0].mgr.n1Down(to[1], "peer closed"));
        }
      },
      timer: clock.timer,
    }, h);
    return side;
  };
  const a = make("a", addrA);
  const b = make("b", addrB);
  // A flow a allocates is accepted at b at once: the ids are paired.
  let bId = 0;
  b.onAdd = (id) => bId = id;
  a.onAdd = (ida) => {
    void b.mgr.accepted(grants[grants.length - 1]!);
    wire.set(`a:${ida}`, [b, bId]);
    wire.set(`b:${bId}`, [a, ida]);
  };
  /** A connects for `comp`; the lower layer hands the flow to B. */
  const connect = (
    comp: "enrollment" | "management" | "dt",
    qos = QOS_CUBES.raw,
  ) => a.mgr.connect("B", comp, qos);
  return { a, b, connect, lose: () => lost = true };
}

const hex = (s: string) => {
  const r = fromHex(s.replaceAll(" ", ""));
  if (!r.ok) throw new Error(r.error);
  return r.value;
};

Deno.test("connect: the CEPs as captured, both sides learn the other's address, dt flows switch to DT", async () => {
  const clock = new Clock();
  const { a, b, connect } = pair(clock, 0xc4003767n, 0xcb475e84n);
  const p = connect("management");
  await clock.advance(1);
  const f = await p;
  assertEquals(f.nb, 0xcb475e84n);
  assertEquals(b.up.length, 1);
  assertEquals(b.up[0]!.nb, 0xc4003767n);
  assertEquals(b.up[0]!.comp, "management");
  // Management CEP: 27 bytes, fields 1, 2, 3, 5, 8
  const cepA = a.written[0]![1];
  assertEquals(cepA.length, 27);
  assertEquals(
    cepA.subarray(0, 22),
    hex("0a 0a 4d616e6167656d656e74 12 03 4c5350 18 01 28 00 40"),
  );
  const cepB = b.written[0]![1];
  const back = decodeCep(cepB);
  assert(back.ok);
  assertEquals(back.value.compName, "Management");
  assertEquals(back.value.address, 0xcb475e84n);
  assertEquals(a.dtMode, []);

  const pd = connect("dt");
  await clock.advance(1);
  const fd = await pd;
  assertEquals(a.dtMode, [[fd.id, 0]]);
  assertEquals(b.dtMode.length, 1);
  assertEquals(a.written.at(-1)![1].length, 30);
  // up flows hand their SDUs to the handler
  b.mgr.n1(b.up[1]!.id, [new Uint8Array([1, 2, 3])]);
  assertEquals(b.sdus, [[b.up[1]!.id, new Uint8Array([1, 2, 3])]]);
});

Deno.test("accept: an unknown component gets the all-empty CEP and the flow is given up", async () => {
  const clock = new Clock();
  const { a, b } = pair(clock);
  const g = grantOf(QOS_CUBES.raw, 7);
  const done = b.mgr.accepted(g);
  const id = b.mgr.flows().length + 1;
  b.mgr.n1(1, [
    encodeCep({
      compName: "Routing",
      protocol: "X",
      prefVersion: 1,
      suppVersion: [],
      prefSyntax: 0,
      suppSyntax: [],
      address: 5n,
    }),
  ]);
  await done;
  assertEquals(b.written[0]![1], hex("0a 00 12 00 18 00 28 00 40 00"));
  assertEquals(b.removed, [id]);
  assertEquals(b.mgr.stats.cepUnknown, 1);
  assertEquals(b.up, []);
  assertEquals(a.up, []);
});

Deno.test("accept: no CEP within the wait, the flow is given up; a silent acceptor fails the connect", async () => {
  const clock = new Clock();
  const { a, b, connect, lose } = pair(clock);
  lose();
  const p = connect("dt");
  const failed = assertRejects(() => p, /did not take our dt connection/);
  await clock.advance(CEP_WAIT_MS - 1);
  assertEquals(b.removed, []);
  await clock.advance(2);
  await failed;
  // whichever wait ended first, the other side's flow ended with it
  await clock.advance(CEP_WAIT_MS);
  assertEquals(a.removed.length + b.removed.length, 1);
  assertEquals(a.mgr.get(1), undefined);
  assertEquals(b.mgr.get(1), undefined);
  assertEquals(a.up.length + b.up.length, 0);
});

Deno.test("a flow that goes down is reported once, to the side that had it up", async () => {
  const clock = new Clock();
  const { a, b, connect } = pair(clock);
  const p = connect("dt");
  await clock.advance(1);
  const f = await p;
  a.mgr.give(f, "disconnected");
  await clock.advance(1);
  assertEquals(a.down, [[f.id, "disconnected"]]);
  assertEquals(b.down.length, 1);
  assertEquals(b.down[0]![1], "peer closed");
  a.mgr.n1Down(f.id, "again");
  assertEquals(a.down.length, 1);
  assertEquals(a.mgr.allocatedTo("B", "dt"), []);
});

Deno.test("enrollment over the connection manager: the enrollee learns the layer, the DHT peer is the enroller", async () => {
  const clock = new Clock();
  const { a, b, connect } = pair(clock, 0x1n, 0xcb475e84n);
  const conf = defaultLayerConfig("uni");
  let served: Promise<number> | undefined;
  b.serve = (f) => {
    served = serveEnrollment(f, conf, 0xcb475e84n, () => 1_700_000_000_005);
    return served.then(() => {});
  };
  const p = connect("enrollment");
  await clock.advance(1);
  const f = await p;
  // the enrollment CEP carries address 0: 23 bytes
  assertEquals(a.written[0]![1].length, 23);
  const id = hex("7b13508f105a445a");
  const got = requestEnrollment(f, id, () => 1_700_000_000_000);
  await clock.advance(1);
  const e = await got;
  assertEquals(e.layer.name, "uni");
  assertEquals(e.conf.unicast?.dir.dht?.peer, 0xcb475e84n);
  assertEquals(conf.unicast?.dir.dht?.peer, 0n, "the enroller's own config");
  assertEquals(Math.round(e.offsetMs), 5);
  f.send(encodeEnrollAck({ id, result: 0 }));
  await clock.advance(1);
  assertEquals(await served, 0);
  const ack = decodeEnrollAck(a.written.at(-1)![1]);
  assert(ack.ok);
  assertEquals(ack.value.id, id);
});

Deno.test("enrollment: an enroller that never answers fails the enrollee in its wait, one that gets garbage says so", async () => {
  const clock = new Clock();
  const { b, connect } = pair(clock);
  b.serve = () => new Promise(() => {}); // never answers
  const p = connect("enrollment");
  await clock.advance(1);
  const f = await p;
  const got = requestEnrollment(f, new Uint8Array(8), Date.now, 5000);
  const failed = assertRejects(() => got, /no enrollment response/);
  await clock.advance(5001);
  await failed;

  const clock2 = new Clock();
  const two = pair(clock2);
  let served: Promise<number> | undefined;
  two.b.serve = (f) => {
    served = serveEnrollment(f, defaultLayerConfig("x"), 9n);
    return served.then(() => {}, () => {});
  };
  const p2 = two.connect("enrollment");
  await clock2.advance(1);
  const f2 = await p2;
  f2.send(new Uint8Array([0xff, 0xff]));
  await clock2.advance(1);
  await assertRejects(() => served!, /bad enrollment request/);
});

Deno.test("SDUs that come in the same read as the CEP answer reach the component, in order", async () => {
  const clock = new Clock();
  const { a, connect, lose } = pair(clock);
  lose();
  const p = connect("management");
  await clock.advance(1);
  const id = a.written[0]![0];
  const lsa1 = new Uint8Array(24).fill(1);
  const lsa2 = new Uint8Array(24).fill(2);
  a.mgr.n1(id, [encodeCep(cepFor("management", 0xbbbbn)), lsa1, lsa2]);
  const f = await p;
  assertEquals(f.nb, 0xbbbbn);
  assertEquals(a.up.map((x) => x.id), [id]);
  assertEquals(a.sdus, [[id, lsa1], [id, lsa2]]);
});

Deno.test("a CEP with the receiver's own address is refused on both sides: a connection to ourselves, or a duplicate address", async () => {
  const clock = new Clock();
  // b has a's address: a's CEP carries it (b refuses before answering),
  const { a, b, connect } = pair(clock, 0x77n, 0x77n);
  const p = connect("dt");
  const failed = assertRejects(() => p, /has no dt component/);
  await clock.advance(1);
  await failed;
  assertEquals(b.written[0]![1], hex("0a 00 12 00 18 00 28 00 40 00"));
  assertEquals(a.up.length + b.up.length, 0);
  assertEquals(b.mgr.stats.cepFailed, 1);
});

Deno.test("a flood of accepted N-1 flows: beyond MAX_CEP_WAITING waiting for their CEP, given up at once", async () => {
  const clock = new Clock();
  const { b } = pair(clock);
  const g = grantOf(QOS_CUBES.raw, 7);
  const waits = [];
  for (let i = 0; i < MAX_CEP_WAITING + 3; i++) waits.push(b.mgr.accepted(g));
  await settle();
  assertEquals(b.mgr.stats.refused, 3);
  await clock.advance(CEP_WAIT_MS + 1);
  await Promise.all(waits);
  assertEquals(b.removed.length, MAX_CEP_WAITING);
  assertEquals(b.mgr.flows(), []);
  // the slots are free again
  const again = b.mgr.accepted(g);
  await settle();
  assertEquals(b.mgr.stats.refused, 3);
  await clock.advance(CEP_WAIT_MS + 1);
  await again;
});
