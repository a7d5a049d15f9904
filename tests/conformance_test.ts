/**
 * Wire conformance with Ouroboros 0.23.0 (spec/udp-wire.md): real
 * nodes of ours talk to a test socket that plays the C peer, with the bytes
 * of the captures in tests/vectors/.
 *
 * - C request to our server: the captured FLOW_REQ (fresh timestamp) gets a
 *   FLOW_REPLY of the C layout and the captured echo request its echo reply.
 * - Refusals (unknown name, FRCT, replay, stale timestamp) are answered with
 *   a negative FLOW_REPLY and the IPCP keeps serving.
 * - Our client's FLOW_REQ has the C layout, and it pings a fake C server.
 * - Our client rejects an OAP response with a wrong request hash.
 *
 * Addresses: every test uses its own loopback addresses (127.0.0.4x), not the
 * tutorial's 127.0.0.1 / 127.0.0.2, so that this file can run in parallel
 * with tests/tutorial_test.ts (`deno task test` passes --parallel).
 */
import { createHash } from "node:crypto";
import {
  assert,
  assertEquals,
  assertMatch,
  assertNotEquals,
  unwrap,
} from "./assert.ts";
import {
  Node,
  tutorialClientConfig,
  tutorialHosts,
  tutorialServerConfig,
} from "./harness.ts";
import { type Datagram, loadVectors } from "./vectors.ts";
import {
  freshReq,
  hex,
  isData,
  isMgmt,
  PeerSocket,
  type Received,
} from "./udp_peer.ts";
import {
  buildOapRequest,
  buildOapResponse,
  decodeOap,
  OAP_HDR_LEN,
  OAP_REQ_HASH_LEN,
  verifyOapResponse,
  wallClockNs,
} from "../lib/wire/oap.ts";
import { nameHash } from "../lib/wire/name_hash.ts";
import {
  decodeOping,
  ECHO_REPLY,
  ECHO_REQUEST,
  setOpingType,
} from "../lib/wire/oping_msg.ts";
import {
  decodeMgmt,
  DEFAULT_PORT,
  encodeFlowReply,
  encodeFlowReq,
  FLOW_REPLY,
  FLOW_REQ,
  MGMT_HDR_LEN,
  QOS_CUBES,
  QOS_RAW,
  qosEquals,
} from "../lib/wire/udp_wire.ts";

const PORT = DEFAULT_PORT;
/** Our server node, and the test socket that plays a C client. */
const SERVER_IP = "127.0.0.41";
const C_CLIENT_IP = "127.0.0.45";
/** Our client node, and the test socket that plays a C server. */
const CLIENT_IP = "127.0.0.42";
const C_SERVER_IP = "127.0.0.49";

const SERVER_READY = /Registered oping-server2 with IPCP/;
const CLIENT_READY = /Bootstrapped IPCP \d+ in layer wifi-network/;

/** Offsets in a FLOW_REQ (47-byte header, 16-byte hash, then the OAP). */
const REQ_OAP_OFF = MGMT_HDR_LEN + 16; // 63
const REQ_TS_OFF = REQ_OAP_OFF + 16; // 79

const RAW = loadVectors("c023-oping-raw.txt");
const NO_SERVER = loadVectors("c023-no-server.txt");
const FRCT = loadVectors("c023-oping-qos-data-frct.txt");

function datagram(caps: Datagram[], index: number): Uint8Array {
  const d = caps.find((d) => d.index === index);
  if (d === undefined) throw new Error(`no datagram #${index}`);
  return d.bytes.slice();
}

function u32(b: Uint8Array, off: number): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(off);
}

function i32(b: Uint8Array, off: number): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getInt32(off);
}

function u16(b: Uint8Array, off: number): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint16(off);
}

function setU32(b: Uint8Array, off: number, v: number): void {
  new DataView(b.buffer, b.byteOffset, b.byteLength).setUint32(off, v);
}

function sha384(b: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha384").update(b).digest());
}

function md5(s: string): Uint8Array {
  return new Uint8Array(createHash("md5").update(s).digest());
}

/** A copy of a captured FLOW_REQ with the OAP timestamp set (default: now). */
function withTimestamp(
  req: Uint8Array,
  ns: bigint = wallClockNs(),
): Uint8Array {
  const b = req.slice();
  new DataView(b.buffer).setBigUint64(REQ_TS_OFF, ns);
  return b;
}

/** A copy with the requester's eid set. */
function withSEid(req: Uint8Array, sEid: number): Uint8Array {
  const b = req.slice();
  setU32(b, 4, sEid);
  return b;
}

function assertFrom(r: Received, ip: string, port = PORT): void {
  assertEquals(
    `${r.from.hostname}:${r.from.port}`,
    `${ip}:${port}`,
    "source address of the datagram",
  );
}

