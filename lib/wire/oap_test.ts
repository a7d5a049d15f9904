import { createHash } from "node:crypto";
import {
  assert,
  assertEquals,
  assertMatch,
  assertNotEquals,
  assertThrows,
  unwrap,
} from "../../tests/assert.ts";
import { annotated, type Datagram, loadVectors } from "../../tests/vectors.ts";
import { xorshift32 } from "../../tests/rng.ts";
import { toHex } from "./name_hash.ts";
import {
  buildOapRequest,
  buildOapResponse,
  checkOapCrypto,
  checkOapRequest,
  checkOapTimestamp,
  decodeOap,
  ECRYPT_UNSUPPORTED,
  encodeOap,
  KEX_FLAG_CLIENT_ENCAP,
  KEX_FLAG_RAW_KEY,
  NID_SHA256,
  NID_SHA512,
  OAP_HDR_LEN,
  OAP_REQ_HASH_LEN,
  type OapHeader,
  ReplayGuard,
  verifyOapResponse,
  wallClockNs,
} from "./oap.ts";
import { decodeMgmt, FLOW_REPLY, FLOW_REQ } from "./udp_wire.ts";

interface Pair {
  file: string;
  reqFrame: Datagram;
  replyFrame: Datagram;
  /** the OAP bytes of the FLOW_REQ and of the FLOW_REPLY */
  req: Uint8Array;
  res: Uint8Array;
}

/** The captured (FLOW_REQ, FLOW_REPLY) pairs and their OAP bytes. */
function capturedPairs(): Pair[] {
  const out: Pair[] = [];
  for (
    const file of [
      "c023-oping-raw.txt",
      "c023-keepalive.txt",
      "c023-oping-qos-data-frct.txt",
    ]
  ) {
    const v = loadVectors(file);
    const reqFrame = v.find((d) => d.note === "mgmt frame (FLOW_REQ)")!;
    const replyFrame = v.find((d) => d.note === "mgmt frame (FLOW_REPLY)")!;
    const q = unwrap(decodeMgmt(reqFrame.bytes));
    const r = unwrap(decodeMgmt(replyFrame.bytes));
    assert(q.code === FLOW_REQ && r.code === FLOW_REPLY);
    out.push({
      file,
      reqFrame,
      replyFrame,
      req: q.req.oap.slice(),
      res: r.reply.oap.slice(),
    });
  }
  return out;
}

function tsOf(d: Datagram): bigint {
  return BigInt(annotated(d, "OAP timestamp").split(" ")[0]!);
}

const NOW = 1795531482139258480n;

function header(over: Partial<OapHeader> = {}): OapHeader {
  const req = buildOapRequest({ id: new Uint8Array(16).fill(7), nowNs: NOW });
  return { ...unwrap(decodeOap(req, false)), ...over };
}

Deno.test("captured OAP requests and responses decode to the annotated fields and re-encode", () => {
  for (const p of capturedPairs()) {
    assertEquals(p.req.length, OAP_HDR_LEN);
    assertEquals(p.res.length, OAP_HDR_LEN + OAP_REQ_HASH_LEN);
    const q = unwrap(decodeOap(p.req, false));
    const r = unwrap(decodeOap(p.res, true));
    assertEquals(q.timestampNs, tsOf(p.reqFrame));
    assertEquals(r.timestampNs, tsOf(p.replyFrame));
    const idField = p.reqFrame.fields.find((f) => f.desc.startsWith("OAP id"))!;
    assertEquals(idField.bytes, q.id);
    const logged = idField.desc.match(/logged as \[([0-9a-f]+)\]/)![1]!;
    assert(toHex(q.id).startsWith(logged), p.file);
    assertEquals(r.id, q.id);
    for (const h of [q, r]) {
      assertEquals([h.cipherNid, h.kdfNid, h.mdNid, h.kexFlags], [0, 0, 0, 0]);
      assertEquals([
        h.crt.length,
        h.kex.length,
        h.data.length,
        h.signature.length,
      ], [0, 0, 0, 0]);
    }
    assertEquals(q.reqHash.length, 0);
    assertEquals(
      r.reqHash,
      new Uint8Array(createHash("sha384").update(p.req).digest()),
    );
    assertEquals(encodeOap(q), p.req);
    assertEquals(encodeOap(r), p.res);
    assert(checkOapCrypto(q).ok);
    assert(checkOapRequest(q, q.timestampNs + 5_000_000n).ok);
  }
});

