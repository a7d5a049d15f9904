/**
 * Deadlines that share one timer: each request or allocation in flight has
 * a deadline, and most are settled long before it. A timer apiece is armed
 * and cleared once per request (a few microseconds each in Deno, several
 * per allocation across the processes). Here one timer stands for the
 * earliest deadline: adding a later one, or settling one, touches no timer;
 * when the timer fires, what is due is expired and the timer is armed again
 * for the earliest that is left, if any. Each deadline fires when it falls
 * due (to the timer's own precision), never before, as its own timer would.
 *
 * The timer keeps the event loop alive while it is armed, as the timers it
 * replaces did while their requests were in flight; `clear()` disarms it.
 */
export class Deadlines<K> {
  /** Deadlines by key (performance.now() times), with what each does. */
  #due = new Map<K, { at: number; fire: () => void }>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** When the armed timer falls due (Infinity when none is armed). */
  #timerAt = Infinity;
  readonly #onTimer = () => this.#expire();

  /** How many deadlines are pending. */
  get size(): number {
    return this.#due.size;
  }

  /** Calls `fire` in `ms` unless `delete(key)` comes first; replaces a pending one. */
  add(key: K, ms: number, fire: () => void): void {
    const at = performance.now() + Math.max(0, ms);
    this.#due.set(key, { at, fire });
    if (at < this.#timerAt) this.#arm(at);
  }

  /** Settles a deadline: it never fires. */
  delete(key: K): boolean {
    return this.#due.delete(key);
  }

  /** Drops every deadline and disarms the timer. */
  clear(): void {
    this.#due.clear();
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
  }

  #arm(at: number): void {
    clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(
      this.#onTimer,
      Math.max(0, Math.ceil(at - performance.now())),
    );
  }

  #expire(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const now = performance.now();
    const fired: (() => void)[] = [];
    let next = Infinity;
    for (const [key, d] of this.#due) {
      if (d.at <= now) {
        this.#due.delete(key);
        fired.push(d.fire);
      } else if (d.at < next) next = d.at;
    }
    if (next !== Infinity) this.#arm(next);
    for (const fire of fired) {
      try {
        fire();
      } catch (e) {
        // Reported as a timer's own callback would be, the others fire.
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }
}
