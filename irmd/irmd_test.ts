/**
 * The irmd's side of enrollment and connections, of an IPCP that is also
 * an application, and of the layers a flow is asked of, without processes:
 * the "IPCPs" here are control connections that say hello as the IPCP an
 * entry of the irmd's table was made for, and answer what they are asked.
 */
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  unwrap,
} from "../tests/assert.ts";
import { connectCtrl, type CtrlConn, type Handlers } from "../lib/ipc/ctrl.ts";
import type { IpcpTypeName, Req } from "../lib/ipc/proto.ts";
import { OuroborosError } from "../lib/util/errors.ts";
import { setupLogging } from "../lib/util/log.ts";
import { buildOapResponse } from "../lib/wire/oap.ts";
import { QOS_CUBES } from "../lib/wire/udp_wire.ts";
import { type Ipcp, ipcpHandlers } from "../ipcpd/common/ipcp_main.ts";
import { Irmd } from "./irmd.ts";

/** The irmd's log lines, kept. */
const logged: string[] = [];
setupLogging({
  debug: true,
  sink: {
    writeSync(p: Uint8Array): number {
      logged.push(...new TextDecoder().decode(p).split("\n").filter((l) => l));
      return p.length;
    },
    isTerminal: () => false,
  },
});

let nextPid = 900_000;
let nextCreated = 100;

interface Node {
  irmd: Irmd;
  conns: CtrlConn[];
  /** A tool's connection, hello said. */
  tool: CtrlConn;
  close(): Promise<void>;
}

async function node(): Promise<Node> {
  const dir = await Deno.makeTempDir({ prefix: "irmd-test-" });
  const irmd = new Irmd({ rundir: `${dir}/run`, debug: true });
  await irmd.listen();
  const conns: CtrlConn[] = [];
  const n: Node = {
    irmd,
    conns,
    tool: undefined as unknown as CtrlConn,
    async close() {
      for (const c of conns) c.close();
      await irmd.stop();
      await Deno.remove(dir, { recursive: true });
    },
  };
  n.tool = await hello(n, { role: "tool", pid: Deno.pid });
  return n;
}

async function hello(
  n: Node,
  h: Req<"hello">,
  handlers: Handlers = {},
): Promise<CtrlConn> {
  const c = await connectCtrl(n.irmd.socketPath, handlers);
  n.conns.push(c);
  await c.request("hello", h, 5000);
  return c;
}

/**
 * An IPCP in the irmd's table, as createIpcp makes one but without a
 * process (its "child" is already gone), connected with `handlers`.
 */
async function fakeIpcp(
  n: Node,
  name: string,
  type: IpcpTypeName,
  handlers: Handlers,
  layer?: string,
): Promise<{ pid: number; conn: CtrlConn }> {
  const pid = nextPid++;
  const status: Deno.CommandStatus = { success: true, code: 0, signal: null };
  const entry = {
    name,
    type,
    pid,
    child: {
      kill() {
        throw new Error("no such process");
      },
      status: Promise.resolve(status),
    },
    conn: undefined,
    layer,
    enrolled: false,
    enrolling: undefined,
    hash: type === "unicast" || type === "local" ? "SHA3_256" : "MD5",
    mplMs: undefined,
    regs: new Map(),
    flows: new Map(),
    exited: new Promise(() => {}),
    connected: Promise.withResolvers<CtrlConn>(),
    created: nextCreated++,
    origin: undefined,
    restarts: 0,
    startedAt: Date.now(),
  };
  n.irmd.ipcps.set(name, entry as never);
  const conn = await hello(n, { role: "ipcp", pid, name }, handlers);
  return { pid, conn };
}

const QOS = { ...QOS_CUBES.raw };

