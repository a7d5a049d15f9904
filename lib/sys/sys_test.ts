/**
 * The system-call layer on the real kernel, over loopback: sockets, batches,
 * poll, epoll, eventfd, options and every error path. Each test closes what
 * it opens, and fdTest() checks /proc/self/fd for sockets, eventfds and epoll
 * descriptors left open.
 */
import { assert, assertEquals } from "../../tests/assert.ts";
import {
  EPOLLIN,
  EPOLLOUT,
  MSG_DONTWAIT,
  MSG_TRUNC,
  POLLERR,
  POLLIN,
  POLLOUT,
  SO_RCVBUF,
  SO_TYPE,
  SOCK_DGRAM,
  SOL_SOCKET,
} from "./constants.ts";
import { type SysResult, unwrap } from "./result.ts";
import { packAddr, type SockAddr } from "./sockaddr.ts";
import {
  acceptFd,
  bindAddr,
  closeFd,
  connectAddr,
  Epoll,
  eventfd,
  eventfdDrain,
  eventfdSignal,
  getBuffer,
  getIntOption,
  isNonBlocking,
  localAddr,
  localPort,
  PacketBatch,
  pollIn,
  PollSet,
  readFd,
  readvFd,
  recvBatch,
  recvFrom,
  sendBatch,
  sendSlots,
  sendStream,
  sendTo,
  setBuffer,
  setNonBlocking,
  setReuseAddr,
  socketPair,
  udpSocket,
  unixConnect,
  unixListen,
  writeFd,
  writevFd,
} from "./sys.ts";
import { fdTest } from "./testing.ts";

/** A descriptor that is not open in any test. */
const BAD_FD = 999_999;

/** Runs `fn` with descriptors that are closed after it, whatever happens. */
async function withFds(
  fn: (
    keep: (r: SysResult<number>) => number,
    closeNow: (fd: number) => void,
  ) => void | Promise<void>,
): Promise<void> {
  const fds: number[] = [];
  try {
    await fn((r) => {
      const fd = unwrap(r);
      fds.push(fd);
      return fd;
    }, (fd) => {
      const i = fds.indexOf(fd);
      assert(i >= 0, `descriptor ${fd} is not the test's`);
      fds.splice(i, 1);
      unwrap(closeFd(fd));
    });
  } finally {
    for (const fd of fds.reverse()) closeFd(fd);
  }
}

function expectErr(r: SysResult<unknown>, name: string, call?: string): void {
  assert(!r.ok, `expected ${name}, got ${JSON.stringify(r)}`);
  assert(!r.wouldBlock, `expected ${name}, got would block`);
  assertEquals(r.name, name);
  if (call !== undefined) assertEquals(r.call, call);
}

function expectWouldBlock(r: SysResult<unknown>, call: string): void {
  assert(
    !r.ok && r.wouldBlock,
    `expected would block, got ${JSON.stringify(r)}`,
  );
  assertEquals([r.errno, r.name, r.call], [11, "EAGAIN", call]);
}

/** A UDP socket bound to an ephemeral port of `host`; returns [fd, port]. */
function boundUdp(
  keep: (r: SysResult<number>) => number,
  host = "127.0.0.1",
  nonBlocking = true,
): [number, number] {
  const fd = keep(
    udpSocket(host.includes(":") ? "inet6" : "inet", { nonBlocking }),
  );
  unwrap(bindAddr(fd, host, 0));
  return [fd, unwrap(localPort(fd))];
}

/** A UDP port on 127.0.0.1 that nothing listens on (bound, then closed). */
function closedPort(): number {
  const fd = unwrap(udpSocket("inet"));
  unwrap(bindAddr(fd, "127.0.0.1", 0));
  const port = unwrap(localPort(fd));
  unwrap(closeFd(fd));
  return port;
}

const packet = (fill: number, len = 64) => new Uint8Array(len).fill(fill);

