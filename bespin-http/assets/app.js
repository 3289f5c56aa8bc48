// The Core Business OS workspace (50 §2.4). All data is inserted with textContent (el()).
"use strict";

let currentSection = "today";
let userRole = "member";
let actionsStatusFilter = "all";
let actionsCreatedByMeFilter = false;

const content = () => $("content");
const isAdmin = () => userRole === "admin";
const me = () => $("user").value.trim();

// ---- diagnostics wrapper ----
async function tracked(method, path, body) {
  const diag = $("diag-body");
  try {
    const r = await api(method, path, body);
    if (r.data === null) throw new Error("response is not JSON");
    diag.textContent = `[${new Date().toLocaleTimeString()}] ${r.status} ${r.statusText}\nURL: ${r.url}\n\n${JSON.stringify(r.data, null, 2)}`;
    diag.className = "diag-body " + (r.ok ? "ok" : "err");
    return r;
  } catch (e) {
    diag.textContent = `[${new Date().toLocaleTimeString()}] 0 Network Error\nURL: ${location.origin + path}\n\n${JSON.stringify({ error: e.message }, null, 2)}`;
    diag.className = "diag-body err";
    throw e;
  }
}

// ---- small builders ----
const badge = (s) => el("span", { class: "badge b-" + String(s || "") }, String(s || "-"));
const prio = (p) => el("span", { class: "prio p-" + String(p || "") }, String(p || "-"));
const short = (id) => (id ? String(id).slice(0, 8) + "..." : "-");
const day = (ts) => String(ts || "").split("T")[0];
const btn = (label, cls, onclick, extra) => el("button", Object.assign({ type: "button", class: cls || "", onclick }, extra || {}), label);
const note = (text, cls) => el("p", { class: cls || "muted" }, text);
const link = (text, onclick) => el("a", { href: "#", onclick: (e) => { e.preventDefault(); onclick(); } }, text);

function card(title, headerRight, ...body) {
  return el("section", { class: "card" },
    el("div", { class: "card-head" }, el("h2", {}, title), el("div", { class: "tools" }, headerRight || [])),
    body);
}

function table(cols, rows) {
  return el("table", { class: "grid" },
    el("thead", {}, el("tr", {}, cols.map((c) => el("th", {}, c)))),
    el("tbody", {}, rows.map((cells) => el("tr", {}, cells.map((c) => el("td", {}, c))))));
}

function show(...nodes) { setChildren(content(), nodes); }

function field(label, input) { return el("label", { class: "field" }, label, input); }

// ---- modal ----
function openModal(title, ...body) {
  $("modal-title").textContent = title;
  setChildren($("modal-body"), body);
  $("overlay").classList.remove("hidden");
}
function closeModal() { $("overlay").classList.add("hidden"); clear($("modal-body")); }

// ---- sections ----
// A function, so the loaders declared below with const are initialised when it runs.
const SECTIONS = () => ({
  today: loadToday, actions: loadActions, tasks: loadTasks, decisions: loadDecisions,
  meetings: loadMeetings, memory: loadMemory, timeline: loadTimeline, billing: loadBilling, search: loadSearch,
  kpis: loadKpis, brief: loadBrief, usage: loadUsage, // app-charts.js
});

function loadSection() {
  stopLive();
  show(note("Loading..."));
  return SECTIONS()[currentSection]();
}

async function listOrEmpty(path) {
  try { const r = await api("GET", path); return r.ok ? r.data.items || [] : []; } catch (_) { return []; }
}

async function loadToday() {
  try {
    const [actions, tasks] = await Promise.all([
      listOrEmpty("/v1/actions?status=proposed&limit=5"),
      listOrEmpty("/v1/tasks?status=todo&limit=5"),
    ]);
    show(
      card(`Open Actions (${actions.length})`, null, actions.length
        ? table(["Title", "Type", "Status"], actions.map((a) => [link(a.title, () => openRecord("action", a.action_id)), a.action_type, badge(a.status)]))
        : note("No open actions.")),
      card(`Tasks Due Soon (${tasks.length})`, null, tasks.length
        ? table(["Title", "Priority", "Due"], tasks.map((t) => [link(t.title, () => openRecord("task", t.task_id)), prio(t.priority), t.due_date || "-"]))
        : note("No tasks due.")));
  } catch (_) { show(note("Error loading data.", "err")); }
}

