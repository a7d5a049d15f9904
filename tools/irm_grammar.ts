/**
 * The grammar of `irm`: turns a command line into one request for the irmd
 * (method, body, how to print the reply), a help text, or an error text.
 * Pure apart from the program lookup on PATH, which goes through `ParseEnv`
 * so that tests can replace it.
 *
 * Keywords match by prefix, the first keyword in table order winning (as C's
 * `matches()`): under `ipcp`, `c` is create and `co` connect. Every level
 * answers `help`, `-h` and `--help`.
 */
import { checkName } from "../lib/util/names.ts";
import { parseDnsAddress } from "../lib/util/ip.ts";
import {
  DEFAULT_PORT as DEFAULT_UDP_PORT,
  type QosCubeName,
} from "../lib/wire/udp_wire.ts";
import { isIPv4, isIPv6 } from "../lib/util/ip.ts";
import {
  DEFAULT_LOCAL_HASH,
  parseHashAlgo,
  SHA3_ALGOS,
  type Sha3Algo,
} from "../lib/wire/name_hash.ts";
import {
  DEFAULT_SOCKET_BUFFER,
  type IpcpTypeName,
  type Method,
  QOS_CUBE_NAMES,
  type Req,
  type Res,
  SOCKET_BUFFER_MAX,
  SOCKET_BUFFER_MIN,
  type UnicastParams,
} from "../lib/ipc/proto.ts";

// ---------------------------------------------------------------------------
// Results

/** The irm methods of the control protocol. */
export type IrmMethod = Extract<Method, `irm.${string}`>;

/** One request to the irmd and what to do with its reply. */
export interface CallOf<M extends IrmMethod> {
  method: M;
  body: Req<M>;
  /** How long to wait for the irmd's answer. */
  timeoutMs: number;
  /** The start of the error line when the irmd refuses: "Failed to create IPCP". */
  failure: string;
  /** The text to print on success ("" prints nothing). */
  render(res: Res<M>): string;
}

export type IrmCall = { [M in IrmMethod]: CallOf<M> }[IrmMethod];

export type IrmParse =
  | { kind: "help"; text: string }
  | { kind: "error"; text: string }
  | {
    kind: "request";
    /** The --rundir flag, if given. */
    rundir: string | undefined;
    call: IrmCall;
    /** Lines to print before sending (warnings such as autobind being ignored). */
    notes: string[];
  };

/** What the parser needs from the system: the working directory and PATH lookup. */
export interface ParseEnv {
  cwd: string;
  /** The PATH variable (undefined: not set). */
  path: string | undefined;
  /** True if the path is a regular file that someone may execute. */
  isExecutable(path: string): boolean;
}

export function systemParseEnv(): ParseEnv {
  return {
    cwd: Deno.cwd(),
    path: Deno.env.get("PATH"),
    isExecutable(p: string): boolean {
      try {
        const st = Deno.statSync(p);
        return st.isFile && (st.mode === null || (st.mode & 0o111) !== 0);
      } catch {
        return false;
      }
    },
  };
}

export const DEFAULT_TIMEOUT_MS = 30_000;
export const BOOTSTRAP_TIMEOUT_MS = 60_000;
/** The irmd may create the IPCP (30 s), then gives the enrollment 30 s. */
export const ENROLL_TIMEOUT_MS = 75_000;
/** The irmd gives each of the two components 30 s. */
export const CONNECT_TIMEOUT_MS = 65_000;

// ---------------------------------------------------------------------------
// Usage texts

const TYPES_LINE = "where TYPE = {unicast udp4 udp6 local}  (udp = udp4)\n" +
  "      (broadcast eth-llc eth-dix: not supported yet)";

