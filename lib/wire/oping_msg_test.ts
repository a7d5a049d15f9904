import {
  assert,
  assertEquals,
  assertMatch,
  assertThrows,
  unwrap,
} from "../../tests/assert.ts";
import { annotated, loadVectors } from "../../tests/vectors.ts";
import {
  checkOpingSize,
  decodeOping,
  ECHO_REPLY,
  ECHO_REQUEST,
  encodeOping,
  newOpingPacket,
  OPING_HDR_LEN,
  OPING_MAX_SIZE,
  OPING_MIN_SIZE,
  setOpingType,
} from "./oping_msg.ts";

Deno.test("constants", () => {
  assertEquals([ECHO_REQUEST, ECHO_REPLY], [0, 1]);
  assertEquals([OPING_MIN_SIZE, OPING_MAX_SIZE, OPING_HDR_LEN], [64, 1500, 24]);
});

Deno.test("captured oping messages decode to the annotations and re-encode identically", () => {
  let n = 0;
  for (const file of ["c023-oping-raw.txt", "c023-keepalive.txt"]) {
    for (const d of loadVectors(file)) {
      if (d.note !== "data frame") continue;
      const payload = d.bytes.subarray(4);
      assertEquals(payload.length, 64);
      const m = unwrap(decodeOping(payload));
      const type = annotated(d, "oping type");
      assertEquals(m.type, type === "ECHO_REQUEST" ? ECHO_REQUEST : ECHO_REPLY);
      assertEquals(m.id, Number(annotated(d, "oping id")));
      assertEquals(m.sec, BigInt(annotated(d, "oping tv_sec")));
      assertEquals(m.nsec, BigInt(annotated(d, "oping tv_nsec")));
      const pkt = newOpingPacket(64);
      encodeOping(pkt, m);
      assertEquals(pkt, payload, `${file} #${d.index}`);
      n++;
    }
  }
  assertEquals(n, 5);
  const first = loadVectors("c023-oping-raw.txt")[2]!.bytes.subarray(4);
  assertEquals(unwrap(decodeOping(first)), {
    type: 0,
    id: 0,
    sec: 1731n,
    nsec: 816270469n,
  });
});

Deno.test("the echo server's reply is the request with type 1, every other byte echoed", () => {
  const v = loadVectors("c023-oping-raw.txt");
  for (const [req, rep] of [[v[2]!, v[3]!], [v[4]!, v[5]!]] as const) {
    const echo = req.bytes.slice(4);
    setOpingType(echo, ECHO_REPLY);
    assertEquals(echo, rep.bytes.subarray(4));
  }
  assertThrows(() => setOpingType(new Uint8Array(23), 1), /shorter than 24/);
});

Deno.test("encodeOping writes little-endian times; padding is the caller's", () => {
  const pkt = newOpingPacket(100);
  assertEquals(pkt, new Uint8Array(100));
  pkt[50] = 9;
  encodeOping(pkt, {
    type: ECHO_REQUEST,
    id: 0x01020304,
    sec: 0x1122334455667788n,
    nsec: 999_999_999n,
  });
  assertEquals(Array.from(pkt.subarray(0, 16)), [
    0,
    0,
    0,
    0,
    1,
    2,
    3,
    4,
    0x88,
    0x77,
    0x66,
    0x55,
    0x44,
    0x33,
    0x22,
    0x11,
  ]);
  assertEquals(pkt[50], 9);
  // a buffer at an offset
  const big = new Uint8Array(70);
  encodeOping(big.subarray(6), { type: ECHO_REPLY, id: 7, sec: 1n, nsec: 2n });
  assertEquals(unwrap(decodeOping(big.subarray(6))), {
    type: 1,
    id: 7,
    sec: 1n,
    nsec: 2n,
  });
  assertThrows(
    () =>
      encodeOping(new Uint8Array(23), { type: 0, id: 0, sec: 0n, nsec: 0n }),
    /shorter/,
  );
  assertThrows(
    () => encodeOping(pkt, { type: 0, id: -1, sec: 0n, nsec: 0n }),
    /id -1/,
  );
  assertThrows(
    () => encodeOping(pkt, { type: 0, id: 0, sec: 2n ** 64n, nsec: 0n }),
    /sec/,
  );
});

Deno.test("packet sizes 64..1500", () => {
  assertEquals(newOpingPacket().length, 64);
  assertEquals(newOpingPacket(1500).length, 1500);
  assertThrows(() => newOpingPacket(63), /64\.\.1500/);
  assertThrows(() => newOpingPacket(1501), /64\.\.1500/);
  assert(checkOpingSize(64).ok && checkOpingSize(1500).ok);
  assert(!checkOpingSize(1.5).ok);
});

Deno.test("decodeOping rejects short buffers and unknown types, never throws", () => {
  const payload = loadVectors("c023-oping-raw.txt")[2]!.bytes.subarray(4);
  for (let n = 0; n < OPING_HDR_LEN; n++) {
    const r = decodeOping(payload.subarray(0, n));
    assert(!r.ok);
    assertEquals(r.error, `oping message too short: ${n} bytes, header is 24`);
  }
  for (let n = OPING_HDR_LEN; n <= payload.length; n++) {
    assert(decodeOping(payload.subarray(0, n)).ok);
  }
  const b = payload.slice();
  b[3] = 2;
  const r = decodeOping(b);
  assert(!r.ok);
  assertMatch(r.error, /unknown oping message type 2/);
  let x = 12345;
  for (let i = 0; i < 3000; i++) {
    const len = i % 80;
    const buf = new Uint8Array(len);
    for (let j = 0; j < len; j++) {
      x = (x * 1103515245 + 12345) >>> 0;
      buf[j] = x >>> 24;
    }
    if (i % 2 === 0 && len >= 4) buf.fill(0, 0, 3);
    const d = decodeOping(buf);
    if (d.ok) {
      const again = new Uint8Array(len);
      encodeOping(again, d.value);
      assertEquals(again.subarray(0, 24), buf.subarray(0, 24));
    }
  }
});
