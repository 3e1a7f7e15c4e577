// uPlot wrapper for metric charts: min/max band + last line, log y, debiased EMA, synced cursors
// with a legend of every line's value, lazy mounting, drag-zoom that re-queries the server, and a
// vertical marker (the first divergent step).
/* global uPlot */
import { el, fmtNum, fmtTime } from "./common.js";

const HEIGHT = 220;

// One observer for every chart on the page: a chart loads when it comes near the viewport.
let observer = null;
const pending = new WeakMap();

/** Call `mount` once, the first time `node` comes within 300 px of the viewport. */
export function lazyMount(node, mount) {
  if (!("IntersectionObserver" in window)) {
    mount();
    return;
  }
  if (!observer) {
    observer = new IntersectionObserver(
      (entries) => {
        for (const entry of entries) {
          if (!entry.isIntersecting) continue;
          const fn = pending.get(entry.target);
          observer.unobserve(entry.target);
          pending.delete(entry.target);
          if (fn) fn();
        }
      },
      { rootMargin: "300px 0px" },
    );
  }
  pending.set(node, mount);
  observer.observe(node);
}

/** TensorBoard's smoothing: EMA over the finite points, divided by 1 - beta^t (debiased). */
export function ema(values, beta) {
  if (!beta) return values;
  const out = new Array(values.length);
  let m = 0;
  let t = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined || !Number.isFinite(v)) {
      out[i] = null;
      continue;
    }
    t += 1;
    m = beta * m + (1 - beta) * v;
    out[i] = m / (1 - beta ** t);
  }
  return out;
}

function rgba(hex, alpha) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

function sortedUnion(lines) {
  let total = 0;
  for (const line of lines) total += line.x.length;
  const all = new Float64Array(total);
  let k = 0;
  for (const line of lines) for (const x of line.x) all[k++] = x;
  all.sort();
  const xs = [];
  for (let i = 0; i < all.length; i++) if (i === 0 || all[i] !== all[i - 1]) xs.push(all[i]);
  return xs;
}

function placeOn(xs, line, values) {
  const out = new Array(xs.length).fill(null);
  let k = 0;
  for (let i = 0; i < line.x.length; i++) {
    const x = line.x[i];
    while (xs[k] < x) k++;
    out[k] = values[i];
  }
  return out;
}

function positiveOnly(values) {
  return values.map((v) => (v !== null && v > 0 ? v : null));
}

function differs(a, b) {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return true;
  return false;
}

/** Log axes: grid and labels on powers of ten only (when at least two are in range). */
function decadesOnly(u, splits) {
  const isDecade = (v) => v > 0 && Math.abs(Math.log10(v) - Math.round(Math.log10(v))) < 1e-9;
  const kept = splits.map((v) => (isDecade(v) ? v : null));
  return kept.filter((v) => v !== null).length >= 2 ? kept : splits;
}

const WHOLE_INCRS = [];
for (let e = 0; e <= 12; e++) for (const m of [1, 2, 5]) WHOLE_INCRS.push(m * 10 ** e);

// Charts that share a cursor sync key also zoom together (uPlot syncs the drag selection).
const groups = new Map();

/** Format an x value for the legend. */
function fmtX(x, kind) {
  if (x === null || x === undefined) return "";
  if (kind === "time") return fmtTime(x);
  return `${kind} ${fmtNum(x)}`;
}

export class Chart {
  /**
   * @param {HTMLElement} host  a .chart-card's element to fill
   * @param {object} opts
   *   title: the metric key
   *   load({width, xmin, xmax}) -> Promise<{lines: [{id, label, color, x, y, lo, hi}], note}>
   *   sync: a cursor sync key shared by charts that move together
   *   xKind: "step" | "epoch" | "time";  log: bool;  smoothing: 0..0.999
   *   marker: {x, label} | null   a vertical line (only drawn when xKind is "step")
   */
  constructor(host, opts) {
    this.opts = { xKind: "step", log: false, smoothing: 0, marker: null, ...opts };
    this.range = null; // [xmin, xmax] while zoomed
    this.model = null;
    this.plot = null;
    this.hidden = new Set();
    this.loading = null;
    this.title = el("span", { class: "key", title: opts.title }, opts.title);
    this.note = el("span", { class: "note" });
    this.plotBox = el("div", { class: "chart-plot" }, el("div", { class: "placeholder" }, "Loading…"));
    this.legend = el("div", { class: "chart-legend" });
    this.card = el(
      "div",
      { class: "chart-card", dataset: { key: opts.title } },
      el("div", { class: "chart-title" }, this.title, this.note),
      this.plotBox,
      this.legend,
    );
    host.append(this.card);
    this.mounted = false;
    lazyMount(this.card, () => {
      this.mounted = true;
      this.reload();
    });
    this.resizeObserver = new ResizeObserver(() => {
      if (this.plot) {
        const width = this.width();
        if (Math.abs(width - this.plot.width) > 1) this.plot.setSize({ width, height: HEIGHT });
      }
    });
    this.resizeObserver.observe(this.plotBox);
    if (opts.sync) {
      if (!groups.has(opts.sync)) groups.set(opts.sync, new Set());
      groups.get(opts.sync).add(this);
    }
  }

