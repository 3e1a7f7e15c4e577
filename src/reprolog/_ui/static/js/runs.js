// The runs page (/): filter (SQL WHERE over the runs view), sort, choose columns, select, compare.
import {
  FetchError, badge, el, errorBox, fetchJSON, fmtCount, fmtDuration, fmtNum, fmtTime, fmtValue,
  mountPage, query, runHref, setChildren, setQuery,
} from "./common.js";
import { VirtualTable } from "./table.js";

const MAX_COMPARE = 50;
const BASE_WIDTH = { status: 100, name: 230, experiment: 140, start: 150, end: 150, duration: 84, id: 230 };

const state = {
  where: "",
  sort: null, // {column, desc}
  chosen: null, // column names picked in the chooser (null: the server's default_columns)
  payload: null,
  order: [],
  selected: new Set(),
  controller: null,
};

const app = document.getElementById("app");
const main = mountPage(app, { fill: true, crumbs: ["Runs"] });

const filterInput = el("input", {
  type: "text",
  name: "where",
  spellcheck: "false",
  autocomplete: "off",
  placeholder: `SQL WHERE over the runs view, e.g.  status = 'completed' AND "params.lr" < 0.01`,
  "aria-label": "Filter runs (SQL WHERE predicate)",
});
const applyButton = el("button", { type: "submit" }, "Filter");
const clearButton = el("button", { type: "button", title: "Show every run" }, "Clear");
const filterForm = el("form", { class: "filter", role: "search" }, filterInput, applyButton, clearButton);
const counts = el("span", { class: "counts", "aria-live": "polite" });
const compareButton = el("button", { class: "primary", type: "button", disabled: true }, "Compare (0)");
const unselectButton = el("button", { type: "button", disabled: true, title: "Clear the selection" }, "Unselect");
const chooser = el("details", { class: "dropdown" }, el("summary", null, "Columns ▾"));
const message = el("div", { class: "filter-message" });
const tableHost = el("div", { class: "table-host" });
tableHost.style.display = "flex";
tableHost.style.flexDirection = "column";
tableHost.style.flex = "1";
tableHost.style.minHeight = "0";

main.append(
  el("div", { class: "toolbar" }, filterForm, counts, chooser, unselectButton, compareButton),
  message,
  tableHost,
);

const table = new VirtualTable(tableHost, {
  rowHeight: 28,
  renderCell,
  rowClass: (row) => (state.selected.has(state.payload.data.id[row]) ? "selected" : ""),
  onSort: (column) => {
    const current = state.sort;
    let next;
    if (!current || current.column !== column.name) next = { column: column.name, desc: false };
    else if (!current.desc) next = { column: column.name, desc: true };
    else next = null; // third click: back to the server's order (newest first)
    state.sort = next;
    setQuery({ sort: sortParam(next) });
    applySort();
  },
  emptyText: "No run matches this filter.",
});

filterForm.addEventListener("submit", (event) => {
  event.preventDefault();
  state.where = filterInput.value.trim();
  setQuery({ where: state.where }, { push: true });
  load();
});
clearButton.addEventListener("click", () => {
  filterInput.value = "";
  state.where = "";
  setQuery({ where: "" }, { push: true });
  load();
});
compareButton.addEventListener("click", () => {
  const ids = [...state.selected];
  if (ids.length >= 2 && ids.length <= MAX_COMPARE) {
    location.href = `/compare?runs=${ids.map(encodeURIComponent).join(",")}`;
  }
});
unselectButton.addEventListener("click", () => {
  state.selected.clear();
  updateSelection();
});
window.addEventListener("popstate", () => {
  readQuery();
  load();
});

function sortParam(sort) {
  return sort ? `${sort.desc ? "-" : ""}${sort.column}` : "";
}

function readQuery() {
  const q = query();
  state.where = q.get("where") ?? "";
  filterInput.value = state.where;
  const sort = q.get("sort");
  state.sort = sort ? { column: sort.replace(/^-/, ""), desc: sort.startsWith("-") } : null;
  const cols = q.get("cols");
  state.chosen = cols ? cols.split(",").filter(Boolean) : null;
}

async function load() {
  if (state.controller) state.controller.abort();
  const controller = new AbortController();
  state.controller = controller;
  counts.textContent = "Loading…";
  message.replaceChildren();
  const url = `/runs.json${state.where ? `?where=${encodeURIComponent(state.where)}` : ""}`;
  try {
    const payload = await fetchJSON(url, { signal: controller.signal });
    if (controller !== state.controller) return;
    render(payload);
  } catch (err) {
    if (err.name === "AbortError") return;
    const body = err instanceof FetchError ? err.body : null;
    counts.textContent = body && typeof body.total === "number" ? `${fmtCount(body.total)} runs in store` : "";
    message.replaceChildren(
      errorBox(err.message),
      el("div", { class: "muted" }, "The filter is a SQL WHERE predicate over the runs view; quote dotted columns: \"params.lr\" > 0.01"),
    );
    // No rows rather than rows that do not match the filter; the message says why.
    state.order = [];
    tableHost.classList.add("hidden");
  }
}

