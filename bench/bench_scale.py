"""Bench reprolog at scale (issue 17, speed, local): listing 100,000 runs, SQL over 100M points.

Run: python bench/bench_scale.py [--store-dir DIR] [--repeats N] [--profile] [--only WHAT]

Targets (2 cores, local disk):
  `Store.runs()` over 100,000 finished runs                     <= 2 s
  SQL `min(value)` per run and key over 100,000,000 points      <= 10 s

How the stores are synthesised (once; a marker file next to each store says it is complete):
  runs100k   100,000 finished runs, 3 keys x 20 steps each
  points100m 1,000 finished runs x 5 keys x 20,000 steps = 100,000,000 points
both under --store-dir (default /tmp/reprolog-bench-scale), never in the repository.

1. One real run per store is made with the public API (`reprolog.init(dir=..., capture=...)`,
   `run.log_params`, `run.log`, `run.finish()`) in a scratch store; its `run.json` is the
   template record, and the files it left (run.json, summary.json, metrics.parquet, run.lock,
   heartbeat, rng/ when captured) are the files every clone gets.
2. Each clone gets a fresh valid run id: 10 Crockford base32 characters of its (synthetic)
   creation milliseconds + 16 of 80 random bits, made by `reprolog._storage._ids._encode`, as
   `new_run_id` does; ids are time-sortable and the start time in the record is the id's time.
   The id is the folder name, `run.json["id"]`, `summary.json["id"]` and the `run_id`
   dictionary of its `metrics.parquet`.
3. Its points are numpy arrays in logging order (step-major, every key each step; float32-
   precision noisy curves, as frameworks log, stored as float64; time 50 ms per step; an epoch
   every 1,000 steps) put in the `LogContents` that reading a live log gives, and then go
   through compaction's own code: `_encode.to_table` (schema, sort by key and step, dictionary
   columns), `_encode.write_parquet` (zstd, encodings, statistics, temp file + fsync +
   rename), `_encode.summarize` (metrics_summary) and `_compact.finalize` (run.json with
   fsync, then summary.json via `summary_row`). So the bytes on disk are the ones `finish()`
   would write for those points; only the mlog round trip (which does not change them) is
   skipped. Params (lr, batch size, optimizer, seed, layers) and names vary per run.
4. The 100k store's template run is made with `capture=False`: its run.json is ~2 KB instead
   of ~100 KB (the environment section), which keeps the store at ~1 GB. Listing never reads
   run.json when summary.json is there, so this does not change what `runs()` does. The 100M
   store's runs carry the full captured record.

Measures (medians of --repeats; each repeat a fresh `reprolog.Store`, as a new CLI process):
  runs() cold: `index/runs.parquet` deleted before each repeat, so the listing reads every
  summary.json and writes the index (the files are in the OS page cache after the build; a
  first listing after a reboot also pays the disk reads); runs() warm: the index present;
  runs() + 1 new: a copy of the newest run under a new id added before the listing (and
  removed after it, so each repeat also sees the previous one gone).
  `Store.sql(...)` over the 100M store, and the same query in plain DuckDB over
  `read_parquet('<store>/runs/*/metrics.parquet')` (the floor: DuckDB's own scan).
--profile runs cProfile over each missed measure and prints where the time goes.
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import io
import json
import pstats
import shutil
import subprocess
import sys
import time
from multiprocessing import Pool
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median_of, row

QUERY = "SELECT run_id, key, min(value) FROM metrics GROUP BY run_id, key"
BASE_MS = 1_700_000_000_000  # 2023-11-14: the synthetic runs start here, one a minute
STEP_MS = 50

STORES = {
    # name: (runs, keys, steps, capture)
    "runs100k": (100_000, ("train/acc", "train/loss", "val/loss"), 20, False),
    "points100m": (
        1_000,
        ("grad_norm", "lr", "train/acc", "train/loss", "val/loss"),
        20_000,
        True,
    ),
}


# ---------------------------------------------------------------- synthesis


def _template(scratch: Path, capture: bool) -> tuple[dict[str, Any], list[str]]:
    """One real run through the public API: its record and the names of the files it left."""
    import reprolog

    shutil.rmtree(scratch, ignore_errors=True)
    run = reprolog.init(name="template", experiment="scale", dir=scratch, capture=capture)
    run.log_params({"optimizer": {"name": "adam", "lr": 1e-3}, "batch_size": 32, "seed": 0})
    for step in range(10):
        run.log({"train/loss": 1.0 / (step + 1), "train/acc": step / 10}, step=step)
    run.finish()
    folder = Path(run.dir)
    record = json.loads((folder / "run.json").read_text())
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    return record, files


def _run_id(ms: int, rand: int) -> str:
    from reprolog._storage._ids import _encode

    return _encode(ms, 10) + _encode(rand, 16)


def _points(i: int, keys: tuple[str, ...], steps: int, start_ms: int) -> Any:
    """The run's points as `read_log` returns them: logging order, every key each step."""
    import numpy as np

    from reprolog._storage._metriclog import LogContents

    rng = np.random.default_rng(i)
    k = len(keys)
    step = np.repeat(np.arange(steps, dtype=np.int64), k)
    key_id = np.tile(np.arange(k, dtype=np.int64), steps)
    progress = step / max(steps - 1, 1)
    rate = rng.uniform(2.0, 6.0, k)[key_id]
    level = rng.uniform(0.05, 2.0, k)[key_id]
    value = level * np.exp(-rate * progress) + 0.02 * rng.standard_normal(len(step))
    value = value.astype(np.float32).astype(np.float64)  # float32 precision, as logged
    time_ms = start_ms + step * STEP_MS + key_id
    return LogContents(
        keys=list(keys),
        key_id=key_id.astype(np.uint32),
        step=step,
        epoch=(step // 1000).astype(np.int32),
        value=value,
        time_ms=time_ms.astype(np.int64),
        dropped=0,
        problems=[],
    )


def _write_runs(args: tuple[str, dict[str, Any], list[str], int, int, tuple, int]) -> int:
    """Write runs lo..hi-1 of a store (one worker's share)."""
    import numpy as np

    from reprolog._storage._compact import finalize
    from reprolog._storage._encode import summarize, to_table, write_parquet
    from reprolog._storage._layout import StoreLayout

    root, template, files, lo, hi, keys, steps = args
    store = StoreLayout(Path(root))
    extra = [f for f in files if f not in ("run.json", "summary.json", "metrics.parquet")]
    optimizers = ("adam", "sgd", "adamw", "lion")
    for i in range(lo, hi):
        rng = np.random.default_rng(1_000_003 + i)
        start_ms = BASE_MS + i * 60_000
        run_id = _run_id(start_ms, int.from_bytes(rng.bytes(10), "big"))
        layout = store.run_layout(run_id)
        layout.dir.mkdir(parents=True)
        for name in extra:  # run.lock, heartbeat (empty), rng/... (the template's content)
            target = layout.dir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            source = Path(template["_dir"]) / name
            shutil.copyfile(source, target)
        record = copy.deepcopy({k: v for k, v in template.items() if k != "_dir"})
        record["id"] = run_id
        record["name"] = f"run-{i:06d}"
        record["experiment"] = f"exp-{i % 20:02d}"
        record["start_time"] = start_ms / 1000
        record["end_time"] = (start_ms + steps * STEP_MS) / 1000 + float(rng.uniform(0.05, 0.5))
        record["params"] = {
            "optimizer.name": optimizers[i % 4],
            "optimizer.lr": float(10 ** rng.uniform(-5, -1)),
            "batch_size": int(2 ** rng.integers(4, 10)),
            "seed": i,
            "model.layers": int(rng.integers(1, 48)),
        }
        table = to_table(run_id, _points(i, keys, steps, start_ms))
        write_parquet(table, layout.metrics)
        record["metrics_summary"] = summarize(table)
        finalize(layout, record)
    return hi - lo


def build(store_dir: Path, name: str, workers: int = 2) -> Path:
    """Build the named store under store_dir once; return its root."""
    n_runs, keys, steps, capture = STORES[name]
    root = store_dir / name
    marker = store_dir / f"{name}.complete.json"
    if marker.exists() and root.is_dir():
        return root
    from reprolog._storage._layout import StoreLayout

    shutil.rmtree(root, ignore_errors=True)
    marker.unlink(missing_ok=True)
    record, files = _template(store_dir / f"{name}.template", capture)
    record["_dir"] = str(Path(store_dir / f"{name}.template" / "runs" / record["id"]))
    StoreLayout(root).ensure()
    start = time.perf_counter()
    chunk = 500
    jobs = [
        (str(root), record, files, lo, min(lo + chunk, n_runs), keys, steps)
        for lo in range(0, n_runs, chunk)
    ]
    done = 0
    with Pool(workers) as pool:
        for count in pool.imap_unordered(_write_runs, jobs):
            done += count
            print(f"\r  building {name}: {done:,}/{n_runs:,} runs", end="", flush=True)
    took = time.perf_counter() - start
    size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
    print(f"\r  built {name}: {n_runs:,} runs in {took:.0f} s, {size / 1e6:,.0f} MB on disk")
    marker.write_text(
        json.dumps(
            {
                "runs": n_runs,
                "keys": list(keys),
                "steps": steps,
                "points": n_runs * len(keys) * steps,
                "bytes": size,
                "template_files": files,
            }
        )
    )
    return root


# ---------------------------------------------------------------- measures


def runs_cold(root: Path) -> None:
    import reprolog

    (root / "index" / "runs.parquet").unlink(missing_ok=True)
    frame = reprolog.Store(root).runs()
    assert len(frame) == STORES["runs100k"][0], len(frame)


def runs_warm(root: Path) -> None:
    import reprolog

    frame = reprolog.Store(root).runs()
    assert len(frame) == STORES["runs100k"][0], len(frame)


def runs_one_new(root: Path) -> None:
    """A listing after one run was added (and the previous repeat's one removed)."""
    import reprolog

    added = _add_run(root)
    frame = reprolog.Store(root).runs()
    assert len(frame) == STORES["runs100k"][0] + 1 and added in set(frame["id"]), len(frame)
    shutil.rmtree(root / "runs" / added)


def _add_run(root: Path) -> str:
    """A copy of the newest run under a new, newer id (folder, run.json and summary.json)."""
    newest = max(p.name for p in (root / "runs").iterdir())
    run_id = _run_id(BASE_MS + STORES["runs100k"][0] * 60_000, time.time_ns())
    shutil.copytree(root / "runs" / newest, root / "runs" / run_id)
    for name in ("run.json", "summary.json"):
        path = root / "runs" / run_id / name
        path.write_text(path.read_text().replace(newest, run_id))
    return run_id


def sql_store(root: Path) -> None:
    import reprolog

    frame = reprolog.Store(root).sql(QUERY)
    n_runs, keys, _, _ = STORES["points100m"]
    assert len(frame) == n_runs * len(keys), len(frame)


def sql_duckdb(root: Path) -> None:
    import duckdb

    con = duckdb.connect()
    glob = str(root / "runs" / "*" / "metrics.parquet")
    query = QUERY.replace("FROM metrics", f"FROM read_parquet('{glob}')")
    frame = con.execute(query).df()
    con.close()
    n_runs, keys, _, _ = STORES["points100m"]
    assert len(frame) == n_runs * len(keys), len(frame)


def profile(fn: Any, n: int = 25) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    fn()
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(n)
    stats.sort_stats("tottime").print_stats(n)
    return out.getvalue()


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store-dir", type=Path, default=Path("/tmp/reprolog-bench-scale"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="cProfile each missed measure")
    parser.add_argument("--only", choices=("runs", "sql"), help="measure one part only")
    parser.add_argument("--workers", type=int, default=2, help="processes building the stores")
    args = parser.parse_args()
    args.store_dir.mkdir(parents=True, exist_ok=True)
    print(f"start: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; {uptime()}")
    measures: list[tuple[str, Any, Any, float | None]] = []
    if args.only in (None, "runs"):
        root = build(args.store_dir, "runs100k", args.workers)
        measures += [
            ("Store.runs(), 100,000 runs, cold (no index: builds it)", runs_cold, root, 2.0),
            ("Store.runs(), 100,000 runs, warm (index present)", runs_warm, root, 2.0),
            ("Store.runs(), 100,000 runs + 1 new (index present)", runs_one_new, root, 2.0),
        ]
    if args.only in (None, "sql"):
        root = build(args.store_dir, "points100m", args.workers)
        measures += [
            ("Store.sql min(value) per run, key; 100M points", sql_store, root, 10.0),
            ("plain DuckDB read_parquet(runs/*/metrics.parquet) (floor)", sql_duckdb, root, None),
        ]
    print(f"measuring (medians of {args.repeats}): {uptime()}")
    missed = []
    for label, fn, root, target in measures:
        med, times = median_of(lambda fn=fn, root=root: fn(root), args.repeats)
        verdict = "" if target is None else ("met" if med <= target else "MISSED")
        target_text = "" if target is None else f"<= {target:g} s"
        spread = f"[{min(times):.2f}-{max(times):.2f}]"
        row(label, f"{med:.2f} s", target_text, f"{verdict} {spread}")
        if verdict == "MISSED":
            missed.append((label, fn, root))
    if args.only in (None, "runs"):
        runs_warm(args.store_dir / "runs100k")  # the index without the runs added and removed
    print(f"end: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; {uptime()}")
    if args.profile:
        for label, fn, root in missed or [(m[0], m[1], m[2]) for m in measures if m[3]]:
            print(f"\n==== cProfile: {label}")
            print(profile(lambda fn=fn, root=root: fn(root)))


if __name__ == "__main__":
    main()
