/**
 * Dynamic DNS for a UDP layer with `dns=<server>`: the IPCP speaks DNS to
 * that one server itself (lib/wire/dns.ts), over UDP.
 *
 * - `DnsClient`: one request/response exchange per call, from a fresh socket
 *   on an ephemeral port, with a random id, resent every `tryMs` until a
 *   deadline. Responses from another address, with a wrong id, truncated
 *   (TC) or malformed are ignored with a debug line; the exchange goes on.
 * - `lookupAddress`: asks the server for `<hex>.<zone>` A (udp4) or AAAA (udp6).
 * - `DdnsRegistrar`: keeps the server's records in step with the names
 *   registered in the IPCP. A registration adds `<hex>.<zone>` with the
 *   IPCP's address (TTL 86400); an unregistration deletes that one record
 *   (class NONE, so that another node's record for the same name stays).
 *   When the server does not answer or refuses, it says so in the log and
 *   tries again in the background (1 s, doubling up to 30 s) until it
 *   succeeds or the name goes away. `close` deletes every record it added,
 *   within a bounded time.
 */
import * as dns from "../../lib/wire/dns.ts";
import { Logger } from "../../lib/util/log.ts";
import type { Result } from "../../lib/util/result.ts";

const log = new Logger("ipcpd/udp");

/** Time to wait for an answer before sending the request again. */
export const DNS_TRY_MS = 500;
/** Time after which an exchange gives up. */
export const DNS_DEADLINE_MS = 2000;
/** TTL of the records we add (seconds), as C's nsupdate does. */
export const DDNS_TTL = 86400;
/** First delay before retrying a failed update; doubles up to the next. */
export const DDNS_RETRY_FIRST_MS = 1000;
export const DDNS_RETRY_MAX_MS = 30_000;
/** Time a clean shutdown may spend deleting our records. */
export const DDNS_CLOSE_MS = 1000;

export interface DnsServer {
  host: string;
  port: number;
}

/** `127.0.0.1:53`, `[::1]:5353`. */
export function serverText(s: DnsServer): string {
  return s.host.includes(":") ? `[${s.host}]:${s.port}` : `${s.host}:${s.port}`;
}

export type DnsFailure =
  | "timeout"
  | "rcode"
  | "network"
  | "invalid"
  | "aborted";

/** A failed exchange with the DNS server; the message says what happened. */
export class DnsError extends Error {
  override readonly name = "DnsError";
  constructor(readonly kind: DnsFailure, message: string) {
    super(message);
  }
}

export interface ExchangeOptions {
  tryMs?: number;
  deadlineMs?: number;
  signal?: AbortSignal;
}

function randomId(): number {
  const b = crypto.getRandomValues(new Uint8Array(2));
  return (b[0]! << 8) | b[1]!;
}

