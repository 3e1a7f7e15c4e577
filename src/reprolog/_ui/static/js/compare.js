// The compare page (/compare?runs=a,b,...): overlaid metric charts (x by step/epoch/time, log y,
// EMA, colour or group by a param, synced cursors), the params that differ, and for two runs the
// diff: ranked causes, the most likely cause, per-metric verdicts, the first divergent step.
import {
  badge, colour, el, errorBox, fetchJSON, fmtCount, fmtDuration, fmtTime, fmtValue, mountPage, query,
  runHref, section, setQuery,
} from "./common.js";
import { Chart, chartControls } from "./chart.js";

const app = document.getElementById("app");
const q = query();
const refs = (q.get("runs") || "").split(",").map((s) => s.trim()).filter(Boolean);
const view = {
  xKind: ["step", "epoch", "time"].includes(q.get("x")) ? q.get("x") : "step",
  log: q.get("log") === "1",
  smoothing: Math.min(0.99, Math.max(0, Number(q.get("smooth")) || 0)),
  colorBy: q.get("color") || "",
  groupBy: q.get("group") || "",
};
const charts = [];
let cmp = null;

async function start() {
  const main = mountPage(app, { crumbs: ["Compare"] });
  if (refs.length < 2) {
    main.append(errorBox("Compare needs two or more runs: /compare?runs=<id>,<id>. Select them on the runs page."), el("p", null, el("a", { href: "/" }, "Back to the runs")));
    return;
  }
  main.append(el("p", { class: "loading" }, `Loading ${refs.length} runs…`));
  try {
    cmp = await fetchJSON(`/compare.json?runs=${refs.map(encodeURIComponent).join(",")}`);
  } catch (err) {
    main.replaceChildren(errorBox(err.message), el("p", null, el("a", { href: "/" }, "Back to the runs")));
    return;
  }
  document.title = `Compare ${cmp.runs.length} runs · reprolog`;
  const page = mountPage(app, { crumbs: ["Compare", `${cmp.runs.length} runs`] });
  page.append(runsStrip());
  if (cmp.diff) page.append(diffSection(cmp.diff));
  page.append(chartsSection());
  page.append(paramsSection());
}

function runLabel(run) {
  return run.name || run.id.slice(0, 10);
}

function paramValue(runId, key) {
  const values = cmp.params.values[runId] || {};
  return key in values ? values[key] : undefined;
}

/** Colour per run: its position, or (colour by a param) the position of its value. */
function runColours() {
  const out = new Map();
  if (!view.colorBy) {
    cmp.runs.forEach((run, i) => out.set(run.id, colour(i)));
    return out;
  }
  const seen = new Map();
  for (const run of cmp.runs) {
    const v = fmtValue(paramValue(run.id, view.colorBy));
    if (!seen.has(v)) seen.set(v, seen.size);
    out.set(run.id, colour(seen.get(v)));
  }
  return out;
}

function swatch(color) {
  const s = el("span", { class: "run-swatch" });
  s.style.background = color;
  return s;
}

let stripBody = null;

function runsStrip() {
  stripBody = el("tbody");
  drawStrip();
  return el(
    "div",
    { class: "scroll-box short" },
    el(
      "table",
      { class: "data" },
      el("thead", null, el("tr", null, ...["run", "experiment", "status", "start", "duration", "id"].map((h) => el("th", null, h)))),
      stripBody,
    ),
  );
}

function drawStrip() {
  const colours = runColours();
  stripBody.replaceChildren(
    ...cmp.runs.map((run, i) =>
      el(
        "tr",
        null,
        el(
          "td",
          null,
          swatch(colours.get(run.id)),
          cmp.diff ? el("strong", null, i === 0 ? "A " : "B ") : null,
          el("a", { href: runHref(run.id) }, runLabel(run)),
        ),
        el("td", null, run.experiment || ""),
        el("td", null, badge(run.status)),
        el("td", { class: "nowrap" }, fmtTime(run.start)),
        el("td", { class: "num" }, fmtDuration(run.duration)),
        el("td", { class: "key" }, run.id),
      ),
    ),
  );
}

