/**
 * The system-call layer (lib/sys/) on the aarch64 ABI, for real: its own
 * unit tests run on the aarch64 Deno that bin/deno-aarch64 installs (where
 * this machine is not aarch64, under qemu-user through binfmt_misc), so that
 * the struct layouts, constants and error paths meet libc and the kernel
 * through FFI as they do on a Raspberry Pi; and lib/sys/probe.c, built for
 * aarch64, prints what glibc's aarch64 headers say, to compare with the
 * tables of layout.ts and constants.ts.
 *
 * The first test also runs the same tests on this machine's Deno and checks
 * that the aarch64 run ran every one of them (none skipped, none missing),
 * that each passed, and that it ran on aarch64: /proc shows the process is
 * the aarch64 Deno, and a test of layout_test.ts names the architecture and
 * the layout sys.ts selected.
 *
 * Type checking is left out of both runs (--no-check): the types do not
 * depend on the architecture, the suite's `deno check` covers them, and
 * under emulation it takes minutes. The aarch64 Deno gets a DENO_DIR of its
 * own: Deno empties its caches when another version opens them, and the
 * native suite shares the default one.
 *
 * Where aarch64 programs cannot run (no qemu-user-static, no cross
 * libraries, nothing registered with binfmt_misc, no aarch64 Deno), both
 * tests are skipped with the reason in their names; under CI=true they fail
 * instead (.ci/run installs all of it). Without a compiler for aarch64
 * (Debian's gcc-aarch64-linux-gnu, which .ci/run does not install) the probe
 * test alone is skipped, with that reason in its name: the first test still
 * checks the layouts, on the aarch64 Deno.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { Proc } from "../lib/util/child.ts";
import * as C from "../lib/sys/constants.ts";
import { LAYOUTS } from "../lib/sys/layout.ts";
import {
  AARCH64_DENO,
  aarch64Env,
  aarch64Problem,
  describeArch,
  elfArch,
  processArch,
} from "../tools/demo.ts";

const REPO = decodeURIComponent(new URL("../", import.meta.url).pathname);
const SYS_DIR = `${REPO}lib/sys/`;

/** Deadlines (ms). The aarch64 run takes 30 to 40 s under qemu-user on a
 * busy two-core machine (3 s natively). */
const NATIVE_RUN_MS = 120_000;
const AARCH64_RUN_MS = 600_000;
const PROBE_BUILD_MS = 60_000;
const PROBE_RUN_MS = 60_000;

const IN_CI = Deno.env.get("CI") === "true";
const PROBLEM = await aarch64Problem();
const SKIP = PROBLEM !== undefined && !IN_CI;

/** The arguments of both runs of lib/sys's tests. */
const TEST_ARGS = [
  "test",
  "-A",
  "--no-check",
  "--no-lock",
  "--config",
  `${REPO}deno.json`,
  "--sanitize-ops",
  "--sanitize-resources",
  SYS_DIR,
];

/** The test of layout_test.ts that names the machine and its layout. */
const ARCH_REPORT =
  /^layout: this machine is (\S+), sys\.ts uses the layout (\S+)'s /;

interface TestResult {
  name: string;
  /** "ok", "FAILED" or "ignored". */
  result: string;
}

/** What `deno test` printed: each test's result, each file, the summary. */
interface TestRun {
  results: TestResult[];
  /** Test file (its base name) to the number of tests it registered. */
  files: Map<string, number>;
  summary: {
    ok: boolean;
    passed: number;
    failed: number;
    ignored: number;
  } | undefined;
}

