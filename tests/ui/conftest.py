"""Shared fixtures for the UI tests: a store built by real runs, and the real server on it.

`ui_store` is session-scoped and shared: open it only through the UI (which reads it with
`Store(dir, read_only=True)`) or `reprolog.Store(ui_store, read_only=True)`, because it holds a
crashed run left unrecovered on purpose (`UI_RUNS["crashed"]`) and a plain `Store` would
recover it on disk. A test that needs to change a store copies it first (`copy_store`).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
XSS_NAME = "<img src=x onerror=alert(1)>"

#: what `ui_store` holds, by role; filled by the fixture (role -> run id)
UI_RUNS: dict[str, str] = {}


def child_env(store: Path, **extra: str) -> dict[str, str]:
    """The environment of a training process that records into `store`."""
    env = {
        **os.environ,
        "REPROLOG_DIR": str(store),
        "KERAS_BACKEND": "torch",
        "HF_HUB_OFFLINE": "1",
        "PYTHONWARNINGS": "ignore",  # framework chatter is not under test here
    }
    env.pop("REPROLOG_AUTOLOG", None)
    env.update(extra)
    return env


def run_python(args: list[str], *, store: Path, cwd: Path, check: bool = True) -> str:
    """Run a Python process that records into `store`; return its stdout."""
    proc = subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=child_env(store),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc.stdout


_FAILING = """
import reprolog
with reprolog.init("failing-run", experiment="ui", params={"lr": 0.3, "layers": 2}) as run:
    for step in range(20):
        run.log({"train/loss": 1.0 / (step + 1)}, step=step)
    print(run.id, flush=True)
    raise ValueError("loss exploded at step 20")