// From the runs' step fingerprints: the first step where they part and what differed there.
function stepExplanation(ex) {
  if (!ex) return null;
  const rows = Object.entries(ex.evidence || {})
    .filter(([, v]) => v !== null && v !== undefined && !(Array.isArray(v) && !v.length))
    .map(([k, v]) => el("tr", null, el("td", { class: "key" }, k), el("td", { class: "val" }, typeof v === "object" ? JSON.stringify(v) : String(v))));
  return el(
    "div",
    // "unknown": the runs hold no fingerprints to judge by; a note, not a second verdict box.
    { class: ex.barrier === "unknown" ? "muted" : `cause${ex.barrier === "none" ? " same" : ""}`, id: "step-explanation" },
    el("strong", null, "Why they part:"),
    el("span", { class: "pill" }, ex.barrier),
    el("span", null, ex.summary),
    ...(ex.notes || []).map((n) => el("div", { class: "muted" }, n)),
    rows.length && ex.barrier !== "unknown" ? el("table", { class: "data", id: "step-evidence" }, el("tbody", null, ...rows)) : null,
  );
}

function diffSection(diff) {
  const parts = [];
  const explained = stepExplanation(diff.explanation);
  const unknown = diff.explanation && diff.explanation.barrier === "unknown";
  if (explained && !unknown) parts.push(explained);
  const cause = diff.most_likely_cause;
  if (cause) {
    parts.push(el("div", { class: "cause", id: "most-likely-cause" }, el("strong", null, "Most likely cause:"), cause));
  } else {
    parts.push(
      el(
        "div",
        { class: `cause${diff.differs ? "" : " same"}`, id: "most-likely-cause" },
        el("strong", null, diff.differs ? "Differences found," : "No difference:"),
        diff.differs ? "but none recorded that explains them." : "everything recorded matches.",
      ),
    );
  }
  if (explained && unknown) parts.push(explained);
  const verdicts = diff.verdicts || [];
  if (verdicts.length) {
    parts.push(
      el("h3", null, "Per-metric verdict"),
      el(
        "div",
        { class: "scroll-box" },
        el(
          "table",
          { class: "data", id: "verdicts" },
          el("thead", null, el("tr", null, ...["metric", "status", "verdict"].map((h) => el("th", null, h)))),
          el(
            "tbody",
            null,
            ...verdicts.map((v) => el("tr", null, el("td", { class: "key" }, v.key), el("td", null, badge(v.status)), el("td", null, v.verdict || ""))),
          ),
        ),
      ),
    );
  }
  const only = [...(diff.metrics_only_in_a || []).map((k) => `${k} (only A)`), ...(diff.metrics_only_in_b || []).map((k) => `${k} (only B)`)];
  if (only.length) parts.push(el("p", { class: "muted" }, `Logged by one run only: ${only.join(", ")}`));
  const differences = diff.differences || [];
  if (differences.length) {
    const limit = 12;
    const tbody = el("tbody");
    const toggle = el("button", { type: "button" }, `Show all ${differences.length}`);
    let all = false;
    const draw = () => {
      const rows = all ? differences : differences.slice(0, limit);
      tbody.replaceChildren(
        ...rows.map((d) =>
          el(
            "tr",
            null,
            el("td", { class: "num" }, d.rank ?? ""),
            el("td", null, el("span", { class: "pill" }, d.category || "")),
            el("td", { class: "key" }, d.key || ""),
            el("td", { class: "val" }, cell(d.a)),
            el("td", { class: "val" }, cell(d.b)),
            el("td", null, d.explanation || ""),
          ),
        ),
      );
      toggle.textContent = all ? `Show top ${limit}` : `Show all ${differences.length}`;
    };
    toggle.addEventListener("click", () => {
      all = !all;
      draw();
    });
    draw();
    parts.push(
      el("h3", { class: "section" }, `Ranked causes (${differences.length})`),
      el(
        "div",
        { class: "scroll-box" },
        el(
          "table",
          { class: "data", id: "causes" },
          el("thead", null, el("tr", null, ...["#", "category", "key", "A", "B", "why it matters"].map((h) => el("th", null, h)))),
          tbody,
        ),
      ),
    );
    if (differences.length > limit) parts.push(el("div", { class: "section" }, toggle));
  }
  return section("Why they differ", ...parts);
}

