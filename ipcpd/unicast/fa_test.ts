import { createHash } from "node:crypto";
import {
  assert,
  assertEquals,
  assertThrows,
  unwrap,
} from "../../tests/assert.ts";
import { decodeOap, verifyOapResponse } from "../../lib/wire/oap.ts";
import { QOS_RAW } from "../../lib/wire/udp_wire.ts";
import {
  type CapField,
  field,
  fieldsUnder,
  hexOf,
  intField,
  loadCapture,
  pcapSdus,
  withNote,
} from "./captures.ts";
import { decodeDt, EID_FA } from "./dt.ts";
import {
  decodeFa,
  ECN_RX_IDLE,
  ecnForQueue,
  ecnReceive,
  type EcnRx,
  encodeFa,
  FA_HDR_LEN,
  FA_MAX_LEN,
  type FaMsg,
  FLOW_REPLY,
  FLOW_REQ,
  FLOW_UPDATE,
  flowUpdate,
} from "./fa.ts";
import { fuzzDecoder } from "./fuzz.ts";

const PCAPS = ["c023-unicast-2node.pcap", "c023-unicast-3node.pcap"];

function sha3(name: string): string {
  return createHash("sha3-256").update(name).digest("hex");
}

/** The 14 header fields as the annotations label them, in wire order. */
const HEADER_LABELS = [
  ["s_addr (u64 BE)", 0],
  ["r_eid (u64 BE)", 8],
  ["s_eid (u64 BE)", 16],
  ["bandwidth (u64 BE)", 24],
  ["response (i32 BE)", 32],
  ["delay (u32 BE, ms)", 36],
  ["loss (u32 BE)", 40],
  ["ber (u32 BE)", 44],
  ["max_gap (u32 BE, ms)", 48],
  ["timeout (u32 BE, ms)", 52],
  ["ece (u16 BE)", 56],
  ["code (u8)", 58],
  ["availability (u8)", 59],
  ["in_order (u8)", 60],
] as const;

/** Every header field's value as the message implies it (0 where unused). */
function headerValues(m: FaMsg): bigint[] {
  const z = 0n;
  const q = m.code === FLOW_REQ ? m.qos : undefined;
  return [
    m.code === FLOW_REQ ? m.sAddr : z,
    m.code === FLOW_REQ ? z : m.rEid,
    m.code === FLOW_UPDATE ? z : m.sEid,
    q?.bandwidth ?? z,
    BigInt(m.code === FLOW_REPLY ? m.response : 0),
    BigInt(q?.delay ?? 0),
    BigInt(q?.loss ?? 0),
    BigInt(q?.ber ?? 0),
    BigInt(q?.maxGap ?? 0),
    BigInt(q?.timeout ?? 0),
    BigInt(m.code === FLOW_UPDATE ? m.ece : 0),
    BigInt(m.code),
    BigInt(q?.availability ?? 0),
    BigInt(q?.inOrder ?? 0),
  ];
}

function checkHeader(fs: CapField[], m: FaMsg, where: string): void {
  const want = headerValues(m);
  HEADER_LABELS.forEach(([label, off], i) => {
    const f = field(fs, label);
    assertEquals(f.start - 19, off, `${where}: ${label} offset`);
    assertEquals(intField(fs, label), want[i], `${where}: ${label}`);
  });
}

