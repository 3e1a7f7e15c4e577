"""The all_ranks handshake without processes: which collectives each rank calls, on every path.

A rank that skips a collective the others make hangs the job, so these pin the call sequence
with a recording strategy; the real 2-process training is in test_lightning_ddp.py.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from reprolog_lightning import ReprologCallback

import reprolog


class _Strategy:
    """Records collective calls; `broadcast` answers what rank 0 would have sent."""

    def __init__(self, from_rank0: Any = None) -> None:
        self.from_rank0 = from_rank0
        self.calls: list[str] = []

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        self.calls.append("broadcast")
        return obj if self.from_rank0 is None else self.from_rank0

    def barrier(self, name: str | None = None) -> None:
        self.calls.append("barrier")


def _trainer(rank: int, strategy: _Strategy, world_size: int = 2) -> Any:
    # Only what setup/teardown read on a rank that writes metrics only.
    return SimpleNamespace(
        world_size=world_size,
        global_rank=rank,
        is_global_zero=rank == 0,
        strategy=strategy,
        callbacks=[],
        sanity_checking=False,
        training=False,
        current_epoch=0,
        _logger_connector=SimpleNamespace(log_metrics=lambda metrics, step=None: None),
    )


def test_all_ranks_must_be_a_bool() -> None:
    with pytest.raises(reprolog.ArgumentError, match="all_ranks must be True or False; got 1"):
        ReprologCallback(all_ranks=1)  # type: ignore[arg-type]


@pytest.mark.parametrize("rank", [0, 1])
def test_default_mode_makes_no_collective_call(rank: int, tmp_path: Path) -> None:
    strategy = _Strategy()
    callback = ReprologCallback(dir=tmp_path)
    t = _trainer(rank, strategy)
    # On rank 0 the stub Trainer lacks what the full capture reads: recorded, never raised.
    callback.setup(t, None, "fit")
    callback.teardown(t, None, "fit")
    assert strategy.calls == []
    if rank == 0:
        assert reprolog.Store(tmp_path).run(callback.run.id).status == "completed"


def test_other_rank_writes_into_rank_zeros_run_then_meets(tmp_path: Path) -> None:
    run = reprolog.init(dir=tmp_path)
    strategy = _Strategy(from_rank0=(run.id, str(tmp_path)))
    callback = ReprologCallback(all_ranks=True)
    t = _trainer(1, strategy)
    callback.setup(t, None, "validate")
    t._logger_connector.log_metrics({"val_loss": 0.25}, 4)  # what Lightning hands its loggers
    callback.teardown(t, None, "validate")
    assert strategy.calls == ["broadcast", "barrier"]
    run.log({"val_loss": 0.5}, step=4)
    run.finish()
    metrics = reprolog.Store(tmp_path).metrics(runs=[run.id])
    points = sorted(zip(metrics["rank"], metrics["step"], metrics["value"], strict=True))
    assert points == [(0, 4, 0.5), (1, 4, 0.25)]


def test_failed_attach_warns_once_and_still_meets(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run = reprolog.init(dir=tmp_path)
    run.finish()  # rank 0's run is no longer live: attaching to it fails
    strategy = _Strategy(from_rank0=(run.id, str(tmp_path)))
    callback = ReprologCallback(all_ranks=True)
    t = _trainer(1, strategy)
    with caplog.at_level(logging.WARNING, logger="reprolog"):
        for stage in ("fit", "test"):
            callback.setup(t, None, stage)
            t._logger_connector.log_metrics({"x": 1.0}, 0)
            callback.teardown(t, None, stage)
    # Rank 0 waits at the barrier whatever happened here, so this rank must reach it too.
    assert strategy.calls == ["broadcast", "barrier"] * 2
    warnings = [r.getMessage() for r in caplog.records if "could not attach" in r.getMessage()]
    assert len(warnings) == 1 and "rank 1" in warnings[0]


def test_rank_zero_without_a_run_still_answers_and_no_rank_meets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("a file where the store folder should go: no run can start")
    strategy = _Strategy()
    callback = ReprologCallback(dir=blocker / "store", all_ranks=True)
    t = _trainer(0, strategy)
    with caplog.at_level(logging.WARNING, logger="reprolog"):
        callback.setup(t, None, "fit")
        callback.teardown(t, None, "fit")
    # The others wait in the broadcast: rank 0 answers None, and then nobody meets.
    assert strategy.calls == ["broadcast"]
    assert "could not start a run" in caplog.text


def test_exception_closes_the_rank_writer_without_a_collective(tmp_path: Path) -> None:
    run = reprolog.init(dir=tmp_path)
    strategy = _Strategy(from_rank0=(run.id, str(tmp_path)))
    callback = ReprologCallback(all_ranks=True)
    t = _trainer(1, strategy)
    callback.setup(t, None, "fit")
    writer = callback._rank_writer
    callback.on_exception(t, None, RuntimeError("boom"))
    callback.teardown(t, None, "fit")  # not called by Lightning after an exception; harmless
    assert strategy.calls == ["broadcast"]  # no barrier: the other ranks may never reach one
    with pytest.raises(reprolog.RunStateError, match="is closed"):
        writer.log({"x": 1.0}, step=0)
    run.finish()
