/**
 * Reads the annotated packet captures in tests/vectors/ (c023-*.txt).
 *
 * The visible format, per datagram:
 *
 *     #1 t=+0.000 ms 127.0.0.1:3435 -> 127.0.0.1:3435 UDP payload 99 B
 *       raw: 00 00 00 00 ...
 *       -- mgmt frame (FLOW_REQ)
 *       [  0..  3] 00 00 00 00      eid (u32 BE) 0 = MGMT = 0
 *       ...
 *
 * Anything that does not fit this format throws: the captures are test
 * inputs, and a silently skipped datagram would hide a broken test.
 */

export interface Datagram {
  /** the number after `#` */
  index: number;
  /** ms since the first datagram of the capture */
  tMs: number;
  /** "ip:port" */
  src: string;
  dst: string;
  /** the UDP payload, from the `raw:` line */
  bytes: Uint8Array;
  /** the `-- ...` line, e.g. "mgmt frame (FLOW_REQ)" */
  note: string;
  /** the `[ a.. b] ...` annotation lines, trimmed */
  annotations: string[];
  /** the same lines, split up */
  fields: Field[];
}

/** One `[ a.. b] xx xx ...  description` annotation line. */
export interface Field {
  /** first and last byte offset, inclusive */
  start: number;
  end: number;
  /** the bytes shown on the line; undefined when elided ("40 bytes padding") */
  bytes: Uint8Array | undefined;
  /** the text after the bytes, e.g. "s_eid (u32 BE) requester's eid = 64" */
  desc: string;
}

const HEADER_RE =
  /^#(\d+) t=\+(\d+(?:\.\d+)?) ms (\S+) -> (\S+) UDP payload (\d+) B$/;
const RAW_RE = /^\s+raw:((?: [0-9a-f]{2})*)\s*$/;
const NOTE_RE = /^\s+-- (.*?)\s*$/;
const ANNOTATION_RE = /^\s+\[\s*(\d+)\.\.\s*(\d+)\] (.*)$/;
const HEX_BYTE_RE = /^[0-9a-f]{2}$/;

function parseField(m: RegExpExecArray): Field {
  const start = Number(m[1]);
  const end = Number(m[2]);
  const tokens = m[3]!.trim().split(/\s+/);
  const want = end - start + 1;
  let n = 0;
  while (n < want && n < tokens.length && HEX_BYTE_RE.test(tokens[n]!)) n++;
  if (n === want) {
    return {
      start,
      end,
      bytes: new Uint8Array(tokens.slice(0, n).map((b) => parseInt(b, 16))),
      desc: tokens.slice(n).join(" "),
    };
  }
  return { start, end, bytes: undefined, desc: tokens.join(" ") };
}

/** Parses the text of a capture file. */
export function parseVectors(text: string, name = "<text>"): Datagram[] {
  const out: Datagram[] = [];
  let cur: Datagram | undefined;
  let expectedLen = 0;
  let sawRaw = false;
  const finish = (): void => {
    if (cur === undefined) return;
    if (!sawRaw) {
      throw new Error(`${name}: datagram #${cur.index} has no raw: line`);
    }
    if (cur.bytes.length !== expectedLen) {
      throw new Error(
        `${name}: datagram #${cur.index}: raw has ${cur.bytes.length} bytes, header says ${expectedLen}`,
      );
    }
    out.push(cur);
    cur = undefined;
  };
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const where = `${name}:${i + 1}`;
    if (line.trim() === "") continue;
    const h = HEADER_RE.exec(line);
    if (h) {
      finish();
      cur = {
        index: Number(h[1]),
        tMs: Number(h[2]),
        src: h[3]!,
        dst: h[4]!,
        bytes: new Uint8Array(0),
        note: "",
        annotations: [],
        fields: [],
      };
      expectedLen = Number(h[5]);
      sawRaw = false;
      continue;
    }
    if (cur === undefined) {
      throw new Error(`${where}: text before the first datagram header`);
    }
    const r = RAW_RE.exec(line);
    if (r) {
      if (sawRaw) {
        throw new Error(`${where}: second raw: line in datagram #${cur.index}`);
      }
      const hex = r[1]!.trim();
      cur.bytes = new Uint8Array(
        hex === "" ? [] : hex.split(" ").map((b) => parseInt(b, 16)),
      );
      sawRaw = true;
      continue;
    }
    const n = NOTE_RE.exec(line);
    if (n) {
      if (cur.note !== "") {
        throw new Error(`${where}: second -- note in datagram #${cur.index}`);
      }
      cur.note = n[1]!;
      continue;
    }
    const a = ANNOTATION_RE.exec(line);
    if (a) {
      cur.annotations.push(line.trim());
      cur.fields.push(parseField(a));
      continue;
    }
    throw new Error(`${where}: unrecognised line: ${JSON.stringify(line)}`);
  }
  finish();
  return out;
}

/**
 * The annotated value of the field whose description starts with `label`:
 * the text after its last " = " (e.g. "64", "FLOW_REQ", "oping-server").
 * Throws when there is no such field.
 */
export function annotated(d: Datagram, label: string): string {
  const f = d.fields.find((f) => f.desc.startsWith(label));
  if (f === undefined) {
    throw new Error(`datagram #${d.index}: no field ${JSON.stringify(label)}`);
  }
  const i = f.desc.lastIndexOf(" = ");
  if (i < 0) {
    throw new Error(
      `datagram #${d.index}: field ${JSON.stringify(label)} has no value`,
    );
  }
  return f.desc.slice(i + 3);
}

/** Loads `tests/vectors/<name>` (copies of the annotated C 0.23 captures). */
export function loadVectors(name: string): Datagram[] {
  const url = new URL("./vectors/" + name, import.meta.url);
  return parseVectors(Deno.readTextFileSync(url), name);
}
