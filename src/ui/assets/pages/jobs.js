// The jobs list: filtered by status, name, schedule and creation time, newest first, paged,
// refreshing itself every few seconds.

import { api } from "../api.js";
import { el, fill, badge, time, shortId, STATUSES } from "../dom.js";

const FILTERS = ["status", "name", "schedule_id", "created_after", "created_before"];

export function render(main, context) {
  const params = context.params;
  const status = el("select", { id: "filter-status", name: "status" },
    el("option", { value: "" }, "any status"),
    STATUSES.map((name) => el("option", { value: name, selected: params.get("status") === name }, name)));
  const name = el("input", { id: "filter-name", name: "name", type: "search", placeholder: "name contains",
    value: params.get("name") || "", maxlength: 200 });
  const schedule = el("input", { id: "filter-schedule", name: "schedule_id", placeholder: "schedule id",
    value: params.get("schedule_id") || "" });
  const after = el("input", { id: "filter-after", name: "created_after", type: "datetime-local",
    value: toLocalInput(params.get("created_after")) });
  const before = el("input", { id: "filter-before", name: "created_before", type: "datetime-local",
    value: toLocalInput(params.get("created_before")) });
  const form = el("form", { class: "filters", id: "job-filters" },
    labelled("Status", status), labelled("Name", name), labelled("Schedule", schedule),
    labelled("Created from", after), labelled("to", before),
    el("div", { class: "actions" },
      el("button", { type: "submit", id: "filter-apply" }, "Filter"),
      el("a", { href: "#/jobs", class: "button quiet" }, "Clear")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    const values = {
      status: status.value, name: name.value.trim(), schedule_id: schedule.value.trim(),
      created_after: fromLocalInput(after.value), created_before: fromLocalInput(before.value),
    };
    for (const key of FILTERS) if (values[key]) next.set(key, values[key]);
    location.hash = `#/jobs?${next}`;
  });

  const refresh = el("input", { type: "checkbox", id: "auto-refresh", checked: true });
  const table = el("div", { class: "table-wrap" });
  const pager = el("nav", { class: "pager", "aria-label": "Pages" });
  fill(main,
    el("div", { class: "title" }, el("h1", {}, "Jobs"),
      el("a", { href: "#/new", class: "button" }, "New job")),
    form,
    el("div", { id: "page-problem" }),
    el("label", { class: "inline muted" }, refresh, " refresh every 5 s"),
    table, pager);

  const query = new URLSearchParams();
  for (const key of [...FILTERS, "cursor"]) if (params.get(key)) query.set(key, params.get(key));
  query.set("limit", "25");
  let first = true;
  context.every(5000, async () => {
    if (!first && !refresh.checked) return;
    first = false;
    const page = await api("GET", `/api/v1/jobs?${query}`);
    if (context.left) return;
    fill(table, jobsTable(page.jobs));
    const base = new URLSearchParams(query);
    base.delete("limit");
    base.delete("cursor");
    const older = new URLSearchParams(base);
    if (page.next_cursor) older.set("cursor", page.next_cursor);
    fill(pager,
      params.get("cursor") ? el("a", { href: `#/jobs?${base}`, id: "newest" }, "← Newest") : null,
      page.next_cursor ? el("a", { href: `#/jobs?${older}`, id: "older" }, "Older →") : null);
  });
}

export function jobsTable(jobs) {
  if (jobs.length === 0) return el("p", { class: "muted", id: "no-jobs" }, "No jobs match.");
  return el("table", { class: "jobs", id: "jobs-table" },
    el("thead", {}, el("tr", {},
      el("th", {}, "Job"), el("th", {}, "Status"), el("th", { class: "wide" }, "Kind"),
      el("th", {}, "Due"), el("th", { class: "wide" }, "Attempts"), el("th", { class: "wide" }, "Created"))),
    el("tbody", {}, jobs.map((job) => el("tr", { "data-job-id": job.id, "data-status": job.status },
      el("td", {}, el("a", { href: `#/jobs/${job.id}` }, job.name || "(no name)"), el("br"), shortId(job.id)),
      el("td", {}, badge(job.status)),
      el("td", { class: "wide" }, job.kind),
      el("td", {}, time(job.execute_at)),
      el("td", { class: "wide" }, String(job.attempts)),
      el("td", { class: "wide" }, time(job.created_at))))));
}

function labelled(text, input) {
  return el("label", {}, el("span", {}, text), input);
}

// An RFC 3339 time as a datetime-local input's value, in the browser's zone.
function toLocalInput(iso) {
  if (!iso) return "";
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())}T${pad(at.getHours())}:${pad(at.getMinutes())}`;
}

// A datetime-local input's value (the browser's zone) as RFC 3339 in UTC.
export function fromLocalInput(value) {
  if (!value) return "";
  const at = new Date(value);
  return Number.isNaN(at.getTime()) ? "" : at.toISOString();
}