Deno.test("verifyOapResponse accepts each captured pair", () => {
  for (const p of capturedPairs()) unwrap(verifyOapResponse(p.req, p.res));
});

Deno.test("verifyOapResponse fails when any request byte or any non-timestamp response byte is flipped", () => {
  for (const p of capturedPairs()) {
    for (let i = 0; i < p.req.length; i++) {
      const q = p.req.slice();
      q[i]! ^= 0x01;
      const r = verifyOapResponse(q, p.res);
      assert(!r.ok, `${p.file}: request byte ${i} flipped still verifies`);
    }
    for (let i = 0; i < p.res.length; i++) {
      for (const bit of [0x01, 0x80]) {
        const s = p.res.slice();
        s[i]! ^= bit;
        const r = verifyOapResponse(p.req, s);
        // the response's own timestamp (bytes 16..23) is not authenticated
        assertEquals(
          r.ok,
          i >= 16 && i < 24,
          `${p.file}: response byte ${i} ^ ${bit}`,
        );
      }
    }
  }
  const p = capturedPairs()[0]!;
  const idq = p.req.slice();
  idq[15]! ^= 0xff;
  const e1 = verifyOapResponse(idq, p.res);
  assert(!e1.ok);
  assertMatch(
    e1.error,
    /^OAP response id [0-9a-f]{32} does not match request id [0-9a-f]{32}$/,
  );
  const tsq = p.req.slice();
  tsq[23]! ^= 1;
  const e2 = verifyOapResponse(tsq, p.res);
  assert(!e2.ok);
  assertMatch(e2.error, /request hash \(sha384\) does not match the request/);
  const e3 = verifyOapResponse(p.req, p.res.subarray(0, 83));
  assert(!e3.ok);
  assertMatch(
    e3.error,
    /^bad response: OAP response: request hash \(sha384\) length 48 exceeds the 47 bytes left$/,
  );
  const e4 = verifyOapResponse(p.req, p.res.subarray(0, 35));
  assert(!e4.ok);
  assertMatch(e4.error, /^bad response: OAP response too short: 35 bytes/);
  // the response to another request does not verify
  const other = capturedPairs()[1]!;
  assert(!verifyOapResponse(p.req, other.res).ok);
});

Deno.test("buildOapResponse reproduces the captured responses byte for byte", () => {
  for (const p of capturedPairs()) {
    const built = unwrap(
      buildOapResponse(p.req, { nowNs: tsOf(p.replyFrame) }),
    );
    assertEquals(built, p.res, p.file);
    // with a fresh timestamp only bytes 16..23 differ
    const fresh = unwrap(buildOapResponse(p.req));
    assertEquals(fresh.length, 84);
    assertEquals(fresh.subarray(0, 16), p.res.subarray(0, 16));
    assertEquals(fresh.subarray(24), p.res.subarray(24));
    unwrap(verifyOapResponse(p.req, fresh));
  }
  const bad = buildOapResponse(new Uint8Array(20));
  assert(!bad.ok);
  assertMatch(bad.error, /OAP request too short: 20 bytes/);
});

Deno.test("buildOapRequest: 36 bytes, random id, wall-clock timestamp, zeros", () => {
  const before = wallClockNs();
  const a = buildOapRequest();
  const b = buildOapRequest();
  const after = wallClockNs();
  assertEquals(a.length, 36);
  assertNotEquals(a.subarray(0, 16), b.subarray(0, 16));
  const h = unwrap(decodeOap(a, false));
  assert(
    h.timestampNs >= before - 1_000_000n && h.timestampNs <= after + 1_000_000n,
  );
  assertEquals(a.subarray(24), new Uint8Array(12));
  const id = new Uint8Array(16).map((_, i) => i);
  const c = buildOapRequest({ id, nowNs: 0x0102030405060708n });
  assertEquals(c.subarray(0, 16), id);
  assertEquals(c.subarray(16, 24), new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]));
  assertThrows(
    () => buildOapRequest({ id: new Uint8Array(15) }),
    /id is 15 bytes/,
  );
});

