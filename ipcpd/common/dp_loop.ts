/**
 * The loop every IPCP's data path runs in its Worker: block in epoll_wait,
 * read the command ring when the control thread's eventfd wakes it, hand
 * the applications' and the IPCP's own descriptors their events, then do
 * the pass's work (each IPCP's hooks), until a Stop is read.
 *
 * The ring is read first in every pass (a flow is known before its
 * application's attach: the control thread wrote the ring before it
 * answered the irmd), and again right after the eventfd is drained: once
 * drained, the eventfd no longer stands for a record written since the
 * first read, which would otherwise wait for a wakeup that may never come.
 */
import {
  describe,
  type Epoll,
  EPOLLIN,
  eventfdDrain,
} from "../../lib/sys/mod.ts";
import { type AppSide, TAG_LISTEN } from "./app_conns.ts";
import type { Post } from "./dp_log.ts";
import { DpCounter, type DpInit } from "./dp_msg.ts";
import type { RingReader } from "./ring.ts";

/** The epoll tag of the command ring's eventfd. */
export const TAG_WAKE = 0;

/** What an IPCP's data path adds to the loop. */
export interface PassHooks {
  /**
   * An event with a tag of the IPCP's own (a lower layer's socket): true
   * if it was one; the others are the applications' connections.
   */
  event(tag: number, events: number): boolean;
  /** The pass's work once its events are handled (reading, writing, timers). */
  work(): void;
  /** The longest the next wait may be, ms (0: look again at once; -1: none). */
  waitMs(): number;
  /** The time after each wait (Date.now()). */
  setNow(now: number): void;
}

export interface LoopParts {
  readonly init: DpInit;
  readonly epoll: Epoll;
  readonly ring: RingReader;
  readonly apps: AppSide;
  readonly counters: Float64Array;
  readonly post: Post;
  /** One record of the command ring. */
  command(view: DataView, at: number): void;
  /** Whether a Stop has been read. */
  stopping(): boolean;
}

/**
 * Runs the data path's passes until a Stop is read (or epoll fails, which
 * is posted as fatal); every application connection is closed on the way
 * out.
 */
export function runPasses(p: LoopParts, h: PassHooks): void {
  const { init, epoll, ring, apps, counters, post } = p;
  const started = apps.start();
  if (started !== null) {
    post({ t: "fatal", error: `epoll: ${describe(started)}` });
    return;
  }
  const r = epoll.add(init.wakeFd, EPOLLIN, TAG_WAKE);
  if (!r.ok) {
    post({ t: "fatal", error: `epoll: ${describe(r)}` });
    return;
  }
  try {
    for (;;) {
      ring.drain(p.command);
      if (p.stopping()) break;
      const n = epoll.ready;
      for (let i = 0; i < n; i++) {
        const tag = epoll.tag(i);
        if (tag === TAG_WAKE) {
          eventfdDrain(init.wakeFd);
          ring.drain(p.command);
        } else if (tag === TAG_LISTEN) apps.onListen();
        else if (!h.event(tag, epoll.events(i))) {
          apps.onEvent(tag, epoll.events(i));
        }
      }
      h.work();
      const wait = h.waitMs();
      // A Stop read in this pass ends the loop now, not after a wait.
      if (p.stopping()) break;
      const w = epoll.wait(wait);
      if (!w.ok) {
        post({ t: "fatal", error: `epoll_wait: ${describe(w)}` });
        break;
      }
      counters[DpCounter.Wakeups]!++;
      const now = Date.now();
      apps.now = now;
      h.setNow(now);
    }
  } finally {
    apps.closeAll();
  }
}

/** The wait until `at` (a Date.now() time), as epoll_wait takes it. */
export function waitUntil(at: number): number {
  return at === Infinity ? -1 : Math.max(0, Math.ceil(at - Date.now()));
}
