import {
  assert,
  assertEquals,
  assertMatch,
  assertThrows,
  unwrap,
} from "../../tests/assert.ts";
import { annotated, type Datagram, loadVectors } from "../../tests/vectors.ts";
import { xorshift32 } from "../../tests/rng.ts";
import { nameHash } from "./name_hash.ts";
import { decodeOping, encodeOping, newOpingPacket } from "./oping_msg.ts";
import {
  classify,
  dataPayload,
  decodeMgmt,
  DEFAULT_PORT,
  encodeData,
  encodeFlowReply,
  encodeFlowReq,
  encodeKeepalive,
  FLOW_REPLY,
  FLOW_REQ,
  type FlowReply,
  type FlowReq,
  HASH_LEN,
  isQosCubeName,
  MAX_PAYLOAD_V4,
  MAX_PAYLOAD_V6,
  MGMT_HDR_LEN,
  type Qos,
  QOS_CUBES,
  QOS_RAW,
  qosEquals,
  readEid,
  writeEid,
} from "./udp_wire.ts";

const CAPTURES = [
  "c023-oping-raw.txt",
  "c023-keepalive.txt",
  "c023-no-server.txt",
];
const ALL = [...CAPTURES, "c023-oping-qos-data-frct.txt"];

function num(d: Datagram, label: string): number {
  return Number(annotated(d, label).split(" ")[0]);
}

function mgmtFrames(file: string): Datagram[] {
  return loadVectors(file).filter((d) => d.note.startsWith("mgmt frame"));
}

function decodeReq(d: Datagram): FlowReq {
  const m = unwrap(decodeMgmt(d.bytes));
  if (m.code !== FLOW_REQ) throw new Error(`#${d.index} is not a FLOW_REQ`);
  return m.req;
}

function decodeReply(d: Datagram): FlowReply {
  const m = unwrap(decodeMgmt(d.bytes));
  if (m.code !== FLOW_REPLY) throw new Error(`#${d.index} is not a FLOW_REPLY`);
  return m.reply;
}

/** The QoS as the annotations of a captured frame state it. */
function annotatedQos(d: Datagram): Qos {
  return {
    bandwidth: BigInt(annotated(d, "qos bandwidth")),
    delay: num(d, "qos delay"),
    loss: num(d, "qos loss"),
    ber: num(d, "qos ber"),
    maxGap: num(d, "qos max_gap"),
    timeout: num(d, "qos timeout"),
    availability: num(d, "qos availability"),
    inOrder: num(d, "qos in_order"),
  };
}

Deno.test("constants match the spec", () => {
  assertEquals(MGMT_HDR_LEN, 47);
  assertEquals(HASH_LEN, 16);
  assertEquals([FLOW_REQ, FLOW_REPLY], [1, 2]);
  assertEquals(DEFAULT_PORT, 3435);
  assertEquals([MAX_PAYLOAD_V4, MAX_PAYLOAD_V6], [8980, 8952]);
  assertEquals(QOS_RAW, {
    bandwidth: 0n,
    delay: 0xffffffff,
    loss: 1,
    ber: 1,
    maxGap: 0xffffffff,
    timeout: 120000,
    availability: 0,
    inOrder: 0,
  });
  assert(qosEquals(QOS_CUBES.raw, QOS_RAW));
  assert(
    isQosCubeName("video") && !isQosCubeName("toString") && !isQosCubeName("x"),
  );
  assertThrows(() => {
    (QOS_RAW as { delay: number }).delay = 1;
  });
});

Deno.test("every captured mgmt frame decodes to the annotated fields and re-encodes identically", () => {
  let reqs = 0;
  let replies = 0;
  for (const file of ALL) {
    for (const d of mgmtFrames(file)) {
      assertEquals(classify(d.bytes), { kind: "mgmt" });
      assertEquals(num(d, "eid"), 0);
      if (d.note === "mgmt frame (FLOW_REQ)") {
        assertEquals(annotated(d, "code"), "FLOW_REQ");
        const req = decodeReq(d);
        assertEquals(req.sEid, num(d, "s_eid"));
        assertEquals(req.qos, annotatedQos(d));
        assertEquals(req.hash, nameHash(annotated(d, "dst hash")));
        assertEquals(req.oap.length, 36);
        assertEquals(encodeFlowReq(req), d.bytes, `${file} #${d.index}`);
        reqs++;
      } else {
        assertEquals(d.note, "mgmt frame (FLOW_REPLY)");
        assertEquals(annotated(d, "code"), "FLOW_REPLY");
        const reply = decodeReply(d);
        assertEquals(reply.sEid, num(d, "s_eid"));
        assertEquals(reply.dEid, num(d, "d_eid"));
        assertEquals(reply.response, num(d, "response"));
        assertEquals(reply.oap.length, 84);
        assertEquals(encodeFlowReply(reply), d.bytes, `${file} #${d.index}`);
        replies++;
      }
    }
  }
  assertEquals([reqs, replies], [4, 3]);
});

