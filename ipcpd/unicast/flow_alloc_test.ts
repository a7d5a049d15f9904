/**
 * A one-member unicast layer's control side without processes: the flow
 * allocator, the directory and the DT of one member wired together as
 * ipcp.ts wires them, on a simulated clock, with the irmd and the data
 * path replaced by records. Every FA message is checked on the wire: a DT
 * packet to our own address, endpoint id 0, decoded again before the
 * flow allocator sees it.
 */
import { assert, assertEquals, assertMatch } from "../../tests/assert.ts";
import { OuroborosError } from "../../lib/util/errors.ts";
import type { Req } from "../../lib/ipc/proto.ts";
import { nameHashWith } from "../../lib/wire/name_hash.ts";
import { QOS_CUBES } from "../../lib/wire/udp_wire.ts";
import { Op } from "../common/dp_msg.ts";
import { decodeFlowPeer, flowEid } from "./datapath.ts";
import { Directory } from "./directory.ts";
import { DT_DEFAULT, EID_DHT, EID_FA, QC_BE } from "./dt.ts";
import { DtNode, type DtRoute } from "./dt_node.ts";
import { defaultUniConfig } from "./enroll.ts";
import { decodeFa, encodeFa, FA_HDR_LEN, FLOW_REPLY, FLOW_REQ } from "./fa.ts";
import {
  type FaCommand,
  FlowAllocator,
  MAX_WAITING_REQS,
  qosCube,
} from "./flow_alloc.ts";

/** Timers on a clock that moves only when told. */
class SimClock {
  now = 1_700_000_000_000;
  #timers: { at: number; f: () => void; live: boolean }[] = [];
  timer(ms: number, f: () => void): () => void {
    const t = { at: this.now + ms, f, live: true };
    this.#timers.push(t);
    return () => t.live = false;
  }
  /** Moves the clock on, firing what falls due, in time order. */
  advance(ms: number): void {
    const end = this.now + ms;
    for (;;) {
      const due = this.#timers.filter((t) => t.live && t.at <= end)
        .sort((a, b) => a.at - b.at)[0];
      if (due === undefined) break;
      due.live = false;
      this.now = due.at;
      due.f();
    }
    this.now = end;
  }
  get pending(): number {
    return this.#timers.filter((t) => t.live).length;
  }
}

const ADDR = 0xcb475e84n;
const HASH = nameHashWith("SHA3_256", "oping");

type ReqArr = Req<"flow.req.arr">;

/** One member: FA, directory and DT on a simulated clock. */
function member(
  answer: (r: ReqArr) => Promise<{ oap: Uint8Array }> = () =>
    Promise.resolve({ oap: new Uint8Array([9, 9, 9]) }),
) {
  const clock = new SimClock();
  const dt = new DtNode({ addr: ADDR, layout: DT_DEFAULT, maxTtl: 60 });
  const wire: Uint8Array[] = [];
  const commands: FaCommand[] = [];
  const reqs: ReqArr[] = [];
  const ended: { handle: number; reason: string }[] = [];
  let seed = 7;
  const random32 = () => (seed = (seed * 1103515245 + 12345) >>> 0);
  const route = (r: DtRoute) => {
    assertEquals(r.t, "local");
    if (r.t !== "local") return;
    if (r.packet.eid === EID_FA) fa.receive(r.packet.payload);
    else if (r.packet.eid === EID_DHT) dir.receive(r.packet.payload);
  };
  const send = (dst: bigint, eid: bigint, payload: Uint8Array) => {
    const r = dt.send(dst, eid, QC_BE, payload);
    if (r.t === "local") wire.push(r.packet.payload);
    queueMicrotask(() => route(r));
  };
  const dir = new Directory({
    addr: ADDR,
    hashLen: 32,
    conf: defaultUniConfig().dir.dht!,
    ports: {
      now: () => clock.now,
      sendDht: (dst, b) => send(dst, EID_DHT, b),
      timer: (ms, f) => clock.timer(ms, f),
      random32,
    },
  });
  const fa = new FlowAllocator({
    addr: ADDR,
    hashLen: 32,
    path: "/run/test/ipcp.1.sock",
    mtu: 8937,
    attachMs: 10_000,
    reqArrMs: 20_000,
    ports: {
      sendFa: (dst, b) => send(dst, EID_FA, b),
      command: (c) => commands.push(c),
      flowReqArr: (r) => {
        reqs.push(r);
        return answer(r);
      },
      flowEnded: (handle, reason) => ended.push({ handle, reason }),
      timer: (ms, f) => clock.timer(ms, f),
      random32,
      debug: () => {},
    },
  });
  return { clock, dt, fa, dir, wire, commands, reqs, ended };
}

