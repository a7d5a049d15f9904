/**
 * Test helpers for lib/sys/: a descriptor leak check. Descriptors made
 * through FFI are not Deno resources, so Deno's resource sanitizer does not
 * see them; fdTest() compares the process's sockets, eventfds and epoll
 * instances (/proc/self/fd) before and after a test.
 */

/** The kinds of descriptor this layer makes, as /proc/self/fd links name them. */
const WATCHED = /^(socket:|anon_inode:\[?(eventfd|eventpoll)\]?)/;

/** Open sockets, eventfds and epoll descriptors: fd number to link target. */
export function watchedFds(): Map<number, string> {
  const out = new Map<number, string>();
  for (const e of Deno.readDirSync("/proc/self/fd")) {
    let target: string;
    try {
      target = Deno.readLinkSync(`/proc/self/fd/${e.name}`);
    } catch {
      continue; // closed meanwhile (the directory's own descriptor)
    }
    if (WATCHED.test(target)) out.set(Number(e.name), target);
  }
  return out;
}

/** The kind of a descriptor: "socket", "eventfd" or "eventpoll". */
function kindOf(target: string): string {
  return target.startsWith("socket:")
    ? "socket"
    : target.replace(/^anon_inode:\[?|\]$/g, "");
}

/**
 * The descriptors of each kind beyond as many as were open in `before`,
 * listed by those not open then. Counting by kind, rather than matching
 * numbers, lets Deno's runtime replace a descriptor of its own meanwhile (a
 * Worker's runtime leaves one eventfd and epoll pair that the next Worker
 * takes over).
 */
export function newFds(before: Map<number, string>): string[] {
  const now = watchedFds();
  const count = (m: Map<number, string>) => {
    const c = new Map<string, number>();
    for (const t of m.values()) c.set(kindOf(t), (c.get(kindOf(t)) ?? 0) + 1);
    return c;
  };
  const was = count(before);
  const leaked: string[] = [];
  for (const [kind, n] of count(now)) {
    if (n <= (was.get(kind) ?? 0)) continue;
    for (const [fd, target] of now) {
      if (kindOf(target) === kind && before.get(fd) !== target) {
        leaked.push(`${fd} -> ${target}`);
      }
    }
  }
  return leaked;
}

/**
 * Fails with the list of descriptors the test left open. A Worker's own
 * runtime descriptors close shortly after it ends, so the check looks again
 * for up to `settleMs` before failing.
 */
export async function assertNoNewFds(
  before: Map<number, string>,
  settleMs = 0,
): Promise<void> {
  const until = performance.now() + settleMs;
  let leaked = newFds(before);
  while (leaked.length > 0 && performance.now() < until) {
    await new Promise((r) => setTimeout(r, 20));
    leaked = newFds(before);
  }
  if (leaked.length > 0) {
    throw new Error(`descriptors left open: ${leaked.join(", ")}`);
  }
}

/** Deno.test with the descriptor leak check around it. */
export function fdTest(
  name: string,
  fn: () => void | Promise<void>,
  settleMs = 0,
): void {
  Deno.test(name, async () => {
    const before = watchedFds();
    await fn();
    await assertNoNewFds(before, settleMs);
  });
}
