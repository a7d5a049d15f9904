/**
 * Socket addresses: the text forms of IPv4 and IPv6 addresses, and
 * sockaddr_in, sockaddr_in6 and sockaddr_un over DataView (pure: no FFI).
 *
 * Ports and IPv4/IPv6 addresses are in network byte order in the structs, as
 * is sin6_flowinfo; sa_family and sin6_scope_id are in host order
 * (little-endian on both supported architectures).
 */
import { AF_INET, AF_INET6, AF_UNIX } from "./constants.ts";
import { hostLayout, type Layout } from "./layout.ts";
import { invalid, sysOk, type SysResult } from "./result.ts";

export interface Inet4SockAddr {
  readonly family: "inet";
  readonly host: string;
  readonly port: number;
}

export interface Inet6SockAddr {
  readonly family: "inet6";
  readonly host: string;
  readonly port: number;
  readonly flowinfo?: number;
  readonly scopeId?: number;
}

export interface UnixSockAddr {
  readonly family: "unix";
  /** A file system path, or "\0name" for a name in the abstract namespace. */
  readonly path: string;
}

export type SockAddr = Inet4SockAddr | Inet6SockAddr | UnixSockAddr;

// IPv4 text.

/** The 4 bytes of a dotted-quad IPv4 address, or null if `s` is not one. */
export function parseIPv4(s: string): Uint8Array | null {
  const parts = s.split(".");
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return null;
    const v = Number(p);
    if (v > 255) return null;
    out[i] = v;
  }
  return out;
}

export function formatIPv4(b: Uint8Array, off = 0): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

// IPv6 text.

export interface ParsedIPv6 {
  readonly bytes: Uint8Array;
  /** The numeric zone after "%", 0 without one. */
  readonly scopeId: number;
}

/**
 * The 16 bytes of an IPv6 address in its text form (RFC 4291 section 2.2:
 * hex groups, one "::", a dotted-quad tail), with an optional numeric zone
 * ("fe80::1%2"); null if `s` is not one.
 */
export function parseIPv6(s: string): ParsedIPv6 | null {
  let text = s;
  let scopeId = 0;
  const pct = text.indexOf("%");
  if (pct >= 0) {
    const zone = text.slice(pct + 1);
    if (!/^[0-9]{1,10}$/.test(zone)) return null;
    scopeId = Number(zone);
    if (scopeId > 0xffff_ffff) return null;
    text = text.slice(0, pct);
  }
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const head = groupsOf(halves[0]!);
  const tail = halves.length === 2 ? groupsOf(halves[1]!) : [];
  if (head === null || tail === null) return null;
  // A dotted quad may only end the address.
  const last = halves.length === 2 ? tail : head;
  for (const g of halves.length === 2 ? head : []) {
    if (g.includes(".")) return null;
  }
  for (let i = 0; i < last.length - 1; i++) {
    if (last[i]!.includes(".")) return null;
  }
  const words: number[] = [];
  const toWords = (gs: string[]): boolean => {
    for (const g of gs) {
      if (g.includes(".")) {
        const v4 = parseIPv4(g);
        if (v4 === null) return false;
        words.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return false;
        words.push(parseInt(g, 16));
      }
    }
    return true;
  };
  if (!toWords(head)) return null;
  const headWords = words.length;
  if (!toWords(tail)) return null;
  const tailWords = words.length - headWords;
  const bytes = new Uint8Array(16);
  if (halves.length === 1) {
    if (words.length !== 8) return null;
  } else if (words.length > 7) {
    return null;
  }
  for (let i = 0; i < headWords; i++) {
    bytes[2 * i] = words[i]! >> 8;
    bytes[2 * i + 1] = words[i]! & 0xff;
  }
  for (let i = 0; i < tailWords; i++) {
    const at = 8 - tailWords + i;
    const w = words[headWords + i]!;
    bytes[2 * at] = w >> 8;
    bytes[2 * at + 1] = w & 0xff;
  }
  return { bytes, scopeId };
}

