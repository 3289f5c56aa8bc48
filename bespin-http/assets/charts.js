// Charts shared by /app and /ui, drawn with the vendored uPlot (assets/vendor/README.md).
// Every value reaches the page as text (el() or textContent) or as a number on a canvas; the
// data comes from the documented API (GET /v1/kpis/{id}/series and the billing reports).
"use strict";

// Okabe–Ito: distinguishable with every common colour-vision deficiency and in grey print.
const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#F0E442"];
const LINE = PALETTE[0];
const UP = "▲", DOWN = "▼", FLAT = "▶";

/** A number exactly as stored (shortest round-trip form), with thousands separators. */
function exact(v) {
  if (v === null || v === undefined) return "-";
  const s = String(v);
  const m = /^(-?)(\d+)(\.\d+)?$/.exec(s);
  return m ? m[1] + m[2].replace(/\B(?=(\d{3})+(?!\d))/g, ",") + (m[3] || "") : s;
}

/** A number for reading at a glance: at most two decimals, grouped. */
function approx(v, digits) {
  if (v === null || v === undefined || !isFinite(v)) return "-";
  return Number(v).toLocaleString("en-US", { maximumFractionDigits: digits === undefined ? 2 : digits });
}

const withUnit = (text, unit) => (unit ? `${text} ${unit}` : text);
const epoch = (ts) => Date.parse(ts) / 1000;
const isoOf = (secs) => new Date(secs * 1000).toISOString().replace(".000Z", "Z");

/** Direction of a change: [arrow, word, css class]. */
function direction(delta) {
  if (delta > 0) return [UP, "up", "up"];
  if (delta < 0) return [DOWN, "down", "down"];
  return [FLAT, "flat", "flat"];
}

/** "▲ +250 (+25%)": the change between the first and last of `points`, or of a window. */
function changeText(deltaAbs, deltaPct) {
  const [arrow] = direction(deltaAbs);
  const sign = deltaAbs > 0 ? "+" : "";
  const pct = deltaPct === null || deltaPct === undefined ? "n/a" : `${deltaPct > 0 ? "+" : ""}${approx(deltaPct, 1)}%`;
  return `${arrow} ${sign}${approx(deltaAbs)} (${pct})`;
}

/** The window rule's deltas over a series answer (its first and last points are exact). */
function seriesChange(points) {
  if (!points.length) return null;
  const start = points[0].value, latest = points[points.length - 1].value;
  const abs = latest - start;
  return { abs, pct: start === 0 ? null : (abs / Math.abs(start)) * 100 };
}

/** Reads a KPI's series; resolves to the API's answer or throws with its detail. */
async function fetchSeries(kpiId, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== null && v !== undefined) q.set(k, String(v));
  const r = await api("GET", `/v1/kpis/${encodeURIComponent(kpiId)}/series?${q}`);
  if (!r.ok) throw new Error(detailText(r, "could not load the series"));
  return r.data;
}

/** Runs `tasks` (functions returning promises) at most `n` at a time. */
async function limited(n, tasks) {
  let next = 0;
  const worker = async () => { while (next < tasks.length) { const t = tasks[next++]; await t(); } };
  await Promise.all(Array.from({ length: Math.min(n, tasks.length) }, worker));
}

/** Records the first chart drawn on the page (read by the page-weight benchmark). */
function markDrawn() {
  if (!performance.getEntriesByName("first-chart").length) performance.mark("first-chart");
}

