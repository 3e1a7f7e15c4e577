"""Bench `reprolog ui`: the issue's speed table, measured from a real server and a real browser.

Run: python bench/bench_ui.py [--quick] [--workdir DIR] [--repeats N] [--skip-browser]

What it does:
- Builds, once, reusable stores under --workdir (default /tmp/reprolog-bench-ui), each through
  the public API (`reprolog.init(capture=False)`, `run.log`, `run.finish`), so the files are what
  users get; a marker file next to each store says it is complete and what it holds:
    runs10k   10,000 finished runs (lr, batch size, optimizer, seed vary; 3 keys x 300 steps),
              of which 50 are the compare store's runs (their folders copied byte for byte)
    compare   50 runs x 3 keys x 100,000 steps
    million   one run of 10 keys x 100,000 steps (1,000,000 points)
    live      made fresh each time: a child process keeps a run live and logs on demand
- Starts the real server (`reprolog --dir STORE ui --port 0 --no-open`) as a subprocess, times
  the JSON endpoints with httpx (first request reported as "cold", then the median of repeats)
  and samples the server's RSS with psutil (steady and peak).
- Drives Debian's Chromium with Playwright. An init script records, with `performance.now()`
  (milliseconds since the navigation started), when the first runs-table row appears and when
  each chart's canvas appears, each followed by a double requestAnimationFrame: "painted".
The machine has 2 shared cores: figures are medians, and the environment line says what ran.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import median_of, row

import reprolog

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1440, "height": 900}
KEYS3 = ("train/loss", "train/acc", "lr")
BUILD_VERSION = 1  # bump when a builder changes what it writes


@dataclass(frozen=True)
class Sizes:
    runs: int = 10_000
    run_steps: int = 300
    cmp_runs: int = 50
    cmp_steps: int = 100_000
    big_keys: int = 10
    big_steps: int = 100_000


QUICK = Sizes(runs=500, run_steps=50, cmp_runs=10, cmp_steps=5_000, big_keys=4, big_steps=5_000)


# ------------------------------------------------------------------ store builders


def curve(n: int, seed: int, scale: float = 2.0) -> np.ndarray:
    """A float32-precision training curve: a decay plus noise, as frameworks log it."""
    rng = np.random.default_rng(seed)
    x = scale * np.exp(-np.arange(n) / max(1, n / 5)) + 0.05 * rng.standard_normal(n)
    return x.astype(np.float32).astype(np.float64)


def sweep_params(i: int) -> dict[str, Any]:
    """The params of sweep run `i`: lr, batch size, optimizer and seed vary, the model does not."""
    return {
        "lr": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2][i % 5],
        "batch_size": [16, 32, 64, 128][(i // 5) % 4],
        "optimizer": ["adam", "adamw", "sgd"][(i // 20) % 3],
        "seed": i,
        "model": {"name": "mlp", "layers": 4},
    }


def _small_runs(args: tuple[str, int, int, int]) -> int:
    """Worker: `count` finished sweep runs starting at index `first`, through the public API."""
    root, first, count, steps = args
    for i in range(first, first + count):
        run = reprolog.init(
            f"sweep-{i}", experiment=f"exp{i % 4}", dir=root, capture=False,
            params=sweep_params(i),
        )  # fmt: skip
        loss = curve(steps, seed=i).tolist()
        acc = (1.0 - curve(steps, seed=i + 1, scale=0.9)).tolist()
        lr = sweep_params(i)["lr"]
        log = run.log
        for step in range(steps):
            log({"train/loss": loss[step], "train/acc": acc[step], "lr": lr}, step=step)
        run.finish("failed" if i % 37 == 0 else "completed")
    return count


def _long_run(args: tuple[str, int, int]) -> str:
    """Worker: one compare run, 3 keys x `steps` steps."""
    root, i, steps = args
    run = reprolog.init(
        f"long-{i}", experiment="compare", dir=root, capture=False, params=sweep_params(i)
    )
    loss = curve(steps, seed=1000 + i).tolist()
    acc = (1.0 - curve(steps, seed=2000 + i, scale=0.9)).tolist()
    lr = (sweep_params(i)["lr"] * np.cos(np.linspace(0, np.pi / 2, steps))).tolist()
    log = run.log
    for step in range(steps):
        log({"train/loss": loss[step], "train/acc": acc[step], "lr": lr[step]}, step=step)
    run.finish()
    return run.id


def _pool(workers: int) -> ProcessPoolExecutor:
    import multiprocessing

    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))


def ensure_store(
    workdir: Path, name: str, spec: dict[str, Any], build: Callable[[Path], dict[str, Any]]
) -> tuple[Path, dict[str, Any]]:
    """The store `name` under `workdir`: reused when its marker matches `spec`, else rebuilt.

    Returns the store folder and what its builder recorded (ids, build seconds).
    """
    root = workdir / name
    marker = workdir / f"{name}.complete.json"
    spec = {**spec, "build_version": BUILD_VERSION}
    if marker.exists() and root.exists():
        saved = json.loads(marker.read_text())
        if saved.get("spec") == spec:
            print(f"  reusing {name} store ({root}), built in {saved['info']['seconds']:.0f} s")
            return root, saved["info"]
    marker.unlink(missing_ok=True)
    shutil.rmtree(root, ignore_errors=True)
    start = time.perf_counter()
    info = build(root)
    info["seconds"] = time.perf_counter() - start
    marker.write_text(json.dumps({"spec": spec, "info": info}))
    print(f"  built {name} store in {info['seconds']:.1f} s ({root})")
    return root, info


def build_compare(root: Path, sizes: Sizes, workers: int) -> dict[str, Any]:
    root.mkdir(parents=True)
    reprolog.init(dir=root, capture=False).finish()  # creates store.json before the workers
    first = next((root / "runs").iterdir())
    shutil.rmtree(first)
    with _pool(workers) as pool:
        jobs = [(str(root), i, sizes.cmp_steps) for i in range(sizes.cmp_runs)]
        ids = list(pool.map(_long_run, jobs))
    return {"ids": ids, "keys": list(KEYS3)}


def build_runs(root: Path, sizes: Sizes, workers: int, compare_root: Path) -> dict[str, Any]:
    """`sizes.runs` runs: the compare store's runs (copied) and short sweep runs (built)."""
    (root / "runs").mkdir(parents=True)
    shutil.copyfile(compare_root / "store.json", root / "store.json")
    copied = []
    for folder in sorted((compare_root / "runs").iterdir()):
        shutil.copytree(folder, root / "runs" / folder.name)
        copied.append(folder.name)
    n = sizes.runs - len(copied)
    chunk = max(1, n // (workers * 8))
    jobs = [(str(root), i, min(chunk, n - i), sizes.run_steps) for i in range(0, n, chunk)]
    done = 0
    with _pool(workers) as pool:
        for count in pool.map(_small_runs, jobs):
            done += count
    assert done == n, (done, n)
    return {"compare_ids": copied, "runs": sizes.runs}


def build_million(root: Path, sizes: Sizes) -> dict[str, Any]:
    keys = [f"metric_{k:02d}" for k in range(sizes.big_keys)]
    columns = [curve(sizes.big_steps, seed=k).tolist() for k in range(sizes.big_keys)]
    run = reprolog.init(
        "million", experiment="big", dir=root, capture=False, params={"lr": 1e-3, "seed": 0}
    )
    log = run.log
    for step, values in enumerate(zip(*columns, strict=True)):
        log(dict(zip(keys, values, strict=True)), step=step)
    run.finish()
    return {"id": run.id, "points": sizes.big_keys * sizes.big_steps}


def build_stores(workdir: Path, sizes: Sizes, workers: int) -> dict[str, tuple[Path, dict]]:
    workdir.mkdir(parents=True, exist_ok=True)
    spec = asdict(sizes)
    cmp = ensure_store(
        workdir, "compare", {"runs": sizes.cmp_runs, "steps": sizes.cmp_steps},
        lambda r: build_compare(r, sizes, workers),
    )  # fmt: skip
    runs = ensure_store(
        workdir, "runs10k", {**spec, "compare": cmp[1]["ids"]},
        lambda r: build_runs(r, sizes, workers, cmp[0]),
    )  # fmt: skip
    big = ensure_store(
        workdir, "million", {"keys": sizes.big_keys, "steps": sizes.big_steps},
        lambda r: build_million(r, sizes),
    )  # fmt: skip
    return {"compare": cmp, "runs10k": runs, "million": big}


LIVE_CHILD = """
import sys, time, reprolog
run = reprolog.init("live-run", experiment="live", dir=sys.argv[1], capture=False,
                    params={"lr": 0.1})
for step in range(1000):
    run.log({"loss": 1.0 / (step + 1)}, step=step)
print(run.id, flush=True)
step = 1000
for line in sys.stdin:
    if line.strip() == "stop":
        break
    run.log({"loss": float(line)}, step=step)
    print(step, repr(time.time()), flush=True)  # the moment log() returned
    step += 1
run.finish()
"""


# ------------------------------------------------------------------ the server


class ServerUnavailable(RuntimeError):
    """The server command did not start (not installed yet, or it failed)."""


class Server:
    """`reprolog ui --dir STORE --port 0 --no-open` as a subprocess, with an RSS sampler."""

    #: the command before `--dir`, and what comes between the store and `--port`
    #: (`reprolog --dir STORE ui --port 0 --no-open`; --server-cmd replaces the first, drops "ui")
    command: ClassVar[list[str]] = [sys.executable, "-m", "reprolog._cli.__main__"]
    subcommand: ClassVar[list[str]] = ["ui"]

    def __init__(self, store: Path, log: Path) -> None:
        self.store = store
        self.log_path = log
        self.url = ""
        self.lines: list[str] = []
        self.peak = 0
        self.started_s = 0.0
        self._stop = threading.Event()

    def __enter__(self) -> Server:
        import psutil

        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONWARNINGS": "ignore"}
        cmd = [*self.command, "--dir", str(self.store), *self.subcommand]
        cmd += ["--port", "0", "--no-open"]
        start = time.perf_counter()
        self._err = self.log_path.open("w")
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        assert self.proc.stdout is not None
        first = threading.Event()

        def drain() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.lines.append(line.rstrip())
                self._err.write(line)  # stdout and stderr together, for a failure's story
                if not self.url and (m := re.search(r"serving .* at (http://\S+?)/?$", line)):
                    self.url = m.group(1)
                    first.set()
            first.set()

        threading.Thread(target=drain, daemon=True).start()
        if not first.wait(120) or not self.url:
            self.proc.kill()
            said = " | ".join(self.lines)[-400:]
            raise ServerUnavailable(f"`{' '.join(cmd)}` printed no URL: {said}")
        self.started_s = time.perf_counter() - start
        self.ps = psutil.Process(self.proc.pid)
        threading.Thread(target=self._sample, daemon=True).start()
        return self

    def rss(self) -> int:
        """Resident memory of the server and its children, bytes."""
        try:
            procs = [self.ps, *self.ps.children(recursive=True)]
            return sum(p.memory_info().rss for p in procs)
        except Exception:  # the process ended between the calls
            return 0

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self.rss())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._err.close()


