import {
  assert,
  assertEquals,
  assertThrows,
  unwrap,
} from "../../tests/assert.ts";
import {
  type CapDatagram,
  checkPbAnnotations,
  fieldsUnder,
  hexOf,
  loadCapture,
  pbAnnotations,
  pcapSdus,
} from "./captures.ts";
import {
  type Cep,
  CEP_MAX_LEN,
  CEP_UNKNOWN,
  cepAgrees,
  cepComponent,
  cepFor,
  decodeCep,
  encodeCep,
} from "./cep.ts";
import { fuzzDecoder } from "./fuzz.ts";

const PCAPS = ["c023-unicast-2node.pcap", "c023-unicast-3node.pcap"];

function annotatedCeps(): CapDatagram[] {
  return [
    ...loadCapture("c023-unicast-enroll.txt"),
    ...loadCapture("c023-unicast-oping.txt"),
  ].filter((d) => d.notes.some((n) => n.startsWith("CEP message")));
}

function hex(s: string): Uint8Array {
  return new Uint8Array(s.trim().split(/\s+/).map((b) => parseInt(b, 16)));
}

Deno.test("golden: every annotated CEP decodes to its annotations and re-encodes byte for byte", () => {
  const ds = annotatedCeps();
  const kinds = new Map<string, number>();
  for (const d of ds) {
    const sdu = d.bytes.subarray(4);
    const fs = fieldsUnder(d, "CEP message");
    assertEquals(fs[0]!.start, 4, `#${d.index}: the CEP starts after the eid`);
    const note = d.notes.find((n) => n.startsWith("CEP message"))!;
    assert(note.includes(`cep_msg, ${sdu.length} B`), note);
    const c = unwrap(decodeCep(sdu));
    const anns = pbAnnotations(fs, "cep");
    assertEquals(anns.length, 5, `#${d.index}: fields 1, 2, 3, 5, 8`);
    assertEquals(checkPbAnnotations(c, anns, "cep_msg"), 5);
    assertEquals(hexOf(encodeCep(c)), hexOf(sdu), `#${d.index}`);
    // what we would send for that component is exactly what C sent
    const comp = cepComponent(c);
    assert(comp !== undefined, `#${d.index}: ${c.compName}`);
    assertEquals(hexOf(encodeCep(cepFor(comp, c.address))), hexOf(sdu));
    const side = note.endsWith("from the allocator") ? "allocator" : "acceptor";
    const k = `${c.compName}/${side}`;
    kinds.set(k, (kinds.get(k) ?? 0) + 1);
  }
  assertEquals(ds.length, 12);
  assertEquals(
    [...kinds.entries()].sort(),
    [
      ["Data Transfer/acceptor", 2],
      ["Data Transfer/allocator", 2],
      ["Enrollment/acceptor", 2],
      ["Enrollment/allocator", 2],
      ["Management/acceptor", 2],
      ["Management/allocator", 2],
    ],
  );
});

Deno.test("golden: every CEP of both pcaps, and the acceptor's answer mirrors the allocator's", () => {
  let n = 0;
  for (const pcap of PCAPS) {
    const sdus = pcapSdus(pcap);
    const ceps = sdus.filter((s) => s.kind === "cep");
    // address of each node, learned from its mgmt and dt CEPs
    const addrOf = new Map<string, bigint>();
    for (let i = 0; i < ceps.length; i++) {
      const s = ceps[i]!;
      const c = unwrap(decodeCep(s.sdu));
      assertEquals(hexOf(encodeCep(c)), hexOf(s.sdu), `${pcap} #${s.n}`);
      assertEquals(c.suppVersion, []);
      assertEquals(c.suppSyntax, []);
      assertEquals(c.syntaxSpec, undefined);
      if (s.comp === "enrollment") {
        assertEquals(c.address, 0n, `${pcap} #${s.n}: enrollment CEP address`);
      } else {
        assert(c.address > 0n && c.address < 1n << 32n);
        const known = addrOf.get(s.src);
        if (known !== undefined) assertEquals(c.address, known);
        addrOf.set(s.src, c.address);
      }
      if (!s.fromAllocator) {
        // the allocator's CEP came just before on the same flow
        const req = ceps.slice(0, i).reverse().find((p) =>
          p.fromAllocator && p.src === s.dst && p.comp === s.comp
        );
        assert(req !== undefined, `${pcap} #${s.n}: no allocator CEP`);
        const own = unwrap(decodeCep(req.sdu));
        assert(cepAgrees(own, c));
        assertEquals(
          [c.compName, c.protocol, c.prefVersion, c.prefSyntax],
          [own.compName, own.protocol, own.prefVersion, own.prefSyntax],
        );
      }
      n++;
    }
  }
  // 2 nodes: 3 flows, 3 nodes: 6 flows, a CEP each way
  assertEquals(n, 2 * (3 + 6));
});