fdTest("sys: a bad descriptor is EBADF, from every kind of call", () => {
  expectErr(closeFd(BAD_FD), "EBADF", "close");
  expectErr(
    sendTo(BAD_FD, packet(1), unwrap(packAddr("127.0.0.1", 9))),
    "EBADF",
    "sendto",
  );
  expectErr(recvFrom(BAD_FD, new Uint8Array(16)), "EBADF", "recvfrom");
  expectErr(recvBatch(BAD_FD, new PacketBatch(2, 64)), "EBADF", "recvmmsg");
  expectErr(
    sendBatch(BAD_FD, new PacketBatch(2, 64), [packet(1)]),
    "EBADF",
    "sendmmsg",
  );
  expectErr(bindAddr(BAD_FD, "127.0.0.1", 0), "EBADF", "bind");
  expectErr(getBuffer(BAD_FD, "rcv"), "EBADF", "getsockopt");
  expectErr(setNonBlocking(BAD_FD, true), "EBADF", "fcntl");
  expectErr(readFd(BAD_FD, new Uint8Array(4)), "EBADF", "read");
  expectErr(writevFd(BAD_FD, [packet(1)]), "EBADF", "writev");
  expectErr(eventfdSignal(BAD_FD), "EBADF", "write");
  expectErr(localAddr(BAD_FD), "EBADF", "getsockname");
  expectErr(pollIn([BAD_FD], 0), "EBADF", "poll");
});

fdTest(
  "sys: receiving on an empty non-blocking socket would block",
  async () => {
    await withFds((keep) => {
      const [fd] = boundUdp(keep);
      expectWouldBlock(recvFrom(fd, new Uint8Array(64)), "recvfrom");
      expectWouldBlock(recvBatch(fd, new PacketBatch(4, 64)), "recvmmsg");
      const efd = keep(eventfd());
      expectWouldBlock(eventfdDrain(efd), "read");
      // A blocking socket would wait; MSG_DONTWAIT makes that call not.
      const [blocking] = boundUdp(keep, "127.0.0.1", false);
      assertEquals(isNonBlocking(blocking), { ok: true, value: false });
      expectWouldBlock(
        recvFrom(blocking, new Uint8Array(8), MSG_DONTWAIT),
        "recvfrom",
      );
      expectWouldBlock(
        recvBatch(blocking, new PacketBatch(2, 8), 2, MSG_DONTWAIT),
        "recvmmsg",
      );
    });
  },
);

fdTest("sys: O_NONBLOCK set and cleared with fcntl", async () => {
  await withFds((keep) => {
    const [fd] = boundUdp(keep, "127.0.0.1", false);
    unwrap(setNonBlocking(fd, true));
    assertEquals(isNonBlocking(fd), { ok: true, value: true });
    expectWouldBlock(recvFrom(fd, new Uint8Array(8)), "recvfrom");
    unwrap(setNonBlocking(fd, false));
    assertEquals(isNonBlocking(fd), { ok: true, value: false });
  });
});

fdTest("sys: binding to an address in use is EADDRINUSE", async () => {
  await withFds((keep) => {
    const [, port] = boundUdp(keep);
    const b = keep(udpSocket("inet"));
    expectErr(bindAddr(b, "127.0.0.1", port), "EADDRINUSE", "bind");
    // Not an address of this machine.
    const c = keep(udpSocket("inet"));
    expectErr(bindAddr(c, "192.0.2.1", 0), "EADDRNOTAVAIL", "bind");
    // An address of the other family.
    expectErr(bindAddr(c, "::1", 0), "EAFNOSUPPORT", "bind");
    expectErr(bindAddr(c, "not-an-address", 0), "EINVAL", "sockaddr");
  });
});

