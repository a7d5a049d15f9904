/**
 * OAP, the allocation header the IRMd piggybacks on FLOW_REQ / FLOW_REPLY
 * (compatible with Ouroboros 0.23.0; see spec/udp-wire.md).
 *
 * Fixed part, 36 bytes, big-endian:
 *   0 id (16) | 16 timestamp u64 ns since the epoch | 24 cipher nid u16 |
 *   26 kdf nid u16 | 28 md nid u16 | 30 crt_len u16 |
 *   32 kex_len|flags u16 (bit 15 raw key format, bit 14 client encapsulates,
 *      bits 0-13 length) | 34 data_len u16
 * then the certificate, the key-exchange data, the data, (response only) the
 * request hash, and the signature (whatever remains).
 *
 * Without certificates and encryption a request is exactly 36 bytes and a
 * response is 36 bytes plus the SHA-384 of the exact request bytes (84).
 *
 * Decoders never throw.
 */
import { sha256, sha384, sha512 } from "./digest.ts";
import { toHex } from "./hex.ts";
import { err, ok, type Result } from "../util/result.ts";

export const OAP_HDR_LEN = 36;
export const OAP_ID_LEN = 16;
/** Length of the request hash with the default digest (SHA-384). */
export const OAP_REQ_HASH_LEN = 48;
/** The response C 0.23 gives a request for crypto it does not support. */
export const ECRYPT_UNSUPPORTED = -1008;

/** OpenSSL NIDs of the digests a request may name in its md nid. */
export const NID_SHA256 = 672;
export const NID_SHA384 = 673;
export const NID_SHA512 = 674;

/** Bits of the kex_len|flags field. */
export const KEX_FLAG_RAW_KEY = 0x8000;
export const KEX_FLAG_CLIENT_ENCAP = 0x4000;
export const KEX_FLAGS_MASK = 0xc000;
export const KEX_LEN_MASK = 0x3fff;

/** The default replay window and the allowed clock skew into the future. */
export const OAP_REPLAY_WINDOW_NS = 20_000_000_000n;
export const OAP_FUTURE_SKEW_NS = 100_000_000n;

export interface OapHeader {
  /** 16 bytes */
  id: Uint8Array;
  /** ns since the Unix epoch (u64) */
  timestampNs: bigint;
  cipherNid: number;
  kdfNid: number;
  mdNid: number;
  crt: Uint8Array;
  /** bits 14-15 of the kex field (KEX_FLAG_*), in place */
  kexFlags: number;
  kex: Uint8Array;
  data: Uint8Array;
  /** the hash of the request; empty in requests */
  reqHash: Uint8Array;
  signature: Uint8Array;
}

/** A digest by its name and its length in bytes. */
export interface OapDigest {
  alg: "sha256" | "sha384" | "sha512";
  len: number;
}

const DIGEST_FNS = { sha256, sha384, sha512 } as const;

/**
 * The digest an md nid names: 0 means the default, SHA-384. Only SHA-256,
 * SHA-384 and SHA-512 are supported; any other nid is an error.
 */
export function oapDigest(mdNid: number): Result<OapDigest> {
  switch (mdNid) {
    case 0:
    case NID_SHA384:
      return ok({ alg: "sha384", len: 48 });
    case NID_SHA256:
      return ok({ alg: "sha256", len: 32 });
    case NID_SHA512:
      return ok({ alg: "sha512", len: 64 });
    default:
      return err(`unsupported OAP md nid ${mdNid}`);
  }
}

function hashBytes(alg: OapDigest["alg"], bytes: Uint8Array): Uint8Array {
  return DIGEST_FNS[alg](bytes);
}