Deno.test("examples: the dt CEP of address 0x12345678 and the answer to an unknown component", () => {
  const dt = hex(
    "0a 0d 44 61 74 61 20 54 72 61 6e 73 66 65 72 12 03 64 74 70 18 01 28 02 40 f8 ac d1 91 01",
  );
  assertEquals(hexOf(encodeCep(cepFor("dt", 0x12345678n))), hexOf(dt));
  assertEquals(unwrap(decodeCep(dt)), cepFor("dt", 0x12345678n));
  const empty = hex("0a 00 12 00 18 00 28 00 40 00");
  assertEquals(hexOf(encodeCep(CEP_UNKNOWN)), hexOf(empty));
  assertEquals(unwrap(decodeCep(empty)), { ...CEP_UNKNOWN });
  assertEquals(cepComponent(CEP_UNKNOWN), undefined);
  assertEquals(hexOf(encodeCep(cepFor("enrollment", 0n))).length, 2 * 23);
});

Deno.test("fields no C peer sends round-trip: supported versions and syntaxes, the syntax spec", () => {
  const c: Cep = {
    ...cepFor("management", 7n),
    suppVersion: [1, -2],
    suppSyntax: [0, 2],
    syntaxSpec: { fids: [1, 2], lens: [4, 8] },
  };
  const b = encodeCep(c);
  assertEquals(unwrap(decodeCep(b)), c);
  // in field-number order, unpacked: 4 after 3, 6 after 5, 7 before 8
  assertEquals(
    hexOf(b),
    hexOf(
      new Uint8Array([
        ...hex("0a 0a"),
        ...new TextEncoder().encode("Management"),
        ...hex("12 03"),
        ...new TextEncoder().encode("LSP"),
        ...hex(
          "18 01 20 01 20 fe ff ff ff ff ff ff ff ff 01 28 00 30 00 30 02",
        ),
        ...hex("3a 08 08 01 08 02 10 04 10 08 40 07"),
      ]),
    ),
  );
});

Deno.test("cepAgrees: protocol, version and syntax must match, the component name need not", () => {
  const own = cepFor("dt", 1n);
  assert(cepAgrees(own, { ...own, compName: "x", address: 9n }));
  assert(!cepAgrees(own, { ...own, protocol: "LSP" }));
  assert(!cepAgrees(own, { ...own, prefVersion: 2 }));
  assert(!cepAgrees(own, { ...own, prefSyntax: 0 }));
  assert(!cepAgrees(own, CEP_UNKNOWN));
});

Deno.test("decodeCep: errors for truncated, incomplete and oversized messages", () => {
  const good = encodeCep(cepFor("management", 0xcb475e84n));
  for (let i = 0; i < good.length; i++) {
    assert(!decodeCep(good.subarray(0, i)).ok, `prefix of ${i} bytes`);
  }
  // address (field 8) missing
  const noAddr = good.subarray(0, good.length - 6);
  const r = decodeCep(noAddr);
  assert(!r.ok && r.error.includes("address"), JSON.stringify(r));
  // longer than C's buffer, though valid protobuf
  const long = { ...cepFor("dt", 1n), compName: "x".repeat(CEP_MAX_LEN) };
  assertThrows(() => encodeCep(long), /exceeds 128/);
  const bytes = new Uint8Array([
    0x0a,
    0x80,
    0x01,
    ...new Uint8Array(128).fill(0x78),
    ...hex("12 00 18 00 28 00 40 00"),
  ]);
  const big = decodeCep(bytes);
  assert(!big.ok && big.error.includes("128"), JSON.stringify(big));
  // a negative version fits here as a 5-byte varint but takes 10 written back
  const grows = new Uint8Array([
    0x0a,
    111,
    ...new Uint8Array(111).fill(0x78),
    ...hex("12 00 18 ff ff ff ff 0f 28 00 40 00"),
  ]);
  assertEquals(grows.length, 125);
  const g = decodeCep(grows);
  assert(!g.ok && g.error.includes("re-encodes"), JSON.stringify(g));
});

Deno.test("encodeCep: values out of range are RangeErrors", () => {
  assertThrows(() => encodeCep({ ...cepFor("dt", -1n) }), /address/);
  assertThrows(() => encodeCep({ ...cepFor("dt", 1n << 64n) }), /address/);
  assertThrows(() => encodeCep({ ...cepFor("dt", 1n), prefVersion: 2 ** 31 }));
  assertThrows(() => encodeCep({ ...cepFor("dt", 1n), prefSyntax: 0.5 }));
});

Deno.test("fuzz: decodeCep gives an error or a valid CEP, never a throw", () => {
  const corpus = PCAPS.flatMap((p) =>
    pcapSdus(p).filter((s) => s.kind === "cep").map((s) => s.sdu.slice())
  );
  const stats = fuzzDecoder({
    name: "decodeCep",
    corpus,
    decode: decodeCep,
    encode: encodeCep,
  });
  assert(stats.mutantsDecoded > 200, JSON.stringify(stats));
});
