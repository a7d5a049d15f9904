/**
 * The irmd configuration file (`irmd -c FILE`): TOML with `[name."<name>"]`
 * stanzas and IPCP stanzas `[udp.<ipcp>]`, `[udp4.<ipcp>]`, `[udp6.<ipcp>]`,
 * `[local.<ipcp>]` and `[unicast.<ipcp>]`.
 *
 * Unlike the C implementation (which ignores unknown keys silently), every
 * problem is reported as one precise message naming the file, the line and
 * column of the offending key when it can be found in the text, the stanza
 * and the key, and what was expected.
 */
import { parse, TomlError, type TomlTable, type TomlValue } from "smol-toml";
import { dirname, isAbsolute, join, normalize, resolve } from "../util/path.ts";
import { err, ok, type Result } from "../util/result.ts";
import { isIPv4, isIPv6, parseDnsAddress } from "../util/ip.ts";
import { checkName } from "../util/names.ts";
import {
  SOCKET_BUFFER_MAX,
  SOCKET_BUFFER_MIN,
  type UnicastParams,
} from "../ipc/proto.ts";
import {
  DEFAULT_LOCAL_HASH,
  parseHashAlgo,
  SHA3_ALGOS,
  type Sha3Algo,
} from "../wire/name_hash.ts";

export { isIPv4, isIPv6 } from "../util/ip.ts";

export type LoadBalance = "spill" | "round-robin";

export interface NameConfig {
  name: string;
  progs: string[];
  /** args[i] defined => progs[i] is an autostart program with args[i] (split on spaces at start time). */
  args: (string | undefined)[];
  lb: LoadBalance;
}

export type IpcpType = "udp4" | "udp6" | "local" | "unicast";

export interface UdpIpcpConfig {
  /** "udp" stanzas map to "udp4". */
  type: "udp4" | "udp6";
  /** The IPCP name (the key after the type). */
  name: string;
  /** From bootstrap = "<layer>"; absent => create only, no bootstrap. */
  layer?: string;
  /** Validated IPv4 (udp4) or IPv6 (udp6) literal, no prefix length. */
  ip: string;
  /** Default 3435. */
  port: number;
  /** Address of a DDNS server: "addr", "addr:port" or "[v6]:port", as written. */
  dns?: string;
  /** Hosts-format file for this layer only, resolved against the config file's directory. */
  hosts?: string;
  /** DNS zone name, for DDNS. */
  zone?: string;
  /** SO_RCVBUF of the UDP socket, in bytes (the IPCP has a default). */
  rcvbuf?: number;
  /** SO_SNDBUF of the UDP socket, in bytes (the IPCP has a default). */
  sndbuf?: number;
  /** Names to register in this IPCP. */
  reg: string[];
}

/** A `[local.<ipcp>]` stanza. */
export interface LocalIpcpConfig {
  type: "local";
  /** The IPCP name (the key after the type). */
  name: string;
  /** From bootstrap = "<layer>"; absent => create only, no bootstrap. */
  layer?: string;
  /** The layer's name hash (hash = "SHA3_256" by default). */
  hash: Sha3Algo;
  /** Names to register in this IPCP. */
  reg: string[];
  /** Bind the IPCP to its own name and its layer's name (autobind = true). */
  autobind: boolean;
}

/** A `[unicast.<ipcp>]` stanza (spec/unicast.md 7.2, with our rules). */
export interface UnicastIpcpConfig {
  type: "unicast";
  /** The IPCP name (the key after the type). */
  name: string;
  /**
   * From bootstrap = "<layer>"; absent (and no enrol) => create only, no
   * bootstrap.
   */
  layer?: string;
  /**
   * From enrol = "<member or layer name>": enroll with it instead of
   * bootstrapping (never with `layer`).
   */
  enrol?: string;
  /** The layer's name hash (hash = "SHA3_256" by default; bootstrap only). */
  hash: Sha3Algo;
  /** The layer's settings given (the others take their defaults). */
  unicast: UnicastParams;
  /** Names to register in this IPCP's layer. */
  reg: string[];
  /** Bind the IPCP to its own name and its layer's name (autobind = true). */
  autobind: boolean;
  /** Members to connect to (mgmt then dt, raw) once in the layer. */
  conn: string[];
}

export type IpcpConfig = UdpIpcpConfig | LocalIpcpConfig | UnicastIpcpConfig;

export interface Config {
  file: string;
  names: NameConfig[];
  /** In file order. */
  ipcps: IpcpConfig[];
}

/** The default UDP port of the ipcpd-udp (and of a DNS server: 53). */
export const DEFAULT_UDP_PORT = 3435;
export {
  DEFAULT_DNS_PORT,
  type HostPort,
  parseDnsAddress,
} from "../util/ip.ts";
/** Longest name (or layer name) in bytes of UTF-8. */
export { checkName, MAX_NAME_BYTES } from "../util/names.ts";

/** Stanza types that we implement. */
export const SUPPORTED_STANZAS = [
  "name",
  "udp",
  "udp4",
  "udp6",
  "local",
  "unicast",
] as const;
/** Stanza types of Ouroboros that we recognise but do not implement yet. */
export const UNSUPPORTED_STANZAS = [
  "broadcast",
  "eth-llc",
  "eth-dix",
] as const;

const NAME_KEYS = ["prog", "args", "lb"] as const;
const UDP_KEYS = [
  "bootstrap",
  "ip",
  "port",
  "dns",
  "hosts",
  "zone",
  "rcvbuf",
  "sndbuf",
  "reg",
] as const;
const LOCAL_KEYS = ["bootstrap", "hash", "reg", "autobind"] as const;
const UNICAST_KEYS = [
  "bootstrap",
  "enrol",
  "conn",
  "autobind",
  "reg",
  "hash",
  "addr_size",
  "eid_size",
  "max_ttl",
  "addr-auth",
  "routing",
  "ls_t_recalc",
  "ls_t_update",
  "ls_t_timeo",
  "directory",
  "dht_alpha",
  "dht_k",
  "dht_t_expire",
  "dht_t_refresh",
  "dht_t_replicate",
  "congestion",
] as const;