def fetch(client: Any, url: str) -> tuple[float, Any, int]:
    """GET `url`: (wall seconds to the last byte, decoded JSON, bytes)."""
    start = time.perf_counter()
    response = client.get(url)
    body = response.content
    elapsed = time.perf_counter() - start
    if response.status_code != 200:
        raise SystemExit(f"GET {url} -> {response.status_code}: {body[:300]!r}")
    return elapsed, json.loads(body), len(body)


@dataclass
class Timed:
    cold: float
    median: float
    server_ms: float | None  # the median of the response's own "elapsed_ms"
    nbytes: int


def time_get(client: Any, url: str, repeats: int) -> Timed:
    cold, payload, nbytes = fetch(client, url)
    walls, own = [], []
    for _ in range(repeats):
        wall, payload, nbytes = fetch(client, url)
        walls.append(wall)
        if isinstance(payload, dict) and isinstance(payload.get("elapsed_ms"), (int, float)):
            own.append(float(payload["elapsed_ms"]))
    return Timed(cold, statistics.median(walls), statistics.median(own) if own else None, nbytes)


def time_concurrent(client: Any, urls: list[str], repeats: int) -> tuple[float, float]:
    """All `urls` at once, as a page fires them: (cold, median) wall seconds to the last one."""
    from concurrent.futures import ThreadPoolExecutor

    def once() -> float:
        start = time.perf_counter()
        with ThreadPoolExecutor(len(urls)) as pool:
            list(pool.map(lambda u: fetch(client, u), urls))
        return time.perf_counter() - start

    cold = once()
    return cold, statistics.median(once() for _ in range(repeats))


