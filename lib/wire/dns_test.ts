/**
 * The DNS codec against hand-built bytes laid out as RFC 1035 (header,
 * question, resource records, compression) and RFC 2136 (UPDATE) describe
 * them. The integration test (tests/ddns_test.ts) checks it against BIND.
 */
import {
  assert,
  assertEquals,
  assertMatch,
  unwrap,
} from "../../tests/assert.ts";
import {
  answerAddresses,
  checkResponse,
  CLASS_ANY,
  CLASS_IN,
  CLASS_NONE,
  decodeAddress,
  encodeAddress,
  encodeName,
  encodeQuery,
  encodeUpdate,
  fqdn,
  HEADER_LEN,
  inZone,
  type Message,
  OPCODE_QUERY,
  OPCODE_UPDATE,
  parseHeader,
  parseMessage,
  RCODE_NXDOMAIN,
  rcodeName,
  readName,
  TYPE_A,
  TYPE_AAAA,
  TYPE_SOA,
  type UpdateOp,
} from "./dns.ts";
import { nameHashHex } from "./name_hash.ts";
import { uniform } from "../../tests/rng.ts";

const HEX = nameHashHex("oping-server"); // 6ae220aa6aae06c43878513c64db34b6

function ascii(s: string): number[] {
  return [...s].map((c) => c.charCodeAt(0));
}

/** `<hex>.` in wire form: one 32-byte label, then the root. */
const HEX_NAME = [32, ...ascii(HEX), 0];

function bytes(...parts: (number | number[])[]): Uint8Array {
  return new Uint8Array(parts.flat());
}

Deno.test("names: fully qualified names, zones", () => {
  assertEquals(HEX, "6ae220aa6aae06c43878513c64db34b6");
  assertEquals(fqdn(HEX, "."), `${HEX}.`);
  assertEquals(fqdn(HEX, ""), `${HEX}.`);
  assertEquals(fqdn(HEX, "o7s.example"), `${HEX}.o7s.example.`);
  assertEquals(fqdn(HEX, "o7s.example."), `${HEX}.o7s.example.`);
  assert(inZone(`${HEX}.`, "."));
  assert(inZone(`${HEX}.O7S.example.`, "o7s.example"));
  assert(!inZone(`${HEX}.xo7s.example.`, "o7s.example"));
  assert(!inZone(`${HEX}.`, "o7s.example"));
});

Deno.test("names: wire form and its limits", () => {
  assertEquals(unwrap(encodeName(".")), bytes(0));
  assertEquals(unwrap(encodeName("")), bytes(0));
  assertEquals(
    unwrap(encodeName("www.example.org.")),
    bytes(3, ascii("www"), 7, ascii("example"), 3, ascii("org"), 0),
  );
  assertEquals(unwrap(encodeName(`${HEX}.`)), bytes(HEX_NAME));
  assertEquals(unwrap(encodeName(HEX)), bytes(HEX_NAME));
  assertMatch(
    (encodeName("a..b") as { error: string }).error,
    /empty label/,
  );
  assertMatch(
    (encodeName("x".repeat(64)) as { error: string }).error,
    /longer than 63/,
  );
  unwrap(encodeName("x".repeat(63)));
  // 4 labels of 63 bytes: 4 * 64 + 1 = 257 > 255.
  const long = Array(4).fill("x".repeat(63)).join(".");
  assertMatch(
    (encodeName(long) as { error: string }).error,
    /longer than 255/,
  );
});

Deno.test("names: compression pointers, and loops caught", () => {
  // "example.org." at 0, then "www" + pointer to 0 at 13.
  const buf = bytes(
    7,
    ascii("example"),
    3,
    ascii("org"),
    0,
    3,
    ascii("www"),
    0xc0,
    0,
  );
  assertEquals(unwrap(readName(buf, 0)), { name: "example.org.", next: 13 });
  assertEquals(unwrap(readName(buf, 13)), {
    name: "www.example.org.",
    next: 19,
  });
  // A pointer to itself, a pointer forwards.
  const self = bytes(0, 0, 0xc0, 2);
  assertMatch(
    (readName(self, 2) as { error: string }).error,
    /does not point backwards/,
  );
  const fwd = bytes(0xc0, 2, 0);
  assertMatch(
    (readName(fwd, 0) as { error: string }).error,
    /does not point backwards/,
  );
  // A loop through a label: "a" then a pointer back to the "a".
  const loop = bytes(1, ascii("a"), 0xc0, 0);
  assert(!readName(loop, 2).ok);
  // A chain of backward pointers that ends is fine.
  const chain = bytes(0, 0xc0, 0, 0xc0, 1, 0xc0, 3);
  assertEquals(unwrap(readName(chain, 5)), { name: ".", next: 7 });
  // Reserved label types (0x40, 0x80), and names cut short.
  assertMatch(
    (readName(bytes(0x41, 0), 0) as { error: string }).error,
    /reserved label type 0x40/,
  );
  assert(!readName(bytes(0x80), 0).ok);
  assert(!readName(bytes(3, ascii("ww")), 0).ok);
  assert(!readName(bytes(0xc0), 0).ok);
  assert(!readName(bytes(), 0).ok);
  // Odd bytes in a label come back escaped.
  assertEquals(
    unwrap(readName(bytes(3, 0x61, 0x2e, 0x00, 0), 0)).name,
    "a\\046\\000.",
  );
});

