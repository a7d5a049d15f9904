/**
 * The errors that applications, tools and processes tell apart. Each has a
 * code that crosses process boundaries and a message that explains it.
 */

export const ERROR_CODES = [
  "unknown_name", // no layer knows the name (it does not resolve)
  "unreachable", // the name resolves, but its node does not answer
  "refused", // the peer answered the allocation with a refusal
  "timed_out", // no answer within the deadline
  "irmd_not_running", // the local irmd cannot be reached
  "flow_down", // the flow ended: the peer, the IPCP or the irmd went away
  "qos_unsupported", // a QoS that this implementation cannot give yet
  "too_large", // a packet or message above the size limit
  "invalid", // a malformed request or argument
  "exists", // the object exists already
  "not_found", // no such object
  "closed", // the local end was closed
  "failed", // any other failure, with its own message
] as const;

export type ErrorCode = typeof ERROR_CODES[number];

export function isErrorCode(s: string): s is ErrorCode {
  return (ERROR_CODES as readonly string[]).includes(s);
}

export class OuroborosError extends Error {
  override readonly name = "OuroborosError";
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** The negative errno a peer gave, where it gave one. */
    readonly errno?: number,
  ) {
    super(message);
  }
}

/** Errno values used on the wire (Linux numbering, as C Ouroboros sends them). */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  ENOEXEC: 8,
  EAGAIN: 11,
  ENOMEM: 12,
  EBUSY: 16,
  EINVAL: 22,
  ENOTSUP: 95,
  ECONNREFUSED: 111,
  EHOSTUNREACH: 113,
  ETIMEDOUT: 110,
  ECRYPT: 1008,
} as const;

/**
 * What a peer's refusal (a negative errno in its FLOW_REPLY) most likely
 * means, for the requester's message; the number itself stays as the peer
 * sent it, since C peers send and read the same values.
 */
export function refusalCause(response: number): string {
  const n = Math.abs(response);
  const causes: Record<number, string> = {
    [ERRNO.ENOENT]:
      "no such name at the peer (it is not registered in the peer's layer)",
    [ERRNO.ECONNREFUSED]:
      'no process accepts flows for this name at the peer (start a server such as "oping -l" there, or bind a program to the name for autostart)',
    [ERRNO.ENOEXEC]:
      "the peer could not autostart a program for this name (see the peer's log)",
    [ERRNO.ENOTSUP]: "the peer does not support the requested QoS",
    [ERRNO.EPERM]:
      "the peer refused the allocation header (stale or replayed: check that both clocks are right)",
    [ERRNO.ECRYPT]: "the peer does not support the requested cryptography",
    [ERRNO.EINVAL]: "the peer found the allocation request malformed",
    [ERRNO.EIO]: "the peer's IPCP is not connected to its irmd",
    [ERRNO.ETIMEDOUT]: "timed out at the peer",
    [ERRNO.EBUSY]:
      "the peer is busy: too many flow requests wait for its applications (try again shortly)",
  };
  return `${causes[n] ?? "refused"} (${response})`;
}
