import {
  assert,
  assertEquals,
  assertMatch,
  assertStringIncludes,
} from "../tests/assert.ts";
import { CtrlConn, type Handlers } from "../lib/ipc/ctrl.ts";
import { OuroborosError } from "../lib/util/errors.ts";
import { irmdSocketPath } from "../lib/ipc/rundir.ts";
import { execute, failureText } from "./irm.ts";
import { runCommand } from "../tests/harness.ts";
import {
  absolutePath,
  findProgram,
  type IrmCall,
  type IrmParse,
  matchKeyword,
  type ParseEnv,
  parseIrm,
  renderIpcpList,
  renderIpcpStats,
  renderNameList,
  renderProcList,
} from "./irm_grammar.ts";

/** A system with /usr/bin/oping and /opt/bin/tool on PATH, working in /home/u. */
const ENV: ParseEnv = {
  cwd: "/home/u",
  path: "/usr/local/bin:/usr/bin:/opt/bin",
  isExecutable: (p) => p === "/usr/bin/oping" || p === "/opt/bin/tool",
};

function parse(line: string | string[]): IrmParse {
  const args = typeof line === "string"
    ? line.split(" ").filter((s) => s !== "")
    : line;
  return parseIrm(args, ENV);
}

/** The call a command line yields (fails the test otherwise). */
function req(line: string | string[]): IrmCall {
  const r = parse(line);
  if (r.kind !== "request") {
    throw new Error(`expected a request for ${line}, got ${r.kind}: ${r.text}`);
  }
  return r.call;
}

function sent(line: string | string[]): { method: string; body: unknown } {
  const c = req(line);
  return { method: c.method, body: c.body };
}

function helpText(line: string): string {
  const r = parse(line);
  if (r.kind !== "help") {
    throw new Error(`expected help for ${line}, got ${r.kind}`);
  }
  return r.text;
}

function errorText(line: string | string[]): string {
  const r = parse(line);
  if (r.kind !== "error") {
    throw new Error(`expected an error for ${line}, got ${r.kind}`);
  }
  return r.text;
}

function firstLine(s: string): string {
  return s.split("\n")[0] ?? "";
}

// ---------------------------------------------------------------------------
// ipcp

Deno.test("ipcp create, destroy, list", () => {
  assertEquals(sent("ipcp create name wifi1 type udp4"), {
    method: "irm.ipcp.create",
    body: { name: "wifi1", type: "udp4" },
  });
  assertEquals(sent("ipcp create type udp6 name v6"), {
    method: "irm.ipcp.create",
    body: { name: "v6", type: "udp6" },
  });
  assertEquals(sent("ipcp destroy name wifi1"), {
    method: "irm.ipcp.destroy",
    body: { name: "wifi1" },
  });
  assertEquals(sent("ipcp list"), { method: "irm.ipcp.list", body: {} });
  assertEquals(sent("ipcp list name wifi1 type udp layer wifi-network"), {
    method: "irm.ipcp.list",
    body: { name: "wifi1", type: "udp4", layer: "wifi-network" },
  });
});

Deno.test("udp prefix-matches udp4; udp6 needs its full name", () => {
  assertEquals(sent("ipcp create name a type udp").body, {
    name: "a",
    type: "udp4",
  });
  assertEquals(sent("ipcp create name a type udp4").body, {
    name: "a",
    type: "udp4",
  });
  assertEquals(sent("ipcp create name a type udp6").body, {
    name: "a",
    type: "udp6",
  });
});

Deno.test("types we do not have are recognised and refused", () => {
  for (const t of ["broadcast", "eth-llc", "eth-dix"]) {
    assertEquals(
      errorText(`ipcp create name a type ${t}`),
      `IPCP type ${t} is not supported yet.`,
    );
    assertEquals(
      errorText(`ipcp bootstrap name a layer l type ${t}`),
      `IPCP type ${t} is not supported yet.`,
    );
    assertEquals(
      errorText(`ipcp list type ${t}`),
      `IPCP type ${t} is not supported yet.`,
    );
  }
  // prefixes resolve in C's table order
  assertEquals(sent("ipcp create name a type u").body, {
    name: "a",
    type: "unicast",
  });
  assertEquals(
    errorText("ipcp create name a type b"),
    "IPCP type broadcast is not supported yet.",
  );
  assertEquals(
    errorText("ipcp create name a type eth"),
    "IPCP type eth-llc is not supported yet.",
  );
  const bad = errorText("ipcp create name a type tcp");
  assertEquals(firstLine(bad), `irm ipcp create: unknown IPCP type "tcp".`);
  assertStringIncludes(bad, "Usage: irm ipcp create");
});

Deno.test("ipcp create: missing operands", () => {
  assertEquals(
    firstLine(errorText("ipcp create type udp4")),
    `irm ipcp create: "name <ipcp name>" is missing.`,
  );
  assertEquals(
    firstLine(errorText("ipcp create name a")),
    `irm ipcp create: "type <type>" is missing.`,
  );
  assertEquals(
    firstLine(errorText("ipcp create name")),
    "irm ipcp create: name needs a value: name <ipcp name>.",
  );
  assertEquals(
    firstLine(errorText("ipcp create name a name b type udp")),
    `irm ipcp create: "name" is given more than once.`,
  );
  assertEquals(
    firstLine(errorText("ipcp destroy")),
    `irm ipcp destroy: "name <ipcp name>" is missing.`,
  );
  assertEquals(
    firstLine(errorText(["ipcp", "create", "name", "", "type", "udp"])),
    "irm ipcp create: empty IPCP name.",
  );
  assertStringIncludes(
    firstLine(errorText(`ipcp create name ${"x".repeat(256)} type udp`)),
    "at most 255 allowed",
  );
});

Deno.test("ipcp bootstrap: the tutorial's layer, defaults and options", () => {
  assertEquals(
    sent(
      "ipcp bootstrap name wifi1 layer wifi-network type udp ip 192.168.0.2",
    ),
    {
      method: "irm.ipcp.bootstrap",
      body: {
        name: "wifi1",
        layer: "wifi-network",
        type: "udp4",
        ip: "192.168.0.2",
        port: 3435,
      },
    },
  );
  // without a type: the IPCP must exist (of any type: no port is sent
  // unless a UDP option is given, the irmd knows the IPCP's type)
  assertEquals(sent("ipcp bootstrap name spare layer l").body, {
    name: "spare",
    layer: "l",
  });
  assertEquals(
    sent(
      "ipcp b n v6 l bb t udp6 i fd00::2 p 4000 d [fd00::53]:53 has MD5 ho hosts.txt z bb.example",
    ).body,
    {
      name: "v6",
      layer: "bb",
      type: "udp6",
      ip: "fd00::2",
      port: 4000,
      dns: "[fd00::53]:53",
      hosts: "/home/u/hosts.txt",
      zone: "bb.example",
    },
  );
  assertEquals(
    sent(
      "ipcp bootstrap name a layer l ip 10.0.0.1 dns 10.0.0.53:5353 hash md5",
    ).body,
    {
      name: "a",
      layer: "l",
      ip: "10.0.0.1",
      port: 3435,
      dns: "10.0.0.53:5353",
    },
  );
  const c = req("ipcp bootstrap name a layer l type udp ip 127.0.0.1");
  assertEquals(c.timeoutMs >= 30_000, true);
  assertEquals(c.failure, "Failed to bootstrap IPCP");
});

