/**
 * ipcpd-udp4 / ipcpd-udp6: an IPC process that makes a layer out of UDP.
 *
 * One UDP socket on ip:port carries management frames (eid 0) and data
 * (eid-prefixed), exactly as lib/wire/udp_wire.ts encodes them. Applications
 * attach their flows over the IPCP's data socket (lib/ipc/dataplane.ts); the
 * irmd drives the IPCP over a control connection (lib/ipc/proto.ts) and decides
 * on every incoming flow request.
 */
import type { CtrlConn } from "../../lib/ipc/ctrl.ts";
import {
  decodeAttach,
  encodeStatus,
  sameToken,
} from "../../lib/ipc/dataplane.ts";
import { ERRNO, OuroborosError, refusalCause } from "../../lib/util/errors.ts";
import {
  FrameReader,
  FrameTooLarge,
  FrameWriter,
  putU32,
  writeAll,
} from "../../lib/ipc/framing.ts";
import { ipFamily } from "../../lib/util/ip.ts";
import { Logger } from "../../lib/util/log.ts";
import type { QosSpec, Req, Res } from "../../lib/ipc/proto.ts";
import {
  acceptLoop,
  ipcpSocketPath,
  listenUnix,
  removeQuietly,
} from "../../lib/ipc/rundir.ts";
import { toHex } from "../../lib/wire/hex.ts";
import {
  decodeMgmt,
  encodeFlowReply,
  encodeFlowReq,
  encodeKeepalive,
  FLOW_REPLY,
  MAX_PAYLOAD_V4,
  MAX_PAYLOAD_V6,
} from "../../lib/wire/udp_wire.ts";
import { HostsFileError, Resolver, type ResolverOptions } from "./resolve.ts";
import { DdnsRegistrar, DnsClient, DnsError } from "./ddns.ts";
import { DEFAULT_DNS_PORT, parseDnsAddress } from "../../lib/util/ip.ts";

const ipcpLog = new Logger("ipcpd/ipcp");
const log = new Logger("ipcpd/udp");

/** How long an allocated flow waits for its application to attach. */
export const ATTACH_DEADLINE_MS = 10_000;
/** How long an attaching application may take to send its attach frame. */
export const ATTACH_HELLO_MS = 5_000;
/** Packets kept for a flow whose application has not attached yet. */
export const PRE_ATTACH_QUEUE = 256;
/** Bytes queued towards a slow application before packets are dropped. */
export const APP_QUEUE_BYTES = 1 << 20;
/** How often keepalives and liveness are checked. */
export const TICK_MS = 250;

type FlowState = "pending" | "allocated";

interface Peer {
  transport: "udp";
  hostname: string;
  port: number;
}

interface UdpFlow {
  eid: number;
  peerEid: number;
  peer: Peer;
  token: Uint8Array;
  state: FlowState;
  timeoutMs: number;
  lastRecv: number;
  lastSend: number;
  created: number;
  app: { conn: Deno.UnixConn; writer: FrameWriter } | undefined;
  early: Uint8Array[];
  waiters: (() => void)[];
}

interface PendingAlloc {
  eid: number;
  peer: Peer;
  resolve: (reply: { dEid: number; oap: Uint8Array }) => void;
  reject: (e: OuroborosError) => void;
}

export interface Counters {
  short: number;
  badMgmt: number;
  unknownEid: number;
  wrongSource: number;
  slowReader: number;
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

function randomToken(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(16));
}

export class UdpIpcp {
  readonly family: 4 | 6;
  readonly mtu: number;
  #ctrl: CtrlConn | undefined;
  #sock: Deno.DatagramConn | undefined;
  #dataListener: Deno.UnixListener | undefined;
  readonly dataPath: string;
  #flows = new Map<number, UdpFlow>();
  #allocs = new Map<number, PendingAlloc>();
  #nextEid: number;
  #resolver: Resolver | undefined;
  /** With `dns=`: keeps the layer's DNS server in step with our names. */
  #ddns: DdnsRegistrar | undefined;
  #ip = "";
  #port = 0;
  #layer: string | undefined;
  #regs = new Map<string, string>();
  #tick: ReturnType<typeof setInterval> | undefined;
  #stopped = false;
  readonly counters: Counters = {
    short: 0,
    badMgmt: 0,
    unknownEid: 0,
    wrongSource: 0,
    slowReader: 0,
  };

