/**
 * Test support: the C 0.23 captures of a unicast layer over UDP
 * (tests/vectors/c023-unicast-*.txt and the pcaps behind them).
 *
 * - `loadCapture(name)`, `parseCapture(text)`: an annotated capture. Its
 *   format is that of tests/vectors.ts plus what these files add:
 *   `# ==== <title> ====` section separators naming the pcap of the section
 *   (datagram numbers restart per pcap), other `#` comment lines, several
 *   `--` notes per datagram (each annotation line belongs to the note above
 *   it), and `} end of ...` lines closing nested protobuf messages.
 *   Anything else throws: a skipped line could hide a broken test.
 * - `pcapSdus(name)`: every datagram of a pcap, classified the way a
 *   unicast IPCP sees its N-1 flows: the UDP layer's FLOW_REQ/FLOW_REPLY
 *   open a flow (eids of both ends), the first SDU each way on it is the
 *   CEP naming the component, empty SDUs are the flow's keepalives, the rest
 *   are that component's messages.
 * - `pbAnnotations(...)`: the protobuf annotation lines of a message
 *   (`fN/wtW(...) path ... = value`), ready to be compared with a decoded
 *   message and with the schema.
 *
 * The captures and spec/unicast.md agree on every byte these codecs read
 * or write. One count in a capture's own header is off: the two-node part
 * of c023-unicast-oping.txt announces 14 LSAs (12 refreshes) while its pcap
 * holds 12 (two at connect, then seqnos 1..5 each way, as its list of
 * datagrams says); the tests follow the pcap.
 */
import { assert, assertEquals } from "../../tests/assert.ts";
import { loadPcap } from "../../lib/frct/captures.ts";
import { decodeMgmt, FLOW_REPLY } from "../../lib/wire/udp_wire.ts";
import { type CepComponent, cepComponent, decodeCep } from "./cep.ts";
import { type PbType, pbType } from "./pb.ts";

const VECTORS = new URL("../../tests/vectors/", import.meta.url);

/** One `[ a.. b] xx xx ...  description` line. */
export interface CapField {
  /** first and last byte offset in the UDP payload, inclusive */
  start: number;
  end: number;
  /** the bytes shown; undefined when elided ("40 bytes padding") */
  bytes: Uint8Array | undefined;
  /** the text after the bytes */
  desc: string;
  /** the `--` note it follows (an index into `notes`) */
  note: number;
}

export interface CapDatagram {
  /** the section's title, e.g. "Capture 1 (pcap/c023-unicast-2node.pcap)" */
  section: string;
  /** the pcap file of the section */
  pcap: string;
  /** the datagram's number in its pcap */
  index: number;
  /** ms since the pcap's first datagram */
  tMs: number;
  src: string;
  dst: string;
  /** the UDP payload */
  bytes: Uint8Array;
  notes: string[];
  fields: CapField[];
}

const SECTION_RE = /^# =+ (.*?) =+\s*$/;
const PCAP_RE = /pcap\/(c023-[\w-]+\.pcap)/;
const COMMENT_RE = /^#(?!\d)/;
const HEADER_RE =
  /^#(\d+) t=\+(\d+(?:\.\d+)?) ms (\S+) -> (\S+) UDP payload (\d+) B$/;
const RAW_RE = /^\s+raw:((?: [0-9a-f]{2})*)\s*$/;
const NOTE_RE = /^\s+-- (.*?)\s*$/;
const FIELD_RE = /^\s+\[\s*(\d+)\.\.\s*(\d+)\] (.*)$/;
const CLOSE_RE = /^\s+\} end of \S+\s*$/;
const HEX_RE = /^[0-9a-f]{2}$/;

function parseField(m: RegExpExecArray, note: number): CapField {
  const start = Number(m[1]);
  const end = Number(m[2]);
  const tokens = m[3]!.trim().split(/\s+/);
  const want = end - start + 1;
  let n = 0;
  while (n < want && n < tokens.length && HEX_RE.test(tokens[n]!)) n++;
  if (n === want) {
    return {
      start,
      end,
      bytes: new Uint8Array(tokens.slice(0, n).map((b) => parseInt(b, 16))),
      desc: tokens.slice(n).join(" "),
      note,
    };
  }
  return { start, end, bytes: undefined, desc: tokens.join(" "), note };
}

