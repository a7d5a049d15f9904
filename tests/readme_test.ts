/**
 * The README's shell lines work as written on a fresh clone: every command
 * they name exists (a file of the checkout, a task of deno.json, a
 * subcommand of the program), none needs a `deno` on the PATH, and the
 * recipe for running the tutorial without root runs here, for real.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { Proc, REPO } from "./harness.ts";
import { PROGRAM_NAMES } from "../main.ts";

const README = await Deno.readTextFile(`${REPO}README.md`);

/** The shell blocks of the README: heading, and lines with `\` joined. */
function shellBlocks(md: string): { heading: string; lines: string[] }[] {
  const out: { heading: string; lines: string[] }[] = [];
  let heading = "";
  let block: string[] | undefined;
  for (const raw of md.split("\n")) {
    const line = raw.trim();
    if (block === undefined && /^#+ /.test(raw)) heading = raw;
    if (block === undefined && /^```(sh|bash)$/.test(line)) block = [];
    else if (block !== undefined && line === "```") {
      out.push({ heading, lines: block.join("\n").split(/(?<!\\)\n/) });
      block = undefined;
    } else if (block !== undefined) block.push(line);
  }
  return out.map((b) => ({
    heading: b.heading,
    lines: b.lines.map((l) => l.replace(/\\\n\s*/g, " ").trim()).filter((l) =>
      l !== "" && !l.startsWith("#")
    ),
  }));
}

const TASKS = Object.keys(
  (JSON.parse(await Deno.readTextFile(`${REPO}deno.json`)) as {
    tasks: Record<string, string>;
  }).tasks,
);

/** What is wrong with one shell line of the README, if anything. */
function lineProblems(line: string): string[] {
  const problems: string[] = [];
  for (const m of line.matchAll(/(?:^|[\s;&|(])(\.\/[\w./-]+)/g)) {
    const path = m[1]!;
    try {
      const st = Deno.statSync(`${REPO}${path.slice(2)}`);
      if (!st.isFile || st.mode === null || (st.mode & 0o111) === 0) {
        problems.push(`${path} is not an executable file of the checkout`);
      }
    } catch {
      if (!path.startsWith("./dist/")) {
        problems.push(`${path} does not exist in the checkout`);
      }
    }
  }
  for (const m of line.matchAll(/\.\/bin\/deno task ([\w:-]+)/g)) {
    if (!TASKS.includes(m[1]!)) problems.push(`no deno task "${m[1]}"`);
  }
  if (/(^|[\s;&|(])deno\s/.test(line)) {
    problems.push("runs a bare `deno` (not on a fresh machine's PATH)");
  }
  const first = line.split(/\s+/)[0] ?? "";
  if (first === "ouroboros") {
    const sub = line.split(/\s+/)[1] ?? "";
    if (!PROGRAM_NAMES.includes(sub)) problems.push(`no subcommand ${sub}`);
  }
  return problems;
}

Deno.test("the README's shell lines name only what exists, and no bare deno", () => {
  const blocks = shellBlocks(README);
  assert(blocks.length >= 5, `only ${blocks.length} shell blocks found`);
  const problems = blocks.flatMap((b) =>
    b.lines.flatMap((l) =>
      lineProblems(l).map((p) => `${b.heading}: ${l}: ${p}`)
    )
  );
  assertEquals(problems, []);
  // Commands shown inline in the text too.
  const inline = [
    ...README.matchAll(/`((?:\.\/bin\/)?deno (?:task|run)[^`]*)`/g),
  ]
    .map((m) => m[1]!).filter((c) => !c.startsWith("./bin/deno"));
  assertEquals(inline, []);
  // The checker finds what it must.
  assertEquals(lineProblems("deno task bundle").length, 1);
  assertEquals(lineProblems("./bin/deno task nosuch").length, 1);
  assertEquals(lineProblems("./no-such-script").length, 1);
});

Deno.test("the README's tutorial without root runs as written", async () => {
  const block = shellBlocks(README).find((b) => /Without root/.test(b.heading));
  assert(block !== undefined, "no 'Without root' block in the README");
  const home = await Deno.makeTempDir({ prefix: "readme-home-" });
  const procs: Proc[] = [];
  try {
    const env = {
      HOME: home,
      PATH: `${home}/o7s/bin:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`,
      NO_COLOR: "1",
    };
    const setup = new Proc(
      "readme/setup",
      ["bash", "-euc", `cd "${REPO}"\n${block.lines.join("\n")}`],
      env,
    );
    const r = await setup.exit(60_000);
    assertEquals(r.code, 0, r.stdout + r.stderr);
    assertEquals(r.stdout.match(/Configuration OK/g)?.length, 2, r.stdout);
    assertEquals(r.stderr, "", "no warning: every file it names is there");
    // The two irmds and the ping the text describes, each node with its own
    // runtime directory inside the temporary home.
    const text = README.slice(README.indexOf("### Without root"));
    const cmds = [...text.matchAll(/`((?:irmd|oping) [^`]+)`/g)].map((m) =>
      m[1]!.replaceAll("/tmp/o7s-", `${home}/run-`).replaceAll(
        '"$HOME',
        `"${home}`,
      )
    ).slice(0, 3);
    assertEquals(cmds.length, 3, `commands found: ${cmds.join(" / ")}`);
    const [server, client] = cmds.slice(0, 2).map((c, i) => {
      const p = new Proc(`readme/irmd${i}`, ["bash", "-c", `exec ${c}`], env);
      procs.push(p);
      return p;
    });
    await server!.waitFor(/Registered oping-server2 with IPCP/, 20_000);
    await client!.waitFor(/Bootstrapped IPCP \d+ in layer/, 20_000);
    const ping = new Proc(
      "readme/oping",
      ["bash", "-c", `exec ${cmds[2]}`],
      env,
    );
    procs.push(ping);
    const out = await ping.exit(30_000);
    assertEquals(out.code, 0, out.stdout + out.stderr);
    assertMatch(out.stdout, /3 packets transmitted, 3 received/);
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
    await Deno.remove(home, { recursive: true });
  }
});