Deno.test("the captured oping-raw allocation: eids 64/65, raw QoS, hash of oping-server", () => {
  const [req, reply] = mgmtFrames("c023-oping-raw.txt");
  const r = decodeReq(req!);
  assertEquals(r.sEid, 64);
  assertEquals(r.qos, QOS_RAW);
  assertEquals(r.hash, nameHash("oping-server"));
  const p = decodeReply(reply!);
  assertEquals([p.sEid, p.dEid, p.response], [64, 65, 0]);
  const ka = mgmtFrames("c023-keepalive.txt");
  assertEquals(decodeReq(ka[0]!).sEid, 70);
  assertEquals(decodeReply(ka[1]!).dEid, 71);
  const ns = decodeReq(mgmtFrames("c023-no-server.txt")[0]!);
  assertEquals(ns.hash, nameHash("nosrv"));
  assertEquals(ns.qos, QOS_RAW);
});

Deno.test("the frct capture's FLOW_REQ asks for in-order delivery with the data cube", () => {
  const req = decodeReq(mgmtFrames("c023-oping-qos-data-frct.txt")[0]!);
  assertEquals(req.qos.inOrder, 1);
  assertEquals(req.qos, QOS_CUBES.data);
  assertEquals(req.qos, {
    bandwidth: 0n,
    delay: 1000,
    loss: 0,
    ber: 1,
    maxGap: 2000,
    timeout: 120000,
    availability: 0,
    inOrder: 1,
  });
  assertEquals(
    encodeFlowReq({ ...req, qos: QOS_CUBES.data }),
    mgmtFrames("c023-oping-qos-data-frct.txt")[0]!.bytes,
  );
});

Deno.test("captured data frames and keepalives classify, decode and re-encode identically", () => {
  let data = 0;
  let keepalives = 0;
  for (const file of CAPTURES) {
    for (const d of loadVectors(file)) {
      if (!d.note.startsWith("data frame")) continue;
      const eid = num(d, "eid");
      assertEquals(unwrap(readEid(d.bytes)), eid);
      if (d.note === "data frame (zero-length SDU: keepalive)") {
        assertEquals(classify(d.bytes), { kind: "keepalive", eid });
        assertEquals(encodeKeepalive(eid), d.bytes);
        assertEquals(dataPayload(d.bytes).length, 0);
        keepalives++;
        continue;
      }
      assertEquals(classify(d.bytes), { kind: "data", eid });
      const payload = dataPayload(d.bytes);
      assertEquals(unwrap(encodeData(eid, payload)), d.bytes);
      const m = unwrap(decodeOping(payload));
      assertEquals(
        m.type,
        annotated(d, "oping type") === "ECHO_REQUEST" ? 0 : 1,
      );
      assertEquals(m.id, num(d, "oping id"));
      assertEquals(m.sec, BigInt(annotated(d, "oping tv_sec")));
      assertEquals(m.nsec, BigInt(annotated(d, "oping tv_nsec")));
      const pkt = newOpingPacket(payload.length);
      encodeOping(pkt, m);
      assertEquals(pkt, payload);
      const frame = new Uint8Array(d.bytes.length);
      writeEid(frame, eid);
      frame.set(pkt, 4);
      assertEquals(frame, d.bytes);
      data++;
    }
  }
  assertEquals([data, keepalives], [5, 3]);
});

