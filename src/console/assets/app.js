// logship console: the search page (/), the context view (/context/{id}), the live tail (/tail),
// the hosts' collect entries (/collect?host=), the hosts' metric charts (/hosts?host=&range=)
// and where the lines are (/pipeline). All state lives in the URL; everything is
// fetched from the console's JSON API. Writes carry the CSRF token from /api/me.
"use strict";

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
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

function collectHost() {
  return new URLSearchParams(location.search).get("host") || "";
}

async function runCollect() {
  $("search-view").hidden = true;
  $("context-view").hidden = true;
  $("collect-view").hidden = false;
  showError("");
  const host = collectHost();
  $("collect-name").value = host;
  $("collect-result").textContent = "";
  const editor = me && me.role === "editor";
  $("collect-save").disabled = !editor || !host;
  $("collect-save").title = editor ? "" : "viewers cannot change collect entries";
  try {
    const list = await api("/api/hosts");
    $("known-hosts").replaceChildren(...list.hosts.map((h) => el("option", { value: h.host })));
  } catch (e) {
    showError(e.message);
  }
  if (!host) {
    $("collect-info").textContent = "Choose a host.";
    $("collect-entries").value = "";
    return;
  }
  try {
    const current = await api("/api/collect/" + encodeURIComponent(host));
    if (current.invalid) {
      $("collect-info").textContent = current.key + " holds an invalid value (" + current.invalid + "): fix it and save.";
      $("collect-entries").value = current.raw;
    } else {
      $("collect-info").textContent = current.key + (current.revision ? " (revision " + current.revision + ")" : " (no entries yet)");
      $("collect-entries").value = JSON.stringify(current.entries, null, 2);
    }
  } catch (e) {
    showError(e.message);
  }
}

async function saveCollect() {
  const host = collectHost();
  $("collect-result").textContent = "saving …";
  $("collect-result").className = "";
  try {
    const saved = await api("/api/collect/" + encodeURIComponent(host), {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": me ? me.csrf : "" },
      body: $("collect-entries").value,
    });
    $("collect-result").textContent = "saved: revision " + saved.revision;
    $("collect-info").textContent = saved.key + " (revision " + saved.revision + ")";
  } catch (e) {
    $("collect-result").textContent = e.message;
    $("collect-result").className = "error";
  }
}

function searchParams() {
  const p = new URLSearchParams(location.search);
  return { q: p.get("q") || "", from: p.get("from") || "now-15m", to: p.get("to") || "now" };
}

function fillForm(s) {
  $("q").value = s.q;
  const preset = [...$("range").options].some((o) => o.value === s.from) && s.to === "now";
  $("range").value = preset ? s.from : "custom";
  $("custom").hidden = preset;
  $("from").value = preset ? "" : s.from;
  $("to").value = preset ? "" : s.to;
}

function readForm() {
  const custom = $("range").value === "custom";
  return {
    q: $("q").value.trim(),
    from: custom ? ($("from").value.trim() || "now-15m") : $("range").value,
    to: custom ? ($("to").value.trim() || "now") : "now",
  };
}

function searchUrl(s) {
  const p = new URLSearchParams();
  if (s.q) p.set("q", s.q);
  p.set("from", s.from);
  p.set("to", s.to);
  return "/?" + p.toString();
}

function apiQuery(s, extra) {
  const p = new URLSearchParams({ q: s.q, from: s.from, to: s.to, ...(extra || {}) });
  return p.toString();
}

function messageCell(hit) {
  const cell = el("td", { class: "message" });
  if (hit.highlight) cell.innerHTML = hit.highlight; // HTML-escaped by Elasticsearch (encoder html)
  else cell.textContent = hit.message ?? "";
  return cell;
}

function hitRow(hit) {
  const link = el("a", { href: "/context/" + encodeURIComponent(hit.id), class: "context-link" }, "context");
  return el("tr", { "data-id": hit.id },
    el("td", { class: "time" }, hit["@timestamp"] || ""),
    el("td", { class: "where", title: hit.file || "" }, (hit.host || "") + " ", el("br"), shortenMiddle(hit.file || "", 48)),
    messageCell(hit),
    el("td", {}, link));
}

function drawHistogram(h) {
  const svg = $("histogram");
  svg.replaceChildren();
  const buckets = h.buckets || [];
  if (!buckets.length) return;
  const width = svg.clientWidth || 800, height = svg.clientHeight || 80;
  const max = Math.max(...buckets.map((b) => b.count), 1);
  const w = width / buckets.length;
  buckets.forEach((b, i) => {
    const bar = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    const bh = Math.max(b.count ? 1 : 0, (b.count / max) * (height - 4));
    bar.setAttribute("x", String(i * w + 1));
    bar.setAttribute("y", String(height - bh));
    bar.setAttribute("width", String(Math.max(w - 2, 1)));
    bar.setAttribute("height", String(bh));
    const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
    title.textContent = b.start + ": " + b.count;
    bar.append(title);
    svg.append(bar);
  });
}

