/**
 * `ocbr` end to end on one node: the client sends at the rate asked, paced,
 * and the server counts every packet up to the end packet.
 */
import { assert, assertEquals } from "./assert.ts";
import { LAUNCHER, Node } from "./harness.ts";
import { nameHashHex } from "../lib/wire/name_hash.ts";

const IP = "127.0.0.71";

Deno.test("ocbr: a 1 s run at 8 Mb/s reaches the server whole, at that rate", async () => {
  const node = await Node.start("cbr", {
    config: `[name."ocbr"]
prog=["@DIR@/bin/ocbr"]

[udp.cbr]
bootstrap="cbr-layer"
ip="${IP}"
port=3441
hosts="@DIR@/hosts"
reg=["ocbr"]
`,
    hosts: `${IP} ${nameHashHex("ocbr")} #ocbr\n`,
    ready: /Registered ocbr with IPCP/,
  });
  try {
    await Deno.symlink(LAUNCHER, node.bin("ocbr"));
    const from = node.irmd.lines.length;
    const server = node.spawnPath(node.bin("ocbr"), ["-l"], "cbr/ocbr-l");
    await server.waitFor(/CBR server started/, 15_000);
    await node.irmd.waitFor(/This process accepts flows for:/, 10_000, from);
    const client = await node.spawnPath(
      node.bin("ocbr"),
      ["-n", "ocbr", "-d", "1", "-s", "1000", "-r", "8M"],
      "cbr/ocbr",
    ).exit(20_000);
    assertEquals(client.code, 0, client.stdout + client.stderr);
    const sent = /Sent (\d+) packets, (\d+) bytes/.exec(client.stdout);
    assert(sent !== null, client.stdout);
    const n = Number(sent[1]);
    // 8 Mb/s of 1,000-byte packets for 1 s: 1,000 packets.
    assert(n >= 900 && n <= 1100, `sent ${n} packets`);
    const done = await server.waitFor(/Flow \d+ done:/, 10_000);
    const m =
      /done: (\d+) packets.*; (\d+) sent, (\d+) lost .*, (\d+) out-of-order/
        .exec(done);
    assert(m !== null, done);
    assertEquals(Number(m[2]), n, "the end packet carries the count sent");
    assert(Number(m[1]) >= n * 0.98, `received ${m[1]} of ${n}`);
    assertEquals(Number(m[4]), 0, "out of order");
  } finally {
    await node.close();
  }
});
