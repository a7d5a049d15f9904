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
import { fuzzDecoder } from "./fuzz.ts";
import { decodeLsa, encodeLsa, LSA_LEN } from "./routing.ts";

const PCAPS = ["c023-unicast-2node.pcap", "c023-unicast-3node.pcap"];

Deno.test("golden: every annotated LSA decodes to its annotations and re-encodes byte for byte", () => {
  const ds = loadCapture("c023-unicast-oping.txt");
  const byKey = new Map(ds.map((d) => [`${d.pcap}#${d.index}`, d]));
  const lsas = withNote(ds, "LSA (24 B");
  let relays = 0;
  for (const d of lsas) {
    const sdu = d.bytes.subarray(4);
    const fs = fieldsUnder(d, "LSA (24 B");
    assertEquals(fs.map((f) => f.start), [4, 12, 20], `#${d.index}`);
    const l = unwrap(decodeLsa(sdu));
    assertEquals(l.dAddr, intField(fs, "LSA d_addr (u64 BE)"));
    assertEquals(l.sAddr, intField(fs, "LSA s_addr (u64 BE)"));
    assertEquals(l.seqno, intField(fs, "LSA seqno (u64 BE)"));
    const note = d.notes.find((n) => n.startsWith("LSA (24 B"))!;
    assert(note.endsWith(`seqno ${l.seqno}`), note);
    assertEquals(hexOf(encodeLsa(l)), hexOf(sdu), `#${d.index}`);
    const same = d.notes.map((n) => /^same 24 bytes as #(\d+)/.exec(n))
      .find((m) => m !== null);
    if (same) {
      // the datagram it repeats, annotated or (left out there) in the pcap
      const n = Number(same[1]);
      const first = byKey.get(`${d.pcap}#${n}`)?.bytes ??
        pcapSdus(d.pcap)[n - 1]!.payload;
      assertEquals(hexOf(first.subarray(4)), hexOf(sdu));
      relays++;
    }
  }
  // 2 nodes: #16, #17, #31, #32; 3 nodes: #33, #34, #39-#42, #69-#71
  assertEquals([lsas.length, relays], [13, 5]);
});

Deno.test("golden: every LSA of both pcaps; seqnos count refreshes, relays are verbatim and never go back", () => {
  const counts: number[] = [];
  for (const pcap of PCAPS) {
    const sdus = pcapSdus(pcap);
    const ipOf = new Map<bigint, string>();
    for (const s of sdus) {
      if (s.kind === "cep" && s.comp === "management") {
        ipOf.set(unwrap(decodeCep(s.sdu)).address, s.src);
      }
    }
    const lsas = sdus.filter((s) =>
      s.comp === "management" && s.kind === "msg"
    );
    const lastSeq = new Map<string, bigint>();
    const adjacencies = new Set<string>();
    lsas.forEach((s, i) => {
      assertEquals(s.sdu.length, LSA_LEN);
      const l = unwrap(decodeLsa(s.sdu));
      assertEquals(hexOf(encodeLsa(l)), hexOf(s.sdu), `${pcap} #${s.n}`);
      const adj = `${l.sAddr}>${l.dAddr}`;
      adjacencies.add(adj);
      if (ipOf.get(l.sAddr) === s.src) {
        // the announcer's own: 0, then one more every refresh (a dump to
        // a new neighbour repeats the current one)
        const prev = lastSeq.get(adj);
        if (prev === undefined) assertEquals(l.seqno, 0n, adj);
        else assert(l.seqno === prev || l.seqno === prev + 1n, adj);
        lastSeq.set(adj, l.seqno);
      } else {
        // a relay or a dump: the same bytes arrived at the sender before,
        // from someone else than its receiver
        const before = lsas.slice(0, i).find((p) =>
          p.dst === s.src && hexOf(p.sdu) === hexOf(s.sdu)
        );
        const dump = l.seqno === 0n && before === undefined;
        assert(dump || before!.src !== s.dst, `${pcap} #${s.n} went back`);
      }
    });
    counts.push(lsas.length, adjacencies.size);
  }
  // 2 nodes: seqno 0 and five refreshes each way (the capture's header
  // counts 14, but lists 2 + 10); 3 nodes: the four adjacencies of A-B-C
  assertEquals(counts, [12, 2, 46, 4]);
});

Deno.test("LSAs: u64 fields, big-endian; any length but 24 is an error", () => {
  const l = {
    dAddr: 0x0102030405060708n,
    sAddr: (1n << 64n) - 1n,
    seqno: 1n << 63n,
  };
  const b = encodeLsa(l);
  assertEquals(
    hexOf(b),
    "0102030405060708" + "ffffffffffffffff" + "8000000000000000",
  );
  assertEquals(unwrap(decodeLsa(b)), l);
  for (const n of [0, 23, 25, 48]) assert(!decodeLsa(new Uint8Array(n)).ok);
  assertThrows(() => encodeLsa({ ...l, seqno: -1n }));
  assertThrows(() => encodeLsa({ ...l, dAddr: 1n << 64n }));
});

Deno.test("fuzz: decodeLsa gives an error or a valid LSA, never a throw", () => {
  const corpus = PCAPS.flatMap((p) =>
    pcapSdus(p).filter((s) => s.comp === "management" && s.kind === "msg")
  ).map((s) => s.sdu.slice());
  const stats = fuzzDecoder({
    name: "decodeLsa",
    corpus,
    decode: decodeLsa,
    encode: encodeLsa,
  });
  assert(stats.mutantsDecoded > 1000, JSON.stringify(stats));
});
