import { assert, assertEquals } from "../../tests/assert.ts";
import { Deadlines } from "./deadlines.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("deadlines: each fires when due, in order, never before", async () => {
  const d = new Deadlines<string>();
  const t0 = performance.now();
  const fired: [string, number][] = [];
  const done = Promise.withResolvers<void>();
  const fire = (k: string) => () => {
    fired.push([k, performance.now() - t0]);
    if (fired.length === 3) done.resolve();
  };
  d.add("late", 60, fire("late"));
  d.add("early", 20, fire("early"));
  d.add("middle", 40, fire("middle"));
  await done.promise;
  assertEquals(fired.map(([k]) => k), ["early", "middle", "late"]);
  for (const [k, at] of fired) {
    const want = k === "early" ? 20 : k === "middle" ? 40 : 60;
    assert(at >= want - 1, `${k} fired at ${at} ms, before its ${want} ms`);
  }
  assertEquals(d.size, 0);
});

Deno.test("deadlines: a settled one never fires; the others still do", async () => {
  const d = new Deadlines<number>();
  const fired: number[] = [];
  d.add(1, 10, () => fired.push(1));
  d.add(2, 20, () => fired.push(2));
  assert(d.delete(1));
  assert(!d.delete(1));
  await sleep(50);
  assertEquals(fired, [2]);
});

Deno.test("deadlines: adding again replaces; clear disarms", async () => {
  const d = new Deadlines<number>();
  const fired: string[] = [];
  d.add(1, 10, () => fired.push("first"));
  d.add(1, 30, () => fired.push("second"));
  await sleep(20);
  assertEquals(fired, []);
  await sleep(30);
  assertEquals(fired, ["second"]);
  d.add(2, 10, () => fired.push("cleared"));
  d.clear();
  await sleep(30);
  assertEquals(fired, ["second"]);
  assertEquals(d.size, 0);
});

Deno.test("deadlines: one added from a firing callback, earlier than the rest", async () => {
  const d = new Deadlines<string>();
  const fired: string[] = [];
  const done = Promise.withResolvers<void>();
  d.add("a", 10, () => {
    fired.push("a");
    d.add("c", 5, () => fired.push("c"));
  });
  d.add("b", 60, () => {
    fired.push("b");
    done.resolve();
  });
  await done.promise;
  assertEquals(fired, ["a", "c", "b"]);
});
