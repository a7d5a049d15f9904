/**
 * The control protocol between the processes of a node: applications and
 * tools talk to the irmd, the irmd and its IPCPs talk to each other. Every
 * message is defined here once, with the schema that validates it on receipt.
 *
 * Frames on a control socket: a u32 big-endian length, then a JSON object:
 *   request      {"i": id, "m": method, "b": body}
 *   notification {"m": method, "b": body}          (no reply)
 *   reply        {"i": id, "r": body}
 *   error reply  {"i": id, "e": {"code", "message", "errno"?}}
 * Bytes travel as lowercase hex, 64-bit integers as decimal strings.
 * Control messages are never on the data path: that is lib/ipc/dataplane.ts.
 */
import {
  arr,
  bigintStr,
  bool,
  hex,
  type Infer,
  int,
  lit,
  obj,
  opt,
  type Schema,
  str,
} from "./schema.ts";
import { checkName, MAX_NAME_BYTES } from "../util/names.ts";
import { HASH_ALGOS, isHashLength } from "../wire/name_hash.ts";
import type { QosCubeName } from "../wire/udp_wire.ts";

/** Largest control frame; a larger one is refused and the connection closed. */
export const MAX_CTRL_FRAME = 1 << 20;

const U32 = int(0, 0xffff_ffff);
const PID = int(1, 0x7fff_ffff);
/** A name: 1 to 255 bytes of UTF-8. */
const nameStr: Schema<string> = {
  describe: "a name",
  parse(v, path) {
    if (typeof v !== "string") {
      return { ok: false, error: `${path}: expected a name (a string)` };
    }
    // At most 3 bytes of UTF-8 per UTF-16 unit: a short name needs no count.
    const why = v.length !== 0 && v.length * 3 <= MAX_NAME_BYTES
      ? undefined
      : checkName(v);
    return why === undefined
      ? { ok: true, value: v }
      : { ok: false, error: `${path}: ${why}` };
  },
};
const pathStr = str({ min: 1, max: 4096 });

export const QosSchema = obj({
  bandwidth: bigintStr(),
  delay: U32,
  loss: U32,
  ber: U32,
  maxGap: U32,
  timeout: U32,
  availability: int(0, 255),
  inOrder: int(0, 255),
});
export type QosSpec = Infer<typeof QosSchema>;

export const IPCP_TYPES = ["udp4", "udp6", "local", "unicast"] as const;
export type IpcpTypeName = typeof IPCP_TYPES[number];
const IpcpType = lit(...IPCP_TYPES);
/** A layer's name hash algorithm (lib/wire/name_hash.ts). */
const HashAlgo = lit(...HASH_ALGOS);
const HashBytes = hex({ max: 64 });
/** A name hash: the digest of one of those algorithms (16 to 64 bytes). */
const NameHash: Schema<Uint8Array> = {
  describe: "a name hash",
  parse(v, path) {
    const r = HashBytes.parse(v, path);
    if (!r.ok || isHashLength(r.value.length)) return r;
    return {
      ok: false,
      error:
        `${path}: a name hash of ${r.value.length} bytes (16, 28, 32, 48 or 64)`,
    };
  },
};
/** The largest maximum packet lifetime an IPCP may give its flows (ms). */
const MAX_MPL_MS = 3_600_000;
const LbSchema = lit("spill", "round-robin");

/**
 * The components of a unicast layer that an N-1 connection is for
 * (spec/unicast.md 1.2): data transfer and management.
 */
export const CONNECT_COMPONENTS = ["dt", "mgmt"] as const;
export type ConnectComponent = typeof CONNECT_COMPONENTS[number];
const Component = lit(...CONNECT_COMPONENTS);
/** The QoS cubes by name, as lib/wire/udp_wire.ts's QOS_CUBES has them. */
export const QOS_CUBE_NAMES = [
  "raw",
  "best",
  "voice",
  "video",
  "data",
] as const satisfies readonly QosCubeName[];
const QosCube = lit(...QOS_CUBE_NAMES);

/** What an application receives for a flow: where and how to attach its data. */
export const FlowGrant = obj({
  /** The flow's handle in its IPCP (also its endpoint id there). */
  handle: U32,
  /** Secret that proves to the IPCP that this process was given the flow. */
  token: hex({ len: 16 }),
  /** The IPCP's data socket. */
  path: pathStr,
  /** The name the flow was allocated to (client) or for (server). */
  name: nameStr,
  qos: QosSchema,
  /** Largest packet the flow carries. */
  mtu: int(1, 65535),
  /** The irmd's number for the flow, as in its log lines. */
  flowId: U32,
  /**
   * The maximum packet lifetime of the layer the flow is in (ms), for
   * FRCT's timers; absent from an IPCP that does not say.
   */
  mplMs: opt(int(1, MAX_MPL_MS)),
});
export type FlowGrant = Infer<typeof FlowGrant>;