Deno.test("irm.ipcp.enroll: the IPCP is asked, its layer, hash and MPL recorded, then autobind", async () => {
  const n = await node();
  try {
    const asked: Req<"ipcp.enroll">[] = [];
    const regs: Req<"ipcp.reg">[] = [];
    const u2 = await fakeIpcp(n, "u2", "unicast", {
      "ipcp.enroll": (r) => {
        asked.push(r);
        return { layer: "net1", hash: "SHA3_512", mplMs: 250 };
      },
      "ipcp.reg": (r) => {
        regs.push(r);
        return {};
      },
      "ipcp.flow.alloc": (r) => ({
        handle: 7,
        token: new Uint8Array(16),
        path: "/nowhere",
        mtu: 1400,
        oap: unwrap(buildOapResponse(r.oap)),
      }),
    });
    const from = logged.length;
    assertEquals(
      await n.tool.request("irm.ipcp.enroll", {
        name: "u2",
        layer: "net1",
        autobind: true,
      }),
      { layer: "net1" },
    );
    // Without dst, the layer's name is the destination.
    assertEquals(asked, [{ dst: "net1" }]);
    assert(
      logged.slice(from).some((l) =>
        l.endsWith(`irmd(II): Enrolled IPCP ${u2.pid} in layer net1.`)
      ),
      logged.slice(from).join("\n"),
    );
    assertEquals((await n.tool.request("irm.ipcp.list", {})).ipcps, [
      { pid: u2.pid, name: "u2", type: "unicast", layer: "net1" },
    ]);
    // Autobind: its own name and its layer's.
    const procs = (await n.tool.request("irm.proc.list", {})).procs;
    assertEquals(procs.find((p) => p.pid === u2.pid)?.names, [
      "u2 (bound)",
      "net1 (bound)",
    ]);
    // The layer's hash, as the enrollment said.
    await n.tool.request("irm.name.create", { name: "oping", lb: "spill" });
    await n.tool.request("irm.name.register", {
      name: "oping",
      ipcps: ["u2"],
      layers: [],
    });
    assertEquals(regs.map((r) => r.hash.length), [64]);
    // And its MPL, in the grants of its flows.
    const app = await hello(n, { role: "app", pid: nextPid++, prog: "oping" });
    const grant = await app.request("flow.alloc", {
      name: "oping",
      qos: QOS,
      timeoutMs: 2000,
    });
    assertEquals(grant.mplMs, 250);
    // In a layer: neither enrolled nor bootstrapped again.
    await assertRejects(
      () =>
        n.tool.request("irm.ipcp.enroll", {
          name: "u2",
          dst: "u1",
          autobind: false,
        }),
      /IPCP u2 is already enrolled in net1/,
    );
    await assertRejects(
      () => n.tool.request("irm.ipcp.bootstrap", { name: "u2", layer: "x" }),
      /IPCP u2 is already enrolled in net1/,
    );
    assertEquals(asked.length, 1);
  } finally {
    await n.close();
  }
});

Deno.test("irm.ipcp.enroll with dst and layer: the layer joined must be the one named", async () => {
  const n = await node();
  try {
    const asked: Req<"ipcp.enroll">[] = [];
    await fakeIpcp(n, "u2", "unicast", {
      "ipcp.enroll": (r) => {
        asked.push(r);
        return { layer: "net2", hash: "SHA3_256", mplMs: 100 };
      },
    });
    await assertRejects(
      () =>
        n.tool.request("irm.ipcp.enroll", {
          name: "u2",
          dst: "u1",
          layer: "net1",
          autobind: true,
        }),
      /^enrolled with u1 in layer net2, not in layer net1 as asked$/,
    );
    assertEquals(asked, [{ dst: "u1" }]);
    // It is in net2 all the same (the IPCP joined it), and not bound.
    assertEquals(
      (await n.tool.request("irm.ipcp.list", {})).ipcps[0]?.layer,
      "net2",
    );
    assertEquals((await n.tool.request("irm.proc.list", {})).procs, []);
  } finally {
    await n.close();
  }
});

Deno.test("irm.ipcp.enroll refuses what cannot enroll before asking", async () => {
  const n = await node();
  try {
    let asked = 0;
    const count: Handlers = {
      "ipcp.enroll": () => {
        asked++;
        return { layer: "net1", hash: "SHA3_256", mplMs: 100 };
      },
    };
    await fakeIpcp(n, "w", "udp4", count);
    await fakeIpcp(n, "b", "unicast", count, "net0");
    const cases: [Req<"irm.ipcp.enroll">, RegExp][] = [
      [
        { name: "u2", autobind: false },
        /give the member to enroll with \(dst\) or the layer's name \(layer\)/,
      ],
      [
        { name: "u2", dst: "u1", type: "udp4", autobind: false },
        /only unicast IPCPs enroll, not udp4 ones/,
      ],
      [
        { name: "w", dst: "u1", type: "unicast", autobind: false },
        /IPCP w is of type udp4, not unicast/,
      ],
      [
        { name: "b", dst: "u1", autobind: false },
        /IPCP b is already bootstrapped in net0/,
      ],
    ];
    for (const [r, re] of cases) {
      await assertRejects(() => n.tool.request("irm.ipcp.enroll", r), re);
    }
    assertEquals(asked, 0);
    assertEquals(n.irmd.ipcps.size, 2);
  } finally {
    await n.close();
  }
});

