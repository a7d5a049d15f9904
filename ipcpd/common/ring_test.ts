/**
 * The shared command ring and the data path's record codec: records come
 * out in order, a full ring refuses instead of overwriting, the counters
 * wrap at 2^32, and every command survives its record.
 */
import { assert, assertEquals, assertThrows } from "../../tests/assert.ts";
import {
  RECORD_BYTES,
  recordsFor,
  ringBuffer,
  RingReader,
  RingWriter,
} from "./ring.ts";
import {
  CommandReader,
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
    { op: Op.N1Add, id: 0xffff_ffff, fd: 12 },
    { op: Op.N1Dt, id: 7, qc: 2 },
    { op: Op.N1Remove, id: 7 },
    { op: Op.N1Write, id: 9 },
    { op: Op.Tables },
  ];
  const buf = ringBuffer(16);
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

Deno.test("ring: a record with bytes is written whole or not at all, round the end of the buffer", () => {
  const buf = ringBuffer(8);
  const w = new RingWriter(buf);
  const r = new RingReader(buf);
  assertEquals(recordsFor(0), 1);
  assertEquals(recordsFor(1), 2);
  assertEquals(recordsFor(RECORD_BYTES), 2);
  assertEquals(recordsFor(RECORD_BYTES + 1), 3);
  const bytes = (n: number, seed: number) =>
    new Uint8Array(n).map((_, i) => (seed + i * 13) & 0xff);
  // Three records in, the run of 5 (4 of bytes) does not fit beside 6.
  for (let i = 0; i < 6; i++) assert(w.write((v, at) => v.setUint32(at, i)));
  assertEquals(w.free, 2);
  assertEquals(
    w.writeWithBytes((v, at) => v.setUint32(at, 77), bytes(200, 1)),
    false,
  );
  assertEquals(w.pending, 6, "nothing of it was written");
  assertEquals(drainAll(r), [0, 1, 2, 3, 4, 5]);
  // Slots 6, 7, 0, 1, 2: across the end of the buffer.
  assert(w.writeWithBytes((v, at) => v.setUint32(at, 77), bytes(200, 1)));
  assertEquals(w.pending, 5);
  const got: number[][] = [];
  r.drain((v, at) =>
    got.push([...new Uint8Array(v.buffer, v.byteOffset + at, RECORD_BYTES)])
  );
  assertEquals(got.length, 5);
  assertEquals(new DataView(new Uint8Array(got[0]!).buffer).getUint32(0), 77);
  const back = new Uint8Array(got.slice(1).flat());
  assertEquals(back.subarray(0, 200), bytes(200, 1));
  assertEquals(back.subarray(200), new Uint8Array(4 * RECORD_BYTES - 200));
  // A run longer than the ring is refused outright.
  assertThrows(() => w.writeWithBytes(() => {}, new Uint8Array(7 * 64 + 1)));
  assert(w.writeWithBytes(() => {}, new Uint8Array(7 * 64)));
});

Deno.test("dp_msg: the N-1 commands, with bytes, come back whole, round the ring's end many times", () => {
  const buf = ringBuffer(16);
  const w = new RingWriter(buf);
  const r = new RingReader(buf);
  const reader = new CommandReader();
  const back: [DpCommand, number[]][] = [];
  const drain = () =>
    r.drain((v, at) => reader.record(v, at, (c, b) => back.push([c, [...b]])));
  const put = (c: DpCommand, b?: Uint8Array) => {
    const ok = b === undefined
      ? w.write((v, at) => encodeCommand(v, at, c))
      : w.writeWithBytes((v, at) => encodeCommand(v, at, c, b.length), b);
    if (!ok) {
      drain();
      put(c, b);
    }
  };
  const want: [DpCommand, number[]][] = [];
  for (let i = 0; i < 200; i++) {
    const n = (i * 97) % 700; // 0 to 11 records of bytes, some exact
    const b = new Uint8Array(i % 5 === 0 ? 64 * (i % 9) : n).map((_, k) =>
      (i + k) & 0xff
    );
    const cmds: [DpCommand, Uint8Array | undefined][] = [
      [{ op: Op.N1Add, id: 0xffff_fff0 - i, fd: i + 3 }, undefined],
      [{ op: Op.N1Write, id: i }, b],
      [{ op: Op.N1Dt, id: i, qc: i % 3 }, undefined],
      [{ op: Op.Tables }, b.subarray(0, i % 3)],
      [{ op: Op.N1Remove, id: i }, undefined],
    ];
    for (const [c, bytes] of cmds) {
      put(c, bytes);
      want.push([c, [...(bytes ?? [])]]);
    }
    if (i % 7 === 0) drain();
  }
  drain();
  assertEquals(back.length, want.length);
  assertEquals(back, want);
  // A command without bytes refuses them.
  const v = new DataView(new ArrayBuffer(RECORD_BYTES));
  assertThrows(() => encodeCommand(v, 0, { op: Op.N1Remove, id: 1 }, 5));
});