Deno.test("ipcp bootstrap: socket buffers (rcvbuf, sndbuf), in bytes", () => {
  assertEquals(
    sent(
      "ipcp bootstrap name a layer l type udp ip 127.0.0.1 rcvbuf 8388608 sndbuf 4096",
    ).body,
    {
      name: "a",
      layer: "l",
      type: "udp4",
      ip: "127.0.0.1",
      port: 3435,
      rcvbuf: 8388608,
      sndbuf: 4096,
    },
  );
  // Prefixes, as for every keyword; the largest size.
  assertEquals(
    sent("ipcp b n a l l r 536870912").body,
    { name: "a", layer: "l", port: 3435, rcvbuf: 536870912 },
  );
  assertEquals(
    sent("ipcp b n a l l s 65536").body,
    { name: "a", layer: "l", port: 3435, sndbuf: 65536 },
  );
  const base = "ipcp bootstrap name a layer l";
  for (const [kw, v] of [["rcvbuf", "4095"], ["sndbuf", "536870913"]]) {
    assertEquals(
      firstLine(errorText(`${base} ${kw} ${v}`)),
      `irm ipcp bootstrap: invalid ${kw} "${v}": expected a size in bytes from 4096 to 536870912.`,
    );
  }
  for (const v of ["4M", "-4096", "0x1000", "4096.5", ""]) {
    assertStringIncludes(
      firstLine(
        errorText([
          "ipcp",
          "bootstrap",
          "name",
          "a",
          "layer",
          "l",
          "rcvbuf",
          v,
        ]),
      ),
      v === "" ? "rcvbuf" : `invalid rcvbuf "${v}"`,
    );
  }
  assertStringIncludes(
    helpText("ipcp bootstrap help"),
    "[rcvbuf <UDP receive buffer in bytes>]",
  );
});

Deno.test("ipcp stats: the table, then each IPCP's socket buffers and rarer drops", () => {
  const dropped = {
    short: 1,
    oversized: 3,
    badMgmt: 2,
    mgmtOverflow: 4,
    unknownEid: 5,
    wrongSource: 6,
    slowReader: 7,
  };
  const lines = renderIpcpStats([
    {
      pid: 10,
      name: "wifi1",
      flows: 2,
      dropped,
      socket: { rcvbuf: 8388608, sndbuf: 425984 },
    },
    { pid: 11, name: "spare", flows: 0, dropped },
  ]).split("\n");
  // The table keeps its columns, the slow reader last.
  assertStringIncludes(lines[1]!, "wrong source | slow reader |");
  assertEquals(
    lines[3]!.replace(/ +/g, " "),
    "| 10 | wifi1 | 2 | 1 | 2 | 5 | 6 | 7 |",
  );
  assertEquals(lines.slice(-2), [
    "IPCP wifi1: UDP socket buffers of 8388608 bytes (receive) and 425984 bytes (send); dropped 3 too long, 4 management frames while busy.",
    "IPCP spare: not bootstrapped; dropped 3 too long, 4 management frames while busy.",
  ]);
});

Deno.test("ipcp bootstrap: autobind is ignored with C's warning", () => {
  const r = parse(
    "ipcp bootstrap name a layer l type udp ip 127.0.0.1 autobind",
  );
  assert(r.kind === "request");
  assertEquals(r.notes, [
    "Can only bind unicast and broadcast IPCPs, autobind disabled.",
  ]);
  assertEquals(r.call.body, {
    name: "a",
    layer: "l",
    type: "udp4",
    ip: "127.0.0.1",
    port: 3435,
  });
});

Deno.test("ipcp bootstrap: bad values", () => {
  const base = "ipcp bootstrap name a layer l";
  assertEquals(
    firstLine(errorText(`${base} ip 1.2.3.4 port 0`)),
    `irm ipcp bootstrap: invalid port "0": expected a number from 1 to 65535.`,
  );
  assertEquals(
    firstLine(errorText(`${base} ip 1.2.3.4 port 65536`)),
    `irm ipcp bootstrap: invalid port "65536": expected a number from 1 to 65535.`,
  );
  assertEquals(
    firstLine(errorText(`${base} ip 1.2.3.4 port x1`)),
    `irm ipcp bootstrap: invalid port "x1": expected a number from 1 to 65535.`,
  );
  assertEquals(
    firstLine(errorText(`${base} ip 1.2.3`)),
    `irm ipcp bootstrap: invalid IP address "1.2.3".`,
  );
  assertEquals(
    firstLine(errorText(`${base} ip 10.0.0.1/24`)),
    `irm ipcp bootstrap: invalid IP address "10.0.0.1/24" (no prefix length).`,
  );
  assertEquals(
    firstLine(errorText(`${base} type udp4 ip ::1`)),
    `irm ipcp bootstrap: "::1" is an IPv6 address, a udp4 IPCP needs an IPv4 address.`,
  );
  assertStringIncludes(
    firstLine(errorText(`${base} type udp4 ip 1.2.3.4 dns nope`)),
    "invalid DNS server address",
  );
  assertEquals(
    firstLine(errorText(`${base} ip 1.2.3.4 hash SHA3_256`)),
    "irm ipcp bootstrap: hash SHA3_256 is not supported: UDP layers hash names with MD5 (hash MD5).",
  );
  assertEquals(
    firstLine(errorText(`${base} ip 1.2.3.4 hash crc`)),
    "irm ipcp bootstrap: unknown hash algorithm crc: UDP layers hash names with MD5 (hash MD5).",
  );
  assertEquals(
    firstLine(errorText("ipcp bootstrap name a ip 1.2.3.4")),
    `irm ipcp bootstrap: "layer <layer name>" is missing.`,
  );
  assertEquals(
    firstLine(errorText(`${base} ip 1.2.3.4 bogus 1`)),
    `"bogus" is unknown, try "irm ipcp bootstrap help".`,
  );
});

