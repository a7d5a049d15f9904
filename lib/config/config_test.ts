import {
  assert,
  assertEquals,
  assertStringIncludes,
  unwrap,
} from "../../tests/assert.ts";
import {
  checkConfigFile,
  type Config,
  formatConfigSummary,
  KeyLocator,
  loadConfig,
  MAX_CONFIG_BYTES,
  parseConfig,
  parseDnsAddress,
  type UdpIpcpConfig,
} from "./config.ts";

/** The UDP stanza of a configuration at `i` (fails for another type). */
function udpAt(cfg: Config, i: number): UdpIpcpConfig | undefined {
  const c = cfg.ipcps[i];
  if (c === undefined) return undefined;
  assert(
    c.type !== "local" && c.type !== "unicast",
    `IPCP ${i} is a ${c.type} one`,
  );
  return c;
}

/** The tutorial's server file, with its newlines, for a given address. */
function tutorialServer(ip: string): string {
  return `[name."oping-server"]
prog=["/usr/bin/oping"]
args=["--listen"]
lb="round-robin"

[name."oping-server2"]
prog=["/usr/bin/oping"]
args=["--listen"]

[udp.wifi1]
bootstrap="wifi-network"
ip="${ip}"
reg=["oping-server", "oping-server2"]
`;
}

function tutorialClient(ip: string): string {
  return `[udp.wifi1]
bootstrap="wifi-network"
ip="${ip}"
`;
}

function serverConfig(file: string, ip: string): Config {
  return {
    file,
    names: [
      {
        name: "oping-server",
        progs: ["/usr/bin/oping"],
        args: ["--listen"],
        lb: "round-robin",
      },
      {
        name: "oping-server2",
        progs: ["/usr/bin/oping"],
        args: ["--listen"],
        lb: "spill",
      },
    ],
    ipcps: [
      {
        type: "udp4",
        name: "wifi1",
        layer: "wifi-network",
        ip,
        port: 3435,
        reg: ["oping-server", "oping-server2"],
      },
    ],
  };
}

function clientConfig(file: string, ip: string): Config {
  return {
    file,
    names: [],
    ipcps: [
      {
        type: "udp4",
        name: "wifi1",
        layer: "wifi-network",
        ip,
        port: 3435,
        reg: [],
      },
    ],
  };
}

const confPath = (name: string): string =>
  decodeURIComponent(new URL(`../../conf/${name}`, import.meta.url).pathname);

/** The error message of a configuration that must be refused. */
function refused(text: string, file = "t.conf"): string {
  const r = parseConfig(text, file);
  if (r.ok) throw new Error(`expected an error for:\n${text}`);
  return r.error;
}

// ---------------------------------------------------------------------------
// Valid files

Deno.test("the tutorial's server file parses to the expected structure", () => {
  assertEquals(
    unwrap(parseConfig(tutorialServer("192.168.0.2"), "tut05.conf")),
    serverConfig("tut05.conf", "192.168.0.2"),
  );
});

Deno.test("the tutorial's client file parses to the expected structure", () => {
  assertEquals(
    unwrap(parseConfig(tutorialClient("192.168.0.3"), "tut05.conf")),
    clientConfig("tut05.conf", "192.168.0.3"),
  );
});

Deno.test("the tutorial's files with placeholders are refused", () => {
  assertEquals(
    refused(tutorialServer("<SERVER IP ADDRESS>"), "tut05.conf"),
    'tut05.conf:12:1: [udp.wifi1] ip: invalid IPv4 address "<SERVER IP ADDRESS>"',
  );
  assertEquals(
    refused(tutorialClient("<CLIENT IP ADDRESS>"), "tut05.conf"),
    'tut05.conf:3:1: [udp.wifi1] ip: invalid IPv4 address "<CLIENT IP ADDRESS>"',
  );
});

Deno.test("shipped conf/tut05-server.conf is the tutorial's file on loopback", async () => {
  const file = confPath("tut05-server.conf");
  assertEquals(
    unwrap(await loadConfig(file)),
    serverConfig(file, "127.0.0.1"),
  );
  const text = await Deno.readTextFile(
    new URL("../../conf/tut05-server.conf", import.meta.url),
  );
  assertStringIncludes(text, tutorialServer("127.0.0.1"));
  assertStringIncludes(
    text,
    "ouroboros irmd -c conf/tut05-server.conf --debug",
  );
});

Deno.test("shipped conf/tut05-client.conf parses", async () => {
  const file = confPath("tut05-client.conf");
  assertEquals(unwrap(await loadConfig(file)), clientConfig(file, "127.0.0.2"));
  const text = await Deno.readTextFile(
    new URL("../../conf/tut05-client.conf", import.meta.url),
  );
  assertStringIncludes(
    text,
    "ouroboros irmd -c conf/tut05-client.conf --debug",
  );
});

Deno.test("shipped conf/irmd.conf parses and demonstrates every key", async () => {
  const file = confPath("irmd.conf");
  const dir = file.slice(0, file.lastIndexOf("/"));
  assertEquals(unwrap(await loadConfig(file)), {
    file,
    names: [
      {
        name: "oping-server",
        progs: ["/usr/bin/oping"],
        args: ["--listen"],
        lb: "round-robin",
      },
      {
        name: "my service",
        progs: ["/usr/local/bin/server-a", "/usr/local/bin/server-b"],
        args: ["--listen --verbose", undefined],
        lb: "spill",
      },
    ],
    ipcps: [
      {
        type: "udp4",
        name: "wifi1",
        layer: "wifi-network",
        ip: "192.168.0.2",
        port: 3435,
        reg: ["oping-server"],
      },
      {
        type: "udp4",
        name: "lab",
        layer: "lab-network",
        ip: "10.0.0.2",
        port: 3436,
        hosts: `${dir}/lab.hosts`,
        rcvbuf: 16777216,
        sndbuf: 8388608,
        reg: ["my service"],
      },
      {
        type: "udp6",
        name: "backbone",
        layer: "backbone",
        ip: "fd00::2",
        port: 3435,
        dns: "[fd00::53]:53",
        zone: "backbone.example",
        reg: ["oping-server", "my service"],
      },
      { type: "udp4", name: "spare", ip: "127.0.0.1", port: 3435, reg: [] },
      {
        type: "local",
        name: "local-ipcp",
        layer: "local-layer",
        hash: "SHA3_256",
        reg: ["oping-server"],
        autobind: false,
      },
      {
        type: "unicast",
        name: "u1",
        layer: "net1",
        hash: "SHA3_256",
        unicast: { routing: "link-state" },
        reg: ["oping-server"],
        autobind: false,
        conn: [],
      },
    ],
  });
  const text = await Deno.readTextFile(
    new URL("../../conf/irmd.conf", import.meta.url),
  );
  for (
    const word of [
      "[name.",
      "prog",
      "args",
      "lb",
      "round-robin",
      "[udp.",
      "[udp4.",
      "[udp6.",
      "bootstrap",
      "ip =",
      "port =",
      "dns =",
      "hosts =",
      "zone =",
      "rcvbuf =",
      "sndbuf =",
      "reg =",
      "[local.",
      "hash =",
      "autobind",
      "not supported yet",
      "[unicast.",
      "routing =",
      "broadcast",
      "eth-llc",
      "eth-dix",
    ]
  ) {
    assertStringIncludes(text, word);
  }
});