fdTest(
  "sys: SO_REUSEADDR on both lets two UDP sockets share a port",
  async () => {
    await withFds((keep) => {
      const a = keep(udpSocket("inet"));
      unwrap(setReuseAddr(a, true));
      unwrap(bindAddr(a, "127.0.0.1", 0));
      const port = unwrap(localPort(a));
      const b = keep(udpSocket("inet"));
      unwrap(setReuseAddr(b, true));
      assertEquals(bindAddr(b, "127.0.0.1", port).ok, true);
      assertEquals(unwrap(localPort(b)), port);
    });
  },
);

fdTest(
  "sys: a connected UDP socket reports ECONNREFUSED from a closed port",
  async () => {
    await withFds((keep) => {
      const port = closedPort();
      const fd = keep(udpSocket("inet", { nonBlocking: true }));
      unwrap(connectAddr(fd, "127.0.0.1", port));
      // The send succeeds; the ICMP port-unreachable that it draws is
      // reported by the next call on the socket.
      assertEquals(sendTo(fd, packet(1)), { ok: true, value: 64 });
      const ps = new PollSet(1);
      ps.add(fd, POLLIN);
      assertEquals(unwrap(ps.wait(1000)), 1);
      assert((ps.revents(0) & POLLERR) !== 0);
      expectErr(recvFrom(fd, new Uint8Array(64)), "ECONNREFUSED", "recvfrom");
      // Reported once: then the socket is empty again.
      expectWouldBlock(recvFrom(fd, new Uint8Array(64)), "recvfrom");

      // The same through sendmmsg: the first batch goes, the next one fails
      // (with nothing sent: sendmmsg fails only when its first message does).
      const batch = new PacketBatch(4, 128);
      assertEquals(sendBatch(fd, batch, [packet(1)]), { ok: true, value: 1 });
      assertEquals(unwrap(ps.wait(1000)), 1);
      expectErr(
        sendBatch(fd, batch, [packet(2), packet(3)]),
        "ECONNREFUSED",
        "sendmmsg",
      );
    });
  },
);

fdTest(
  "sys: a UDP round trip on 127.0.0.1 in batches, with source addresses",
  async () => {
    await withFds((keep) => {
      const [a, portA] = boundUdp(keep);
      const [b, portB] = boundUdp(keep);
      const [c, portC] = boundUdp(keep);
      const toA = unwrap(packAddr("127.0.0.1", portA));
      const out = new PacketBatch(8, 1500);
      const inA = new PacketBatch(16, 1500);

      // b sends five packets of different sizes to a in one sendmmsg.
      const sizes = [1, 64, 500, 1400, 1500];
      const pkts = sizes.map((n, i) => packet(0x10 + i, n));
      assertEquals(sendBatch(b, out, pkts, toA), { ok: true, value: 5 });
      // c sends two.
      assertEquals(
        sendBatch(c, out, [packet(0x77, 9), packet(0x78, 10)], [toA, toA]),
        {
          ok: true,
          value: 2,
        },
      );

      assertEquals(unwrap(pollIn([a], 1000)), [a]);
      const got: { len: number; first: number; from: SockAddr }[] = [];
      while (got.length < 7) {
        const r = recvBatch(a, inA);
        if (!r.ok && r.wouldBlock) {
          unwrap(pollIn([a], 1000));
          continue;
        }
        const n = unwrap(r);
        for (let i = 0; i < n; i++) {
          assertEquals(inA.truncated(i), false);
          got.push({
            len: inA.lens[i]!,
            first: inA.packet(i)[0]!,
            from: unwrap(inA.source(i)),
          });
        }
      }
      const fromB = { family: "inet", host: "127.0.0.1", port: portB };
      const fromC = { family: "inet", host: "127.0.0.1", port: portC };
      assertEquals(got, [
        ...sizes.map((len, i) => ({ len, first: 0x10 + i, from: fromB })),
        { len: 9, first: 0x77, from: fromC },
        { len: 10, first: 0x78, from: fromC },
      ]);
      // Every byte arrived, not just the first.
      assertEquals(inA.packet(3), packet(0x13, 1400));
      expectWouldBlock(recvBatch(a, inA), "recvmmsg");

      // a answers each sender from the addresses it received (raw bytes).
      const back = new PacketBatch(4, 64);
      for (let i = 0; i < 2; i++) {
        back.bufs[i]!.set(packet(0xa0 + i, 32));
        back.lens[i] = 32;
      }
      back.setDest(0, unwrap(packAddr("127.0.0.1", portB)));
      back.setDest(1, unwrap(packAddr("127.0.0.1", portC)));
      assertEquals(sendSlots(a, back, 2), { ok: true, value: 2 });
      for (const [fd, fill] of [[b, 0xa0], [c, 0xa1]] as const) {
        unwrap(pollIn([fd], 1000));
        const buf = new Uint8Array(100);
        const r = unwrap(recvFrom(fd, buf));
        assertEquals(r, {
          length: 32,
          from: { family: "inet", host: "127.0.0.1", port: portA },
        });
        assertEquals(buf.subarray(0, 32), packet(fill, 32));
      }
    });
  },
);