Deno.test("ipcp bootstrap type local: tutorial 1's command, the hash, nothing of UDP's", () => {
  assertEquals(
    sent("ipcp bootstrap type local name local-ipcp layer local-layer"),
    {
      method: "irm.ipcp.bootstrap",
      body: { name: "local-ipcp", layer: "local-layer", type: "local" },
    },
  );
  // Every hash of a local layer, in any case and by prefix of the keyword.
  for (const algo of ["SHA3_224", "SHA3_256", "SHA3_384", "SHA3_512"]) {
    for (const word of [algo, algo.toLowerCase()]) {
      assertEquals(
        sent(`ipcp b t local n l l ll has ${word}`).body,
        { name: "l", layer: "ll", type: "local", hash: algo },
      );
    }
  }
  // The type by prefix: "l" is local, the only type starting with it.
  assertEquals(sent("ipcp create name x type l").body, {
    name: "x",
    type: "local",
  });
  assertEquals(sent("ipcp list type local").body, { type: "local" });
  const base = "ipcp bootstrap type local name l layer ll";
  assertEquals(
    firstLine(errorText(`${base} hash MD5`)),
    "irm ipcp bootstrap: hash MD5 is not supported: local layers hash names with SHA3_224, SHA3_256, SHA3_384, SHA3_512 (default SHA3_256).",
  );
  assertEquals(
    firstLine(errorText(`${base} hash SHA3-256`)),
    "irm ipcp bootstrap: unknown hash algorithm SHA3-256: local layers hash names with SHA3_224, SHA3_256, SHA3_384, SHA3_512 (default SHA3_256).",
  );
  assertEquals(
    firstLine(errorText(`${base} ip 127.0.0.1 port 3435`)),
    "irm ipcp bootstrap: ip, port: not for a local IPCP, which takes a layer and a hash.",
  );
  assertEquals(
    firstLine(errorText(`${base} dns 127.0.0.1`)),
    "irm ipcp bootstrap: dns: not for a local IPCP, which takes a layer and a hash.",
  );
  // autobind: C's warning, as for UDP.
  const r = parse(`${base} autobind`);
  assert(r.kind === "request");
  assertEquals(r.notes, [
    "Can only bind unicast and broadcast IPCPs, autobind disabled.",
  ]);
  assertEquals(r.call.body, { name: "l", layer: "ll", type: "local" });
  // No type: a SHA3 hash goes to the irmd, which knows the IPCP's type;
  // with a UDP option it is a UDP IPCP, which hashes with MD5.
  assertEquals(sent("ipcp bootstrap name l layer ll hash SHA3_384").body, {
    name: "l",
    layer: "ll",
    hash: "SHA3_384",
  });
  // MD5 too, which the irmd refuses for a local or unicast IPCP instead
  // of bootstrapping it with its default; with a UDP option it is the
  // UDP default and needs no word.
  assertEquals(sent("ipcp bootstrap name l layer ll hash MD5").body, {
    name: "l",
    layer: "ll",
    hash: "MD5",
  });
  assertEquals(
    "hash" in (sent("ipcp bootstrap name l layer ll ip 127.0.0.1 hash MD5")
      .body as Record<string, unknown>),
    false,
  );
  assertEquals(
    firstLine(errorText("ipcp bootstrap name l layer ll hash crc32")),
    "irm ipcp bootstrap: unknown hash algorithm crc32: UDP layers hash names with MD5 (hash MD5), local layers with SHA3_224, SHA3_256, SHA3_384, SHA3_512.",
  );
  const usage = helpText("ipcp bootstrap help");
  assertStringIncludes(usage, "where TYPE = {unicast udp4 udp6 local}");
  assertStringIncludes(
    usage,
    "if TYPE == local\n                [hash [ALGORITHM] (default: SHA3_256)]",
  );
  assertStringIncludes(
    usage,
    "      ALGORITHM = {SHA3_224 SHA3_256 SHA3_384 SHA3_512}",
  );
});

Deno.test("ipcp stats: a local IPCP has no socket", () => {
  const dropped = {
    short: 0,
    oversized: 0,
    badMgmt: 0,
    mgmtOverflow: 0,
    unknownEid: 2,
    wrongSource: 0,
    slowReader: 1,
  };
  const lines = renderIpcpStats([
    { pid: 12, name: "local-ipcp", type: "local", flows: 2, dropped },
  ]).split("\n");
  assertEquals(
    lines.at(-1),
    "IPCP local-ipcp: a local layer, without a socket; dropped 0 too long, 0 management frames while busy.",
  );
});

Deno.test("ipcp enroll: dst, layer or both, type unicast, autobind", () => {
  assertEquals(sent("ipcp enroll name u2 dst u1"), {
    method: "irm.ipcp.enroll",
    body: { name: "u2", dst: "u1", autobind: false },
  });
  assertEquals(sent("ipcp enroll name u2 layer net1").body, {
    name: "u2",
    layer: "net1",
    autobind: false,
  });
  assertEquals(
    sent("ipcp enroll layer net1 dst u1 type unicast autobind name u2").body,
    { name: "u2", dst: "u1", layer: "net1", type: "unicast", autobind: true },
  );
  // Prefixes: e is enroll; d dst, l layer, t type, a autobind; u unicast.
  assertEquals(sent("ipcp e n u2 d u1 l net1 t u a").body, {
    name: "u2",
    dst: "u1",
    layer: "net1",
    type: "unicast",
    autobind: true,
  });
  const c = req("ipcp enroll name u2 dst u1");
  assertEquals(c.failure, "Failed to enroll IPCP");
  // Longer than the irmd's own limits: creating the IPCP, then enrolling.
  assert(c.timeoutMs > 60_000, `${c.timeoutMs}`);
  assert(c.method === "irm.ipcp.enroll");
  assertEquals(c.render({ layer: "net1" }), "");
});

Deno.test("ipcp enroll: what is missing or wrong", () => {
  const cases: [string, string][] = [
    ["ipcp enroll dst u1", 'irm ipcp enroll: "name <ipcp name>" is missing.'],
    [
      "ipcp enroll name u2",
      'irm ipcp enroll: "dst <member name>" or "layer <layer name>" is missing.',
    ],
    [
      "ipcp enroll name u2 autobind type unicast",
      'irm ipcp enroll: "dst <member name>" or "layer <layer name>" is missing.',
    ],
    [
      "ipcp enroll name u2 dst u1 type udp4",
      "irm ipcp enroll: only unicast IPCPs enroll, not udp4 ones (a udp4 IPCP is bootstrapped: irm ipcp bootstrap).",
    ],
    [
      "ipcp enroll name u2 dst u1 type local",
      "irm ipcp enroll: only unicast IPCPs enroll, not local ones (a local IPCP is bootstrapped: irm ipcp bootstrap).",
    ],
    [
      "ipcp enroll name u2 dst u1 type tcp",
      'irm ipcp enroll: unknown IPCP type "tcp".',
    ],
    [
      "ipcp enroll name u2 dst u1 type broadcast",
      "IPCP type broadcast is not supported yet.",
    ],
    [
      "ipcp enroll name u2 dst u1 dst u3",
      'irm ipcp enroll: "dst" is given more than once.',
    ],
    [
      "ipcp enroll name u2 dst",
      "irm ipcp enroll: dst needs a value: dst <member name>.",
    ],
    [
      "ipcp enroll name u2 dst u1 ip 1.2.3.4",
      '"ip" is unknown, try "irm ipcp enroll help".',
    ],
    [
      "ipcp enroll name u2 dst u1 hash SHA3_256",
      '"hash" is unknown, try "irm ipcp enroll help".',
    ],
  ];
  for (const [line, msg] of cases) {
    assertEquals(firstLine(errorText(line)), msg, line);
  }
  assertEquals(
    firstLine(errorText(["ipcp", "enroll", "name", "", "dst", "u1"])),
    "irm ipcp enroll: empty IPCP name.",
  );
  assertEquals(
    firstLine(errorText(["ipcp", "enroll", "name", "u2", "layer", ""])),
    "irm ipcp enroll: empty layer name.",
  );
  const long = "x".repeat(256);
  assertEquals(
    firstLine(errorText(["ipcp", "enroll", "name", "u2", "dst", long])),
    "irm ipcp enroll: destination name is 256 bytes long in UTF-8, at most 255 allowed.",
  );
  // A usage error is its line, then the usage.
  assertStringIncludes(
    errorText("ipcp enroll name u2"),
    "\nUsage: irm ipcp enroll",
  );
});

