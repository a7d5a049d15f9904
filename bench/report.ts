/**
 * The benchmark's arithmetic and output: percentiles, median [min–max]
 * summaries, the Markdown table and the SVG plot of RTT distributions.
 */

/** The p-th percentile (0..100) of the values, by nearest rank. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * s.length);
  return s[Math.min(s.length - 1, Math.max(0, rank - 1))]!;
}

export interface Summary {
  median: number;
  min: number;
  max: number;
  runs: number[];
}

export function summarize(runs: readonly number[]): Summary {
  const ok = runs.filter((x) => Number.isFinite(x));
  if (ok.length === 0) {
    return { median: NaN, min: NaN, max: NaN, runs: [...runs] };
  }
  const s = [...ok].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  const median = s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { median, min: s[0]!, max: s[s.length - 1]!, runs: [...runs] };
}

/** A number with about 3 significant digits, thousands separated. */
export function fmtNum(x: number, digits?: number): string {
  if (!Number.isFinite(x)) return "n/a";
  const d = digits ??
    (Math.abs(x) >= 100 ? 0 : Math.abs(x) >= 10 ? 1 : Math.abs(x) >= 1 ? 2 : 3);
  const fixed = x.toFixed(d);
  const [int, frac] = fixed.split(".");
  const withSep = int!.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return frac === undefined ? withSep : `${withSep}.${frac}`;
}

/** `median [min–max] unit`. */
export function fmtSummary(s: Summary, unit = "", digits?: number): string {
  const u = unit === "" ? "" : ` ${unit}`;
  if (s.runs.length <= 1 || s.min === s.max) {
    return `${fmtNum(s.median, digits)}${u}`;
  }
  return `${fmtNum(s.median, digits)} [${fmtNum(s.min, digits)}–${
    fmtNum(s.max, digits)
  }]${u}`;
}

export interface Row {
  id: string;
  measure: string;
  value: string;
  target: string;
  /** true/false: met or not; undefined: no target. */
  met: boolean | undefined;
}

export function markdownTable(rows: readonly Row[]): string {
  const lines = [
    "| # | Measure | Median [min–max] | Target | Met |",
    "|---|---|---|---|---|",
  ];
  for (const r of rows) {
    const met = r.met === undefined ? "" : r.met ? "yes" : "**no**";
    lines.push(
      `| ${r.id} | ${r.measure} | ${r.value} | ${r.target} | ${met} |`,
    );
  }
  return lines.join("\n");
}

export interface Series {
  label: string;
  color: string;
  /** RTTs in ms. */
  values: readonly number[];
}

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** Font sizes of the plot, px. */
const FONT = 12;
const TITLE_FONT = 15;
/**
 * A conservative width of one character, as a share of the font size: what
 * the layout reserves for text, so that no label runs past its area.
 */
export const CHAR_WIDTH = 0.6;

/** The width reserved for `text` at `fontSize`. */
export function textWidth(text: string, fontSize: number): number {
  return [...text].length * CHAR_WIDTH * fontSize;
}

/** What the legend says of a series. */
function legendText(s: Series): string {
  if (s.values.length === 0) return `${s.label} (no data)`;
  const p50 = percentile(s.values, 50) * 1000;
  const p99 = percentile(s.values, 99) * 1000;
  return `${s.label} (p50 ${p50.toFixed(0)} µs, p99 ${p99.toFixed(0)} µs)`;
}

/**
 * An SVG of the cumulative distributions of RTTs (µs, log scale), one
 * curve per series that has values. The legend has an area of its own
 * below the axis title, one line per series, so it covers no curve; the
 * image grows to hold it (taller with the series, wider with the longest
 * line of text, measured at CHAR_WIDTH).
 */
