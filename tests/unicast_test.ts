/**
 * A unicast layer of one member: an irmd, a unicast IPCP (ipcpd-unicast)
 * and oping, nothing on the network. Bootstrapped by hand with irm and from
 * a configuration file; raw and reliable flows whose every packet goes
 * through the layer's DT and FA formats; a server killed in the middle of
 * a flow; enrollment and connections refused clearly.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import {
  eventually,
  flowCounts,
  ipcpPid,
  irm,
  LAUNCHER,
  Node,
  ping,
  REPO,
  runCommand,
  serverKilledMidFlow,
  startServer,
} from "./harness.ts";
import { connectCtrl } from "../lib/ipc/ctrl.ts";
import { Proc as Child } from "../lib/util/child.ts";
import { PERMISSION_FLAGS } from "../lib/util/self.ts";
import { RUNDIR_ENV } from "../lib/ipc/rundir.ts";
import { irmdSocketPath } from "../lib/ipc/rundir.ts";
import { QOS_CUBES } from "../lib/wire/udp_wire.ts";
import { nameHashWith, toHex } from "../lib/wire/name_hash.ts";

/** The IPCP's row of `irm ipcp stats`: no flow open, nothing dropped. */
async function noDrops(node: Node, name: string): Promise<void> {
  const out = await irm(node, `ipcp stats name ${name}`);
  const row = out.split("\n").map((l) => l.replace(/ +/g, " "))
    .find((l) => l.includes(`| ${name} |`));
  assertMatch(
    row ?? out,
    new RegExp(`\\| ${name} \\| 0 \\| 0 \\| 0 \\| 0 \\| 0 \\| 0 \\|`),
  );
}

Deno.test("a one-member unicast layer by hand: irm bootstraps it, oping gets 5 replies, raw and reliable", async () => {
  const node = await Node.start("uni1");
  try {
    assertEquals(
      await irm(node, "ipcp bootstrap type unicast name u1 layer net1"),
      "",
    );
    assertMatch(
      await irm(node, "ipcp list"),
      /\|\s+\d+ \|\s+u1 \|\s+unicast \|\s+net1 \|/,
    );
    const pid = await ipcpPid(node, "u1");
    await node.irmd.waitFor(
      new RegExp(`Bootstrapped IPCP ${pid} in layer net1\\.`),
    );
    assertEquals(await irm(node, "name create oping"), "");
    assertEquals(
      await irm(node, `bind program ${node.bin("oping")} name oping`),
      "",
    );
    assertEquals(await irm(node, "name register oping layer net1"), "");
    // Names of a unicast layer are hashed with SHA3-256 by default.
    await node.irmd.waitFor(
      new RegExp(
        `Registered oping with IPCP ${pid} as ${
          toHex(nameHashWith("SHA3_256", "oping")).slice(0, 8)
        }\\.`,
      ),
    );
    const server = await startServer(node);
    const from = node.irmd.lines.length;
    await ping(node, "oping", 5);
    await node.irmd.waitFor(
      new RegExp(`Flow \\d+ allocated for \\d+ to oping over IPCP ${pid}\\.`),
      5000,
      from,
    );
    await ping(node, "oping", 5, ["-q", "data"]);
    await server.waitFor(/^New flow \d+\.$/);
    await eventually("no flows left", async () => {
      const c = await flowCounts(node);
      return c.irmd === 0 && c.ipcps === 0;
    });
    await noDrops(node, "u1");
    // A name nobody registered fails at once, with the name in the error.
    const t0 = performance.now();
    const r = await node.run("oping", ["-n", "nobody", "-c", "1"], 10_000);
    assert(r.code !== 0, r.stdout);
    assertMatch(r.stdout + r.stderr, /nobody/);
    assert(performance.now() - t0 < 8000, "an unknown name failed slowly");
  } finally {
    await node.close();
  }
});