Deno.test("ipcp connect: both components, or one; the dt flow's QoS", () => {
  assertEquals(sent("ipcp connect name u2 dst u1"), {
    method: "irm.ipcp.connect",
    body: { name: "u2", dst: "u1" },
  });
  assertEquals(sent("ipcp connect name u2 dst u1 component dt").body, {
    name: "u2",
    dst: "u1",
    component: "dt",
  });
  assertEquals(sent("ipcp connect name u2 dst u1 component mgmt").body, {
    name: "u2",
    dst: "u1",
    component: "mgmt",
  });
  for (const q of ["raw", "best", "voice", "video", "data"]) {
    assertEquals(sent(`ipcp connect name u2 dst u1 qos ${q}`).body, {
      name: "u2",
      dst: "u1",
      qos: q,
    });
  }
  assertEquals(
    sent("ipcp connect qos video component dt dst u1 name u2").body,
    { name: "u2", dst: "u1", component: "dt", qos: "video" },
  );
  // Prefixes: co is connect; c component, q qos.
  assertEquals(sent("ipcp co n u2 d u1 c dt q voice").body, {
    name: "u2",
    dst: "u1",
    component: "dt",
    qos: "voice",
  });
  const c = req("ipcp connect name u2 dst u1");
  assertEquals(c.failure, "Failed to connect IPCP");
  assert(c.timeoutMs > 60_000, `${c.timeoutMs}`);
});

Deno.test("ipcp disconnect: both components, or one", () => {
  assertEquals(sent("ipcp disconnect name u2 dst u1"), {
    method: "irm.ipcp.disconnect",
    body: { name: "u2", dst: "u1" },
  });
  assertEquals(sent("ipcp di n u2 d u1 c mgmt"), {
    method: "irm.ipcp.disconnect",
    body: { name: "u2", dst: "u1", component: "mgmt" },
  });
  assertEquals(sent("ipcp disconnect name u2 dst u1 component dt").body, {
    name: "u2",
    dst: "u1",
    component: "dt",
  });
  assertEquals(
    req("ipcp disconnect name u2 dst u1").failure,
    "Failed to disconnect IPCP",
  );
});

Deno.test("ipcp connect, disconnect: what is missing or wrong", () => {
  const cases: [string, string][] = [
    ["ipcp connect dst u1", 'irm ipcp connect: "name <ipcp name>" is missing.'],
    [
      "ipcp connect name u2",
      'irm ipcp connect: "dst <member name>" is missing.',
    ],
    [
      "ipcp disconnect name u2",
      'irm ipcp disconnect: "dst <member name>" is missing.',
    ],
    [
      "ipcp connect name u2 dst u1 component data",
      'irm ipcp connect: unknown component "data" (dt, mgmt).',
    ],
    [
      "ipcp connect name u2 dst u1 component DT",
      'irm ipcp connect: unknown component "DT" (dt, mgmt).',
    ],
    [
      "ipcp disconnect name u2 dst u1 component all",
      'irm ipcp disconnect: unknown component "all" (dt, mgmt).',
    ],
    [
      "ipcp connect name u2 dst u1 qos fast",
      'irm ipcp connect: unknown qos "fast" (raw, best, voice, video, data).',
    ],
    [
      "ipcp connect name u2 dst u1 component mgmt qos raw",
      "irm ipcp connect: qos is for the dt component only (mgmt flows are always raw).",
    ],
    [
      "ipcp connect name u2 dst u1 qos best component mgmt",
      "irm ipcp connect: qos is for the dt component only (mgmt flows are always raw).",
    ],
    [
      "ipcp connect name u2 dst u1 component",
      "irm ipcp connect: component needs a value: component dt|mgmt.",
    ],
    [
      "ipcp connect name u2 dst u1 qos",
      "irm ipcp connect: qos needs a value: qos raw|best|voice|video|data.",
    ],
    [
      "ipcp disconnect name u2 dst u1 qos raw",
      '"qos" is unknown, try "irm ipcp disconnect help".',
    ],
    [
      "ipcp connect name u2 dst u1 layer l",
      '"layer" is unknown, try "irm ipcp connect help".',
    ],
    [
      "ipcp connect name u2 dst u1 component dt component mgmt",
      'irm ipcp connect: "component" is given more than once.',
    ],
  ];
  for (const [line, msg] of cases) {
    assertEquals(firstLine(errorText(line)), msg, line);
  }
  assertEquals(
    firstLine(errorText(["ipcp", "connect", "name", "u2", "dst", ""])),
    "irm ipcp connect: empty destination name.",
  );
  assertStringIncludes(
    errorText("ipcp connect name u2 dst u1 qos fast"),
    "\nUsage: irm ipcp connect",
  );
});

Deno.test("ipcp enroll, connect, disconnect: help says what they do", () => {
  const e = helpText("ipcp enroll help");
  assertStringIncludes(
    e,
    "dst <member to enroll with> | layer <layer to enroll in>",
  );
  assertStringIncludes(e, "[type unicast]");
  assertStringIncludes(e, "[autobind]");
  const c = helpText("ipcp connect -h");
  assertStringIncludes(c, "[component {dt mgmt}] (default: mgmt, then dt)");
  assertStringIncludes(c, "[qos {raw best voice video data}]");
  assertStringIncludes(
    helpText("ipcp disconnect --help"),
    "[component {dt mgmt}] (default: dt, then mgmt)",
  );
  for (const op of ["enroll", "connect", "disconnect", "bootstrap"]) {
    const h = helpText(`ipcp ${op} help`);
    assertEquals(h.includes("not supported yet:"), false, op);
    assertEquals(h.includes("one member for now"), false, op);
  }
});

Deno.test("ipcp bootstrap type unicast: the options of spec/unicast.md 7.1, defaults left to the IPCP", () => {
  assertEquals(sent("ipcp bootstrap type unicast name u1 layer net1"), {
    method: "irm.ipcp.bootstrap",
    body: { name: "u1", layer: "net1", type: "unicast" },
  });
  const r = parse(
    "ipcp bootstrap name u1 layer net1 type unicast addr 4 eid 8 ttl 30 " +
      "addr_auth flat directory DHT hash SHA3_512 routing link_state " +
      "ls_t_recalc 2 ls_t_update 10 ls_t_timeo 40 dht_alpha 2 dht_k 4 " +
      "dht_t_expire 3600 dht_t_refresh 60 dht_t_replicate 120 " +
      "congestion none autobind",
  );
  assert(r.kind === "request");
  assertEquals(r.notes, []);
  assertEquals(r.call.body, {
    name: "u1",
    layer: "net1",
    type: "unicast",
    hash: "SHA3_512",
    autobind: true,
    unicast: {
      addrSize: 4,
      eidSize: 8,
      maxTtl: 30,
      lsTRecalc: 2,
      lsTUpdate: 10,
      lsTTimeo: 40,
      dhtAlpha: 2,
      dhtK: 4,
      dhtTExpire: 3600,
      dhtTRefresh: 60,
      dhtTReplicate: 120,
      addrAuth: "flat",
      directory: "dht",
      routing: "link-state",
      congestion: "none",
    },
  });
  assertEquals(
    sent(
      "ipcp bootstrap name u1 layer n type unicast routing ecmp congestion mb-ecn",
    )
      .body,
    {
      name: "u1",
      layer: "n",
      type: "unicast",
      unicast: { routing: "ecmp", congestion: "mb-ecn" },
    },
  );
  // No type: the options go to the irmd, which checks the IPCP's type.
  assertEquals(sent("ipcp bootstrap name u1 layer n ttl 9").body, {
    name: "u1",
    layer: "n",
    unicast: { maxTtl: 9 },
  });
  assertStringIncludes(helpText("ipcp bootstrap help"), "if TYPE == unicast");
});

