import { err, ok, type Result } from "./result.ts";

/**
 * Strict validators for IP address literals, as written in configuration
 * files: no prefix lengths, no zone ids, no brackets, no leading zeros in IPv4
 * octets (they are ambiguous: inet_aton reads them as octal).
 */

const DEC_OCTET = /^(?:0|[1-9][0-9]{0,2})$/;
const HEX_GROUP = /^[0-9A-Fa-f]{1,4}$/;

/** True for a dotted-quad IPv4 literal such as `192.168.0.2`. */
export function isIPv4(s: string): boolean {
  const parts = s.split(".");
  if (parts.length !== 4) return false;
  for (const p of parts) {
    if (!DEC_OCTET.test(p) || Number(p) > 255) return false;
  }
  return true;
}

/**
 * True for an IPv6 literal in any RFC 4291 text form: eight groups, `::` for
 * one or more zero groups (at most once), an embedded IPv4 tail
 * (`::ffff:10.0.0.1`). Zone ids (`fe80::1%eth0`) and brackets are refused.
 */
export function isIPv6(s: string): boolean {
  if (s.length === 0 || s.length > 45) return false;
  const halves = s.split("::");
  if (halves.length > 2) return false;
  const compressed = halves.length === 2;
  const groups: string[] = [];
  for (const half of halves) {
    if (half === "") continue;
    groups.push(...half.split(":"));
  }
  // A trailing IPv4 part is only allowed as the very last element.
  let count = 0;
  for (let i = 0; i < groups.length; i++) {
    const g = groups[i] ?? "";
    const last = i === groups.length - 1;
    if (last && g.includes(".")) {
      // The IPv4 tail must end the address, not precede "::".
      if (compressed && (halves[1] ?? "") === "") return false;
      if (!isIPv4(g)) return false;
      count += 2;
    } else if (HEX_GROUP.test(g)) {
      count += 1;
    } else {
      return false; // empty group (":::", leading/trailing ":"), bad digits
    }
  }
  return compressed ? count <= 7 : count === 8;
}

/** The family of an IP literal, or undefined if it is neither. */
export function ipFamily(s: string): 4 | 6 | undefined {
  if (isIPv4(s)) return 4;
  if (isIPv6(s)) return 6;
  return undefined;
}

/** The default port of a DNS server. */
export const DEFAULT_DNS_PORT = 53;

function short(s: string): string {
  const q = JSON.stringify(s);
  return q.length <= 60 ? q : `${q.slice(0, 56)}..."`;
}

export interface HostPort {
  host: string;
  port: number;
}

/**
 * Parses a DNS server address for an IPCP of the given family: `addr` or
 * `addr:port` for IPv4; `addr`, `[addr]` or `[addr]:port` for IPv6. The port
 * defaults to 53.
 */
export function parseDnsAddress(
  s: string,
  family: 4 | 6,
): Result<HostPort> {
  const bad = `invalid DNS server address ${short(s)}`;
  let host = s;
  let portText: string | undefined;
  const m = /^\[([^\]]*)\](?::(.*))?$/.exec(s);
  if (m !== null) {
    host = m[1] ?? "";
    portText = m[2];
    if (!isIPv6(host)) {
      return err(`${bad}: only IPv6 addresses go in brackets`);
    }
  } else if (!isIPv6(s)) {
    const colon = s.lastIndexOf(":");
    if (colon >= 0) {
      host = s.slice(0, colon);
      portText = s.slice(colon + 1);
    }
  }
  const found = isIPv4(host) ? 4 : isIPv6(host) ? 6 : undefined;
  if (found === undefined) {
    return err(
      `${bad}: expected "addr", "addr:port" or "[IPv6 addr]:port" ` +
        `with an IPv${family} address`,
    );
  }
  if (found !== family) {
    return err(
      `${bad}: it is an IPv${found} address, this layer needs an IPv${family} DNS server`,
    );
  }
  let port = DEFAULT_DNS_PORT;
  if (portText !== undefined) {
    if (
      !/^[0-9]{1,5}$/.test(portText) || Number(portText) < 1 ||
      Number(portText) > 65535
    ) {
      return err(`${bad}: the port must be an integer from 1 to 65535`);
    }
    port = Number(portText);
  }
  return ok({ host, port });
}
