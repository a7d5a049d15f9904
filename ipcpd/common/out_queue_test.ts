/**
 * The out-queue towards a peer (out_queue.ts) on a non-blocking socketpair:
 * what is appended comes out in order and intact, however much the socket
 * takes at a time; the rest of a writev taken in part; the count of frames
 * waiting, exact; a failed write drops what waited; nothing left open.
 */
import { assert, assertEquals } from "../../tests/assert.ts";
import {
  closeFd,
  readFd,
  socketPair,
  unwrap,
  writevFd,
} from "../../lib/sys/mod.ts";
import { fdTest } from "../../lib/sys/testing.ts";
import { OutQueue } from "./out_queue.ts";
import { concat, packet, sameBytes } from "./testing.ts";

/** Reads all that waits on `fd`. */
function drain(fd: number): Uint8Array {
  const parts: Uint8Array[] = [];
  const buf = new Uint8Array(64 * 1024);
  for (;;) {
    const r = readFd(fd, buf);
    if (!r.ok || r.value === 0) break;
    parts.push(buf.slice(0, r.value));
  }
  return concat(parts);
}

fdTest(
  "out queue: empty, it writes nothing; appended bytes come out in order, copied",
  () => {
    const [a, b] = unwrap(socketPair({ nonBlocking: true }));
    try {
      const q = new OutQueue();
      assertEquals(q.pending, 0);
      assertEquals(q.frames, 0);
      assertEquals(q.write(a), "idle");
      const one = packet(1, 100);
      const two = packet(2, 70_000); // beyond what a drained queue keeps
      q.append(one);
      q.append(two);
      one.fill(0); // a copy was taken
      assertEquals(q.pending, 70_100);
      assertEquals(q.write(a), "drained");
      assertEquals(q.pending, 0);
      const got = drain(b);
      sameBytes(got.subarray(0, 100), packet(1, 100), "first");
      sameBytes(got.subarray(100), packet(2, 70_000), "second");
      // Let go once drained (it grew large): idle again.
      assertEquals(q.write(a), "idle");
    } finally {
      closeFd(a);
      closeFd(b);
    }
  },
);

fdTest(
  "out queue: behind a full socket, blocked; read by bits, all comes out intact; frames counted exactly",
  () => {
    const [a, b] = unwrap(socketPair({ nonBlocking: true }));
    try {
      // Fill the socket.
      const filler = new Uint8Array(64 * 1024);
      let filled = 0;
      for (;;) {
        const r = writevFd(a, [filler]);
        if (!r.ok) break;
        filled += r.value;
      }
      const q = new OutQueue();
      const size = (i: number) => 1 + (i * 7919) % 5000;
      const n = 200;
      let total = 0;
      const ends: number[] = [];
      for (let i = 0; i < n; i++) {
        // Frames of two parts: only the second ends one.
        const p = packet(i, size(i));
        const cut = p.length >> 1;
        q.append(p.subarray(0, cut));
        q.append(p.subarray(cut), true);
        total += p.length;
        ends.push(total);
      }
      assertEquals(q.pending, total);
      assertEquals(q.frames, n);
      assertEquals(q.write(a), "blocked");
      const read: Uint8Array[] = [];
      for (let round = 0; round < 10_000 && q.pending > 0; round++) {
        read.push(drain(b)); // the filler first, then the queue's bytes
        const r = q.write(a);
        assert(r === "blocked" || r === "drained", `write: ${r}`);
        const taken = total - q.pending;
        assertEquals(q.frames, ends.filter((e) => e > taken).length);
      }
      assertEquals(q.pending, 0);
      assertEquals(q.frames, 0);
      read.push(drain(b));
      const all = concat(read).subarray(filled);
      assertEquals(all.length, total);
      let at = 0;
      for (let i = 0; i < n; i++) {
        sameBytes(all.subarray(at, at + size(i)), packet(i, size(i)), `${i}`);
        at += size(i);
      }
    } finally {
      closeFd(a);
      closeFd(b);
    }
  },
);

Deno.test("out queue: the rest of a writev taken in part, from the part cut on, its frame ends kept", () => {
  const q = new OutQueue();
  const parts = [packet(1, 10), packet(2, 20), packet(3, 30)];
  q.appendUnwritten(parts, 15, [true, false, true]);
  // Part 1 went whole; part 2 from byte 5; part 3 whole.
  assertEquals(q.pending, 45);
  assertEquals(q.frames, 1);
  const [a, b] = unwrap(socketPair({ nonBlocking: true }));
  try {
    assertEquals(q.write(a), "drained");
    const got = drain(b);
    sameBytes(got.subarray(0, 15), packet(2, 20).subarray(5), "part 2");
    sameBytes(got.subarray(15), packet(3, 30), "part 3");
    assertEquals(q.frames, 0);
    // Without frame ends, none are counted.
    q.appendUnwritten(parts, 0);
    assertEquals(q.pending, 60);
    assertEquals(q.frames, 0);
  } finally {
    closeFd(a);
    closeFd(b);
  }
});

Deno.test("out queue: a write that fails drops what waited; clear lets it all go", () => {
  const [a, b] = unwrap(socketPair({ nonBlocking: true }));
  closeFd(b);
  const q = new OutQueue();
  q.append(packet(1, 100), true);
  const r = q.write(a);
  closeFd(a);
  assert(typeof r === "object" && !r.ok, "a failure");
  assertEquals(q.pending, 0);
  assertEquals(q.frames, 0);
  q.append(packet(2, 10), true);
  q.clear();
  assertEquals(q.pending, 0);
  assertEquals(q.frames, 0);
  assertEquals(q.write(-1), "idle");
});
