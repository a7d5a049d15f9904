/**
 * The entry of an IPCP's data-path Worker (main.ts runs it in a Worker
 * named DATAPATH_WORKER_NAME). It says "listening" once it listens; the
 * control thread then sends the DpInit (a message posted to a Worker before
 * its module set onmessage would be lost); the Worker
 * then opens its epoll instance, posts "ready" with its thread id and runs
 * the data path, blocked in system calls, never returning to its event
 * loop until told to stop (by the shared ring and the eventfd). It then
 * posts "stopped" and closes itself.
 */
import { describe, Epoll, threadId } from "../../lib/sys/mod.ts";
import { type DpEvent, isDpInit } from "./dp_msg.ts";
import { runUdpDatapath } from "../udp/datapath.ts";
import { runLocalDatapath } from "../local/datapath.ts";
import { runUnicastDatapath } from "../unicast/datapath.ts";

/** The parts of a Worker's global scope used here (typed without the
 * worker lib, which would change the globals of every file checked with
 * this one). */
interface WorkerScope {
  postMessage(message: unknown, transfer?: Transferable[]): void;
  onmessage: ((e: MessageEvent<unknown>) => void) | null;
  close(): void;
}

/** Events in flight per epoll_wait: one pass takes this many. */
const MAX_EVENTS = 256;

export function datapathWorkerMain(): void {
  const scope = globalThis as unknown as WorkerScope;
  const post = (e: DpEvent, transfer: Transferable[] = []) =>
    scope.postMessage(e, transfer);
  scope.onmessage = (m: MessageEvent<unknown>) => {
    scope.onmessage = null;
    const init = m.data;
    if (!isDpInit(init)) {
      post({
        t: "fatal",
        error: "the data path was started without its setup",
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
      const run = init.kind === "local"
        ? runLocalDatapath
        : init.kind === "unicast"
        ? runUnicastDatapath
        : runUdpDatapath;
      run(init, ep.value, post);
    } catch (e) {
      post({
        t: "fatal",
        error: e instanceof Error ? e.stack ?? e.message : String(e),
      });
    } finally {
      ep.value.close();
    }
    post({ t: "stopped" });
    scope.close();
  };
  post({ t: "listening" });
}
