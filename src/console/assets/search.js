// logship console: the search page (/): query, histogram, facets and hits, older hits on demand;
// fields as columns, a click on a value to filter in or out, saved searches (/s/{name} opens a
// shared one), and exporting every hit as CSV or NDJSON. All of it lives in the URL:
// q, from, to, cols, order, saved.
"use strict";

function searchParams() {
  const p = new URLSearchParams(location.search);
  const cols = (p.get("cols") || "").split(",").map((c) => c.trim()).filter(Boolean);
  return {
    q: p.get("q") || "", from: p.get("from") || "now-15m", to: p.get("to") || "now",
    cols, order: p.get("order") === "asc" ? "asc" : "desc", saved: p.get("saved") || "",
  };
}

function fillForm(s) {
  $("q").value = s.q;
  const preset = [...$("range").options].some((o) => o.value === s.from) && s.to === "now";
  $("range").value = preset ? s.from : "custom";
  $("custom").hidden = preset;
  $("from").value = preset ? "" : s.from;
  $("to").value = preset ? "" : s.to;
  $("order").value = s.order;
}

function readForm() {
  const custom = $("range").value === "custom";
  const current = searchParams();
  return {
    q: $("q").value.trim(),
    from: custom ? ($("from").value.trim() || "now-15m") : $("range").value,
    to: custom ? ($("to").value.trim() || "now") : "now",
    cols: current.cols,
    order: $("order").value,
    saved: current.saved,
  };
}

function searchUrl(s) {
  const p = new URLSearchParams();
  if (s.q) p.set("q", s.q);
  p.set("from", s.from);
  p.set("to", s.to);
  if (s.cols && s.cols.length) p.set("cols", s.cols.join(","));
  if (s.order === "asc") p.set("order", "asc");
  if (s.saved) p.set("saved", s.saved);
  return "/?" + p.toString();
}

function apiQuery(s, extra) {
  const p = new URLSearchParams({ q: s.q, from: s.from, to: s.to, order: s.order || "desc", ...(extra || {}) });
  return p.toString();
}

// ---- query_string escaping: a field name with its reserved characters escaped, a value as a
// quoted phrase (inside quotes only `"` and `\` are special: colons, AND, OR stay literal).

