/**
 * The unicast IPCP with its real data path (a Worker, as in ipcpd-unicast)
 * on a fake irmd: a flow from this member to a name of its own, its two
 * ends real Unix connections speaking lib/ipc/dataplane.ts. Every packet
 * gets the DT header, loops through the DT decoder and comes out
 * unchanged and in order, both ways, 1 byte to the MTU and in bursts; an
 * end that goes away takes the other down; nothing is left open.
 */
import { assert, assertEquals } from "../../tests/assert.ts";
import { nameHashWith } from "../../lib/wire/name_hash.ts";
import {
  App,
  eventually,
  FakeIrmd,
  frame,
  packet,
  rawQos,
} from "../common/testing.ts";
import { decodeFlowPeer, encodeFlowPeer, FLOW_PEER_LEN } from "./datapath.ts";
import { UNICAST_MTU, UnicastIpcp } from "./ipcp.ts";

async function rig() {
  const irmd = await FakeIrmd.start(() => ({ oap: new Uint8Array([5]) }));
  const ipcp = new UnicastIpcp("u1", irmd.rundir);
  ipcp.startDataSocket();
  ipcp.attachCtrl(irmd.ctrl);
  await ipcp.datapathThread;
  ipcp.bootstrap({ layer: "net1" });
  const hash = nameHashWith("SHA3_256", "oping");
  ipcp.register("oping", hash);
  const apps: App[] = [];
  const allocate = async () => {
    const n = irmd.reqs.length;
    const c = await ipcp.allocate({
      name: "oping",
      hash,
      qos: rawQos(),
      oap: new Uint8Array([1]),
      timeoutMs: 5000,
    });
    const s = irmd.reqs[n]!;
    return {
      client: { handle: c.handle, token: c.token },
      server: { handle: s.handle, token: s.token },
    };
  };
  const attach = async (
    end: { handle: number; token: Uint8Array },
    then: Uint8Array[] = [],
  ) => {
    const app = await App.attach(
      ipcp.dataPath,
      UNICAST_MTU,
      end.handle,
      end.token,
      then,
    );
    apps.push(app);
    return app;
  };
  return {
    irmd,
    ipcp,
    allocate,
    attach,
    async close() {
      await ipcp.stop();
      for (const a of apps) a.close();
      await irmd.close();
    },
  };
}

Deno.test("a flow's peer in an ADD record: encoded and decoded, bad cubes refused", () => {
  const p = {
    eidHigh: 0xcfbf5075,
    peerEid: 0x107f5af400000042n,
    peerAddr: 0xcb475e84n,
    qc: 2,
  };
  const b = encodeFlowPeer(p);
  assertEquals(b.length, FLOW_PEER_LEN);
  assertEquals(decodeFlowPeer(b), p);
  b[20] = 3;
  assertEquals(decodeFlowPeer(b), undefined);
  assertEquals(decodeFlowPeer(new Uint8Array(3)), undefined);
});

Deno.test("unicast data path: packets loop through DT unchanged and in order, both ways, 1 byte to the MTU", async () => {
  const r = await rig();
  try {
    const f = await r.allocate();
    const server = await r.attach(f.server);
    assertEquals(await server.status(), 0);
    const sizes = [1, 2, 64, 1500, UNICAST_MTU];
    const client = await r.attach(
      f.client,
      sizes.map((n, i) => frame(packet(i, n))),
    );
    assertEquals(await client.status(), 0);
    for (let i = 0; i < sizes.length; i++) {
      assertEquals(await server.next(), packet(i, sizes[i]!), `packet ${i}`);
    }
    await server.write([frame(packet(99, 100))]);
    assertEquals(await client.next(), packet(99, 100));
    const n = 2000;
    const size = (i: number) => 1 + (i * 37) % 1400;
    const sent = Array.from({ length: n }, (_, i) => frame(packet(i, size(i))));
    const reading = (async () => {
      for (let i = 0; i < n; i++) {
        const got = await server.next();
        assert(got !== null, `stream ended at ${i}`);
        assertEquals(got, packet(i, size(i)), `packet ${i}`);
      }
    })();
    await client.write(sent);
    await reading;
    const c = r.ipcp.dataPathCounters()!;
    assertEquals(c.noRoute, 0);
    assertEquals(c.unknownEid, 0);
    assertEquals(c.txPackets, sizes.length + 1 + n);
    await eventually(
      "all delivered",
      () => r.ipcp.dataPathCounters()!.rxPackets === c.txPackets,
    );

    // The client goes away: the server's end goes down, the irmd hears.
    client.close();
    assert(await server.ends());
    await r.irmd.until(
      "the server side reported",
      () => r.irmd.ended.length >= 1,
    );
    assertEquals(r.ipcp.stats().flows, 0);
  } finally {
    await r.close();
  }
});