export function rttCdfSvg(title: string, series: readonly Series[]): string {
  // R holds half of the last tick label, centred on the plot's right edge.
  const L = 64, R = 32, T = 40, B = 56;
  const ph = 344;
  // Legend: a swatch, a gap, then the text; one line of LINE px a series.
  const SWATCH = 20, GAP = 6, LINE = 18, PAD = 12;
  const texts = series.map(legendText);
  const legendW = SWATCH + GAP +
    Math.max(0, ...texts.map((t) => textWidth(t, FONT)));
  const W = Math.ceil(
    Math.max(
      760,
      L + legendW + R,
      textWidth(title, TITLE_FONT) + 2 * R,
    ),
  );
  const pw = W - L - R;
  const legendTop = T + ph + B;
  const H = legendTop + series.length * LINE + PAD;
  const all = series.flatMap((s) => s.values).filter((v) => v > 0);
  const lo = all.length === 0
    ? 10
    : Math.max(1, percentile(all, 0) * 1000 * 0.9);
  const hi = all.length === 0
    ? 1000
    : Math.max(lo * 10, percentile(all, 99.9) * 1000 * 1.1);
  const lx0 = Math.floor(Math.log10(lo)), lx1 = Math.ceil(Math.log10(hi));
  // Values beyond the axis (the slowest 0.1%) are drawn at its edge.
  const x = (us: number) =>
    L +
    ((Math.log10(Math.min(Math.max(us, 10 ** lx0), 10 ** lx1)) - lx0) /
        (lx1 - lx0)) * pw;
  const y = (f: number) => T + (1 - f) * ph;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="${FONT}">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="${TITLE_FONT}">${
      esc(title)
    }</text>`,
  );
  // Grid and axes. The 2 and 5 of a decade are labelled only where the
  // widest label fits between them and their neighbours (log10(2) of a
  // decade apart at the closest).
  const decade = pw / (lx1 - lx0);
  const labelAll = decade * Math.log10(2) >= textWidth("500 µs", FONT) + 4;
  for (let e = lx0; e <= lx1; e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v < 10 ** lx0 || v > 10 ** lx1) continue;
      const gx = x(v).toFixed(1);
      out.push(
        `<line x1="${gx}" y1="${T}" x2="${gx}" y2="${T + ph}" stroke="${
          m === 1 ? "#ccc" : "#eee"
        }"/>`,
      );
      if (m !== 1 && !labelAll) continue;
      out.push(
        `<text class="tick-x" x="${gx}" y="${
          T + ph + 16
        }" text-anchor="middle">${
          v >= 1000 ? `${v / 1000} ms` : `${v} µs`
        }</text>`,
      );
    }
  }
  for (let i = 0; i <= 10; i++) {
    const f = i / 10;
    const gy = y(f).toFixed(1);
    out.push(
      `<line x1="${L}" y1="${gy}" x2="${L + pw}" y2="${gy}" stroke="${
        i % 5 === 0 ? "#ccc" : "#eee"
      }"/>`,
      `<text x="${L - 6}" y="${(y(f) + 4).toFixed(1)}" text-anchor="end">${
        f.toFixed(1)
      }</text>`,
    );
  }
  out.push(
    `<rect class="plot-area" x="${L}" y="${T}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`,
    `<text x="${L + pw / 2}" y="${
      T + ph + 42
    }" text-anchor="middle">round-trip time (log scale)</text>`,
    `<text transform="translate(16 ${
      T + ph / 2
    }) rotate(-90)" text-anchor="middle">fraction of round trips ≤ x</text>`,
  );
  // Curves: at most ~400 points each.
  for (const s of series) {
    const v = [...s.values].sort((a, b) => a - b);
    if (v.length === 0) continue;
    const step = Math.max(1, Math.floor(v.length / 400));
    const pts: string[] = [];
    for (let k = 0; k < v.length; k += step) {
      pts.push(
        `${x(v[k]! * 1000).toFixed(1)},${y((k + 1) / v.length).toFixed(1)}`,
      );
    }
    pts.push(`${x(v[v.length - 1]! * 1000).toFixed(1)},${y(1).toFixed(1)}`);
    out.push(
      `<polyline class="curve" fill="none" stroke="${s.color}" stroke-width="2" points="${
        pts.join(" ")
      }"/>`,
    );
  }
  // Legend, below the plot and its axis title.
  out.push(`<g class="legend">`);
  series.forEach((s, i) => {
    const ly = legendTop + 14 + i * LINE;
    out.push(
      `<line class="legend-swatch" x1="${L}" y1="${ly - 4}" x2="${
        L + SWATCH
      }" y2="${ly - 4}" stroke="${s.color}" stroke-width="3"/>`,
      `<text class="legend-label" x="${
        L + SWATCH + GAP
      }" y="${ly}" font-size="${FONT}">${esc(texts[i]!)}</text>`,
    );
  });
  out.push("</g>", "</svg>");
  return out.join("\n") + "\n";
}

// ---------------------------------------------------------------------------
// The unicast layer's rows (bench/unicast.ts)

/** One run of a ping: its round trips/s and RTT percentiles. */
export interface PingFigures {
  rtPerSec: number;
  p50Ms: number;
  p99Ms: number;
}

/** One run of sequential allocations, each followed by one echo. */
export interface AllocFigures {
  p50Ms: number;
  p99Ms: number;
  /** the echo on each new flow */
  echoP50Ms: number;
  failures: number;
  echoFailures: number;
}

/**
 * The paths measured: the UDP layer alone (the baseline, no unicast IPCP
 * on it), one hop of the unicast layer and two hops (forwarded by B).
 */
export const UNICAST_PATHS = ["udp", "hop1", "hop2"] as const;
export type UnicastPath = typeof UNICAST_PATHS[number];

/** The unicast IPCPs whose idle memory is measured. */
export const UNICAST_IPCPS = ["uni-a", "uni-b", "uni-c"] as const;
export type UnicastIpcp = typeof UNICAST_IPCPS[number];

