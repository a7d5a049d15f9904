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
import { decodeCep } from "./cep.ts";
import {
  checkUnicastConfig,
  CONG_NONE,
  decodeEnrollAck,
  decodeEnrollReq,
  decodeEnrollResp,
  decodeIpcpConfig,
  defaultLayerConfig,
  encodeEnrollAck,
  encodeEnrollReq,
  encodeEnrollResp,
  encodeIpcpConfig,
  ENROLL_MAX_LEN,
  type EnrollResp,
  hashLength,
  type IpcpConfig,
  LS_ECMP,
} from "./enroll.ts";
import { fuzzDecoder } from "./fuzz.ts";

const PCAPS = ["c023-unicast-2node.pcap", "c023-unicast-3node.pcap"];
const ID = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);

function hex(s: string): Uint8Array {
  return new Uint8Array(s.trim().split(/\s+/).map((b) => parseInt(b, 16)));
}

/** The default configuration of layer "uni" with `peer` as the DHT peer. */
function uniWithPeer(peer: bigint): IpcpConfig {
  const c = defaultLayerConfig("uni");
  c.unicast!.dir.dht!.peer = peer;
  return c;
}

Deno.test("golden: every annotated enrollment message decodes to its annotations and re-encodes byte for byte", () => {
  const ds = loadCapture("c023-unicast-enroll.txt");
  const kinds = [
    { note: "OEP enroll_req", root: "enroll_req", type: "enroll_req_msg" },
    { note: "OEP enroll_resp", root: "enroll_resp", type: "enroll_resp_msg" },
    { note: "OEP enroll_ack", root: "enroll_ack", type: "enroll_ack_msg" },
  ] as const;
  const compared: number[] = [];
  for (const k of kinds) {
    const got = withNote(ds, k.note);
    assertEquals(got.length, 2, k.note);
    for (const d of got) {
      const sdu = d.bytes.subarray(4);
      const fs = fieldsUnder(d, k.note);
      assertEquals(fs[0]!.start, 4);
      assert(d.notes.some((n) => n.includes(`${k.type}, ${sdu.length} B`)));
      const anns = pbAnnotations(fs, k.root);
      let again: Uint8Array;
      let n: number;
      if (k.root === "enroll_req") {
        const m = unwrap(decodeEnrollReq(sdu));
        n = checkPbAnnotations(m, anns, k.type);
        again = encodeEnrollReq(m);
      } else if (k.root === "enroll_ack") {
        const m = unwrap(decodeEnrollAck(sdu));
        n = checkPbAnnotations(m, anns, k.type);
        assertEquals(m.result, 0);
        again = encodeEnrollAck(m);
      } else {
        const m = unwrap(decodeEnrollResp(sdu));
        n = checkPbAnnotations(m, anns, k.type);
        again = encodeEnrollResp(m);
        // the enroller's configuration is the default one, its address as
        // the DHT peer; built from scratch it encodes to C's bytes
        const peer = m.conf!.unicast!.dir.dht!.peer;
        assertEquals(m.conf, uniWithPeer(peer));
        const own: EnrollResp = {
          id: m.id,
          tSec: m.tSec,
          tNsec: m.tNsec,
          response: 0,
          conf: uniWithPeer(peer),
        };
        assertEquals(hexOf(encodeEnrollResp(own)), hexOf(sdu));
        const layer = unwrap(checkUnicastConfig(m.conf!));
        assertEquals([layer.name, layer.hashLen], ["uni", 32]);
      }
      assertEquals(hexOf(again), hexOf(sdu), `#${d.index} ${k.note}`);
      compared.push(n);
    }
  }
  // id; id; id t_sec t_nsec response + 20 config values; id result
  assertEquals(compared, [1, 1, 24, 24, 2, 2]);
});

Deno.test("golden: every enrollment of both pcaps; ids agree, the DHT peer is the enroller's address", () => {
  let enrollments = 0;
  for (const pcap of PCAPS) {
    const sdus = pcapSdus(pcap);
    // each node's address, from its mgmt and dt CEPs
    const addrOf = new Map<string, bigint>();
    for (const s of sdus) {
      if (s.kind === "cep" && s.comp !== "enrollment") {
        addrOf.set(s.src, unwrap(decodeCep(s.sdu)).address);
      }
    }
    const msgs = sdus.filter((s) =>
      s.comp === "enrollment" && s.kind === "msg"
    );
    for (let i = 0; i < msgs.length; i += 3) {
      const [req, resp, ack] = [msgs[i]!, msgs[i + 1]!, msgs[i + 2]!];
      assert(req.fromAllocator && !resp.fromAllocator && ack.fromAllocator);
      const q = unwrap(decodeEnrollReq(req.sdu));
      const r = unwrap(decodeEnrollResp(resp.sdu));
      const a = unwrap(decodeEnrollAck(ack.sdu));
      assertEquals(hexOf(encodeEnrollReq(q)), hexOf(req.sdu));
      assertEquals(hexOf(encodeEnrollResp(r)), hexOf(resp.sdu));
      assertEquals(hexOf(encodeEnrollAck(a)), hexOf(ack.sdu));
      assertEquals([hexOf(r.id), hexOf(a.id)], [hexOf(q.id), hexOf(q.id)]);
      assertEquals([r.response, a.result], [0, 0]);
      assertEquals(r.conf, uniWithPeer(addrOf.get(resp.src)!));
      assertEquals([req.sdu.length, resp.sdu.length, ack.sdu.length], [
        10,
        91,
        12,
      ]);
      enrollments++;
    }
  }
  // B with A; then B with A and C with B
  assertEquals(enrollments, 3);
});