Deno.test("other digests: the request's md nid chooses the hash", () => {
  for (
    const [nid, alg, len] of [[NID_SHA256, "sha256", 32], [
      NID_SHA512,
      "sha512",
      64,
    ]] as const
  ) {
    const req = encodeOap({ ...header(), mdNid: nid });
    const res = unwrap(buildOapResponse(req, { nowNs: NOW }));
    assertEquals(res.length, 36 + len);
    const h = unwrap(decodeOap(res, true));
    assertEquals(h.mdNid, nid);
    assertEquals(
      h.reqHash,
      new Uint8Array(createHash(alg).update(req).digest()),
    );
    unwrap(verifyOapResponse(req, res));
  }
  const req = encodeOap({ ...header(), mdNid: 1 });
  const r = buildOapResponse(req);
  assert(!r.ok);
  assertMatch(r.error, /unsupported OAP md nid 1/);
  const c = checkOapCrypto(unwrap(decodeOap(req, false)));
  assert(!c.ok);
  assertMatch(c.error, /md nid 1/);
});

Deno.test("decodeOap: certificate, kex and data parts, and oversized length fields", () => {
  const full: OapHeader = {
    ...header(),
    crt: new Uint8Array([1, 2, 3]),
    kexFlags: KEX_FLAG_RAW_KEY | KEX_FLAG_CLIENT_ENCAP,
    kex: new Uint8Array([4, 5]),
    data: new Uint8Array([6]),
    signature: new Uint8Array([8, 9]),
  };
  const buf = encodeOap(full);
  assertEquals(buf.length, 36 + 3 + 2 + 1 + 2);
  assertEquals([buf[32], buf[33]], [0xc0, 0x02]);
  assertEquals(unwrap(decodeOap(buf, false)), full);
  const res = encodeOap({ ...full, reqHash: new Uint8Array(48).fill(0xaa) });
  const d = unwrap(decodeOap(res, true));
  assertEquals(d.reqHash, new Uint8Array(48).fill(0xaa));
  assertEquals(d.signature, new Uint8Array([8, 9]));

  const base = buildOapRequest({ nowNs: NOW });
  const cases: [number, string][] = [[30, "certificate length"], [
    32,
    "key exchange length",
  ], [34, "data length"]];
  for (const [off, name] of cases) {
    for (const len of [1, 0x3fff, 0xffff]) {
      const b = base.slice();
      new DataView(b.buffer).setUint16(off, len);
      const want = off === 32 ? len & 0x3fff : len;
      const r = decodeOap(b, false);
      assert(!r.ok, `${name} ${len}`);
      assertEquals(
        r.error,
        `OAP request: ${name} ${want} exceeds the 0 bytes left`,
      );
    }
  }
  // kex flags alone are no length
  const f = base.slice();
  f[32] = 0xc0;
  assertEquals(unwrap(decodeOap(f, false)).kexFlags, 0xc000);
  // every prefix of a full header with parts: an error until the request
  // hash is complete, then a parse with a shorter signature
  for (let n = 0; n < res.length; n++) {
    const r = decodeOap(res.subarray(0, n), true);
    if (n < 90) assert(!r.ok, `prefix ${n}`);
    else assertEquals(unwrap(r).signature.length, n - 90);
  }
  assertThrows(
    () => encodeOap({ ...full, kex: new Uint8Array(0x4000) }),
    /key exchange length/,
  );
  assertThrows(() => encodeOap({ ...full, kexFlags: 1 }), /kex flags/);
});

Deno.test("checkOapRequest refuses unsupported crypto and stale or future timestamps", () => {
  const ok = header();
  assert(checkOapRequest(ok, NOW).ok);
  assertEquals(ECRYPT_UNSUPPORTED, -1008);
  const bad: [Partial<OapHeader>, RegExp][] = [
    [{ cipherNid: 1 }, /cipher nid 1: not supported/],
    [{ kdfNid: 2 }, /kdf nid 2: not supported/],
    [{ crt: new Uint8Array(5) }, /5-byte certificate: not supported/],
    [
      { kex: new Uint8Array(3) },
      /key exchange \(3 bytes, flags 0x0\): not supported/,
    ],
    [
      { kexFlags: KEX_FLAG_CLIENT_ENCAP },
      /key exchange \(0 bytes, flags 0x4000\)/,
    ],
    [{ signature: new Uint8Array(1) }, /1-byte signature: not supported/],
  ];
  for (const [over, re] of bad) {
    const r = checkOapRequest(header(over), NOW);
    assert(!r.ok);
    assertMatch(r.error, re);
    assert(!checkOapCrypto(header(over)).ok);
  }
  const fut = checkOapRequest(ok, NOW - 101_000_000n);
  assert(!fut.ok);
  assertMatch(fut.error, /101\.000 ms in the future \(limit 100\.000 ms\)/);
  const old = checkOapRequest(ok, NOW + 21_000_000_000n);
  assert(!old.ok);
  assertMatch(old.error, /21000\.000 ms old \(limit 20000\.000 ms\)/);
  assert(checkOapTimestamp(NOW, NOW - 100_000_000n).ok);
  assert(checkOapTimestamp(NOW, NOW + 20_000_000_000n).ok);
});

