/**
 * The UDP IPCP's data path as a process shows it: a thread of its own (from
 * the source and from the bundle), the UDP socket buffers it asks for (the
 * configuration key, the irm option, the default, and the warning when the
 * kernel gives less), no descriptor left behind by flows, and an IPCP that
 * ends at once when stopped in the middle of a flood.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import {
  irmdRequest,
  Node,
  Proc,
  tutorialHosts,
  tutorialServerConfig,
} from "./harness.ts";
import { buildBundle } from "../tools/demo.ts";
import { PERMISSION_FLAGS, selfCommand } from "../lib/util/self.ts";
import { RUNDIR_ENV } from "../lib/ipc/rundir.ts";
import { DEFAULT_SOCKET_BUFFER } from "../lib/ipc/proto.ts";

const PORT = 3935;

function udpConfig(ip: string, extra = ""): string {
  return `[udp.dp]\nbootstrap="dp-layer"\nip="${ip}"\nport=${PORT}\n${extra}`;
}

/** The data path's thread, from the IPCP's log line, checked in /proc. */
async function datapathThread(irmd: Proc, ipcpPid: number): Promise<number> {
  const line = await irmd.waitFor(
    new RegExp(`==0*${ipcpPid}== .*Data path running in thread (\\d+)\\.`),
    60_000,
  );
  const tid = Number(/thread (\d+)\./.exec(line)?.[1]);
  assert(tid !== ipcpPid, "the data path runs in the IPCP's main thread");
  // A thread of the IPCP process, and a Worker's (Deno names them so).
  const comm = (await Deno.readTextFile(`/proc/${ipcpPid}/task/${tid}/comm`))
    .trim();
  assertMatch(comm, /^worker-\d+$/);
  return tid;
}

async function ipcpPidOf(node: Node): Promise<number> {
  return (await irmdRequest(node, "irm.ipcp.stats", {})).ipcps[0]!.pid;
}

function openFds(pid: number): number {
  return [...Deno.readDirSync(`/proc/${pid}/fd`)].length;
}

/** Whether the process is gone (or a zombie waiting for its parent). */
function ended(pid: number): boolean {
  try {
    return /^State:\s+Z/m.test(Deno.readTextFileSync(`/proc/${pid}/status`));
  } catch {
    return true;
  }
}

async function echoServer(node: Node, label: string): Promise<Proc> {
  const from = node.irmd.lines.length;
  const p = node.spawnPath(node.bin("oping"), ["-l", "-Q"], label);
  await node.irmd.waitFor(/This process accepts flows for:/, 10_000, from);
  return p;
}