Deno.test("addresses: A and AAAA data", () => {
  assertEquals(unwrap(encodeAddress("127.0.0.1")), bytes(127, 0, 0, 1));
  assertEquals(
    unwrap(encodeAddress("::1")),
    bytes(Array(15).fill(0), 1),
  );
  assertEquals(
    unwrap(encodeAddress("fe80::1:2")),
    bytes(0xfe, 0x80, Array(10).fill(0), 0, 1, 0, 2),
  );
  assertEquals(
    unwrap(encodeAddress("::ffff:10.0.0.1")),
    bytes(Array(10).fill(0), 0xff, 0xff, 10, 0, 0, 1),
  );
  assertEquals(
    unwrap(encodeAddress("1:2:3:4:5:6:7:8")),
    bytes(0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8),
  );
  assert(!encodeAddress("localhost").ok);
  assert(!encodeAddress("10.0.0.1/8").ok);
  for (
    const ip of [
      "::1",
      "::",
      "fe80::1:2",
      "2001:db8::",
      "1:0:0:2::3", // the longer run of zeros is the one compressed
      "1:0:2:3:4:5:6:7", // one zero group is not compressed
      "1:2:3:4:5:6:7:8",
      "127.0.0.1",
      "0.0.0.0",
    ]
  ) {
    assertEquals(unwrap(decodeAddress(unwrap(encodeAddress(ip)))), ip);
  }
  assertEquals(
    unwrap(decodeAddress(unwrap(encodeAddress("2001:DB8:0:0:1:0:0:1")))),
    "2001:db8::1:0:0:1",
  );
  assert(!decodeAddress(bytes(1, 2, 3)).ok);
});

Deno.test("query: header, one question, class IN, no recursion", () => {
  const q = unwrap(encodeQuery({ id: 0x1234, name: `${HEX}.`, type: TYPE_A }));
  assertEquals(
    q,
    bytes(
      [0x12, 0x34, 0x00, 0x00, 0, 1, 0, 0, 0, 0, 0, 0],
      HEX_NAME,
      [0, 1, 0, 1],
    ),
  );
  const q6 = unwrap(
    encodeQuery({ id: 7, name: `${HEX}.`, type: TYPE_AAAA, rd: true }),
  );
  assertEquals(q6.subarray(0, 4), bytes(0, 7, 0x01, 0x00));
  assertEquals(q6.subarray(q6.length - 4), bytes(0, 28, 0, 1));
  assert(!encodeQuery({ id: 70000, name: "a.", type: TYPE_A }).ok);
  assert(!encodeQuery({ id: 1, name: "a..", type: TYPE_A }).ok);
});

Deno.test("update: add an A record to zone . (RFC 2136 layout)", () => {
  const m = unwrap(encodeUpdate({
    id: 0xbeef,
    zone: ".",
    updates: [{
      op: "add",
      name: `${HEX}.`,
      type: TYPE_A,
      ttl: 86400,
      rdata: unwrap(encodeAddress("127.0.0.1")),
    }],
  }));
  assertEquals(
    m,
    bytes(
      // id, opcode 5 (flags 0x2800), ZOCOUNT 1, PRCOUNT 0, UPCOUNT 1, ADCOUNT 0
      [0xbe, 0xef, 0x28, 0x00, 0, 1, 0, 0, 0, 1, 0, 0],
      // zone section: the root, SOA, IN
      [0, 0, 6, 0, 1],
      // update: <hex>. A IN 86400 (0x00015180) rdlength 4 127.0.0.1
      HEX_NAME,
      [0, 1, 0, 1, 0x00, 0x01, 0x51, 0x80, 0, 4, 127, 0, 0, 1],
    ),
  );
});

