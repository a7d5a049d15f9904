/**
 * Name resolution for a UDP layer: a name's directory key is the lowercase
 * hex of its MD5, resolved to an address of the layer's family.
 *
 * - With a layer hosts file (`hosts=`) and no `dns=`: that file only, so that layers never
 *   mix and nothing is asked of DNS.
 * - With a DNS server (`dns=`): the layer hosts file if there is one, then
 *   that server, asked directly (ipcpd/udp/ddns.ts); an answer is kept for its
 *   TTL (at most DNS_CACHE_MS). A server that does not answer or refuses is
 *   an error (thrown, never cached), not an unknown name.
 * - Otherwise: the system hosts file, then the system's DNS resolver.
 * Answers are cached for a bounded time; a missing answer is never cached
 * for long, so a name that appears later resolves.
 */
import { ipFamily } from "../../lib/util/ip.ts";
import { type DnsClient, lookupAddress } from "./ddns.ts";

export const HOSTS_CACHE_MS = 1000;
export const DNS_CACHE_MS = 60_000;
export const DNS_TIMEOUT_MS = 2000;

/** Parses hosts-file text into name -> addresses (in file order). */
export function parseHosts(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const raw of text.split("\n")) {
    const line = raw.replace(/#.*/, "").trim();
    if (line === "") continue;
    const [addr, ...names] = line.split(/\s+/);
    if (addr === undefined || ipFamily(addr) === undefined) continue;
    for (const n of names) {
      const key = n.toLowerCase();
      const list = out.get(key) ?? [];
      list.push(addr);
      out.set(key, list);
    }
  }
  return out;
}

interface CacheEntry {
  addr: string | undefined;
  until: number;
}

export interface ResolverOptions {
  family: 4 | 6;
  /** The layer's own hosts file; when set, the only source. */
  hostsFile?: string;
  /** The system hosts file (tests may point elsewhere). */
  systemHosts?: string;
  /** The layer's DNS server (`dns=`): asked directly, not the system resolver. */
  dns?: DnsClient;
  /** The zone of the names on that server ("." by default). */
  zone?: string;
}

/** The layer's own hosts file could not be read (missing, unreadable). */
export class HostsFileError extends Error {
  constructor(readonly file: string, why: string) {
    super(`cannot read the layer's hosts file ${file}: ${why}`);
  }
}

function readWhy(e: unknown): string {
  if (e instanceof Deno.errors.NotFound) return "no such file";
  if (e instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (e instanceof Deno.errors.IsADirectory) return "it is a directory";
  return e instanceof Error ? e.message : String(e);
}

export class Resolver {
  #cache = new Map<string, CacheEntry>();
  #hostsText:
    | { file: string; at: number; map: Map<string, string[]> }
    | undefined;

  constructor(private readonly opts: ResolverOptions) {}

  /** Where answers come from, for log lines. */
  describe(): string {
    if (this.opts.dns !== undefined) {
      return this.opts.hostsFile !== undefined
        ? `hosts file ${this.opts.hostsFile}, ${this.opts.dns.describe()}`
        : this.opts.dns.describe();
    }
    return this.opts.hostsFile !== undefined
      ? `hosts file ${this.opts.hostsFile}`
      : "the system resolver";
  }

  async resolve(key: string): Promise<string | undefined> {
    const now = Date.now();
    const hit = this.#cache.get(key);
    if (hit !== undefined && hit.until > now) return hit.addr;
    let addr: string | undefined;
    let ttl = HOSTS_CACHE_MS;
    if (this.opts.dns !== undefined) {
      if (this.opts.hostsFile !== undefined) {
        addr = this.#fromHosts(this.opts.hostsFile, key, true);
      }
      if (addr === undefined) {
        // Throws when the server does not answer or refuses: not cached.
        const got = await lookupAddress(
          this.opts.dns,
          key,
          this.opts.zone ?? ".",
          this.opts.family,
        );
        addr = got.address;
        if (addr !== undefined) ttl = Math.min(got.ttl * 1000, DNS_CACHE_MS);
      }
    } else if (this.opts.hostsFile !== undefined) {
      addr = this.#fromHosts(this.opts.hostsFile, key, true);
    } else {
      addr = this.#fromHosts(
        this.opts.systemHosts ?? "/etc/hosts",
        key,
        false,
      );
      if (addr === undefined) {
        addr = await this.#fromDns(key);
        if (addr !== undefined) ttl = DNS_CACHE_MS;
      }
    }
    if (this.#cache.size > 10_000) this.#cache.clear();
    this.#cache.set(key, { addr, until: now + ttl });
    return addr;
  }

  /**
   * A name from a hosts file, re-read at most every HOSTS_CACHE_MS (a file
   * that appears or changes later is picked up). The layer's own file must
   * be readable: otherwise a HostsFileError (not cached), since every name
   * of the layer would fail to resolve for that reason alone. A missing
   * system hosts file is only an empty one.
   */
  #fromHosts(
    file: string,
    key: string,
    required: boolean,
  ): string | undefined {
    const now = Date.now();
    let cached = this.#hostsText;
    if (
      cached === undefined || cached.file !== file ||
      now - cached.at > HOSTS_CACHE_MS
    ) {
      let text = "";
      try {
        // A small local file, read at most once a second: synchronously, a
        // few system calls, where an asynchronous read is a round trip
        // through Deno's thread pool in the middle of an allocation.
        text = Deno.readTextFileSync(file);
      } catch (e) {
        this.#hostsText = undefined;
        if (required) throw new HostsFileError(file, readWhy(e));
      }
      cached = { file, at: now, map: parseHosts(text) };
      this.#hostsText = cached;
    }
    const list = cached.map.get(key.toLowerCase()) ?? [];
    return list.find((a) => ipFamily(a) === this.opts.family);
  }

  async #fromDns(key: string): Promise<string | undefined> {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), DNS_TIMEOUT_MS);
    try {
      const type = this.opts.family === 4 ? "A" : "AAAA";
      const answers = await Deno.resolveDns(key, type, { signal: ctl.signal });
      return answers[0];
    } catch {
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }
}
