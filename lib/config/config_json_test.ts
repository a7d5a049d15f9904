import { assert, assertEquals, unwrap } from "../../tests/assert.ts";
import { type Config, parseConfig } from "./config.ts";
import { configFromJson, configToJson } from "./config_json.ts";

const FULL = `[name."a"]
prog=["/bin/a", "/bin/b"]
args=["--listen"]
lb="round-robin"

[name."c"]
prog=["/bin/c"]

[udp4.one]
bootstrap="layer"
ip="127.0.0.1"
port=4000
dns="127.0.0.53:5353"
hosts="hosts.txt"
zone="example.org"
rcvbuf=8388608
sndbuf=4096
reg=["a", "c"]

[udp6.two]
ip="::1"

[local.three]
bootstrap="local-layer"
hash="SHA3_384"
reg=["a"]
autobind=true

[local.four]
`;

Deno.test("a parsed configuration comes back from its JSON unchanged", () => {
  const cfg = unwrap(parseConfig(FULL, "/etc/o7s.conf", "/etc"));
  // The autostart-less program and the IPCP without options survive.
  assertEquals(cfg.names[0]?.args, ["--listen", undefined]);
  assertEquals(cfg.ipcps[1]?.layer, undefined);
  const first = cfg.ipcps[0];
  assert(
    first !== undefined && first.type !== "local" && first.type !== "unicast",
  );
  assertEquals(first.rcvbuf, 8388608);
  assertEquals(first.sndbuf, 4096);
  const back: Config = unwrap(configFromJson(configToJson(cfg)));
  assertEquals(back, cfg);
  assert(!("layer" in back.ipcps[1]!));
  assertEquals(back.ipcps.map((c) => c.type), [
    "udp4",
    "udp6",
    "local",
    "local",
  ]);
  assert(!("layer" in back.ipcps[3]!));
  const empty = unwrap(parseConfig("", "e.conf", "."));
  assertEquals(unwrap(configFromJson(configToJson(empty))), empty);
});

Deno.test("JSON that is not a configuration is refused, not trusted", () => {
  const cfg = unwrap(parseConfig(FULL, "/etc/o7s.conf", "/etc"));
  const good = JSON.parse(configToJson(cfg));
  const bad: [string, (v: typeof good) => void][] = [
    ["no file", (v) => delete v.file],
    ["names not a list", (v) => v.names = {}],
    ["an unknown lb", (v) => v.names[0].lb = "random"],
    ["args shorter than progs", (v) => v.names[0].args = []],
    ["a number as an argument", (v) => v.names[0].args[0] = 3],
    ["an unknown IPCP type", (v) => v.ipcps[0].type = "eth"],
    ["port 0", (v) => v.ipcps[0].port = 0],
    ["a port that is not whole", (v) => v.ipcps[0].port = 1.5],
    ["a non-text zone", (v) => v.ipcps[0].zone = 5],
    ["a socket buffer as text", (v) => v.ipcps[0].rcvbuf = "8388608"],
    ["a socket buffer below the smallest", (v) => v.ipcps[0].sndbuf = 4095],
    ["a socket buffer that is not whole", (v) => v.ipcps[0].rcvbuf = 5000.5],
    ["reg not a list of names", (v) => v.ipcps[0].reg = [1]],
    ["a local hash that is not SHA3", (v) => v.ipcps[2].hash = "MD5"],
    ["a local IPCP without its hash", (v) => delete v.ipcps[2].hash],
    ["a local autobind as text", (v) => v.ipcps[2].autobind = "true"],
    ["a local layer that is not text", (v) => v.ipcps[2].layer = 1],
  ];
  for (const [what, spoil] of bad) {
    const v = structuredClone(good);
    spoil(v);
    const r = configFromJson(JSON.stringify(v));
    assert(!r.ok, what);
    assertEquals(
      r.error,
      "the configuration parser's output is not a configuration",
    );
  }
  for (const text of ["", "{", "null", "[]", '"x"']) {
    assert(!configFromJson(text).ok, JSON.stringify(text));
  }
});

Deno.test("a unicast stanza comes back from its JSON unchanged; a bad one is refused", () => {
  const cfg = unwrap(parseConfig(
    `[unicast.u1]\nbootstrap = "net1"\nhash = "SHA3_512"\nrouting = "lfa"\ndht_k = 4\nreg = ["oping"]\nautobind = true\nconn = ["u0"]\n\n[unicast.u2]\n\n` +
      `[unicast.u3]\nenrol = "net1"\nconn = ["u1", "u2"]\nautobind = true\n`,
    "/etc/u.conf",
    "/etc",
  ));
  const back = unwrap(configFromJson(configToJson(cfg)));
  assertEquals(back, cfg);
  assert(!("layer" in back.ipcps[1]!));
  assert(!("enrol" in back.ipcps[1]!));
  const u3 = back.ipcps[2];
  assert(u3?.type === "unicast");
  assertEquals([u3.enrol, u3.layer, u3.conn], ["net1", undefined, [
    "u1",
    "u2",
  ]]);
  const good = JSON.parse(configToJson(cfg));
  for (
    const spoil of [
      (v: typeof good) => v.ipcps[0].unicast.dhtK = 99,
      (v: typeof good) => v.ipcps[0].unicast.routing = "rip",
      (v: typeof good) => v.ipcps[0].hash = "MD5",
      (v: typeof good) => delete v.ipcps[0].unicast,
      (v: typeof good) => delete v.ipcps[0].conn,
      (v: typeof good) => v.ipcps[0].conn = "u0",
      (v: typeof good) => v.ipcps[2].conn = [1],
      (v: typeof good) => v.ipcps[2].enrol = ["net1"],
    ]
  ) {
    const v = structuredClone(good);
    spoil(v);
    assert(!configFromJson(JSON.stringify(v)).ok);
  }
});
