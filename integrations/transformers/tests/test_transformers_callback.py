"""ReprologCallback end to end: train a tiny random BERT, then assert on what the store holds."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from reprolog_transformers import ReprologCallback
from transformers import Trainer, TrainerCallback, default_data_collator

import reprolog

HUB_TOKEN = "hf_" + "Zq8rT3vLm2Xw9Yp4Kd7Nc6Bf1Gh5Js0Ae"
LONG_NAME = "run-" + "x" * 5000  # the MLflow callback drops values this long; we must not


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory, make_bert: Any, make_args: Any, make_data: Any
) -> dict[str, Any]:
    """One training with evaluation and checkpoints, shared by the assertions below."""
    root = tmp_path_factory.mktemp("trained")
    store = root / "store"
    args = make_args(
        root / "out",
        max_steps=6,
        logging_steps=2,
        eval_strategy="steps",
        eval_steps=3,
        save_strategy="steps",
        save_steps=3,
        hub_token=HUB_TOKEN,
        run_name=LONG_NAME,
    )
    model = make_bert()
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=make_data(24, seed=1),
        eval_dataset=make_data(8, seed=2),
        data_collator=default_data_collator,
        callbacks=[ReprologCallback(dir=store, name="bert-tiny")],
    )
    trainer.train()
    record = reprolog.Store(store).run("bert-tiny")
    return {"store": store, "record": record, "model": model, "out": root / "out"}


def test_run_completes_with_name(trained: dict[str, Any]) -> None:
    assert trained["record"].status == "completed"
    assert trained["record"].error is None


def test_every_training_argument_is_a_param(trained: dict[str, Any]) -> None:
    params = trained["record"].params
    assert params["args.learning_rate"] == pytest.approx(5e-5)
    assert params["args.max_steps"] == 6
    assert params["args.seed"] == 7
    assert params["args.eval_strategy"] == "steps"
    assert params["args.run_name"] == LONG_NAME
    assert params["args.hub_token"] != HUB_TOKEN
    # A few of the many fields that only exist as defaults: none is dropped.
    for key in ("args.adam_beta2", "args.lr_scheduler_type", "args.weight_decay"):
        assert key in params


def test_hub_token_never_reaches_disk(trained: dict[str, Any]) -> None:
    needle = HUB_TOKEN.encode()
    files = [p for p in trained["store"].rglob("*") if p.is_file()]
    assert files
    leaked = [p for p in files if needle in p.read_bytes()]
    assert leaked == []


def test_model_facts(trained: dict[str, Any]) -> None:
    params, model = trained["record"].params, trained["model"]
    assert params["model.class"].endswith(".BertForSequenceClassification")
    total = sum(p.numel() for p in model.parameters())
    assert params["model.num_parameters"] == total
    assert params["model.num_trainable_parameters"] == total
    assert params["model.config.hidden_size"] == 32
    assert params["model.config.num_hidden_layers"] == 2


def test_metrics_at_global_steps(trained: dict[str, Any]) -> None:
    metrics = trained["record"].metrics()
    steps = {key: sorted(group["step"]) for key, group in metrics.groupby("key")}
    assert steps["loss"] == [2, 4, 6]
    assert steps["learning_rate"] == [2, 4, 6]
    assert steps["grad_norm"] == [2, 4, 6]
    assert steps["eval_loss"] == [3, 6]
    assert steps["train_runtime"] == [6]
    assert steps["train_samples_per_second"] == [6]
    # "epoch" rides on train and eval entries; one point per step.
    assert steps["epoch"] == [2, 3, 4, 6]
    assert set(metrics.loc[metrics.key == "loss", "epoch"]) == {0}


def test_checkpoints_are_hashed_artifacts(trained: dict[str, Any]) -> None:
    assert trained["record"].status == "completed"  # finished: every hash job is done
    checkpoints = [a for a in trained["record"].artifacts if a["kind"] == "checkpoint"]
    assert [(a["name"], a["step"]) for a in checkpoints] == [
        ("checkpoint-3", 3),
        ("checkpoint-6", 6),
    ]
    for art in checkpoints:
        assert art["status"] == "ok"
        names = {f["path"] for f in art["files"]}
        assert "model.safetensors" in names
        assert "trainer_state.json" in names
        assert art["size"] == sum(f["size"] for f in art["files"]) > 0
        assert len(art["sha256"]) == 64
        assert art["metadata"]["global_step"] == art["step"]
        assert art["metadata"]["best"] is False
        assert "deleted" not in art["metadata"]


def test_seeds_data_and_trainer_sections(trained: dict[str, Any]) -> None:
    record = trained["record"]
    assert record.section("seeds")["transformers"] == {
        "seed": 7,
        "data_seed": None,
        "full_determinism": False,
    }
    facts = record.section("transformers")
    assert facts["data_collator"] == "transformers.data.data_collator.default_data_collator"
    assert facts["trainer_class"] == "transformers.trainer.Trainer"
    assert facts["max_steps"] == 6
    assert facts["global_step"] == 6
    data = record.section("data")
    assert set(data) == {"train", "eval"}
    assert data["train"]["fingerprint"]
    assert data["train"]["fingerprint"] != data["eval"]["fingerprint"]


def test_rotation_marks_deleted_and_tracks_best(
    tmp_path: Path, store_dir: Path, make_bert: Any, make_args: Any, make_data: Any
) -> None:
    args = make_args(
        tmp_path / "out",
        max_steps=8,
        eval_strategy="steps",
        eval_steps=2,
        save_strategy="steps",
        save_steps=2,
        save_total_limit=1,
        metric_for_best_model="loss",
        greater_is_better=False,
        load_best_model_at_end=True,
    )
    trainer = Trainer(
        model=make_bert(),
        args=args,
        train_dataset=make_data(32, seed=3),
        eval_dataset=make_data(8, seed=4),
        callbacks=[ReprologCallback()],
    )
    trainer.train()
    best_path = trainer.state.best_model_checkpoint
    assert best_path is not None

    (record,) = [reprolog.Store(store_dir).run(i) for i in reprolog.Store(store_dir).run_ids()]
    checkpoints = {a["name"]: a for a in record.artifacts if a["kind"] == "checkpoint"}
    assert sorted(checkpoints) == ["checkpoint-2", "checkpoint-4", "checkpoint-6", "checkpoint-8"]
    best_name = os.path.basename(best_path)
    for name, art in checkpoints.items():
        meta = art["metadata"]
        on_disk = (tmp_path / "out" / name).is_dir()
        # save_total_limit=1 keeps only the best checkpoint once training ends.
        assert on_disk == (name == best_name)
        assert meta.get("deleted", False) is (not on_disk)
        assert meta["best"] is (name == best_name)
        assert meta["metric"] == "loss"
        assert isinstance(meta["score"], float)
    assert record.section("transformers")["best_model_checkpoint"] == best_path


class _Boom(TrainerCallback):  # type: ignore[misc]
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == 2:
            raise self.exc


@pytest.mark.parametrize(
    ("exc", "status"),
    [(RuntimeError("boom at step 2"), "failed"), (KeyboardInterrupt(), "interrupted")],
)
def test_train_exception_sets_status_and_reraises(
    exc: BaseException,
    status: str,
    tmp_path: Path,
    store_dir: Path,
    make_bert: Any,
    make_args: Any,
    make_data: Any,
) -> None:
    trainer = Trainer(
        model=make_bert(),
        args=make_args(tmp_path / "out"),
        train_dataset=make_data(16),
        callbacks=[ReprologCallback(), _Boom(exc)],
    )
    with pytest.raises(type(exc)) as raised:
        trainer.train()
    assert raised.value is exc

    store = reprolog.Store(store_dir)
    (run_id,) = store.run_ids()
    record = store.run(run_id)
    assert record.status == status
    assert record.error is not None
    assert record.error["type"] == type(exc).__name__
    assert record.section("transformers")["train_status"] == status
    # What was logged before the failure is kept.
    assert sorted(record.metrics(keys="loss")["step"]) == [1]


def test_attached_run_is_left_to_its_owner(
    tmp_path: Path, make_bert: Any, make_args: Any, make_data: Any
) -> None:
    run = reprolog.init(dir=tmp_path / "store", name="mine", capture=False)
    trainer = Trainer(
        model=make_bert(),
        args=make_args(tmp_path / "out"),
        train_dataset=make_data(16),
        eval_dataset=make_data(8, seed=5),
        callbacks=[ReprologCallback(run=run)],
    )
    trainer.train()
    assert run.status == "running"
    trainer.evaluate()  # after train(): still recorded, the run is the user's
    run.log({"extra": 1.0}, step=99)
    run.finish()

    record = reprolog.Store(tmp_path / "store").run("mine")
    assert record.status == "completed"
    keys = set(record.metrics()["key"])
    assert {"loss", "train_runtime", "eval_loss", "extra"} <= keys
    assert record.params["args.max_steps"] == 4


def test_run_and_init_kwargs_are_exclusive(tmp_path: Path) -> None:
    run = reprolog.init(dir=tmp_path, capture=False)
    try:
        with pytest.raises(
            reprolog.ArgumentError, match=r"either an existing run or reprolog.init"
        ):
            ReprologCallback(run=run, name="x")
    finally:
        run.finish()


_TWO_RANKS = """
import os, sys
import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments
from reprolog_transformers import ReprologCallback

