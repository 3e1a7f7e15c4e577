"""What a rebuild needs: install sources, installer, indexes, launchers, numpy entropy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import reprolog
from reprolog._capture.command import ENV_LAUNCH, launcher_kind
from reprolog._capture.environment import capture_environment
from reprolog._capture.installs import index_urls, source_of
from reprolog._capture.report import CaptureReport

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"


def test_editable_install_of_the_core_is_recorded_with_its_path() -> None:
    env = capture_environment(CaptureReport())
    source = env["package_sources"]["reprolog"]
    assert source["kind"] == "editable" and source["url"] == ROOT.as_uri()
    assert env["installer"] in env["installers"] and env["installers"][env["installer"]] > 10
    assert "numpy" not in env["package_sources"]  # from an index: no direct_url.json
    assert env["python_base_executable"] and os.path.isfile(env["python_base_executable"])
    json.dumps(env)


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (
            {
                "url": f"https://user:{TOKEN}@github.com/o/r.git",
                "vcs_info": {"vcs": "git", "commit_id": "a" * 40, "requested_revision": "v1"},
                "subdirectory": "pkg",
            },
            {
                "kind": "vcs", "url": "https://github.com/o/r.git", "vcs": "git",
                "commit": "a" * 40, "requested_revision": "v1", "subdirectory": "pkg",
            },
        ),
        (
            {"url": "https://h/x-1.0.tar.gz", "archive_info": {"hashes": {"sha256": "ab"}}},
            {"kind": "archive", "url": "https://h/x-1.0.tar.gz", "archive_hash": "sha256=ab"},
        ),
        (
            {"url": "https://h/x.whl", "archive_info": {"hash": "sha256=cd"}},
            {"kind": "archive", "url": "https://h/x.whl", "archive_hash": "sha256=cd"},
        ),
        ({"url": "file:///src/p", "dir_info": {}}, {"kind": "directory", "url": "file:///src/p"}),
        (
            {"url": "file:///src/p", "dir_info": {"editable": True}},
            {"kind": "editable", "url": "file:///src/p"},
        ),
    ],
)  # fmt: skip
def test_direct_url_documents(doc: dict[str, object], expected: dict[str, object]) -> None:
    assert source_of(doc) == expected


def test_index_urls_from_env_and_pip_conf_are_redacted(tmp_path: Path) -> None:
    conf = tmp_path / "pip.conf"
    conf.write_text(
        f"[global]\nindex-url = https://me:{TOKEN}@pypi.corp/simple\nfind-links = /opt/w\n"
    )
    got = index_urls(
        {"PIP_CONFIG_FILE": str(conf), "UV_EXTRA_INDEX_URL": f"https://x:{TOKEN}@extra/simple"}
    )
    assert TOKEN not in json.dumps(got)
    assert got["extra_index_urls"][-1] == "https://extra/simple"
    assert "/opt/w" in got["find_links"] and "env UV_EXTRA_INDEX_URL" in got["from"]
    assert got["index_url"] == "https://pypi.corp/simple"


def test_pip_config_file_variable_sets_the_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "pip.conf"
    conf.write_text(f"[install]\nindex-url = https://me:{TOKEN}@pypi.corp/simple\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    monkeypatch.delenv("PIP_INDEX_URL", raising=False)
    monkeypatch.delenv("UV_INDEX_URL", raising=False)
    monkeypatch.delenv("UV_DEFAULT_INDEX", raising=False)
    got = index_urls()
    assert got["index_url"] == "https://pypi.corp/simple"
    assert f"pip.conf {conf}" in got["from"]


@pytest.mark.parametrize(
    ("argv", "kind"),
    [
        (["torchrun", "--nproc-per-node", "2", "train.py"], "torchrun"),
        (["/v/bin/python", "-m", "torch.distributed.run", "train.py"], "torchrun"),
        (["/v/bin/python3", "/v/bin/torchrun", "train.py"], "torchrun"),
        (["accelerate", "launch", "train.py"], "accelerate"),
        (["python", "train.py", "--lr", "1"], "python"),
        (["bash", "run.sh"], "command"),
    ],
)
def test_launcher_kinds(argv: list[str], kind: str) -> None:
    assert launcher_kind(argv) == kind


def _record(tmp_path: Path, code: str, env: dict[str, str]) -> reprolog.RunRecord:
    script = tmp_path / "t.py"
    script.write_text(code)
    store = tmp_path / "store"
    full = {**os.environ, "REPROLOG_DIR": str(store), **env}
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=full, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    st = reprolog.Store(store)
    return st.run(st.run_ids()[-1])


def test_launch_variable_is_recorded_as_the_launcher(tmp_path: Path) -> None:
    launch = {"argv": ["torchrun", "--nproc-per-node", "2", "t.py", "--token", TOKEN], "cwd": "/w"}
    rec = _record(
        tmp_path, "import reprolog\nreprolog.init().finish()\n", {ENV_LAUNCH: json.dumps(launch)}
    )
    got = rec.section("command")["launcher"]
    assert got["kind"] == "torchrun" and got["cwd"] == "/w" and got["from"] == ENV_LAUNCH
    assert got["argv"][:4] == launch["argv"][:4] and TOKEN not in json.dumps(rec.raw)


def test_a_plain_script_has_no_launcher(tmp_path: Path) -> None:
    rec = _record(tmp_path, "import reprolog\nreprolog.init().finish()\n", {})
    assert rec.section("command")["launcher"] is None


ENTROPY = """\
import json, os, sys
import reprolog
import numpy as np
g = np.random.default_rng()
run = reprolog.init()
h = np.random.default_rng()
run.log({"x": float(g.random()), "y": float(h.random())}, step=0)
run.finish()
"""


def _xy(rec: reprolog.RunRecord) -> list[float]:
    return [float(v) for v in rec.metrics(keys=["x", "y"]).sort_values("key")["value"]]


def test_numpy_fresh_entropy_is_recorded_and_replayed(tmp_path: Path) -> None:
    first = _record(tmp_path, ENTROPY, {})
    seeds = first.section("seeds")
    assert seeds["numpy_entropy_hooked"] and seeds["numpy_entropy_count"] >= 2
    assert all(int(h, 16) > 0 for h in seeds["numpy_entropy"])
    other = _record(tmp_path, ENTROPY, {})
    assert len(_xy(first)) == 2 and _xy(other) != _xy(first)
    replay = _record(
        tmp_path,
        ENTROPY,
        {"REPROLOG_REPRODUCES": first.id, "REPROLOG_REPRODUCES_FROM": str(first.dir)},
    )
    assert _xy(replay) == _xy(first)
    got = replay.section("seeds")
    assert got["numpy_entropy"] == seeds["numpy_entropy"]
    assert got["numpy_entropy_replayed"] == seeds["numpy_entropy_count"]
    assert got["numpy_entropy_unreplayed"] == 0


def test_numpy_own_import_time_draw_is_not_recorded(tmp_path: Path) -> None:
    # numpy seeds its global RandomState from OS entropy while it imports; two seeded runs
    # must not differ because of it.
    code = "import reprolog\nimport numpy as np\nnp.random.seed(0)\nreprolog.init().finish()\n"
    a, b = _record(tmp_path, code, {}), _record(tmp_path, code, {})
    assert a.section("seeds")["numpy_entropy"] == [] == b.section("seeds")["numpy_entropy"]
    keys = [d.key for d in reprolog.diff(a, b).differences]
    assert not [k for k in keys if k.startswith("seeds.numpy")], keys
