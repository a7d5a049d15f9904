/**
 * ipcpd-udp4 / ipcpd-udp6: an IPC process that makes a layer out of UDP.
 *
 * One UDP socket on ip:port carries management frames (eid 0) and data
 * (eid-prefixed), exactly as lib/wire/udp_wire.ts encodes them. Applications
 * attach their flows over the IPCP's data socket (lib/ipc/dataplane.ts); the
 * irmd drives the IPCP over a control connection (lib/ipc/proto.ts) and decides
 * on every incoming flow request.
 *
 * Two threads. This one, the control thread, answers the irmd, allocates
 * flows (FLOW_REQ and FLOW_REPLY, which it sends itself), resolves names,
 * keeps the DNS records, and decides on liveness (keepalives, the peer
 * timeout). The data path (ipcpd/udp/datapath.ts, in a Worker) owns the
 * applications' connections and moves every data packet between them and
 * the UDP socket; it hands this thread the management frames and tells it
 * which flows saw traffic. No data packet passes through this thread.
 */
import type { CtrlConn } from "../../lib/ipc/ctrl.ts";
import { ERRNO, OuroborosError, refusalCause } from "../../lib/util/errors.ts";
import { ipFamily } from "../../lib/util/ip.ts";
import { Logger } from "../../lib/util/log.ts";
import {
  DEFAULT_SOCKET_BUFFER,
  type QosSpec,
  type Req,
  type Res,
} from "../../lib/ipc/proto.ts";
import { hexString as toHex } from "../../lib/ipc/schema.ts";
import { Deadlines } from "../../lib/ipc/deadlines.ts";
import { NAME_HASH_LEN } from "../../lib/wire/name_hash.ts";
import {
  decodeMgmt,
  DEFAULT_PORT,
  encodeFlowReply,
  encodeFlowReq,
  encodeKeepalive,
  FLOW_REPLY,
  MAX_PAYLOAD_V4,
  MAX_PAYLOAD_V6,
} from "../../lib/wire/udp_wire.ts";
import {
  bindAddr,
  type BufferKind,
  closeFd,
  describe,
  EADDRINUSE,
  EADDRNOTAVAIL,
  packAddr,
  sendTo,
  setBuffer,
  type SysFailure,
  udpSocket,
} from "../../lib/sys/mod.ts";
import { HostsFileError, Resolver, type ResolverOptions } from "./resolve.ts";
import { DdnsRegistrar, DnsClient, DnsError } from "./ddns.ts";
import { DEFAULT_DNS_PORT, parseDnsAddress } from "../../lib/util/ip.ts";
import { Op } from "../common/dp_msg.ts";
import {
  ATTACH_DEADLINE_MS,
  closeDataPath,
  type DataPath,
  dataPathTrouble,
  dataSocketPath,
  EidSource,
  openDataPath,
  randomToken,
} from "../common/ipcp_flows.ts";

const ipcpLog = new Logger("ipcpd/ipcp");
const log = new Logger("ipcpd/udp");

/** How often keepalives, liveness and attach deadlines are checked. */
export const TICK_MS = 250;
/**
 * Flow requests the irmd is deciding on at once, at most; more are refused
 * at once (EBUSY), so that a flood of requests costs bounded memory.
 */
export const MAX_FLOW_REQS = 256;
/**
 * The maximum packet lifetime this layer gives its flows (ms), for FRCT's
 * timers: what C's UDP IPCP gives them.
 */
export const UDP_MPL_MS = 5000;
/** Peers whose canonical address and packed socket address are kept. */
export const PEER_CACHE = 1024;

type FlowState = "pending" | "allocated";

interface Peer {
  hostname: string;
  port: number;
}

interface UdpFlow {
  eid: number;
  peerEid: number;
  peer: Peer;
  /** The peer's socket address, packed for sendto. */
  addr: Uint8Array;
  token: Uint8Array;
  state: FlowState;
  timeoutMs: number;
  /** As the data path last reported them (Date.now() times). */
  lastRecv: number;
  lastSend: number;
  created: number;
  /** When it was allocated (Date.now()), 0 while pending. */
  allocatedAt: number;
  /** The application attached (the data path said so). */
  attached: boolean;
}

