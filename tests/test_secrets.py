"""End to end: tokens planted in argv, env, params, tags, git and files never reach the store."""

from __future__ import annotations

import os
import secrets
import string
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

import reprolog

SRC = Path(__file__).resolve().parents[1] / "src"
ALNUM = string.ascii_letters + string.digits


def rand(n: int) -> str:
    return "".join(secrets.choice(ALNUM) for _ in range(n))


def plant() -> dict[str, str]:
    """Fresh tokens each run, so that a hit can only come from this test's leak."""
    return {
        "argv_hf": "hf_" + rand(34),
        "argv_plain": "argvplain" + rand(20),
        "argv_override": "override" + rand(20),
        "env_hf": "hf_" + rand(34),
        "env_plain": "envplain" + rand(20),
        "env_aws": "AKIA" + "".join(secrets.choice(string.ascii_uppercase) for _ in range(16)),
        "param_plain": "paramplain" + rand(20),
        "param_sk": "sk-" + rand(40),
        "param_url_pw": "urlpw" + rand(20),
        "param_jwt": "eyJ" + rand(20) + ".eyJ" + rand(30) + "." + rand(30),
        "late_param": "lateparam" + rand(20),
        "tag_plain": "tagplain" + rand(20),
        "tag_ghp": "ghp_" + rand(36),
        "remote_pw": "remotepw" + rand(20),
        "remote_pat": "github_pat_" + rand(40),
        "diff_ghp": "ghp_" + rand(36),
        "untracked_plain": "dotenv" + rand(20),
        "section_plain": "section" + rand(20),
    }


TRAIN = """
import sys
import reprolog

tokens = dict(arg.split("=", 1) for arg in sys.stdin.read().split())
run = reprolog.init(
    dir=sys.argv[1],
    params={
        "hub": {"token": tokens["param_plain"], "repo": "org/model"},
        "openai": tokens["param_sk"],
        "db_url": "postgres://alice:" + tokens["param_url_pw"] + "@db.local/train",
        "session": tokens["param_jwt"],
        "model": {"use_cls_token": True, "max_tokens": 128, "tokenizer_name": "bert-base"},
    },
    tags={"secret": tokens["tag_plain"], "note": "pushed with " + tokens["tag_ghp"]},
)
for step in range(3):
    run.log({"loss": 1.0 / (step + 1)}, step=step)
run.log_params({"password": tokens["late_param"]})
run.update_section("trainer", {"auth_header": tokens["section_plain"]})
run.finish()
print(run.id)
"""


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def scan(store: Path, tokens: dict[str, str]) -> list[str]:
    """Every byte of every file, plus the decoded rows of every Parquet file."""
    leaks: list[str] = []
    files = [p for p in store.rglob("*") if p.is_file()]
    assert files, "the store is empty: the run wrote nothing"
    for path in files:
        blobs = [path.read_bytes()]
        if path.suffix == ".parquet":
            blobs.append(repr(pq.read_table(path).to_pylist()).encode())
        for name, token in tokens.items():
            if any(token.encode() in blob for blob in blobs):
                leaks.append(f"{name} in {path.relative_to(store)}")
    return leaks


def test_no_planted_secret_reaches_the_store(tmp_path: Path) -> None:
    tokens = plant()
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(SRC),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": str(tmp_path / "gitconfig"),
        "GIT_CEILING_DIRECTORIES": str(tmp_path),
        "GIT_AUTHOR_NAME": "T",
        "GIT_AUTHOR_EMAIL": "t@x",
        "GIT_COMMITTER_NAME": "T",
        "GIT_COMMITTER_EMAIL": "t@x",
        "HF_TOKEN": tokens["env_hf"],
        "HUGGING_FACE_HUB_TOKEN": tokens["env_hf"],
        "WANDB_API_KEY": tokens["env_plain"],
        "PL_AUTH_TOKEN": tokens["env_plain"],
        "AWS_ACCESS_KEY_ID": tokens["env_aws"],
        "TF_NOTE": "key " + tokens["env_aws"],
    }
    (repo / "train.py").write_text(TRAIN)
    (repo / "config.py").write_text("lr = 0.1\n")
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True, env=env)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True, env=env)
    subprocess.run(["git", "commit", "-q", "-m", "init"], cwd=repo, check=True, env=env)
    remote = f"https://bot:{tokens['remote_pw']}@github.com/org/repo.git"
    subprocess.run(["git", "remote", "add", "origin", remote], cwd=repo, check=True, env=env)
    subprocess.run(
        ["git", "remote", "add", "fork", f"https://{tokens['remote_pat']}@github.com/me/repo.git"],
        cwd=repo,
        check=True,
        env=env,
    )
    (repo / "config.py").write_text(f'lr = 0.1\nhub_token = "{tokens["diff_ghp"]}"\n')
    (repo / ".env").write_text(f"WANDB_API_KEY={tokens['untracked_plain']}\n")

    store = tmp_path / "store"
    argv = [
        sys.executable,
        "train.py",
        str(store),
        "--hf-token",
        tokens["argv_hf"],
        f"--api-key={tokens['argv_plain']}",
        f"trainer.auth.password={tokens['argv_override']}",
    ]
    stdin = " ".join(f"{k}={v}" for k, v in tokens.items())
    proc = subprocess.run(
        argv, cwd=repo, env=env, input=stdin, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    run_id = proc.stdout.strip().splitlines()[-1]

    assert scan(store, tokens) == []
    # The scan finds a token that is there: one planted by hand in a file of the store.
    control = store / "control.bin"
    control.write_bytes(b"x" + tokens["env_aws"].encode() + b"x")
    assert scan(store, tokens) == ["env_aws in control.bin"]
    control.unlink()

    record = reprolog.Store(store).run(run_id)
    redacted = set(record.capture_report["redacted"])
    expected = {
        "env.HF_TOKEN",
        "env.HUGGING_FACE_HUB_TOKEN",
        "env.PL_AUTH_TOKEN",
        "env.TF_NOTE",
        "code.remote_url",
        "code.diff",
        "code.untracked..env",
        "argv[3]",
        "argv[4]",
        "argv[5]",
    }
    assert expected <= redacted, expected - redacted
    assert any(name.startswith("params.") and "token" in name for name in redacted)
    # Benign look-alikes survive untouched.
    assert record.params["model.use_cls_token"] is True
    assert record.params["model.max_tokens"] == 128
    assert record.params["model.tokenizer_name"] == "bert-base"
    assert record.params["hub.repo"] == "org/model"
    assert record.sections["code"]["remote_url"] == "https://github.com/org/repo.git"
