/**
 * Unicast layers of several members (spec/unicast.md 9): Ouroboros
 * tutorial 2 (a unicast layer of two IPCPs over a local layer, by hand
 * with irm), two nodes over UDP (enrollment and connection from irmd.conf)
 * and three in a line, A - B - C, where every packet between A and C is
 * forwarded by B. Each node is an irmd of its own on a loopback address.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { eventually, irm, Node, ping, startServer } from "./harness.ts";
import { addressOf, hostsLine, routeVia } from "./topo.ts";

Deno.test("tutorial 2: a unicast layer of two IPCPs over a local layer, oping over it", async () => {
  const node = await Node.start("tut2");
  try {
    await irm(
      node,
      "ipcp bootstrap type local name local-ipcp layer local-layer",
    );
    await irm(
      node,
      "ipcp bootstrap type unicast name uni-1 layer unicast-layer autobind",
    );
    await irm(node, "name register uni-1 layer local-layer");
    await irm(node, "name register unicast-layer layer local-layer");
    const from = node.irmd.lines.length;
    await irm(node, "ipcp enroll name uni-2 layer unicast-layer autobind");
    await node.irmd.waitFor(/Enrollment completed\./, 10_000, from);
    await irm(node, "name register uni-2 layer local-layer");
    await irm(node, "ipcp connect name uni-2 dst uni-1");
    assertMatch(
      await irm(node, "ipcp list"),
      /\|\s+\d+ \|\s+uni-2 \|\s+unicast \|\s+unicast-layer \|/,
    );
    // C 0.23's irm, like ours, binds only to a name that exists.
    await irm(node, "name create oping-server");
    await irm(node, `bind program ${node.bin("oping")} name oping-server`);
    await irm(node, "name register oping-server layer unicast-layer");
    await startServer(node);
    await ping(node, "oping-server", 5);
    await ping(node, "oping-server", 5, ["-q", "data"]);
  } finally {
    await node.close();
  }
});

/** Node A of spec 9: udp-a in udp-ab, uni-a bootstrapping layer uni. */
function nodeA(ip: string, server: boolean): string {
  return `[name."oping"]
prog = ["@DIR@/bin/oping"]

[udp4.udp-a]
bootstrap = "udp-ab"
ip = "${ip}"
hosts = "@DIR@/hosts"
reg = ["uni-a", "uni"]

[unicast.uni-a]
bootstrap = "uni"
autobind = true
${server ? 'reg = ["oping"]\n' : ""}`;
}

Deno.test("two nodes over UDP: B enrolls with A and connects, oping both ways, raw and reliable", async () => {
  const a = await Node.start("uni-a", {
    config: nodeA("127.0.0.1", true),
    ready: /Registered oping with IPCP/,
  });
  let b: Node | undefined;
  try {
    b = await Node.start("uni-b", {
      config: `[name."oping"]
prog = ["@DIR@/bin/oping"]

[udp4.udp-b]
bootstrap = "udp-ab"
ip = "127.0.0.2"
hosts = "@DIR@/hosts"
reg = ["uni-b"]

[unicast.uni-b]
enrol = "uni-a"
conn = ["uni-a"]
autobind = true
`,
      hosts: hostsLine("127.0.0.1", "uni-a"),
      ready: /Added dt neighbour/,
    });
    await a.irmd.waitFor(/Enrollment completed\./, 10_000);
    const addrA = addressOf(a);
    const addrB = addressOf(b);
    await routeVia(b, addrA, addrA);
    await routeVia(a, addrB, addrB);
    await startServer(a);
    const t0 = performance.now();
    await ping(b, "oping", 10);
    await ping(b, "oping", 5, ["-q", "data"]);
    await ping(b, "oping", 3, ["-q", "voice"]);
    assert(performance.now() - t0 < 25_000);
    // And the other way: a server on B, registered in the layer there.
    await irm(b, "name register oping layer uni");
    await startServer(b, "oping-l-b");
    await eventually("A finds the name on B", async () => {
      const r = await a.run("oping", ["-n", "oping", "-c", "1"], 10_000);
      return r.code === 0;
    }, 20_000);
  } finally {
    await b?.close();
    await a.close();
  }
});

Deno.test("three nodes in a line: A reaches a server on C through B", async () => {
  const a = await Node.start("line-a", {
    config: nodeA("127.0.0.1", false),
    ready: /Bootstrapped IPCP \d+ in layer uni\./,
  });
  const nodes = [a];
  try {
    const b = await Node.start("line-b", {
      config: `[udp4.udp-b1]
bootstrap = "udp-ab"
ip = "127.0.0.2"
hosts = "@DIR@/hosts"
reg = ["uni-b"]

[udp4.udp-b2]
bootstrap = "udp-bc"
ip = "127.0.0.3"
hosts = "@DIR@/hosts-bc"
reg = ["uni-b"]

[unicast.uni-b]
enrol = "uni-a"
conn = ["uni-a"]
autobind = true
`,
      hosts: hostsLine("127.0.0.1", "uni-a"),
      files: { "hosts-bc": "" },
      ready: /Added dt neighbour/,
    });
    nodes.push(b);
    const c = await Node.start("line-c", {
      config: `[name."oping"]
prog = ["@DIR@/bin/oping"]

[udp4.udp-c]
bootstrap = "udp-bc"
ip = "127.0.0.4"
hosts = "@DIR@/hosts"

[unicast.uni-c]
enrol = "uni-b"
conn = ["uni-b"]
autobind = true
reg = ["oping"]
`,
      hosts: hostsLine("127.0.0.3", "uni-b"),
      ready: /Added dt neighbour/,
    });
    nodes.push(c);
    const [addrA, addrB, addrC] = [addressOf(a), addressOf(b), addressOf(c)];
    await routeVia(a, addrC, addrB);
    await routeVia(c, addrA, addrB);
    await startServer(c);
    await ping(a, "oping", 10);
    await ping(a, "oping", 5, ["-q", "data"]);
    const stats = await irm(b, "ipcp stats name uni-b");
    assertMatch(stats, /uni-b/);
    assertEquals(addrA === addrC, false);
  } finally {
    for (const n of nodes.reverse()) await n.close();
  }
});