/** The keys of a unicast stanza that only a bootstrap reads. */
const UNICAST_BOOTSTRAP_KEYS: readonly string[] = [
  ...UNICAST_KEYS.filter((k) =>
    !["bootstrap", "enrol", "conn", "autobind", "reg"].includes(k)
  ),
  "addr_auth",
];

/**
 * Keys given to a stanza that neither bootstraps nor enrolls: the IPCP is
 * only created, so they could not take effect. An error, at the first.
 */
function idleKeys(
  f: Fail,
  keys: readonly string[],
  allowed: readonly string[],
  what: string,
): Result<void> | undefined {
  const idle = keys.filter((k) => !allowed.includes(k));
  if (idle.length === 0) return undefined;
  const others = idle.slice(1);
  return f(
    idle[0],
    `has no effect without ${what}${
      others.length === 0
        ? ""
        : `, nor ${others.length === 1 ? "has" : "have"} ${listed(others)}`
    } (a stanza without it only creates the IPCP)`,
  );
}

/** "a", "a and b", "a, b and c". */
function listed(keys: readonly string[]): string {
  return keys.length === 1
    ? keys[0]!
    : `${keys.slice(0, -1).join(", ")} and ${keys.at(-1)}`;
}

/**
 * The integer keys of a unicast stanza: the field each sets and its range
 * (spec/unicast.md 5; C does not check addr_size, eid_size and max_ttl, but
 * a member runs only with addr_size 4 and eid_size 8, and the TTL is a byte).
 */
type IntField = {
  [K in keyof UnicastParams]-?: Exclude<UnicastParams[K], undefined> extends
    number ? K
    : never;
}[keyof UnicastParams];
const UNICAST_INTS: Readonly<
  Record<string, { field: IntField; min: number; max: number; what: string }>
> = {
  addr_size: {
    field: "addrSize",
    min: 4,
    max: 4,
    what: "bytes (the flat address policy takes 4)",
  },
  eid_size: {
    field: "eidSize",
    min: 8,
    max: 8,
    what: "bytes (members run with 8)",
  },
  max_ttl: { field: "maxTtl", min: 1, max: 255, what: "hops" },
  ls_t_recalc: { field: "lsTRecalc", min: 1, max: 0xffff_ffff, what: "s" },
  ls_t_update: { field: "lsTUpdate", min: 1, max: 0xffff_ffff, what: "s" },
  ls_t_timeo: { field: "lsTTimeo", min: 1, max: 0xffff_ffff, what: "s" },
  dht_alpha: { field: "dhtAlpha", min: 1, max: 10, what: "parallel lookups" },
  dht_k: { field: "dhtK", min: 1, max: 20, what: "contacts per bucket" },
  dht_t_expire: { field: "dhtTExpire", min: 10, max: 86400, what: "s" },
  dht_t_refresh: { field: "dhtTRefresh", min: 3, max: 3600, what: "s" },
  dht_t_replicate: { field: "dhtTReplicate", min: 3, max: 3600, what: "s" },
};

// ---------------------------------------------------------------------------
// Locating keys in the raw text

/** A 1-based line and column. */
export interface Position {
  line: number;
  col: number;
}

const BARE_KEY = /^[A-Za-z0-9_-]+$/;
const BARE_CHAR = /[A-Za-z0-9_-]/;
const ESCAPES: Record<string, string> = {
  b: "\b",
  t: "\t",
  n: "\n",
  f: "\f",
  r: "\r",
  e: "\x1b",
  '"': '"',
  "\\": "\\",
};

interface Scan<T> {
  value: T;
  end: number;
}

function skipWs(s: string, i: number): number {
  while (i < s.length && (s[i] === " " || s[i] === "\t")) i++;
  return i;
}

/** Reads a single-line basic string starting at the opening quote. */
function scanBasic(s: string, i: number): Scan<string> | undefined {
  let out = "";
  let j = i + 1;
  while (j < s.length) {
    const c = s[j] ?? "";
    if (c === '"') return { value: out, end: j + 1 };
    if (c === "\\") {
      const e = s[j + 1] ?? "";
      const simple = ESCAPES[e];
      if (simple !== undefined) {
        out += simple;
        j += 2;
        continue;
      }
      const len = e === "u" ? 4 : e === "U" ? 8 : e === "x" ? 2 : 0;
      const hex = s.slice(j + 2, j + 2 + len);
      if (len === 0 || !/^[0-9A-Fa-f]+$/.test(hex) || hex.length !== len) {
        return undefined;
      }
      const cp = parseInt(hex, 16);
      if (cp > 0x10ffff) return undefined;
      out += String.fromCodePoint(cp);
      j += 2 + len;
      continue;
    }
    out += c;
    j++;
  }
  return undefined;
}

/** Reads a single-line literal string starting at the opening quote. */
function scanLiteral(s: string, i: number): Scan<string> | undefined {
  const close = s.indexOf("'", i + 1);
  if (close < 0) return undefined;
  return { value: s.slice(i + 1, close), end: close + 1 };
}

/** Reads a dotted key (`a."b c".'d'`) at i; stops before what follows it. */
function scanKeyPath(s: string, i: number): Scan<string[]> | undefined {
  const path: string[] = [];
  let j = i;
  for (;;) {
    j = skipWs(s, j);
    const c = s[j] ?? "";
    let part: Scan<string> | undefined;
    if (c === '"') {
      if (s.startsWith('"""', j)) return undefined;
      part = scanBasic(s, j);
    } else if (c === "'") {
      if (s.startsWith("'''", j)) return undefined;
      part = scanLiteral(s, j);
    } else {
      let k = j;
      while (k < s.length && BARE_CHAR.test(s[k] ?? "")) k++;
      if (k > j) part = { value: s.slice(j, k), end: k };
    }
    if (part === undefined) return undefined;
    path.push(part.value);
    j = skipWs(s, part.end);
    if (s[j] !== ".") return { value: path, end: j };
    j++;
  }
}

/**
 * Finds where each key path of a TOML text is first defined, by scanning its
 * lines for table headers (`[a.b]`, `[[a.b]]`) and `key =` lines. Multi-line
 * strings are skipped. Keys inside inline tables are not indexed: a lookup
 * for them falls back to the nearest indexed ancestor.
 */
