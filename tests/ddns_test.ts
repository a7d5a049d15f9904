/**
 * Dynamic DNS for UDP layers against a real BIND 9 (tests/named.ts), with no
 * hosts files: registration adds the name's record on the layer's server,
 * clients resolve through it, unregistration and shutdown delete it; two
 * UDP layers in parallel, each with its own server; udp6 with AAAA records;
 * the server going away and coming back.
 *
 * The layers use port 3635 (and 3735), not the tutorial's 3435, so that
 * these tests never collide with the tutorial tests on 127.0.0.1/127.0.0.2.
 * Without named the tests are skipped with a printed reason (CI=true: they
 * fail instead).
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { Node, type Proc } from "./harness.ts";
import { Named, stepWithDig, testWithNamed } from "./named.ts";
import { nameHashHex } from "../lib/wire/name_hash.ts";

const PORT_A = 3635;
const PORT_B = 3735;
const H1 = nameHashHex("oping-server"); // 6ae220aa...
const H2 = nameHashHex("oping-server2"); // f87b9400...

function names(...ns: string[]): string {
  return ns.map((n) =>
    `[name."${n}"]\nprog=["@DIR@/bin/oping"]\nargs=["--listen"]\n`
  ).join("\n");
}

function udpStanza(o: {
  type?: "udp4" | "udp6";
  ipcp: string;
  layer: string;
  ip: string;
  port: number;
  dns: string;
  zone?: string;
  reg?: string[];
}): string {
  return `
[${o.type ?? "udp4"}.${o.ipcp}]
bootstrap="${o.layer}"
ip="${o.ip}"
port=${o.port}
dns="${o.dns}"
${o.zone !== undefined ? `zone="${o.zone}"\n` : ""}${
    o.reg !== undefined ? `reg=${JSON.stringify(o.reg)}\n` : ""
  }`;
}

/** Pings `name` once from `client`; returns oping's output on success. */
async function ping(client: Node, name: string): Promise<string> {
  const r = await client.run("oping", ["-n", name, "-c", "1"], 20_000);
  assertEquals(
    r.code,
    0,
    `oping -n ${name} failed:\n${r.stdout}\n${r.stderr}\n--- irmd:\n${
      client.irmd.lines.slice(-30).join("\n")
    }`,
  );
  assertMatch(r.stdout, new RegExp(`64 bytes from ${name}: seq=0 time=`));
  return r.stdout;
}

/** The layer of the IPCP over which `client`'s irmd last allocated a flow to `name`. */
function layerOfLastFlow(irmd: Proc, name: string): string | undefined {
  const flows = irmd.lines.flatMap((l) =>
    new RegExp(`Flow \\d+ allocated for \\d+ to ${name} over IPCP (\\d+)\\.`)
      .exec(l)?.[1] ?? []
  );
  const pid = flows.at(-1);
  for (const l of irmd.lines) {
    const m = /Bootstrapped IPCP (\d+) in layer (\S+)\./.exec(l);
    if (m !== null && m[1] === pid) return m[2];
  }
  return undefined;
}

testWithNamed(
  "ddns: a name registered on the server node is in BIND, a client pings it, unregistering and shutdown delete it",
  async (t) => {
    const named = await Named.start({ label: "named" });
    let server: Node | undefined;
    let client: Node | undefined;
    try {
      server = await Node.start("ddns-server", {
        config: names("oping-server", "oping-server2") +
          udpStanza({
            ipcp: "ddns1",
            layer: "ddns-net",
            ip: "127.0.0.1",
            port: PORT_A,
            dns: named.dns4,
            reg: ["oping-server", "oping-server2"],
          }),
        ready: /Registered oping-server2 with IPCP/,
      });
      const lines = server.irmd.lines;
      assert(
        lines.some((l) =>
          l.endsWith("ipcpd/udp(DB): DNS server address is 127.0.0.1.")
        ),
        lines.join("\n"),
      );
      assert(!lines.some((l) => l.includes("DNS server not in use.")));
      assert(
        lines.some((l) => l.endsWith(`Using DNS server port ${named.port}.`)),
      );

      // The records are in BIND (asked independently of our DNS code).
      await named.lookupUntil(`${H1}.`, "A", ["127.0.0.1"]);
      await named.lookupUntil(`${H2}.`, "A", ["127.0.0.1"]);
      await t.step(stepWithDig("the record's TTL is 86400 (dig)", async () => {
        const answer = await named.dig("127.0.0.1", `${H1}.`, "A");
        assertEquals(answer.length, 1, answer.join("\n"));
        assertMatch(
          answer[0]!,
          new RegExp(`^${H1}\\.\\s+86400\\s+IN\\s+A\\s+127\\.0\\.0\\.1$`),
        );
      }));

      // A client with the same DNS server and no hosts file pings it.
      client = await Node.start("ddns-client", {
        config: udpStanza({
          ipcp: "ddns1",
          layer: "ddns-net",
          ip: "127.0.0.2",
          port: PORT_A,
          dns: named.dns4,
        }),
        ready: /Bootstrapped IPCP \d+ in layer ddns-net/,
      });
      await ping(client, "oping-server");
      await ping(client, "oping-server2");

      // Unregistering deletes the record.
      const un = await server.run("irm", [
        "name",
        "unregister",
        "oping-server",
        "layer",
        "ddns-net",
      ]);
      assertEquals(un.code, 0, un.stdout + un.stderr);
      await named.lookupUntil(`${H1}.`, "A", []);
      await named.lookupUntil(`${H2}.`, "A", ["127.0.0.1"]);

      // A clean shutdown deletes the rest.
      await server.close();
      await named.lookupUntil(`${H2}.`, "A", []);
      // The zone itself is intact.
      assertEquals(await named.lookup("ns.", "A"), ["127.0.0.1"]);
    } finally {
      await client?.close();
      await server?.close();
      await named.close();
    }
  },
);

