/**
 * Faults: a server process, an IPCP or the irmd killed with SIGKILL, and a
 * clean shutdown. Nothing hangs, every error is explicit, and what can come
 * back does.
 */
import {
  assert,
  assertEquals,
  assertMatch,
  assertNotEquals,
  assertRejects,
} from "./assert.ts";
import { type Node, tutorialServer } from "./harness.ts";
import { Ouroboros } from "../lib/app/dev.ts";
import { QOS_CUBES } from "../lib/wire/udp_wire.ts";
import {
  ECHO_REPLY,
  ECHO_REQUEST,
  encodeOping,
  newOpingPacket,
} from "../lib/wire/oping_msg.ts";

const READY = /Registered oping-server2 with IPCP/;

function echoRequest(id: number): Uint8Array {
  const p = newOpingPacket(64);
  encodeOping(p, { type: ECHO_REQUEST, id, sec: 0n, nsec: 0n });
  return p;
}

function pidAlive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/** `p`, or an error once `ms` have passed. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) =>
        timer = setTimeout(
          () => reject(new Error(`no ${what} within ${ms} ms`)),
          ms,
        )
      ),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Waits (polling /proc, with a deadline) for a process that is not ours to end. */
async function waitGone(pid: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (pidAlive(pid) && !isZombie(pid)) {
    if (Date.now() > deadline) {
      throw new Error(`process ${pid} still runs after ${timeoutMs} ms`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

function isZombie(pid: number): boolean {
  try {
    return / Z /.test(
      Deno.readTextFileSync(`/proc/${pid}/stat`).replace(/^.*\)/, ""),
    );
  } catch {
    return false;
  }
}

async function ipcpPid(node: Node): Promise<number> {
  const r = await node.run("irm", ["ipcp", "list"]);
  const m = /\|\s+(\d+) \|\s+wifi1 \|/.exec(r.stdout);
  assert(m !== null, `no IPCP wifi1 in:\n${r.stdout}${r.stderr}`);
  return Number(m[1]);
}

async function startServer(node: Node): Promise<number> {
  const from = node.irmd.lines.length;
  const s = node.spawnPath(node.bin("oping"), ["-l"], `${node.label}/oping-l`);
  await node.irmd.waitFor(/This process accepts flows for:/, 10_000, from);
  return s.pid;
}

Deno.test("a server killed mid-flow: the peer's flow goes down, the irmd forgets it, autostart serves the next", async () => {
  const node = await tutorialServer("srvkill");
  const app = await Ouroboros.connect({
    rundir: node.rundir,
    prog: "reliability-test",
  });
  try {
    const serverPid = await startServer(node);
    const flow = await app.allocate("oping-server", {
      qos: { ...QOS_CUBES.raw, timeout: 1500 },
      timeoutMs: 5000,
    });
    await flow.write(echoRequest(0));
    const reply = await flow.read({ timeoutMs: 5000 });
    assertEquals(
      new DataView(reply.buffer, reply.byteOffset).getUint32(0),
      ECHO_REPLY,
    );

    const from = node.irmd.lines.length;
    Deno.kill(serverPid, "SIGKILL");
    const killedAt = performance.now();
    // The flow's peer is gone: reads end with flow_down once the flow's
    // 1.5 s timeout has passed without a keepalive. Watched from now on.
    const down = flow.read({ timeoutMs: 15_000 }).then(
      () => new Error("a packet arrived on the flow of a dead server"),
      (e: unknown) => ({ e, at: performance.now() }),
    );
    // The next client, at once: the irmd has removed the dead process
    // (its control connection ended) before this allocation, so it starts
    // a server rather than hand the flow to the dead one.
    const r = await node.run("oping", ["-n", "oping-server", "-c", "1"]);
    assertEquals(r.code, 0, r.stdout + r.stderr);
    const died = await node.irmd.waitFor(
      new RegExp(`Process ${serverPid} died\\.`),
      5000,
      from,
    );
    const started = await node.irmd.waitFor(
      /Instantiated .* as process (\d+)\./,
      5000,
      from,
    );
    const line = await node.irmd.waitFor(
      /Flow \d+ accepted by \d+ for oping-server\./,
      5000,
      from,
    );
    const at = (l: string) => node.irmd.lines.indexOf(l, from);
    assert(at(died) < at(started), "the dead server was removed after");
    assertEquals(
      /accepted by (\d+)/.exec(line)![1],
      /process (\d+)/.exec(started)![1],
    );
    const gone = await down;
    if (gone instanceof Error) throw gone;
    assertMatch(String(gone.e), /down/);
    assertEquals((gone.e as { code?: string }).code, "flow_down");
    // Within the flow's timeout, not the read's 15 s nor the 120 s default:
    // 1.5 s, a 250 ms check, and a margin for a loaded machine.
    const tookMs = gone.at - killedAt;
    assert(tookMs < 1500 + 3000, `flow_down after ${tookMs.toFixed(0)} ms`);
    await flow.close();
    assertNotEquals(Number(/accepted by (\d+)/.exec(line)![1]), serverPid);
  } finally {
    await app.close();
    await node.close();
  }
});

Deno.test("an IPCP killed: flows over it end, it leaves the list, and the configured IPCP comes back", async () => {
  const node = await tutorialServer("ipcpkill");
  const app = await Ouroboros.connect({
    rundir: node.rundir,
    prog: "reliability-test",
  });
  try {
    await startServer(node);
    const flow = await app.allocate("oping-server", { timeoutMs: 5000 });
    await flow.write(echoRequest(0));
    await flow.read({ timeoutMs: 5000 });
    const old = await ipcpPid(node);
    const from = node.irmd.lines.length;
    Deno.kill(old, "SIGKILL");
    await node.irmd.waitFor(
      new RegExp(`IPCP ${old} \\(wifi1\\) died \\(SIGKILL\\)\\.`),
      5000,
      from,
    );
    // The application's flow ends with an explicit error, at once (its data
    // connection to the IPCP ended), not when the read's deadline passes.
    const e = await assertRejects(() => flow.read({ timeoutMs: 5000 }), /down/);
    assertEquals((e as { code?: string }).code, "flow_down");
    await flow.close();
    // Restarted, bootstrapped and registered again.
    const back = await node.irmd.waitFor(
      /IPCP wifi1 restarted as (\d+)\./,
      10_000,
      from,
    );
    const fresh = Number(/as (\d+)/.exec(back)![1]);
    assertNotEquals(fresh, old);
    assertEquals(await ipcpPid(node), fresh);
    await node.irmd.waitFor(
      new RegExp(`Registered oping-server2 with IPCP ${fresh}`),
      5000,
      from,
    );
    const r = await node.run("oping", ["-n", "oping-server", "-c", "1"]);
    assertEquals(r.code, 0, r.stdout + r.stderr);
  } finally {
    await app.close();
    await node.close();
  }
});

Deno.test("the irmd killed: IPCPs exit, applications learn it, a new irmd starts clean", async () => {
  const node = await tutorialServer("irmdkill");
  const app = await Ouroboros.connect({
    rundir: node.rundir,
    prog: "reliability-test",
  });
  try {
    const serverPid = await startServer(node);
    const server = node.procs.find((p) => p.pid === serverPid)!;
    const flow = await app.allocate("oping-server", { timeoutMs: 5000 });
    const ipcp = await ipcpPid(node);
    node.irmd.kill("SIGKILL");
    // Each learns it from its control connection ending, an event: the
    // deadlines below are for a loaded machine, far below the timeouts
    // (10 s and more) that would otherwise end them.
    // The IPCP (whose output still reaches us) notices and exits.
    await node.irmd.waitFor(/The irmd went away; IPCP exiting\./, 5000);
    // The application: its session ends, its flow goes down, new calls fail clearly.
    await within(app.done, 5000, "the application's session to end");
    await assertRejects(() => flow.read({ timeoutMs: 1000 }), /down/);
    await flow.close();
    await assertRejects(
      () => app.allocate("oping-server"),
      /IPC Resource Manager daemon/,
    );
    const srv = await server.exit(5000);
    assertEquals(srv.code, 1);
    assertMatch(srv.stdout + srv.stderr, /IPC Resource Manager daemon/);
    assertEquals((await node.irmd.status).signal, "SIGKILL");
    await waitGone(ipcp, 5000);
    // A new irmd on the same runtime directory cleans up and works.
    const next = node.spawn("irmd", [
      "--rundir",
      node.rundir,
      "-c",
      `${node.dir}/irmd.conf`,
      "--debug",
    ], "irmdkill/irmd2");
    await next.waitFor(/Removed \d+ stale socket/, 5000);
    await next.waitFor(READY, 10_000);
    const ping = await node.run("oping", ["-n", "oping-server", "-c", "1"]);
    assertEquals(ping.code, 0, ping.stdout + ping.stderr);
  } finally {
    await app.close();
    await node.close();
  }
});

Deno.test("clean shutdown: SIGTERM ends the IPCPs and started programs, removes the sockets, exits 0", async () => {
  const node = await tutorialServer("shutdown");
  try {
    const ipcp = await ipcpPid(node);
    // Autostart a server so that the irmd has a program of its own to end.
    const r = await node.run("oping", ["-n", "oping-server", "-c", "1"]);
    assertEquals(r.code, 0, r.stdout + r.stderr);
    const started = Number(
      /process (\d+)/.exec(
        await node.irmd.waitFor(/Instantiated .* as process \d+\./),
      )![1],
    );
    const st = await node.irmd.stop(8000);
    assertEquals(st.code, 0);
    await node.irmd.waitFor(/IRMd shutting down\.\.\./, 100);
    await node.irmd.waitFor(/daemon exited\. Bye\./, 100);
    for (const pid of [ipcp, started]) {
      assertEquals(pidAlive(pid), false, `process ${pid} survived`);
    }
    const left = [...Deno.readDirSync(node.rundir)].map((e) => e.name);
    assertEquals(left.filter((n) => n.endsWith(".sock")), []);
  } finally {
    await node.close();
  }
});