async function loadActions() {
  let path = `/v1/actions?status=${encodeURIComponent(actionsStatusFilter)}&limit=50`;
  if (actionsCreatedByMeFilter) path += "&created_by_user_id=" + encodeURIComponent(me());
  let r;
  try { r = await tracked("GET", path); } catch (e) { show(note("Error loading actions: " + e.message, "err")); return; }
  if (!r.ok) { show(note("Error loading actions: " + detailText(r, "unknown error"), "err")); return; }
  const items = r.data.items || [];
  const mine = el("label", { class: "inline" }, el("input", { type: "checkbox", id: "mine", checked: actionsCreatedByMeFilter,
    onchange: (e) => { actionsCreatedByMeFilter = e.target.checked; loadActions(); } }), " Created by me");
  const select = el("select", { id: "status-filter", onchange: (e) => { actionsStatusFilter = e.target.value; loadActions(); } },
    ["all", "proposed", "approved", "rejected", "executed", "cancelled"].map((s) =>
      el("option", { value: s }, s === "all" ? "All" : s[0].toUpperCase() + s.slice(1))));
  select.value = actionsStatusFilter;
  const rows = items.map((a) => [
    day(a.created_at), badge(a.status), link(a.title, () => openAction(a.action_id)), a.action_type,
    short(a.created_by_user_id), a.assigned_to_user_id ? short(a.assigned_to_user_id) : "-",
    el("span", { class: "buttons" }, actionButtons(a)),
  ]);
  show(card(`Actions (${r.data.total ?? items.length})`, [mine, select, btn("+ New Action", "", createActionDialog, { id: "new-action" })],
    items.length ? table(["Created", "Status", "Title", "Type", "Creator", "Assigned", "Actions"], rows) : note("No actions found.")));
}

function actionButtons(a, before) {
  const go = (f) => () => { if (before) before(); f(a); };
  const out = [];
  if (a.status === "proposed" && isAdmin()) {
    out.push(btn("Approve", "green", go(approveDialog), { "data-act": "approve" }));
    out.push(btn("Reject", "red", go(rejectDialog), { "data-act": "reject" }));
  }
  if (a.status === "proposed" && (isAdmin() || a.created_by_user_id === me())) out.push(btn("Cancel", "grey", go(cancelAction), { "data-act": "cancel" }));
  if (a.status === "approved" && isAdmin()) out.push(btn("Execute", "", go(executeDialog), { "data-act": "execute" }));
  return out;
}

async function loadTasks() {
  try {
    const r = await api("GET", "/v1/tasks?limit=50");
    if (!r.ok) throw new Error(detailText(r));
    const items = r.data.items || [];
    show(card(`Tasks (${r.data.total ?? items.length})`, btn("+ New Task", "", createTaskDialog, { id: "new-task" }),
      items.length ? table(["Title", "Status", "Priority", "Due", ""], items.map((t) => [
        link(t.title, () => openRecord("task", t.task_id)), badge(t.status), prio(t.priority), t.due_date || "-",
        t.status !== "done" ? btn("Complete", "green", () => completeTask(t.task_id)) : "",
      ])) : note("No tasks yet.")));
  } catch (_) { show(note("Error loading tasks.", "err")); }
}

async function completeTask(id) {
  const r = await api("POST", `/v1/tasks/${encodeURIComponent(id)}/complete`);
  if (r.ok) loadTasks(); else alert("Error: " + detailText(r));
}

async function simpleList(path, title, newLabel, onNew, cols, row, empty) {
  try {
    const r = await api("GET", path);
    if (!r.ok) throw new Error(detailText(r));
    const items = r.data.items || [];
    show(card(`${title} (${r.data.total ?? items.length})`, newLabel ? btn(newLabel, "", onNew) : null,
      items.length ? table(cols, items.map(row)) : note(empty)));
  } catch (_) { show(note(`Error loading ${title.toLowerCase()}.`, "err")); }
}

const loadDecisions = () => simpleList("/v1/decisions?limit=50", "Decisions", "+ New Decision", createDecisionDialog,
  ["Title", "Date", "Status"], (d) => [link(d.title, () => openRecord("decision", d.decision_id)), d.decision_date, badge(d.status)], "No decisions yet.");
