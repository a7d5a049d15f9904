import { createHash } from "node:crypto";
import {
  assert,
  assertEquals,
  assertThrows,
  unwrap,
} from "../../tests/assert.ts";
import {
  checkPbAnnotations,
  fieldsUnder,
  hexOf,
  loadCapture,
  pbAnnotations,
  pcapSdus,
  withNote,
} from "./captures.ts";
import {
  decodeDht,
  DHT_FIND_NODE_REQ,
  DHT_FIND_NODE_RSP,
  DHT_FIND_VALUE_REQ,
  DHT_FIND_VALUE_RSP,
  DHT_STORE,
  dhtAddrValue,
  type DhtMsg,
  dhtValueAddr,
  encodeDht,
} from "./dir.ts";
import { decodeDt, EID_DHT } from "./dt.ts";
import { decodeEnrollResp } from "./enroll.ts";
import { fuzzDecoder } from "./fuzz.ts";

const PCAPS = ["c023-unicast-2node.pcap", "c023-unicast-3node.pcap"];
const CODE_NAMES = [
  "STORE",
  "FIND_NODE_REQ",
  "FIND_NODE_RSP",
  "FIND_VALUE_REQ",
  "FIND_VALUE_RSP",
];

function hex(s: string): Uint8Array {
  return new Uint8Array(s.trim().split(/\s+/).map((b) => parseInt(b, 16)));
}

function sha3(name: string): string {
  return createHash("sha3-256").update(name).digest("hex");
}

/** The DHT messages of a pcap with the DT packets they came in. */
function pcapDht(pcap: string) {
  return pcapSdus(pcap).filter((s) => s.comp === "dt" && s.kind === "msg")
    .map((s) => ({ s, dt: unwrap(decodeDt(s.sdu)) }))
    .filter(({ dt }) => dt.eid === EID_DHT);
}

Deno.test("golden: every annotated DHT message decodes to its annotations and re-encodes byte for byte", () => {
  const ds = loadCapture("c023-unicast-oping.txt");
  const msgs = withNote(ds, "DHT message");
  const codes = new Map<string, number>();
  const idOf = new Map<string, string>();
  let compared = 0;
  let duplicates = 0;
  for (const d of msgs) {
    const where = `${d.pcap} #${d.index}`;
    const dt = unwrap(decodeDt(d.bytes.subarray(4)));
    const note = d.notes.find((n) => n.startsWith("DHT message"))!;
    assert(note.includes(`(protobuf dht_msg, ${dt.payload.length} B)`), note);
    const m = unwrap(decodeDht(dt.payload));
    assert(note.startsWith(`DHT message ${CODE_NAMES[m.code]} `), note);
    const fs = fieldsUnder(d, "DHT message");
    assertEquals(fs[0]!.start, 19, where);
    compared += checkPbAnnotations(m, pbAnnotations(fs, "dht"), "dht_msg");
    assertEquals(hexOf(encodeDht(m)), hexOf(dt.payload), where);
    codes.set(CODE_NAMES[m.code]!, (codes.get(CODE_NAMES[m.code]!) ?? 0) + 1);
    // the join request and its answer go out twice, byte for byte
    const dup = d.notes.map((n) =>
      /^byte-identical duplicate of #(\d+)/.exec(n)
    )
      .find((x) => x !== null);
    if (dup) {
      const first = ds.find((o) =>
        o.pcap === d.pcap && o.index === Number(dup[1])
      )!;
      assertEquals(hexOf(first.bytes), hexOf(d.bytes), where);
      duplicates++;
    }
    for (const f of fs) {
      // keys named by what they hash; node ids by whose they are
      const hash = /= 32 B: ([0-9a-f]{64}) = SHA3-256\("([^"]*)"\)/.exec(
        f.desc,
      );
      if (hash) assertEquals(hash[1], sha3(hash[2]!), where);
      const id = /= 32 B: ([0-9a-f]{64}) \(DHT id of (\w)\)/.exec(f.desc);
      if (id) {
        const key = `${d.pcap}/${id[2]}`;
        assertEquals(idOf.get(key) ?? id[1], id[1], `${where}: id of ${id[2]}`);
        idOf.set(key, id[1]!);
      }
    }
  }
  assertEquals(Object.fromEntries(codes), {
    FIND_NODE_REQ: 3,
    FIND_NODE_RSP: 3,
    STORE: 1,
    FIND_VALUE_REQ: 3,
    FIND_VALUE_RSP: 3,
  });
  assertEquals([compared, duplicates], [88, 2]);
});