Deno.test("update: delete one RR (class NONE) and an RRset (class ANY)", () => {
  const rdata = unwrap(encodeAddress("::1"));
  const m = unwrap(encodeUpdate({
    id: 1,
    zone: "o7s.example",
    updates: [
      {
        op: "delete-rr",
        name: fqdn(HEX, "o7s.example"),
        type: TYPE_AAAA,
        rdata,
      },
      { op: "delete-rrset", name: fqdn(HEX, "o7s.example"), type: TYPE_AAAA },
    ],
  }));
  const zone = [3, ascii("o7s"), 7, ascii("example"), 0].flat();
  const owner = [32, ascii(HEX), zone].flat();
  assertEquals(
    m,
    bytes(
      [0, 1, 0x28, 0x00, 0, 1, 0, 0, 0, 2, 0, 0],
      zone,
      [0, 6, 0, 1],
      owner,
      [0, 28, 0, 254, 0, 0, 0, 0, 0, 16],
      [...rdata],
      owner,
      [0, 28, 0, 255, 0, 0, 0, 0, 0, 0],
    ),
  );
  // Our own parser reads it back: zone, then the update section.
  const p = unwrap(parseMessage(m));
  assertEquals(p.header.opcode, OPCODE_UPDATE);
  assertEquals(p.questions, [
    { name: "o7s.example.", type: TYPE_SOA, class: CLASS_IN },
  ]);
  assertEquals(p.authority.map((r) => [r.class, r.ttl, r.rdata.length]), [
    [CLASS_NONE, 0, 16],
    [CLASS_ANY, 0, 0],
  ]);
  // A name outside the zone, a bad TTL.
  assertMatch(
    (encodeUpdate({
      id: 1,
      zone: "o7s.example",
      updates: [{ op: "delete-rrset", name: `${HEX}.`, type: TYPE_A }],
    }) as { error: string }).error,
    /not in zone o7s\.example\./,
  );
  assert(
    !encodeUpdate({
      id: 1,
      zone: ".",
      updates: [{
        op: "add",
        name: "a.",
        type: TYPE_A,
        ttl: -1,
        rdata: bytes(1, 2, 3, 4),
      }],
    }).ok,
  );
});

/** A response as BIND builds it: the question, an answer whose name is a pointer to it. */
function response(
  id: number,
  flags: number,
  type: number,
  answers: number[][],
): Uint8Array {
  return bytes(
    [id >> 8, id & 0xff, flags >> 8, flags & 0xff, 0, 1, 0, answers.length],
    [0, 0, 0, 0],
    HEX_NAME,
    [0, type, 0, 1],
    ...answers.map((rd) => [
      0xc0,
      12, // pointer to the question's name
      0,
      type,
      0,
      1,
      0x00,
      0x01,
      0x51,
      0x80,
      0,
      rd.length,
      ...rd,
    ]),
  );
}

Deno.test("response: answers with compression, TTL, flags", () => {
  const r = response(0x4242, 0x8400, TYPE_A, [[127, 0, 0, 1], [127, 0, 0, 2]]);
  const m = unwrap(parseMessage(r));
  assertEquals(m.header, {
    id: 0x4242,
    qr: true,
    opcode: 0,
    aa: true,
    tc: false,
    rd: false,
    ra: false,
    rcode: 0,
    qdcount: 1,
    ancount: 2,
    nscount: 0,
    arcount: 0,
  });
  assertEquals(m.questions, [{
    name: `${HEX}.`,
    type: TYPE_A,
    class: CLASS_IN,
  }]);
  assertEquals(m.answers[0]!.name, `${HEX}.`);
  assertEquals(m.answers[0]!.ttl, 86400);
  assertEquals(answerAddresses(m, TYPE_A), {
    addresses: ["127.0.0.1", "127.0.0.2"],
    ttl: 86400,
  });
  assertEquals(answerAddresses(m, TYPE_AAAA), { addresses: [], ttl: 0 });

  const r6 = response(9, 0x8400, TYPE_AAAA, [[...Array(15).fill(0), 1]]);
  assertEquals(
    answerAddresses(unwrap(parseMessage(r6)), TYPE_AAAA).addresses,
    ["::1"],
  );
  // A TTL with the top bit set is read unsigned.
  const big = response(9, 0x8400, TYPE_A, [[10, 0, 0, 1]]);
  big.set([0xff, 0xff, 0xff, 0xff], big.length - 10);
  assertEquals(unwrap(parseMessage(big)).answers[0]!.ttl, 0xffffffff);
});