const Empty = obj({});

/** A unicast member's address, in decimal (flat addresses are 32 bits). */
const Address = str({ max: 20 });

const IpcpInfo = obj({
  pid: PID,
  name: nameStr,
  type: IpcpType,
  layer: opt(nameStr),
  address: opt(Address),
});
const NameInfo = obj({ name: nameStr, lb: LbSchema });
const ProcInfo = obj({
  pid: PID,
  prog: str({ max: 255 }),
  // Bound names carry a " (bound)" mark.
  names: arr(str({ max: 512 }), 4096),
  accepting: bool,
  flows: int(0, 1 << 30),
});

/** The smallest UDP socket buffer one may ask for (bytes). */
export const SOCKET_BUFFER_MIN = 4096;
/** The largest (bytes): Linux doubles a request into an int, capped at INT_MAX / 2. */
export const SOCKET_BUFFER_MAX = 1 << 29;
/**
 * The UDP socket buffers an IPCP asks for unless told otherwise (bytes):
 * room for bursts of a few ms at several hundred Mb/s.
 */
export const DEFAULT_SOCKET_BUFFER = 4 << 20;

const SocketBuffer = int(SOCKET_BUFFER_MIN, SOCKET_BUFFER_MAX);

/** Link-state routing policies of a unicast layer (spec/unicast.md 2.4). */
export const UNICAST_ROUTING = ["link-state", "lfa", "ecmp"] as const;
/** Congestion avoidance policies of a unicast layer. */
export const UNICAST_CONGESTION = ["none", "mb-ecn"] as const;

/**
 * What a unicast layer is bootstrapped with beyond its layer and hash
 * (spec/unicast.md 2.4, 7.1): each field absent takes the default of 2.4.
 * The ranges are those of the configuration file (section 5); the IPCP
 * checks the combination (`checkUnicastConfig`).
 */
export const UnicastParams = obj({
  addrSize: opt(int(1, 8)),
  eidSize: opt(int(1, 8)),
  maxTtl: opt(int(1, 255)),
  addrAuth: opt(lit("flat")),
  directory: opt(lit("dht")),
  routing: opt(lit(...UNICAST_ROUTING)),
  lsTRecalc: opt(int(1, 0xffff_ffff)),
  lsTUpdate: opt(int(1, 0xffff_ffff)),
  lsTTimeo: opt(int(1, 0xffff_ffff)),
  dhtAlpha: opt(int(1, 10)),
  dhtK: opt(int(1, 20)),
  dhtTExpire: opt(int(10, 86400)),
  dhtTRefresh: opt(int(3, 3600)),
  dhtTReplicate: opt(int(3, 3600)),
  congestion: opt(lit(...UNICAST_CONGESTION)),
});
export type UnicastParams = Infer<typeof UnicastParams>;

/**
 * What an IPCP is bootstrapped with: the layer, and what its type needs
 * (UDP: `ip`, `port` and the rest; local: `hash`; unicast: `hash` and
 * `unicast`). Each IPCP checks that it was given its own and nothing else.
 */
const BootstrapParams = {
  layer: nameStr,
  ip: opt(str({ min: 1, max: 64 })),
  port: opt(int(1, 65535)),
  /** The layer's name hash (local layers; UDP layers always use MD5). */
  hash: opt(HashAlgo),
  dns: opt(str({ min: 1, max: 80 })),
  hosts: opt(pathStr),
  zone: opt(str({ min: 1, max: 255 })),
  /** SO_RCVBUF of the UDP socket (default DEFAULT_SOCKET_BUFFER). */
  rcvbuf: opt(SocketBuffer),
  /** SO_SNDBUF of the UDP socket (default DEFAULT_SOCKET_BUFFER). */
  sndbuf: opt(SocketBuffer),
  /** A unicast layer's settings (spec/unicast.md 2.4). */
  unicast: opt(UnicastParams),
};

/** The bootstrap parameters that only a UDP IPCP takes. */
export const UDP_BOOTSTRAP_KEYS = [
  "ip",
  "port",
  "dns",
  "hosts",
  "zone",
  "rcvbuf",
  "sndbuf",
] as const;

