/**
 * The local IPCP with its real data path (a Worker, as in ipcpd-local) on
 * a fake irmd: applications on real Unix connections speaking
 * lib/ipc/dataplane.ts. Packets move unchanged and in order both ways,
 * from 1 byte to the MTU and in bursts; packets sent before the partner
 * attached wait for it; a side that goes away (or is deallocated, or
 * breaks the protocol) takes its partner down; nothing is left open.
 */
import { assert, assertEquals } from "../../tests/assert.ts";
import { putU32 } from "../../lib/ipc/framing.ts";
import { assertNoNewFds, watchedFds } from "../../lib/sys/testing.ts";
import { LOCAL_MTU, LocalIpcp } from "./ipcp.ts";
import { APP_QUEUE_BYTES } from "../common/ipcp_flows.ts";
import {
  type App,
  eventually,
  frame,
  ipcpRig,
  packet,
} from "../common/testing.ts";

/** A local IPCP with its data path, on a fake irmd, "oping" registered. */
const rig = () =>
  ipcpRig(
    (rundir) => new LocalIpcp("local-ipcp", rundir),
    "local-layer",
    LOCAL_MTU,
  );

// A Worker started and ended before the tests: Deno keeps the last Worker's
// runtime descriptors until the next one starts, which every leak check
// then starts from.
{
  const r = await rig();
  await r.close();
}

Deno.test("local data path: packets move unchanged and in order, both ways, 1 byte to the MTU", async () => {
  const before = watchedFds();
  const r = await rig();
  try {
    const f = await r.allocate();
    const server = await r.attach(f.server);
    assertEquals(await server.status(), 0);
    // The client writes its first packets with its attach frame, as
    // lib/app/dev.ts does.
    const sizes = [1, 2, 64, 1500, 9000, LOCAL_MTU];
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

    // A burst both ways at once, far more than one read or one writev.
    const n = 3000;
    const size = (i: number) => 1 + (i * 37) % 1400;
    const sent = Array.from({ length: n }, (_, i) => frame(packet(i, size(i))));
    const back = Array.from(
      { length: n },
      (_, i) => frame(packet(i + 7, size(i + 3))),
    );
    const reading = async (app: App, expect: (i: number) => Uint8Array) => {
      for (let i = 0; i < n; i++) {
        const got = await app.next();
        assert(got !== null, `stream ended at ${i}`);
        assertEquals(got, expect(i), `packet ${i}`);
      }
    };
    await Promise.all([
      client.write(sent),
      server.write(back),
      reading(server, (i) => packet(i, size(i))),
      reading(client, (i) => packet(i + 7, size(i + 3))),
    ]);
    const st = r.ipcp.stats();
    assertEquals(st.flows, 2);
    assertEquals(st.dropped.slowReader, 0);
    assertEquals(st.dropped.unknownEid, 0);
  } finally {
    await r.close();
  }
  await assertNoNewFds(before, 2000);
});

Deno.test("local data path: packets before the partner attached wait for it", async () => {
  const r = await rig();
  try {
    const f = await r.allocate();
    const server = await r.attach(f.server, [
      frame(packet(1, 10)),
      frame(packet(2, 20)),
    ]);
    assertEquals(await server.status(), 0);
    // The data path has read them before the client attaches.
    await eventually(
      "the server's packets read",
      () => (r.ipcp.dataPathCounters()?.txPackets ?? 0) >= 2,
    );
    const client = await r.attach(f.client);
    assertEquals(await client.status(), 0);
    assertEquals(await client.next(), packet(1, 10));
    assertEquals(await client.next(), packet(2, 20));
    await client.write([frame(packet(3, 30))]);
    assertEquals(await server.next(), packet(3, 30));
  } finally {
    await r.close();
  }
});