export class KeyLocator {
  readonly #first = new Map<string, Position>();

  constructor(text: string) {
    // A byte order mark counts as a column, as it does for the TOML parser.
    const lines = text.replace(/^\uFEFF/, " ").split(/\r?\n/);
    let table: string[] = [];
    let multi: string | undefined; // the closing delimiter of an open multi-line string
    for (let n = 0; n < lines.length; n++) {
      const line = lines[n] ?? "";
      let i = 0;
      if (multi !== undefined) {
        const close = findClose(line, 0, multi);
        if (close < 0) continue;
        i = close;
        multi = undefined;
      } else {
        i = skipWs(line, 0);
        if (line[i] === "[") {
          const array = line[i + 1] === "[";
          const kp = scanKeyPath(line, i + (array ? 2 : 1));
          if (kp !== undefined) {
            const after = skipWs(line, kp.end);
            if (line.startsWith(array ? "]]" : "]", after)) {
              table = kp.value;
              this.#record(table, { line: n + 1, col: i + 1 });
              continue;
            }
          }
        } else {
          const kp = scanKeyPath(line, i);
          if (kp !== undefined && line[kp.end] === "=") {
            this.#record([...table, ...kp.value], { line: n + 1, col: i + 1 });
            i = kp.end + 1;
          }
        }
      }
      multi = scanValueRest(line, i);
    }
  }

  #record(path: string[], pos: Position): void {
    for (let k = 1; k <= path.length; k++) {
      const id = JSON.stringify(path.slice(0, k));
      if (!this.#first.has(id)) this.#first.set(id, pos);
    }
  }

  /** Where the key path is first defined, if the scan found it. */
  find(path: readonly string[]): Position | undefined {
    return this.#first.get(JSON.stringify(path));
  }

  /** The position of the path, or of its nearest located ancestor. */
  nearest(path: readonly string[]): Position | undefined {
    for (let k = path.length; k > 0; k--) {
      const p = this.find(path.slice(0, k));
      if (p !== undefined) return p;
    }
    return undefined;
  }
}

/** Index just after the closing delimiter of a multi-line string, or -1. */
function findClose(s: string, i: number, delim: string): number {
  let j = i;
  while (j < s.length) {
    if (delim === '"""' && s[j] === "\\") {
      j += 2;
      continue;
    }
    if (s.startsWith(delim, j)) {
      // Up to two extra quotes may belong to the content ("""a"""").
      let end = j + 3;
      while (end < j + 5 && s[end] === delim[0]) end++;
      return end;
    }
    j++;
  }
  return -1;
}

/**
 * Skips over the strings and comment of the rest of a line; returns the
 * closing delimiter of a multi-line string left open at its end.
 */
