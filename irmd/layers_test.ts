import { assertEquals } from "../tests/assert.ts";
import type { IpcpTypeName } from "../lib/ipc/proto.ts";
import { type LayerCandidate, layersFor, recordOver } from "./layers.ts";

let seq = 0;
function ipcp(
  name: string,
  type: IpcpTypeName,
  layer: string | undefined,
  more: Partial<LayerCandidate> = {},
): LayerCandidate & { name: string } {
  return {
    name,
    pid: 1000 + ++seq,
    type,
    layer,
    enrolling: undefined,
    conn: {},
    created: seq,
    ...more,
  };
}

const names = (r: { candidates: { name: string }[] }) =>
  r.candidates.map((c) => c.name);

Deno.test("an application's flow: local, then unicast, then UDP layers, in creation order", () => {
  const all = [
    ipcp("udp-b", "udp4", "udp-net"),
    ipcp("uni", "unicast", "net1"),
    ipcp("udp-a", "udp6", "udp6-net"),
    ipcp("loc", "local", "local-layer"),
    ipcp("uni2", "unicast", "net2"),
  ];
  const r = layersFor(all, 1);
  assertEquals(names(r), ["loc", "uni", "uni2", "udp-b", "udp-a"]);
  assertEquals(r.self, undefined);
});

Deno.test("only IPCPs in a layer and connected to the irmd are asked", () => {
  const all = [
    ipcp("created", "udp4", undefined),
    ipcp("starting", "udp4", "l", { conn: undefined }),
    ipcp("enrolling", "unicast", undefined, { enrolling: { layer: "x" } }),
    ipcp("ready", "udp4", "l"),
  ];
  assertEquals(names(layersFor(all, 1)), ["ready"]);
});

Deno.test("an IPCP's own flows never go through itself nor through its own layer", () => {
  const uni = ipcp("uni-a", "unicast", "uni");
  const all = [
    ipcp("loc", "local", "local-layer"),
    uni,
    ipcp("uni-b", "unicast", "uni"),
    ipcp("other", "unicast", "net2"),
    ipcp("udp-ab", "udp4", "udp-ab"),
  ];
  const r = layersFor(all, uni.pid);
  assertEquals(names(r), ["loc", "other", "udp-ab"]);
  assertEquals(r.self, uni);
  // Any other process gets every layer.
  assertEquals(names(layersFor(all, 1)), [
    "loc",
    "uni-a",
    "uni-b",
    "other",
    "udp-ab",
  ]);
});

Deno.test("an enrolling IPCP: not itself, and not the layer it is joining when it named one", () => {
  const joining = ipcp("uni-b", "unicast", undefined, {
    enrolling: { layer: "uni" },
  });
  const all = [
    ipcp("uni-a", "unicast", "uni"),
    joining,
    ipcp("udp-ab", "udp4", "udp-ab"),
  ];
  assertEquals(names(layersFor(all, joining.pid)), ["udp-ab"]);
  // Enrolling with a member's name only: its layer is not known yet.
  joining.enrolling = { layer: undefined };
  assertEquals(names(layersFor(all, joining.pid)), ["uni-a", "udp-ab"]);
  // A UDP IPCP that allocates (it never does): not through itself either.
  const udp = all[2]!;
  assertEquals(names(layersFor(all, udp.pid)), ["uni-a"]);
});

Deno.test("an IPCP alone in its layer's node has nothing to ask", () => {
  const uni = ipcp("uni-a", "unicast", "uni");
  const r = layersFor([uni, ipcp("uni-c", "unicast", "uni")], uni.pid);
  assertEquals(r.candidates, []);
  assertEquals(r.self, uni);
});

Deno.test("a layer built over the requester's is never asked to carry its flows, however far up", () => {
  const all = [
    ipcp("udp", "udp4", "udp-net"),
    ipcp("uni-a", "unicast", "uni"),
    ipcp("uni2-a", "unicast", "uni2"),
    ipcp("uni3-a", "unicast", "uni3"),
  ];
  const over = new Map<string, Set<string>>();
  // Without knowing, uni's IPCP would ask uni2 and uni3 before UDP.
  assertEquals(names(layersFor(all, all[1]!.pid, over)), [
    "uni2-a",
    "uni3-a",
    "udp",
  ]);
  recordOver(over, "uni", "udp-net");
  recordOver(over, "uni2", "uni");
  recordOver(over, "uni3", "uni2");
  assertEquals(names(layersFor(all, all[1]!.pid, over)), ["udp"]);
  assertEquals(names(layersFor(all, all[2]!.pid, over)), ["uni-a", "udp"]);
  // An application still gets them all.
  assertEquals(names(layersFor(all, 1, over)), [
    "uni-a",
    "uni2-a",
    "uni3-a",
    "udp",
  ]);
});
