import {
  assert,
  assertEquals,
  assertThrows,
  unwrap,
} from "../../tests/assert.ts";
import { pbDecode, pbEncode, type PbType, pbType, PROTO_FILES } from "./pb.ts";

type Label = "required" | "optional" | "repeated";

/**
 * The field tables of spec/unicast.md 2.2, 2.3, 2.4 and 2.9: number, name,
 * type, label. The spec gives no labels for the nested configuration
 * messages of 2.4 nor for dht_msg's sub-messages and their fields: those
 * below are required unless the spec calls them optional, repeated or
 * "present in" some codes only (captured messages carry every one of them).
 */
const SPEC: Record<string, [number, string, string, Label][]> = {
  cep_msg: [
    [1, "comp_name", "string", "required"],
    [2, "protocol", "string", "required"],
    [3, "pref_version", "int32", "required"],
    [4, "supp_version", "int32", "repeated"],
    [5, "pref_syntax", "int32", "required"],
    [6, "supp_syntax", "int32", "repeated"],
    [7, "syntax_spec", "fixed_conc_syntax_msg", "optional"],
    [8, "address", "uint64", "required"],
  ],
  fixed_conc_syntax_msg: [
    [1, "fids", "uint32", "repeated"],
    [2, "lens", "uint32", "repeated"],
  ],
  enroll_req_msg: [[1, "id", "bytes", "required"]],
  enroll_resp_msg: [
    [1, "id", "bytes", "required"],
    [2, "t_sec", "int64", "required"],
    [3, "t_nsec", "int32", "required"],
    [4, "response", "int32", "required"],
    [5, "conf", "ipcp_config_msg", "optional"],
  ],
  enroll_ack_msg: [
    [1, "id", "bytes", "required"],
    [2, "result", "int32", "required"],
  ],
  ipcp_config_msg: [
    [1, "layer_info", "layer_info_msg", "required"],
    [2, "ipcp_type", "uint32", "required"],
    [3, "unicast", "uni_config_msg", "optional"],
  ],
  layer_info_msg: [
    [1, "name", "string", "required"],
    [2, "dir_hash_algo", "uint32", "required"],
  ],
  uni_config_msg: [
    [1, "dt", "dt_config_msg", "required"],
    [2, "dir", "dir_config_msg", "required"],
    [3, "addr_auth_type", "uint32", "required"],
    [4, "cong_avoid", "uint32", "required"],
  ],
  dt_config_msg: [
    [1, "addr_size", "uint32", "required"],
    [2, "eid_size", "uint32", "required"],
    [3, "max_ttl", "uint32", "required"],
    [4, "routing", "routing_config_msg", "required"],
  ],
  routing_config_msg: [
    [1, "pol", "uint32", "required"],
    [2, "ls", "ls_config_msg", "optional"],
  ],
  ls_config_msg: [
    [1, "pol", "uint32", "required"],
    [2, "t_recalc", "uint32", "required"],
    [3, "t_update", "uint32", "required"],
    [4, "t_timeo", "uint32", "required"],
  ],
  dir_config_msg: [
    [1, "pol", "uint32", "required"],
    [2, "dht", "dir_dht_config_msg", "optional"],
  ],
  dir_dht_config_msg: [
    [1, "alpha", "uint32", "required"],
    [2, "k", "uint32", "required"],
    [3, "t_expire", "uint32", "required"],
    [4, "t_refresh", "uint32", "required"],
    [5, "t_replicate", "uint32", "required"],
    [6, "peer", "uint64", "required"],
  ],
  dht_msg: [
    [1, "code", "uint32", "required"],
    [2, "src", "dht_contact_msg", "required"],
    [3, "store", "dht_store_msg", "optional"],
    [4, "find", "dht_find_req_msg", "optional"],
    [5, "node", "dht_find_node_rsp_msg", "optional"],
    [6, "val", "dht_find_value_rsp_msg", "optional"],
  ],
  dht_contact_msg: [
    [1, "id", "bytes", "required"],
    [2, "addr", "uint64", "required"],
  ],
  dht_store_msg: [
    [1, "key", "bytes", "required"],
    [2, "val", "bytes", "required"],
    [3, "exp", "uint32", "required"],
  ],
  dht_find_req_msg: [
    [1, "cookie", "uint64", "required"],
    [2, "key", "bytes", "required"],
  ],
  dht_find_node_rsp_msg: [
    [1, "cookie", "uint64", "required"],
    [2, "key", "bytes", "required"],
    [3, "contacts", "dht_contact_msg", "repeated"],
  ],
  dht_find_value_rsp_msg: [[1, "values", "bytes", "repeated"]],
};