fdTest(
  "sys: recvBatch takes no more than asked, the rest stays queued",
  async () => {
    await withFds((keep) => {
      const [a, portA] = boundUdp(keep);
      const [b] = boundUdp(keep);
      const toA = unwrap(packAddr("127.0.0.1", portA));
      const batch = new PacketBatch(8, 64);
      assertEquals(
        sendBatch(b, batch, [1, 2, 3, 4, 5].map((i) => packet(i, 8)), toA),
        {
          ok: true,
          value: 5,
        },
      );
      unwrap(pollIn([a], 1000));
      const inA = new PacketBatch(8, 64);
      let total = 0;
      const firsts: number[] = [];
      for (let tries = 0; total < 5 && tries < 100; tries++) {
        const r = recvBatch(a, inA, 2);
        if (!r.ok && r.wouldBlock) {
          unwrap(pollIn([a], 100));
          continue;
        }
        const n = unwrap(r);
        assert(n <= 2, `got ${n}`);
        for (let i = 0; i < n; i++) firsts.push(inA.packet(i)[0]!);
        total += n;
      }
      assertEquals(firsts, [1, 2, 3, 4, 5]);
    });
  },
);

fdTest("sys: a datagram longer than its slot is cut and flagged", async () => {
  await withFds((keep) => {
    const [a, portA] = boundUdp(keep);
    const [b] = boundUdp(keep);
    assertEquals(
      sendTo(b, packet(5, 100), unwrap(packAddr("127.0.0.1", portA))),
      {
        ok: true,
        value: 100,
      },
    );
    unwrap(pollIn([a], 1000));
    const small = new PacketBatch(2, 16);
    assertEquals(unwrap(recvBatch(a, small)), 1);
    assert(small.truncated(0));
    assert((small.msgFlags[0]! & MSG_TRUNC) !== 0);
    assertEquals(small.packet(0), packet(5, 16));
  });
});

fdTest("sys: sendBatch refuses a packet larger than its slots", async () => {
  await withFds((keep) => {
    const [b] = boundUdp(keep);
    const batch = new PacketBatch(2, 32);
    expectErr(
      sendBatch(
        b,
        batch,
        [packet(1, 8), packet(2, 33)],
        unwrap(packAddr("127.0.0.1", 9)),
      ),
      "EMSGSIZE",
      "sendmmsg",
    );
    // Without a destination on an unconnected socket.
    expectErr(sendBatch(b, batch, [packet(1, 8)]), "EDESTADDRREQ", "sendmmsg");
  });
});

fdTest("sys: a batch whose memory was transferred is refused", async () => {
  await withFds((keep) => {
    const [a] = boundUdp(keep);
    const batch = new PacketBatch(2, 32);
    structuredClone(batch.bufs[0]!.buffer, {
      transfer: [batch.bufs[0]!.buffer],
    });
    expectErr(recvBatch(a, batch), "EINVAL", "recvmmsg");
    expectErr(sendBatch(a, batch, [packet(1, 8)]), "EINVAL", "sendmmsg");
  });
});