/** What bench/unicast.ts measured, as unicastRows reads it. */
export interface UnicastFigures {
  /** round trips in each ping run */
  count: number;
  /** timed allocations in each allocation run (after `warmup`) */
  allocs: number;
  warmup: number;
  /** `irm ipcp enroll name uni-b dst uni-a` of a fresh IPCP, each run */
  enrollMs: number[];
  /** `irm ipcp connect name uni-b dst uni-a` (mgmt, then dt), each run */
  connectMs: number[];
  /** `irm ipcp list` from start to exit: what irm's own start adds */
  irmMs: number[];
  ping: Record<UnicastPath, PingFigures[]>;
  alloc: Record<UnicastPath, AllocFigures[]>;
  /** VmRSS samples of each IPCP, idle after setup */
  rssMB: Record<UnicastIpcp, number[]>;
}

const PATH_TEXT: Record<UnicastPath, string> = {
  udp: "over the UDP layer alone (D → A, no unicast IPCP)",
  hop1: "across 1 hop of the unicast layer (B → A)",
  hop2: "across 2 hops (A → C, forwarded by B)",
};

const IPCP_TEXT: Record<UnicastIpcp, string> = {
  "uni-a": "uni-a (bootstrapped; 1 neighbour)",
  "uni-b": "uni-b (enrolled; 2 neighbours, forwards A–C)",
  "uni-c": "uni-c (enrolled; 1 neighbour)",
};

function scaleSummary(s: Summary, k: number): Summary {
  return {
    median: s.median * k,
    min: s.min * k,
    max: s.max * k,
    runs: s.runs.map((v) => v * k),
  };
}

/** The table rows (#8) of the unicast layer, in the style of the others. */
export function unicastRows(u: UnicastFigures): Row[] {
  const S = summarize;
  const us = (xs: number[]) => scaleSummary(S(xs), 1000);
  const n = u.enrollMs.length;
  const rows: Row[] = [
    {
      id: "8",
      measure:
        `\`irm ipcp enroll name uni-b dst uni-a\` (its request to the irmd), fresh IPCP (of ${n} enrollment${
          n === 1 ? "" : "s"
        })`,
      value: fmtSummary(S(u.enrollMs), "ms"),
      target: "",
      met: undefined,
    },
    {
      id: "8",
      measure:
        "`irm ipcp connect name uni-b dst uni-a` (its request: mgmt, then dt)",
      value: fmtSummary(S(u.connectMs), "ms"),
      target: "",
      met: undefined,
    },
    {
      id: "8",
      measure:
        "`irm ipcp list`, start to exit (what `irm` adds to the two above)",
      value: fmtSummary(S(u.irmMs), "ms"),
      target: "",
      met: undefined,
    },
  ];
  for (const p of UNICAST_PATHS) {
    const runs = u.ping[p];
    rows.push({
      id: "8",
      measure: `ping ${PATH_TEXT[p]}, ${u.count} round trips, raw`,
      value: `${fmtSummary(S(runs.map((x) => x.rtPerSec)), "rt/s")}; p50 ${
        fmtSummary(us(runs.map((x) => x.p50Ms)), "µs")
      }, p99 ${fmtSummary(us(runs.map((x) => x.p99Ms)), "µs")}`,
      target: p === "udp" ? "baseline (same run)" : "",
      met: undefined,
    });
  }
  const ratio = (p: UnicastPath, f: (x: PingFigures) => number) =>
    fmtSummary(
      S(u.ping[p].map((x, i) => {
        const base = u.ping.udp[i];
        return base === undefined ? NaN : f(x) / f(base);
      })),
      "×",
      2,
    );
  rows.push({
    id: "8",
    measure: "ping p50 RTT, 1 hop; 2 hops / UDP layer alone (same run)",
    value: `${ratio("hop1", (x) => x.p50Ms)}; ${ratio("hop2", (x) => x.p50Ms)}`,
    target: "",
    met: undefined,
  });
  for (const p of UNICAST_PATHS) {
    const runs = u.alloc[p];
    const failed = runs.reduce((k, x) => k + x.failures + x.echoFailures, 0);
    rows.push({
      id: "8",
      measure: `flow allocation ${
        PATH_TEXT[p]
      }, ${u.allocs} sequential (after ${u.warmup}), each with one echo: p50; p99; the echo's p50`,
      value: `${fmtSummary(S(runs.map((x) => x.p50Ms)), "ms")}; ${
        fmtSummary(S(runs.map((x) => x.p99Ms)), "ms")
      }; ${fmtSummary(us(runs.map((x) => x.echoP50Ms)), "µs")}${
        failed > 0 ? `; ${failed} failed` : ""
      }`,
      target: p === "udp" ? "baseline (same run)" : "",
      met: undefined,
    });
  }
  for (const i of UNICAST_IPCPS) {
    rows.push({
      id: "8",
      measure: `idle RSS: ipcpd-unicast ${IPCP_TEXT[i]}`,
      value: fmtSummary(S(u.rssMB[i]), "MB", 1),
      target: "",
      met: undefined,
    });
  }
  return rows;
}
