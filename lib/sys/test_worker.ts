/**
 * The Worker of worker_test.ts: told an eventfd, it reports its thread id,
 * then blocks in poll() or epoll_wait() on it until the main thread writes
 * to it, and reports what woke it.
 */
import { EPOLLIN } from "./constants.ts";
import { eintrRetryCount, type SysResult, unwrap } from "./result.ts";
import { Epoll, eventfdDrain, pollIn, threadId } from "./sys.ts";

/** The parts of a Worker's global scope used here (typed without the
 * worker lib, which would change the globals of every file checked with
 * this one). */
interface WorkerScope {
  postMessage(message: unknown): void;
  onmessage: ((e: MessageEvent<unknown>) => void) | null;
}

const scope = globalThis as unknown as WorkerScope;

export interface WaitRequest {
  readonly efd: number;
  readonly how: "poll" | "epoll";
}

export type WorkerReport =
  | { readonly kind: "waiting"; readonly tid: number }
  | {
    readonly kind: "woken";
    readonly ready: number[];
    readonly drained: number;
    readonly eintrRetries: number;
    readonly waitedMs: number;
  }
  | { readonly kind: "failed"; readonly error: string };

function isRequest(x: unknown): x is WaitRequest {
  if (typeof x !== "object" || x === null) return false;
  const r = x as Record<string, unknown>;
  return typeof r.efd === "number" && (r.how === "poll" || r.how === "epoll");
}

function report(r: WorkerReport): void {
  scope.postMessage(r);
}

function waitOn(req: WaitRequest): SysResult<number[]> {
  if (req.how === "poll") return pollIn([req.efd], 20_000);
  const ep = unwrap(Epoll.open(4));
  try {
    unwrap(ep.add(req.efd, EPOLLIN, 0xbeef));
    const n = ep.wait(20_000);
    if (!n.ok) return n;
    const tags: number[] = [];
    for (let i = 0; i < n.value; i++) tags.push(ep.tag(i));
    // The tag stands for the eventfd.
    return { ok: true, value: tags.map((t) => t === 0xbeef ? req.efd : -t) };
  } finally {
    ep.close();
  }
}

scope.onmessage = (e: MessageEvent<unknown>) => {
  if (!isRequest(e.data)) {
    report({ kind: "failed", error: `bad request ${JSON.stringify(e.data)}` });
    return;
  }
  const req = e.data;
  try {
    const retries0 = eintrRetryCount();
    report({ kind: "waiting", tid: threadId() });
    const t0 = performance.now();
    const ready = unwrap(waitOn(req));
    const waitedMs = performance.now() - t0;
    const drained = unwrap(eventfdDrain(req.efd));
    report({
      kind: "woken",
      ready,
      drained,
      eintrRetries: eintrRetryCount() - retries0,
      waitedMs,
    });
  } catch (err) {
    report({ kind: "failed", error: String(err) });
  }
};
