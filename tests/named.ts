/**
 * BIND 9 for the DDNS tests: a `named` of our own, on loopback, on a free
 * unprivileged port, with its configuration and a master zone "." in a
 * temporary directory, accepting unsigned updates from 127.0.0.0/8 and ::1.
 * Started in the foreground (-g: logs on stderr), ready when it logs
 * "running", stopped with SIGTERM.
 *
 * Where `named` is missing, the tests are skipped with a printed reason,
 * except in CI (CI=true), where that is a failure. The same goes for `dig`,
 * which reads a record's TTL (what Deno's resolver does not show).
 */
import { Proc } from "../lib/util/child.ts";
import { runCommand } from "./harness.ts";

/** A program on PATH, or in the usual sbin directories. */
function findProgram(name: string): string | undefined {
  const dirs = (Deno.env.get("PATH") ?? "").split(":").filter((d) => d !== "");
  dirs.push("/usr/sbin", "/usr/local/sbin", "/sbin");
  for (const d of dirs) {
    try {
      if (Deno.statSync(`${d}/${name}`).isFile) return `${d}/${name}`;
    } catch { /* not here */ }
  }
  return undefined;
}

/** The named executable: on PATH, or in the usual sbin directories. */
export function findNamed(): string | undefined {
  return findProgram("named");
}

export const NAMED = findNamed();
const IN_CI = Deno.env.get("CI") === "true";
const DIG = findProgram("dig");

/** Why the TTL checks cannot run here, or undefined when they can. */
export const DIG_MISSING = DIG === undefined
  ? "dig is not installed: not on PATH nor in /usr/sbin " +
    "(Debian/Ubuntu: apt-get install dnsutils; .ci/run does this)"
  : undefined;

/** Why the DDNS tests cannot run here, or undefined when they can. */
export const NAMED_MISSING = NAMED === undefined
  ? "named (BIND 9) is not installed: not on PATH nor in /usr/sbin " +
    "(Debian/Ubuntu: apt-get install bind9 dnsutils; .ci/run does this)"
  : undefined;

/**
 * `ignore` for Deno.test: true (with the reason printed once) where named
 * is missing, except in CI, where the tests run and fail on it.
 */
export function skipWithoutNamed(): boolean {
  if (NAMED_MISSING === undefined || IN_CI) return false;
  if (!printed) {
    printed = true;
    console.log(`Skipping the DDNS tests: ${NAMED_MISSING}.`);
  }
  return true;
}
let printed = false;

/**
 * Deno.test for a test that needs named. Where it is skipped, the reason is
 * also in the test's name: `deno test -q` prints no console output.
 */
export function testWithNamed(
  name: string,
  fn: (t: Deno.TestContext) => Promise<void>,
): void {
  const ignore = skipWithoutNamed();
  Deno.test({
    name: ignore ? `${name} [skipped: ${NAMED_MISSING}]` : name,
    ignore,
    fn,
  });
}

/**
 * A test step that needs dig: ignored where dig is missing, with the reason
 * in its name, except in CI, where it runs and fails on it.
 */
export function stepWithDig(
  name: string,
  fn: () => Promise<void>,
): Deno.TestStepDefinition {
  const ignore = DIG_MISSING !== undefined && !IN_CI;
  return {
    name: ignore ? `${name} [skipped: ${DIG_MISSING}]` : name,
    ignore,
    fn,
  };
}

export interface NamedOptions {
  /** Listen on 127.0.0.1 (default true). */
  v4?: boolean;
  /** Listen on ::1 (default false). */
  v6?: boolean;
  /** The zone to serve and update (default "."). */
  zone?: string;
  label?: string;
}

const READY = /\srunning$/;
const START_MS = 10_000;

function zoneFile(zone: string): string {
  const z = zone === "." ? "." : `${zone.replace(/\.$/, "")}.`;
  const ns = z === "." ? "ns." : `ns.${z}`;
  return `$TTL 3600
${z} IN SOA ${ns} hostmaster.${z === "." ? "" : z} 1 3600 600 86400 60
${z} IN NS ${ns}
${ns} IN A 127.0.0.1
${ns} IN AAAA ::1
`;
}

function namedConf(
  dir: string,
  port: number,
  zone: string,
  v4: boolean,
  v6: boolean,
): string {
  return `options {
  directory "${dir}";
  pid-file none;
  session-keyfile none;
  listen-on port ${port} { ${v4 ? "127.0.0.1;" : "none;"} };
  listen-on-v6 port ${port} { ${v6 ? "::1;" : "none;"} };
  recursion no;
  dnssec-validation no;
  notify no;
  allow-query { any; };
};
controls { };
zone "${zone}" {
  type primary;
  file "zone.db";
  allow-update { 127.0.0.0/8; ::1; };
};
`;
}

/** True when `port` is free for UDP and TCP on every address we need. */
function portFree(port: number, hosts: string[]): boolean {
  const opened: { close(): void }[] = [];
  try {
    for (const hostname of hosts) {
      opened.push(Deno.listenDatagram({ transport: "udp", hostname, port }));
      opened.push(Deno.listen({ transport: "tcp", hostname, port }));
    }
    return true;
  } catch {
    return false;
  } finally {
    for (const o of opened) o.close();
  }
}

/** One running (or stopped) BIND server of a test. */
export class Named {
  #proc: Proc | undefined;

