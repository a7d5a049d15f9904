/**
 * Enrollment (OEP) messages and the layer configuration they carry
 * (spec/unicast.md 2.3, 2.4; proto/enroll.proto, proto/ipcp_config.proto,
 * proto/model.proto).
 *
 * One message per SDU on an enrollment flow: the enrollee sends
 * `EnrollReq{id}`, the enroller answers `EnrollResp{id, its wall clock,
 * response, conf}` with its own layer configuration (the DHT `peer` set to
 * the enroller's address), and the enrollee closes with `EnrollAck{id,
 * result}`. The configuration is also what a bootstrap starts from
 * (`defaultLayerConfig`) and what `checkUnicastConfig` vets before a member
 * starts its components with it.
 */
import { err, ok, type Result } from "../../lib/util/result.ts";
import {
  checkI32,
  checkI64,
  checkU32,
  checkU64,
  pbDecode,
  pbEncode,
  type PbFields,
  type PbObj,
  pbType,
} from "./pb.ts";

/** Length of an enrollment id (random bytes). */
export const ENROLL_ID_LEN = 8;
/** The largest enrollment message a C peer can read (its buffer). */
export const ENROLL_MAX_LEN = 1024;
/** The longest layer name. */
export const LAYER_NAME_MAX = 255;

/** ipcp_type of a unicast layer. */
export const IPCP_TYPE_UNICAST = 1;

/** Directory hash algorithms (dir_hash_algo). */
export const HASH_SHA3_224 = 0;
export const HASH_SHA3_256 = 1;
export const HASH_SHA3_384 = 2;
export const HASH_SHA3_512 = 3;

/** The hash length in bytes of a dir_hash_algo, undefined if unknown. */
export function hashLength(algo: number): number | undefined {
  return [28, 32, 48, 64][algo];
}

/** Policies. */
export const ROUTING_LINK_STATE = 0;
export const LS_SIMPLE = 0;
export const LS_LFA = 1;
export const LS_ECMP = 2;
export const DIR_DHT = 0;
export const ADDR_AUTH_FLAT = 0;
export const CONG_NONE = 0;
export const CONG_MB_ECN = 1;

export interface LayerInfo {
  /** at most LAYER_NAME_MAX bytes of UTF-8 */
  name: string;
  dirHashAlgo: number;
}

export interface LsConfig {
  pol: number;
  /** seconds */
  tRecalc: number;
  tUpdate: number;
  tTimeo: number;
}

export interface RoutingConfig {
  pol: number;
  /** present when pol is ROUTING_LINK_STATE */
  ls?: LsConfig;
}

export interface DtConfig {
  addrSize: number;
  eidSize: number;
  maxTtl: number;
  routing: RoutingConfig;
}

export interface DhtConfig {
  alpha: number;
  k: number;
  /** seconds */
  tExpire: number;
  tRefresh: number;
  tReplicate: number;
  /** the enroller's address in an enrollment response, 0 at bootstrap */
  peer: bigint;
}

export interface DirConfig {
  pol: number;
  /** present when pol is DIR_DHT */
  dht?: DhtConfig;
}

export interface UniConfig {
  dt: DtConfig;
  dir: DirConfig;
  addrAuthType: number;
  congAvoid: number;
}

/** ipcp_config_msg: a layer's configuration. */
export interface IpcpConfig {
  layerInfo: LayerInfo;
  ipcpType: number;
  /** present for a unicast layer */
  unicast?: UniConfig;
}

export interface EnrollReq {
  /** ENROLL_ID_LEN random bytes */
  id: Uint8Array;
}

export interface EnrollResp {
  /** the request's id */
  id: Uint8Array;
  /** the enroller's CLOCK_REALTIME at sending (i64 s, i32 ns) */
  tSec: bigint;
  tNsec: number;
  /** 0 = accepted, negative = refused */
  response: number;
  /** present when accepted */
  conf?: IpcpConfig;
}

export interface EnrollAck {
  id: Uint8Array;
  /** 0 = the enrollee is up, negative = it failed */
  result: number;
}

/** The defaults of a unicast layer (those of `irm ipcp bootstrap`). */
export function defaultUniConfig(): UniConfig {
  return {
    dt: {
      addrSize: 4,
      eidSize: 8,
      maxTtl: 60,
      routing: {
        pol: ROUTING_LINK_STATE,
        ls: { pol: LS_SIMPLE, tRecalc: 4, tUpdate: 15, tTimeo: 60 },
      },
    },
    dir: {
      pol: DIR_DHT,
      dht: {
        alpha: 3,
        k: 8,
        tExpire: 86400,
        tRefresh: 900,
        tReplicate: 900,
        peer: 0n,
      },
    },
    addrAuthType: ADDR_AUTH_FLAT,
    congAvoid: CONG_MB_ECN,
  };
}

