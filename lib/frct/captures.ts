/**
 * Test support: the C 0.23 captures of tests/vectors/ as FRCT datagrams.
 *
 * - `loadAnnotated(name)`: an annotated capture (the text format of
 *   tests/vectors.ts), also the sectioned kind (c023-frct-loss.txt: `#`
 *   comment lines, `# ===== Section N =====` separators, several `--` notes
 *   per datagram), one array of datagrams per section.
 * - `loadPcap(name, dropsName?)`: the pcap behind a capture (Ethernet, IPv4,
 *   UDP), every datagram, each marked dropped when it appears in the NFLOG
 *   pcap of the loss rule (matched on IP id and bytes).
 */
import { type Datagram, parseVectors } from "../../tests/vectors.ts";

const VECTORS = new URL("../../tests/vectors/", import.meta.url);

/** A datagram of an annotated capture with all its `--` notes. */
export interface Annotated {
  d: Datagram;
  /** every `-- ...` line, the first included */
  notes: string[];
  /** a note says the loss rule dropped it */
  dropped: boolean;
}

const SECTION_RE = /^# =+ Section (\d+) =+\s*$/;
const COMMENT_RE = /^#(?!\d)/;
const DGRAM_RE = /^#(\d+) t=/;
const NOTE_RE = /^\s+-- (.*?)\s*$/;

/** Sections of an annotated capture (one section when it has no separator). */
export function loadAnnotated(name: string): Annotated[][] {
  const text = Deno.readTextFileSync(new URL(name, VECTORS));
  const sections: string[][] = [[]];
  for (const line of text.split(/\r?\n/)) {
    if (SECTION_RE.test(line)) {
      sections.push([]);
      continue;
    }
    if (COMMENT_RE.test(line)) continue;
    sections[sections.length - 1]!.push(line);
  }
  const out: Annotated[][] = [];
  for (const lines of sections) {
    // parseVectors takes one note per datagram: keep the others aside
    const kept: string[] = [];
    const notes = new Map<number, string[]>();
    let cur = -1;
    for (const line of lines) {
      const h = DGRAM_RE.exec(line);
      if (h) {
        cur = Number(h[1]);
        notes.set(cur, []);
        kept.push(line);
        continue;
      }
      const n = NOTE_RE.exec(line);
      if (n && cur >= 0) {
        const list = notes.get(cur)!;
        list.push(n[1]!);
        if (list.length > 1) continue;
      }
      kept.push(line);
    }
    if (kept.every((l) => l.trim() === "")) continue;
    const ds = parseVectors(kept.join("\n"), name);
    out.push(ds.map((d) => {
      const ns = notes.get(d.index) ?? [];
      return { d, notes: ns, dropped: ns.some((n) => n.startsWith("DROPPED")) };
    }));
  }
  return out;
}

/** One UDP datagram of a pcap. */
export interface Frame {
  /** frame number, from 1 */
  n: number;
  /** ms since the first frame */
  tMs: number;
  src: string;
  dst: string;
  ipId: number;
  /** UDP payload (eid + FRCT packet) */
  payload: Uint8Array;
  /** the loss rule dropped it before its receiver */
  dropped: boolean;
}

interface RawFrame {
  t: number;
  ip: Uint8Array;
}

function readRecords(name: string): { linktype: number; recs: RawFrame[] } {
  const b = Deno.readFileSync(new URL("pcap/" + name, VECTORS));
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (v.getUint32(0, true) !== 0xa1b2c3d4) {
    throw new Error(`${name}: not a little-endian microsecond pcap`);
  }
  const linktype = v.getUint32(20, true);
  const recs: RawFrame[] = [];
  let off = 24;
  while (off + 16 <= b.length) {
    const sec = v.getUint32(off, true);
    const usec = v.getUint32(off + 4, true);
    const incl = v.getUint32(off + 8, true);
    const data = b.subarray(off + 16, off + 16 + incl);
    off += 16 + incl;
    let ip: Uint8Array | undefined;
    if (linktype === 1) {
      ip = data.subarray(14);
    } else if (linktype === 239) {
      // NFLOG: 4-byte header, then TLVs (u16 length, u16 type, host order)
      let p = 4;
      while (p + 4 <= data.length) {
        const len = data[p]! | (data[p + 1]! << 8);
        const type = data[p + 2]! | (data[p + 3]! << 8);
        if (len < 4) break;
        if (type === 9) ip = data.subarray(p + 4, p + len);
        p += (len + 3) & ~3;
      }
    } else {
      throw new Error(`${name}: link type ${linktype} not supported`);
    }
    if (ip === undefined) throw new Error(`${name}: frame without payload`);
    recs.push({ t: sec * 1000 + usec / 1000, ip });
  }
  return { linktype, recs };
}

function ipAddr(b: Uint8Array, off: number): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

function hex(b: Uint8Array): string {
  let s = "";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return s;
}

/** The UDP datagrams of a pcap, marked with the drops of `dropsName`. */
export function loadPcap(name: string, dropsName?: string): Frame[] {
  const drops = new Set<string>();
  if (dropsName !== undefined) {
    for (const r of readRecords(dropsName).recs) {
      const id = (r.ip[4]! << 8) | r.ip[5]!;
      drops.add(`${id}:${hex(r.ip)}`);
    }
  }
  const { recs } = readRecords(name);
  const t0 = recs[0]?.t ?? 0;
  const out: Frame[] = [];
  recs.forEach((r, i) => {
    const ip = r.ip;
    if ((ip[0]! >> 4) !== 4 || ip[9] !== 17) return;
    const ihl = (ip[0]! & 15) * 4;
    const totalLen = (ip[2]! << 8) | ip[3]!;
    const ipPkt = ip.subarray(0, totalLen);
    const id = (ip[4]! << 8) | ip[5]!;
    out.push({
      n: i + 1,
      tMs: r.t - t0,
      src: ipAddr(ip, 12),
      dst: ipAddr(ip, 16),
      ipId: id,
      payload: ipPkt.subarray(ihl + 8),
      dropped: drops.has(`${id}:${hex(ipPkt)}`),
    });
  });
  if (dropsName !== undefined) {
    const n = out.filter((f) => f.dropped).length;
    if (n !== drops.size) {
      throw new Error(`${name}: matched ${n} of ${drops.size} drops`);
    }
  }
  return out;
}