/** Parses an annotated capture of tests/vectors/. */
export function loadCapture(name: string): CapDatagram[] {
  return parseCapture(Deno.readTextFileSync(new URL(name, VECTORS)), name);
}

/** Parses the text of an annotated capture (see the module comment). */
export function parseCapture(text: string, name = "<text>"): CapDatagram[] {
  const out: CapDatagram[] = [];
  let section = "";
  let pcap = "";
  let cur: CapDatagram | undefined;
  let size = 0;
  let sawRaw = false;
  const finish = (): void => {
    if (cur === undefined) return;
    if (!sawRaw || cur.bytes.length !== size) {
      throw new Error(
        `${name}: datagram #${cur.index}: raw has ${cur.bytes.length} bytes, header says ${size}`,
      );
    }
    out.push(cur);
    cur = undefined;
  };
  text.split(/\r?\n/).forEach((line, i) => {
    const where = `${name}:${i + 1}`;
    const s = SECTION_RE.exec(line);
    if (s) {
      finish();
      section = s[1]!;
      const p = PCAP_RE.exec(section);
      if (p === null) throw new Error(`${where}: section names no pcap`);
      pcap = p[1]!;
      return;
    }
    if (line.trim() === "" || COMMENT_RE.test(line)) return;
    const h = HEADER_RE.exec(line);
    if (h) {
      finish();
      if (pcap === "") throw new Error(`${where}: datagram before a section`);
      cur = {
        section,
        pcap,
        index: Number(h[1]),
        tMs: Number(h[2]),
        src: h[3]!,
        dst: h[4]!,
        bytes: new Uint8Array(0),
        notes: [],
        fields: [],
      };
      size = Number(h[5]);
      sawRaw = false;
      return;
    }
    if (cur === undefined) throw new Error(`${where}: outside a datagram`);
    const r = RAW_RE.exec(line);
    if (r) {
      if (sawRaw) throw new Error(`${where}: a second raw: line`);
      const hex = r[1]!.trim();
      cur.bytes = new Uint8Array(
        hex === "" ? [] : hex.split(" ").map((b) => parseInt(b, 16)),
      );
      sawRaw = true;
      return;
    }
    const n = NOTE_RE.exec(line);
    if (n) {
      cur.notes.push(n[1]!);
      return;
    }
    const f = FIELD_RE.exec(line);
    if (f) {
      cur.fields.push(parseField(f, cur.notes.length - 1));
      return;
    }
    if (CLOSE_RE.test(line)) return;
    throw new Error(`${where}: unrecognised line: ${JSON.stringify(line)}`);
  });
  finish();
  return out;
}

/** The datagrams one of whose notes starts with `prefix`. */
export function withNote(ds: CapDatagram[], prefix: string): CapDatagram[] {
  return ds.filter((d) => d.notes.some((n) => n.startsWith(prefix)));
}

/** The fields under the note that starts with `prefix`. */
export function fieldsUnder(d: CapDatagram, prefix: string): CapField[] {
  const i = d.notes.findIndex((n) => n.startsWith(prefix));
  if (i < 0) throw new Error(`#${d.index}: no note ${JSON.stringify(prefix)}`);
  return d.fields.filter((f) => f.note === i);
}

/** The text after the first " = " of a field's description. */
export function valueText(f: CapField): string {
  const i = f.desc.indexOf(" = ");
  if (i < 0) throw new Error(`field ${JSON.stringify(f.desc)} has no value`);
  return f.desc.slice(i + 3);
}

/** The integer a value text starts with (decimal or 0x hex). */
export function valueInt(text: string): bigint {
  const m = /^(0x[0-9a-f]+|-?\d+)\b/.exec(text);
  if (m === null) throw new Error(`no integer in ${JSON.stringify(text)}`);
  return BigInt(m[1]!);
}

/** The field whose description starts with `label`; throws if none. */
export function field(fs: CapField[], label: string): CapField {
  const f = fs.find((f) => f.desc.startsWith(label));
  if (f === undefined) throw new Error(`no field ${JSON.stringify(label)}`);
  return f;
}