/** A unicast layer `name` with the default configuration (SHA3-256). */
export function defaultLayerConfig(name: string): IpcpConfig {
  return {
    layerInfo: { name, dirHashAlgo: HASH_SHA3_256 },
    ipcpType: IPCP_TYPE_UNICAST,
    unicast: defaultUniConfig(),
  };
}

const REQ_MSG = pbType("enroll_req_msg");
const RESP_MSG = pbType("enroll_resp_msg");
const ACK_MSG = pbType("enroll_ack_msg");
const CONFIG_MSG = pbType("ipcp_config_msg");

const encoder = new TextEncoder();

function checkId(id: Uint8Array): void {
  if (id.length !== ENROLL_ID_LEN) {
    throw new RangeError(
      `enrollment id of ${id.length} bytes, not ${ENROLL_ID_LEN}`,
    );
  }
}

function checkConfig(c: IpcpConfig): void {
  const nameLen = encoder.encode(c.layerInfo.name).length;
  if (nameLen > LAYER_NAME_MAX) {
    throw new RangeError(
      `layer name of ${nameLen} bytes exceeds ${LAYER_NAME_MAX}`,
    );
  }
  checkU32("layerInfo.dirHashAlgo", c.layerInfo.dirHashAlgo);
  checkU32("ipcpType", c.ipcpType);
  const u = c.unicast;
  if (u === undefined) return;
  checkU32("dt.addrSize", u.dt.addrSize);
  checkU32("dt.eidSize", u.dt.eidSize);
  checkU32("dt.maxTtl", u.dt.maxTtl);
  checkU32("dt.routing.pol", u.dt.routing.pol);
  const ls = u.dt.routing.ls;
  if (ls !== undefined) {
    checkU32("ls.pol", ls.pol);
    checkU32("ls.tRecalc", ls.tRecalc);
    checkU32("ls.tUpdate", ls.tUpdate);
    checkU32("ls.tTimeo", ls.tTimeo);
  }
  checkU32("dir.pol", u.dir.pol);
  const dht = u.dir.dht;
  if (dht !== undefined) {
    checkU32("dht.alpha", dht.alpha);
    checkU32("dht.k", dht.k);
    checkU32("dht.tExpire", dht.tExpire);
    checkU32("dht.tRefresh", dht.tRefresh);
    checkU32("dht.tReplicate", dht.tReplicate);
    checkU64("dht.peer", dht.peer);
  }
  checkU32("addrAuthType", u.addrAuthType);
  checkU32("congAvoid", u.congAvoid);
}

function configFields(c: IpcpConfig): PbFields {
  const u = c.unicast;
  let unicast: PbFields | undefined;
  if (u !== undefined) {
    const ls = u.dt.routing.ls;
    const dht = u.dir.dht;
    unicast = {
      dt: {
        addr_size: u.dt.addrSize,
        eid_size: u.dt.eidSize,
        max_ttl: u.dt.maxTtl,
        routing: {
          pol: u.dt.routing.pol,
          ls: ls && {
            pol: ls.pol,
            t_recalc: ls.tRecalc,
            t_update: ls.tUpdate,
            t_timeo: ls.tTimeo,
          },
        },
      },
      dir: {
        pol: u.dir.pol,
        dht: dht && {
          alpha: dht.alpha,
          k: dht.k,
          t_expire: dht.tExpire,
          t_refresh: dht.tRefresh,
          t_replicate: dht.tReplicate,
          peer: dht.peer,
        },
      },
      addr_auth_type: u.addrAuthType,
      cong_avoid: u.congAvoid,
    };
  }
  return {
    layer_info: {
      name: c.layerInfo.name,
      dir_hash_algo: c.layerInfo.dirHashAlgo,
    },
    ipcp_type: c.ipcpType,
    unicast,
  };
}

