"""Zero-code mode, run in subprocesses because it patches scikit-learn classes process-wide."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import reprolog

SCRIPT = textwrap.dedent(
    """
    import warnings
    warnings.simplefilter("error")
    import numpy as np
    {enable}
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import GridSearchCV, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3)); y = (X[:, 0] > 0).astype(int)
    RandomForestClassifier(n_estimators=4, random_state=0).fit(X, y)
    forest = RandomForestClassifier(n_estimators=4, random_state=0)
    make_pipeline(StandardScaler(), forest).fit(X, y)
    GridSearchCV(forest, {{"max_depth": [2, 3]}}, cv=2, n_jobs=2).fit(X, y)
    cross_val_score(forest, X, y, cv=2)
    """
)
# The public switch, twice: enabling is idempotent and the plugin loads once.
ENABLE = "import sklearn\nimport reprolog\nreprolog.autolog()\nreprolog.autolog()"


def _run(tmp_path: Path, source: str, **env: str) -> reprolog.Store:
    script = tmp_path / "train.py"
    script.write_text(source)
    store = tmp_path / "store"
    proc = subprocess.run(
        [sys.executable, str(script)],
        env={**os.environ, "REPROLOG_DIR": str(store), **env},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    return reprolog.Store(store)


def _assert_one_run_per_top_level_fit(store: reprolog.Store) -> None:
    runs = store.runs()
    # RandomForest, Pipeline, GridSearchCV; nothing for fold fits, the refit, cross_val_score.
    assert sorted(runs["name"]) == ["GridSearchCV", "Pipeline", "RandomForestClassifier"]
    assert set(runs["status"]) == {"completed"}
    search = store.run("GridSearchCV")
    assert search.tags["sklearn.source"] == "autolog"
    assert search.sections["sklearn"]["search"]["n_candidates"] == 2
    assert [a["kind"] for a in search.artifacts] == ["table", "model"]


def test_enable_records_top_level_fits_only(tmp_path):
    _assert_one_run_per_top_level_fit(_run(tmp_path, SCRIPT.format(enable=ENABLE)))


def test_reprolog_autolog_env_with_no_reprolog_code(tmp_path):
    _assert_one_run_per_top_level_fit(
        _run(tmp_path, SCRIPT.format(enable=""), REPROLOG_AUTOLOG="1")
    )


def test_disable_restores_original_methods():
    code = textwrap.dedent(
        """
        import sys
        from sklearn.linear_model import Ridge
        from reprolog_sklearn import _autolog
        original = Ridge.fit
        _autolog.enable()
        assert "sklearn.ensemble" not in sys.modules
        from sklearn.ensemble import ExtraTreesRegressor  # defined after enable(): patched too
        mark = "__reprolog_original__"
        assert Ridge.fit is not original and hasattr(ExtraTreesRegressor.fit, mark)
        _autolog.disable()
        assert Ridge.fit is original and not hasattr(ExtraTreesRegressor.fit, mark)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_patched_fits_record_nothing_while_autolog_is_off(tmp_path, monkeypatch):
    import numpy as np
    from reprolog_sklearn import _autolog
    from sklearn.linear_model import Ridge

    monkeypatch.setenv("REPROLOG_DIR", str(tmp_path / "store"))
    monkeypatch.delenv("REPROLOG_AUTOLOG", raising=False)
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 3)), rng.normal(size=20)
    _autolog.enable()  # patched, as after an earlier reprolog.autolog() in this process
    try:
        reprolog.autolog(False)
        Ridge().fit(X, y)
    finally:
        _autolog.disable()
    assert not (tmp_path / "store").exists()
