/**
 * A clone stands alone: no source, test, script or configuration file names
 * a path outside the checkout (the captures and notes the tests use are
 * copied into tests/vectors/ and spec/).
 */
import { assert, assertEquals } from "./assert.ts";
import { REPO, runCommand } from "./harness.ts";

/** Files that run or configure something: what must not reach outside. */
function isChecked(path: string): boolean {
  if (
    path.startsWith("spec/") || path.startsWith("tests/vectors/") ||
    path.startsWith("bench/results/")
  ) {
    return false; // copies of outside material; results the bench wrote
  }
  return /\.(ts|js|sh|json|conf|toml)$/.test(path) ||
    ["run-demo", "run-tests", ".ci/run"].includes(path) ||
    path.startsWith("bin/");
}

/** Every file git would put in a clone, as in the working tree. */
async function trackedFiles(): Promise<string[]> {
  const out = await runCommand(
    "git",
    ["ls-files", "--cached", "--others", "--exclude-standard"],
    { cwd: REPO, timeoutMs: 30_000 },
  );
  assert(out.code === 0, out.stderr);
  return out.stdout.split("\n").filter((l) => l !== "");
}

/** Where a relative path written in `file` leads, relative to the checkout. */
function resolveFrom(file: string, rel: string): string {
  const parts = file.split("/").slice(0, -1);
  for (const p of rel.split("/")) {
    if (p === "..") {
      if (parts.length === 0) return "<outside>";
      parts.pop();
    } else if (p !== "." && p !== "") parts.push(p);
  }
  return parts.join("/");
}

/**
 * The folder beside the checkout that a clone does not have. Spelled in
 * parts so that this file does not name it (it is checked like the rest).
 */
const SHARED = "sha" + "red";
const SHARED_FOLDER = new RegExp(`\\b${SHARED}/(vectors|spec|seed|hooks)\\b`);
const ROOT = "/" + "work";
/** Two levels up, spelled so that the examples below are not matches. */
const UP2 = "../".repeat(2);
const ABSOLUTE = new RegExp(`(^|[\\s"'\`(=])${ROOT}/`);

/** The places in one file's text that name a path outside the checkout. */
export function outsideReferences(file: string, text: string): string[] {
  const found: string[] = [];
  const lines = text.split("\n");
  lines.forEach((line, i) => {
    const at = `${file}:${i + 1}`;
    if (SHARED_FOLDER.test(line)) {
      found.push(`${at}: names the shared folder: ${line.trim()}`);
    }
    if (ABSOLUTE.test(line)) {
      found.push(`${at}: names an absolute path: ${line.trim()}`);
    }
    // Relative specifiers in imports, URLs and shell paths.
    for (const m of line.matchAll(/["'`]((?:\.\.?\/)+[^"'`$\s]*)/g)) {
      const rel = m[1] ?? "";
      if (resolveFrom(file, rel) === "<outside>") {
        found.push(`${at}: ${rel} leads outside the checkout`);
      }
    }
  });
  return found;
}

Deno.test("outsideReferences finds what leaves the checkout", () => {
  assertEquals(
    outsideReferences(
      "tests/x.ts",
      `new URL("${UP2}${SHARED}/vectors/a.txt", import.meta.url)`,
    ).length,
    2,
  );
  assertEquals(
    outsideReferences("tests/x.ts", `import "${UP2}elsewhere.ts";`).length,
    1,
  );
  assertEquals(
    outsideReferences("bin/x", `cat ${ROOT}/${SHARED}/spec/a`).length,
    2,
  );
  assertEquals(
    outsideReferences("lib/wire/x.ts", `import "${UP2}tests/rng.ts";`),
    [],
  );
  assertEquals(outsideReferences("tests/x.ts", 'new URL("./vectors/")'), []);
});

Deno.test("no file of the checkout names a path outside it", async () => {
  const found: string[] = [];
  let checked = 0;
  for (const file of await trackedFiles()) {
    if (!isChecked(file)) continue;
    let text: string;
    try {
      text = await Deno.readTextFile(REPO + file);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) continue; // deleted, not staged
      throw e;
    }
    checked++;
    found.push(...outsideReferences(file, text));
  }
  assert(checked > 50, `only ${checked} files checked`);
  assertEquals(found, []);
});