/** An Ipcp with nothing but what the dispatch needs. */
function bareIpcp(more: Partial<Ipcp> = {}): Ipcp {
  const none = () => {
    throw new Error("not in this test");
  };
  return {
    dataPath: "/nowhere",
    datapathThread: new Promise(() => {}),
    onFatal: () => {},
    startDataSocket: none,
    attachCtrl: none,
    bootstrap: none,
    register: none,
    unregister: none,
    allocate: none,
    deallocate: none,
    stats: none,
    stop: () => Promise.resolve(),
    ...more,
  };
}

Deno.test("an IPCP without enroll and connect says so; one with them is asked (ipcp_main's dispatch)", async () => {
  const n = await node();
  try {
    await fakeIpcp(n, "w", "udp4", ipcpHandlers("udp4", bareIpcp()));
    await fakeIpcp(n, "l", "local", ipcpHandlers("local", bareIpcp()));
    await assertRejects(
      () =>
        n.tool.request("irm.ipcp.enroll", {
          name: "w",
          layer: "net1",
          autobind: false,
        }),
      /^udp4 IPCPs do not enroll: only a unicast IPCP joins a layer through one of its members; a udp4 IPCP is bootstrapped$/,
    );
    await assertRejects(
      () => n.tool.request("irm.ipcp.connect", { name: "l", dst: "u1" }),
      /^local IPCPs do not connect: only a unicast IPCP has N-1 flows to other members; a local IPCP has none$/,
    );
    await assertRejects(
      () =>
        n.tool.request("irm.ipcp.disconnect", {
          name: "w",
          dst: "u1",
          component: "dt",
        }),
      /^udp4 IPCPs do not connect: /,
    );
    // Still created only: a refused enrollment changes nothing.
    assertEquals(
      (await n.tool.request("irm.ipcp.list", { name: "w" })).ipcps[0]?.layer,
      undefined,
    );
    const calls: unknown[] = [];
    await fakeIpcp(
      n,
      "u2",
      "unicast",
      ipcpHandlers(
        "unicast",
        bareIpcp({
          enroll: (r) => {
            calls.push(["enroll", r]);
            return Promise.resolve({
              layer: "net1",
              hash: "SHA3_256",
              mplMs: 100,
            });
          },
          connect: (r) => {
            calls.push(["connect", r.dst, r.component]);
            return Promise.resolve();
          },
          disconnect: (r) => {
            calls.push(["disconnect", r.dst, r.component]);
            return Promise.resolve();
          },
        }),
      ),
    );
    await n.tool.request("irm.ipcp.enroll", {
      name: "u2",
      dst: "u1",
      autobind: false,
    });
    await n.tool.request("irm.ipcp.connect", { name: "u2", dst: "u1" });
    await n.tool.request("irm.ipcp.disconnect", { name: "u2", dst: "u1" });
    assertEquals(calls, [
      ["enroll", { dst: "u1" }],
      ["connect", "u1", "mgmt"],
      ["connect", "u1", "dt"],
      ["disconnect", "u1", "dt"],
      ["disconnect", "u1", "mgmt"],
    ]);
    // An IPCP that has no enroll at all.
    await fakeIpcp(n, "u3", "unicast", ipcpHandlers("unicast", bareIpcp()));
    await assertRejects(
      () =>
        n.tool.request("irm.ipcp.enroll", {
          name: "u3",
          dst: "u1",
          autobind: false,
        }),
      /^unicast IPCPs do not enroll: /,
    );
  } finally {
    await n.close();
  }
});

