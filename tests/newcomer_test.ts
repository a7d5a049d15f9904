/**
 * What a new user meets in the first hour, end to end: configuration files
 * that are not small text files, missing files the configuration names,
 * refusals that say why, no irmd, a runtime directory in the way, a failed
 * bootstrap, a peer that does not answer, and the command-line conventions.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import {
  irmdRequest,
  Node,
  nodePair,
  Proc,
  tutorialClientConfig,
  tutorialHosts,
} from "./harness.ts";
import { selfCommand } from "../lib/util/self.ts";

/** Runs `ouroboros <sub> <args>` outside any node, to its end. */
async function runOnce(
  sub: string | undefined,
  args: string[],
  timeoutMs = 15_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  // (With the configuration file: irmd --check loads the TOML parser.)
  const cmd = sub === undefined
    ? selfCommand("irmd", [], { npm: true }).slice(0, -1) // no subcommand
    : selfCommand(sub, args, { npm: true });
  const p = new Proc(sub ?? "ouroboros", cmd, { NO_COLOR: "1" });
  return await p.exit(timeoutMs);
}

Deno.test("irmd --check refuses a device and a huge file at once, with one line", async () => {
  const dir = await Deno.makeTempDir({ prefix: "o7s-newcomer-" });
  try {
    const zero = await runOnce("irmd", ["--check", "-c", "/dev/zero"], 10_000);
    assertEquals(zero.code, 1);
    assertEquals(
      zero.stderr,
      "irmd: /dev/zero: cannot read: a character device, not a configuration file",
    );
    const big = `${dir}/big.conf`;
    await Deno.writeTextFile(big, "#".repeat(2 << 20));
    const r = await runOnce("irmd", ["--check", "-c", big], 10_000);
    assertEquals(r.code, 1);
    assertMatch(
      r.stderr,
      /^irmd: .*big\.conf: too large \(\d+ bytes; the limit is 1 MiB\)$/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("irmd --check and start-up warn of a missing hosts file and program; a TOML slip says what was meant", async () => {
  const dir = await Deno.makeTempDir({ prefix: "o7s-newcomer-" });
  try {
    const conf = `${dir}/t.conf`;
    await Deno.writeTextFile(
      conf,
      `[name."oping-server"]
prog=["${dir}/no-such-oping"]
args=["--listen"]

[udp.wifi1]
bootstrap="wifi"
ip="127.0.0.1"
hosts="${dir}/hosts"
`,
    );
    const r = await runOnce("irmd", ["--check", "-c", conf]);
    assertEquals(r.code, 0, r.stderr);
    assertMatch(r.stdout, /Configuration OK/);
    const warnings = r.stderr.split("\n");
    assertEquals(warnings.length, 2, r.stderr);
    assertMatch(
      warnings[0]!,
      /t\.conf:2:1: warning: \[name\."oping-server"\] prog: .*no-such-oping does not exist/,
    );
    assertMatch(
      warnings[1]!,
      /t\.conf:8:1: warning: \[udp\.wifi1\] hosts: .*hosts does not exist/,
    );
    await Deno.writeTextFile(`${dir}/bad.conf`, '[udp.wifi1\nip="1"\n');
    const bad = await runOnce("irmd", ["--check", "-c", `${dir}/bad.conf`]);
    assertEquals(bad.code, 1);
    assertMatch(
      bad.stderr,
      /bad\.conf:1:\d+: .*probably an unclosed table header/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a missing layer hosts file: the irmd warns at start, an allocation says the file cannot be read", async () => {
  const node = await Node.start("nohosts", {
    config: `[udp.wifi1]
bootstrap="wifi"
ip="127.0.0.2"
hosts="@DIR@/no-hosts"
`,
    ready: /Bootstrapped IPCP \d+ in layer/,
  });
  try {
    await node.irmd.waitFor(
      /irmd.conf:4:1: \[udp\.wifi1\] hosts: .*no-hosts does not exist/,
    );
    const r = await node.run("oping", ["-n", "oping-server", "-c", "1"]);
    assertEquals(r.code, 1);
    assertMatch(
      r.stdout + r.stderr,
      /cannot read the layer's hosts file .*no-hosts: no such file/,
    );
    // A file that appears later is used.
    await Deno.writeTextFile(
      `${node.dir}/no-hosts`,
      tutorialHosts("127.0.0.9"),
    );
    const later = await node.run("oping", [
      "-n",
      "oping-server",
      "-c",
      "1",
      "--timeout",
      "300ms",
      "-Q",
    ]);
    assertMatch(later.stdout + later.stderr, /timed out|Failed to allocate/);
    assert(!/hosts file/.test(later.stdout + later.stderr), later.stdout);
  } finally {
    await node.close();
  }
});

Deno.test("refusals name their cause: nobody accepting, autostart that cannot start", async () => {
  const hosts = tutorialHosts("127.0.0.1");
  const { server, client, close } = await nodePair(
    {
      label: "refuser",
      options: {
        config: `[name."oping-server"]
prog=["@DIR@/bin/oping"]

[name."oping-server2"]
prog=["@DIR@/no-such-program"]
args=["--listen"]

[udp.wifi1]
bootstrap="wifi-network"
ip="127.0.0.1"
hosts="@DIR@/hosts"
reg=["oping-server", "oping-server2"]
`,
        hosts,
        ready: /Registered oping-server2 with IPCP/,
      },
    },
    {
      label: "asker",
      options: {
        config: tutorialClientConfig("127.0.0.2"),
        hosts,
        ready: /Bootstrapped IPCP \d+ in layer/,
      },
    },
  );
  try {
    const a = await client.run("oping", ["-n", "oping-server", "-c", "1"]);
    assertEquals(a.code, 1);
    assertMatch(
      a.stdout,
      /the peer refused the flow: no process accepts flows for this name at the peer \(start a server .*\) \(-111\)/,
    );
    const b = await client.run("oping", ["-n", "oping-server2", "-c", "1"]);
    assertEquals(b.code, 1);
    assertMatch(
      b.stdout,
      /the peer refused the flow: the peer could not autostart a program for this name .*\(-8\)/,
    );
    await server.irmd.waitFor(
      /Autostart for oping-server2 failed \(.*no-such-program: no such program\)/,
    );
  } finally {
    await close();
  }
});

Deno.test("runtime directory: a file in the way, and too long a path, say so and create nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "o7s-newcomer-" });
  try {
    await Deno.writeTextFile(`${dir}/file`, "");
    const r = await runOnce("irmd", ["--rundir", `${dir}/file`], 10_000);
    assertEquals(r.code, 1);
    assertMatch(
      r.stdout + r.stderr,
      /runtime directory .*file is not a directory/,
    );
    const long = `${dir}/${"d".repeat(90)}`;
    const l = await runOnce("irmd", ["--rundir", long], 10_000);
    assertEquals(l.code, 1);
    assertMatch(l.stdout + l.stderr, /longer than 107 bytes/);
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), ["file"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a failed bootstrap destroys the IPCP it created, keeps one that existed, and says it once", async () => {
  const blocker = Deno.listenDatagram({
    transport: "udp",
    hostname: "127.0.0.1",
    port: 0,
  });
  const port = (blocker.addr as Deno.NetAddr).port;
  const node = await Node.start("boot");
  try {
    const r = await node.run("irm", [
      "ipcp",
      "bootstrap",
      "type",
      "udp4",
      "name",
      "y",
      "layer",
      "l",
      "ip",
      "127.0.0.1",
      "port",
      String(port),
    ]);
    assertEquals(r.code, 1);
    const lines = r.stderr.split("\n");
    assertEquals(lines.length, 1, r.stderr);
    assertMatch(
      lines[0]!,
      /^Failed to bootstrap IPCP: .*; IPCP y, created for this bootstrap, was destroyed\.$/,
    );
    assertEquals((lines[0]!.match(/Failed to bootstrap/g) ?? []).length, 1);
    let list = await irmdRequest(node, "irm.ipcp.list", {});
    assertEquals(list.ipcps.map((i) => i.name), []);
    // An IPCP created before a failed bootstrap stays.
    assertEquals(
      (await node.run("irm", ["ipcp", "create", "type", "udp4", "name", "z"]))
        .code,
      0,
    );
    const z = await node.run("irm", [
      "ipcp",
      "bootstrap",
      "name",
      "z",
      "layer",
      "l",
      "ip",
      "127.0.0.1",
      "port",
      String(port),
    ]);
    assertEquals(z.code, 1);
    assert(!/destroyed/.test(z.stderr), z.stderr);
    list = await irmdRequest(node, "irm.ipcp.list", {});
    assertEquals(list.ipcps.map((i) => i.name), ["z"]);
  } finally {
    blocker.close();
    await node.close();
  }
});

Deno.test("a peer that does not answer: one FLOW_REQ, a progress line after 2 s, the --timeout", async () => {
  const peer = Deno.listenDatagram({
    transport: "udp",
    hostname: "127.0.0.1",
    port: 0,
  });
  const port = (peer.addr as Deno.NetAddr).port;
  const received: number[] = [];
  const reading = (async () => {
    try {
      for (;;) {
        const [d] = await peer.receive();
        received.push(d.length);
      }
    } catch { /* closed */ }
  })();
  const node = await Node.start("waiter", {
    config: `[udp.wifi1]
bootstrap="wifi"
ip="127.0.0.2"
port=${port}
hosts="@DIR@/hosts"
`,
    hosts: tutorialHosts("127.0.0.1"),
    ready: /Bootstrapped IPCP \d+ in layer/,
  });
  try {
    const t0 = performance.now();
    const r = await node.run("oping", [
      "-n",
      "oping-server",
      "-c",
      "1",
      "--timeout",
      "3s",
    ]);
    const ms = performance.now() - t0;
    assertEquals(r.code, 1);
    assertMatch(
      r.stderr,
      /^Still waiting for oping-server to answer the flow allocation \(giving up in 1\.0 s; --timeout sets how long\)\.\.\.$/,
    );
    assertMatch(r.stdout, /Failed to allocate flow: .*/);
    assert(ms >= 3000, `gave up after ${ms.toFixed(0)} ms, before its timeout`);
    // One request, never repeated: a C peer would refuse a repeat as a replay.
    assertEquals(received.length, 1, `FLOW_REQs: ${received.length}`);
    // -Q: no progress line.
    const q = await node.run("oping", [
      "-n",
      "oping-server",
      "-c",
      "1",
      "--timeout",
      "2500ms",
      "-Q",
    ]);
    assertEquals(q.code, 1);
    assertEquals(q.stderr, "");
  } finally {
    await node.close();
    peer.close();
    await reading;
  }
});

Deno.test("command-line conventions: usage errors, no arguments, help, ipcpd-udp's name", async () => {
  const e = await runOnce("oping", ["-c", "x", "-n", "a"]);
  assertEquals(e.code, 2);
  assertEquals(
    e.stderr,
    `oping: -c: "x" is not a whole number\nTry 'oping --help'.`,
  );
  assertEquals(e.stdout, "");
  const c = await runOnce("ocbr", ["--bogus"]);
  assertEquals(c.code, 2);
  assertEquals(c.stderr, `ocbr: unknown option "--bogus"\nTry 'ocbr --help'.`);
  const none = await runOnce(undefined, []);
  assertEquals(none.code, 2);
  assertEquals(none.stdout, "");
  assertMatch(none.stderr, /Usage: ouroboros <command>/);
  for (const h of ["help", "--help"]) {
    const r = await runOnce(h, []);
    assertEquals(r.code, 0);
    assertMatch(r.stdout, /Usage: ouroboros <command>/);
  }
  const udp = await runOnce("ipcpd-udp", ["--help"]);
  assertEquals(udp.code, 0);
  assertMatch(udp.stdout, /^Usage: ouroboros ipcpd-udp --name/);
  const i0 = await runOnce("oping", ["-n", "x", "-i", "0", "-d", "1s"]);
  assertEquals(i0.code, 2);
  assertMatch(i0.stderr, /-d needs an interval above 0/);
  const busyClient = await runOnce("oping", ["-n", "x", "--busy"]);
  assertEquals(busyClient.code, 2);
  assertMatch(busyClient.stderr, /--busy is a server option/);
});

Deno.test("oping -i 0, -F, and servers with --poll and --busy; irm process list shows bound names", async () => {
  const hosts = tutorialHosts("127.0.0.1");
  const { server, client, close } = await nodePair(
    {
      label: "pollserver",
      options: {
        config: `[name."oping-server"]
prog=["@DIR@/bin/oping"]

[udp.wifi1]
bootstrap="wifi-network"
ip="127.0.0.1"
hosts="@DIR@/hosts"
reg=["oping-server"]
`,
        hosts,
        ready: /Registered oping-server with IPCP/,
      },
    },
    {
      label: "pollclient",
      options: {
        config: tutorialClientConfig("127.0.0.2"),
        hosts,
        ready: /Bootstrapped IPCP \d+ in layer/,
      },
    },
  );
  try {
    for (const mode of ["--poll", "--busy", undefined]) {
      const s = server.spawnPath(
        server.bin("oping"),
        mode === undefined ? ["-l"] : ["-l", mode],
        `pollserver/oping -l ${mode ?? ""}`,
      );
      await s.waitFor(/Ouroboros ping server started/);
      const runs: string[][] = mode === undefined
        ? [["-i", "0", "-c", "200", "-Q"], ["-F", "-c", "200", "-Q"]]
        : [["-f", "-c", "100", "-Q"]];
      for (const args of runs) {
        const r = await client.run("oping", ["-n", "oping-server", ...args]);
        assertEquals(r.code, 0, `${mode} ${args.join(" ")}: ${r.stdout}`);
        const count = args[args.indexOf("-c") + 1];
        assertMatch(
          r.stdout,
          new RegExp(`${count} packets transmitted, ${count} received`),
        );
      }
      if (mode === undefined) {
        // Bound to a name of its own: shown, and marked.
        const bind = await server.run("irm", [
          "name",
          "create",
          "oping-server2",
        ]);
        assertEquals(bind.code, 0, bind.stderr);
        const b = await server.run("irm", [
          "bind",
          "process",
          String(s.pid),
          "name",
          "oping-server2",
        ]);
        assertEquals(b.code, 0, b.stderr);
        const list = await server.run("irm", ["process", "list"]);
        assertMatch(
          list.stdout,
          new RegExp(`${s.pid} .*oping-server2 \\(bound\\), oping-server `),
        );
      }
      await s.stop();
    }
  } finally {
    await close();
  }
});
