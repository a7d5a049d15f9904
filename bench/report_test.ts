/**
 * The RTT plot's layout: every legend line lies inside the image and off the
 * plot area (so it covers no curve), and every series with values has its
 * curve, inside the plot area. The SVG is read back as written.
 */
import { assert, assertEquals } from "../tests/assert.ts";
import {
  markdownTable,
  rttCdfSvg,
  type Series,
  textWidth,
  type UnicastFigures,
  unicastRows,
} from "./report.ts";

interface Box {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

/** Every `<tag ...>` opening tag, of class `cls` when given. */
function tags(svg: string, tag: string, cls?: string): string[] {
  const re = new RegExp(`<${tag}\\b[^>]*>`, "g");
  return [...svg.matchAll(re)].map((m) => m[0]).filter((t) =>
    cls === undefined || t.includes(`class="${cls}"`)
  );
}

function attr(tag: string, name: string): string {
  const m = new RegExp(`\\s${name}="([^"]*)"`).exec(tag);
  if (m === null) throw new Error(`no ${name} in ${tag}`);
  return m[1]!;
}

const num = (tag: string, name: string) => Number(attr(tag, name));

function unescape(s: string): string {
  return s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
}

function viewBox(svg: string): Box {
  const root = tags(svg, "svg")[0]!;
  const [x, y, w, h] = attr(root, "viewBox").split(" ").map(Number);
  assertEquals(num(root, "width"), w, "width = viewBox width");
  assertEquals(num(root, "height"), h, "height = viewBox height");
  return { x0: x!, y0: y!, x1: x! + w!, y1: y! + h! };
}

function plotArea(svg: string): Box {
  const r = tags(svg, "rect", "plot-area");
  assertEquals(r.length, 1, "one plot area");
  const x = num(r[0]!, "x"), y = num(r[0]!, "y");
  return {
    x0: x,
    y0: y,
    x1: x + num(r[0]!, "width"),
    y1: y + num(r[0]!, "height"),
  };
}

/**
 * The box of each legend text: from its x (anchored at the start) as wide
 * as textWidth reserves, from a font size above the baseline to a third of
 * one below it (descenders).
 */
function legendTexts(svg: string): { text: string; box: Box }[] {
  const re = /<text\b([^>]*class="legend-label"[^>]*)>([^<]*)<\/text>/g;
  return [...svg.matchAll(re)].map((m) => {
    const tag = `<text${m[1]}>`;
    assert(!tag.includes("text-anchor"), "legend text anchored at its start");
    const text = unescape(m[2]!);
    const x = num(tag, "x"), y = num(tag, "y"), fs = num(tag, "font-size");
    return {
      text,
      box: { x0: x, y0: y - fs, x1: x + textWidth(text, fs), y1: y + fs / 3 },
    };
  });
}

/** The box of each x-axis tick label (centred on its x). */
function tickLabels(svg: string): { text: string; box: Box }[] {
  const re = /<text\b([^>]*class="tick-x"[^>]*)>([^<]*)<\/text>/g;
  return [...svg.matchAll(re)].map((m) => {
    const tag = `<text${m[1]}>`;
    assertEquals(attr(tag, "text-anchor"), "middle");
    const text = unescape(m[2]!);
    const x = num(tag, "x"), y = num(tag, "y"), w = textWidth(text, 12);
    return {
      text,
      box: { x0: x - w / 2, y0: y - 12, x1: x + w / 2, y1: y + 4 },
    };
  });
}

function swatches(svg: string): Box[] {
  return tags(svg, "line", "legend-swatch").map((t) => {
    const x1 = num(t, "x1"), x2 = num(t, "x2"), y1 = num(t, "y1");
    const half = num(t, "stroke-width") / 2;
    return {
      x0: Math.min(x1, x2),
      y0: y1 - half,
      x1: Math.max(x1, x2),
      y1: y1 + half,
    };
  });
}

const inside = (b: Box, outer: Box) =>
  b.x0 >= outer.x0 && b.y0 >= outer.y0 && b.x1 <= outer.x1 &&
  b.y1 <= outer.y1;

const overlaps = (a: Box, b: Box) =>
  a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1;

const fmt = (b: Box) =>
  `[${b.x0.toFixed(1)},${b.y0.toFixed(1)}]–[${b.x1.toFixed(1)},${
    b.y1.toFixed(1)
  }]`;

/** Deterministic RTTs (ms) around `p50Us`, with a tail up to `maxUs`. */
function rtts(n: number, p50Us: number, maxUs: number, seed: number): number[] {
  let s = seed;
  const rnd = () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648;
  };
  return Array.from({ length: n }, (_, i) => {
    if (i % 500 === 0) return maxUs / 1000;
    return (p50Us * (0.8 + 0.4 * rnd())) / 1000;
  });
}