  /** This chart and those zooming with it. */
  peers() {
    return this.opts.sync ? [...groups.get(this.opts.sync)] : [this];
  }

  width() {
    return Math.max(200, Math.floor(this.plotBox.clientWidth));
  }

  /** Fetch again (same zoom); a no-op until the chart has come into view. */
  async reload() {
    if (!this.mounted) return;
    if (this.loading) return this.loading;
    const range = this.range;
    this.loading = (async () => {
      try {
        const model = await this.opts.load({
          width: this.width(),
          xmin: range ? range[0] : null,
          xmax: range ? range[1] : null,
        });
        if (range !== this.range) return; // zoom changed while loading
        this.model = model;
        this.note.textContent = model.note ?? "";
        this.draw();
      } catch (err) {
        if (err.name === "AbortError") return;
        this.plotBox.replaceChildren(el("div", { class: "error-box" }, err.message));
      } finally {
        this.loading = null;
      }
    })();
    return this.loading;
  }

  /** Change display options; x kind changes need new data, the rest redraws from memory. */
  update(changes) {
    const refetch = "xKind" in changes && changes.xKind !== this.opts.xKind;
    Object.assign(this.opts, changes);
    if (refetch) {
      this.range = null;
      this.reload();
    } else if (this.model) {
      this.draw();
    }
  }

  destroy() {
    if (this.opts.sync) groups.get(this.opts.sync)?.delete(this);
    this.resizeObserver.disconnect();
    if (this.plot) this.plot.destroy();
    this.card.remove();
  }

  build() {
    const { lines } = this.model;
    const { log, smoothing } = this.opts;
    const xs = sortedUnion(lines);
    this.xs = xs;
    const data = [xs];
    const series = [{}];
    const bands = [];
    this.lineIndex = []; // per line: its main series index in the plot
    for (const line of lines) {
      const y = smoothing ? ema(line.y, smoothing) : line.y;
      let main = placeOn(xs, line, y);
      if (log) main = positiveOnly(main);
      const width = line.width ?? 1.6;
      if (smoothing) {
        let raw = placeOn(xs, line, line.y);
        if (log) raw = positiveOnly(raw);
        data.push(raw);
        series.push({ label: `${line.label} (raw)`, stroke: rgba(line.color, 0.28), width: 1, spanGaps: true, points: { show: false }, role: "raw", line });
      }
      const hasBand = line.lo && line.hi && (differs(line.lo, line.y) || differs(line.hi, line.y));
      if (hasBand) {
        let hi = placeOn(xs, line, line.hi);
        let lo = placeOn(xs, line, line.lo);
        if (log) {
          hi = positiveOnly(hi);
          lo = positiveOnly(lo);
        }
        data.push(hi, lo);
        const hiIdx = series.length;
        series.push(
          { label: `${line.label} max`, stroke: "transparent", width: 0, spanGaps: true, points: { show: false }, role: "band", line },
          { label: `${line.label} min`, stroke: "transparent", width: 0, spanGaps: true, points: { show: false }, role: "band", line },
        );
        bands.push({ series: [hiIdx, hiIdx + 1], fill: rgba(line.color, line.bandAlpha ?? 0.16) });
      }
      data.push(main);
      this.lineIndex.push(series.length);
      series.push({
        label: line.label,
        stroke: line.color,
        width,
        ...(line.dash ? { dash: line.dash } : {}),
        spanGaps: true,
        role: "line",
        line,
        points: { size: 4, fill: line.color },
      });
    }
    return { data, series, bands };
  }

