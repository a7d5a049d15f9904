import { assertEquals } from "../../tests/assert.ts";
import { formatLine, Logger, setupLogging } from "./log.ts";

class MemorySink {
  lines: string[] = [];
  writeSync(p: Uint8Array): number {
    this.lines.push(new TextDecoder().decode(p));
    return p.length;
  }
  isTerminal(): boolean {
    return false;
  }
}

Deno.test("log line has the C format with a zero-padded pid", () => {
  assertEquals(
    formatLine(42, "irmd", "II", "Created IPCP 16728."),
    "==00042== irmd(II): Created IPCP 16728.",
  );
  assertEquals(
    formatLine(16716, "irmd/configuration", "DB", "x"),
    "==16716== irmd/configuration(DB): x",
  );
});

Deno.test("debug lines appear only with debug on, no colour off a terminal", () => {
  const sink = new MemorySink();
  setupLogging({ debug: false, sink });
  const log = new Logger("ipcpd/udp");
  log.debug("hidden");
  log.info("shown");
  setupLogging({ debug: true });
  log.debug("now shown");
  setupLogging({ debug: false, sink: Deno.stdout });
  const pid = String(Deno.pid).padStart(5, "0");
  assertEquals(sink.lines, [
    `==${pid}== ipcpd/udp(II): shown\n`,
    `==${pid}== ipcpd/udp(DB): now shown\n`,
  ]);
});
