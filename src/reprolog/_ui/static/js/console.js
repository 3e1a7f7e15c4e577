// The run page's console panel: the recorded stdout/stderr (already redacted and stripped of
// ANSI codes at capture), the last lines first fetched, new lines polled while the run is live.
import { el, fetchJSON, fmtCount } from "./common.js";

const POLL_MS = 1000;
const NAMES = { o: "stdout", e: "stderr", r: "reprolog" };

/** A <section id=console> for run `ref`; polls by itself while the run is live. */
export function consoleSection(ref) {
  const url = `/runs/${encodeURIComponent(ref)}/console.json`;
  const note = el("span", { class: "muted" });
  const pre = el("pre", { class: "traceback console", "aria-label": "console output" });
  const wrap = el("section", { class: "section hidden", id: "console" }, el("h2", null, "Console ", note), pre);
  let offset = 0;
  let shown = 0;

  function line(t, stream, text) {
    const row = el("span", { class: `ln ${NAMES[stream] || stream}`, title: `${NAMES[stream] || stream} · ${new Date(t * 1000).toISOString()}` });
    row.textContent = text; // record strings go in as text, never as markup
    if (stream === "e") row.style.color = "#b42318";
    if (stream === "r") row.style.fontStyle = "italic";
    return row;
  }

  async function load() {
    let body;
    try {
      body = await fetchJSON(`${url}?offset=${offset}`);
    } catch {
      return true; // busy or gone: a live page tries again
    }
    if (body.skipped && !shown) pre.append(el("span", { class: "ln muted" }, `… ${fmtCount(body.skipped)} earlier lines (reprolog logs ${body.run} prints them all)\n`));
    for (const [t, stream, text] of body.lines) {
      pre.append(line(t, stream, text), "\n");
      shown += 1;
    }
    offset = body.offset;
    if (shown) wrap.classList.remove("hidden");
    const summary = body.summary || {};
    const dropped = summary.dropped_lines ? ` · ${fmtCount(summary.dropped_lines)} dropped by the size limit` : "";
    note.textContent = `${fmtCount(summary.lines ?? shown)} lines${dropped}`;
    if (body.lines.length) pre.scrollTop = pre.scrollHeight;
    return body.live;
  }

  (async function poll() {
    if (await load()) setTimeout(poll, POLL_MS);
  })();
  return wrap;
}