Deno.test("irm.ipcp.connect: mgmt then dt, mgmt always raw, qos for dt; disconnect: dt then mgmt", async () => {
  const n = await node();
  try {
    const calls: unknown[][] = [];
    let refuse: string | undefined;
    await fakeIpcp(n, "u2", "unicast", {
      "ipcp.connect": (r) => {
        calls.push(["connect", r.dst, r.component, r.qos]);
        if (refuse === r.component) {
          throw new OuroborosError("unreachable", `cannot reach ${r.dst}`);
        }
        return {};
      },
      "ipcp.disconnect": (r) => {
        calls.push(["disconnect", r.dst, r.component]);
        if (refuse === r.component) {
          throw new OuroborosError(
            "not_found",
            `no ${r.component} connection to ${r.dst}`,
          );
        }
        return {};
      },
    }, "net1");
    const connect = (b: Omit<Req<"irm.ipcp.connect">, "name">) =>
      n.tool.request("irm.ipcp.connect", { name: "u2", ...b });
    await connect({ dst: "u1" });
    await connect({ dst: "u3", qos: "video" });
    await connect({ dst: "u4", component: "dt", qos: "voice" });
    await connect({ dst: "u5", component: "mgmt" });
    assertEquals(calls, [
      ["connect", "u1", "mgmt", QOS_CUBES.raw],
      ["connect", "u1", "dt", QOS_CUBES.raw],
      ["connect", "u3", "mgmt", QOS_CUBES.raw],
      ["connect", "u3", "dt", QOS_CUBES.video],
      ["connect", "u4", "dt", QOS_CUBES.voice],
      ["connect", "u5", "mgmt", QOS_CUBES.raw],
    ]);
    calls.length = 0;
    await assertRejects(
      () => connect({ dst: "u1", component: "mgmt", qos: "data" }),
      /qos is for the dt component only \(mgmt flows are always raw\)/,
    );
    assertEquals(calls, []);
    // A failure is the IPCP's message; after mgmt fails, dt is not tried.
    refuse = "mgmt";
    await assertRejects(() => connect({ dst: "u9" }), /^cannot reach u9$/);
    assertEquals(calls, [["connect", "u9", "mgmt", QOS_CUBES.raw]]);
    calls.length = 0;
    // Disconnect: dt, then mgmt, both tried; what failed is said.
    refuse = undefined;
    await n.tool.request("irm.ipcp.disconnect", { name: "u2", dst: "u1" });
    refuse = "mgmt";
    await assertRejects(
      () => n.tool.request("irm.ipcp.disconnect", { name: "u2", dst: "u9" }),
      /^mgmt: no mgmt connection to u9$/,
    );
    refuse = "dt";
    await assertRejects(
      () => n.tool.request("irm.ipcp.disconnect", { name: "u2", dst: "u7" }),
      /^dt: no dt connection to u7$/,
    );
    await assertRejects(
      () =>
        n.tool.request("irm.ipcp.disconnect", {
          name: "u2",
          dst: "u8",
          component: "dt",
        }),
      /^no dt connection to u8$/,
    );
    assertEquals(calls, [
      ["disconnect", "u1", "dt"],
      ["disconnect", "u1", "mgmt"],
      ["disconnect", "u9", "dt"],
      ["disconnect", "u9", "mgmt"],
      ["disconnect", "u7", "dt"],
      ["disconnect", "u7", "mgmt"],
      ["disconnect", "u8", "dt"],
    ]);
    await assertRejects(
      () => n.tool.request("irm.ipcp.connect", { name: "nope", dst: "u1" }),
      /No IPCP named nope/,
    );
  } finally {
    await n.close();
  }
});