Deno.test("ipcp bootstrap type unicast: bad values and options of other types", () => {
  const base = "ipcp bootstrap name u1 layer net1 type unicast";
  const cases: [string, string][] = [
    [
      "addr 2",
      'invalid addr "2": expected 4 (an address size) (the flat address policy mandates 4 byte addresses).',
    ],
    [
      "eid 4",
      'invalid eid "4": expected 8 (an eid size) (members run with 8 byte eids).',
    ],
    [
      "ttl 0",
      'invalid ttl "0": expected a number from 1 to 255 (a time-to-live).',
    ],
    [
      "ttl 256",
      'invalid ttl "256": expected a number from 1 to 255 (a time-to-live).',
    ],
    [
      "ttl x",
      'invalid ttl "x": expected a number from 1 to 255 (a time-to-live).',
    ],
    [
      "dht_k 21",
      'invalid dht_k "21": expected a number from 1 to 20 (contacts per bucket).',
    ],
    [
      "dht_t_expire 9",
      'invalid dht_t_expire "9": expected a number from 10 to 86400 (seconds).',
    ],
    [
      "ls_t_update 0",
      'invalid ls_t_update "0": expected a number from 1 to 4294967295 (seconds).',
    ],
    [
      "routing rip",
      'unknown routing "rip" (link_state, link-state, lfa, ecmp).',
    ],
    ["congestion lfa", 'unknown congestion "lfa" (none, mb-ecn).'],
    ["directory chord", 'unknown directory "chord" (DHT, dht).'],
    ["addr_auth random", 'unknown addr_auth "random" (flat).'],
    [
      "hash MD5",
      "hash MD5 is not supported: unicast layers hash names with SHA3_224, SHA3_256, SHA3_384, SHA3_512 (default SHA3_256).",
    ],
    ["ip 127.0.0.1", "ip: not for a unicast IPCP."],
    ["port 3435", "port: not for a unicast IPCP."],
  ];
  for (const [opts, msg] of cases) {
    assertEquals(
      firstLine(errorText(`${base} ${opts}`)),
      `irm ipcp bootstrap: ${msg}`,
      opts,
    );
  }
  assertEquals(
    firstLine(
      errorText("ipcp bootstrap name a layer l type udp4 ip 1.2.3.4 ttl 3"),
    ),
    "irm ipcp bootstrap: ttl: only for a unicast IPCP.",
  );
  assertEquals(
    firstLine(errorText("ipcp bootstrap name a layer l type local dht_k 3")),
    "irm ipcp bootstrap: dht_k: only for a unicast IPCP.",
  );
});

// ---------------------------------------------------------------------------
// prefixes

Deno.test("keywords match by prefix, first in table order", () => {
  assertEquals(req("i l").method, "irm.ipcp.list");
  assertEquals(req("ipcp c n a t udp").method, "irm.ipcp.create");
  assertEquals(req("ipcp cr n a t udp").method, "irm.ipcp.create");
  assertEquals(req("ipcp d n a").method, "irm.ipcp.destroy");
  assertEquals(req("ipcp des n a").method, "irm.ipcp.destroy");
  assertEquals(req("ipcp b n a l x").method, "irm.ipcp.bootstrap");
  assertEquals(req("ipcp co n a d b").method, "irm.ipcp.connect");
  assertEquals(req("ipcp di n a d b").method, "irm.ipcp.disconnect");
  assertEquals(req("ipcp e n a d b").method, "irm.ipcp.enroll");
  // top level: ipcp bind unbind name process help
  assertEquals(req("b pro oping n x").method, "irm.bind.program");
  assertEquals(req("u proc 42 n x").method, "irm.unbind.process");
  assertEquals(req("n l").method, "irm.name.list");
  assertEquals(req("p l").method, "irm.proc.list");
  assertStringIncludes(helpText("h"), "Usage: irm [--rundir DIR]");
  // under name: create destroy register unregister list bind unbind
  assertEquals(req("name c x").method, "irm.name.create");
  assertEquals(req("name d x").method, "irm.name.destroy");
  assertEquals(req("name r x ipcp a").method, "irm.name.register");
  assertEquals(req("name u x ipcp a").method, "irm.name.unregister");
  assertEquals(req("name unb process 42 name x").method, "irm.unbind.process");
  assertEquals(req("name b process 42 name x").method, "irm.bind.process");
  assertEquals(matchKeyword("", ["a"]), undefined);
  assertEquals(matchKeyword("pro", ["program", "process"]), "program");
  assertEquals(matchKeyword("proc", ["program", "process"]), "process");
});

Deno.test("bind: pro is program, proc is process", () => {
  assertEquals(req("bind pro oping name x").method, "irm.bind.program");
  assertEquals(req("bind proc 42 name x").method, "irm.bind.process");
  assertEquals(req("bind p oping name x").method, "irm.bind.program");
  assertEquals(req("bind i wifi1 name x").method, "irm.bind.ipcp");
});

// ---------------------------------------------------------------------------
// help and unknown words

Deno.test("every level answers help, -h and --help", () => {
  const levels: [string, string][] = [
    ["", "Usage: irm [--rundir DIR]"],
    ["ipcp", "Usage: irm ipcp [OPERATION]"],
    ["ipcp create", "Usage: irm ipcp create"],
    ["ipcp destroy", "Usage: irm ipcp destroy"],
    ["ipcp bootstrap", "Usage: irm ipcp bootstrap"],
    ["ipcp enroll", "Usage: irm ipcp enroll"],
    ["ipcp connect", "Usage: irm ipcp connect"],
    ["ipcp disconnect", "Usage: irm ipcp disconnect"],
    ["ipcp list", "Usage: irm ipcp list"],
    ["bind", "Usage: irm bind [OPERATION]"],
    ["bind program", "Usage: irm bind program <program>"],
    ["bind process", "Usage: irm bind process <pid>"],
    ["bind ipcp", "Usage: irm bind ipcp <ipcp name>"],
    ["unbind", "Usage: irm unbind [OPERATION]"],
    ["unbind program", "Usage: irm unbind program <program>"],
    ["unbind process", "Usage: irm unbind process <pid>"],
    ["unbind ipcp", "Usage: irm unbind ipcp <ipcp name>"],
    ["name", "Usage: irm name [OPERATION]"],
    ["name create", "Usage: irm name create"],
    ["name destroy", "Usage: irm name destroy <name>"],
    ["name register", "Usage: irm name register <name>"],
    ["name unregister", "Usage: irm name unregister <name>"],
    ["name list", "Usage: irm name list"],
    ["name bind", "Usage: irm name bind [OPERATION]"],
    ["name bind process", "Usage: irm name bind process <pid>"],
    ["name unbind ipcp", "Usage: irm name unbind ipcp <ipcp name>"],
    ["process", "Usage: irm process [OPERATION]"],
    ["process list", "Usage: irm process list"],
  ];
  for (const [level, head] of levels) {
    for (const h of ["help", "-h", "--help"]) {
      const text = helpText(`${level} ${h}`);
      assert(text.startsWith(head), `${level} ${h}: ${firstLine(text)}`);
    }
  }
  // help after some options, and as a prefix where nothing else matches
  assertStringIncludes(
    helpText("ipcp create name a help"),
    "Usage: irm ipcp create",
  );
  assertStringIncludes(helpText("ipcp he"), "Usage: irm ipcp [OPERATION]");
  assertStringIncludes(helpText("i h"), "Usage: irm ipcp [OPERATION]");
  assertStringIncludes(helpText("--rundir /x help"), "Usage: irm");
  assertStringIncludes(helpText("help"), "irm process help");
});