Deno.test("FRCT data frames of the frct capture classify as data for the right eid", () => {
  for (const d of loadVectors("c023-oping-qos-data-frct.txt")) {
    if (!d.note.startsWith("data frame")) continue;
    assertEquals(classify(d.bytes), { kind: "data", eid: num(d, "eid") });
    if (d.bytes.length === 80) {
      // 12-byte FRCT header after the eid, then the oping message.
      const m = unwrap(decodeOping(dataPayload(d.bytes).subarray(12)));
      assertEquals(m.id, num(d, "oping id"));
    }
  }
});

Deno.test("classify: short, mgmt, keepalive, data", () => {
  assertEquals(classify(new Uint8Array(0)), { kind: "short" });
  assertEquals(classify(new Uint8Array([0, 0, 0])), { kind: "short" });
  assertEquals(classify(new Uint8Array(4)), { kind: "mgmt" });
  assertEquals(classify(new Uint8Array([0, 0, 1, 0])), {
    kind: "keepalive",
    eid: 256,
  });
  assertEquals(classify(new Uint8Array([0xff, 0xff, 0xff, 0xff, 9])), {
    kind: "data",
    eid: 0xffffffff,
  });
  const r = readEid(new Uint8Array(3));
  assert(!r.ok);
  assertMatch(r.error, /too short/);
  // views at an offset read the right bytes
  const big = new Uint8Array([9, 9, 0, 0, 0, 65, 1]);
  assertEquals(classify(big.subarray(2)), { kind: "data", eid: 65 });
  assertEquals(classify(big.subarray(2, 6)), { kind: "keepalive", eid: 65 });
});

Deno.test("encodeData refuses oversized payloads and eid 0", () => {
  assert(encodeData(5, new Uint8Array(MAX_PAYLOAD_V4)).ok);
  const big = encodeData(5, new Uint8Array(MAX_PAYLOAD_V4 + 1));
  assert(!big.ok);
  assertMatch(big.error, /8981 bytes exceeds the maximum of 8980/);
  assert(!encodeData(5, new Uint8Array(MAX_PAYLOAD_V6 + 1), MAX_PAYLOAD_V6).ok);
  assert(!encodeData(0, new Uint8Array(1)).ok);
  assertThrows(() => encodeKeepalive(0), /eid/);
  assertThrows(() => writeEid(new Uint8Array(3), 1), /cannot hold/);
});

Deno.test("refusal replies round-trip; encoders refuse bad arguments", () => {
  const refusal = encodeFlowReply({
    sEid: 64,
    dEid: 0,
    response: -1008,
    oap: new Uint8Array(0),
  });
  assertEquals(refusal.length, MGMT_HDR_LEN);
  const m = unwrap(decodeMgmt(refusal));
  assertEquals(m, {
    code: FLOW_REPLY,
    reply: { sEid: 64, dEid: 0, response: -1008, oap: new Uint8Array(0) },
  });
  // a refusal that carries bytes anyway is still read as a refusal
  const withOap = encodeFlowReply({
    sEid: 64,
    dEid: 0,
    response: -13,
    oap: new Uint8Array([1, 2]),
  });
  const r = unwrap(decodeMgmt(withOap));
  assert(
    r.code === FLOW_REPLY && r.reply.response === -13 &&
      r.reply.oap.length === 2,
  );
  assertThrows(
    () =>
      encodeFlowReq({
        sEid: 1,
        qos: QOS_RAW,
        hash: new Uint8Array(15),
        oap: new Uint8Array(0),
      }),
    /hash/,
  );
  assertThrows(
    () =>
      encodeFlowReq({
        sEid: -1,
        qos: QOS_RAW,
        hash: new Uint8Array(16),
        oap: new Uint8Array(0),
      }),
    /sEid/,
  );
  assertThrows(
    () =>
      encodeFlowReq({
        sEid: 1,
        qos: { ...QOS_RAW, inOrder: 256 },
        hash: new Uint8Array(16),
        oap: new Uint8Array(0),
      }),
    /inOrder/,
  );
  assertThrows(
    () =>
      encodeFlowReply({
        sEid: 1,
        dEid: 2,
        response: 2 ** 31,
        oap: new Uint8Array(0),
      }),
    /i32/,
  );
  // every cube encodes and decodes back to itself
  for (const [name, qos] of Object.entries(QOS_CUBES)) {
    const buf = encodeFlowReq({
      sEid: 77,
      qos,
      hash: nameHash(name),
      oap: new Uint8Array(36),
    });
    const d = unwrap(decodeMgmt(buf));
    assert(d.code === FLOW_REQ);
    assertEquals(d.req.qos, qos, name);
  }
});

