/**
 * DtNode's choice of next hop: the primary flow of a destination, or
 * (ECMP) one packet each over all its flows in turn.
 */
import { assertEquals } from "../../tests/assert.ts";
import { DT_DEFAULT, encodeDt, QC_BE } from "./dt.ts";
import { DtNode } from "./dt_node.ts";
import type { ForwardingTables } from "./routing.ts";

const ME = 0x0a0a0a0an;
const FAR = 0x0c0c0c0cn;

function tables(flows: number[]): ForwardingTables {
  const t = new Map([[FAR, flows]]);
  return { nextHops: new Map(), flows: [t, t, t] };
}

function flowsOf(node: DtNode, n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const bytes = encodeDt(
      { dst: FAR, qc: QC_BE, ttl: 60, ecn: 0, eid: 99n },
      new Uint8Array(4),
      DT_DEFAULT,
    );
    const r = node.arrived(bytes);
    out.push(r.t === "forward" ? r.flow : -1);
  }
  return out;
}

Deno.test("next hops: the primary without ECMP (LFA's alternates wait), round robin with it", () => {
  const simple = new DtNode({ addr: ME, layout: DT_DEFAULT, maxTtl: 60 });
  simple.setTables(tables([3, 5, 7]));
  assertEquals(flowsOf(simple, 4), [3, 3, 3, 3]);
  const ecmp = new DtNode({
    addr: ME,
    layout: DT_DEFAULT,
    maxTtl: 60,
    multipath: true,
  });
  ecmp.setTables(tables([3, 5, 7]));
  assertEquals(flowsOf(ecmp, 7), [3, 5, 7, 3, 5, 7, 3]);
  ecmp.setTables(tables([4]));
  assertEquals(flowsOf(ecmp, 2), [4, 4]);
  ecmp.setTables(tables([]));
  assertEquals(flowsOf(ecmp, 1), [-1]);
});
