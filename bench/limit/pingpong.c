/*
 * The physical limit of a 64-byte ping-pong over UDP: two processes, each
 * blocked in recv until the other's datagram arrives, nothing in between.
 * The benchmark compares the Deno raw ping-pong (bench/udp_peer.ts) and the
 * flood ping through the stack with it.
 *
 *   pingpong echo --bind IP:PORT [-d SECONDS]
 *   pingpong ping --bind IP:PORT --to IP:PORT [-c COUNT] [-w WARMUP] [-s SIZE]
 *
 * echo: returns every datagram to its sender (recvfrom, sendto) until
 *   SECONDS (default 120) have passed; prints "ready" once bound.
 * ping: sends SIZE-byte datagrams (default 64) one at a time on a connected
 *   socket (send, then a blocking recv for the reply), WARMUP round trips
 *   untimed (default 200), then COUNT timed ones (default 10000), and prints
 *   one JSON line as udp_peer.ts ping does:
 *     {"count":N,"elapsedMs":T,"rtPerSec":R,"rttMs":[every RTT in ms]}
 *
 * Neither waits forever: a reply that takes over 2 s is an error, and an
 * alarm ends the process (exit 1) if the whole run takes too long. Every
 * error is one line on stderr and a non-zero exit.
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

#define REPLY_TIMEOUT_S 2
#define MAX_SIZE 1472 /* what one IPv4 datagram holds below a 1500 MTU */
#define MIN_SIZE 8    /* the sequence number at offset 4 */

static const char *prog = "pingpong";

#include "limit.h"

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int bound_socket(const struct sockaddr_in *bind_addr) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) die_errno("socket");
  if (bind(fd, (const struct sockaddr *)bind_addr, sizeof *bind_addr) != 0) {
    die_errno("bind");
  }
  return fd;
}

static void set_recv_timeout(int fd, long seconds) {
  struct timeval tv = {.tv_sec = seconds, .tv_usec = 0};
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) {
    die_errno("setsockopt SO_RCVTIMEO");
  }
}

static int run_echo(const struct sockaddr_in *bind_addr, long seconds) {
  int fd = bound_socket(bind_addr);
  /* wake at least once a second to see whether the time is up */
  set_recv_timeout(fd, 1);
  printf("ready\n");
  fflush(stdout);
  unsigned char buf[65536];
  double end = now_ms() + (double)seconds * 1e3;
  while (now_ms() < end) {
    struct sockaddr_in from;
    socklen_t len = sizeof from;
    ssize_t n =
        recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &len);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
      die_errno("recvfrom");
    }
    if (sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, len) < 0) {
      /* a peer that went away: keep serving the others */
      if (errno == ECONNREFUSED || errno == ENOBUFS || errno == EAGAIN) {
        continue;
      }
      die_errno("sendto");
    }
  }
  close(fd);
  return 0;
}

/* One round trip with sequence number seq; exits on an error or timeout. */
static void round_trip(int fd, unsigned char *pkt, size_t size, uint32_t seq,
                       unsigned char *buf, size_t buflen) {
  uint32_t be = htonl(seq);
  memcpy(pkt + 4, &be, 4);
  if (send(fd, pkt, size, 0) != (ssize_t)size) die_errno("send");
  for (;;) {
    ssize_t n = recv(fd, buf, buflen, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        fprintf(stderr, "%s: no reply to round trip %u within %d s\n", prog,
                seq, REPLY_TIMEOUT_S);
        exit(1);
      }
      if (errno == ECONNREFUSED) {
        die("recv: connection refused (no echo at the --to %s)", "address");
      }
      die_errno("recv");
    }
    if ((size_t)n == size) {
      uint32_t got;
      memcpy(&got, buf + 4, 4);
      if (ntohl(got) == seq) return;
    }
    /* a late or foreign datagram: not this round trip's reply */
  }
}