Deno.test("the data path runs in a thread of its own; flows leave no descriptor behind; an IPCP stopped mid-flood ends at once", async () => {
  const server = await Node.start("dp-server", {
    config: tutorialServerConfig("127.0.0.91", `port=${PORT}\n`),
    hosts: tutorialHosts("127.0.0.91"),
    ready: /Registered oping-server2 with IPCP/,
  });
  let client: Node | undefined;
  try {
    client = await Node.start("dp-client", {
      config: udpConfig("127.0.0.92", `hosts="@DIR@/hosts"\n`),
      hosts: tutorialHosts("127.0.0.91"),
      ready: /Bootstrapped IPCP \d+ in layer/,
    });
    const sPid = await ipcpPidOf(server);
    const cPid = await ipcpPidOf(client);
    await datapathThread(server.irmd, sPid);
    await datapathThread(client.irmd, cPid);
    // Flows come and go: the IPCPs hold as many descriptors as before,
    // once the applications that held them are gone.
    const serverFds = openFds(sPid);
    const echo = await echoServer(server, "dp-server/oping-l");
    const ping = () =>
      client!.run("oping", ["-n", "oping-server", "-c", "3", "-i", "0", "-Q"]);
    assertEquals((await ping()).code, 0); // the first allocation warms up
    const clientFds = openFds(cPid);
    for (let i = 0; i < 10; i++) {
      const r = await ping();
      assertEquals(r.code, 0, r.stdout + r.stderr);
    }
    // The echo server keeps its ends of the flows: killed, it lets them go.
    echo.kill("SIGKILL");
    await echo.status;
    const deadline = Date.now() + 5000;
    while (
      (openFds(sPid) !== serverFds || openFds(cPid) !== clientFds) &&
      Date.now() < deadline
    ) await new Promise((r) => setTimeout(r, 50));
    assertEquals([openFds(sPid), openFds(cPid)], [serverFds, clientFds]);
    await echoServer(server, "dp-server/oping-l2");

    // A flood, and the client's IPCP told to stop in its middle.
    const flood = client.spawn("oping", [
      "-n",
      "oping-server",
      "-f",
      "-c",
      "10000000",
      "-Q",
    ]);
    const t0 = Date.now();
    for (;;) {
      const st = await irmdRequest(client, "irm.ipcp.stats", {});
      if (st.ipcps[0]!.flows > 0) break;
      assert(Date.now() - t0 < 10_000, "the flood did not start");
      await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, 500));
    const from = client.irmd.lines.length;
    const stoppedAt = Date.now();
    Deno.kill(cPid, "SIGTERM");
    while (!ended(cPid)) {
      assert(
        Date.now() - stoppedAt < 5000,
        "the IPCP did not end within 5 s of SIGTERM mid-flood",
      );
      await new Promise((r) => setTimeout(r, 20));
    }
    // The flood's flow went down with its IPCP: oping ends (and says so).
    const st = await flood.exit(10_000);
    assertMatch(st.stdout + st.stderr, /ping statistics|down|IPCP/);
    const log = client.irmd.lines.slice(from).join("\n");
    assert(!/did not stop within/.test(log), log);
  } finally {
    await client?.close();
    await server.close();
  }
});

Deno.test("socket buffers: the configuration's sizes, the default, irm ipcp bootstrap's, shown by irm ipcp stats", async () => {
  const node = await Node.start("dp-buffers", {
    config: udpConfig("127.0.0.93", "rcvbuf=16777216\nsndbuf=524288\n"),
    ready: /Bootstrapped IPCP \d+ in layer/,
  });
  try {
    // As root the IPCP gets what it asks (SO_RCVBUFFORCE), beyond
    // net.core.rmem_max; Linux reports twice that.
    const root = Deno.uid() === 0;
    const rcv = root ? 33554432 : undefined;
    await node.irmd.waitFor(
      new RegExp(
        `UDP socket buffers: receive ${
          rcv ?? "\\d+"
        } bytes, send 1048576 bytes \\(asked for 16777216 and 524288`,
      ),
    );
    let stats = await irmdRequest(node, "irm.ipcp.stats", {});
    const got = stats.ipcps[0]!.socket!;
    assertEquals(got.sndbuf, 1048576);
    if (rcv !== undefined) assertEquals(got.rcvbuf, rcv);
    const irm = await node.run("irm", ["ipcp", "stats"]);
    assertMatch(
      irm.stdout,
      new RegExp(
        `IPCP dp: UDP socket buffers of ${got.rcvbuf} bytes \\(receive\\) and 1048576 bytes \\(send\\)`,
      ),
    );
    // irm ipcp bootstrap: the default, and the options.
    for (
      const [name, ip, opts, rcv, snd] of [
        [
          "dflt",
          "127.0.0.94",
          [],
          2 * DEFAULT_SOCKET_BUFFER,
          2 * DEFAULT_SOCKET_BUFFER,
        ],
        [
          "opts",
          "127.0.0.95",
          ["rcvbuf", "65536", "sndbuf", "32768"],
          131072,
          65536,
        ],
      ] as const
    ) {
      const r = await node.run("irm", [
        "ipcp",
        "bootstrap",
        "name",
        name,
        "layer",
        `${name}-layer`,
        "type",
        "udp",
        "ip",
        ip,
        "port",
        String(PORT),
        ...opts,
      ]);
      assertEquals(r.code, 0, r.stdout + r.stderr);
      stats = await irmdRequest(node, "irm.ipcp.stats", { name });
      const got = stats.ipcps[0]!.socket!;
      if (root || opts.length > 0) {
        assertEquals(got, { rcvbuf: rcv, sndbuf: snd });
      } else {
        assert(got.rcvbuf > 0 && got.rcvbuf <= rcv, JSON.stringify(got));
      }
    }
  } finally {
    await node.close();
  }
});

