"""Overhead of ReprologCallback on a tiny Hugging Face Trainer run (CPU, nothing downloaded).

Trains the same tiny BERT, same seed, with and without the callback, alternating, several
times; prints medians and the overhead ratio. The in-loop cost (time from the first to the last
step, measured by a probe callback) is reported apart from the run-start capture (environment,
git, params, dataset fingerprints) and the end of the run (compaction, waiting for hashes).

Run: ``python bench/bench_transformers.py [--repeats 5] [--steps 200]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
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


class _Ids(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    def __init__(self, n: int) -> None:
        gen = torch.Generator().manual_seed(0)
        self.ids = torch.randint(1, 100, (n, 8), generator=gen)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.ids[i, 0] % 2}


class _Probe(TrainerCallback):  # type: ignore[misc]
    """Times the loop: from the first step's start to the end of the last step."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.last = 0.0

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


class _TimedReprolog(ReprologCallback):
    """ReprologCallback with a stopwatch around each in-loop event: a noise-free cost figure."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.in_hooks = 0.0

    def __getattribute__(self, name: str) -> Any:
        attr = super().__getattribute__(name)
        if name not in _LOOP_EVENTS:
            return attr

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            finally:
                self.in_hooks += time.perf_counter() - t0

        return timed


def _once(steps: int, with_callback: bool, store: str) -> dict[str, float]:
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
            logging_steps=10,
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            use_cpu=True,
            seed=0,
        )
        probe = _Probe()
        callbacks: list[Any] = [probe]
        ours = _TimedReprolog(dir=store) if with_callback else None
        if ours is not None:
            callbacks.insert(0, ours)
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
    hooks = ours.in_hooks if ours is not None else 0.0
    return {"total": total, "loop": loop, "outside": total - loop, "hooks": hooks}


def main() -> None:
    """Parse arguments, run the alternating trials, print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=200)
    opts = parser.parse_args()
    torch.set_num_threads(1)  # steadier timings on a shared machine
    with tempfile.TemporaryDirectory() as store:
        _once(10, True, store)  # warm-up: imports, first capture, allocator
        _once(10, False, store)
        runs: dict[bool, list[dict[str, float]]] = {True: [], False: []}
        for _ in range(opts.repeats):
            for flag in (False, True):
                runs[flag].append(_once(opts.steps, flag, store))

    def med(flag: bool, key: str) -> float:
        return statistics.median(r[key] for r in runs[flag])

    print(f"transformers Trainer, tiny BERT, {opts.steps} steps, {opts.repeats} repeats (medians)")
    for key in ("loop", "outside", "total"):
        base, ours = med(False, key), med(True, key)
        print(f"  {key:8s} without {base:8.3f} s   with {ours:8.3f} s   delta {ours - base:+.3f} s")
    ratio = med(True, "loop") / med(False, "loop")
    print(f"  loop time ratio with/without: {ratio:.3f}  (end to end; noisy on a shared machine)")
    hook_share = statistics.median(r["hooks"] / r["loop"] for r in runs[True])
    print(
        f"  time inside the callback's in-loop hooks: {med(True, 'hooks') * 1e3:.2f} ms"
        f" = {hook_share * 100:.2f} % of the loop (target <= 3 %)"
    )
    print(
        f"  run start + end (capture, finish): "
        f"{med(True, 'outside') - med(False, 'outside'):+.3f} s"
    )


if __name__ == "__main__":
    main()