Deno.test("golden: every DHT message of both pcaps; answers echo cookie and key, values are addresses", () => {
  const counts: number[] = [];
  for (const pcap of PCAPS) {
    const seen: { m: DhtMsg; dst: bigint }[] = [];
    for (const { s, dt } of pcapDht(pcap)) {
      const m = unwrap(decodeDht(dt.payload));
      assertEquals(hexOf(encodeDht(m)), hexOf(dt.payload), `${pcap} #${s.n}`);
      assertEquals(dt.qc, 0);
      if (m.code === DHT_STORE) {
        // expiry: absolute, now + t_expire (86400 s); "now" from the
        // enroller's clock in the enrollment response of this capture
        const resp = pcapSdus(pcap).find((e) =>
          e.comp === "enrollment" && e.kind === "msg" && !e.fromAllocator
        )!;
        const t = unwrap(decodeEnrollResp(resp.sdu)).tSec;
        const now = Number(t) + (s.tMs - resp.tMs) / 1000;
        assert(Math.abs(m.store.exp - (now + 86400)) <= 1, String(m.store.exp));
        assertEquals(hexOf(m.store.key), sha3("oping"));
        assertEquals(unwrap(dhtValueAddr(m.store.val)), m.src.addr);
        assertEquals(hexOf(dhtAddrValue(m.src.addr)), hexOf(m.store.val));
      }
      if (m.code === DHT_FIND_NODE_RSP || m.code === DHT_FIND_VALUE_RSP) {
        // a request from the one it answers, to its sender, same cookie/key
        const req = seen.find(({ m: q, dst }) =>
          (q.code === DHT_FIND_NODE_REQ || q.code === DHT_FIND_VALUE_REQ) &&
          q.src.addr === dt.dst && dst === m.src.addr &&
          q.find.cookie === m.node.cookie &&
          hexOf(q.find.key) === hexOf(m.node.key)
        );
        assert(req !== undefined, `${pcap} #${s.n}: answers nothing`);
        assertEquals(req.m.code + 1, m.code);
        const addrs = m.node.contacts.map((c) => c.addr);
        assert(!addrs.includes(m.src.addr), "the responder is no contact");
        assert(addrs.includes(dt.dst), "the requester is a contact");
        if (m.code === DHT_FIND_VALUE_RSP) {
          for (const v of m.val.values) {
            assertEquals(unwrap(dhtValueAddr(v)), m.src.addr);
          }
        }
      }
      seen.push({ m, dst: dt.dst });
    }
    counts.push(seen.length);
  }
  // 2 nodes: join twice, answered twice, STORE; 3 nodes: A-B as there
  // without the STORE, C's join and answer twice each, the lookup (a
  // request and an answer on each of the three hops)
  assertEquals(counts, [5, 4 + 4 + 6]);
});

Deno.test("example: FIND_NODE_REQ from id bb.., addr 0x12345678, cookie 0x1122334455667788", () => {
  const m: DhtMsg = {
    code: DHT_FIND_NODE_REQ,
    src: { id: new Uint8Array(32).fill(0xbb), addr: 0x12345678n },
    find: { cookie: 0x1122334455667788n, key: new Uint8Array(32).fill(0xaa) },
  };
  const b = new Uint8Array([
    ...hex("08 01 12 28 0a 20"),
    ...new Uint8Array(32).fill(0xbb),
    ...hex("10 f8 ac d1 91 01 22 2c 08 88 ef 99 ab c5 e8 8c 91 11 12 20"),
    ...new Uint8Array(32).fill(0xaa),
  ]);
  assertEquals(b.length, 90);
  assertEquals(hexOf(encodeDht(m)), hexOf(b));
  assertEquals(unwrap(decodeDht(b)), m);
});

