/**
 * Logging from a data-path thread: log lines go to the control thread as
 * events, at most LOG_BURST of a kind per LOG_WINDOW_MS, so that a flood
 * of bad packets cannot flood the log; the next line of that kind says how
 * many were left out.
 */
import type { DpEvent, LogLevel } from "./dp_msg.ts";

/** Log lines of one kind per LOG_WINDOW_MS, at most. */
export const LOG_BURST = 5;
export const LOG_WINDOW_MS = 1000;

/** What a data path posts to the control thread. */
export type Post = (e: DpEvent, transfer?: Transferable[]) => void;

/**
 * A rate-limited logger: `log(key, level, text)`, where `key` names the
 * kind of line; `now()` is the data path's time of the pass.
 */
export function rateLimitedLog(
  post: Post,
  now: () => number,
): (key: string, level: LogLevel, text: string) => void {
  const state = new Map<string, { since: number; n: number }>();
  return (key, level, text) => {
    const t = now();
    const s = state.get(key);
    if (s === undefined || t - s.since >= LOG_WINDOW_MS) {
      const suppressed = s !== undefined && s.n > LOG_BURST
        ? ` (${s.n - LOG_BURST} more like it in the last second)`
        : "";
      state.set(key, { since: t, n: 1 });
      post({ t: "log", level, text: text + suppressed });
      return;
    }
    if (++s.n <= LOG_BURST) post({ t: "log", level, text });
  };
}