function view(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

/**
 * Decodes an OAP header. For a response the request hash follows the data;
 * its length is that of the digest named by the header's md nid (48 for 0).
 * Every length field is checked against the bytes present. The byte arrays
 * in the result are views into `buf`.
 */
export function decodeOap(
  buf: Uint8Array,
  isResponse: boolean,
): Result<OapHeader> {
  const what = isResponse ? "OAP response" : "OAP request";
  if (buf.length < OAP_HDR_LEN) {
    return err(
      `${what} too short: ${buf.length} bytes, header is ${OAP_HDR_LEN}`,
    );
  }
  const v = view(buf);
  const timestampNs = v.getBigUint64(16);
  const cipherNid = v.getUint16(24);
  const kdfNid = v.getUint16(26);
  const mdNid = v.getUint16(28);
  const crtLen = v.getUint16(30);
  const kexField = v.getUint16(32);
  const kexLen = kexField & KEX_LEN_MASK;
  const dataLen = v.getUint16(34);
  let off = OAP_HDR_LEN;
  const take = (name: string, len: number): Result<Uint8Array> => {
    const left = buf.length - off;
    if (len > left) {
      return err(`${what}: ${name} ${len} exceeds the ${left} bytes left`);
    }
    const part = buf.subarray(off, off + len);
    off += len;
    return ok(part);
  };
  const crt = take("certificate length", crtLen);
  if (!crt.ok) return crt;
  const kex = take("key exchange length", kexLen);
  if (!kex.ok) return kex;
  const data = take("data length", dataLen);
  if (!data.ok) return data;
  let reqHash = buf.subarray(off, off);
  if (isResponse) {
    const digest = oapDigest(mdNid);
    if (!digest.ok) return err(`${what}: ${digest.error}`);
    const h = take(
      `request hash (${digest.value.alg}) length`,
      digest.value.len,
    );
    if (!h.ok) return h;
    reqHash = h.value;
  }
  return ok({
    id: buf.subarray(0, OAP_ID_LEN),
    timestampNs,
    cipherNid,
    kdfNid,
    mdNid,
    crt: crt.value,
    kexFlags: kexField & KEX_FLAGS_MASK,
    kex: kex.value,
    data: data.value,
    reqHash,
    signature: buf.subarray(off),
  });
}

function checkUint(name: string, v: number, max: number): void {
  if (!Number.isInteger(v) || v < 0 || v > max) {
    throw new RangeError(`${name} ${v} is not an integer in 0..${max}`);
  }
}

/**
 * Encodes an OAP header with all its parts (the inverse of decodeOap; a
 * request's `reqHash` must be empty). Throws a RangeError for an id that is
 * not 16 bytes or parts too long for their length fields.
 */
export function encodeOap(h: OapHeader): Uint8Array {
  if (h.id.length !== OAP_ID_LEN) {
    throw new RangeError(
      `OAP id is ${h.id.length} bytes, must be ${OAP_ID_LEN}`,
    );
  }
  if (h.timestampNs < 0n || h.timestampNs > 0xffff_ffff_ffff_ffffn) {
    throw new RangeError(`OAP timestamp ${h.timestampNs} is not a u64`);
  }
  checkUint("cipher nid", h.cipherNid, 0xffff);
  checkUint("kdf nid", h.kdfNid, 0xffff);
  checkUint("md nid", h.mdNid, 0xffff);
  checkUint("certificate length", h.crt.length, 0xffff);
  checkUint("key exchange length", h.kex.length, KEX_LEN_MASK);
  checkUint("data length", h.data.length, 0xffff);
  if ((h.kexFlags & ~KEX_FLAGS_MASK) !== 0) {
    throw new RangeError(
      `kex flags 0x${h.kexFlags.toString(16)} outside bits 14-15`,
    );
  }
  const total = OAP_HDR_LEN + h.crt.length + h.kex.length + h.data.length +
    h.reqHash.length + h.signature.length;
  const buf = new Uint8Array(total);
  const v = view(buf);
  buf.set(h.id, 0);
  v.setBigUint64(16, h.timestampNs);
  v.setUint16(24, h.cipherNid);
  v.setUint16(26, h.kdfNid);
  v.setUint16(28, h.mdNid);
  v.setUint16(30, h.crt.length);
  v.setUint16(32, h.kexFlags | h.kex.length);
  v.setUint16(34, h.data.length);
  let off = OAP_HDR_LEN;
  for (const part of [h.crt, h.kex, h.data, h.reqHash, h.signature]) {
    buf.set(part, off);
    off += part.length;
  }
  return buf;
}

/**
 * The wall clock in ns since the epoch: Date.now() in ms plus the sub-ms
 * fraction of performance.now() (not exact below 1 ms, which nothing needs).
 */
export function wallClockNs(): bigint {
  const subMs = Math.floor((performance.now() % 1) * 1_000_000);
  return BigInt(Date.now()) * 1_000_000n + BigInt(subMs);
}

function randomId(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(OAP_ID_LEN));
}

