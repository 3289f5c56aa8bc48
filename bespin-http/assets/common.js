// Shared by /ui and /app. Every piece of data reaches the page through text nodes (via el()),
// never parsed as markup, so user text is always shown as text.
"use strict";

const KEYS = { tenant: "playground_tenant_id", key: "playground_api_key", user: "playground_user_id" };

// The API key is kept for this tab only (sessionStorage), unless "Remember the key on this
// device" is ticked: then in localStorage too, under the same name. The ids are not secret and
// stay in localStorage, so both pages pre-fill them.
function storedKey() {
  return sessionStorage.getItem(KEYS.key) || localStorage.getItem(KEYS.key) || "";
}

/** Creates an element. attrs: properties/attributes ("class", "on*" handlers, dataset via "data-*").
 * Children: strings become text nodes; null/undefined/false are skipped. */
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "value" || k === "checked" || k === "disabled") e[k] = v;
    else e.setAttribute(k, String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    e.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function $(id) { return document.getElementById(id); }

function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }

function setChildren(node, ...children) { clear(node); for (const c of children.flat(Infinity)) if (c) node.appendChild(c instanceof Node ? c : document.createTextNode(String(c))); }

function loadCreds() {
  $("tenant").value = localStorage.getItem(KEYS.tenant) || "";
  $("apikey").value = storedKey();
  $("user").value = localStorage.getItem(KEYS.user) || "";
  $("remember").checked = localStorage.getItem(KEYS.key) !== null;
}

function saveCreds() {
  localStorage.setItem(KEYS.tenant, $("tenant").value.trim());
  sessionStorage.setItem(KEYS.key, $("apikey").value.trim());
  if ($("remember").checked) localStorage.setItem(KEYS.key, $("apikey").value.trim());
  else localStorage.removeItem(KEYS.key);
  localStorage.setItem(KEYS.user, $("user").value.trim());
}

function headers() {
  return {
    "Content-Type": "application/json",
    "X-Tenant-ID": $("tenant").value.trim(),
    "X-API-Key": $("apikey").value.trim(),
    "X-User-ID": $("user").value.trim(),
  };
}

/** Calls the JSON API. Resolves to {ok, status, statusText, data, url}; rejects on network errors. */
async function api(method, path, body) {
  const init = { method, headers: headers() };
  if (body !== undefined) init.body = typeof body === "string" ? body : JSON.stringify(body);
  const res = await fetch(path, init);
  let data = null;
  try { data = await res.json(); } catch (_) { data = null; }
  return { ok: res.ok, status: res.status, statusText: res.statusText, data, url: res.url };
}

/** The error text of a failed call: `detail` as is when a string, else as JSON. */
function detailText(r, fallback) {
  const d = r && r.data && r.data.detail;
  if (d === undefined || d === null) return fallback || "Unknown error";
  return typeof d === "string" ? d : JSON.stringify(d);
}

function setStatus(text, ok) {
  const s = $("status");
  s.textContent = text;
  s.className = "status " + (ok ? "ok" : "err");
}

function fixed(n, d) { return Number(n || 0).toFixed(d); }

function todayUtc() { return new Date().toISOString().slice(0, 10); }