Deno.test("every prefix of each captured mgmt frame: error below the minimum, a shorter parse above", () => {
  for (const file of ALL) {
    for (const d of mgmtFrames(file)) {
      const isReq = d.note.endsWith("(FLOW_REQ)");
      const min = isReq ? MGMT_HDR_LEN + HASH_LEN : MGMT_HDR_LEN;
      for (let n = 0; n < d.bytes.length; n++) {
        const r = decodeMgmt(d.bytes.subarray(0, n));
        if (n < min) {
          assert(!r.ok, `${file} #${d.index} prefix ${n} decoded`);
          assertMatch(r.error, /too short/);
        } else {
          const m = unwrap(r);
          if (m.code === FLOW_REQ) assertEquals(m.req.oap.length, n - min);
          else assertEquals(m.reply.oap.length, n - min);
        }
        // the copy at an unaligned offset gives the same answer
        const shifted = new Uint8Array(n + 3);
        shifted.set(d.bytes.subarray(0, n), 3);
        assertEquals(decodeMgmt(shifted.subarray(3)).ok, r.ok);
      }
    }
  }
});

Deno.test("malformed mgmt frames: wrong codes, non-zero eid, reserved eids", () => {
  for (const d of mgmtFrames("c023-oping-raw.txt")) {
    for (let bit = 0; bit < 8; bit++) {
      const b = d.bytes.slice();
      b[44]! ^= 1 << bit;
      const r = decodeMgmt(b);
      assert(!r.ok);
      assertMatch(r.error, /^unknown management code \d+/);
    }
    for (let code = 0; code < 256; code++) {
      const b = d.bytes.slice();
      b[44] = code;
      // a FLOW_REQ relabelled as a reply has d_eid 0 while accepting: refused
      const isReply = d.note.endsWith("(FLOW_REPLY)");
      assertEquals(
        decodeMgmt(b).ok,
        code === 1 || (code === 2 && isReply),
        `code ${code}`,
      );
    }
    const b = d.bytes.slice();
    b[3] = 1;
    const r = decodeMgmt(b);
    assert(!r.ok);
    assertMatch(r.error, /not a management frame: eid 1/);
    const z = d.bytes.slice();
    z[7] = 0; // s_eid 64 -> 0
    const rz = decodeMgmt(z);
    assert(!rz.ok);
    assertMatch(rz.error, /s_eid 0/);
  }
  const reply = mgmtFrames("c023-oping-raw.txt")[1]!.bytes.slice();
  reply[11] = 0; // d_eid 65 -> 0 in an accepting reply
  const r = decodeMgmt(reply);
  assert(!r.ok);
  assertMatch(r.error, /d_eid 0/);
});

Deno.test("fuzz: random datagrams never make the decoders throw", () => {
  const next = xorshift32(0x5eed);
  const templates = mgmtFrames("c023-oping-raw.txt").map((d) => d.bytes);
  for (let i = 0; i < 5000; i++) {
    const len = next() % 160;
    let buf = new Uint8Array(len);
    for (let j = 0; j < len; j++) buf[j] = next() & 0xff;
    if (i % 3 === 0 && len >= 4) buf.fill(0, 0, 4); // eid 0: mgmt path
    if (i % 3 === 1 && len > 44) buf[44] = 1 + (next() % 2);
    if (i % 5 === 0) {
      // a captured frame with a few random bytes changed, maybe cut short
      const t = templates[next() % templates.length]!.slice();
      for (let k = 0; k < 3; k++) t[next() % t.length] = next() & 0xff;
      buf = t.subarray(0, next() % (t.length + 1));
    }
    const c = classify(buf);
    if (c.kind === "mgmt") {
      const r = decodeMgmt(buf);
      if (r.ok) {
        if (r.value.code === FLOW_REQ) {
          // d_eid and response are ignored in a FLOW_REQ: re-encoded as 0
          const expected = buf.slice();
          expected.fill(0, 8, 16);
          assertEquals(encodeFlowReq(r.value.req), expected);
        } else assert(r.value.reply.sEid !== 0);
      } else {
        assert(r.error.length > 0);
      }
    } else {
      decodeMgmt(buf);
    }
    readEid(buf);
    dataPayload(buf);
  }
});