Deno.test("all keys: defaults, dns forms, hosts resolution, zone, socket buffers at their limits", () => {
  const text = `
[name."a"]
prog = ["/bin/a", "/bin/b", "/bin/c"]
args = ["", "-x -y"]

[udp4.v4]
bootstrap = "four"
ip = "10.0.0.1"
port = 1
dns = "10.0.0.53"
hosts = "hosts/lab"
reg = ["a"]

[udp4.v4port]
ip = "10.0.0.1"
port = 65535
dns = "10.0.0.53:5353"
hosts = "/etc/lab-hosts"
rcvbuf = 4096
sndbuf = 536870912

[udp6.v6]
bootstrap = "six"
ip = "::1"
dns = "fd00::53"
zone = "lab.example"

[udp6.v6port]
ip = "fe80::1"
dns = "[fd00::53]:5353"
`;
  assertEquals(unwrap(parseConfig(text, "/etc/ouroboros/x.conf")), {
    file: "/etc/ouroboros/x.conf",
    names: [{
      name: "a",
      progs: ["/bin/a", "/bin/b", "/bin/c"],
      args: ["", "-x -y", undefined],
      lb: "spill",
    }],
    ipcps: [
      {
        type: "udp4",
        name: "v4",
        layer: "four",
        ip: "10.0.0.1",
        port: 1,
        dns: "10.0.0.53",
        hosts: "/etc/ouroboros/hosts/lab",
        reg: ["a"],
      },
      {
        type: "udp4",
        name: "v4port",
        ip: "10.0.0.1",
        port: 65535,
        dns: "10.0.0.53:5353",
        hosts: "/etc/lab-hosts",
        rcvbuf: 4096,
        sndbuf: 536870912,
        reg: [],
      },
      {
        type: "udp6",
        name: "v6",
        layer: "six",
        ip: "::1",
        port: 3435,
        dns: "fd00::53",
        zone: "lab.example",
        reg: [],
      },
      {
        type: "udp6",
        name: "v6port",
        ip: "fe80::1",
        port: 3435,
        dns: "[fd00::53]:5353",
        reg: [],
      },
    ],
  });
});

Deno.test("relative hosts paths resolve against the config file's directory", () => {
  const text = `[udp.a]\nip = "127.0.0.1"\nhosts = "../h"\n`;
  const hosts = (file: string): string | undefined =>
    udpAt(unwrap(parseConfig(text, file)), 0)?.hosts;
  assertEquals(hosts("conf/x.conf"), "h");
  assertEquals(hosts("/a/b/x.conf"), "/a/h");
  assertEquals(hosts("x.conf"), "../h");
});

Deno.test("names and IPCPs keep file order across stanza types", () => {
  const cfg = unwrap(parseConfig(
    `
[udp4.b]
ip = "127.0.0.2"
[name."z"]
prog = ["/bin/z"]
[udp.a]
ip = "127.0.0.1"
[udp6.c]
ip = "::1"
[name."y"]
prog = ["/bin/y"]
[udp.d]
ip = "127.0.0.3"
`,
    "t.conf",
  ));
  assertEquals(cfg.names.map((n) => n.name), ["z", "y"]);
  assertEquals(cfg.ipcps.map((c) => `${c.type}:${c.name}`), [
    "udp4:b",
    "udp4:a",
    "udp6:c",
    "udp4:d",
  ]);
});

Deno.test("local stanzas: every key, the defaults, file order among UDP ones", () => {
  const cfg = unwrap(parseConfig(
    `
[udp.u]
ip = "127.0.0.1"
[local.local-ipcp]
bootstrap = "local-layer"
reg = ["oping", "oping-server"]
[local."l 2"]
bootstrap = "other"
hash = "SHA3_512"
autobind = true
[local.l3]
[local.l4]
bootstrap = "fourth"
hash = "sha3_224"
autobind = false
`,
    "t.conf",
  ));
  assertEquals(cfg.ipcps, [
    { type: "udp4", name: "u", ip: "127.0.0.1", port: 3435, reg: [] },
    {
      type: "local",
      name: "local-ipcp",
      layer: "local-layer",
      hash: "SHA3_256",
      reg: ["oping", "oping-server"],
      autobind: false,
    },
    {
      type: "local",
      name: "l 2",
      layer: "other",
      hash: "SHA3_512",
      reg: [],
      autobind: true,
    },
    // No bootstrap: created only.
    { type: "local", name: "l3", hash: "SHA3_256", reg: [], autobind: false },
    {
      type: "local",
      name: "l4",
      layer: "fourth",
      hash: "SHA3_224",
      reg: [],
      autobind: false,
    },
  ]);
  assertEquals(
    formatConfigSummary(cfg).split("\n").slice(3),
    [
      "    registers no names",
      "  IPCP local-ipcp (local): layer local-layer, names hashed with SHA3_256",
      '    registers "oping", "oping-server"',
      "  IPCP l 2 (local): layer other, names hashed with SHA3_512",
      "    binds itself to its name and its layer's name",
      "    registers no names",
      "  IPCP l3 (local): created only, not bootstrapped, names hashed with SHA3_256",
      "    registers no names",
      "  IPCP l4 (local): layer fourth, names hashed with SHA3_224",
      "    registers no names",
      "Configuration OK: 0 names, 5 IPCPs.",
    ],
  );
});

Deno.test("tutorial 1 as a configuration file", () => {
  const cfg = unwrap(parseConfig(
    `[name."oping"]\nprog = ["/usr/bin/oping"]\nargs = ["--listen"]\n\n` +
      `[local.local-ipcp]\nbootstrap = "local-layer"\nreg = ["oping"]\n`,
    "tut01.conf",
  ));
  assertEquals(cfg.names.map((n) => n.name), ["oping"]);
  assertEquals(cfg.ipcps, [{
    type: "local",
    name: "local-ipcp",
    layer: "local-layer",
    hash: "SHA3_256",
    reg: ["oping"],
    autobind: false,
  }]);
});

Deno.test("names are any UTF-8 up to 255 bytes, in names and in reg", () => {
  const long = "é".repeat(127) + "x"; // 255 bytes
  const cfg = unwrap(parseConfig(
    `[name."${long}"]\nprog = ["/bin/a"]\n[name."名前 with spaces"]\nprog = ["/bin/b"]\n` +
      `[udp."ipcp é"]\nbootstrap = "l"\nip = "127.0.0.1"\nreg = ["${long}", "名前 with spaces", "__proto__"]\n`,
    "t.conf",
  ));
  assertEquals(cfg.names.map((n) => n.name), [long, "名前 with spaces"]);
  assertEquals(cfg.ipcps[0]?.name, "ipcp é");
  assertEquals(cfg.ipcps[0]?.reg, [long, "名前 with spaces", "__proto__"]);
});

