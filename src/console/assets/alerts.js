// logship console: alerts (/alerts): every rule with the evaluator's state — groups firing
// and since when, the last window evaluated, how far evaluation runs behind, windows held by
// late hosts — each firing group linked to the search of its lines; editors create, replace
// and delete rules (checked by the console as `logship ctl alert` checks them). Refreshed
// every 10 s.
"use strict";

let alertsTimer = null;
let alertsVisit = 0;

function timeText(ms) {
  return ms === null || ms === undefined ? "–" : new Date(ms).toISOString().replace(".000Z", "Z");
}

function searchLink(rule, fields, fromMs, toMs) {
  const parts = [];
  if (rule && rule.query) parts.push("(" + rule.query + ")");
  for (const [k, v] of Object.entries(fields || {})) parts.push(k + ':"' + String(v).replace(/"/g, '\\"') + '"');
  return "/?" + new URLSearchParams({ q: parts.join(" AND "), from: new Date(fromMs).toISOString(), to: new Date(toMs - 1).toISOString() }).toString();
}

function groupText(fields) {
  const entries = Object.entries(fields || {});
  return entries.length ? entries.map(([k, v]) => k + "=" + v).join(", ") : "(all lines)";
}

function alertRow(r) {
  const state = r.state || {};
  const groups = Object.values(state.groups || {});
  const firing = groups.filter((g) => g.firing_since !== null && g.firing_since !== undefined);
  const last = (state.recent || []).slice(-1)[0];
  const held = (state.late || []).map((l) => timeText(l.from) + " by " + l.hosts.join(", "));
  const firingCell = el("td", { class: "firing" });
  if (!firing.length) firingCell.append(r.unreadable ? "–" : "no");
  for (const g of firing) {
    const to = last ? last.to : Date.now();
    const link = el("a", { href: searchLink(r.rule, g.fields, g.firing_since, to), class: "alert-link" },
      groupText(g.fields) + " since " + timeText(g.firing_since));
    firingCell.append(el("div", {}, link));
  }
  const name = el("td", {}, r.name);
  if (r.unreadable) name.append(el("div", { class: "error" }, r.unreadable));
  const actions = el("td", {});
  if (me && me.role === "editor") {
    const edit = el("button", { type: "button" }, "edit");
    edit.addEventListener("click", () => {
      $("alert-name").value = r.name;
      $("alert-rule").value = r.rule ? JSON.stringify(r.rule, null, 2) : (r.raw || "");
    });
    const remove = el("button", { type: "button" }, "delete");
    remove.addEventListener("click", () => deleteRule(r.name));
    actions.append(edit, remove);
  }
  return el("tr", { "data-rule": r.name, class: firing.length ? "is-firing" : "" },
    name,
    el("td", {}, r.kind || "?"),
    firingCell,
    el("td", {}, last ? timeText(last.from) + " – " + timeText(last.to) : "–"),
    el("td", {}, r.behind_s === null || r.behind_s === undefined ? "–" : r.behind_s + " s"),
    el("td", {}, held.length ? held.join("; ") : "–"),
    actions);
}

async function refreshAlerts(visit) {
  let answer;
  try {
    answer = await api("/api/alerts");
    showError("");
  } catch (e) {
    showError(e.message);
  }
  if (visit !== alertsVisit || location.pathname !== "/alerts") return;
  if (answer) {
    $("alert-rules").tBodies[0].replaceChildren(...answer.rules.map(alertRow));
    $("alerts-notes").textContent = answer.rules.length ? "" : "No rule yet.";
  }
  alertsTimer = setTimeout(() => refreshAlerts(visit), 10000);
}

async function saveRule(e) {
  e.preventDefault();
  const name = $("alert-name").value.trim();
  $("alert-result").className = "";
  $("alert-result").textContent = "saving …";
  try {
    await api("/api/alerts/" + encodeURIComponent(name), {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": me ? me.csrf : "" },
      body: $("alert-rule").value,
    });
    $("alert-result").textContent = "saved " + name;
    refreshAlerts(alertsVisit);
  } catch (err) {
    $("alert-result").textContent = err.message;
    $("alert-result").className = "error";
  }
}

async function deleteRule(name) {
  try {
    await api("/api/alerts/" + encodeURIComponent(name), {
      method: "DELETE",
      headers: { "X-CSRF-Token": me ? me.csrf : "" },
    });
    $("alert-result").textContent = "deleted " + name;
    refreshAlerts(alertsVisit);
  } catch (err) {
    $("alert-result").textContent = err.message;
    $("alert-result").className = "error";
  }
}

page((path) => (path === "/alerts" ? [] : null), () => {
  showOnly("alerts-view");
  $("alert-form").hidden = !(me && me.role === "editor");
  alertsVisit += 1;
  if (alertsTimer) { clearTimeout(alertsTimer); alertsTimer = null; }
  refreshAlerts(alertsVisit);
}, () => {
  if (alertsTimer) { clearTimeout(alertsTimer); alertsTimer = null; }
});

$("alerts-link").addEventListener("click", (e) => {
  e.preventDefault();
  history.pushState(null, "", "/alerts");
  route();
});
$("alert-form").addEventListener("submit", saveRule);