/** The colon-separated groups of one side of "::" ([] for an empty side). */
function groupsOf(side: string): string[] | null {
  if (side === "") return [];
  const gs = side.split(":");
  return gs.some((g) => g === "") ? null : gs;
}

/**
 * The RFC 5952 text form of 16 bytes: lower-case hex without leading zeros,
 * the first longest run of two or more zero groups as "::", and an
 * IPv4-mapped address (::ffff:a.b.c.d) with its dotted quad.
 */
export function formatIPv6(b: Uint8Array, off = 0): string {
  const w: number[] = [];
  for (let i = 0; i < 8; i++) {
    w.push((b[off + 2 * i]! << 8) | b[off + 2 * i + 1]!);
  }
  if (
    w[0] === 0 && w[1] === 0 && w[2] === 0 && w[3] === 0 && w[4] === 0 &&
    w[5] === 0xffff
  ) {
    return `::ffff:${formatIPv4(b, off + 12)}`;
  }
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (ws: number[]) => ws.map((x) => x.toString(16)).join(":");
  if (bestAt < 0) return hex(w);
  return `${hex(w.slice(0, bestAt))}::${hex(w.slice(bestAt + bestLen))}`;
}

// Structs.

/**
 * The socket address for a host and port: IPv6 when the host has a colon,
 * IPv4 otherwise. Host names are not resolved.
 */
export function inetAddr(host: string, port: number): SysResult<SockAddr> {
  if (host.includes(":")) {
    const p = parseIPv6(host);
    if (p === null) return invalid("sockaddr", `not an IPv6 address: ${host}`);
    return sysOk({
      family: "inet6",
      host: formatIPv6(p.bytes),
      port,
      scopeId: p.scopeId,
    });
  }
  if (parseIPv4(host) === null) {
    return invalid("sockaddr", `not an IPv4 address: ${host}`);
  }
  return sysOk({ family: "inet", host, port });
}

function checkPort(port: number): string | null {
  return Number.isInteger(port) && port >= 0 && port <= 0xffff
    ? null
    : `port ${port} is not an integer from 0 to 65535`;
}

/**
 * Writes a socket address at `off` and returns its length (the socklen_t to
 * pass with it). The view must have room for it (128 bytes always do).
 */
export function encodeSockAddr(
  dv: DataView,
  off: number,
  a: SockAddr,
  L: Layout,
): SysResult<number> {
  switch (a.family) {
    case "inet": {
      const bad = checkPort(a.port);
      if (bad !== null) return invalid("sockaddr", bad);
      const ip = parseIPv4(a.host);
      if (ip === null) {
        return invalid("sockaddr", `not an IPv4 address: ${a.host}`);
      }
      const f = L.sockaddrIn;
      for (let i = 0; i < f.size; i++) dv.setUint8(off + i, 0);
      dv.setUint16(off + f.family, AF_INET, true);
      dv.setUint16(off + f.port, a.port, false);
      for (let i = 0; i < 4; i++) dv.setUint8(off + f.addr + i, ip[i]!);
      return sysOk(f.size);
    }
    case "inet6": {
      const bad = checkPort(a.port);
      if (bad !== null) return invalid("sockaddr", bad);
      const ip = parseIPv6(a.host);
      if (ip === null) {
        return invalid("sockaddr", `not an IPv6 address: ${a.host}`);
      }
      const f = L.sockaddrIn6;
      for (let i = 0; i < f.size; i++) dv.setUint8(off + i, 0);
      dv.setUint16(off + f.family, AF_INET6, true);
      dv.setUint16(off + f.port, a.port, false);
      dv.setUint32(off + f.flowinfo, (a.flowinfo ?? 0) >>> 0, false);
      for (let i = 0; i < 16; i++) dv.setUint8(off + f.addr + i, ip.bytes[i]!);
      const scope = a.scopeId ?? 0;
      dv.setUint32(
        off + f.scopeId,
        (scope !== 0 ? scope : ip.scopeId) >>> 0,
        true,
      );
      return sysOk(f.size);
    }
    case "unix": {
      const f = L.sockaddrUn;
      const abstract = a.path.startsWith("\0");
      const bytes = new TextEncoder().encode(
        abstract ? a.path.slice(1) : a.path,
      );
      // A path needs its NUL; an abstract name has its leading NUL instead.
      if (bytes.length + 1 > f.pathSize) {
        return invalid(
          "sockaddr",
          `unix socket path of ${bytes.length} bytes, at most ${
            f.pathSize - 1
          }`,
        );
      }
      if (!abstract && bytes.length === 0) {
        return invalid("sockaddr", "empty unix socket path");
      }
      if (!abstract && bytes.includes(0)) {
        return invalid("sockaddr", "NUL in unix socket path");
      }
      dv.setUint16(off + f.family, AF_UNIX, true);
      let at = off + f.path;
      if (abstract) dv.setUint8(at++, 0);
      for (const c of bytes) dv.setUint8(at++, c);
      if (!abstract) dv.setUint8(at++, 0);
      return sysOk(at - off);
    }
  }
}