fdTest("sys: IPv6 round trip on ::1", async () => {
  await withFds((keep) => {
    const [a, portA] = boundUdp(keep, "::1");
    const [b, portB] = boundUdp(keep, "::1");
    assertEquals(unwrap(localAddr(a)), {
      family: "inet6",
      host: "::1",
      port: portA,
      flowinfo: 0,
      scopeId: 0,
    });
    const toA = unwrap(packAddr("::1", portA));
    const out = new PacketBatch(4, 256);
    assertEquals(
      sendBatch(b, out, [packet(6, 200), packet(7, 20), packet(8, 2)], toA),
      {
        ok: true,
        value: 3,
      },
    );
    unwrap(pollIn([a], 1000));
    const inA = new PacketBatch(4, 256);
    const lens: number[] = [];
    for (let tries = 0; lens.length < 3 && tries < 100; tries++) {
      const r = recvBatch(a, inA);
      if (!r.ok && r.wouldBlock) {
        unwrap(pollIn([a], 100));
        continue;
      }
      for (let i = 0; i < unwrap(r); i++) {
        lens.push(inA.lens[i]!);
        const from = unwrap(inA.source(i));
        assert(
          from.family === "inet6" && from.host === "::1" && from.port === portB,
        );
      }
    }
    assertEquals(lens, [200, 20, 2]);
    // And a single datagram back through sendTo and recvFrom.
    assertEquals(
      sendTo(a, packet(9, 5), unwrap(packAddr("::1", portB))).ok,
      true,
    );
    unwrap(pollIn([b], 1000));
    const r = unwrap(recvFrom(b, new Uint8Array(64)));
    assertEquals(r.length, 5);
    assert(
      r.from !== null && r.from.family === "inet6" && r.from.port === portA,
    );
  });
});

fdTest("sys: poll readiness and timeout", async () => {
  await withFds((keep) => {
    const [a, portA] = boundUdp(keep);
    const [b, portB] = boundUdp(keep);
    // Nothing to read: the timeout passes.
    const t0 = performance.now();
    assertEquals(pollIn([a, b], 60), { ok: true, value: [] });
    const waited = performance.now() - t0;
    assert(waited >= 50, `poll returned after ${waited} ms`);
    assertEquals(pollIn([a, b], 0), { ok: true, value: [] });

    unwrap(sendTo(a, packet(1), unwrap(packAddr("127.0.0.1", portB))));
    assertEquals(pollIn([a, b], 1000), { ok: true, value: [b] });
    unwrap(sendTo(b, packet(1), unwrap(packAddr("127.0.0.1", portA))));
    assertEquals(pollIn([a, b], 1000), { ok: true, value: [a, b] });

    const ps = new PollSet(1);
    ps.add(a, POLLIN | POLLOUT);
    ps.add(b, POLLOUT); // grows past its first capacity
    assertEquals(ps.size, 2);
    assertEquals(unwrap(ps.wait(0)), 2);
    assertEquals(ps.fd(1), b);
    assertEquals(ps.revents(0), POLLIN | POLLOUT);
    assertEquals(ps.revents(1), POLLOUT);
  });
});

