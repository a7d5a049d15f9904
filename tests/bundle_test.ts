/**
 * The single-file artifact: `deno task bundle` builds dist/ouroboros.js; the
 * bundled file runs on its own (no configuration file, no sources beside it)
 * and its irmd starts IPCPs and applications from that same file.
 */
import { assertEquals, assertMatch } from "./assert.ts";
import { Proc } from "../lib/util/child.ts";
import { PERMISSION_FLAGS } from "../lib/util/self.ts";
import { RUNDIR_ENV } from "../lib/ipc/rundir.ts";
import { REPO, runCommand, tutorialHosts } from "./harness.ts";

async function bundle(out: string): Promise<void> {
  // The same command as `deno task bundle`, into a temporary file.
  const task = JSON.parse(await Deno.readTextFile(`${REPO}deno.json`)).tasks
    .bundle as string;
  assertMatch(task, /^deno bundle .* -o dist\/ouroboros\.js main\.ts$/);
  const args = task.split(" ").slice(1).map((a) =>
    a === "dist/ouroboros.js" ? out : a
  );
  const r = await runCommand(Deno.execPath(), args, {
    cwd: REPO,
    timeoutMs: 120_000,
  });
  assertEquals(r.code, 0, r.stderr);
}

Deno.test("the bundle runs alone: version, configuration check and a ping", async () => {
  const dir = await Deno.makeTempDir({ prefix: "o7s-bundle-" });
  const procs: Proc[] = [];
  try {
    const js = `${dir}/ouroboros.js`;
    await bundle(js);
    const run = (args: string[], env: Record<string, string> = {}) => {
      const p = new Proc(args[0] ?? "bundle", [
        Deno.execPath(),
        "run",
        "-q",
        "--no-config",
        ...PERMISSION_FLAGS,
        js,
        ...args,
      ], { NO_COLOR: "1", ...env });
      procs.push(p);
      return p;
    };
    const v = await run(["--version"]).exit();
    assertMatch(v.stdout, /^ouroboros \d+\.\d+\.\d+$/);

    const check = await run([
      "irmd",
      "--check",
      "-c",
      `${REPO}conf/tut05-server.conf`,
    ]).exit();
    assertEquals(check.code, 0, check.stderr);
    assertMatch(check.stdout, /Configuration OK: 2 names, 1 IPCP\./);

    const bad = `${dir}/bad.conf`;
    await Deno.writeTextFile(bad, '[udp.x]\nip = "300.1.1.1"\n');
    const checkBad = await run(["irmd", "--check", "-c", bad]).exit();
    assertEquals(checkBad.code, 1);
    assertMatch(checkBad.stderr, /bad\.conf:2:1: .*ip.*300\.1\.1\.1/);
    // The daemon has the same file parsed by the bundle, and says the same.
    const irmdBad = await run(["irmd", "--rundir", `${dir}/run`, "-c", bad])
      .exit();
    assertEquals(irmdBad.code, 1);
    assertEquals(irmdBad.stderr, checkBad.stderr);

    // A whole node from the bundle: irmd, its IPCP, a server and a client.
    await Deno.writeTextFile(`${dir}/hosts`, tutorialHosts("127.0.0.1"));
    await Deno.writeTextFile(
      `${dir}/irmd.conf`,
      `[name."oping-server"]\nprog=["/nonexistent/oping"]\n\n` +
        `[udp.wifi1]\nbootstrap="wifi-network"\nip="127.0.0.1"\nhosts="${dir}/hosts"\nreg=["oping-server"]\n`,
    );
    const env = { [RUNDIR_ENV]: `${dir}/run` };
    const irmd = run(["irmd", "-c", `${dir}/irmd.conf`, "--debug"], env);
    await irmd.waitFor(/Registered oping-server with IPCP/, 15_000);
    run(["oping", "-l"], env);
    await irmd.waitFor(/This process accepts flows for:/, 10_000);
    const ping = await run([
      "oping",
      "-n",
      "oping-server",
      "-c",
      "2",
      "-i",
      "20",
    ], env).exit();
    assertEquals(ping.code, 0, ping.stdout + ping.stderr);
    assertMatch(ping.stdout, /2 packets transmitted, 2 received/);
  } finally {
    for (const p of procs.reverse()) await p.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
