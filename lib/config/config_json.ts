/**
 * A parsed configuration as JSON: what `irmd --check --json` prints, and
 * what the irmd reads back when it has its configuration file parsed by that
 * short-lived child (so the daemon itself never loads the TOML parser).
 */
import type {
  Config,
  IpcpConfig,
  LoadBalance,
  LocalIpcpConfig,
  NameConfig,
  UdpIpcpConfig,
  UnicastIpcpConfig,
} from "./config.ts";
import { err, ok, type Result } from "../util/result.ts";
import {
  SOCKET_BUFFER_MAX,
  SOCKET_BUFFER_MIN,
  UnicastParams,
} from "../ipc/proto.ts";
import { SHA3_ALGOS } from "../wire/name_hash.ts";

/** The JSON text of a configuration (an autostart-less program is `null`). */
export function configToJson(cfg: Config): string {
  return JSON.stringify({
    file: cfg.file,
    names: cfg.names.map((n) => ({ ...n, args: n.args.map((a) => a ?? null) })),
    ipcps: cfg.ipcps,
  });
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isStrings(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((s) => typeof s === "string");
}

function nameFrom(v: unknown): NameConfig | undefined {
  if (!isObj(v) || typeof v.name !== "string" || !isStrings(v.progs)) {
    return undefined;
  }
  if (!Array.isArray(v.args) || v.args.length !== v.progs.length) {
    return undefined;
  }
  const args: (string | undefined)[] = [];
  for (const a of v.args) {
    if (a !== null && typeof a !== "string") return undefined;
    args.push(a ?? undefined);
  }
  const lb = v.lb;
  if (lb !== "spill" && lb !== "round-robin") return undefined;
  return { name: v.name, progs: v.progs, args, lb: lb satisfies LoadBalance };
}

const OPTIONAL_TEXT = ["layer", "dns", "hosts", "zone"] as const;
const OPTIONAL_SIZES = ["rcvbuf", "sndbuf"] as const;

function localFrom(v: Obj): LocalIpcpConfig | undefined {
  const hash = SHA3_ALGOS.find((a) => a === v.hash);
  if (
    typeof v.name !== "string" || hash === undefined || !isStrings(v.reg) ||
    typeof v.autobind !== "boolean" ||
    (v.layer !== undefined && typeof v.layer !== "string")
  ) {
    return undefined;
  }
  const out: LocalIpcpConfig = {
    type: "local",
    name: v.name,
    hash,
    reg: v.reg,
    autobind: v.autobind,
  };
  if (typeof v.layer === "string") out.layer = v.layer;
  return out;
}

function unicastFrom(v: Obj): UnicastIpcpConfig | undefined {
  const hash = SHA3_ALGOS.find((a) => a === v.hash);
  const params = UnicastParams.parse(v.unicast, "unicast");
  if (
    typeof v.name !== "string" || hash === undefined || !isStrings(v.reg) ||
    typeof v.autobind !== "boolean" || !params.ok || !isStrings(v.conn) ||
    (v.layer !== undefined && typeof v.layer !== "string") ||
    (v.enrol !== undefined && typeof v.enrol !== "string")
  ) {
    return undefined;
  }
  const out: UnicastIpcpConfig = {
    type: "unicast",
    name: v.name,
    hash,
    unicast: params.value,
    reg: v.reg,
    autobind: v.autobind,
    conn: v.conn,
  };
  if (typeof v.layer === "string") out.layer = v.layer;
  if (typeof v.enrol === "string") out.enrol = v.enrol;
  return out;
}

function ipcpFrom(v: unknown): IpcpConfig | undefined {
  if (!isObj(v)) return undefined;
  if (v.type === "local") return localFrom(v);
  if (v.type === "unicast") return unicastFrom(v);
  const type = v.type;
  if (type !== "udp4" && type !== "udp6") return undefined;
  const port = v.port;
  if (
    typeof v.name !== "string" || typeof v.ip !== "string" ||
    typeof port !== "number" || !Number.isInteger(port) || port < 1 ||
    port > 65535 || !isStrings(v.reg)
  ) {
    return undefined;
  }
  const out: UdpIpcpConfig = {
    type: type satisfies UdpIpcpConfig["type"],
    name: v.name,
    ip: v.ip,
    port,
    reg: v.reg,
  };
  for (const key of OPTIONAL_TEXT) {
    const x = v[key];
    if (x === undefined) continue;
    if (typeof x !== "string") return undefined;
    out[key] = x;
  }
  for (const key of OPTIONAL_SIZES) {
    const x = v[key];
    if (x === undefined) continue;
    if (
      typeof x !== "number" || !Number.isInteger(x) ||
      x < SOCKET_BUFFER_MIN || x > SOCKET_BUFFER_MAX
    ) return undefined;
    out[key] = x;
  }
  return out;
}

/** Reads back what {@link configToJson} wrote; anything else is an error. */
export function configFromJson(text: string): Result<Config> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return err("the configuration parser's output is not JSON");
  }
  const bad = err<Config>(
    "the configuration parser's output is not a configuration",
  );
  if (
    !isObj(v) || typeof v.file !== "string" || !Array.isArray(v.names) ||
    !Array.isArray(v.ipcps)
  ) {
    return bad;
  }
  const names: NameConfig[] = [];
  for (const n of v.names) {
    const name = nameFrom(n);
    if (name === undefined) return bad;
    names.push(name);
  }
  const ipcps: IpcpConfig[] = [];
  for (const c of v.ipcps) {
    const ipcp = ipcpFrom(c);
    if (ipcp === undefined) return bad;
    ipcps.push(ipcp);
  }
  return ok({ file: v.file, names, ipcps });
}
