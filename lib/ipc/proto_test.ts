import { assert, assertEquals, assertMatch } from "../../tests/assert.ts";
import {
  CONNECT_COMPONENTS,
  type Method,
  METHODS,
  QOS_CUBE_NAMES,
} from "./proto.ts";
import { toJsonValue } from "./schema.ts";
import { QOS_CUBES } from "../wire/udp_wire.ts";

/** What a request body of `m` parses to, or the error. */
function req(m: Method, v: unknown): unknown {
  const r = METHODS[m].req.parse(v, m);
  return r.ok ? r.value : r.error;
}

function res(m: Method, v: unknown): unknown {
  const r = METHODS[m].res.parse(v, m);
  return r.ok ? r.value : r.error;
}

Deno.test("the QoS cube names are those of QOS_CUBES, the components dt and mgmt", () => {
  assertEquals(
    [...QOS_CUBE_NAMES].sort(),
    Object.keys(QOS_CUBES).sort(),
  );
  assertEquals([...CONNECT_COMPONENTS], ["dt", "mgmt"]);
});

Deno.test("irm.ipcp.enroll: a name, dst or layer (or both), a type, autobind", () => {
  assertEquals(req("irm.ipcp.enroll", { name: "u2", autobind: false }), {
    name: "u2",
    autobind: false,
  });
  const full = {
    name: "u2",
    dst: "u1",
    layer: "net1",
    type: "unicast",
    autobind: true,
  };
  assertEquals(req("irm.ipcp.enroll", full), full);
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ name: "u2" }, /irm\.ipcp\.enroll\.autobind: expected a boolean/],
    [{ autobind: true }, /\.name: expected a name/],
    [{ name: "u2", dst: "", autobind: true }, /\.dst: empty name/],
    [{ name: "u2", layer: 3, autobind: true }, /\.layer: expected a name/],
    [{ name: "u2", type: "tcp", autobind: true }, /\.type: expected "udp4"/],
  ];
  for (const [body, re] of bad) {
    assertMatch(String(req("irm.ipcp.enroll", body)), re);
  }
  assertEquals(res("irm.ipcp.enroll", { layer: "net1" }), { layer: "net1" });
  assertMatch(String(res("irm.ipcp.enroll", {})), /\.layer: expected a name/);
});

Deno.test("irm.ipcp.connect and disconnect: a component and a QoS cube by name", () => {
  assertEquals(req("irm.ipcp.connect", { name: "u2", dst: "u1" }), {
    name: "u2",
    dst: "u1",
  });
  for (const component of ["dt", "mgmt"]) {
    for (const qos of QOS_CUBE_NAMES) {
      const b = { name: "u2", dst: "u1", component, qos };
      assertEquals(req("irm.ipcp.connect", b), b);
    }
  }
  assertMatch(
    String(req("irm.ipcp.connect", { name: "u", dst: "v", component: "x" })),
    /\.component: expected "dt" or "mgmt"/,
  );
  assertMatch(
    String(req("irm.ipcp.connect", { name: "u", dst: "v", qos: "fast" })),
    /\.qos: expected "raw" or "best" or "voice" or "video" or "data"/,
  );
  assertMatch(
    String(req("irm.ipcp.connect", { name: "u" })),
    /\.dst: expected a name/,
  );
  assertEquals(res("irm.ipcp.connect", {}), {});
  const d = { name: "u2", dst: "u1", component: "mgmt" };
  assertEquals(req("irm.ipcp.disconnect", d), d);
  // A disconnect has no QoS: the field is not read.
  assertEquals(req("irm.ipcp.disconnect", { ...d, qos: "raw" }), d);
  assertMatch(
    String(req("irm.ipcp.disconnect", { name: "u", dst: "v", component: 1 })),
    /\.component: expected "dt" or "mgmt"/,
  );
});

Deno.test("ipcp.enroll: dst; the reply has the layer, its hash and MPL", () => {
  assertEquals(req("ipcp.enroll", { dst: "net1" }), { dst: "net1" });
  assertMatch(String(req("ipcp.enroll", {})), /ipcp\.enroll\.dst/);
  const reply = { layer: "net1", hash: "SHA3_256", mplMs: 100 };
  assertEquals(res("ipcp.enroll", reply), reply);
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ hash: "SHA3_256", mplMs: 100 }, /\.layer: expected a name/],
    [{ layer: "net1", mplMs: 100 }, /\.hash: expected "SHA3_224"/],
    [{ layer: "net1", hash: "CRC32", mplMs: 100 }, /\.hash: expected/],
    [{ layer: "net1", hash: "SHA3_256" }, /\.mplMs: expected an integer/],
    [{ ...reply, mplMs: 0 }, /\.mplMs: 0 is outside 1\.\.3600000/],
    [{ ...reply, mplMs: 3_600_001 }, /\.mplMs: 3600001 is outside/],
  ];
  for (const [body, re] of bad) {
    assertMatch(String(res("ipcp.enroll", body)), re);
  }
});

Deno.test("ipcp.connect and disconnect: a component and a whole QoS, through JSON", () => {
  for (const cube of QOS_CUBE_NAMES) {
    const body = { dst: "u1", component: "dt", qos: { ...QOS_CUBES[cube] } };
    const wire = JSON.parse(JSON.stringify(toJsonValue(body)));
    assertEquals(req("ipcp.connect", wire), body);
  }
  assertMatch(
    String(req("ipcp.connect", { dst: "u1", qos: QOS_CUBES.raw })),
    /\.component: expected "dt" or "mgmt"/,
  );
  assertMatch(
    String(req("ipcp.connect", { dst: "u1", component: "mgmt" })),
    /\.qos: expected an object/,
  );
  assertEquals(req("ipcp.disconnect", { dst: "u1", component: "dt" }), {
    dst: "u1",
    component: "dt",
  });
  assertMatch(
    String(req("ipcp.disconnect", { dst: "u1" })),
    /\.component: expected "dt" or "mgmt"/,
  );
  assert(METHODS["ipcp.connect"].res.parse({}, "r").ok);
  assert(METHODS["ipcp.disconnect"].res.parse({}, "r").ok);
});