interface PendingAlloc {
  eid: number;
  peer: Peer;
  resolve: (reply: { dEid: number; oap: Uint8Array }) => void;
  reject: (e: OuroborosError) => void;
}

/** What this thread counted itself (the data path counts the rest). */
export interface Counters {
  badMgmt: number;
}

/** Canonical text of an IP address, so that addresses compare as strings. */
export function canonicalIp(ip: string): string {
  if (ipFamily(ip) === 6) {
    try {
      return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
    } catch {
      return ip;
    }
  }
  return ip;
}

/** Refuses a name hash that is not an MD5 (a UDP layer's hash). */
function checkHash(hash: Uint8Array): void {
  if (hash.length !== NAME_HASH_LEN) {
    throw new OuroborosError(
      "invalid",
      `a name hash of ${hash.length} bytes: UDP layers hash names with MD5 (16 bytes)`,
    );
  }
}

export class UdpIpcp {
  readonly family: 4 | 6;
  readonly mtu: number;
  #ctrl: CtrlConn | undefined;
  /** The UDP socket (a descriptor of lib/sys), once bootstrapped. */
  #udpFd = -1;
  #data: DataPath | undefined;
  readonly dataPath: string;
  #flows = new Map<number, UdpFlow>();
  /** Peers by address and port as given, canonical and packed (#peerOf). */
  #peers = new Map<string, { peer: Peer; addr: Uint8Array }>();
  #allocs = new Map<number, PendingAlloc>();
  /** Their timeouts, on one timer. */
  #allocTimeouts = new Deadlines<number>();
  #eids = new EidSource();
  #resolver: Resolver | undefined;
  /** With `dns=`: keeps the layer's DNS server in step with our names. */
  #ddns: DdnsRegistrar | undefined;
  #ip = "";
  #port = 0;
  #layer: string | undefined;
  #regs = new Map<string, string>();
  #tick: ReturnType<typeof setInterval> | undefined;
  #stopped = false;
  /** Flow requests waiting for the irmd's decision. */
  #flowReqs = 0;
  /** The socket buffers the kernel gave (read back), once bootstrapped. */
  #buffers: { rcvbuf: number; sndbuf: number } | undefined;
  readonly counters: Counters = { badMgmt: 0 };
  /** Called when the data path fails and the IPCP cannot go on. */
  onFatal: (why: string) => void = () => {};

  constructor(readonly name: string, family: 4 | 6, readonly rundir: string) {
    this.family = family;
    this.mtu = family === 4 ? MAX_PAYLOAD_V4 : MAX_PAYLOAD_V6;
    this.dataPath = dataSocketPath(rundir);
  }

  attachCtrl(ctrl: CtrlConn): void {
    this.#ctrl = ctrl;
  }

  get layer(): string | undefined {
    return this.#layer;
  }

  /** The data path's thread id, once it runs. */
  get datapathThread(): Promise<number> {
    return this.#data?.dp.ready ?? Promise.reject(new Error("no data path"));
  }

