/**
 * The DNS client and the registrar against a scripted server on loopback,
 * for the faults that a real server does not produce on demand: answers
 * with a wrong id, truncated or malformed, from another port, none at all,
 * refusals. (tests/ddns_test.ts runs the whole thing against BIND.)
 */
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  unwrap,
} from "../../tests/assert.ts";
import * as dns from "../../lib/wire/dns.ts";
import { setupLogging } from "../../lib/util/log.ts";
import {
  DdnsRegistrar,
  DnsClient,
  DnsError,
  lookupAddress,
  serverText,
} from "./ddns.ts";

/**
 * What the scripted server sends back for one request: messages, maybe from
 * another socket (another port of its address, or its port on another
 * address).
 */
type Reply = Uint8Array | { fromOther: Uint8Array } | {
  fromOtherIp: Uint8Array;
};

/** A UDP "DNS server" whose answers a test scripts. */
class FakeServer {
  readonly sock: Deno.DatagramConn;
  readonly other: Deno.DatagramConn;
  readonly otherIp: Deno.DatagramConn;
  readonly requests: dns.Message[] = [];
  handler: (req: dns.Message, raw: Uint8Array) => Reply[] = () => [];
  #loop: Promise<void>;

  constructor() {
    this.sock = Deno.listenDatagram({
      transport: "udp",
      hostname: "127.0.0.1",
      port: 0,
    });
    this.other = Deno.listenDatagram({
      transport: "udp",
      hostname: "127.0.0.1",
      port: 0,
    });
    this.otherIp = Deno.listenDatagram({
      transport: "udp",
      hostname: "127.0.0.2",
      port: this.port,
    });
    this.#loop = this.#serve();
  }

  get port(): number {
    return (this.sock.addr as Deno.NetAddr).port;
  }

  client(opts: { tryMs?: number; deadlineMs?: number } = {}): DnsClient {
    return new DnsClient({ host: "127.0.0.1", port: this.port }, opts);
  }

  async #serve(): Promise<void> {
    for (;;) {
      let d: Uint8Array;
      let from: Deno.Addr;
      try {
        [d, from] = await this.sock.receive();
      } catch {
        return;
      }
      const req = unwrap(dns.parseMessage(d));
      this.requests.push(req);
      for (const r of this.handler(req, d)) {
        if (r instanceof Uint8Array) await this.sock.send(r, from);
        else if ("fromOther" in r) await this.other.send(r.fromOther, from);
        else await this.otherIp.send(r.fromOtherIp, from);
      }
    }
  }

  async close(): Promise<void> {
    this.sock.close();
    this.other.close();
    this.otherIp.close();
    await this.#loop;
  }
}

/** A response to `req`: its header with QR set and `rcode`, its question, then `answers`. */
function reply(
  raw: Uint8Array,
  rcode = 0,
  answers: { ttl: number; rdata: number[] }[] = [],
  flags = 0,
): Uint8Array {
  const req = unwrap(dns.parseMessage(raw));
  const qEnd = unwrap(dns.readName(raw, 12)).next + 4;
  const out: number[] = [...raw.subarray(0, qEnd)];
  out[2] = (out[2]! | 0x84 | (flags >> 8)) & 0xff; // QR, AA
  out[3] = (rcode & 0xf) | (flags & 0xff);
  out[6] = 0;
  out[7] = answers.length;
  out[8] = 0;
  out[9] = 0;
  out[10] = 0;
  out[11] = 0;
  for (const a of answers) {
    out.push(
      0xc0,
      12,
      0,
      req.questions[0]!.type,
      0,
      1,
      (a.ttl >>> 24) & 0xff,
      (a.ttl >>> 16) & 0xff,
      (a.ttl >>> 8) & 0xff,
      a.ttl & 0xff,
      0,
      a.rdata.length,
      ...a.rdata,
    );
  }
  return new Uint8Array(out);
}

/** Captures log lines (debug on) while `fn` runs. */
async function withLog<T>(
  fn: (lines: string[]) => Promise<T>,
): Promise<T> {
  const lines: string[] = [];
  const dec = new TextDecoder();
  setupLogging({
    debug: true,
    sink: {
      writeSync: (p) => {
        lines.push(...dec.decode(p).split("\n").filter((l) => l !== ""));
        return p.length;
      },
      isTerminal: () => false,
    },
  });
  try {
    return await fn(lines);
  } finally {
    setupLogging({ debug: false, sink: Deno.stdout });
  }
}