const loadMeetings = () => simpleList("/v1/meetings?limit=50", "Meeting Notes", "+ New Meeting Note", createMeetingDialog,
  ["Title", "Date"], (m) => [link(m.title, () => openRecord("meeting", m.meeting_id)), m.meeting_date], "No meeting notes yet.");
const loadMemory = () => simpleList("/v1/memory/facts?status=active&limit=50", "Memory Facts", "+ New Fact", createFactDialog,
  ["Key", "Category", "Value", "Status"], (f) => [link(f.fact_key, () => openRecord("memory_fact", f.fact_id)), f.category,
    f.fact_value.length > 50 ? f.fact_value.slice(0, 50) + "..." : f.fact_value, badge(f.status)], "No memory facts yet.");
async function loadTimeline() {
  await simpleList("/v1/timeline?limit=50", "Timeline", null, null,
    ["Event", "Entity", "Summary", "Time"], (t) => [t.event_type, `${t.entity_type}/${String(t.entity_id).slice(0, 8)}...`, t.summary, day(t.created_at)], "No events yet.");
  if (currentSection !== "timeline") return;
  const rows = el("tbody", { id: "live-events" });
  const status = el("span", { id: "live-status", class: "muted" }, "connecting");
  content().prepend(card("Live", status, el("table", { class: "grid" },
    el("thead", {}, el("tr", {}, ["Event", "Subject", "Summary", "Time"].map((c) => el("th", {}, c)))), rows)));
  startLive(rows, status);
}

// ---- the live timeline: GET /v1/events/stream read with fetch (EventSource cannot send our
// headers); on a dropped connection it resumes after the last id (Last-Event-ID) ----
let live = null;

function stopLive() {
  if (live) { live.ctrl.abort(); live = null; }
}

/** Parses one SSE frame into {id, event, data} (data parsed as JSON); null for a comment. */
function sseFrame(frame) {
  const ev = { id: null, event: "message", data: "" };
  let any = false;
  for (const line of frame.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const at = line.indexOf(":");
    const k = at < 0 ? line : line.slice(0, at), v = at < 0 ? "" : line.slice(at + 1).replace(/^ /, "");
    if (k === "id") ev.id = v; else if (k === "event") ev.event = v; else if (k === "data") ev.data += v;
    any = true;
  }
  if (!any) return null;
  try { ev.data = JSON.parse(ev.data); } catch (_) { ev.data = null; }
  return ev;
}

function liveRow(rows, e) {
  const d = e.data || {};
  const summary = d.title || d.fact_key || d.name || d.content || d.tool_name || d.email || "";
  rows.prepend(el("tr", {}, [e.type, `${e.subject.type}/${String(e.subject.id).slice(0, 8)}...`, String(summary), new Date(e.occurred_at).toLocaleTimeString()]
    .map((c) => el("td", {}, c))));
  while (rows.children.length > 100) rows.lastChild.remove();
}

async function startLive(rows, status) {
  stopLive();
  const me = { ctrl: new AbortController(), lastId: null };
  live = me;
  while (live === me) {
    try {
      const h = headers();
      if (me.lastId) h["Last-Event-ID"] = me.lastId;
      const res = await fetch("/v1/events/stream", { headers: h, signal: me.ctrl.signal });
      if (!res.ok) throw new Error("stream " + res.status);
      status.textContent = "live";
      const reader = res.body.getReader(), dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const ev = sseFrame(buf.slice(0, cut));
          buf = buf.slice(cut + 2);
          if (ev && ev.id) me.lastId = ev.id;
          if (ev && ev.event !== "reset" && ev.data && ev.data.type) liveRow(rows, ev.data);
        }
      }
    } catch (_) {
      if (me.ctrl.signal.aborted) return;
    }
    if (live !== me) return;
    status.textContent = "reconnecting";
    await new Promise((r) => setTimeout(r, 1000));
  }
}