/** A sparkline of `points` ({ts, value}) in a new element: no axes, no cursor. */
function sparkline(points, opts) {
  const o = Object.assign({ width: 160, height: 36 }, opts || {});
  const box = el("div", { class: "spark", "data-points": String(points.length), role: "img", "aria-label": o.label || "trend" });
  if (points.length < 2) {
    box.appendChild(el("span", { class: "muted small" }, points.length ? "one point" : "no points"));
    return box;
  }
  const data = [points.map((p) => epoch(p.ts)), points.map((p) => p.value)];
  new uPlot({
    width: o.width, height: o.height, class: "spark-plot",
    pxAlign: false, cursor: { show: false }, legend: { show: false }, select: { show: false },
    scales: { x: { time: false } },
    axes: [{ show: false }, { show: false }],
    series: [{}, { stroke: o.stroke || LINE, width: 1.5, fill: "rgba(0,114,178,0.08)", points: { show: false } }],
  }, data, box);
  markDrawn();
  return box;
}

/** A sparkline that loads itself: the last `days` days of a KPI (the window rule's range). */
function kpiSparkline(kpiId, days, onData) {
  const holder = el("div", { class: "spark-holder" }, el("span", { class: "muted small" }, "…"));
  fetchSeries(kpiId, { window_days: days, max_points: 120 }).then((s) => {
    setChildren(holder, sparkline(s.points, { label: `last ${days} days` }));
    if (onData) onData(s);
  }).catch((e) => setChildren(holder, el("span", { class: "err small" }, e.message)));
  return holder;
}

/**
 * A full line chart of a KPI's points in `box`, with a time axis and a hover readout showing
 * the exact value and instant of the point under the cursor. Dragging across it calls
 * `onZoom(fromIso, toIso)`. Returns the uPlot instance.
 */
function lineChart(box, points, unit, onZoom) {
  clear(box);
  box.dataset.points = String(points.length);
  const readout = el("div", { class: "readout", "aria-live": "polite" }, "Hover over the chart for exact values; drag across it to zoom.");
  const tip = el("div", { class: "tip hidden" });
  const plot = el("div", { class: "plot" });
  box.append(readout, plot);
  const data = [points.map((p) => epoch(p.ts)), points.map((p) => p.value)];
  const width = Math.max(320, Math.min(1100, (box.clientWidth || 900) - 8));
  const u = new uPlot({
    width, height: 320, class: "line-plot",
    legend: { show: false },
    cursor: { drag: { x: true, y: false, setScale: false }, points: { size: 8, fill: LINE } },
    scales: { x: { time: true } },
    axes: [
      { stroke: "#1f2933", grid: { stroke: "#e2e8f0" } },
      { stroke: "#1f2933", grid: { stroke: "#e2e8f0" }, size: 70, values: (_, ticks) => ticks.map((t) => approx(t)) },
    ],
    series: [{}, { label: "value", stroke: LINE, width: 2, points: { show: points.length <= 120, size: 5, fill: LINE } }],
    hooks: {
      setCursor: [(u) => {
        const i = u.cursor.idx;
        if (i === null || i === undefined || u.cursor.left < 0) { tip.classList.add("hidden"); return; }
        const p = points[i];
        const text = `${p.ts} · ${withUnit(exact(p.value), unit)}`;
        readout.textContent = text;
        readout.dataset.idx = String(i);
        tip.textContent = withUnit(exact(p.value), unit);
        tip.classList.remove("hidden");
        tip.style.left = Math.min(u.cursor.left + 12, u.over.clientWidth - 120) + "px";
        tip.style.top = Math.max(u.cursor.top - 28, 0) + "px";
      }],
      setSelect: [(u) => {
        if (u.select.width < 4 || !onZoom) return;
        const a = u.posToVal(u.select.left, "x"), b = u.posToVal(u.select.left + u.select.width, "x");
        u.setSelect({ left: 0, width: 0, top: 0, height: 0 }, false);
        onZoom(isoOf(Math.floor(a)), isoOf(Math.ceil(b)));
      }],
    },
  }, data, plot);
  u.over.appendChild(tip);
  markDrawn();
  return u;
}

/**
 * A stacked bar chart over the days `first` to `last` (`YYYY-MM-DD`, the axis): one bar per day
 * in `days`, one segment per key in `keys`, `value(dayIndex, key)` its height. Segments are
 * drawn as cumulative bars from the top one down, so each shows its own share; the legend shows
 * each key's own value for the hovered day. At most PALETTE.length keys, each its own colour.
 */
