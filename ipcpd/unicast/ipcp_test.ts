/**
 * The unicast IPCP's control side, with the data path replaced by a record
 * of its commands and the irmd by a fake one on a Unix socket: bootstrap
 * and its checks, registration and query, a flow to a name of this member
 * through the irmd's "flow request arrived", and an unknown name refused
 * at once.
 */
import {
  assert,
  assertEquals,
  assertRejects,
  assertThrows,
} from "../../tests/assert.ts";
import type { OuroborosError } from "../../lib/util/errors.ts";
import type { Req } from "../../lib/ipc/proto.ts";
import { nameHashWith } from "../../lib/wire/name_hash.ts";
import { type DpCommand, Op } from "../common/dp_msg.ts";
import { FakeIrmd, type OnFlowReq, rawQos } from "../common/testing.ts";
import { decodeFlowPeer } from "./datapath.ts";
import { CONG_NONE, LS_ECMP } from "./enroll.ts";
import { UNICAST_MPL_MS, UNICAST_MTU, UnicastIpcp } from "./ipcp.ts";

async function rig(onFlowReq: OnFlowReq = () => ({ oap: new Uint8Array(0) })) {
  const irmd = await FakeIrmd.start(onFlowReq);
  const commands: DpCommand[] = [];
  const ipcp = new UnicastIpcp("u1", irmd.rundir, {
    command: (c) => commands.push(c),
    bytes: (c) => commands.push(c),
  }, () => {
    // No lower layer: nothing to allocate, nothing ever accepted.
    let close = () => {};
    const done = new Promise<void>((r) => close = r);
    return Promise.resolve({
      allocateGrant: () => Promise.reject(new Error("no lower layer")),
      acceptGrant: () =>
        done.then(() => Promise.reject(new Error("session closed"))),
      close: () => {
        close();
        return Promise.resolve();
      },
      done,
    });
  });
  ipcp.attachCtrl(irmd.ctrl);
  return {
    irmd,
    ipcp,
    commands,
    async close() {
      await ipcp.stop();
      await irmd.close();
    },
  };
}

function allocReq(name: string, algo: "SHA3_256" | "SHA3_512" = "SHA3_256") {
  const r: Req<"ipcp.flow.alloc"> = {
    name,
    hash: nameHashWith(algo, name),
    qos: rawQos(1500),
    oap: new Uint8Array([1, 2, 3, 4]),
    timeoutMs: 5000,
  };
  return r;
}

Deno.test("bootstrap: an address, the defaults, the layer's settings, MPL 100 ms", async () => {
  const t = await rig();
  try {
    const res = t.ipcp.bootstrap({
      layer: "net1",
      unicast: { routing: "ecmp", congestion: "none", maxTtl: 30 },
    });
    const addr = t.ipcp.address!;
    assertEquals(res, {
      hash: "SHA3_256",
      mplMs: UNICAST_MPL_MS,
      address: String(addr),
    });
    assert(addr > 0n && addr < 1n << 32n);
    const c = t.ipcp.layerConfig!;
    assertEquals(c.layerInfo, { name: "net1", dirHashAlgo: 1 });
    assertEquals(c.unicast!.dt.maxTtl, 30);
    assertEquals(c.unicast!.dt.routing.ls!.pol, LS_ECMP);
    assertEquals(c.unicast!.congAvoid, CONG_NONE);
    assertEquals(c.unicast!.dir.dht!.tExpire, 86400);
    // The data path learns the DT settings.
    assertEquals(t.commands, [{
      op: Op.Layer,
      addr,
      addrSize: 4,
      eidSize: 8,
      maxTtl: 30,
      multipath: true,
      ecn: false,
    }]);
    assertThrows(
      () => t.ipcp.bootstrap({ layer: "net2" }),
      /already bootstrapped/,
    );
  } finally {
    await t.close();
  }
});

Deno.test("bootstrap refuses what a member cannot run, and UDP options", async () => {
  const t = await rig();
  try {
    assertThrows(
      () => t.ipcp.bootstrap({ layer: "n", unicast: { addrSize: 2 } }),
      /Flat address policy mandates 4 byte addresses/,
    );
    assertThrows(
      () => t.ipcp.bootstrap({ layer: "n", unicast: { eidSize: 4 } }),
      /eid_size 4/,
    );
    assertThrows(
      () => t.ipcp.bootstrap({ layer: "n", ip: "127.0.0.1" }),
      /not for a unicast IPCP/,
    );
    assertThrows(
      () => t.ipcp.bootstrap({ layer: "n", hash: "MD5" }),
      /not MD5/,
    );
    assertEquals(t.ipcp.address, undefined);
    assertThrows(
      () => t.ipcp.register("oping", nameHashWith("SHA3_256", "oping")),
      /not bootstrapped/,
    );
  } finally {
    await t.close();
  }
});

Deno.test("a flow to a name of this member: through the irmd's flow request, both sides in the data path", async () => {
  const t = await rig(() => ({ oap: new Uint8Array([7, 7]) }));
  try {
    t.ipcp.bootstrap({ layer: "net1", hash: "SHA3_512" });
    const hash = nameHashWith("SHA3_512", "oping");
    t.ipcp.register("oping", hash);
    assertEquals(await t.ipcp.query(hash), [t.ipcp.address!]);
    assertThrows(
      () => t.ipcp.register("oping", nameHashWith("SHA3_256", "oping")),
      /hashes names with SHA3_512/,
    );
    const grant = await t.ipcp.allocate(allocReq("oping", "SHA3_512"));
    assertEquals([...grant.oap], [7, 7]);
    assertEquals(grant.mtu, UNICAST_MTU);
    assertEquals(grant.path, t.ipcp.dataPath);
    assertEquals(t.irmd.reqs.length, 1);
    assertEquals([...t.irmd.reqs[0]!.hash], [...hash]);
    const adds = t.commands.filter((c) => c.op === Op.Add);
    assertEquals(adds.length, 2);
    for (const a of adds) {
      assert(a.op === Op.Add);
      assertEquals(decodeFlowPeer(a.addr)?.peerAddr, t.ipcp.address);
    }
    assertEquals(t.ipcp.stats().flows, 2);
    // The application goes away: its peer goes down, the irmd is told.
    t.ipcp.events.detached(grant.handle, "deallocated by the application");
    await t.irmd.until("both ends reported", () => t.irmd.ended.length === 2);
    assertEquals(t.ipcp.stats().flows, 0);
  } finally {
    await t.close();
  }
});

Deno.test("a name nobody registered: unknown at once, nothing asked of the irmd", async () => {
  const t = await rig();
  try {
    t.ipcp.bootstrap({ layer: "net1" });
    const e = await assertRejects(
      () => t.ipcp.allocate(allocReq("nobody")),
      /not registered in layer net1/,
    );
    assertEquals((e as OuroborosError).code, "unknown_name");
    assertEquals(t.irmd.reqs.length, 0);
    t.ipcp.register("oping", nameHashWith("SHA3_256", "oping"));
    t.ipcp.unregister("oping", nameHashWith("SHA3_256", "oping"));
    await assertRejects(
      () => t.ipcp.allocate(allocReq("oping")),
      /not registered/,
    );
  } finally {
    await t.close();
  }
});