async function loadBilling() {
  let r;
  try { r = await tracked("GET", "/v1/billing/usage"); } catch (e) { show(note("Error: " + e.message, "err")); return; }
  if (!r.ok) { show(note("Error: " + detailText(r), "err")); return; }
  const d = r.data, c = d.credits;
  const stat = (value, label, cls) => el("div", { class: "stat " + (cls || "") }, el("div", { class: "num" }, String(value)), el("div", { class: "label" }, label));
  const stats = [stat(c.included, "Included Credits"), stat(fixed(c.used, 2), "Credits Used", "blue"), stat(fixed(c.remaining, 2), "Remaining", "green")];
  if (c.overage_credits > 0) stats.push(stat(fixed(c.overage_credits, 2), `Overage (~$${fixed(c.estimated_overage_cost, 2)})`, "red"));
  const bd = (items) => table(["Event Type", "Raw Units", "Credits", "Est. Cost"], items.map((b) => [b.event_key, String(b.raw_units), fixed(b.credits, 2), "$" + fixed(b.list_cost_estimate, 4)]));
  const action = (d.breakdown || []).filter((b) => b.event_key.startsWith("action_"));
  show(card("Billing Usage", btn("Refresh", "grey", loadBilling),
    el("p", {}, `Plan: ${d.plan.name} | Period: ${d.period_start} to ${d.period_end}`),
    el("div", { class: "stats" }, stats),
    action.length ? [el("h3", {}, "Action Center Usage"), bd(action)] : null,
    el("h3", {}, "All Usage Breakdown"),
    (d.breakdown || []).length ? bd(d.breakdown) : note("No usage yet.")));
}

function loadSearch() {
  const input = el("input", { id: "search-q", type: "text", placeholder: "Search tasks, actions, decisions, meetings, memory..." });
  const results = el("div", { id: "search-results" });
  const run = async () => {
    const q = input.value.trim();
    if (!q) return;
    setChildren(results, note("Searching..."));
    try {
      const r = await api("GET", "/v1/search?q=" + encodeURIComponent(q));
      if (!r.ok) throw new Error(detailText(r));
      const hits = r.data.results || [];
      setChildren(results, hits.length
        ? table(["Type", "Title", "Snippet"], hits.map((h) => [h.entity_type, link(h.title, () => openRecord(h.entity_type, h.entity_id)), h.snippet || ""]))
        : note("No results found."));
    } catch (_) { setChildren(results, note("Search failed.", "err")); }
  };
  input.addEventListener("keydown", (e) => { if (e.key === "Enter") run(); });
  show(card("Global Search", null, el("div", { class: "row" }, input, btn("Search", "", run, { id: "search-go" })), results));
  input.focus();
}

// ---- dialogs ----
function parseJson(text, errorLine) {
  const t = text.trim();
  try { errorLine.textContent = ""; return { ok: true, value: t ? JSON.parse(t) : {} }; }
  catch (e) { errorLine.textContent = "Invalid JSON: " + e.message; return { ok: false }; }
}
const orNull = (s) => (s.trim() ? s : null);

function createActionDialog() {
  const title = el("input", { type: "text", id: "f-title" });
  const desc = el("textarea", { id: "f-desc" });
  const type = el("input", { type: "text", id: "f-type", value: "general" });
  const source = el("select", { id: "f-source" }, ["user", "agent", "system"].map((s) => el("option", { value: s }, s)));
  const assigned = el("input", { type: "text", id: "f-assigned" });
  const ref = el("input", { type: "text", id: "f-ref" });
  const payload = el("textarea", { class: "mono", id: "f-payload", value: "{}" });
  const err = el("div", { class: "err small" });
  const submit = async () => {
    if (!title.value.trim()) { alert("Title is required."); return; }
    if (!type.value.trim()) { alert("Action type is required."); return; }
    const p = parseJson(payload.value, err);
    if (!p.ok) return;
    const r = await tracked("POST", "/v1/actions", {
      title: title.value.trim(), description: orNull(desc.value), action_type: type.value.trim(), source: source.value,
      source_ref: orNull(ref.value), assigned_to_user_id: orNull(assigned.value), payload: p.value,
    });
    if (!r.ok) { alert("Error: " + detailText(r)); return; }
    closeModal();
    await loadActions();
    setTimeout(() => openAction(r.data.action_id), 100);
  };
  openModal("Create Action", field("Title *", title), field("Description", desc), field("Action Type *", type),
    field("Source", source), field("Assigned To User ID", assigned), field("Source Ref", ref), field("Payload (JSON)", payload), err,
    el("div", { class: "buttons" }, btn("Create Action", "", submit, { id: "f-submit" })));
  title.focus();
}

function simpleDialog(title, fields, path, body, reload) {
  const submit = async () => {
    const r = await api("POST", path, body());
    if (!r.ok) { alert("Error: " + detailText(r)); return; }
    closeModal();
    reload();
  };
  openModal(title, fields, el("div", { class: "buttons" }, btn(title, "", submit, { id: "f-submit" })));
}

