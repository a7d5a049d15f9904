/**
 * Ouroboros tutorial 1 on one machine: an irmd, a local IPCP (ipcpd-local)
 * and oping, nothing on the network. By hand with irm as the tutorial
 * does, and from a configuration file; a reliable flow (QoS data); the
 * server killed in the middle of a flow; and a local layer asked before a
 * UDP layer that also has the name.
 */
import {
  assert,
  assertEquals,
  assertMatch,
  assertNotEquals,
} from "./assert.ts";
import {
  eventually,
  flowCounts,
  ipcpPid,
  irm,
  Node,
  ping,
  serverKilledMidFlow,
  startServer,
  tutorialHosts,
} from "./harness.ts";
import { connectCtrl } from "../lib/ipc/ctrl.ts";
import { irmdSocketPath } from "../lib/ipc/rundir.ts";
import { QOS_CUBES } from "../lib/wire/udp_wire.ts";
import { nameHashHex, nameHashWith, toHex } from "../lib/wire/name_hash.ts";

Deno.test("tutorial 1 by hand: irm bootstraps a local IPCP, oping gets 5 replies, raw and reliable", async () => {
  const node = await Node.start("tut01");
  try {
    // The tutorial's commands (irm prints nothing when they succeed).
    assertEquals(
      await irm(
        node,
        "ipcp bootstrap type local name local-ipcp layer local-layer",
      ),
      "",
    );
    const list = await irm(node, "ipcp list");
    assertMatch(
      list,
      /\|\s+\d+ \|\s+local-ipcp \|\s+local \|\s+local-layer \|/,
    );
    assertEquals(await irm(node, "name create oping"), "");
    assertEquals(
      await irm(node, `bind program ${node.bin("oping")} name oping`),
      "",
    );
    assertEquals(await irm(node, "name register oping layer local-layer"), "");
    // The name's hash in the local layer: SHA3-256, not the MD5 of UDP.
    const local = await ipcpPid(node, "local-ipcp");
    await node.irmd.waitFor(
      new RegExp(
        `Registered oping with IPCP ${local} as ${
          toHex(nameHashWith("SHA3_256", "oping")).slice(0, 8)
        }\\.`,
      ),
    );
    assert(
      !node.irmd.lines.some((l) =>
        l.includes(nameHashHex("oping").slice(0, 8))
      ),
    );

    const server = await startServer(node);
    const from = node.irmd.lines.length;
    await ping(node, "oping", 5);
    await node.irmd.waitFor(
      new RegExp(`Flow \\d+ allocated for \\d+ to oping over IPCP ${local}\\.`),
      5000,
      from,
    );
    // A reliable flow (FRCT, QoS data) over the same layer.
    await ping(node, "oping", 5, ["-q", "data"]);
    await server.waitFor(/^New flow \d+\.$/);
    // Each flow ended with its client: nothing left in the irmd or the IPCP.
    await eventually("no flows left", async () => {
      const c = await flowCounts(node);
      return c.irmd === 0 && c.ipcps === 0;
    });
  } finally {
    await node.close();
  }
});

Deno.test("the flow grant of a local layer says its maximum packet lifetime: 100 ms", async () => {
  const node = await Node.start("tut01-mpl", {
    config: `[local.local-ipcp]\nbootstrap = "local-layer"\nreg = ["oping"]\n`,
    ready: /Registered oping with IPCP/,
  });
  try {
    await irm(node, `bind program ${node.bin("oping")} name oping`);
    await startServer(node);
    // An application's own control connection, as lib/app/dev.ts opens it.
    const conn = await connectCtrl(irmdSocketPath(node.rundir));
    try {
      await conn.request("hello", {
        role: "app",
        pid: Deno.pid,
        prog: "local-test",
      }, 5000);
      const grant = await conn.request("flow.alloc", {
        name: "oping",
        qos: QOS_CUBES.raw,
        timeoutMs: 5000,
      }, 10_000);
      assertEquals(grant.mplMs, 100);
      assertEquals(grant.mtu, 65535);
    } finally {
      conn.close();
      await conn.done;
    }
  } finally {
    await node.close();
  }
});

Deno.test("tutorial 1 from a configuration file: [local.local-ipcp], autostart, SHA3-512", async () => {
  const node = await Node.start("tut01-conf", {
    config: `[name."oping"]
prog=["@DIR@/bin/oping"]
args=["--listen"]

[local.local-ipcp]
bootstrap="local-layer"
hash="SHA3_512"
reg=["oping"]
autobind=true
`,
    ready: /Registered oping with IPCP/,
  });
  try {
    const local = await ipcpPid(node, "local-ipcp");
    assertMatch(
      await irm(node, "ipcp list type local"),
      /\|\s+local-ipcp \|\s+local \|\s+local-layer \|/,
    );
    // The configured hash names the name in the layer.
    await node.irmd.waitFor(
      new RegExp(
        `Registered oping with IPCP ${local} as ${
          toHex(nameHashWith("SHA3_512", "oping")).slice(0, 8)
        }\\.`,
      ),
    );
    // autobind: the IPCP's process is bound to its name and its layer's.
    await node.irmd.waitFor(
      new RegExp(`Bound IPCP ${local} to name local-layer\\.`),
    );
    const procs = await irm(node, "process list");
    assertMatch(procs, /local-ipcp \(bound\), local-layer \(bound\)/);
    // No server runs: the irmd starts one from the configuration.
    await ping(node, "oping", 5);
    await node.irmd.waitFor(/Instantiated .*\/bin\/oping as process \d+\./);
    await ping(node, "oping", 3, ["-q", "data"]);
  } finally {
    await node.close();
  }
});

Deno.test("the server killed mid-flow: the client's flow goes down at once, nothing hangs", async () => {
  const node = await Node.start("tut01-kill", {
    config: `[local.local-ipcp]\nbootstrap = "local-layer"\nreg = ["oping"]\n`,
    ready: /Registered oping with IPCP/,
  });
  try {
    await irm(node, `bind program ${node.bin("oping")} name oping`);
    await serverKilledMidFlow(node);
  } finally {
    await node.close();
  }
});

Deno.test("a local layer is asked first, before a UDP layer created earlier with the same name", async () => {
  // UDP on a port of 3900-3999, loopback only, its own hosts file.
  const node = await Node.start("tut01-order", {
    config: `[udp.udp-ipcp]
bootstrap="udp-layer"
ip="127.0.0.1"
port=3917
hosts="@DIR@/hosts"
reg=["oping"]

[local.local-ipcp]
bootstrap="local-layer"
reg=["oping"]
`,
    hosts: `127.0.0.1 ${nameHashHex("oping")} #oping\n${
      tutorialHosts("127.0.0.1")
    }`,
    ready: /Registered oping with IPCP/,
  });
  try {
    await eventually("both IPCPs registered oping", () =>
      Promise.resolve(
        node.irmd.lines.filter((l) => /Registered oping with IPCP/.test(l))
          .length === 2,
      ));
    const local = await ipcpPid(node, "local-ipcp");
    const udp = await ipcpPid(node, "udp-ipcp");
    assertNotEquals(udp, local);
    await irm(node, `bind program ${node.bin("oping")} name oping`);
    await startServer(node);
    const from = node.irmd.lines.length;
    await ping(node, "oping", 2);
    const line = await node.irmd.waitFor(
      /Flow \d+ allocated for \d+ to oping over IPCP \d+\./,
      5000,
      from,
    );
    assertMatch(line, new RegExp(`over IPCP ${local}\\.`));
  } finally {
    await node.close();
  }
});
