// The forms for a one-off job and for a schedule. The API checks them: its message for a
// field is shown beside that field.

import { api, ApiFailure } from "../api.js";
import { el, fill } from "../dom.js";
import { fromLocalInput } from "./jobs.js";

export function render(main, context) {
  const what = context.params.get("what") === "schedule" ? "schedule" : "job";
  fill(main,
    el("div", { class: "title" }, el("h1", {}, what === "job" ? "New job" : "New schedule"),
      el("nav", { class: "tabs" },
        el("a", { href: "#/new", class: what === "job" ? "current" : "" }, "Job"),
        el("a", { href: "#/new?what=schedule", class: what === "schedule" ? "current" : "" }, "Schedule"))),
    what === "job" ? jobForm() : scheduleForm());
}

// A labelled input with the place for its error, keyed by the API's field name.
function field(label, name, input, hint) {
  input.name = name;
  input.id = `field-${name.replace(".", "-")}`;
  return el("div", { class: "field", "data-field": name },
    el("label", { for: input.id }, label),
    input,
    hint ? el("small", { class: "muted" }, hint) : null,
    el("p", { class: "field-error", "data-for": name, role: "alert" }));
}

function jobForm() {
  const kind = el("select", {}, ["shell", "http", "kafka", "noop"].map((k) => el("option", { value: k }, k)));
  const inputs = {
    name: el("input", { maxlength: 200, placeholder: "nightly-report" }),
    command: el("textarea", { rows: 3, placeholder: "echo hello" }),
    url: el("input", { type: "url", placeholder: "https://hooks.example.com/charge" }),
    method: el("select", {}, ["POST", "GET", "PUT", "PATCH", "DELETE"].map((m) => el("option", { value: m }, m))),
    body: el("textarea", { rows: 3, placeholder: '{"order": 17}' }),
    topic: el("input", { placeholder: "orders-due" }),
    key: el("input", {}),
    value: el("textarea", { rows: 3, placeholder: '{"order": 17}' }),
    execute_at: el("input", { type: "datetime-local", step: 1 }),
    max_retries: el("input", { type: "number", min: 0, max: 10, value: 3 }),
    timeout_secs: el("input", { type: "number", min: 1, placeholder: "the server's default" }),
    metadata: el("textarea", { rows: 2, placeholder: "team=billing" }),
  };
  const byKind = {
    shell: [field("Command", "command", inputs.command, "Run with /bin/sh -c.")],
    http: [field("URL", "url", inputs.url), field("Method", "method", inputs.method),
      field("Body", "body", inputs.body, "JSON is sent as JSON; anything else as text.")],
    kafka: [field("Topic", "topic", inputs.topic), field("Key", "key", inputs.key),
      field("Value", "value", inputs.value, "JSON is sent as JSON; anything else as text.")],
    noop: [],
  };
  const specific = el("div", { id: "kind-fields" });
  const showKind = () => fill(specific, byKind[kind.value]);
  kind.addEventListener("change", showKind);
  showKind();

  return form("job-form", "Create the job", [
    field("Name", "name", inputs.name),
    field("Kind", "kind", kind),
    specific,
    field("Run at", "execute_at", inputs.execute_at, "In this browser's time zone; empty: now."),
    el("div", { class: "row" },
      field("Retries", "max_retries", inputs.max_retries),
      field("Timeout (s)", "timeout_secs", inputs.timeout_secs)),
    field("Metadata", "metadata", inputs.metadata, "One key=value per line."),
  ], () => {
    const body = {
      kind: kind.value,
      execute_at: fromLocalInput(inputs.execute_at.value) || new Date().toISOString(),
      max_retries: number(inputs.max_retries.value),
    };
    optional(body, "name", inputs.name.value.trim());
    optional(body, "timeout_secs", number(inputs.timeout_secs.value));
    const metadata = pairs(inputs.metadata.value);
    if (metadata) body.metadata = metadata;
    if (kind.value === "shell") body.command = inputs.command.value;
    if (kind.value === "http") {
      body.url = inputs.url.value.trim();
      body.method = inputs.method.value;
      optional(body, "body", jsonOrText(inputs.body.value));
    }
    if (kind.value === "kafka") {
      body.topic = inputs.topic.value.trim();
      optional(body, "key", inputs.key.value);
      body.value = jsonOrText(inputs.value.value);
    }
    return api("POST", "/api/v1/jobs", body).then((view) => `#/jobs/${view.job.id}`);
  });
}