def series_url(ids: list[str], keys: list[str], width: int = 1000) -> str:
    return f"/series.json?runs={','.join(ids)}&keys={','.join(keys)}&width={width}"


# ------------------------------------------------------------------ the browser

# Installed before any page script: records when the first runs-table row, the run header and
# each chart canvas appear, then a double requestAnimationFrame later ("painted").
HOOK_JS = r"""
(() => {
  const marks = (window.__bench = { charts: [] });
  const painted = (set) =>
    requestAnimationFrame(() => requestAnimationFrame(() => set(performance.now())));
  const check = () => {
    if (marks.rowsSeen === undefined && document.querySelector(".vt-row")) {
      marks.rowsSeen = performance.now();
      painted((t) => (marks.rows = t));
    }
    if (marks.headSeen === undefined && document.querySelector(".run-head")) {
      marks.headSeen = performance.now();
      painted((t) => (marks.head = t));
    }
    const n = document.querySelectorAll(".chart-card canvas").length;
    while (marks.charts.length < n) {
      const i = marks.charts.length;
      marks.charts.push(null);
      painted((t) => (marks.charts[i] = t));
    }
    const error = document.querySelector(".error-box");
    if (error && marks.error === undefined) marks.error = error.textContent;
  };
  new MutationObserver(check).observe(document, { childList: true, subtree: true });
})();
"""

# The chart cards within the lazy-mount margin (300 px) of the viewport: the ones a page draws.
IN_VIEW_JS = """
() => [...document.querySelectorAll('.chart-card')].filter((c) => {
  const r = c.getBoundingClientRect();
  return r.bottom > -300 && r.top < innerHeight + 300;
}).length
"""

