// logship console: the hosts (/hosts?host=&range=): the fleet's hosts and one host's metric charts.
"use strict";

const COLORS = ["#4a78c2", "#d9822b", "#3f9d5a", "#b8483f", "#7d5ba6", "#3aa0a8", "#a08a2e", "#666"];

// A legend's colour square (its colour set through the CSSOM: the CSP allows no style attribute).
function swatch(color) {
  const node = el("span", { class: "swatch" });
  node.style.background = color;
  return node;
}

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
    legend.append(el("span", {}, swatch(color), s.name + " " + formatNumber(last)));
  });
  figure.append(svg, legend);
  return figure;
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

page((path) => (path === "/hosts" ? [] : null), runHosts);

$("metrics-range").addEventListener("change", () => {
  const params = new URLSearchParams(location.search);
  params.set("range", $("metrics-range").value);
  history.pushState(null, "", "/hosts?" + params.toString());
  route();
});