function readConfig(m: PbObj): IpcpConfig {
  const li = m.msg("layer_info");
  const name = li.str("name");
  const nameLen = encoder.encode(name).length;
  if (nameLen > LAYER_NAME_MAX) {
    li.fail(`name of ${nameLen} bytes exceeds ${LAYER_NAME_MAX}`);
  }
  const c: IpcpConfig = {
    layerInfo: { name, dirHashAlgo: li.int("dir_hash_algo") },
    ipcpType: m.int("ipcp_type"),
  };
  const u = m.opt("unicast");
  if (u === undefined) return c;
  const dt = u.msg("dt");
  const routing = dt.msg("routing");
  const dir = u.msg("dir");
  const uni: UniConfig = {
    dt: {
      addrSize: dt.int("addr_size"),
      eidSize: dt.int("eid_size"),
      maxTtl: dt.int("max_ttl"),
      routing: { pol: routing.int("pol") },
    },
    dir: { pol: dir.int("pol") },
    addrAuthType: u.int("addr_auth_type"),
    congAvoid: u.int("cong_avoid"),
  };
  const ls = routing.opt("ls");
  if (ls !== undefined) {
    uni.dt.routing.ls = {
      pol: ls.int("pol"),
      tRecalc: ls.int("t_recalc"),
      tUpdate: ls.int("t_update"),
      tTimeo: ls.int("t_timeo"),
    };
  }
  const dht = dir.opt("dht");
  if (dht !== undefined) {
    uni.dir.dht = {
      alpha: dht.int("alpha"),
      k: dht.int("k"),
      tExpire: dht.int("t_expire"),
      tRefresh: dht.int("t_refresh"),
      tReplicate: dht.int("t_replicate"),
      peer: dht.long("peer"),
    };
  }
  c.unicast = uni;
  return c;
}

function readId(m: PbObj): Uint8Array {
  const id = m.bytes("id");
  if (id.length !== ENROLL_ID_LEN) {
    m.fail(`id of ${id.length} bytes, not ${ENROLL_ID_LEN}`);
  }
  return id;
}

function tooLong(what: string, len: number): Result<never> | undefined {
  if (len <= ENROLL_MAX_LEN) return undefined;
  return err(`${what} of ${len} bytes exceeds ${ENROLL_MAX_LEN} bytes`);
}

function checkedLength(what: string, out: Uint8Array): Uint8Array {
  if (out.length > ENROLL_MAX_LEN) {
    throw new RangeError(
      `${what} of ${out.length} bytes exceeds ${ENROLL_MAX_LEN} bytes`,
    );
  }
  return out;
}

/** Encodes a layer configuration alone (an ipcp_config_msg). */
export function encodeIpcpConfig(c: IpcpConfig): Uint8Array {
  checkConfig(c);
  return pbEncode(CONFIG_MSG, configFields(c));
}

/** Decodes an ipcp_config_msg. Never throws. */
export function decodeIpcpConfig(buf: Uint8Array): Result<IpcpConfig> {
  return pbDecode(CONFIG_MSG, buf, readConfig);
}

/** Encodes an enrollment request; throws a RangeError for an id not 8 bytes. */
export function encodeEnrollReq(r: EnrollReq): Uint8Array {
  checkId(r.id);
  return pbEncode(REQ_MSG, { id: r.id });
}

/**
 * Decodes an enrollment request. Never throws; an id of any length but 8
 * is an error (C's enroller refuses it too).
 */
export function decodeEnrollReq(buf: Uint8Array): Result<EnrollReq> {
  return tooLong("enrollment request", buf.length) ??
    pbDecode(REQ_MSG, buf, (m) => ({ id: readId(m) }));
}

/**
 * Encodes an enrollment response. Throws a RangeError for an id not 8
 * bytes, a value out of its field's range, a layer name over 255 bytes or a
 * message over ENROLL_MAX_LEN.
 */
export function encodeEnrollResp(r: EnrollResp): Uint8Array {
  checkId(r.id);
  checkI64("tSec", r.tSec);
  checkI32("tNsec", r.tNsec);
  checkI32("response", r.response);
  if (r.conf !== undefined) checkConfig(r.conf);
  return checkedLength(
    "enrollment response",
    pbEncode(RESP_MSG, respFields(r)),
  );
}

function respFields(r: EnrollResp): PbFields {
  return {
    id: r.id,
    t_sec: r.tSec,
    t_nsec: r.tNsec,
    response: r.response,
    conf: r.conf && configFields(r.conf),
  };
}

/**
 * Decodes an enrollment response. Never throws; an id of any length but 8
 * is an error (C does not check it; we do).
 */
export function decodeEnrollResp(buf: Uint8Array): Result<EnrollResp> {
  const bad = tooLong("enrollment response", buf.length);
  if (bad !== undefined) return bad;
  const r = pbDecode(RESP_MSG, buf, (m) => {
    const resp: EnrollResp = {
      id: readId(m),
      tSec: m.long("t_sec"),
      tNsec: m.int("t_nsec"),
      response: m.int("response"),
    };
    const conf = m.opt("conf");
    if (conf !== undefined) resp.conf = readConfig(conf);
    return resp;
  });
  if (!r.ok) return r;
  // canonically written back (negative varints take 10 bytes, invalid UTF-8
  // becomes U+FFFD) it must still fit a C peer's buffer
  return tooLong(
    "re-encoded enrollment response",
    pbEncode(RESP_MSG, respFields(r.value)).length,
  ) ?? r;
}