function scanValueRest(s: string, i: number): string | undefined {
  let j = i;
  while (j < s.length) {
    const c = s[j];
    if (c === "#") return undefined;
    if (s.startsWith('"""', j) || s.startsWith("'''", j)) {
      const delim = s.slice(j, j + 3);
      const close = findClose(s, j + 3, delim);
      if (close < 0) return delim;
      j = close;
    } else if (c === '"') {
      j = scanBasic(s, j)?.end ?? s.length;
    } else if (c === "'") {
      j = scanLiteral(s, j)?.end ?? s.length;
    } else {
      j++;
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------
// Describing values and reporting errors

function quoteKey(k: string): string {
  return BARE_KEY.test(k) ? k : JSON.stringify(k);
}

/** `[udp.wifi1]`, `[name."oping-server"]`. */
function stanzaLabel(type: string, name?: string): string {
  if (name === undefined) return `[${quoteKey(type)}]`;
  const n = type === "name" ? JSON.stringify(name) : quoteKey(name);
  return `[${quoteKey(type)}.${n}]`;
}

function short(s: string): string {
  const q = JSON.stringify(s);
  return q.length <= 60 ? q : `${q.slice(0, 56)}..."`;
}

function isTable(v: TomlValue): v is TomlTable {
  return typeof v === "object" && v !== null && !Array.isArray(v) &&
    !(v instanceof Date);
}

/** "a string (\"x\")", "an integer (3)", "a float (3.5)", "an array", ... */
export function describeValue(v: TomlValue): string {
  if (typeof v === "string") return `a string (${short(v)})`;
  if (typeof v === "bigint") return `an integer (${v})`;
  if (typeof v === "number") return `a float (${v})`;
  if (typeof v === "boolean") return `a boolean (${v})`;
  if (Array.isArray(v)) return v.length === 0 ? "an empty array" : "an array";
  if (isTable(v)) return "a table";
  return "a date/time";
}

class Reporter {
  constructor(readonly file: string, readonly loc: KeyLocator) {}

  /**
   * An error for key `key` (if any) of stanza [type.name] (or of top-level
   * key `type`), located at the key, else at the nearest located ancestor.
   */
  fail<T>(
    type: string,
    name: string | undefined,
    key: string | undefined,
    msg: string,
  ): Result<T> {
    const path = [type];
    if (name !== undefined) path.push(name);
    if (key !== undefined) path.push(key);
    const pos = this.loc.nearest(path);
    const where = pos === undefined
      ? this.file
      : `${this.file}:${pos.line}:${pos.col}`;
    const what = stanzaLabel(type, name) + (key === undefined ? "" : ` ${key}`);
    return err(`${where}: ${what}: ${msg}`);
  }
}

// ---------------------------------------------------------------------------
// Addresses

/** Why `ip` is not an address of the family, or undefined if it is one. */
function checkIp(ip: string, family: 4 | 6): string | undefined {
  if (family === 4 ? isIPv4(ip) : isIPv6(ip)) return undefined;
  const bad = `invalid IPv${family} address ${short(ip)}`;
  const other = family === 4 ? 6 : 4;
  if (ip.includes("/")) return `${bad}: no prefix length allowed`;
  if (family === 4 ? isIPv6(ip) : isIPv4(ip)) {
    return `${bad}: it is an IPv${other} address (use a [udp${other}.<name>] stanza)`;
  }
  if (family === 6 && ip.startsWith("[")) return `${bad}: no brackets allowed`;
  if (family === 6 && ip.includes("%")) return `${bad}: no zone id allowed`;
  return bad;
}

// ---------------------------------------------------------------------------
// Parsing

interface StanzaRef {
  type: string;
  name: string | undefined;
  value: TomlValue;
  order: number;
}

function orderOf(loc: KeyLocator, path: string[]): number {
  const p = loc.find(path);
  return p === undefined ? Number.MAX_SAFE_INTEGER : p.line * 1e6 + p.col;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** Reports an error about a key (or the whole stanza) of one stanza. */
type Fail = <X>(key: string | undefined, msg: string) => Result<X>;

/** Reads a value that must be an array of strings. */
function stringArray(
  f: Fail,
  key: string,
  v: TomlValue,
  what: string,
): Result<string[]> {
  if (!Array.isArray(v)) {
    return f(key, `expected an array of ${what}, found ${describeValue(v)}`);
  }
  const out: string[] = [];
  for (let i = 0; i < v.length; i++) {
    const e = v[i] as TomlValue;
    if (typeof e !== "string") {
      return f(
        key,
        `expected an array of ${what}, but element ${i + 1} is ${
          describeValue(e)
        }`,
      );
    }
    out.push(e);
  }
  return ok(out);
}

function nameStanza(
  r: Reporter,
  name: string,
  v: TomlTable,
): Result<NameConfig> {
  const T = "name";
  const f: Fail = (key, msg) => r.fail(T, name, key, msg);
  const bad = checkName(name);
  if (bad !== undefined) return f(undefined, bad);
  let progs: string[] | undefined;
  let args: string[] = [];
  let lb: LoadBalance = "spill";
  for (const [key, value] of Object.entries(v)) {
    switch (key) {
      case "prog": {
        const a = stringArray(f, key, value, "strings (program paths)");
        if (!a.ok) return a;
        if (a.value.length === 0) {
          return f(
            key,
            "expected at least one program path, found an empty array",
          );
        }
        const empty = a.value.indexOf("");
        if (empty >= 0) {
          return f(key, `element ${empty + 1} is an empty program path`);
        }
        progs = a.value;
        break;
      }
      case "args": {
        const a = stringArray(f, key, value, "strings (autostart arguments)");
        if (!a.ok) return a;
        args = a.value;
        break;
      }
      case "lb":
        if (value !== "spill" && value !== "round-robin") {
          return f(
            key,
            `expected "spill" or "round-robin", found ${describeValue(value)}`,
          );
        }
        lb = value;
        break;
      default:
        return f(
          key,
          `unknown key ${short(key)} (allowed: ${NAME_KEYS.join(", ")})`,
        );
    }
  }
  if (progs === undefined) {
    return f(
      undefined,
      `missing required key "prog" (an array of program paths)`,
    );
  }
  if (args.length > progs.length) {
    return f(
      "args",
      `has ${args.length} entries but prog has only ${progs.length}` +
        ` (args[i] holds the autostart arguments of prog[i])`,
    );
  }
  return ok({ name, progs, args: progs.map((_, i) => args[i]), lb });
}

/** Reads `reg`: an array of distinct names. */
function regNames(f: Fail, key: string, value: TomlValue): Result<string[]> {
  const a = stringArray(f, key, value, "strings (names)");
  if (!a.ok) return a;
  const seen = new Set<string>();
  for (let i = 0; i < a.value.length; i++) {
    const n = a.value[i] ?? "";
    const why = checkName(n);
    if (why !== undefined) {
      return f(key, `element ${i + 1}: ${why}`);
    }
    if (seen.has(n)) {
      return f(key, `element ${i + 1}: duplicate name ${short(n)}`);
    }
    seen.add(n);
  }
  return a;
}

/** A true-or-false key (`autobind`). */
function boolKey(f: Fail, key: string, value: TomlValue): Result<boolean> {
  if (typeof value === "boolean") return ok(value);
  return f(key, `expected true or false, found ${describeValue(value)}`);
}

/** Reads `bootstrap`: the layer name. */
function layerName(f: Fail, key: string, value: TomlValue): Result<string> {
  if (typeof value !== "string") {
    return f(
      key,
      `expected a string (the layer name), found ${describeValue(value)}`,
    );
  }
  const why = checkName(value, "layer name");
  return why === undefined ? ok(value) : f(key, why);
}

function localStanza(
  r: Reporter,
  name: string,
  v: TomlTable,
): Result<LocalIpcpConfig> {
  const T = "local";
  const f: Fail = (key, msg) => r.fail(T, name, key, msg);
  const bad = checkName(name, "IPCP name");
  if (bad !== undefined) return f(undefined, bad);
  const cfg: LocalIpcpConfig = {
    type: "local",
    name,
    hash: DEFAULT_LOCAL_HASH,
    reg: [],
    autobind: false,
  };
  for (const [key, value] of Object.entries(v)) {
    switch (key) {
      case "bootstrap": {
        const l = layerName(f, key, value);
        if (!l.ok) return l;
        cfg.layer = l.value;
        break;
      }
      case "hash": {
        const h = sha3Key(f, key, value, "a local layer");
        if (!h.ok) return h;
        cfg.hash = h.value;
        break;
      }
      case "reg": {
        const a = regNames(f, key, value);
        if (!a.ok) return a;
        cfg.reg = a.value;
        break;
      }
      case "autobind": {
        const b = boolKey(f, key, value);
        if (!b.ok) return b;
        cfg.autobind = b.value;
        break;
      }
      default:
        return f(
          key,
          `unknown key ${short(key)} (allowed: ${LOCAL_KEYS.join(", ")})`,
        );
    }
  }
  if (cfg.layer === undefined) {
    const idle = idleKeys(f, Object.keys(v), [], 'bootstrap = "<layer>"');
    if (idle !== undefined && !idle.ok) return idle;
  }
  return ok(cfg);
}

/** A SHA3 name hash for `hash = "..."` (local and unicast layers). */
function sha3Key(
  f: Fail,
  key: string,
  value: TomlValue,
  what: string,
): Result<Sha3Algo> {
  const allowed = SHA3_ALGOS.map((a) => JSON.stringify(a)).join(", ");
  if (typeof value !== "string") {
    return f(
      key,
      `expected a string (${allowed}), found ${describeValue(value)}`,
    );
  }
  const algo = parseHashAlgo(value);
  const sha3 = SHA3_ALGOS.find((a) => a === algo);
  if (sha3 === undefined) {
    return f(
      key,
      `${algo === undefined ? "unknown hash algorithm" : what} ${short(value)}${
        algo === undefined ? "" : " is not one of its hashes"
      } (expected ${allowed})`,
    );
  }
  return ok(sha3);
}

function unicastStanza(
  r: Reporter,
  name: string,
  v: TomlTable,
): Result<UnicastIpcpConfig> {
  const T = "unicast";
  const f: Fail = (key, msg) => r.fail(T, name, key, msg);
  const bad = checkName(name, "IPCP name");
  if (bad !== undefined) return f(undefined, bad);
  const cfg: UnicastIpcpConfig = {
    type: "unicast",
    name,
    hash: DEFAULT_LOCAL_HASH,
    unicast: {},
    reg: [],
    autobind: false,
    conn: [],
  };
  const u = cfg.unicast;
  const both = <X>(key: string): Result<X> =>
    f(
      key,
      "bootstrap and enrol together: an IPCP either bootstraps a layer or enrols in one (keep one of them)",
    );
  const word = <W extends string>(
    key: string,
    value: TomlValue,
    words: Readonly<Record<string, W>>,
  ): Result<W> => {
    const allowed = Object.keys(words).map((w) => JSON.stringify(w)).join(
      ", ",
    );
    if (typeof value !== "string") {
      return f(
        key,
        `expected a string (${allowed}), found ${describeValue(value)}`,
      );
    }
    const w = Object.hasOwn(words, value) ? words[value] : undefined;
    return w === undefined
      ? f(key, `unknown ${key} ${short(value)} (expected ${allowed})`)
      : ok(w);
  };
  for (const [key, value] of Object.entries(v)) {
    const int = Object.hasOwn(UNICAST_INTS, key)
      ? UNICAST_INTS[key]
      : undefined;
    if (int !== undefined) {
      if (
        typeof value !== "bigint" || value < BigInt(int.min) ||
        value > BigInt(int.max)
      ) {
        const range = int.min === int.max
          ? `${int.min}`
          : `an integer from ${int.min} to ${int.max}`;
        return f(
          key,
          `expected ${range} (${int.what}), found ${describeValue(value)}`,
        );
      }
      u[int.field] = Number(value);
      continue;
    }
    switch (key) {
      case "bootstrap": {
        if (cfg.enrol !== undefined) return both(key);
        const l = layerName(f, key, value);
        if (!l.ok) return l;
        cfg.layer = l.value;
        break;
      }
      case "enrol": {
        if (cfg.layer !== undefined) return both(key);
        if (typeof value !== "string") {
          return f(
            key,
            `expected a string (the member or the layer to enrol with), found ${
              describeValue(value)
            }`,
          );
        }
        const why = checkName(value, "destination name");
        if (why !== undefined) return f(key, why);
        cfg.enrol = value;
        break;
      }
      case "conn": {
        const a = memberNames(f, key, value);
        if (!a.ok) return a;
        cfg.conn = a.value;
        break;
      }
      case "hash": {
        const h = sha3Key(f, key, value, "a unicast layer");
        if (!h.ok) return h;
        cfg.hash = h.value;
        break;
      }
      case "reg": {
        const a = regNames(f, key, value);
        if (!a.ok) return a;
        cfg.reg = a.value;
        break;
      }
      case "autobind": {
        const b = boolKey(f, key, value);
        if (!b.ok) return b;
        cfg.autobind = b.value;
        break;
      }
      case "addr-auth":
      case "addr_auth": {
        const w = word(key, value, { flat: "flat" } as const);
        if (!w.ok) return w;
        u.addrAuth = w.value;
        break;
      }
      case "routing": {
        const w = word(
          key,
          value,
          {
            "link-state": "link-state",
            link_state: "link-state",
            lfa: "lfa",
            ecmp: "ecmp",
          } as const,
        );
        if (!w.ok) return w;
        u.routing = w.value;
        break;
      }
      case "directory": {
        const w = word(key, value, { DHT: "dht", dht: "dht" } as const);
        if (!w.ok) return w;
        u.directory = w.value;
        break;
      }
      case "congestion": {
        // "lfa" is what C 0.23 takes for mb-ecn: kept as an alias.
        const w = word(
          key,
          value,
          {
            none: "none",
            "mb-ecn": "mb-ecn",
            lfa: "mb-ecn",
          } as const,
        );
        if (!w.ok) return w;
        u.congestion = w.value;
        break;
      }
      default:
        return f(
          key,
          `unknown key ${short(key)} (allowed: ${UNICAST_KEYS.join(", ")})`,
        );
    }
  }
  const keys = Object.keys(v);
  if (cfg.enrol !== undefined) {
    // C reads none of them then; we say so rather than drop them.
    const boot = keys.filter((k) => UNICAST_BOOTSTRAP_KEYS.includes(k));
    if (boot.length > 0) {
      return f(
        boot[0],
        `${listed(boot)} ${
          boot.length === 1 ? "is a bootstrap key" : "are bootstrap keys"
        }: an IPCP that enrols learns the layer's settings from the member it enrols with (remove ${
          boot.length === 1 ? "it" : "them"
        }, or bootstrap instead of enrol)`,
      );
    }
  } else if (cfg.layer === undefined) {
    const idle = idleKeys(
      f,
      keys,
      [],
      'bootstrap = "<layer>" or enrol = "<member>"',
    );
    if (idle !== undefined && !idle.ok) return idle;
  }
  return ok(cfg);
}

/** Reads `conn`: an array of distinct member names. */
function memberNames(f: Fail, key: string, value: TomlValue): Result<string[]> {
  const a = stringArray(f, key, value, "strings (member names)");
  if (!a.ok) return a;
  const seen = new Set<string>();
  for (let i = 0; i < a.value.length; i++) {
    const n = a.value[i] ?? "";
    const why = checkName(n, "member name");
    if (why !== undefined) return f(key, `element ${i + 1}: ${why}`);
    if (seen.has(n)) {
      return f(key, `element ${i + 1}: duplicate member ${short(n)}`);
    }
    seen.add(n);
  }
  return a;
}

function udpStanza(
  r: Reporter,
  type: string,
  name: string,
  v: TomlTable,
  baseDir: string,
): Result<UdpIpcpConfig> {
  const family = type === "udp6" ? 6 : 4;
  const f: Fail = (key, msg) => r.fail(type, name, key, msg);
  const bad = checkName(name, "IPCP name");
  if (bad !== undefined) return f(undefined, bad);
  let layer: string | undefined;
  let ip: string | undefined;
  let port = DEFAULT_UDP_PORT;
  let dns: string | undefined;
  let hosts: string | undefined;
  let zone: string | undefined;
  let rcvbuf: number | undefined;
  let sndbuf: number | undefined;
  let reg: string[] = [];
  const str = (key: string, value: TomlValue, what: string): Result<string> =>
    typeof value === "string"
      ? ok(value)
      : f(key, `expected a string (${what}), found ${describeValue(value)}`);
  for (const [key, value] of Object.entries(v)) {
    switch (key) {
      case "bootstrap": {
        const l = layerName(f, key, value);
        if (!l.ok) return l;
        layer = l.value;
        break;
      }
      case "ip": {
        const s = str(key, value, `an IPv${family} address`);
        if (!s.ok) return s;
        const why = checkIp(s.value, family);
        if (why !== undefined) return f(key, why);
        ip = s.value;
        break;
      }
      case "port":
        if (typeof value !== "bigint" || value < 1n || value > 65535n) {
          return f(
            key,
            `expected an integer from 1 to 65535, found ${
              describeValue(value)
            }`,
          );
        }
        port = Number(value);
        break;
      case "dns": {
        const s = str(key, value, "the address of a DNS server");
        if (!s.ok) return s;
        const hp = parseDnsAddress(s.value, family);
        if (!hp.ok) return f(key, hp.error);
        dns = s.value;
        break;
      }
      case "hosts": {
        const s = str(key, value, "the path of a hosts file");
        if (!s.ok) return s;
        if (s.value === "") return f(key, "empty path");
        hosts = isAbsolute(s.value)
          ? normalize(s.value)
          : join(baseDir, s.value);
        break;
      }
      case "zone": {
        const s = str(key, value, "a DNS zone name");
        if (!s.ok) return s;
        if (s.value === "") return f(key, "empty zone name");
        zone = s.value;
        break;
      }
      case "rcvbuf":
      case "sndbuf": {
        if (
          typeof value !== "bigint" || value < BigInt(SOCKET_BUFFER_MIN) ||
          value > BigInt(SOCKET_BUFFER_MAX)
        ) {
          return f(
            key,
            `expected a size in bytes, an integer from ${SOCKET_BUFFER_MIN} to ${SOCKET_BUFFER_MAX}, found ${
              describeValue(value)
            }`,
          );
        }
        if (key === "rcvbuf") rcvbuf = Number(value);
        else sndbuf = Number(value);
        break;
      }
      case "reg": {
        const a = regNames(f, key, value);
        if (!a.ok) return a;
        reg = a.value;
        break;
      }
      default:
        return f(
          key,
          `unknown key ${short(key)} (allowed: ${UDP_KEYS.join(", ")})`,
        );
    }
  }
  if (ip === undefined) {
    return f(
      undefined,
      `missing required key "ip" (the IPv${family} address to bind)`,
    );
  }
  if (layer === undefined) {
    // The socket's keys describe the IPCP (ip is required even so); a
    // registration needs a layer.
    const idle = idleKeys(
      f,
      Object.keys(v),
      UDP_KEYS.filter((k) => k !== "reg"),
      'bootstrap = "<layer>"',
    );
    if (idle !== undefined && !idle.ok) return idle;
  }
  const cfg: UdpIpcpConfig = {
    type: family === 6 ? "udp6" : "udp4",
    name,
    ip,
    port,
    reg,
  };
  if (layer !== undefined) cfg.layer = layer;
  if (dns !== undefined) cfg.dns = dns;
  if (hosts !== undefined) cfg.hosts = hosts;
  if (zone !== undefined) cfg.zone = zone;
  if (rcvbuf !== undefined) cfg.rcvbuf = rcvbuf;
  if (sndbuf !== undefined) cfg.sndbuf = sndbuf;
  return ok(cfg);
}

/**
 * Parses and validates a configuration file's text. `file` names the file in
 * messages; relative `hosts` paths resolve against `baseDir` (default: the
 * directory part of `file`).
 */
export function parseConfig(
  text: string,
  file: string,
  baseDir: string = dirname(file),
): Result<Config> {
  let doc: TomlTable;
  try {
    doc = parse(text, { integersAsBigInt: true });
  } catch (e) {
    if (e instanceof TomlError) {
      const first = e.message.split("\n")[0] ?? e.message;
      // The line at fault, or the last one before it that says anything (an
      // unclosed array is found on the line after it).
      const lines = text.split(/\r?\n/).slice(0, e.line);
      const line = lines.findLast((l) => l.replace(/#.*$/, "").trim() !== "") ??
        "";
      const hint = tomlHint(first, line);
      return err(
        `${file}:${e.line}:${e.column}: ${first}` +
          (hint === undefined ? "" : ` (${hint})`),
      );
    }
    return err(`${file}: ${e instanceof Error ? e.message : String(e)}`);
  }
  const loc = new KeyLocator(text);
  const r = new Reporter(file, loc);
  const supported: readonly string[] = SUPPORTED_STANZAS;
  const unsupported: readonly string[] = UNSUPPORTED_STANZAS;

  // Gather the stanzas, then handle them in file order so that the first
  // problem in the file is the one reported.
  const refs: StanzaRef[] = [];
  for (const [type, value] of Object.entries(doc)) {
    if (supported.includes(type) && isTable(value)) {
      for (const [name, v] of Object.entries(value)) {
        refs.push({ type, name, value: v, order: orderOf(loc, [type, name]) });
      }
    } else {
      refs.push({ type, name: undefined, value, order: orderOf(loc, [type]) });
    }
  }
  refs.sort((a, b) => a.order - b.order);

  const names: NameConfig[] = [];
  const ipcps: IpcpConfig[] = [];
  const ipcpStanza = new Map<string, string>();
  for (const { type, name, value } of refs) {
    if (name === undefined) {
      if (unsupported.includes(type)) {
        return r.fail(
          type,
          undefined,
          undefined,
          `stanza type ${short(type)} is not supported yet (supported: ${
            supported.join(", ")
          })`,
        );
      }
      if (!supported.includes(type)) {
        return r.fail(
          type,
          undefined,
          undefined,
          `unknown stanza type ${short(type)} (known: ${
            supported.join(", ")
          }; ` +
            `not supported yet: ${unsupported.join(", ")})`,
        );
      }
      const example = type === "name"
        ? `[name."<name>"]`
        : `[${type}.<ipcp name>]`;
      return r.fail(
        type,
        undefined,
        undefined,
        `expected a table of stanzas like ${example}, found ${
          describeValue(value)
        }`,
      );
    }
    if (!isTable(value)) {
      return r.fail(
        type,
        name,
        undefined,
        `expected a table (a ${
          type === "name" ? `[name."<name>"]` : `[${type}.<ipcp name>]`
        } stanza), found ${describeValue(value)}`,
      );
    }
    if (type === "name") {
      const n = nameStanza(r, name, value);
      if (!n.ok) return n;
      names.push(n.value);
    } else {
      const prev = ipcpStanza.get(name);
      if (prev !== undefined) {
        return r.fail(
          type,
          name,
          undefined,
          `duplicate IPCP name ${short(name)} (already defined by ${prev})`,
        );
      }
      const at = loc.find([type, name]);
      ipcpStanza.set(
        name,
        stanzaLabel(type, name) +
          (at === undefined ? "" : ` at line ${at.line}`),
      );
      const c = type === "local"
        ? localStanza(r, name, value)
        : type === "unicast"
        ? unicastStanza(r, name, value)
        : udpStanza(r, type, name, value, baseDir);
      if (!c.ok) return c;
      ipcps.push(c.value);
    }
  }
  return ok({ file, names, ipcps });
}

/**
 * What was probably meant, where the TOML parser's message names only the
 * symptom (its messages speak of keys and literals, not of what the line
 * looks like).
 */
export function tomlHint(message: string, line: string): string | undefined {
  const t = line.replace(/#.*$/, "").trim();
  const quotes = (t.match(/"/g) ?? []).length;
  if (t.startsWith("[") && !t.includes("]")) {
    return `probably an unclosed table header: "${t}" needs a closing "]"`;
  }
  if (/control characters|unterminated|string/i.test(message) && quotes % 2) {
    return "probably a string without its closing quote";
  }
  if (/expected comma or end/i.test(message) && t.includes("[")) {
    return 'probably an array without its closing "]" or a missing comma';
  }
  if (
    /=\s*$/.test(t) ||
    /illegal character in key/i.test(message) && !t.includes("=")
  ) {
    return 'probably a key without a value: write key = "value"';
  }
  if (/numeric literal|invalid value/i.test(message)) {
    return 'probably an unquoted text value: write it in quotes, as ip = "192.168.0.1"';
  }
  return undefined;
}

function readReason(e: unknown): string {
  if (e instanceof Deno.errors.NotFound) return "no such file or directory";
  if (e instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (e instanceof Deno.errors.NotCapable) {
    return "no read permission for the runtime (--allow-read)";
  }
  if (e instanceof Deno.errors.IsADirectory) return "is a directory";
  if (e instanceof Error) return e.message;
  return String(e);
}

/** The largest configuration file we read (a real one is a few KB). */
export const MAX_CONFIG_BYTES = 1 << 20;

function fileKind(info: Deno.FileInfo): string {
  if (info.isDirectory) return "a directory";
  if (info.isCharDevice) return "a character device";
  if (info.isBlockDevice) return "a block device";
  if (info.isFifo) return "a named pipe";
  if (info.isSocket) return "a socket";
  return "not a regular file";
}

/**
 * The bytes of a configuration file: a regular file of at most
 * MAX_CONFIG_BYTES, checked on the open file before reading (so that
 * /dev/zero, a pipe or a huge file is refused at once, not read).
 */
export async function readConfigBytes(
  file: string,
): Promise<Result<Uint8Array>> {
  let f: Deno.FsFile;
  try {
    f = await Deno.open(file, { read: true });
  } catch (e) {
    return err(`${file}: cannot read: ${readReason(e)}`);
  }
  try {
    const info = await f.stat();
    if (!info.isFile) {
      return err(
        `${file}: cannot read: ${fileKind(info)}, not a configuration file`,
      );
    }
    if (info.size > MAX_CONFIG_BYTES) {
      return err(
        `${file}: too large (${info.size} bytes; the limit is 1 MiB)`,
      );
    }
    // Read at most one byte past the limit: the file may grow meanwhile.
    const buf = new Uint8Array(MAX_CONFIG_BYTES + 1);
    let n = 0;
    while (n < buf.length) {
      const got = await f.read(buf.subarray(n));
      if (got === null) break;
      n += got;
    }
    if (n > MAX_CONFIG_BYTES) {
      return err(`${file}: too large (over 1 MiB; the limit is 1 MiB)`);
    }
    return ok(buf.slice(0, n));
  } catch (e) {
    return err(`${file}: cannot read: ${readReason(e)}`);
  } finally {
    f.close();
  }
}

/** Reads and parses a configuration file. */
export async function loadConfig(file: string): Promise<Result<Config>> {
  const loaded = await readConfigText(file);
  if (!loaded.ok) return loaded;
  return parseConfig(loaded.value.text, file, loaded.value.baseDir);
}

/**
 * Reads, parses and checks a configuration file: what `irmd --check`
 * reports. The warnings name things the file refers to that are not there
 * now but may be later (a hosts file, a program): they do not stop the irmd.
 */
export async function checkConfigFile(
  file: string,
): Promise<Result<{ config: Config; warnings: string[] }>> {
  const loaded = await readConfigText(file);
  if (!loaded.ok) return loaded;
  const cfg = parseConfig(loaded.value.text, file, loaded.value.baseDir);
  if (!cfg.ok) return cfg;
  return ok({
    config: cfg.value,
    warnings: await configWarnings(cfg.value, loaded.value.text),
  });
}

/** What a path is, or why it is not there: undefined when it is a file. */
async function fileProblem(
  path: string,
  executable: boolean,
): Promise<string | undefined> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (e) {
    return e instanceof Deno.errors.NotFound
      ? "does not exist"
      : `cannot be read (${readReason(e)})`;
  }
  if (!info.isFile) return `is ${fileKind(info)}`;
  if (executable && info.mode !== null && (info.mode & 0o111) === 0) {
    return "is not executable";
  }
  return undefined;
}

/** Warnings about the files a parsed configuration names. */
export async function configWarnings(
  cfg: Config,
  text: string,
): Promise<string[]> {
  const loc = new KeyLocator(text);
  const at = (paths: string[][]): string => {
    const pos = paths.map((p) => loc.find(p)).find((x) => x !== undefined) ??
      paths.map((p) => loc.nearest(p)).find((x) => x !== undefined);
    return pos === undefined ? cfg.file : `${cfg.file}:${pos.line}:${pos.col}`;
  };
  const out: string[] = [];
  for (const n of cfg.names) {
    for (let i = 0; i < n.progs.length; i++) {
      const prog = n.progs[i]!;
      if (!prog.includes("/")) continue; // looked up in PATH when started
      const why = await fileProblem(prog, true);
      if (why === undefined) continue;
      const use = n.args[i] === undefined
        ? "processes of this program will not be bound to the name until it is installed"
        : "a flow for this name cannot autostart it until it is installed";
      out.push(
        `${at([["name", n.name, "prog"]])}: warning: [name.${
          JSON.stringify(n.name)
        }] prog: ${prog} ${why} (${use})`,
      );
    }
  }
  for (const c of cfg.ipcps) {
    if (c.type === "local" || c.type === "unicast" || c.hosts === undefined) {
      continue;
    }
    const why = await fileProblem(c.hosts, false);
    if (why === undefined) continue;
    const types = c.type === "udp4" ? ["udp", "udp4"] : ["udp6"];
    const stanza = types.find((t) => loc.find([t, c.name]) !== undefined) ??
      types[0]!;
    out.push(
      `${
        at(types.map((t) => [t, c.name, "hosts"]))
      }: warning: [${stanza}.${c.name}] hosts: ${c.hosts} ${why} (no name of layer ${
        c.layer ?? "(not bootstrapped)"
      } resolves until it is there)`,
    );
  }
  return out;
}

async function readConfigText(
  file: string,
): Promise<Result<{ text: string; baseDir: string }>> {
  const read = await readConfigBytes(file);
  if (!read.ok) return read;
  const bytes = read.value;
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return err(`${file}: cannot read: not valid UTF-8`);
  }
  let baseDir = dirname(file);
  try {
    baseDir = resolve(baseDir);
  } catch {
    // No permission to know the working directory: keep the relative path.
  }
  return ok({ text, baseDir });
}

function endpoint(ip: string, port: number): string {
  return ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** What `irmd --check` prints: a readable summary of the configuration. */
export function formatConfigSummary(cfg: Config): string {
  const out: string[] = [`Configuration file ${cfg.file}:`];
  if (cfg.names.length === 0) out.push("  no names");
  for (const n of cfg.names) {
    out.push(`  name ${JSON.stringify(n.name)} (lb ${n.lb})`);
    n.progs.forEach((p, i) => {
      const a = n.args[i];
      const auto = a === undefined
        ? ""
        : a === ""
        ? " (autostart, no arguments)"
        : ` (autostart with args: ${a})`;
      out.push(`    program ${p}${auto}`);
    });
  }
  if (cfg.ipcps.length === 0) out.push("  no IPCPs");
  for (const c of cfg.ipcps) {
    const layer = c.layer === undefined
      ? "created only, not bootstrapped"
      : `layer ${c.layer}`;
    const regs = `    registers ${
      c.reg.length === 0
        ? "no names"
        : c.reg.map((n) => JSON.stringify(n)).join(", ")
    }`;
    if (c.type === "unicast") {
      if (c.enrol !== undefined) {
        out.push(
          `  IPCP ${c.name} (unicast): enrols with ${
            JSON.stringify(c.enrol)
          }, from which it learns the layer and its settings`,
        );
      } else {
        const set = Object.entries(c.unicast).map(([k, x]) => `${k} ${x}`);
        out.push(
          `  IPCP ${c.name} (unicast): ${layer}, names hashed with ${c.hash}`,
        );
        if (c.layer !== undefined) {
          out.push(
            `    layer settings: ${
              set.length === 0
                ? "the defaults"
                : `${set.join(", ")}; defaults otherwise`
            }`,
          );
        }
      }
      if (c.autobind) {
        out.push(`    binds itself to its name and its layer's name`);
      }
      out.push(regs);
      if (c.conn.length > 0) {
        out.push(
          `    connects to ${
            c.conn.map((n) => JSON.stringify(n)).join(", ")
          } (mgmt, then dt, raw)`,
        );
      }
      continue;
    }
    if (c.type === "local") {
      out.push(
        `  IPCP ${c.name} (local): ${layer}, names hashed with ${c.hash}`,
      );
      if (c.autobind) {
        out.push(`    binds itself to its name and its layer's name`);
      }
      out.push(regs);
      continue;
    }
    out.push(
      `  IPCP ${c.name} (${c.type}): ${layer}, ${endpoint(c.ip, c.port)}`,
    );
    if (c.dns !== undefined) out.push(`    dns ${c.dns}`);
    if (c.hosts !== undefined) out.push(`    hosts file ${c.hosts}`);
    if (c.zone !== undefined) out.push(`    zone ${c.zone}`);
    if (c.rcvbuf !== undefined) {
      out.push(`    UDP receive buffer ${c.rcvbuf} bytes`);
    }
    if (c.sndbuf !== undefined) {
      out.push(`    UDP send buffer ${c.sndbuf} bytes`);
    }
    out.push(regs);
  }
  out.push(
    `Configuration OK: ${plural(cfg.names.length, "name")}, ${
      plural(cfg.ipcps.length, "IPCP")
    }.`,
  );
  return out.join("\n");
}