/** The integer value of the field labelled `label`. */
export function intField(fs: CapField[], label: string): bigint {
  return valueInt(valueText(field(fs, label)));
}

export function hexOf(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

// ------------------------------------------------------------ protobuf

/** One `fN/wtW(TYPE) path ...` annotation. */
export interface PbAnnotation {
  fieldNo: number;
  wireType: number;
  /** the dotted path below the message's root name, e.g. ["node", "key"] */
  path: string[];
  /** a nested message's opening line (ends in "{") */
  opens: boolean;
  /** the text after " = ", undefined on an opening line */
  value: string | undefined;
  f: CapField;
}

const PB_RE = /^f(\d+)\/wt(\d)\(\w+\) ([a-z_]+(?:\.[a-z_]+)*)(.*)$/;

/**
 * The protobuf annotations among `fs` whose path starts with `root` (e.g.
 * "dht", "enroll_resp", "cep"); each path is given without the root.
 */
export function pbAnnotations(fs: CapField[], root: string): PbAnnotation[] {
  const out: PbAnnotation[] = [];
  for (const f of fs) {
    const m = PB_RE.exec(f.desc);
    if (m === null) continue;
    const parts = m[3]!.split(".");
    if (parts[0] !== root) continue;
    const rest = m[4]!;
    const opens = rest.trimEnd().endsWith("{");
    const eq = rest.indexOf(" = ");
    out.push({
      fieldNo: Number(m[1]),
      wireType: Number(m[2]),
      path: parts.slice(1),
      opens,
      value: opens || eq < 0 ? undefined : rest.slice(eq + 3),
      f,
    });
  }
  return out;
}

function camel(snake: string): string {
  return snake.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
}

const VARINT_TYPES = new Set(["int32", "uint32", "int64", "uint64", "bool"]);

function compareValue(got: unknown, text: string, where: string): void {
  if (typeof got === "string") {
    const m = /^"([^"]*)"/.exec(text);
    assert(m !== null, `${where}: ${JSON.stringify(text)} is no string`);
    assertEquals(got, m[1]!, where);
  } else if (typeof got === "number" || typeof got === "bigint") {
    assertEquals(BigInt(got), valueInt(text), where);
  } else if (got instanceof Uint8Array) {
    const addr = /^8 B: u64 BE address (0x[0-9a-f]+)/.exec(text);
    if (addr !== null) {
      const want = new Uint8Array(8);
      new DataView(want.buffer).setBigUint64(0, BigInt(addr[1]!));
      assertEquals(hexOf(got), hexOf(want), where);
      return;
    }
    const m = /^(\d+) B: ([0-9a-f]*)/.exec(text);
    assert(m !== null, `${where}: ${JSON.stringify(text)} is no byte string`);
    assertEquals(got.length, Number(m[1]), `${where}: length`);
    assertEquals(hexOf(got), m[2]!, where);
  } else {
    throw new Error(`${where}: decoded ${String(got)} for ${text}`);
  }
}

/**
 * Checks the protobuf annotations `anns` of a message of type `typeName`
 * against the schema of proto/ (field number, wire type) and against the
 * decoded `value` (fields named in camelCase; a repeated field's elements
 * in the order annotated). Returns the number of values compared.
 */
