/**
 * The shared command ring and the data path's record codec: records come
 * out in order, a full ring refuses instead of overwriting, the counters
 * wrap at 2^32, and every command survives its record.
 */
import { assert, assertEquals, assertThrows } from "../../tests/assert.ts";
import { RECORD_BYTES, ringBuffer, RingReader, RingWriter } from "./ring.ts";
import {
  decodeCommand,
  type DpCommand,
  encodeCommand,
  MAX_ADDR_BYTES,
  Op,
} from "./dp_msg.ts";

function drainAll(r: RingReader): number[] {
  const out: number[] = [];
  r.drain((v, at) => out.push(v.getUint32(at)));
  return out;
}

Deno.test("ring: records in order; a full ring refuses; drained slots are free again", () => {
  const buf = ringBuffer(8);
  const w = new RingWriter(buf);
  const r = new RingReader(buf);
  assertEquals(w.capacity, 8);
  for (let i = 0; i < 8; i++) {
    assert(w.write((v, at) => v.setUint32(at, i)), `record ${i}`);
  }
  assertEquals(w.pending, 8);
  assertEquals(w.write((v, at) => v.setUint32(at, 99)), false);
  assertEquals(drainAll(r), [0, 1, 2, 3, 4, 5, 6, 7]);
  assertEquals(r.pending, 0);
  assertEquals(drainAll(r), []);
  // Round the end of the buffer, many times.
  const seen: number[] = [];
  for (let i = 0; i < 100; i++) {
    assert(w.write((v, at) => v.setUint32(at, 1000 + i)));
    if (i % 3 === 2) seen.push(...drainAll(r));
  }
  seen.push(...drainAll(r));
  assertEquals(seen, Array.from({ length: 100 }, (_, i) => 1000 + i));
});

Deno.test("ring: a record is zeroed before it is filled", () => {
  const buf = ringBuffer(2);
  const w = new RingWriter(buf);
  const r = new RingReader(buf);
  w.write((v, at) => {
    for (let k = 0; k < RECORD_BYTES; k++) v.setUint8(at + k, 0xff);
  });
  drainAll(r);
  w.write(() => {});
  w.write(() => {});
  w.write(() => {}); // full: not written
  let sum = 0;
  r.drain((v, at) => {
    for (let k = 0; k < RECORD_BYTES; k++) sum += v.getUint8(at + k);
  });
  assertEquals(sum, 0);
});

Deno.test("ring: the counters wrap at 2^32", () => {
  const buf = ringBuffer(4);
  // Both counters just below the wrap, as after 2^32 - 2 records.
  const counters = new Int32Array(buf, 0, 2);
  counters[0] = -2;
  counters[1] = -2;
  const w = new RingWriter(buf);
  const r = new RingReader(buf);
  for (let i = 0; i < 4; i++) assert(w.write((v, at) => v.setUint32(at, i)));
  assertEquals(w.write(() => {}), false);
  assertEquals(counters[0], 2);
  assertEquals(drainAll(r), [0, 1, 2, 3]);
  assertEquals(counters[1], 2);
});

Deno.test("ring: the size must be a power of two", () => {
  for (const n of [0, 1, 3, 100, 1 << 21]) {
    assertThrows(() => ringBuffer(n));
  }
  assertThrows(() => new RingReader(new SharedArrayBuffer(100)));
});

Deno.test("dp_msg: every command comes back from its record", () => {
  const commands: DpCommand[] = [
    { op: Op.Socket, fd: 7 },
    {
      op: Op.Add,
      eid: 0xffff_fff0,
      peerEid: 64,
      allocated: true,
      token: new Uint8Array(16).map((_, i) => i + 1),
      addr: new Uint8Array(MAX_ADDR_BYTES).map((_, i) => 200 - i),
    },
    {
      op: Op.Add,
      eid: 65,
      peerEid: 0,
      allocated: false,
      token: new Uint8Array(16),
      addr: new Uint8Array([2, 0, 13, 107, 127, 0, 0, 1]),
    },
    { op: Op.Allocated, eid: 65, peerEid: 0x8000_0000 },
    { op: Op.Remove, eid: 65 },
    { op: Op.Stop },
  ];
  const buf = ringBuffer(8);
  const w = new RingWriter(buf);
  for (const c of commands) {
    assert(w.write((v, at) => encodeCommand(v, at, c)));
  }
  const back: (DpCommand | undefined)[] = [];
  new RingReader(buf).drain((v, at) => back.push(decodeCommand(v, at)));
  assertEquals(back, commands);
  // An unknown op is not a command; bad sizes are refused when written.
  const v = new DataView(new ArrayBuffer(RECORD_BYTES));
  v.setUint8(0, 42);
  assertEquals(decodeCommand(v, 0), undefined);
  const add = commands[1]!;
  assert(add.op === Op.Add);
  assertThrows(() =>
    encodeCommand(v, 0, { ...add, addr: new Uint8Array(MAX_ADDR_BYTES + 1) })
  );
  assertThrows(() => encodeCommand(v, 0, { ...add, token: new Uint8Array(8) }));
});