fdTest("sys: epoll readiness, tags, modify, remove and timeout", async () => {
  await withFds((keep) => {
    const ep = unwrap(Epoll.open(4));
    try {
      const [a, portA] = boundUdp(keep);
      const [b, portB] = boundUdp(keep);
      const efd = keep(eventfd());
      unwrap(ep.add(a, EPOLLIN, 1));
      unwrap(ep.add(b, EPOLLIN, 2));
      unwrap(ep.add(efd, EPOLLIN, 0xffff_fff3));
      expectErr(ep.add(a, EPOLLIN, 9), "EEXIST", "epoll_ctl");

      const t0 = performance.now();
      assertEquals(ep.wait(60), { ok: true, value: 0 });
      assert(performance.now() - t0 >= 50);

      unwrap(sendTo(b, packet(1), unwrap(packAddr("127.0.0.1", portA))));
      unwrap(sendTo(a, packet(1), unwrap(packAddr("127.0.0.1", portB))));
      unwrap(eventfdSignal(efd));
      // All three at once: the tags of the 2nd and 3rd entries are only
      // right if the stride of the event array is the kernel's.
      let tags: number[] = [];
      for (let tries = 0; tags.length < 3 && tries < 50; tries++) {
        const n = unwrap(ep.wait(100));
        tags = [];
        for (let i = 0; i < n; i++) {
          assertEquals(ep.events(i), EPOLLIN);
          tags.push(ep.tag(i));
        }
      }
      assertEquals(tags.sort(), [1, 2, 0xffff_fff3].sort());
      assertEquals(ep.ready, 3);

      // Only room for one per wait when asked so.
      assertEquals(ep.wait(0, 1), { ok: true, value: 1 });

      unwrap(ep.modify(a, EPOLLOUT, 11));
      unwrap(ep.remove(b));
      unwrap(ep.remove(efd));
      assertEquals(ep.wait(0), { ok: true, value: 1 });
      assertEquals([ep.events(0), ep.tag(0)], [EPOLLOUT, 11]);
      expectErr(ep.remove(b), "ENOENT", "epoll_ctl");
    } finally {
      unwrap(ep.close());
    }
  });
});

fdTest(
  "sys: eventfd counts, drains, and reads one at a time as a semaphore",
  async () => {
    await withFds((keep) => {
      const efd = keep(eventfd());
      assertEquals(pollIn([efd], 0), { ok: true, value: [] });
      unwrap(eventfdSignal(efd));
      unwrap(eventfdSignal(efd, 41));
      assertEquals(pollIn([efd], 0), { ok: true, value: [efd] });
      assertEquals(eventfdDrain(efd), { ok: true, value: 42 });
      expectWouldBlock(eventfdDrain(efd), "read");

      const big = keep(eventfd({ initial: 5 }));
      unwrap(eventfdSignal(big, 2 ** 40));
      assertEquals(eventfdDrain(big), { ok: true, value: 2 ** 40 + 5 });

      const sem = keep(eventfd({ semaphore: true, initial: 2 }));
      assertEquals(eventfdDrain(sem), { ok: true, value: 1 });
      assertEquals(eventfdDrain(sem), { ok: true, value: 1 });
      expectWouldBlock(eventfdDrain(sem), "read");
      expectErr(eventfdSignal(sem, 0), "EINVAL");
      expectErr(eventfd({ initial: -1 }), "EINVAL", "eventfd");
    });
  },
);

fdTest("sys: SO_RCVBUF and SO_SNDBUF set and read back", async () => {
  await withFds((keep) => {
    const fd = keep(udpSocket("inet"));
    assertEquals(getIntOption(fd, SOL_SOCKET, SO_TYPE), {
      ok: true,
      value: SOCK_DGRAM,
    });
    // Linux doubles what it is asked for.
    assertEquals(setBuffer(fd, "rcv", 256 * 1024), {
      ok: true,
      value: 512 * 1024,
    });
    assertEquals(getBuffer(fd, "rcv"), { ok: true, value: 512 * 1024 });
    assertEquals(getIntOption(fd, SOL_SOCKET, SO_RCVBUF), {
      ok: true,
      value: 512 * 1024,
    });
    assertEquals(setBuffer(fd, "snd", 100_000), { ok: true, value: 200_000 });
    // Above net.core.rmem_max the request is capped (then doubled).
    const rmemMax = Number(
      Deno.readTextFileSync("/proc/sys/net/core/rmem_max").trim(),
    );
    const capped = unwrap(setBuffer(fd, "rcv", rmemMax + 4096));
    assertEquals(capped, 2 * rmemMax);
    // The forced form ignores the cap, for a process with CAP_NET_ADMIN.
    const forced = setBuffer(fd, "rcv", rmemMax + 4096, true);
    if (Deno.uid() === 0) {
      assertEquals(forced, { ok: true, value: 2 * (rmemMax + 4096) });
    } else {
      expectErr(forced, "EPERM", "setsockopt");
    }
    expectErr(setBuffer(fd, "rcv", -1), "EINVAL", "setsockopt");
  });
});