export function checkPbAnnotations(
  value: unknown,
  anns: PbAnnotation[],
  typeName: string,
): number {
  const seen = new Map<string, number>();
  let compared = 0;
  for (const a of anns) {
    const where = `${typeName}.${a.path.join(".")} [${a.f.start}..${a.f.end}]`;
    let type: PbType = pbType(typeName);
    let node: unknown = value;
    a.path.forEach((seg, i) => {
      const def = type.fields[seg];
      assert(def !== undefined, `${where}: the schema has no field ${seg}`);
      const last = i === a.path.length - 1;
      if (last) {
        assertEquals(def.id, a.fieldNo, `${where}: field number`);
        const wt = def.resolvedType !== null || !VARINT_TYPES.has(def.type)
          ? 2
          : 0;
        assertEquals(wt, a.wireType, `${where}: wire type`);
      }
      assert(
        typeof node === "object" && node !== null,
        `${where}: no message at ${seg}`,
      );
      let v = (node as Record<string, unknown>)[camel(seg)];
      if (def.repeated) {
        const p = a.path.slice(0, i + 1).join(".");
        if (last) seen.set(p, (seen.get(p) ?? -1) + 1);
        assert(Array.isArray(v), `${where}: ${seg} is not a list`);
        v = v[seen.get(p) ?? 0];
      }
      node = v;
      if (!last) type = def.resolvedType as PbType;
    });
    if (a.opens) {
      assert(node !== undefined, `${where}: message missing`);
    } else {
      assert(a.value !== undefined, `${where}: no value annotated`);
      compareValue(node, a.value, where);
      compared++;
    }
  }
  return compared;
}

// ---------------------------------------------------------------- pcap

export type SduKind =
  /** the UDP layer's FLOW_REQ or FLOW_REPLY */
  | "udp-mgmt"
  /** an empty SDU: the N-1 flow's keepalive */
  | "keepalive"
  /** the first SDU of a direction */
  | "cep"
  /** a component's message */
  | "msg";

export interface PcapSdu {
  /** the datagram's number in the pcap */
  n: number;
  tMs: number;
  src: string;
  dst: string;
  kind: SduKind;
  /** the N-1 flow's component (undefined for udp-mgmt) */
  comp: CepComponent | undefined;
  /** sent by the end that allocated the flow */
  fromAllocator: boolean;
  /** the N-1 SDU (the UDP payload after the 4-byte eid) */
  sdu: Uint8Array;
  /** the whole UDP payload */
  payload: Uint8Array;
}

interface N1Flow {
  allocator: string;
  acceptor: string;
  comp: CepComponent | undefined;
  cepFromAllocator: boolean;
  cepFromAcceptor: boolean;
}

/** Every datagram of a unicast pcap, classified (see the module comment). */
export function pcapSdus(name: string): PcapSdu[] {
  const flows = new Map<string, N1Flow>();
  const out: PcapSdu[] = [];
  for (const fr of loadPcap(name)) {
    const p = fr.payload;
    const base = { n: fr.n, tMs: fr.tMs, src: fr.src, dst: fr.dst, payload: p };
    const eid = new DataView(p.buffer, p.byteOffset, p.byteLength)
      .getUint32(0);
    if (eid === 0) {
      const m = decodeMgmt(p);
      if (!m.ok) throw new Error(`${name} #${fr.n}: ${m.error}`);
      if (m.value.code === FLOW_REPLY) {
        const f: N1Flow = {
          allocator: fr.dst,
          acceptor: fr.src,
          comp: undefined,
          cepFromAllocator: false,
          cepFromAcceptor: false,
        };
        flows.set(`${fr.dst}:${m.value.reply.sEid}`, f);
        flows.set(`${fr.src}:${m.value.reply.dEid}`, f);
      }
      out.push({
        ...base,
        kind: "udp-mgmt",
        comp: undefined,
        fromAllocator: m.value.code !== FLOW_REPLY,
        sdu: p.subarray(4),
      });
      continue;
    }
    const f = flows.get(`${fr.dst}:${eid}`);
    if (f === undefined) {
      throw new Error(`${name} #${fr.n}: no flow for eid ${eid} at ${fr.dst}`);
    }
    const fromAllocator = fr.dst === f.acceptor;
    const sdu = p.subarray(4);
    let kind: SduKind = "msg";
    if (sdu.length === 0) {
      kind = "keepalive";
    } else if (fromAllocator ? !f.cepFromAllocator : !f.cepFromAcceptor) {
      kind = "cep";
      if (fromAllocator) {
        f.cepFromAllocator = true;
        const c = decodeCep(sdu);
        if (!c.ok) throw new Error(`${name} #${fr.n}: ${c.error}`);
        f.comp = cepComponent(c.value);
      } else {
        f.cepFromAcceptor = true;
      }
    }
    out.push({ ...base, kind, comp: f.comp, fromAllocator, sdu });
  }
  return out;
}