const HEX = "6ae220aa6aae06c43878513c64db34b6";

Deno.test("lookup: A answer with its TTL, NXDOMAIN, no record", async () => {
  const srv = new FakeServer();
  try {
    const client = srv.client();
    srv.handler = (
      _q,
      raw,
    ) => [reply(raw, 0, [{ ttl: 300, rdata: [127, 0, 0, 1] }])];
    assertEquals(await lookupAddress(client, HEX, ".", 4), {
      address: "127.0.0.1",
      ttl: 300,
    });
    const q = srv.requests[0]!;
    assertEquals(q.header.opcode, dns.OPCODE_QUERY);
    assertEquals(q.header.rd, false);
    assertEquals(q.questions, [{
      name: `${HEX}.`,
      type: dns.TYPE_A,
      class: dns.CLASS_IN,
    }]);
    srv.handler = (_q, raw) => [reply(raw, dns.RCODE_NXDOMAIN)];
    assertEquals(await lookupAddress(client, HEX, "o7s.test", 4), {
      address: undefined,
      ttl: 0,
    });
    assertEquals(srv.requests[1]!.questions[0]!.name, `${HEX}.o7s.test.`);
    srv.handler = (_q, raw) => [reply(raw, 0)];
    assertEquals(
      (await lookupAddress(client, HEX, ".", 6)).address,
      undefined,
    );
    assertEquals(srv.requests[2]!.questions[0]!.type, dns.TYPE_AAAA);
  } finally {
    await srv.close();
  }
});

Deno.test("lookup: a refusal or SERVFAIL is an error that says so", async () => {
  const srv = new FakeServer();
  try {
    srv.handler = (_q, raw) => [reply(raw, dns.RCODE_SERVFAIL)];
    const e = await assertRejects(
      () => lookupAddress(srv.client(), HEX, ".", 4),
      /DNS server 127\.0\.0\.1:\d+ refused the query \(SERVFAIL\)/,
    );
    assert(e instanceof DnsError && e.kind === "rcode");
  } finally {
    await srv.close();
  }
});

Deno.test("exchange: wrong id, truncated, malformed, other port or address: ignored and logged; the right answer wins", async () => {
  const srv = new FakeServer();
  try {
    await withLog(async (lines) => {
      srv.handler = (_q, raw) => {
        const wrongId = reply(raw, 0, [{ ttl: 60, rdata: [10, 0, 0, 9] }]);
        wrongId[0] = wrongId[0]! ^ 0xff;
        const truncated = reply(raw, 0, [], 0x0200);
        const good = reply(raw, 0, [{ ttl: 60, rdata: [127, 0, 0, 7] }]);
        return [
          wrongId,
          truncated,
          good.subarray(0, good.length - 3), // cut short
          good.subarray(0, 5),
          { fromOther: good },
          { fromOtherIp: good },
          good,
        ];
      };
      const got = await lookupAddress(srv.client(), HEX, ".", 4);
      assertEquals(got.address, "127.0.0.7");
      const ignored = lines.filter((l) => l.includes("(DB): Ignored"));
      assertEquals(ignored.length, 6, lines.join("\n"));
      assertMatch(
        ignored[0]!,
        /^==\d{5}== ipcpd\/udp\(DB\): Ignored a response from the DNS server 127\.0\.0\.1:\d+: wrong id/,
      );
      assertMatch(ignored[1]!, /truncated \(TC bit set\)/);
      assertMatch(ignored[2]!, /malformed: answer record 1/);
      assertMatch(ignored[3]!, /malformed: 5 bytes/);
      assertMatch(
        ignored[4]!,
        /Ignored a DNS message from 127\.0\.0\.1:\d+: not the DNS server/,
      );
      assertMatch(
        ignored[5]!,
        new RegExp(
          `Ignored a DNS message from 127\\.0\\.0\\.2:${srv.port}: not the DNS server`,
        ),
      );
    });
  } finally {
    await srv.close();
  }
});

Deno.test("exchange: a bad answer first, the retry gets the good one", async () => {
  const srv = new FakeServer();
  try {
    let n = 0;
    srv.handler = (_q, raw) => {
      n++;
      return n === 1 ? [reply(raw, 0, [], 0x0200)] : [
        reply(raw, 0, [{ ttl: 5, rdata: [127, 0, 0, 3] }]),
      ];
    };
    const started = Date.now();
    const got = await lookupAddress(
      srv.client({ tryMs: 100, deadlineMs: 2000 }),
      HEX,
      ".",
      4,
    );
    assertEquals(got.address, "127.0.0.3");
    assertEquals(srv.requests.length, 2);
    // The same id on the retry (a late answer to the first try counts).
    assertEquals(srv.requests[0]!.header.id, srv.requests[1]!.header.id);
    assert(Date.now() - started < 1000);
  } finally {
    await srv.close();
  }
});

