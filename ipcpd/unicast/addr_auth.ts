/**
 * The address authority of a unicast layer: the flat policy
 * (spec/unicast.md 3), the only one there is. Each member draws its own
 * address when it bootstraps or enrolls: `addrSize` random bytes, never 0
 * ("no address"). Nobody assigns or checks it; a duplicate shows up later
 * as an LSA or DHT contact with our address and another identity, which
 * the routing and directory cores count.
 */

/** Draws a flat address of `addrSize` bytes (1..8): uniformly random, non-zero. */
export function flatAddress(
  addrSize: number,
  random: (n: number) => Uint8Array = (n) =>
    crypto.getRandomValues(new Uint8Array(n)),
): bigint {
  if (!Number.isInteger(addrSize) || addrSize < 1 || addrSize > 8) {
    throw new RangeError(`addr_size ${addrSize} is not 1..8 bytes`);
  }
  for (;;) {
    const b = random(addrSize);
    let a = 0n;
    for (const x of b) a = a << 8n | BigInt(x);
    if (a !== 0n) return a;
  }
}

/** An address as C logs it: four hex bytes in memory order, low byte first. */
export function addrMemoryHex(addr: bigint, addrSize = 4): string {
  const out: string[] = [];
  let a = addr;
  for (let i = 0; i < addrSize; i++) {
    out.push(Number(a & 0xffn).toString(16).padStart(2, "0"));
    a >>= 8n;
  }
  return out.join(".");
}