  private constructor(
    readonly dir: string,
    readonly port: number,
    readonly zone: string,
    readonly label: string,
    readonly hosts: string[],
  ) {}

  /** Starts named on a free port; retries on another port if that one is taken. */
  static async start(opts: NamedOptions = {}): Promise<Named> {
    if (NAMED === undefined) {
      throw new Error(
        `${NAMED_MISSING}${IN_CI ? "; CI=true, so this is a failure" : ""}`,
      );
    }
    const v4 = opts.v4 ?? true;
    const v6 = opts.v6 ?? false;
    const zone = opts.zone ?? ".";
    const hosts = [...(v4 ? ["127.0.0.1"] : []), ...(v6 ? ["::1"] : [])];
    let lastError: unknown;
    for (let attempt = 0; attempt < 5; attempt++) {
      let port = 0;
      for (let i = 0; i < 50 && port === 0; i++) {
        const p = 20_000 + Math.floor(Math.random() * 30_000);
        if (portFree(p, hosts)) port = p;
      }
      const dir = await Deno.makeTempDir({ prefix: "o7s-named-" });
      await Deno.writeTextFile(
        `${dir}/named.conf`,
        namedConf(dir, port, zone, v4, v6),
      );
      await Deno.writeTextFile(`${dir}/zone.db`, zoneFile(zone));
      const n = new Named(
        dir,
        port,
        zone,
        opts.label ?? `named:${port}`,
        hosts,
      );
      try {
        await n.restart();
        return n;
      } catch (e) {
        lastError = e;
        await n.close();
      }
    }
    throw lastError;
  }

  /** "127.0.0.1:<port>", for a udp4 layer's dns= key. */
  get dns4(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** "[::1]:<port>", for a udp6 layer's dns= key. */
  get dns6(): string {
    return `[::1]:${this.port}`;
  }

  get running(): boolean {
    return this.#proc !== undefined;
  }

  /** Starts (again) on the same port, directory and zone data. */
  async restart(): Promise<void> {
    if (this.#proc !== undefined) throw new Error("named is running");
    const p = new Proc(this.label, [
      NAMED!,
      "-g",
      "-c",
      `${this.dir}/named.conf`,
    ], { PATH: Deno.env.get("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin" });
    this.#proc = p;
    try {
      await p.waitFor(READY, START_MS);
      const bad = p.lines.find((l) =>
        /could not listen|address in use|loading from master file .* failed/i
          .test(l)
      );
      if (bad !== undefined) throw new Error(`${this.label}: ${bad}`);
    } catch (e) {
      await this.stop();
      throw e;
    }
  }

  /** SIGTERM, and waits for the exit (SIGKILL after 5 s). */
  async stop(): Promise<void> {
    const p = this.#proc;
    this.#proc = undefined;
    if (p !== undefined) await p.stop(5000);
  }

  /** Stops named and removes its directory. */
  async close(): Promise<void> {
    await this.stop();
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }

  /** Its log so far (for failure messages). */
  log(): string {
    return this.#proc?.lines.join("\n") ?? "(not running)";
  }

  /**
   * The answer lines `dig` prints for `name` and `type`, asked at `host`
   * (one of the addresses named listens on), within a deadline.
   */
  async dig(host: string, name: string, type: string): Promise<string[]> {
    if (DIG === undefined) {
      throw new Error(
        `${DIG_MISSING}${IN_CI ? "; CI=true, so this is a failure" : ""}`,
      );
    }
    const r = await runCommand(DIG, [
      `@${host}`,
      "-p",
      String(this.port),
      name,
      type,
      "+noall",
      "+answer",
      "+time=2",
      "+tries=1",
    ], { timeoutMs: 10_000 });
    if (r.code !== 0) {
      throw new Error(`dig failed (${r.code}):\n${r.stdout}${r.stderr}`);
    }
    return r.stdout.split("\n").filter((l) => l.trim() !== "");
  }

  /**
   * The addresses the server holds for `name` (A or AAAA), asked through
   * Deno's own resolver: a check independent of our DNS code. [] when the
   * name or record does not exist.
   */
  /**
   * Waits until `name` resolves to `want` (no record: []), looking every
   * 50 ms, and fails with the last answer after `ms`. The records change
   * when the IPCP's update is answered: an update that a server slowed by
   * load answers after the command's own deadline (registration, or the
   * second a shutdown spends on it) lands later, retried or already sent.
   */
  async lookupUntil(
    name: string,
    type: "A" | "AAAA",
    want: readonly string[],
    ms = 15_000,
  ): Promise<void> {
    const until = performance.now() + ms;
    const same = (a: string[]) =>
      a.length === want.length && a.every((x, i) => x === want[i]);
    let got = await this.lookup(name, type);
    while (!same(got) && performance.now() < until) {
      await new Promise((r) => setTimeout(r, 50));
      got = await this.lookup(name, type);
    }
    if (!same(got)) {
      throw new Error(
        `${name} ${type} is [${got.join(", ")}] after ${ms} ms, not [${
          want.join(", ")
        }]`,
      );
    }
  }

  async lookup(name: string, type: "A" | "AAAA"): Promise<string[]> {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), 5000);
    try {
      return await Deno.resolveDns(name, type, {
        nameServer: { ipAddr: this.hosts[0]!, port: this.port },
        signal: ctl.signal,
      });
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return [];
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }
}