/** Sends `req` and returns the FLOW_REPLY for its s_eid. */
async function request(
  sock: PeerSocket,
  req: Uint8Array,
  what: string,
  timeoutMs = 10_000,
): Promise<Uint8Array> {
  await sock.send(req, SERVER_IP);
  const r = await sock.receive(
    `FLOW_REPLY to ${what}`,
    isMgmt(FLOW_REPLY, u32(req, 4)),
    timeoutMs,
  );
  assertFrom(r, SERVER_IP);
  return r.data;
}

/** A refusal: s_eid copied, a negative response, nothing after byte 47. */
function assertRefusal(reply: Uint8Array, req: Uint8Array, what: string): void {
  assertEquals(u32(reply, 0), 0, `${what}: eid`);
  assertEquals(u32(reply, 4), u32(req, 4), `${what}: s_eid copied`);
  assert(i32(reply, 12) < 0, `${what}: response ${i32(reply, 12)} not < 0`);
  assertEquals(reply[44], FLOW_REPLY, `${what}: code`);
  assertEquals(
    reply.length,
    MGMT_HDR_LEN,
    `${what}: a refusal carries nothing after byte 47, got [${
      hex(reply.subarray(MGMT_HDR_LEN))
    }]`,
  );
  assertEquals(
    [...reply.subarray(16, 44), reply[45], reply[46]].every((b) => b === 0),
    true,
    `${what}: QoS bytes zero`,
  );
}

/** An acceptance with a valid OAP response to `req`. */
function assertAccepted(
  reply: Uint8Array,
  req: Uint8Array,
  what: string,
): void {
  assertEquals(u32(reply, 4), u32(req, 4), `${what}: s_eid copied`);
  assertEquals(i32(reply, 12), 0, `${what}: response`);
  assertNotEquals(u32(reply, 8), 0, `${what}: d_eid`);
  unwrap(
    verifyOapResponse(
      req.subarray(REQ_OAP_OFF),
      reply.subarray(MGMT_HDR_LEN),
    ),
  );
}

async function startServer(): Promise<Node> {
  return await Node.start("server", {
    config: tutorialServerConfig(SERVER_IP),
    hosts: tutorialHosts(SERVER_IP),
    ready: SERVER_READY,
  });
}

/** Starts `oping -l` on `node` and waits until the irmd has it accepting. */
async function startOpingServer(node: Node, label: string) {
  const from = node.irmd.lines.length;
  const srv = node.spawnPath(node.bin("oping"), ["-l"], label);
  await node.irmd.waitFor(/This process accepts flows for/, 10_000, from);
  return srv;
}

Deno.test("conformance: a C client's FLOW_REQ and echo request get C's answers", async () => {
  const node = await startServer();
  let sock: PeerSocket | undefined;
  try {
    const srv = await startOpingServer(node, "server/oping-l");
    sock = new PeerSocket(C_CLIENT_IP);

    // #1, as captured but for the timestamp (the capture's is long stale).
    const req = withTimestamp(datagram(RAW, 1));
    assertEquals(req.length, 99);
    const reply = await request(sock, req, "the captured FLOW_REQ");

    const cap = datagram(RAW, 2);
    assertEquals(reply.length, 131, "FLOW_REPLY length");
    assertEquals(reply.length, cap.length);
    assertEquals(u32(reply, 0), 0, "eid");
    assertEquals(u32(reply, 4), 64, "s_eid (the requester's)");
    const dEid = u32(reply, 8);
    assertNotEquals(dEid, 0, "d_eid");
    assertEquals(i32(reply, 12), 0, "response");
    assertEquals(reply[44], FLOW_REPLY, "code");
    assertEquals(
      [...reply.subarray(16, 44)],
      new Array(28).fill(0),
      "QoS bytes 16..43",
    );
    assertEquals([reply[45], reply[46]], [0, 0], "availability, in_order");
    // Bytes 12..46 as C sends them.
    assertEquals([...reply.subarray(12, 47)], [...cap.subarray(12, 47)]);

    // The OAP response: the request's id, a fresh timestamp, md nid 0, zero
    // lengths, then SHA-384 of the 36 request bytes.
    const reqOap = req.subarray(REQ_OAP_OFF);
    assertEquals(reqOap.length, OAP_HDR_LEN);
    const resOap = reply.subarray(MGMT_HDR_LEN);
    assertEquals(resOap.length, OAP_HDR_LEN + OAP_REQ_HASH_LEN);
    assertEquals(
      [...resOap.subarray(0, 16)],
      [...reqOap.subarray(0, 16)],
      "OAP id",
    );
    const ts = new DataView(resOap.buffer, resOap.byteOffset).getBigUint64(16);
    const now = wallClockNs();
    assert(
      ts <= now + 1_000_000_000n && ts >= now - 10_000_000_000n,
      `OAP response timestamp ${ts} is not about now (${now})`,
    );
    assertEquals(u16(resOap, 28), 0, "md nid");
    // cipher, kdf, md, crt_len, kex, data_len: as in the capture (all 0).
    assertEquals([...resOap.subarray(24, 36)], [...cap.subarray(71, 83)]);
    assertEquals([...resOap.subarray(24, 36)], new Array(12).fill(0));
    assertEquals(
      [...resOap.subarray(OAP_HDR_LEN)],
      [...sha384(reqOap)],
      "request hash = SHA-384 of the request's OAP bytes",
    );
    unwrap(verifyOapResponse(reqOap, resOap));
    // The capture's own reply verifies against the capture's request.
    unwrap(
      verifyOapResponse(
        datagram(RAW, 1).subarray(REQ_OAP_OFF),
        cap.subarray(MGMT_HDR_LEN),
      ),
    );

    // #3, the echo request, to the eid the server gave us.
    const echo = datagram(RAW, 3);
    assertEquals(echo.length, 68);
    setU32(echo, 0, dEid);
    await sock.send(echo, SERVER_IP);
    const back = await sock.receive("echo reply on eid 64", isData(64));
    assertFrom(back, SERVER_IP);
    assertEquals(back.data.length, 68, "data frame length");
    const expected = echo.slice();
    setU32(expected, 0, 64);
    setOpingType(expected.subarray(4), ECHO_REPLY);
    assertEquals([...back.data], [...expected]);
    // ... which is exactly the capture's #4.
    assertEquals([...back.data], [...datagram(RAW, 4)]);
    const msg = unwrap(decodeOping(back.data.subarray(4)));
    assertEquals(msg.type, ECHO_REPLY);
    assertEquals(msg.id, 0);

    await srv.waitFor(/^New flow \d+\.$/, 5000);
    await srv.waitFor(/^Received 64 bytes/, 5000);
  } finally {
    await sock?.close();
    await node.close();
  }
});

