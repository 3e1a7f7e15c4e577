"""Zero-code mode, in fresh interpreters: one callback per Trainer, never two, cheap to enable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

_TRAIN = """
import json, os, sys
import reprolog
if os.environ.get("REPROLOG_AUTOLOG") != "1":
    reprolog.autolog()  # the script's only reprolog line in the in-code variant
import transformers
heavy_after_enable = "transformers.trainer" in sys.modules  # enable() must not import it
import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

class Ids(torch.utils.data.Dataset):
    def __len__(self):
        return 8
    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return {"input_ids": torch.randint(1, 50, (6,), generator=g), "labels": torch.tensor(i % 2)}

def trainer(out, callbacks=None):
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(
        num_hidden_layers=1, hidden_size=16, num_attention_heads=2, intermediate_size=20,
        vocab_size=50, max_position_embeddings=16))
    args = TrainingArguments(out, max_steps=2, per_device_train_batch_size=4, report_to="none",
                             disable_tqdm=True, use_cpu=True, save_strategy="no", logging_steps=1)
    return Trainer(model=model, args=args, train_dataset=Ids(), callbacks=callbacks)
"""


def _run(script: str, tmp_path: Path, **env: str) -> dict[str, object]:
    full_env = {**os.environ, "REPROLOG_DIR": str(tmp_path / "store"), "HF_HUB_OFFLINE": "1", **env}
    full_env.pop("REPROLOG_AUTOLOG", None)
    full_env.update(env)
    path = tmp_path / "script.py"
    path.write_text(_TRAIN + textwrap.dedent(script))
    done = subprocess.run(
        [sys.executable, str(path)],
        cwd=tmp_path,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_enable_attaches_exactly_once(tmp_path: Path) -> None:
    out = _run(
        """
        from reprolog_transformers import ReprologCallback
        from reprolog_transformers._autolog import enable
        enable()  # a second call is a no-op

        def ours(t):
            cbs = t.callback_handler.callbacks
            return sum(type(cb).__name__ == "ReprologCallback" for cb in cbs)

        plain = trainer("a")                                   # autolog adds one
        given = trainer("b", callbacks=[ReprologCallback()])   # the user's one, no second
        late = trainer("c"); late.add_callback(ReprologCallback())  # deduplicated at train()
        counts = [ours(plain), ours(given)]
        for t in (plain, given, late):
            t.train()
        counts.append(ours(late))
        store = reprolog.Store()
        runs = len(store.run_ids())
        print(json.dumps({"heavy": heavy_after_enable, "counts": counts, "runs": runs}))
        """,
        tmp_path,
    )
    assert out == {"heavy": False, "counts": [1, 1, 1], "runs": 3}


def test_env_var_alone_records_a_plain_script(tmp_path: Path) -> None:
    out = _run(
        """
        t = trainer("a")
        t.train()
        store = reprolog.Store()  # reading back only; the script itself holds no capture code
        (rid,) = store.run_ids()
        rec = store.run(rid)
        print(json.dumps({"status": rec.status, "steps": rec.params["args.max_steps"],
                          "heavy": heavy_after_enable}))
        """,
        tmp_path,
        REPROLOG_AUTOLOG="1",
    )
    assert out == {"status": "completed", "steps": 2, "heavy": False}