class Ids(torch.utils.data.Dataset):
    def __init__(self):
        self.ids = torch.randint(1, 50, (16, 8), generator=torch.Generator().manual_seed(0))
    def __len__(self):
        return len(self.ids)
    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.ids[i, 0] % 2}

torch.manual_seed(0)
config = BertConfig(num_hidden_layers=1, hidden_size=16, num_attention_heads=2,
                    intermediate_size=16, vocab_size=50, max_position_embeddings=8)
args = TrainingArguments(output_dir=sys.argv[2], max_steps=3, per_device_train_batch_size=2,
                         logging_steps=1, save_strategy="no", report_to="none",
                         disable_tqdm=True, use_cpu=True, ddp_backend="gloo")
trainer = Trainer(model=BertForSequenceClassification(config), args=args,
                  train_dataset=Ids(), callbacks=[ReprologCallback(dir=sys.argv[1])])
trainer.train()
assert trainer.args.world_size == 2, trainer.args.world_size
torch.distributed.destroy_process_group()  # as torch asks of every DDP program
"""

# A rank of this very script without reprolog (no callback) sometimes aborts after training,
# at interpreter exit: "terminate called without an active exception", SIGABRT (2 of 12 runs
# on the 2-core CI machine; with destroy_process_group and a barrier too). It is torch's
# (gloo / the Trainer's threads at teardown), not the run's: the test then judges the record.
_EXIT_ABORT = "terminate called without an active exception"


def test_a_real_two_process_training_records_one_run(tmp_path: Path) -> None:
    script = tmp_path / "two_ranks.py"
    script.write_text(_TWO_RANKS)
    store = tmp_path / "store"
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    env.pop("REPROLOG_DIR", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            "2",
            "--master-port",
            str(_free_port()),
            str(script),
            str(store),
            str(tmp_path / "out"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    trained = "train_runtime" in done.stdout + done.stderr
    exit_abort = done.returncode != 0 and trained and _EXIT_ABORT in done.stderr
    assert done.returncode == 0 or exit_abort, done.stderr[-4000:]
    runs = reprolog.Store(store).runs()
    assert len(runs) == 1, runs[["id", "status"]]
    record = reprolog.Store(store).run(runs["id"][0])
    assert record.status == "completed"
    assert record.section("transformers")["world_size"] == 2
    assert sorted(record.metrics(keys="loss")["step"]) == [1, 2, 3]  # rank 0's points only


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_capture_failure_is_recorded_not_raised(
    tmp_path: Path,
    store_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    make_bert: Any,
    make_args: Any,
    make_data: Any,
) -> None:
    from reprolog_transformers import _facts

    def broken(model: Any) -> dict[str, Any]:
        raise ValueError("cannot read this model")

    monkeypatch.setattr(_facts, "model_params", broken)
    trainer = Trainer(
        model=make_bert(),
        args=make_args(tmp_path / "out"),
        train_dataset=make_data(16),
        callbacks=[ReprologCallback()],
    )
    trainer.train()
    store = reprolog.Store(store_dir)
    record = store.run(store.run_ids()[0])
    assert record.status == "completed"
    errors = record.capture_report["errors"]
    assert {"what": "transformers: model", "error": "ValueError: cannot read this model"} in errors
    assert record.params["args.max_steps"] == 4  # the other captures went on