Deno.test("unknown words name the right level and show its usage", () => {
  const cases: [string, string, string][] = [
    ["foo", `"foo" is unknown, try "irm help".`, "Usage: irm [--rundir DIR]"],
    [
      "ipcp foo",
      `"foo" is unknown, try "irm ipcp help".`,
      "Usage: irm ipcp [OPERATION]",
    ],
    [
      "ipcp create foo a",
      `"foo" is unknown, try "irm ipcp create help".`,
      "Usage: irm ipcp create",
    ],
    [
      "ipcp list foo",
      `"foo" is unknown, try "irm ipcp list help".`,
      "Usage: irm ipcp list",
    ],
    [
      "bind foo",
      `"foo" is unknown, try "irm bind help".`,
      "Usage: irm bind [OPERATION]",
    ],
    [
      "unbind x",
      `"x" is unknown, try "irm unbind help".`,
      "Usage: irm unbind [OPERATION]",
    ],
    [
      "bind process 1 foo x",
      `"foo" is unknown, try "irm bind process help".`,
      "Usage: irm bind process",
    ],
    [
      "name foo",
      `"foo" is unknown, try "irm name help".`,
      "Usage: irm name [OPERATION]",
    ],
    [
      "name bind foo",
      `"foo" is unknown, try "irm name bind help".`,
      "Usage: irm name bind [OPERATION]",
    ],
    [
      "name list all",
      `"all" is unknown, try "irm name list help".`,
      "Usage: irm name list",
    ],
    [
      "name create x lb rr spill",
      `"spill" is unknown, try "irm name create help".`,
      "Usage: irm name create",
    ],
    [
      "name register x dif d",
      `"dif" is unknown, try "irm name register help".`,
      "Usage: irm name register",
    ],
    [
      "process foo",
      `"foo" is unknown, try "irm process help".`,
      "Usage: irm process [OPERATION]",
    ],
    ["-x", `"-x" is unknown, try "irm help".`, "Usage: irm [--rundir DIR]"],
  ];
  for (const [line, first, usage] of cases) {
    const text = errorText(line);
    const lines = text.split("\n");
    assertEquals(lines[0], first, line);
    assert((lines[1] ?? "").startsWith(usage), `${line}: ${lines[1]}`);
  }
});

Deno.test("a missing operation prints the level's usage as an error", () => {
  assertStringIncludes(errorText(""), "Usage: irm [--rundir DIR]");
  assertEquals(
    firstLine(errorText("ipcp")),
    "irm ipcp: an operation is missing.",
  );
  assertStringIncludes(errorText("ipcp"), "Usage: irm ipcp [OPERATION]");
  assertEquals(
    firstLine(errorText("name")),
    "irm name: an operation is missing.",
  );
  assertEquals(
    firstLine(errorText("bind")),
    "irm bind: an operation is missing.",
  );
});

// ---------------------------------------------------------------------------
// bind / unbind

Deno.test("bind program resolves the program like C and passes autostart arguments", () => {
  assertEquals(sent("bind program oping name oping-server"), {
    method: "irm.bind.program",
    body: {
      prog: "/usr/bin/oping",
      name: "oping-server",
      auto: false,
      args: [],
    },
  });
  assertEquals(sent("bind program tool name t auto -- --listen -v").body, {
    prog: "/opt/bin/tool",
    name: "t",
    auto: true,
    args: ["--listen", "-v"],
  });
  // "--" ends the options: later keywords are arguments
  assertEquals(sent("bind program oping name x auto -- name auto").body, {
    prog: "/usr/bin/oping",
    name: "x",
    auto: true,
    args: ["name", "auto"],
  });
  assertEquals(sent("bind program ./bin/../srv name x").body, {
    prog: "/home/u/srv",
    name: "x",
    auto: false,
    args: [],
  });
  assertEquals(sent("bind program /usr/sbin/x name x a").body, {
    prog: "/usr/sbin/x",
    name: "x",
    auto: true,
    args: [],
  });
  assertEquals(
    errorText("bind program nosuch name x"),
    "Program nosuch not found.",
  );
  assertEquals(
    firstLine(errorText("bind program oping")),
    `irm bind program: "name <name>" is missing.`,
  );
  assertEquals(
    firstLine(errorText("bind program")),
    "irm bind program: the program is missing.",
  );
});

Deno.test("findProgram and absolutePath", () => {
  assertEquals(absolutePath("/a/b", "../c/./d"), "/a/c/d");
  assertEquals(absolutePath("/a", "/x//y/"), "/x/y");
  assertEquals(findProgram(ENV, "oping"), "/usr/bin/oping");
  assertEquals(findProgram(ENV, "nope"), undefined);
  assertEquals(findProgram({ ...ENV, path: undefined }, "oping"), undefined);
  assertEquals(
    findProgram({
      ...ENV,
      path: "bin",
      isExecutable: (p) => p === "/home/u/bin/x",
    }, "x"),
    "/home/u/bin/x",
  );
});

Deno.test("unbind program keeps a name that is not on PATH", () => {
  assertEquals(sent("unbind program oping name x"), {
    method: "irm.unbind.program",
    body: { prog: "/usr/bin/oping", name: "x" },
  });
  assertEquals(sent("unbind program gone name x").body, {
    prog: "gone",
    name: "x",
  });
});

Deno.test("bind and unbind process and ipcp", () => {
  assertEquals(sent("bind process 16809 name oping-server"), {
    method: "irm.bind.process",
    body: { pid: 16809, name: "oping-server" },
  });
  assertEquals(sent("unbind process 16809 name oping-server"), {
    method: "irm.unbind.process",
    body: { pid: 16809, name: "oping-server" },
  });
  assertEquals(sent("bind ipcp wifi1 name wifi1"), {
    method: "irm.bind.ipcp",
    body: { ipcp: "wifi1", name: "wifi1" },
  });
  assertEquals(sent("unbind ipcp wifi1 name wifi1"), {
    method: "irm.unbind.ipcp",
    body: { ipcp: "wifi1", name: "wifi1" },
  });
});

Deno.test("bad process ids", () => {
  for (const pid of ["abc", "0", "-1", "1.5", "2147483648", "12x"]) {
    assertEquals(
      firstLine(errorText(["bind", "process", pid, "name", "x"])),
      `irm bind process: invalid process id "${pid}": expected a number from 1 to 2147483647.`,
    );
  }
  assertEquals(
    firstLine(errorText("bind process")),
    "irm bind process: the process id is missing.",
  );
  assertEquals(
    firstLine(errorText("bind process 12")),
    `irm bind process: "name <name>" is missing.`,
  );
});