Deno.test("socket buffers: without CAP_NET_ADMIN the kernel caps them, and the IPCP warns", async () => {
  const rmemMax = Number(
    (await Deno.readTextFile("/proc/sys/net/core/rmem_max")).trim(),
  );
  const ask = Math.max(rmemMax + 65536, 1 << 20);
  const dir = await Deno.makeTempDir({ prefix: "o7s-dp-caps-" });
  let irmd: Proc | undefined;
  try {
    await Deno.writeTextFile(
      `${dir}/irmd.conf`,
      udpConfig("127.0.0.96", `rcvbuf=${ask}\n`),
    );
    // The irmd and the IPCP it starts without CAP_NET_ADMIN, as any user.
    irmd = new Proc("dp-caps/irmd", [
      "setpriv",
      "--inh-caps=-net_admin",
      "--bounding-set=-net_admin",
      "--",
      ...selfCommand("irmd", [
        "--rundir",
        `${dir}/run`,
        "-c",
        `${dir}/irmd.conf`,
        "--debug",
      ]),
    ], { [RUNDIR_ENV]: `${dir}/run`, NO_COLOR: "1" });
    const warning = await irmd.waitFor(
      /The UDP socket's receive buffer is \d+ bytes, not the \d+ asked for/,
      20_000,
    );
    assertMatch(
      warning,
      new RegExp(
        `receive buffer is ${2 * rmemMax} bytes, not the ${
          2 * ask
        } asked for \\(${ask}, doubled by Linux\\): net\\.core\\.rmem_max \\(${rmemMax}\\) caps it`,
      ),
    );
    assertMatch(warning, /sysctl -w net\.core\.rmem_max=/);
    await irmd.waitFor(/Bootstrapped IPCP \d+ in layer/, 10_000);
  } finally {
    await irmd?.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the bundle's IPCP runs its data path in a Worker of the bundle itself", async () => {
  const dir = await Deno.makeTempDir({ prefix: "o7s-dp-bundle-" });
  const procs: Proc[] = [];
  try {
    const js = `${dir}/ouroboros.js`;
    await buildBundle(js);
    const env = { [RUNDIR_ENV]: `${dir}/run`, NO_COLOR: "1" };
    const run = (args: string[]) => {
      const p = new Proc(args[0] ?? "bundle", [
        Deno.execPath(),
        "run",
        "-q",
        "--no-config",
        ...PERMISSION_FLAGS,
        js,
        ...args,
      ], env);
      procs.push(p);
      return p;
    };
    await Deno.writeTextFile(`${dir}/hosts`, tutorialHosts("127.0.0.97"));
    await Deno.writeTextFile(
      `${dir}/irmd.conf`,
      `[name."oping-server"]\nprog=["/nonexistent/oping"]\n\n` +
        udpConfig("127.0.0.97", `hosts="${dir}/hosts"\nreg=["oping-server"]\n`),
    );
    const irmd = run(["irmd", "-c", `${dir}/irmd.conf`, "--debug"]);
    await irmd.waitFor(/Registered oping-server with IPCP/, 30_000);
    const pid = Number(
      /Created IPCP (\d+)\./.exec(
        await irmd.waitFor(/Created IPCP \d+\./),
      )?.[1],
    );
    // The IPCP is the bundle (not main.ts), and so is its data path.
    const cmdline = (await Deno.readTextFile(`/proc/${pid}/cmdline`)).split(
      "\0",
    );
    assert(cmdline.includes(js), cmdline.join(" "));
    assert(!cmdline.some((a) => a.endsWith("/main.ts")), cmdline.join(" "));
    await datapathThread(irmd, pid);
    run(["oping", "-l"]);
    await irmd.waitFor(/This process accepts flows for:/, 10_000);
    const ping = await run([
      "oping",
      "-n",
      "oping-server",
      "-c",
      "3",
      "-i",
      "0",
    ])
      .exit();
    assertEquals(ping.code, 0, ping.stdout + ping.stderr);
    assertMatch(ping.stdout, /3 packets transmitted, 3 received/);
  } finally {
    for (const p of procs.reverse()) await p.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
