import {
  assert,
  assertEquals,
  assertThrows,
  unwrap,
} from "../../tests/assert.ts";
import {
  hexOf,
  loadCapture,
  parseCapture,
  pcapSdus,
  type SduKind,
} from "./captures.ts";
import { decodeCep } from "./cep.ts";
import { decodeDht } from "./dir.ts";
import { decodeDt, EID_DHT, EID_FA, EID_FLOW_MIN } from "./dt.ts";
import {
  decodeEnrollAck,
  decodeEnrollReq,
  decodeEnrollResp,
} from "./enroll.ts";
import { decodeFa } from "./fa.ts";
import { decodeLsa } from "./routing.ts";

const FILES = ["c023-unicast-enroll.txt", "c023-unicast-oping.txt"];
const PCAPS = ["c023-unicast-2node.pcap", "c023-unicast-3node.pcap"];

Deno.test("the annotated captures are the pcaps' datagrams, and each annotation shows its bytes", () => {
  const counts: number[] = [];
  for (const name of FILES) {
    const ds = loadCapture(name);
    counts.push(ds.length);
    const pcaps = new Map(PCAPS.map((p) => [p, pcapSdus(p)]));
    for (const d of ds) {
      const fr = pcaps.get(d.pcap)![d.index - 1]!;
      const where = `${name} ${d.pcap} #${d.index}`;
      assertEquals(hexOf(d.bytes), hexOf(fr.payload), where);
      assertEquals([d.src, d.dst], [`${fr.src}:3435`, `${fr.dst}:3435`], where);
      assert(Math.abs(d.tMs - fr.tMs) < 0.001, where);
      for (const f of d.fields) {
        if (f.bytes === undefined) continue;
        assertEquals(
          hexOf(d.bytes.subarray(f.start, f.end + 1)),
          hexOf(f.bytes),
        );
      }
    }
  }
  assertEquals(counts, [14, 51]);
});

Deno.test("parseCapture: sections, notes, closing lines; anything else throws", () => {
  const text = [
    "# a comment",
    "# ==== Part 1 (pcap/c023-unicast-2node.pcap) ====",
    "#5 t=+1.5 ms 127.0.0.2:3435 -> 127.0.0.1:3435 UDP payload 6 B",
    "  raw: 00 00 00 40 0a 00",
    "  -- first note",
    "  [  0..  3] 00 00 00 40     eid (u32 BE) = 64",
    "  -- second note",
    '  [  4..  5] 0a 00           f1/wt2(LEN) x.y (len 0) = ""',
    "                  } end of x.y",
  ].join("\n");
  const [d] = parseCapture(text);
  assertEquals(d!.pcap, "c023-unicast-2node.pcap");
  assertEquals(d!.notes, ["first note", "second note"]);
  assertEquals(d!.fields.map((f) => f.note), [0, 1]);
  assertThrows(() => parseCapture(text + "\n  what is this"), /unrecognised/);
  assertThrows(() => parseCapture(text.replace("6 B", "7 B")), /raw has 6/);
  assertThrows(() => parseCapture(text.split("\n").slice(2).join("\n")));
});

Deno.test("every datagram of both pcaps is accounted for by a codec of this folder", () => {
  for (const pcap of PCAPS) {
    const seen = new Map<string, number>();
    const count = (k: string) => seen.set(k, (seen.get(k) ?? 0) + 1);
    const all = pcapSdus(pcap);
    for (const s of all) {
      const kinds: Record<SduKind, () => string> = {
        // the UDP layer's own messages and the N-1 flows' keepalives
        "udp-mgmt": () => "udp",
        keepalive: () => "keepalive",
        cep: () => (unwrap(decodeCep(s.sdu)), "cep"),
        msg: () => {
          if (s.comp === "enrollment") {
            if (!s.fromAllocator) {
              return (unwrap(decodeEnrollResp(s.sdu)), "enroll");
            }
            if (decodeEnrollReq(s.sdu).ok) return "enroll";
            return (unwrap(decodeEnrollAck(s.sdu)), "enroll");
          }
          if (s.comp === "management") return (unwrap(decodeLsa(s.sdu)), "lsa");
          assertEquals(s.comp, "dt");
          const dt = unwrap(decodeDt(s.sdu));
          if (dt.eid === EID_FA) return (unwrap(decodeFa(dt.payload)), "fa");
          if (dt.eid === EID_DHT) return (unwrap(decodeDht(dt.payload)), "dht");
          assert(dt.eid >= EID_FLOW_MIN);
          return "data";
        },
      };
      count(kinds[s.kind]());
    }
    const total = [...seen.values()].reduce((a, b) => a + b, 0);
    assertEquals(total, all.length);
    const want = pcap.includes("2node")
      ? {
        udp: 6,
        cep: 6,
        enroll: 3,
        lsa: 12,
        fa: 2,
        dht: 5,
        data: 6,
        keepalive: 4,
      }
      : {
        udp: 12,
        cep: 12,
        enroll: 6,
        lsa: 46,
        fa: 4,
        dht: 14,
        data: 12,
        keepalive: 8,
      };
    assertEquals(Object.fromEntries(seen), want, pcap);
  }
});