  draw() {
    if (!window.uPlot) {
      this.plotBox.replaceChildren(el("div", { class: "error-box" }, "uPlot did not load (/static/vendor/uPlot.iife.min.js)."));
      return;
    }
    const lines = this.model.lines;
    if (!lines.length || lines.every((l) => !l.x.length)) {
      if (this.plot) this.plot.destroy();
      this.plot = null;
      this.plotBox.replaceChildren(el("div", { class: "placeholder" }, this.range ? "No points in this range (double-click to reset)" : this.opts.emptyText ?? "No points"));
      this.renderLegend(null);
      return;
    }
    const { data, series, bands } = this.build();
    for (const [i, s] of series.entries()) if (i && this.hidden.has(s.line?.id)) s.show = false;
    const opts = this.options(series, bands);
    if (this.plot) this.plot.destroy();
    this.plotBox.replaceChildren();
    this.plot = new uPlot(opts, data, this.plotBox);
    this.plot.over.addEventListener("dblclick", () => {
      for (const chart of this.peers()) {
        if (chart.range) {
          chart.range = null;
          chart.reload();
        }
      }
    });
    this.renderLegend(null);
  }

  options(series, bands) {
    const self = this;
    const { xKind, log, marker } = this.opts;
    return {
      width: this.width(),
      height: HEIGHT,
      series,
      bands,
      legend: { show: false },
      padding: [8, 16, 0, 0], // room for the last x label
      scales: {
        x: {
          time: xKind === "time",
          range: (u, dmin, dmax) => {
            if (self.range) return [self.range[0], self.range[1]];
            if (self.xs && self.xs.length === 1) {
              const pad = xKind === "time" ? 60 : 1; // one point: put it in the middle
              return [self.xs[0] - pad, self.xs[0] + pad];
            }
            if (dmin === dmax) return [dmin - 1, dmax + 1];
            return [dmin, dmax];
          },
        },
        y: log ? { distr: 3 } : {},
      },
      axes: [
        {
          stroke: "#656d76",
          grid: { stroke: "#eaeef2" },
          ticks: { stroke: "#d8dee4" },
          ...(xKind === "step" ? { incrs: WHOLE_INCRS } : {}), // steps are integers: no 0.5 ticks
        },
        this.yAxis(log),
      ],
      cursor: {
        ...(this.opts.sync ? { sync: { key: this.opts.sync, setSeries: false } } : {}),
        drag: { x: true, y: false, setScale: false },
        points: {
          show: (u, si) => {
            if (u.series[si].role !== "line") return null;
            const dot = document.createElement("div");
            dot.style.width = "7px";
            dot.style.height = "7px";
            dot.style.marginLeft = "-3.5px";
            dot.style.marginTop = "-3.5px";
            dot.style.borderRadius = "50%";
            return dot;
          },
        },
      },
      hooks: {
        setCursor: [(u) => self.renderLegend(u.cursor.idx)],
        setSelect: [
          (u) => {
            if (u.select.width < 3) return;
            const xmin = u.posToVal(u.select.left, "x");
            const xmax = u.posToVal(u.select.left + u.select.width, "x");
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
            self.range = [xmin, xmax];
            self.reload();
          },
        ],
        draw: [
          (u) => {
            if (!marker || xKind !== "step" || marker.x === null || marker.x === undefined) return;
            const [lo, hi] = [u.scales.x.min, u.scales.x.max];
            if (marker.x < lo || marker.x > hi) return;
            const x = Math.round(u.valToPos(marker.x, "x", true));
            const ctx = u.ctx;
            ctx.save();
            ctx.strokeStyle = "#cf222e";
            ctx.lineWidth = 1.5 * devicePixelRatio;
            ctx.setLineDash([5 * devicePixelRatio, 4 * devicePixelRatio]);
            ctx.beginPath();
            ctx.moveTo(x, u.bbox.top);
            ctx.lineTo(x, u.bbox.top + u.bbox.height);
            ctx.stroke();
            ctx.setLineDash([]);
            ctx.fillStyle = "#cf222e";
            ctx.font = `${11 * devicePixelRatio}px system-ui, sans-serif`;
            ctx.textAlign = "left"; // uPlot leaves its axis labels' alignment on the context
            ctx.textBaseline = "alphabetic";
            const text = marker.label ?? `step ${marker.x}`;
            const w = ctx.measureText(text).width;
            const tx = x + 4 * devicePixelRatio + w > u.bbox.left + u.bbox.width ? x - 4 * devicePixelRatio - w : x + 4 * devicePixelRatio;
            ctx.fillText(text, tx, u.bbox.top + 12 * devicePixelRatio);
            ctx.restore();
          },
        ],
      },
    };
  }