function createTaskDialog() {
  const t = el("input", { type: "text", id: "f-title" }), d = el("textarea", { id: "f-desc" });
  const p = el("select", { id: "f-priority" }, [["low", "Low"], ["medium", "Medium"], ["high", "High"]].map(([v, l]) => el("option", { value: v }, l)));
  p.value = "medium";
  const due = el("input", { type: "date", id: "f-due" });
  simpleDialog("Create Task", [field("Title", t), field("Description", d), field("Priority", p), field("Due Date", due)], "/v1/tasks",
    () => ({ title: t.value, description: d.value, priority: p.value, due_date: due.value || null }), loadTasks);
}

function createDecisionDialog() {
  const t = el("input", { type: "text", id: "f-title" }), date = el("input", { type: "date", value: todayUtc() });
  const ctx = el("textarea", {}), dec = el("textarea", {}), why = el("textarea", {});
  simpleDialog("Create Decision", [field("Title", t), field("Date", date), field("Context", ctx), field("Decision", dec), field("Rationale", why)], "/v1/decisions",
    () => ({ title: t.value, decision_date: date.value, context: ctx.value, decision: dec.value, rationale: why.value }), loadDecisions);
}

function createMeetingDialog() {
  const t = el("input", { type: "text", id: "f-title" }), date = el("input", { type: "date", value: todayUtc() });
  const notes = el("textarea", { class: "large" });
  simpleDialog("Create Meeting Note", [field("Title", t), field("Date", date), field("Notes", notes)], "/v1/meetings",
    () => ({ title: t.value, meeting_date: date.value, notes: notes.value }), loadMeetings);
}

function createFactDialog() {
  const cat = el("select", {}, [["icp", "ICP"], ["positioning", "Positioning"], ["pricing", "Pricing"], ["goals", "Goals"], ["constraints", "Constraints"], ["brand", "Brand"], ["other", "Other"]].map(([v, l]) => el("option", { value: v }, l)));
  const key = el("input", { type: "text", placeholder: "e.g. ICP.primary" }), value = el("textarea", {});
  simpleDialog("Create Memory Fact", [field("Category", cat), field("Key", key), field("Value", value)], "/v1/memory/facts",
    () => ({ category: cat.value, fact_key: key.value, fact_value: value.value }), loadMemory);
}

function reviewDialog(a, verb) {
  const comment = el("textarea", { id: "f-comment" });
  const go = async () => {
    let r;
    try { r = await tracked("POST", `/v1/actions/${encodeURIComponent(a.action_id)}/${verb.toLowerCase()}`, { comment: orNull(comment.value) }); }
    catch (e) { alert("Error: " + e.message); return; }
    if (!r.ok) { alert("Error: " + detailText(r)); return; }
    closeModal();
    loadActions();
  };
  openModal(`${verb} Action`, el("p", {}, `${verb} "${a.title}"?`), field("Comment", comment),
    el("div", { class: "buttons" }, btn(verb, verb === "Approve" ? "green" : "red", go, { id: "f-submit" }), btn("Cancel", "grey", closeModal)));
}
const approveDialog = (a) => reviewDialog(a, "Approve");
const rejectDialog = (a) => reviewDialog(a, "Reject");

function executeDialog(a) {
  const status = el("select", { id: "f-exec-status" }, ["succeeded", "failed", "skipped"].map((s) => el("option", { value: s }, s)));
  const result = el("textarea", { class: "mono", id: "f-result", value: "{}" });
  const err = el("div", { class: "err small" });
  const go = async () => {
    const p = parseJson(result.value, err);
    if (!p.ok) return;
    let r;
    try { r = await tracked("POST", `/v1/actions/${encodeURIComponent(a.action_id)}/execute`, { execution_status: status.value, result: p.value }); }
    catch (e) { alert("Error: " + e.message); return; }
    if (!r.ok) { alert("Error: " + detailText(r)); return; }
    closeModal();
    loadActions();
  };
  openModal("Execute Action", field("Execution Status *", status), field("Result (JSON)", result), err,
    el("div", { class: "buttons" }, btn("Execute", "", go, { id: "f-submit" }), btn("Cancel", "grey", closeModal)));
}