// `text` shortened in the middle to at most `max` characters ("/var/log/…/app.log"): the start
// and the end of a path say the most about it.
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

function drawFacets(facets, s) {
  const box = $("facets");
  box.replaceChildren();
  for (const [field, values] of Object.entries(facets || {})) {
    box.append(el("h3", {}, field));
    for (const v of values) {
      const q = (s.q ? "(" + s.q + ") AND " : "") + field + ':"' + String(v.value).replace(/(["\\])/g, "\\$1") + '"';
      const value = String(v.value);
      const count = Number(v.count).toLocaleString("en-US");
      const shown = el("span", { class: "value" });
      box.append(el("a", { href: searchUrl({ ...s, q }), class: "facet", title: value + " (" + count + ")" },
        shown, el("span", { class: "count" }, count)));
      fitMiddle(shown, value);
    }
  }
}

let nextCursor = null;
// Searches can overlap (the page's first load, then a submit before it answered): only the
// latest may fill the page, or the answers of both would end up in one table.
let searchGeneration = 0;

async function runSearch() {
  const generation = ++searchGeneration;
  const s = searchParams();
  fillForm(s);
  $("search-view").hidden = false;
  $("context-view").hidden = true;
  showError("");
  const body = $("hits").tBodies[0];
  body.replaceChildren();
  try {
    const [page, histogram] = await Promise.all([
      api("/api/search?" + apiQuery(s, { size: "100" })),
      api("/api/histogram?" + apiQuery(s)),
    ]);
    if (generation !== searchGeneration) return;
    body.replaceChildren();
    $("summary").textContent = page.total + " hits";
    drawHistogram(histogram);
    drawFacets(page.facets, s);
    page.hits.forEach((h) => body.append(hitRow(h)));
    nextCursor = page.after;
    $("more").hidden = !nextCursor;
  } catch (e) {
    if (generation !== searchGeneration) return;
    $("summary").textContent = "";
    showError(e.message);
  }
}

async function loadMore() {
  if (!nextCursor) return;
  const s = searchParams();
  const generation = searchGeneration;
  try {
    const page = await api("/api/search?" + apiQuery(s, { size: "100", after: nextCursor }));
    if (generation !== searchGeneration) return;
    page.hits.forEach((h) => $("hits").tBodies[0].append(hitRow(h)));
    nextCursor = page.after;
    $("more").hidden = !nextCursor;
  } catch (e) {
    showError(e.message);
  }
}

let contextSpan = { before: 50, after: 50 };

async function runContext(id) {
  $("search-view").hidden = true;
  $("context-view").hidden = false;
  showError("");
  try {
    const c = await api("/api/context/" + encodeURIComponent(id) + "?before=" + contextSpan.before + "&after=" + contextSpan.after);
    const hit = c.lines[c.hit] || {};
    $("context-title").textContent = (hit.host || "") + " " + (hit.file || "") + (c.stream ? " (stream " + c.stream + ")" : "");
    const body = $("lines").tBodies[0];
    body.replaceChildren();
    c.lines.forEach((line, i) => {
      const row = el("tr", { class: i === c.hit ? "hit" : "line", "data-id": line.id },
        el("td", { class: "offset" }, line.offset ?? ""),
        el("td", { class: "time" }, line["@timestamp"] || ""),
        el("td", { class: "message" }, line.message ?? ""));
      body.append(row);
      if (i === c.hit) row.id = "the-hit";
    });
    const marked = $("the-hit");
    if (marked) marked.scrollIntoView({ block: "center" });
    showStreams(id);
  } catch (e) {
    showError(e.message);
  }
}

// Links to the streams that held the same path before and after this one (a copytruncate, or a
// new file created at the old name): the context continues there.
async function showStreams(id) {
  const box = $("streams");
  box.replaceChildren();
  try {
    const s = await api("/api/context/" + encodeURIComponent(id) + "/streams");
    if (s.previous) {
      box.append(el("a", { id: "previous-stream", href: "/context/" + encodeURIComponent(s.previous.id) },
        "← the file before this one at " + (s.file || "this path") + " (last read " + (s.previous["@timestamp"] || "") + ")"));
    }
    if (s.next) {
      box.append(el("a", { id: "next-stream", href: "/context/" + encodeURIComponent(s.next.id) },
        "the file after this one at " + (s.file || "this path") + " (first read " + (s.next["@timestamp"] || "") + ") →"));
    }
  } catch (e) {
    // The context itself is shown; the links are a convenience.
    box.append(el("span", { class: "error" }, "other files at this path: " + e.message));
  }
}

// Live tail: lines arrive over server-sent events. Paused, they wait in a bounded buffer.
const TAIL_KEEP = 2000;     // rows kept on the page
const PAUSE_BUFFER = 5000;  // lines kept while paused; beyond, the oldest are counted and dropped
let tailSource = null;
let paused = false;
let held = [];
let heldDropped = 0;

function tailRow(line) {
  return el("tr", { "data-id": line.id },
    el("td", { class: "time" }, line["@timestamp"] || ""),
    el("td", { class: "where", title: line.file || "" }, (line.host || "") + " ", el("br"), shortenMiddle(line.file || "", 48)),
    el("td", { class: "message" }, line.message ?? ""),
    el("td", {}, el("a", { href: "/context/" + encodeURIComponent(line.id) }, "context")));
}

function showTailLine(line) {
  const body = $("tail-lines").tBodies[0];
  body.append(tailRow(line));
  while (body.rows.length > TAIL_KEEP) body.deleteRow(0);
}

function runTail() {
  const q = new URLSearchParams(location.search).get("q") || "";
  $("q").value = q;
  $("search-view").hidden = true;
  $("context-view").hidden = true;
  $("tail-view").hidden = false;
  showError("");
  if (tailSource) tailSource.close();
  $("tail-lines").tBodies[0].replaceChildren();
  $("tail-status").textContent = "following " + (q ? "lines matching " + q : "every line") + " …";
  tailSource = new EventSource("/api/tail?" + new URLSearchParams({ q }).toString());
  tailSource.addEventListener("line", (e) => {
    const line = JSON.parse(e.data);
    if (paused) {
      held.push(line);
      if (held.length > PAUSE_BUFFER) { held.shift(); heldDropped += 1; }
      $("tail-status").textContent = "paused: " + held.length + " new lines waiting" + (heldDropped ? " (" + heldDropped + " older ones dropped)" : "");
    } else {
      showTailLine(line);
    }
  });
  tailSource.addEventListener("overflow", (e) => {
    $("tail-status").textContent = JSON.parse(e.data).matching + " lines matched in the last 30 s: showing the newest; search for all of them";
  });
  tailSource.addEventListener("error", (e) => {
    if (e.data) showError(JSON.parse(e.data).error);
  });
  tailSource.addEventListener("dropped", () => {
    tailSource.close();
    showError("this page fell too far behind and was disconnected; reload to follow again");
  });
}

function togglePause() {
  paused = !paused;
  $("pause").textContent = paused ? "Resume" : "Pause";
  if (!paused) {
    held.forEach(showTailLine);
    held = [];
    heldDropped = 0;
    $("tail-status").textContent = "following …";
  }
}

// ---- fleet pages ----

const SVG = "http://www.w3.org/2000/svg";
const COLORS = ["#4a78c2", "#d9822b", "#3f9d5a", "#b8483f", "#7d5ba6", "#3aa0a8", "#a08a2e", "#666"];
let pipelineTimer = null;

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
function drawChart(chart) {
  const width = 480, height = 160, left = 44, bottom = 18, top = 6, right = 6;
  const figure = el("figure", { class: "chart", "data-title": chart.title });
  figure.append(el("figcaption", {}, chart.title + (chart.unit ? " (" + chart.unit + ")" : "")));
  const svg = svgEl("svg", { viewBox: "0 0 " + width + " " + height, preserveAspectRatio: "none", role: "img", "aria-label": chart.title });
  const points = chart.series.flatMap((s) => s.points);
  figure.dataset.points = String(points.length);
  if (!points.length) {
    svg.append(svgEl("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "axis" }, "no data in this range"));
    figure.append(svg);
    return figure;
  }
  // A loop, not Math.min(...points): spreading a week of many series overflows the stack.
  let t0 = Infinity, t1 = -Infinity, vmax = 0;
  for (const [t, v] of points) {
    if (t < t0) t0 = t;
    if (t > t1) t1 = t;
    if (v > vmax) vmax = v;
  }
  if (chart.unit === "%") vmax = 100;
  if (vmax <= 0) vmax = 1;
  const x = (t) => left + (t1 === t0 ? (width - left - right) / 2 : ((t - t0) / (t1 - t0)) * (width - left - right));
  const y = (v) => top + (1 - v / vmax) * (height - top - bottom);
  for (const f of [0, 0.5, 1]) {
    svg.append(svgEl("line", { x1: left, x2: width - right, y1: y(vmax * f), y2: y(vmax * f), class: "grid" }));
    svg.append(svgEl("text", { x: left - 4, y: y(vmax * f) + 3, "text-anchor": "end", class: "axis" }, formatNumber(vmax * f)));
  }
  const time = (t) => new Date(t).toISOString().slice(11, 16);
  svg.append(svgEl("text", { x: left, y: height - 4, class: "axis" }, time(t0)));
  svg.append(svgEl("text", { x: width - right, y: height - 4, "text-anchor": "end", class: "axis" }, time(t1)));
  const legend = el("div", { class: "legend" });
  chart.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    if (s.points.length === 1) {
      svg.append(svgEl("circle", { cx: x(s.points[0][0]), cy: y(s.points[0][1]), r: 2, fill: color, class: "series" }));
    } else if (s.points.length > 1) {
      const d = s.points.map((p) => x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1)).join(" ");
      svg.append(svgEl("polyline", { points: d, fill: "none", stroke: color, "stroke-width": 1.5, class: "series", "vector-effect": "non-scaling-stroke" }));
    }
    const last = s.points.length ? s.points[s.points.length - 1][1] : null;
    legend.append(el("span", {}, el("span", { class: "swatch", style: "background:" + color }), s.name + " " + formatNumber(last)));
  });
  figure.append(svg, legend);
  return figure;
}

function notes(box, answer) {
  const parts = [];
  for (const [source, what] of Object.entries(answer.missing || {})) parts.push(source + ": " + what);
  for (const [source, error] of Object.entries(answer.problems || {})) parts.push(source + " cannot answer: " + error);
  box.textContent = parts.join(" · ");
}

function showOnly(view) {
  for (const id of ["search-view", "context-view", "collect-view", "tail-view", "hosts-view", "pipeline-view"]) {
    $(id).hidden = id !== view;
  }
}

async function runHosts() {
  showOnly("hosts-view");
  showError("");
  const params = new URLSearchParams(location.search);
  const range = params.get("range") || "1h";
  $("metrics-range").value = range;
  let fleet;
  try {
    fleet = await api("/api/fleet");
  } catch (e) {
    showError(e.message);
    return;
  }
  notes($("hosts-notes"), fleet);
  const hosts = fleet.hosts || [];
  const chosen = params.get("host") || (hosts.find((h) => h.metrics) || hosts[0] || {}).host || "";
  $("host-list").replaceChildren(...hosts.map((h) => {
    const link = el("a", { href: "/hosts?" + new URLSearchParams({ host: h.host, range }).toString() }, h.host);
    const item = el("li", { class: h.host === chosen ? "current" : "", "data-host": h.host },
      link, el("span", { class: "state " + (h.alive ? "alive" : "dead") }, h.alive ? "alive" : "dead"));
    return item;
  }));
  $("host-title").textContent = chosen;
  $("host-collect").hidden = !chosen;
  $("host-collect").href = "/collect?" + new URLSearchParams({ host: chosen }).toString();
  $("charts").replaceChildren();
  if (!chosen) {
    $("charts").append(el("p", { class: "notes" }, "No host has sent metrics or has collect entries yet."));
    return;
  }
  try {
    const answer = await api("/api/hosts/" + encodeURIComponent(chosen) + "/metrics?range=" + encodeURIComponent(range));
    $("charts").replaceChildren(...answer.charts.map(drawChart));
  } catch (e) {
    showError(e.message);
  }
}

function numberCell(value, href, format) {
  const text = (format || formatNumber)(value);
  return el("td", { class: "number" }, href ? el("a", { href }, text) : text);
}

async function loadPipeline() {
  let answer;
  try {
    answer = await api("/api/pipeline");
  } catch (e) {
    showError(e.message);
    return;
  }
  showError("");
  notes($("pipeline-notes"), answer);
  $("agents").tBodies[0].replaceChildren(...(answer.agents || []).flatMap((a) => {
    const p = a.progress || {};
    const collect = "/collect?" + new URLSearchParams({ host: a.host }).toString();
    const search = "/?" + new URLSearchParams({ q: "host:\"" + a.host + "\"", from: "now-24h", to: "now" }).toString();
    const row = el("tr", { "data-host": a.host, "data-alive": String(a.alive) },
      el("td", {}, el("a", { href: "/hosts?" + new URLSearchParams({ host: a.host }).toString() }, a.host)),
      el("td", {}, el("span", { class: "state " + (a.alive ? "alive" : "dead") }, a.alive ? "alive" : "dead")),
      el("td", {}, a.version || "–"),
      el("td", {}, a.heartbeat_at || "–"),
      numberCell(a.files, collect),
      numberCell(p.bytes_behind, search, formatBytes),
      numberCell(p.wal_pending_records, search),
      numberCell(p.wal_pending_bytes, search, formatBytes));
    const rows = [row];
    if ((p.files || []).length) {
      const list = el("ul", {}, ...p.files.map((f) => el("li", {}, f.path + ": " + formatBytes(f.bytes_behind) + " behind (offset " + f.offset + ")")));
      const more = p.files_total > p.files.length ? " (the " + p.files.length + " most behind of " + p.files_total + ")" : "";
      rows.push(el("tr", { class: "files" }, el("td", { colspan: "8" }, el("details", {}, el("summary", {}, "files" + more), list))));
    }
    return rows;
  }));
  const lag = answer.lag || {};
  $("lag-group").textContent = lag.group ? "group " + lag.group + (lag.total !== undefined ? ", total " + lag.total : "") : "";
  $("lag").tBodies[0].replaceChildren(...(lag.partitions || []).map((p) =>
    el("tr", { "data-topic": p.topic, "data-partition": String(p.partition) },
      el("td", {}, p.topic), el("td", { class: "number" }, String(p.partition)),
      numberCell(p.committed, "/api/pipeline"), numberCell(p.end, "/api/pipeline"),
      el("td", { class: "number lag" }, el("a", { href: "/api/pipeline" }, String(p.lag))))));
  $("indices").tBodies[0].replaceChildren(...(answer.indices || []).map((i) =>
    el("tr", { "data-index": i.index },
      el("td", {}, i.index),
      numberCell(i.docs, "/?" + new URLSearchParams({ q: "_index:\"" + i.index + "\"", from: "now-7d", to: "now" }).toString()),
      numberCell(i.bytes, null, formatBytes))));
}

// Refreshed 5 s after each answer (never two requests at once, however slow the sources); a
// refresh of an earlier visit of the page stops.
let pipelineVisit = 0;
async function refreshPipeline(visit) {
  await loadPipeline();
  if (visit === pipelineVisit && location.pathname === "/pipeline") {
    pipelineTimer = setTimeout(() => refreshPipeline(visit), 5000);
  }
}

function runPipeline() {
  showOnly("pipeline-view");
  pipelineVisit += 1;
  refreshPipeline(pipelineVisit);
}

function route() {
  const m = location.pathname.match(/^\/context\/(.+)$/);
  if (tailSource && location.pathname !== "/tail") { tailSource.close(); tailSource = null; }
  if (pipelineTimer) { clearTimeout(pipelineTimer); pipelineTimer = null; }
  $("tail-view").hidden = true;
  $("collect-view").hidden = true;
  $("hosts-view").hidden = true;
  $("pipeline-view").hidden = true;
  if (m) runContext(decodeURIComponent(m[1]));
  else if (location.pathname === "/tail") runTail();
  else if (location.pathname === "/collect") runCollect();
  else if (location.pathname === "/hosts") runHosts();
  else if (location.pathname === "/pipeline") runPipeline();
  else runSearch();
}

$("range").addEventListener("change", () => { $("custom").hidden = $("range").value !== "custom"; });
$("search").addEventListener("submit", (e) => {
  e.preventDefault();
  history.pushState(null, "", searchUrl(readForm()));
  route();
});
$("more").addEventListener("click", loadMore);
$("pause").addEventListener("click", togglePause);
$("tail-link").addEventListener("click", (e) => {
  e.preventDefault();
  history.pushState(null, "", "/tail?" + new URLSearchParams({ q: $("q").value.trim() }).toString());
  route();
});
$("above").addEventListener("click", () => { contextSpan.before += 50; route(); });
$("below").addEventListener("click", () => { contextSpan.after += 50; route(); });
$("collect-link").addEventListener("click", (e) => {
  e.preventDefault();
  history.pushState(null, "", "/collect");
  route();
});
$("collect-host").addEventListener("submit", (e) => {
  e.preventDefault();
  history.pushState(null, "", "/collect?" + new URLSearchParams({ host: $("collect-name").value.trim() }).toString());
  route();
});
$("collect-save").addEventListener("click", saveCollect);
$("metrics-range").addEventListener("change", () => {
  const params = new URLSearchParams(location.search);
  params.set("range", $("metrics-range").value);
  history.pushState(null, "", "/hosts?" + params.toString());
  route();
});
$("sign-out").addEventListener("click", signOut);
window.addEventListener("popstate", route);
loadMe().then(route);