/** The series the benchmark plots, with figures of the size it sees. */
const BENCH_SERIES: Series[] = [
  {
    label: "raw UDP (C, blocking recv/send)",
    color: "#ff7f0e",
    values: rtts(3000, 15, 90, 1),
  },
  { label: "raw UDP (Deno)", color: "#1f77b4", values: rtts(3000, 75, 900, 2) },
  {
    label: "flood ping through the stack",
    color: "#d62728",
    values: rtts(3000, 163, 5500, 3),
  },
  {
    label: "10 flows at once",
    color: "#2ca02c",
    values: rtts(3000, 369, 1900, 4),
  },
  {
    label: "100 flows at once",
    color: "#9467bd",
    values: rtts(3000, 2674, 11000, 5),
  },
];

function checkLayout(svg: string, series: readonly Series[]): void {
  const view = viewBox(svg);
  const plot = plotArea(svg);
  assert(inside(plot, view), `plot area ${fmt(plot)} inside ${fmt(view)}`);
  const texts = legendTexts(svg);
  assertEquals(texts.length, series.length, "a legend line per series");
  const sw = swatches(svg);
  assertEquals(sw.length, series.length, "a legend swatch per series");
  texts.forEach(({ text, box }, i) => {
    assert(
      text.startsWith(series[i]!.label),
      `legend line ${i} names its series: ${text}`,
    );
    assert(
      inside(box, view),
      `legend "${text}" ${fmt(box)} inside the image ${fmt(view)}`,
    );
    assert(
      !overlaps(box, plot),
      `legend "${text}" ${fmt(box)} off the plot area ${fmt(plot)}`,
    );
    texts.forEach((o, k) => {
      assert(k === i || !overlaps(box, o.box), `legend lines ${i}, ${k} apart`);
    });
  });
  const ticks = tickLabels(svg);
  assert(ticks.length >= 2, "the x axis is labelled");
  ticks.forEach(({ text, box }, i) => {
    assert(inside(box, view), `tick "${text}" ${fmt(box)} inside the image`);
    const next = ticks[i + 1];
    assert(
      next === undefined || box.x1 + 4 <= next.box.x0,
      `ticks "${text}" and "${next?.text}" apart`,
    );
  });
  for (const b of sw) {
    assert(inside(b, view), `swatch ${fmt(b)} inside the image`);
    assert(!overlaps(b, plot), `swatch ${fmt(b)} off the plot area`);
  }
  const curves = tags(svg, "polyline", "curve");
  const drawn = series.filter((s) => s.values.length > 0);
  assertEquals(curves.length, drawn.length, "a curve per series with values");
  curves.forEach((c, i) => {
    assertEquals(attr(c, "stroke"), drawn[i]!.color, `curve ${i}'s colour`);
    const pts = attr(c, "points").split(" ").map((p) =>
      p.split(",").map(Number)
    );
    assert(pts.length >= 2, `curve ${i} has points`);
    for (const [px, py] of pts) {
      assert(
        px! >= plot.x0 && px! <= plot.x1 && py! >= plot.y0 && py! <= plot.y1,
        `curve ${i}'s point ${px},${py} inside the plot area ${fmt(plot)}`,
      );
    }
  });
}

Deno.test("RTT plot: legend inside the image and off the plot, a curve per series", () => {
  const svg = rttCdfSvg(
    "RTT distributions, 64-byte ping on loopback (3 runs pooled)",
    BENCH_SERIES,
  );
  checkLayout(svg, BENCH_SERIES);
});

Deno.test("RTT plot: long labels widen the image, many series heighten it", () => {
  const base = rttCdfSvg("t", BENCH_SERIES.slice(0, 1));
  const long: Series[] = [
    ...BENCH_SERIES,
    {
      label: `a series with a long name & <markup>: ${"x".repeat(120)}`,
      color: "#000000",
      values: rtts(100, 50, 60, 6),
    },
    { label: "a series without values", color: "#8c564b", values: [] },
  ];
  const svg = rttCdfSvg("t", long);
  checkLayout(svg, long);
  const b = viewBox(base), v = viewBox(svg);
  assert(v.x1 > b.x1, "wider for the long label");
  assert(v.y1 > b.y1, "taller for more series");
  assert(svg.includes("(no data)"), "a series without values says so");
});

