/**
 * Deadlines for a test's own promises: one awaited within a time, or
 * several run together, all ended before the first failure is thrown.
 */

/** `p`, or an error once `ms` have passed. */
export async function within<T>(
  p: Promise<T>,
  ms: number,
  what: string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) =>
        timer = setTimeout(
          () => reject(new Error(`${what}: not done within ${ms} ms`)),
          ms,
        )
      ),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs `tasks` together within `ms`. The first failure, or the deadline,
 * calls `abort` (which must make the others end, e.g. by closing their
 * flows); every task has ended before the first error is thrown.
 */
export async function together<T>(
  tasks: Promise<T>[],
  ms: number,
  what: string,
  abort: () => Promise<void>,
): Promise<T[]> {
  let failure: { e: unknown } | undefined;
  let aborting: Promise<void> | undefined;
  const fail = (e: unknown) => {
    failure ??= { e };
    aborting ??= abort();
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<void>((r) =>
    timer = setTimeout(() => {
      fail(new Error(`${what}: not done within ${ms} ms`));
      r();
    }, ms)
  );
  const settled = Promise.allSettled(tasks.map((t) =>
    t.catch((e: unknown) => {
      fail(e);
      throw e;
    })
  ));
  const results = await Promise.race([
    settled,
    deadline.then(() => within(settled, 10_000, `${what}, once aborted`)),
  ]);
  clearTimeout(timer);
  await aborting;
  if (failure !== undefined) throw failure.e;
  return results.map((r) => (r as PromiseFulfilledResult<T>).value);
}