Deno.test("an IPCP says hello as an application: it keeps its bindings, made before or after", async () => {
  const n = await node();
  try {
    await n.tool.request("irm.name.create", { name: "x", lb: "spill" });
    // Autobind first, then the hello.
    const u1 = await fakeIpcp(n, "u1", "unicast", {
      "ipcp.enroll": () => ({ layer: "net1", hash: "SHA3_256", mplMs: 100 }),
    });
    await n.tool.request("irm.ipcp.enroll", {
      name: "u1",
      dst: "u0",
      autobind: true,
    });
    const app1 = await hello(n, {
      role: "app",
      pid: u1.pid,
      prog: "ipcpd-unicast",
    });
    // A second session for the same process is refused, as for any other.
    await assertRejects(
      () => hello(n, { role: "app", pid: u1.pid, prog: "ipcpd-unicast" }),
      new RegExp(`process ${u1.pid} is already connected`),
    );
    // The hello first, then a binding.
    const u2 = await fakeIpcp(n, "u2", "unicast", {}, "net1");
    await hello(n, { role: "app", pid: u2.pid, prog: "ipcpd-unicast" });
    await n.tool.request("irm.bind.ipcp", { ipcp: "u2", name: "x" });
    const procs = (await n.tool.request("irm.proc.list", {})).procs;
    assertEquals(
      procs.map((p) => [p.pid, p.prog, p.names]),
      [
        [u1.pid, "ipcpd-unicast", ["u1 (bound)", "net1 (bound)"]],
        [u2.pid, "ipcpd-unicast", ["x (bound)"]],
      ],
    );
    // It accepts flows for its names like any application.
    const accepting = app1.request("flow.accept", { timeoutMs: 200 });
    await assertRejects(() => accepting, /no flow arrived within 200 ms/);
    // Its session over, its bindings go (the IPCP is going away).
    app1.close();
    for (let i = 0; i < 100; i++) {
      const p = (await n.tool.request("irm.proc.list", {})).procs;
      if (!p.some((x) => x.pid === u1.pid)) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    assertEquals(
      (await n.tool.request("irm.proc.list", {})).procs.map((p) => p.pid),
      [u2.pid],
    );
    // An application that is no IPCP: one session only.
    const pid = nextPid++;
    await hello(n, { role: "app", pid, prog: "oping" });
    await assertRejects(
      () => hello(n, { role: "app", pid, prog: "oping" }),
      new RegExp(`process ${pid} is already connected`),
    );
  } finally {
    await n.close();
  }
});

Deno.test("flow.alloc by an IPCP: never through itself nor its own layer", async () => {
  const n = await node();
  try {
    const asked: string[] = [];
    const ipcp = (name: string): Handlers => ({
      "ipcp.flow.alloc": (r) => {
        asked.push(name);
        throw new OuroborosError(
          "unknown_name",
          `${r.name} is not known to ${name}`,
        );
      },
    });
    const u1 = await fakeIpcp(n, "u1", "unicast", ipcp("u1"), "net1");
    await fakeIpcp(n, "u4", "unicast", ipcp("u4"), "net1");
    await fakeIpcp(n, "w", "udp4", ipcp("w"), "wifi");
    const asU1 = await hello(n, {
      role: "app",
      pid: u1.pid,
      prog: "ipcpd-unicast",
    });
    const alloc = (c: CtrlConn) =>
      c.request("flow.alloc", { name: "u0", qos: QOS, timeoutMs: 1000 });
    await assertRejects(
      () => alloc(asU1),
      /^unknown name: u0 is not known to w$/,
    );
    assertEquals(asked, ["w"]);
    asked.length = 0;
    // Any other application: every layer, unicast ones first.
    const app = await hello(n, { role: "app", pid: nextPid++, prog: "oping" });
    await assertRejects(() => alloc(app), /unknown name: /);
    assertEquals(asked, ["u1", "u4", "w"]);
    asked.length = 0;
    // Without another layer, nothing to ask.
    await n.tool.request("irm.ipcp.destroy", { name: "w" });
    const e = await assertRejects(() => alloc(asU1));
    assertMatch(
      e.message,
      /^no layer can reach u0: IPCP u1 allocates its flows in the layers below layer net1, and this node has no IPCP in another layer$/,
    );
    assert(e instanceof OuroborosError && e.code === "unknown_name");
    assertEquals(asked, []);
  } finally {
    await n.close();
  }
});

Deno.test("flow.alloc by an enrolling IPCP: not through the layer it named", async () => {
  const n = await node();
  try {
    const asked: string[] = [];
    const ipcp = (name: string): Handlers => ({
      "ipcp.flow.alloc": () => {
        asked.push(name);
        throw new OuroborosError("unknown_name", `not known to ${name}`);
      },
    });
    await fakeIpcp(n, "u1", "unicast", ipcp("u1"), "net1");
    await fakeIpcp(n, "w", "udp4", ipcp("w"), "wifi");
    let pid = 0;
    const during: string[][] = [];
    const u2 = await fakeIpcp(n, "u2", "unicast", {
      // While it enrolls, the IPCP allocates its flow to the member.
      "ipcp.enroll": async (r) => {
        const app = await hello(n, { role: "app", pid, prog: "ipcpd-unicast" });
        await app.request("flow.alloc", {
          name: r.dst,
          qos: QOS,
          timeoutMs: 1000,
        }).catch(() => {});
        app.close();
        during.push([...asked]);
        asked.length = 0;
        throw new OuroborosError("unreachable", `cannot reach ${r.dst}`);
      },
    });
    pid = u2.pid;
    for (
      const r of [
        { name: "u2", dst: "u1", layer: "net1", autobind: false },
        { name: "u2", dst: "u1", autobind: false },
      ]
    ) {
      await assertRejects(
        () => n.tool.request("irm.ipcp.enroll", r),
        /^cannot reach u1$/,
      );
      // Its app session ends; the next one is a new hello.
      for (let i = 0; i < 100; i++) {
        const p = (await n.tool.request("irm.proc.list", {})).procs;
        if (!p.some((x) => x.pid === pid)) break;
        await new Promise((r) => setTimeout(r, 10));
      }
    }
    // Named: not net1. Not named: net1 may carry it (only the IPCP itself
    // is left out).
    assertEquals(during, [["w"], ["u1", "w"]]);
  } finally {
    await n.close();
  }
});
