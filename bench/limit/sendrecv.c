/*
 * The physical limit of one-way UDP throughput: a sender that writes
 * datagrams as fast as the kernel takes them, and a receiver that counts
 * what arrives. The benchmark compares the Deno raw sender and receiver
 * (bench/udp_peer.ts blast and sink) and ocbr through the stack with it.
 *
 *   sendrecv recv --bind IP:PORT [-d SECONDS]
 *   sendrecv send --bind IP:PORT --to IP:PORT [-s SIZE] [-d SECONDS]
 *
 * send: SIZE-byte datagrams (default 1000) with a sequence number (32 bits,
 *   big-endian, at offset 0) for SECONDS (default 10), one sendto each,
 *   from an unconnected socket as udp_peer.ts blast sends; then an end
 *   marker (sequence 0xffffffff, "SREN", the number sent) ten times, 20 ms
 *   apart, so the receiver learns what was sent and stops. Prints
 *     {"sent":N,"failed":F,"ms":D}
 *   where failed counts the sendto calls the kernel refused.
 * recv: prints "ready" once bound, then counts data datagrams until the end
 *   marker, 1 s of silence after the first one, or SECONDS + 3 s after the
 *   first one (what udp_peer.ts sink does), and prints
 *     {"packets":N,"bytes":B,"highest":H,"outOfOrder":O,"activeMs":T,
 *      "markerSent":N|null,"end":"marker"|"silence"|"cap","rcvbuf":R}
 *   activeMs runs from the first to the last data datagram, as in sink.
 *
 * Receive buffer: neither end sets SO_RCVBUF or SO_SNDBUF. The Deno sink
 * cannot (Deno.listenDatagram has no such option), so it gets the kernel's
 * default (net.core.rmem_default); the C receiver keeps that default too,
 * so both lose packets into the same buffer, and reports it as rcvbuf.
 *
 * Neither waits forever: the receiver gives up 30 s after start without a
 * datagram, and an alarm ends either process (exit 1) past its deadline.
 * Every error is one line on stderr and a non-zero exit.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MARKER_SEQ 0xffffffffu
#define MARKER_MAGIC "SREN"
#define MARKER_LEN 16 /* seq, magic, 64-bit count */
#define MARKER_COPIES 10
#define MARKER_GAP_MS 20
#define MIN_SIZE MARKER_LEN
#define MAX_SIZE 65507 /* the largest UDP payload over IPv4 */
#define FIRST_PACKET_S 30
#define SILENCE_S 1
#define CAP_EXTRA_MS 3000.0

static const char *prog = "sendrecv";

#include "limit.h"

static double parse_seconds(const char *opt, const char *s) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  /* written so that NaN fails too */
  if (errno != 0 || *end != '\0' || end == s || !(v >= 0.1 && v <= 600)) {
    fprintf(stderr, "%s: %s wants seconds in 0.1..600, not '%s'\n", prog, opt,
            s);
    exit(2);
  }
  return v;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(long ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static int bound_socket(const struct sockaddr_in *bind_addr) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) die_errno("socket");
  if (bind(fd, (const struct sockaddr *)bind_addr, sizeof *bind_addr) != 0) {
    die_errno("bind");
  }
  return fd;
}

static int run_send(const struct sockaddr_in *bind_addr,
                    const struct sockaddr_in *to, long size, double seconds) {
  int fd = bound_socket(bind_addr);
  unsigned char *pkt = calloc(1, (size_t)size);
  if (pkt == NULL) die("out of memory for a %s", "packet");
  const struct sockaddr *dst = (const struct sockaddr *)to;
  double end = now_ms() + seconds * 1e3;
  uint32_t seq = 0;
  unsigned long failed = 0;
  while (now_ms() < end) {
    /* a small burst between clock reads, as udp_peer.ts blast does */
    for (int k = 0; k < 16; k++) {
      uint32_t be = htonl(seq);
      memcpy(pkt, &be, 4);
      if (sendto(fd, pkt, (size_t)size, 0, dst, sizeof *to) == (ssize_t)size) {
        seq++;
      } else if (errno == ENOBUFS || errno == EAGAIN || errno == ECONNREFUSED ||
                 errno == EINTR) {
        failed++;
      } else {
        die_errno("sendto");
      }
    }
    if (seq >= MARKER_SEQ - 16) die("sequence numbers %s", "exhausted");
  }
  unsigned char marker[MARKER_LEN];
  uint32_t mseq = htonl(MARKER_SEQ);
  uint32_t hi = htonl((uint32_t)0), lo = htonl(seq);
  memcpy(marker, &mseq, 4);
  memcpy(marker + 4, MARKER_MAGIC, 4);
  memcpy(marker + 8, &hi, 4);
  memcpy(marker + 12, &lo, 4);
  for (int i = 0; i < MARKER_COPIES; i++) {
    /* first a pause, so the receiver has drained its buffer */
    sleep_ms(MARKER_GAP_MS);
    if (sendto(fd, marker, sizeof marker, 0, dst, sizeof *to) < 0 &&
        errno != ENOBUFS && errno != EAGAIN && errno != ECONNREFUSED) {
      die_errno("sendto (end marker)");
    }
  }
  close(fd);
  free(pkt);
  printf("{\"sent\":%u,\"failed\":%lu,\"ms\":%.0f}\n", seq, failed,
         seconds * 1e3);
  if (fflush(stdout) != 0) die_errno("stdout");
  return 0;
}

