import { assertEquals, assertRejects } from "../../tests/assert.ts";
import { HostsFileError, parseHosts, Resolver } from "./resolve.ts";

const KEY = "6ae220aa6aae06c43878513c64db34b6";

Deno.test("parseHosts: addresses per name, comments and bad lines skipped", () => {
  const m = parseHosts(
    `# comment\n127.0.0.1 ${KEY} #oping-server\nnot-an-ip x\n::1 ${KEY}\n`,
  );
  assertEquals(m.get(KEY), ["127.0.0.1", "::1"]);
  assertEquals(m.get("x"), undefined);
});

Deno.test("a missing layer hosts file is an error that names it, and a file that appears later is used", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/hosts`;
    const r = new Resolver({ family: 4, hostsFile: file });
    const e = await assertRejects(() => r.resolve(KEY));
    assertEquals(e instanceof HostsFileError, true);
    assertEquals(
      e.message,
      `cannot read the layer's hosts file ${file}: no such file`,
    );
    await Deno.writeTextFile(file, `127.0.0.3 ${KEY}\n`);
    // The failure is not cached: the next resolution reads the file.
    assertEquals(await r.resolve(KEY), "127.0.0.3");
    // A name the file does not hold is unknown, not an error.
    assertEquals(await r.resolve("00"), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
