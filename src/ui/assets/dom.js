// Building the page: every text goes in as text (never as HTML), so nothing a job carries
// (its name, its output) can become markup.

const SVG = "http://www.w3.org/2000/svg";

function build(node, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// An HTML element: el("a", {href: "#/", class: "x"}, "text", child, ...).
export function el(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

// An SVG element, as `el`.
export function svg(tag, attrs, ...children) {
  return build(document.createElementNS(SVG, tag), attrs, children);
}

// Replaces the children of `node`.
export function fill(node, ...children) {
  node.replaceChildren();
  return build(node, {}, children);
}

const FINAL = new Set(["SUCCESS", "FAILED", "CANCELLED", "SKIPPED"]);
export const isFinal = (status) => FINAL.has(status);

export const STATUSES = ["SCHEDULED", "DISPATCHED", "RUNNING", "RETRYING", "SUCCESS", "FAILED",
  "CANCELLED", "SKIPPED"];

export function badge(status, id) {
  return el("span", { class: `badge status-${String(status).toLowerCase()}`, id }, status);
}

// "in 3 min", "12 s ago".
export function relative(iso) {
  if (!iso) return "—";
  const seconds = Math.round((Date.parse(iso) - Date.now()) / 1000);
  const size = Math.abs(seconds);
  const [value, unit] =
    size < 60 ? [size, "s"] :
    size < 3600 ? [Math.round(size / 60), "min"] :
    size < 86400 ? [Math.round(size / 3600), "h"] :
    [Math.round(size / 86400), "d"];
  return seconds >= 0 ? `in ${value} ${unit}` : `${value} ${unit} ago`;
}

// A time in the browser's zone, to the second.
export function local(iso) {
  if (!iso) return "—";
  const at = new Date(iso);
  return at.toLocaleString(undefined, {
    year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
}

// A <time> showing a relative time, with the exact one on hover.
export function time(iso) {
  if (!iso) return el("span", { class: "muted" }, "—");
  return el("time", { datetime: iso, title: local(iso) }, relative(iso));
}

export function duration(fromIso, toIso) {
  if (!fromIso || !toIso) return "—";
  const ms = Date.parse(toIso) - Date.parse(fromIso);
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}

// Asks for a confirmation in the page's dialog; resolves true when confirmed.
export function confirmAction(message, yes) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-message").textContent = message;
  const yesButton = document.getElementById("confirm-yes");
  const noButton = document.getElementById("confirm-no");
  yesButton.textContent = yes;
  return new Promise((resolve) => {
    const done = (answer) => () => {
      yesButton.onclick = null;
      noButton.onclick = null;
      dialog.onclose = null;
      if (dialog.open) dialog.close();
      resolve(answer);
    };
    yesButton.onclick = done(true);
    noButton.onclick = done(false);
    dialog.onclose = done(false);
    dialog.showModal();
  });
}

// A definition list from [label, value] pairs, skipping absent values.
export function facts(pairs) {
  return el("dl", { class: "facts" },
    pairs.filter(([, value]) => value !== null && value !== undefined && value !== "")
      .map(([label, value]) => [el("dt", {}, label), el("dd", {}, value)]));
}

// A short form of an id, whole on hover.
export function shortId(id) {
  return el("code", { title: id }, String(id).slice(-12));
}

// A message box for a failure.
export function problem(error) {
  return el("p", { class: "problem", role: "alert" }, error.message || String(error));
}