function allocReq(timeoutMs = 5000): Req<"ipcp.flow.alloc"> {
  return {
    name: "oping",
    hash: HASH,
    qos: QOS_CUBES.raw,
    oap: new Uint8Array([1, 2, 3, 4]),
    timeoutMs,
  };
}

/** Lets the microtasks and promise callbacks of a step run. */
const settle = () => new Promise((r) => setTimeout(r, 0));

/**
 * What `p` comes to: it has a few turns of the event loop, then the
 * simulated clock moves a minute on (an allocation still waiting for its
 * reply times out then), so that a test never waits on it for ever.
 */
async function outcome<T>(
  clock: SimClock,
  p: Promise<T>,
): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  let r: { ok: true; value: T } | { ok: false; error: unknown } | undefined;
  p.then(
    (value) => r = { ok: true, value },
    (error) => r = { ok: false, error },
  );
  for (let i = 0; i < 5 && r === undefined; i++) await settle();
  if (r === undefined) {
    clock.advance(60_000);
    for (let i = 0; i < 5 && r === undefined; i++) await settle();
  }
  if (r === undefined) throw new Error("the allocation never ended");
  return r;
}

Deno.test("a DT packet to our own address loops: encoded, decoded, delivered by eid", () => {
  const dt = new DtNode({ addr: ADDR, layout: DT_DEFAULT, maxTtl: 60 });
  const r = dt.send(ADDR, 0x4200000042n, 0, new Uint8Array([1, 2]));
  assertEquals(r.t, "local");
  if (r.t === "local") {
    assertEquals(r.packet.dst, ADDR);
    assertEquals(r.packet.ttl, 60);
    assertEquals(r.packet.eid, 0x4200000042n);
    assertEquals([...r.packet.payload], [1, 2]);
  }
  // Anyone else: no route (no N-1 flows), never delivered here.
  assertEquals(dt.send(ADDR + 1n, 0n, 0, new Uint8Array(0)), {
    t: "drop",
    why: "no-route",
  });
  // Arriving for another member with TTL 1 or 0: dropped, never wrapped.
  const p = new Uint8Array(15);
  p.set([1, 0, 0, 0, 0, 1]);
  assertEquals(dt.arrived(p.slice()).t, "drop");
  assertEquals(dt.arrived(new Uint8Array(14)), { t: "drop", why: "malformed" });
});

Deno.test("the directory: a name registered here resolves to our address, others to nothing at once", async () => {
  const m = member();
  m.dir.register(HASH);
  assertEquals(await m.dir.resolve(HASH), [ADDR]);
  assertEquals(await m.dir.resolve(nameHashWith("SHA3_256", "nobody")), []);
  m.dir.unregister(HASH);
  assertEquals(await m.dir.resolve(HASH), []);
  // Alone in the layer: nothing on the wire.
  assertEquals(m.wire.length, 0);
  m.dir.stop();
});