const USAGE = {
  irm: "Usage: irm [--rundir DIR] [OBJECT] [OPERATION] ...\n\n" +
    "where OBJECT = {ipcp bind unbind name process help}\n\n" +
    "  irm ipcp help      IPC processes: create destroy bootstrap enroll\n" +
    "                     connect disconnect list stats\n" +
    "  irm bind help      bind programs, processes and IPCPs to names\n" +
    "  irm unbind help    undo a binding\n" +
    "  irm name help      names: create destroy register unregister list\n" +
    "                     bind unbind\n" +
    "  irm process help   list the processes the irmd knows (not in C irm)\n\n" +
    "Keywords may be shortened to a prefix; the first match in the order\n" +
    'above wins: "irm i l" is "irm ipcp list".\n' +
    "--rundir DIR talks to the irmd of that runtime directory\n" +
    "(default: $OUROBOROS_RUNDIR, else /run/ouroboros for root, else per user).",
  ipcp: "Usage: irm ipcp [OPERATION]\n\n" +
    "where OPERATION = {create destroy\n" +
    "                   bootstrap enroll\n" +
    "                   connect disconnect\n" +
    "                   list stats help}\n\n" +
    "(not in C irm) irm ipcp stats [name <ipcp name>]: flows and dropped packets.",
  ipcpStats: "Usage: irm ipcp stats\n" +
    "                [name <ipcp name>]\n\n" +
    "(not in C irm) For each IPCP: its flows and the packets it dropped: too\n" +
    "short, bad management frames, unknown endpoint ids, wrong source address,\n" +
    "and packets for an application that did not read them in time; below\n" +
    "the table, the sizes of its UDP socket's buffers as the kernel gave them\n" +
    "(Linux reports twice what was asked), datagrams longer than the layer\n" +
    "carries, and management frames that came faster than it took them.",
  ipcpCreate: "Usage: irm ipcp create\n" +
    "                name <ipcp name>\n" +
    "                type [TYPE]\n\n" + TYPES_LINE,
  ipcpDestroy: "Usage: irm ipcp destroy\n" +
    "                name <ipcp name>",
  ipcpBootstrap: "Usage: irm ipcp bootstrap\n" +
    "                name <ipcp name>\n" +
    "                layer <layer name>\n" +
    "                [type [TYPE]] (create the IPCP if it does not exist)\n" +
    TYPES_LINE + "\n\n" +
    "if TYPE == udp4 or udp6\n" +
    "                ip <IP address to bind> (needed unless the irmd's\n" +
    "                   configuration file gave one for this IPCP)\n" +
    `                [port <UDP port> (default: ${DEFAULT_UDP_PORT})]\n` +
    "                [dns <DDNS server: addr, addr:port, [IPv6 addr]:port>\n" +
    "                   (default: none, names resolve with the system resolver)]\n" +
    "                [hash [UDP_ALGORITHM] (default: MD5)]\n" +
    "                [autobind] (ignored: only unicast and broadcast IPCPs bind)\n" +
    "                [hosts <hosts file for this layer only> (default: /etc/hosts)]\n" +
    "                [zone <DNS zone to update on the DDNS server>]\n" +
    "                [rcvbuf <UDP receive buffer in bytes>]\n" +
    "                [sndbuf <UDP send buffer in bytes>]\n" +
    "                   (not in C irm; default for each: " +
    `${DEFAULT_SOCKET_BUFFER}, from ${SOCKET_BUFFER_MIN} to ${SOCKET_BUFFER_MAX})\n` +
    "if TYPE == local\n" +
    `                [hash [ALGORITHM] (default: ${DEFAULT_LOCAL_HASH})]\n` +
    "                [autobind] (ignored: only unicast and broadcast IPCPs bind)\n" +
    "if TYPE == unicast\n" +
    "                [addr <address size> (default: 4, the only size)]\n" +
    "                [eid <eid size> (default: 8, the only size)]\n" +
    "                [ttl <max time-to-live value> (default: 60, 1 to 255)]\n" +
    "                [addr_auth ADDRESS_POLICY (default: flat)]\n" +
    "                [directory DIRECTORY_POLICY (default: DHT)]\n" +
    `                [hash [ALGORITHM] (default: ${DEFAULT_LOCAL_HASH})]\n` +
    "                [routing ROUTING_POLICY (default: link_state)]\n" +
    "                [ls_t_recalc <s> (default: 4)] [ls_t_update <s> (default: 15)]\n" +
    "                [ls_t_timeo <s> (default: 60)]\n" +
    "                [dht_alpha <n> (default: 3, 1 to 10)] [dht_k <n> (default: 8, 1 to 20)]\n" +
    "                [dht_t_expire <s> (default: 86400, 10 to 86400)]\n" +
    "                [dht_t_refresh <s> (default: 900, 3 to 3600)]\n" +
    "                [dht_t_replicate <s> (default: 900, 3 to 3600)]\n" +
    "                [congestion CONG_POLICY (default: mb-ecn)]\n" +
    "                [autobind] (bind the IPCP to its name and its layer's name)\n" +
    "where UDP_ALGORITHM = {MD5}\n" +
    `      ALGORITHM = {${SHA3_ALGOS.join(" ")}}\n` +
    "      ADDRESS_POLICY = {flat}\n" +
    "      DIRECTORY_POLICY = {DHT}\n" +
    "      ROUTING_POLICY = {link_state lfa ecmp}\n" +
    "      CONG_POLICY = {none mb-ecn}\n" +
    'Other members join the layer with "irm ipcp enroll" and link up with\n' +
    '"irm ipcp connect".',
  ipcpEnroll: "Usage: irm ipcp enroll\n" +
    "                name <ipcp name>\n" +
    "                dst <member to enroll with> | layer <layer to enroll in>\n" +
    "                [type unicast] (create the IPCP if it does not exist;\n" +
    "                   unicast, the default, is the only type that enrolls)\n" +
    "                [autobind] (bind the IPCP to its name and its layer's\n" +
    "                   name once enrolled)\n\n" +
    "Without dst, the IPCP enrolls with the layer's name (a member that\n" +
    "accepts for it); with both, the layer joined must be the one named.\n" +
    "The IPCP reaches the member through the layers below it: register\n" +
    "the member's name (or the layer's) in one of them.",
  ipcpConnect: "Usage: irm ipcp connect\n" +
    "                name <ipcp name>\n" +
    "                dst <name of destination IPCP>\n" +
    "                [component {dt mgmt}] (default: mgmt, then dt)\n" +
    "                [qos {raw best voice video data}] (of the dt flow,\n" +
    "                   default: raw; mgmt flows are always raw)",
  ipcpDisconnect: "Usage: irm ipcp disconnect\n" +
    "                name <ipcp name>\n" +
    "                dst <name of destination IPCP>\n" +
    "                [component {dt mgmt}] (default: dt, then mgmt)",
  ipcpList: "Usage: irm ipcp list\n" +
    "                [name <ipcp name>]\n" +
    "                [type [TYPE]]\n" +
    "                [layer <layer name>]\n\n" + TYPES_LINE,
  bind: (p: string) =>
    `Usage: ${p} [OPERATION]\n\n` +
    "where OPERATION = {program process ipcp help}",
  bindProgram: (p: string) =>
    `Usage: ${p} program <program>\n` +
    "           name <name>\n" +
    "           [auto] (instantiate program if not running)\n" +
    "           [-- <application arguments>]\n\n" +
    "A program without a '/' is looked up on PATH.",
  bindProcess: (p: string) =>
    `Usage: ${p} process <pid>\n` +
    "           name <name>",
  bindIpcp: (p: string) =>
    `Usage: ${p} ipcp <ipcp name>\n` +
    "           name <name>",
  unbind: (p: string) =>
    `Usage: ${p} [OPERATION]\n\n` +
    "where OPERATION = {program process ipcp help}",
  unbindProgram: (p: string) =>
    `Usage: ${p} program <program>\n` +
    "           name <name>",
  unbindProcess: (p: string) =>
    `Usage: ${p} process <pid>\n` +
    "           name <name>",
  unbindIpcp: (p: string) =>
    `Usage: ${p} ipcp <ipcp name>\n` +
    "           name <name>",
  name: "Usage: irm name [OPERATION]\n\n" +
    "where OPERATION = {create destroy\n" +
    "                   register unregister\n" +
    "                   list bind unbind help}\n\n" +
    "irm name bind|unbind ... is irm bind|unbind ... (the tutorial's form).",
  nameCreate: "Usage: irm name create\n" +
    "                <name> (at most 255 bytes)\n" +
    "                [lb LB_POLICY], default: round-robin\n\n" +
    "where LB_POLICY = {round-robin spillover}",
  nameDestroy: "Usage: irm name destroy <name>",
  nameRegister: "Usage: irm name register <name>\n" +
    "           ipcp <ipcp to register with>\n" +
    "           [ipcp <ipcp to register with>]\n" +
    "           [...]\n" +
    "           layer <layer to register with>\n" +
    "           [layer <layer to register with>]\n" +
    "           [...]\n\n" +
    "At least one ipcp or layer.",
  nameUnregister: "Usage: irm name unregister <name>\n" +
    "           ipcp <ipcp to unregister from>\n" +
    "           [ipcp <ipcp to unregister from>]\n" +
    "           [...]\n" +
    "           layer <layer to unregister from>\n" +
    "           [layer <layer to unregister from>]\n" +
    "           [...]\n\n" +
    "At least one ipcp or layer.",
  nameList: "Usage: irm name list",
  process: "Usage: irm process [OPERATION]\n\n" +
    "where OPERATION = {list help}\n\n" +
    "(not in C irm) irm process list: the processes that the irmd knows, the\n" +
    "names they accept flows for and their flows.",
  processList: "Usage: irm process list",
} as const;

// ---------------------------------------------------------------------------
// Parser machinery

/** A level of the grammar: its command path ("irm ipcp create") and usage. */
interface Level {
  path: string;
  usage: string;
}

/** Thrown inside the parser; parseIrm turns it into a result. */
class Stop {
  constructor(
    readonly result: { kind: "help"; text: string } | {
      kind: "error";
      text: string;
    },
  ) {}
}