Deno.test("names that are Object.prototype members are plain names", () => {
  const cfg = unwrap(parseConfig(
    `[name."__proto__"]\nprog = ["/a"]\n[name."constructor"]\nprog = ["/b"]\n` +
      `[udp."__proto__"]\nip = "127.0.0.1"\n[udp.toString]\nip = "127.0.0.2"\n`,
    "t.conf",
  ));
  assertEquals(cfg.names.map((n) => n.name), ["__proto__", "constructor"]);
  assertEquals(cfg.ipcps.map((c) => c.name), ["__proto__", "toString"]);
});

Deno.test("a byte order mark does not hide the first stanza", () => {
  assertEquals(
    refused(`\uFEFF[udp.a]\nbootstrap = "l"\n`),
    't.conf:1:2: [udp.a]: missing required key "ip" (the IPv4 address to bind)',
  );
});

Deno.test("empty file and comments only: nothing configured", () => {
  assertEquals(unwrap(parseConfig("", "e.conf")), {
    file: "e.conf",
    names: [],
    ipcps: [],
  });
  assertEquals(unwrap(parseConfig("# nothing\n\n", "e.conf")).ipcps, []);
});

Deno.test("the locator copes with spacing, quoting, dotted keys, CRLF", () => {
  // Whitespace and quoting variants in the header and in the key.
  assertEquals(
    refused(`# c\n  [ udp . "w1" ]  # comment\n  'ip'  = "x"\n`),
    't.conf:3:3: [udp.w1] ip: invalid IPv4 address "x"',
  );
  assertEquals(
    refused(`[name.'o s']\nprog = ["/bin/a"]\n"lb" = "rr"\n`),
    't.conf:3:1: [name."o s"] lb: expected "spill" or "round-robin", found a string ("rr")',
  );
  // Dotted keys at top level and in a parent table.
  assertEquals(
    refused(`name.a.prog = ["/bin/a"]\nname.a.lb = 3\n`),
    't.conf:2:1: [name."a"] lb: expected "spill" or "round-robin", found an integer (3)',
  );
  assertEquals(
    refused(`[udp]\nw.ip = "1.2.3.4"\nw.port = 0\n`),
    "t.conf:3:1: [udp.w] port: expected an integer from 1 to 65535, found an integer (0)",
  );
  // Inline table: located at the stanza's key.
  assertEquals(
    refused(`[udp]\n\nw = { ip = "1.2.3.4", port = 0 }\n`),
    "t.conf:3:1: [udp.w] port: expected an integer from 1 to 65535, found an integer (0)",
  );
  // CRLF line endings.
  assertEquals(
    refused(`[udp.w]\r\nbootstrap = "l"\r\nip = "1.2.3"\r\n`),
    't.conf:3:1: [udp.w] ip: invalid IPv4 address "1.2.3"',
  );
  // A key of the same name in an earlier stanza is not mistaken for it.
  assertEquals(
    refused(
      `[udp.a]\nip = "1.2.3.4"\n[udp.b]\nbootstrap = "x"\nip = "1.2.3.256"\n`,
    ),
    't.conf:5:1: [udp.b] ip: invalid IPv4 address "1.2.3.256"',
  );
});

Deno.test("the locator skips multi-line strings and arrays", () => {
  const loc = new KeyLocator(
    `[udp.a]\nnote = """\n[udp.b]\nip = 3\n"""\nreg = [\n  "x",\n  "y",\n]\n[udp.b]\n  ip = "x"\n`,
  );
  assertEquals(loc.find(["udp", "a", "note"]), { line: 2, col: 1 });
  assertEquals(loc.find(["udp", "a", "reg"]), { line: 6, col: 1 });
  assertEquals(loc.find(["udp", "b"]), { line: 10, col: 1 });
  assertEquals(loc.find(["udp", "b", "ip"]), { line: 11, col: 3 });
  assertEquals(loc.find(["udp", "c"]), undefined);
  assertEquals(loc.nearest(["udp", "c", "ip"]), { line: 1, col: 1 });
});

Deno.test("parseDnsAddress: forms, default port, family", () => {
  assertEquals(unwrap(parseDnsAddress("10.0.0.53", 4)), {
    host: "10.0.0.53",
    port: 53,
  });
  assertEquals(unwrap(parseDnsAddress("10.0.0.53:5353", 4)), {
    host: "10.0.0.53",
    port: 5353,
  });
  assertEquals(unwrap(parseDnsAddress("fd00::53", 6)), {
    host: "fd00::53",
    port: 53,
  });
  assertEquals(unwrap(parseDnsAddress("[fd00::53]", 6)), {
    host: "fd00::53",
    port: 53,
  });
  assertEquals(unwrap(parseDnsAddress("[fd00::53]:5353", 6)), {
    host: "fd00::53",
    port: 5353,
  });
  for (
    const [s, family] of [
      ["10.0.0.53:", 4],
      ["10.0.0.53:65536", 4],
      ["10.0.0.53:0x35", 4],
      ["[10.0.0.53]:53", 4],
      ["ns.example", 4],
      ["fd00::53", 4],
      ["10.0.0.53", 6],
      ["[fd00::53]:", 6],
      ["[fd00::53%eth0]:53", 6],
      ["", 6],
    ] as const
  ) {
    assert(!parseDnsAddress(s, family).ok, `${s} for IPv${family}`);
  }
});

// ---------------------------------------------------------------------------
// Malformed files: one precise message each