function cell(value) {
  if (value === null || value === undefined) return el("span", { class: "faint" }, "—");
  const text = fmtValue(value);
  return text.length > 120 ? `${text.slice(0, 117)}…` : text;
}

function markerFor(key) {
  const diff = cmp.diff;
  if (!diff) return null;
  const v = (diff.verdicts || []).find((x) => x.key === key);
  if (v && v.step !== null && v.step !== undefined) return { x: v.step, label: `diverged at step ${v.step}` };
  const ex = diff.explanation;
  if (ex && ex.step !== null && ex.step !== undefined && ex.barrier !== "unknown") {
    return { x: ex.step, label: `${ex.barrier}: step ${ex.step}` };
  }
  if (diff.first_divergent_step !== null && diff.first_divergent_step !== undefined) {
    return { x: diff.first_divergent_step, label: `first divergence: step ${diff.first_divergent_step}` };
  }
  return null;
}

// One colour per group value on every chart: values in the runs' order, then any the server adds.
let groupIndexes = null;

function groupIndex(label) {
  if (!groupIndexes || groupIndexes.param !== view.groupBy) {
    groupIndexes = { param: view.groupBy, map: new Map() };
    for (const run of cmp.runs) {
      const v = paramValue(run.id, view.groupBy);
      const text = v === undefined ? "null" : fmtValue(v);
      if (!groupIndexes.map.has(text)) groupIndexes.map.set(text, groupIndexes.map.size);
    }
  }
  const map = groupIndexes.map;
  if (!map.has(String(label))) map.set(String(label), map.size);
  return map.get(String(label));
}

function loader(key) {
  return async ({ width, xmin, xmax }) => {
    const p = new URLSearchParams({ runs: cmp.runs.map((r) => r.id).join(","), keys: key, x: view.xKind, width: String(width) });
    if (xmin !== null) p.set("xmin", String(xmin));
    if (xmax !== null) p.set("xmax", String(xmax));
    if (view.groupBy) p.set("group", `params.${view.groupBy}`);
    const payload = await fetchJSON(`/series.json?${p}`);
    if (view.groupBy) {
      const groups = (payload.groups || []).filter((g) => g.key === key);
      const lines = groups.map((g) => ({
        id: `group:${g.group}`,
        label: `${view.groupBy}=${g.group} · mean of ${g.runs.length} run${g.runs.length === 1 ? "" : "s"}`,
        color: colour(groupIndex(g.group)),
        x: g.x,
        y: g.mean,
        lo: g.min,
        hi: g.max,
        width: 2,
        bandAlpha: 0.2,
      }));
      return { lines, note: `${groups.length} group${groups.length === 1 ? "" : "s"} by ${view.groupBy}` };
    }
    const colours = runColours();
    const byId = new Map(cmp.runs.map((r) => [r.id, r]));
    const series = payload.series.filter((s) => s.key === key);
    const order = new Map(cmp.runs.map((r, i) => [r.id, i]));
    series.sort((a, b) => (order.get(a.run) ?? 0) - (order.get(b.run) ?? 0));
    const lines = series.map((s) => {
      const run = byId.get(s.run) || { id: s.run };
      let label = runLabel(run);
      if (view.colorBy) label += ` · ${view.colorBy}=${fmtValue(paramValue(run.id, view.colorBy))}`;
      return { id: s.run, label, color: colours.get(s.run) || "#888888", x: s.x, y: s.last, lo: s.min, hi: s.max };
    });
    const points = series.reduce((n, s) => n + (s.points || 0), 0);
    const sampled = series.some((s) => s.downsampled);
    return { lines, note: `${fmtCount(points)} points${sampled ? ", downsampled to the chart width" : ""}` };
  };
}

