"""Fine-tune a tiny random BERT with the Hugging Face Trainer and record it with reprolog.

Run: ``python examples/transformers/train.py`` (seconds on a CPU; nothing is downloaded).
The run lands in ``./.reprolog`` or ``$REPROLOG_DIR``; try ``reprolog show <id>`` afterwards.
"""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from reprolog_transformers import ReprologCallback
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    Trainer,
    TrainingArguments,
    default_data_collator,
)


class Parity(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    """Random token ids; the label is whether token 0 is even (learnable, tiny)."""

    def __init__(self, n: int, seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(1, 100, (n, 8), generator=gen)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.ids[i, 0] % 2}


def main() -> None:
    """Train for 20 steps with evaluation and rotated checkpoints; print the run id."""
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
            max_steps=20,
            per_device_train_batch_size=8,
            learning_rate=1e-3,
            logging_steps=5,
            eval_strategy="steps",
            eval_steps=10,
            save_strategy="steps",
            save_steps=10,
            save_total_limit=1,
            report_to="none",
            disable_tqdm=True,
            use_cpu=True,
            seed=0,
        )
        callback = ReprologCallback(name="tiny-bert-parity", experiment="examples")
        trainer = Trainer(
            model=BertForSequenceClassification(config),
            args=args,
            train_dataset=Parity(160, seed=1),
            eval_dataset=Parity(32, seed=2),
            data_collator=default_data_collator,
            callbacks=[callback],
        )
        trainer.train()
    assert callback.run is not None
    print(f"run id: {callback.run.id}  status: {callback.run.status}")


if __name__ == "__main__":
    main()