Deno.test("local data path: what waits for a partner is bounded in bytes too, not only in packets", async () => {
  const r = await rig();
  try {
    const f = await r.allocate();
    // 20 packets of the MTU: 1.3 MB, more than the application queue's
    // 1 MiB, far fewer than the pre-attach limit of packets.
    const big = Array.from({ length: 20 }, (_, i) => packet(i, LOCAL_MTU));
    const server = await r.attach(f.server, big.map(frame));
    assertEquals(await server.status(), 0);
    await eventually(
      "the server's packets read",
      () => (r.ipcp.dataPathCounters()?.txPackets ?? 0) >= 20,
    );
    const kept = Math.floor(APP_QUEUE_BYTES / LOCAL_MTU);
    assertEquals(r.ipcp.stats().dropped.slowReader, 20 - kept);
    const client = await r.attach(f.client);
    assertEquals(await client.status(), 0);
    for (let i = 0; i < kept; i++) {
      assertEquals(await client.next(), big[i], `packet ${i}`);
    }
  } finally {
    await r.close();
  }
});

Deno.test("local data path: one side gone takes the other down, and the irmd hears of both", async () => {
  const r = await rig();
  try {
    // The client's application goes away (closes its connection).
    const f1 = await r.allocate();
    const s1 = await r.attach(f1.server);
    const c1 = await r.attach(f1.client);
    assertEquals([await s1.status(), await c1.status()], [0, 0]);
    c1.close();
    assert(await s1.ends(), "the server side's stream ends");
    await r.irmd.until("both sides ended", () => r.irmd.ended.length === 2);
    assertEquals(
      r.irmd.endedHandles(),
      [f1.client.handle, f1.server.handle].sort((a, b) => a - b),
    );

    // The server side deallocated by the irmd: the client goes down.
    const f2 = await r.allocate();
    const s2 = await r.attach(f2.server);
    const c2 = await r.attach(f2.client);
    assertEquals([await s2.status(), await c2.status()], [0, 0]);
    r.ipcp.deallocate(f2.server.handle);
    assert(await c2.ends(), "the client side's stream ends");
    assert(await s2.ends(), "the server side's stream ends");
    await r.irmd.until("the client ended", () => r.irmd.ended.length === 3);
    assertEquals(r.irmd.ended[2]!.handle, f2.client.handle);

    // A packet over the MTU breaks the protocol: that side is closed, and
    // its partner goes down with it.
    const f3 = await r.allocate();
    const s3 = await r.attach(f3.server);
    const c3 = await r.attach(f3.client);
    assertEquals([await s3.status(), await c3.status()], [0, 0]);
    const big = new Uint8Array(4);
    putU32(big, 0, LOCAL_MTU + 1);
    await c3.write([big]);
    assert(await c3.ends(), "the offender's stream ends");
    assert(await s3.ends(), "its partner's stream ends");
    assertEquals(r.ipcp.pairs().size, 0);
    // Nobody attaches to an ended flow.
    const late = await r.attach(f3.server);
    assert((await late.status()) < 0, "attach to an ended flow refused");
  } finally {
    await r.close();
  }
});

Deno.test("local data path: a command written while the data path is awake is never left in the ring (200 pairs ended by the control thread, two commands each)", async () => {
  const r = await rig();
  try {
    for (let i = 0; i < 200; i++) {
      const f = await r.allocate();
      const s = await r.attach(f.server);
      const c = await r.attach(f.client);
      assertEquals([await s.status(), await c.status()], [0, 0], `pair ${i}`);
      // Ends both sides: a Remove for each, written back to back, while the
      // data path may still be in the pass that the first one woke.
      r.ipcp.deallocate(f.client.handle);
      assert(await s.ends(), `pair ${i}: the server side's stream ends`);
      assert(await c.ends(), `pair ${i}: the client side's stream ends`);
    }
  } finally {
    await r.close();
  }
});

Deno.test("local data path: an application that writes its last packet and goes at once: the packet arrives and the flow ends, every time (30 flows)", async () => {
  const r = await rig();
  try {
    for (let i = 0; i < 30; i++) {
      const f = await r.allocate();
      const s = await r.attach(f.server);
      assertEquals(await s.status(), 0);
      const c = await r.attach(f.client);
      assertEquals(await c.status(), 0);
      // The last packet and the end go together, in one epoll event when
      // the data path is not looking (as an enrollment's ack does).
      await c.write([frame(packet(i, 16))]);
      c.close();
      assertEquals(await s.next(), packet(i, 16));
      assert(await s.ends(), `flow ${i}: the server side's stream ends`);
    }
    await r.irmd.until("every side ended", () => r.irmd.ended.length === 60);
  } finally {
    await r.close();
  }
});
