"""Bench a store on S3 (issue 17, speed): push 1,000 finished runs, list 10,000 runs.

Run: python bench/bench_remote.py [--store-dir DIR] [--repeats N] [--profile]

Targets (2 cores, moto's S3 server on loopback, started by this script):
  `reprolog push` of 1,000 finished runs to an empty bucket          <= 30 s
  `Store("s3://...").runs()` over 10,000 published runs, cold cache    <= 2 s

The local stores are synthesised once under --store-dir (default /tmp/reprolog-bench-remote)
by `bench_scale.build`, which clones one real run (made with `reprolog.init` ... `finish`)
under fresh time-sortable ids, its points through compaction's own code (see bench_scale.py):
  push1k   1,000 runs, full capture (run.json ~100 KB: what a real run publishes), 3 keys x 20
  list10k  10,000 runs, capture off (listing reads the index, never a run.json), 3 keys x 20
The S3 API is `python -m moto.server` on 127.0.0.1 (in memory; fake credentials through the
standard AWS_* variables), one process beside this one, so the two share the 2 cores.

Measures (medians of --repeats):
  push: `reprolog._storage._publish.push(push1k, "s3://<fresh bucket>/store")`, a fresh bucket
  each repeat (so every file goes up; the local markers of earlier targets do not matter).
  runs(): `reprolog.Store("s3://<bucket>/store").runs()` in a fresh Store with a fresh, empty
  `$REPROLOG_CACHE_DIR` each repeat (a new CLI process's cost, its interpreter start aside),
  over the list10k runs, pushed once before (that push is timed and printed too).
  sql (no target): `Store(...).sql(min(value) per run and key)` over the push1k bucket with a
  fresh cache: the first query naming `metrics` fetches all 1,000 runs into the cache.
--profile runs cProfile over each missed measure (or every measure when none is missed).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_scale
from _common import median_of, row

KEYS = ("train/acc", "train/loss", "val/loss")
bench_scale.STORES["push1k"] = (1_000, KEYS, 20, True)
bench_scale.STORES["list10k"] = (10_000, KEYS, 20, False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Moto:
    """moto's S3 server on loopback, and the AWS_* environment pointing at it."""

    def __init__(self, log: Path) -> None:
        port = _free_port()
        self.endpoint = f"http://127.0.0.1:{port}"
        self._out = open(log, "ab")  # noqa: SIM115 - kept open for the server's life
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=self._out,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not start; see {log}") from None
                time.sleep(0.05)
        os.environ.update(
            {
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_REGION": "us-east-1",
                "AWS_ENDPOINT_URL": self.endpoint,
                "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            }
        )
        os.environ.pop("AWS_PROFILE", None)

    def bucket(self) -> str:
        """A fresh bucket's store URI."""
        import boto3

        name = f"bench-{uuid.uuid4().hex[:12]}"
        boto3.client("s3", endpoint_url=self.endpoint).create_bucket(Bucket=name)
        return f"s3://{name}/store"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self._out.close()


def push(root: Path, uri: str, n: int) -> None:
    from reprolog._storage._publish import push as push_runs

    report = push_runs(root, uri)
    assert len(report.done) == n and not report.skipped, (len(report.done), report.skipped[:3])


def runs_cold(uri: str, n: int) -> None:
    import reprolog

    os.environ["REPROLOG_CACHE_DIR"] = tempfile.mkdtemp(prefix="reprolog-bench-cache-")
    frame = reprolog.Store(uri).runs()
    assert len(frame) == n, len(frame)


def sql_cold(uri: str, n: int) -> None:
    import reprolog

    os.environ["REPROLOG_CACHE_DIR"] = tempfile.mkdtemp(prefix="reprolog-bench-cache-")
    frame = reprolog.Store(uri).sql(bench_scale.QUERY)
    assert len(frame) == n * len(KEYS), len(frame)


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store-dir", type=Path, default=Path("/tmp/reprolog-bench-remote"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile each missed measure")
    parser.add_argument("--workers", type=int, default=2, help="processes building the stores")
    args = parser.parse_args()
    args.store_dir.mkdir(parents=True, exist_ok=True)
    print(f"start: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; {uptime()}")
    push_root = bench_scale.build(args.store_dir, "push1k", args.workers)
    list_root = bench_scale.build(args.store_dir, "list10k", args.workers)
    moto = Moto(args.store_dir / "moto.log")
    try:
        listed = moto.bucket()
        started = time.perf_counter()
        push(list_root, listed, 10_000)
        print(f"  (setup) pushed the 10,000 list10k runs in {time.perf_counter() - started:.1f} s")
        pushed: list[str] = []

        def push_fresh() -> None:
            pushed.append(moto.bucket())
            push(push_root, pushed[-1], 1_000)

        measures: list[tuple[str, Any, float | None]] = [
            ("push 1,000 finished runs (full records) to a fresh bucket", push_fresh, 30.0),
            (
                'Store("s3://...").runs(), 10,000 runs, fresh Store + cache',
                lambda: runs_cold(listed, 10_000),
                2.0,
            ),
            (
                "Store.sql min(value) per run, key; 1,000 runs, cold cache",
                lambda: sql_cold(pushed[0], 1_000),
                None,
            ),
        ]
        print(f"measuring (medians of {args.repeats}): {uptime()}")
        missed = []
        for label, fn, target in measures:
            med, times = median_of(fn, args.repeats)
            verdict = "" if target is None else ("met" if med <= target else "MISSED")
            spread = f"[{min(times):.2f}-{max(times):.2f}]"
            target_text = "" if target is None else f"<= {target:g} s"
            row(label, f"{med:.2f} s", target_text, f"{verdict} {spread}")
            if verdict == "MISSED":
                missed.append((label, fn))
        print(f"end: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; {uptime()}")
        if args.profile:
            for label, fn in missed or [(m[0], m[1]) for m in measures]:
                print(f"\n==== cProfile: {label}")
                print(bench_scale.profile(fn))
    finally:
        moto.stop()


if __name__ == "__main__":
    main()