/** Encodes an enrollment ack; throws a RangeError for an id not 8 bytes. */
export function encodeEnrollAck(a: EnrollAck): Uint8Array {
  checkId(a.id);
  checkI32("result", a.result);
  return pbEncode(ACK_MSG, { id: a.id, result: a.result });
}

/** Decodes an enrollment ack. Never throws; an id not 8 bytes is an error. */
export function decodeEnrollAck(buf: Uint8Array): Result<EnrollAck> {
  return tooLong("enrollment ack", buf.length) ??
    pbDecode(ACK_MSG, buf, (m) => ({
      id: readId(m),
      result: m.int("result"),
    }));
}

/** A unicast layer's configuration, vetted (`checkUnicastConfig`). */
export interface UnicastLayer {
  name: string;
  dirHashAlgo: number;
  /** bytes of a name hash, DHT key and node id */
  hashLen: number;
  uni: UniConfig & {
    dt: DtConfig & { routing: RoutingConfig & { ls: LsConfig } };
    dir: DirConfig & { dht: DhtConfig };
  };
}

/**
 * Whether a member can run a unicast layer with `c` (as bootstrap input or
 * as an enrollment response's conf): the layer is unicast, every policy is
 * one there is (link state with simple, LFA or ECMP; DHT; flat addresses of
 * 4 bytes; no or mb-ecn congestion avoidance), the hash algorithm is known,
 * eids take 8 bytes (the only size a C member runs with) and the TTL fits
 * its byte (1..255).
 */
export function checkUnicastConfig(c: IpcpConfig): Result<UnicastLayer> {
  if (c.ipcpType !== IPCP_TYPE_UNICAST) {
    return err(`ipcp_type ${c.ipcpType} is not unicast`);
  }
  const hashLen = hashLength(c.layerInfo.dirHashAlgo);
  if (hashLen === undefined) {
    return err(`unknown directory hash algorithm ${c.layerInfo.dirHashAlgo}`);
  }
  const u = c.unicast;
  if (u === undefined) return err("no unicast configuration");
  const { dt, dir } = u;
  if (dt.addrSize !== 4) {
    return err(
      `Flat address policy mandates 4 byte addresses (addr_size ${dt.addrSize})`,
    );
  }
  if (dt.eidSize !== 8) {
    // a C member replaces any other size by 8: the layer would not agree
    return err(`eid_size ${dt.eidSize} is not 8`);
  }
  if (dt.maxTtl < 1 || dt.maxTtl > 255) {
    return err(`max_ttl ${dt.maxTtl} is not 1..255`);
  }
  const ls = dt.routing.ls;
  if (dt.routing.pol !== ROUTING_LINK_STATE || ls === undefined) {
    return err(`routing policy ${dt.routing.pol} without link-state settings`);
  }
  if (ls.pol !== LS_SIMPLE && ls.pol !== LS_LFA && ls.pol !== LS_ECMP) {
    return err(`unknown link-state policy ${ls.pol}`);
  }
  const dht = dir.dht;
  if (dir.pol !== DIR_DHT || dht === undefined) {
    return err(`directory policy ${dir.pol} without DHT settings`);
  }
  for (
    const [k, v] of [
      ["dht alpha", dht.alpha],
      ["dht k", dht.k],
      ["dht t_expire", dht.tExpire],
      ["dht t_refresh", dht.tRefresh],
      ["dht t_replicate", dht.tReplicate],
    ] as const
  ) {
    if (v < 1) return err(`${k} ${v} is not a positive number`);
  }
  // (link-state timers below 1 s are raised to 1 s by the routing core)
  if (u.addrAuthType !== ADDR_AUTH_FLAT) {
    return err(`unknown address authority ${u.addrAuthType}`);
  }
  if (u.congAvoid !== CONG_NONE && u.congAvoid !== CONG_MB_ECN) {
    return err(`unknown congestion avoidance ${u.congAvoid}`);
  }
  return ok({
    name: c.layerInfo.name,
    dirHashAlgo: c.layerInfo.dirHashAlgo,
    hashLen,
    uni: {
      ...u,
      dt: { ...dt, routing: { ...dt.routing, ls } },
      dir: { ...dir, dht },
    },
  });
}

// ---------------------------------------------------------------------------
// The exchange (spec/unicast.md 1.3, 2.3)