testWithNamed(
  "ddns: two UDP layers in parallel, each with its own named: each resolves only its own names",
  async () => {
    const namedA = await Named.start({ label: "named-a" });
    let namedB: Named | undefined;
    let server: Node | undefined;
    let client: Node | undefined;
    try {
      // Layer B keeps its names in a zone of its own (zone=).
      namedB = await Named.start({ label: "named-b", zone: "o7s.test" });
      server = await Node.start("ddns2-server", {
        config: names("only-a", "only-b", "both") +
          udpStanza({
            ipcp: "la",
            layer: "layer-a",
            ip: "127.0.0.1",
            port: PORT_A,
            dns: namedA.dns4,
            reg: ["only-a", "both"],
          }) +
          udpStanza({
            ipcp: "lb",
            layer: "layer-b",
            ip: "127.0.0.1",
            port: PORT_B,
            dns: namedB.dns4,
            zone: "o7s.test",
            reg: ["both", "only-b"],
          }),
        ready: /Registered only-b with IPCP/,
      });
      const [a, b, both] = ["only-a", "only-b", "both"].map(nameHashHex) as [
        string,
        string,
        string,
      ];
      assertEquals(await namedA.lookup(`${a}.`, "A"), ["127.0.0.1"]);
      assertEquals(await namedA.lookup(`${both}.`, "A"), ["127.0.0.1"]);
      assertEquals(await namedA.lookup(`${b}.`, "A"), []);
      assertEquals(await namedB.lookup(`${b}.o7s.test.`, "A"), ["127.0.0.1"]);
      assertEquals(await namedB.lookup(`${both}.o7s.test.`, "A"), [
        "127.0.0.1",
      ]);
      assertEquals(await namedB.lookup(`${a}.o7s.test.`, "A"), []);

      client = await Node.start("ddns2-client", {
        config: udpStanza({
          ipcp: "la",
          layer: "layer-a",
          ip: "127.0.0.2",
          port: PORT_A,
          dns: namedA.dns4,
        }) +
          udpStanza({
            ipcp: "lb",
            layer: "layer-b",
            ip: "127.0.0.2",
            port: PORT_B,
            dns: namedB.dns4,
            zone: "o7s.test",
          }),
        ready: /Bootstrapped IPCP \d+ in layer layer-b/,
      });
      await ping(client, "only-a");
      assertEquals(layerOfLastFlow(client.irmd, "only-a"), "layer-a");
      await ping(client, "only-b");
      assertEquals(layerOfLastFlow(client.irmd, "only-b"), "layer-b");
      await ping(client, "both");
      assertEquals(layerOfLastFlow(client.irmd, "both"), "layer-a");

      // Without layer A on the client, "both" is reached through layer B,
      // and only-a is unknown there.
      const d = await client.run("irm", ["ipcp", "destroy", "name", "la"]);
      assertEquals(d.code, 0, d.stdout + d.stderr);
      await ping(client, "both");
      assertEquals(layerOfLastFlow(client.irmd, "both"), "layer-b");
      const r = await client.run("oping", ["-n", "only-a", "-c", "1"], 20_000);
      assert(r.code !== 0, r.stdout);
      assertMatch(
        r.stdout + r.stderr,
        new RegExp(`only-a \\(${a}\\) does not resolve in layer layer-b`),
      );
    } finally {
      await client?.close();
      await server?.close();
      await namedB?.close();
      await namedA.close();
    }
  },
);

