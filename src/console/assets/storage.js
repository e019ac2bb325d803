// logship console: storage (/storage): each index's size and the day retention deletes it,
// each Elasticsearch node's disk against the watermarks. Refreshed every 30 s.
"use strict";

let storageTimer = null;
let storageVisit = 0;

function ageText(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const days = Math.floor(seconds / 86400);
  if (days >= 1) return days + " d";
  const hours = Math.floor(seconds / 3600);
  return hours >= 1 ? hours + " h" : Math.max(1, Math.floor(seconds / 60)) + " min";
}

function diskBar(n) {
  // The used share and the three watermarks, drawn in SVG (no inline style under the CSP).
  const width = 240, height = 14;
  const svg = svgEl("svg", { width: String(width), height: String(height), class: "disk", role: "img" });
  svg.append(svgEl("rect", { x: "0", y: "0", width: String(width), height: String(height), class: "disk-free" }));
  svg.append(svgEl("rect", { x: "0", y: "0", width: String(width * Math.min(n.used_percent, 100) / 100), height: String(height), class: "disk-used " + n.level }));
  for (const [mark, percent] of [["low", n.low_percent], ["high", n.high_percent], ["flood", n.flood_stage_percent]]) {
    const x = String(width * Math.min(percent, 100) / 100);
    svg.append(svgEl("line", { x1: x, x2: x, y1: "0", y2: String(height), class: "mark " + mark }));
  }
  svg.append(svgEl("title", {}, n.used_percent + "% used; low " + n.low_percent + "%, high " + n.high_percent + "%, flood stage " + n.flood_stage_percent + "%"));
  return svg;
}

async function loadStorage() {
  let answer;
  try {
    answer = await api("/api/storage");
  } catch (e) {
    showError(e.message);
    return;
  }
  showError("");
  $("storage-notes").textContent = answer.watermarks_enforced ? "" :
    "Elasticsearch does not enforce its disk watermarks here (cluster.routing.allocation.disk.threshold_enabled = false).";
  $("nodes").tBodies[0].replaceChildren(...(answer.nodes || []).map((n) =>
    el("tr", { "data-node": n.name, "data-level": n.level, class: n.warning ? "warning" : "" },
      el("td", {}, n.name),
      el("td", {}, diskBar(n)),
      el("td", { class: "number" }, n.used_percent + "%"),
      el("td", { class: "number" }, formatBytes(n.used) + " of " + formatBytes(n.total)),
      el("td", { class: "number" }, n.low_percent + "% / " + n.high_percent + "% / " + n.flood_stage_percent + "%"),
      el("td", {}, n.level.replace("_", " ")))));
  $("storage-indices").tBodies[0].replaceChildren(...(answer.indices || []).map((i) =>
    el("tr", { "data-index": i.index },
      el("td", {}, i.index),
      el("td", { class: "number" }, ageText(i.age_seconds)),
      el("td", { class: "number" }, formatNumber(i.docs)),
      el("td", { class: "number" }, formatBytes(i.bytes)),
      el("td", { class: "delete-at" }, i.delete_at ? i.delete_at.slice(0, 10) : (i.retention === "forever" ? "kept forever" : (i.retention ? "kept (no date in its name)" : "not logship's"))))));
}

async function refreshStorage(visit) {
  await loadStorage();
  if (visit === storageVisit && location.pathname === "/storage") {
    storageTimer = setTimeout(() => refreshStorage(visit), 30000);
  }
}

page((path) => (path === "/storage" ? [] : null), () => {
  showOnly("storage-view");
  storageVisit += 1;
  refreshStorage(storageVisit);
}, () => {
  if (storageTimer) { clearTimeout(storageTimer); storageTimer = null; }
});
