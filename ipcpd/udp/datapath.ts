/**
 * The UDP IPCP's data path, in a thread of its own (a Worker started by
 * ipcpd/common/dp_host.ts). It blocks in epoll_wait on:
 *
 *   - the eventfd the control thread writes after each command it puts in
 *     the shared ring (ipcpd/common/dp_msg.ts): flows added, allocated and
 *     removed, the UDP socket, stop;
 *   - the UDP socket: datagrams come in by recvmmsg batches; data goes to
 *     the flows' applications (a writev per flow per batch, the endpoint id
 *     turned into the frame's length in place), management frames (eid 0)
 *     to the control thread;
 *   - the applications' connections (ipcpd/common/app_conns.ts): their
 *     packet frames become datagrams in place (the length turned into the
 *     peer's endpoint id) and leave by sendmmsg batches, one per wakeup at
 *     least.
 *
 * It checks every data datagram as the control thread did before: shorter
 * than an endpoint id, an endpoint id that is not an open flow, a source
 * address or port that is not the flow's peer: dropped and counted, never
 * handed on. Counters are in shared memory; flow activity goes to the
 * control thread (liveness is its decision) at most every ACTIVITY_MS.
 */
import {
  describe,
  type Epoll,
  EPOLLIN,
  EPOLLOUT,
  hostLayout,
  MSG_TRUNC,
  PacketBatch,
  recvBatch,
  sendSlots,
  type SysFailure,
} from "../../lib/sys/mod.ts";
import { getU32, putU32 } from "../../lib/ipc/framing.ts";
import { MGMT_HDR_LEN } from "../../lib/wire/udp_wire.ts";
import {
  AppSide,
  appSideLimits,
  type DpFlow,
  dpFlowOf,
} from "../common/app_conns.ts";
import {
  ACTIVITY_MS,
  counterView,
  decodeCommand,
  DpCounter,
  type DpInit,
  DpWord,
  type MgmtFrame,
  Op,
  wordView,
} from "../common/dp_msg.ts";
import { RingReader } from "../common/ring.ts";
import { type Post, rateLimitedLog } from "../common/dp_log.ts";
import { runPasses, waitUntil } from "../common/dp_loop.ts";

/** The UDP socket's epoll tag (0 is the command ring's, 2 the listener's). */
const TAG_UDP = 1;

/** Datagrams per recvmmsg / sendmmsg. */
const BATCH = 64;
/** recvmmsg calls per wakeup at most, before the applications' turn. */
const RX_ROUNDS = 8;
/** Room per datagram: more than the largest (endpoint id + MTU). */
const SLOT_BYTES = 9216;

/**
 * Runs the data path until told to stop; returns then, everything it
 * opened closed (the descriptors the control thread gave stay its own).
 */
