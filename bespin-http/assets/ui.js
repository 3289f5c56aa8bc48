// The chat playground (50 §2.3), plus a "New conversation" button.
"use strict";

let currentConversationId = null;

const LABELS = {
  assistant_query: ["Chat", "assistant_query_daily_limit"],
  tool_invocation: ["Tools", "tool_invocation_daily_limit"],
  daily_brief_generated: ["Briefs", "daily_brief_generated_daily_limit"],
  notification_enqueued: ["Notifs", "notification_enqueued_daily_limit"],
};

function haveCreds() {
  return $("tenant").value.trim() && $("apikey").value.trim() && $("user").value.trim();
}

function loadAll() {
  loadConversations();
  loadUsage();
  loadBilling();
}

async function loadConversations() {
  const list = $("conversations");
  try {
    const r = await api("GET", "/v1/conversations");
    if (!r.ok) { setStatus(detailText(r, "Error loading conversations"), false); return; }
    setStatus("Connected", true);
    const items = (r.data && r.data.items) || [];
    if (!items.length) { setChildren(list, el("li", { class: "muted" }, "No conversations yet.")); return; }
    setChildren(list, items.map((c) => el("li", {
      class: "conv" + (c.conversation_id === currentConversationId ? " active" : ""),
      "data-id": c.conversation_id,
      title: c.title || "Untitled",
      onclick: () => openConversation(c.conversation_id),
    }, c.title || "Untitled")));
  } catch (e) {
    setStatus("Network error: " + e.message, false);
  }
}

function highlight() {
  for (const li of document.querySelectorAll("#conversations li.conv")) {
    li.classList.toggle("active", li.dataset.id === currentConversationId);
  }
}

async function openConversation(id) {
  try {
    const r = await api("GET", "/v1/conversations/" + encodeURIComponent(id));
    if (!r.ok) return;
    currentConversationId = id;
    highlight();
    renderMessages(r.data.messages || []);
  } catch (_) { /* ignored, as the contract says */ }
}

function newConversation() {
  currentConversationId = null;
  highlight();
  setChildren($("messages"), el("p", { class: "empty" }, "New conversation: send a message to start it."));
  $("msg").focus();
}

function renderMessages(messages) {
  const pane = $("messages");
  if (!messages.length) { setChildren(pane, el("p", { class: "empty" }, "No messages yet.")); return; }
  setChildren(pane, messages.map((m) => {
    const lines = String(m.content || "").split("\n");
    const text = [];
    lines.forEach((l, i) => { if (i) text.push(el("br")); text.push(l); });
    const cards = Array.isArray(m.cards) ? m.cards : [];
    return el("div", { class: "msg " + (m.role === "user" ? "user" : "assistant") },
      el("div", { class: "bubble" }, text),
      cards.map((c) => el("div", { class: "card-box" },
        el("div", { class: "card-type" }, String((c && c.type) || "card")),
        cardChart(c),
        el("pre", {}, JSON.stringify(c, null, 2)))));
  }));
  pane.scrollTop = pane.scrollHeight;
}

async function loadUsage() {
  const panel = $("usage");
  try {
    const r = await api("GET", "/v1/usage/daily");
    if (!r.ok) { setChildren(panel, el("p", { class: "err small" }, detailText(r, "Error"))); return; }
    const usage = r.data.usage || [];
    const limits = r.data.limits || {};
    if (!usage.length) { setChildren(panel, el("p", { class: "muted" }, "No usage data.")); return; }
    setChildren(panel, usage.map((u) => {
      const [label, field] = LABELS[u.activity_type] || [u.activity_type, null];
      const limit = (field && limits[field]) || 0;
      const pct = limit ? (u.units / limit) * 100 : 0;
      let cls = "line", marker = "";
      if (pct >= 100) { cls += " over"; marker = " (LIMIT)"; }
      else if (pct >= 80) { cls += " warn"; marker = " (!)"; }
      return el("div", { class: cls, "data-activity": u.activity_type }, `${label}: ${u.units}/${limit}${marker}`);
    }));
  } catch (e) {
    setChildren(panel, el("p", { class: "err small" }, "Network error: " + e.message));
  }
}