function scheduleForm() {
  const inputs = {
    name: el("input", { maxlength: 200, placeholder: "nightly-report" }),
    cron: el("input", { placeholder: "0 30 2 * * *" }),
    every: el("input", { placeholder: "15m" }),
    timezone: el("input", { value: Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC" }),
    command: el("textarea", { rows: 3, placeholder: "make report" }),
    overlap: el("select", {}, ["skip", "buffer_one", "allow_all", "cancel_previous"].map((o) => el("option", { value: o }, o))),
    paused: el("input", { type: "checkbox" }),
  };
  return form("schedule-form", "Create the schedule", [
    field("Name", "name", inputs.name),
    el("div", { class: "row" },
      field("Cron", "cron", inputs.cron, "Seconds optional: 0 30 2 * * *"),
      field("or every", "every", inputs.every, "An interval: 30s, 15m, 1h")),
    field("Time zone", "timezone", inputs.timezone),
    field("Command", "job.command", inputs.command, "Each fire runs it with /bin/sh -c."),
    field("When a fire finds the last one running", "overlap", inputs.overlap),
    el("label", { class: "inline" }, inputs.paused, " create it paused"),
  ], () => {
    const body = { job: { kind: "shell", command: inputs.command.value }, overlap: inputs.overlap.value,
      timezone: inputs.timezone.value.trim(), paused: inputs.paused.checked };
    optional(body, "name", inputs.name.value.trim());
    optional(body, "cron", inputs.cron.value.trim());
    optional(body, "every", inputs.every.value.trim());
    return api("POST", "/api/v1/schedules", body).then((view) => `#/schedules/${view.schedule.id}`);
  });
}

// The form, its submit button and its own error line; `submit` resolves to the address to
// show next.
function form(id, label, fields, submit) {
  const general = el("p", { class: "field-error", id: `${id}-error`, role: "alert" });
  const button = el("button", { type: "submit", id: `${id}-submit` }, label);
  const node = el("form", { class: "card", id, novalidate: true }, fields, general,
    el("div", { class: "actions" }, button));
  node.addEventListener("submit", async (event) => {
    event.preventDefault();
    for (const slot of node.querySelectorAll(".field-error")) slot.textContent = "";
    for (const wrong of node.querySelectorAll(".field.invalid")) wrong.classList.remove("invalid");
    button.disabled = true;
    try {
      location.hash = await submit();
    } catch (error) {
      const slot = error instanceof ApiFailure && error.field
        ? node.querySelector(`.field-error[data-for="${CSS.escape(error.field)}"]`)
        : null;
      if (slot) {
        slot.textContent = error.message;
        slot.closest(".field").classList.add("invalid");
        slot.closest(".field").querySelector("input, textarea, select")?.focus();
      } else {
        general.textContent = error.field ? `${error.field}: ${error.message}` : error.message;
      }
    } finally {
      button.disabled = false;
    }
  });
  return node;
}

function optional(body, key, value) {
  if (value !== "" && value !== null && value !== undefined) body[key] = value;
}

function number(text) {
  return text === "" ? null : Number(text);
}

function jsonOrText(text) {
  if (text === "") return "";
  try {
    const value = JSON.parse(text);
    return typeof value === "object" && value !== null ? value : text;
  } catch {
    return text;
  }
}

function pairs(text) {
  const lines = text.split("\n").map((line) => line.trim()).filter(Boolean);
  if (lines.length === 0) return null;
  return Object.fromEntries(lines.map((line) => {
    const at = line.indexOf("=");
    return at < 0 ? [line, ""] : [line.slice(0, at).trim(), line.slice(at + 1).trim()];
  }));
}