RESOURCES_JS = """
(part) => performance.getEntriesByType('resource').filter((e) => e.name.includes(part)).map(
  (e) => ({name: e.name, start: e.startTime, ttfb: e.responseStart, end: e.responseEnd}))
"""


class Browser:
    """Playwright's Chromium (Debian's binary); each visit gets a fresh context (cold cache)."""

    def __enter__(self) -> Browser:
        from playwright.sync_api import sync_playwright

        self._pw = sync_playwright().start()
        self.browser = self._pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        self.version = self.browser.version
        return self

    def __exit__(self, *exc: object) -> None:
        self.browser.close()
        self._pw.stop()

    @contextmanager
    def page(self, url: str) -> Iterator[Any]:
        context = self.browser.new_context(viewport=VIEWPORT)
        context.add_init_script(HOOK_JS)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(url, wait_until="commit")
        try:
            yield page
        except Exception as exc:
            raise SystemExit(f"{url}: {exc}\npage errors: {errors[:5]}") from exc
        finally:
            context.close()


def marks(page: Any) -> dict[str, Any]:
    return dict(page.evaluate("() => window.__bench"))


def wait_marks(page: Any, condition: str, timeout_s: float = 60) -> dict[str, Any]:
    page.wait_for_function(
        "() => { const m = window.__bench; if (!m) return false;"
        f" return m.error !== undefined || ({condition}); }}",
        timeout=timeout_s * 1000,
    )
    got = marks(page)
    if "error" in got:
        raise RuntimeError(f"the page shows an error: {got['error']}")
    return got


def charts_drawn(page: Any, expected: int | None = None) -> tuple[float, int]:
    """Wait until the chart cards in view (or `expected` charts) are drawn: (ms, how many)."""
    page.wait_for_function(
        "() => document.querySelectorAll('.chart-card').length > 0", timeout=60_000
    )
    n = expected if expected is not None else int(page.evaluate(IN_VIEW_JS))
    got = wait_marks(page, f"m.charts.length >= {n} && m.charts.slice(0, {n}).every((t) => t)")
    return max(got["charts"][:n]), n


def runs_page(browser: Browser, url: str, repeats: int) -> tuple[list[float], dict[str, Any]]:
    """Request to the first table rows painted, ms; and one visit's fetch breakdown."""
    times, breakdown = [], {}
    for _ in range(repeats):
        with browser.page(url + "/") as page:
            got = wait_marks(page, "m.rows !== undefined")
            times.append(got["rows"])
            rows = page.evaluate("() => document.querySelectorAll('.vt-row').length")
            fetches = page.evaluate(RESOURCES_JS, "/runs.json")
            static = page.evaluate(RESOURCES_JS, "/static/")
            breakdown = {
                "rows_in_dom": rows,
                "runs_json": fetches,
                "rows_seen": got["rowsSeen"],
                "static_end": max((f["end"] for f in static), default=0.0),
            }
    return times, breakdown


def compare_page(
    browser: Browser, url: str, ids: list[str], expected: int, repeats: int
) -> tuple[list[float], dict[str, Any]]:
    times, breakdown = [], {}
    for _ in range(repeats):
        with browser.page(f"{url}/compare?runs={','.join(ids)}") as page:
            page.wait_for_function(
                f"() => document.querySelectorAll('.chart-card').length >= {expected}",
                timeout=60_000,
            )
            in_view = int(page.evaluate(IN_VIEW_JS))
            drawn, scrolled = 0.0, 0.0
            if in_view:
                drawn, _ = charts_drawn(page, in_view)
            if in_view < expected:  # lazily mounted below the fold: scroll to the last one
                page.evaluate("() => [...document.querySelectorAll('.chart-card')].at(-1)"
                              ".scrollIntoView()")  # fmt: skip
                drawn, _ = charts_drawn(page, expected)
                scrolled = drawn
            times.append(drawn)
            breakdown = {
                "in_view": in_view,
                "scrolled": scrolled,
                "compare_json": page.evaluate(RESOURCES_JS, "/compare.json"),
                "series_json": page.evaluate(RESOURCES_JS, "/series.json"),
            }
    return times, breakdown


def run_page(
    browser: Browser, url: str, run_id: str, repeats: int
) -> tuple[list[float], list[float], dict[str, Any]]:
    """(header painted ms, charts in view drawn ms, breakdown); scrolls to #metrics if none
    is in view and reports the charts' time from the scroll."""
    heads, charts, breakdown = [], [], {}
    for _ in range(repeats):
        with browser.page(f"{url}/runs/{run_id}") as page:
            got = wait_marks(page, "m.head !== undefined")
            page.wait_for_function("() => document.querySelectorAll('.chart-card').length > 0")
            in_view = int(page.evaluate(IN_VIEW_JS))
            scroll_at = 0.0
            if in_view == 0:
                scroll_at = float(page.evaluate(
                    "() => { document.getElementById('metrics').scrollIntoView();"
                    " return performance.now(); }"))  # fmt: skip
                page.wait_for_function(f"() => ({IN_VIEW_JS})() > 0")
                in_view = int(page.evaluate(IN_VIEW_JS))
            drawn, _ = charts_drawn(page, in_view)
            heads.append(got["head"])
            charts.append(drawn - scroll_at if scroll_at else drawn)
            breakdown = {
                "charts_in_view": in_view,
                "after_scroll": bool(scroll_at),
                "run_json": page.evaluate(RESOURCES_JS, ".json"),
            }
    return heads, charts, breakdown