function stackedBars(box, days, keys, value, unit, first, last) {
  clear(box);
  const xs = days.map((d) => epoch(d + "T00:00:00Z"));
  const cumulative = [];
  let below = days.map(() => 0);
  for (const k of keys) {
    below = below.map((b, i) => b + value(i, k));
    cumulative.push(below);
  }
  const order = keys.map((_, i) => i).reverse(); // tallest first, painted over by the next
  const width = Math.max(320, Math.min(1100, (box.clientWidth || 900) - 8));
  const bars = uPlot.paths.bars({ size: [0.7, 48] });
  new uPlot({
    width, height: 300, class: "bar-plot",
    cursor: { drag: { x: false, y: false } },
    scales: {
      x: { time: true, range: () => [epoch(first + "T00:00:00Z") - 43200, epoch(last + "T00:00:00Z") + 43200] },
      y: { range: (_, _min, max) => [0, max > 0 ? max * 1.1 : 1] }, // bars stand on zero
    },
    axes: [
      { stroke: "#1f2933", grid: { show: false }, incrs: [86400, 2 * 86400, 7 * 86400], values: (_, ticks) => ticks.map((t) => isoOf(t).slice(5, 10)) },
      { stroke: "#1f2933", grid: { stroke: "#e2e8f0" }, size: 60, label: unit },
    ],
    series: [{ label: "day", value: (_, v) => (v === null ? "-" : isoOf(v).slice(0, 10)) }].concat(order.map((ki) => ({
      label: keys[ki],
      fill: ki === keys.length - 1 && keys[ki].startsWith("other") ? "#9ca3af" : PALETTE[ki % PALETTE.length],
      stroke: "#1f2933",
      width: 0.5,
      paths: bars,
      points: { show: false },
      value: (u, _v, _si, idx) => (idx === null || idx === undefined ? "-" : approx(value(idx, keys[ki]), 3)),
    }))),
  }, [xs].concat(order.map((ki) => cumulative[ki])), box);
  markDrawn();
}

/** The colour level of a share of an allowance: "ok" below 80%, "amber" from 80, "red" from 100. */
function level(pct) {
  if (pct >= 100) return "red";
  if (pct >= 80) return "amber";
  return "ok";
}

/** A progress bar of `used` against `limit`, with its level in text as well as in colour. */
function progress(used, limit, label) {
  const pct = limit > 0 ? (used / limit) * 100 : used > 0 ? 100 : 0;
  const lv = level(pct);
  const fill = el("div", { class: "fill" });
  fill.style.width = Math.min(100, pct) + "%";
  const marker = lv === "red" ? " — over the allowance" : lv === "amber" ? " — 80% or more used" : "";
  return el("div", { class: "progress-row", "data-level": lv },
    el("div", { class: "progress-label" }, `${label}: ${approx(used)} of ${approx(limit)} (${approx(pct, 1)}%)${marker}`),
    el("div", { class: "progress " + lv, role: "progressbar", "aria-valuenow": String(Math.round(pct)), "aria-valuemin": "0", "aria-valuemax": "100" }, fill));
}

/** The chat's `kpi` and `kpi_summary` cards get the KPIs view's sparkline; other cards none. */
function cardChart(c) {
  if (!c || (c.type !== "kpi" && c.type !== "kpi_summary") || typeof c.kpi_id !== "string") return null;
  const latest = c.latest ? withUnit(exact(c.latest.value), c.unit) : "no points yet";
  const change = c.type === "kpi_summary" ? " · " + changeText(c.delta_abs, c.delta_pct) : "";
  return el("div", { class: "card-chart", "data-kpi": c.kpi_id },
    el("span", { class: "kpi-name" }, String(c.name)), el("span", { class: "small" }, ` ${latest}${change}`),
    kpiSparkline(c.kpi_id, 90));
}
