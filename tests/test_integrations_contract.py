"""One contract for every integration: whose run it records into, and a true status on every path.

Each case trains a real tiny model of its framework on synthetic data through the integration
and nothing else; the assertions are shared, so a new integration is added by writing one
`Case` (an in-process training, a script for the subprocess paths, the keys to look for).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import reprolog

os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytestmark = [
    # Framework notices that tiny CPU trainings cannot avoid.
    pytest.mark.filterwarnings("ignore:.*does not have many workers.*"),
    pytest.mark.filterwarnings("ignore:.*smaller than the logging interval.*"),
    pytest.mark.filterwarnings("ignore:`isinstance\\(treespec, LeafSpec\\)` is deprecated"),
    pytest.mark.filterwarnings("ignore:.*GPU available but not used.*"),
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
    # Keras 3 on the torch backend under numpy 2 (Keras's own conversion, not ours).
    pytest.mark.filterwarnings(
        "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
    ),
]

# Every script and every in-process training shares this: a tiny model, synthetic data, and a
# hook that fails (`fail`) or slows down (`pause`) at each step, inside the framework's loop.
_COMMON = """
import os, sys, time
import numpy as np
os.environ.setdefault("KERAS_BACKEND", "torch")

def xy(n=64, d=4):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x, (x[:, 0] + x[:, 1] > 0).astype(np.int64)

class Hook:
    def __init__(self, fail=None, at=2, pause=0.0):
        self.fail, self.at, self.pause, self.n = fail, at, pause, 0
    def step(self):
        self.n += 1
        if self.fail is not None and self.n >= self.at:
            raise self.fail
        if self.pause:
            time.sleep(self.pause)
"""

_LIGHTNING = """
import lightning.pytorch as pl, torch
from torch.utils.data import DataLoader, TensorDataset
from reprolog_lightning import ReprologCallback

def train(run=None, hook=None, epochs=2):
    hook = hook or Hook()
    class Tiny(pl.LightningModule):
        def __init__(self, lr=0.1):
            super().__init__()
            self.save_hyperparameters()
            self.layer = torch.nn.Linear(4, 2)
        def training_step(self, batch, i):
            hook.step()
            loss = torch.nn.functional.cross_entropy(self.layer(batch[0]), batch[1])
            self.log("train_loss", loss)
            return loss
        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)
    x, y = xy()
    data = DataLoader(TensorDataset(torch.tensor(x), torch.tensor(y)), batch_size=16)
    trainer = pl.Trainer(max_epochs=epochs, callbacks=[ReprologCallback(run=run)], logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu")
    trainer.fit(Tiny(), data)
"""

_TRANSFORMERS = """
import torch
from transformers import (BertConfig, BertForSequenceClassification, Trainer, TrainerCallback,
                          TrainingArguments)
from reprolog_transformers import ReprologCallback

class Tokens(torch.utils.data.Dataset):
    def __init__(self):
        self.ids = torch.randint(1, 50, (32, 8), generator=torch.Generator().manual_seed(0))
    def __len__(self):
        return len(self.ids)
    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.ids[i, 0] % 2}

class Step(TrainerCallback):
    def __init__(self, hook):
        self.hook = hook
    def on_step_end(self, args, state, control, **kwargs):
        self.hook.step()

def train(run=None, hook=None, epochs=2):
    hook = hook or Hook()
    config = BertConfig(num_hidden_layers=1, hidden_size=16, num_attention_heads=2,
                        intermediate_size=16, vocab_size=50, max_position_embeddings=8)
    args = TrainingArguments(output_dir=os.environ["OUT"], max_steps=3 * epochs,
                             per_device_train_batch_size=8, logging_steps=1, save_strategy="no",
                             report_to="none", disable_tqdm=True, use_cpu=True)
    callback = ReprologCallback(run=run)
    Trainer(model=BertForSequenceClassification(config), args=args, train_dataset=Tokens(),
            callbacks=[callback, Step(hook)]).train()
"""

_KERAS = """
import keras
from reprolog_keras import ReprologCallback

class Step(keras.callbacks.Callback):
    def __init__(self, hook):
        super().__init__()
        self.hook = hook
    def on_train_batch_end(self, batch, logs=None):
        self.hook.step()

def train(run=None, hook=None, epochs=2):
    hook = hook or Hook()
    x, y = xy()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=epochs, batch_size=16, verbose=0,
              callbacks=[ReprologCallback(run=run), Step(hook)])
"""

_SKLEARN = """
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import SGDClassifier
from reprolog_sklearn import Tracked

