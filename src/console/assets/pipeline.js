// logship console: where the lines are (/pipeline): agents, the transfer's lag and the indices, refreshed every 5 s.
"use strict";

let pipelineTimer = null;


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

page((path) => (path === "/pipeline" ? [] : null), runPipeline, () => {
  if (pipelineTimer) { clearTimeout(pipelineTimer); pipelineTimer = null; }
});
