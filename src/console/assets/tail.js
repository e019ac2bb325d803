// logship console: the live tail (/tail?q=): lines as they are indexed, with pause.
"use strict";

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


page((path) => (path === "/tail" ? [] : null), runTail, (next) => {
  // A new query on the tail page keeps the source: runTail replaces it.
  if (tailSource && next !== "/tail") { tailSource.close(); tailSource = null; }
});

$("pause").addEventListener("click", togglePause);
$("tail-link").addEventListener("click", (e) => {
  e.preventDefault();
  history.pushState(null, "", "/tail?" + new URLSearchParams({ q: $("q").value.trim() }).toString());
  route();
});