Deno.test("what the captures lack: several values, no val at all, other hash lengths", () => {
  const src = { id: new Uint8Array(64).fill(1), addr: 9n };
  const key = new Uint8Array(64).fill(2);
  const m: DhtMsg = {
    code: DHT_FIND_VALUE_RSP,
    src,
    node: { cookie: (1n << 64n) - 1n, key, contacts: [] },
    val: { values: [dhtAddrValue(1n), dhtAddrValue(2n), new Uint8Array(0)] },
  };
  assertEquals(unwrap(decodeDht(encodeDht(m), 64)), m);
  assert(!decodeDht(encodeDht(m), 32).ok);
  // with no values the val field is still sent, empty
  const none: DhtMsg = { ...m, val: { values: [] } };
  const b = encodeDht(none);
  assertEquals(hexOf(b.subarray(b.length - 2)), "3200");
  // and a FIND_VALUE_RSP without it reads as one without values
  assertEquals(unwrap(decodeDht(b.subarray(0, b.length - 2), 64)), none);
});

Deno.test("decodeDht: what it refuses", () => {
  const src = { id: new Uint8Array(32).fill(1), addr: 9n };
  const key = new Uint8Array(32).fill(2);
  const store: DhtMsg = {
    code: DHT_STORE,
    src,
    store: { key, val: dhtAddrValue(9n), exp: 1796196753 },
  };
  const good = encodeDht(store);
  assertEquals(unwrap(decodeDht(good)), store);
  for (let i = 0; i < good.length; i++) {
    assert(!decodeDht(good.subarray(0, i)).ok, `prefix of ${i}`);
  }
  const refused: [string, DhtMsg][] = [
    ["src.addr is 0", { ...store, src: { ...src, addr: 0n } }],
    ["id of 31 bytes", { ...store, src: { ...src, id: new Uint8Array(31) } }],
    ["key of 33 bytes", {
      ...store,
      store: { ...store.store, key: new Uint8Array(33) },
    }],
    ["val is empty", {
      ...store,
      store: { ...store.store, val: new Uint8Array(0) },
    }],
    ["id of 0 bytes", {
      code: DHT_FIND_NODE_RSP,
      src,
      node: {
        cookie: 1n,
        key,
        contacts: [{ id: new Uint8Array(0), addr: 1n }],
      },
    }],
  ];
  for (const [why, m] of refused) {
    const r = decodeDht(encodeDht(m));
    assert(!r.ok && r.error.includes(why), `${why}: ${JSON.stringify(r)}`);
  }
  // a code's sub-message missing, an unknown code
  const srcOnly = (code: number) =>
    new Uint8Array([0x08, code, ...good.subarray(2, 40)]);
  for (const code of [0, 1, 2, 3, 4]) {
    assert(!decodeDht(srcOnly(code)).ok, `code ${code} without its message`);
  }
  const r = decodeDht(srcOnly(5));
  assert(!r.ok && r.error.includes("unknown code 5"));
  // sub-messages the code does not carry are ignored
  const find = encodeDht({
    code: DHT_FIND_VALUE_REQ,
    src,
    find: { cookie: 3n, key },
  });
  const both = new Uint8Array([...good, ...find.subarray(40)]);
  assertEquals(unwrap(decodeDht(both)), store);
  assertThrows(() =>
    encodeDht({ ...store, store: { ...store.store, exp: -1 } })
  );
  assertThrows(() => encodeDht({ ...store, src: { ...src, addr: 1n << 64n } }));
  assert(!dhtValueAddr(new Uint8Array(7)).ok);
});

Deno.test("fuzz: decodeDht gives an error or a valid message, never a throw", () => {
  const corpus = PCAPS.flatMap((p) =>
    pcapDht(p).map(({ dt }) => dt.payload.slice())
  );
  const stats = fuzzDecoder({
    name: "decodeDht",
    corpus,
    decode: (b) => decodeDht(b),
    encode: encodeDht,
  });
  assert(stats.mutantsDecoded > 500, JSON.stringify(stats));
});