Deno.test("a flow to ourselves: FLOW_REQ and FLOW_REPLY through DT to eid 0, both flows in the data path", async () => {
  const m = member();
  const got = await outcome(m.clock, m.fa.allocate(ADDR, allocReq()));
  assert(got.ok, `the allocation failed: ${!got.ok && got.error}`);
  const grant = got.value;
  // The FLOW_REQ: 61-byte header, the hash, the OAP request.
  assertEquals(m.wire.length, 2);
  const req = decodeFa(m.wire[0]!);
  assert(req.ok && req.value.code === FLOW_REQ);
  assertEquals(m.wire[0]!.length, FA_HDR_LEN + 32 + 4);
  assertEquals(req.value.sAddr, ADDR);
  assertEquals([...req.value.hash], [...HASH]);
  assertEquals([...req.value.oap], [1, 2, 3, 4]);
  // The irmd was asked with the same hash, QoS and OAP.
  assertEquals(m.reqs.length, 1);
  assertEquals([...m.reqs[0]!.oap], [1, 2, 3, 4]);
  // The FLOW_REPLY: to the requester's eid, with the responder's.
  const rep = decodeFa(m.wire[1]!);
  assert(rep.ok && rep.value.code === FLOW_REPLY);
  assertEquals(rep.value.rEid, req.value.sEid);
  assertEquals(rep.value.response, 0);
  assertEquals([...rep.value.oap], [9, 9, 9]);
  assertEquals([...grant.oap], [9, 9, 9]);
  assertEquals(grant.mtu, 8937);
  // The data path: the server side pending, then allocated; the client
  // side allocated; each with the other's eid and our address as peer.
  const ops = m.commands.map((c) => c.op);
  assertEquals(ops, [Op.Add, Op.Allocated, Op.Add]);
  const [srvAdd, , cliAdd] = m.commands;
  assert(srvAdd?.op === Op.Add && cliAdd?.op === Op.Add);
  assertEquals(srvAdd.allocated, false);
  assertEquals(cliAdd.allocated, true);
  assertEquals(cliAdd.eid, grant.handle);
  const srvPeer = decodeFlowPeer(srvAdd.addr)!;
  const cliPeer = decodeFlowPeer(cliAdd.addr)!;
  assertEquals(srvPeer.peerAddr, ADDR);
  assertEquals(cliPeer.peerAddr, ADDR);
  assertEquals(flowEid(cliPeer.eidHigh, cliAdd.eid), srvPeer.peerEid);
  assertEquals(flowEid(srvPeer.eidHigh, srvAdd.eid), cliPeer.peerEid);
  assert(srvPeer.peerEid >= 1n << 32n && cliPeer.peerEid >= 1n << 32n);
  assertEquals(cliPeer.qc, qosCube(QOS_CUBES.raw));
  assertEquals(m.fa.pairs().get(grant.handle), srvAdd.eid);

  // Deallocating one side ends the other, and the irmd hears of that one.
  m.fa.deallocate(grant.handle);
  assertEquals(m.fa.size, 0);
  assertEquals(m.ended.map((e) => e.handle), [srvAdd.eid]);
  assertEquals(
    m.commands.slice(3).map((c) => c.op === Op.Remove ? c.eid : -1).sort(),
    [srvAdd.eid, cliAdd.eid].sort(),
  );
  // A data packet between them carries the peer's eid in the DT header.
  const data = m.dt.send(ADDR, cliPeer.peerEid, cliPeer.qc, new Uint8Array(64));
  assert(data.t === "local");
  assertEquals(data.packet.eid, flowEid(srvPeer.eidHigh, srvAdd.eid));
  m.dir.stop();
});

Deno.test("a refused flow request: the client fails with the errno, nothing stays", async () => {
  const m = member(() =>
    Promise.reject(new OuroborosError("refused", "nobody accepts", -111))
  );
  const got = await outcome(m.clock, m.fa.allocate(ADDR, allocReq()));
  assert(!got.ok && got.error instanceof OuroborosError, "not refused");
  assertEquals(got.error.code, "refused");
  assertMatch(got.error.message, /no process accepts flows/);
  assertEquals(got.error.errno, -111);
  const rep = decodeFa(m.wire[1]!);
  assert(rep.ok && rep.value.code === FLOW_REPLY);
  assertEquals(rep.value.response, -111);
  assertEquals(rep.value.oap.length, 0);
  assertEquals(m.fa.size, 0);
  assertEquals(m.ended.length, 0);
  m.dir.stop();
});

