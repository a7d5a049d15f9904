/** Assertions for the tests, on top of `node:assert` (no other dependency). */
import * as nodeAssert from "node:assert/strict";

export function assert(cond: unknown, msg?: string): asserts cond {
  nodeAssert.ok(cond, msg);
}

export function assertEquals<T>(
  actual: unknown,
  expected: T,
  msg?: string,
): void {
  nodeAssert.deepStrictEqual(actual, expected, msg);
}

export function assertNotEquals(
  actual: unknown,
  expected: unknown,
  msg?: string,
): void {
  nodeAssert.notDeepStrictEqual(actual, expected, msg);
}

export function assertMatch(actual: string, re: RegExp, msg?: string): void {
  nodeAssert.match(actual, re, msg);
}

export function assertStringIncludes(
  actual: string,
  part: string,
  msg?: string,
): void {
  if (!actual.includes(part)) {
    throw new nodeAssert.AssertionError({
      message: msg ?? `expected to find ${JSON.stringify(part)} in:\n${actual}`,
      actual,
      expected: part,
    });
  }
}

export function assertThrows(fn: () => unknown, re?: RegExp): Error {
  try {
    fn();
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    if (re) assertMatch(err.message, re);
    return err;
  }
  throw new nodeAssert.AssertionError({
    message: "expected the function to throw",
  });
}

export async function assertRejects(
  fn: () => Promise<unknown>,
  re?: RegExp,
): Promise<Error> {
  try {
    await fn();
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    if (re) assertMatch(err.message, re);
    return err;
  }
  throw new nodeAssert.AssertionError({
    message: "expected the promise to reject",
  });
}

/** Narrows a result-or-error union in tests: fails when it is an error. */
export function unwrap<T>(
  r: { ok: true; value: T } | { ok: false; error: string },
): T {
  if (!r.ok) {
    throw new nodeAssert.AssertionError({
      message: `unexpected error: ${r.error}`,
    });
  }
  return r.value;
}