static int run_ping(const struct sockaddr_in *bind_addr,
                    const struct sockaddr_in *to, long count, long warmup,
                    long size) {
  int fd = bound_socket(bind_addr);
  /* connected: send/recv need no address, and only the echo's replies come */
  if (connect(fd, (const struct sockaddr *)to, sizeof *to) != 0) {
    die_errno("connect");
  }
  set_recv_timeout(fd, REPLY_TIMEOUT_S);
  double *rtts = malloc((size_t)count * sizeof *rtts);
  unsigned char *pkt = calloc(1, (size_t)size);
  unsigned char buf[65536];
  if (rtts == NULL || pkt == NULL) die("out of memory for %s", "the RTTs");
  uint32_t seq = 0;
  for (long i = 0; i < warmup; i++) {
    round_trip(fd, pkt, (size_t)size, seq++, buf, sizeof buf);
  }
  double start = now_ms();
  for (long i = 0; i < count; i++) {
    double t0 = now_ms();
    round_trip(fd, pkt, (size_t)size, seq++, buf, sizeof buf);
    rtts[i] = now_ms() - t0;
  }
  double elapsed = now_ms() - start;
  close(fd);
  printf("{\"count\":%ld,\"elapsedMs\":%.3f,\"rtPerSec\":%.1f,\"rttMs\":[",
         count, elapsed, (double)count / (elapsed / 1e3));
  for (long i = 0; i < count; i++) {
    printf(i == 0 ? "%.4f" : ",%.4f", rtts[i]);
  }
  printf("]}\n");
  if (fflush(stdout) != 0) die_errno("stdout");
  free(rtts);
  free(pkt);
  return 0;
}

static void usage(void) {
  fprintf(stderr,
          "usage: %s echo --bind IP:PORT [-d SECONDS]\n"
          "       %s ping --bind IP:PORT --to IP:PORT [-c COUNT] [-w WARMUP] "
          "[-s SIZE]\n",
          prog, prog);
  exit(2);
}

int main(int argc, char **argv) {
  if (argc < 2) usage();
  const char *mode = argv[1];
  int is_echo = strcmp(mode, "echo") == 0;
  if (!is_echo && strcmp(mode, "ping") != 0) {
    fprintf(stderr, "%s: mode is echo or ping, not '%s'\n", prog, mode);
    usage();
  }
  struct sockaddr_in bind_addr, to;
  int have_bind = 0, have_to = 0;
  long seconds = 120, count = 10000, warmup = 200, size = 64;
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
    } else if (strcmp(opt, "--to") == 0 && !is_echo) {
      parse_addr(v, &to);
      have_to = 1;
    } else if (strcmp(opt, "-d") == 0 && is_echo) {
      seconds = parse_long(opt, v, 1, 3600);
    } else if (strcmp(opt, "-c") == 0 && !is_echo) {
      count = parse_long(opt, v, 1, 10000000);
    } else if (strcmp(opt, "-w") == 0 && !is_echo) {
      warmup = parse_long(opt, v, 0, 1000000);
    } else if (strcmp(opt, "-s") == 0 && !is_echo) {
      size = parse_long(opt, v, MIN_SIZE, MAX_SIZE);
    } else {
      fprintf(stderr, "%s %s: unknown option %s\n", prog, mode, opt);
      usage();
    }
  }
  if (!have_bind) {
    fprintf(stderr, "%s: --bind is required\n", prog);
    usage();
  }
  if (!is_echo && !have_to) {
    fprintf(stderr, "%s: ping needs --to\n", prog);
    usage();
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGALRM, &sa, NULL) != 0) die_errno("sigaction");
  if (is_echo) {
    /* the time to serve, and a little more for the last reply */
    alarm((unsigned)seconds + 5);
    return run_echo(&bind_addr, seconds);
  }
  /* generous: 1 ms a round trip is already ten times a slow loopback */
  long budget = 30 + (count + warmup) / 1000;
  alarm((unsigned)(budget > 3600 ? 3600 : budget));
  return run_ping(&bind_addr, &to, count, warmup, size);
}
