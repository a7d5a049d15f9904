/**
 * `./run-demo --quiet`, run exactly as the README says: tutorial 05 on
 * loopback ends with the round-robin and spill summaries and the bind step,
 * exits 0, and leaves no process and no temporary file behind.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
// Deno wants --allow-all to read /proc; these look there through `sh`.
import { liveProcesses, processesMentioning } from "../tools/demo.ts";

const REPO = decodeURIComponent(new URL("../", import.meta.url).pathname);
const DEMO_TIMEOUT_MS = 60_000;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `./run-demo --quiet` from the repository root within the deadline. */
async function runDemo(tmp: string): Promise<Run> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), DEMO_TIMEOUT_MS);
  try {
    const out = await new Deno.Command("./run-demo", {
      args: ["--quiet"],
      cwd: REPO,
      // The demo's temporary directory goes under `tmp`, so that whatever it
      // started can be recognised afterwards.
      env: { TMPDIR: tmp },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: ac.signal,
    }).output();
    const dec = new TextDecoder();
    assert(
      !ac.signal.aborted,
      `./run-demo did not finish within ${DEMO_TIMEOUT_MS / 1000} s`,
    );
    return {
      code: out.code,
      stdout: dec.decode(out.stdout),
      stderr: dec.decode(out.stderr),
    };
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("./run-demo --quiet: round-robin alternates, spill sticks, bind works, nothing left", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "o7s-demo-test-" });
  try {
    let run = await runDemo(tmp);
    // Another test may hold 127.0.0.1:3435 for a moment: try again later.
    for (
      let i = 0;
      i < 3 && run.code !== 0 && /is in use/.test(run.stderr);
      i++
    ) {
      await new Promise((r) => setTimeout(r, 3000));
      run = await runDemo(tmp);
    }
    const { code, stdout, stderr } = run;
    const all = `stdout:\n${stdout}\nstderr:\n${stderr}`;
    assertEquals(code, 0, `./run-demo --quiet failed:\n${all}`);

    // --quiet: no log lines, no listings.
    assert(!/==\d+==/.test(stdout), `log lines with --quiet:\n${stdout}`);

    const servers = /^Server A is process (\d+), server B is process (\d+)\.$/m
      .exec(stdout);
    assert(servers !== null, all);
    const pidOf: Record<string, number> = {
      A: Number(servers[1]),
      B: Number(servers[2]),
    };

    // One line per client, naming the server process that answered.
    const clients = [
      ...stdout.matchAll(
        /^(oping-server2?) +client (\d)\/(\d): rtt [\d.]+ (?:ms|µs) +answered by server process (\d+) \(server ([AB])\)$/gm,
      ),
    ];
    assertEquals(clients.length, 6 + 6 + 3, all);
    for (const m of clients) assertEquals(Number(m[4]), pidOf[m[5]!], m[0]);

    const rr =
      /^oping-server: ([AB]) ([AB]) \1 \2 \1 \2 \(round-robin: alternating\)$/m
        .exec(stdout);
    assert(rr !== null && rr[1] !== rr[2], `no alternation:\n${all}`);
    const spill =
      /^oping-server2: ([AB]) \1 \1 \1 \1 \1 \(spill: same process\)$/m
        .exec(stdout);
    assert(spill !== null, `no spill:\n${all}`);

    // The bind step: the other server is bound and takes the next three.
    const other = spill[1] === "A" ? "B" : "A";
    assertMatch(
      stdout,
      new RegExp(
        `^\\$ irm name bind process ${pidOf[other]} name oping-server2$`,
        "m",
      ),
    );
    assertMatch(
      stdout,
      new RegExp(
        `^oping-server2 after the bind: ${other} ${other} ${other} \\(bound process: always server ${other}\\)$`,
        "m",
      ),
    );
    assertMatch(stdout, /\nDone\.\n$/);

    // Nothing left: not the pids it printed, not anything that ran in its
    // temporary directory, and the directory itself is gone.
    assertEquals(
      await liveProcesses(Object.values(pidOf)),
      [],
      "oping server processes still run",
    );
    assertEquals(await processesMentioning(tmp), [], "processes left behind");
    assertEquals(
      [...Deno.readDirSync(tmp)].map((e) => e.name),
      [],
      "temporary files left behind",
    );
  } finally {
    // Whatever failed above, leave nothing running.
    try {
      for (const pid of await processesMentioning(tmp)) {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch {
          // gone already
        }
      }
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  }
});
