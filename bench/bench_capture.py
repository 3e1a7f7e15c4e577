"""Benchmark: capture time at init in a 1,000-file git repo, and fingerprint throughput (GB/s).

Run: python bench/bench_capture.py [--files 1000] [--repeats 7] [--mb 256] [--with-torch]
Targets (issue 3): capture at init <= 0.5 s (data hashing excluded); fingerprinting in-memory
arrays >= 1 GB/s.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def make_repo(root: Path, files: int) -> None:
    """A git repo with `files` committed files, 10 modified, 20 untracked (5 binary)."""
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "b",
        "GIT_AUTHOR_EMAIL": "b@x",
        "GIT_COMMITTER_NAME": "b",
        "GIT_COMMITTER_EMAIL": "b@x",
    }
    for i in range(files):
        sub = root / f"pkg{i % 20}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"mod{i}.py").write_text(f"# module {i}\n" + "x = 1\n" * 40)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "init"], cwd=root, check=True, env=env)
    subprocess.run(
        ["git", "remote", "add", "origin", "https://github.com/org/repo.git"], cwd=root, check=True
    )
    for i in range(10):
        (root / f"pkg{i % 20}" / f"mod{i}.py").write_text(f"# changed {i}\n" + "y = 2\n" * 40)
    for i in range(15):
        (root / f"notes{i}.txt").write_text("untracked text\n" * 20)
    for i in range(5):
        (root / f"blob{i}.bin").write_bytes(os.urandom(4096))


def median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_capture(files: int, repeats: int, with_torch: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp, "repo")
        make_repo(repo, files)
        code = (
            "import statistics, sys, time, pathlib, tempfile\n"
            + ("import torch, numpy\n" if with_torch else "")
            + "t0 = time.perf_counter()\n"
            "from reprolog._capture import capture_all\n"
            "first = capture_all(pathlib.Path(tempfile.mkdtemp()))\n"
            "cold = time.perf_counter() - t0\n"
            "times = []\n"
            f"for _ in range({repeats}):\n"
            "    t = time.perf_counter(); r = capture_all(pathlib.Path(tempfile.mkdtemp()))\n"
            "    times.append(time.perf_counter() - t)\n"
            "s = r.sections\n"
            "print(cold, statistics.median(times), len(s['code']['untracked']),\n"
            "      len(s['code']['changed']), len(s['environment']['packages']),\n"
            "      len(r.report['errors']))\n"
        )
        env = {**os.environ, "PYTHONPATH": str(SRC)}
        out = subprocess.run(
            [sys.executable, "-c", code],
            cwd=repo,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        cold, warm = float(out[0]), float(out[1])
        label = "torch+numpy imported" if with_torch else "no framework imported"
        print(
            f"capture at init, {files}-file git repo ({label}; {out[2]} untracked, "
            f"{out[3]} changed, {out[4]} packages, {out[5]} errors):"
        )
        print(f"  first call in a fresh process (module import included): {cold * 1000:7.1f} ms")
        print(
            f"  median of {repeats} later calls:                           {warm * 1000:7.1f} ms"
            f"   target <= 500 ms"
        )


def bench_import(repeats: int) -> None:
    code = "import time; t = time.perf_counter(); import reprolog; print(time.perf_counter() - t)"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    times = [
        float(
            subprocess.run(
                [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
            ).stdout
        )
        for _ in range(repeats)
    ]
    print(f"import reprolog: median {statistics.median(times) * 1000:.1f} ms   target <= 300 ms")


def bench_fingerprint(mb: int, repeats: int) -> None:
    import numpy as np
    import pandas as pd

    sys.path.insert(0, str(SRC))
    from reprolog._fingerprint._content import fingerprint

    nbytes = mb << 20
    rng = np.random.default_rng(0)
    array = rng.random(nbytes // 8)
    cases: list[tuple[str, object, int]] = [("numpy float64", array, array.nbytes)]
    frame = pd.DataFrame(array.reshape(-1, 16), columns=[f"c{i}" for i in range(16)])
    cases.append(("pandas DataFrame (16 float cols)", frame, nbytes))
    try:
        import torch

        cases.append(("torch float32 tensor", torch.from_numpy(array).float().repeat(2), nbytes))
    except ImportError:
        print("torch not installed: tensor case skipped")
    raw = median_time(lambda: hashlib.sha256(array).digest(), repeats)
    print(f"fingerprint throughput ({mb} MiB each, median of {repeats}):")
    print(f"  {'hashlib.sha256 baseline (one thread)':36s} {nbytes / raw / 1e9:6.2f} GB/s")
    for name, obj, size in cases:
        seconds = median_time(lambda obj=obj: fingerprint(obj), repeats)
        print(f"  {name:36s} {size / seconds / 1e9:6.2f} GB/s   target >= 1 GB/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--mb", type=int, default=256)
    parser.add_argument("--with-torch", action="store_true", help="import torch before capture")
    args = parser.parse_args()
    bench_import(args.repeats)
    bench_capture(args.files, args.repeats, with_torch=False)
    if args.with_torch:
        bench_capture(args.files, args.repeats, with_torch=True)
    bench_fingerprint(args.mb, max(3, args.repeats // 2))


if __name__ == "__main__":
    main()