Deno.test("the tutorial's irm name bind process <pid> name <name>", () => {
  assertEquals(sent("name bind process 16809 name oping-server2"), {
    method: "irm.bind.process",
    body: { pid: 16809, name: "oping-server2" },
  });
  assertEquals(
    sent("name bind program oping name x").method,
    "irm.bind.program",
  );
  assertEquals(sent("name bind ipcp wifi1 name x").method, "irm.bind.ipcp");
  assertEquals(
    sent("name unbind process 1 name x").method,
    "irm.unbind.process",
  );
  assertEquals(
    sent("name unbind program oping name x").method,
    "irm.unbind.program",
  );
  assertEquals(sent("name unbind ipcp wifi1 name x").method, "irm.unbind.ipcp");
  assertEquals(
    firstLine(errorText("name bind process x name y")),
    `irm name bind process: invalid process id "x": expected a number from 1 to 2147483647.`,
  );
});

// ---------------------------------------------------------------------------
// names

Deno.test("name create: round-robin by default, spillover is spill", () => {
  assertEquals(sent("name create oping-server"), {
    method: "irm.name.create",
    body: { name: "oping-server", lb: "round-robin" },
  });
  assertEquals(sent("name create x lb round-robin").body, {
    name: "x",
    lb: "round-robin",
  });
  assertEquals(sent("name create x lb r").body, {
    name: "x",
    lb: "round-robin",
  });
  assertEquals(sent("name create x lb spillover").body, {
    name: "x",
    lb: "spill",
  });
  assertEquals(sent("name create x lb spill").body, { name: "x", lb: "spill" });
  assertEquals(sent("name create x l s").body, { name: "x", lb: "spill" });
  assertEquals(
    firstLine(errorText("name create x lb random")),
    `irm name create: unknown load-balance policy "random".`,
  );
  assertEquals(
    firstLine(errorText("name create x lb")),
    "irm name create: lb needs a value: lb <policy>.",
  );
  assertEquals(
    firstLine(errorText("name create")),
    "irm name create: the name is missing.",
  );
});

Deno.test("name destroy, register, unregister, list", () => {
  assertEquals(sent("name destroy x"), {
    method: "irm.name.destroy",
    body: { name: "x" },
  });
  assertEquals(sent("name register oping-server ipcp wifi1"), {
    method: "irm.name.register",
    body: { name: "oping-server", ipcps: ["wifi1"], layers: [] },
  });
  assertEquals(sent("name register x layer l1 ipcp a layer l2 i b"), {
    method: "irm.name.register",
    body: { name: "x", ipcps: ["a", "b"], layers: ["l1", "l2"] },
  });
  assertEquals(sent("name unregister x layer l1"), {
    method: "irm.name.unregister",
    body: { name: "x", ipcps: [], layers: ["l1"] },
  });
  assertEquals(
    firstLine(errorText("name register x")),
    `irm name register: at least one "ipcp <ipcp name>" or "layer <layer name>" is needed.`,
  );
  assertEquals(
    firstLine(errorText("name register x ipcp")),
    "irm name register: ipcp needs a value: ipcp <ipcp name>.",
  );
  assertEquals(sent("name list"), { method: "irm.name.list", body: {} });
  assertEquals(sent("process list"), { method: "irm.proc.list", body: {} });
});

// ---------------------------------------------------------------------------
// --rundir

Deno.test("--rundir anywhere on the line", () => {
  const a = parse("--rundir /tmp/node1 ipcp list");
  assert(a.kind === "request");
  assertEquals(a.rundir, "/tmp/node1");
  const b = parse("--rundir=/tmp/n2 n l");
  assert(b.kind === "request");
  assertEquals(b.rundir, "/tmp/n2");
  const c = parse("ipcp list");
  assert(c.kind === "request");
  assertEquals(c.rundir, undefined);
  assertEquals(
    firstLine(errorText("--rundir")),
    "irm: --rundir needs a directory: --rundir DIR.",
  );
  for (const line of ["ipcp --rundir /x list", "ipcp list --rundir=/x"]) {
    const r = parse(line);
    assert(r.kind === "request", line);
    assertEquals(r.rundir, "/x");
    assertEquals(r.call.method, "irm.ipcp.list");
  }
  const d = parse("name register n --rundir /y layer l");
  assert(d.kind === "request");
  assertEquals(d.rundir, "/y");
  assertEquals(d.call.method, "irm.name.register");
  assertEquals(
    firstLine(errorText("ipcp list --rundir")),
    "irm: --rundir needs a directory: --rundir DIR.",
  );
});

Deno.test("irm help names every verb there is", () => {
  const h = parse("help");
  assert(h.kind === "help");
  for (const verb of ["stats", "bind unbind", "enroll", "connect"]) {
    assertStringIncludes(h.text, verb);
  }
  // Each listed verb of ipcp and name parses to something other than an
  // unknown word.
  for (const line of ["ipcp stats", "name bind help", "name unbind help"]) {
    const r = parse(line);
    assert(r.kind !== "error", `${line}: ${JSON.stringify(r)}`);
  }
});

Deno.test("a long value widens its whole column", () => {
  const long = "x".repeat(30);
  const t = renderIpcpList([
    { pid: 1, name: long, type: "udp4", layer: "l" },
    { pid: 22, name: "short", type: "udp4", layer: "layer-two" },
  ]).split("\n");
  // Every row has its column separators at the same places.
  const bars = (l: string) => [...l].flatMap((c, i) => (c === "|" ? [i] : []));
  const rows = t.filter((l) => l.startsWith("|"));
  assertEquals(rows.length, 3);
  for (const r of rows) assertEquals(bars(r), bars(rows[0]!));
  assertStringIncludes(t.join("\n"), long);
});

// ---------------------------------------------------------------------------
// tables

Deno.test("ipcp list table as cli.md", () => {
  const expected = [
    "+---------+----------------------+------------+----------------------+",
    "|     pid |                 name |       type |                layer |",
    "+---------+----------------------+------------+----------------------+",
    "|   16728 |                wifi1 |       udp4 |         wifi-network |",
    "+---------+----------------------+------------+----------------------+",
  ].join("\n");
  assertEquals(
    renderIpcpList([{
      pid: 16728,
      name: "wifi1",
      type: "udp4",
      layer: "wifi-network",
    }]),
    expected,
  );
  const c = req("ipcp list");
  assert(c.method === "irm.ipcp.list");
  assertEquals(
    c.render({
      ipcps: [{
        pid: 16728,
        name: "wifi1",
        type: "udp4",
        layer: "wifi-network",
      }],
    }),
    expected,
  );
  assertEquals(c.render({ ipcps: [] }), "No IPCPs in system.");
  // not bootstrapped: empty layer; long names widen their cell
  assertEquals(
    renderIpcpList([{
      pid: 7,
      name: "a-very-long-ipcp-name-indeed",
      type: "udp6",
    }]).split("\n")[3],
    "|       7 | a-very-long-ipcp-name-indeed |       udp6 |                      |",
  );
});