fdTest(
  "sys: Unix stream sockets: listen, connect, accept, write, writev, readv",
  async () => {
    const dir = Deno.makeTempDirSync({ prefix: "lib-sys-" });
    try {
      await withFds((keep, closeNow) => {
        const path = `${dir}/data.sock`;
        const l = keep(unixListen(path, 4, { nonBlocking: true }));
        expectWouldBlock(acceptFd(l), "accept4");
        expectErr(unixListen(path), "EADDRINUSE", "bind");
        expectErr(unixConnect(`${dir}/none.sock`), "ENOENT", "connect");
        const c = keep(unixConnect(path));
        assertEquals(unwrap(pollIn([l], 1000)), [l]);
        const s = keep(acceptFd(l, { nonBlocking: true }));
        assertEquals(unwrap(localAddr(l)), { family: "unix", path });

        // A frame: a 4-byte length and its packet, in one writev.
        const head = new Uint8Array([0, 0, 0, 3]);
        const body = new Uint8Array([7, 8, 9]);
        assertEquals(writevFd(c, [head, body, new Uint8Array(0)]), {
          ok: true,
          value: 7,
        });
        // Parts may be views into the middle of a larger buffer.
        const big = new Uint8Array(4096).map((_, i) => i & 0xff);
        assertEquals(writevFd(c, [big.subarray(1000, 1010)]), {
          ok: true,
          value: 10,
        });
        assertEquals(writeFd(c, new Uint8Array([42])), { ok: true, value: 1 });
        assertEquals(sendStream(c, new Uint8Array([43])), {
          ok: true,
          value: 1,
        });

        unwrap(pollIn([s], 1000));
        const h = new Uint8Array(4);
        const rest = new Uint8Array(16);
        let got = 0;
        for (let tries = 0; got < 19 && tries < 100; tries++) {
          const r = got === 0
            ? readvFd(s, [h, rest])
            : readFd(s, rest.subarray(got - 4));
          if (!r.ok && r.wouldBlock) {
            unwrap(pollIn([s], 100));
            continue;
          }
          got += unwrap(r);
        }
        assertEquals(got, 19);
        assertEquals(h, head);
        assertEquals(rest.subarray(0, 3), body);
        assertEquals(rest.subarray(3, 13), big.subarray(1000, 1010));
        assertEquals([rest[13], rest[14]], [42, 43]);
        expectWouldBlock(readFd(s, rest), "read");

        // The peer closes: a read sees the end, a write EPIPE (no signal).
        closeNow(c);
        assertEquals(readFd(s, rest), { ok: true, value: 0 });
        expectErr(sendStream(s, body), "EPIPE", "sendto");
        expectErr(writeFd(s, body), "EPIPE", "write");
      });
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
);

fdTest("sys: socketPair and readv/writev with many parts", async () => {
  await withFds((keep) => {
    const [x, y] = unwrap(socketPair());
    keep({ ok: true, value: x });
    keep({ ok: true, value: y });
    const parts = Array.from({ length: 40 }, (_, i) => new Uint8Array([i, i]));
    assertEquals(writevFd(x, parts), { ok: true, value: 80 });
    const into = Array.from({ length: 20 }, () => new Uint8Array(4));
    assertEquals(readvFd(y, into), { ok: true, value: 80 });
    assertEquals([...into[19]!], [38, 38, 39, 39]);
    expectErr(
      writevFd(x, Array.from({ length: 1025 }, () => parts[0]!)),
      "EINVAL",
      "writev",
    );
  });
});