/** An address in one canonical text form, so that addresses compare as strings. */
function canonicalIp(ip: string): string {
  const b = dns.encodeAddress(ip);
  if (!b.ok) return ip;
  const t = dns.decodeAddress(b.value);
  return t.ok ? t.value : ip;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Talks to one DNS server. */
export class DnsClient {
  readonly tryMs: number;
  readonly deadlineMs: number;

  constructor(readonly server: DnsServer, opts: ExchangeOptions = {}) {
    this.tryMs = opts.tryMs ?? DNS_TRY_MS;
    this.deadlineMs = opts.deadlineMs ?? DNS_DEADLINE_MS;
  }

  describe(): string {
    return `DNS server ${serverText(this.server)}`;
  }

  /** Sends a query; returns the checked response (any rcode). */
  async query(
    name: string,
    type: number,
    opts: ExchangeOptions = {},
  ): Promise<dns.Message> {
    return await this.exchange(
      (id) => dns.encodeQuery({ id, name, type }),
      (id) => ({ id, opcode: dns.OPCODE_QUERY, question: { name, type } }),
      opts,
    );
  }

  /** Sends an UPDATE; resolves when the server answered NOERROR. */
  async update(
    zone: string,
    updates: dns.UpdateOp[],
    opts: ExchangeOptions = {},
  ): Promise<void> {
    const m = await this.exchange(
      (id) => dns.encodeUpdate({ id, zone, updates }),
      (id) => ({
        id,
        opcode: dns.OPCODE_UPDATE,
        question: { name: zone, type: dns.TYPE_SOA },
      }),
      opts,
    );
    const rcode = m.header.rcode;
    if (rcode !== dns.RCODE_NOERROR) {
      throw new DnsError(
        "rcode",
        `${this.describe()} refused the update (${dns.rcodeName(rcode)})`,
      );
    }
  }

  /**
   * One exchange: sends the request, resends it every `tryMs`, and returns
   * the first valid response from the server, or throws a DnsError.
   */
  async exchange(
    build: (id: number) => Result<Uint8Array>,
    expect: (id: number) => dns.Expected,
    opts: ExchangeOptions = {},
  ): Promise<dns.Message> {
    const tryMs = opts.tryMs ?? this.tryMs;
    const deadlineMs = opts.deadlineMs ?? this.deadlineMs;
    const id = randomId();
    const req = build(id);
    if (!req.ok) throw new DnsError("invalid", req.error);
    const expected = expect(id);
    if (opts.signal?.aborted) {
      throw new DnsError("aborted", "the request was cancelled");
    }
    const family = this.server.host.includes(":") ? 6 : 4;
    let sock: Deno.DatagramConn;
    try {
      sock = Deno.listenDatagram({
        transport: "udp",
        hostname: family === 6 ? "::" : "0.0.0.0",
        port: 0,
      });
    } catch (e) {
      throw new DnsError(
        "network",
        `cannot open a socket to reach ${this.describe()}: ${message(e)}`,
      );
    }
    const target: Deno.NetAddr = {
      transport: "udp",
      hostname: this.server.host,
      port: this.server.port,
    };
    const serverIp = canonicalIp(this.server.host);
    const result = Promise.withResolvers<dns.Message>();
    result.promise.catch(() => {}); // awaited below; never unhandled
    let settled = false;
    const finish = (v: dns.Message | DnsError) => {
      if (settled) return;
      settled = true;
      if (v instanceof DnsError) result.reject(v);
      else result.resolve(v);
    };
    const onAbort = () =>
      finish(new DnsError("aborted", "the request was cancelled"));
    opts.signal?.addEventListener("abort", onAbort);
    const receiving = (async () => {
      const buf = new Uint8Array(65536);
      while (!settled) {
        let d: Uint8Array;
        let from: Deno.NetAddr;
        try {
          const [got, addr] = await sock.receive(buf);
          d = got;
          from = addr as Deno.NetAddr;
        } catch (e) {
          if (!settled) {
            finish(
              new DnsError(
                "network",
                `cannot receive from ${this.describe()}: ${message(e)}`,
              ),
            );
          }
          return;
        }
        if (
          from.port !== this.server.port ||
          canonicalIp(from.hostname) !== serverIp
        ) {
          log.debug(
            `Ignored a DNS message from ${
              serverText({ host: from.hostname, port: from.port })
            }: not the ${this.describe()}.`,
          );
          continue;
        }
        const m = dns.checkResponse(d, expected);
        if (!m.ok) {
          log.debug(
            `Ignored a response from the ${this.describe()}: ${m.error}.`,
          );
          continue;
        }
        finish(m.value);
      }
    })();
    const deadline = Date.now() + deadlineMs;
    try {
      while (!settled) {
        const left = deadline - Date.now();
        if (left <= 0) {
          finish(
            new DnsError(
              "timeout",
              `${this.describe()} did not answer within ${deadlineMs} ms`,
            ),
          );
          break;
        }
        try {
          await sock.send(req.value, target);
        } catch (e) {
          finish(
            new DnsError(
              "network",
              `cannot send to ${this.describe()}: ${message(e)}`,
            ),
          );
          break;
        }
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          result.promise.catch(() => {}),
          new Promise<void>((r) =>
            timer = setTimeout(r, Math.min(tryMs, left))
          ),
        ]);
        clearTimeout(timer);
      }
      return await result.promise;
    } finally {
      opts.signal?.removeEventListener("abort", onAbort);
      try {
        sock.close();
      } catch { /* closed */ }
      await receiving;
    }
  }
}