testWithNamed(
  "ddns: udp6 on ::1 publishes AAAA records (bootstrapped with irm ... dns [::1]:port)",
  async (t) => {
    const named = await Named.start({ label: "named6", v4: false, v6: true });
    let node: Node | undefined;
    try {
      node = await Node.start("ddns6", { config: names("oping-server") });
      const boot = await node.run("irm", [
        "ipcp",
        "bootstrap",
        "type",
        "udp6",
        "name",
        "v6",
        "layer",
        "ddns6",
        "ip",
        "::1",
        "port",
        String(PORT_A),
        "dns",
        named.dns6,
      ]);
      assertEquals(boot.code, 0, boot.stdout + boot.stderr);
      await node.irmd.waitFor(/DNS server address is ::1\./, 5000);
      const reg = await node.run("irm", [
        "name",
        "register",
        "oping-server",
        "layer",
        "ddns6",
      ]);
      assertEquals(reg.code, 0, reg.stdout + reg.stderr);
      await named.lookupUntil(`${H1}.`, "AAAA", ["::1"]);
      assertEquals(await named.lookup(`${H1}.`, "A"), []);
      await t.step(stepWithDig("the record's TTL is 86400 (dig)", async () => {
        const answer = await named.dig("::1", `${H1}.`, "AAAA");
        assertEquals(answer.length, 1, answer.join("\n"));
        assertMatch(
          answer[0]!,
          new RegExp(`^${H1}\\.\\s+86400\\s+IN\\s+AAAA\\s+::1$`),
        );
      }));
      await ping(node, "oping-server");
      await node.close();
      await named.lookupUntil(`${H1}.`, "AAAA", []);
    } finally {
      await node?.close();
      await named.close();
    }
  },
);

testWithNamed(
  "ddns: named stopped mid-test: clear errors, no hang, irmd stays up; started again, registration and resolution recover",
  async () => {
    const named = await Named.start({ label: "named" });
    let server: Node | undefined;
    let client: Node | undefined;
    try {
      server = await Node.start("ddnsf-server", {
        config: names("oping-server", "oping-server2") +
          udpStanza({
            ipcp: "ddns1",
            layer: "ddns-net",
            ip: "127.0.0.1",
            port: PORT_A,
            dns: named.dns4,
            reg: ["oping-server"],
          }),
        ready: /Registered oping-server with IPCP/,
      });
      client = await Node.start("ddnsf-client", {
        config: udpStanza({
          ipcp: "ddns1",
          layer: "ddns-net",
          ip: "127.0.0.2",
          port: PORT_A,
          dns: named.dns4,
        }),
        ready: /Bootstrapped IPCP \d+ in layer ddns-net/,
      });
      await ping(client, "oping-server");

      await named.stop();

      // Resolving a name: a clear error once the DNS server's 2 s deadline
      // has passed, not the allocation's own 20 s. Timed from the irmd's
      // start of the allocation to the IPCP's failure, as they log them.
      const sent = client.irmd.lines.length;
      const oping = client.spawn("oping", ["-n", "oping-server2", "-c", "1"]);
      await client.irmd.waitFor(
        /irmd\(II\): Allocating flow for \d+ to oping-server2\./,
        15_000,
        sent,
      );
      const asked = performance.now();
      await client.irmd.waitFor(
        /ipcpd\/udp\(WW\): Cannot resolve oping-server2 .*did not answer/,
        15_000,
        sent,
      );
      const tookMs = performance.now() - asked;
      assert(tookMs < 2000 + 3000, `the failed resolution took ${tookMs} ms`);
      const r = await oping.exit(15_000);
      assert(r.code !== 0, r.stdout);
      assertMatch(
        r.stdout + r.stderr,
        new RegExp(
          `cannot resolve oping-server2 \\(${H2}\\) in layer ddns-net: DNS server 127\\.0\\.0\\.1:${named.port} did not answer within 2000 ms`,
        ),
      );

      // Registering: the name is registered (the irmd stays up), the DNS
      // failure is a clear log line, and the update is retried.
      const from = server.irmd.lines.length;
      const reg = await server.run("irm", [
        "name",
        "register",
        "oping-server2",
        "layer",
        "ddns-net",
      ]);
      assertEquals(reg.code, 0, reg.stdout + reg.stderr);
      await server.irmd.waitFor(
        new RegExp(
          `ipcpd/udp\\(WW\\): Could not add ${H2} \\(oping-server2\\) in DNS: DNS server 127\\.0\\.0\\.1:${named.port} did not answer within 2000 ms; retrying in 1000 ms\\.`,
        ),
        5000,
        from,
      );
      for (const n of [server, client]) {
        const list = await n.run("irm", ["ipcp", "list"]);
        assertEquals(list.code, 0, list.stdout + list.stderr);
        assertMatch(list.stdout, /ddns1/);
      }

      // named comes back: the pending registration goes through, and the
      // client resolves (a failure is not cached).
      await named.restart();
      await server.irmd.waitFor(
        new RegExp(
          `ipcpd/udp\\(II\\): Added ${H2} \\(oping-server2\\) to DNS server 127\\.0\\.0\\.1:${named.port} after \\d+ attempts\\.`,
        ),
        40_000,
        from,
      );
      assertEquals(await named.lookup(`${H2}.`, "A"), ["127.0.0.1"]);
      assertEquals(await named.lookup(`${H1}.`, "A"), ["127.0.0.1"]);
      await ping(client, "oping-server2");
    } finally {
      await client?.close();
      await server?.close();
      await named.close();
    }
  },
);