function empty(): Uint8Array {
  return new Uint8Array(0);
}

/**
 * A request without certificate or encryption: 36 bytes, a fresh random id
 * and the wall-clock timestamp unless given, every other field 0.
 */
export function buildOapRequest(
  opts?: { id?: Uint8Array; nowNs?: bigint },
): Uint8Array {
  return encodeOap({
    id: opts?.id ?? randomId(),
    timestampNs: opts?.nowNs ?? wallClockNs(),
    cipherNid: 0,
    kdfNid: 0,
    mdNid: 0,
    crt: empty(),
    kexFlags: 0,
    kex: empty(),
    data: empty(),
    reqHash: empty(),
    signature: empty(),
  });
}

/**
 * The response to a request (without certificate or encryption): 36 bytes
 * with the request's id, a fresh timestamp and zeros (the md nid copied from
 * the request, 0 in practice), then the digest of the exact request bytes
 * (SHA-384 for md nid 0: 84 bytes in all). Fails when the request does not
 * decode or names an unsupported digest. It does not check the request's
 * crypto fields or timestamp: see checkOapRequest and ReplayGuard.
 */
export function buildOapResponse(
  request: Uint8Array,
  opts?: { nowNs?: bigint },
): Result<Uint8Array> {
  const req = decodeOap(request, false);
  if (!req.ok) return req;
  const digest = oapDigest(req.value.mdNid);
  if (!digest.ok) return digest;
  return ok(encodeOap({
    id: req.value.id,
    timestampNs: opts?.nowNs ?? wallClockNs(),
    cipherNid: 0,
    kdfNid: 0,
    mdNid: req.value.mdNid,
    crt: empty(),
    kexFlags: 0,
    kex: empty(),
    data: empty(),
    reqHash: hashBytes(digest.value.alg, request),
    signature: empty(),
  }));
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The client's check of a response against the request it sent: the id
 * must be the request's, and the request hash the digest of the exact
 * request bytes. A response that sets up encryption (cipher, kdf, key
 * exchange) is refused, since we asked for none. A certificate and
 * signature, if a server adds them, are not verified (no CA support).
 * The response's timestamp is not checked.
 */
export function verifyOapResponse(
  request: Uint8Array,
  response: Uint8Array,
): Result<void> {
  const req = decodeOap(request, false);
  if (!req.ok) return err(`bad request: ${req.error}`);
  const res = decodeOap(response, true);
  if (!res.ok) return err(`bad response: ${res.error}`);
  const r = res.value;
  if (!bytesEqual(r.id, req.value.id)) {
    return err(
      `OAP response id ${toHex(r.id)} does not match request id ${
        toHex(req.value.id)
      }`,
    );
  }
  if (
    r.cipherNid !== 0 || r.kdfNid !== 0 || r.kex.length !== 0 ||
    r.kexFlags !== 0
  ) {
    return err(
      `OAP response sets up encryption we did not ask for (cipher nid ${r.cipherNid}, kdf nid ${r.kdfNid}, kex ${r.kex.length} bytes, flags 0x${
        r.kexFlags.toString(16)
      })`,
    );
  }
  const digest = oapDigest(req.value.mdNid);
  if (!digest.ok) return err(`bad request: ${digest.error}`);
  const expected = hashBytes(digest.value.alg, request);
  if (!bytesEqual(r.reqHash, expected)) {
    return err(
      `OAP response request hash (${digest.value.alg}) does not match the request: got ${
        toHex(r.reqHash)
      }, expected ${toHex(expected)}`,
    );
  }
  return ok(undefined);
}

/**
 * Refuses a request for crypto we do not support (answer ECRYPT_UNSUPPORTED):
 * a cipher, a kdf, a certificate, a key exchange (or its flags), a signature
 * (it cannot be verified without a certificate), or an unknown md nid.
 */
export function checkOapCrypto(req: OapHeader): Result<void> {
  if (req.cipherNid !== 0) {
    return err(
      `OAP request asks for cipher nid ${req.cipherNid}: not supported`,
    );
  }
  if (req.kdfNid !== 0) {
    return err(`OAP request asks for kdf nid ${req.kdfNid}: not supported`);
  }
  if (req.crt.length !== 0) {
    return err(
      `OAP request carries a ${req.crt.length}-byte certificate: not supported`,
    );
  }
  if (req.kex.length !== 0 || req.kexFlags !== 0) {
    return err(
      `OAP request asks for a key exchange (${req.kex.length} bytes, flags 0x${
        req.kexFlags.toString(16)
      }): not supported`,
    );
  }
  if (req.signature.length !== 0) {
    return err(
      `OAP request carries a ${req.signature.length}-byte signature: not supported`,
    );
  }
  const digest = oapDigest(req.mdNid);
  if (!digest.ok) return err(`OAP request: ${digest.error}`);
  return ok(undefined);
}

/**
 * Checks a request's timestamp against `nowNs`: at most `futureNs` ahead
 * (default 100 ms) and at most `windowNs` old (default 20 s).
 */
export function checkOapTimestamp(
  timestampNs: bigint,
  nowNs: bigint,
  windowNs: bigint = OAP_REPLAY_WINDOW_NS,
  futureNs: bigint = OAP_FUTURE_SKEW_NS,
): Result<void> {
  if (timestampNs > nowNs + futureNs) {
    return err(
      `OAP request timestamp is ${
        fmtMs(timestampNs - nowNs)
      } ms in the future (limit ${fmtMs(futureNs)} ms)`,
    );
  }
  if (timestampNs < nowNs - windowNs) {
    return err(
      `OAP request timestamp is ${fmtMs(nowNs - timestampNs)} ms old (limit ${
        fmtMs(windowNs)
      } ms)`,
    );
  }
  return ok(undefined);
}

function fmtMs(ns: bigint): string {
  return (Number(ns) / 1e6).toFixed(3);
}

/**
 * The server's checks of a request short of replay: supported crypto
 * (checkOapCrypto, answer ECRYPT_UNSUPPORTED) and a fresh timestamp
 * (checkOapTimestamp). Replay is ReplayGuard's.
 */
export function checkOapRequest(req: OapHeader, nowNs: bigint): Result<void> {
  const c = checkOapCrypto(req);
  if (!c.ok) return c;
  return checkOapTimestamp(req.timestampNs, nowNs);
}

/**
 * Refuses stale, future and replayed requests: a timestamp more than
 * `futureNs` ahead or more than `windowNs` old, or an (id, timestamp) pair
 * accepted in the last `windowNs`. Entries expire once their timestamp
 * falls out of the window (such a request is refused as too old anyway);
 * at most `maxEntries` are kept, the oldest dropped first.
 */
export class ReplayGuard {
  readonly windowNs: bigint;
  readonly futureNs: bigint;
  readonly maxEntries: number;
  /** key (id hex + timestamp) -> timestamp, in insertion order */
  #seen = new Map<string, bigint>();

  constructor(
    windowNs: bigint = OAP_REPLAY_WINDOW_NS,
    futureNs: bigint = OAP_FUTURE_SKEW_NS,
    maxEntries = 100_000,
  ) {
    if (!Number.isInteger(maxEntries) || maxEntries < 1) {
      throw new RangeError(
        `maxEntries ${maxEntries} must be a positive integer`,
      );
    }
    this.windowNs = windowNs;
    this.futureNs = futureNs;
    this.maxEntries = maxEntries;
  }

  /** The number of (id, timestamp) pairs remembered. */
  get size(): number {
    return this.#seen.size;
  }

  /** Checks `req` and, when it passes, remembers it. */
  check(req: OapHeader, nowNs: bigint): Result<void> {
    const t = checkOapTimestamp(
      req.timestampNs,
      nowNs,
      this.windowNs,
      this.futureNs,
    );
    if (!t.ok) return t;
    this.#expire(nowNs);
    const key = `${toHex(req.id)}/${req.timestampNs}`;
    if (this.#seen.has(key)) {
      return err(
        `replay: OAP request ${
          toHex(req.id)
        } with timestamp ${req.timestampNs} was seen before`,
      );
    }
    while (this.#seen.size >= this.maxEntries) {
      const oldest = this.#seen.keys().next();
      if (oldest.done) break;
      this.#seen.delete(oldest.value);
    }
    this.#seen.set(key, req.timestampNs);
    return ok(undefined);
  }

  /** Drops entries from the front while they are out of the window. */
  #expire(nowNs: bigint): void {
    const limit = nowNs - this.windowNs;
    for (const [key, ts] of this.#seen) {
      if (ts >= limit) break;
      this.#seen.delete(key);
    }
  }
}