/** An answer to a lookup: the address, or none (the name does not exist). */
export interface Lookup {
  address: string | undefined;
  /** How long the answer may be kept (seconds; the record's TTL). */
  ttl: number;
}

/**
 * Asks the server for the address of `<hex>.<zone>` (A for udp4, AAAA for
 * udp6). NXDOMAIN or no such record: no address. Any other failure (no
 * answer, SERVFAIL, REFUSED) throws a DnsError saying so.
 */
export async function lookupAddress(
  client: DnsClient,
  key: string,
  zone: string,
  family: 4 | 6,
  opts: ExchangeOptions = {},
): Promise<Lookup> {
  const type = family === 4 ? dns.TYPE_A : dns.TYPE_AAAA;
  const m = await client.query(dns.fqdn(key, zone), type, opts);
  const rcode = m.header.rcode;
  if (rcode === dns.RCODE_NXDOMAIN) return { address: undefined, ttl: 0 };
  if (rcode !== dns.RCODE_NOERROR) {
    throw new DnsError(
      "rcode",
      `${client.describe()} refused the query (${dns.rcodeName(rcode)})`,
    );
  }
  const got = dns.answerAddresses(m, type);
  return { address: got.addresses[0], ttl: got.ttl };
}

export interface RegistrarOptions {
  client: DnsClient;
  /** The zone to update: "." for bare names. */
  zone: string;
  family: 4 | 6;
  /** The IPCP's own address, the data of every record. */
  address: string;
  retryFirstMs?: number;
  retryMaxMs?: number;
}

interface Entry {
  name: string;
  /** What the server should hold for this hash. */
  want: "add" | "delete";
  /** The server is known to hold what `want` says. */
  synced: boolean;
  /** Operations on one entry run one at a time, in order. */
  chain: Promise<void>;
  timer: ReturnType<typeof setTimeout> | undefined;
  backoff: number;
  failures: number;
}

/** Keeps a DNS server's records in step with the IPCP's registrations. */
export class DdnsRegistrar {
  readonly #client: DnsClient;
  readonly #zone: string;
  readonly #type: number;
  readonly #rdata: Uint8Array;
  readonly #first: number;
  readonly #max: number;
  #entries = new Map<string, Entry>();
  #abort = new AbortController();
  #closed = false;
  #closing: Promise<void> | undefined;

  constructor(readonly opts: RegistrarOptions) {
    this.#client = opts.client;
    this.#zone = opts.zone;
    this.#type = opts.family === 4 ? dns.TYPE_A : dns.TYPE_AAAA;
    const rdata = dns.encodeAddress(opts.address);
    if (!rdata.ok) throw new DnsError("invalid", rdata.error);
    this.#rdata = rdata.value;
    this.#first = opts.retryFirstMs ?? DDNS_RETRY_FIRST_MS;
    this.#max = opts.retryMaxMs ?? DDNS_RETRY_MAX_MS;
  }

