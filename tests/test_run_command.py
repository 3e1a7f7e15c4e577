"""`reprolog run -- CMD`: real processes and signals, one run per job, exit status as status."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import reprolog

TOKEN = "hf_PlantedTokenAbcdefghijklmnop1234"
ENV_SECRET = "plantedEnvSecretValue42"


def reprolog_run(
    tmp_path: Path,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    text: bool = True,
) -> subprocess.CompletedProcess[Any]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("REPROLOG_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "reprolog._cli", "--dir", str(tmp_path / "store"), "run", *args],
        cwd=tmp_path,
        env=full_env,
        capture_output=True,
        text=text,
        timeout=timeout,
    )


def script(tmp_path: Path, body: str, name: str = "train.py") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return str(path)


def only_run(tmp_path: Path) -> reprolog.RunRecord:
    store = reprolog.Store(tmp_path / "store")
    runs = store.runs()
    assert len(runs) == 1, runs[["id", "name", "status"]]
    return store.run(runs["id"].iloc[0])


def console_lines(record: reprolog.RunRecord) -> list[list[object]]:
    path = record.dir / "console.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_plain_script_gets_a_complete_run_with_console_and_system_metrics(tmp_path: Path) -> None:
    path = script(
        tmp_path,
        """
        import sys
        print("epoch 1 loss 0.5")
        print("a warning", file=sys.stderr)
        print("epoch 2 loss 0.25")
        """,
    )
    proc = reprolog_run(
        tmp_path, "--name", "plain", "--tag", "team=nlp", "--", sys.executable, path
    )
    assert proc.returncode == 0, proc.stderr
    # the terminal (here: our pipes) sees the output unchanged
    assert proc.stdout == "epoch 1 loss 0.5\nepoch 2 loss 0.25\n"
    assert proc.stderr == "a warning\n"
    record = only_run(tmp_path)
    assert (record.status, record.name, record.tags) == ("completed", "plain", {"team": "nlp"})
    for section in ("environment", "code", "command", "job", "console"):
        assert record.section(section), section
    assert record.section("job")["exit_code"] == 0
    lines = console_lines(record)
    # each stream in its order; across the two pipes, lines of one instant may swap
    assert [t for _, s, t in lines if s == "o"] == ["epoch 1 loss 0.5", "epoch 2 loss 0.25"]
    assert [t for _, s, t in lines if s == "e"] == ["a warning"]
    assert all(isinstance(t, float) and t > 1e9 for t, _, _ in lines)
    keys = set(record.metrics()["key"])
    assert {"sys/cpu_percent", "sys/process_rss_bytes", "sys/memory_used_bytes"} <= keys
    assert record.section("console")["lines"] == 3


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("import sys\nsys.exit(3)\n", 3),
        ("raise SystemExit(1)\n", 1),  # the in-process blind spot: seen from outside
        ("import os\nos._exit(4)\n", 4),
    ],
    ids=["sys.exit(3)", "raise SystemExit(1)", "os._exit(4)"],
)
def test_exit_code_sets_failed_and_is_passed_on(tmp_path: Path, body: str, code: int) -> None:
    proc = reprolog_run(tmp_path, "--", sys.executable, script(tmp_path, body))
    assert proc.returncode == code
    record = only_run(tmp_path)
    assert record.status == "failed"
    assert record.error is not None and record.error["type"] == "ExitCode"
    assert record.error["message"] == f"exit code {code}"
    assert record.section("job")["exit_code"] == code


def test_an_exception_in_a_script_that_uses_reprolog_keeps_its_traceback(tmp_path: Path) -> None:
    path = script(
        tmp_path,
        """
        import reprolog
        run = reprolog.init(params={"lr": 0.1})
        run.log({"loss": 1.0}, step=0)
        raise ValueError("bad batch")
        """,
    )
    proc = reprolog_run(tmp_path, "--", sys.executable, path)
    assert proc.returncode == 1
    record = only_run(tmp_path)
    assert record.status == "failed"
    assert record.error["type"] == "ValueError" and "bad batch" in record.error["message"]
    assert record.params == {"lr": 0.1}
    assert list(record.metrics(keys="loss")["value"]) == [1.0]
    assert set(record.metrics()["rank"]) == {0}  # the job's points are the run's own


def test_every_init_of_the_job_records_into_the_one_run(tmp_path: Path) -> None:
    path = script(
        tmp_path,
        """
        import reprolog
        with reprolog.init(params={"phase": "fit"}) as run:
            run.log({"train/loss": 0.5}, step=1)
        with reprolog.init(name="second") as run:   # e.g. fit, then test
            run.log({"test/acc": 0.9}, step=1)
        print(reprolog.active_run())
        """,
    )
    proc = reprolog_run(tmp_path, "--", sys.executable, path)
    assert proc.returncode == 0, proc.stderr
    record = only_run(tmp_path)
    assert record.status == "completed"
    assert record.name == "second"
    assert record.params == {"phase": "fit"}
    assert set(record.metrics()["key"]) >= {"train/loss", "test/acc"}
    assert record.section("job")["ends"] == [{"status": "completed"}, {"status": "completed"}]


def test_the_launchers_name_and_experiment_win_over_the_codes(tmp_path: Path) -> None:
    path = script(
        tmp_path,
        """
        import reprolog
        with reprolog.init("from-code", experiment="code-exp", tags={"by": "code"}):
            pass
        """,
    )
    proc = reprolog_run(
        tmp_path,
        "--name",
        "cli",
        "--experiment",
        "cli-exp",
        "--tag",
        "k=v",
        "--",
        sys.executable,
        path,
    )
    assert proc.returncode == 0, proc.stderr
    record = only_run(tmp_path)
    assert (record.name, record.experiment) == ("cli", "cli-exp")
    assert record.tags == {"k": "v", "by": "code"}


def test_a_script_that_catches_its_failed_training_still_ends_failed(tmp_path: Path) -> None:
    path = script(
        tmp_path,
        """
        import reprolog
        try:
            with reprolog.init():
                raise RuntimeError("diverged")
        except RuntimeError:
            pass
        """,
    )
    proc = reprolog_run(tmp_path, "--", sys.executable, path)
    assert proc.returncode == 0
    record = only_run(tmp_path)
    assert record.status == "failed" and record.error["type"] == "RuntimeError"


def _wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.05)


@pytest.mark.parametrize("uses_reprolog", [False, True], ids=["plain", "init"])
def test_sigterm_reaches_the_child_and_the_run_is_interrupted(
    tmp_path: Path, uses_reprolog: bool
) -> None:
    ready, got = tmp_path / "ready", tmp_path / "got-sigterm"
    path = script(
        tmp_path,
        f"""
        import os, signal, time, pathlib
        {"import reprolog; run = reprolog.init()" if uses_reprolog else ""}
        previous = signal.getsignal(signal.SIGTERM)
        def on_term(signum, frame):
            pathlib.Path({str(got)!r}).write_text("yes")
            signal.signal(signal.SIGTERM, previous if callable(previous) else signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
        signal.signal(signal.SIGTERM, on_term)
        pathlib.Path({str(ready)!r}).write_text("ready")
        for step in range(6000):
            time.sleep(0.01)
        """,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPROLOG_")}
    launcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reprolog._cli",
            "--dir",
            str(tmp_path / "store"),
            "run",
            "--",
            sys.executable,
            path,
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for(ready)
        launcher.send_signal(signal.SIGTERM)
        launcher.communicate(timeout=60)
    finally:
        launcher.kill()
    assert got.read_text() == "yes"
    assert launcher.returncode == 128 + signal.SIGTERM
    record = only_run(tmp_path)
    assert record.status == "interrupted"
    assert record.error == {**record.error, "type": "Signal", "message": "SIGTERM"}
    assert record.section("job")["received"] == "SIGTERM"


def test_a_planted_token_reaches_no_byte_of_the_store(tmp_path: Path) -> None:
    path = script(
        tmp_path,
        f"""
        import os, sys
        print("logging in with {TOKEN}")
        print("key", os.environ["WANDB_API_KEY"], file=sys.stderr)
        print("token=" + {TOKEN!r})
        """,
    )
    proc = reprolog_run(
        tmp_path,
        "--",
        sys.executable,
        path,
        "--hub-token",
        TOKEN,
        env={"WANDB_API_KEY": ENV_SECRET},
    )
    assert proc.returncode == 0, proc.stderr
    assert TOKEN in proc.stdout  # the terminal is not censored
    record = only_run(tmp_path)
    assert any("[REDACTED]" in text for _, _, text in console_lines(record))
    for file in (tmp_path / "store").rglob("*"):
        if file.is_file():
            data = file.read_bytes()
            assert TOKEN.encode() not in data, file
            assert ENV_SECRET.encode() not in data, file


def test_a_progress_bar_of_1000_updates_is_stored_as_its_final_line(tmp_path: Path) -> None:
    path = script(
        tmp_path,
        """
        from tqdm import tqdm
        for _ in tqdm(range(1000), mininterval=0, miniters=1, desc="train"):
            pass
        print("done")
        """,
    )
    proc = reprolog_run(tmp_path, "--", sys.executable, path, text=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count(b"\r") >= 1000  # the terminal got every update
    texts = [text for _, _, text in console_lines(only_run(tmp_path))]
    bars = [t for t in texts if t.startswith("train")]
    assert len(bars) == 1 and "1000/1000" in bars[0], texts
    assert texts[-1] == "done"


def test_console_limit_keeps_head_and_tail_and_says_what_was_dropped(tmp_path: Path) -> None:
    path = script(tmp_path, "for i in range(2000):\n    print(f'line {i:05d}')\n")
    proc = reprolog_run(tmp_path, "--console-limit", "4K", "--", sys.executable, path)
    assert proc.returncode == 0
    record = only_run(tmp_path)
    summary = record.section("console")
    assert summary["limit"] == 4096 and summary["bytes"] <= 4096
    assert summary["dropped_lines"] > 0
    assert summary["dropped_lines"] + summary["lines"] == 2000
    lines = console_lines(record)
    texts = [t for _, _, t in lines]
    assert texts[0] == "line 00000" and texts[-1] == "line 01999"
    notes = [t for _, s, t in lines if s == "r"]
    assert len(notes) == 1 and f"{summary['dropped_lines']} lines" in notes[0]


def test_no_console_passes_streams_through_and_records_none(tmp_path: Path) -> None:
    path = script(tmp_path, "print('straight through')\n")
    proc = reprolog_run(
        tmp_path, "--no-console", "--system-metrics", "0", "--", sys.executable, path
    )
    assert proc.returncode == 0 and proc.stdout == "straight through\n"
    record = only_run(tmp_path)
    assert not (record.dir / "console.jsonl").exists()
    assert not any(k.startswith("sys/") for k in record.metrics_summary)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "no command to run"),
        (("--",), "no command to run"),
        (("--", "surely-not-a-command-xyz"), "command not found"),
        (("--console-limit", "lots", "--", "true"), "--console-limit"),
        (("--system-metrics", "-1", "--", "true"), "--system-metrics"),
    ],
)
def test_bad_input_is_one_error_line_exit_2_and_no_run(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    proc = reprolog_run(tmp_path, *args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], proc.stderr
    runs = tmp_path / "store" / "runs"
    assert not runs.exists() or not any(runs.iterdir())


def test_a_store_that_cannot_be_created_is_one_error_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "reprolog._cli",
            "run",
            "--dir",
            str(blocker / "store"),
            "--",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot create the store" in lines[0], proc.stderr


def test_logs_prints_and_follows_the_console(tmp_path: Path) -> None:
    go = tmp_path / "go"
    path = script(
        tmp_path,
        f"""
        import pathlib, sys, time
        print("first", flush=True)
        print("oops", file=sys.stderr, flush=True)
        while not pathlib.Path({str(go)!r}).exists():
            time.sleep(0.02)
        print("last", flush=True)
        """,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPROLOG_")}
    store = str(tmp_path / "store")
    launcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reprolog._cli",
            "--dir",
            store,
            "run",
            "--name",
            "live",
            "--",
            sys.executable,
            path,
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        runs = tmp_path / "store" / "runs"
        _wait_for(runs)
        deadline = time.monotonic() + 60
        while not any(runs.glob("*/console.jsonl")) and time.monotonic() < deadline:
            time.sleep(0.05)
        follower = subprocess.Popen(
            [sys.executable, "-m", "reprolog._cli", "--dir", store, "logs", "live", "--follow"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        go.write_text("go")
        out, err = follower.communicate(timeout=60)
        launcher.communicate(timeout=60)
    finally:
        launcher.kill()
    assert follower.returncode == 0, err
    assert out.splitlines() == ["first", "oops", "last"]
    only_err = subprocess.run(
        [
            sys.executable,
            "-m",
            "reprolog._cli",
            "--dir",
            store,
            "logs",
            "live",
            "--stream",
            "stderr",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert only_err.stdout.splitlines() == ["oops"]
    record = only_run(tmp_path)
    frame = record.console()
    assert list(frame["text"]) == ["first", "oops", "last"]
    assert list(frame["stream"]) == ["stdout", "stderr", "stdout"]


def test_torchrun_with_two_processes_is_one_run(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    path = script(
        tmp_path,
        """
        import sys
        import torch
        import torch.distributed as dist
        import reprolog

        dist.init_process_group("gloo")
        rank = dist.get_rank()
        run = reprolog.init(params={"world": dist.get_world_size()})
        value = torch.tensor([float(rank + 1)])
        dist.all_reduce(value)
        run.log({"sum": float(value)}, step=0)
        sys.stdout.write(f"rank {rank} sum {float(value)}" + chr(10))  # one write
        dist.barrier()
        run.finish()
        dist.destroy_process_group()
        """,
    )
    proc = reprolog_run(
        tmp_path,
        "--",
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        path,
        timeout=300,
        env={"OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = only_run(tmp_path)
    assert record.status == "completed"
    assert record.params == {"world": 2}
    points = record.metrics(keys="sum")
    assert sorted(points["rank"]) == [0, 1] and set(points["value"]) == {3.0}
    texts = {text for _, _, text in console_lines(record)}
    assert {"rank 0 sum 3.0", "rank 1 sum 3.0"} <= texts


def test_a_forked_worker_alive_does_not_keep_the_record_seat(tmp_path: Path) -> None:
    path = script(
        tmp_path,
        """
        import os, time, reprolog
        run = reprolog.init(params={"phase": "fit"})
        worker = os.fork()  # a DataLoader worker that outlives the first training
        if worker == 0:
            time.sleep(3)
            os._exit(0)
        run.finish()
        with reprolog.init(name="test-phase") as second:
            second.log({"test/acc": 0.5}, step=0)
        os.waitpid(worker, 0)
        """,
    )
    proc = reprolog_run(tmp_path, "--", sys.executable, path)
    assert proc.returncode == 0, proc.stderr
    record = only_run(tmp_path)
    assert record.name == "test-phase" and record.params == {"phase": "fit"}
    assert "test/acc" in record.metrics_summary


def test_reprolog_run_inside_a_job_makes_a_run_of_its_own(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    inner = [sys.executable, "-m", "reprolog._cli", "--dir", store, "run", "--name", "inner", "--"]
    proc = reprolog_run(
        tmp_path, "--name", "outer", "--", *inner, sys.executable, "-c", "import sys; sys.exit(5)"
    )
    assert proc.returncode == 5
    s = reprolog.Store(store)
    statuses = {s.run(i).name: s.run(i).status for i in s.runs()["id"]}
    assert statuses == {"outer": "failed", "inner": "failed"}


def test_on_a_terminal_the_child_gets_one_too_and_the_record_gets_plain_text(
    tmp_path: Path,
) -> None:
    import fcntl
    import pty
    import struct
    import termios

    path = script(
        tmp_path,
        """
        import os, sys
        size = os.get_terminal_size()
        print(f"tty={sys.stdout.isatty()},{sys.stderr.isatty()} cols={size.columns}")
        print("\\x1b[31mred\\x1b[0m done")
        """,
    )
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 123, 0, 0))
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPROLOG_")}
    launcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reprolog._cli",
            "--dir",
            str(tmp_path / "store"),
            "run",
            "--",
            sys.executable,
            path,
        ],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    seen = b""
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: every writer of the terminal is gone
            break
        if not data:
            break
        seen += data
    os.close(master)
    assert launcher.wait(timeout=60) == 0
    assert b"tty=True,True cols=123" in seen
    assert b"\x1b[31mred\x1b[0m done" in seen  # the terminal gets the colours
    texts = [t for _, _, t in console_lines(only_run(tmp_path))]
    assert texts == ["tty=True,True cols=123", "red done"]


def test_sigint_to_the_launcher_without_a_terminal_is_forwarded(tmp_path: Path) -> None:
    ready, got = tmp_path / "ready", tmp_path / "got-sigint"
    path = script(
        tmp_path,
        f"""
        import pathlib, time
        pathlib.Path({str(ready)!r}).write_text("ready")
        try:
            time.sleep(60)
        except KeyboardInterrupt:
            pathlib.Path({str(got)!r}).write_text("yes")
            raise
        """,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPROLOG_")}
    launcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reprolog._cli",
            "--dir",
            str(tmp_path / "store"),
            "run",
            "--",
            sys.executable,
            path,
        ],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # no controlling terminal
    )
    try:
        _wait_for(ready)
        launcher.send_signal(signal.SIGINT)
        launcher.communicate(timeout=60)
    finally:
        launcher.kill()
    assert got.read_text() == "yes"
    assert launcher.returncode == 128 + signal.SIGINT
    record = only_run(tmp_path)
    assert record.status == "interrupted"
    assert record.error["message"] == "SIGINT"


def test_joblib_workers_make_no_runs_of_their_own(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    path = script(
        tmp_path,
        """
        import numpy as np
        from joblib import Parallel, delayed
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import GridSearchCV

        rng = np.random.default_rng(0)
        X = rng.standard_normal((120, 3))
        y = (X[:, 0] > 0).astype(int)
        GridSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, n_jobs=2, cv=2).fit(X, y)

        def fit_one(c):  # fits in loky worker processes, each its own interpreter
            return LogisticRegression(C=c).fit(X, y).score(X, y)

        with __import__("reprolog").init(name="main"):  # the main process holds the run
            print(Parallel(n_jobs=2)(delayed(fit_one)(c) for c in [0.1, 1.0, 10.0]))
        """,
    )
    proc = reprolog_run(tmp_path, "--", sys.executable, path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = only_run(tmp_path)
    assert record.status == "completed"
    skipped = [s for s in record.capture_report["skipped"] if s["what"] == "worker processes"]
    assert len(skipped) == 1