async function loadBilling() {
  const panel = $("billing");
  try {
    const r = await api("GET", "/v1/billing/usage");
    if (!r.ok) { setChildren(panel, el("p", { class: "err small" }, detailText(r, "Error"))); return; }
    const { plan, credits, breakdown } = r.data;
    const included = credits.included || 0;
    const pct = included ? (credits.used / included) * 100 : 0;
    let cls = "line strong", marker = "";
    if (pct >= 100) { cls += " over"; marker = " (OVER)"; }
    else if (pct >= 80) { cls += " warn"; marker = " (!)"; }
    const out = [
      el("div", { class: "line" }, "Plan: " + ((plan && plan.name) || "-")),
      el("div", { class: cls, id: "credits-line" }, `Credits: ${fixed(credits.used, 1)} / ${included}${marker}`),
      el("div", { class: "line muted" }, "Remaining: " + fixed(credits.remaining, 1)),
    ];
    if (credits.overage_credits > 0) {
      out.push(el("div", { class: "line over" },
        `Overage: ${fixed(credits.overage_credits, 1)} (~$${fixed(credits.estimated_overage_cost, 2)})`));
    }
    out.push(el("div", { class: "line muted" }, "Est. List Cost: $" + fixed(credits.estimated_list_cost, 4)));
    if (breakdown && breakdown.length) {
      out.push(el("div", { class: "line strong" }, "Breakdown:"));
      out.push(el("table", { class: "compact" },
        el("tr", {}, el("th", {}, "Event"), el("th", {}, "Units"), el("th", {}, "Credits")),
        breakdown.map((b) => el("tr", {},
          el("td", {}, String(b.event_key).replace("_", " ")),
          el("td", {}, String(b.raw_units)),
          el("td", {}, fixed(b.credits, 1))))));
    }
    setChildren(panel, out);
  } catch (e) {
    setChildren(panel, el("p", { class: "err small" }, "Network error: " + e.message));
  }
}

async function send(text) {
  const input = $("msg"), button = $("send");
  const message = String(text === undefined ? input.value : text).trim();
  if (!message) return;
  input.disabled = true; button.disabled = true;
  try {
    const body = { message };
    if (currentConversationId) body.conversation_id = currentConversationId;
    const r = await api("POST", "/v1/cofounder/chat", body);
    if (!r.ok) { alert("Error: " + detailText(r, "Unknown error")); return; }
    if (!currentConversationId || r.data.conversation_id !== currentConversationId) {
      currentConversationId = r.data.conversation_id;
      loadConversations();
    }
    await openConversation(currentConversationId);
    loadUsage();
    loadBilling();
    input.value = "";
  } catch (e) {
    alert("Network error: " + e.message);
  } finally {
    input.disabled = false; button.disabled = false; input.focus();
  }
}

document.addEventListener("DOMContentLoaded", () => {
  loadCreds();
  $("save").addEventListener("click", () => {
    if (!haveCreds()) { setStatus("All fields are required.", false); return; }
    saveCreds();
    setStatus("Saved, loading...", true);
    loadAll();
  });
  $("refresh-usage").addEventListener("click", loadUsage);
  $("refresh-billing").addEventListener("click", loadBilling);
  $("refresh-convs").addEventListener("click", loadConversations);
  $("new-conv").addEventListener("click", newConversation);
  $("send").addEventListener("click", () => send());
  $("msg").addEventListener("keydown", (e) => { if (e.key === "Enter") send(); });
  for (const b of document.querySelectorAll(".quick .pill")) {
    b.addEventListener("click", () => send(b.dataset.msg));
  }
  if (localStorage.getItem(KEYS.tenant) && storedKey() && localStorage.getItem(KEYS.user)) loadAll();
});
