/**
 * Tutorial 05 between a Raspberry Pi and a desktop, on one machine: the
 * server node (its irmd, the IPCP the irmd starts, two `oping -l` servers
 * and `irm`) runs the single file, the bundle, on the aarch64 Deno that
 * bin/deno-aarch64 installs; where this machine is not aarch64, the kernel
 * runs it under qemu-user (binfmt_misc). The client node runs on the native
 * Deno. Round-robin, spill and `irm name bind process` on the aarch64 node,
 * as in the tutorial and the demo; /proc shows which architecture each
 * process executes.
 *
 * Deadlines are sized for emulation (10-30 times slower than native); every
 * wait is on a line of output or an exit. Where aarch64 programs cannot run
 * (no qemu-user-static, no cross libraries, nothing registered with
 * binfmt_misc, no aarch64 Deno), the test is skipped with the reason in its
 * name; under CI=true it fails instead (.ci/run installs all of it). Port
 * 3835 keeps it apart from the other tutorial tests.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import {
  Node,
  Proc,
  tutorialClientConfig,
  tutorialHosts,
  tutorialServerConfig,
} from "./harness.ts";
import { RUNDIR_ENV } from "../lib/ipc/rundir.ts";
import {
  AARCH64_DENO,
  aarch64Env,
  aarch64Problem,
  buildBundle,
  describeArch,
  elfArch,
  processArch,
  processesMentioning,
  writeAarch64Programs,
} from "../tools/demo.ts";

const PORT = 3835;
const SERVER_IP = "127.0.0.1";
const CLIENT_IP = "127.0.0.2";
const ROUNDS = 6;
const AFTER_BIND = 3;

/** Deadlines (ms), for emulated processes. */
const PROBE_MS = 60_000;
const BUNDLE_MS = 120_000;
const IRMD_START_MS = 90_000;
const IRMD_READY_MS = 120_000;
const SERVER_ACCEPT_MS = 90_000;
const PING_MS = 60_000;
const FLOW_LINE_MS = 30_000;
const IRM_MS = 90_000;
const STOP_MS = 30_000;

const PROBLEM = await aarch64Problem();
const IN_CI = Deno.env.get("CI") === "true";
const SKIP = PROBLEM !== undefined && !IN_CI;

const NAME = "tutorial 05 with the server node on aarch64 (the bundle on " +
  "the aarch64 Deno) and the client native: round-robin, spill, bind";

/** The server node: the bundle on the aarch64 Deno, in `dir`. */
class PiServer {
  readonly procs: Proc[] = [];
  irmd: Proc | undefined;

  constructor(readonly dir: string, readonly bundle: string) {}

  get rundir(): string {
    return `${this.dir}/run`;
  }

  bin(name: string): string {
    return `${this.dir}/bin/${name}`;
  }

  /** Starts a program of bin/ (irmd, oping, irm) against this node. */
  spawn(name: string, args: string[], label = `pi/${name}`): Proc {
    const p = new Proc(label, [this.bin(name), ...args], {
      [RUNDIR_ENV]: this.rundir,
      NO_COLOR: "1",
      ...aarch64Env(),
    });
    this.procs.push(p);
    return p;
  }

  async start(): Promise<Proc> {
    await writeAarch64Programs(`${this.dir}/bin`, this.bundle, [
      "irmd",
      "oping",
      "irm",
    ]);
    await Deno.writeTextFile(`${this.dir}/hosts`, tutorialHosts(SERVER_IP));
    const conf = `${this.dir}/irmd.conf`;
    await Deno.writeTextFile(
      conf,
      tutorialServerConfig(SERVER_IP, `port=${PORT}\n`).replaceAll(
        "@DIR@",
        this.dir,
      ),
    );
    const irmd = this.spawn("irmd", [
      "--rundir",
      this.rundir,
      "-c",
      conf,
      "--debug",
    ]);
    this.irmd = irmd;
    await irmd.waitFor(/IPC Resource Manager daemon started/, IRMD_START_MS);
    await irmd.waitFor(/Registered oping-server2 with IPCP \d+/, IRMD_READY_MS);
    return irmd;
  }