Deno.test("examples: request and ack with id 01..08, the 87-byte response", () => {
  const req = hex("0a 08 01 02 03 04 05 06 07 08");
  assertEquals(hexOf(encodeEnrollReq({ id: ID })), hexOf(req));
  assertEquals(unwrap(decodeEnrollReq(req)), { id: ID });
  const ack = hex("0a 08 01 02 03 04 05 06 07 08 10 00");
  assertEquals(hexOf(encodeEnrollAck({ id: ID, result: 0 })), hexOf(ack));
  assertEquals(unwrap(decodeEnrollAck(ack)), { id: ID, result: 0 });
  const resp = hex(
    `0a 08 01 02 03 04 05 06 07 08 10 80 e2 cf aa 06 18 05 20 00 2a 41
    0a 07 0a 03 75 6e 69 10 01 10 01 1a 34 0a 14 08 04 10 08 18 3c 22 0c 08 00
    12 08 08 00 10 04 18 0f 20 3c 12 18 08 00 12 14 08 03 10 08 18 80 a3 05 20
    84 07 28 84 07 30 f8 ac d1 91 01 18 00 20 01`,
  );
  assertEquals(resp.length, 87);
  const r: EnrollResp = {
    id: ID,
    tSec: 1700000000n,
    tNsec: 5,
    response: 0,
    conf: uniWithPeer(0x12345678n),
  };
  assertEquals(hexOf(encodeEnrollResp(r)), hexOf(resp));
  assertEquals(unwrap(decodeEnrollResp(resp)), r);
});

Deno.test("what the captures lack: a refusal without conf, a failed ack, negative and large numbers", () => {
  const refusal: EnrollResp = { id: ID, tSec: -1n, tNsec: -5, response: -13 };
  const b = encodeEnrollResp(refusal);
  // every required field present, negative int32 and int64 as 10-byte varints
  assertEquals(
    hexOf(b),
    hexOf(hex(`0a 08 01 02 03 04 05 06 07 08
      10 ff ff ff ff ff ff ff ff ff 01 18 fb ff ff ff ff ff ff ff ff 01
      20 f3 ff ff ff ff ff ff ff ff 01`)),
  );
  assertEquals(unwrap(decodeEnrollResp(b)), refusal);
  const failed = { id: ID, result: -1 };
  assertEquals(unwrap(decodeEnrollAck(encodeEnrollAck(failed))), failed);
  const big: EnrollResp = {
    id: ID,
    tSec: (1n << 63n) - 1n,
    tNsec: 999_999_999,
    response: 0,
    conf: uniWithPeer((1n << 64n) - 1n),
  };
  assertEquals(unwrap(decodeEnrollResp(encodeEnrollResp(big))), big);
});

Deno.test("the layer configuration alone round-trips; 255-byte names and no more", () => {
  const c = defaultLayerConfig("n".repeat(255));
  assertEquals(unwrap(decodeIpcpConfig(encodeIpcpConfig(c))), c);
  assertThrows(
    () => encodeIpcpConfig(defaultLayerConfig("n".repeat(256))),
    /exceeds 255/,
  );
  const plain: IpcpConfig = {
    layerInfo: { name: "x", dirHashAlgo: 0 },
    ipcpType: 7,
  };
  assertEquals(hexOf(encodeIpcpConfig(plain)), "0a050a0178100010" + "07");
  assertEquals(unwrap(decodeIpcpConfig(encodeIpcpConfig(plain))), plain);
});