def live_latency(browser: Browser, workdir: Path, repeats: int) -> list[float]:
    """Seconds from a `log()` returning in a live run to its value shown on the run page."""
    store = workdir / "live"
    shutil.rmtree(store, ignore_errors=True)
    script = workdir / "live_child.py"
    script.write_text(LIVE_CHILD)
    child = subprocess.Popen(
        [sys.executable, str(script), str(store)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert child.stdin is not None and child.stdout is not None
    latencies = []
    try:
        run_id = child.stdout.readline().strip()
        with (
            Server(store, workdir / "server-live.log") as server,
            browser.page(f"{server.url}/runs/{run_id}") as page,
        ):
            page.wait_for_function("() => document.querySelectorAll('.chart-card').length > 0")
            if int(page.evaluate(IN_VIEW_JS)) == 0:
                page.evaluate("() => document.getElementById('metrics').scrollIntoView()")
            charts_drawn(page, 1)
            rng = np.random.default_rng(0)
            for k in range(repeats):
                time.sleep(float(rng.uniform(0.2, 1.2)))  # vary the phase of the poll
                value = 900_000 + k
                child.stdin.write(f"{value}\n")
                child.stdin.flush()
                logged = float(child.stdout.readline().split()[1])
                page.wait_for_function(
                    "(v) => [...document.querySelectorAll('.chart-legend .v')]"
                    ".some((e) => e.textContent === v)",
                    arg=str(value), polling="raf", timeout=30_000,
                )  # fmt: skip
                latencies.append(time.time() - logged)
    finally:
        if child.poll() is None:
            child.stdin.write("stop\n")
            child.stdin.flush()
            child.wait(30)
    return latencies


# ------------------------------------------------------------------ downsampling, directly

DUCKDB_DOWNSAMPLE = """
WITH pts AS (
  SELECT run_id, key, step, value FROM read_parquet($files) WHERE key IN (SELECT unnest($keys))
), span AS (SELECT min(step) AS lo, max(step) AS hi FROM pts)
SELECT run_id, key,
       least($width - 1, floor((step - lo) * $width / greatest(1, hi - lo + 1)))::INT AS b,
       max(step) AS x, min(value) AS vmin, max(value) AS vmax, arg_max(value, step) AS vlast
FROM pts, span GROUP BY ALL ORDER BY run_id, key, b
"""


def downsample_numpy(files: list[str], keys: list[str], width: int) -> int:
    """pyarrow read (no filter: a file is one row group) + numpy per-bucket min/max/last.

    Rows are sorted by (key, step), so each key is one slice and each bucket a run of rows.
    """
    import pyarrow.parquet as pq

    slices = []
    for f in files:
        t = pq.read_table(f, columns=["key", "step", "value"], use_threads=False)
        key = t["key"].combine_chunks()
        names = key.dictionary.to_pylist()
        codes = key.indices.to_numpy()
        cuts = np.r_[0, np.flatnonzero(codes[1:] != codes[:-1]) + 1, len(codes)]
        step, value = t["step"].to_numpy(), t["value"].to_numpy()
        for lo, hi in itertools.pairwise(cuts):
            if names[codes[lo]] in keys:
                slices.append((step[lo:hi], value[lo:hi]))
    x0 = min(int(s[0]) for s, _ in slices)
    span = max(1, max(int(s[-1]) for s, _ in slices) - x0 + 1)
    buckets = 0
    for step, value in slices:
        bucket = np.minimum(width - 1, (step - x0) * width // span)
        starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
        ends = np.r_[starts[1:], len(bucket)] - 1
        np.minimum.reduceat(value, starts)
        np.maximum.reduceat(value, starts)
        value[ends]  # the last by step
        buckets += len(starts)
    return buckets


def downsample_study(store: Path, ids: list[str], keys: list[str], repeats: int) -> None:
    """Time per-bucket min/max/last for the compare workload straight on the Parquet files."""
    import duckdb

    files = [str(store / "runs" / i / "metrics.parquet") for i in ids]
    con = duckdb.connect()
    print(f"\ndownsampling {len(ids)} runs x their steps into 1,000 buckets, straight from Parquet")
    import pyarrow.parquet as pq

    def decode() -> None:
        for f in files:
            pq.read_table(f, columns=["key", "step", "value"], use_threads=False)

    med, _ = median_of(decode, repeats)
    row("decode only: pyarrow read of key, step, value (every key)", f"{med * 1000:.0f} ms")
    for label, sel in (("3 keys", keys), ("1 key", keys[:1])):

        def by_duckdb(sel: list[str] = sel) -> None:
            got = con.execute(DUCKDB_DOWNSAMPLE, {"files": files, "keys": sel, "width": 1000})
            rows = got.fetchall()
            assert len(rows) == len(ids) * len(sel) * 1000, len(rows)

        def by_numpy(sel: list[str] = sel) -> None:
            assert downsample_numpy(files, sel, 1000) == len(ids) * len(sel) * 1000

        for name, fn in (("DuckDB GROUP BY bucket", by_duckdb), ("pyarrow + numpy", by_numpy)):
            med, _ = median_of(fn, repeats)
            row(f"{name}, {label}", f"{med * 1000:.0f} ms")


# ------------------------------------------------------------------ profiling the server


@contextmanager
def profiled(pid: int, out: Path, enabled: bool) -> Iterator[None]:
    """Sample the server with py-spy while the block runs; print where its time went."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not enabled or not Path(spy).exists():
        if enabled:
            print("  (py-spy not installed: no profile)")
        yield
        return
    cmd = [spy, "record", "--pid", str(pid), "--rate", "200", "--format", "raw"]
    proc = subprocess.Popen(
        [*cmd, "--output", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(1.0)  # let it attach
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        if out.exists():
            print_profile(out)
        else:
            print(f"  (py-spy wrote no profile: {err.strip()[-200:]})")


def print_profile(path: Path, top: int = 8) -> None:
    """The top functions of a py-spy raw (collapsed) profile: own and inclusive samples."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + n
    if not total:
        return
    print(f"  profile: {total} samples of busy threads, {path}")
    for label, table in (("own", own), ("inclusive, reprolog only", inclusive)):
        items = sorted(table.items(), key=lambda kv: -kv[1])
        if label.startswith("inclusive"):
            items = [kv for kv in items if "reprolog" in kv[0]]
        print(f"    top {label}:")
        for frame, n in items[:top]:
            print(f"      {n / total:6.1%}  {frame[:110]}")


# ------------------------------------------------------------------ the report


class CpuWatch:
    """How busy the machine was just before and just after the bench (2 s samples)."""

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        self.load_start = os.getloadavg()[0]
        self.busy_before = psutil.cpu_percent(interval=2.0)
        self.wall0 = time.perf_counter()

    def line(self, chromium: str) -> str:
        wall = time.perf_counter() - self.wall0
        busy_after = self._psutil.cpu_percent(interval=2.0)
        return (
            f"machine: {os.cpu_count()} cores, shared; CPU busy {self.busy_before:.0f}% in the 2 s"
            f" before the bench and {busy_after:.0f}% in the 2 s after it (other work);"
            f" load average {self.load_start:.1f} at start, {os.getloadavg()[0]:.1f} at end;"
            f" ran {wall:.0f} s; Chromium {chromium}"
        )


def verdict(value: float | None, target: float) -> str:
    if value is None:
        return "n/a"
    return "ok" if value <= target else "MISS"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small stores, few repeats (smoke)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/reprolog-bench-ui"))
    parser.add_argument("--workers", type=int, default=2, help="processes building the stores")
    parser.add_argument("--repeats", type=int, default=None, help="default 5 (--quick: 2)")
    parser.add_argument("--skip-browser", action="store_true", help="server timings only")
    parser.add_argument("--study", action="store_true", help="also time downsampling directly")
    parser.add_argument("--profile", action="store_true", help="py-spy the server's series calls")
    parser.add_argument("--build-only", action="store_true", help="build the stores and stop")
    parser.add_argument(
        "--server-cmd", help="a server taking `--dir STORE --port 0 --no-open` (default: reprolog)"
    )
    args = parser.parse_args()
    if args.server_cmd:
        Server.command, Server.subcommand = args.server_cmd.split(), []
    sizes = QUICK if args.quick else Sizes()
    repeats = args.repeats or (2 if args.quick else 5)
    workdir = args.workdir / ("quick" if args.quick else "full")
    watch = CpuWatch()
    print(f"reprolog ui benchmark (medians of {repeats}; stores under {workdir})")
    stores = build_stores(workdir, sizes, args.workers)
    if args.build_only:
        return
    runs_root, _ = stores["runs10k"]
    cmp_root, cmp_info = stores["compare"]
    big_root, big_info = stores["million"]
    ids, keys = cmp_info["ids"], cmp_info["keys"]
    # A read-only server never writes index/runs.parquet: leave it as any `reprolog ls` does.
    for root in (runs_root, cmp_root, big_root):
        reprolog.Store(root).runs()
    if args.study:
        downsample_study(cmp_root, ids, keys, repeats)

    import httpx

    result: dict[str, float | None] = dict.fromkeys(
        ("runs_page", "runs_json", "compare", "run_page", "live", "rss"), None
    )
    chromium = "not used"
    points = big_info["points"]
    try:
        with (
            httpx.Client(timeout=120) as client,
            contextmanager_or_none(not args.skip_browser) as br,
        ):
            if br is not None:
                chromium = br.version
            n = sizes.runs
            print(f"\nruns: {n:,} runs (server: reprolog ui on the runs10k store)")
            with Server(runs_root, workdir / "server-runs.log") as srv:
                row("server start to URL printed", f"{srv.started_s:.2f} s")
                with profiled(srv.proc.pid, workdir / "profile-runs.txt", args.profile):
                    t = time_get(client, f"{srv.url}/runs.json", repeats)
                result["runs_json"] = t.median
                row("GET /runs.json, first request (cold)", f"{t.cold * 1000:.0f} ms")
                own = f"server's elapsed_ms {t.server_ms:.0f}" if t.server_ms is not None else ""
                row("GET /runs.json, median (wall, to the last byte)", f"{t.median * 1000:.0f} ms",
                    "<= 300 ms", f"{t.nbytes / 1e6:.1f} MB; {own}")  # fmt: skip
                where = "/runs.json?where=" + httpx.QueryParams({"w": '"params.lr" < 0.001'})["w"]
                t = time_get(client, srv.url + where, repeats)
                row("GET /runs.json?where=params.lr < 0.001", f"{t.median * 1000:.0f} ms")
                if br is not None:
                    times, info = runs_page(br, srv.url, repeats)
                    result["runs_page"] = statistics.median(times) / 1000
                    row("runs page: request to first rows painted", f"{result['runs_page']:.2f} s",
                        "<= 1 s", f"all {[round(x) for x in times]} ms")  # fmt: skip
                    fetches = info["runs_json"]
                    if fetches:
                        f = fetches[-1]
                        row("  of which: /runs.json fetch start, first byte, last byte",
                            f"{f['start']:.0f}/{f['ttfb']:.0f}/{f['end']:.0f} ms")  # fmt: skip
                    row(
                        "  of which: last /static/ file (shell, css, js) loaded",
                        f"{info['static_end']:.0f} ms",
                    )
                    row("  rows in the DOM (virtualised)", str(info["rows_in_dom"]))
                refs = ",".join(ids)
                t = time_get(client, f"{srv.url}/compare.json?runs={refs}", repeats)
                row(f"GET /compare.json, {len(ids)} runs, in the {n:,}-run store",
                    f"{t.median * 1000:.0f} ms", "", f"cold {t.cold * 1000:.0f} ms")  # fmt: skip
                urls = [srv.url + series_url(ids, [k]) for k in keys]
                cold, med = time_concurrent(client, urls, repeats)
                row(f"GET /series.json x{len(keys)} keys at once, same store",
                    f"{med * 1000:.0f} ms", "", f"cold {cold * 1000:.0f} ms")  # fmt: skip
                if br is not None:
                    times, info = compare_page(br, srv.url, ids, len(keys), 1)
                    row(
                        "compare page in the same store, all charts drawn",
                        f"{times[0] / 1000:.2f} s",
                    )
                result["rss"] = srv.rss() / 2**20
                rss_label = "server RSS after the runs page and a 50-run compare"
                peak = f"peak {srv.peak / 2**20:.0f} MB"
                row(rss_label, f"{result['rss']:.0f} MB", "<= 500 MB", peak)

            print(f"\ncompare: {len(ids)} runs x {len(keys)} keys x {sizes.cmp_steps:,} steps")
            with Server(cmp_root, workdir / "server-compare.log") as srv:
                refs = ",".join(ids)
                t = time_get(client, f"{srv.url}/compare.json?runs={refs}", repeats)
                row(
                    "GET /compare.json",
                    f"{t.median * 1000:.0f} ms",
                    "",
                    f"cold {t.cold * 1000:.0f} ms",
                )
                t = time_get(client, srv.url + series_url(ids, keys[:1]), repeats)
                own = f"; elapsed_ms {t.server_ms:.0f}" if t.server_ms is not None else ""
                row("GET /series.json, 1 key, width 1000", f"{t.median * 1000:.0f} ms", "",
                    f"cold {t.cold * 1000:.0f} ms; {t.nbytes / 1e3:.0f} kB{own}")  # fmt: skip
                t = time_get(client, srv.url + series_url(ids, keys), repeats)
                row("GET /series.json, 3 keys in one request", f"{t.median * 1000:.0f} ms", "",
                    f"cold {t.cold * 1000:.0f} ms")  # fmt: skip
                urls = [srv.url + series_url(ids, [k]) for k in keys]
                with profiled(srv.proc.pid, workdir / "profile-series.txt", args.profile):
                    cold, med = time_concurrent(client, urls, repeats)
                row("GET /series.json x3 keys at once (as the page does)", f"{med * 1000:.0f} ms",
                    "", f"cold {cold * 1000:.0f} ms")  # fmt: skip
                if br is not None:
                    times, info = compare_page(br, srv.url, ids, len(keys), repeats)
                    result["compare"] = statistics.median(times) / 1000
                    row("compare page: request to all charts drawn", f"{result['compare']:.2f} s",
                        "<= 2 s", f"all {[round(x) for x in times]} ms; {info['in_view']} in view"
                        + (" (scrolled to the rest)" if info["scrolled"] else ""))  # fmt: skip
                    for name in ("compare_json", "series_json"):
                        for f in info[name]:
                            row(f"  {name}: start, first byte, last byte",
                                f"{f['start']:.0f}/{f['ttfb']:.0f}/{f['end']:.0f} ms")  # fmt: skip
                row("server RSS after it", f"{srv.rss() / 2**20:.0f} MB", "",
                    f"peak {srv.peak / 2**20:.0f} MB")  # fmt: skip

            print(f"\nrun page: one run of {points:,} points ({sizes.big_keys} keys)")
            with Server(big_root, workdir / "server-million.log") as srv:
                rid = big_info["id"]
                t = time_get(client, f"{srv.url}/runs/{rid}.json", repeats)
                row(
                    "GET /runs/<id>.json",
                    f"{t.median * 1000:.0f} ms",
                    "",
                    f"cold {t.cold * 1000:.0f} ms",
                )
                big_keys = [f"metric_{k:02d}" for k in range(sizes.big_keys)]
                t = time_get(client, srv.url + series_url([rid], big_keys[:1]), repeats)
                row("GET /series.json, 1 key", f"{t.median * 1000:.0f} ms", "",
                    f"cold {t.cold * 1000:.0f} ms")  # fmt: skip
                urls = [srv.url + series_url([rid], [k]) for k in big_keys]
                cold, med = time_concurrent(client, urls, repeats)
                row(f"GET /series.json x{len(big_keys)} keys at once", f"{med * 1000:.0f} ms", "",
                    f"cold {cold * 1000:.0f} ms")  # fmt: skip
                if br is not None:
                    heads, charts, info = run_page(br, srv.url, rid, repeats)
                    head = statistics.median(heads) / 1000
                    drawn = statistics.median(charts) / 1000
                    result["run_page"] = max(head, drawn) if not info["after_scroll"] else head
                    row("run page: request to the run header painted", f"{head:.2f} s", "<= 1 s",
                        f"all {[round(x) for x in heads]} ms")  # fmt: skip
                    how = (
                        "after scrolling to #metrics"
                        if info["after_scroll"]
                        else "from the request"
                    )
                    row(f"  {info['charts_in_view']} charts in view drawn, {how}", f"{drawn:.2f} s",
                        "", f"all {[round(x) for x in charts]} ms")  # fmt: skip
                row("server RSS after it", f"{srv.rss() / 2**20:.0f} MB")

            if br is not None:
                print("\nlive: a run kept live by a child process; the run page polls")
                lat = live_latency(br, workdir, repeats)
                result["live"] = statistics.median(lat)
                spread = f"max {max(lat):.2f} s; all {[round(x, 2) for x in lat]}"
                live_label = "live: log() returned to the value shown on the page"
                row(live_label, f"{result['live']:.2f} s", "<= 3 s", spread)
    except ServerUnavailable as exc:
        print(f"\nno server to measure: {exc}")
        if not args.study:
            downsample_study(cmp_root, ids, keys, repeats)

    print("\n| measure | result | target | |\n| --- | --- | --- | --- |")
    table = (
        (f"runs page, {sizes.runs:,} runs: request to table painted", "runs_page", 1.0, "s"),
        (f"runs page JSON for {sizes.runs:,} runs (server)", "runs_json", 0.3, "ms"),
        (
            f"compare, {len(ids)} runs x {sizes.cmp_steps:,} steps x {len(keys)} keys: all charts"
            " drawn",
            "compare",
            2.0,
            "s",
        ),
        (f"run page of a {points:,}-point run", "run_page", 1.0, "s"),
        ("live run: a new point visible after `log()` returns", "live", 3.0, "s"),
        (f"server RSS, {sizes.runs:,} runs + a {len(ids)}-run compare", "rss", 500.0, "MB"),
    )
    for label, name, target, unit in table:
        value = result[name]
        if value is None:
            shown = "not measured"
        elif unit == "ms":
            shown = f"{value * 1000:.0f} ms"
        else:
            shown = f"{value:.2f} s" if unit == "s" else f"{value:.0f} MB"
        limit = f"<= {target * 1000:.0f} ms" if unit == "ms" else f"<= {target:g} {unit}"
        print(f"| {label} | {shown} | {limit} | {verdict(value, target)} |")
    print(watch.line(chromium))


@contextmanager
def contextmanager_or_none(enabled: bool) -> Iterator[Browser | None]:
    if not enabled:
        yield None
        return
    with Browser() as browser:
        yield browser


if __name__ == "__main__":
    main()
