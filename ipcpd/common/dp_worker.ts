/**
 * The entry of an IPCP's data-path Worker (main.ts runs it in a Worker
 * named DATAPATH_WORKER_NAME). It says "listening" once it listens; the
 * control thread then sends the DpInit (a message posted to a Worker before
 * its module set onmessage would be lost); the Worker loads the data path
 * of that kind alone (DATAPATHS: a UDP IPCP's Worker never loads the local
 * or the unicast one), then opens its epoll instance, posts "ready" with
 * its thread id and runs the data path, blocked in system calls, never
 * returning to its event loop until told to stop (by the shared ring and
 * the eventfd). It then posts "stopped" and closes itself.
 */
import { describe, Epoll, threadId } from "../../lib/sys/mod.ts";
import { type DpEvent, type DpInit, type DpKind, isDpInit } from "./dp_msg.ts";
import type { Post } from "./dp_log.ts";

/** The parts of a Worker's global scope used here (typed without the
 * worker lib, which would change the globals of every file checked with
 * this one). */
interface WorkerScope {
  postMessage(message: unknown, transfer?: Transferable[]): void;
  onmessage: ((e: MessageEvent<unknown>) => void) | null;
  close(): void;
}

/** A data path: runs until told to stop, blocked in system calls. */
export type RunDatapath = (init: DpInit, epoll: Epoll, post: Post) => void;

/**
 * Each kind's data path, loaded when the Worker is told its kind: the
 * modules of one data path only (in the bundle, the code of the others is
 * parsed but never run).
 */
export const DATAPATHS: Readonly<Record<DpKind, () => Promise<RunDatapath>>> = {
  udp: () => import("../udp/datapath.ts").then((m) => m.runUdpDatapath),
  local: () => import("../local/datapath.ts").then((m) => m.runLocalDatapath),
  unicast: () =>
    import("../unicast/datapath.ts").then((m) => m.runUnicastDatapath),
};

/** Events in flight per epoll_wait: one pass takes this many. */
const MAX_EVENTS = 256;

function errorText(e: unknown): string {
  return e instanceof Error ? e.stack ?? e.message : String(e);
}

export function datapathWorkerMain(): void {
  const scope = globalThis as unknown as WorkerScope;
  const post: Post = (e: DpEvent, transfer: Transferable[] = []) =>
    scope.postMessage(e, transfer);
  scope.onmessage = async (m: MessageEvent<unknown>) => {
    scope.onmessage = null;
    const init = m.data;
    if (!isDpInit(init)) {
      post({
        t: "fatal",
        error: "the data path was started without its setup",
      });
      return;
    }
    let run: RunDatapath;
    try {
      run = await DATAPATHS[init.kind]();
    } catch (e) {
      post({
        t: "fatal",
        error: `the ${init.kind} data path did not load: ${errorText(e)}`,
      });
      return;
    }
    const ep = Epoll.open(MAX_EVENTS);
    if (!ep.ok) {
      post({ t: "fatal", error: `epoll_create1: ${describe(ep)}` });
      return;
    }
    try {
      post({ t: "ready", tid: threadId() });
      run(init, ep.value, post);
    } catch (e) {
      post({ t: "fatal", error: errorText(e) });
    } finally {
      ep.value.close();
    }
    post({ t: "stopped" });
    scope.close();
  };
  post({ t: "listening" });
}