const MALFORMED: [string, string, string][] = [
  [
    "TOML syntax error",
    `[udp.a]\nip =\n`,
    't.conf:2:5: Invalid TOML document: invalid value (probably a key without a value: write key = "value")',
  ],
  [
    "TOML duplicate table",
    `[udp.a]\nip = "1.2.3.4"\n\n[udp.a]\n`,
    "t.conf:4:2: Invalid TOML document: trying to redefine an already defined table or value",
  ],
  [
    "unknown stanza type",
    `[name."a"]\nprog = ["/bin/a"]\n\n[tcp.x]\nip = "1.2.3.4"\n`,
    't.conf:4:1: [tcp]: unknown stanza type "tcp" (known: name, udp, udp4, udp6, local, unicast; ' +
    "not supported yet: broadcast, eth-llc, eth-dix)",
  ],
  [
    "unicast: bootstrap and enrol together",
    `[unicast.u2]\nautobind = true\nbootstrap = "net"\n  enrol = "u1"\n`,
    "t.conf:4:3: [unicast.u2] enrol: bootstrap and enrol together: an IPCP either bootstraps a layer or enrols in one (keep one of them)",
  ],
  [
    "unicast: enrol and bootstrap together",
    `[unicast.u2]\nenrol = "u1"\nbootstrap = "net"\n`,
    "t.conf:3:1: [unicast.u2] bootstrap: bootstrap and enrol together: an IPCP either bootstraps a layer or enrols in one (keep one of them)",
  ],
  [
    "unicast: a bootstrap key in an enrol stanza",
    `[unicast.u2]\nenrol = "u1"\nreg = ["a"]\nhash = "SHA3_512"\n`,
    "t.conf:4:1: [unicast.u2] hash: hash is a bootstrap key: an IPCP that enrols learns the layer's settings from the member it enrols with (remove it, or bootstrap instead of enrol)",
  ],
  [
    "unicast: bootstrap keys in an enrol stanza, named",
    `[unicast.u2]\nmax_ttl = 9\nenrol = "u1"\naddr_auth = "flat"\nrouting = "lfa"\n`,
    "t.conf:2:1: [unicast.u2] max_ttl: max_ttl, addr_auth and routing are bootstrap keys: an IPCP that enrols learns the layer's settings from the member it enrols with (remove them, or bootstrap instead of enrol)",
  ],
  [
    "unicast: enrol not a string",
    `[unicast.u2]\nenrol = ["u1"]\n`,
    "t.conf:2:1: [unicast.u2] enrol: expected a string (the member or the layer to enrol with), found an array",
  ],
  [
    "unicast: enrol empty",
    `[unicast.u2]\nenrol = ""\n`,
    "t.conf:2:1: [unicast.u2] enrol: empty destination name",
  ],
  [
    "unicast: enrol too long",
    `[unicast.u2]\nenrol = "${"x".repeat(256)}"\n`,
    "t.conf:2:1: [unicast.u2] enrol: destination name is 256 bytes long in UTF-8, at most 255 allowed",
  ],
  [
    "unicast: conn not an array",
    `[unicast.u1]\nbootstrap = "net"\n  conn = "u2"\n`,
    't.conf:3:3: [unicast.u1] conn: expected an array of strings (member names), found a string ("u2")',
  ],
  [
    "unicast: conn with a number",
    `[unicast.u1]\nbootstrap = "net"\nconn = ["u2", 3]\n`,
    "t.conf:3:1: [unicast.u1] conn: expected an array of strings (member names), but element 2 is an integer (3)",
  ],
  [
    "unicast: conn with an empty name",
    `[unicast.u1]\nenrol = "net"\nconn = ["u2", ""]\n`,
    "t.conf:3:1: [unicast.u1] conn: element 2: empty member name",
  ],
  [
    "unicast: conn with a member twice",
    `[unicast.u1]\nenrol = "net"\nconn = ["u2", "u3", "u2"]\n`,
    't.conf:3:1: [unicast.u1] conn: element 3: duplicate member "u2"',
  ],
  [
    "unicast: conn without bootstrap or enrol",
    `[unicast.u1]\nconn = ["u2"]\n`,
    't.conf:2:1: [unicast.u1] conn: has no effect without bootstrap = "<layer>" or enrol = "<member>" (a stanza without it only creates the IPCP)',
  ],
  [
    "unicast: reg, autobind and settings without bootstrap or enrol",
    `[unicast.u1]\nreg = ["a"]\nautobind = true\nrouting = "lfa"\n`,
    't.conf:2:1: [unicast.u1] reg: has no effect without bootstrap = "<layer>" or enrol = "<member>", nor have autobind and routing (a stanza without it only creates the IPCP)',
  ],
  [
    "local: reg without bootstrap",
    `[local.l]\nreg = ["a"]\n`,
    't.conf:2:1: [local.l] reg: has no effect without bootstrap = "<layer>" (a stanza without it only creates the IPCP)',
  ],
  [
    "local: hash and autobind without bootstrap",
    `[local.l]\n  hash = "SHA3_512"\nautobind = false\n`,
    't.conf:2:3: [local.l] hash: has no effect without bootstrap = "<layer>", nor has autobind (a stanza without it only creates the IPCP)',
  ],
  [
    "udp: reg without bootstrap",
    `[udp.u]\nip = "127.0.0.1"\nport = 4000\nreg = ["a"]\n`,
    't.conf:4:1: [udp.u] reg: has no effect without bootstrap = "<layer>" (a stanza without it only creates the IPCP)',
  ],
  [
    "udp6: reg without bootstrap",
    `[udp6.u]\nreg = []\nip = "::1"\n`,
    't.conf:2:1: [udp6.u] reg: has no effect without bootstrap = "<layer>" (a stanza without it only creates the IPCP)',
  ],
  [
    "unicast: unknown key",
    `[unicast.u1]\nbootstrap = "net"\nip = "1.2.3.4"\n`,
    't.conf:3:1: [unicast.u1] ip: unknown key "ip" (allowed: bootstrap, enrol, conn, autobind, reg, hash, addr_size, eid_size, max_ttl, addr-auth, routing, ls_t_recalc, ls_t_update, ls_t_timeo, directory, dht_alpha, dht_k, dht_t_expire, dht_t_refresh, dht_t_replicate, congestion)',
  ],
  [
    "unicast: C's example key dht_t_expiry",
    `[unicast.u1]\ndht_t_expiry = 100\n`,
    't.conf:2:1: [unicast.u1] dht_t_expiry: unknown key "dht_t_expiry" (allowed: bootstrap, enrol, conn, autobind, reg, hash, addr_size, eid_size, max_ttl, addr-auth, routing, ls_t_recalc, ls_t_update, ls_t_timeo, directory, dht_alpha, dht_k, dht_t_expire, dht_t_refresh, dht_t_replicate, congestion)',
  ],
  [
    "unicast: a key named like an object property",
    `[unicast.u1]\nconstructor = 1\n`,
    't.conf:2:1: [unicast.u1] constructor: unknown key "constructor" (allowed: bootstrap, enrol, conn, autobind, reg, hash, addr_size, eid_size, max_ttl, addr-auth, routing, ls_t_recalc, ls_t_update, ls_t_timeo, directory, dht_alpha, dht_k, dht_t_expire, dht_t_refresh, dht_t_replicate, congestion)',
  ],
  [
    "unicast: addr_size other than 4",
    `[unicast.u1]\naddr_size = 8\n`,
    "t.conf:2:1: [unicast.u1] addr_size: expected 4 (bytes (the flat address policy takes 4)), found an integer (8)",
  ],
  [
    "unicast: dht_k out of range",
    `[unicast.u1]\ndht_k = 21\n`,
    "t.conf:2:1: [unicast.u1] dht_k: expected an integer from 1 to 20 (contacts per bucket), found an integer (21)",
  ],
  [
    "unicast: max_ttl as a string",
    `[unicast.u1]\nmax_ttl = "60"\n`,
    't.conf:2:1: [unicast.u1] max_ttl: expected an integer from 1 to 255 (hops), found a string ("60")',
  ],
  [
    "unicast: unknown routing",
    `[unicast.u1]\nrouting = "rip"\n`,
    't.conf:2:1: [unicast.u1] routing: unknown routing "rip" (expected "link-state", "link_state", "lfa", "ecmp")',
  ],
  [
    "unicast: unknown congestion",
    `[unicast.u1]\ncongestion = "ecn"\n`,
    't.conf:2:1: [unicast.u1] congestion: unknown congestion "ecn" (expected "none", "mb-ecn", "lfa")',
  ],
  [
    "unicast: MD5 hash",
    `[unicast.u1]\nhash = "MD5"\n`,
    't.conf:2:1: [unicast.u1] hash: a unicast layer "MD5" is not one of its hashes (expected "SHA3_224", "SHA3_256", "SHA3_384", "SHA3_512")',
  ],
  [
    "unicast: autobind not a boolean",
    `[unicast.u1]\nautobind = "yes"\n`,
    't.conf:2:1: [unicast.u1] autobind: expected true or false, found a string ("yes")',
  ],
  [
    "unsupported stanza type eth-dix",
    `[udp.a]\nip = "1.2.3.4"\n[eth-dix.e1]\ndev = "eth0"\n`,
    't.conf:3:1: [eth-dix]: stanza type "eth-dix" is not supported yet (supported: name, udp, udp4, udp6, local, unicast)',
  ],
  [
    "unknown key in a name stanza",
    `[name."a"]\nprog = ["/bin/a"]\nprogs = ["/bin/b"]\n`,
    't.conf:3:1: [name."a"] progs: unknown key "progs" (allowed: prog, args, lb)',
  ],
  [
    "unknown key in a udp stanza",
    `[udp.a]\nip = "1.2.3.4"\naddress = "1.2.3.4"\n`,
    't.conf:3:1: [udp.a] address: unknown key "address" ' +
    "(allowed: bootstrap, ip, port, dns, hosts, zone, rcvbuf, sndbuf, reg)",
  ],
  [
    "prog is a string, not an array",
    `[name."a"]\nprog = "/usr/bin/oping"\n`,
    't.conf:2:1: [name."a"] prog: expected an array of strings (program paths), found a string ("/usr/bin/oping")',
  ],
  [
    "prog is missing",
    `[name."a"]\nargs = ["--listen"]\n`,
    't.conf:1:1: [name."a"]: missing required key "prog" (an array of program paths)',
  ],
  [
    "prog is empty",
    `[name."a"]\nprog = []\n`,
    't.conf:2:1: [name."a"] prog: expected at least one program path, found an empty array',
  ],
  [
    "empty program path",
    `[name."a"]\nprog = ["/bin/a", ""]\n`,
    't.conf:2:1: [name."a"] prog: element 2 is an empty program path',
  ],
  [
    "args element not a string",
    `[name."a"]\nprog = ["/bin/a"]\nargs = [1]\n`,
    't.conf:3:1: [name."a"] args: expected an array of strings (autostart arguments), but element 1 is an integer (1)',
  ],
  [
    "args longer than prog",
    `[name."a"]\nprog = ["/bin/a"]\nargs = ["--listen", "-x"]\n`,
    't.conf:3:1: [name."a"] args: has 2 entries but prog has only 1 (args[i] holds the autostart arguments of prog[i])',
  ],
  [
    "lb not spill or round-robin",
    `[name."a"]\nprog = ["/bin/a"]\nlb = "rr"\n`,
    't.conf:3:1: [name."a"] lb: expected "spill" or "round-robin", found a string ("rr")',
  ],
  [
    "empty name in a name stanza",
    `[name.""]\nprog = ["/bin/a"]\n`,
    't.conf:1:1: [name.""]: empty name',
  ],
  [
    "name over 255 bytes",
    `[name."${"é".repeat(128)}"]\nprog = ["/bin/a"]\n`,
    `t.conf:1:1: [name."${
      "é".repeat(128)
    }"]: name is 256 bytes long in UTF-8, at most 255 allowed`,
  ],
  [
    "name stanza without a name",
    `[name]\nprog = ["/bin/a"]\n`,
    't.conf:2:1: [name."prog"]: expected a table (a [name."<name>"] stanza), found an array',
  ],
  [
    "udp is not a table",
    `udp = 3\n`,
    "t.conf:1:1: [udp]: expected a table of stanzas like [udp.<ipcp name>], found an integer (3)",
  ],
  [
    "udp stanza is not a table",
    `[udp6]\nb6 = "::1"\n`,
    't.conf:2:1: [udp6.b6]: expected a table (a [udp6.<ipcp name>] stanza), found a string ("::1")',
  ],
  [
    "array of tables instead of a stanza",
    `[[udp4]]\nip = "1.2.3.4"\n`,
    "t.conf:1:1: [udp4]: expected a table of stanzas like [udp4.<ipcp name>], found an array",
  ],
  [
    "missing ip",
    `[udp.wifi1]\nbootstrap = "wifi-network"\n`,
    't.conf:1:1: [udp.wifi1]: missing required key "ip" (the IPv4 address to bind)',
  ],
  [
    "ip is not a string",
    `[udp.a]\nip = 127\n`,
    "t.conf:2:1: [udp.a] ip: expected a string (an IPv4 address), found an integer (127)",
  ],
  [
    "IPv6 address in a udp4 stanza",
    `[udp4.a]\nip = "::1"\n`,
    't.conf:2:1: [udp4.a] ip: invalid IPv4 address "::1": it is an IPv6 address (use a [udp6.<name>] stanza)',
  ],
  [
    "IPv4 address in a udp6 stanza",
    `[udp6.a]\nip = "127.0.0.1"\n`,
    't.conf:2:1: [udp6.a] ip: invalid IPv6 address "127.0.0.1": it is an IPv4 address (use a [udp4.<name>] stanza)',
  ],
  [
    "octet out of range",
    `[udp.a]\nip = "256.1.1.1"\n`,
    't.conf:2:1: [udp.a] ip: invalid IPv4 address "256.1.1.1"',
  ],
  [
    "prefix length",
    `[udp.a]\nip = "10.0.0.1/24"\n`,
    't.conf:2:1: [udp.a] ip: invalid IPv4 address "10.0.0.1/24": no prefix length allowed',
  ],
  [
    "bracketed IPv6",
    `[udp6.a]\nip = "[::1]"\n`,
    't.conf:2:1: [udp6.a] ip: invalid IPv6 address "[::1]": no brackets allowed',
  ],
  [
    "IPv6 zone id",
    `[udp6.a]\nip = "fe80::1%eth0"\n`,
    't.conf:2:1: [udp6.a] ip: invalid IPv6 address "fe80::1%eth0": no zone id allowed',
  ],
  [
    "port above 65535",
    `[udp.a]\nip = "1.2.3.4"\nport = 70000\n`,
    "t.conf:3:1: [udp.a] port: expected an integer from 1 to 65535, found an integer (70000)",
  ],
  [
    "port zero",
    `[udp.a]\nip = "1.2.3.4"\nport = 0\n`,
    "t.conf:3:1: [udp.a] port: expected an integer from 1 to 65535, found an integer (0)",
  ],
  [
    "port is a float",
    `[udp.a]\nip = "1.2.3.4"\nport = 3435.5\n`,
    "t.conf:3:1: [udp.a] port: expected an integer from 1 to 65535, found a float (3435.5)",
  ],
  [
    "port is a string",
    `[udp.a]\nip = "1.2.3.4"\nport = "3435"\n`,
    't.conf:3:1: [udp.a] port: expected an integer from 1 to 65535, found a string ("3435")',
  ],
  [
    "invalid dns address",
    `[udp.a]\nip = "1.2.3.4"\ndns = "1.2.3"\n`,
    't.conf:3:1: [udp.a] dns: invalid DNS server address "1.2.3": ' +
    'expected "addr", "addr:port" or "[IPv6 addr]:port" with an IPv4 address',
  ],
  [
    "dns port out of range",
    `[udp.a]\nip = "1.2.3.4"\ndns = "1.2.3.4:0"\n`,
    't.conf:3:1: [udp.a] dns: invalid DNS server address "1.2.3.4:0": the port must be an integer from 1 to 65535',
  ],
  [
    "dns of the other family",
    `[udp6.a]\nip = "::1"\ndns = "10.0.0.53"\n`,
    't.conf:3:1: [udp6.a] dns: invalid DNS server address "10.0.0.53": ' +
    "it is an IPv4 address, this layer needs an IPv6 DNS server",
  ],
  [
    "empty layer name",
    `[udp.a]\nbootstrap = ""\nip = "1.2.3.4"\n`,
    "t.conf:2:1: [udp.a] bootstrap: empty layer name",
  ],
  [
    "bootstrap is not a string",
    `[udp.a]\nbootstrap = true\nip = "1.2.3.4"\n`,
    "t.conf:2:1: [udp.a] bootstrap: expected a string (the layer name), found a boolean (true)",
  ],
  [
    "empty IPCP name",
    `[udp.""]\nip = "1.2.3.4"\n`,
    't.conf:1:1: [udp.""]: empty IPCP name',
  ],
  [
    "reg is not an array",
    `[udp.a]\nip = "1.2.3.4"\nreg = "oping-server"\n`,
    't.conf:3:1: [udp.a] reg: expected an array of strings (names), found a string ("oping-server")',
  ],
  [
    "reg entry not a string",
    `[udp.a]\nip = "1.2.3.4"\nreg = ["x", 3]\n`,
    "t.conf:3:1: [udp.a] reg: expected an array of strings (names), but element 2 is an integer (3)",
  ],
  [
    "empty name in reg",
    `[udp.a]\nip = "1.2.3.4"\nreg = ["x", ""]\n`,
    "t.conf:3:1: [udp.a] reg: element 2: empty name",
  ],
  [
    "name over 255 bytes in reg",
    `[udp.a]\nip = "1.2.3.4"\nreg = ["${"x".repeat(256)}"]\n`,
    "t.conf:3:1: [udp.a] reg: element 1: name is 256 bytes long in UTF-8, at most 255 allowed",
  ],
  [
    "duplicate name in reg",
    `[udp.a]\nip = "1.2.3.4"\nreg = ["x", "x"]\n`,
    't.conf:3:1: [udp.a] reg: element 2: duplicate name "x"',
  ],
  [
    "duplicate IPCP name across udp and udp4",
    `[udp.a]\nip = "1.2.3.4"\n\n[udp4.a]\nip = "1.2.3.5"\n`,
    't.conf:4:1: [udp4.a]: duplicate IPCP name "a" (already defined by [udp.a] at line 1)',
  ],
  [
    "duplicate IPCP name across udp4 and udp6",
    `[udp6.x]\nip = "::1"\n[udp4.x]\nip = "1.2.3.5"\n`,
    't.conf:3:1: [udp4.x]: duplicate IPCP name "x" (already defined by [udp6.x] at line 1)',
  ],
  [
    "empty hosts path",
    `[udp.a]\nip = "1.2.3.4"\nhosts = ""\n`,
    "t.conf:3:1: [udp.a] hosts: empty path",
  ],
  [
    "zone is not a string",
    `[udp.a]\nip = "1.2.3.4"\nzone = 1\n`,
    "t.conf:3:1: [udp.a] zone: expected a string (a DNS zone name), found an integer (1)",
  ],
  [
    "rcvbuf below the smallest",
    `[udp.a]\nip = "1.2.3.4"\nrcvbuf = 4095\n`,
    "t.conf:3:1: [udp.a] rcvbuf: expected a size in bytes, an integer from 4096 to 536870912, found an integer (4095)",
  ],
  [
    "sndbuf above the largest",
    `[udp.a]\nip = "1.2.3.4"\nsndbuf = 536870913\n`,
    "t.conf:3:1: [udp.a] sndbuf: expected a size in bytes, an integer from 4096 to 536870912, found an integer (536870913)",
  ],
  [
    "rcvbuf as a string with a unit",
    `[udp.a]\nip = "1.2.3.4"\n\nrcvbuf = "4M"\n`,
    't.conf:4:1: [udp.a] rcvbuf: expected a size in bytes, an integer from 4096 to 536870912, found a string ("4M")',
  ],
  [
    "unknown key in a local stanza",
    `[local.l]\nbootstrap = "local-layer"\nip = "127.0.0.1"\n`,
    't.conf:3:1: [local.l] ip: unknown key "ip" (allowed: bootstrap, hash, reg, autobind)',
  ],
  [
    "local hash that is not an algorithm",
    `[local.l]\n  hash = "SHA3-256"\n`,
    't.conf:2:3: [local.l] hash: unknown hash algorithm "SHA3-256" (expected "SHA3_224", "SHA3_256", "SHA3_384", "SHA3_512")',
  ],
  [
    "local hash MD5 (a UDP layer's hash)",
    `[local.l]\nbootstrap = "x"\nhash = "MD5"\n`,
    't.conf:3:1: [local.l] hash: a local layer "MD5" is not one of its hashes (expected "SHA3_224", "SHA3_256", "SHA3_384", "SHA3_512")',
  ],
  [
    "local hash not a string",
    `[local.l]\nhash = 256\n`,
    't.conf:2:1: [local.l] hash: expected a string ("SHA3_224", "SHA3_256", "SHA3_384", "SHA3_512"), found an integer (256)',
  ],
  [
    "local autobind not a boolean",
    `[local.l]\nautobind = "yes"\n`,
    't.conf:2:1: [local.l] autobind: expected true or false, found a string ("yes")',
  ],
  [
    "local bootstrap not a string",
    `[local.l]\nbootstrap = ["a"]\n`,
    "t.conf:2:1: [local.l] bootstrap: expected a string (the layer name), found an array",
  ],
  [
    "local reg with a duplicate",
    `[local.l]\nreg = ["oping", "oping"]\n`,
    't.conf:2:1: [local.l] reg: element 2: duplicate name "oping"',
  ],
  [
    "local stanza not a table",
    `local = 3\n`,
    "t.conf:1:1: [local]: expected a table of stanzas like [local.<ipcp name>], found an integer (3)",
  ],
  [
    "a local IPCP with the name of a UDP one",
    `[udp.a]\nip = "1.2.3.4"\n[local.a]\n`,
    't.conf:3:1: [local.a]: duplicate IPCP name "a" (already defined by [udp.a] at line 1)',
  ],
  [
    "the first problem in file order is reported",
    `[udp.b]\nip = "1.2.3.4"\nport = 0\n[name."a"]\nlb = "x"\n`,
    "t.conf:3:1: [udp.b] port: expected an integer from 1 to 65535, found an integer (0)",
  ],
];