Deno.test("decoders: ids of other lengths, truncations, missing fields, oversized messages", () => {
  for (const len of [0, 7, 9, 32]) {
    const id = new Uint8Array(len);
    const q = decodeEnrollReq(new Uint8Array([0x0a, len, ...id]));
    assert(!q.ok && q.error.includes(`${len} bytes`), JSON.stringify(q));
    const a = decodeEnrollAck(new Uint8Array([0x0a, len, ...id, 0x10, 0]));
    assert(!a.ok);
    assertThrows(() => encodeEnrollReq({ id }), /enrollment id/);
  }
  const resp = encodeEnrollResp({
    id: ID,
    tSec: 1n,
    tNsec: 2,
    response: 0,
    conf: uniWithPeer(1n),
  });
  for (let i = 0; i < resp.length; i++) {
    // 16 bytes end after field 4: a response without the optional conf
    const r = decodeEnrollResp(resp.subarray(0, i));
    assertEquals(r.ok, i === 16, `prefix of ${i}`);
  }
  // no response field
  const noResponse = decodeEnrollResp(
    hex("0a 08 01 02 03 04 05 06 07 08 10 01 18 01"),
  );
  assert(!noResponse.ok && noResponse.error.includes("response"));
  const huge = new Uint8Array(ENROLL_MAX_LEN + 1);
  assert(!decodeEnrollResp(huge).ok);
  assert(!decodeEnrollReq(huge).ok);
  assert(!decodeEnrollAck(huge).ok);
});

Deno.test("checkUnicastConfig: what a member can run and what it refuses", () => {
  const ok = unwrap(checkUnicastConfig(defaultLayerConfig("uni")));
  assertEquals(ok.uni.dt.routing.ls.tUpdate, 15);
  assertEquals(ok.uni.dir.dht.k, 8);
  for (const [algo, len] of [[0, 28], [1, 32], [2, 48], [3, 64]]) {
    assertEquals(hashLength(algo!), len);
    const c = defaultLayerConfig("uni");
    c.layerInfo.dirHashAlgo = algo!;
    assertEquals(unwrap(checkUnicastConfig(c)).hashLen, len);
  }
  const variants: [string, (c: IpcpConfig) => void, boolean][] = [
    ["ecmp", (c) => c.unicast!.dt.routing.ls!.pol = LS_ECMP, true],
    ["no congestion", (c) => c.unicast!.congAvoid = CONG_NONE, true],
    ["udp type", (c) => c.ipcpType = 5, false],
    ["hash 4", (c) => c.layerInfo.dirHashAlgo = 4, false],
    ["no unicast", (c) => delete c.unicast, false],
    ["addr 8", (c) => c.unicast!.dt.addrSize = 8, false],
    ["eid 4", (c) => c.unicast!.dt.eidSize = 4, false],
    ["ttl 0", (c) => c.unicast!.dt.maxTtl = 0, false],
    ["ttl 256", (c) => c.unicast!.dt.maxTtl = 256, false],
    ["no ls", (c) => delete c.unicast!.dt.routing.ls, false],
    ["routing 1", (c) => c.unicast!.dt.routing.pol = 1, false],
    ["ls 3", (c) => c.unicast!.dt.routing.ls!.pol = 3, false],
    ["no dht", (c) => delete c.unicast!.dir.dht, false],
    ["dir 1", (c) => c.unicast!.dir.pol = 1, false],
    ["addr auth 1", (c) => c.unicast!.addrAuthType = 1, false],
    ["congestion 2", (c) => c.unicast!.congAvoid = 2, false],
  ];
  for (const [name, change, accepted] of variants) {
    const c = defaultLayerConfig("uni");
    change(c);
    assertEquals(checkUnicastConfig(c).ok, accepted, name);
  }
});

Deno.test("fuzz: the enrollment decoders give an error or a valid message, never a throw", () => {
  const sdus = PCAPS.flatMap((p) =>
    pcapSdus(p).filter((s) => s.comp === "enrollment" && s.kind === "msg")
  ).map((s) => s.sdu.slice());
  const reqs = sdus.filter((s) => s.length === 10);
  const resps = sdus.filter((s) => s.length === 91);
  const acks = sdus.filter((s) => s.length === 12);
  const configs = resps.map((r) => r.slice(26));
  const all = [
    fuzzDecoder({
      name: "decodeEnrollReq",
      corpus: sdus,
      decode: decodeEnrollReq,
      encode: encodeEnrollReq,
    }),
    fuzzDecoder({
      name: "decodeEnrollResp",
      corpus: resps,
      decode: decodeEnrollResp,
      encode: encodeEnrollResp,
    }),
    fuzzDecoder({
      name: "decodeEnrollAck",
      corpus: [...acks, ...reqs],
      decode: decodeEnrollAck,
      encode: encodeEnrollAck,
    }),
    fuzzDecoder({
      name: "decodeIpcpConfig",
      corpus: configs,
      decode: decodeIpcpConfig,
      encode: encodeIpcpConfig,
    }),
  ];
  for (const s of all) assert(s.mutantsDecoded > 100, JSON.stringify(all));
});
