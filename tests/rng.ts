/**
 * Reproducible pseudo-random streams for the fuzz tests (xorshift32): a
 * failing run can be repeated from its seed.
 */

/** Unsigned 32-bit numbers. */
export function xorshift32(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

/** The same stream as numbers in [0, 1). */
export function uniform(seed: number): () => number {
  const next = xorshift32(seed);
  return () => next() / 0x1_0000_0000;
}