Deno.test("the flow grant of a unicast layer: maximum packet lifetime 100 ms, and its MTU", async () => {
  const node = await Node.start("uni1-mpl", {
    config: `[unicast.u1]\nbootstrap = "net1"\nreg = ["oping"]\n`,
    ready: /Registered oping with IPCP/,
  });
  try {
    await irm(node, `bind program ${node.bin("oping")} name oping`);
    await startServer(node);
    const conn = await connectCtrl(irmdSocketPath(node.rundir));
    try {
      await conn.request("hello", {
        role: "app",
        pid: Deno.pid,
        prog: "unicast-test",
      }, 5000);
      const grant = await conn.request("flow.alloc", {
        name: "oping",
        qos: QOS_CUBES.raw,
        timeoutMs: 5000,
      }, 10_000);
      assertEquals(grant.mplMs, 100);
      assertEquals(grant.mtu, 8952 - 15);
    } finally {
      conn.close();
      await conn.done;
    }
  } finally {
    await node.close();
  }
});

Deno.test("a one-member unicast layer from a configuration file: [unicast.u1], autostart, autobind, SHA3-512", async () => {
  const node = await Node.start("uni1-conf", {
    config: `[name."oping"]
prog=["@DIR@/bin/oping"]
args=["--listen"]

[unicast.u1]
bootstrap="net1"
hash="SHA3_512"
routing="link_state"
congestion="mb-ecn"
max_ttl=30
reg=["oping"]
autobind=true
`,
    ready: /Registered oping with IPCP/,
  });
  try {
    const pid = await ipcpPid(node, "u1");
    await node.irmd.waitFor(
      new RegExp(
        `Registered oping with IPCP ${pid} as ${
          toHex(nameHashWith("SHA3_512", "oping")).slice(0, 8)
        }\\.`,
      ),
    );
    await node.irmd.waitFor(new RegExp(`Bound IPCP ${pid} to name net1\\.`));
    assertMatch(
      await irm(node, "process list"),
      /u1 \(bound\), net1 \(bound\)/,
    );
    await ping(node, "oping", 5);
    await node.irmd.waitFor(/Instantiated .*\/bin\/oping as process \d+\./);
    await ping(node, "oping", 5, ["-q", "data"]);
  } finally {
    await node.close();
  }
});

Deno.test("a unicast server killed mid-flow: the client's flow goes down at once", async () => {
  const node = await Node.start("uni1-kill", {
    config: `[unicast.u1]\nbootstrap = "net1"\nreg = ["oping"]\n`,
    ready: /Registered oping with IPCP/,
  });
  try {
    await irm(node, `bind program ${node.bin("oping")} name oping`);
    await serverKilledMidFlow(node);
  } finally {
    await node.close();
  }
});

