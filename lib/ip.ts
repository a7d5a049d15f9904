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