Deno.test("RTT plot: five decades of RTTs, the axis still readable", () => {
  const wide: Series[] = [
    { label: "fast", color: "#ff7f0e", values: rtts(3000, 1.5, 3, 7) },
    { label: "slow", color: "#9467bd", values: rtts(3000, 30_000, 80_000, 8) },
  ];
  const svg = rttCdfSvg("t", wide);
  checkLayout(svg, wide);
  assert(svg.includes(">1 µs<") && svg.includes(">100 ms<"), "1 µs to 100 ms");
});

Deno.test("RTT plot: a long title widens the image", () => {
  const title = "T".repeat(100);
  const svg = rttCdfSvg(title, BENCH_SERIES);
  checkLayout(svg, BENCH_SERIES);
  assert(viewBox(svg).x1 >= textWidth(title, 15), "the title fits");
});

/** Figures of the unicast part, of the size it sees, for two runs. */
function unicastFigures(): UnicastFigures {
  const ping = (p50: number) => [
    { rtPerSec: 1 / p50 * 1000, p50Ms: p50, p99Ms: p50 * 3 },
    { rtPerSec: 1 / p50 * 900, p50Ms: p50 * 1.1, p99Ms: p50 * 4 },
  ];
  const alloc = (p50: number, failures = 0) => [
    { p50Ms: p50, p99Ms: p50 * 4, echoP50Ms: 0.4, failures, echoFailures: 0 },
    {
      p50Ms: p50,
      p99Ms: p50 * 5,
      echoP50Ms: 0.5,
      failures: 0,
      echoFailures: 0,
    },
  ];
  return {
    count: 10000,
    allocs: 1000,
    warmup: 20,
    enrollMs: [113, 60.1, 82.1],
    connectMs: [38.9, 32.3, 41.9],
    irmMs: [150, 160, 170],
    ping: { udp: ping(0.15), hop1: ping(0.3), hop2: ping(0.45) },
    alloc: { udp: alloc(3.2), hop1: alloc(4, 2), hop2: alloc(3.6) },
    rssMB: {
      "uni-a": [82, 82, 82],
      "uni-b": [83.2, 83.1, 83.3],
      "uni-c": [82.7, 82.7, 82.7],
    },
  };
}

Deno.test("unicast rows: one per figure, #8, in the table's units", () => {
  const rows = unicastRows(unicastFigures());
  assertEquals(rows.length, 3 + 3 + 1 + 3 + 3, "rows");
  for (const r of rows) {
    assertEquals(r.id, "8");
    assertEquals(r.met, undefined, "measured, no target to meet");
    assert(!r.measure.includes("|") && !r.value.includes("|"), r.measure);
  }
  const row = (re: RegExp) => {
    const r = rows.find((x) => re.test(x.measure));
    assert(r !== undefined, `a row matching ${re}`);
    return r;
  };
  assertEquals(
    row(/^`irm ipcp enroll .*\(of 3 enrollments\)/).value,
    "82.1 [60.1–113] ms",
  );
  assertEquals(row(/^`irm ipcp connect /).value, "38.9 [32.3–41.9] ms");
  assertEquals(
    row(/^ping over the UDP layer alone/).value,
    "6,333 [6,000–6,667] rt/s; p50 158 [150–165] µs, p99 525 [450–600] µs",
  );
  assertEquals(row(/^ping over the UDP/).target, "baseline (same run)");
  // Each run's ratio to the UDP layer alone of the same run.
  assertEquals(row(/^ping p50 RTT/).value, "2.00 ×; 3.00 ×");
  assertEquals(
    row(/^flow allocation across 1 hop/).value,
    "4.00 ms; 18.0 [16.0–20.0] ms; 450 [400–500] µs; 2 failed",
  );
  assert(
    !row(/^flow allocation across 2 hops/).value.includes("failed"),
    "no failures, no mention",
  );
  assertEquals(
    row(/^idle RSS: ipcpd-unicast uni-b/).value,
    "83.2 [83.1–83.3] MB",
  );
  assert(markdownTable(rows).split("\n").length === rows.length + 2);
});
