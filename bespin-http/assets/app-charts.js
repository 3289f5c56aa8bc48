// The workspace's chart sections: KPIs (sparklines, then a full chart per KPI), Brief (the day's
// brief as cards) and Usage (credits, usage per day, daily limits). Uses app.js's builders and
// charts.js. Registered in app.js's SECTIONS.
"use strict";

const SPARK_DAYS = 90;
const WINDOWS = [["7", "7 days"], ["30", "30 days"], ["90", "90 days"], ["all", "All"]];

// ---- KPIs ----
async function loadKpis() {
  const r = await api("GET", "/v1/kpis?limit=500");
  if (!r.ok) { show(note("Error loading KPIs: " + detailText(r), "err")); return; }
  const kpis = r.data || [];
  if (!kpis.length) {
    show(card("KPIs", null, note("No KPIs yet — define one with POST /v1/kpis, then add points with POST /v1/kpis/{kpi_id}/points:bulk.", "empty")));
    return;
  }
  const cards = kpis.map((k) => {
    const value = el("div", { class: "kpi-value" }, "…");
    const change = el("div", { class: "kpi-change muted small" });
    const spark = kpiSparkline(k.kpi_id, SPARK_DAYS, (s) => {
      if (!s.points.length) { value.textContent = "no points yet"; change.textContent = "add points with POST /v1/kpis/{kpi_id}/points:bulk"; return; }
      const last = s.points[s.points.length - 1];
      value.textContent = withUnit(exact(last.value), k.unit);
      const c = seriesChange(s.points);
      change.textContent = `${changeText(c.abs, c.pct)} over ${SPARK_DAYS} days · ${last.ts.slice(0, 10)}`;
      change.className = "kpi-change small " + direction(c.abs)[2];
    });
    return el("a", { href: "#", class: "kpi-card", "data-kpi": k.kpi_id, onclick: (e) => { e.preventDefault(); openKpi(k); } },
      el("div", { class: "kpi-name" }, k.name), k.unit ? el("div", { class: "muted small" }, k.unit) : null, value, change, spark);
  });
  const more = kpis.length === 500 ? note("Showing the 500 newest KPIs.") : null;
  show(card(`KPIs (${kpis.length})`, null, el("p", { class: "muted small" }, `Last ${SPARK_DAYS} days of each KPI, up to its latest point. Click one for its full chart.`),
    el("div", { class: "kpi-grid", id: "kpi-grid" }, cards), more));
}

/** The full chart of one KPI: window selector, zoom, hover, and its points as a table. */
function openKpi(k) {
  let windowDays = "90";
  const status = el("p", { class: "muted small", id: "kpi-status" });
  const chart = el("div", { class: "chart", id: "kpi-chart" });
  const points = el("div", { class: "points", id: "kpi-points" });
  const buttons = WINDOWS.map(([v, label]) => btn(label, v === windowDays ? "" : "grey", () => { windowDays = v; load({}); }, { "data-window": v }));
  const reset = btn("Reset zoom", "grey hidden", () => load({}), { id: "kpi-reset" });
  const load = async (range) => {
    for (const b of buttons) b.className = b.dataset.window === windowDays && !range.from ? "" : "grey";
    reset.classList.toggle("hidden", !range.from);
    setChildren(status, "Loading…");
    let s;
    try {
      s = await fetchSeries(k.kpi_id, range.from ? { from: range.from, to: range.to, max_points: 1000 }
        : { window_days: windowDays === "all" ? null : windowDays, max_points: 1000 });
    } catch (e) { setChildren(status, el("span", { class: "err" }, e.message)); return; }
    if (!s.points.length) {
      clear(chart); clear(points);
      setChildren(status, note("No points in this range — add points with POST /v1/kpis/{kpi_id}/points:bulk, or pick a longer window.", "empty"));
      return;
    }
    const c = seriesChange(s.points);
    setChildren(status, `${s.from} to ${s.to}: ${s.points_in_range} point(s)`,
      s.downsampled ? ` — showing ${s.points.length} (the first, lowest, highest and last of each span of time); drag across the chart to zoom in` : "",
      ` · change ${changeText(c.abs, c.pct)}`);
    lineChart(chart, s.points, k.unit, (from, to) => load({ from, to }));
    const rows = s.points.slice().reverse().map((p) => [p.ts, withUnit(exact(p.value), k.unit)]);
    setChildren(points, table(["Instant (UTC)", "Value"], rows));
  };
  show(card(k.name, [buttons, reset, btn("← All KPIs", "grey", loadKpis, { id: "kpi-back" })],
    k.unit ? el("p", { class: "muted small" }, "Unit: ", k.unit) : null,
    k.description ? el("p", {}, k.description) : null,
    status, chart, el("h3", {}, "Points"), points));
  load({});
}