Deno.test("conformance: refusals are answered and the IPCP keeps serving", async () => {
  const node = await startServer();
  let sock: PeerSocket | undefined;
  try {
    await startOpingServer(node, "server/oping-l");
    sock = new PeerSocket(C_CLIENT_IP);

    // (a) A name that is not registered here: C stays silent, we refuse.
    const nosrv = withTimestamp(datagram(NO_SERVER, 1));
    assertEquals([...nosrv.subarray(47, 63)], [...md5("nosrv")]);
    const a = await request(sock, nosrv, "a request for nosrv", 5000);
    assertRefusal(a, nosrv, "nosrv");
    assertEquals(u32(a, 4), 64);

    // (b) QoS "data" asks for FRCT (in_order 1): the layer carries it (FRCT
    // runs in the applications), so it is accepted like any other.
    const frct = withSEid(withTimestamp(datagram(FRCT, 1)), 102);
    assertEquals(frct[46], 1, "in_order in the capture");
    const decoded = unwrap(decodeMgmt(frct));
    assert(decoded.code === FLOW_REQ);
    assert(qosEquals(decoded.req.qos, QOS_CUBES.data));
    const b = await request(sock, frct, "a request with in_order 1", 5000);
    assertAccepted(b, frct, "in_order 1");

    // (c) A replay: the exact bytes of an accepted request, again.
    const first = freshReq(103);
    const c1 = await request(sock, first, "a fresh request");
    assertAccepted(c1, first, "fresh request");
    const c2 = await request(sock, first, "the same request again", 5000);
    assertRefusal(c2, first, "replay");

    // (d) A request whose timestamp is 30 s old.
    const stale = encodeFlowReq({
      sEid: 104,
      qos: QOS_RAW,
      hash: nameHash("oping-server"),
      oap: buildOapRequest({ nowNs: wallClockNs() - 30_000_000_000n }),
    });
    const d = await request(sock, stale, "a request 30 s old", 5000);
    assertRefusal(d, stale, "stale timestamp");

    // A correct request is still accepted.
    const last = freshReq(105);
    const e = await request(sock, last, "a fresh request after the refusals");
    assertAccepted(e, last, "fresh request after the refusals");
    assertEquals(e.length, 131);
  } finally {
    await sock?.close();
    await node.close();
  }
});

/** Starts a client node whose names resolve to the fake C server. */
async function startClient(): Promise<Node> {
  return await Node.start("client", {
    config: tutorialClientConfig(CLIENT_IP),
    hosts: tutorialHosts(C_SERVER_IP),
    ready: CLIENT_READY,
  });
}

