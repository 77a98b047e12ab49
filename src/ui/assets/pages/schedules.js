// Schedules: the list with each one's next fire, and a schedule's page with its next fires,
// its recent jobs, and pause / resume / trigger.

import { api } from "../api.js";
import { el, fill, badge, time, local, facts, confirmAction } from "../dom.js";
import { jobsTable } from "./jobs.js";

export function render(main, context) {
  const table = el("div", { class: "table-wrap" });
  const pager = el("nav", { class: "pager" });
  fill(main,
    el("div", { class: "title" }, el("h1", {}, "Schedules"),
      el("a", { href: "#/new?what=schedule", class: "button" }, "New schedule")),
    el("div", { id: "page-problem" }), table, pager);
  const cursor = context.params.get("cursor");
  context.every(10000, async () => {
    const page = await api("GET", `/api/v1/schedules?limit=25${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    if (context.left) return;
    fill(table, page.schedules.length === 0
      ? el("p", { class: "muted" }, "No schedules yet.")
      : el("table", { id: "schedules-table" },
        el("thead", {}, el("tr", {}, el("th", {}, "Schedule"), el("th", {}, "Rule"),
          el("th", {}, "Next fire"), el("th", { class: "wide" }, "Job"))),
        el("tbody", {}, page.schedules.map((schedule) => el("tr", { "data-schedule-id": schedule.id },
          el("td", {}, el("a", { href: `#/schedules/${schedule.id}` }, schedule.name || "(no name)"),
            schedule.paused ? [" ", el("span", { class: "badge status-skipped" }, "PAUSED")] : null),
          el("td", {}, el("code", {}, rule(schedule))),
          el("td", {}, schedule.paused ? el("span", { class: "muted" }, "paused") : time(schedule.next_fire_at)),
          el("td", { class: "wide" }, el("code", {}, template(schedule.job))))))));
    fill(pager,
      cursor ? el("a", { href: "#/schedules" }, "← Newest") : null,
      page.next_cursor ? el("a", { href: `#/schedules?cursor=${page.next_cursor}` }, "Older →") : null);
  });
}

export function renderOne(main, context, id) {
  const header = el("div", { class: "title" });
  const about = el("section");
  const fires = el("section");
  const recent = el("section");
  fill(main, header, el("div", { id: "page-problem" }), about,
    el("div", { class: "columns" }, fires, recent));
  context.every(5000, async () => {
    const [view, jobs] = await Promise.all([
      api("GET", `/api/v1/schedules/${encodeURIComponent(id)}`),
      api("GET", `/api/v1/jobs?schedule_id=${encodeURIComponent(id)}&limit=10`),
    ]);
    if (context.left) return;
    const schedule = view.schedule;
    const act = (label, action, question, buttonId, cls) =>
      el("button", { type: "button", id: buttonId, class: cls, onclick: async () => {
        if (!(await confirmAction(question, label))) return;
        try {
          await api("POST", `/api/v1/schedules/${schedule.id}:${action}`, action === "pause" ? {} : undefined);
          context.leave();
          window.dispatchEvent(new HashChangeEvent("hashchange"));
        } catch (error) {
          context.report(error);
        }
      } }, label);
    fill(header,
      el("h1", {}, schedule.name || "Schedule", " ",
        schedule.paused ? el("span", { class: "badge status-skipped", id: "schedule-state" }, "PAUSED")
          : el("span", { class: "badge status-success", id: "schedule-state" }, "ACTIVE")),
      el("div", { class: "actions" },
        act("Trigger now", "trigger", "Fire this schedule once now, beside its rule?", "schedule-trigger"),
        schedule.paused
          ? act("Resume", "resume", "Resume this schedule's fires?", "schedule-resume")
          : act("Pause", "pause", "Pause this schedule? Its jobs not started yet are cancelled.", "schedule-pause", "danger")));
    fill(about, facts([
      ["Id", el("code", {}, schedule.id)],
      ["Rule", el("code", {}, rule(schedule))],
      ["Zone", schedule.timezone],
      ["Job", el("code", {}, template(schedule.job))],
      ["Overlap", schedule.overlap],
      ["Pause note", schedule.pause_note],
      ["Missed fires", schedule.missed_fires ? String(schedule.missed_fires) : null],
      ["Created", local(schedule.created_at)],
    ]));
    fill(fires, el("h2", {}, "Next fires"),
      view.next_fires.length === 0
        ? el("p", { class: "muted" }, schedule.paused ? "None while paused." : "None left.")
        : el("ol", { class: "fires", id: "next-fires" },
          view.next_fires.map((at) => el("li", {}, local(at), " ", el("span", { class: "muted" }, "(", time(at), ")")))));
    fill(recent, el("h2", {}, "Recent jobs"), jobsTable(jobs.jobs),
      el("p", {}, el("a", { href: `#/jobs?schedule_id=${schedule.id}` }, "All its jobs →")));
  });
}

function rule(schedule) {
  return schedule.cron ? schedule.cron : `every ${schedule.every}`;
}

function template(job) {
  if (!job) return "";
  if (job.kind === "shell" || !job.kind) return job.command || "";
  if (job.kind === "http") return `${job.method || "POST"} ${job.url}`;
  if (job.kind === "kafka") return `→ ${job.topic}`;
  return job.kind;
}