/**
 * The UDP-only parameters given in a bootstrap request (the irmd's to an
 * IPCP, or irm's to the irmd), in that order.
 */
export function udpKeysIn(
  r: Partial<Record<typeof UDP_BOOTSTRAP_KEYS[number], unknown>>,
): string[] {
  return UDP_BOOTSTRAP_KEYS.filter((k) => r[k] !== undefined);
}

const COUNT = int(0, Number.MAX_SAFE_INTEGER);

/**
 * An IPCP's open flows, the packets it dropped, by reason, and (once
 * bootstrapped) the sizes of its UDP socket's buffers as the kernel gave
 * them (Linux reports twice what was asked).
 */
const IpcpCounters = {
  flows: int(0, 1 << 30),
  dropped: obj({
    short: COUNT,
    /** Longer than the layer's largest datagram. */
    oversized: COUNT,
    badMgmt: COUNT,
    /** Management frames that came faster than the IPCP took them. */
    mgmtOverflow: COUNT,
    unknownEid: COUNT,
    wrongSource: COUNT,
    slowReader: COUNT,
  }),
  socket: opt(obj({ rcvbuf: COUNT, sndbuf: COUNT })),
};

function method<Q, R>(
  req: Schema<Q>,
  res: Schema<R>,
): { req: Schema<Q>; res: Schema<R> } {
  return { req, res };
}