/** Reads a socket address of `len` bytes (as the kernel returned it) at `off`. */
export function decodeSockAddr(
  dv: DataView,
  off: number,
  len: number,
  L: Layout,
): SysResult<SockAddr> {
  if (len < 2) return invalid("sockaddr", `socket address of ${len} bytes`);
  const family = dv.getUint16(off, true);
  const bytesAt = (at: number, n: number) =>
    new Uint8Array(dv.buffer, dv.byteOffset + at, n);
  if (family === AF_INET) {
    const f = L.sockaddrIn;
    if (len < f.size) return invalid("sockaddr", `sockaddr_in of ${len} bytes`);
    return sysOk({
      family: "inet",
      host: formatIPv4(bytesAt(off + f.addr, 4)),
      port: dv.getUint16(off + f.port, false),
    });
  }
  if (family === AF_INET6) {
    const f = L.sockaddrIn6;
    if (len < f.size) {
      return invalid("sockaddr", `sockaddr_in6 of ${len} bytes`);
    }
    return sysOk({
      family: "inet6",
      host: formatIPv6(bytesAt(off + f.addr, 16)),
      port: dv.getUint16(off + f.port, false),
      flowinfo: dv.getUint32(off + f.flowinfo, false),
      scopeId: dv.getUint32(off + f.scopeId, true),
    });
  }
  if (family === AF_UNIX) {
    const f = L.sockaddrUn;
    const n = Math.min(len, f.size) - f.path;
    const raw = bytesAt(off + f.path, Math.max(0, n));
    if (raw.length > 0 && raw[0] === 0) {
      return sysOk({
        family: "unix",
        path: "\0" + new TextDecoder().decode(raw.subarray(1)),
      });
    }
    const nul = raw.indexOf(0);
    const path = new TextDecoder().decode(nul < 0 ? raw : raw.subarray(0, nul));
    return sysOk({ family: "unix", path });
  }
  return invalid("sockaddr", `address family ${family}`);
}

/**
 * A socket address encoded once, for the calls that take one (sendBatch's
 * destinations, sendTo): the bytes are the struct and their length its
 * socklen_t.
 */
export function packSockAddr(
  a: SockAddr,
  L: Layout = hostLayout(),
): SysResult<Uint8Array> {
  const scratch = new Uint8Array(L.sockaddrStorageSize);
  const n = encodeSockAddr(new DataView(scratch.buffer), 0, a, L);
  return n.ok ? sysOk(scratch.slice(0, n.value)) : n;
}

/** packSockAddr(inetAddr(host, port)). */
export function packAddr(
  host: string,
  port: number,
  L: Layout = hostLayout(),
): SysResult<Uint8Array> {
  const a = inetAddr(host, port);
  return a.ok ? packSockAddr(a.value, L) : a;
}

/** The address in bytes that packSockAddr() or the kernel produced. */
export function unpackSockAddr(
  raw: Uint8Array,
  L: Layout = hostLayout(),
): SysResult<SockAddr> {
  return decodeSockAddr(
    new DataView(raw.buffer, raw.byteOffset, raw.byteLength),
    0,
    raw.byteLength,
    L,
  );
}
