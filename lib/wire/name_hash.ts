/**
 * Name hashing. A layer knows a name by a hash of its UTF-8 bytes (no
 * terminator): on the wire (FLOW_REQ) and in the registrations of its
 * IPCPs, and in a directory by the lowercase hex of that digest.
 *
 * UDP layers always use MD5 (16 bytes). Local (and unicast) layers use the
 * layer's directory hash, SHA3-256 unless the bootstrap chose SHA3-224,
 * SHA3-384 or SHA3-512 (`irm ipcp bootstrap ... hash SHA3_384`).
 */
import { md5 } from "./digest.ts";
import { toHex } from "./hex.ts";
import { sha3 } from "./sha3.ts";

export { fromHex, toHex } from "./hex.ts";

/** Length of a name hash in a UDP layer (MD5). */
export const NAME_HASH_LEN = 16;

/** The hash algorithms of layers, as irm and irmd.conf spell them. */
export const HASH_ALGOS = [
  "SHA3_224",
  "SHA3_256",
  "SHA3_384",
  "SHA3_512",
  "MD5",
] as const;
export type HashAlgo = typeof HASH_ALGOS[number];

/** The SHA3 algorithms: those a local layer may use. */
export const SHA3_ALGOS = [
  "SHA3_224",
  "SHA3_256",
  "SHA3_384",
  "SHA3_512",
] as const satisfies readonly HashAlgo[];
export type Sha3Algo = typeof SHA3_ALGOS[number];

/** Whether a hash algorithm is one of SHA3's (the local and unicast layers'). */
export function isSha3(a: string): a is Sha3Algo {
  return (SHA3_ALGOS as readonly string[]).includes(a);
}

/** The hash of a local layer unless its bootstrap says otherwise. */
export const DEFAULT_LOCAL_HASH: Sha3Algo = "SHA3_256";

/** Bytes of a digest of each algorithm. */
export const HASH_LEN: Readonly<Record<HashAlgo, number>> = {
  SHA3_224: 28,
  SHA3_256: 32,
  SHA3_384: 48,
  SHA3_512: 64,
  MD5: 16,
};

/** Whether `n` bytes is the length of some algorithm's digest. */
export function isHashLength(n: number): boolean {
  return HASH_ALGOS.some((a) => HASH_LEN[a] === n);
}

/** The algorithm that `word` names (any case), or undefined. */
export function parseHashAlgo(word: string): HashAlgo | undefined {
  const up = word.toUpperCase();
  return HASH_ALGOS.find((a) => a === up);
}

const encoder = new TextEncoder();

/** The MD5 of the UTF-8 bytes of `name`: 16 bytes (UDP layers). */
export function nameHash(name: string): Uint8Array {
  return md5(encoder.encode(name));
}

/** The hash of the UTF-8 bytes of `name` with `algo`. */
export function nameHashWith(algo: HashAlgo, name: string): Uint8Array {
  const bytes = encoder.encode(name);
  switch (algo) {
    case "MD5":
      return md5(bytes);
    case "SHA3_224":
      return sha3(224, bytes);
    case "SHA3_256":
      return sha3(256, bytes);
    case "SHA3_384":
      return sha3(384, bytes);
    case "SHA3_512":
      return sha3(512, bytes);
  }
}

/** The directory key of `name`: lowercase hex of its MD5 (32 characters). */
export function nameHashHex(name: string): string {
  return toHex(nameHash(name));
}
