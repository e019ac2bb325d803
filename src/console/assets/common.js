// logship console, shared by every page: DOM helpers, the JSON API (with the sign-in
// redirect), the signed-in user, number formats, and the page registry the router (app.js)
// dispatches on. One script per page registers itself with `page(...)`; all state lives in
// the URL; writes carry the CSRF token from /api/me. No inline script or style anywhere: the
// console serves a Content-Security-Policy without 'unsafe-inline'.
"use strict";

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k === "style") throw new Error("inline style attribute (blocked by the CSP): set node.style instead");
    else node.setAttribute(k, v);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child ?? "")));
  }
  return node;
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

let me = null;

async function api(path, options) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (e) {
    throw new Error("the console did not answer: " + e.message);
  }
  let body;
  try {
    body = await response.json();
  } catch (e) {
    throw new Error("the console answered " + response.status + " with something unreadable");
  }
  if (response.status === 401) { location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search)); }
  if (!response.ok) throw new Error(body.error || ("error " + response.status));
  return body;
}

async function loadMe() {
  try {
    me = await api("/api/me");
  } catch (e) {
    showError(e.message);
    return;
  }
  if (me.user) {
    $("who").textContent = me.user + " (" + me.role + ")";
    $("sign-out").hidden = false;
  }
}

async function signOut() {
  try {
    await api("/logout", { method: "POST", headers: { "X-CSRF-Token": me ? me.csrf : "" } });
  } catch (e) {
    showError(e.message);
    return;
  }
  location.assign("/login");
}


function shortenMiddle(text, max) {
  if (text.length <= max) return text;
  const tail = Math.ceil((max - 1) * 0.6);
  return text.slice(0, max - 1 - tail) + "…" + text.slice(text.length - tail);
}

// Shows `text` in `span`, shortened in the middle just enough to fit the span's width (found by
// bisection on the laid-out width, so it holds for any font); the whole text is its title.
function fitMiddle(span, text) {
  span.title = text;
  span.textContent = text;
  if (span.scrollWidth <= span.clientWidth) return;
  let lo = 4, hi = text.length - 1;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    span.textContent = shortenMiddle(text, mid);
    if (span.scrollWidth <= span.clientWidth) lo = mid; else hi = mid - 1;
  }
  span.textContent = shortenMiddle(text, lo);
}


const SVG = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function formatNumber(v) {
  if (v === null || v === undefined) return "–";
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(1) + "G";
  if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

function formatBytes(v) {
  if (v === null || v === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let n = v, u = 0;
  while (n >= 1024 && u < units.length - 1) { n /= 1024; u++; }
  return (u ? n.toFixed(1) : String(n)) + " " + units[u];
}

// One line chart: every series a polyline (a lone point a dot), time on x, value on y.

function notes(box, answer) {
  const parts = [];
  for (const [source, what] of Object.entries(answer.missing || {})) parts.push(source + ": " + what);
  for (const [source, error] of Object.entries(answer.problems || {})) parts.push(source + " cannot answer: " + error);
  box.textContent = parts.join(" · ");
}

function showOnly(view) {
  for (const id of ["search-view", "context-view", "collect-view", "tail-view", "hosts-view", "pipeline-view", "storage-view", "alerts-view"]) {
    $(id).hidden = id !== view;
  }
}


// ---- pages ----

// Each page: `match(path)` gives its arguments (or null), `run(...args)` shows it, and
// `leave()` (optional) stops what it runs when another page is shown.
const pages = [];
function page(match, run, leave) {
  pages.push({ match, run, leave });
}
