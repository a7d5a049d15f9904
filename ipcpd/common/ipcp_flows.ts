/**
 * What every IPCP does the same way about its flows' application side:
 * the data socket applications attach on, the data-path Worker behind it,
 * the limits of both, the tokens that prove a process was given a flow,
 * and fresh endpoint ids.
 */
import {
  checkSocketPath,
  ipcpSocketPath,
  removeQuietly,
} from "../../lib/ipc/rundir.ts";
import { closeFd, describe, unixListen } from "../../lib/sys/mod.ts";
import type { CtrlConn } from "../../lib/ipc/ctrl.ts";
import type { Logger } from "../../lib/util/log.ts";
import { Datapath, type DatapathEvents } from "./dp_host.ts";
import type { DpKind } from "./dp_msg.ts";

/** How long an allocated flow waits for its application to attach. */
export const ATTACH_DEADLINE_MS = 10_000;
/** How long an attaching application may take to send its attach frame. */
export const ATTACH_HELLO_MS = 5_000;
/** Packets kept for a flow whose application has not attached yet. */
export const PRE_ATTACH_QUEUE = 256;
/** Bytes queued towards a slow application before packets are dropped. */
export const APP_QUEUE_BYTES = 1 << 20;
/** The wait before accepting applications again after accept failed. */
export const ACCEPT_RETRY_MS = 100;
/** Connections that may wait on the data socket to be accepted. */
const LISTEN_BACKLOG = 128;

/**
 * What every IPCP does when its data path cannot accept applications, or
 * can again, or fails: it says so, and a failure ends the IPCP (`onFatal`).
 */
export function dataPathTrouble(
  log: Logger,
  dataPath: () => string,
  onFatal: (why: string) => void,
): Pick<DatapathEvents, "acceptFailed" | "acceptResumed" | "fatal"> {
  return {
    acceptFailed: (e) =>
      log.error(
        `Cannot accept applications on ${dataPath()}: ${e}; trying again.`,
      ),
    acceptResumed: (n) =>
      log.info(`Accepting applications again (${n} failed tries).`),
    fatal: (e) => {
      log.error(`The data path failed: ${e}.`);
      onFatal(e);
    },
  };
}

/**
 * Tells the irmd that flows ended, each notice on a task of its own, so
 * that it leaves after the replies under way: an allocation's answer must
 * reach the irmd before the news that its flow has ended (the irmd ignores
 * news of a flow it does not hold yet). `flush` sends what still waits.
 */
export class EndedNotices {
  #waiting = new Set<() => void>();

  send(ctrl: CtrlConn | undefined, handle: number, reason: string): void {
    const send = () => {
      clearTimeout(timer);
      this.#waiting.delete(send);
      if (ctrl !== undefined && !ctrl.isClosed) {
        ctrl.notify("flow.ended", { handle, reason });
      }
    };
    const timer = setTimeout(send, 0);
    this.#waiting.add(send);
  }

  flush(): void {
    for (const send of [...this.#waiting]) send();
  }
}

/** A fresh secret for a flow's attach frame. */
export function randomToken(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(16));
}

/**
 * Endpoint ids, never reused while the process lives: one after the
 * other from a random start (above the 64 that C keeps for components),
 * so that stale packets or attach frames never reach a new flow.
 */
export class EidSource {
  #next = 64 + Math.floor(Math.random() * 0x4000_0000);

  /** The next id that `inUse` does not claim. */
  fresh(inUse: (eid: number) => boolean): number {
    for (;;) {
      const eid = this.#next;
      this.#next = this.#next >= 0xffff_fff0 ? 64 : this.#next + 1;
      if (!inUse(eid)) return eid;
    }
  }
}

/** The path of this IPCP's data socket in the runtime directory. */
export function dataSocketPath(rundir: string): string {
  return ipcpSocketPath(rundir, Deno.pid);
}

export interface DataPathSetup {
  readonly kind: DpKind;
  /** The IP family of a UDP layer; undefined for a local one. */
  readonly family: 4 | 6 | undefined;
  readonly mtu: number;
  /** The data socket's path (dataSocketPath). */
  readonly path: string;
  readonly log: Logger;
  readonly events: DatapathEvents;
}

/** The data socket and the data path that serves it. */
export interface DataPath {
  readonly dp: Datapath;
  readonly listenFd: number;
}

/**
 * Listens on the data socket (owner only) and starts the data path, which
 * accepts the applications. Throws, with nothing left open, when either
 * cannot be done.
 */
export function openDataPath(s: DataPathSetup): DataPath {
  removeQuietly(s.path);
  checkSocketPath(s.path);
  const fd = unixListen(s.path, LISTEN_BACKLOG, { nonBlocking: true });
  if (!fd.ok) throw new Error(describe(fd));
  try {
    Deno.chmodSync(s.path, 0o600);
    const dp = Datapath.start({
      kind: s.kind,
      family: s.family,
      mtu: s.mtu,
      listenFd: fd.value,
      appQueueBytes: APP_QUEUE_BYTES,
      preAttachQueue: PRE_ATTACH_QUEUE,
      helloMs: ATTACH_HELLO_MS,
      acceptRetryMs: ACCEPT_RETRY_MS,
      log: s.log,
      events: s.events,
    });
    return { dp, listenFd: fd.value };
  } catch (e) {
    closeFd(fd.value);
    removeQuietly(s.path);
    throw e;
  }
}

/** Stops the data path, closes the data socket and removes its file. */
export async function closeDataPath(
  d: DataPath | undefined,
  path: string,
): Promise<void> {
  if (d !== undefined) {
    await d.dp.stop();
    closeFd(d.listenFd);
  }
  removeQuietly(path);
}