function render(payload) {
  state.payload = payload;
  const data = payload.data;
  const ids = data.id ?? [];
  // A selection keeps only runs still listed.
  const listed = new Set(ids);
  for (const id of [...state.selected]) if (!listed.has(id)) state.selected.delete(id);

  if (payload.total === 0) {
    renderEmptyStore();
    return;
  }
  tableHost.classList.remove("hidden");
  const ms = typeof payload.elapsed_ms === "number" ? ` · query ${Math.round(payload.elapsed_ms)} ms` : "";
  counts.textContent = state.where
    ? `${fmtCount(payload.count)} of ${fmtCount(payload.total)} runs match${ms}`
    : `${fmtCount(payload.total)} runs${ms}`;
  buildChooser();
  table.setColumns(tableColumns());
  applySort();
  updateSelection();
}

function renderEmptyStore() {
  counts.textContent = "0 runs";
  tableHost.classList.add("hidden");
  chooser.classList.add("hidden");
  message.replaceChildren(
    el(
      "div",
      { class: "empty" },
      el("h2", null, "No runs in this store yet"),
      el("p", null, "Record a run, then reload this page. From Python:"),
      el(
        "pre",
        null,
        el(
          "code",
          null,
          'import reprolog\n\nwith reprolog.init(name="first-run", params={"lr": 0.01}) as run:\n' +
            '    for step in range(100):\n        run.log({"loss": 1 / (step + 1)}, step=step)',
        ),
      ),
      el("p", null, "Or record any command, with no code change:"),
      el("pre", null, el("code", null, "reprolog run -- python train.py")),
      el(
        "p",
        { class: "muted" },
        "With Lightning, Hugging Face Trainer, Keras or scikit-learn, add the reprolog callback or " +
          "set REPROLOG_AUTOLOG=1. Runs land in ./.reprolog (or $REPROLOG_DIR); start the ui with --dir to read another store.",
      ),
    ),
  );
}

function columnInfo() {
  const byName = new Map();
  for (const column of state.payload.columns) byName.set(column.name, column);
  if (!byName.has("name")) byName.set("name", { name: "name", kind: "base", type: "str" });
  return byName;
}

function visibleNames() {
  const byName = columnInfo();
  const wanted = state.chosen ?? state.payload.default_columns ?? [];
  return wanted.filter((name) => byName.has(name) && name in state.payload.data);
}

function shortLabel(column) {
  if (column.kind === "param") return column.name.replace(/^params\./, "");
  if (column.kind === "tag") return column.name.replace(/^tags\./, "");
  if (column.kind === "metric") return column.name.replace(/^metrics\./, "").replace(/\.last$/, "");
  return column.name;
}

function tableColumns() {
  const byName = columnInfo();
  const listed = (state.payload.data.id ?? []).length;
  const all = el("input", {
    type: "checkbox",
    "aria-label": "Select every listed run",
    title: listed > MAX_COMPARE ? `Filter to ${MAX_COMPARE} runs or fewer to select them all` : "Select every listed run",
    disabled: listed > MAX_COMPARE,
  });
  selectAll = all;
  all.addEventListener("change", () => {
    const ids = state.payload.data.id ?? [];
    if (all.checked) for (const id of ids) state.selected.add(id);
    else state.selected.clear();
    updateSelection();
  });
  const select = { name: "__select", width: 34, sortable: false, header: all };
  const columns = [select];
  for (const name of visibleNames()) {
    const info = byName.get(name);
    const num = info.type === "num";
    const label = shortLabel(info);
    const kind = info.kind === "base" ? "" : info.kind;
    const width = BASE_WIDTH[name] ?? Math.min(230, Math.max(96, 30 + kind.length * 7 + label.length * 7.6));
    columns.push({ name, label, kind, width: Math.round(width), num, type: info.type, title: name });
  }
  return columns;
}

function renderCell(row, column) {
  const data = state.payload.data;
  if (column.name === "__select") {
    const id = data.id[row];
    const box = el("input", {
      type: "checkbox",
      checked: state.selected.has(id),
      "aria-label": `Select run ${data.name?.[row] ?? id}`,
    });
    box.addEventListener("change", () => {
      if (box.checked) state.selected.add(id);
      else state.selected.delete(id);
      updateSelection();
    });
    return box;
  }
  const value = data[column.name]?.[row];
  if (column.name === "status") return badge(value);
  if (column.name === "name") {
    const id = data.id[row];
    const text = value === null || value === undefined || value === "" ? id : String(value);
    return el("a", { href: runHref(id), class: "clip run-link", title: `${text} (${id})` }, text);
  }
  if (column.type === "time") return fmtTime(value);
  if (column.name === "duration") return fmtDuration(value);
  if (value === null || value === undefined) return "";
  if (column.type === "num") return fmtNum(value);
  return fmtValue(value);
}

