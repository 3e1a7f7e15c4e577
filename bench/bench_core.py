"""Core logger and store benchmarks, with installed peers side by side.

Run: python bench/bench_core.py [--quick] [--peer-points N]
Prints medians of repeats. The peer table times every side alike: the same points, one warm-up
run first, then start-up + one call per point + close, median of repeats; reprolog appears
with default capture and with capture=False. Peers (tensorboardX, MLflow, Aim, W&B offline)
run when installed: `pip install -r bench/requirements-peers.txt`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import import_time, median_of, row

import reprolog
from reprolog._storage._ids import new_run_id


def curve(n: int, seed: int = 0) -> list[float]:
    """A float32-precision training curve: decaying loss plus noise, as frameworks log it."""
    rng = np.random.default_rng(seed)
    x = 2.0 * np.exp(-np.arange(n) / (n / 5)) + 0.05 * rng.standard_normal(n)
    return x.astype(np.float32).astype(np.float64).tolist()


def bench_log_call(tmp: Path, n: int, repeats: int) -> float:
    values = curve(n)

    def once() -> None:
        run = reprolog.init(dir=tmp / "log-call", capture=False)
        log = run.log
        for i, v in enumerate(values):
            log({"loss": v}, step=i)
        run.finish()

    med, _ = median_of(once, repeats)
    return med / n * 1e6


def bench_million(tmp: Path, repeats: int) -> tuple[float, float]:
    keys = [f"metric_{k}" for k in range(10)]
    columns = [curve(100_000, seed=k) for k in range(10)]
    rows = [dict(zip(keys, vals, strict=False)) for vals in zip(*columns, strict=False)]
    sizes = []

    def once() -> None:
        run = reprolog.init(dir=tmp / "million", capture=False)
        log = run.log
        for i, r in enumerate(rows):
            log(r, step=i)
        run.finish()
        sizes.append((run.dir / "metrics.parquet").stat().st_size)

    med, _ = median_of(once, repeats)
    return med, sizes[-1] / 1_000_000


def build_read_store(tmp: Path) -> Path:
    root = tmp / "read50"
    for r in range(50):
        run = reprolog.init(dir=root, capture=False)
        for key in ("loss", "acc", "lr"):
            vals = curve(2000, seed=r * 7 + len(key))
            for i, v in enumerate(vals):
                run.log({key: v}, step=i)
        run.finish()
    return root


def bench_read(root: Path, repeats: int) -> float:
    def once() -> None:
        df = reprolog.Store(root).metrics()
        assert len(df) == 50 * 3 * 2000

    return median_of(once, repeats)[0]


def build_big_store(tmp: Path, n_runs: int) -> Path:
    """10,000 finished runs: one real run, copied under new ids (what many real runs leave)."""
    root = tmp / "big"
    run = reprolog.init(dir=root, capture=False, params={"lr": 0.001, "batch": 32, "model": "mlp"})
    for i in range(100):
        run.log({"loss": 1.0 / (i + 1), "acc": i / 100}, step=i)
    run.finish()
    template = run.dir
    record = json.loads((template / "run.json").read_text())
    summary = json.loads((template / "summary.json").read_text())
    for i in range(n_runs - 1):
        new_id = new_run_id()
        dest = root / "runs" / new_id
        dest.mkdir()
        shutil.copyfile(template / "metrics.parquet", dest / "metrics.parquet")
        record["id"] = summary["id"] = new_id
        record["params"]["lr"] = summary["params"]["lr"] = 0.001 * (1 + i % 7)
        (dest / "run.json").write_text(json.dumps(record))
        (dest / "summary.json").write_text(json.dumps(summary))
    return root


def bench_runs(root: Path, n_runs: int, repeats: int) -> tuple[float, float]:
    index = root / "index" / "runs.parquet"
    if index.exists():
        index.unlink()
    start = time.perf_counter()
    df = reprolog.Store(root).runs()
    cold = time.perf_counter() - start
    assert len(df) == n_runs, len(df)
    warm, _ = median_of(lambda: reprolog.Store(root).runs(), repeats)
    return cold, warm


# ------------------------------------------------------------------ peers
# Each side: start-up, one call per point, close; returns bytes on disk (nan when unknown).
# None from a side means "not installed".

Side = Callable[[Path, list[float]], float]


def _disk(root: Path, pattern: str = "*") -> int:
    return sum(p.stat().st_size for p in root.rglob(pattern) if p.is_file())


def side_reprolog(capture: bool) -> Side:
    def side(out: Path, values: list[float]) -> float:
        run = reprolog.init(dir=out, capture=capture)
        log = run.log
        for i, v in enumerate(values):
            log({"loss": v}, step=i)
        run.finish()
        return float((run.dir / "metrics.parquet").stat().st_size)

    return side


def side_tensorboardx() -> Side | None:
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        return None

    def side(out: Path, values: list[float]) -> float:
        writer = SummaryWriter(str(out))
        for i, v in enumerate(values):
            writer.add_scalar("loss", v, i)
        writer.close()
        return float(_disk(out))

    return side


def side_mlflow() -> Side | None:
    try:
        import mlflow
    except ImportError:
        return None
    # MLflow 3 refuses the plain file store unless told; it is what the anchors measured.
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")

    def side(out: Path, values: list[float]) -> float:
        mlflow.set_tracking_uri(out.as_uri())
        with mlflow.start_run():
            for i, v in enumerate(values):
                mlflow.log_metric("loss", v, step=i)
        return float(_disk(out, "metrics/*"))

    return side


def side_aim() -> Side | None:
    try:
        from aim import Run as AimRun
    except ImportError:
        return None

    def side(out: Path, values: list[float]) -> float:
        run = AimRun(repo=str(out))
        for i, v in enumerate(values):
            run.track(v, name="loss", step=i)
        run.close()
        return float("nan")  # RocksDB preallocates: its folder size says nothing per point

    return side


def side_wandb() -> Side | None:
    try:
        import wandb
    except ImportError:
        return None
    os.environ["WANDB_SILENT"] = "true"

    def side(out: Path, values: list[float]) -> float:
        run = wandb.init(mode="offline", dir=str(out), project="bench")
        for i, v in enumerate(values):
            run.log({"loss": v}, step=i)
        run.finish()
        return float("nan")

    return side


def time_side(side: Side, tmp: Path, name: str, n: int, repeats: int) -> tuple[float, float]:
    """Warm up once (imports, first-run caches), then the median of `repeats` timed runs.

    Returns (µs per point, start-up and close included; bytes per point on disk).
    """
    side(tmp / f"{name}-warm", curve(1_000, seed=99))
    values = curve(n)
    times, sizes = [], []
    for r in range(repeats):
        out = tmp / f"{name}-{r}"
        start = time.perf_counter()
        sizes.append(side(out, values))
        times.append(time.perf_counter() - start)
    return statistics.median(times) / n * 1e6, statistics.median(sizes) / n


def bench_rank_wait(tmp: Path) -> float:
    """Seconds finish() waits for a rank writer that closes 0.5 s after its last point."""
    root = tmp / "rank"
    run = reprolog.init(dir=root, capture=False)
    code = (
        "import sys, time, reprolog\n"
        f"with reprolog.attach({run.id!r}, rank=1, dir={str(root)!r}) as w:\n"
        "    w.log({'loss': 1.0}, step=0)\n"
        "    print('logged', flush=True)\n"
        "    time.sleep(0.5)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "logged"
    start = time.perf_counter()
    run.finish()
    waited = time.perf_counter() - start
    proc.wait(timeout=60)
    return waited


def peer_mlflow_read(tmp: Path) -> float | None:
    """Read 50 runs x 3 metrics x 2,000 steps back through MLflow's own API (file store)."""
    try:
        import mlflow
        from mlflow.entities import Metric
        from mlflow.tracking import MlflowClient
    except ImportError:
        return None
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=(tmp / "mlruns-read").as_uri())
    experiment = client.create_experiment("read")
    run_ids = []
    now = int(time.time() * 1000)
    for r in range(50):
        run_id = client.create_run(experiment).info.run_id
        for key in ("loss", "acc", "lr"):
            vals = curve(2000, seed=r * 7 + len(key))
            metrics = [Metric(key, v, now, i) for i, v in enumerate(vals)]
            for start in range(0, len(metrics), 1000):  # log_batch takes 1,000 at most
                client.log_batch(run_id, metrics=metrics[start : start + 1000])
        run_ids.append(run_id)
    del mlflow

    def once() -> None:
        rows = 0
        for run_id in run_ids:
            for key in ("loss", "acc", "lr"):
                rows += len(client.get_metric_history(run_id, key))
        assert rows == 50 * 3 * 2000

    return median_of(once, 3)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, smaller peers")
    parser.add_argument(
        "--peer-points", type=int, default=20_000, help="points per side in the peer table"
    )
    args = parser.parse_args()
    repeats = 3 if args.quick else 5
    n_runs = 10_000
    with tempfile.TemporaryDirectory(prefix="reprolog-bench-") as name:
        tmp = Path(name)
        print(f"reprolog core benchmark (medians of repeats; machine: {os.cpu_count()} cores)")
        bench_log_call(tmp, 1_000, 1)  # warm-up: first finish imports numpy and pyarrow
        per_call = bench_log_call(tmp, 200_000, repeats)
        row("run.log({'loss': x}, step=i), amortised incl. finish", f"{per_call:.2f} us", "<= 2 us")
        million, bytes_per_point = bench_million(tmp, repeats)
        row("1,000,000 points (10 keys x 100,000 steps) + finish", f"{million:.2f} s", "<= 3 s")
        row("disk per point, float32-precision curves", f"{bytes_per_point:.2f} B", "<= 4 B")
        read_root = build_read_store(tmp)
        read = bench_read(read_root, repeats)
        row("read 50 runs x 3 metrics x 2,000 steps -> DataFrame", f"{read:.3f} s", "<= 0.2 s")
        big = build_big_store(tmp, n_runs)
        cold, warm = bench_runs(big, n_runs, repeats)
        row(f"Store.runs() over {n_runs:,} runs, index warm", f"{warm:.3f} s", "<= 1 s")
        row(
            f"Store.runs() over {n_runs:,} runs, index rebuilt",
            f"{cold:.3f} s",
            "",
            "(first listing)",
        )
        row("import reprolog", f"{import_time('reprolog'):.3f} s", "<= 0.3 s")

        row(
            "finish() waiting on a rank writer that closes 0.5 s later",
            f"{bench_rank_wait(tmp):.2f} s",
            "~0.5 s",
            "(waits for it, 5 s at most)",
        )

        n_peer = 2_000 if args.quick else args.peer_points
        peer_repeats = 1 if args.quick else 3
        print(
            f"\nlike with like: {n_peer:,} points of one key, one call per point, start-up and "
            f"close included;\none warm-up run each, then the median of {peer_repeats} runs; "
            "ratio to reprolog with default capture"
        )
        sides: list[tuple[str, Side | None]] = [
            ("reprolog run.log (capture=True, the default)", side_reprolog(True)),
            ("reprolog run.log (capture=False)", side_reprolog(False)),
            ("tensorboardX SummaryWriter.add_scalar", side_tensorboardx()),
            ("MLflow log_metric (file store)", side_mlflow()),
            ("Aim Run.track", side_aim()),
            ("W&B offline run.log", side_wandb()),
        ]
        ours = 0.0
        for k, (label, side) in enumerate(sides):
            if side is None:
                row(label, "not installed", "", "pip install -r bench/requirements-peers.txt")
                continue
            try:
                us, size = time_side(side, tmp, f"side{k}", n_peer, peer_repeats)
            except Exception as exc:  # a peer that breaks must not hide the others
                row(label, "error", "", f"{type(exc).__name__}: {exc}"[:60])
                continue
            ours = ours or us
            extra = f"{size:.1f} B/point on disk" if size == size else ""
            row(label, f"{us:.1f} us", f"x{us / ours:.1f}", extra)

        print("\npeers: read 50 runs x 3 metrics x 2,000 steps back through their own API")
        try:
            mlflow_read = peer_mlflow_read(tmp)
        except Exception as exc:
            row("MLflow get_metric_history (file store)", "error", "", str(exc)[:60])
        else:
            if mlflow_read is None:
                row("MLflow get_metric_history (file store)", "not installed")
            else:
                row(
                    "MLflow get_metric_history (file store)",
                    f"{mlflow_read:.2f} s",
                    f"x{mlflow_read / read:.0f}",
                )


if __name__ == "__main__":
    main()