Deno.test("golden: every annotated FLOW_REQ and FLOW_REPLY decodes to its annotations and re-encodes byte for byte", () => {
  const ds = loadCapture("c023-unicast-oping.txt");
  const msgs = withNote(ds, "flow allocator message");
  const requests = new Map<string, Uint8Array>();
  const codes: number[] = [];
  for (const d of msgs) {
    const where = `${d.pcap} #${d.index}`;
    const dt = unwrap(decodeDt(d.bytes.subarray(4)));
    assertEquals(dt.eid, EID_FA);
    const fs = fieldsUnder(d, "flow allocator message");
    const m = unwrap(decodeFa(dt.payload));
    checkHeader(fs, m, where);
    assertEquals(hexOf(encodeFa(m)), hexOf(dt.payload), where);
    codes.push(m.code);
    const oapAt = (m.code === FLOW_REQ ? FA_HDR_LEN + 32 : FA_HDR_LEN) + 19;
    assertEquals(field(fs, "OAP id").start, oapAt, where);
    if (m.code === FLOW_REQ) {
      assertEquals(hexOf(m.hash), sha3("oping"));
      assert(field(fs, "dst hash (32 B)").desc.endsWith('SHA3-256("oping")'));
      assertEquals(m.qos, QOS_RAW);
      const oap = unwrap(decodeOap(m.oap, false));
      assertEquals(hexOf(oap.id), hexOf(field(fs, "OAP id").bytes!));
      requests.set(hexOf(oap.id), m.oap);
      // what our FA would send for that flow is C's FLOW_REQ
      const own = encodeFa({ ...m, qos: QOS_RAW });
      assertEquals(hexOf(own), hexOf(dt.payload));
      assertEquals(dt.payload.length, 129);
    } else {
      assert(m.code === FLOW_REPLY);
      assertEquals(m.response, 0);
      const oap = unwrap(decodeOap(m.oap, true));
      const req = requests.get(hexOf(oap.id));
      assert(req !== undefined, `${where}: reply to no request`);
      unwrap(verifyOapResponse(req, m.oap));
      assertEquals(dt.payload.length, 145);
    }
  }
  assertEquals(codes, [0, 1, 0, 0, 1, 1]);
});

Deno.test("golden: every flow allocator message of both pcaps; replies answer requests by eid", () => {
  const codes: number[] = [];
  for (const pcap of PCAPS) {
    const reqs: FaMsg[] = [];
    for (const s of pcapSdus(pcap)) {
      if (s.comp !== "dt" || s.kind !== "msg") continue;
      const dt = unwrap(decodeDt(s.sdu));
      if (dt.eid !== EID_FA) continue;
      const m = unwrap(decodeFa(dt.payload));
      assertEquals(hexOf(encodeFa(m)), hexOf(dt.payload), `${pcap} #${s.n}`);
      codes.push(m.code);
      if (m.code === FLOW_REQ) {
        assert(m.sAddr !== 0n && (m.sEid & 0xffff_ffffn) >= 64n);
        reqs.push(m);
      } else if (m.code === FLOW_REPLY) {
        // matched by r_eid; the responder's eid is random | fd too
        assert(reqs.some((r) => r.code === FLOW_REQ && r.sEid === m.rEid));
        assert((m.sEid & 0xffff_ffffn) >= 64n && m.sEid >> 32n !== 0n);
      }
    }
  }
  // 2 nodes: request and reply; 3 nodes: each on both hops
  assertEquals(codes, [0, 1, 0, 0, 1, 1]);
});

Deno.test("what the captures lack: FLOW_UPDATE and a refusal", () => {
  const up = flowUpdate(0x107f5af400000042n, 0x1234);
  const b = encodeFa(up);
  assertEquals(b.length, FA_HDR_LEN);
  const want = new Uint8Array(FA_HDR_LEN);
  want.set([0x10, 0x7f, 0x5a, 0xf4, 0, 0, 0, 0x42], 8);
  want.set([0x12, 0x34, FLOW_UPDATE], 56);
  assertEquals(hexOf(b), hexOf(want));
  assertEquals(unwrap(decodeFa(b)), up);
  // bytes after a FLOW_UPDATE are ignored
  assertEquals(unwrap(decodeFa(new Uint8Array([...b, 1, 2, 3]))), up);
  const refusal: FaMsg = {
    code: FLOW_REPLY,
    rEid: 0x42n,
    sEid: 0n,
    response: -111,
    oap: new Uint8Array(0),
  };
  const r = encodeFa(refusal);
  assertEquals(hexOf(r.subarray(32, 36)), "ffffff91");
  assertEquals(r[58], FLOW_REPLY);
  assertEquals(unwrap(decodeFa(r)), refusal);
});

