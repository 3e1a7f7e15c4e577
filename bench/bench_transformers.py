"""Overhead of ReprologCallback on a tiny Hugging Face Trainer run (CPU, nothing downloaded).

Trains the same tiny BERT, same seed, three arms interleaved: a probe only, a no-op callback,
and ReprologCallback, logging every step so each step has one `on_log`. Prints the cost per
`on_log` over the no-op callback (median of the per-repeat differences of the loop time, from
the first step's start to the last step's end, / on_log calls), the time inside the callback's
in-loop hooks per on_log (a noise-free cross-check), and the run start (train() to the first
step: init, capture, params, dataset fingerprints) over the no-op arm.
Targets (issue 12): <= 20 us per on_log; run start <= 50 ms.

Run: ``python bench/bench_transformers.py [--repeats 5] [--steps 200] [--json] [--profile]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from reprolog_transformers import ReprologCallback
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    default_data_collator,
)

sys.path.insert(0, str(Path(__file__).parent))
from _common import HookTimer, emit_results, paired_median, paired_spread, profile_top


class _Ids(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    def __init__(self, n: int) -> None:
        gen = torch.Generator().manual_seed(0)
        self.ids = torch.randint(1, 100, (n, 8), generator=gen)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.ids[i, 0] % 2}


class _Noop(TrainerCallback):  # type: ignore[misc]
    """A callback with no work on the events ReprologCallback uses in the loop."""

    def on_log(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        pass

    def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        pass

    def on_evaluate(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        pass


class _Probe(TrainerCallback):  # type: ignore[misc]
    """Times the loop: from the first step's start to the end of the last step; counts logs."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.last = 0.0
        self.logs = 0

    def on_log(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.logs += 1

    def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if self.first is None:
            self.first = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.last = time.perf_counter()


# Events inside the training loop; on_train_begin/on_train_end are run start and end.
_LOOP_EVENTS = (
    "on_epoch_begin",
    "on_epoch_end",
    "on_step_begin",
    "on_pre_optimizer_step",
    "on_optimizer_step",
    "on_substep_end",
    "on_step_end",
    "on_log",
    "on_evaluate",
    "on_save",
)


def _once(steps: int, arm: str, store: str) -> dict[str, float]:
    """One training; `arm` is "none" (probe only), "noop" or "ours"."""
    torch.manual_seed(0)
    config = BertConfig(
        num_hidden_layers=2,
        hidden_size=32,
        num_attention_heads=2,
        intermediate_size=37,
        vocab_size=100,
        max_position_embeddings=16,
        num_labels=2,
    )
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            max_steps=steps,
            per_device_train_batch_size=8,
            logging_steps=1,  # one on_log per step: what the per-on_log figure divides by
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            use_cpu=True,
            seed=0,
        )
        probe = _Probe()
        callbacks: list[Any] = [probe]
        timer: HookTimer | None = None
        if arm == "ours":
            ours = ReprologCallback(dir=store)
            timer = HookTimer(ours, list(_LOOP_EVENTS))  # a stopwatch on each in-loop event
            callbacks.insert(0, ours)
        elif arm == "noop":
            callbacks.insert(0, _Noop())
        trainer = Trainer(
            model=BertForSequenceClassification(config),
            args=args,
            train_dataset=_Ids(512),
            data_collator=default_data_collator,
            callbacks=callbacks,
        )
        start = time.perf_counter()
        trainer.train()
        total = time.perf_counter() - start
    assert probe.first is not None
    loop = probe.last - probe.first
    hooks = timer.total() if timer is not None else 0.0
    typical = timer.typical() if timer is not None else 0.0
    return {
        "total": total,
        "loop": loop,
        "start": probe.first - start,
        "outside": total - loop,
        "hooks": hooks,
        "typical": typical,
        "logs": float(probe.logs),
    }


def main() -> None:
    """Parse arguments, run the interleaved trials, print medians and the per-on_log cost."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--json", action="store_true", help="also print a RESULTS line")
    parser.add_argument("--profile", action="store_true", help="cProfile one run with ours")
    opts = parser.parse_args()
    torch.set_num_threads(1)  # steadier timings on a shared machine
    arms = ("none", "noop", "ours")
    runs: dict[str, list[dict[str, float]]] = {arm: [] for arm in arms}
    with tempfile.TemporaryDirectory() as store:
        for arm in arms:
            _once(10, arm, store)  # warm-up: imports, first capture, allocator
        for _ in range(opts.repeats):
            for arm in arms:  # interleaved so drift hits every arm alike
                runs[arm].append(_once(opts.steps, arm, store))
        if opts.profile:
            profile_top(lambda: _once(opts.steps, "ours", store), only="reprolog")

    def col(arm: str, key: str) -> list[float]:
        return [r[key] for r in runs[arm]]

    logs = statistics.median(col("ours", "logs"))
    print(
        f"transformers Trainer, tiny BERT, {opts.steps} steps, logging every step "
        f"({logs:.0f} on_log calls), {opts.repeats} repeats (medians; arms interleaved)"
    )
    for key in ("loop", "start", "total"):
        line = "   ".join(f"{arm} {statistics.median(col(arm, key)):7.3f} s" for arm in arms)
        print(f"  {key:6s} {line}")
    per_log = paired_median(col("ours", "loop"), col("noop", "loop")) / logs * 1e6
    inside = statistics.median(col("ours", "hooks")) / logs * 1e6
    typical = statistics.median(col("ours", "typical")) / logs * 1e6
    start = paired_median(col("ours", "start"), col("noop", "start")) * 1e3
    print(f"  per on_log over the no-op callback: {per_log:+.1f} us   target <= 20 us")
    print(
        f"  inside the callback's in-loop hooks: {inside:.1f} us per on_log "
        f"({typical:.1f} us at each hook's median call)"
    )
    print(f"  run start over the no-op arm (train() to first step): {start:.1f} ms   <= 50 ms")
    noise = paired_spread(col("ours", "loop"), col("noop", "loop")) / logs * 1e6
    if opts.json:
        emit_results(
            [
                {"measure": "transformers callback, per on_log, over a no-op callback",
                 "value": per_log, "inside": inside, "typical": typical,
                 "noise": noise, "unit": "us", "target": 20.0},
                {"measure": "run start (capture) inside transformers",
                 "value": start, "unit": "ms", "target": 50.0},
            ]
        )  # fmt: skip


if __name__ == "__main__":
    main()
