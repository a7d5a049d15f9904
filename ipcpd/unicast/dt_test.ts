import {
  assert,
  assertEquals,
  assertThrows,
  unwrap,
} from "../../tests/assert.ts";
import {
  fieldsUnder,
  hexOf,
  intField,
  loadCapture,
  pcapSdus,
  withNote,
} from "./captures.ts";
import { decodeCep } from "./cep.ts";
import {
  decodeDt,
  DT_DEFAULT,
  dtDecrementTtl,
  type DtHeader,
  dtLayout,
  dtLayoutOf,
  dtRaiseEcn,
  EID_DHT,
  EID_FA,
  EID_FLOW_MIN,
  encodeDt,
  QC_VOICE,
  writeDtHeader,
} from "./dt.ts";
import { defaultUniConfig } from "./enroll.ts";
import { fuzzDecoder } from "./fuzz.ts";

const PCAPS = ["c023-unicast-2node.pcap", "c023-unicast-3node.pcap"];

function hex(s: string): Uint8Array {
  return new Uint8Array(s.trim().split(/\s+/).map((b) => parseInt(b, 16)));
}

Deno.test("golden: every annotated DT packet decodes to its annotations and re-encodes byte for byte", () => {
  const ds = loadCapture("c023-unicast-oping.txt");
  const byKey = new Map(ds.map((d) => [`${d.pcap}#${d.index}`, d]));
  const packets = withNote(ds, "DT packet");
  const kinds = new Map<string, number>();
  let relayed = 0;
  for (const d of packets) {
    const sdu = d.bytes.subarray(4);
    const fs = fieldsUnder(d, "DT packet");
    const p = unwrap(decodeDt(sdu));
    // the header's five fields (an oping message's may follow)
    assertEquals(
      fs.slice(0, 5).map((f) => f.start),
      [4, 8, 9, 10, 11],
      `#${d.index}`,
    );
    assertEquals(p.dst, intField(fs, "DT dst (u32 LITTLE-endian)"));
    assertEquals(BigInt(p.qc), intField(fs, "DT qc (u8)"));
    assertEquals(BigInt(p.ttl), intField(fs, "DT ttl (u8)"));
    assertEquals(BigInt(p.ecn), intField(fs, "DT ecn (u8)"));
    assertEquals(p.eid, intField(fs, "DT eid (u64 LITTLE-endian)"));
    const note = d.notes.find((n) => n.startsWith("DT packet"))!;
    assert(note.includes(`15-byte DT header + ${p.payload.length} B payload`));
    assertEquals(hexOf(p.payload), hexOf(d.bytes.subarray(19)));
    assertEquals(hexOf(encodeDt(p, p.payload)), hexOf(sdu), `#${d.index}`);
    const kind = p.eid === EID_FA
      ? "fa"
      : p.eid === EID_DHT
      ? "dht"
      : p.eid >= EID_FLOW_MIN
      ? "data"
      : "other";
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
    // a forwarded packet: its first hop, with the ttl one lower
    const same = d.notes.map((n) =>
      /^same DT packet as #(\d+) one hop later/.exec(n)
    )
      .find((m) => m !== null);
    if (same) {
      const first = byKey.get(`${d.pcap}#${same[1]}`)!.bytes.slice(4);
      assertEquals(dtDecrementTtl(first), p.ttl);
      assertEquals(hexOf(first), hexOf(sdu));
      relayed++;
    }
  }
  // 2 nodes: #18-#26, 3 nodes: #43, #45, #47-#60
  assertEquals(packets.length, 25);
  assertEquals(Object.fromEntries(kinds), { dht: 13, fa: 6, data: 6 });
  assertEquals(relayed, 6);
});

Deno.test("golden: every DT packet of both pcaps; each one not for its receiver goes on with ttl - 1", () => {
  let packets = 0;
  let forwarded = 0;
  for (const pcap of PCAPS) {
    const sdus = pcapSdus(pcap);
    const addrOf = new Map<string, bigint>();
    for (const s of sdus) {
      if (s.kind === "cep" && s.comp === "dt") {
        addrOf.set(s.src, unwrap(decodeCep(s.sdu)).address);
      }
    }
    const dts = sdus.filter((s) => s.comp === "dt" && s.kind === "msg");
    dts.forEach((s, i) => {
      const p = unwrap(decodeDt(s.sdu));
      assertEquals(
        hexOf(encodeDt(p, p.payload)),
        hexOf(s.sdu),
        `${pcap} #${s.n}`,
      );
      assertEquals([p.qc, p.ecn], [0, 0]);
      assert(p.ttl === 60 || p.ttl === 59);
      assert(p.eid <= EID_DHT || (p.eid & 0xffff_ffffn) >= EID_FLOW_MIN);
      packets++;
      if (p.dst === addrOf.get(s.dst)) return;
      const next = s.sdu.slice();
      assertEquals(dtDecrementTtl(next), 59);
      const out = dts.slice(i + 1).find((o) =>
        o.src === s.dst && hexOf(o.sdu) === hexOf(next)
      );
      assert(out !== undefined, `${pcap} #${s.n} was not forwarded`);
      forwarded++;
    });
  }
  // through B: a FIND_VALUE_REQ and its answer, FLOW_REQ, FLOW_REPLY and
  // three pings each way
  assertEquals([packets, forwarded], [15 + 28, 10]);
});

