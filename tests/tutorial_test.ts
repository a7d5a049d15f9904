/**
 * Tutorial 05 on loopback: two "machines" as two irmds (server on 127.0.0.1,
 * client on 127.0.0.2, both on port 3435), load balancing by name, binding a
 * process, autostart, the one-machine variant and UDP over IPv6.
 */
import {
  assert,
  assertEquals,
  assertMatch,
  assertNotEquals,
} from "./assert.ts";
import {
  Node,
  type Proc,
  tutorialNodes,
  tutorialServer,
  tutorialServerConfig,
} from "./harness.ts";

/** Starts `n` oping servers and waits until the irmd has them all accepting. */
async function startServers(node: Node, n: number): Promise<Proc[]> {
  const servers: Proc[] = [];
  for (let i = 0; i < n; i++) {
    const from = node.irmd.lines.length;
    const s = node.spawnPath(
      node.bin("oping"),
      ["-l"],
      `${node.label}/oping-l-${i + 1}`,
    );
    servers.push(s);
    await node.irmd.waitFor(/This process accepts flows for:/, 10_000, from);
  }
  return servers;
}

/** Runs one `oping -c 1` on `client`; returns the server-side pid that accepted it. */
async function pingOnce(
  client: Node,
  server: Node,
  name: string,
): Promise<number> {
  const from = server.irmd.lines.length;
  const r = await client.run("oping", ["-n", name, "-c", "1"]);
  assertEquals(r.code, 0, `oping -n ${name} failed:\n${r.stdout}\n${r.stderr}`);
  assertMatch(r.stdout, new RegExp(`64 bytes from ${name}: seq=0 time=`));
  const line = await server.irmd.waitFor(
    new RegExp(`Flow \\d+ accepted by \\d+ for ${name}\\.`),
    5000,
    from,
  );
  return Number(/accepted by (\d+)/.exec(line)![1]);
}

Deno.test("two nodes: round-robin alternates, spill sticks, a bound process takes the name", async () => {
  const { server, client, close } = await tutorialNodes();
  try {
    const servers = await startServers(server, 2);
    const pids = servers.map((s) => s.pid);

    const rr: number[] = [];
    for (let i = 0; i < 6; i++) {
      rr.push(await pingOnce(client, server, "oping-server"));
    }
    for (const p of rr) {
      assert(pids.includes(p), `flow went to ${p}, not an oping server`);
    }
    assertNotEquals(rr[0], rr[1]);
    for (let i = 2; i < 6; i++) {
      assertEquals(rr[i], rr[i % 2], `not alternating: ${rr}`);
    }

    const spill: number[] = [];
    for (let i = 0; i < 6; i++) {
      spill.push(await pingOnce(client, server, "oping-server2"));
    }
    assertEquals(
      new Set(spill).size,
      1,
      `oping-server2 went to several processes: ${spill}`,
    );

    // The tutorial's form binds the other process to oping-server2.
    const other = pids.find((p) => p !== spill[0])!;
    const bind = await server.run("irm", [
      "name",
      "bind",
      "process",
      String(other),
      "name",
      "oping-server2",
    ]);
    assertEquals(bind.code, 0, bind.stdout + bind.stderr);
    for (let i = 0; i < 3; i++) {
      assertEquals(await pingOnce(client, server, "oping-server2"), other);
    }
    // The servers saw their flows.
    for (const s of servers) {
      assert(s.lines.some((l) => /^New flow \d+\.$/.test(l)));
    }
  } finally {
    await close();
  }
});

Deno.test("autostart: with no server running, the irmd starts one from args", async () => {
  const { server, client, close } = await tutorialNodes();
  try {
    const pid = await pingOnce(client, server, "oping-server");
    const started = await server.irmd.waitFor(
      /Instantiated .*\/bin\/oping as process \d+\./,
    );
    assertEquals(Number(/process (\d+)/.exec(started)![1]), pid);
    // The started server keeps serving the next client.
    assertEquals(await pingOnce(client, server, "oping-server"), pid);
  } finally {
    await close();
  }
  // The irmd ended the process it started.
  const pids = server.irmd.lines.flatMap((l) =>
    /Instantiated .* as process (\d+)/.exec(l)?.[1] ?? []
  );
  for (const p of pids) {
    assertEquals(processExists(Number(p)), false, `process ${p} still runs`);
  }
});

function processExists(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

Deno.test("one machine: one irmd on 127.0.0.1 serves its own clients", async () => {
  const node = await tutorialServer("one");
  try {
    const servers = await startServers(node, 2);
    const got: number[] = [];
    for (let i = 0; i < 4; i++) {
      got.push(await pingOnce(node, node, "oping-server"));
    }
    assertEquals(new Set(got), new Set(servers.map((s) => s.pid)));
    assertEquals(got[2], got[0]);
    assertEquals(got[3], got[1]);
  } finally {
    await node.close();
  }
});

Deno.test("udp6 on ::1: the tutorial over IPv6", async () => {
  const config = tutorialServerConfig("::1").replace(
    "[udp.wifi1]",
    "[udp6.wifi6]",
  );
  const node = await Node.start("v6", {
    config,
    hosts:
      "::1 6ae220aa6aae06c43878513c64db34b6\n::1 f87b9400fa8f3d568b1481da7a99d122\n",
    ready: /Registered oping-server2 with IPCP/,
  });
  try {
    await startServers(node, 1);
    const r = await node.run("oping", [
      "-n",
      "oping-server",
      "-c",
      "3",
      "-i",
      "50",
    ]);
    assertEquals(r.code, 0, r.stdout + r.stderr);
    assertMatch(
      r.stdout,
      /3 packets transmitted, 3 received, 0 out-of-order, 0% packet loss/,
    );
    const list = await node.run("irm", ["ipcp", "list"]);
    assertMatch(list.stdout, /\|\s+wifi6 \|\s+udp6 \|\s+wifi-network \|/);
  } finally {
    await node.close();
  }
});
