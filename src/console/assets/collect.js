// logship console: a host's collect entries (/collect?host=): read, edit and save them (editors).
"use strict";

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

page((path) => (path === "/collect" ? [] : null), runCollect);

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
