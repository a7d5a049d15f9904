/**
 * The local IPCP's control side, with the data path replaced by a record
 * of its commands and the irmd by a fake one on a Unix socket: the layer's
 * hash, registration and query, the pairing of a client flow with a
 * server flow through the irmd's "flow request arrived", refusals, and
 * the unpairing of both sides whichever side goes.
 */
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertThrows,
} from "../../tests/assert.ts";
import { OuroborosError } from "../../lib/util/errors.ts";
import type { Req } from "../../lib/ipc/proto.ts";
import {
  HASH_LEN,
  nameHashWith,
  SHA3_ALGOS,
} from "../../lib/wire/name_hash.ts";
import { Op } from "../common/dp_msg.ts";
import { LOCAL_MPL_MS, LOCAL_MTU, LocalIpcp, type LocalPorts } from "./ipcp.ts";
import { FakeIrmd, type OnFlowReq, rawQos } from "../common/testing.ts";

type Command = Parameters<LocalPorts["command"]>[0];

/** A local IPCP on a fake irmd, its data-path commands recorded. */
async function rig(onFlowReq: OnFlowReq = () => ({ oap: new Uint8Array(0) })) {
  const irmd = await FakeIrmd.start(onFlowReq);
  const commands: Command[] = [];
  const ipcp = new LocalIpcp("local-ipcp", irmd.rundir, {
    command: (c) => commands.push(c),
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

function allocReq(
  name: string,
  algo: (typeof SHA3_ALGOS)[number] = "SHA3_256",
  oap = new Uint8Array([1, 2, 3, 4]),
): Req<"ipcp.flow.alloc"> {
  return {
    name,
    hash: nameHashWith(algo, name),
    qos: rawQos(1500),
    oap,
    timeoutMs: 5000,
  };
}

const short = (cs: Command[]) =>
  cs.map((c) =>
    c.op === Op.Add
      ? `add ${c.eid}>${c.peerEid}${c.allocated ? " allocated" : ""}`
      : c.op === Op.Allocated
      ? `allocated ${c.eid}>${c.peerEid}`
      : `remove ${c.eid}`
  );

Deno.test("hash selection: SHA3-256 by default, each SHA3 on request, nothing else", async () => {
  const r = await rig();
  try {
    assertEquals(r.ipcp.bootstrap({ layer: "local-layer" }), {
      hash: "SHA3_256",
      mplMs: LOCAL_MPL_MS,
    });
    assertEquals(r.ipcp.layer, "local-layer");
    assertEquals(LOCAL_MPL_MS, 100);
    // Once only.
    const again = assertThrows(() => r.ipcp.bootstrap({ layer: "other" }));
    assert(again instanceof OuroborosError && again.code === "exists");
  } finally {
    await r.close();
  }
  for (const algo of SHA3_ALGOS) {
    const ipcp = new LocalIpcp("l", "/nonexistent", { command: () => {} });
    assertEquals(ipcp.bootstrap({ layer: "l", hash: algo }).hash, algo);
    assertEquals(ipcp.hash, algo);
    // A name hash of its own algorithm only.
    ipcp.register("oping", nameHashWith(algo, "oping"));
    assert(ipcp.query(nameHashWith(algo, "oping")));
    const other = algo === "SHA3_256" ? "SHA3_512" : "SHA3_256";
    const e = assertThrows(() =>
      ipcp.register("oping", nameHashWith(other, "oping"))
    );
    assert(e instanceof OuroborosError && e.code === "invalid");
    assertMatch(
      e.message,
      new RegExp(`hashes names with ${algo} \\(${HASH_LEN[algo]} bytes\\)`),
    );
  }
  const refused = (b: Req<"ipcp.bootstrap">): string => {
    const ipcp = new LocalIpcp("l", "/nonexistent", { command: () => {} });
    try {
      ipcp.bootstrap(b);
    } catch (e) {
      assert(e instanceof OuroborosError && e.code === "invalid");
      assertEquals(ipcp.layer, undefined, "a failed bootstrap leaves nothing");
      return e.message;
    }
    throw new Error(`bootstrap ${JSON.stringify(b)} was accepted`);
  };
  assertMatch(refused({ layer: "l", hash: "MD5" }), /not MD5/);
  assertMatch(
    refused({ layer: "l", ip: "127.0.0.1", port: 3435 }),
    /^ip, port: not for a local IPCP/,
  );
});

Deno.test("registration is a set of hashes; query says whether a hash is in it", async () => {
  const r = await rig();
  try {
    const h = nameHashWith("SHA3_256", "oping");
    // Not before a bootstrap.
    assertThrows(() => r.ipcp.register("x", h), /is not bootstrapped/);
    r.ipcp.bootstrap({ layer: "local-layer" });
    assertEquals(r.ipcp.query(h), false);
    r.ipcp.register("oping", h);
    r.ipcp.register("oping", h); // twice: still one entry
    assertEquals(r.ipcp.query(h), true);
    assertEquals(r.ipcp.query(nameHashWith("SHA3_256", "opinG")), false);
    r.ipcp.unregister("oping", h);
    assertEquals(r.ipcp.query(h), false);
    // An allocation to a name not registered is an unknown name, and the
    // irmd is not asked.
    const e = await assertRejects(() => r.ipcp.allocate(allocReq("oping")));
    assert(e instanceof OuroborosError && e.code === "unknown_name");
    assertMatch(e.message, /oping .* is not registered in layer local-layer/);
    assertEquals(r.irmd.reqs.length, 0);
    assertEquals(r.commands, []);
  } finally {
    await r.close();
  }
});

Deno.test("pairing: the client's allocation asks the irmd for the server side at once", async () => {
  const r = await rig(() => ({ oap: new Uint8Array([9, 8, 7]) }));
  try {
    r.ipcp.bootstrap({ layer: "local-layer", hash: "SHA3_384" });
    const req = allocReq("oping", "SHA3_384");
    r.ipcp.register("oping", req.hash);
    const res = await r.ipcp.allocate(req);
    // The server side's request: the same hash, QoS and OAP request bytes.
    assertEquals(r.irmd.reqs.length, 1);
    const arr = r.irmd.reqs[0]!;
    assertEquals(arr.hash, req.hash);
    assertEquals(arr.qos, req.qos);
    assertEquals(arr.oap, req.oap);
    assertEquals(arr.path, r.ipcp.dataPath);
    assertEquals(arr.mtu, LOCAL_MTU);
    // The client side is completed with the irmd's response.
    assertEquals(res.oap, new Uint8Array([9, 8, 7]));
    assertEquals(res.path, r.ipcp.dataPath);
    assertEquals(res.mtu, LOCAL_MTU);
    const client = res.handle;
    const server = arr.handle;
    assert(client !== server);
    assert(res.token.length === 16 && arr.token.length === 16);
    assert(res.token.some((b, i) => b !== arr.token[i]), "distinct tokens");
    assertEquals(
      r.ipcp.pairs(),
      new Map([[server, client], [client, server]]),
    );
    // The data path knew both before the irmd could hand them out, pending,
    // and each is the other's peer; both are allocated once answered.
    assertEquals(short(r.commands), [
      `add ${server}>${client}`,
      `add ${client}>${server}`,
      `allocated ${server}>${client}`,
      `allocated ${client}>${server}`,
    ]);
    const stats = r.ipcp.stats();
    assertEquals(stats.flows, 2);
    assertEquals(stats.socket, undefined);
  } finally {
    await r.close();
  }
});

Deno.test("a refusal answers the client at once and leaves nothing paired", async () => {
  const r = await rig(() => {
    throw new OuroborosError(
      "refused",
      "no process accepts flows for oping",
      -111,
    );
  });
  try {
    r.ipcp.bootstrap({ layer: "local-layer" });
    const req = allocReq("oping");
    r.ipcp.register("oping", req.hash);
    const e = await assertRejects(() => r.ipcp.allocate(req));
    assert(e instanceof OuroborosError);
    assertEquals([e.code, e.errno], ["refused", -111]);
    assertEquals(e.message, "no process accepts flows for oping");
    assertEquals(r.ipcp.pairs().size, 0);
    const [server, client] = r.commands;
    assertEquals(server?.eid, r.irmd.reqs[0]!.handle);
    assertEquals(short(r.commands.slice(2)), [
      `remove ${client?.eid}`,
      `remove ${server?.eid}`,
    ]);
    // The irmd held neither side: it hears of neither.
    assertEquals(r.irmd.ended, []);
  } finally {
    await r.close();
  }
});

Deno.test("unpairing: either side deallocated ends the other, which the irmd hears of", async () => {
  const r = await rig();
  try {
    r.ipcp.bootstrap({ layer: "local-layer" });
    const req = allocReq("oping");
    r.ipcp.register("oping", req.hash);

    // The client side deallocated (by the irmd: its process went away).
    const a = await r.ipcp.allocate(req);
    const aServer = r.irmd.reqs[0]!.handle;
    r.commands.length = 0;
    r.ipcp.deallocate(a.handle);
    assertEquals(short(r.commands), [
      `remove ${a.handle}`,
      `remove ${aServer}`,
    ]);
    await r.irmd.until("the server side ended", () => r.irmd.ended.length > 0);
    assertEquals(r.irmd.ended.map((e) => e.handle), [aServer]);
    assertMatch(r.irmd.ended[0]!.reason, /partner flow ended \(deallocated\)/);
    assertEquals(r.ipcp.pairs().size, 0);

    // The server side deallocated: the client side goes down.
    const b = await r.ipcp.allocate(req);
    const bServer = r.irmd.reqs[1]!.handle;
    r.ipcp.deallocate(bServer);
    await r.irmd.until("the client side ended", () => r.irmd.ended.length > 1);
    assertEquals(r.irmd.ended[1]!.handle, b.handle);

    // An application that goes away (the data path says so): both sides
    // end, and the irmd hears of both.
    const c = await r.ipcp.allocate(req);
    const cServer = r.irmd.reqs[2]!.handle;
    r.ipcp.events.detached(c.handle, "deallocated by the application");
    await r.irmd.until("both ended", () => r.irmd.ended.length > 3);
    assertEquals(
      r.irmd.ended.slice(2).map((e) => e.handle).sort(),
      [c.handle, cServer].sort(),
    );
    // Whatever comes after for either side is a no-op.
    r.commands.length = 0;
    r.ipcp.deallocate(c.handle);
    r.ipcp.deallocate(cServer);
    r.ipcp.events.detached(cServer, "late");
    assertEquals(r.commands, []);
    assertEquals(r.ipcp.pairs().size, 0);
    assertEquals(r.ipcp.stats().flows, 0);
  } finally {
    await r.close();
  }
});

Deno.test("a server side that goes away while the irmd answers fails the client", async () => {
  const r = await rig();
  r.irmd.onFlowReq = (req) => {
    // The accepting process dies between accepting and the answer.
    r.ipcp.deallocate(req.handle);
    return { oap: new Uint8Array(0) };
  };
  try {
    r.ipcp.bootstrap({ layer: "local-layer" });
    const req = allocReq("oping");
    r.ipcp.register("oping", req.hash);
    const e = await assertRejects(() => r.ipcp.allocate(req));
    assert(e instanceof OuroborosError && e.code === "flow_down");
    assertEquals(r.ipcp.pairs().size, 0);
  } finally {
    await r.close();
  }
});

Deno.test("stop ends every flow; no allocation after it", async () => {
  const r = await rig();
  try {
    r.ipcp.bootstrap({ layer: "local-layer" });
    const req = allocReq("oping");
    r.ipcp.register("oping", req.hash);
    await r.ipcp.allocate(req);
    await r.ipcp.allocate(req);
    assertEquals(r.ipcp.pairs().size, 4);
    await r.ipcp.stop();
    assertEquals(r.ipcp.pairs().size, 0);
    const e = await assertRejects(() => r.ipcp.allocate(req));
    assert(e instanceof OuroborosError && e.code === "failed");
  } finally {
    await r.close();
  }
});
