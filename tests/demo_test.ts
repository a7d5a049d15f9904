/**
 * `./run-demo --quiet`, run exactly as the README says: tutorial 05 on
 * loopback ends with the round-robin and spill summaries and the bind step,
 * exits 0, and leaves no process and no temporary file behind. The same with
 * `--pi` (the server node on the aarch64 Deno): skipped, with the reason in
 * its name, where aarch64 programs cannot run; under CI=true it fails. And
 * `--unicast` (three nodes in a line, spec/unicast.md 9): every member has
 * an address, A's route to C goes via B, A's pings to C are all answered.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
// Deno wants --allow-all to read /proc; these look there through `sh`.
import {
  aarch64Problem,
  liveProcesses,
  parseDemoArgs,
  processesMentioning,
  USAGE,
} from "../tools/demo.ts";

const REPO = decodeURIComponent(new URL("../", import.meta.url).pathname);
const DEMO_TIMEOUT_MS = 60_000;
/** --unicast: a route may wait for one LSA refresh (15 s); the demo allows 40 s. */
const UNICAST_DEMO_TIMEOUT_MS = 90_000;
/** --unicast runs on this port, away from the tutorial's 3435. */
const UNICAST_PORT = 4060;
/** With --pi, under emulation. */
const PI_DEMO_TIMEOUT_MS = 300_000;