Deno.test("exchange: no answer: resent each try, a clear timeout at the deadline", async () => {
  const srv = new FakeServer();
  try {
    const client = srv.client({ tryMs: 100, deadlineMs: 450 });
    const started = Date.now();
    const e = await assertRejects(
      () => lookupAddress(client, HEX, ".", 4),
      new RegExp(
        `^DNS server ${
          serverText(client.server).replaceAll(".", "\\.")
        } did not answer within 450 ms$`,
      ),
    );
    const took = Date.now() - started;
    assert(e instanceof DnsError && e.kind === "timeout");
    assert(took >= 440 && took < 1500, `took ${took} ms`);
    assert(srv.requests.length >= 4, `${srv.requests.length} tries`);
    assertEquals(serverText({ host: "::1", port: 53 }), "[::1]:53");
  } finally {
    await srv.close();
  }
});

Deno.test("exchange: cancelled by a signal", async () => {
  const srv = new FakeServer();
  try {
    const ctl = new AbortController();
    setTimeout(() => ctl.abort(), 50);
    await assertRejects(
      () => srv.client().query("a.", dns.TYPE_A, { signal: ctl.signal }),
      /cancelled/,
    );
  } finally {
    await srv.close();
  }
});

Deno.test("update: NOERROR succeeds, REFUSED is an error naming the server", async () => {
  const srv = new FakeServer();
  try {
    const client = srv.client();
    srv.handler = (_q, raw) => [reply(raw)];
    await client.update(".", [{
      op: "add",
      name: `${HEX}.`,
      type: dns.TYPE_A,
      ttl: 86400,
      rdata: new Uint8Array([127, 0, 0, 1]),
    }]);
    srv.handler = (_q, raw) => [reply(raw, dns.RCODE_REFUSED)];
    await assertRejects(
      () =>
        client.update(".", [{
          op: "delete-rrset",
          name: `${HEX}.`,
          type: dns.TYPE_A,
        }]),
      /DNS server 127\.0\.0\.1:\d+ refused the update \(REFUSED\)/,
    );
  } finally {
    await srv.close();
  }
});

Deno.test("registrar: add, remove (one RR, class NONE), close deletes what is left", async () => {
  const srv = new FakeServer();
  srv.handler = (_q, raw) => [reply(raw)];
  const reg = new DdnsRegistrar({
    client: srv.client(),
    zone: ".",
    family: 6,
    address: "::1",
  });
  try {
    assertEquals(await reg.add(HEX, "oping-server"), undefined);
    assertEquals(await reg.add("ab", "other"), undefined);
    assertEquals(reg.pending(), []);
    const add = srv.requests[0]!;
    assertEquals(add.header.opcode, dns.OPCODE_UPDATE);
    assertEquals(add.questions, [{
      name: ".",
      type: dns.TYPE_SOA,
      class: dns.CLASS_IN,
    }]);
    assertEquals(add.answers, []);
    assertEquals(add.authority.length, 1);
    assertEquals(add.authority[0]!.name, `${HEX}.`);
    assertEquals(add.authority[0]!.type, dns.TYPE_AAAA);
    assertEquals(add.authority[0]!.class, dns.CLASS_IN);
    assertEquals(add.authority[0]!.ttl, 86400);
    assertEquals(unwrap(dns.decodeAddress(add.authority[0]!.rdata)), "::1");

    assertEquals(await reg.remove(HEX, "oping-server"), undefined);
    const del = srv.requests[2]!.authority[0]!;
    assertEquals([del.name, del.type, del.class, del.ttl], [
      `${HEX}.`,
      dns.TYPE_AAAA,
      dns.CLASS_NONE,
      0,
    ]);
    assertEquals(unwrap(dns.decodeAddress(del.rdata)), "::1");
  } finally {
    await reg.close();
    await srv.close();
  }
  // close deleted the one still added.
  assertEquals(srv.requests.length, 4);
  assertEquals(srv.requests[3]!.authority[0]!.name, "ab.");
  assertEquals(srv.requests[3]!.authority[0]!.class, dns.CLASS_NONE);
});

