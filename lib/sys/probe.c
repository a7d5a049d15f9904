/*
 * Prints the struct layouts and constants that lib/sys/ hard-codes, as the C
 * compiler and glibc's headers see them. The tests do not need it: their
 * numbers are this program's output, pasted into layout_test.ts and
 * constants_test.ts. To check them again:
 *
 *   cc -o /tmp/probe-x86_64 lib/sys/probe.c && /tmp/probe-x86_64
 *   aarch64-linux-gnu-gcc -o /tmp/probe-aarch64 lib/sys/probe.c
 *   QEMU_LD_PREFIX=/usr/aarch64-linux-gnu /tmp/probe-aarch64
 *
 * (the second needs Debian's gcc-aarch64-linux-gnu, and qemu-user on a
 * machine that is not aarch64).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>

#define SIZE(t) printf("%s size %zu\n", #t, sizeof(struct t))
#define FIELD(t, f) printf("%s.%s %zu\n", #t, #f, offsetof(struct t, f))
#define CONST(c) printf("%s %ld\n", #c, (long)(c))

int main(void) {
  SIZE(sockaddr_in);
  FIELD(sockaddr_in, sin_family);
  FIELD(sockaddr_in, sin_port);
  FIELD(sockaddr_in, sin_addr);
  SIZE(sockaddr_in6);
  FIELD(sockaddr_in6, sin6_family);
  FIELD(sockaddr_in6, sin6_port);
  FIELD(sockaddr_in6, sin6_flowinfo);
  FIELD(sockaddr_in6, sin6_addr);
  FIELD(sockaddr_in6, sin6_scope_id);
  SIZE(sockaddr_un);
  FIELD(sockaddr_un, sun_family);
  FIELD(sockaddr_un, sun_path);
  SIZE(sockaddr_storage);
  SIZE(iovec);
  FIELD(iovec, iov_base);
  FIELD(iovec, iov_len);
  SIZE(msghdr);
  FIELD(msghdr, msg_name);
  FIELD(msghdr, msg_namelen);
  FIELD(msghdr, msg_iov);
  FIELD(msghdr, msg_iovlen);
  FIELD(msghdr, msg_control);
  FIELD(msghdr, msg_controllen);
  FIELD(msghdr, msg_flags);
  SIZE(mmsghdr);
  FIELD(mmsghdr, msg_hdr);
  FIELD(mmsghdr, msg_len);
  SIZE(pollfd);
  FIELD(pollfd, fd);
  FIELD(pollfd, events);
  FIELD(pollfd, revents);
  SIZE(epoll_event);
  FIELD(epoll_event, events);
  FIELD(epoll_event, data);
  SIZE(timespec);
  FIELD(timespec, tv_sec);
  FIELD(timespec, tv_nsec);

  CONST(AF_UNSPEC); CONST(AF_UNIX); CONST(AF_INET); CONST(AF_INET6);
  CONST(SOCK_STREAM); CONST(SOCK_DGRAM); CONST(SOCK_SEQPACKET);
  CONST(SOCK_NONBLOCK); CONST(SOCK_CLOEXEC);
  CONST(IPPROTO_UDP); CONST(IPPROTO_IPV6); CONST(IPV6_V6ONLY);
  CONST(SOL_SOCKET); CONST(SO_REUSEADDR); CONST(SO_TYPE); CONST(SO_ERROR);
  CONST(SO_SNDBUF); CONST(SO_RCVBUF); CONST(SO_REUSEPORT);
  CONST(SO_SNDBUFFORCE); CONST(SO_RCVBUFFORCE);
  CONST(MSG_PEEK); CONST(MSG_TRUNC); CONST(MSG_DONTWAIT); CONST(MSG_NOSIGNAL);
  CONST(MSG_WAITFORONE);
  CONST(POLLIN); CONST(POLLPRI); CONST(POLLOUT); CONST(POLLERR);
  CONST(POLLHUP); CONST(POLLNVAL);
  CONST(EPOLL_CLOEXEC); CONST(EPOLL_CTL_ADD); CONST(EPOLL_CTL_DEL);
  CONST(EPOLL_CTL_MOD); CONST(EPOLLIN); CONST(EPOLLOUT); CONST(EPOLLERR);
  CONST(EPOLLHUP); CONST(EPOLLRDHUP); CONST(EPOLLONESHOT);
  printf("EPOLLET %lu\n", (unsigned long)(unsigned)EPOLLET);
  CONST(EFD_SEMAPHORE); CONST(EFD_NONBLOCK); CONST(EFD_CLOEXEC);
  CONST(F_GETFD); CONST(F_SETFD); CONST(F_GETFL); CONST(F_SETFL);
  CONST(FD_CLOEXEC); CONST(O_NONBLOCK);
  CONST(SIGUSR1);
  CONST(EPERM); CONST(ENOENT); CONST(ESRCH); CONST(EINTR); CONST(EBADF);
  CONST(EAGAIN); CONST(EWOULDBLOCK); CONST(ENOMEM); CONST(EACCES);
  CONST(EFAULT); CONST(EEXIST); CONST(EINVAL); CONST(ENFILE); CONST(EMFILE); CONST(ENOSPC);
  CONST(EPIPE); CONST(ENOTSOCK); CONST(EDESTADDRREQ); CONST(EMSGSIZE);
  CONST(ENOPROTOOPT); CONST(EPROTONOSUPPORT); CONST(EOPNOTSUPP);
  CONST(EAFNOSUPPORT); CONST(EADDRINUSE); CONST(EADDRNOTAVAIL);
  CONST(ENETUNREACH); CONST(ECONNRESET); CONST(ENOBUFS); CONST(EISCONN);
  CONST(ENOTCONN); CONST(ETIMEDOUT); CONST(ECONNREFUSED); CONST(EHOSTUNREACH);
  CONST(EALREADY); CONST(EINPROGRESS);
  return 0;
}
