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