Deno.test("example: dst 0x12345678, qc 2, ttl 60, eid 0x7000000C8", () => {
  const h: DtHeader = {
    dst: 0x12345678n,
    qc: QC_VOICE,
    ttl: 60,
    ecn: 0,
    eid: 0x7000000c8n,
  };
  const b = hex("78 56 34 12 02 3c 00 c8 00 00 00 07 00 00 00");
  assertEquals(hexOf(encodeDt(h, new Uint8Array(0))), hexOf(b));
  assertEquals(unwrap(decodeDt(b)), { ...h, payload: new Uint8Array(0) });
});

Deno.test("layouts: sizes 1..8 from the configuration, little-endian in any size", () => {
  assertEquals(unwrap(dtLayoutOf(defaultUniConfig().dt)), DT_DEFAULT);
  for (const [a, e] of [[0, 8], [9, 8], [4, 0], [4, 9], [1.5, 8]]) {
    assert(!dtLayout(a!, e!).ok, `${a}/${e}`);
  }
  const l = unwrap(dtLayout(2, 3));
  assertEquals(l.hdrLen, 8);
  const h: DtHeader = { dst: 0xbeefn, qc: 1, ttl: 7, ecn: 9, eid: 0x123456n };
  const b = encodeDt(h, hex("aa bb"), l);
  assertEquals(hexOf(b), "efbe010709563412aabb");
  assertEquals(unwrap(decodeDt(b, l)), { ...h, payload: hex("aa bb") });
  const wide = unwrap(dtLayout(8, 8));
  const max = { ...h, dst: (1n << 64n) - 1n, eid: 1n << 63n };
  const w = encodeDt(max, new Uint8Array(0), wide);
  assertEquals(hexOf(w), "ffffffffffffffff" + "010709" + "0000000000000080");
  assertEquals(unwrap(decodeDt(w, wide)).eid, 1n << 63n);
  assertThrows(() => encodeDt({ ...h, dst: 0x10000n }, new Uint8Array(0), l));
  assertThrows(() => encodeDt({ ...h, eid: 1n << 24n }, new Uint8Array(0), l));
});

Deno.test("decodeDt: short packets and unknown cubes are errors; the header alone is a packet", () => {
  const b = encodeDt(
    { dst: 1n, qc: 0, ttl: 60, ecn: 0, eid: 1n },
    new Uint8Array(0),
  );
  for (let i = 0; i < b.length; i++) assert(!decodeDt(b.subarray(0, i)).ok);
  assertEquals(unwrap(decodeDt(b)).payload.length, 0);
  const bad = b.slice();
  bad[4] = 3;
  const r = decodeDt(bad);
  assert(!r.ok && r.error.includes("qc 3"));
  const h = { dst: 1n, qc: 0, ttl: 60, ecn: 0, eid: 1n };
  assertThrows(() => encodeDt({ ...h, qc: 3 }, new Uint8Array(0)));
  assertThrows(() => encodeDt({ ...h, ttl: 256 }, new Uint8Array(0)));
  assertThrows(() => encodeDt({ ...h, ecn: -1 }, new Uint8Array(0)));
  assertThrows(() => encodeDt({ ...h, dst: 1n << 32n }, new Uint8Array(0)));
  assertThrows(() => writeDtHeader(new Uint8Array(14), h));
  const into = new Uint8Array(20);
  writeDtHeader(into, h, DT_DEFAULT, 5);
  assertEquals(hexOf(into.subarray(5)), hexOf(b));
});

Deno.test("in place: ttl decrement (0 stays, reported), ecn raised by OR", () => {
  const b = encodeDt(
    { dst: 1n, qc: 0, ttl: 2, ecn: 0x10, eid: 64n },
    hex("01 02"),
  );
  assertEquals(dtDecrementTtl(b), 1);
  assertEquals(dtDecrementTtl(b), 0);
  assertEquals(dtDecrementTtl(b), -1);
  assertEquals(b[5], 0);
  assertEquals(dtRaiseEcn(b, 0x03), 0x13);
  assertEquals(dtRaiseEcn(b, 0), 0x13);
  assertEquals(unwrap(decodeDt(b)).ecn, 0x13);
  assertThrows(() => dtRaiseEcn(b, 256));
  assertThrows(() => dtDecrementTtl(new Uint8Array(3)));
});

Deno.test("fuzz: decodeDt gives an error or a valid packet, never a throw", () => {
  const corpus = PCAPS.flatMap((p) =>
    pcapSdus(p).filter((s) => s.comp === "dt" && s.kind === "msg")
  ).map((s) => s.sdu.slice());
  for (const layout of [DT_DEFAULT, unwrap(dtLayout(2, 3))]) {
    const stats = fuzzDecoder({
      name: `decodeDt ${layout.addrSize}/${layout.eidSize}`,
      corpus,
      decode: (b) => decodeDt(b, layout),
      encode: (p) => encodeDt(p, p.payload, layout),
    });
    assert(stats.mutantsDecoded > 500, JSON.stringify(stats));
  }
});