  /** Hashes whose record is not (yet) as it should be on the server. */
  pending(): string[] {
    return [...this.#entries].filter(([, e]) => !e.synced).map(([h]) => h);
  }

  /**
   * Adds the record for `hex`. Resolves with undefined once the server has
   * it, or with the reason it failed (logged; retried in the background).
   */
  add(hex: string, name: string): Promise<string | undefined> {
    return this.#want(hex, name, "add");
  }

  /** Deletes the record for `hex`; as `add`, never rejects. */
  remove(hex: string, name: string): Promise<string | undefined> {
    return this.#want(hex, name, "delete");
  }

  #want(
    hex: string,
    name: string,
    want: "add" | "delete",
  ): Promise<string | undefined> {
    if (this.#closed) return Promise.resolve("the IPCP is stopping");
    let e = this.#entries.get(hex);
    if (e === undefined) {
      e = {
        name,
        want,
        synced: false,
        chain: Promise.resolve(),
        timer: undefined,
        backoff: this.#first,
        failures: 0,
      };
      this.#entries.set(hex, e);
    }
    e.name = name;
    e.want = want;
    e.synced = false;
    e.backoff = this.#first;
    e.failures = 0;
    clearTimeout(e.timer);
    e.timer = undefined;
    return this.#enqueue(hex, e);
  }

  #enqueue(hex: string, e: Entry): Promise<string | undefined> {
    const p = e.chain.then(() => this.#sync(hex, e));
    e.chain = p.then(() => {}, () => {});
    return p;
  }

  #op(hex: string, want: "add" | "delete"): dns.UpdateOp {
    const name = dns.fqdn(hex, this.#zone);
    return want === "add"
      ? {
        op: "add",
        name,
        type: this.#type,
        ttl: DDNS_TTL,
        rdata: this.#rdata,
      }
      : { op: "delete-rr", name, type: this.#type, rdata: this.#rdata };
  }

  async #sync(hex: string, e: Entry): Promise<string | undefined> {
    if (this.#closed || this.#entries.get(hex) !== e || e.synced) {
      return undefined;
    }
    const want = e.want;
    const server = this.#client.describe();
    // The reason names the server: "DNS server <addr> did not answer ...".
    const what = want === "add"
      ? `add ${hex} (${e.name}) in DNS`
      : `delete ${hex} (${e.name}) in DNS`;
    try {
      await this.#client.update(this.#zone, [this.#op(hex, want)], {
        signal: this.#abort.signal,
      });
    } catch (err) {
      if (this.#closed || e.want !== want || this.#entries.get(hex) !== e) {
        return undefined;
      }
      const why = message(err);
      e.failures++;
      const retry = `retrying in ${e.backoff} ms`;
      if (e.failures === 1) {
        if (err instanceof DnsError && err.kind === "rcode") {
          log.error(`Could not ${what}: ${why}; ${retry}.`);
        } else {
          log.warn(`Could not ${what}: ${why}; ${retry}.`);
        }
      } else {
        log.debug(`Still cannot ${what}: ${why}; ${retry}.`);
      }
      e.timer = setTimeout(() => {
        e.timer = undefined;
        void this.#enqueue(hex, e);
      }, e.backoff);
      e.backoff = Math.min(e.backoff * 2, this.#max);
      return why;
    }
    if (e.want !== want) return undefined; // changed meanwhile: queued again
    e.synced = true;
    const done = want === "add"
      ? `Added ${hex} (${e.name}) to ${server}`
      : `Deleted ${hex} (${e.name}) from ${server}`;
    if (e.failures > 0) {
      log.info(`${done} after ${e.failures + 1} attempts.`);
    } else {
      log.debug(`${done}.`);
    }
    e.failures = 0;
    e.backoff = this.#first;
    if (want === "delete") this.#entries.delete(hex);
    return undefined;
  }

  /**
   * Stops retrying and deletes every record that was added (or was being
   * added), in parallel, within `budgetMs`. Best effort: failures are logged.
   * Every call returns the same promise.
   */
  close(budgetMs = DDNS_CLOSE_MS): Promise<void> {
    this.#closing ??= this.#close(budgetMs);
    return this.#closing;
  }

  async #close(budgetMs: number): Promise<void> {
    this.#closed = true;
    this.#abort.abort();
    const entries = [...this.#entries];
    for (const [, e] of entries) {
      clearTimeout(e.timer);
      e.timer = undefined;
    }
    await Promise.all(entries.map(([, e]) => e.chain));
    const server = this.#client.describe();
    await Promise.all(entries.map(async ([hex, e]) => {
      if (e.want === "delete" && e.synced) return;
      try {
        await this.#client.update(this.#zone, [this.#op(hex, "delete")], {
          deadlineMs: budgetMs,
          tryMs: Math.min(this.#client.tryMs, budgetMs),
        });
        log.debug(`Deleted ${hex} (${e.name}) from ${server}.`);
      } catch (err) {
        log.warn(
          `Could not delete ${hex} (${e.name}) from ${server} on shutdown: ${
            message(err)
          }.`,
        );
      }
    }));
    this.#entries.clear();
  }
}