  /** Ends every process (the irmd last); the irmd's exit status. */
  async stop(): Promise<Deno.CommandStatus | undefined> {
    const others = this.procs.filter((p) => p !== this.irmd);
    await Promise.all(others.map((p) => p.stop(STOP_MS)));
    return await this.irmd?.stop(STOP_MS);
  }
}

/** The pid of the IPCP an irmd bootstrapped, from its log. */
async function ipcpPid(irmd: Proc): Promise<number> {
  const line = await irmd.waitFor(
    /Bootstrapped IPCP \d+ in layer wifi-network\./,
    FLOW_LINE_MS,
  );
  return Number(/IPCP (\d+)/.exec(line)![1]);
}

Deno.test({
  name: SKIP ? `${NAME} [skipped: ${PROBLEM}]` : NAME,
  ignore: SKIP,
  async fn() {
    assert(
      PROBLEM === undefined,
      `aarch64 programs cannot run here: ${PROBLEM}`,
    );
    const tmp = await Deno.makeTempDir({ prefix: "o7s-pi-" });
    const server = new PiServer(`${tmp}/server`, `${tmp}/ouroboros.js`);
    let client: Node | undefined;
    const probes: Proc[] = [];
    try {
      // The aarch64 Deno is an aarch64 program, and it runs here.
      assertEquals(await elfArch(AARCH64_DENO), "aarch64", AARCH64_DENO);
      const probe = new Proc("pi/probe", [
        AARCH64_DENO,
        "eval",
        "console.log(Deno.build.arch)",
      ], { NO_COLOR: "1", ...aarch64Env() });
      probes.push(probe);
      const arch = await probe.exit(PROBE_MS);
      assertEquals(arch.code, 0, arch.stderr);
      assertEquals(arch.stdout.trim(), "aarch64");

      await buildBundle(server.bundle, BUNDLE_MS);
      await Deno.mkdir(server.dir);
      const irmd = await server.start();
      client = await Node.start("pi-client", {
        config: tutorialClientConfig(CLIENT_IP) + `port=${PORT}\n`,
        hosts: tutorialHosts(SERVER_IP),
        ready: /Bootstrapped IPCP \d+ in layer wifi-network/,
      });

      // Two oping servers on the server node, as the tutorial starts them.
      const servers: Proc[] = [];
      for (const tag of ["A", "B"]) {
        const from = irmd.lines.length;
        const s = server.spawn("oping", ["-l"], `pi/oping-l-${tag}`);
        servers.push(s);
        await irmd.waitFor(
          new RegExp(`New instance \\(${s.pid}\\) of oping added\\.`),
          SERVER_ACCEPT_MS,
          from,
        );
        await irmd.waitFor(
          /This process accepts flows for:/,
          SERVER_ACCEPT_MS,
          from,
        );
      }
      const [a, b] = servers as [Proc, Proc];

      // What runs where: the server node's processes are the aarch64 Deno
      // (under qemu-user unless this machine is aarch64) running the
      // bundle; the client node's are the native Deno.
      const serverPids = [irmd.pid, await ipcpPid(irmd), a.pid, b.pid];
      const clientPids = [client.irmd.pid, await ipcpPid(client.irmd)];
      const archs = await processArch([...serverPids, ...clientPids]);
      const where = [...serverPids, ...clientPids].map((p) =>
        `${p}: ${describeArch(archs.get(p))}`
      ).join("\n");
      const emulated = Deno.build.arch !== "aarch64";
      for (const pid of serverPids) {
        const pa = archs.get(pid);
        assertEquals(pa?.arch, "aarch64", `process ${pid}:\n${where}`);
        assertEquals(pa?.program, AARCH64_DENO, `process ${pid}:\n${where}`);
        if (emulated) {
          assertMatch(pa?.emulator ?? "", /\/qemu-aarch64/, where);
        }
      }
      for (const pid of clientPids) {
        const pa = archs.get(pid);
        assertEquals(pa?.arch, Deno.build.arch, `process ${pid}:\n${where}`);
        assertEquals(pa?.emulator, undefined, `process ${pid}:\n${where}`);
      }
      // ... and every one of the server node's runs the bundle.
      const onBundle = await processesMentioning(server.bundle);
      for (const pid of serverPids) {
        assert(
          onBundle.includes(pid),
          `process ${pid} does not run the bundle`,
        );
      }

      const rtts: string[] = [];
      const ping = async (name: string): Promise<number> => {
        const from = irmd.lines.length;
        const r = await client!.run(
          "oping",
          ["-n", name, "-c", "1"],
          PING_MS,
        );
        assertEquals(
          r.code,
          0,
          `oping -n ${name} failed:\n${r.stdout}\n${r.stderr}\n--- server:\n${
            irmd.lines.slice(-30).join("\n")
          }`,
        );
        const m = new RegExp(`64 bytes from ${name}: seq=0 time=(\\S+ \\S+)`)
          .exec(r.stdout);
        assert(m !== null, r.stdout);
        rtts.push(m[1]!);
        const line = await irmd.waitFor(
          new RegExp(`Flow \\d+ accepted by \\d+ for ${name}\\.`),
          FLOW_LINE_MS,
          from,
        );
        return Number(/accepted by (\d+)/.exec(line)![1]);
      };
      const pids = [a.pid, b.pid];

      // Round-robin: the two servers take oping-server in turn.
      const rr: number[] = [];
      for (let i = 0; i < ROUNDS; i++) rr.push(await ping("oping-server"));
      for (const p of rr) assert(pids.includes(p), `flow went to ${p}`);
      assert(rr[0] !== rr[1], `round-robin did not alternate: ${rr}`);
      for (let i = 2; i < ROUNDS; i++) {
        assertEquals(rr[i], rr[i % 2], `round-robin did not alternate: ${rr}`);
      }

      // Spill: one server takes every oping-server2.
      const spill: number[] = [];
      for (let i = 0; i < ROUNDS; i++) spill.push(await ping("oping-server2"));
      assertEquals(new Set(spill).size, 1, `spill went to several: ${spill}`);
      assert(pids.includes(spill[0]!), `flow went to ${spill[0]}`);

      // The tutorial's last step, with irm on the aarch64 node: bind the
      // other server to oping-server2; it takes every one after that.
      const other = spill[0] === a.pid ? b.pid : a.pid;
      const from = irmd.lines.length;
      const bind = await server.spawn("irm", [
        "name",
        "bind",
        "process",
        String(other),
        "name",
        "oping-server2",
      ]).exit(IRM_MS);
      assertEquals(bind.code, 0, bind.stdout + bind.stderr);
      await irmd.waitFor(
        new RegExp(`Bound process ${other} to name oping-server2\\.`),
        FLOW_LINE_MS,
        from,
      );
      const bound: number[] = [];
      for (let i = 0; i < AFTER_BIND; i++) {
        bound.push(await ping("oping-server2"));
      }
      assertEquals(bound, Array(AFTER_BIND).fill(other), `after the bind`);
      assertEquals(rtts.length, 2 * ROUNDS + AFTER_BIND);

      // SIGTERM ends the aarch64 node cleanly: the servers, then the irmd
      // (exit 0), which ends its IPCP; nothing of it is left.
      await client.close();
      client = undefined;
      for (const s of servers) {
        const st = await s.stop(STOP_MS);
        assert(st.signal !== "SIGKILL", `${s.label} ignored SIGTERM`);
      }
      const st = await irmd.stop(STOP_MS);
      assertEquals(st.code, 0, irmd.lines.slice(-20).join("\n"));
      assertEquals(await processesMentioning(tmp), [], "processes left");
    } finally {
      await client?.close();
      await server.stop();
      for (const p of probes) await p.stop();
      for (const pid of await processesMentioning(tmp)) {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch {
          // gone already
        }
      }
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