// ---- Brief ----
async function loadBrief(date) {
  const list = await api("GET", "/v1/briefs?limit=366");
  if (!list.ok) { show(note("Error loading briefs: " + detailText(list), "err")); return; }
  const dates = (list.data.items || []).map((i) => i.date); // newest first
  if (!dates.length) {
    show(card("Brief", null, note("No briefs yet — run POST /v1/jobs/daily-brief (or POST /v1/briefs/materialize) to generate today's.", "empty")));
    return;
  }
  const day = typeof date === "string" ? date : dates[0];
  const picker = el("input", { type: "date", id: "brief-date", value: day, min: dates[dates.length - 1], max: dates[0],
    onchange: (e) => { if (e.target.value) loadBrief(e.target.value); } });
  const at = dates.indexOf(day);
  const older = at >= 0 ? dates[at + 1] : dates.find((d) => d < day);
  const newer = at >= 0 ? dates[at - 1] : dates.slice().reverse().find((d) => d > day);
  const nav = [btn("‹ Older", "grey", () => loadBrief(older), { id: "brief-older", disabled: !older }), picker,
    btn("Newer ›", "grey", () => loadBrief(newer), { id: "brief-newer", disabled: !newer })];
  const r = await api("GET", "/v1/briefs/" + encodeURIComponent(day));
  if (!r.ok) {
    show(card("Brief", nav, note(`No brief for ${day}. Briefs exist for ${dates.length} date(s); use ‹ Older / Newer › to walk through them.`, "empty")));
    return;
  }
  const c = r.data.content;
  const alerts = new Map((c.alerts || []).map((a) => [a.kpi_id, a]));
  const s = c.summary;
  const cards = c.highlights.map((h) => {
    const [arrow, word, cls] = direction(h.delta_abs);
    const alert = alerts.get(h.kpi_id);
    const chart = el("div", { class: "brief-spark" });
    fetchSeries(h.kpi_id, { from: h.start.ts, to: h.latest.ts, max_points: 60 })
      .then((sr) => setChildren(chart, sparkline(sr.points, { width: 220, height: 48, stroke: alert ? PALETTE[5] : LINE, label: "the window" })))
      .catch((e) => setChildren(chart, el("span", { class: "err small" }, e.message)));
    return el("div", { class: "brief-card" + (alert ? " alert" : ""), "data-kpi": h.kpi_id },
      el("div", { class: "brief-head" }, el("span", { class: "kpi-name" }, h.name), alert ? el("span", { class: "alert-badge" }, "ALERT ≤ −10%") : null),
      el("div", { class: "brief-dir " + cls }, `${arrow} ${word}`),
      el("div", { class: "kpi-value" }, withUnit(exact(h.latest.value), h.unit)),
      el("div", { class: "small" }, `Δ ${h.delta_abs > 0 ? "+" : ""}${approx(h.delta_abs, 6)}${h.unit ? " " + h.unit : ""} · Δ% ${h.delta_pct === null ? "n/a (start is 0)" : (h.delta_pct > 0 ? "+" : "") + approx(h.delta_pct, 2) + "%"}`),
      el("div", { class: "muted small" }, `${h.start.ts.slice(0, 10)} (${exact(h.start.value)}) → ${h.latest.ts.slice(0, 10)}`),
      chart);
  });
  const others = (c.alerts || []).filter((a) => !c.highlights.some((h) => h.kpi_id === a.kpi_id));
  show(card(`Brief for ${c.date}`, nav,
    el("p", { class: "muted" }, `${s.kpis_considered} KPI(s) considered over ${c.window_days} day(s): ${UP} ${s.kpis_up} up, ${DOWN} ${s.kpis_down} down, ${FLAT} ${s.kpis_flat} flat; ${(c.alerts || []).length} alert(s).`),
    cards.length ? el("div", { class: "brief-grid" }, cards) : note("No highlights: no KPI had a point on or before this date."),
    others.length ? [el("h3", {}, "Other alerts"), table(["KPI", "Δ%"], others.map((a) => [a.name, approx(a.delta_pct, 2) + "%"]))] : null));
}