static void set_recv_timeout(int fd, long seconds) {
  struct timeval tv = {.tv_sec = seconds, .tv_usec = 0};
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) {
    die_errno("setsockopt SO_RCVTIMEO");
  }
}

static int is_marker(const unsigned char *b, ssize_t n, uint32_t *count) {
  uint32_t seq, hi, lo;
  if (n != MARKER_LEN) return 0;
  memcpy(&seq, b, 4);
  if (ntohl(seq) != MARKER_SEQ || memcmp(b + 4, MARKER_MAGIC, 4) != 0) {
    return 0;
  }
  memcpy(&hi, b + 8, 4);
  memcpy(&lo, b + 12, 4);
  *count = ntohl(lo);
  return ntohl(hi) == 0;
}

static int run_recv(const struct sockaddr_in *bind_addr, double seconds) {
  int fd = bound_socket(bind_addr);
  int rcvbuf = 0;
  socklen_t optlen = sizeof rcvbuf;
  if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, &optlen) != 0) {
    die_errno("getsockopt SO_RCVBUF");
  }
  set_recv_timeout(fd, SILENCE_S);
  printf("ready\n");
  fflush(stdout);
  static unsigned char buf[65536];
  unsigned long long packets = 0, bytes = 0, out_of_order = 0;
  long long highest = -1;
  double started = now_ms(), first = 0, last = 0;
  const char *how = "silence";
  long long marker_sent = -1;
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    double now = now_ms();
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        die_errno("recv");
      }
      if (packets > 0) break; /* silence after the data: the sender is done */
      if (now - started > FIRST_PACKET_S * 1e3) {
        fprintf(stderr, "%s: no datagram within %d s\n", prog, FIRST_PACKET_S);
        exit(1);
      }
      continue;
    }
    uint32_t count;
    if (is_marker(buf, n, &count)) {
      marker_sent = count;
      how = "marker";
      break;
    }
    if (n < 4) continue; /* not one of the sender's */
    if (packets == 0) first = now;
    last = now;
    packets++;
    bytes += (unsigned long long)n;
    uint32_t be;
    memcpy(&be, buf, 4);
    long long seq = ntohl(be);
    if (seq < highest) {
      out_of_order++;
    } else {
      highest = seq;
    }
    if (now - first > seconds * 1e3 + CAP_EXTRA_MS) {
      how = "cap";
      break;
    }
  }
  close(fd);
  printf("{\"packets\":%llu,\"bytes\":%llu,\"highest\":%lld,"
         "\"outOfOrder\":%llu,\"activeMs\":%.3f,\"markerSent\":",
         packets, bytes, highest, out_of_order, last - first);
  if (marker_sent < 0) {
    printf("null");
  } else {
    printf("%lld", marker_sent);
  }
  printf(",\"end\":\"%s\",\"rcvbuf\":%d}\n", how, rcvbuf);
  if (fflush(stdout) != 0) die_errno("stdout");
  return 0;
}

static void usage(void) {
  fprintf(stderr,
          "usage: %s recv --bind IP:PORT [-d SECONDS]\n"
          "       %s send --bind IP:PORT --to IP:PORT [-s SIZE] [-d SECONDS]\n",
          prog, prog);
  exit(2);
}

int main(int argc, char **argv) {
  if (argc < 2) usage();
  const char *mode = argv[1];
  int is_recv = strcmp(mode, "recv") == 0;
  if (!is_recv && strcmp(mode, "send") != 0) {
    fprintf(stderr, "%s: mode is send or recv, not '%s'\n", prog, mode);
    usage();
  }
  struct sockaddr_in bind_addr, to;
  int have_bind = 0, have_to = 0;
  long size = 1000;
  double seconds = 10;
  for (int i = 2; i < argc; i += 2) {
    const char *opt = argv[i];
    if (i + 1 >= argc) {
      fprintf(stderr, "%s: %s needs a value\n", prog, opt);
      usage();
    }
    const char *v = argv[i + 1];
    if (strcmp(opt, "--bind") == 0) {
      parse_addr(v, &bind_addr);
      have_bind = 1;
    } else if (strcmp(opt, "--to") == 0 && !is_recv) {
      parse_addr(v, &to);
      have_to = 1;
    } else if (strcmp(opt, "-s") == 0 && !is_recv) {
      size = parse_long(opt, v, MIN_SIZE, MAX_SIZE);
    } else if (strcmp(opt, "-d") == 0) {
      seconds = parse_seconds(opt, v);
    } else {
      fprintf(stderr, "%s %s: unknown option %s\n", prog, mode, opt);
      usage();
    }
  }
  if (!have_bind) {
    fprintf(stderr, "%s: --bind is required\n", prog);
    usage();
  }
  if (!is_recv && !have_to) {
    fprintf(stderr, "%s: send needs --to\n", prog);
    usage();
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGALRM, &sa, NULL) != 0) die_errno("sigaction");
  if (is_recv) {
    /* the wait for the first datagram, the run, the cap and some slack */
    alarm((unsigned)FIRST_PACKET_S + (unsigned)seconds + 11);
    return run_recv(&bind_addr, seconds);
  }
  /* the run, the end markers and some slack */
  alarm((unsigned)seconds + 11);
  return run_send(&bind_addr, &to, size, seconds);
}
