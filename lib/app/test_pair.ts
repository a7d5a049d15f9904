/**
 * Two flows of the fast path in this process, each on one end of a socket
 * pair, with a Worker between them playing the IPCP (test_relay.ts), which
 * may drop packets: for the tests of blocking_io.ts, of the synchronous
 * calls of dev.ts and of the tools' synchronous loops.
 */
import {
  closeFd,
  eventfd,
  eventfdSignal,
  socketPair,
  unwrap,
} from "../sys/mod.ts";
import type { FlowGrant, QosSpec } from "../ipc/proto.ts";
import { SysStream } from "./blocking_io.ts";
import { Flow, type FlowConn } from "./dev.ts";
import type { RelayReport, RelayRequest } from "./test_relay.ts";

export function grant(qos: QosSpec): FlowGrant {
  return {
    handle: 1,
    token: new Uint8Array(16),
    path: "(socket pair)",
    name: "test",
    qos,
    mtu: 1400,
    flowId: 1,
  };
}

/** Two blocking flows with the relay between them. */
export interface Pair {
  a: Flow;
  b: Flow;
  relay: Promise<RelayReport>;
  /**
   * Resolves once the relay has its request: a test that then waits only
   * synchronously must await it first (the request is posted from this
   * thread's event loop).
   */
  ready: Promise<void>;
  stop(): void;
}

/** `id` numbers the flows: a is `id`, b is `id + 1` (their `fd`). */
export function pair(qos: QosSpec, dropEvery = 0, id = 0): Pair {
  const [a1, a2] = unwrap(socketPair());
  const [b1, b2] = unwrap(socketPair());
  const stopFd = unwrap(eventfd());
  const w = new Worker(new URL("./test_relay.ts", import.meta.url).href, {
    type: "module",
  });
  const req: RelayRequest = { a: a2, b: b2, stop: stopFd, dropEvery };
  let posted: () => void = () => {};
  const ready = new Promise<void>((r) => posted = r);
  const relay = new Promise<RelayReport>((resolve, reject) => {
    w.onmessage = (e: MessageEvent<RelayReport | "listening">) => {
      if (e.data === "listening") {
        w.postMessage(req);
        posted();
        return;
      }
      resolve(e.data);
      w.terminate();
    };
    w.onerror = (e) => {
      e.preventDefault();
      reject(new Error(e.message));
      w.terminate();
    };
  });
  const mk = (fd: number, flowFd: number): Flow => {
    const conn: FlowConn = SysStream.adopt(fd);
    return new Flow(flowFd, grant(qos), conn, new Uint8Array(20), () => {});
  };
  return {
    a: mk(a1, id),
    b: mk(b1, id + 1),
    // The relay closes its socket ends; the eventfd is the test's.
    relay: relay.finally(() => closeFd(stopFd)),
    ready,
    stop: () => {
      eventfdSignal(stopFd);
    },
  };
}
