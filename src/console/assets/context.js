// logship console: the context view (/context/{id}): the lines around a hit, in its file or its other streams.
"use strict";

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

page((path) => {
  const m = path.match(/^\/context\/(.+)$/);
  return m ? [decodeURIComponent(m[1])] : null;
}, runContext);

$("above").addEventListener("click", () => { contextSpan.before += 50; route(); });
$("below").addEventListener("click", () => { contextSpan.after += 50; route(); });