Deno.test("ReplayGuard: fresh ok, replay refused, future and stale refused", () => {
  const g = new ReplayGuard();
  const req = header();
  unwrap(g.check(req, NOW));
  const again = g.check(req, NOW + 1_000_000_000n);
  assert(!again.ok);
  assertMatch(
    again.error,
    /^replay: OAP request (07){16} with timestamp \d+ was seen before$/,
  );
  // same id, other timestamp: a different request
  unwrap(g.check(header({ timestampNs: NOW + 1n }), NOW));
  // other id, same timestamp
  unwrap(g.check(header({ id: new Uint8Array(16).fill(8) }), NOW));
  const fut = g.check(
    header({ id: new Uint8Array(16).fill(9), timestampNs: NOW + 101_000_000n }),
    NOW,
  );
  assert(!fut.ok);
  assertMatch(fut.error, /in the future/);
  unwrap(
    g.check(
      header({
        id: new Uint8Array(16).fill(9),
        timestampNs: NOW + 100_000_000n,
      }),
      NOW,
    ),
  );
  const old = g.check(
    header({
      id: new Uint8Array(16).fill(10),
      timestampNs: NOW - 21_000_000_000n,
    }),
    NOW,
  );
  assert(!old.ok);
  assertMatch(old.error, /old/);
  // a refused request is not remembered
  unwrap(
    g.check(header({ id: new Uint8Array(16).fill(10), timestampNs: NOW }), NOW),
  );
  // the captured requests are fresh at their reply's time, and replays after
  for (const p of capturedPairs()) {
    const q = unwrap(decodeOap(p.req, false));
    unwrap(g.check(q, tsOf(p.replyFrame)));
    assert(!g.check(q, tsOf(p.replyFrame) + 1n).ok);
  }
});

Deno.test("ReplayGuard: memory stays bounded by expiry and by the cap", () => {
  const g = new ReplayGuard(5_000_000_000n);
  const id = new Uint8Array(16);
  const view = new DataView(id.buffer);
  const base = header();
  // 1000 requests a second for 30 s: at most ~5 s worth are kept
  let now = NOW;
  for (let i = 0; i < 30_000; i++) {
    view.setUint32(0, i);
    now += 1_000_000n;
    unwrap(g.check({ ...base, id, timestampNs: now }, now));
  }
  assert(g.size <= 5_001, `size ${g.size}`);
  assert(g.size >= 4_900, `size ${g.size}`);
  // an old entry that expired cannot be replayed: it is too old
  view.setUint32(0, 0);
  assert(!g.check(header({ id, timestampNs: NOW + 1_000_000n }), now).ok);

  const small = new ReplayGuard(20_000_000_000n, 100_000_000n, 100);
  for (let i = 0; i < 1000; i++) {
    view.setUint32(0, i);
    unwrap(small.check(header({ id, timestampNs: NOW }), NOW));
  }
  assertEquals(small.size, 100);
  // the newest are kept
  view.setUint32(0, 999);
  assert(!small.check(header({ id, timestampNs: NOW }), NOW).ok);
  assertThrows(() => new ReplayGuard(1n, 1n, 0), /maxEntries/);
});

Deno.test("fuzz: random OAP bytes never make decodeOap or verifyOapResponse throw", () => {
  const next = xorshift32(0x0a9);
  const p = capturedPairs()[0]!;
  const g = new ReplayGuard();
  for (let i = 0; i < 4000; i++) {
    const len = next() % 140;
    const b = new Uint8Array(len);
    for (let j = 0; j < len; j++) b[j] = next() & 0xff;
    if (i % 2 === 0 && len >= 36) b.fill(0, 24, 24 + (next() % 13)); // small lengths, deeper paths
    for (const isResponse of [false, true]) {
      const r = decodeOap(b, isResponse);
      if (r.ok) {
        assertEquals(encodeOap(r.value), b);
        checkOapRequest(r.value, NOW);
        g.check(r.value, r.value.timestampNs);
      } else {
        assert(r.error.length > 0);
      }
    }
    verifyOapResponse(p.req, b);
    verifyOapResponse(b, p.res);
    buildOapResponse(b);
  }
});