function help(level: Level): Stop {
  return new Stop({ kind: "help", text: level.usage });
}

/** An error line followed by the level's usage (or alone, withUsage false). */
function fail(level: Level, message: string, withUsage = true): Stop {
  return new Stop({
    kind: "error",
    text: withUsage ? `${message}\n${level.usage}` : message,
  });
}

function unknown(level: Level, word: string): Stop {
  return fail(level, `"${word}" is unknown, try "${level.path} help".`);
}

const HELP_WORDS: readonly string[] = ["help", "-h", "--help"];

function isHelpWord(w: string): boolean {
  return w === "-h" || w === "--help";
}

/** The first keyword of the table that starts with `word` (never for ""). */
export function matchKeyword<const K extends string>(
  word: string,
  table: readonly K[],
): K | undefined {
  if (word === "") return undefined;
  return table.find((k) => k.startsWith(word));
}

class Words {
  #i = 0;
  constructor(readonly args: readonly string[]) {}
  get done(): boolean {
    return this.#i >= this.args.length;
  }
  peek(): string | undefined {
    return this.args[this.#i];
  }
  next(): string | undefined {
    return this.args[this.#i++];
  }
  rest(): string[] {
    const r = this.args.slice(this.#i);
    this.#i = this.args.length;
    return r;
  }
}

/**
 * Selects the operation at a command level: prefix match over `table` (which
 * ends with "help"); missing or unknown words fail with the level's usage.
 */
function operation<const K extends string>(
  w: Words,
  level: Level,
  table: readonly K[],
): Exclude<K, "help"> {
  const word = w.next();
  if (word === undefined) {
    throw fail(level, `${level.path}: an operation is missing.`);
  }
  if (isHelpWord(word)) throw help(level);
  const k = matchKeyword(word, table);
  if (k === undefined) throw unknown(level, word);
  if (k === "help") throw help(level);
  return k as Exclude<K, "help">;
}

/** An option keyword: `arg` names its value, absent for a flag; `repeat` allows it more than once. */
interface OptSpec {
  kw: string;
  arg?: string;
  repeat?: boolean;
}

type Opts = Map<string, string[]>;

/** Reads keyword options up to the end (or up to `--` when `stopAtDashes`). */
function options(
  w: Words,
  level: Level,
  specs: readonly OptSpec[],
  stopAtDashes = false,
): Opts {
  const table = [...specs.map((s) => s.kw), "help"];
  const out: Opts = new Map();
  while (!w.done) {
    const word = w.next() ?? "";
    if (stopAtDashes && word === "--") break;
    if (isHelpWord(word)) throw help(level);
    const kw = matchKeyword(word, table);
    if (kw === undefined) throw unknown(level, word);
    if (kw === "help") throw help(level);
    const spec = specs.find((s) => s.kw === kw);
    if (spec === undefined) throw unknown(level, word);
    const prev = out.get(kw);
    if (prev !== undefined && spec.repeat !== true) {
      throw fail(level, `${level.path}: "${kw}" is given more than once.`);
    }
    let value = "";
    if (spec.arg !== undefined) {
      const v = w.next();
      if (v === undefined) {
        throw fail(
          level,
          `${level.path}: ${kw} needs a value: ${kw} ${spec.arg}.`,
        );
      }
      value = v;
    }
    out.set(kw, [...(prev ?? []), value]);
  }
  return out;
}

/** The single value of an option, or undefined. */
function one(opts: Opts, kw: string): string | undefined {
  return opts.get(kw)?.[0];
}

function required(opts: Opts, level: Level, kw: string, arg: string): string {
  const v = one(opts, kw);
  if (v === undefined) {
    throw fail(level, `${level.path}: "${kw} ${arg}" is missing.`);
  }
  return v;
}

/** A positional operand; `help` and -h/--help in its place ask for help. */
function operand(w: Words, level: Level, what: string): string {
  const v = w.next();
  if (v === undefined) throw fail(level, `${level.path}: ${what} is missing.`);
  if (HELP_WORDS.includes(v)) throw help(level);
  return v;
}

function checkedName(level: Level, s: string, what: string): string {
  const why = checkName(s, what);
  if (why !== undefined) throw fail(level, `${level.path}: ${why}.`);
  return s;
}

function parsePid(level: Level, s: string): number {
  if (!/^[0-9]+$/.test(s) || Number(s) < 1 || Number(s) > 0x7fff_ffff) {
    throw fail(
      level,
      `${level.path}: invalid process id "${s}": expected a number from 1 to 2147483647.`,
    );
  }
  return Number(s);
}

function parsePort(level: Level, s: string): number {
  if (!/^[0-9]{1,5}$/.test(s) || Number(s) < 1 || Number(s) > 65535) {
    throw fail(
      level,
      `${level.path}: invalid port "${s}": expected a number from 1 to 65535.`,
    );
  }
  return Number(s);
}

function parseBufferSize(level: Level, kw: string, s: string): number {
  const n = Number(s);
  if (
    !/^[0-9]{1,10}$/.test(s) || n < SOCKET_BUFFER_MIN || n > SOCKET_BUFFER_MAX
  ) {
    throw fail(
      level,
      `${level.path}: invalid ${kw} "${s}": expected a size in bytes from ${SOCKET_BUFFER_MIN} to ${SOCKET_BUFFER_MAX}.`,
    );
  }
  return n;
}

/** IPCP types in C's order: `udp` matches udp4, `u` unicast, `eth` eth-llc. */
export const ALL_IPCP_TYPES = [
  "unicast",
  "broadcast",
  "udp4",
  "udp6",
  "eth-llc",
  "eth-dix",
  "local",
] as const;

function parseType(level: Level, word: string): IpcpTypeName {
  const t = matchKeyword(word, ALL_IPCP_TYPES);
  if (t === undefined) {
    throw fail(level, `${level.path}: unknown IPCP type "${word}".`);
  }
  if (t !== "udp4" && t !== "udp6" && t !== "local" && t !== "unicast") {
    throw fail(level, `IPCP type ${t} is not supported yet.`, false);
  }
  return t;
}

/** Joins and normalises a path ("." and ".." segments), without touching the disk. */
export function absolutePath(cwd: string, p: string): string {
  const full = p.startsWith("/") ? p : `${cwd}/${p}`;
  const parts: string[] = [];
  for (const seg of full.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") parts.pop();
    else parts.push(seg);
  }
  return `/${parts.join("/")}`;
}

/**
 * The absolute path of a program as C's irm finds it: with a '/', relative to
 * the working directory; without, the first executable of that name on PATH.
 * Symbolic links are kept (the irmd matches processes by the program's
 * basename, and `oping` may be a link to `ouroboros`).
 */
export function findProgram(env: ParseEnv, prog: string): string | undefined {
  if (prog.includes("/")) return absolutePath(env.cwd, prog);
  for (const dir of (env.path ?? "").split(":")) {
    const candidate = absolutePath(
      env.cwd,
      `${dir === "" ? "." : dir}/${prog}`,
    );
    if (env.isExecutable(candidate)) return candidate;
  }
  return undefined;
}

function call<M extends IrmMethod>(c: CallOf<M>): CallOf<M> {
  return c;
}

const SILENT = (): string => "";

// ---------------------------------------------------------------------------
// irm ipcp ...

const IPCP_OPS = [
  "create",
  "destroy",
  "bootstrap",
  "enroll",
  "connect",
  "disconnect",
  "list",
  "stats",
  "help",
] as const;

interface Ctx {
  env: ParseEnv;
  notes: string[];
}

function ipcpCmd(w: Words, ctx: Ctx): IrmCall {
  const level: Level = { path: "irm ipcp", usage: USAGE.ipcp };
  const op = operation(w, level, IPCP_OPS);
  switch (op) {
    case "create": {
      const lv: Level = { path: "irm ipcp create", usage: USAGE.ipcpCreate };
      const o = options(w, lv, [{ kw: "name", arg: "<ipcp name>" }, {
        kw: "type",
        arg: "<type>",
      }]);
      const name = checkedName(
        lv,
        required(o, lv, "name", "<ipcp name>"),
        "IPCP name",
      );
      const type = parseType(lv, required(o, lv, "type", "<type>"));
      return call({
        method: "irm.ipcp.create",
        body: { name, type },
        timeoutMs: DEFAULT_TIMEOUT_MS,
        failure: "Failed to create IPCP",
        render: SILENT,
      });
    }
    case "destroy": {
      const lv: Level = { path: "irm ipcp destroy", usage: USAGE.ipcpDestroy };
      const o = options(w, lv, [{ kw: "name", arg: "<ipcp name>" }]);
      const name = checkedName(
        lv,
        required(o, lv, "name", "<ipcp name>"),
        "IPCP name",
      );
      return call({
        method: "irm.ipcp.destroy",
        body: { name },
        timeoutMs: DEFAULT_TIMEOUT_MS,
        failure: "Failed to destroy IPCP",
        render: SILENT,
      });
    }
    case "bootstrap":
      return bootstrap(w, ctx);
    case "enroll":
      return enroll(w);
    case "connect":
    case "disconnect":
      return connect(w, op);
    case "list": {
      const lv: Level = { path: "irm ipcp list", usage: USAGE.ipcpList };
      const o = options(w, lv, [
        { kw: "name", arg: "<ipcp name>" },
        { kw: "type", arg: "<type>" },
        { kw: "layer", arg: "<layer name>" },
      ]);
      const body: Req<"irm.ipcp.list"> = {};
      const name = one(o, "name");
      if (name !== undefined) body.name = checkedName(lv, name, "IPCP name");
      const type = one(o, "type");
      if (type !== undefined) body.type = parseType(lv, type);
      const layer = one(o, "layer");
      if (layer !== undefined) {
        body.layer = checkedName(lv, layer, "layer name");
      }
      return call({
        method: "irm.ipcp.list",
        body,
        timeoutMs: DEFAULT_TIMEOUT_MS,
        failure: "Failed to list IPCPs",
        render: (r) => renderIpcpList(r.ipcps),
      });
    }
    case "stats": {
      const lv: Level = { path: "irm ipcp stats", usage: USAGE.ipcpStats };
      const o = options(w, lv, [{ kw: "name", arg: "<ipcp name>" }]);
      const body: Req<"irm.ipcp.stats"> = {};
      const name = one(o, "name");
      if (name !== undefined) body.name = checkedName(lv, name, "IPCP name");
      return call({
        method: "irm.ipcp.stats",
        body,
        timeoutMs: DEFAULT_TIMEOUT_MS,
        failure: "Failed to read IPCP statistics",
        render: (r) => renderIpcpStats(r.ipcps),
      });
    }
  }
}

/** The bootstrap options of UDP IPCPs only. */
const UDP_OPTIONS = [
  "ip",
  "port",
  "dns",
  "hosts",
  "zone",
  "rcvbuf",
  "sndbuf",
] as const;

/** A local layer's hash: one of the SHA3 algorithms. */
function localHash(lv: Level, word: string): Sha3Algo {
  const algo = parseHashAlgo(word);
  const sha3 = SHA3_ALGOS.find((a) => a === algo);
  if (sha3 !== undefined) return sha3;
  throw fail(
    lv,
    `${lv.path}: ${
      algo === undefined ? "unknown hash algorithm" : "hash"
    } ${word}${algo === undefined ? "" : " is not supported"}: ` +
      `local layers hash names with ${
        SHA3_ALGOS.join(", ")
      } (default ${DEFAULT_LOCAL_HASH}).`,
  );
}

/**
 * The options of a UDP IPCP (or of an IPCP of a type not given, which the
 * irmd checks against the IPCP's own type), into `body`.
 */
function udpBootstrap(
  lv: Level,
  o: Opts,
  body: Req<"irm.ipcp.bootstrap">,
  ctx: Ctx,
  udpOptions: boolean,
): void {
  let family: 4 | 6 | undefined = body.type === "udp4"
    ? 4
    : body.type === "udp6"
    ? 6
    : undefined;
  const udp = family !== undefined || udpOptions;
  if (udp) body.port = DEFAULT_UDP_PORT;
  const ip = one(o, "ip");
  if (ip !== undefined) {
    const f = isIPv4(ip) ? 4 : isIPv6(ip) ? 6 : undefined;
    if (f === undefined) {
      const hint = ip.includes("/")
        ? " (no prefix length)"
        : ip.startsWith("[")
        ? " (no brackets)"
        : "";
      throw fail(lv, `${lv.path}: invalid IP address "${ip}"${hint}.`);
    }
    if (family !== undefined && f !== family) {
      throw fail(
        lv,
        `${lv.path}: "${ip}" is an IPv${f} address, a ${body.type} IPCP needs an IPv${family} address.`,
      );
    }
    family = f;
    body.ip = ip;
  }
  const port = one(o, "port");
  if (port !== undefined) body.port = parsePort(lv, port);
  const dns = one(o, "dns");
  if (dns !== undefined) {
    const r = family !== undefined
      ? parseDnsAddress(dns, family)
      : [parseDnsAddress(dns, 4), parseDnsAddress(dns, 6)].find((x) => x.ok) ??
        parseDnsAddress(dns, 4);
    if (!r.ok) throw fail(lv, `${lv.path}: ${r.error}.`);
    if (dns.length > 80) {
      throw fail(lv, `${lv.path}: the DNS server address is too long.`);
    }
    body.dns = dns;
  }
  const hash = one(o, "hash");
  if (hash !== undefined && hash.toUpperCase() === "MD5" && !udp) {
    // No type: the irmd knows the IPCP's, and refuses MD5 for a local or
    // unicast one rather than have it ignored.
    body.hash = "MD5";
  } else if (hash !== undefined && hash.toUpperCase() !== "MD5") {
    const algo = parseHashAlgo(hash);
    if (!udp && algo !== undefined) {
      // No type and nothing of UDP's: maybe a local IPCP; the irmd knows.
      body.hash = algo;
    } else {
      throw fail(
        lv,
        `${lv.path}: ${
          algo !== undefined ? "hash" : "unknown hash algorithm"
        } ${hash}` +
          `${
            algo !== undefined ? " is not supported" : ""
          }: UDP layers hash names with MD5 (hash MD5)` +
          (udp ? "." : `, local layers with ${SHA3_ALGOS.join(", ")}.`),
      );
    }
  }
  const hosts = one(o, "hosts");
  if (hosts !== undefined) {
    if (hosts === "") throw fail(lv, `${lv.path}: empty hosts file name.`);
    body.hosts = absolutePath(ctx.env.cwd, hosts);
  }
  const zone = one(o, "zone");
  if (zone !== undefined) {
    if (zone === "" || new TextEncoder().encode(zone).length > 255) {
      throw fail(lv, `${lv.path}: the DNS zone must be 1 to 255 bytes long.`);
    }
    body.zone = zone;
  }
  const rcvbuf = one(o, "rcvbuf");
  if (rcvbuf !== undefined) body.rcvbuf = parseBufferSize(lv, "rcvbuf", rcvbuf);
  const sndbuf = one(o, "sndbuf");
  if (sndbuf !== undefined) body.sndbuf = parseBufferSize(lv, "sndbuf", sndbuf);
}

/** The bootstrap options of unicast IPCPs only (spec/unicast.md 7.1). */
const UNICAST_OPTIONS = [
  "addr",
  "eid",
  "ttl",
  "addr_auth",
  "directory",
  "routing",
  "ls_t_recalc",
  "ls_t_update",
  "ls_t_timeo",
  "dht_alpha",
  "dht_k",
  "dht_t_expire",
  "dht_t_refresh",
  "dht_t_replicate",
  "congestion",
] as const;

/** Integer options of a unicast bootstrap: the field each sets and its range. */
const UNICAST_INT_OPTIONS = {
  addr: { field: "addrSize", min: 4, max: 4, what: "an address size" },
  eid: { field: "eidSize", min: 8, max: 8, what: "an eid size" },
  ttl: { field: "maxTtl", min: 1, max: 255, what: "a time-to-live" },
  ls_t_recalc: {
    field: "lsTRecalc",
    min: 1,
    max: 0xffff_ffff,
    what: "seconds",
  },
  ls_t_update: {
    field: "lsTUpdate",
    min: 1,
    max: 0xffff_ffff,
    what: "seconds",
  },
  ls_t_timeo: { field: "lsTTimeo", min: 1, max: 0xffff_ffff, what: "seconds" },
  dht_alpha: { field: "dhtAlpha", min: 1, max: 10, what: "parallel lookups" },
  dht_k: { field: "dhtK", min: 1, max: 20, what: "contacts per bucket" },
  dht_t_expire: { field: "dhtTExpire", min: 10, max: 86400, what: "seconds" },
  dht_t_refresh: { field: "dhtTRefresh", min: 3, max: 3600, what: "seconds" },
  dht_t_replicate: {
    field: "dhtTReplicate",
    min: 3,
    max: 3600,
    what: "seconds",
  },
} as const;

/** A word of a unicast option that takes one of a few words. */
function unicastWord<W extends string>(
  lv: Level,
  kw: string,
  value: string,
  words: Readonly<Record<string, W>>,
): W {
  const w = Object.hasOwn(words, value) ? words[value] : undefined;
  if (w !== undefined) return w;
  throw fail(
    lv,
    `${lv.path}: unknown ${kw} "${value}" (${Object.keys(words).join(", ")}).`,
  );
}

/** The options of a unicast IPCP, into `body` (hash and unicast). */
function unicastBootstrap(
  lv: Level,
  o: Opts,
  body: Req<"irm.ipcp.bootstrap">,
): void {
  const hash = one(o, "hash");
  if (hash !== undefined) {
    const algo = parseHashAlgo(hash);
    const sha3 = SHA3_ALGOS.find((a) => a === algo);
    if (sha3 === undefined) {
      throw fail(
        lv,
        `${lv.path}: ${
          algo === undefined ? "unknown hash algorithm" : "hash"
        } ${hash}${algo === undefined ? "" : " is not supported"}: ` +
          `unicast layers hash names with ${
            SHA3_ALGOS.join(", ")
          } (default ${DEFAULT_LOCAL_HASH}).`,
      );
    }
    body.hash = sha3;
  }
  const u: UnicastParams = {};
  for (const [kw, spec] of Object.entries(UNICAST_INT_OPTIONS)) {
    const v = one(o, kw);
    if (v === undefined) continue;
    const n = Number(v);
    if (!/^[0-9]{1,10}$/.test(v) || n < spec.min || n > spec.max) {
      const range = spec.min === spec.max
        ? `${spec.min}`
        : `a number from ${spec.min} to ${spec.max}`;
      const why = kw === "addr"
        ? " (the flat address policy mandates 4 byte addresses)"
        : kw === "eid"
        ? " (members run with 8 byte eids)"
        : "";
      throw fail(
        lv,
        `${lv.path}: invalid ${kw} "${v}": expected ${range} (${spec.what})${why}.`,
      );
    }
    u[spec.field] = n;
  }
  const auth = one(o, "addr_auth");
  if (auth !== undefined) {
    u.addrAuth = unicastWord(lv, "addr_auth", auth, { flat: "flat" } as const);
  }
  const dir = one(o, "directory");
  if (dir !== undefined) {
    u.directory = unicastWord(
      lv,
      "directory",
      dir,
      {
        DHT: "dht",
        dht: "dht",
      } as const,
    );
  }
  const routing = one(o, "routing");
  if (routing !== undefined) {
    u.routing = unicastWord(
      lv,
      "routing",
      routing,
      {
        link_state: "link-state",
        "link-state": "link-state",
        lfa: "lfa",
        ecmp: "ecmp",
      } as const,
    );
  }
  const cong = one(o, "congestion");
  if (cong !== undefined) {
    u.congestion = unicastWord(
      lv,
      "congestion",
      cong,
      {
        none: "none",
        "mb-ecn": "mb-ecn",
      } as const,
    );
  }
  if (Object.keys(u).length > 0) body.unicast = u;
}

function bootstrap(w: Words, ctx: Ctx): IrmCall {
  const lv: Level = { path: "irm ipcp bootstrap", usage: USAGE.ipcpBootstrap };
  const o = options(w, lv, [
    { kw: "name", arg: "<ipcp name>" },
    { kw: "layer", arg: "<layer name>" },
    { kw: "type", arg: "<type>" },
    { kw: "ip", arg: "<IP address>" },
    { kw: "port", arg: "<UDP port>" },
    { kw: "dns", arg: "<DDNS server address>" },
    { kw: "hash", arg: "<algorithm>" },
    { kw: "autobind" },
    { kw: "hosts", arg: "<hosts file>" },
    { kw: "zone", arg: "<DNS zone>" },
    { kw: "rcvbuf", arg: "<bytes>" },
    { kw: "sndbuf", arg: "<bytes>" },
    // After the others, so that their prefixes keep meaning what they did.
    ...UNICAST_OPTIONS.map((kw) => ({ kw, arg: "<value>" })),
  ]);
  const name = checkedName(
    lv,
    required(o, lv, "name", "<ipcp name>"),
    "IPCP name",
  );
  const layer = checkedName(
    lv,
    required(o, lv, "layer", "<layer name>"),
    "layer name",
  );
  const body: Req<"irm.ipcp.bootstrap"> = { name, layer };
  const typeWord = one(o, "type");
  if (typeWord !== undefined) body.type = parseType(lv, typeWord);
  // The options that only a UDP IPCP takes: with any of them (or a UDP
  // type) the port goes too, by default 3435.
  const udpOnly = UDP_OPTIONS.filter((k) => o.has(k));
  const unicastOnly = UNICAST_OPTIONS.filter((k) => o.has(k));
  if (body.type === "unicast") {
    if (udpOnly.length > 0) {
      throw fail(
        lv,
        `${lv.path}: ${udpOnly.join(", ")}: not for a unicast IPCP.`,
      );
    }
    unicastBootstrap(lv, o, body);
    if (o.has("autobind")) body.autobind = true;
    return call({
      method: "irm.ipcp.bootstrap",
      body,
      timeoutMs: BOOTSTRAP_TIMEOUT_MS,
      failure: "Failed to bootstrap IPCP",
      render: SILENT,
    });
  }
  if (unicastOnly.length > 0) {
    if (body.type !== undefined || udpOnly.length > 0) {
      throw fail(
        lv,
        `${lv.path}: ${unicastOnly.join(", ")}: only for a unicast IPCP.`,
      );
    }
    // No type: an existing IPCP's, which the irmd checks.
    unicastBootstrap(lv, o, body);
    return call({
      method: "irm.ipcp.bootstrap",
      body,
      timeoutMs: BOOTSTRAP_TIMEOUT_MS,
      failure: "Failed to bootstrap IPCP",
      render: SILENT,
    });
  }
  if (body.type === "local") {
    if (udpOnly.length > 0) {
      throw fail(
        lv,
        `${lv.path}: ${
          udpOnly.join(", ")
        }: not for a local IPCP, which takes a layer and a hash.`,
      );
    }
    const hash = one(o, "hash");
    if (hash !== undefined) body.hash = localHash(lv, hash);
  } else {
    udpBootstrap(lv, o, body, ctx, udpOnly.length > 0);
  }
  if (o.has("autobind")) {
    ctx.notes.push(
      "Can only bind unicast and broadcast IPCPs, autobind disabled.",
    );
  }
  return call({
    method: "irm.ipcp.bootstrap",
    body,
    timeoutMs: BOOTSTRAP_TIMEOUT_MS,
    failure: "Failed to bootstrap IPCP",
    render: SILENT,
  });
}

// ---------------------------------------------------------------------------
// irm ipcp enroll / connect / disconnect (spec/unicast.md 7.1)

function enroll(w: Words): IrmCall {
  const lv: Level = { path: "irm ipcp enroll", usage: USAGE.ipcpEnroll };
  const o = options(w, lv, [
    { kw: "name", arg: "<ipcp name>" },
    { kw: "dst", arg: "<member name>" },
    { kw: "layer", arg: "<layer name>" },
    { kw: "type", arg: "<type>" },
    { kw: "autobind" },
  ]);
  const name = checkedName(
    lv,
    required(o, lv, "name", "<ipcp name>"),
    "IPCP name",
  );
  const body: Req<"irm.ipcp.enroll"> = { name, autobind: o.has("autobind") };
  const dst = one(o, "dst");
  if (dst !== undefined) body.dst = checkedName(lv, dst, "destination name");
  const layer = one(o, "layer");
  if (layer !== undefined) body.layer = checkedName(lv, layer, "layer name");
  if (dst === undefined && layer === undefined) {
    throw fail(
      lv,
      `${lv.path}: "dst <member name>" or "layer <layer name>" is missing.`,
    );
  }
  const typeWord = one(o, "type");
  if (typeWord !== undefined) {
    const type = parseType(lv, typeWord);
    if (type !== "unicast") {
      throw fail(
        lv,
        `${lv.path}: only unicast IPCPs enroll, not ${type} ones (a ${type} IPCP is bootstrapped: irm ipcp bootstrap).`,
      );
    }
    body.type = type;
  }
  return call({
    method: "irm.ipcp.enroll",
    body,
    timeoutMs: ENROLL_TIMEOUT_MS,
    failure: "Failed to enroll IPCP",
    render: SILENT,
  });
}

const COMPONENTS = { dt: "dt", mgmt: "mgmt" } as const;
/** The QoS cube words, in the order of the usage text. */
const QOS_WORDS = Object.fromEntries(
  QOS_CUBE_NAMES.map((q) => [q, q]),
) as Record<QosCubeName, QosCubeName>;

function connect(w: Words, op: "connect" | "disconnect"): IrmCall {
  const lv: Level = op === "connect"
    ? { path: "irm ipcp connect", usage: USAGE.ipcpConnect }
    : { path: "irm ipcp disconnect", usage: USAGE.ipcpDisconnect };
  const specs: OptSpec[] = [
    { kw: "name", arg: "<ipcp name>" },
    { kw: "dst", arg: "<member name>" },
    { kw: "component", arg: "dt|mgmt" },
  ];
  if (op === "connect") {
    specs.push({ kw: "qos", arg: QOS_CUBE_NAMES.join("|") });
  }
  const o = options(w, lv, specs);
  const name = checkedName(
    lv,
    required(o, lv, "name", "<ipcp name>"),
    "IPCP name",
  );
  const dst = checkedName(
    lv,
    required(o, lv, "dst", "<member name>"),
    "destination name",
  );
  const compWord = one(o, "component");
  const component = compWord === undefined
    ? undefined
    : unicastWord(lv, "component", compWord, COMPONENTS);
  if (op === "disconnect") {
    const body: Req<"irm.ipcp.disconnect"> = { name, dst };
    if (component !== undefined) body.component = component;
    return call({
      method: "irm.ipcp.disconnect",
      body,
      timeoutMs: CONNECT_TIMEOUT_MS,
      failure: "Failed to disconnect IPCP",
      render: SILENT,
    });
  }
  const body: Req<"irm.ipcp.connect"> = { name, dst };
  if (component !== undefined) body.component = component;
  const qosWord = one(o, "qos");
  if (qosWord !== undefined) {
    if (component === "mgmt") {
      throw fail(
        lv,
        `${lv.path}: qos is for the dt component only (mgmt flows are always raw).`,
      );
    }
    body.qos = unicastWord(lv, "qos", qosWord, QOS_WORDS);
  }
  return call({
    method: "irm.ipcp.connect",
    body,
    timeoutMs: CONNECT_TIMEOUT_MS,
    failure: "Failed to connect IPCP",
    render: SILENT,
  });
}

// ---------------------------------------------------------------------------
// irm bind / unbind ... (also as irm name bind / unbind ...)

const BIND_OPS = ["program", "process", "ipcp", "help"] as const;

function bindCmd(w: Words, ctx: Ctx, prefix: string, unbind: boolean): IrmCall {
  const verb = unbind ? "unbind" : "bind";
  const path = `${prefix} ${verb}`;
  const level: Level = {
    path,
    usage: unbind ? USAGE.unbind(path) : USAGE.bind(path),
  };
  const op = operation(w, level, BIND_OPS);
  switch (op) {
    case "program": {
      const lv: Level = {
        path: `${path} program`,
        usage: unbind ? USAGE.unbindProgram(path) : USAGE.bindProgram(path),
      };
      const given = operand(w, lv, "the program");
      const specs: OptSpec[] = [{ kw: "name", arg: "<name>" }];
      if (!unbind) specs.push({ kw: "auto" });
      const o = options(w, lv, specs, !unbind);
      const args = unbind ? [] : w.rest();
      const name = checkedName(lv, required(o, lv, "name", "<name>"), "name");
      if (given === "") throw fail(lv, `${lv.path}: empty program name.`);
      const found = findProgram(ctx.env, given);
      if (found === undefined && !unbind) {
        throw fail(lv, `Program ${given} not found.`, false);
      }
      const prog = found ?? given;
      if (prog.length > 4096) {
        throw fail(lv, `${lv.path}: the program path is too long.`);
      }
      if (args.length > 256) {
        throw fail(lv, `${lv.path}: at most 256 arguments.`);
      }
      if (unbind) {
        return call({
          method: "irm.unbind.program",
          body: { prog, name },
          timeoutMs: DEFAULT_TIMEOUT_MS,
          failure: "Failed to unbind program",
          render: SILENT,
        });
      }
      return call({
        method: "irm.bind.program",
        body: { prog, name, auto: o.has("auto"), args },
        timeoutMs: DEFAULT_TIMEOUT_MS,
        failure: "Failed to bind program",
        render: SILENT,
      });
    }
    case "process": {
      const lv: Level = {
        path: `${path} process`,
        usage: unbind ? USAGE.unbindProcess(path) : USAGE.bindProcess(path),
      };
      const pid = parsePid(lv, operand(w, lv, "the process id"));
      const o = options(w, lv, [{ kw: "name", arg: "<name>" }]);
      const name = checkedName(lv, required(o, lv, "name", "<name>"), "name");
      return call({
        method: unbind ? "irm.unbind.process" : "irm.bind.process",
        body: { pid, name },
        timeoutMs: DEFAULT_TIMEOUT_MS,
        failure: `Failed to ${verb} process`,
        render: SILENT,
      });
    }
    case "ipcp": {
      const lv: Level = {
        path: `${path} ipcp`,
        usage: unbind ? USAGE.unbindIpcp(path) : USAGE.bindIpcp(path),
      };
      const ipcp = checkedName(
        lv,
        operand(w, lv, "the IPCP name"),
        "IPCP name",
      );
      const o = options(w, lv, [{ kw: "name", arg: "<name>" }]);
      const name = checkedName(lv, required(o, lv, "name", "<name>"), "name");
      return call({
        method: unbind ? "irm.unbind.ipcp" : "irm.bind.ipcp",
        body: { ipcp, name },
        timeoutMs: DEFAULT_TIMEOUT_MS,
        failure: `Failed to ${verb} IPCP`,
        render: SILENT,
      });
    }
  }
}

// ---------------------------------------------------------------------------
// irm name ...

const NAME_OPS = [
  "create",
  "destroy",
  "register",
  "unregister",
  "list",
  "bind",
  "unbind",
  "help",
] as const;

const LB_POLICIES = ["round-robin", "spillover"] as const;

function nameCmd(w: Words, ctx: Ctx): IrmCall {
  const level: Level = { path: "irm name", usage: USAGE.name };
  const op = operation(w, level, NAME_OPS);
  switch (op) {
    case "create": {
      const lv: Level = { path: "irm name create", usage: USAGE.nameCreate };
      const name = checkedName(lv, operand(w, lv, "the name"), "name");
      const o = options(w, lv, [{ kw: "lb", arg: "<policy>" }]);
      const word = one(o, "lb") ?? "round-robin";
      const pol = matchKeyword(word, LB_POLICIES);
      if (pol === undefined) {
        throw fail(lv, `${lv.path}: unknown load-balance policy "${word}".`);
      }
      return call({
        method: "irm.name.create",
        body: { name, lb: pol === "spillover" ? "spill" : "round-robin" },
        timeoutMs: DEFAULT_TIMEOUT_MS,
        failure: "Failed to create name",
        render: SILENT,
      });
    }
    case "destroy": {
      const lv: Level = { path: "irm name destroy", usage: USAGE.nameDestroy };
      const name = checkedName(lv, operand(w, lv, "the name"), "name");
      options(w, lv, []);
      return call({
        method: "irm.name.destroy",
        body: { name },
        timeoutMs: DEFAULT_TIMEOUT_MS,
        failure: "Failed to destroy name",
        render: SILENT,
      });
    }
    case "register":
    case "unregister": {
      const lv: Level = {
        path: `irm name ${op}`,
        usage: op === "register" ? USAGE.nameRegister : USAGE.nameUnregister,
      };
      const name = checkedName(lv, operand(w, lv, "the name"), "name");
      const o = options(w, lv, [
        { kw: "ipcp", arg: "<ipcp name>", repeat: true },
        { kw: "layer", arg: "<layer name>", repeat: true },
      ]);
      const ipcps = (o.get("ipcp") ?? []).map((s) =>
        checkedName(lv, s, "IPCP name")
      );
      const layers = (o.get("layer") ?? []).map((s) =>
        checkedName(lv, s, "layer name")
      );
      if (ipcps.length === 0 && layers.length === 0) {
        throw fail(
          lv,
          `${lv.path}: at least one "ipcp <ipcp name>" or "layer <layer name>" is needed.`,
        );
      }
      return call({
        method: op === "register" ? "irm.name.register" : "irm.name.unregister",
        body: { name, ipcps, layers },
        timeoutMs: DEFAULT_TIMEOUT_MS,
        failure: `Failed to ${op} name`,
        render: SILENT,
      });
    }
    case "list": {
      const lv: Level = { path: "irm name list", usage: USAGE.nameList };
      options(w, lv, []);
      return call({
        method: "irm.name.list",
        body: {},
        timeoutMs: DEFAULT_TIMEOUT_MS,
        failure: "Failed to list names",
        render: (r) => renderNameList(r.names),
      });
    }
    case "bind":
    case "unbind":
      return bindCmd(w, ctx, "irm name", op === "unbind");
  }
}

// ---------------------------------------------------------------------------
// irm process ... (ours)

const PROCESS_OPS = ["list", "help"] as const;

function processCmd(w: Words): IrmCall {
  const level: Level = { path: "irm process", usage: USAGE.process };
  operation(w, level, PROCESS_OPS);
  const lv: Level = { path: "irm process list", usage: USAGE.processList };
  options(w, lv, []);
  return call({
    method: "irm.proc.list",
    body: {},
    timeoutMs: DEFAULT_TIMEOUT_MS,
    failure: "Failed to list processes",
    render: (r) => renderProcList(r.procs),
  });
}

// ---------------------------------------------------------------------------
// Top level

const TOP_OPS = ["ipcp", "bind", "unbind", "name", "process", "help"] as const;

/** Parses an `irm` command line (the words after `irm`). */
export function parseIrm(
  args: readonly string[],
  env: ParseEnv = systemParseEnv(),
): IrmParse {
  const top: Level = { path: "irm", usage: USAGE.irm };
  const ctx: Ctx = { env, notes: [] };
  let rundir: string | undefined;
  let i = 0;
  try {
    // The global option, anywhere on the line; the rest is the command.
    const words: string[] = [];
    for (; i < args.length; i++) {
      const a = args[i]!;
      if (a === "--rundir") {
        const v = args[i + 1];
        if (v === undefined || v === "") {
          throw fail(top, "irm: --rundir needs a directory: --rundir DIR.");
        }
        rundir = v;
        i++;
      } else if (a.startsWith("--rundir=")) {
        const v = a.slice("--rundir=".length);
        if (v === "") {
          throw fail(top, "irm: --rundir needs a directory: --rundir DIR.");
        }
        rundir = v;
      } else {
        words.push(a);
      }
    }
    const w = new Words(words);
    if (w.done) throw fail(top, "irm: an object is missing.");
    const obj = operation(w, top, TOP_OPS);
    let c: IrmCall;
    switch (obj) {
      case "ipcp":
        c = ipcpCmd(w, ctx);
        break;
      case "bind":
      case "unbind":
        c = bindCmd(w, ctx, "irm", obj === "unbind");
        break;
      case "name":
        c = nameCmd(w, ctx);
        break;
      case "process":
        c = processCmd(w);
        break;
    }
    return { kind: "request", rundir, call: c, notes: ctx.notes };
  } catch (e) {
    if (e instanceof Stop) return e.result;
    throw e;
  }
}

// ---------------------------------------------------------------------------
// Tables (C's printf widths; longer values widen their column, never cut)

/** Right-aligns like printf("%*s"), counting code points; never truncates. */
function cell(s: string | number, width: number): string {
  const str = String(s);
  const len = [...str].length;
  return len >= width ? str : " ".repeat(width - len) + str;
}

function border(widths: readonly number[]): string {
  return `+${widths.map((n) => "-".repeat(n + 2)).join("+")}+`;
}

function row(
  widths: readonly number[],
  values: readonly (string | number)[],
): string {
  return `| ${values.map((v, i) => cell(v, widths[i] ?? 0)).join(" | ")} |`;
}

function table(
  minWidths: readonly number[],
  head: readonly string[],
  rows: readonly (readonly (string | number)[])[],
): string {
  // A column is as wide as C prints it, or as its longest value: a long
  // name widens its whole column, so the columns after it stay aligned.
  const widths = minWidths.map((w, i) =>
    Math.max(
      w,
      [...String(head[i] ?? "")].length,
      ...rows.map((r) => [...String(r[i] ?? "")].length),
    )
  );
  const line = border(widths);
  return [
    line,
    row(widths, head),
    line,
    ...rows.map((r) => row(widths, r)),
    line,
  ].join("\n");
}

export function renderIpcpList(ipcps: Res<"irm.ipcp.list">["ipcps"]): string {
  if (ipcps.length === 0) return "No IPCPs in system.";
  // C's four columns; a fifth for the addresses of unicast members.
  if (ipcps.every((p) => p.address === undefined)) {
    return table(
      [7, 20, 10, 20],
      ["pid", "name", "type", "layer"],
      ipcps.map((p) => [p.pid, p.name, p.type, p.layer ?? ""]),
    );
  }
  return table(
    [7, 20, 10, 20, 10],
    ["pid", "name", "type", "layer", "address"],
    ipcps.map((p) => [p.pid, p.name, p.type, p.layer ?? "", p.address ?? ""]),
  );
}

export function renderIpcpStats(ipcps: Res<"irm.ipcp.stats">["ipcps"]): string {
  if (ipcps.length === 0) return "No IPCPs in system.";
  const rows = table(
    [7, 20, 6, 6, 9, 11, 12, 11],
    [
      "pid",
      "name",
      "flows",
      "short",
      "bad mgmt",
      "unknown eid",
      "wrong source",
      "slow reader",
    ],
    ipcps.map((
      i,
    ) => [
      i.pid,
      i.name,
      i.flows,
      i.dropped.short,
      i.dropped.badMgmt,
      i.dropped.unknownEid,
      i.dropped.wrongSource,
      i.dropped.slowReader,
    ]),
  );
  // What does not fit the table: the rarer drops and the socket buffers.
  const notes = ipcps.map((i) => {
    const socket = i.type === "local"
      ? "a local layer, without a socket"
      : i.type === "unicast"
      ? "a unicast layer, without a socket of its own"
      : i.socket === undefined
      ? "not bootstrapped"
      : `UDP socket buffers of ${i.socket.rcvbuf} bytes (receive) and ${i.socket.sndbuf} bytes (send)`;
    return `IPCP ${i.name}: ${socket}; dropped ${i.dropped.oversized} too long, ${i.dropped.mgmtOverflow} management frames while busy.`;
  });
  return [rows, ...notes].join("\n");
}

export function renderNameList(names: Res<"irm.name.list">["names"]): string {
  if (names.length === 0) return "No names in system.";
  return table(
    [50, 20],
    ["name", "load-balance policy"],
    names.map((n) => [n.name, n.lb === "spill" ? "spillover" : n.lb]),
  );
}

export function renderProcList(procs: Res<"irm.proc.list">["procs"]): string {
  if (procs.length === 0) return "No processes in system.";
  return table(
    [7, 20, 40, 9, 5],
    ["pid", "program", "names", "accepting", "flows"],
    procs.map((
      p,
    ) => [
      p.pid,
      p.prog,
      p.names.join(", "),
      p.accepting ? "yes" : "no",
      p.flows,
    ]),
  );
}