export function runUdpDatapath(
  init: DpInit,
  epoll: Epoll,
  post: Post,
): void {
  const L = hostLayout();
  const counters = counterView(init.counters);
  const words = wordView(init.counters);
  const ring = new RingReader(init.ring);
  const flows = new Map<number, DpFlow>();
  const maxDatagram = init.mtu + 4;
  let udpFd = -1;
  let now = Date.now();
  let stopping = false;

  // Logging, at most LOG_BURST lines of a kind per window.
  const log = rateLimitedLog(post, () => now);

  // ---------------------------------------------------------- sending

  const tx = new PacketBatch(BATCH, SLOT_BYTES);
  let txCount = 0;
  /** Datagrams the socket would not take yet (copies), in order. */
  let backlog: { data: Uint8Array; addr: Uint8Array }[] = [];
  let blocked = false;

  const setBlocked = (on: boolean) => {
    if (blocked === on) return;
    blocked = on;
    epoll.modify(udpFd, EPOLLIN | (on ? EPOLLOUT : 0), TAG_UDP);
  };

  /** Moves slots [from, txCount) to the front. */
  const shift = (from: number) => {
    for (let j = from; j < txCount; j++) {
      const k = j - from;
      tx.bufs[k]!.set(tx.bufs[j]!.subarray(0, tx.lens[j]!));
      tx.lens[k] = tx.lens[j]!;
      tx.addrs[k]!.set(tx.addrs[j]!.subarray(0, tx.addrLens[j]!));
      tx.addrLens[k] = tx.addrLens[j]!;
    }
    txCount -= from;
  };

  const sendFailed = (f: SysFailure) => {
    counters[DpCounter.TxErrors]!++;
    log("tx", "debug", `UDP send: ${describe(f)}.`);
  };

  /** Sends the batch; what the socket does not take goes to the backlog. */
  const flushTx = () => {
    while (txCount > 0) {
      const r = sendSlots(udpFd, tx, txCount);
      if (r.ok) {
        counters[DpCounter.TxPackets]! += r.value;
        if (r.value >= txCount) {
          txCount = 0;
          return;
        }
        shift(r.value);
        continue;
      }
      if (r.wouldBlock) {
        for (let j = 0; j < txCount; j++) {
          backlog.push({
            data: tx.bufs[j]!.slice(0, tx.lens[j]!),
            addr: tx.addrs[j]!.slice(0, tx.addrLens[j]!),
          });
        }
        txCount = 0;
        setBlocked(true);
        return;
      }
      sendFailed(r);
      shift(1); // that datagram is lost; the others go on
    }
  };

  /** The socket takes more again: the backlog first. */
  const flushBacklog = () => {
    while (backlog.length > 0) {
      const n = Math.min(BATCH, backlog.length);
      for (let j = 0; j < n; j++) {
        const b = backlog[j]!;
        tx.bufs[j]!.set(b.data);
        tx.lens[j] = b.data.length;
        tx.setDest(j, b.addr);
      }
      const r = sendSlots(udpFd, tx, n);
      if (r.ok) {
        counters[DpCounter.TxPackets]! += r.value;
        backlog = backlog.slice(r.value);
        continue;
      }
      if (r.wouldBlock) return;
      sendFailed(r);
      backlog = backlog.slice(1);
    }
    setBlocked(false);
  };

  /** A packet frame from an application, turned into a datagram. */
  const packet = (flow: DpFlow, frame: Uint8Array) => {
    putU32(frame, 0, flow.peerEid);
    flow.lastSend = now;
    if (!flow.active) markActive(flow);
    if (blocked || udpFd < 0) {
      if (udpFd >= 0) backlog.push({ data: frame.slice(), addr: flow.addr });
      return;
    }
    const i = txCount++;
    tx.bufs[i]!.set(frame);
    tx.lens[i] = frame.length;
    tx.setDest(i, flow.addr);
    if (txCount === BATCH) flushTx();
  };

  // ---------------------------------------------------------- activity

  let active: DpFlow[] = [];
  let reportedAt = now;
  const markActive = (flow: DpFlow) => {
    flow.active = true;
    active.push(flow);
  };
  const reportActivity = () => {
    const out = new Float64Array(active.length * 3);
    let n = 0;
    for (const f of active) {
      f.active = false;
      out[n++] = f.eid;
      out[n++] = f.lastRecv;
      out[n++] = f.lastSend;
    }
    active = [];
    reportedAt = now;
    post({ t: "activity", flows: out }, [out.buffer]);
  };

  const apps = new AppSide({
    ...appSideLimits(init),
    epoll,
    flows,
    counters,
    packet,
    blocked: () => blocked,
    event: (e) => post(e),
    log,
  });
  apps.now = now;

  // ---------------------------------------------------------- receiving

  const rx = new PacketBatch(BATCH, SLOT_BYTES);
  const v4 = init.family === 4;
  const portAt = v4 ? L.sockaddrIn.port : L.sockaddrIn6.port;
  const addrAt = v4 ? L.sockaddrIn.addr : L.sockaddrIn6.addr;
  const addrLen = v4 ? 4 : 16;
  let mgmtPosted = 0;

  /** Whether datagram i came from the flow's peer: address and port. */
  const fromPeer = (i: number, flow: DpFlow): boolean => {
    const a = rx.addrs[i]!;
    const p = flow.addr;
    // Family (host order) and port (network order), then the address.
    if (
      a[0] !== p[0] || a[1] !== p[1] || a[portAt] !== p[portAt] ||
      a[portAt + 1] !== p[portAt + 1]
    ) return false;
    for (let k = addrAt; k < addrAt + addrLen; k++) {
      if (a[k] !== p[k]) return false;
    }
    return true;
  };

  /** Receives one batch; false when the socket had nothing (more). */
  const receive = (): boolean => {
    const r = recvBatch(udpFd, rx, BATCH, 0);
    if (!r.ok) {
      if (!r.wouldBlock) log("rx", "debug", `UDP receive: ${describe(r)}.`);
      return false;
    }
    const n = r.value;
    let mgmt: MgmtFrame[] | undefined;
    for (let i = 0; i < n; i++) {
      const len = rx.lens[i]!;
      const buf = rx.bufs[i]!;
      if (len > maxDatagram || (rx.msgFlags[i]! & MSG_TRUNC) !== 0) {
        counters[DpCounter.Oversized]!++;
        log("big", "debug", `Dropped a datagram over ${maxDatagram} bytes.`);
        continue;
      }
      if (len < 4) {
        counters[DpCounter.Short]!++;
        const src = rx.source(i);
        log(
          "short",
          "debug",
          `Dropped a ${len}-byte datagram from ${
            src.ok && src.value.family !== "unix"
              ? `${src.value.host}:${src.value.port}`
              : "an unknown source"
          }.`,
        );
        continue;
      }
      const eid = getU32(buf, 0);
      if (eid === 0) {
        if (len < MGMT_HDR_LEN) {
          counters[DpCounter.BadMgmt]!++;
          log(
            "mgmt",
            "debug",
            `Dropped a management frame of ${len} bytes (its header is ${MGMT_HDR_LEN}).`,
          );
          continue;
        }
        if (
          ((mgmtPosted - Atomics.load(words, DpWord.MgmtTaken)) >>> 0) +
              (mgmt?.length ?? 0) >= init.mgmtBacklog
        ) {
          counters[DpCounter.MgmtOverflow]!++;
          continue;
        }
        const src = rx.source(i);
        if (!src.ok || src.value.family === "unix") continue;
        (mgmt ??= []).push({
          data: buf.slice(0, len),
          host: src.value.host,
          port: src.value.port,
        });
        continue;
      }
      const flow = flows.get(eid);
      if (flow === undefined) {
        counters[DpCounter.UnknownEid]!++;
        continue;
      }
      if (!fromPeer(i, flow)) {
        counters[DpCounter.WrongSource]!++;
        continue;
      }
      flow.lastRecv = now;
      if (!flow.active) markActive(flow);
      if (len === 4) continue; // keepalive
      if (apps.live(flow)) {
        putU32(buf, 0, len - 4); // the endpoint id becomes the frame length
        apps.deliver(flow, buf.subarray(0, len));
      } else apps.early(flow, buf.subarray(4, len));
    }
    apps.flushDeliveries();
    if (mgmt !== undefined) {
      mgmtPosted = (mgmtPosted + mgmt.length) | 0;
      post(
        { t: "mgmt", frames: mgmt },
        mgmt.map((m) => m.data.buffer as ArrayBuffer),
      );
    }
    return n === BATCH;
  };

  // ---------------------------------------------------------- commands

  const command = (v: DataView, at: number) => {
    const c = decodeCommand(v, at);
    if (c === undefined) return;
    switch (c.op) {
      case Op.Socket:
        if (udpFd >= 0) return;
        {
          const r = epoll.add(c.fd, EPOLLIN, TAG_UDP);
          if (!r.ok) {
            post({ t: "fatal", error: `epoll: ${describe(r)}` });
            stopping = true;
            return;
          }
          udpFd = c.fd;
        }
        return;
      case Op.Add: {
        if (flows.has(c.eid)) return;
        const flow: DpFlow = dpFlowOf(c, now);
        flows.set(c.eid, flow);
        return;
      }
      case Op.Allocated: {
        const flow = flows.get(c.eid);
        if (flow === undefined) return;
        flow.peerEid = c.peerEid;
        flow.allocated = true;
        apps.flowAllocated(flow);
        return;
      }
      case Op.Remove: {
        const flow = flows.get(c.eid);
        if (flow !== undefined) apps.flowRemoved(flow);
        return;
      }
      case Op.Stop:
        stopping = true;
        return;
    }
  };

  // ---------------------------------------------------------- the loop

  let udpReady = false;
  runPasses({
    init,
    epoll,
    ring,
    apps,
    counters,
    post,
    command,
    stopping: () => stopping,
  }, {
    event: (tag, ev) => {
      if (tag !== TAG_UDP) return false;
      if ((ev & EPOLLOUT) !== 0 && blocked) flushBacklog();
      if ((ev & ~EPOLLOUT) !== 0) udpReady = true;
      return true;
    },
    work: () => {
      if (udpReady && udpFd >= 0) {
        udpReady = false;
        for (let r = 0; r < RX_ROUNDS && receive(); r++) {
          if (r === RX_ROUNDS - 1) udpReady = true;
        }
      }
      apps.readReady();
      if (txCount > 0) flushTx();
      apps.timers();
      if (active.length > 0 && now - reportedAt >= ACTIVITY_MS) {
        reportActivity();
      }
    },
    waitMs: () => {
      if (udpReady || (apps.hasReady && !blocked)) return 0;
      let at = apps.nextDeadline();
      if (active.length > 0) at = Math.min(at, reportedAt + ACTIVITY_MS);
      return waitUntil(at);
    },
    setNow: (t) => now = t,
  });
}
