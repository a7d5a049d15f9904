/**
 * SHA3-224/256/384/512 (FIPS 202), in plain TypeScript: the name hashes of
 * local and unicast layers. Like lib/wire/digest.ts, it keeps node:crypto
 * out of the processes; inputs are names of a few bytes.
 *
 * Keccak-f[1600] works on 25 lanes of 64 bits, each kept as two 32-bit
 * halves (low word first) so that no BigInt arithmetic is needed. The
 * rotation offsets and round constants are derived as FIPS 202 defines
 * them (3.2.2 and 3.2.5) rather than copied in; the tests check every
 * digest against node:crypto.
 */

const ROUNDS = 24;

/** Rotation offset of lane x + 5y (FIPS 202, 3.2.2). */
const RHO = new Uint8Array(25);
/** Where ρ then π move lane i: lane y + 5((2x + 3y) mod 5). */
const PI = new Uint8Array(25);
/** The round constants, low and high halves (FIPS 202, 3.2.5). */
const RC = new Uint32Array(2 * ROUNDS);

{
  let x = 1;
  let y = 0;
  for (let t = 0; t < 24; t++) {
    RHO[x + 5 * y] = (((t + 1) * (t + 2)) / 2) % 64;
    [x, y] = [y, (2 * x + 3 * y) % 5];
  }
  for (let i = 0; i < 25; i++) {
    const xi = i % 5;
    const yi = Math.floor(i / 5);
    PI[i] = yi + 5 * ((2 * xi + 3 * yi) % 5);
  }
  // rc(t): the output bit of an 8-bit LFSR with x^8 + x^6 + x^5 + x^4 + 1;
  // round i sets bit 2^j - 1 of its constant to rc(j + 7i), j = 0..6.
  let r = 1;
  for (let round = 0; round < ROUNDS; round++) {
    for (let j = 0; j < 7; j++) {
      if ((r & 1) !== 0) {
        const bit = (1 << j) - 1;
        if (bit < 32) RC[2 * round]! |= 1 << bit;
        else RC[2 * round + 1]! |= 1 << (bit - 32);
      }
      r = ((r << 1) ^ ((r & 0x80) !== 0 ? 0x71 : 0)) & 0xff;
    }
  }
}

const C = new Uint32Array(10);
const B = new Uint32Array(50);

/** Keccak-f[1600] on `s` (50 words: lane i is s[2i] low, s[2i+1] high). */
function keccakF(s: Uint32Array): void {
  for (let round = 0; round < ROUNDS; round++) {
    // θ
    for (let x = 0; x < 5; x++) {
      C[2 * x] = s[2 * x]! ^ s[2 * x + 10]! ^ s[2 * x + 20]! ^
        s[2 * x + 30]! ^ s[2 * x + 40]!;
      C[2 * x + 1] = s[2 * x + 1]! ^ s[2 * x + 11]! ^ s[2 * x + 21]! ^
        s[2 * x + 31]! ^ s[2 * x + 41]!;
    }
    for (let x = 0; x < 5; x++) {
      const p = (x + 4) % 5;
      const n = (x + 1) % 5;
      const nLo = C[2 * n]!;
      const nHi = C[2 * n + 1]!;
      const dLo = C[2 * p]! ^ ((nLo << 1) | (nHi >>> 31));
      const dHi = C[2 * p + 1]! ^ ((nHi << 1) | (nLo >>> 31));
      for (let y = 0; y < 25; y += 5) {
        s[2 * (x + y)]! ^= dLo;
        s[2 * (x + y) + 1]! ^= dHi;
      }
    }
    // ρ and π
    for (let i = 0; i < 25; i++) {
      const lo = s[2 * i]!;
      const hi = s[2 * i + 1]!;
      const n = RHO[i]!;
      const j = 2 * PI[i]!;
      if (n === 0) {
        B[j] = lo;
        B[j + 1] = hi;
      } else if (n < 32) {
        B[j] = (lo << n) | (hi >>> (32 - n));
        B[j + 1] = (hi << n) | (lo >>> (32 - n));
      } else if (n === 32) {
        B[j] = hi;
        B[j + 1] = lo;
      } else {
        const m = n - 32;
        B[j] = (hi << m) | (lo >>> (32 - m));
        B[j + 1] = (lo << m) | (hi >>> (32 - m));
      }
    }
    // χ
    for (let y = 0; y < 25; y += 5) {
      for (let x = 0; x < 5; x++) {
        const i = 2 * (x + y);
        const a = 2 * (((x + 1) % 5) + y);
        const b = 2 * (((x + 2) % 5) + y);
        s[i] = B[i]! ^ (~B[a]! & B[b]!);
        s[i + 1] = B[i + 1]! ^ (~B[a + 1]! & B[b + 1]!);
      }
    }
    // ι
    s[0]! ^= RC[2 * round]!;
    s[1]! ^= RC[2 * round + 1]!;
  }
}

/** SHA3 with a digest of `bits` (224, 256, 384 or 512) of `msg`. */
export function sha3(bits: 224 | 256 | 384 | 512, msg: Uint8Array): Uint8Array {
  const outLen = bits / 8;
  const rate = 200 - 2 * outLen;
  // The message, then the domain bits 01, then pad10*1 to a whole block.
  const blocks = Math.floor(msg.length / rate) + 1;
  const padded = new Uint8Array(blocks * rate);
  padded.set(msg);
  padded[msg.length]! ^= 0x06;
  padded[padded.length - 1]! ^= 0x80;
  const v = new DataView(padded.buffer);
  const s = new Uint32Array(50);
  for (let off = 0; off < padded.length; off += rate) {
    for (let w = 0; w < rate / 4; w++) {
      s[w]! ^= v.getUint32(off + 4 * w, true);
    }
    keccakF(s);
  }
  // Every output length is shorter than the rate: one block out.
  const out = new Uint8Array(Math.ceil(outLen / 4) * 4);
  const ov = new DataView(out.buffer);
  for (let w = 0; w < out.length / 4; w++) ov.setUint32(4 * w, s[w]!, true);
  return out.slice(0, outLen);
}