Deno.test("response: NXDOMAIN, rcode names", () => {
  const r = response(5, 0x8403, TYPE_A, []);
  const m = unwrap(parseMessage(r));
  assertEquals(m.header.rcode, RCODE_NXDOMAIN);
  assertEquals(rcodeName(m.header.rcode), "NXDOMAIN");
  assertEquals(rcodeName(5), "REFUSED");
  assertEquals(rcodeName(23), "RCODE 23");
});

Deno.test("response: every truncation of a message is an error, not an exception", () => {
  const r = response(0x4242, 0x8400, TYPE_A, [[127, 0, 0, 1]]);
  for (let n = 0; n < r.length; n++) {
    const m = parseMessage(r.subarray(0, n));
    assert(!m.ok, `a ${n}-byte prefix parsed`);
  }
  assert(parseMessage(r).ok);
  assertMatch(
    (parseHeader(r.subarray(0, 5)) as { error: string }).error,
    /5 bytes, shorter than a DNS header/,
  );
});

// ---------------------------------------------------------------------------
// Fuzzing the decoder

/** A name as the decoder prints it (`\\ddd` escapes) in uncompressed wire form. */
function nameWire(name: string): number[] {
  if (name === ".") return [0];
  const out: number[] = [];
  for (const label of name.slice(0, -1).split(".")) {
    const b: number[] = [];
    for (let i = 0; i < label.length; i++) {
      if (label[i] === "\\") {
        b.push(Number(label.slice(i + 1, i + 4)));
        i += 3;
      } else b.push(label.charCodeAt(i));
    }
    out.push(b.length, ...b);
  }
  out.push(0);
  return out;
}

const be16 = (n: number) => [n >> 8, n & 0xff];
const be32 = (n: number) => [...be16(n >>> 16), ...be16(n & 0xffff)];

/**
 * A decoded message written back as the decoder reads it, without name
 * compression: the test's own encoder for any message (the codec's encoders
 * write only queries and updates).
 */
function rewire(m: Message): Uint8Array {
  const h = m.header;
  const flags = (h.qr ? 0x8000 : 0) | (h.opcode << 11) | (h.aa ? 0x400 : 0) |
    (h.tc ? 0x200 : 0) | (h.rd ? 0x100 : 0) | (h.ra ? 0x80 : 0) | h.rcode;
  const out = [
    ...be16(h.id),
    ...be16(flags),
    ...be16(h.qdcount),
    ...be16(h.ancount),
    ...be16(h.nscount),
    ...be16(h.arcount),
  ];
  for (const q of m.questions) {
    out.push(...nameWire(q.name), ...be16(q.type), ...be16(q.class));
  }
  for (const rr of [...m.answers, ...m.authority, ...m.additional]) {
    out.push(
      ...nameWire(rr.name),
      ...be16(rr.type),
      ...be16(rr.class),
      ...be32(rr.ttl),
      ...be16(rr.rdata.length),
      ...rr.rdata,
    );
  }
  return new Uint8Array(out);
}

/**
 * Whether a message that decodes is written as `rewire` writes it: no
 * compression pointer (found by reading each name in place: a pointer makes
 * the bytes read differ from the name's full wire length), none of the
 * header bits the decoder does not keep (Z, AD, CD), nothing after the last
 * record.
 */
function plainWire(b: Uint8Array, m: Message): boolean {
  if ((((b[2]! << 8) | b[3]!) & 0x0070) !== 0) return false;
  let off = HEADER_LEN;
  const name = (): boolean => {
    const n = unwrap(readName(b, off));
    const plain = n.next - off === nameWire(n.name).length;
    off = n.next;
    return plain;
  };
  for (let i = 0; i < m.questions.length; i++) {
    if (!name()) return false;
    off += 4;
  }
  const records = m.answers.length + m.authority.length + m.additional.length;
  for (let i = 0; i < records; i++) {
    if (!name()) return false;
    off += 10 + ((b[off + 8]! << 8) | b[off + 9]!);
  }
  return off === b.length;
}

/**
 * True when every name of `m` is plain text: encodeName takes names as text,
 * while readName writes bytes outside printable ASCII (and "." or "\\" in a
 * label) as `\\ddd`, which encodeName would write as those four characters.
 */
