import {
  assertEquals,
  assertMatch,
  assertRejects,
} from "../../tests/assert.ts";
import { acceptLoop, type Acceptor, ensureRundir } from "./rundir.ts";

/** A listener that answers each accept from a script: a name or an error. */
class ScriptedListener implements Acceptor<string> {
  constructor(private readonly script: (string | Error)[]) {}
  accept(): Promise<string> {
    const next = this.script.shift() ??
      new Deno.errors.BadResource("Listener has been closed");
    return next instanceof Error ? Promise.reject(next) : Promise.resolve(next);
  }
}

Deno.test("acceptLoop: failed accepts are tried again; a closed listener ends it", async () => {
  const emfile = new Error("Too many open files (os error 24)");
  const conns: string[] = [];
  const fails: unknown[] = [];
  const resumes: number[] = [];
  await acceptLoop(
    new ScriptedListener(["a", emfile, emfile, emfile, "b", emfile, "c"]),
    (c) => conns.push(c),
    (e) => fails.push(e),
    (n) => resumes.push(n),
  );
  assertEquals(conns, ["a", "b", "c"]);
  assertEquals(fails, [emfile, emfile], "the first failure of each run");
  assertEquals(resumes, [3, 1]);
});

Deno.test("acceptLoop: an interrupted accept ends it too", async () => {
  const conns: string[] = [];
  await acceptLoop(
    new ScriptedListener(["a", new Deno.errors.Interrupted("closed"), "b"]),
    (c) => conns.push(c),
    () => {},
    () => {},
  );
  assertEquals(conns, ["a"]);
});

Deno.test("ensureRundir: a file in the way is not a directory; too long a path creates nothing", async () => {
  const base = await Deno.makeTempDir({ prefix: "rundir-test-" });
  try {
    const file = `${base}/file`;
    await Deno.writeTextFile(file, "");
    for (const dir of [file, `${file}/sub`]) {
      const e = await assertRejects(() => ensureRundir(dir));
      assertMatch(e.message, /is not a directory/);
    }
    const long = `${base}/${"d".repeat(80)}/run`;
    const e = await assertRejects(() => ensureRundir(long));
    assertMatch(e.message, /longer than 107 bytes/);
    const left = [...Deno.readDirSync(base)].map((d) => d.name);
    assertEquals(left, ["file"]);
    // A fine path is created, owner-only.
    await ensureRundir(`${base}/ok/run`);
    assertEquals((await Deno.stat(`${base}/ok/run`)).mode! & 0o777, 0o700);
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});