export const METHODS = {
  // ---- every client of the irmd, first message on a connection
  "hello": method(
    obj({
      role: lit("app", "ipcp", "tool"),
      pid: PID,
      /** Applications: the program name (basename), e.g. "oping". */
      prog: opt(str({ min: 1, max: 255 })),
      /** IPCPs: their name. */
      name: opt(nameStr),
    }),
    obj({ irmdPid: PID }),
  ),

  // ---- application -> irmd
  "flow.alloc": method(
    obj({ name: nameStr, qos: QosSchema, timeoutMs: int(1, 3_600_000) }),
    FlowGrant,
  ),
  "flow.accept": method(
    obj({ timeoutMs: opt(int(1, 0x7fff_ffff)) }),
    FlowGrant,
  ),

  // ---- irm -> irmd
  "irm.ipcp.create": method(
    obj({ name: nameStr, type: IpcpType }),
    obj({ pid: PID }),
  ),
  "irm.ipcp.destroy": method(obj({ name: nameStr }), Empty),
  "irm.ipcp.bootstrap": method(
    obj({
      name: nameStr,
      type: opt(IpcpType),
      ...BootstrapParams,
      ip: opt(str({ max: 64 })),
      /**
       * Bind the IPCP to its own name and its layer's name once
       * bootstrapped (unicast IPCPs only).
       */
      autobind: opt(bool),
    }),
    obj({ pid: PID }),
  ),
  /**
   * Enrolls an IPCP (created first, unicast by default, if there is none of
   * that name) with `dst`, a member of the layer or the layer's name (`layer`
   * when `dst` is absent); with both, the layer joined must be `layer`.
   */
  "irm.ipcp.enroll": method(
    obj({
      name: nameStr,
      dst: opt(nameStr),
      layer: opt(nameStr),
      type: opt(IpcpType),
      /** Bind the IPCP to its own name and its layer's name once enrolled. */
      autobind: bool,
    }),
    obj({ layer: nameStr }),
  ),
  /**
   * Connects an IPCP to the member `dst` of its layer: the one component
   * given, else mgmt then dt. `qos` is the dt flow's cube (default raw);
   * mgmt flows are always raw.
   */
  "irm.ipcp.connect": method(
    obj({
      name: nameStr,
      dst: nameStr,
      component: opt(Component),
      qos: opt(QosCube),
    }),
    Empty,
  ),
  /** Undoes irm.ipcp.connect: the one component given, else dt then mgmt. */
  "irm.ipcp.disconnect": method(
    obj({ name: nameStr, dst: nameStr, component: opt(Component) }),
    Empty,
  ),
  "irm.ipcp.list": method(
    obj({ name: opt(nameStr), type: opt(IpcpType), layer: opt(nameStr) }),
    obj({ ipcps: arr(IpcpInfo, 4096) }),
  ),
  "irm.bind.program": method(
    obj({
      prog: pathStr,
      name: nameStr,
      auto: bool,
      args: arr(str({ max: 4096 }), 256),
    }),
    Empty,
  ),
  "irm.unbind.program": method(obj({ prog: pathStr, name: nameStr }), Empty),
  "irm.bind.process": method(obj({ pid: PID, name: nameStr }), Empty),
  "irm.unbind.process": method(obj({ pid: PID, name: nameStr }), Empty),
  "irm.bind.ipcp": method(obj({ ipcp: nameStr, name: nameStr }), Empty),
  "irm.unbind.ipcp": method(obj({ ipcp: nameStr, name: nameStr }), Empty),
  "irm.name.create": method(obj({ name: nameStr, lb: LbSchema }), Empty),
  "irm.name.destroy": method(obj({ name: nameStr }), Empty),
  "irm.name.register": method(
    obj({ name: nameStr, ipcps: arr(nameStr), layers: arr(nameStr) }),
    Empty,
  ),
  "irm.name.unregister": method(
    obj({ name: nameStr, ipcps: arr(nameStr), layers: arr(nameStr) }),
    Empty,
  ),
  "irm.name.list": method(Empty, obj({ names: arr(NameInfo, 1 << 16) })),
  "irm.ipcp.stats": method(
    obj({ name: opt(nameStr) }),
    obj({
      ipcps: arr(
        obj({
          pid: PID,
          name: nameStr,
          type: opt(IpcpType),
          ...IpcpCounters,
        }),
        4096,
      ),
    }),
  ),
  "irm.proc.list": method(
    Empty,
    obj({ procs: arr(ProcInfo, 1 << 16), flows: int(0, 1 << 30) }),
  ),

  // ---- irmd -> IPCP
  /**
   * The reply says how the layer hashes names (MD5 when absent) and the
   * maximum packet lifetime of its flows, which the irmd passes on in
   * their grants.
   */
  "ipcp.bootstrap": method(
    obj(BootstrapParams),
    obj({
      hash: opt(HashAlgo),
      mplMs: opt(int(1, MAX_MPL_MS)),
      /** a unicast member's address */
      address: opt(Address),
    }),
  ),
  /**
   * Joins the layer of `dst` (a member's name or the layer's, in a layer
   * below); the reply says what was learned: the layer's name, how it
   * hashes names and the maximum packet lifetime of its flows.
   */
  "ipcp.enroll": method(
    obj({ dst: nameStr }),
    obj({
      layer: nameStr,
      hash: HashAlgo,
      mplMs: int(1, MAX_MPL_MS),
      address: opt(Address),
    }),
  ),
  /** Opens the N-1 flow of one component to the member `dst`. */
  "ipcp.connect": method(
    obj({ dst: nameStr, component: Component, qos: QosSchema }),
    Empty,
  ),
  /** Closes the N-1 flow of one component to the member `dst`. */
  "ipcp.disconnect": method(
    obj({ dst: nameStr, component: Component }),
    Empty,
  ),
  "ipcp.reg": method(obj({ name: nameStr, hash: NameHash }), Empty),
  "ipcp.unreg": method(obj({ name: nameStr, hash: NameHash }), Empty),
  "ipcp.flow.alloc": method(
    obj({
      name: nameStr,
      hash: NameHash,
      qos: QosSchema,
      oap: hex({ max: 8192 }),
      timeoutMs: int(1, 3_600_000),
    }),
    obj({
      handle: U32,
      token: hex({ len: 16 }),
      path: pathStr,
      mtu: int(1, 65535),
      oap: hex({ max: 8192 }),
    }),
  ),
  "ipcp.flow.dealloc": method(obj({ handle: U32 }), Empty),
  "ipcp.stats": method(
    Empty,
    obj({
      ...IpcpCounters,
    }),
  ),

  // ---- IPCP -> irmd
  /** A peer asks for a flow; the reply decides. An error reply refuses it. */
  "flow.req.arr": method(
    obj({
      handle: U32,
      token: hex({ len: 16 }),
      path: pathStr,
      mtu: int(1, 65535),
      hash: NameHash,
      qos: QosSchema,
      oap: hex({ max: 8192 }),
    }),
    obj({ oap: hex({ max: 8192 }) }),
  ),
  /** A flow ended in the IPCP (notification). */
  "flow.ended": method(obj({ handle: U32, reason: str({ max: 512 }) }), Empty),
} as const;

export type Methods = typeof METHODS;
export type Method = keyof Methods;
export type Req<M extends Method> = Infer<Methods[M]["req"]>;
export type Res<M extends Method> = Infer<Methods[M]["res"]>;

export function isMethod(m: string): m is Method {
  return Object.hasOwn(METHODS, m);
}