function label(t: PbType, name: string): Label {
  const f = t.fields[name]!;
  return f.repeated ? "repeated" : f.required ? "required" : "optional";
}

Deno.test("the .proto files are the spec's field tables: numbers, names, types, labels", () => {
  for (const [msg, fields] of Object.entries(SPEC)) {
    const t = pbType(msg);
    const got = t.fieldsArray.map((
      f,
    ) => [f.id, f.name, f.type, label(t, f.name)]);
    assertEquals(got, fields, msg);
    // proto2: repeated scalars are not packed
    for (const f of t.fieldsArray) assert(!f.packed, `${msg}.${f.name} packed`);
  }
  // and nothing more
  const all: string[] = [];
  const walk = (ns: { nestedArray: unknown[] }): void => {
    for (const n of ns.nestedArray) {
      if (n !== null && typeof n === "object" && "fieldsArray" in n) {
        all.push((n as PbType).name);
      }
      if (n !== null && typeof n === "object" && "nestedArray" in n) {
        walk(n as { nestedArray: unknown[] });
      }
    }
  };
  walk(pbType("cep_msg").root);
  assertEquals(all.sort(), Object.keys(SPEC).sort());
  for (const [name, text] of Object.entries(PROTO_FILES)) {
    assert(text.includes('syntax = "proto2";'), name);
  }
});

Deno.test("pbEncode: zeros of required fields are written, absent optional fields are not", () => {
  const t = pbType("routing_config_msg");
  assertEquals([...pbEncode(t, { pol: 0 })], [0x08, 0x00]);
  assertEquals(
    [...pbEncode(t, {
      pol: 0,
      ls: { pol: 0, t_recalc: 0, t_update: 0, t_timeo: 0 },
    })],
    [0x08, 0x00, 0x12, 0x08, 0x08, 0x00, 0x10, 0x00, 0x18, 0x00, 0x20, 0x00],
  );
  assertThrows(() => pbEncode(t, {}), /required field pol/);
  assertThrows(() => pbEncode(t, { pol: 0, nope: 1 }), /no field nope/);
  assertThrows(
    () => pbEncode(t, { pol: 0, ls: { pol: 0, t_recalc: 0, t_update: 0 } }),
    /t_timeo/,
  );
  // 64-bit values as bigints, exactly
  const c = pbType("dht_contact_msg");
  const max = (1n << 64n) - 1n;
  const b = pbEncode(c, { id: new Uint8Array(0), addr: max });
  assertEquals(unwrap(pbDecode(c, b, (m) => m.long("addr"))), max);
});

Deno.test("pbDecode: library errors and rejected fields are error values; copies, not views", () => {
  const c = pbType("dht_contact_msg");
  const r = pbDecode(c, new Uint8Array([0x0a, 0x05, 1]), (m) => m.bytes("id"));
  assert(!r.ok && r.error.startsWith("dht_contact_msg:"), JSON.stringify(r));
  const missing = pbDecode(
    c,
    new Uint8Array([0x0a, 0x00]),
    (m) => m.bytes("id"),
  );
  assert(!missing.ok && missing.error.includes("addr"));
  const input = new Uint8Array([0x0a, 0x01, 0x07, 0x10, 0x01]);
  const id = unwrap(pbDecode(c, input, (m) => m.bytes("id")));
  input[2] = 0;
  assertEquals([...id], [7]);
  const rejected = pbDecode(
    c,
    new Uint8Array([0x0a, 0x00, 0x10, 0x01]),
    (m) => {
      m.fail("no thanks");
    },
  );
  assert(!rejected.ok && rejected.error === "dht_contact_msg: no thanks");
  // a wrong type asked for is a rejection too
  const wrong = pbDecode(
    c,
    new Uint8Array([0x0a, 0x00, 0x10, 0x01]),
    (m) => m.str("id"),
  );
  assert(!wrong.ok && wrong.error.includes("not a string"));
  // a bug in the mapping is not hidden
  assertThrows(() =>
    pbDecode(c, new Uint8Array([0x0a, 0x00, 0x10, 0x01]), () => {
      throw new TypeError("bug");
    })
  );
});
