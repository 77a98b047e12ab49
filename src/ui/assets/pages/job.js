// A job's page: its spec, its status history, every attempt, and cancel / re-run.

import { api } from "../api.js";
import { el, fill, badge, time, local, duration, facts, isFinal, confirmAction } from "../dom.js";

// The fields shown as the job's spec, by kind (the rest is in the JSON below them).
const SPEC = {
  shell: ["command"],
  noop: [],
  http: ["method", "url", "timeout_secs", "success_status"],
  kafka: ["topic", "key"],
};

export function render(main, context, id) {
  const header = el("div", { class: "title" });
  const summary = el("section");
  const history = el("section");
  const attempts = el("section");
  fill(main, header, el("div", { id: "page-problem" }), summary, history, attempts);
  let shown = null;
  context.every(2000, async () => {
    if (shown && isFinal(shown.job.status)) return;
    const view = await api("GET", `/api/v1/jobs/${encodeURIComponent(id)}`);
    if (context.left) return;
    shown = view;
    const job = view.job;
    fill(header,
      el("h1", {}, job.name || "Job", " ", badge(job.status, "job-status")),
      el("div", { class: "actions" },
        isFinal(job.status)
          ? el("button", { id: "job-rerun", type: "button", onclick: () => rerun(context, job) }, "Re-run")
          : el("button", { id: "job-cancel", type: "button", class: "danger", onclick: () => cancel(context, job) }, "Cancel")));
    fill(summary, el("h2", {}, "Spec"), specOf(job));
    fill(history, el("h2", {}, "Status history"), historyOf(job, view.attempts));
    fill(attempts, el("h2", {}, `Attempts (${view.attempts.length})`),
      view.attempts.length === 0
        ? el("p", { class: "muted" }, "No attempt has started.")
        : view.attempts.map(attemptOf));
  });
}

async function cancel(context, job) {
  if (!(await confirmAction(`Cancel ${job.name || job.id}? A running command is stopped.`, "Cancel the job"))) return;
  try {
    await api("POST", `/api/v1/jobs/${job.id}:cancel`);
    context.leave();
    window.dispatchEvent(new HashChangeEvent("hashchange"));
  } catch (error) {
    context.report(error);
  }
}

async function rerun(context, job) {
  if (!(await confirmAction(`Run ${job.name || job.id} again now, as a new job?`, "Re-run"))) return;
  try {
    const view = await api("POST", `/api/v1/jobs/${job.id}:rerun`, {});
    location.hash = `#/jobs/${view.job.id}`;
  } catch (error) {
    context.report(error);
  }
}

function specOf(job) {
  const fields = (SPEC[job.kind] || []).map((key) => [key, json(job[key])]);
  return el("div", {},
    facts([
      ["Id", el("code", {}, job.id)],
      ["Kind", job.kind],
      ...fields,
      ["Due", [local(job.execute_at), " (", time(job.execute_at), ")"]],
      ["Retries", `at most ${job.max_retries}`],
      ["Timeout", `${job.timeout_secs} s`],
      ["Schedule", job.schedule_id ? el("a", { href: `#/schedules/${job.schedule_id}` }, job.schedule_id) : null],
      ["Re-run of", job.rerun_of ? el("a", { href: `#/jobs/${job.rerun_of}` }, job.rerun_of) : null],
      ["Created by", job.created_by],
      ["Cancelled by", job.cancelled_by],
      ["Last error", job.last_error],
    ]),
    el("details", {}, el("summary", {}, "The job as the API shows it"),
      el("pre", { class: "output" }, JSON.stringify(job, null, 2))));
}

function json(value) {
  if (value === null || value === undefined) return null;
  return typeof value === "string" ? el("code", {}, value) : el("code", {}, JSON.stringify(value));
}

// The statuses the job went through, from its own times and its attempts'.
function historyOf(job, attempts) {
  const steps = [["SCHEDULED", job.created_at, "created"]];
  for (const attempt of attempts) {
    steps.push(["RUNNING", attempt.started_at, `attempt ${attempt.attempt} started`]);
    if (attempt.finished_at) {
      steps.push([attempt.status, attempt.finished_at, `attempt ${attempt.attempt} ended`]);
    }
  }
  if (job.cancelled_at) steps.push(["CANCELLED", job.cancelled_at, job.cancelled_by ? `by ${job.cancelled_by}` : ""]);
  else if (job.finished_at) steps.push([job.status, job.finished_at, "final"]);
  else if (!steps.some(([status]) => status === job.status)) steps.push([job.status, job.updated_at, "now"]);
  steps.sort((a, b) => Date.parse(a[1]) - Date.parse(b[1]));
  return el("ol", { class: "timeline", id: "job-history" }, steps.map(([status, at, note]) =>
    el("li", {}, badge(status), " ", el("span", { title: at }, local(at)), note ? el("span", { class: "muted" }, ` · ${note}`) : null)));
}

function attemptOf(attempt) {
  const output = (label, text, id) => text
    ? [el("h4", {}, label), el("pre", { class: "output", id }, text)]
    : null;
  return el("article", { class: "attempt card", "data-attempt": attempt.attempt },
    el("h3", {}, `Attempt ${attempt.attempt} `, badge(attempt.status)),
    facts([
      ["Due", local(attempt.scheduled_at)],
      ["Started", [local(attempt.started_at), ` (${duration(attempt.scheduled_at, attempt.started_at)} late)`]],
      ["Finished", attempt.finished_at ? local(attempt.finished_at) : "running"],
      ["Took", duration(attempt.started_at, attempt.finished_at)],
      ["Exit code", attempt.exit_code === null ? null : String(attempt.exit_code)],
      ["Error", attempt.error],
    ]),
    output("stdout", attempt.stdout, `stdout-${attempt.attempt}`),
    output("stderr", attempt.stderr, `stderr-${attempt.attempt}`));
}