Deno.test("name list table as cli.md", () => {
  const expected = [
    "+----------------------------------------------------+----------------------+",
    "|                                               name |  load-balance policy |",
    "+----------------------------------------------------+----------------------+",
    "|                                       oping-server |          round-robin |",
    "+----------------------------------------------------+----------------------+",
  ].join("\n");
  assertEquals(
    renderNameList([{ name: "oping-server", lb: "round-robin" }]),
    expected,
  );
  const c = req("name list");
  assert(c.method === "irm.name.list");
  assertEquals(
    c.render({ names: [{ name: "oping-server", lb: "round-robin" }] }),
    expected,
  );
  assertEquals(c.render({ names: [] }), "No names in system.");
  assertEquals(
    renderNameList([{ name: "s", lb: "spill" }]).split("\n")[3],
    "|                                                  s |            spillover |",
  );
  const long = "n".repeat(60);
  assertEquals(
    renderNameList([{ name: long, lb: "spill" }]).split("\n")[3],
    `| ${long} |            spillover |`,
  );
});

Deno.test("process list table", () => {
  assertEquals(renderProcList([]), "No processes in system.");
  const t = renderProcList([
    {
      pid: 16792,
      prog: "oping",
      names: ["oping-server", "oping-server2"],
      accepting: true,
      flows: 1,
    },
  ]).split("\n");
  assertEquals(t.length, 5);
  assertEquals(
    t[1],
    "|     pid |              program |                                    names | accepting | flows |",
  );
  assertEquals(
    t[3],
    "|   16792 |                oping |              oping-server, oping-server2 |       yes |     1 |",
  );
  assertEquals(t[0]?.length, t[1]?.length);
});

Deno.test("failure text ends with one period", () => {
  assertEquals(
    failureText("Failed to bootstrap IPCP", "no such IPCP"),
    "Failed to bootstrap IPCP: no such IPCP.",
  );
  assertEquals(
    failureText("Failed to create name", "name x exists."),
    "Failed to create name: name x exists.",
  );
  assertEquals(
    failureText("Failed to list names", ""),
    "Failed to list names.",
  );
});

// ---------------------------------------------------------------------------
// talking to an irmd (a fake one on a Unix socket)

interface Captured {
  out: string[];
  err: string[];
}

async function captured<T>(fn: () => Promise<T>): Promise<[T, Captured]> {
  const cap: Captured = { out: [], err: [] };
  const log = console.log;
  const error = console.error;
  console.log = (...a: unknown[]) => cap.out.push(a.join(" "));
  console.error = (...a: unknown[]) => cap.err.push(a.join(" "));
  try {
    return [await fn(), cap];
  } finally {
    console.log = log;
    console.error = error;
  }
}

/** Runs `fn` against a fake irmd that serves `handlers` in a fresh runtime directory. */
async function withFakeIrmd(
  handlers: Handlers,
  fn: (rundir: string, seen: string[]) => Promise<void>,
): Promise<void> {
  const rundir = await Deno.makeTempDir({ prefix: "irm-test-" });
  const listener = Deno.listen({
    transport: "unix",
    path: irmdSocketPath(rundir),
  });
  const seen: string[] = [];
  const conns: CtrlConn[] = [];
  const accepting = (async () => {
    for await (const c of listener) {
      const all: Handlers = {
        hello: (b) => {
          seen.push(`hello ${b.role} ${b.pid}`);
          return { irmdPid: 1 };
        },
        ...handlers,
      };
      conns.push(new CtrlConn(c, all));
    }
  })();
  try {
    await fn(rundir, seen);
  } finally {
    listener.close();
    await accepting.catch(() => {});
    for (const c of conns) {
      c.close();
      await c.done;
    }
    await Deno.remove(rundir, { recursive: true });
  }
}

function requestOf(
  line: string,
): { rundir: string | undefined; call: IrmCall } {
  const r = parse(line);
  assert(r.kind === "request");
  return r;
}

Deno.test("execute: hello first, then the request; the table is printed", async () => {
  await withFakeIrmd({
    "irm.ipcp.list": (b) => {
      assertEquals(b, { type: "udp4" });
      return {
        ipcps: [{
          pid: 16728,
          name: "wifi1",
          type: "udp4",
          layer: "wifi-network",
        }],
      };
    },
  }, async (rundir, seen) => {
    const [code, cap] = await captured(() =>
      execute(rundir, requestOf("i l t udp").call)
    );
    assertEquals(code, 0);
    assertEquals(seen, [`hello tool ${Deno.pid}`]);
    assertEquals(
      cap.out.join("\n"),
      renderIpcpList([{
        pid: 16728,
        name: "wifi1",
        type: "udp4",
        layer: "wifi-network",
      }]),
    );
    assertEquals(cap.err, []);
  });
});

Deno.test("execute: an irmd refusal prints Failed to ...: <message>.", async () => {
  await withFakeIrmd({
    "irm.ipcp.bootstrap": () => {
      throw new OuroborosError("not_found", "no IPCP named spare");
    },
  }, async (rundir) => {
    const [code, cap] = await captured(() =>
      execute(rundir, requestOf("ipcp bootstrap name spare layer l").call)
    );
    assertEquals(code, 1);
    assertEquals(cap.err, ["Failed to bootstrap IPCP: no IPCP named spare."]);
    assertEquals(cap.out, []);
  });
});

Deno.test("execute: silent success", async () => {
  await withFakeIrmd({
    "irm.name.create": (b) => {
      assertEquals(b, { name: "oping-server", lb: "round-robin" });
      return {};
    },
  }, async (rundir) => {
    const [code, cap] = await captured(() =>
      execute(rundir, requestOf("name create oping-server").call)
    );
    assertEquals(code, 0);
    assertEquals(cap, { out: [], err: [] });
  });
});

Deno.test("execute: no irmd", async () => {
  const rundir = await Deno.makeTempDir({ prefix: "irm-test-" });
  try {
    const [code, cap] = await captured(() =>
      execute(rundir, requestOf("name list").call)
    );
    assertEquals(code, 1);
    const sock = `${rundir}/irmd.sock`;
    assertEquals(cap.err, [
      `Failed to communicate with the Ouroboros IPC Resource Manager daemon at ${sock}: no such socket. ` +
      `Start it with "irmd", or pass --rundir DIR (or set OUROBOROS_RUNDIR) for another node's.`,
    ]);
    // A stale socket (a file nobody listens on) says so.
    // (A socket file whose process ended without removing it, as a killed
    // irmd leaves one.)
    const made = await runCommand("python3", [
      "-c",
      "import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])",
      sock,
    ], { timeoutMs: 10_000 });
    assert(made.code === 0, "python3 could not make a stale socket");
    const [code2, cap2] = await captured(() =>
      execute(rundir, requestOf("name list").call)
    );
    assertEquals(code2, 1);
    assertMatch(
      cap2.err[0] ?? "",
      /at .*irmd\.sock: nothing listens on it \(a stale socket/,
    );
  } finally {
    await Deno.remove(rundir, { recursive: true });
  }
});

Deno.test("ipcp list: an address column once a unicast member is listed", () => {
  const t = renderIpcpList([
    { pid: 1, name: "udp-a", type: "udp4", layer: "udp-ab" },
    {
      pid: 2,
      name: "uni-a",
      type: "unicast",
      layer: "uni",
      address: "3410452100",
    },
  ]).split("\n");
  assertEquals(
    t[1],
    "|     pid |                 name |       type |                layer |    address |",
  );
  assertEquals(
    t[4],
    "|       2 |                uni-a |    unicast |                  uni | 3410452100 |",
  );
  assertStringIncludes(t[3]!, "|            |");
});
