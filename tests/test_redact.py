"""Tests for the one redaction function family (names, token formats, URLs, argv, mappings)."""

from __future__ import annotations

import pytest

from reprolog._capture.redact import (
    REDACTED,
    is_secret_name,
    redact_argv,
    redact_mapping,
    redact_text,
    redact_url,
    redact_value,
)

HF = "hf_" + "aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dE3f"
OPENAI = "sk-proj-" + "Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8"
GHP = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
GH_PAT = "github_pat_" + "11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz"
AWS_ID = "AKIA" + "IOSFODNN7EXAMPLE"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"


@pytest.mark.parametrize(
    "name",
    [
        "token",
        "HF_TOKEN",
        "hub_token",
        "GITHUB_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "accessToken",
        "api_key",
        "apiKey",
        "APIKEY",
        "WANDB_API_KEY",
        "AWS_SECRET_ACCESS_KEY",
        "access_key",
        "private_key",
        "secret",
        "client_secret",
        "password",
        "DB_PASSWD",
        "db.password",
        "credentials",
        "auth",
        "AUTH_HEADER",
        "oauth_refresh",
        "trainer.hub.token",
        "hftoken",
    ],
)
def test_secret_names_are_recognised(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "use_cls_token",
        "max_tokens",
        "tokenizer_name",
        "tokenizer",
        "pad_token_id",
        "token_type_ids",
        "eos_token",
        "bos_token",
        "special_tokens",
        "num_tokens",
        "max_new_tokens",
        "author",
        "author_name",
        "sort_key",
        "monitor_key",
        "lr",
        "optimizer.lr",
        "PWD",
        "CUDA_VISIBLE_DEVICES",
        "TOKENIZERS_PARALLELISM",
        "PL_GLOBAL_SEED",
        "hf_token_path",
        "keyword",
        "secretary",
    ],
)
def test_benign_look_alikes_are_kept(name: str) -> None:
    assert not is_secret_name(name)


@pytest.mark.parametrize("token", [HF, OPENAI, GHP, GH_PAT, AWS_ID, JWT])
def test_token_formats_are_masked_in_text(token: str) -> None:
    text, count = redact_text(f"loaded with {token} from cache")
    assert token not in text
    assert text == f"loaded with {REDACTED} from cache"
    assert count == 1


@pytest.mark.parametrize(
    "text",
    [
        "max_tokens=512",
        "use_cls_token: true",
        "hf_hub_download(repo)",
        "sk-learn",
        "the skeleton",
        "AKIA is a prefix",
        "tokenizer_name = 'bert'",
        "lr=0.001",
        "eyJ alone",
    ],
)
def test_benign_text_is_unchanged(text: str) -> None:
    assert redact_text(text) == (text, 0)


def test_secret_assignments_in_text_are_masked() -> None:
    text, count = redact_text('WANDB_API_KEY=plainvalue123\npassword: "hunter2"\nmax_tokens: 5\n')
    assert "plainvalue123" not in text and "hunter2" not in text
    assert "max_tokens: 5" in text
    assert count == 2


def test_code_on_the_right_of_a_secret_name_is_kept() -> None:
    line = 'token = os.environ["HF_TOKEN"]'
    assert redact_text(line) == (line, 0)


def test_bearer_header_is_masked() -> None:
    text, _ = redact_text("curl -H 'Authorization: Bearer abcdefgh12345678'")
    assert "abcdefgh12345678" not in text


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:s3cr3t@github.com/org/repo.git", "https://github.com/org/repo.git"),
        (f"https://{GHP}@github.com/org/repo.git", "https://github.com/org/repo.git"),
        ("https://oauth2:glpat-abcdefghijklmnopqrstu@gitlab.com/a/b", "https://gitlab.com/a/b"),
        ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
        ("ssh://git@host/org/repo.git", "ssh://git@host/org/repo.git"),
        ("https://github.com/org/repo.git", "https://github.com/org/repo.git"),
        ("https://h/x?token=abc&page=2", f"https://h/x?token={REDACTED}&page=2"),
    ],
)
def test_redact_url_strips_credentials(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_userinfo_in_free_text_is_masked() -> None:
    text, count = redact_text("cloning https://bob:pa55word@example.com/repo now")
    assert "pa55word" not in text and "bob" not in text
    assert count == 1


@pytest.mark.parametrize(
    ("name", "value", "expected", "hit"),
    [
        ("HF_TOKEN", "whatever", REDACTED, True),
        ("api_key", 12345, REDACTED, True),
        ("use_auth_token", True, True, False),
        ("password", None, None, False),
        ("password", "", "", False),
        ("max_tokens", 512, 512, False),
        ("note", f"uses {HF}", f"uses {REDACTED}", True),
        (None, AWS_ID, REDACTED, True),
        ("remote", "https://u:p@h/x", "https://h/x", True),
        ("lr", 0.1, 0.1, False),
    ],
)
def test_redact_value(name: str | None, value: object, expected: object, hit: bool) -> None:
    assert redact_value(name, value) == (expected, hit)


def test_redact_value_on_a_list_masks_elements() -> None:
    masked, hit = redact_value("paths", ["a", HF])
    assert masked == ["a", REDACTED] and hit


def test_redact_mapping_is_recursive_and_reports_paths_not_values() -> None:
    params = {
        "model": {"tokenizer_name": "bert", "use_cls_token": True, "max_tokens": 128},
        "hub": {"token": "plain-secret-value", "repo": "org/model"},
        "callbacks": [{"password": "pw"}, HF, "ok"],
        "lr": 1e-3,
    }
    masked, names = redact_mapping(params)
    assert masked["model"] == params["model"]
    assert masked["hub"] == {"token": REDACTED, "repo": "org/model"}
    assert masked["callbacks"] == [{"password": REDACTED}, REDACTED, "ok"]
    assert masked["lr"] == 1e-3
    assert sorted(names) == ["callbacks.0.password", "callbacks.1", "hub.token"]
    assert params["hub"]["token"] == "plain-secret-value"  # the input is never modified
    assert "plain-secret-value" not in repr(names)


def test_redact_argv_masks_flag_values_overrides_and_raw_tokens() -> None:
    argv = [
        "train.py",
        "--token",
        "abc",
        "--hf-token=xyz",
        "trainer.auth.password=pw",
        "--max_tokens",
        "5",
        "lr=0.1",
        GHP,
        "--flag",
    ]
    masked, hits = redact_argv(argv)
    assert masked == [
        "train.py",
        "--token",
        REDACTED,
        f"--hf-token={REDACTED}",
        f"trainer.auth.password={REDACTED}",
        "--max_tokens",
        "5",
        "lr=0.1",
        REDACTED,
        "--flag",
    ]
    assert hits == [2, 3, 4, 8]


def test_redact_argv_secret_flag_followed_by_flag_masks_nothing() -> None:
    assert redact_argv(["--token", "--verbose"]) == (["--token", "--verbose"], [])


def test_redaction_is_idempotent() -> None:
    once, _ = redact_text(f"{HF} https://u:p@h/x api_key=abc")
    assert redact_text(once) == (once, 0)
