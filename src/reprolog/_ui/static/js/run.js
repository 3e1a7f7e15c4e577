// The run page (/runs/<ref>): overview, error, code + patch, environment, seeds, determinism,
// data, capture report, params, one chart per metric, console, artifacts. A live run polls every second.
import {
  FetchError, badge, colour, el, errorBox, fetchJSON, fetchText, fmtBytes, fmtCount, fmtDuration,
  fmtNum, fmtTime, fmtValue, kv, mountPage, runHref, section,
} from "./common.js";
import { Chart, chartControls } from "./chart.js";
import { consoleSection } from "./console.js";

const POLL_MS = 1000;
const app = document.getElementById("app");
const ref = decodeURIComponent(location.pathname.replace(/^\/runs\//, "").replace(/\/+$/, ""));
const jsonUrl = `/runs/${encodeURIComponent(ref)}.json`;

const view = { xKind: "step", log: false, smoothing: 0 };
const charts = new Map(); // metric key -> Chart
let runId = null;
let header = null;
let chartsBox = null;
let metricsNote = null;
let timer = null;
let consoleBox = null; // polls by itself while the run is live

async function start() {
  let detail;
  try {
    detail = await fetchJSON(jsonUrl);
  } catch (err) {
    const main = mountPage(app, { crumbs: [el("span", null, ref)] });
    main.append(errorBox(err.message));
    if (err instanceof FetchError && err.status === 404) main.append(el("p", null, el("a", { href: "/" }, "Back to the runs")));
    return;
  }
  render(detail);
  if (detail.run.live) schedule();
}

function render(detail) {
  const run = detail.run;
  runId = run.id;
  document.title = `${run.name || run.id} · reprolog`;
  const main = mountPage(app, { crumbs: [run.experiment ? el("span", null, run.experiment) : null, el("span", null, run.name || run.id)].filter(Boolean) });
  header = el("div");
  main.append(header);
  renderHeader(detail);
  const patchHolder = el("div", { class: "section hidden", id: "patch" });
  main.append(overview(detail, patchHolder), patchHolder);
  main.append(paramsSection(detail));
  chartsBox = el("div", { class: "charts" });
  metricsNote = el("span", { class: "muted" });
  main.append(
    el(
      "section",
      { class: "section", id: "metrics" },
      el("h2", null, "Metrics", metricsNote),
      chartControls(view, (changes) => {
        Object.assign(view, changes);
        for (const chart of charts.values()) chart.update(changes);
      }),
      chartsBox,
    ),
  );
  syncCharts(detail);
  if (!consoleBox || !detail.run.live) consoleBox = consoleSection(run.id);
  main.append(consoleBox);
  main.append(artifactsSection(detail));
  main.append(otherSections(detail));
}

function renderHeader(detail) {
  const run = detail.run;
  const title = el(
    "div",
    { class: "run-head" },
    el("h1", null, run.name || run.id),
    badge(run.status),
    run.live ? el("span", { class: "live-dot", title: "This run is live; the page refreshes every second" }, "live") : null,
    el("span", { class: "id", title: "run id" }, run.id),
  );
  const facts = [
    run.experiment ? `experiment ${run.experiment}` : null,
    run.start ? `started ${fmtTime(run.start)}` : null,
    run.live && typeof run.start === "number"
      ? `running for ${fmtDuration(Math.max(0, Date.now() / 1000 - run.start))}`
      : typeof run.duration === "number"
        ? `took ${fmtDuration(run.duration)}`
        : null,
    run.host ? `on ${run.host}${run.pid ? ` (pid ${run.pid})` : ""}` : null,
  ].filter(Boolean);
  const parts = [title, el("div", { class: "sub" }, facts.join(" · "))];
  if (detail.links && detail.links.reproduces) {
    parts.push(el("div", { class: "sub" }, "reproduces ", el("a", { href: runHref(detail.links.reproduces) }, detail.links.reproduces)));
  }
  if (run.error) parts.push(errorPanel(run.error));
  header.replaceChildren(...parts);
}

function errorPanel(error) {
  const box = el(
    "div",
    { class: "error-box", role: "alert" },
    el("strong", null, error.type || "Error"),
    error.message ? `: ${error.message}` : "",
  );
  if (error.traceback) {
    box.append(el("details", null, el("summary", null, "traceback"), el("pre", { class: "traceback" }, error.traceback)));
  }
  return box;
}

function short(hash, n = 12) {
  if (typeof hash !== "string") return hash;
  const i = hash.indexOf(":");
  const body = i >= 0 ? hash.slice(i + 1) : hash;
  return `${i >= 0 ? hash.slice(0, i + 1) : ""}${body.slice(0, n)}`;
}

function mono(text, title) {
  return el("span", { class: "mono", title: title ?? text }, text);
}

function overview(detail, patchHolder) {
  const s = detail.sections || {};
  const grid = el("div", { class: "grid2 section" });
  const missing = [];
  const add = (title, recorded, build) => {
    if (recorded) grid.append(card(title, build()));
    else missing.push(title.toLowerCase());
  };
  add("Command", !isEmpty(s.command), () => commandCard(s.command));
  add("Code", !isEmpty(s.code), () => codeCard(s.code, detail.patch_url, patchHolder));
  add("Environment", !isEmpty(s.environment) || hasHighlights(detail.highlights), () => envCard(detail.highlights, s.environment));
  add("Seeds", !isEmpty(s.seeds), () => seedsCard(s.seeds));
  add("Determinism", !isEmpty(s.determinism), () => determinismCard(s.determinism));
  add("Data", !isEmpty(s.data), () => dataCard(s.data));
  add("Capture report", true, () => captureCard(detail.capture_report));
  if (detail.tags && Object.keys(detail.tags).length) grid.append(card("Tags", kv(Object.entries(detail.tags).map(([k, v]) => [k, fmtValue(v)]))));
  if (!missing.length) return grid;
  const note = el("p", { class: "muted" }, `Not recorded in this run: ${missing.join(", ")}${missing.length > 3 ? " (was it started with capture=False?)" : ""}.`);
  return el("div", null, grid, note);
}

function hasHighlights(h) {
  return Boolean(h) && Object.values(h).some((v) => v !== null && v !== undefined && !(Array.isArray(v) && !v.length) && !isEmpty(v));
}

function card(title, body) {
  return el("div", { class: "card" }, el("h3", null, title), body);
}

function commandCard(command) {
  if (isEmpty(command)) return el("span", { class: "muted" }, "not recorded");
  const argv = Array.isArray(command.argv) ? command.argv.join(" ") : "";
  return kv([
    ["argv", argv ? el("code", null, argv) : null],
    ["cwd", command.cwd ? mono(command.cwd) : null],
    ["entry", command.entry ? `${command.entry_kind || ""} ${command.entry}`.trim() : command.entry_kind],
    ["script", command.script_sha256 ? mono(short(command.script_sha256), command.script_sha256) : null],
    ["python", command.executable ? mono(command.executable) : null],
  ]);
}

function isEmpty(obj) {
  return !obj || (typeof obj === "object" && Object.keys(obj).length === 0);
}

function codeCard(code, patchUrl, patchHolder) {
  if (isEmpty(code)) return el("span", { class: "muted" }, "not recorded");
  if (code.git === false) return el("span", { class: "muted" }, `no git: ${code.reason || "not a git repository"}`);
  const changed = code.changed ? Object.keys(code.changed).length : 0;
  const untracked = code.untracked ? Object.keys(code.untracked).length : 0;
  const state = code.dirty
    ? el("span", { class: "pill warn" }, `dirty: ${changed} changed, ${untracked} untracked`)
    : el("span", { class: "pill ok" }, "clean");
  const body = el(
    "div",
    null,
    kv([
      ["commit", code.commit ? mono(short(code.commit, 12), code.commit) : "none yet"],
      ["branch", code.branch || (code.detached ? "(detached)" : null)],
      ["remote", code.remote_url ? mono(code.remote_url) : null],
      ["tree", state],
      ["diff", code.diff_bytes ? `${fmtBytes(code.diff_bytes)}${code.diff_truncated ? " (truncated to 1 MiB in the record)" : ""}` : null],
    ]),
  );
  if (patchUrl) body.append(patchButton(patchUrl, patchHolder));
  return body;
}

/**
 * A button that fetches the patch once, then shows it (full width, in `holder`) with coloured
 * +/- lines and file headers.
 */
function patchButton(url, holder) {
  const button = el("button", { type: "button" }, "Show patch");
  let loaded = false;
  button.addEventListener("click", async () => {
    if (loaded) {
      holder.classList.toggle("hidden");
      button.textContent = holder.classList.contains("hidden") ? "Show patch" : "Hide patch";
      return;
    }
    button.disabled = true;
    button.textContent = "Loading…";
    try {
      const text = await fetchText(url);
      holder.replaceChildren(el("h2", null, "Patch ", el("span", { class: "muted" }, "tracked changes and untracked files, as reprolog export --patch writes it")), renderPatch(text));
      holder.classList.remove("hidden");
      holder.scrollIntoView({ block: "nearest" });
      loaded = true;
      button.textContent = "Hide patch";
    } catch (err) {
      holder.replaceChildren(errorBox(err.message));
      holder.classList.remove("hidden");
      button.textContent = "Show patch";
    } finally {
      button.disabled = false;
    }
  });
  return el("div", { class: "section" }, button);
}

function renderPatch(text) {
  if (!text.trim()) return el("div", { class: "notice" }, "The patch is empty.");
  const pre = el("pre");
  const lines = text.split("\n");
  const max = 20000;
  for (const line of lines.slice(0, max)) {
    let cls = "ln";
    if (line.startsWith("diff --git")) cls += " file";
    else if (line.startsWith("+++") || line.startsWith("---")) cls += " meta";
    else if (line.startsWith("@@")) cls += " hunk";
    else if (line.startsWith("+")) cls += " add";
    else if (line.startsWith("-")) cls += " del";
    else if (/^(index |new file mode|deleted file mode|similarity|rename |old mode|new mode|Binary files)/.test(line)) cls += " meta";
    pre.append(el("span", { class: cls }, line || " "));
  }
  const box = el("div", { class: "patch" }, pre);
  if (lines.length > max) box.append(el("div", { class: "notice" }, `First ${fmtCount(max)} of ${fmtCount(lines.length)} lines shown.`));
  return box;
}

function envCard(h, env) {
  h = h || {};
  const gpus = Array.isArray(h.gpus) && h.gpus.length ? h.gpus.map((g) => g.name || JSON.stringify(g)).join(", ") : "none";
  const pairs = [
    ["python", h.python],
    ["platform", h.platform],
    ["torch", h.torch],
    ["cuda", h.cuda],
    ["gpus", gpus],
  ];
  if (h.packages) for (const [name, version] of Object.entries(h.packages)) if (name !== "torch") pairs.push([name, version]);
  if (env) {
    pairs.push(["cpu", env.cpu_model ? `${env.cpu_model} × ${env.cpu_count ?? "?"}` : env.cpu_count]);
    if (env.packages) pairs.push(["packages", `${fmtCount(Object.keys(env.packages).length)} installed`]);
  }
  return kv(pairs.map(([k, v]) => [k, v === null || v === undefined ? null : fmtValue(v)]));
}

function seedsCard(seeds) {
  if (isEmpty(seeds)) return el("span", { class: "muted" }, "not recorded");
  const se = seeds.seed_everything;
  const env = seeds.env || {};
  return kv([
    ["seed_everything", se ? `${se.seed}${se.deterministic ? " (deterministic)" : ""}` : el("span", { class: "muted" }, "not called")],
    ["torch seed", seeds.torch_seed ?? null],
    ["PYTHONHASHSEED", env.PYTHONHASHSEED ?? null],
    ["PL_GLOBAL_SEED", env.PL_GLOBAL_SEED ?? null],
    ["python random", seeds.python_random_sha256 ? mono(short(seeds.python_random_sha256), seeds.python_random_sha256) : null],
    ["numpy", seeds.numpy_sha256 ? mono(short(seeds.numpy_sha256), seeds.numpy_sha256) : null],
    ["hash randomization", seeds.hash_randomization === undefined ? null : String(seeds.hash_randomization)],
  ]);
}

function determinismCard(det) {
  if (isEmpty(det)) return el("span", { class: "muted" }, "not recorded");
  const risks = Array.isArray(det.risks) ? det.risks : [];
  const list = risks.length
    ? el("ul", { class: "plain" }, ...risks.map((r) => el("li", null, el("span", { class: "pill warn" }, r.id), r.detail || "")))
    : el("div", null, el("span", { class: "pill ok" }, "no risk found"));
  const settings = kv([
    ["deterministic algorithms", det.torch_loaded ? fmtValue(det.torch_deterministic_algorithms) : null],
    ["cudnn.deterministic", det.torch_loaded ? fmtValue(det.cudnn_deterministic) : null],
    ["cudnn.benchmark", det.torch_loaded ? fmtValue(det.cudnn_benchmark) : null],
    ["matmul precision", det.float32_matmul_precision ?? null],
  ]);
  return el("div", null, list, settings);
}

function dataCard(data) {
  const entries = data ? Object.entries(data) : [];
  if (!entries.length) return el("span", { class: "muted" }, "no dataset fingerprinted");
  const rows = entries.map(([name, d]) => {
    const shape = d.shape ? d.shape.join("×") : d.length !== undefined ? fmtCount(d.length) : d.bytes !== undefined ? fmtBytes(d.bytes) : "";
    return el(
      "tr",
      null,
      el("td", { class: "key" }, name),
      el("td", null, d.kind || ""),
      el("td", null, shape),
      el("td", { class: "val", title: d.fingerprint || "" }, short(d.fingerprint, 16) || ""),
      el("td", null, d.method === "full" ? "" : el("span", { class: "pill warn" }, d.method || "")),
    );
  });
  return el(
    "table",
    { class: "data" },
    el("thead", null, el("tr", null, ...["name", "kind", "shape", "fingerprint", ""].map((h) => el("th", null, h)))),
    el("tbody", null, ...rows),
  );
}

function captureCard(report) {
  if (!report) return el("span", { class: "muted" }, "not recorded");
  const parts = [];
  const captured = report.captured || [];
  parts.push(el("div", null, `captured: ${captured.length ? captured.join(", ") : "nothing"}`));
  const skipped = report.skipped || [];
  if (skipped.length) {
    parts.push(el("div", { class: "section" }, el("strong", null, "skipped")));
    parts.push(el("ul", { class: "plain" }, ...skipped.map((s) => el("li", null, el("code", null, s.what || ""), s.why ? ` — ${s.why}` : ""))));
  }
  const redacted = report.redacted || [];
  parts.push(
    el(
      "div",
      { class: "section" },
      el("strong", null, "redacted"),
      " ",
      redacted.length ? redacted.map((r) => el("span", { class: "pill" }, r)) : el("span", { class: "muted" }, "nothing"),
    ),
  );
  const errors = report.errors || [];
  if (errors.length) {
    parts.push(el("div", { class: "section" }, el("strong", null, "errors")));
    parts.push(el("ul", { class: "plain" }, ...errors.map((e) => el("li", null, el("code", null, e.what || ""), `: ${e.error || ""}`))));
  }
  return el("div", null, ...parts);
}

function paramsSection(detail) {
  const params = Object.entries(detail.params || {}).sort(([a], [b]) => a.localeCompare(b));
  const search = el("input", { type: "search", placeholder: "Search params…", "aria-label": "Search params" });
  const count = el("span", { class: "muted" });
  const tbody = el("tbody");
  const draw = () => {
    const needle = search.value.trim().toLowerCase();
    const rows = params.filter(([k, v]) => !needle || k.toLowerCase().includes(needle) || fmtValue(v).toLowerCase().includes(needle));
    count.textContent = needle ? `${rows.length} of ${params.length}` : `${params.length}`;
    tbody.replaceChildren(...rows.map(([k, v]) => el("tr", null, el("td", { class: "key" }, k), el("td", { class: "val" }, fmtValue(v)))));
    if (!rows.length) tbody.append(el("tr", null, el("td", { class: "muted", colspan: "2" }, params.length ? "No param matches." : "No params recorded.")));
  };
  search.addEventListener("input", draw);
  draw();
  return el(
    "section",
    { class: "section", id: "params" },
    el("h2", null, "Params", count, search),
    el("div", { class: "scroll-box" }, el("table", { class: "data" }, el("thead", null, el("tr", null, el("th", null, "key"), el("th", null, "value"))), tbody)),
  );
}

function seriesLoader(key) {
  return async ({ width, xmin, xmax }) => {
    const q = new URLSearchParams({ runs: runId, keys: key, x: view.xKind, width: String(width) });
    if (xmin !== null) q.set("xmin", String(xmin));
    if (xmax !== null) q.set("xmax", String(xmax));
    const payload = await fetchJSON(`/series.json?${q}`);
    const series = payload.series.filter((s) => s.key === key);
    const lines = series.map((s) => ({ id: `${s.run}:${s.key}`, label: key, color: colour(0), x: s.x, y: s.last, lo: s.min, hi: s.max }));
    const s = series[0];
    const note = s ? `${fmtCount(s.points)} point${s.points === 1 ? "" : "s"}${s.downsampled ? `, ${fmtCount(s.x.length)} buckets` : ""}` : "";
    return { lines, note };
  };
}

function syncCharts(detail) {
  const metrics = detail.metrics || [];
  metricsNote.textContent = metrics.length ? `${metrics.length} key${metrics.length === 1 ? "" : "s"}` : "";
  if (!metrics.length && !charts.size) {
    chartsBox.replaceChildren(el("div", { class: "notice" }, detail.run.live ? "No metric logged yet; this page refreshes by itself." : "No metric was logged in this run."));
    return;
  }
  if (!charts.size) chartsBox.replaceChildren();
  let added = false;
  for (const m of metrics) {
    if (charts.has(m.key)) continue;
    charts.set(m.key, new Chart(chartsBox, { title: m.key, load: seriesLoader(m.key), sync: `run-${runId}`, emptyText: "No points yet", ...view }));
    added = true;
  }
  if (added && charts.size > 1) {
    // A key that appeared while the run was live goes to its place (keys are sorted).
    for (const m of metrics) if (charts.has(m.key)) chartsBox.append(charts.get(m.key).card);
  }
}

function artifactsSection(detail) {
  const artifacts = detail.artifacts || [];
  const body = artifacts.length
    ? el(
        "div",
        { class: "scroll-box" },
        el(
          "table",
          { class: "data" },
          el("thead", null, el("tr", null, ...["name", "kind", "size", "sha256", "step", "flags", "status", ""].map((h) => el("th", null, h)))),
          el("tbody", null, ...artifacts.map(artifactRow)),
        ),
      )
    : el("div", { class: "notice" }, "No artifact was logged in this run.");
  return el("section", { class: "section", id: "artifacts" }, el("h2", null, "Artifacts", el("span", { class: "muted" }, artifacts.length ? String(artifacts.length) : "")), body);
}

function artifactRow(a) {
  const flags = [];
  const ck = a.checkpoint;
  if (ck) {
    if (ck.best) flags.push(el("span", { class: "pill ok" }, "best"));
    if (ck.last) flags.push(el("span", { class: "pill" }, "last"));
    if (ck.deleted) flags.push(el("span", { class: "pill bad" }, "deleted"));
    if (ck.monitor) flags.push(el("span", { class: "muted" }, `${ck.monitor}=${fmtNum(ck.score)}`));
  }
  const download = a.url && !(ck && ck.deleted) ? el("a", { href: a.url, download: "" }, "download") : el("span", { class: "faint" }, "—");
  return el(
    "tr",
    null,
    el("td", { class: "key", title: a.path || "" }, a.name || a.path || a.id),
    el("td", null, a.kind || ""),
    el("td", { class: "num" }, fmtBytes(a.size)),
    el("td", { class: "val", title: a.sha256 || "" }, a.sha256 ? short(a.sha256, 12) : a.status === "pending" ? "hashing…" : ""),
    el("td", { class: "num" }, a.step ?? ""),
    el("td", null, ...flags),
    el("td", null, a.status || ""),
    el("td", null, download),
  );
}

const SHOWN = new Set(["environment", "code", "command", "seeds", "determinism", "data"]);

function otherSections(detail) {
  const all = Object.entries(detail.sections || {}).filter(([, value]) => !isEmpty(value));
  const extra = all.filter(([name]) => !SHOWN.has(name));
  const wrap = el("section", { class: "section", id: "sections" }, el("h2", null, "Recorded sections"));
  if (!all.length) return el("div");
  for (const [name, value] of [...extra, ...all.filter(([name]) => SHOWN.has(name))]) {
    wrap.append(el("details", { class: "card" }, el("summary", null, name), el("pre", { class: "traceback" }, JSON.stringify(value, null, 2))));
  }
  return wrap;
}

// Live runs: poll the record and refresh every mounted chart until the run ends.
function schedule() {
  timer = setTimeout(poll, POLL_MS);
}

async function poll() {
  let detail;
  try {
    detail = await fetchJSON(jsonUrl);
  } catch {
    schedule(); // the server may be busy; try again
    return;
  }
  if (!detail.run.live) {
    // The run ended: draw the whole page once more (final status, artifacts, sections).
    timer = null;
    for (const chart of charts.values()) chart.destroy();
    charts.clear();
    render(detail);
    return;
  }
  renderHeader(detail);
  syncCharts(detail);
  await Promise.all([...charts.values()].map((c) => c.reload()));
  schedule();
}

start();