Deno.test("registrar: server down: clear warning, background retry until it is back", async () => {
  const srv = new FakeServer();
  const reg = new DdnsRegistrar({
    client: srv.client({ tryMs: 50, deadlineMs: 120 }),
    zone: ".",
    family: 4,
    address: "127.0.0.1",
    retryFirstMs: 100,
    retryMaxMs: 200,
  });
  try {
    await withLog(async (lines) => {
      const why = await reg.add(HEX, "oping-server");
      assertMatch(why ?? "", /did not answer within 120 ms/);
      assertEquals(reg.pending(), [HEX]);
      assert(
        lines.some((l) =>
          /ipcpd\/udp\(WW\): Could not add 6ae220aa6aae06c43878513c64db34b6 \(oping-server\) in DNS: DNS server 127\.0\.0\.1:\d+ did not answer within 120 ms; retrying in 100 ms\./
            .test(l)
        ),
        lines.join("\n"),
      );
      // The server comes back.
      srv.handler = (_q, raw) => [reply(raw)];
      const deadline = Date.now() + 3000;
      while (reg.pending().length > 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
      }
      assertEquals(reg.pending(), []);
      assert(
        lines.some((l) =>
          /\(II\): Added 6ae220aa6aae06c43878513c64db34b6 \(oping-server\) to DNS server .* after \d+ attempts\./
            .test(l)
        ),
        lines.join("\n"),
      );
    });
  } finally {
    await reg.close();
    await srv.close();
  }
});

Deno.test("registrar: a refusal is an error line; unregistering stops the retries", async () => {
  const srv = new FakeServer();
  srv.handler = (_q, raw) => [reply(raw, dns.RCODE_NOTAUTH)];
  const reg = new DdnsRegistrar({
    client: srv.client(),
    zone: "o7s.test",
    family: 4,
    address: "127.0.0.1",
    retryFirstMs: 50,
    retryMaxMs: 50,
  });
  try {
    await withLog(async (lines) => {
      assertMatch(
        (await reg.add(HEX, "oping-server")) ?? "",
        /refused the update \(NOTAUTH\)/,
      );
      assert(lines.some((l) => /\(EE\): Could not add .* \(NOTAUTH\)/.test(l)));
      assertEquals(
        srv.requests[0]!.authority[0]!.name,
        `${HEX}.o7s.test.`,
      );
      // The removal cancels the retry of the add. Another name added after
      // it, refused once, is retried 50 ms later: by the time that retry
      // arrives, the add's retry (due earlier) would have come first.
      const other = "0123456789abcdef0123456789abcdef";
      const retried = Promise.withResolvers<void>();
      let refusedOther = false;
      srv.handler = (q, raw) => {
        if (q.authority[0]?.name !== `${other}.o7s.test.`) return [reply(raw)];
        if (refusedOther) retried.resolve();
        const first = !refusedOther;
        refusedOther = true;
        return [reply(raw, first ? dns.RCODE_NOTAUTH : 0)];
      };
      assertEquals(await reg.remove(HEX, "oping-server"), undefined);
      const n = srv.requests.length;
      assertMatch((await reg.add(other, "other")) ?? "", /NOTAUTH/);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        retried.promise,
        new Promise((_, reject) =>
          timer = setTimeout(() => reject(new Error("no retry")), 5000)
        ),
      ]).finally(() => clearTimeout(timer));
      assertEquals(
        srv.requests.slice(n).map((q) => q.authority[0]!.name),
        [`${other}.o7s.test.`, `${other}.o7s.test.`],
        "retried after the removal",
      );
      assertEquals(reg.pending().filter((h) => h === HEX), []);
    });
  } finally {
    await reg.close();
    await srv.close();
  }
});

Deno.test("registrar: close is bounded when the server is gone", async () => {
  const srv = new FakeServer();
  srv.handler = (_q, raw) => [reply(raw)];
  const reg = new DdnsRegistrar({
    client: srv.client(),
    zone: ".",
    family: 4,
    address: "127.0.0.1",
  });
  try {
    await reg.add(HEX, "oping-server");
    srv.handler = () => [];
    const started = Date.now();
    await reg.close(300);
    const took = Date.now() - started;
    assert(took < 1000, `close took ${took} ms`);
    assertEquals(await reg.add("cd", "late"), "the IPCP is stopping");
  } finally {
    await srv.close();
  }
});
