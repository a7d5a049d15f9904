/**
 * irm ipcp enroll / connect and the enrol and conn keys of irmd.conf, as
 * far as they go without a second member: a UDP IPCP says it does not
 * enroll nor connect, and a stanza whose enrollment or connection fails
 * stops the irmd as a failed bootstrap does, after the steps before it.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { irm, Node } from "./harness.ts";

Deno.test("irm ipcp enroll and connect of a UDP IPCP: the IPCP's refusal", async () => {
  const node = await Node.start("enroll-udp");
  try {
    await irm(node, "ipcp create name w type udp4");
    const e = await node.run(
      "irm",
      "ipcp enroll name w layer net1".split(" "),
    );
    assertEquals(e.code, 1, e.stdout);
    assertEquals(
      e.stderr.trim(),
      "Failed to enroll IPCP: udp4 IPCPs do not enroll: only a unicast IPCP joins a layer through one of its members; a udp4 IPCP is bootstrapped.",
    );
    const c = await node.run(
      "irm",
      "ipcp connect name w dst u1 component mgmt".split(" "),
    );
    assertEquals(c.code, 1, c.stdout);
    assertEquals(
      c.stderr.trim(),
      "Failed to connect IPCP: udp4 IPCPs do not connect: only a unicast IPCP has N-1 flows to other members; a udp4 IPCP has none.",
    );
    const d = await node.run("irm", "ipcp disconnect name w dst u1".split(" "));
    assertEquals(d.code, 1, d.stdout);
    assertMatch(
      d.stderr,
      /^Failed to disconnect IPCP: dt: udp4 IPCPs do not connect: .*; mgmt: udp4 IPCPs do not connect: .*\.$/,
    );
    // The type given: refused by irm itself.
    const t = await node.run(
      "irm",
      "ipcp enroll name w layer net1 type udp".split(" "),
    );
    assertEquals(t.code, 1);
    assertMatch(
      t.stderr,
      /^irm ipcp enroll: only unicast IPCPs enroll, not udp4 ones/,
    );
    // The IPCP existed before: it stays, created only.
    assertMatch(
      await irm(node, "ipcp list"),
      /\|\s+\d+ \|\s+w \|\s+udp4 \|\s+\|/,
    );
  } finally {
    await node.close();
  }
});

Deno.test("a stanza whose enrollment fails stops the irmd, as a failed bootstrap does", async () => {
  const node = await Node.start("enroll-conf", {
    config: `[unicast.u2]\nenrol = "nowhere"\nautobind = true\n`,
  });
  try {
    await node.irmd.waitFor(
      /irmd\(EE\): Configuration .*irmd\.conf failed: Failed to enroll IPCP u2: .*nowhere/,
      60_000,
    );
    const r = await node.irmd.exit(15_000);
    assertEquals(r.code, 1);
    // Nothing after the enrollment was done.
    assert(!node.irmd.lines.some((l) => /Bound IPCP/.test(l)));
  } finally {
    await node.close();
  }
});

Deno.test("a stanza's steps in order: bootstrap, autobind, reg, then conn, whose failure stops the irmd", async () => {
  const node = await Node.start("conn-conf", {
    config:
      `[unicast.u1]\nconn = ["u9"]\nreg = ["oping"]\nautobind = true\nbootstrap = "net1"\n`,
  });
  try {
    const failed = await node.irmd.waitFor(
      /irmd\(EE\): Configuration .*irmd\.conf failed: Failed to connect IPCP u1 to u9: /,
      60_000,
    );
    const r = await node.irmd.exit(15_000);
    assertEquals(r.code, 1);
    const at = (re: RegExp) => {
      const i = node.irmd.lines.findIndex((l) => re.test(l));
      assert(i >= 0, `no line ${re}:\n${node.irmd.lines.join("\n")}`);
      return i;
    };
    const steps = [
      at(/irmd\(II\): Bootstrapped IPCP \d+ in layer net1\./),
      at(/irmd\(II\): Bound IPCP \d+ to name u1\./),
      at(/irmd\(II\): Bound IPCP \d+ to name net1\./),
      at(/irmd\(II\): Registered oping with IPCP \d+/),
      at(/irmd\(EE\): Failed to connect IPCP \d+ \(u1\) to u9 for mgmt: /),
      node.irmd.lines.indexOf(failed),
    ];
    assertEquals([...steps].sort((a, b) => a - b), steps);
    // mgmt failed: dt was not tried.
    assert(!node.irmd.lines.some((l) => /to u9 for dt/.test(l)));
  } finally {
    await node.close();
  }
});

Deno.test("an enrol stanza's IPCP that dies is enrolled and connected again", async () => {
  // Tutorial 2 from a file: a unicast layer of two members over a local
  // layer, the second enrolled with the layer's name and connected.
  const node = await Node.start("enroll-restart", {
    config: `[local.local-ipcp]
bootstrap = "local-layer"
reg = ["uni-1", "unicast-layer", "uni-2"]

[unicast.uni-1]
bootstrap = "unicast-layer"
autobind = true

[unicast.uni-2]
enrol = "unicast-layer"
autobind = true
conn = ["uni-1"]
`,
    ready: /Connected IPCP \d+ to uni-1 for dt/,
  });
  try {
    assertMatch(
      await irm(node, "ipcp list"),
      /\|\s+(\d+) \|\s+uni-2 \|\s+unicast \|\s+unicast-layer \|/,
    );
    const pid = Number(
      /\|\s+(\d+) \|\s+uni-2 \|/.exec(await irm(node, "ipcp list"))![1],
    );
    const from = node.irmd.lines.length;
    Deno.kill(pid, "SIGKILL");
    await node.irmd.waitFor(/IPCP uni-2 restarted as \d+\./, 60_000, from);
    const again = await node.irmd.waitFor(
      /Enrolled IPCP \d+ in layer unicast-layer\./,
      5000,
      from,
    );
    assert(!again.includes(`IPCP ${pid} `), again);
    await node.irmd.waitFor(
      /Connected IPCP \d+ to uni-1 for dt/,
      30_000,
      from,
    );
    const list = await irm(node, "ipcp list");
    assertMatch(list, /\|\s+\d+ \|\s+uni-2 \|\s+unicast \|\s+unicast-layer \|/);
    assert(!list.includes(`| ${String(pid).padStart(7)} |`), list);
    // Its bindings were made again.
    assertMatch(await irm(node, "process list"), /uni-2 \(bound\)/);
  } finally {
    await node.close();
  }
});
