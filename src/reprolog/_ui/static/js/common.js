// Shared helpers for the reprolog ui pages: element builder, JSON fetch, formatting.
// Every string that comes from a record goes through text nodes (el() children, textContent):
// nothing here ever assigns innerHTML.

/** Build an element: el("a", {href, class, title, on: {click}}, "text", childNode, ...). */
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  if (attrs) {
    for (const [name, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = String(value);
      else if (name === "on") for (const [ev, fn] of Object.entries(value)) node.addEventListener(ev, fn);
      else if (name === "dataset") Object.assign(node.dataset, value);
      else if (name in node && typeof value !== "string") node[name] = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else if (child instanceof Node) node.appendChild(child);
    else node.appendChild(document.createTextNode(String(child)));
  }
}

/** Replace every child of `node` with `children` (strings become text nodes). */
export function setChildren(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

/** An error that carries the server's one-line message and the HTTP status. */
export class FetchError extends Error {
  constructor(message, status, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

/** GET a JSON endpoint; a non-2xx answer throws FetchError with the server's `error` line. */
export async function fetchJSON(url, options = {}) {
  let response;
  try {
    response = await fetch(url, { headers: { Accept: "application/json" }, ...options });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new FetchError(`Could not reach the reprolog ui server (${err.message}).`, 0, null);
  }
  let body = null;
  const text = await response.text();
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) {
    const message = body && body.error ? body.error : `HTTP ${response.status} ${response.statusText}`;
    throw new FetchError(message, response.status, body);
  }
  if (body === null) throw new FetchError(`The server sent no JSON for ${url}.`, response.status, null);
  return body;
}

/** GET text (the patch). */
export async function fetchText(url, options = {}) {
  const response = await fetch(url, options);
  const text = await response.text();
  if (!response.ok) {
    let message = `HTTP ${response.status}`;
    try {
      message = JSON.parse(text).error || message;
    } catch {
      /* not JSON */
    }
    throw new FetchError(message, response.status, null);
  }
  return text;
}

/** A red box holding one error line (text only). */
export function errorBox(message) {
  return el("div", { class: "error-box", role: "alert" }, String(message));
}

/** The top bar shared by every page: brand link home, then breadcrumbs (nodes or strings). */
export function topbar(...crumbs) {
  const items = [];
  for (const crumb of crumbs) {
    items.push(el("span", { class: "faint" }, "/"));
    items.push(crumb instanceof Node ? crumb : el("span", null, crumb));
  }
  return el(
    "header",
    { class: "topbar" },
    el("a", { class: "brand", href: "/" }, "reprolog"),
    el("nav", { class: "crumbs" }, items),
    el("span", { class: "spacer" }),
    el("a", { href: "/", class: "muted" }, "Runs"),
  );
}

/** Page frame: <div class=page> with the top bar and a <main class=content>; returns main. */
export function mountPage(root, { fill = false, crumbs = [] } = {}) {
  const main = el("main", { class: "content" });
  root.replaceChildren(el("div", { class: `page${fill ? " fill" : ""}` }, topbar(...crumbs), main));
  return main;
}

const SPECIAL = new Set(["nan", "inf", "-inf"]);

/** A metric or param number, compact: 4-5 significant digits, exponent when tiny or huge. */
export function fmtNum(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") return SPECIAL.has(value) ? value : value;
  if (typeof value !== "number") return String(value);
  if (!Number.isFinite(value)) return String(value);
  if (Number.isInteger(value) && Math.abs(value) < 1e15) return String(value);
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e6)) return value.toExponential(3).replace(/\.?0+e/, "e");
  return String(Number(value.toPrecision(5)));
}

/** Any recorded value (param, tag, section entry) as one line of text. */
export function fmtValue(value) {
  if (value === null) return "null";
  if (value === undefined) return "";
  if (typeof value === "number") return fmtNum(value);
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

function pad(n) {
  return String(n).padStart(2, "0");
}

/** Unix seconds as local "YYYY-MM-DD HH:MM:SS". */
export function fmtTime(seconds) {
  if (seconds === null || seconds === undefined || seconds === "") return "";
  const d = typeof seconds === "number" ? new Date(seconds * 1000) : new Date(String(seconds));
  if (Number.isNaN(d.getTime())) return String(seconds);
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  );
}

/** Seconds as "850 ms", "12.3 s", "4m 05s", "2h 03m", "3d 4h". */
export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || typeof seconds !== "number" || !Number.isFinite(seconds)) return "";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
  const s = Math.round(seconds);
  if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

/** Bytes as "812 B", "1.4 KiB", "3.2 MiB". */
export function fmtBytes(bytes) {
  if (bytes === null || bytes === undefined || typeof bytes !== "number") return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

/** Thousands separators for counts. */
export function fmtCount(n) {
  return typeof n === "number" ? n.toLocaleString("en-US") : String(n ?? "");
}

const KNOWN_STATUS = new Set([
  "completed", "failed", "crashed", "interrupted", "running",
  "identical", "within_tolerance", "diverged",
]);

/** A coloured status badge (run status or metric verdict status). */
export function badge(status, label) {
  const text = label ?? String(status ?? "unknown").replace(/_/g, " ");
  const cls = KNOWN_STATUS.has(status) ? status : "other";
  return el("span", { class: `badge ${cls}` }, text);
}

/** The URL of one run's page. */
export function runHref(id) {
  return `/runs/${encodeURIComponent(id)}`;
}

/** Read the page's query string as a URLSearchParams. */
export function query() {
  return new URLSearchParams(location.search);
}

/** Replace the query string (no reload), dropping empty values. */
export function setQuery(values, { push = false } = {}) {
  const params = new URLSearchParams(location.search);
  for (const [key, value] of Object.entries(values)) {
    if (value === null || value === undefined || value === "") params.delete(key);
    else params.set(key, value);
  }
  const search = params.toString();
  const url = `${location.pathname}${search ? `?${search}` : ""}${location.hash}`;
  if (push) history.pushState(null, "", url);
  else history.replaceState(null, "", url);
}

/** Distinct, readable colours for up to 50 series (then they repeat with another dash). */
export const PALETTE = [
  "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
  "#bcbd22", "#17becf", "#393b79", "#e6550d", "#31a354", "#843c39", "#7b4173", "#3182bd",
  "#fd8d3c", "#74c476", "#ad494a", "#a55194",
];

export function colour(i) {
  return PALETTE[((i % PALETTE.length) + PALETTE.length) % PALETTE.length];
}

/** A section card with a heading. */
export function section(title, ...children) {
  return el("section", { class: "section" }, el("h2", null, title), ...children);
}

/** A <dl class=kv> from [label, value] pairs; values may be nodes; empty values are skipped. */
export function kv(pairs) {
  const dl = el("dl", { class: "kv" });
  for (const [label, value] of pairs) {
    if (value === undefined || value === null || value === "") continue;
    dl.append(el("dt", null, label), el("dd", null, value));
  }
  return dl;
}

/** Call fn at most once per animation frame. */
export function rafThrottle(fn) {
  let pending = false;
  return (...args) => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      fn(...args);
    });
  };
}