function queryField(name) {
  return name.replace(/([+\-=&|><!(){}[\]^"~*?:\\/ ])/g, "\\$1");
}

function queryValue(value) {
  return '"' + String(value).replace(/(["\\])/g, "\\$1") + '"';
}

function withFilter(q, field, value, negate) {
  const clause = (negate ? "NOT " : "") + queryField(field) + ":" + queryValue(value);
  return q ? "(" + q + ") AND " + clause : clause;
}

// The value of `field` in a hit: a key as written, or a path through objects.
function fieldValue(hit, field) {
  if (Object.prototype.hasOwnProperty.call(hit, field)) return hit[field];
  let node = hit;
  for (const part of field.split(".")) {
    if (node === null || typeof node !== "object" || !(part in node)) return undefined;
    node = node[part];
  }
  return node;
}

function messageCell(hit) {
  const cell = el("td", { class: "message" });
  if (hit.highlight) cell.innerHTML = hit.highlight; // HTML-escaped by Elasticsearch (encoder html)
  else cell.textContent = hit.message ?? "";
  return cell;
}

function valueCell(s, field, value) {
  const cell = el("td", { class: "col", "data-field": field });
  if (value === undefined || value === null) return cell;
  const scalar = typeof value !== "object";
  const text = scalar ? String(value) : JSON.stringify(value);
  cell.append(el("span", { class: "value" }, text));
  if (scalar) {
    cell.append(
      el("a", { class: "filter-in", title: "only " + field + " = " + text, href: searchUrl({ ...s, q: withFilter(s.q, field, value, false) }) }, "+"),
      el("a", { class: "filter-out", title: "without " + field + " = " + text, href: searchUrl({ ...s, q: withFilter(s.q, field, value, true) }) }, "−"));
  }
  return cell;
}

function hitRow(hit, s) {
  const link = el("a", { href: "/context/" + encodeURIComponent(hit.id), class: "context-link" }, "context");
  const cells = [el("td", { class: "time" }, hit["@timestamp"] || "")];
  if (s.cols.length) {
    for (const field of s.cols) cells.push(valueCell(s, field, fieldValue(hit, field)));
  } else {
    cells.push(el("td", { class: "where", title: hit.file || "" }, (hit.host || "") + " ", el("br"), shortenMiddle(hit.file || "", 48)));
  }
  cells.push(messageCell(hit), el("td", {}, link));
  return el("tr", { "data-id": hit.id }, ...cells);
}

function drawHead(s) {
  const names = ["time", ...(s.cols.length ? s.cols : ["where"]), "message", ""];
  $("hits").tHead.replaceChildren(el("tr", {}, ...names.map((n) => el("th", {}, n))));
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

function drawFacets(facets, s) {
  const box = $("facets");
  box.replaceChildren();
  for (const [field, values] of Object.entries(facets || {})) {
    box.append(el("h3", {}, field));
    for (const v of values) {
      const value = String(v.value);
      const count = Number(v.count).toLocaleString("en-US");
      const shown = el("span", { class: "value" });
      box.append(el("div", { class: "facet-row" },
        el("a", { href: searchUrl({ ...s, q: withFilter(s.q, field, v.value, false) }), class: "facet", title: value + " (" + count + ")" },
          shown, el("span", { class: "count" }, count)),
        el("a", { href: searchUrl({ ...s, q: withFilter(s.q, field, v.value, true) }), class: "facet-out", title: "without " + value }, "−")));
      fitMiddle(shown, value);
    }
  }
}

// ---- columns: the fields of the indices' mapping, ticked ones shown as columns.

let knownFields = null;

async function loadFields() {
  if (knownFields) return knownFields;
  try {
    knownFields = (await api("/api/fields")).fields || [];
  } catch (e) {
    knownFields = [];
  }
  return knownFields;
}

async function drawFieldList(s) {
  const fields = await loadFields();
  const filter = $("field-filter").value.trim().toLowerCase();
  const names = [...new Set([...s.cols, ...fields.map((f) => f.name)])]
    .filter((n) => n !== "message" && (!filter || n.toLowerCase().includes(filter)));
  $("field-list").replaceChildren(...names.map((name) => {
    const box = el("input", { type: "checkbox", "data-field": name });
    box.checked = s.cols.includes(name);
    box.addEventListener("change", () => {
      const now = searchParams();
      const cols = box.checked ? [...now.cols, name] : now.cols.filter((c) => c !== name);
      history.pushState(null, "", searchUrl({ ...now, cols }));
      route();
    });
    const kind = (fields.find((f) => f.name === name) || {}).type || "";
    return el("li", {}, el("label", {}, box, " " + name + " ", el("span", { class: "muted" }, kind)));
  }));
}

// ---- hits

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
  drawHead(s);
  drawFieldList(s);
  showSaved(s);
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
    page.hits.forEach((h) => body.append(hitRow(h, s)));
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
    page.hits.forEach((h) => $("hits").tBodies[0].append(hitRow(h, s)));
    nextCursor = page.after;
    $("more").hidden = !nextCursor;
  } catch (e) {
    showError(e.message);
  }
}

// ---- saved searches

let savedList = null;

function writeOptions() {
  return { "Content-Type": "application/json", "X-CSRF-Token": me ? me.csrf : "" };
}

async function loadSaved() {
  try {
    savedList = await api("/api/searches");
  } catch (e) {
    savedList = null; // no [etcd]: no saved searches on this console
  }
  $("saved-controls").hidden = !savedList;
  if (!savedList) return;
  const option = (scope, x) => {
    const o = el("option", { value: scope + "/" + x.name }, x.name + (x.unreadable ? " (unreadable)" : ""));
    o.disabled = Boolean(x.unreadable);
    return o;
  };
  const group = (label, scope, list) => el("optgroup", { label }, ...list.map((x) => option(scope, x)));
  const options = [el("option", { value: "" }, "saved searches…")];
  if (savedList.personal.length) options.push(group("personal", "personal", savedList.personal));
  if (savedList.shared.length) options.push(group("shared", "shared", savedList.shared));
  $("saved").replaceChildren(...options);
  $("save-shared-label").hidden = !savedList.can_share;
  showSaved(searchParams());
}

function findSaved(key) {
  if (!savedList || !key) return null;
  const [scope, ...rest] = key.split("/");
  const name = rest.join("/");
  return (savedList[scope] || []).find((x) => x.name === name) || null;
}

function showSaved(s) {
  $("saved").value = findSaved(s.saved) ? s.saved : "";
  const [scope, ...rest] = s.saved.split("/");
  const canDelete = findSaved(s.saved) && (scope === "personal" || (savedList && savedList.can_share));
  $("delete-search").hidden = !canDelete;
  $("saved-info").replaceChildren();
  if (scope === "shared" && rest.length) {
    const href = "/s/" + encodeURIComponent(rest.join("/"));
    $("saved-info").append("shared search “" + rest.join("/") + "”: ", el("a", { href, id: "shared-link" }, location.origin + href));
  }
}

function openSaved(key, search, replace) {
  const s = { q: search.q || "", from: search.from, to: search.to, cols: search.columns || [], order: search.order || "desc", saved: key };
  if (replace) history.replaceState(null, "", searchUrl(s));
  else history.pushState(null, "", searchUrl(s));
  route();
}

async function saveSearch(e) {
  e.preventDefault();
  const s = searchParams();
  const scope = $("save-shared").checked && savedList && savedList.can_share ? "shared" : "personal";
  const name = $("save-name").value.trim();
  try {
    await api("/api/searches", {
      method: "POST", headers: writeOptions(),
      body: JSON.stringify({ scope, name, q: s.q, from: s.from, to: s.to, columns: s.cols, order: s.order }),
    });
  } catch (err) {
    showError(err.message);
    return;
  }
  $("save-form").hidden = true;
  await loadSaved();
  history.replaceState(null, "", searchUrl({ ...s, saved: scope + "/" + name }));
  showSaved(searchParams());
}

async function deleteSearch() {
  const key = searchParams().saved;
  const [scope, ...rest] = key.split("/");
  try {
    await api("/api/searches/" + scope + "/" + encodeURIComponent(rest.join("/")), { method: "DELETE", headers: writeOptions() });
  } catch (err) {
    showError(err.message);
    return;
  }
  history.replaceState(null, "", searchUrl({ ...searchParams(), saved: "" }));
  await loadSaved();
}

// The saved searches as the JSON "Export saved" downloads and "Import saved" reads.
function savedJson() {
  const all = { personal: (savedList.personal || []).filter((x) => !x.unreadable), shared: (savedList.shared || []).filter((x) => !x.unreadable) };
  return JSON.stringify(all, null, 2);
}

function exportSaved() {
  const blob = new Blob([savedJson()], { type: "application/json" });
  const a = el("a", { href: URL.createObjectURL(blob), download: "logship-saved-searches.json" });
  document.body.append(a);
  a.click();
  a.remove();
}

async function importSaved() {
  const file = $("import-searches").files[0];
  if (!file) return;
  let data;
  try {
    data = JSON.parse(await file.text());
  } catch (e) {
    showError("not JSON: " + e.message);
    return;
  }
  const entries = Array.isArray(data) ? data.map((x) => ["personal", x])
    : [...(data.personal || []).map((x) => ["personal", x]), ...(data.shared || []).map((x) => [savedList.can_share ? "shared" : "personal", x])];
  const failed = [];
  for (const [scope, x] of entries) {
    try {
      await api("/api/searches", { method: "POST", headers: writeOptions(), body: JSON.stringify({ ...x, scope }) });
    } catch (e) {
      failed.push((x.name || "?") + ": " + e.message);
    }
  }
  $("import-searches").value = "";
  await loadSaved();
  $("saved-info").textContent = "imported " + (entries.length - failed.length) + " of " + entries.length + (failed.length ? "; refused: " + failed.join("; ") : "");
}

// ---- export of every hit, streamed: the rows counted as they arrive, cancellable.

let exporting = null;

async function exportHits(format) {
  if (exporting) return;
  const s = searchParams();
  const fields = ["@timestamp", "host", "file", ...s.cols.filter((c) => !["@timestamp", "host", "file", "message"].includes(c)), "message"];
  const controller = new AbortController();
  exporting = controller;
  $("export-cancel").hidden = false;
  const status = $("export-status");
  status.textContent = "exporting…";
  let rows = 0, quoted = false, header = format === "csv";
  const chunks = [];
  try {
    const response = await fetch("/api/export?" + new URLSearchParams({ q: s.q, from: s.from, to: s.to, format, fields: fields.join(",") }), { signal: controller.signal });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      throw new Error(body.error || ("error " + response.status));
    }
    const total = Number(response.headers.get("X-Total-Count") || "0");
    const reader = response.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      for (const byte of value) {
        if (byte === 34) quoted = !quoted; // a doubled quote flips twice
        else if (byte === 10 && !quoted) {
          if (header) header = false;
          else rows += 1;
        }
      }
      status.textContent = "exporting: " + rows.toLocaleString("en-US") + " of " + total.toLocaleString("en-US") + " rows";
    }
    status.textContent = "exported " + rows.toLocaleString("en-US") + " rows";
    const type = format === "csv" ? "text/csv" : "application/x-ndjson";
    const a = el("a", { href: URL.createObjectURL(new Blob(chunks, { type })), download: "logship-export." + format, id: "export-file" });
    document.body.append(a);
    a.click();
    a.remove();
  } catch (e) {
    status.textContent = controller.signal.aborted
      ? "cancelled after " + rows.toLocaleString("en-US") + " rows"
      : "export failed after " + rows.toLocaleString("en-US") + " rows: " + e.message;
  } finally {
    exporting = null;
    $("export-cancel").hidden = true;
  }
}

// ---- pages: search (the last resort), and /s/{name} opening a shared search

page(() => [], runSearch);

page((path) => {
  const m = path.match(/^\/s\/(.+)$/);
  return m ? [decodeURIComponent(m[1])] : null;
}, async (name) => {
  try {
    const search = await api("/api/searches/shared/" + encodeURIComponent(name));
    if (search.unreadable) throw new Error("the shared search " + name + " is unreadable: " + search.unreadable);
    openSaved("shared/" + name, search, true);
  } catch (e) {
    showOnly("search-view");
    showError(e.message);
  }
});

$("range").addEventListener("change", () => { $("custom").hidden = $("range").value !== "custom"; });
$("search").addEventListener("submit", (e) => {
  e.preventDefault();
  history.pushState(null, "", searchUrl(readForm()));
  route();
});
$("order").addEventListener("change", () => {
  history.pushState(null, "", searchUrl({ ...searchParams(), order: $("order").value }));
  route();
});
$("more").addEventListener("click", loadMore);
$("field-filter").addEventListener("input", () => drawFieldList(searchParams()));
$("saved").addEventListener("change", () => {
  const key = $("saved").value;
  const search = findSaved(key);
  if (search) openSaved(key, search, false);
});
$("save-search").addEventListener("click", () => {
  const [, ...rest] = searchParams().saved.split("/");
  $("save-name").value = rest.join("/");
  $("save-form").hidden = false;
  $("save-name").focus();
});
$("save-cancel").addEventListener("click", () => { $("save-form").hidden = true; });
$("save-form").addEventListener("submit", saveSearch);
$("delete-search").addEventListener("click", deleteSearch);
$("export-searches").addEventListener("click", exportSaved);
$("import-searches").addEventListener("change", importSaved);
$("export-csv").addEventListener("click", () => exportHits("csv"));
$("export-ndjson").addEventListener("click", () => exportHits("ndjson"));
$("export-cancel").addEventListener("click", () => { if (exporting) exporting.abort(); });
loadSaved();