/** An enrollment N-1 flow as the exchange sees it: one message per SDU. */
export interface SduFlow {
  send(sdu: Uint8Array): void;
  /** The next SDU; rejects after `ms`, or when the flow ends. */
  recv(ms: number): Promise<Uint8Array>;
}

/**
 * How long the enrollee waits for the response: C's 1 s is its CEP
 * timeout left on the flow (spec 8); a busy enroller deserves longer.
 */
export const ENROLL_RESP_MS = 5000;
/** How long the enroller waits for the request, then for the ack (C: ever). */
export const ENROLL_SERVE_MS = 10_000;
/** Clocks further apart than this beyond the round trip get a warning. */
export const ENROLL_WARN_OFFSET_MS = 20;

/** The wall clock as C's timespec: seconds and nanoseconds. */
function timespec(ms: number): { tSec: bigint; tNsec: number } {
  const s = Math.floor(ms / 1000);
  return { tSec: BigInt(s), tNsec: Math.round((ms - s * 1000) * 1e6) };
}

/** The layer configuration an enroller hands out: `conf`, its DHT peer `addr`. */
export function configForEnrollee(conf: IpcpConfig, addr: bigint): IpcpConfig {
  const out = structuredClone(conf);
  const dht = out.unicast?.dir.dht;
  if (dht !== undefined) dht.peer = addr;
  return out;
}

/**
 * Serves one enrollment on `flow` (after the CEP exchange): reads the
 * request, answers with `conf` as configForEnrollee makes it, and waits for
 * the ack. Returns the enrollee's result (0: it is up); throws an Error
 * that says what went wrong (a timeout, a message that is not the next
 * one of the exchange).
 */
export async function serveEnrollment(
  flow: SduFlow,
  conf: IpcpConfig,
  addr: bigint,
  wallMs: () => number = Date.now,
  waitMs = ENROLL_SERVE_MS,
): Promise<number> {
  const req = decodeEnrollReq(await flow.recv(waitMs));
  if (!req.ok) throw new Error(`bad enrollment request: ${req.error}`);
  flow.send(encodeEnrollResp({
    id: req.value.id,
    ...timespec(wallMs()),
    response: 0,
    conf: configForEnrollee(conf, addr),
  }));
  const ack = decodeEnrollAck(await flow.recv(waitMs));
  if (!ack.ok) throw new Error(`bad enrollment ack: ${ack.error}`);
  if (!sameBytes(ack.value.id, req.value.id)) {
    // C only warns; the result is what counts
    throw new Error("the enrollment ack is for another enrollment");
  }
  return ack.value.result;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** What an enrollee learned from its enroller. */
export interface Enrolled {
  /** the configuration as received (the DHT peer is the enroller) */
  conf: IpcpConfig;
  layer: UnicastLayer;
  /** the enroller's clock minus ours at the middle of the round trip (ms) */
  offsetMs: number;
  rttMs: number;
}

/**
 * The enrollee's side up to the ack (after the CEP exchange): sends the
 * request with `id`, checks the response. The caller starts its member
 * with the result and then sends `encodeEnrollAck({ id, result })`.
 * Throws an Error that says why the enrollment failed.
 */
export async function requestEnrollment(
  flow: SduFlow,
  id: Uint8Array,
  wallMs: () => number = Date.now,
  waitMs = ENROLL_RESP_MS,
): Promise<Enrolled> {
  const sent = wallMs();
  flow.send(encodeEnrollReq({ id }));
  let bytes: Uint8Array;
  try {
    bytes = await flow.recv(waitMs);
  } catch (e) {
    throw new Error(
      `no enrollment response: ${e instanceof Error ? e.message : e}`,
    );
  }
  const got = wallMs();
  const r = decodeEnrollResp(bytes);
  if (!r.ok) throw new Error(`bad enrollment response: ${r.error}`);
  const resp = r.value;
  if (!sameBytes(resp.id, id)) {
    throw new Error("the enrollment response is for another enrollment");
  }
  if (resp.response < 0) {
    throw new Error(`the enroller refused (${resp.response})`);
  }
  if (resp.conf === undefined) {
    throw new Error("the enrollment response carries no configuration");
  }
  const layer = checkUnicastConfig(resp.conf);
  if (!layer.ok) throw new Error(`cannot run that layer: ${layer.error}`);
  const remote = Number(resp.tSec) * 1000 + resp.tNsec / 1e6;
  return {
    conf: resp.conf,
    layer: layer.value,
    offsetMs: remote - (sent + got) / 2,
    rttMs: got - sent,
  };
}