// ---- Usage ----
async function loadUsage() {
  const [billing, days, daily] = await Promise.all([
    api("GET", "/v1/billing/usage"), api("GET", "/v1/billing/usage/daily"), api("GET", "/v1/usage/daily")]);
  if (!billing.ok) { show(note("Error loading usage: " + detailText(billing), "err")); return; }
  const b = billing.data;
  const credits = card("Credits this period", btn("Refresh", "grey", loadUsage),
    el("p", { class: "muted small" }, `Plan ${b.plan.name} · ${b.period_start} to ${b.period_end}`),
    progress(b.credits.used, b.credits.included, "Credits used"));
  const chart = el("div", { class: "chart", id: "usage-chart" });
  const perDay = card("Credits per day, by event", null, chart);
  const list = days.ok ? days.data.days : [];
  const limits = card("Daily limits (today, UTC)", null, daily.ok ? limitRows(daily.data) : note(detailText(daily), "err"));
  show(credits, perDay, limits);
  if (!list.length) {
    setChildren(chart, note("No usage yet this period — chat, tool calls, KPI ingests and the other metered calls appear here by day.", "empty"));
    return;
  }
  // The six event keys with the most credits get a colour each; the rest share one segment.
  const totals = new Map();
  for (const d of list) for (const i of d.breakdown) totals.set(i.event_key, (totals.get(i.event_key) || 0) + i.credits);
  const ranked = [...totals.keys()].sort((a, b) => totals.get(b) - totals.get(a) || (a < b ? -1 : 1));
  const own = ranked.length > 7 ? ranked.slice(0, 6) : ranked;
  const other = ranked.length > 7 ? `other (${ranked.length - 6} events)` : null;
  const keys = other ? own.concat([other]) : own;
  const credit = list.map((d) => {
    const m = new Map();
    for (const i of d.breakdown) {
      const k = own.includes(i.event_key) ? i.event_key : other;
      m.set(k, (m.get(k) || 0) + i.credits);
    }
    return m;
  });
  const last = new Date(Date.parse(b.period_end + "T00:00:00Z") - 86400000).toISOString().slice(0, 10);
  stackedBars(chart, list.map((d) => d.date), keys, (i, k) => credit[i].get(k) || 0, "credits", b.period_start, last);
}

const ACTIVITIES = {
  assistant_query: ["Chat", "assistant_query_daily_limit"],
  tool_invocation: ["Tools", "tool_invocation_daily_limit"],
  daily_brief_generated: ["Briefs", "daily_brief_generated_daily_limit"],
  notification_enqueued: ["Notifications", "notification_enqueued_daily_limit"],
};

function limitRows(d) {
  const used = new Map((d.usage || []).map((u) => [u.activity_type, u.units]));
  const rows = Object.entries(ACTIVITIES).map(([a, [label, field]]) =>
    el("div", { "data-activity": a }, progress(used.get(a) || 0, (d.limits || {})[field] || 0, label)));
  return [el("p", { class: "muted small" }, `${d.date}: today's counts against the tenant's daily limits (PUT /v1/limits changes them).`), rows];
}

// /app#kpis, #brief or #usage opens that section, so a chart can be linked to. Runs after
// app.js's start-up listener has started connecting, before its answer loads the section.
document.addEventListener("DOMContentLoaded", () => {
  const section = location.hash.slice(1);
  if (!["kpis", "brief", "usage"].includes(section)) return;
  currentSection = section;
  for (const a of document.querySelectorAll(".sections a")) a.classList.toggle("active", a.dataset.section === section);
});