class Stepwise(ClassifierMixin, BaseEstimator):
    # A real iterative fit (SGD epochs through partial_fit) that the hook can fail or slow.
    def __init__(self, steps=5, hook=None):
        self.steps, self.hook = steps, hook
    def fit(self, X, y):
        self.sgd_ = SGDClassifier(random_state=0)
        self.loss_curve_ = []
        for _ in range(self.steps):
            self.sgd_.partial_fit(X, y, classes=np.unique(y))
            self.loss_curve_.append(1.0 - self.sgd_.score(X, y))
            if self.hook is not None:
                self.hook.step()
        self.classes_ = self.sgd_.classes_
        return self
    def predict(self, X):
        return self.sgd_.predict(X)

def train(run=None, hook=None, epochs=2):
    hook = hook or Hook()
    x, y = xy()
    Tracked(Stepwise(steps=5 * epochs, hook=hook), run=run, log_model=False).fit(x, y)
"""


@dataclass(frozen=True)
class Case:
    """How one integration is driven and what its run must then hold."""

    source: str  # defines train(run=None, hook=None, epochs=2) on top of _COMMON
    param: tuple[str, Any]  # a param the integration logs in a run of its own, and its value
    metric: str  # a metric every completed training records
    logs_during_fit: bool  # False: points arrive after fit (sklearn), wait for params then


CASES: dict[str, Case] = {
    "lightning": Case(_LIGHTNING, ("model.hparams.lr", 0.1), "train_loss", True),
    "transformers": Case(_TRANSFORMERS, ("args.max_steps", 6), "loss", True),
    "keras": Case(_KERAS, ("fit.epochs", 2), "loss", True),
    "sklearn": Case(_SKLEARN, ("steps", 10), "loss_curve", False),
}
FRAMEWORKS = sorted(CASES)
_namespaces: dict[str, dict[str, Any]] = {}


def load(framework: str) -> dict[str, Any]:
    """Execute a case's source once per test process and return its namespace."""
    if framework not in _namespaces:
        namespace: dict[str, Any] = {"__name__": f"contract_{framework}"}
        exec(compile(_COMMON + CASES[framework].source, f"<{framework}>", "exec"), namespace)
        _namespaces[framework] = namespace
    return _namespaces[framework]


@pytest.fixture
def store_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("REPROLOG_DIR", str(tmp_path / "store"))
    monkeypatch.setenv("OUT", str(tmp_path / "out"))
    return tmp_path / "store"


@pytest.fixture(autouse=True)
def _keep_signal_handlers() -> Iterator[None]:
    # Lightning ignores SIGINT after a KeyboardInterrupt; never let that leak into pytest.
    sigint, sigterm = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGINT, sigint)
    signal.signal(signal.SIGTERM, sigterm)


def the_one_run(store_dir: Path, status: str, error: tuple[str, str] | None = None) -> Any:
    """Assert the store holds exactly one run, ended `status` (with `error`); return it."""
    store = reprolog.Store(store_dir)
    ids = store.run_ids()
    assert len(ids) == 1, f"expected one run, found {len(ids)}"
    record = store.run(ids[0])
    assert record.status == status, record.error
    if error is not None:
        assert record.error is not None
        assert (record.error["type"], record.error["message"]) == error
    return record


def assert_recorded(framework: str, record: Any, *, prefix: str = "") -> None:
    """The integration's params (under `prefix`) and per-step metrics are in the run."""
    key, value = CASES[framework].param
    assert record.params.get(prefix + key) == value, sorted(record.params)[:30]
    if prefix:
        assert key not in record.params, f"{key} outside the {prefix!r} namespace"
    points = record.metrics(keys=[CASES[framework].metric])
    assert len(points) >= 2, sorted(record.metrics()["key"].unique())
    assert points["step"].is_monotonic_increasing and np.isfinite(points["value"]).all()
    assert record.capture_report.get("errors", []) == []


