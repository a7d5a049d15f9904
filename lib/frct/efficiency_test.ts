/**
 * Retransmission efficiency of reliable flows on a simulated path like the
 * real one (scenarios.ts): a bottleneck whose queue holds the window, so
 * the RTT grows with what is in flight; ends that handle packets in batches,
 * late, and stall now and then. Each property sums over seeded runs.
 */
import * as assert from "node:assert/strict";
import {
  bulk,
  type BulkOptions,
  type BulkResult,
  BUSY_LOOP,
} from "./scenarios.ts";

const SEEDS = [1, 2, 3, 4, 5, 6, 7, 8];

function runs(o: Omit<BulkOptions, "seed">): BulkResult[] {
  const rs = SEEDS.map((seed) => bulk({ seed, ...o }));
  for (const [i, r] of rs.entries()) {
    assert.ok(r.complete, `seed ${SEEDS[i]}: ${r.delivered} delivered`);
  }
  return rs;
}

const sum = (rs: BulkResult[], f: (r: BulkResult) => number) =>
  rs.reduce((a, r) => a + f(r), 0);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

Deno.test("efficiency: no loss, a queue that holds the window, busy ends: retransmissions < 1% of packets", () => {
  for (const rateMbps of [150, 1200]) {
    const rs = runs({ loss: 0, rateMbps });
    const sent = sum(rs, (r) => r.sent);
    const rtx = sum(rs, (r) => r.retransmitted);
    assert.ok(
      rtx < 0.01 * sent,
      `${rateMbps} Mb/s: ${rtx} retransmitted of ${sent}`,
    );
    // the queue did build up: the RTT is that of the window in the queue
    assert.ok(median(rs.map((r) => r.maxQueue)) > 150);
  }
});

Deno.test("efficiency: stalls longer than the rto (spurious timeouts) cost about one copy each, not a window", () => {
  const rs = runs({
    loss: 0,
    rateMbps: 150,
    loop: { ...BUSY_LOOP, stallEveryMs: 50, stallMs: 60 },
  });
  const timeouts = sum(rs, (r) => r.writer.timeouts);
  const rtx = sum(rs, (r) => r.retransmitted);
  const sent = sum(rs, (r) => r.sent);
  assert.ok(timeouts > 0, "no stall made the timer fire");
  assert.ok(rtx <= 3 * timeouts, `${rtx} copies for ${timeouts} timeouts`);
  assert.ok(rtx < 0.01 * sent, `${rtx} retransmitted of ${sent}`);
});

Deno.test("efficiency: at 1% loss, retransmitted <= 3x lost, and goodput >= 50% of the loss-free one", () => {
  for (const rateMbps of [150, 1200]) {
    const clean = runs({ loss: 0, rateMbps });
    const rs = runs({ loss: 0.01, rateMbps });
    const lost = sum(rs, (r) => r.lost);
    const rtx = sum(rs, (r) => r.retransmitted);
    assert.ok(lost > 0);
    assert.ok(rtx <= 3 * lost, `${rateMbps} Mb/s: ${rtx} copies, ${lost} lost`);
    const ratio = median(rs.map((r) => r.goodputMbps)) /
      median(clean.map((r) => r.goodputMbps));
    assert.ok(ratio >= 0.5, `${rateMbps} Mb/s: goodput ratio ${ratio}`);
  }
});

Deno.test("efficiency: at 5% and 20% loss, retransmitted <= 3x lost", () => {
  for (const loss of [0.05, 0.2]) {
    const rs = runs({ loss, rateMbps: 150 });
    const lost = sum(rs, (r) => r.lost);
    const rtx = sum(rs, (r) => r.retransmitted);
    assert.ok(rtx <= 3 * lost, `${loss * 100}%: ${rtx} copies, ${lost} lost`);
  }
});

Deno.test("efficiency: a reader that acknowledges every read (no batching): at 1% loss, retransmitted <= 3x lost", () => {
  const rs = runs({ loss: 0.01, rateMbps: 150, sendPerRead: true });
  const lost = sum(rs, (r) => r.lost);
  const rtx = sum(rs, (r) => r.retransmitted);
  assert.ok(rtx <= 3 * lost, `${rtx} copies, ${lost} lost`);
});