  yAxis(log) {
    const axis = {
      stroke: "#656d76",
      grid: { stroke: "#eaeef2" },
      ticks: { stroke: "#d8dee4" },
      size: (u, values) => {
        if (!values) return 50;
        const longest = values.reduce((m, v) => Math.max(m, String(v).length), 0);
        return Math.max(40, 14 + longest * 7);
      },
    };
    if (log) {
      // uPlot merges options over its defaults: only set these keys when they have a value.
      axis.grid.filter = decadesOnly;
      axis.ticks.filter = decadesOnly;
      axis.filter = decadesOnly;
      axis.values = (u, splits) => splits.map((v) => (v === null ? "" : fmtNum(v)));
    }
    return axis;
  }

  /** The legend below the plot: each line's value at the cursor (or its last value). */
  renderLegend(idx) {
    const model = this.model;
    if (!model) return;
    const plot = this.plot;
    const hovering = plot && idx !== null && idx !== undefined;
    const rows = [];
    const x = hovering ? plot.data[0][idx] : null;
    rows.push(el("div", { class: "row at" }, hovering ? `at ${fmtX(x, this.opts.xKind)}` : this.range ? "zoomed · double-click to reset · last value" : "last value · drag to zoom"));
    model.lines.forEach((line, i) => {
      let value = null;
      if (plot) {
        const ys = plot.data[this.lineIndex[i]];
        if (hovering) value = nearest(ys, idx);
        else for (let j = ys.length - 1; j >= 0; j--) if (ys[j] !== null) { value = ys[j]; break; }
      }
      const swatch = el("span", { class: "sw" });
      swatch.style.background = line.color;
      const row = el(
        "div",
        { class: "row", title: "click to show or hide" },
        swatch,
        el("span", { class: "lbl" }, line.label),
        el("span", { class: "v" }, value === null ? "–" : fmtNum(value)),
      );
      if (this.hidden.has(line.id)) row.style.opacity = "0.4";
      row.addEventListener("click", () => this.toggle(line.id));
      rows.push(row);
    });
    this.legend.replaceChildren(...rows);
  }

  toggle(id) {
    if (this.hidden.has(id)) this.hidden.delete(id);
    else this.hidden.add(id);
    if (!this.plot) return;
    this.plot.series.forEach((s, i) => {
      if (i && s.line && s.line.id === id) this.plot.setSeries(i, { show: !this.hidden.has(id) });
    });
    this.renderLegend(null);
  }
}

/** The value at idx, or the nearest non-null one within a few buckets (runs log at different x). */
function nearest(ys, idx) {
  if (ys[idx] !== null && ys[idx] !== undefined) return ys[idx];
  for (let d = 1; d < 64; d++) {
    const a = ys[idx - d];
    if (a !== null && a !== undefined) return a;
    const b = ys[idx + d];
    if (b !== null && b !== undefined) return b;
  }
  return null;
}

/**
 * The controls every chart page shares: x axis, log y, smoothing. `state` holds
 * {xKind, log, smoothing}; onChange(changes) gets what changed. `extra` nodes go after them.
 */
export function chartControls(state, onChange, ...extra) {
  const xSelect = el(
    "select",
    { "aria-label": "x axis", name: "x" },
    ...["step", "epoch", "time"].map((v) => el("option", { value: v, selected: state.xKind === v }, v === "time" ? "wall time" : v)),
  );
  xSelect.value = state.xKind;
  xSelect.addEventListener("change", () => onChange({ xKind: xSelect.value }));
  const logBox = el("input", { type: "checkbox", name: "log", checked: state.log });
  logBox.addEventListener("change", () => onChange({ log: logBox.checked }));
  const smoothValue = el("span", { class: "val" }, state.smoothing.toFixed(2));
  const smooth = el("input", { type: "range", name: "smoothing", min: "0", max: "0.99", step: "0.01", value: String(state.smoothing) });
  smooth.addEventListener("input", () => {
    smoothValue.textContent = Number(smooth.value).toFixed(2);
  });
  smooth.addEventListener("change", () => onChange({ smoothing: Number(smooth.value) }));
  return el(
    "div",
    { class: "controls" },
    el("label", null, "x axis", xSelect),
    el("label", null, logBox, "log y"),
    el("label", { title: "Exponential moving average, debiased as in TensorBoard" }, "smoothing", smooth, smoothValue),
    ...extra,
  );
}