Deno.test("decodeFa: lengths outside 61..2048, unknown codes, a FLOW_REQ without its hash", () => {
  const req: FaMsg = {
    code: FLOW_REQ,
    sAddr: 1n,
    sEid: 0x1_0000_0040n,
    qos: QOS_RAW,
    hash: new Uint8Array(32).fill(7),
    oap: new Uint8Array(36),
  };
  const b = encodeFa(req);
  assert(!decodeFa(b.subarray(0, FA_HDR_LEN - 1)).ok);
  const noHash = decodeFa(b.subarray(0, FA_HDR_LEN + 31));
  assert(!noHash.ok && noHash.error.includes("hash"));
  // a hash and no OAP decodes (the irmd refuses the empty request)
  assertEquals(unwrap(decodeFa(b.subarray(0, FA_HDR_LEN + 32))).code, FLOW_REQ);
  // with a 64-byte hash, the first 32 bytes of the OAP are hash
  const wide = unwrap(decodeFa(b, 64));
  assert(wide.code === FLOW_REQ && wide.hash.length === 64);
  const bad = b.slice();
  bad[58] = 3;
  const r = decodeFa(bad);
  assert(!r.ok && r.error.includes("code 3"));
  const long = new Uint8Array(FA_MAX_LEN + 1);
  assert(!decodeFa(long).ok);
  assertEquals(unwrap(decodeFa(long.subarray(0, FA_MAX_LEN))).code, FLOW_REQ);
  assertThrows(() => encodeFa({ ...req, oap: new Uint8Array(FA_MAX_LEN) }));
  assertThrows(() => encodeFa({ ...req, sAddr: -1n }));
  assertThrows(() =>
    encodeFa({ ...req, qos: { ...QOS_RAW, availability: 256 } })
  );
  assertThrows(() => encodeFa(flowUpdate(1n, 0x10000)));
  assertThrows(() =>
    encodeFa({
      code: FLOW_REPLY,
      rEid: 1n,
      sEid: 1n,
      response: 2 ** 31,
      oap: new Uint8Array(0),
    })
  );
});

Deno.test("mb-ecn: the ecn a queue adds saturates at 255", () => {
  assertEquals([0, 15, 16, 31, 32, 4080].map(ecnForQueue), [
    0,
    0,
    1,
    1,
    2,
    255,
  ]);
  assertEquals(ecnForQueue(4096), 255);
  assertEquals(ecnForQueue(1 << 30), 255);
  assertThrows(() => ecnForQueue(-1));
});

Deno.test("mb-ecn: the receiver's level and when it sends FLOW_UPDATE", () => {
  let s: EcnRx = ECN_RX_IDLE;
  const step = (ecn: number): boolean => {
    const r = ecnReceive(s, ecn);
    s = r.state;
    return r.update;
  };
  // no congestion, nothing to say
  assertEquals([step(0), step(0)], [false, false]);
  assertEquals(s, ECN_RX_IDLE);
  // the first mark is reported at once
  assertEquals(step(10), true);
  assertEquals(s.ece, 10);
  // then every eighth, starting with the second
  const updates: number[] = [];
  let level = 10;
  for (let i = 0; i < 20; i++) {
    if (step(10)) updates.push(i);
    level = level - (level >> 5) + 10;
    assertEquals(s.ece, level);
  }
  assertEquals(updates, [1, 9, 17]);
  // marks stop: the level quarters, reported when it reaches 0
  const down: [number, boolean][] = [];
  while (s.ece !== 0) {
    const u = step(0);
    down.push([s.ece, u]);
  }
  assertEquals(down.at(-1), [0, true]);
  assert(down.slice(0, -1).every(([, u]) => !u));
  assertEquals(step(0), false);
  // the level settles near 32 * ecn and stays in 16 bits
  s = ECN_RX_IDLE;
  for (let i = 0; i < 2000; i++) step(255);
  assert(s.ece > 8000 && s.ece <= 0xffff, String(s.ece));
});

Deno.test("fuzz: decodeFa gives an error or a valid message, never a throw", () => {
  const corpus: Uint8Array[] = PCAPS.flatMap((p) =>
    pcapSdus(p).filter((s) => s.comp === "dt" && s.kind === "msg")
  ).map((s) => unwrap(decodeDt(s.sdu)))
    .filter((p) => p.eid === EID_FA)
    .map((p) => p.payload.slice());
  corpus.push(encodeFa(flowUpdate(5n, 9)));
  const stats = fuzzDecoder({
    name: "decodeFa",
    corpus,
    decode: (b) => decodeFa(b),
    encode: encodeFa,
  });
  assert(stats.mutantsDecoded > 1000, JSON.stringify(stats));
});
