/**
 * A Worker blocked in poll() or epoll_wait() on an eventfd, woken by a write
 * from the main thread; the main thread's event loop runs meanwhile (the
 * blocking FFI call stalls only the Worker's thread). And a signal that
 * interrupts the Worker's wait: the layer makes the call again (EINTR) and
 * the wait still ends on the eventfd write.
 */
import { assert, assertEquals } from "../../tests/assert.ts";
import { SIGUSR1 } from "./constants.ts";
import { unwrap } from "./result.ts";
import { closeFd, eventfd, eventfdSignal, signalThread } from "./sys.ts";
import type { WaitRequest, WorkerReport } from "./test_worker.ts";
import { fdTest } from "./testing.ts";

/** A Worker running test_worker.ts, and its reports in order. */
class WaitWorker {
  readonly #w: Worker;
  readonly #queue: WorkerReport[] = [];
  #wake: (() => void) | null = null;

  constructor() {
    this.#w = new Worker(new URL("./test_worker.ts", import.meta.url).href, {
      type: "module",
    });
    this.#w.onmessage = (e: MessageEvent<WorkerReport>) => {
      this.#queue.push(e.data);
      this.#wake?.();
    };
    this.#w.onerror = (e) => {
      this.#queue.push({ kind: "failed", error: e.message });
      this.#wake?.();
      e.preventDefault();
    };
  }

  send(req: WaitRequest): void {
    this.#w.postMessage(req);
  }

  /** The next report. The first one can take long where the Worker's
   * module is type-checked slowly (the aarch64 Deno under qemu-user). */
  async next(timeoutMs = 300_000): Promise<WorkerReport> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      while (this.#queue.length === 0) {
        await new Promise<void>((resolve, reject) => {
          this.#wake = resolve;
          timer = setTimeout(
            () => reject(new Error("no report from the worker")),
            timeoutMs,
          );
        });
        clearTimeout(timer);
      }
      return this.#queue.shift()!;
    } finally {
      clearTimeout(timer);
      this.#wake = null;
    }
  }

  terminate(): void {
    this.#w.terminate();
  }
}

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Deno's runtime keeps an eventfd and an epoll descriptor of the last
// Worker's until the next one starts; one Worker started and ended before
// the tests makes them part of what every leak check starts from. Its
// eventfd is signalled beforehand, so that its poll returns at once: a
// Worker blocked in an FFI call cannot be terminated until the call returns.
{
  const efd = unwrap(eventfd({ initial: 1 }));
  const warmUp = new WaitWorker();
  warmUp.send({ efd, how: "poll" });
  await warmUp.next();
  await warmUp.next();
  warmUp.terminate();
  closeFd(efd);
  await delay(50);
}

async function wakeAcrossWorker(
  how: "poll" | "epoll",
  interrupt: boolean,
): Promise<void> {
  const efd = unwrap(eventfd());
  const worker = new WaitWorker();
  let onSignal: (() => void) | null = null;
  let signals = 0;
  try {
    worker.send({ efd, how });
    const waiting = await worker.next();
    assert(waiting.kind === "waiting", JSON.stringify(waiting));

    // The main thread's timers run while the Worker blocks.
    const t0 = performance.now();
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 10);
    await delay(150);
    clearInterval(ticker);
    assert(ticks >= 5, `only ${ticks} timer ticks while the worker waited`);

    if (interrupt) {
      onSignal = () => signals++;
      Deno.addSignalListener("SIGUSR1", onSignal);
      // A few, spaced out, so that some arrive while the Worker is in the
      // call rather than on its way into it.
      for (let i = 0; i < 4; i++) {
        unwrap(signalThread(waiting.tid, SIGUSR1));
        await delay(40);
      }
    }
    unwrap(eventfdSignal(efd, 5));
    const woken = await worker.next();
    assert(woken.kind === "woken", JSON.stringify(woken));
    assertEquals(woken.ready, [efd]);
    assertEquals(woken.drained, 5);
    const elapsed = performance.now() - t0;
    assert(
      woken.waitedMs >= 140,
      `the worker's wait ended after ${woken.waitedMs} ms, before the write`,
    );
    assert(woken.waitedMs <= elapsed + 1000);
    if (interrupt) {
      assert(
        woken.eintrRetries >= 1,
        `the wait was made ${woken.eintrRetries} more times after EINTR`,
      );
      assert(signals >= 1, "the signal listener saw no signal");
    } else {
      assertEquals(woken.eintrRetries, 0);
    }
  } finally {
    worker.terminate();
    if (onSignal !== null) Deno.removeSignalListener("SIGUSR1", onSignal);
    closeFd(efd);
  }
}

fdTest(
  "worker: an eventfd write wakes a Worker blocked in poll",
  () => wakeAcrossWorker("poll", false),
  3000,
);

fdTest(
  "worker: an eventfd write wakes a Worker blocked in epoll_wait",
  () => wakeAcrossWorker("epoll", false),
  3000,
);

fdTest(
  "worker: a signal interrupts the Worker's poll, which goes on (EINTR)",
  () => wakeAcrossWorker("poll", true),
  3000,
);