Deno.test("unicast enroll and connect reach the IPCP; a member is not enrolled twice; enrol stanzas are read", async () => {
  const node = await Node.start("uni1-enroll");
  try {
    await irm(node, "ipcp bootstrap type unicast name u1 layer net1");
    // In a layer already: refused by the irmd, the IPCP is not asked.
    const again = await node.run(
      "irm",
      "ipcp enroll name u1 dst u0".split(" "),
    );
    assert(again.code !== 0, "enrolled a bootstrapped IPCP");
    assertMatch(
      again.stderr,
      /^Failed to enroll IPCP: IPCP u1 is already bootstrapped in net1\.$/m,
    );
    // A new IPCP, made for the enrollment, with a layer nobody serves: the
    // IPCP's answer (which names what it could not reach) comes back, and
    // the IPCP goes with its failure.
    const from = node.irmd.lines.length;
    const r = await node.run(
      "irm",
      "ipcp enroll name u2 layer nowhere autobind".split(" "),
      90_000,
    );
    assert(r.code !== 0, `irm ipcp enroll succeeded: ${r.stdout}`);
    assertMatch(
      r.stderr,
      /^Failed to enroll IPCP: .*nowhere.*; IPCP u2, created for this enrollment, was destroyed\.$/m,
    );
    await node.irmd.waitFor(
      /Failed to enroll IPCP \d+ \(u2\) with nowhere: /,
      5000,
      from,
    );
    await node.irmd.waitFor(/Destroyed IPCP \d+\./, 5000, from);
    // Connect: the IPCP is asked and its refusal passed on.
    const c = await node.run(
      "irm",
      "ipcp connect name u1 dst u2 component dt qos voice".split(" "),
      90_000,
    );
    assert(c.code !== 0, `irm ipcp connect succeeded: ${c.stdout}`);
    assertMatch(c.stderr, /^Failed to connect IPCP: .+\.$/m);
    await node.irmd.waitFor(
      /Failed to connect IPCP \d+ \(u1\) to u2 for dt: /,
      5000,
      from,
    );
    // Options that do not fit: refused before anything is created.
    const bad = await node.run(
      "irm",
      "ipcp bootstrap type unicast name u2 layer net2 addr 2".split(" "),
    );
    assert(bad.code !== 0);
    assertMatch(bad.stderr, /flat address policy mandates 4 byte addresses/);
    const badEnroll = await node.run(
      "irm",
      "ipcp enroll name u3 dst u1 type local".split(" "),
    );
    assert(badEnroll.code !== 0);
    assertMatch(badEnroll.stderr, /only unicast IPCPs enroll, not local ones/);
    assertEquals(
      (await irm(node, "ipcp list")).match(/unicast/g)?.length,
      1,
    );
  } finally {
    await node.close();
  }
  const dir = await Deno.makeTempDir({ prefix: "o7s-unicast-test-" });
  try {
    const file = `${dir}/enrol.conf`;
    await Deno.writeTextFile(
      file,
      `[unicast.u2]\nenrol = "u1"\nconn = ["u1"]\n`,
    );
    const ok = await runCommand(LAUNCHER, ["irmd", "--check", "-c", file], {
      timeoutMs: 20_000,
    });
    assertEquals(ok.code, 0, ok.stderr);
    assertMatch(ok.stdout, /IPCP u2 \(unicast\): enrols with "u1"/);
    assertMatch(ok.stdout, /connects to "u1" \(mgmt, then dt, raw\)/);
    await Deno.writeTextFile(
      file,
      `[unicast.u2]\nenrol = "u1"\nrouting = "lfa"\n`,
    );
    const r = await runCommand(LAUNCHER, ["irmd", "--check", "-c", file], {
      timeoutMs: 20_000,
    });
    assert(r.code !== 0, r.stdout);
    assertMatch(
      r.stderr,
      /enrol\.conf:3:1: \[unicast\.u2\] routing: routing is a bootstrap key: /,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the bundle runs a unicast layer: its IPCP loads the protobuf codecs from the one file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "o7s-unicast-bundle-" });
  const procs: Child[] = [];
  try {
    const js = `${dir}/ouroboros.js`;
    const task = JSON.parse(await Deno.readTextFile(`${REPO}deno.json`))
      .tasks.bundle as string;
    const args = task.split(" ").slice(1).map((a) =>
      a === "dist/ouroboros.js" ? js : a
    );
    const b = await runCommand(Deno.execPath(), args, {
      cwd: REPO,
      timeoutMs: 120_000,
    });
    assertEquals(b.code, 0, b.stderr);
    const env = { [RUNDIR_ENV]: `${dir}/run`, NO_COLOR: "1" };
    const run = (a: string[]) => {
      const p = new Child(a[0] ?? "bundle", [
        Deno.execPath(),
        "run",
        "-q",
        "--no-config",
        ...PERMISSION_FLAGS,
        js,
        ...a,
      ], env);
      procs.push(p);
      return p;
    };
    await Deno.writeTextFile(
      `${dir}/irmd.conf`,
      `[name."oping"]\nprog=["/nonexistent/oping"]\n\n[unicast.u1]\nbootstrap="net1"\nreg=["oping"]\n`,
    );
    const irmd = run(["irmd", "-c", `${dir}/irmd.conf`, "--debug"]);
    await irmd.waitFor(/Registered oping with IPCP/, 30_000);
    run(["oping", "-l"]);
    await irmd.waitFor(/This process accepts flows for:/, 15_000);
    const ping = await run(["oping", "-n", "oping", "-c", "2", "-i", "20"])
      .exit(20_000);
    assertEquals(ping.code, 0, ping.stdout + ping.stderr);
    assertMatch(ping.stdout, /2 packets transmitted, 2 received/);
  } finally {
    for (const p of procs.reverse()) await p.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