/** Receives our client's FLOW_REQ and checks it against the capture's #1. */
async function receiveClientReq(sock: PeerSocket): Promise<Uint8Array> {
  const r = await sock.receive("FLOW_REQ", isMgmt(FLOW_REQ), 10_000);
  assertFrom(r, CLIENT_IP);
  const req = r.data;
  const cap = datagram(RAW, 1);
  assertEquals(req.length, 99, "FLOW_REQ length");
  assertEquals(req.length, cap.length);
  assertEquals(u32(req, 0), 0, "eid");
  assertNotEquals(u32(req, 4), 0, "s_eid");
  assertEquals(u32(req, 8), 0, "d_eid");
  assertEquals(i32(req, 12), 0, "response");
  assertEquals(
    [...req.subarray(16, 47)],
    [...cap.subarray(16, 47)],
    "QoS and code bytes 16..46 as C's oping sends them",
  );
  assertEquals(req[44], FLOW_REQ, "code");
  const m = unwrap(decodeMgmt(req));
  assert(m.code === FLOW_REQ);
  assert(qosEquals(m.req.qos, QOS_RAW), "QoS raw");
  assertEquals([...req.subarray(47, 63)], [...md5("oping-server")], "hash");
  assertEquals([...req.subarray(47, 63)], [...cap.subarray(47, 63)]);
  const oap = req.subarray(REQ_OAP_OFF);
  assertEquals(oap.length, OAP_HDR_LEN, "OAP request length");
  const h = unwrap(decodeOap(oap, false));
  assertEquals(h.id.length, 16);
  assert(h.id.some((b) => b !== 0), "OAP id is all zero");
  const now = wallClockNs();
  const skew = h.timestampNs > now ? h.timestampNs - now : now - h.timestampNs;
  assert(
    skew < 5_000_000_000n,
    `OAP timestamp ${h.timestampNs} is ${skew} ns away from now`,
  );
  assertEquals([...req.subarray(87, 99)], new Array(12).fill(0), "87..98");
  return req.slice();
}

Deno.test("conformance: our client's FLOW_REQ has the C layout and pings a C server", async () => {
  const client = await startClient();
  let sock: PeerSocket | undefined;
  try {
    sock = new PeerSocket(C_SERVER_IP);
    const ping = client.spawn("oping", ["-n", "oping-server", "-c", "1"]);
    const req = await receiveClientReq(sock);
    const sEid = u32(req, 4);

    // Answer as a C server does.
    const resOap = unwrap(buildOapResponse(req.subarray(REQ_OAP_OFF)));
    const reply = encodeFlowReply({
      sEid,
      dEid: 65,
      response: 0,
      oap: resOap,
    });
    assertEquals(reply.length, 131);
    await sock.send(reply, CLIENT_IP);

    const r = await sock.receive("echo request on eid 65", isData(65));
    assertFrom(r, CLIENT_IP);
    assertEquals(r.data.length, 68, "data frame length");
    const msg = unwrap(decodeOping(r.data.subarray(4)));
    assertEquals(msg.type, ECHO_REQUEST);
    assertEquals(msg.id, 0);
    assertEquals(
      [...r.data.subarray(28)],
      new Array(40).fill(0),
      "padding as in the capture",
    );
    const echo = r.data.slice();
    setU32(echo, 0, sEid);
    setOpingType(echo.subarray(4), ECHO_REPLY);
    await sock.send(echo, CLIENT_IP);

    const out = await ping.exit(10_000);
    assertEquals(out.code, 0, `oping failed:\n${out.stdout}\n${out.stderr}`);
    assertMatch(out.stdout, /64 bytes from oping-server: seq=0/);
  } finally {
    await sock?.close();
    await client.close();
  }
});

Deno.test("conformance: our client rejects an OAP response with a wrong request hash", async () => {
  const client = await startClient();
  let sock: PeerSocket | undefined;
  try {
    sock = new PeerSocket(C_SERVER_IP);
    const ping = client.spawn("oping", ["-n", "oping-server", "-c", "1"]);
    const req = await receiveClientReq(sock);
    const sEid = u32(req, 4);

    const resOap = unwrap(buildOapResponse(req.subarray(REQ_OAP_OFF)));
    resOap[OAP_HDR_LEN + 7]! ^= 0x01; // one byte of the request hash
    await sock.send(
      encodeFlowReply({ sEid, dEid: 65, response: 0, oap: resOap }),
      CLIENT_IP,
    );
    // It fails on the answer, not after waiting for echo replies (which a
    // taken flow would end with: "Server timed out").
    const out = await ping.exit(10_000);
    assertNotEquals(out.code, 0, `oping succeeded:\n${out.stdout}`);
    const text = `${out.stdout}\n${out.stderr}`;
    assertMatch(text, /hash|check|OAP/i, `no explanation:\n${text}`);
    // It never sent data on the refused flow.
    assertEquals(sock.queue.filter((r) => u32(r.data, 0) === 65).length, 0);
  } finally {
    await sock?.close();
    await client.close();
  }
});