  /**
   * Listens on the data socket and starts the data path, which accepts the
   * applications (before the irmd is told we exist).
   */
  startDataSocket(): void {
    this.#data = openDataPath({
      kind: "udp",
      family: this.family,
      mtu: this.mtu,
      path: this.dataPath,
      log,
      events: {
        mgmt: (frames) => {
          for (const f of frames) {
            try {
              this.#onMgmt(f.data, { hostname: f.host, port: f.port });
            } catch (e) {
              log.error(
                `Dropped a management frame that broke its handler: ${
                  e instanceof Error ? e.stack : e
                }`,
              );
            }
          }
        },
        attached: (eid) => {
          const flow = this.#flows.get(eid);
          if (flow !== undefined) flow.attached = true;
        },
        detached: (eid, reason) => {
          const flow = this.#flows.get(eid);
          // The data path has dropped the flow and closed its connection
          // already: its Remove needs no wakeup.
          if (flow !== undefined) this.#endFlow(flow, reason, true, false);
        },
        activity: (a) => this.#onActivity(a),
        ...dataPathTrouble(log, () => this.dataPath, (e) => this.onFatal(e)),
      },
    });
  }

  // ------------------------------------------------------------ control

  bootstrap(b: Req<"ipcp.bootstrap">): Res<"ipcp.bootstrap"> {
    if (this.#udpFd >= 0) {
      throw new OuroborosError(
        "exists",
        `IPCP ${this.name} is already bootstrapped`,
      );
    }
    ipcpLog.info("Bootstrapping...");
    if (b.ip === undefined || (b.hash ?? "MD5") !== "MD5") {
      ipcpLog.info("Finished bootstrapping: -1.");
      throw new OuroborosError(
        "invalid",
        b.ip === undefined
          ? `a UDP IPCP needs an ip address to bootstrap`
          : `UDP layers hash names with MD5, not ${b.hash}`,
      );
    }
    const ip = b.ip;
    const port = b.port ?? DEFAULT_PORT;
    if (ipFamily(ip) !== this.family) {
      ipcpLog.info("Finished bootstrapping: -1.");
      throw new OuroborosError(
        "invalid",
        `${ip} is not an IPv${this.family} address (ipcpd-udp${this.family})`,
      );
    }
    const dnsServer = b.dns === undefined
      ? undefined
      : parseDnsAddress(b.dns, this.family);
    if (dnsServer !== undefined && !dnsServer.ok) {
      ipcpLog.info("Finished bootstrapping: -1.");
      throw new OuroborosError("invalid", dnsServer.error);
    }
    const where = this.family === 6 ? `[${ip}]:${port}` : `${ip}:${port}`;
    const failed = (f: SysFailure): never => {
      ipcpLog.info("Finished bootstrapping: -1.");
      const why = f.errno === EADDRINUSE
        ? "address already in use"
        : f.errno === EADDRNOTAVAIL
        ? "address not available on this host"
        : describe(f);
      log.error(`Failed to bind to ${where}: ${why}.`);
      throw new OuroborosError("failed", `cannot bind ${where}: ${why}`);
    };
    const sock = udpSocket(this.family === 6 ? "inet6" : "inet", {
      nonBlocking: true,
    });
    if (!sock.ok) return failed(sock);
    const fd = sock.value;
    const bound = bindAddr(fd, ip, port);
    if (!bound.ok) {
      closeFd(fd);
      return failed(bound);
    }
    this.#udpFd = fd;
    this.#ip = ip;
    this.#port = port;
    this.#layer = b.layer;
    this.#buffers = {
      rcvbuf: this.#setBuffer("rcv", b.rcvbuf ?? DEFAULT_SOCKET_BUFFER),
      sndbuf: this.#setBuffer("snd", b.sndbuf ?? DEFAULT_SOCKET_BUFFER),
    };
    this.#data?.dp.send({ op: Op.Socket, fd });
    const ropts: ResolverOptions = { family: this.family };
    if (b.hosts !== undefined) ropts.hostsFile = b.hosts;
    const zone = b.zone ?? ".";
    if (dnsServer !== undefined) {
      const client = new DnsClient(dnsServer.value);
      ropts.dns = client;
      ropts.zone = zone;
      this.#ddns = new DdnsRegistrar({
        client,
        zone,
        family: this.family,
        address: ip,
      });
    }
    this.#resolver = new Resolver(ropts);
    log.debug(`Bootstrapped IPCP over UDP with pid ${Deno.pid}.`);
    log.debug(`Bound to IP address ${ip}.`);
    log.debug(`Using port ${port}.`);
    log.debug(
      `UDP socket buffers: receive ${this.#buffers.rcvbuf} bytes, send ${this.#buffers.sndbuf} bytes (asked for ${
        b.rcvbuf ?? DEFAULT_SOCKET_BUFFER
      } and ${
        b.sndbuf ?? DEFAULT_SOCKET_BUFFER
      }; Linux reports twice what it was asked).`,
    );
    if (dnsServer !== undefined) {
      log.debug(`DNS server address is ${dnsServer.value.host}.`);
      if (dnsServer.value.port !== DEFAULT_DNS_PORT) {
        log.debug(`Using DNS server port ${dnsServer.value.port}.`);
      }
      log.debug(`Using DNS zone "${zone}".`);
      if (/^(0\.0\.0\.0|::)$/.test(ip)) {
        log.warn(
          `Bound to the unspecified address ${ip}: other nodes cannot reach names published with it in DNS.`,
        );
      }
    } else log.debug("DNS server not in use.");
    if (b.hosts !== undefined) log.debug(`Resolving names from ${b.hosts}.`);
    ipcpLog.info("Finished bootstrapping: 0.");
    this.#tick = setInterval(() => this.#onTick(), TICK_MS);
    return { hash: "MD5", mplMs: UDP_MPL_MS };
  }

  /**
   * Asks for a socket buffer of `bytes` (beyond the system's limit when
   * allowed: SO_RCVBUFFORCE/SO_SNDBUFFORCE, for root) and returns what the
   * kernel gave; warns when it gave less.
   */
  #setBuffer(which: BufferKind, bytes: number): number {
    const fd = this.#udpFd;
    const what = which === "rcv" ? "receive" : "send";
    let got = setBuffer(fd, which, bytes, true);
    if (!got.ok) got = setBuffer(fd, which, bytes, false);
    if (!got.ok) {
      log.warn(
        `Cannot set the UDP socket's ${what} buffer to ${bytes} bytes: ${
          describe(got)
        }.`,
      );
      return 0;
    }
    // Linux doubles the request (its bookkeeping) and reports that; what it
    // gives without CAP_NET_ADMIN is twice net.core.rmem_max (wmem_max).
    if (got.value < 2 * bytes) {
      const key = which === "rcv" ? "rmem_max" : "wmem_max";
      log.warn(
        `The UDP socket's ${what} buffer is ${got.value} bytes, not the ${
          2 * bytes
        } asked for (${bytes}, doubled by Linux): net.core.${key} (${
          Math.floor(got.value / 2)
        }) caps it for a process without CAP_NET_ADMIN. Raise it (sysctl -w net.core.${key}=${bytes}) or run the irmd as root; until then packets may be lost at high rates.`,
      );
    }
    return got.value;
  }

  /**
   * Registers a name. With `dns=`, also adds its record on the DNS server;
   * when that fails, the registration still holds (the irmd stays up and a
   * configuration still loads): the failure is logged and the update
   * retried in the background until the server takes it.
   */
  async register(name: string, hash: Uint8Array): Promise<void> {
    this.#bootstrapped();
    checkHash(hash);
    this.#regs.set(toHex(hash), name);
    log.debug(`Registered ${toHex(hash)} (${name}).`);
    await this.#ddns?.add(toHex(hash), name);
  }

  /** Unregisters a name; with `dns=`, deletes its record (retried likewise). */
  async unregister(name: string, hash: Uint8Array): Promise<void> {
    this.#regs.delete(toHex(hash));
    log.debug(`Unregistered ${toHex(hash)} (${name}).`);
    await this.#ddns?.remove(toHex(hash), name);
  }

  async #resolve(name: string, hash: Uint8Array): Promise<string> {
    const resolver = this.#bootstrapped();
    const key = toHex(hash);
    let addr: string | undefined;
    try {
      addr = await resolver.resolve(key);
    } catch (e) {
      if (!(e instanceof DnsError) && !(e instanceof HostsFileError)) throw e;
      log.warn(`Cannot resolve ${name} (${key}): ${e.message}.`);
      throw new OuroborosError(
        "unreachable",
        `cannot resolve ${name} (${key}) in layer ${this.#layer}: ${e.message}`,
      );
    }
    if (addr === undefined) {
      throw new OuroborosError(
        "unknown_name",
        `${name} (${key}) does not resolve in layer ${this.#layer} (${resolver.describe()})`,
      );
    }
    return addr;
  }

  #bootstrapped(): Resolver {
    if (this.#resolver === undefined || this.#udpFd < 0) {
      throw new OuroborosError(
        "invalid",
        `IPCP ${this.name} is not bootstrapped`,
      );
    }
    return this.#resolver;
  }

  /** Client side: sends a FLOW_REQ and waits for the FLOW_REPLY. */
  async allocate(r: Req<"ipcp.flow.alloc">): Promise<Res<"ipcp.flow.alloc">> {
    // FRCT and the CRC run end to end in the applications: this layer
    // carries their packets as they are, whatever the QoS.
    this.#bootstrapped();
    checkHash(r.hash);
    const ip = await this.#resolve(r.name, r.hash);
    const { peer, addr } = this.#peerOf(ip, this.#port);
    const eid = this.#freshEid();
    const flow = this.#newFlow(eid, 0, peer, addr, r.qos, "pending");
    const frame = encodeFlowReq({
      sEid: eid,
      qos: r.qos,
      hash: r.hash,
      oap: r.oap,
    });
    const reply = new Promise<{ dEid: number; oap: Uint8Array }>(
      (resolve, reject) => {
        this.#allocs.set(eid, { eid, peer, resolve, reject });
        this.#allocTimeouts.add(eid, r.timeoutMs, () =>
          reject(
            new OuroborosError(
              "timed_out",
              `no reply from ${peer.hostname}:${peer.port} for ${r.name} within ${r.timeoutMs} ms`,
            ),
          ));
      },
    );
    try {
      this.#send(frame, addr, peer);
      const got = await reply;
      if (this.#flows.get(eid) !== flow) {
        throw new OuroborosError("flow_down", "the IPCP is stopping");
      }
      flow.peerEid = got.dEid;
      // No application can be attached to the flow yet (it learns of the
      // flow from our answer, sent after the record): the data path reads
      // the record on the wakeup of whatever comes next for the flow.
      this.#setAllocated(flow, false);
      flow.lastRecv = Date.now();
      log.debug(
        `Flow allocated: eid ${eid} <-> ${peer.hostname}:${peer.port} eid ${got.dEid}.`,
      );
      return {
        handle: eid,
        token: flow.token,
        path: this.dataPath,
        mtu: this.mtu,
        oap: got.oap,
      };
    } catch (e) {
      this.#endFlow(flow, "allocation failed", false);
      if (e instanceof OuroborosError) throw e;
      const why = e instanceof Error ? e.message : String(e);
      throw new OuroborosError(
        "unreachable",
        `cannot send to ${peer.hostname}:${peer.port}: ${why}`,
      );
    } finally {
      this.#allocTimeouts.delete(eid);
      this.#allocs.delete(eid);
    }
  }

  /** The irmd ends a flow (its application went away, or allocation failed). */
  deallocate(handle: number): void {
    const flow = this.#flows.get(handle);
    if (flow !== undefined) this.#endFlow(flow, "deallocated", false);
  }

  stats(): Res<"ipcp.stats"> {
    const d = this.#data?.dp.counters();
    const res: Res<"ipcp.stats"> = {
      flows: this.#flows.size,
      dropped: {
        short: d?.short ?? 0,
        oversized: d?.oversized ?? 0,
        badMgmt: this.counters.badMgmt + (d?.badMgmt ?? 0),
        mgmtOverflow: d?.mgmtOverflow ?? 0,
        unknownEid: d?.unknownEid ?? 0,
        wrongSource: d?.wrongSource ?? 0,
        slowReader: d?.slowReader ?? 0,
      },
    };
    if (this.#buffers !== undefined) res.socket = { ...this.#buffers };
    return res;
  }

  // ------------------------------------------------------------ flows

  #freshEid(): number {
    return this.#eids.fresh((eid) => this.#flows.has(eid));
  }

  /**
   * A peer (its address canonical) and its socket address packed for
   * sendto, made once per peer: every flow to or from it uses the same
   * (neither is ever modified).
   */
  #peerOf(ip: string, port: number): { peer: Peer; addr: Uint8Array } {
    const key = `${ip} ${port}`;
    let p = this.#peers.get(key);
    if (p === undefined) {
      const peer: Peer = { hostname: canonicalIp(ip), port };
      const a = packAddr(peer.hostname, peer.port);
      if (!a.ok) {
        throw new OuroborosError(
          "unreachable",
          `cannot reach ${peer.hostname}:${peer.port}: ${describe(a)}`,
        );
      }
      if (this.#peers.size >= PEER_CACHE) this.#peers.clear();
      p = { peer, addr: a.value };
      this.#peers.set(key, p);
    }
    return p;
  }

  #newFlow(
    eid: number,
    peerEid: number,
    peer: Peer,
    addr: Uint8Array,
    qos: QosSpec,
    state: FlowState,
  ): UdpFlow {
    const now = Date.now();
    const flow: UdpFlow = {
      eid,
      peerEid,
      peer,
      addr,
      token: randomToken(),
      state,
      timeoutMs: qos.timeout,
      lastRecv: now,
      lastSend: now,
      created: now,
      allocatedAt: 0,
      attached: false,
    };
    this.#flows.set(eid, flow);
    // The data path knows the flow before the irmd can hand it out: it
    // reads the command before the application's connection, or a
    // datagram for the flow, wakes it (no wakeup of its own needed).
    this.#data?.dp.send({
      op: Op.Add,
      eid,
      peerEid,
      allocated: state === "allocated",
      token: flow.token,
      addr,
    }, false);
    return flow;
  }

  /**
   * A pending flow is allocated: its application has ATTACH_DEADLINE_MS to
   * attach (checked on each tick). `wake: false` leaves the data path's
   * record for its next wakeup (see Datapath.send), for a flow that no
   * application can have attached to yet.
   */
  #setAllocated(flow: UdpFlow, wake: boolean): void {
    flow.state = "allocated";
    flow.allocatedAt = Date.now();
    this.#data?.dp.send({
      op: Op.Allocated,
      eid: flow.eid,
      peerEid: flow.peerEid,
    }, wake);
  }

  /**
   * Removes a flow; tells the irmd when it did not ask for it. `wake:
   * false` when the data path ended the flow itself (its record only keeps
   * the two threads in step).
   */
  #endFlow(
    flow: UdpFlow,
    reason: string,
    notify: boolean,
    wake = true,
  ): void {
    if (this.#flows.get(flow.eid) !== flow) return;
    this.#flows.delete(flow.eid);
    this.#data?.dp.send({ op: Op.Remove, eid: flow.eid }, wake);
    log.debug(`Flow ${flow.eid} ended: ${reason}.`);
    if (notify) this.#ctrl?.notify("flow.ended", { handle: flow.eid, reason });
  }

  #onActivity(a: Float64Array): void {
    for (let i = 0; i + 2 < a.length; i += 3) {
      const flow = this.#flows.get(a[i]!);
      if (flow === undefined) continue;
      if (a[i + 1]! > flow.lastRecv) flow.lastRecv = a[i + 1]!;
      if (a[i + 2]! > flow.lastSend) flow.lastSend = a[i + 2]!;
    }
  }

  // ------------------------------------------------------------ UDP side

  /**
   * One management datagram (or keepalive) out, from this thread: the
   * socket is the data path's too, and the kernel keeps each datagram whole.
   */
  #send(frame: Uint8Array, addr: Uint8Array, peer: Peer): void {
    if (this.#udpFd < 0) {
      throw new OuroborosError("invalid", "not bootstrapped");
    }
    const r = sendTo(this.#udpFd, frame, addr);
    if (r.ok) return;
    const why = r.wouldBlock ? "the socket's send buffer is full" : describe(r);
    throw new OuroborosError(
      "unreachable",
      `cannot send to ${peer.hostname}:${peer.port}: ${why}`,
    );
  }

  #onMgmt(d: Uint8Array, from: Peer): void {
    const m = decodeMgmt(d);
    if (!m.ok) {
      this.counters.badMgmt++;
      log.debug(
        `Dropped a management frame from ${from.hostname}:${from.port}: ${m.error}.`,
      );
      return;
    }
    if (m.value.code === FLOW_REPLY) {
      const r = m.value.reply;
      const pending = this.#allocs.get(r.sEid);
      if (
        pending === undefined || from.port !== pending.peer.port ||
        canonicalIp(from.hostname) !== pending.peer.hostname
      ) {
        this.counters.badMgmt++;
        log.debug(
          `Dropped a FLOW_REPLY for eid ${r.sEid} that matches no request.`,
        );
        return;
      }
      this.#allocs.delete(r.sEid);
      if (r.response !== 0) {
        pending.reject(
          new OuroborosError(
            "refused",
            `the peer refused the flow: ${refusalCause(r.response)}`,
            r.response,
          ),
        );
      } else {
        pending.resolve({ dEid: r.dEid, oap: r.oap.slice() });
      }
      return;
    }
    void this.#onFlowReq(m.value.req, from);
  }

  async #onFlowReq(
    req: { sEid: number; qos: QosSpec; hash: Uint8Array; oap: Uint8Array },
    from: Peer,
  ): Promise<void> {
    const { peer, addr } = this.#peerOf(from.hostname, from.port);
    const hashHex = toHex(req.hash);
    const refuse = (errno: number, why: string, quiet = false) => {
      log[quiet ? "debug" : "info"](
        `Refused flow request for ${hashHex} from ${peer.hostname}:${peer.port}: ${why}.`,
      );
      try {
        this.#send(
          encodeFlowReply({
            sEid: req.sEid,
            dEid: 0,
            response: -errno,
            oap: new Uint8Array(0),
          }),
          addr,
          peer,
        );
      } catch { /* the refusal is lost with the request */ }
    };
    const ctrl = this.#ctrl;
    if (ctrl === undefined) {
      refuse(ERRNO.EIO, "not connected to the irmd");
      return;
    }
    if (this.#flowReqs >= MAX_FLOW_REQS) {
      refuse(
        ERRNO.EBUSY,
        `${MAX_FLOW_REQS} flow requests are waiting for the irmd already`,
        true,
      );
      return;
    }
    const eid = this.#freshEid();
    const flow = this.#newFlow(eid, req.sEid, peer, addr, req.qos, "pending");
    let oap: Uint8Array;
    this.#flowReqs++;
    try {
      const res = await ctrl.request("flow.req.arr", {
        handle: eid,
        token: flow.token,
        path: this.dataPath,
        mtu: this.mtu,
        hash: req.hash.slice(),
        qos: req.qos,
        oap: req.oap.slice(),
      }, 30_000);
      oap = res.oap;
    } catch (e) {
      this.#endFlow(flow, "refused", false);
      const errno = e instanceof OuroborosError && e.errno !== undefined
        ? Math.abs(e.errno)
        : ERRNO.ECONNREFUSED;
      refuse(errno, e instanceof Error ? e.message : String(e));
      return;
    } finally {
      this.#flowReqs--;
    }
    if (this.#flows.get(eid) !== flow) {
      // Ended meanwhile (the accepting process died): refuse after all.
      refuse(ERRNO.ECONNREFUSED, "the accepting process went away");
      return;
    }
    try {
      this.#send(
        encodeFlowReply({ sEid: req.sEid, dEid: eid, response: 0, oap }),
        addr,
        peer,
      );
    } catch (e) {
      this.#endFlow(
        flow,
        `cannot answer: ${e instanceof Error ? e.message : e}`,
        true,
      );
      return;
    }
    flow.lastSend = Date.now();
    // The application may have attached already (the irmd has handed it
    // the flow): the data path answers it once it reads the record.
    this.#setAllocated(flow, true);
    log.debug(
      `Flow accepted: eid ${eid} <-> ${peer.hostname}:${peer.port} eid ${req.sEid}.`,
    );
  }

  #onTick(): void {
    const now = Date.now();
    for (const flow of this.#flows.values()) {
      if (flow.state !== "allocated") continue;
      if (!flow.attached && now - flow.allocatedAt >= ATTACH_DEADLINE_MS) {
        this.#endFlow(flow, "no application attached in time", true);
        continue;
      }
      if (flow.timeoutMs === 0) continue;
      if (now - flow.lastRecv >= flow.timeoutMs) {
        log.info(
          `Flow ${flow.eid} timed out: nothing from its peer for ${flow.timeoutMs} ms.`,
        );
        this.#endFlow(flow, "peer timed out", true);
        continue;
      }
      if (now - flow.lastSend >= flow.timeoutMs / 4) {
        flow.lastSend = now;
        try {
          this.#send(encodeKeepalive(flow.peerEid), flow.addr, flow.peer);
        } catch { /* the next tick tries again */ }
      }
    }
  }

  // ------------------------------------------------------------ shutdown

  /**
   * Ends every flow, stops the data path, closes the sockets, and deletes
   * our DNS records (bounded).
   */
  async stop(): Promise<void> {
    if (this.#stopped) return await this.#ddns?.close();
    this.#stopped = true;
    if (this.#tick !== undefined) clearInterval(this.#tick);
    for (const flow of [...this.#flows.values()]) {
      this.#endFlow(flow, "IPCP stopping", false);
    }
    for (const a of this.#allocs.values()) {
      a.reject(new OuroborosError("flow_down", "the IPCP is stopping"));
    }
    this.#allocs.clear();
    this.#allocTimeouts.clear();
    await closeDataPath(this.#data, this.dataPath);
    this.#data = undefined;
    if (this.#udpFd >= 0) closeFd(this.#udpFd);
    this.#udpFd = -1;
    await this.#ddns?.close();
  }
}
