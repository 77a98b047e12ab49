// The overview: jobs by status, this process's last hour as charts, its actors, and the
// readiness of the store and the bus.

import { api } from "../api.js";
import { el, svg, fill, badge, STATUSES } from "../dom.js";

export function render(main, context) {
  const counts = el("div", { class: "counts", id: "status-counts" });
  const charts = el("div", { class: "charts" });
  const actors = el("div", { id: "actors" });
  const readiness = el("div", { id: "readiness" });
  const scope = el("p", { class: "muted", id: "scope" });
  fill(main,
    el("h1", {}, "Overview"),
    el("div", { id: "page-problem" }),
    el("section", {}, el("h2", {}, "Jobs by status"), counts),
    el("section", {}, el("h2", {}, "The last hour"), scope, charts),
    el("div", { class: "columns" },
      el("section", {}, el("h2", {}, "Actors"), actors),
      el("section", {}, el("h2", {}, "Readiness"), readiness)));

  context.every(5000, async () => {
    const [stats, ready] = await Promise.all([api("GET", "/api/v1/stats"), readinessOf()]);
    if (context.left) return;
    fill(counts, STATUSES.map((status) =>
      el("a", { class: "count", href: `#/jobs?status=${status}`, "data-status": status },
        el("span", { class: "number" }, countText(stats.jobs[status] ?? 0, stats.count_limit)),
        badge(status))));
    fill(scope, stats.mode === "distributed"
      ? `This process's view (${stats.instance}): runs other processes made are not in these charts.`
      : `This process (${stats.instance}), in ${stats.slot_secs}-second steps.`);
    const times = stats.series.map((point) => point.at);
    fill(charts,
      chart("Runs ended per second", times, "/s", [
        { name: "succeeded", values: stats.series.map((p) => p.succeeded_per_sec), cls: "line-ok" },
        { name: "failed", values: stats.series.map((p) => p.failed_per_sec), cls: "line-bad" },
      ]),
      chart("Fire lateness", times, "ms", [
        { name: "p50", values: stats.series.map((p) => p.lateness_p50_ms), cls: "line-ok" },
        { name: "p99", values: stats.series.map((p) => p.lateness_p99_ms), cls: "line-warn" },
      ]));
    fill(actors, actorsTable(stats.actors));
    fill(readiness, readinessList(ready));
  });
}

// A count; the server stops counting at `limit`.
function countText(count, limit) {
  return count >= limit ? `${limit.toLocaleString()}+` : count.toLocaleString();
}

// `/readyz` answers 503 with the same body when a dependency is down.
async function readinessOf() {
  const response = await fetch("/readyz", { cache: "no-store" });
  return response.json();
}

function actorsTable(actors) {
  const rows = Object.entries(actors).map(([kind, state]) => {
    const backlog = state.backlog
      ? Object.entries(state.backlog).map(([key, value]) => `${key.replace("_", " ")} ${value}`).join(", ")
      : "—";
    return el("tr", {},
      el("td", {}, kind.replace("_", " ")),
      // Executors live one per job held: none is the normal state of an idle process.
      el("td", { class: state.alive > 0 || kind === "executor" ? "" : "bad" }, String(state.alive)),
      el("td", {}, String(state.restarts)),
      el("td", {}, backlog));
  });
  return el("table", {},
    el("thead", {}, el("tr", {}, ["Actor", "Alive", "Restarts", "Backlog"].map((h) => el("th", {}, h)))),
    el("tbody", {}, rows));
}

function readinessList(ready) {
  return el("ul", { class: "checks" },
    el("li", {}, el("strong", {}, ready.status === "ready" ? "Ready" : "Not ready"), ` · ${ready.mode} mode`),
    Object.entries(ready.checks).map(([name, check]) =>
      el("li", { class: check.ok ? "ok" : "bad" },
        el("span", { class: "dot" }), `${name}: ${check.location}`,
        check.reason ? el("span", { class: "muted" }, ` (${check.reason})`) : null)));
}

const WIDTH = 600;
const HEIGHT = 150;
const PAD = { left: 44, right: 8, top: 10, bottom: 20 };

// A line chart of series over the same times; null values leave gaps.
function chart(title, times, unit, series) {
  const all = series.flatMap((line) => line.values).filter((value) => value !== null);
  const top = niceCeiling(Math.max(0, ...all));
  const x = (index) => PAD.left + (index * (WIDTH - PAD.left - PAD.right)) / Math.max(1, times.length - 1);
  const y = (value) => HEIGHT - PAD.bottom - (value / top) * (HEIGHT - PAD.top - PAD.bottom);
  const grid = [0, 0.5, 1].map((share) => [
    svg("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(top * share), y2: y(top * share), class: "grid" }),
    svg("text", { x: PAD.left - 4, y: y(top * share) + 4, class: "axis", "text-anchor": "end" },
      format(top * share)),
  ]);
  const lines = series.map((line) => {
    const segments = [];
    let points = [];
    line.values.forEach((value, index) => {
      if (value === null || value === undefined) {
        if (points.length) segments.push(points);
        points = [];
      } else {
        points.push(`${x(index).toFixed(1)},${y(value).toFixed(1)}`);
      }
    });
    if (points.length) segments.push(points);
    return segments.map((segment) => segment.length === 1
      ? svg("circle", { cx: segment[0].split(",")[0], cy: segment[0].split(",")[1], r: 2, class: line.cls })
      : svg("polyline", { points: segment.join(" "), class: line.cls }));
  });
  const legend = series.map((line) => {
    const last = [...line.values].reverse().find((value) => value !== null && value !== undefined);
    return el("span", { class: `legend ${line.cls}` },
      `${line.name} ${last === undefined ? "—" : `${format(last)} ${unit}`}`);
  });
  return el("figure", { class: "chart" },
    el("figcaption", {}, title, el("span", { class: "legends" }, legend)),
    svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-label": title },
      grid, lines,
      svg("text", { x: PAD.left, y: HEIGHT - 4, class: "axis" }, "−60 min"),
      svg("text", { x: WIDTH - PAD.right, y: HEIGHT - 4, class: "axis", "text-anchor": "end" }, "now")));
}

function niceCeiling(value) {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 5, 10].map((step) => step * power).find((candidate) => candidate >= value);
}

function format(value) {
  if (value >= 100) return String(Math.round(value));
  if (value >= 10) return value.toFixed(1).replace(/\.0$/, "");
  return value.toFixed(2).replace(/\.?0+$/, "") || "0";
}
