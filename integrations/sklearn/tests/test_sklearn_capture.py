"""What a Tracked fit leaves in the store, read back through reprolog.Store."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from reprolog_sklearn import Tracked, cv_results
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import reprolog


def _only_run(store_dir: Path) -> reprolog.RunRecord:
    store = reprolog.Store(store_dir)
    ids = list(store.runs()["id"])
    assert len(ids) == 1, ids
    return store.run(ids[0])


def _model(store_dir: Path, record: reprolog.RunRecord) -> object:
    (art,) = [a for a in record.artifacts if a["kind"] == "model"]
    assert art["status"] == "ok" and len(art["sha256"]) == 64
    with open(store_dir / art["blob"], "rb") as fh:
        return pickle.load(fh)  # our own model, written by this test: safe to unpickle


def test_linear_model(xy, store_dir):
    X, y = xy
    weights = np.ones(len(y))
    tracked = Tracked(LogisticRegression(C=0.5), name="lr", experiment="exp", tags={"team": "ml"})
    tracked.fit(X, y, sample_weight=weights)
    record = _only_run(store_dir)
    assert tracked.run_id_ == record.id
    assert (record.name, record.experiment, record.status) == ("lr", "exp", "completed")
    assert record.params["C"] == 0.5 and record.params["solver"] == "lbfgs"
    assert record.tags["team"] == "ml" and record.tags["sklearn.estimator"] == "LogisticRegression"
    data = record.sections["data"]
    assert data["X"]["fingerprint"] == "sha256:" + reprolog.fingerprint(X).removeprefix("sha256:")
    assert set(data) == {"X", "y", "sample_weight"}
    section = record.sections["sklearn"]
    assert section["data"]["X"]["shape"] == [80, 4]
    assert section["training_score"] == pytest.approx(tracked.score(X, y))
    assert record.sections["seeds"]["sklearn"]["unseeded"] == ["random_state"]
    metrics = record.metrics()
    assert set(metrics["key"]) >= {"fit_time", "training_score", "n_iter"}
    model = _model(store_dir, record)
    np.testing.assert_allclose(model.predict_proba(X), tracked.predict_proba(X))


def test_tree_ensemble_seeds_and_eval_sets(xy, store_dir):
    X, y = xy
    Tracked(
        RandomForestClassifier(n_estimators=15, random_state=3, oob_score=True),
        eval_sets={"val": (X[:20], y[:20])},
    ).fit(X, y)
    record = _only_run(store_dir)
    assert record.sections["seeds"]["sklearn"] == {
        "random_states": {"random_state": 3},
        "unseeded": [],
    }
    keys = set(record.metrics()["key"])
    assert {"val_score", "oob_score"} <= keys
    assert "val.X" in record.sections["data"]


@pytest.mark.filterwarnings("ignore:Stochastic Optimizer:sklearn.exceptions.ConvergenceWarning")
def test_mlp_loss_curve_as_step_metrics(xy, store_dir):
    X, y = xy
    tracked = Tracked(MLPClassifier(hidden_layer_sizes=(4,), max_iter=15, random_state=0)).fit(X, y)
    metrics = _only_run(store_dir).metrics()
    curve = metrics[metrics["key"] == "loss_curve"].sort_values("step")
    assert list(curve["step"]) == list(range(tracked.n_iter_))
    np.testing.assert_allclose(curve["value"], tracked.loss_curve_)


def test_gradient_boosting_train_score_curve(xy, store_dir):
    X, y = xy
    Tracked(GradientBoostingRegressor(n_estimators=7, subsample=0.8, random_state=0)).fit(
        X, y.astype(float)
    )
    metrics = _only_run(store_dir).metrics()
    assert (metrics["key"] == "train_score").sum() == 7
    assert (metrics["key"] == "oob_improvement").sum() == 7


def test_pipeline_with_column_transformer_on_dataframe(store_dir):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "age": rng.normal(40, 9, 60),
            "city": rng.choice(["a", "b", "c"], 60),
            "income": rng.normal(5, 1, 60),
        }
    )
    target = (frame["age"] > 40).astype(int)
    model = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [
                        ("num", StandardScaler(), ["age", "income"]),
                        ("cat", OneHotEncoder(), ["city"]),
                    ]
                ),
            ),
            ("clf", LogisticRegression(random_state=0)),
        ]
    )
    Tracked(model).fit(frame, target)
    record = _only_run(store_dir)
    x_desc = record.sections["sklearn"]["data"]["X"]
    assert x_desc["feature_names"] == ["age", "city", "income"]
    assert x_desc["dtypes"]["city"] in {"object", "str", "string"}
    assert record.params["clf__random_state"] == 0
    assert record.params["prep__num"] == "StandardScaler"
    assert record.sections["data"]["X"]["fingerprint"]


def test_grid_search_cv_results_table(xy, store_dir):
    X, y = xy
    search = GridSearchCV(
        LogisticRegression(),
        {"C": [0.01, 0.1, 1.0], "fit_intercept": [True, False]},
        cv=KFold(3, shuffle=True, random_state=7),
    )
    tracked = Tracked(search).fit(X, y)
    record = _only_run(store_dir)
    section = record.sections["sklearn"]["search"]
    assert section["best_params"] == tracked.best_params_ and section["n_candidates"] == 6
    assert record.sections["seeds"]["sklearn"]["random_states"]["cv.random_state"] == 7
    table = cv_results(record.id, dir=store_dir)
    assert len(table) == 6 and table["param_C"].dtype == float
    assert table.loc[table["rank_test_score"].idxmin(), "mean_test_score"] == pytest.approx(
        tracked.best_score_
    )
    assert json.loads(table["params"][0]) == tracked.cv_results_["params"][0]
    metrics = record.metrics()
    assert metrics.loc[metrics["key"] == "best_score", "value"].item() == pytest.approx(
        tracked.best_score_
    )
    blob = reprolog.Store(store_dir).sql(
        "SELECT blob FROM artifacts WHERE name = 'cv_results.parquet'"
    )["blob"][0]
    assert (store_dir / blob).exists()


def test_given_run_is_used_and_left_running(xy, store_dir):
    X, y = xy
    run = reprolog.init(dir=store_dir, capture=False)
    Tracked(LogisticRegression(), run=run, log_model=False).fit(X, y)
    assert run.status == "running"
    run.finish()
    record = _only_run(store_dir)
    assert record.params["C"] == 1.0 and not record.artifacts


def test_the_active_run_is_adopted_with_params_under_sklearn(xy, store_dir):
    X, y = xy
    with reprolog.init("exp", dir=store_dir, params={"C": "mine"}) as run:
        Tracked(LogisticRegression(C=2.0), log_model=False).fit(X, y)
        assert run.status == "running"
    record = _only_run(store_dir)
    assert (record.name, record.status) == ("exp", "completed")
    assert record.params["C"] == "mine"  # the user's own param is never overwritten
    assert record.params["sklearn.C"] == 2.0
    assert len(record.metrics(keys=["training_score"])) == 1


def test_a_name_asks_for_a_run_of_its_own(xy, store_dir):
    X, y = xy
    with reprolog.init("outer", dir=store_dir, capture=False):
        Tracked(LogisticRegression(), name="inner", dir=store_dir, log_model=False).fit(X, y)
    runs = reprolog.Store(store_dir).runs()
    assert sorted(runs["name"]) == ["inner", "outer"]
    assert set(runs["status"]) == {"completed"}


def test_failed_fit_ends_run_failed_and_raises(store_dir):
    with pytest.raises(ValueError, match="Input X contains NaN"):
        Tracked(LogisticRegression()).fit(np.full((4, 2), np.nan), [0, 1, 0, 1])
    record = _only_run(store_dir)
    assert record.status == "failed" and "NaN" in record.error["message"]


def test_capture_failure_is_recorded_not_raised(xy, store_dir):
    X, y = xy
    # Evaluation data of the wrong width: scoring it fails, the fit still succeeds.
    Tracked(LogisticRegression(), eval_sets={"bad": (X[:, :2], y)}).fit(X, y)
    record = _only_run(store_dir)
    assert record.status == "completed"
    assert any(e["what"] == "sklearn: eval set bad" for e in record.capture_report["errors"])


def test_malformed_eval_sets_are_rejected(xy, store_dir):
    X, y = xy
    with pytest.raises(
        reprolog.ArgumentError, match=r"eval_sets must be a mapping of name to \(X, y\)"
    ):
        Tracked(LogisticRegression(), eval_sets=[(X, y)]).fit(X, y)


def test_refit_of_wrapped_estimator_records_the_search(xy, store_dir):
    X, y = xy
    GridSearchCV(Tracked(LogisticRegression()), {"estimator__C": [0.1, 1.0]}, cv=2).fit(X, y)
    record = _only_run(store_dir)
    assert record.tags["sklearn.refit_by"] == "GridSearchCV"
    assert record.sections["sklearn"]["refit_by"]["n_splits"] == 2
