/**
 * Retransmission efficiency of reliable flows on the simulated busy path
 * (scenarios.ts): `deno run lib/frct/sim_report.ts [--seeds N] [--count N]`.
 * Prints, per loss rate, the sums over the seeds: packets sent,
 * retransmitted, lost on the wire, duplicates at the reader, and the median
 * goodput, srtt and rto.
 */
import { bulk, type BulkOptions, type BulkResult } from "./scenarios.ts";

function arg(name: string, dflt: number): number {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Number(Deno.args[i + 1]) : dflt;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

const seeds = arg("--seeds", 5);
const count = arg("--count", 5000);
const rateMbps = arg("--rate", 150);
const variants: [string, Partial<BulkOptions>][] = [
  ["busy path", { rateMbps }],
  ["busy path, an ACK per read", { rateMbps, sendPerRead: true }],
  ["instant ends", { rateMbps, loop: null }],
];
console.log(
  "| path | loss | sent | retransmitted | rtx/sent | lost | rtx/lost | duplicates | acks | goodput Mb/s | srtt ms | rto ms | complete |",
);
console.log("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
for (const [name, v] of variants) {
  for (const loss of [0, 0.01, 0.05, 0.2]) {
    const rs: BulkResult[] = [];
    for (let s = 1; s <= seeds; s++) {
      rs.push(bulk({ seed: s, loss, count, ...v }));
    }
    const sum = (f: (r: BulkResult) => number) =>
      rs.reduce((a, r) => a + f(r), 0);
    const sent = sum((r) => r.sent);
    const rtx = sum((r) => r.retransmitted);
    const lost = sum((r) => r.lost);
    console.log(
      `| ${name} | ${loss * 100}% | ${sent} | ${rtx} | ${
        (rtx / sent).toFixed(3)
      } | ${lost} | ${lost > 0 ? (rtx / lost).toFixed(2) : "-"} | ${
        sum((r) => r.duplicates)
      } | ${sum((r) => r.acks)} | ${
        median(rs.map((r) => r.goodputMbps)).toFixed(0)
      } | ${median(rs.map((r) => r.srtt)).toFixed(2)} | ${
        median(rs.map((r) => r.rto)).toFixed(1)
      } | ${rs.filter((r) => r.complete).length}/${rs.length} |`,
    );
  }
}
