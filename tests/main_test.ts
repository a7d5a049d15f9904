/** The `ouroboros` program: dispatch, help, version, and running under a link's name. */
import { configFromJson } from "../lib/config/config_json.ts";
import { assert, assertEquals, assertMatch, unwrap } from "./assert.ts";
import { LAUNCHER, REPO, runCommand } from "./harness.ts";

/** Runs the program to its end, within a deadline (ended past it). */
async function run(
  cmd: string,
  args: string[],
): Promise<{ code: number; out: string; stdout: string }> {
  const r = await runCommand(cmd, args, { timeoutMs: 20_000 });
  return { code: r.code, out: r.stdout + r.stderr, stdout: r.stdout };
}

Deno.test("ouroboros: --version, help and an unknown command", async () => {
  const v = await run(LAUNCHER, ["--version"]);
  assertEquals(v.code, 0);
  assertMatch(v.out, /^ouroboros \d+\.\d+\.\d+\n$/);
  const h = await run(LAUNCHER, ["help"]);
  assertEquals(h.code, 0);
  for (
    const sub of [
      "irmd",
      "ipcpd-udp4",
      "ipcpd-udp6",
      "ipcpd-udp",
      "irm",
      "oping",
    ]
  ) {
    assertMatch(h.out, new RegExp(`^  ${sub} `, "m"));
  }
  const none = await run(LAUNCHER, []);
  assertEquals(none.code, 2);
  const bad = await run(LAUNCHER, ["frobnicate"]);
  assertEquals(bad.code, 2);
  assertMatch(bad.out, /unknown command "frobnicate", try "ouroboros help"/);
});

Deno.test("a link named after a subcommand runs that subcommand", async () => {
  const dir = await Deno.makeTempDir({ prefix: "o7s-links-" });
  try {
    for (const name of ["oping", "irm", "irmd"]) {
      await Deno.symlink(LAUNCHER, `${dir}/${name}`);
      const r = await run(`${dir}/${name}`, ["--help"]);
      assertEquals(r.code, 0, r.out);
      assertMatch(r.out, new RegExp(`(U|u)sage:.*${name}`, "i"));
    }
    // An IPCP started by hand without its arguments explains itself.
    await Deno.symlink(LAUNCHER, `${dir}/ipcpd-udp`);
    const r = await run(`${dir}/ipcpd-udp`, []);
    assertEquals(r.code, 2);
    assertMatch(r.out, /--name is required/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the irmd has its configuration parsed by `irmd --check --json` and reports its errors", async () => {
  const dir = await Deno.makeTempDir({ prefix: "o7s-conf-" });
  try {
    const json = await run(LAUNCHER, [
      "irmd",
      "--check",
      "--json",
      "-c",
      `${REPO}conf/tut05-server.conf`,
    ]);
    assertEquals(json.code, 0, json.out);
    const cfg = unwrap(configFromJson(json.stdout));
    assertEquals(cfg.names.map((n) => n.name), [
      "oping-server",
      "oping-server2",
    ]);
    assertEquals(cfg.ipcps[0]?.layer, "wifi-network");

    // The daemon refuses to start on a file its parser refuses, and says why.
    const bad = `${dir}/bad.conf`;
    await Deno.writeTextFile(bad, '[udp.x]\nip = "300.1.1.1"\n');
    const r = await run(LAUNCHER, [
      "irmd",
      "--rundir",
      `${dir}/run`,
      "-c",
      bad,
    ]);
    assertEquals(r.code, 1, r.out);
    assertMatch(r.out, /^irmd: [^\n]*bad\.conf:2:1: .*ip.*300\.1\.1\.1/);
    assert(!r.out.includes("irmd: irmd:"), r.out);
    const missing = await run(LAUNCHER, [
      "irmd",
      "--rundir",
      `${dir}/run`,
      "-c",
      `${dir}/nothing.conf`,
    ]);
    assertEquals(missing.code, 1, missing.out);
    assertMatch(missing.out, /^irmd: .*nothing\.conf: cannot read/);
    const lone = await run(LAUNCHER, ["irmd", "--json"]);
    assertEquals(lone.code, 2);
    assertMatch(lone.out, /--json goes with --check/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
