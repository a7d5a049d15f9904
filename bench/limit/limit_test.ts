/**
 * The raw C baselines as the benchmark uses them: they compile without
 * warnings, run on loopback and print what bench.ts reads, refuse bad
 * arguments with a message and a non-zero exit; and without a compiler
 * the benchmark is told why there are none. Skipped without `cc`.
 */
import { assert, assertEquals, assertMatch } from "../../tests/assert.ts";
import { compileRawC, rawCPing, rawCThroughput } from "../bench.ts";

const HERE = new URL(".", import.meta.url).pathname;

const hasCc = await new Deno.Command("cc", {
  args: ["--version"],
  stdout: "null",
  stderr: "null",
}).output().then((o) => o.success, () => false);

function free(ip: string, port: number): boolean {
  try {
    Deno.listenDatagram({ transport: "udp", hostname: ip, port }).close();
    return true;
  } catch {
    return false;
  }
}

/** A base port whose next two are free on 127.0.0.1 and 127.0.0.2. */
function basePort(): number {
  for (let base = 39000; base < 39096; base += 3) {
    const ok = [1, 2].every((k) =>
      free("127.0.0.1", base + k) && free("127.0.0.2", base + k)
    );
    if (ok) return base;
  }
  throw new Error("no free UDP ports in 39000-39099");
}

async function run(
  cmd: string,
  args: string[],
): Promise<{ code: number; stderr: string }> {
  const o = await new Deno.Command(cmd, {
    args,
    stdout: "null",
    stderr: "piped",
  }).output();
  return { code: o.code, stderr: new TextDecoder().decode(o.stderr) };
}

Deno.test({
  name: "raw C baselines: compile cleanly, run, report what bench.ts reads",
  ignore: !hasCc,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "o7s-limit-test-" });
    try {
      for (const name of ["pingpong", "sendrecv"]) {
        const r = await run("cc", [
          "-O2",
          "-Wall",
          "-Wextra",
          "-Werror",
          "-o",
          `${dir}/${name}-strict`,
          `${HERE}${name}.c`,
        ]);
        assertEquals(
          r.code,
          0,
          `${name}.c compiles without warnings:\n${r.stderr}`,
        );
      }
      const c = await compileRawC(dir);
      assert("bins" in c, `compiled: ${JSON.stringify(c)}`);
      assertMatch(c.compiler, /-O2$/);

      const port = basePort();
      const ping = await rawCPing(c.bins.pingpong, port, 300);
      assertEquals(ping.rtts.length, 300, "every RTT");
      assert(ping.rtts.every((x) => x > 0 && x < 2000), "RTTs in ms");
      assert(ping.rtPerSec > 0 && ping.p50 <= ping.p99);

      const t = await rawCThroughput(c.bins.sendrecv, port, 1000, 0.5);
      assert(t.mbps > 0, `received: ${JSON.stringify(t)}`);
      assert(t.lossPct >= 0 && t.lossPct < 100, `loss: ${t.lossPct}`);
      assert(t.sentMbps > 0);
      assert((t.rcvbuf ?? 0) > 0, "the receiver's SO_RCVBUF");

      // Bad arguments: a message and a non-zero exit, at once.
      const bad: ["pingpong" | "sendrecv", string[], RegExp][] = [
        [
          "pingpong",
          ["ping", "--bind", "127.0.0.2:0", "--to", "127.0.0.1:1"],
          /bad port/,
        ],
        ["pingpong", ["ping", "--bind", "127.0.0.2:39000"], /needs --to/],
        [
          "pingpong",
          ["echo", "--bind", "127.0.0.1:39000", "-d", "x"],
          /-d wants/,
        ],
        ["pingpong", ["pong"], /mode is echo or ping/],
        [
          "sendrecv",
          ["send", "--bind", "1.2.3:4", "--to", "127.0.0.1:1"],
          /bad IPv4/,
        ],
        ["sendrecv", [
          "send",
          "--bind",
          "127.0.0.2:39000",
          "--to",
          "127.0.0.1:39001",
          "-s",
          "8",
        ], /-s wants/],
        [
          "sendrecv",
          ["recv", "--bind", "127.0.0.1:39000", "-d", "nan"],
          /-d wants/,
        ],
      ];
      for (const [prog, args, re] of bad) {
        const r = await run(c.bins[prog], args);
        assert(r.code !== 0, `${prog} ${args.join(" ")} fails`);
        assertMatch(r.stderr, re);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("raw C baselines: without the compiler, why", async () => {
  const dir = await Deno.makeTempDir({ prefix: "o7s-limit-test-" });
  try {
    const c = await compileRawC(dir, "o7s-no-such-cc");
    assertEquals(c, { skipped: "o7s-no-such-cc is not installed" });
    // a compiler that fails
    const f = await compileRawC(dir, "false");
    assert(
      "skipped" in f &&
        /false -O2 failed on bench\/limit\/pingpong\.c/.test(f.skipped),
      JSON.stringify(f),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
