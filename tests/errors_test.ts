/**
 * Errors a user meets, each with its own clear message, at once rather than
 * after an allocation's timeout: a name that does not resolve, a name nobody
 * serves, no irmd.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { Node, tutorialClientConfig, tutorialHosts } from "./harness.ts";
import { nameHashHex } from "../lib/wire/name_hash.ts";
import { DEFAULT_ALLOC_TIMEOUT_MS } from "../lib/app/dev.ts";

/**
 * Runs oping on the node and checks it fails with `message`, and fast: it
 * exits within half the time an allocation may wait for an answer (20 s),
 * so it did not wait for one. What is left of that deadline is margin for
 * a loaded machine (starting oping is most of the time taken).
 */
async function failsFast(
  node: Node,
  args: string[],
  message: RegExp,
): Promise<string> {
  const r = await node.run("oping", args, DEFAULT_ALLOC_TIMEOUT_MS / 2);
  const all = `${r.stdout}\n${r.stderr}`;
  assert(r.code !== 0, `oping ${args.join(" ")} succeeded:\n${all}`);
  assertMatch(all, message);
  return all;
}

const SERVER_NO_AUTOSTART = `[name."oping-server"]
prog=["@DIR@/bin/oping"]

[udp.wifi1]
bootstrap="wifi-network"
ip="127.0.0.1"
hosts="@DIR@/hosts"
reg=["oping-server"]
`;

Deno.test("errors: unresolvable name, unserved name, unknown name at the peer", async () => {
  const hosts = tutorialHosts("127.0.0.1") +
    `127.0.0.1 ${nameHashHex("not-here")} #not-here\n`;
  const server = await Node.start("server", {
    config: SERVER_NO_AUTOSTART,
    hosts,
    ready: /Registered oping-server with IPCP/,
  });
  let client: Node | undefined;
  try {
    client = await Node.start("client", {
      config: tutorialClientConfig("127.0.0.2"),
      hosts,
      ready: /Bootstrapped IPCP \d+ in layer/,
    });
    // Not in any hosts file: fails at once, naming the name and its hash.
    await failsFast(
      client,
      ["-n", "nosuch", "-c", "1"],
      new RegExp(`nosuch \\(${nameHashHex("nosuch")}\\) does not resolve`),
    );
    // Resolves, but the server node has no such name: refused by the peer.
    await failsFast(client, ["-n", "not-here", "-c", "1"], /refused/);
    // The server node has the name, but no process serves it.
    await failsFast(client, ["-n", "oping-server", "-c", "1"], /refused/);
    await server.irmd.waitFor(
      /No process accepts flows for oping-server; refused\./,
    );
    // The layer still works afterwards.
    server.spawnPath(server.bin("oping"), ["-l"], "server/oping-l");
    await server.irmd.waitFor(/This process accepts flows for:/);
    const ok = await client.run("oping", ["-n", "oping-server", "-c", "1"]);
    assertEquals(ok.code, 0, ok.stdout + ok.stderr);
  } finally {
    await client?.close();
    await server.close();
  }
});

Deno.test("errors: no irmd running", async () => {
  const node = await Node.start("dead", {});
  try {
    await node.irmd.stop();
    await failsFast(
      node,
      ["-n", "oping-server", "-c", "1"],
      /Failed to communicate with the Ouroboros IPC Resource Manager daemon/,
    );
    const irm = await node.run("irm", ["ipcp", "list"]);
    assertEquals(irm.code, 1);
    assertMatch(
      irm.stdout + irm.stderr,
      /Failed to communicate with the Ouroboros IPC Resource Manager daemon at \S+irmd\.sock: /,
    );
  } finally {
    await node.close();
  }
});

Deno.test("a second irmd on the same runtime directory refuses to start; a stale socket is cleaned", async () => {
  const node = await Node.start("one", {});
  try {
    const second = node.spawn("irmd", ["--rundir", node.rundir]);
    const r = await second.exit(10_000);
    assertEquals(r.code, 1);
    assertMatch(
      r.stdout + r.stderr,
      /another irmd is running with runtime directory/,
    );
    // Kill the irmd hard: its socket file stays behind.
    node.irmd.kill("SIGKILL");
    await node.irmd.status;
    assert((await Deno.stat(`${node.rundir}/irmd.sock`)).isSocket);
    const next = node.spawn("irmd", ["--rundir", node.rundir, "--debug"]);
    await next.waitFor(/Removed 1 stale socket/);
    await next.waitFor(/IPC Resource Manager daemon started/);
    const list = await node.run("irm", ["ipcp", "list"]);
    assertEquals(list.stdout.trim(), "No IPCPs in system.");
  } finally {
    await node.close();
  }
});

Deno.test("runtime directory and sockets are for their owner only", async () => {
  const node = await Node.start("perm", {
    config:
      `[udp.a]\nbootstrap="l"\nip="127.0.0.1"\nport=3436\nhosts="@DIR@/hosts"\n`,
    hosts: "",
    ready: /Bootstrapped IPCP/,
  });
  try {
    assertEquals((await Deno.stat(node.rundir)).mode! & 0o777, 0o700);
    for await (const e of Deno.readDir(node.rundir)) {
      const st = await Deno.stat(`${node.rundir}/${e.name}`);
      assertEquals(st.mode! & 0o077, 0, `${e.name} is open to others`);
    }
  } finally {
    await node.close();
  }
});