for (const [what, text, message] of MALFORMED) {
  Deno.test(`malformed: ${what}`, () => {
    assertEquals(refused(text), message);
  });
}

Deno.test("malformed: there are at least 24 distinct cases", () => {
  assert(MALFORMED.length >= 24);
  assertEquals(new Set(MALFORMED.map((m) => m[2])).size, MALFORMED.length);
});

Deno.test("loadConfig: read errors name the file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "config_test" });
  try {
    const missing = `${dir}/missing.conf`;
    assertEquals(await loadConfig(missing), {
      ok: false,
      error: `${missing}: cannot read: no such file or directory`,
    });
    assertEquals(await loadConfig(dir), {
      ok: false,
      error: `${dir}: cannot read: a directory, not a configuration file`,
    });
    const bad = `${dir}/bad.conf`;
    await Deno.writeFile(bad, new Uint8Array([0x5b, 0xff, 0x5d]));
    assertEquals(await loadConfig(bad), {
      ok: false,
      error: `${bad}: cannot read: not valid UTF-8`,
    });
    const good = `${dir}/good.conf`;
    await Deno.writeTextFile(
      good,
      `[udp.a]\nip = "127.0.0.1"\nhosts = "h"\nport = 99999\n`,
    );
    assertEquals(await loadConfig(good), {
      ok: false,
      error:
        `${good}:4:1: [udp.a] port: expected an integer from 1 to 65535, found an integer (99999)`,
    });
    await Deno.writeTextFile(good, `[udp.a]\nip = "127.0.0.1"\nhosts = "h"\n`);
    assertEquals(udpAt(unwrap(await loadConfig(good)), 0)?.hosts, `${dir}/h`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("formatConfigSummary on the tutorial's server file", async () => {
  const text = await Deno.readTextFile(
    new URL("../../conf/tut05-server.conf", import.meta.url),
  );
  const cfg = unwrap(parseConfig(text, "conf/tut05-server.conf"));
  assertEquals(
    formatConfigSummary(cfg),
    [
      "Configuration file conf/tut05-server.conf:",
      '  name "oping-server" (lb round-robin)',
      "    program /usr/bin/oping (autostart with args: --listen)",
      '  name "oping-server2" (lb spill)',
      "    program /usr/bin/oping (autostart with args: --listen)",
      "  IPCP wifi1 (udp4): layer wifi-network, 127.0.0.1:3435",
      '    registers "oping-server", "oping-server2"',
      "Configuration OK: 2 names, 1 IPCP.",
    ].join("\n"),
  );
});

Deno.test("formatConfigSummary shows dns, hosts, zone, socket buffers, IPv6 endpoints, no layer", () => {
  const cfg = unwrap(parseConfig(
    `[name."a"]\nprog = ["/bin/a", "/bin/b"]\nargs = [""]\n` +
      `[udp6.v6]\nip = "::1"\nport = 4000\ndns = "[::1]:53"\nhosts = "/h"\nzone = "z.example"\n` +
      `rcvbuf = 8388608\nsndbuf = 65536\n`,
    "x.conf",
  ));
  assertEquals(
    formatConfigSummary(cfg),
    [
      "Configuration file x.conf:",
      '  name "a" (lb spill)',
      "    program /bin/a (autostart, no arguments)",
      "    program /bin/b",
      "  IPCP v6 (udp6): created only, not bootstrapped, [::1]:4000",
      "    dns [::1]:53",
      "    hosts file /h",
      "    zone z.example",
      "    UDP receive buffer 8388608 bytes",
      "    UDP send buffer 65536 bytes",
      "    registers no names",
      "Configuration OK: 1 name, 1 IPCP.",
    ].join("\n"),
  );
  assertEquals(
    formatConfigSummary({ file: "e.conf", names: [], ipcps: [] }),
    "Configuration file e.conf:\n  no names\n  no IPCPs\nConfiguration OK: 0 names, 0 IPCPs.",
  );
});

Deno.test("a configuration that is not a small regular file is refused before it is read", async () => {
  const dir = await Deno.makeTempDir({ prefix: "config-test-" });
  try {
    assertEquals(
      await loadConfig("/dev/zero"),
      {
        ok: false,
        error:
          "/dev/zero: cannot read: a character device, not a configuration file",
      },
    );
    assertEquals(await loadConfig(dir), {
      ok: false,
      error: `${dir}: cannot read: a directory, not a configuration file`,
    });
    const big = `${dir}/big.conf`;
    await Deno.writeTextFile(big, "#".repeat(MAX_CONFIG_BYTES + 1));
    assertEquals(await loadConfig(big), {
      ok: false,
      error: `${big}: too large (${
        MAX_CONFIG_BYTES + 1
      } bytes; the limit is 1 MiB)`,
    });
    const fine = `${dir}/fine.conf`;
    await Deno.writeTextFile(fine, "#".repeat(MAX_CONFIG_BYTES - 1) + "\n");
    assert(unwrap(await loadConfig(fine)).names.length === 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--check warns of a missing hosts file and a missing or non-executable program, at their keys", async () => {
  const dir = await Deno.makeTempDir({ prefix: "config-test-" });
  try {
    const file = `${dir}/t.conf`;
    await Deno.writeTextFile(`${dir}/plain`, "");
    await Deno.writeTextFile(
      file,
      `[name."a"]
prog=["${dir}/missing", "${dir}/plain"]
args=["--listen"]

[udp.wifi1]
bootstrap="wifi"
ip="127.0.0.1"
  hosts="nohosts"
`,
    );
    const r = unwrap(await checkConfigFile(file));
    assertEquals(udpAt(r.config, 0)?.hosts, `${dir}/nohosts`);
    assertEquals(r.warnings, [
      `${file}:2:1: warning: [name."a"] prog: ${dir}/missing does not exist (a flow for this name cannot autostart it until it is installed)`,
      `${file}:2:1: warning: [name."a"] prog: ${dir}/plain is not executable (processes of this program will not be bound to the name until it is installed)`,
      `${file}:8:3: warning: [udp.wifi1] hosts: ${dir}/nohosts does not exist (no name of layer wifi resolves until it is there)`,
    ]);
    // Once they are there, nothing to say.
    await Deno.writeTextFile(`${dir}/nohosts`, "");
    await Deno.writeTextFile(`${dir}/missing`, "");
    await Deno.chmod(`${dir}/missing`, 0o755);
    await Deno.chmod(`${dir}/plain`, 0o755);
    assertEquals(unwrap(await checkConfigFile(file)).warnings, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a TOML syntax error says what was probably meant", () => {
  const cases: [string, RegExp][] = [
    [
      '[udp.wifi1\nip="1"\n',
      /probably an unclosed table header: "\[udp.wifi1" needs a closing "\]"/,
    ],
    ['[udp.x]\nip = "abc\n', /probably a string without its closing quote/],
    ["[udp.x]\nip = 127.0.0.1\n", /probably an unquoted text value/],
    ["[udp.x]\nip\n", /probably a key without a value/],
    ['[udp.x]\nreg = ["a"\n', /probably an array without its closing "\]"/],
  ];
  for (const [text, re] of cases) {
    const r = parseConfig(text, "t.conf");
    assert(!r.ok, text);
    assert(re.test(r.error), `${JSON.stringify(text)}: ${r.error}`);
  }
});

// ---------------------------------------------------------------------------
// Unicast stanzas

Deno.test("a [unicast.<name>] stanza: the bootstrap keys of spec/unicast.md 7.2, our spellings", () => {
  const cfg = unwrap(parseConfig(
    `[name."oping"]
prog = ["/usr/bin/oping"]
args = ["--listen"]

[unicast.u1]
bootstrap = "net1"
autobind = true
reg = ["oping"]
hash = "SHA3_384"
addr_size = 4
eid_size = 8
max_ttl = 30
addr-auth = "flat"
routing = "link_state"
ls_t_recalc = 2
ls_t_update = 10
ls_t_timeo = 40
directory = "DHT"
dht_alpha = 2
dht_k = 4
dht_t_expire = 3600
dht_t_refresh = 60
dht_t_replicate = 120
congestion = "mb-ecn"
`,
    "u.conf",
  ));
  assertEquals(cfg.ipcps, [{
    type: "unicast",
    name: "u1",
    layer: "net1",
    hash: "SHA3_384",
    unicast: {
      addrSize: 4,
      eidSize: 8,
      maxTtl: 30,
      addrAuth: "flat",
      routing: "link-state",
      lsTRecalc: 2,
      lsTUpdate: 10,
      lsTTimeo: 40,
      directory: "dht",
      dhtAlpha: 2,
      dhtK: 4,
      dhtTExpire: 3600,
      dhtTRefresh: 60,
      dhtTReplicate: 120,
      congestion: "mb-ecn",
    },
    reg: ["oping"],
    autobind: true,
    conn: [],
  }]);
  const summary = formatConfigSummary(cfg);
  assertStringIncludes(
    summary,
    "IPCP u1 (unicast): layer net1, names hashed with SHA3_384",
  );
  assertStringIncludes(
    summary,
    "binds itself to its name and its layer's name",
  );
});

Deno.test("a [unicast.<name>] stanza: defaults, both routing spellings, lfa and autobind = false", () => {
  const cfg = unwrap(parseConfig(
    `[unicast.a]
bootstrap = "n"

[unicast.b]
bootstrap = "n"
routing = "link-state"
congestion = "lfa"
autobind = false

[unicast.c]
bootstrap = "n"
routing = "ecmp"
congestion = "none"
directory = "dht"

[unicast.d]
`,
    "u.conf",
  ));
  assertEquals(cfg.ipcps.map((c) => c.type === "unicast" ? c.unicast : {}), [
    {},
    { routing: "link-state", congestion: "mb-ecn" },
    { routing: "ecmp", congestion: "none", directory: "dht" },
    {},
  ]);
  const [a, b, , d] = cfg.ipcps;
  assert(
    a?.type === "unicast" && b?.type === "unicast" && d?.type === "unicast",
  );
  assertEquals(a.hash, "SHA3_256");
  assertEquals(a.autobind, false);
  assertEquals(b.autobind, false);
  // Created only.
  assertEquals(d.layer, undefined);
  assertEquals(d.enrol, undefined);
  assertStringIncludes(
    formatConfigSummary(cfg),
    "layer settings: the defaults",
  );
});

Deno.test("a [unicast.<name>] stanza that enrols: enrol, conn, autobind, reg; in the summary", () => {
  const cfg = unwrap(parseConfig(
    `[unicast.u2]
enrol = "u1"
autobind = true
reg = ["oping"]
conn = ["u1", "u3"]

[unicast.u4]
enrol = "net1"

[unicast.u5]
bootstrap = "net2"
conn = ["u6"]
`,
    "u.conf",
  ));
  assertEquals(cfg.ipcps, [
    {
      type: "unicast",
      name: "u2",
      enrol: "u1",
      hash: "SHA3_256",
      unicast: {},
      reg: ["oping"],
      autobind: true,
      conn: ["u1", "u3"],
    },
    {
      type: "unicast",
      name: "u4",
      enrol: "net1",
      hash: "SHA3_256",
      unicast: {},
      reg: [],
      autobind: false,
      conn: [],
    },
    {
      type: "unicast",
      name: "u5",
      layer: "net2",
      hash: "SHA3_256",
      unicast: {},
      reg: [],
      autobind: false,
      conn: ["u6"],
    },
  ]);
  assertEquals(formatConfigSummary(cfg).split("\n").slice(1), [
    "  no names",
    '  IPCP u2 (unicast): enrols with "u1", from which it learns the layer and its settings',
    "    binds itself to its name and its layer's name",
    '    registers "oping"',
    '    connects to "u1", "u3" (mgmt, then dt, raw)',
    '  IPCP u4 (unicast): enrols with "net1", from which it learns the layer and its settings',
    "    registers no names",
    "  IPCP u5 (unicast): layer net2, names hashed with SHA3_256",
    "    layer settings: the defaults",
    "    registers no names",
    '    connects to "u6" (mgmt, then dt, raw)',
    "Configuration OK: 0 names, 3 IPCPs.",
  ]);
});

Deno.test("stanzas that only create an IPCP: no key that needs a layer", () => {
  const cfg = unwrap(parseConfig(
    `[udp.a]\nip = "127.0.0.1"\nport = 4000\nhosts = "/h"\n[local.b]\n[unicast.c]\n`,
    "t.conf",
  ));
  assertEquals(cfg.ipcps.map((c) => c.layer), [
    undefined,
    undefined,
    undefined,
  ]);
  assertEquals(
    formatConfigSummary(cfg).split("\n").filter((l) => l.includes("IPCP")),
    [
      "  IPCP a (udp4): created only, not bootstrapped, 127.0.0.1:4000",
      "  IPCP b (local): created only, not bootstrapped, names hashed with SHA3_256",
      "  IPCP c (unicast): created only, not bootstrapped, names hashed with SHA3_256",
      "Configuration OK: 0 names, 3 IPCPs.",
    ],
  );
});