  constructor(readonly name: string, family: 4 | 6, readonly rundir: string) {
    this.family = family;
    this.mtu = family === 4 ? MAX_PAYLOAD_V4 : MAX_PAYLOAD_V6;
    this.dataPath = ipcpSocketPath(rundir, Deno.pid);
    // Endpoint ids are never reused while this process lives: a fresh one
    // per flow, from a random start, so stale packets never reach a new flow.
    this.#nextEid = 64 + Math.floor(Math.random() * 0x4000_0000);
  }

  attachCtrl(ctrl: CtrlConn): void {
    this.#ctrl = ctrl;
  }

  get layer(): string | undefined {
    return this.#layer;
  }

  /** Listens on the data socket (before the irmd is told we exist). */
  startDataSocket(): void {
    removeQuietly(this.dataPath);
    this.#dataListener = listenUnix(this.dataPath);
    void this.#acceptLoop(this.#dataListener);
  }

  // ------------------------------------------------------------ control

  bootstrap(b: Req<"ipcp.bootstrap">): Res<"ipcp.bootstrap"> {
    if (this.#sock !== undefined) {
      throw new OuroborosError(
        "exists",
        `IPCP ${this.name} is already bootstrapped`,
      );
    }
    ipcpLog.info("Bootstrapping...");
    if (ipFamily(b.ip) !== this.family) {
      ipcpLog.info("Finished bootstrapping: -1.");
      throw new OuroborosError(
        "invalid",
        `${b.ip} is not an IPv${this.family} address (ipcpd-udp${this.family})`,
      );
    }
    const dnsServer = b.dns === undefined
      ? undefined
      : parseDnsAddress(b.dns, this.family);
    if (dnsServer !== undefined && !dnsServer.ok) {
      ipcpLog.info("Finished bootstrapping: -1.");
      throw new OuroborosError("invalid", dnsServer.error);
    }
    let sock: Deno.DatagramConn;
    try {
      sock = Deno.listenDatagram({
        transport: "udp",
        hostname: b.ip,
        port: b.port,
      });
    } catch (e) {
      ipcpLog.info("Finished bootstrapping: -1.");
      const why = e instanceof Deno.errors.AddrInUse
        ? "address already in use"
        : e instanceof Deno.errors.AddrNotAvailable
        ? "address not available on this host"
        : e instanceof Error
        ? e.message
        : String(e);
      const where = this.family === 6
        ? `[${b.ip}]:${b.port}`
        : `${b.ip}:${b.port}`;
      log.error(`Failed to bind to ${where}: ${why}.`);
      throw new OuroborosError("failed", `cannot bind ${where}: ${why}`);
    }
    this.#sock = sock;
    this.#ip = b.ip;
    this.#port = b.port;
    this.#layer = b.layer;
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
        address: b.ip,
      });
    }
    this.#resolver = new Resolver(ropts);
    log.debug(`Bootstrapped IPCP over UDP with pid ${Deno.pid}.`);
    log.debug(`Bound to IP address ${b.ip}.`);
    log.debug(`Using port ${b.port}.`);
    if (dnsServer !== undefined) {
      log.debug(`DNS server address is ${dnsServer.value.host}.`);
      if (dnsServer.value.port !== DEFAULT_DNS_PORT) {
        log.debug(`Using DNS server port ${dnsServer.value.port}.`);
      }
      log.debug(`Using DNS zone "${zone}".`);
      if (/^(0\.0\.0\.0|::)$/.test(b.ip)) {
        log.warn(
          `Bound to the unspecified address ${b.ip}: other nodes cannot reach names published with it in DNS.`,
        );
      }
    } else log.debug("DNS server not in use.");
    if (b.hosts !== undefined) log.debug(`Resolving names from ${b.hosts}.`);
    ipcpLog.info("Finished bootstrapping: 0.");
    void this.#receiveLoop(sock);
    this.#tick = setInterval(() => this.#onTick(), TICK_MS);
    return {};
  }

  /**
   * Registers a name. With `dns=`, also adds its record on the DNS server;
   * when that fails, the registration still holds (the irmd stays up and a
   * configuration still loads): the failure is logged and the update
   * retried in the background until the server takes it.
   */
  async register(name: string, hash: Uint8Array): Promise<void> {
    this.#bootstrapped();
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
    if (this.#resolver === undefined || this.#sock === undefined) {
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
    const ip = await this.#resolve(r.name, r.hash);
    const peer: Peer = {
      transport: "udp",
      hostname: canonicalIp(ip),
      port: this.#port,
    };
    const eid = this.#freshEid();
    const flow = this.#newFlow(eid, 0, peer, r.qos, "pending");
    const frame = encodeFlowReq({
      sEid: eid,
      qos: r.qos,
      hash: r.hash,
      oap: r.oap,
    });
    const reply = new Promise<{ dEid: number; oap: Uint8Array }>(
      (resolve, reject) => {
        this.#allocs.set(eid, { eid, peer, resolve, reject });
      },
    );
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(
          new OuroborosError(
            "timed_out",
            `no reply from ${peer.hostname}:${peer.port} for ${r.name} within ${r.timeoutMs} ms`,
          ),
        );
      }, r.timeoutMs);
    });
    try {
      await this.#send(frame, peer);
      const got = await Promise.race([reply, timeout]);
      flow.peerEid = got.dEid;
      flow.state = "allocated";
      flow.lastRecv = Date.now();
      this.#armAttachDeadline(flow);
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
      this.#flows.delete(eid);
      if (e instanceof OuroborosError) throw e;
      const why = e instanceof Error ? e.message : String(e);
      throw new OuroborosError(
        "unreachable",
        `cannot send to ${peer.hostname}:${peer.port}: ${why}`,
      );
    } finally {
      clearTimeout(timer);
      this.#allocs.delete(eid);
    }
  }

  /** The irmd ends a flow (its application went away, or allocation failed). */
  deallocate(handle: number): void {
    const flow = this.#flows.get(handle);
    if (flow !== undefined) this.#endFlow(flow, "deallocated", false);
  }

  stats(): Res<"ipcp.stats"> {
    return { flows: this.#flows.size, dropped: { ...this.counters } };
  }

  // ------------------------------------------------------------ flows

  #freshEid(): number {
    for (;;) {
      const eid = this.#nextEid;
      this.#nextEid = this.#nextEid >= 0xffff_fff0 ? 64 : this.#nextEid + 1;
      if (!this.#flows.has(eid)) return eid;
    }
  }

  #newFlow(
    eid: number,
    peerEid: number,
    peer: Peer,
    qos: QosSpec,
    state: FlowState,
  ): UdpFlow {
    const now = Date.now();
    const flow: UdpFlow = {
      eid,
      peerEid,
      peer,
      token: randomToken(),
      state,
      timeoutMs: qos.timeout,
      lastRecv: now,
      lastSend: now,
      created: now,
      app: undefined,
      early: [],
      waiters: [],
    };
    this.#flows.set(eid, flow);
    return flow;
  }

  #armAttachDeadline(flow: UdpFlow): void {
    const t = setTimeout(() => {
      if (this.#flows.get(flow.eid) === flow && flow.app === undefined) {
        this.#endFlow(flow, "no application attached in time", true);
      }
    }, ATTACH_DEADLINE_MS);
    Deno.unrefTimer(t);
  }

  #setAllocated(flow: UdpFlow): void {
    flow.state = "allocated";
    const w = flow.waiters;
    flow.waiters = [];
    for (const f of w) f();
  }

  /** Removes a flow; tells the irmd when it did not ask for it. */
  #endFlow(flow: UdpFlow, reason: string, notify: boolean): void {
    if (this.#flows.get(flow.eid) !== flow) return;
    this.#flows.delete(flow.eid);
    const w = flow.waiters;
    flow.waiters = [];
    for (const f of w) f();
    if (flow.app !== undefined) {
      flow.app.writer.close();
      try {
        flow.app.conn.close();
      } catch { /* closed */ }
    }
    log.debug(`Flow ${flow.eid} ended: ${reason}.`);
    if (notify) this.#ctrl?.notify("flow.ended", { handle: flow.eid, reason });
  }

  // ------------------------------------------------------------ UDP side

  /** One datagram out (no extra promise: the data path calls this per packet). */
  #send(frame: Uint8Array, peer: Peer): Promise<number> {
    const sock = this.#sock;
    if (sock === undefined) {
      return Promise.reject(
        new OuroborosError("invalid", "not bootstrapped"),
      );
    }
    return sock.send(frame, peer);
  }

  /**
   * Datagrams in. Data for applications is queued without a write per
   * packet (FrameWriter.pushDeferred); the queued writes start when the
   * socket has nothing more to read (the next receive does not complete
   * at once), or after RX_BATCH packets. A burst thus costs one write, and
   * so one wakeup of the application, per flow.
   */
  async #receiveLoop(sock: Deno.DatagramConn): Promise<void> {
    /** Packets between forced writes, even while more keep coming. */
    const RX_BATCH = 64;
    const buf = new Uint8Array(65536);
    /** A packet this long after the previous one is written at once. */
    const RX_GAP_MS = 0.05;
    let lastArrival = 0;
    const dirty = new Set<FrameWriter>();
    let received = 0;
    let batch = 0;
    const kick = () => {
      for (const w of dirty) w.kick();
      dirty.clear();
      batch = 0;
    };
    // "Is the socket empty?", asked two microtasks after a receive: one
    // that completes at once has resumed the loop by then. One question at
    // a time, with no allocation per packet.
    let checking = false;
    let askedAt = 0;
    const check = () => {
      if (received !== askedAt) {
        askedAt = received; // the loop went on: ask about its new receive
        queueMicrotask(hop);
        return;
      }
      checking = false;
      if (dirty.size > 0) kick();
    };
    const hop = () => queueMicrotask(check);
    for (;;) {
      let dgram: Uint8Array;
      let addr: Deno.Addr;
      try {
        const next = sock.receive(buf);
        if (dirty.size > 0) {
          if (batch >= RX_BATCH) kick();
          else if (!checking) {
            checking = true;
            askedAt = received;
            queueMicrotask(hop);
          }
        }
        [dgram, addr] = await next;
        received++;
        batch++;
      } catch (e) {
        if (this.#stopped) return;
        if (
          e instanceof Deno.errors.BadResource ||
          e instanceof Deno.errors.Interrupted
        ) return;
        // ICMP errors surface here on some systems; they are not fatal.
        log.debug(`UDP receive: ${e instanceof Error ? e.message : e}`);
        continue;
      }
      try {
        const w = this.#onDatagram(dgram, addr as Deno.NetAddr);
        if (w !== undefined) {
          // The first packet after a pause goes to its application at once
          // (latency); packets that follow it closely wait for the batch.
          const now = performance.now();
          if (now - lastArrival > RX_GAP_MS) w.kick();
          else dirty.add(w);
          lastArrival = now;
        }
      } catch (e) {
        log.error(
          `Dropped a datagram that broke its handler: ${
            e instanceof Error ? e.stack : e
          }`,
        );
      }
    }
  }

  /** Handles one datagram; returns the writer that now has a packet to write. */
  #onDatagram(d: Uint8Array, from: Deno.NetAddr): FrameWriter | undefined {
    if (d.length < 4) {
      this.counters.short++;
      log.debug(
        `Dropped a ${d.length}-byte datagram from ${from.hostname}:${from.port}.`,
      );
      return;
    }
    const eid = ((d[0]! << 24) | (d[1]! << 16) | (d[2]! << 8) | d[3]!) >>> 0;
    if (eid === 0) {
      this.#onMgmt(d, from);
      return;
    }
    const flow = this.#flows.get(eid);
    if (flow === undefined || flow.state !== "allocated") {
      this.counters.unknownEid++;
      return;
    }
    if (
      from.port !== flow.peer.port ||
      (from.hostname !== flow.peer.hostname &&
        canonicalIp(from.hostname) !== flow.peer.hostname)
    ) {
      this.counters.wrongSource++;
      return;
    }
    flow.lastRecv = Date.now();
    if (d.length === 4) return; // keepalive
    if (flow.app !== undefined) {
      const writer = flow.app.writer;
      if (writer.pushDeferred(d, 4)) return writer;
      if (!writer.closed) this.counters.slowReader++;
    } else if (flow.early.length < PRE_ATTACH_QUEUE) {
      flow.early.push(d.slice(4));
    } else {
      this.counters.slowReader++;
    }
  }

  #onMgmt(d: Uint8Array, from: Deno.NetAddr): void {
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
    from: Deno.NetAddr,
  ): Promise<void> {
    const peer: Peer = {
      transport: "udp",
      hostname: canonicalIp(from.hostname),
      port: from.port,
    };
    const hashHex = toHex(req.hash);
    const refuse = async (errno: number, why: string) => {
      log.info(
        `Refused flow request for ${hashHex} from ${peer.hostname}:${peer.port}: ${why}.`,
      );
      await this.#send(
        encodeFlowReply({
          sEid: req.sEid,
          dEid: 0,
          response: -errno,
          oap: new Uint8Array(0),
        }),
        peer,
      )
        .catch(() => {});
    };
    const ctrl = this.#ctrl;
    if (ctrl === undefined) {
      await refuse(ERRNO.EIO, "not connected to the irmd");
      return;
    }
    const eid = this.#freshEid();
    const flow = this.#newFlow(eid, req.sEid, peer, req.qos, "pending");
    let oap: Uint8Array;
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
      await refuse(errno, e instanceof Error ? e.message : String(e));
      return;
    }
    if (this.#flows.get(eid) !== flow) {
      // Ended meanwhile (the accepting process died): refuse after all.
      await refuse(ERRNO.ECONNREFUSED, "the accepting process went away");
      return;
    }
    try {
      await this.#send(
        encodeFlowReply({ sEid: req.sEid, dEid: eid, response: 0, oap }),
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
    this.#setAllocated(flow);
    this.#armAttachDeadline(flow);
    log.debug(
      `Flow accepted: eid ${eid} <-> ${peer.hostname}:${peer.port} eid ${req.sEid}.`,
    );
  }

  #onTick(): void {
    const now = Date.now();
    for (const flow of this.#flows.values()) {
      if (flow.state !== "allocated" || flow.timeoutMs === 0) continue;
      if (now - flow.lastRecv >= flow.timeoutMs) {
        log.info(
          `Flow ${flow.eid} timed out: nothing from its peer for ${flow.timeoutMs} ms.`,
        );
        this.#endFlow(flow, "peer timed out", true);
        continue;
      }
      if (now - flow.lastSend >= flow.timeoutMs / 4) {
        flow.lastSend = now;
        this.#send(encodeKeepalive(flow.peerEid), flow.peer).catch(() => {});
      }
    }
  }

  // ------------------------------------------------------------ app side

  #acceptLoop(listener: Deno.UnixListener): Promise<void> {
    return acceptLoop(
      listener,
      (conn) => void this.#serveApp(conn),
      (e) =>
        log.error(
          `Cannot accept applications on ${this.dataPath}: ${
            e instanceof Error ? e.message : e
          }; trying again.`,
        ),
      (n) =>
        log.info(
          `Accepting applications again (${n} failed tries).`,
        ),
    );
  }

  async #serveApp(conn: Deno.UnixConn): Promise<void> {
    const reader = new FrameReader(conn, this.mtu);
    let flow: UdpFlow | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const first = await Promise.race([
        reader.next(),
        new Promise<null>((r) =>
          timer = setTimeout(() => r(null), ATTACH_HELLO_MS)
        ),
      ]);
      clearTimeout(timer);
      const attach = first === null
        ? undefined
        : decodeAttach(first.subarray(4));
      flow = attach?.ok ? this.#flows.get(attach.value.handle) : undefined;
      if (
        attach === undefined || !attach.ok || flow === undefined ||
        !sameToken(flow.token, attach.value.token) || flow.app !== undefined
      ) {
        await this.#status(conn, -ERRNO.EPERM).catch(() => {});
        conn.close();
        return;
      }
      if (flow.state === "pending") {
        await new Promise<void>((r) => flow!.waiters.push(r));
        if (this.#flows.get(flow.eid) !== flow) {
          throw new Error("flow ended before attach");
        }
      }
      await this.#status(conn, 0);
      const writer = new FrameWriter(conn, APP_QUEUE_BYTES, true);
      flow.app = { conn, writer };
      for (const p of flow.early) writer.push(p);
      flow.early = [];
    } catch {
      clearTimeout(timer);
      try {
        conn.close();
      } catch { /* closed */ }
      return;
    }
    await this.#pumpApp(flow, reader);
  }

  async #status(conn: Deno.UnixConn, status: number): Promise<void> {
    const f = new Uint8Array(8);
    putU32(f, 0, 4);
    f.set(encodeStatus(status), 4);
    await writeAll(conn, f);
  }

  /**
   * Packets from the application out to the peer, turned into datagrams in
   * place. Each send completes before the next frame is taken (so packets
   * leave in order, and the reader may reuse its chunk); frames already
   * read are taken without a round through the event loop.
   */
  async #pumpApp(flow: UdpFlow, reader: FrameReader): Promise<void> {
    let reason = "deallocated by the application";
    reader.reuse = true;
    try {
      for (;;) {
        const frame = reader.nextBuffered() ?? await reader.next();
        if (frame === null) break;
        if (this.#flows.get(flow.eid) !== flow) return;
        if (frame.length === 4) continue;
        putU32(frame, 0, flow.peerEid);
        flow.lastSend = Date.now();
        await this.#send(frame, flow.peer);
      }
    } catch (e) {
      reason = e instanceof FrameTooLarge
        ? `the application sent a packet over ${this.mtu} bytes`
        : `application connection: ${e instanceof Error ? e.message : e}`;
    }
    this.#endFlow(flow, reason, true);
  }

  // ------------------------------------------------------------ shutdown

  /** Ends every flow, closes the sockets, and deletes our DNS records (bounded). */
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
    try {
      this.#sock?.close();
    } catch { /* closed */ }
    try {
      this.#dataListener?.close();
    } catch { /* closed */ }
    removeQuietly(this.dataPath);
    await this.#ddns?.close();
  }
}
