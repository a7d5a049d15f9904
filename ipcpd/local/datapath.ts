/**
 * The local IPCP's data path, in a thread of its own (a Worker started by
 * ipcpd/common/dp_host.ts, like the UDP IPCP's). There is no lower layer:
 * every flow has a partner flow in this same IPCP (the control thread pairs
 * them, ipcpd/local/ipcp.ts), and a packet read from one flow's
 * application is written, unchanged, to its partner's application.
 *
 * It blocks in epoll_wait on the eventfd of the command ring (flows added,
 * allocated and removed; stop) and on the applications' connections
 * (ipcpd/common/app_conns.ts). A packet frame from an application is
 * `[u32 length][packet]` on the way in and on the way out, so it is copied
 * once, into a staging buffer, and written with the other frames of the
 * pass for the same partner by one writev (the read buffer is reused for
 * the next connection, the staging buffer only after the writes).
 *
 * Liveness needs no keepalives here: the control thread sees both ends of
 * every flow, and ends the partner when one side goes.
 */
import type { Epoll } from "../../lib/sys/mod.ts";
import {
  AppSide,
  appSideLimits,
  type DpFlow,
  dpFlowOf,
} from "../common/app_conns.ts";
import { type Post, rateLimitedLog } from "../common/dp_log.ts";
import {
  counterView,
  decodeCommand,
  DpCounter,
  type DpInit,
  Op,
} from "../common/dp_msg.ts";
import { RingReader } from "../common/ring.ts";
import { runPasses, waitUntil } from "../common/dp_loop.ts";
import { Staging } from "../common/staging.ts";

/**
 * Runs the data path until told to stop; returns then, everything it
 * opened closed (the descriptors the control thread gave stay its own).
 */
export function runLocalDatapath(
  init: DpInit,
  epoll: Epoll,
  post: Post,
): void {
  const counters = counterView(init.counters);
  const ring = new RingReader(init.ring);
  const flows = new Map<number, DpFlow>();
  let now = Date.now();
  let stopping = false;
  const log = rateLimitedLog(post, () => now);

  // ---------------------------------------------------------- moving

  const stage = new Staging(init.mtu + 4, () => apps.flushDeliveries());
  const flush = () => stage.flush();

  /** A packet frame from `flow`'s application: to its partner's. */
  const packet = (flow: DpFlow, frame: Uint8Array) => {
    counters[DpCounter.TxPackets]!++;
    const partner = flows.get(flow.peerEid);
    if (partner === undefined || partner.peerEid !== flow.eid) {
      // The partner ended (its end of the flow is going down too).
      counters[DpCounter.UnknownEid]!++;
      return;
    }
    if (!apps.live(partner)) {
      apps.early(partner, frame.subarray(4));
      return;
    }
    const at = stage.reserve(frame.length);
    stage.buf.set(frame, at);
    apps.deliver(partner, stage.buf.subarray(at, at + frame.length));
    stage.commit(at + frame.length);
  };

  const apps = new AppSide({
    ...appSideLimits(init),
    epoll,
    flows,
    counters,
    packet,
    // The partner's queue is bounded on its own (appQueueBytes).
    blocked: () => false,
    event: (e) => post(e),
    log,
  });
  apps.now = now;

  // ---------------------------------------------------------- commands

  const command = (v: DataView, at: number) => {
    const c = decodeCommand(v, at);
    if (c === undefined) return;
    switch (c.op) {
      case Op.Socket:
        return; // no lower layer
      case Op.Add: {
        if (flows.has(c.eid)) return;
        flows.set(c.eid, dpFlowOf(c, now));
        return;
      }
      case Op.Allocated: {
        const flow = flows.get(c.eid);
        if (flow === undefined) return;
        flow.peerEid = c.peerEid;
        flow.allocated = true;
        apps.flowAllocated(flow);
        flush();
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
    event: () => false, // no lower layer: every descriptor is an application's
    work: () => {
      apps.readReady();
      flush();
      apps.timers();
    },
    waitMs: () => apps.hasReady ? 0 : waitUntil(apps.nextDeadline()),
    setNow: (t) => now = t,
  });
}
