/**
 * Linux constants for the system-call layer (lib/sys/).
 *
 * Every value here is the same on x86_64 and aarch64 Linux with glibc: both
 * take the socket, poll, epoll, eventfd, fcntl and errno numbers from the
 * kernel's asm-generic headers (x86 overrides none of the ones below). The
 * numbers were printed by a C program compiled against glibc 2.36 with the
 * machine's cc (x86_64) and with aarch64-linux-gnu-gcc 12.2 (aarch64), and
 * constants_test.ts holds both printouts. What does differ between the two
 * architectures is one struct layout (epoll_event), kept in layout.ts.
 */

// Address families.
export const AF_UNSPEC = 0;
export const AF_UNIX = 1;
export const AF_INET = 2;
export const AF_INET6 = 10;

// Socket types and the flags that socket(), socketpair() and accept4() take.
export const SOCK_STREAM = 1;
export const SOCK_DGRAM = 2;
export const SOCK_SEQPACKET = 5;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;

// Protocols and their option levels.
export const IPPROTO_UDP = 17;
export const IPPROTO_IPV6 = 41;
export const IPV6_V6ONLY = 26;

// Socket options.
export const SOL_SOCKET = 1;
export const SO_REUSEADDR = 2;
export const SO_TYPE = 3;
export const SO_ERROR = 4;
export const SO_SNDBUF = 7;
export const SO_RCVBUF = 8;
export const SO_REUSEPORT = 15;
export const SO_SNDBUFFORCE = 32;
export const SO_RCVBUFFORCE = 33;

// Flags of send and receive calls, and of msghdr.msg_flags.
export const MSG_PEEK = 2;
export const MSG_TRUNC = 0x20;
export const MSG_DONTWAIT = 0x40;
export const MSG_NOSIGNAL = 0x4000;
export const MSG_WAITFORONE = 0x10000;

// poll() events.
export const POLLIN = 0x1;
export const POLLPRI = 0x2;
export const POLLOUT = 0x4;
export const POLLERR = 0x8;
export const POLLHUP = 0x10;
export const POLLNVAL = 0x20;

// epoll.
export const EPOLL_CLOEXEC = 0o2000000;
export const EPOLL_CTL_ADD = 1;
export const EPOLL_CTL_DEL = 2;
export const EPOLL_CTL_MOD = 3;
export const EPOLLIN = 0x1;
export const EPOLLOUT = 0x4;
export const EPOLLERR = 0x8;
export const EPOLLHUP = 0x10;
export const EPOLLRDHUP = 0x2000;
export const EPOLLONESHOT = 0x40000000;
/** 1 << 31: as an unsigned 32-bit number, the form epoll_event.events holds. */
export const EPOLLET = 0x80000000;

// eventfd.
export const EFD_SEMAPHORE = 1;
export const EFD_NONBLOCK = 0o4000;
export const EFD_CLOEXEC = 0o2000000;

// fcntl.
export const F_GETFD = 1;
export const F_SETFD = 2;
export const F_GETFL = 3;
export const F_SETFL = 4;
export const FD_CLOEXEC = 1;
export const O_NONBLOCK = 0o4000;

// Signals.
export const SIGUSR1 = 10;

/** The largest sockaddr (struct sockaddr_storage). */
export const SOCKADDR_STORAGE_SIZE = 128;

// Error numbers.
export const EPERM = 1;
export const ENOENT = 2;
export const ESRCH = 3;
export const EINTR = 4;
export const EBADF = 9;
export const EAGAIN = 11;
/** The same number as EAGAIN on Linux. */
export const EWOULDBLOCK = 11;
export const ENOMEM = 12;
export const EACCES = 13;
export const EFAULT = 14;
export const EEXIST = 17;
export const EINVAL = 22;
export const ENFILE = 23;
export const EMFILE = 24;
export const ENOSPC = 28;
export const EPIPE = 32;
export const ENOTSOCK = 88;
export const EDESTADDRREQ = 89;
export const EMSGSIZE = 90;
export const ENOPROTOOPT = 92;
export const EPROTONOSUPPORT = 93;
export const EOPNOTSUPP = 95;
export const EAFNOSUPPORT = 97;
export const EADDRINUSE = 98;
export const EADDRNOTAVAIL = 99;
export const ENETUNREACH = 101;
export const ECONNRESET = 104;
export const ENOBUFS = 105;
export const EISCONN = 106;
export const ENOTCONN = 107;
export const ETIMEDOUT = 110;
export const ECONNREFUSED = 111;
export const EHOSTUNREACH = 113;
export const EALREADY = 114;
export const EINPROGRESS = 115;

/** The symbolic names of the error numbers above (EAGAIN for 11). */
export const ERRNO_NAMES: ReadonlyMap<number, string> = new Map([
  [EPERM, "EPERM"],
  [ENOENT, "ENOENT"],
  [ESRCH, "ESRCH"],
  [EINTR, "EINTR"],
  [EBADF, "EBADF"],
  [EAGAIN, "EAGAIN"],
  [ENOMEM, "ENOMEM"],
  [EACCES, "EACCES"],
  [EFAULT, "EFAULT"],
  [EEXIST, "EEXIST"],
  [EINVAL, "EINVAL"],
  [ENFILE, "ENFILE"],
  [EMFILE, "EMFILE"],
  [ENOSPC, "ENOSPC"],
  [EPIPE, "EPIPE"],
  [ENOTSOCK, "ENOTSOCK"],
  [EDESTADDRREQ, "EDESTADDRREQ"],
  [EMSGSIZE, "EMSGSIZE"],
  [ENOPROTOOPT, "ENOPROTOOPT"],
  [EPROTONOSUPPORT, "EPROTONOSUPPORT"],
  [EOPNOTSUPP, "EOPNOTSUPP"],
  [EAFNOSUPPORT, "EAFNOSUPPORT"],
  [EADDRINUSE, "EADDRINUSE"],
  [EADDRNOTAVAIL, "EADDRNOTAVAIL"],
  [ENETUNREACH, "ENETUNREACH"],
  [ECONNRESET, "ECONNRESET"],
  [ENOBUFS, "ENOBUFS"],
  [EISCONN, "EISCONN"],
  [ENOTCONN, "ENOTCONN"],
  [ETIMEDOUT, "ETIMEDOUT"],
  [ECONNREFUSED, "ECONNREFUSED"],
  [EHOSTUNREACH, "EHOSTUNREACH"],
  [EALREADY, "EALREADY"],
  [EINPROGRESS, "EINPROGRESS"],
]);

/** The symbolic name of an error number, or "E<number>" for one not listed. */
export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `E${errno}`;
}