function textNames(m: Message): boolean {
  return [...m.questions, ...m.answers, ...m.authority, ...m.additional]
    .every((x) => !x.name.includes("\\"));
}

/** The query encodeQuery would write for `m`, if `m` is one of that shape. */
function asQuery(m: Message): Uint8Array | undefined {
  const h = m.header;
  const q = m.questions[0];
  if (
    !textNames(m) || q === undefined || m.questions.length !== 1 ||
    q.class !== CLASS_IN ||
    h.qr || h.opcode !== OPCODE_QUERY || h.aa || h.tc || h.ra ||
    h.rcode !== 0 || h.ancount + h.nscount + h.arcount !== 0
  ) return undefined;
  const r = encodeQuery({ id: h.id, name: q.name, type: q.type, rd: h.rd });
  return r.ok ? r.value : undefined;
}

/** The update encodeUpdate would write for `m`, if `m` is one of that shape. */
function asUpdate(m: Message): Uint8Array | undefined {
  const h = m.header;
  const z = m.questions[0];
  if (
    !textNames(m) || z === undefined || m.questions.length !== 1 ||
    z.type !== TYPE_SOA ||
    z.class !== CLASS_IN || h.qr || h.opcode !== OPCODE_UPDATE || h.aa ||
    h.tc || h.rd || h.ra || h.rcode !== 0 || h.ancount + h.arcount !== 0
  ) return undefined;
  const updates: UpdateOp[] = [];
  for (const rr of m.authority) {
    if (rr.class === CLASS_IN) {
      updates.push({
        op: "add",
        name: rr.name,
        type: rr.type,
        ttl: rr.ttl,
        rdata: rr.rdata,
      });
    } else if (rr.class === CLASS_ANY && rr.ttl === 0 && !rr.rdata.length) {
      updates.push({ op: "delete-rrset", name: rr.name, type: rr.type });
    } else if (rr.class === CLASS_NONE && rr.ttl === 0) {
      updates.push({
        op: "delete-rr",
        name: rr.name,
        type: rr.type,
        rdata: rr.rdata,
      });
    } else return undefined;
  }
  const r = encodeUpdate({ id: h.id, zone: z.name, updates });
  return r.ok ? r.value : undefined;
}

/** Valid messages to mutate: the codec's own, and responses that compress. */
function fuzzSeeds(): Uint8Array[] {
  const a = unwrap(encodeAddress("127.0.0.1"));
  const a6 = unwrap(encodeAddress("::1"));
  return [
    unwrap(encodeQuery({ id: 0x1234, name: `${HEX}.`, type: TYPE_A })),
    unwrap(
      encodeQuery({ id: 7, name: "x.o7s.test.", type: TYPE_AAAA, rd: true }),
    ),
    unwrap(encodeUpdate({
      id: 0x0102,
      zone: ".",
      updates: [{
        op: "add",
        name: `${HEX}.`,
        type: TYPE_A,
        ttl: 86400,
        rdata: a,
      }],
    })),
    unwrap(encodeUpdate({
      id: 0xfffe,
      zone: "o7s.test",
      updates: [
        {
          op: "delete-rr",
          name: `${HEX}.o7s.test.`,
          type: TYPE_AAAA,
          rdata: a6,
        },
        { op: "delete-rrset", name: `${HEX}.o7s.test.`, type: TYPE_A },
      ],
    })),
    response(0x4242, 0x8400, TYPE_A, [[127, 0, 0, 1], [127, 0, 0, 2]]),
    response(9, 0x8403, TYPE_AAAA, []),
  ];
}