"""

_ARTIFACTS = """
import json, pathlib, reprolog
out = pathlib.Path("outputs"); out.mkdir()
(out / "predictions.csv").write_text("id,label\\n1,0\\n2,1\\n")
ckpt = out / "checkpoint-30"; ckpt.mkdir()
(ckpt / "model.bin").write_bytes(bytes(range(256)) * 8)
(ckpt / "config.json").write_text(json.dumps({"hidden": 8}))
with reprolog.init("with-artifacts", experiment="ui", params={"lr": 0.01, "layers": 3},
                   tags={"team": "vision"}) as run:
    for step in range(40):
        run.log({"train/loss": 2.0 / (step + 1), "val/acc": step / 40}, step=step,
                epoch=step // 10)
    run.log_artifact(out / "predictions.csv", kind="file", copy=True)
    run.log_artifact(out / "predictions.csv", kind="file")
    run.log_artifact(ckpt / "model.bin", kind="checkpoint", step=30,
                     metadata={"best": True, "last": True, "score": 0.91, "monitor": "val/acc"})
    run.log_artifact(ckpt, kind="checkpoint", step=30, metadata={"best": False, "last": False})
    print(run.id, flush=True)
"""

_XSS = f"""
import reprolog
name = {XSS_NAME!r}
with reprolog.init(name, experiment="<b>exp</b>",
                   params={{"note": "<script>alert(1)</script>", "lr": 0.1}},
                   tags={{"html": "<i onmouseover=alert(1)>x</i>"}}) as run:
    for step in range(10):
        run.log({{"<svg onload=alert(1)>": float(step)}}, step=step)
    print(run.id, flush=True)
"""

# Killed by SIGKILL while live: stays `running` on disk with its log until a writer-mode
# Store recovers it.
_CRASHING = """
import os, signal, reprolog
run = reprolog.init("crashed-run", experiment="ui", params={"lr": 0.2})
for step in range(50):
    run.log({"train/loss": 1.0 - step / 100}, step=step)
print(run.id, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def make_crashed_run(store: Path, cwd: Path) -> str:
    """Start a run in `store` and SIGKILL its process; return its id (left unrecovered)."""
    script = cwd / "crash_me.py"
    script.write_text(_CRASHING)
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=cwd,
        env=child_env(store),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    return proc.stdout.split()[-1]


def _git_repo(path: Path) -> Path:
    """A small git repository with a commit, a modified file and an untracked file."""
    path.mkdir()

    def git(*args: str) -> None:
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@e", *args],
            cwd=path,
            check=True,
            capture_output=True,
        )

    git("init", "-q")
    (path / "train.py").write_text("print('v1')\n")
    git("add", "train.py")
    git("commit", "-q", "-m", "first")
    (path / "train.py").write_text("print('v2')\n")
    (path / "notes.txt").write_text("untracked note\n")
    return path


def _script(folder: Path, name: str, code: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(code))
    return path


def copy_store(src: Path, dst: Path) -> Path:
    """Copy a store (symlinks kept as links) so a test may change or recover it."""
    shutil.copytree(src, dst, symlinks=True)
    return dst


@pytest.fixture(scope="session")
def ui_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store made by really running the examples and a few scripts.

    Roles in `UI_RUNS`: `numpy_a` (lr 0.5), `numpy_b` (lr 0.1) from examples/plain;
    `sklearn` (name "gb-search") from examples/sklearn; `failed` ("failing-run", raised
    ValueError); `artifacts` ("with-artifacts", run in a dirty git repo: a patch, a blob copy,
    a plain file, a checkpoint file with best/last/score and a checkpoint folder); `xss`
    (named `XSS_NAME`, HTML in experiment, params, tags and a metric key); `crashed`
    ("crashed-run", SIGKILLed, left `running` with its log on disk).
    """
    base = tmp_path_factory.mktemp("ui")
    store = base / "store"
    work = base / "work"
    work.mkdir()
    numpy_example = str(ROOT / "examples" / "plain" / "train_numpy.py")
    sklearn_example = str(ROOT / "examples" / "sklearn" / "train.py")
    # The examples are independent processes: run them side by side.
    procs = {
        "numpy_a": [numpy_example, "--lr", "0.5"],
        "numpy_b": [numpy_example, "--lr", "0.1"],
        "sklearn": [sklearn_example],
    }
    running = {
        role: subprocess.Popen(
            [sys.executable, *args],
            cwd=work,
            env=child_env(store),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for role, args in procs.items()
    }
    outputs = {}
    for role, proc in running.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{role}: {err[-3000:]}"
        outputs[role] = out
    UI_RUNS["numpy_a"] = outputs["numpy_a"].split("run ")[1].split(":")[0]
    UI_RUNS["numpy_b"] = outputs["numpy_b"].split("run ")[1].split(":")[0]
    UI_RUNS["sklearn"] = outputs["sklearn"].rsplit("run id:", 1)[1].strip()
    UI_RUNS["failed"] = run_python(
        [str(_script(work, "fail.py", _FAILING))], store=store, cwd=work, check=False
    ).split()[0]
    repo = _git_repo(base / "repo")
    UI_RUNS["artifacts"] = run_python(
        [str(_script(repo, "with_artifacts.py", _ARTIFACTS))], store=store, cwd=repo
    ).split()[-1]
    UI_RUNS["xss"] = run_python(
        [str(_script(work, "xss.py", _XSS))], store=store, cwd=work
    ).split()[-1]
    UI_RUNS["crashed"] = make_crashed_run(store, work)
    return store


def _serve(app: Any) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on 127.0.0.1, a free port, in a thread; yield its URL."""
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="ui-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the ui server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def ui_server(ui_store: Path) -> Iterator[str]:
    """The real UI app on `ui_store`, served by uvicorn; yields its base URL (no trailing /)."""
    from reprolog.ui import make_app

    yield from _serve(make_app(ui_store))


@pytest.fixture
def ui_ids(ui_store: Path) -> dict[str, str]:
    """`UI_RUNS` (role -> run id) of `ui_store`."""
    return dict(UI_RUNS)


# ---------------------------------------------------------------------------- the browser

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
WAIT_MS = 20_000  # generous bound for anything the page must show


# One browser per test process, shared by every browser test module: a second
# sync_playwright() in the same process fails ("Sync API inside the asyncio loop").
@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield browser
        browser.close()


class Watch:
    """Everything a page did that a test must not allow."""

    def __init__(self, page: Any) -> None:
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.dialogs: list[str] = []
        self.requests: list[str] = []
        self.outside: list[str] = []
        self.allowed_status: set[int] = set()
        page.on("console", self._console)
        page.on("pageerror", lambda err: self.page_errors.append(str(err)))
        page.on("dialog", self._dialog)
        page.on("request", self._request)

    def _console(self, msg: Any) -> None:
        if msg.type != "error":
            return
        text = msg.text
        # Chromium logs every non-2xx fetch; a test that expects one (a bad filter) allows it.
        if any(f"status of {s} " in text for s in self.allowed_status):
            return
        self.console_errors.append(text)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _request(self, request: Any) -> None:
        url = request.url
        self.requests.append(url)
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob", "about"):
            return
        if parts.hostname not in LOOPBACK:
            self.outside.append(url)

    def assert_clean(self) -> None:
        assert self.outside == [], f"requests left loopback: {self.outside}"
        assert self.page_errors == [], f"page errors: {self.page_errors}"
        assert self.console_errors == [], f"console errors: {self.console_errors}"
        assert self.dialogs == [], f"dialogs fired: {self.dialogs}"


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.watch = Watch(page)
    yield page
    context.close()
    page.watch.assert_clean()