function parseTestOutput(lines: readonly string[]): TestRun {
  const run: TestRun = { results: [], files: new Map(), summary: undefined };
  for (const raw of lines) {
    // Without colour codes, should the output have any.
    // deno-lint-ignore no-control-regex
    const line = raw.replace(/\x1b\[[0-9;]*m/g, "");
    const file = /^running (\d+) tests? from (\S+)$/.exec(line);
    if (file !== null) {
      run.files.set(file[2]!.split("/").pop()!, Number(file[1]));
      continue;
    }
    const test = /^(.+) \.\.\. (ok|FAILED|ignored) \(/.exec(line);
    if (test !== null) {
      run.results.push({ name: test[1]!, result: test[2]! });
      continue;
    }
    const sum =
      /^(ok|FAILED) \| (\d+) passed(?: \(\d+ steps?\))? \| (\d+) failed(?: \(\d+ steps?\))?(?: \| (\d+) ignored)?/
        .exec(line);
    if (sum !== null) {
      run.summary = {
        ok: sum[1] === "ok",
        passed: Number(sum[2]),
        failed: Number(sum[3]),
        ignored: Number(sum[4] ?? 0),
      };
    }
  }
  return run;
}

/** The last lines of a process's output, for a message. */
function tail(p: Proc, n = 60): string {
  return p.lines.slice(-n).join("\n");
}

/** The test files of lib/sys/. */
function sysTestFiles(): string[] {
  return [...Deno.readDirSync(SYS_DIR)]
    .filter((e) => e.isFile && e.name.endsWith("_test.ts"))
    .map((e) => e.name)
    .sort();
}

/** Runs lib/sys's tests on this machine's Deno, within the deadline. */
async function nativeRun(): Promise<Proc> {
  const p = new Proc("native deno test lib/sys", [
    Deno.execPath(),
    ...TEST_ARGS,
  ], { NO_COLOR: "1" });
  try {
    await p.exit(NATIVE_RUN_MS);
    return p;
  } finally {
    await p.stop();
  }
}

const NAME = "lib/sys's unit tests pass on the aarch64 Deno (layouts, " +
  "constants, sockets, epoll, eventfd, error paths), every one that runs " +
  "natively";

Deno.test({
  name: SKIP ? `${NAME} [skipped: ${PROBLEM}]` : NAME,
  ignore: SKIP,
  async fn() {
    assert(
      PROBLEM === undefined,
      `aarch64 programs cannot run here: ${PROBLEM}`,
    );
    assertEquals(await elfArch(AARCH64_DENO), "aarch64", AARCH64_DENO);

    // Natively first: the list of tests the aarch64 run must match.
    const native = parseTestOutput((await nativeRun()).lines);
    assert(native.results.length > 0, "no tests ran natively");

    const denoDir = await Deno.makeTempDir({ prefix: "o7s-sys-aarch64-" });
    const p = new Proc("aarch64 deno test lib/sys", [
      AARCH64_DENO,
      ...TEST_ARGS,
    ], { NO_COLOR: "1", DENO_DIR: denoDir, ...aarch64Env() });
    try {
      // While it runs: the process is the aarch64 Deno (under qemu-user
      // unless this machine is aarch64).
      const started = performance.now();
      await p.waitFor(/^running \d+ tests? from /, AARCH64_RUN_MS);
      const pa = (await processArch([p.pid])).get(p.pid);
      const where = `process ${p.pid}: ${describeArch(pa)}`;
      assertEquals(pa?.arch, "aarch64", where);
      assertEquals(pa?.program, AARCH64_DENO, where);
      if (Deno.build.arch !== "aarch64") {
        assertMatch(pa?.emulator ?? "", /\/qemu-aarch64/, where);
      }

      const left = AARCH64_RUN_MS - (performance.now() - started);
      const st = await p.exit(Math.max(1, left));
      const run = parseTestOutput(p.lines);
      const failed = run.results.filter((r) => r.result !== "ok");
      assertEquals(
        failed,
        [],
        `tests that did not pass on aarch64:\n${tail(p)}`,
      );
      assertEquals(st.code, 0, tail(p));
      assertEquals(run.summary, {
        ok: true,
        passed: run.results.length,
        failed: 0,
        ignored: 0,
      }, tail(p));

      // Every test file of lib/sys ran, with as many tests as natively.
      assertEquals([...run.files.keys()].sort(), sysTestFiles());
      assertEquals(run.files, native.files);

      // It ran on aarch64, with the aarch64 layout.
      const reports = run.results.map((r) => ARCH_REPORT.exec(r.name))
        .filter((m) => m !== null);
      assertEquals(
        reports.map((m) => [m[1], m[2]]),
        [["aarch64", "aarch64"]],
        "the architecture the aarch64 run reported",
      );

      // The same tests as natively, in the same order, but for that one.
      const names = (r: TestRun) =>
        r.results.map((t) => t.name).filter((n) => !ARCH_REPORT.test(n));
      assertEquals(names(run), names(native));
    } finally {
      await p.stop();
      await Deno.remove(denoDir, { recursive: true });
    }
  },
});

/** The first of `names` that is an executable file on PATH. */
function onPath(names: readonly string[]): string | undefined {
  const dirs = (Deno.env.get("PATH") ?? "").split(":").filter((d) => d !== "");
  for (const name of names) {
    for (const dir of dirs) {
      try {
        const st = Deno.statSync(`${dir}/${name}`);
        if (st.isFile && ((st.mode ?? 0) & 0o111) !== 0) {
          return `${dir}/${name}`;
        }
      } catch {
        // not there
      }
    }
  }
  return undefined;
}

/** A compiler for aarch64: the cross compiler, or cc on an aarch64 machine. */
const COMPILER = onPath(
  Deno.build.arch === "aarch64"
    ? ["aarch64-linux-gnu-gcc", "cc"]
    : ["aarch64-linux-gnu-gcc"],
);
const PROBE_PROBLEM = await aarch64Problem({ deno: false });
const PROBE_SKIP_WHY = PROBE_PROBLEM !== undefined && !IN_CI
  ? PROBE_PROBLEM
  : COMPILER === undefined
  ? "no aarch64-linux-gnu-gcc on PATH (Debian: gcc-aarch64-linux-gnu), " +
    "so probe.c cannot be built for aarch64; the layouts and constants are " +
    "still checked on the aarch64 Deno by the test above"
  : undefined;

/** snake_case to camelCase. */
function camel(s: string): string {
  return s.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** The numbers of a layout: "epollEvent.data" to 8, and so on. */
function layoutNumbers(
  layout: object,
): Map<string, number> {
  const out = new Map<string, number>();
  for (const [key, value] of Object.entries(layout)) {
    if (typeof value === "number") out.set(key, value);
    else if (typeof value === "object" && value !== null) {
      for (const [field, n] of Object.entries(value)) {
        if (typeof n === "number") out.set(`${key}.${field}`, n);
      }
    }
  }
  return out;
}

/**
 * Where layout.ts keeps a number probe.c prints: "epoll_event.data" is
 * epollEvent.data, "sockaddr_in6.sin6_scope_id" sockaddrIn6.scopeId,
 * "msghdr size" msghdr.size, "sockaddr_storage size" sockaddrStorageSize.
 */
function layoutKey(probed: string): string {
  if (probed === "sockaddr_storage size") return "sockaddrStorageSize";
  const size = /^(\w+) size$/.exec(probed);
  if (size !== null) return `${camel(size[1]!)}.size`;
  const [struct, field] = probed.split(".");
  return `${camel(struct!)}.${
    camel(field!.replace(/^(sin6|sin|sun|iov|msg|tv)_/, ""))
  }`;
}

const PROBE_NAME = "lib/sys's aarch64 struct layouts and constants are " +
  "those of glibc's aarch64 headers (probe.c built for aarch64 and run)";

Deno.test({
  name: PROBE_SKIP_WHY === undefined
    ? PROBE_NAME
    : `${PROBE_NAME} [skipped: ${PROBE_SKIP_WHY}]`,
  ignore: PROBE_SKIP_WHY !== undefined,
  async fn() {
    assert(
      PROBE_PROBLEM === undefined,
      `aarch64 programs cannot run here: ${PROBE_PROBLEM}`,
    );
    assert(COMPILER !== undefined);
    const tmp = await Deno.makeTempDir({ prefix: "o7s-sys-probe-" });
    const procs: Proc[] = [];
    try {
      const exe = `${tmp}/probe`;
      const build = new Proc("cc probe.c", [
        COMPILER,
        "-o",
        exe,
        `${SYS_DIR}probe.c`,
      ], {});
      procs.push(build);
      const b = await build.exit(PROBE_BUILD_MS);
      assertEquals(b.code, 0, `${COMPILER} failed:\n${b.stderr}`);
      assertEquals(await elfArch(exe), "aarch64", exe);

      const probe = new Proc("probe", [exe], aarch64Env());
      procs.push(probe);
      const r = await probe.exit(PROBE_RUN_MS);
      assertEquals(r.code, 0, r.stderr);

      const structs = new Map<string, number>();
      const constants = new Map<string, number>();
      for (const line of r.stdout.trim().split("\n")) {
        const at = line.lastIndexOf(" ");
        const name = line.slice(0, at);
        const value = Number(line.slice(at + 1));
        assert(name !== "" && Number.isInteger(value), `probe line: ${line}`);
        if (name.includes(".") || name.endsWith(" size")) {
          structs.set(layoutKey(name), value);
        } else {
          constants.set(name, value);
        }
      }

      // Every number of the aarch64 layout, as the compiler sees it; the
      // length of sun_path follows from its offset and the struct's size.
      const L = LAYOUTS.aarch64;
      const table = layoutNumbers(L);
      table.delete("sockaddrUn.pathSize");
      assertEquals(table, structs);
      assertEquals(
        L.sockaddrUn.pathSize,
        L.sockaddrUn.size - L.sockaddrUn.path,
      );

      // Every number of constants.ts, as the compiler sees it.
      const exported = new Map<string, number>();
      for (const [name, value] of Object.entries(C)) {
        if (typeof value === "number") exported.set(name, value);
      }
      assertEquals(
        exported.get("SOCKADDR_STORAGE_SIZE"),
        L.sockaddrStorageSize,
      );
      exported.delete("SOCKADDR_STORAGE_SIZE");
      assertEquals(exported, constants);
    } finally {
      for (const p of procs) await p.stop();
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