Deno.test("fuzz: random and mutated messages decode to an error value or to exactly what they hold", () => {
  const seed = Number(Deno.env.get("O7S_FUZZ_SEED") ?? "20261124");
  const rand = uniform(seed);
  const int = (n: number) => Math.floor(rand() * n);
  const seeds = fuzzSeeds();
  const expect = { id: 0x4242, opcode: OPCODE_QUERY };
  let decoded = 0;
  let identical = 0;
  let byEncoder = 0;
  let input = new Uint8Array(0);
  try {
    for (let i = 0; i < 20_000; i++) {
      const kind = i % 4;
      if (kind === 0) {
        input = new Uint8Array(int(600)).map(() => int(256));
        // Plausible section counts, so that the sections get parsed.
        if (input.length >= 12 && i % 8 === 0) {
          input.set([0, int(3), 0, int(3), 0, int(3), 0, int(3)], 4);
        }
      } else {
        input = seeds[int(seeds.length)]!.slice();
        if (kind === 1) {
          for (let f = 0; f <= int(4); f++) {
            const bit = int(input.length * 8);
            input[bit >> 3]! ^= 1 << (bit & 7);
          }
        } else if (kind === 2) {
          input[int(input.length)] = int(256);
        } else {
          input = input.subarray(0, int(input.length + 1));
        }
      }
      // Never an exception: a value, or an error that says something.
      const m = parseMessage(input);
      const r = checkResponse(input, expect);
      const h = parseHeader(input);
      readName(input, int(input.length + 2));
      assertEquals(h.ok, input.length >= HEADER_LEN);
      for (const res of [m, r, h]) {
        if (!res.ok) assert(typeof res.error === "string" && res.error !== "");
      }
      if (r.ok) assertEquals(m, r, "checkResponse and parseMessage disagree");
      if (!m.ok) continue;
      decoded++;
      const msg = m.value;
      assertEquals(
        [msg.questions, msg.answers, msg.authority, msg.additional].map((x) =>
          x.length
        ),
        [
          msg.header.qdcount,
          msg.header.ancount,
          msg.header.nscount,
          msg.header.arcount,
        ],
      );
      // Decoded and written back, the message decodes to the same thing,
      // and writing that again gives the same bytes: nothing lost, nothing
      // invented. The bytes equal the input where the input is written the
      // same way; where it is not, that is for reasons the decoder rightly
      // drops: compression pointers (it expands them), header bits it does
      // not keep (Z, AD, CD), bytes after the last record.
      const again = rewire(msg);
      assertEquals(parseMessage(again), m, "decode(rewire(m)) !== m");
      assertEquals(rewire(unwrap(parseMessage(again))), again);
      if (plainWire(input, msg)) {
        identical++;
        assertEquals(again, input, "a plain message re-encodes otherwise");
        // Where the codec's own encoders write that shape, they write the
        // input's exact bytes.
        const own = asQuery(msg) ?? asUpdate(msg);
        if (own !== undefined) {
          byEncoder++;
          assertEquals(own, input, "the codec's encoder writes otherwise");
        }
      }
    }
    // The success paths ran, not only the errors.
    assert(decoded > 2000, `only ${decoded} inputs decoded`);
    assert(identical > 1000, `only ${identical} plain messages`);
    assert(byEncoder > 500, `only ${byEncoder} by the codec's encoders`);
  } catch (e) {
    throw new Error(
      `fuzz seed ${seed} (O7S_FUZZ_SEED=${seed} repeats it), input [${
        [...input].map((b) => b.toString(16).padStart(2, "0")).join(" ")
      }]: ${e instanceof Error ? e.message : e}`,
      { cause: e },
    );
  }
});

Deno.test("checkResponse: wrong id, a query, truncated, malformed, other question", () => {
  const expect = {
    id: 0x4242,
    opcode: OPCODE_QUERY,
    question: { name: `${HEX}.`, type: TYPE_A },
  };
  const good = response(0x4242, 0x8400, TYPE_A, [[127, 0, 0, 1]]);
  assertEquals(unwrap(checkResponse(good, expect)).answers.length, 1);
  // The question's name in another case is the same question.
  const upper = good.slice();
  upper[13] = "6".charCodeAt(0);
  upper[15] = "E".charCodeAt(0);
  assert(checkResponse(upper, expect).ok);

  const why = (b: Uint8Array) =>
    (checkResponse(b, expect) as { error: string }).error;
  assertMatch(
    why(response(0x4343, 0x8400, TYPE_A, [])),
    /wrong id 17219 \(expected 16962\)/,
  );
  assertMatch(why(response(0x4242, 0x0000, TYPE_A, [])), /not a response/);
  assertMatch(why(response(0x4242, 0xa800, TYPE_A, [])), /opcode 5/);
  assertMatch(why(response(0x4242, 0x8600, TYPE_A, [])), /truncated \(TC/);
  assertMatch(why(good.subarray(0, good.length - 1)), /malformed/);
  assertMatch(why(good.subarray(0, 3)), /malformed: 3 bytes/);
  assertMatch(
    why(response(0x4242, 0x8400, TYPE_AAAA, [])),
    /answers another question/,
  );
  // A response without the question (some FORMERR answers) is accepted.
  const bare = bytes([0x42, 0x42, 0x84, 0x01], Array(8).fill(0));
  assertEquals(unwrap(checkResponse(bare, expect)).header.rcode, 1);
});