function chartsSection() {
  const keys = cmp.metric_keys || [];
  const paramKeys = cmp.params.keys || [];
  const differ = new Set(cmp.params.differ || []);
  const ordered = [...paramKeys].sort((a, b) => Number(differ.has(b)) - Number(differ.has(a)) || a.localeCompare(b));
  const pick = (name, current, none) => {
    const s = el(
      "select",
      { name, "aria-label": name },
      el("option", { value: "" }, none),
      ...ordered.map((k) => el("option", { value: k }, differ.has(k) ? k : `${k} (same)`)),
    );
    s.value = ordered.includes(current) ? current : "";
    return s;
  };
  const colourSelect = pick("colour by", view.colorBy, "run");
  const groupSelect = pick("group by", view.groupBy, "none");
  view.colorBy = colourSelect.value;
  view.groupBy = groupSelect.value;
  colourSelect.addEventListener("change", () => {
    view.colorBy = colourSelect.value;
    saveView();
    drawStrip();
    for (const chart of charts) chart.reload();
  });
  groupSelect.addEventListener("change", () => {
    view.groupBy = groupSelect.value;
    colourSelect.disabled = Boolean(view.groupBy);
    saveView();
    for (const chart of charts) {
      chart.range = null;
      chart.reload();
    }
  });
  colourSelect.disabled = Boolean(view.groupBy);
  const controls = chartControls(
    view,
    (changes) => {
      Object.assign(view, changes);
      saveView();
      for (const chart of charts) chart.update({ ...changes, marker: markerFor(chart.opts.title) });
    },
    el("label", null, "colour by", colourSelect),
    el("label", { title: "Per group: the mean line and a min–max band over all its runs" }, "group by", groupSelect),
  );
  const grid = el("div", { class: "charts" });
  for (const key of keys) {
    charts.push(new Chart(grid, { title: key, load: loader(key), sync: "compare", marker: markerFor(key), ...viewOpts() }));
  }
  const body = keys.length ? grid : el("div", { class: "notice" }, "These runs logged no metric.");
  return el("section", { class: "section", id: "metrics" }, el("h2", null, "Metrics", el("span", { class: "muted" }, `${keys.length} key${keys.length === 1 ? "" : "s"}`)), controls, body);
}

function viewOpts() {
  return { xKind: view.xKind, log: view.log, smoothing: view.smoothing };
}

function saveView() {
  setQuery({
    x: view.xKind === "step" ? "" : view.xKind,
    log: view.log ? "1" : "",
    smooth: view.smoothing ? String(view.smoothing) : "",
    color: view.colorBy,
    group: view.groupBy,
  });
}

function paramsSection() {
  const keys = cmp.params.keys || [];
  const differ = new Set(cmp.params.differ || []);
  let showAll = false;
  const toggle = el("button", { type: "button" });
  const tbody = el("tbody");
  const colours = runColours();
  const head = el(
    "tr",
    null,
    el("th", null, "param"),
    ...cmp.runs.map((run) => el("th", { title: run.id }, swatch(colours.get(run.id)), runLabel(run))),
  );
  const draw = () => {
    const rows = showAll ? keys : keys.filter((k) => differ.has(k));
    tbody.replaceChildren(
      ...rows.map((k) =>
        el(
          "tr",
          { class: differ.has(k) ? "differs" : "" },
          el("td", { class: "key" }, k),
          ...cmp.runs.map((run) => el("td", { class: "val" }, cell(paramValue(run.id, k)))),
        ),
      ),
    );
    if (!rows.length) {
      tbody.append(el("tr", null, el("td", { class: "muted", colspan: String(cmp.runs.length + 1) }, keys.length ? "Every param is the same in these runs." : "No params recorded.")));
    }
    toggle.textContent = showAll ? `Only the ${differ.size} that differ` : `Show all ${keys.length}`;
  };
  toggle.addEventListener("click", () => {
    showAll = !showAll;
    draw();
  });
  draw();
  return el(
    "section",
    { class: "section", id: "params" },
    el("h2", null, "Params", el("span", { class: "muted" }, `${differ.size} of ${keys.length} differ`), toggle),
    el("div", { class: "scroll-box" }, el("table", { class: "data" }, el("thead", null, head), tbody)),
  );
}

start();