const collator = new Intl.Collator("en", { numeric: true, sensitivity: "base" });

function sortValue(v) {
  if (v === "nan") return NaN;
  if (v === "inf") return Infinity;
  if (v === "-inf") return -Infinity;
  return v;
}

function applySort() {
  if (!state.payload) return;
  const n = state.payload.data.id?.length ?? 0;
  const order = Array.from({ length: n }, (_, i) => i);
  const sort = state.sort;
  const values = sort ? state.payload.data[sort.column] : null;
  if (values) {
    const sign = sort.desc ? -1 : 1;
    const missing = (v) => v === null || v === undefined || (typeof v === "number" && Number.isNaN(v));
    order.sort((i, j) => {
      const a = sortValue(values[i]);
      const b = sortValue(values[j]);
      const ma = missing(a);
      const mb = missing(b);
      if (ma || mb) return ma === mb ? i - j : ma ? 1 : -1; // missing values always last
      let c;
      if (typeof a === "number" && typeof b === "number") c = a - b;
      else c = collator.compare(fmtValue(a), fmtValue(b));
      return c === 0 ? i - j : sign * c;
    });
  }
  state.order = order;
  table.setSort(values ? sort : null);
  table.setRows(order);
}

let selectAll = null;

function updateSelection() {
  const n = state.selected.size;
  if (selectAll) {
    const listed = (state.payload?.data.id ?? []).length;
    selectAll.checked = listed > 0 && n === listed;
    selectAll.indeterminate = n > 0 && n < listed;
  }
  compareButton.textContent = `Compare (${n})`;
  compareButton.disabled = n < 2 || n > MAX_COMPARE;
  compareButton.title =
    n < 2 ? "Select two or more runs" : n > MAX_COMPARE ? `Compare takes at most ${MAX_COMPARE} runs` : "";
  unselectButton.disabled = n === 0;
  table.refresh();
}

function buildChooser() {
  chooser.classList.remove("hidden");
  const shown = new Set(visibleNames());
  const search = el("input", { type: "search", placeholder: "Find a column…", "aria-label": "Find a column" });
  const list = el("div", { class: "chooser-list" });
  const groups = [
    ["base", "Run"],
    ["param", "Params"],
    ["tag", "Tags"],
    ["metric", "Metrics"],
  ];
  const columns = state.payload.columns.filter((c) => c.name !== "id");
  const toggle = (name, on) => {
    const current = visibleNames();
    const next = on ? [...current, name] : current.filter((c) => c !== name);
    // Keep the server's order (base, params, tags, metrics) for whatever is shown.
    const rank = new Map(state.payload.columns.map((c, i) => [c.name, i]));
    if (!rank.has("name")) rank.set("name", 0.5);
    next.sort((a, b) => (rank.get(a) ?? 0) - (rank.get(b) ?? 0));
    state.chosen = next;
    setQuery({ cols: next.join(",") });
    table.setColumns(tableColumns());
  };
  const draw = () => {
    const needle = search.value.trim().toLowerCase();
    list.replaceChildren();
    for (const [kind, title] of groups) {
      const items = columns.filter(
        (c) => (kind === "base" ? c.kind === "base" || !c.kind : c.kind === kind) && c.name.toLowerCase().includes(needle),
      );
      if (!items.length) continue;
      list.append(el("div", { class: "chooser-group" }, `${title} (${items.length})`));
      for (const column of items.slice(0, 500)) {
        const box = el("input", { type: "checkbox", checked: shown.has(column.name) });
        box.addEventListener("change", () => {
          if (box.checked) shown.add(column.name);
          else shown.delete(column.name);
          toggle(column.name, box.checked);
        });
        const label = el("label", { class: "chooser-item", title: column.name }, box, el("span", null, column.name));
        if (column.varies === false) label.append(el("span", { class: "faint" }, "same"));
        list.append(label);
      }
    }
  };
  search.addEventListener("input", draw);
  const reset = el("button", { type: "button" }, "Default columns");
  reset.addEventListener("click", () => {
    state.chosen = null;
    setQuery({ cols: "" });
    table.setColumns(tableColumns());
    shown.clear();
    for (const name of visibleNames()) shown.add(name);
    draw();
  });
  draw();
  const panel = el("div", { class: "dropdown-panel" }, search, el("div", { class: "chooser-actions" }, reset), list);
  setChildren(chooser, el("summary", null, "Columns ▾"), panel);
}

// Close the column chooser on a click elsewhere.
document.addEventListener("click", (event) => {
  if (chooser.open && !chooser.contains(event.target)) chooser.open = false;
});

readQuery();
load();