Deno.test("a flow request the irmd never answers: the client times out on the simulated clock, and its server side goes with it", async () => {
  const m = member(() => new Promise(() => {}));
  const p = m.fa.allocate(ADDR, allocReq(3000));
  let failed: unknown;
  p.catch((e) => failed = e);
  await settle();
  m.clock.advance(2999);
  await settle();
  assertEquals(failed, undefined);
  assertEquals(m.reqs.length, 1);
  m.clock.advance(1);
  await settle();
  assert(failed instanceof OuroborosError && failed.code === "timed_out");
  // The server side, still pending in the irmd, would have no partner:
  // it ends, and the irmd (which may hand it out yet) hears of it.
  assertEquals(m.fa.size, 0);
  assertEquals(m.ended.map((e) => e.handle), [m.reqs[0]!.handle]);
  m.fa.stop();
  m.dir.stop();
});

Deno.test("an allocated flow whose application never attaches ends with its peer", async () => {
  const m = member();
  const got = await outcome(m.clock, m.fa.allocate(ADDR, allocReq()));
  assert(got.ok);
  const grant = got.value;
  m.clock.advance(10_000);
  assertEquals(m.fa.size, 0);
  // Both sides were held by the irmd: it hears of both.
  assertEquals(m.ended.length, 2);
  assert(m.ended.some((e) => e.handle === grant.handle));
  m.dir.stop();
});

Deno.test("hostile FA messages are dropped and counted, never thrown", () => {
  const m = member();
  m.fa.receive(new Uint8Array(3));
  m.fa.receive(new Uint8Array(5000));
  const reply = new Uint8Array(FA_HDR_LEN);
  reply[58] = FLOW_REPLY;
  reply[15] = 0x99; // an r_eid nobody asked with
  m.fa.receive(reply);
  const odd = new Uint8Array(FA_HDR_LEN);
  odd[58] = 7;
  m.fa.receive(odd);
  assertEquals(m.fa.stats.malformed, 3);
  assertEquals(m.fa.stats.unsolicited, 1);
  assertEquals(m.fa.size, 0);
  m.dir.stop();
});

Deno.test("a flood of flow requests: beyond MAX_WAITING_REQS waiting for the irmd, refused at once with EBUSY", async () => {
  const clock = new SimClock();
  const replies: { dst: bigint; bytes: Uint8Array }[] = [];
  let asked = 0;
  let answer: () => void = () => {};
  const answered = new Promise<void>((r) => answer = r);
  const fa = new FlowAllocator({
    addr: ADDR,
    hashLen: 32,
    path: "/run/test/ipcp.1.sock",
    mtu: 8937,
    attachMs: 10_000,
    reqArrMs: 20_000,
    ports: {
      sendFa: (dst, bytes) => replies.push({ dst, bytes }),
      command: () => {},
      flowReqArr: () => {
        asked++;
        return answered.then(() => Promise.reject(new Error("no accepter")));
      },
      flowEnded: () => {},
      timer: (ms, f) => clock.timer(ms, f),
      random32: () => 42,
      debug: () => {},
    },
  });
  const peer = 0x1234n;
  const req = (i: number) =>
    encodeFa({
      code: FLOW_REQ,
      sAddr: peer,
      sEid: 0x1_0000_0000n + BigInt(i),
      qos: QOS_CUBES.raw,
      hash: HASH,
      oap: new Uint8Array(4),
    });
  for (let i = 0; i < MAX_WAITING_REQS + 5; i++) fa.receive(req(i));
  await settle();
  assertEquals(asked, MAX_WAITING_REQS);
  assertEquals(fa.stats.overflow, 5);
  assertEquals(replies.length, 5);
  for (const r of replies) {
    const d = decodeFa(r.bytes);
    assert(d.ok && d.value.code === FLOW_REPLY);
    assertEquals(r.dst, peer);
    assertEquals(d.value.response, -16);
  }
  // Once answered (refused), the slots are free again.
  answer();
  await settle();
  assertEquals(replies.length, 5 + MAX_WAITING_REQS);
  fa.receive(req(10_000));
  await settle();
  assertEquals(asked, MAX_WAITING_REQS + 1);
  fa.stop();
});