async function cancelAction(a) {
  if (!confirm("Cancel this action?")) return;
  let r;
  try { r = await tracked("POST", `/v1/actions/${encodeURIComponent(a.action_id)}/cancel`, "{}"); } catch (e) { alert("Error: " + e.message); return; }
  if (!r.ok) { alert("Error: " + detailText(r)); return; }
  loadActions();
}

// ---- detail modals ----
function kv(pairs) {
  return el("dl", { class: "kv" }, pairs.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}
const pre = (v) => el("pre", { class: "json" }, JSON.stringify(v, null, 2));

async function openAction(id) {
  let r;
  try { r = await tracked("GET", "/v1/actions/" + encodeURIComponent(id)); } catch (e) { alert("Error: " + e.message); return; }
  if (!r.ok) { alert("Error: " + detailText(r)); return; }
  const a = r.data;
  const parts = [
    el("h3", {}, "Action Details"),
    kv([["ID", a.action_id], ["Title", a.title], ["Status", badge(a.status)], ["Type", a.action_type],
      ["Source", a.source + (a.source_ref ? ` (ref: ${a.source_ref})` : "")], ["Description", a.description || "-"],
      ["Created By", a.created_by_user_id], ["Assigned To", a.assigned_to_user_id || "-"], ["Created", a.created_at], ["Updated", a.updated_at]]),
    el("h3", {}, "Payload"), pre(a.payload),
  ];
  if (a.review) {
    parts.push(el("h3", {}, "Review"), kv([["Decision", badge(a.review.decision)], ["Reviewer", a.review.reviewer_user_id], ["Comment", a.review.comment || "-"], ["Time", a.review.created_at]]));
  } else if (a.status === "proposed") parts.push(el("h3", {}, "Review"), note("Review pending."));
  if (a.execution) {
    const e = a.execution;
    const style = e.execution_status === "succeeded" ? "done" : e.execution_status === "failed" ? "rejected" : "cancelled";
    parts.push(el("h3", {}, "Execution"), kv([["Execution ID", e.execution_id], ["Status", el("span", { class: "badge b-" + style }, e.execution_status)],
      ["Executed By", e.executed_by_user_id], ["Time", e.created_at]]), pre(e.result));
  } else if (a.status === "approved") parts.push(el("h3", {}, "Execution"), note("Execution pending."));
  parts.push(el("div", { class: "buttons" }, actionButtons(a, closeModal)));
  openModal("Action: " + a.title, parts);
}

async function openRecord(type, id) {
  try {
    const r = await api("GET", `/v1/records/${encodeURIComponent(type)}/${encodeURIComponent(id)}`);
    if (!r.ok) throw new Error(detailText(r));
    const d = r.data;
    const ev = d.evidence || [], tl = d.timeline || [];
    openModal(type[0].toUpperCase() + type.slice(1) + " Details",
      el("h3", {}, "Entity"), pre(d.entity),
      ev.length ? [el("h3", {}, `Evidence (${ev.length})`), pre(ev)] : null,
      tl.length ? [el("h3", {}, `Timeline (${tl.length})`), pre(tl)] : null);
  } catch (_) { alert("Could not load the record."); }
}

// ---- connect & start-up ----
async function connect() {
  saveCreds();
  try {
    const r = await api("GET", "/v1/me");
    if (!r.ok) { setStatus("Connection failed: authentication failed", false); return; }
    setStatus("Connected", true);
    userRole = r.data.role;
    $("userlabel").textContent = `Role: ${r.data.role} | ${r.data.email}`;
    loadSection();
  } catch (e) { setStatus("Connection failed: " + e.message, false); }
}

document.addEventListener("DOMContentLoaded", () => {
  loadCreds();
  $("connect").addEventListener("click", connect);
  $("modal-close").addEventListener("click", closeModal);
  $("diag-toggle").addEventListener("click", () => {
    const body = $("diag-body"), t = $("diag-toggle");
    const hide = !body.classList.contains("hidden");
    body.classList.toggle("hidden", hide);
    t.textContent = hide ? "+" : "_";
  });
  for (const a of document.querySelectorAll(".sections a")) {
    a.addEventListener("click", (e) => {
      e.preventDefault();
      for (const b of document.querySelectorAll(".sections a")) b.classList.remove("active");
      a.classList.add("active");
      currentSection = a.dataset.section;
      loadSection();
    });
  }
  if ($("tenant").value) connect();
});
