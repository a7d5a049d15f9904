/**
 * Cost per packet of the FRCT state machine: `deno bench lib/frct/`.
 * Each iteration moves PACKETS packets of 1400 bytes; divide by PACKETS.
 */
import { FlowEnd, type FrctQos } from "./frct.ts";
import { type App, Sim } from "./sim.ts";

const PACKETS = 10_000;
const PAYLOAD = new Uint8Array(1400);

function direct(qos: FrctQos): void {
  const a = new FlowEnd({ qos, mplMs: 100, now: 0, random: () => 1 });
  const b = new FlowEnd({ qos, mplMs: 100, now: 0, random: () => 2 });
  let sent = 0;
  let got = 0;
  let now = 0;
  while (got < PACKETS) {
    // 64 at a time: the partially reliable writer never blocks
    for (let k = 0; k < 64 && sent < PACKETS; k++) {
      if (a.write(PAYLOAD, now) !== "ok") break;
      sent++;
    }
    for (const p of a.takeOutput()) b.receive(p, now);
    while (b.read(now) !== null) got++;
    for (const p of b.takeOutput()) a.receive(p, now);
    now += 0.01;
  }
}

function throughSim(qos: FrctQos): void {
  let w = 0;
  let r = 0;
  const writer: App = {
    poll(f, now) {
      while (w < PACKETS && f.write(PAYLOAD, now) === "ok") w++;
      return null;
    },
  };
  const reader: App = {
    poll(f, now) {
      while (f.read(now) !== null) r++;
      return null;
    },
  };
  const sim = new Sim({
    seed: 1,
    qos,
    ab: { delayMs: 0.5 },
    ba: { delayMs: 0.5 },
  });
  sim.run({ a: writer, b: reader }, {
    untilMs: 1e9,
    done: () => r === PACKETS,
  });
}

const RELIABLE: FrctQos = { loss: 0, ber: 1, inOrder: 1, timeout: 120_000 };

Deno.bench(`reliable, no CRC, both ends (${PACKETS} packets)`, () => {
  direct(RELIABLE);
});
Deno.bench(`reliable, CRC, both ends (${PACKETS} packets)`, () => {
  direct({ ...RELIABLE, ber: 0 });
});
Deno.bench(`partially reliable, CRC, both ends (${PACKETS} packets)`, () => {
  direct({ ...RELIABLE, loss: 1, ber: 0 });
});
Deno.bench(`reliable, no CRC, through the sim (${PACKETS} packets)`, () => {
  throughSim(RELIABLE);
});
