import { assert, assertEquals } from "../tests/assert.ts";
import { type ClosableFlow, type FlowSource, serveFlows } from "./cli.ts";

class FakeFlow implements ClosableFlow {
  closed = false;
  constructor(readonly fd: number) {}
  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}

/** A session that hands out `count` flows, then loses its irmd. */
class FakeSession implements FlowSource<FakeFlow> {
  readonly flows: FakeFlow[] = [];
  closed = false;
  #lose = Promise.withResolvers<void>();
  #blocked: ((e: Error) => void)[] = [];

  constructor(readonly count: number) {}

  get done(): Promise<void> {
    return this.#lose.promise;
  }

  accept(): Promise<FakeFlow> {
    if (this.flows.length < this.count) {
      const f = new FakeFlow(this.flows.length);
      this.flows.push(f);
      return Promise.resolve(f);
    }
    return new Promise((_, reject) => this.#blocked.push(reject));
  }

  lose(): void {
    this.#lose.resolve();
    for (const r of this.#blocked) r(new Error("irmd gone"));
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}

Deno.test("serveFlows: every flow has its own signal, all aborted and closed when the server ends", async () => {
  const session = new FakeSession(3);
  const signals: AbortSignal[] = [];
  const handled = Promise.withResolvers<void>();
  const running = serveFlows(
    session,
    "test server started.",
    async (_flow, signal) => {
      signals.push(signal);
      if (signals.length === session.count) handled.resolve();
      // A handler that waits for its signal, as a reader would.
      await new Promise<void>((r) =>
        signal.addEventListener("abort", () => r())
      );
    },
  );
  await handled.promise;
  assert(signals.every((s) => !s.aborted));
  session.lose();
  const code = await running;
  assertEquals(code, 1);
  assertEquals(signals.length, 3);
  assertEquals(new Set(signals).size, 3, "one signal per flow");
  assert(signals.every((s) => s.aborted), "every signal aborted at the end");
  assert(session.flows.every((f) => f.closed), "every flow closed");
  assert(session.closed, "the session closed");
});
