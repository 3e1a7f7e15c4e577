"""Pure fact extraction: model, adapters, generation config, tokenizer, logs, epochs."""

from __future__ import annotations

import enum
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from reprolog_transformers import _facts
from transformers import BertTokenizerFast, GPT2Config, GPT2LMHeadModel


# peft's own get_peft_model on transformers 5 (the framework's notice, not ours).
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_model_params_with_generation_and_a_real_lora_adapter() -> None:
    from peft import LoraConfig, get_peft_model

    base = GPT2LMHeadModel(
        GPT2Config(
            n_layer=1,
            n_embd=16,
            n_head=2,
            vocab_size=50,
            n_positions=16,
            bos_token_id=0,
            eos_token_id=0,
        )
    )
    lora = LoraConfig(
        r=4, lora_alpha=8, target_modules=["c_attn"], task_type="CAUSAL_LM", fan_in_fan_out=True
    )
    model = get_peft_model(base, lora)  # freezes the base, adds trainable LoRA weights

    facts = _facts.model_params(model)

    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert facts["model"]["class"] == "peft.peft_model.PeftModelForCausalLM"
    assert facts["model"]["num_parameters"] == total
    assert facts["model"]["num_trainable_parameters"] == trainable < total
    adapter = facts["peft"]["default"]
    assert (adapter["peft_type"], adapter["r"], adapter["lora_alpha"]) == ("LORA", 4, 8)
    assert adapter["target_modules"] == ["c_attn"]
    assert "max_length" in facts["generation"] or "eos_token_id" in facts["generation"]


def test_tokenizer_params_from_a_local_vocab(tmp_path: Path) -> None:
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(vocab=str(tmp_path / "vocab.txt"), model_max_length=64)

    facts = _facts.tokenizer_params(tokenizer)

    # transformers 5 aliases BertTokenizerFast to BertTokenizer; either is the class recorded.
    assert facts["class"].startswith("transformers.models.bert.tokenization_bert")
    assert facts["vocab_size"] == len(vocab)
    assert facts["model_max_length"] == 64
    assert facts["padding_side"] == "right"


def test_tokenizer_params_without_processing_class() -> None:
    assert _facts.tokenizer_params(None) == {}


class _Color(enum.Enum):
    RED = "red"


def test_training_args_values_become_plain_and_long_values_survive() -> None:
    class Args:
        def to_dict(self) -> dict[str, Any]:
            return {
                "strategy": _Color.RED,
                "run_name": "y" * 10_000,
                "tags": ("a", "b"),
                "dev": torch.device("cpu"),
            }

    params = _facts.training_args_params(Args())

    assert params == {"strategy": "red", "run_name": "y" * 10_000, "tags": ["a", "b"], "dev": "cpu"}


@pytest.mark.parametrize(
    ("logs", "expected"),
    [
        ({"loss": 0.5, "epoch": 1}, {"loss": 0.5, "epoch": 1.0}),
        ({"note": "text", "flag": True, "nan": math.nan}, {"nan": math.nan}),
        ({"t": torch.tensor(2.0)}, {"t": 2.0}),
    ],
)
def test_numeric_logs_keep_only_real_numbers(
    logs: dict[str, Any], expected: dict[str, float]
) -> None:
    got = _facts.numeric_logs(logs)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == value or (math.isnan(got[key]) and math.isnan(value))


@pytest.mark.parametrize(
    ("epoch", "index"),
    [(None, None), (0.0, 0), (0.25, 0), (1.0, 0), (1.5, 1), (2.0, 1), (math.inf, None)],
)
def test_epoch_index_is_the_epoch_in_progress(epoch: float | None, index: int | None) -> None:
    assert _facts.epoch_index(epoch) == index


def test_dataset_items_names_dict_eval_sets() -> None:
    assert _facts.dataset_items(None, "eval") == []
    assert _facts.dataset_items([1], "train") == [("train", [1])]
    assert _facts.dataset_items({"a": [1], "b": None}, "eval") == [("eval/a", [1])]
