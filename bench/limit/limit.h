/*
 * What the raw baselines (pingpong.c, sendrecv.c) share: failing with a
 * message, the deadline's alarm, and reading an address and a number from
 * the command line. Each program defines `prog`, its name for messages,
 * before including this.
 */
#ifndef LIMIT_H
#define LIMIT_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


static void die(const char *fmt, const char *arg) {
  fprintf(stderr, "%s: ", prog);
  fprintf(stderr, fmt, arg);
  fputc('\n', stderr);
  exit(1);
}

static void die_errno(const char *what) {
  fprintf(stderr, "%s: %s: %s\n", prog, what, strerror(errno));
  exit(1);
}

static void on_alarm(int sig) {
  static const char msg[] = ": deadline passed, giving up\n";
  (void)sig;
  /* only async-signal-safe calls here */
  ssize_t w = write(STDERR_FILENO, prog, strlen(prog));
  w = write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)w;
  _exit(1);
}

/* IP:PORT (IPv4) into addr; exits with a message when malformed. */
static void parse_addr(const char *s, struct sockaddr_in *addr) {
  char host[64];
  const char *colon = strrchr(s, ':');
  if (colon == NULL || colon == s || (size_t)(colon - s) >= sizeof host) {
    die("bad address '%s' (want IPv4:PORT)", s);
  }
  memcpy(host, s, (size_t)(colon - s));
  host[colon - s] = '\0';
  char *end;
  errno = 0;
  long port = strtol(colon + 1, &end, 10);
  if (errno != 0 || *end != '\0' || end == colon + 1 || port < 1 ||
      port > 65535) {
    die("bad port in '%s' (want 1..65535)", s);
  }
  memset(addr, 0, sizeof *addr);
  addr->sin_family = AF_INET;
  addr->sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &addr->sin_addr) != 1) {
    die("bad IPv4 address in '%s'", s);
  }
}

/* A whole number in [lo, hi]; exits with a message otherwise. */
static long parse_long(const char *opt, const char *s, long lo, long hi) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno != 0 || *end != '\0' || end == s || v < lo || v > hi) {
    fprintf(stderr, "%s: %s wants a whole number in %ld..%ld, not '%s'\n",
            prog, opt, lo, hi, s);
    exit(2);
  }
  return v;
}

#endif