# ------------------------------------------------------------------ whose run


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_no_run_starts_one_and_completes_it(framework: str, store_dir: Path) -> None:
    load(framework)["train"]()
    record = the_one_run(store_dir, "completed")
    assert_recorded(framework, record)
    assert reprolog.active_run() is None, "the integration left its run open"
    for section in ("environment", "code", "command", "seeds", "determinism", "data"):
        assert record.section(section), f"section {section!r} missing"


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_given_run_is_recorded_into_and_left_open(framework: str, store_dir: Path) -> None:
    run = reprolog.init("given", params={"note": "mine"})
    load(framework)["train"](run=run)
    assert run.status == "running", "the integration finished a run it was given"
    run.finish()
    record = the_one_run(store_dir, "completed")
    assert (record.name, record.params["note"]) == ("given", "mine")
    assert_recorded(framework, record)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_the_active_run_is_adopted_with_params_namespaced(framework: str, store_dir: Path) -> None:
    with reprolog.init("exp", params={"note": "mine"}) as run:
        load(framework)["train"]()
        assert run.status == "running", "the integration finished the user's run"
    record = the_one_run(store_dir, "completed")
    assert (record.name, record.params["note"]) == ("exp", "mine")
    assert_recorded(framework, record, prefix=f"{framework}.")


# ------------------------------------------------------------------ failure paths, in process


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_failure_caught_and_kept_by_the_script_ends_failed_at_once(
    framework: str, store_dir: Path
) -> None:
    ns = load(framework)
    err: RuntimeError | None = None
    try:
        ns["train"](hook=ns["Hook"](fail=RuntimeError("contract boom")))
    except RuntimeError as e:
        err = e  # kept alive, and the process goes on
    assert err is not None
    # Before anything else happens: no garbage collection, no process exit.
    the_one_run(store_dir, "failed", ("RuntimeError", "contract boom"))


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_keyboard_interrupt_ends_interrupted(framework: str, store_dir: Path) -> None:
    ns = load(framework)
    # Lightning turns Ctrl+C into a graceful sys.exit(1); the others let it through.
    with pytest.raises((KeyboardInterrupt, SystemExit)):
        ns["train"](hook=ns["Hook"](fail=KeyboardInterrupt()))
    assert the_one_run(store_dir, "interrupted").error["type"] == "KeyboardInterrupt"


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_failure_inside_the_users_run_ends_it_failed(framework: str, store_dir: Path) -> None:
    ns = load(framework)
    with pytest.raises(ValueError, match="inside with"), reprolog.init("exp"):
        ns["train"](hook=ns["Hook"](fail=ValueError("inside with")))
    the_one_run(store_dir, "failed", ("ValueError", "inside with"))


# ------------------------------------------------------------------ real processes

_SCRIPT_END = """
ending = sys.argv[1]
if ending == "raise":
    train(hook=Hook(fail=RuntimeError("contract boom")))
else:  # "sigterm": a long, slow training; the test sends the signal
    train(hook=Hook(pause=0.05), epochs=1000)
"""


def _start(framework: str, ending: str, tmp_path: Path) -> subprocess.Popen[str]:
    script = tmp_path / f"train_{framework}.py"
    script.write_text(_COMMON + CASES[framework].source + textwrap.dedent(_SCRIPT_END))
    env = {
        **os.environ,
        "REPROLOG_DIR": str(tmp_path / "store"),
        "OUT": str(tmp_path / "out"),
        "PYTHONWARNINGS": "ignore",
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.Popen(
        [sys.executable, str(script), ending],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_until_training(
    store_dir: Path, proc: subprocess.Popen[str], points: bool, limit: float = 300.0
) -> None:
    """Return once the one run is running with its params (and a metric point) recorded."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        try:
            store = reprolog.Store(store_dir)
            ids = store.run_ids()
            if len(ids) == 1:
                record = store.run(ids[0])
                going = record.status == "running" and record.params
                if going and (not points or len(record.metrics())):
                    time.sleep(0.2)  # well inside fit, not at its first step
                    return
        except (reprolog.ReprologError, OSError, ValueError):
            pass  # the store or the run is still being created
        time.sleep(0.1)
    raise AssertionError("the training never got going")


@pytest.mark.slow
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_an_uncaught_failure_in_a_script_ends_failed(framework: str, tmp_path: Path) -> None:
    proc = _start(framework, "raise", tmp_path)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 1 and "contract boom" in stderr, stderr[-3000:]
    the_one_run(tmp_path / "store", "failed", ("RuntimeError", "contract boom"))


@pytest.mark.slow
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_real_sigterm_during_fit_ends_interrupted_with_the_signal(
    framework: str, tmp_path: Path
) -> None:
    proc = _start(framework, "sigterm", tmp_path)
    try:
        _wait_until_training(tmp_path / "store", proc, CASES[framework].logs_during_fit)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    # The process ended (Lightning exits 0 by its own graceful SIGTERMException, the others
    # die by the signal); the record says SIGTERM the same way for all.
    assert proc.returncode is not None
    record = the_one_run(tmp_path / "store", "interrupted", ("Signal", "SIGTERM"))
    assert record.params, stderr[-3000:]