const PI_PROBLEM = await aarch64Problem();
const PI_SKIP = PI_PROBLEM !== undefined && Deno.env.get("CI") !== "true";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `./run-demo --quiet [args]` from the repository root within the deadline. */
async function runDemo(
  tmp: string,
  args: readonly string[] = [],
  timeoutMs = DEMO_TIMEOUT_MS,
): Promise<Run> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  try {
    const out = await new Deno.Command("./run-demo", {
      args: ["--quiet", ...args],
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
      `./run-demo did not finish within ${timeoutMs / 1000} s`,
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

/** `runDemo`, again a few times while its UDP port is in use. */
async function runDemoWhenFree(
  tmp: string,
  args: readonly string[],
  timeoutMs: number,
): Promise<Run> {
  let run = await runDemo(tmp, args, timeoutMs);
  // Another test may hold 127.0.0.1:3435 for a moment: try again later.
  for (
    let i = 0;
    i < 3 && run.code !== 0 && /is in use/.test(run.stderr);
    i++
  ) {
    await new Promise((r) => setTimeout(r, 3000));
    run = await runDemo(tmp, args, timeoutMs);
  }
  return run;
}

/** Nothing left: not `pids`, nothing that ran in `tmp`, no file in it. */
async function checkNothingLeft(
  tmp: string,
  pids: readonly number[],
): Promise<void> {
  assertEquals(
    await liveProcesses(pids),
    [],
    "oping server processes still run",
  );
  assertEquals(await processesMentioning(tmp), [], "processes left behind");
  assertEquals(
    [...Deno.readDirSync(tmp)].map((e) => e.name),
    [],
    "temporary files left behind",
  );
}

/**
 * Runs the demo with `args` and checks what every run shows: round-robin,
 * spill, the bind, a clean end. Returns the output and the servers' pids.
 */
async function checkDemo(
  tmp: string,
  args: readonly string[],
  timeoutMs: number,
): Promise<{ stdout: string; all: string; pidOf: Record<string, number> }> {
  const { code, stdout, stderr } = await runDemoWhenFree(
    tmp,
    args,
    timeoutMs,
  );
  const all = `stdout:\n${stdout}\nstderr:\n${stderr}`;
  assertEquals(code, 0, `./run-demo --quiet ${args.join(" ")} failed:\n${all}`);

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
  await checkNothingLeft(tmp, Object.values(pidOf));
  return { stdout, all, pidOf };
}

/** Runs `fn` with a temporary directory; kills whatever is left in it. */
async function withTmp(fn: (tmp: string) => Promise<void>): Promise<void> {
  const tmp = await Deno.makeTempDir({ prefix: "o7s-demo-test-" });
  try {
    await fn(tmp);
  } finally {
    // Whatever failed, leave nothing running.
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
}

Deno.test("./run-demo --quiet: round-robin alternates, spill sticks, bind works, nothing left", async () => {
  await withTmp(async (tmp) => {
    await checkDemo(tmp, [], DEMO_TIMEOUT_MS);
  });
});

Deno.test("--pi: parsed, refused with a value, and in --help", () => {
  assertEquals(parseDemoArgs(["--pi", "-q"]), {
    kind: "run",
    opts: { pi: true, quiet: true },
  });
  assertEquals(parseDemoArgs(["--pi=yes"]).kind, "error");
  assertMatch(USAGE, /^ +--pi +run the server node on aarch64/m);
});

Deno.test(`./run-demo --quiet --unicast --port ${UNICAST_PORT}: A pings a server on C through B, nothing left`, async () => {
  await withTmp(async (tmp) => {
    const args = ["--unicast", "--port", String(UNICAST_PORT)];
    const { code, stdout, stderr } = await runDemoWhenFree(
      tmp,
      args,
      UNICAST_DEMO_TIMEOUT_MS,
    );
    const all = `stdout:\n${stdout}\nstderr:\n${stderr}`;
    assertEquals(
      code,
      0,
      `./run-demo --quiet ${args.join(" ")} failed:\n${all}`,
    );
    assert(!/==\d+==/.test(stdout), `log lines with --quiet:\n${stdout}`);

    // Each member of layer uni, with its address; three different ones.
    const addr: Record<string, string> = {};
    for (
      const m of stdout.matchAll(
        /^ {2}([ABC]) {2}uni-([abc]) {2}address (\d+) +\((.+)\)$/gm,
      )
    ) {
      assertEquals(m[2], m[1]!.toLowerCase(), m[0]);
      addr[m[1]!] = m[3]!;
    }
    assertEquals(Object.keys(addr).sort(), ["A", "B", "C"], all);
    assertEquals(new Set(Object.values(addr)).size, 3, all);
    const { A: a, B: b, C: c } = addr as Record<"A" | "B" | "C", string>;
    assertMatch(
      stdout,
      new RegExp(
        `^A: uni-a bootstrapped layer uni; its address is ${a}\\.$`,
        "m",
      ),
    );
    for (const [n, peer] of [["B", "A"], ["C", "B"]] as const) {
      const [m, p] = [n.toLowerCase(), peer.toLowerCase()];
      assertMatch(
        stdout,
        new RegExp(
          `^${n}: uni-${m} enrolled with uni-${p} \\(${peer} logged "Enrollment completed\\."\\); its address is ${
            addr[n]
          }\\.$`,
          "m",
        ),
      );
      assertMatch(
        stdout,
        new RegExp(
          `^${n}: uni-${m} connected to uni-${p}: each added the other as dt neighbour `,
          "m",
        ),
      );
    }

    // The forwarding tables: A and C reach each other via B.
    assertMatch(
      stdout,
      new RegExp(`^ {2}A: .*\\b${c} \\(C\\) via ${b} \\(B\\)`, "m"),
      all,
    );
    assertMatch(
      stdout,
      new RegExp(`^ {2}C: .*\\b${a} \\(A\\) via ${b} \\(B\\)`, "m"),
      all,
    );
    assertMatch(
      stdout,
      new RegExp(`^ {2}B: .*\\b${a} \\(A\\) via ${a} \\(A\\)`, "m"),
      all,
    );
    assertMatch(
      stdout,
      new RegExp(`^ {2}B: .*\\b${c} \\(C\\) via ${c} \\(C\\)`, "m"),
      all,
    );

    // The pings, all answered, and the summary.
    const server = /^The oping server on C is process (\d+);/m.exec(stdout);
    assert(server !== null, all);
    assertMatch(stdout, /^\$ oping -n oping -c 10 -i 200ms$/m);
    const replies = [
      ...stdout.matchAll(
        /^ {4}64 bytes from oping: seq=(\d+) time=[\d.]+ ms$/gm,
      ),
    ].map((m) => Number(m[1]));
    assertEquals(replies, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], all);
    assertMatch(
      stdout,
      /^ {4}10 packets transmitted, 10 received, 0 out-of-order, 0% packet loss, /m,
    );
    assertMatch(
      stdout,
      /^10 packets sent from A, 10 answered by the oping server on C \(0% packet loss\)\.$/m,
    );
    assertMatch(
      stdout,
      new RegExp(
        `^Every packet between A and C crossed B: A has no link to C, and A's forwarding table sends C's address ${c} via B's ${b}\\.$`,
        "m",
      ),
    );
    assertMatch(stdout, /\nDone\.\n$/);
    await checkNothingLeft(tmp, [Number(server[1])]);
  });
});

Deno.test("--unicast: parsed, refused with a value or with --pi, and in --help", () => {
  assertEquals(parseDemoArgs(["--unicast", "-q", "--port", "4060"]), {
    kind: "run",
    opts: { unicast: true, quiet: true, port: 4060 },
  });
  assertEquals(parseDemoArgs(["--unicast=yes"]).kind, "error");
  const both = parseDemoArgs(["--unicast", "--pi"]);
  assertEquals(both.kind, "error");
  assertMatch(
    both.kind === "error" ? both.message : "",
    /--unicast and --pi do not go together/,
  );
  assertEquals(parseDemoArgs(["--pi", "--unicast"]).kind, "error");
  assertMatch(USAGE, /^ +--unicast +the three-node unicast layer/m);
});

const PI_NAME =
  "./run-demo --quiet --pi: the server node on aarch64, the client native";

Deno.test({
  name: PI_SKIP ? `${PI_NAME} [skipped: ${PI_PROBLEM}]` : PI_NAME,
  ignore: PI_SKIP,
  async fn() {
    assert(
      PI_PROBLEM === undefined,
      `aarch64 programs cannot run here: ${PI_PROBLEM}`,
    );
    await withTmp(async (tmp) => {
      const { stdout, all, pidOf } = await checkDemo(
        tmp,
        ["--pi"],
        PI_DEMO_TIMEOUT_MS,
      );
      assertMatch(
        stdout,
        /^The aarch64 Deno runs: Deno\.build\.arch is aarch64\.$/m,
      );
      // Each process of both nodes, with the architecture it executes.
      const emulated = Deno.build.arch === "aarch64"
        ? ""
        : ", emulated by \\S*qemu-aarch64\\S*";
      const onPi = `aarch64 \\(\\S+/aarch64/deno${emulated}\\)`;
      const native = `${Deno.build.arch} \\([^,]+\\)`;
      const rows: [string, string][] = [
        ["server irmd", onPi],
        ["server IPCP", onPi],
        ["oping server A", onPi],
        ["oping server B", onPi],
        ["client irmd", native],
        ["client IPCP", native],
      ];
      for (const [label, arch] of rows) {
        assertMatch(
          stdout,
          new RegExp(`^${label} +process (\\d+) +runs ${arch}$`, "m"),
          all,
        );
      }
      for (const tag of ["A", "B"]) {
        assertMatch(
          stdout,
          new RegExp(`^oping server ${tag} +process ${pidOf[tag]} `, "m"),
        );
      }
    });
  },
});
