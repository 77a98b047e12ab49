// The dashboard's shell: the token, calls to the API, and the page shown for the address's
// fragment (#/jobs, #/jobs/ID, #/schedules, #/schedules/ID, #/new).

import { ApiFailure, api, token, setToken } from "./api.js";
import { el, fill, problem } from "./dom.js";
import * as overview from "./pages/overview.js";
import * as jobs from "./pages/jobs.js";
import * as job from "./pages/job.js";
import * as schedules from "./pages/schedules.js";
import * as create from "./pages/create.js";

const main = document.getElementById("main");
const tokenRequired =
  document.querySelector('meta[name="kairos-token-required"]')?.content === "true";

// What a page is given: where to draw, the address's parameters, and timers that stop when
// the page is left.
class Context {
  constructor(params) {
    this.params = params;
    this.timers = [];
    this.left = false;
  }

  // Runs `task` now and every `ms` while the page is shown and the tab visible; stops when
  // the API refuses it (a 4xx does not mend by asking again).
  every(ms, task) {
    const tick = async () => {
      if (this.left) return;
      if (!document.hidden) {
        try {
          await task();
        } catch (error) {
          this.report(error);
          if (error instanceof ApiFailure && error.status >= 400 && error.status < 500) return;
        }
      }
      if (!this.left) this.timers.push(setTimeout(tick, ms));
    };
    tick();
  }

  report(error) {
    if (this.left) return;
    if (error instanceof ApiFailure && error.status === 401) {
      signIn("The server refused the token; enter a valid one.");
      return;
    }
    const slot = document.getElementById("page-problem");
    if (slot) fill(slot, problem(error));
  }

  leave() {
    this.left = true;
    this.timers.forEach(clearTimeout);
  }
}

let current = null;

function route() {
  if (current) current.leave();
  const [path, query] = location.hash.replace(/^#/, "").split("?");
  const parts = (path || "/").split("/").filter(Boolean);
  const params = new URLSearchParams(query || "");
  const context = new Context(params);
  current = context;
  const [page, id] = parts;
  const name = { jobs: "jobs", schedules: "schedules", new: "new" }[page] || "overview";
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("current", link.dataset.page === name);
  }
  document.getElementById("sign-out").hidden = !token();
  if (tokenRequired && !token()) {
    signIn();
    return;
  }
  const view = page === "jobs" && id ? () => job.render(main, context, decodeURIComponent(id))
    : page === "jobs" ? () => jobs.render(main, context)
    : page === "schedules" && id ? () => schedules.renderOne(main, context, decodeURIComponent(id))
    : page === "schedules" ? () => schedules.render(main, context)
    : page === "new" ? () => create.render(main, context)
    : () => overview.render(main, context);
  Promise.resolve().then(view).catch((error) => context.report(error));
}

// The sign-in form: the token is kept in this browser's local storage.
function signIn(message) {
  if (current) current.leave();
  document.getElementById("sign-out").hidden = true;
  const input = el("input", {
    id: "login-token", type: "password", name: "token", autocomplete: "current-password",
    required: true, placeholder: "kairos_…",
  });
  const error = el("p", { class: "field-error", id: "login-error", role: "alert" }, message || "");
  const form = el("form", { class: "card narrow", id: "login" },
    el("h1", {}, "Sign in"),
    el("p", { class: "muted" },
      "Enter an API token (", el("code", {}, "kairos token new"), " makes one). It is kept in this browser."),
    el("label", { for: "login-token" }, "Token"), input, error,
    el("div", { class: "actions" }, el("button", { id: "login-submit", type: "submit" }, "Sign in")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    setToken(input.value.trim());
    try {
      await api("GET", "/api/v1/stats");
      route();
    } catch (failure) {
      setToken(null);
      error.textContent = failure.status === 401
        ? "This token is not known to the server."
        : failure.message;
    }
  });
  fill(main, form);
  input.focus();
}

document.getElementById("sign-out").addEventListener("click", () => {
  setToken(null);
  route();
});
window.addEventListener("hashchange", route);
route();
