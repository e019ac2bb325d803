// logship console: the search page (/): query, histogram, facets and hits, older hits on demand.
"use strict";

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

page(() => [], runSearch);

$("range").addEventListener("change", () => { $("custom").hidden = $("range").value !== "custom"; });
$("search").addEventListener("submit", (e) => {
  e.preventDefault();
  history.pushState(null, "", searchUrl(readForm()));
  route();
});
$("more").addEventListener("click", loadMore);
