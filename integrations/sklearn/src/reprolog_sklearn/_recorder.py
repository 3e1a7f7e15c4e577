"""Record one scikit-learn fit into a reprolog run: params, seeds, data, scores, curves, model."""

from __future__ import annotations

import logging
import pickle
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import reprolog
from reprolog_sklearn import _extract
from reprolog_sklearn._context import Role, calling_search, fit_role, recording

logger = logging.getLogger("reprolog.sklearn")
T = TypeVar("T")
SECTION = "sklearn"
PICKLE_WARNING = "loading a pickle runs arbitrary code: unpickle only models you trust"


@dataclass(frozen=True)
class Options:
    """How to record: the run to use (or how to start one) and what to capture."""

    run: Any = None
    name: str | None = None
    experiment: str | None = None
    dir: Any = None
    tags: Mapping[str, Any] | None = None
    eval_sets: Mapping[str, Any] | None = None
    log_model: bool = True
    capture: bool = True
    source: str = "Tracked"
    extra_tags: Mapping[str, str] = field(default_factory=dict)


def record_fit(
    estimator: Any,
    call: Callable[[], T],
    *,
    X: Any,
    y: Any,
    sample_weight: Any,
    method: str,
    options: Options,
    role: Role | None = None,
) -> tuple[T, str | None]:
    """Run `call()` (which fits `estimator` in place) and record it when it is a top-level fit.

    Nested fits, scikit-learn's internal fits (search candidates, CV folds) and fits made by
    its estimator checks run untouched. A capture failure is recorded in the run, never
    raised; an exception from the fit itself ends an owned run as failed and propagates.

    Args:
        role: the fit's role when the caller already computed it (saves a stack walk).

    Returns:
        (what `call()` returned, the id of the run recorded into or None).
    """
    if (role or fit_role()) is not Role.TOP:
        return call(), None
    with recording():
        session = _Session.start(estimator, options)
        if session is None:
            return call(), None
        session.before_fit(X, y, sample_weight, method)
        start = time.perf_counter()
        try:
            result = call()
        except BaseException as exc:
            session.end(exc)
            raise
        fit_time = time.perf_counter() - start
        session.after_fit(X, y, sample_weight, fit_time)
        session.end(None)
        return result, str(session.run.id)


class _Session:
    """One recorded fit, into the run the core's `reprolog.RunOwner` picks for it."""

    def __init__(self, owner: reprolog.RunOwner, estimator: Any, options: Options) -> None:
        self.owner = owner
        self.run: Any = owner.run
        self.estimator = estimator
        self.options = options
        self.tmp: Path | None = None
        self.facts: dict[str, Any] = {}

    @classmethod
    def start(cls, estimator: Any, options: Options) -> _Session | None:
        # Only what the user set counts as asking for a run of its own; a `with
        # reprolog.init():` around the fit is adopted otherwise (params under "sklearn.").
        init_kwargs: dict[str, Any] = {
            key: value
            for key, value in (
                ("name", options.name),
                ("experiment", options.experiment),
                ("dir", options.dir),
            )
            if value is not None
        }
        if not options.capture:
            init_kwargs["capture"] = False
        owner = reprolog.RunOwner(
            "sklearn", options.run, init_kwargs, defaults={"name": type(estimator).__name__}
        )
        # A bad name/experiment/dir raises ArgumentError: the user's to fix. An unwritable
        # store gives None: the fit goes on unrecorded.
        if owner.open() is None:
            return None
        return cls(owner, estimator, options)

    def guard(self, what: str, step: Callable[[], Any]) -> Any:
        """Run one capture step; a failure is recorded in the run, never raised."""
        return self.owner.guard(what, step)

    # ------------------------------------------------------------------ before the fit

    def before_fit(self, X: Any, y: Any, sample_weight: Any, method: str) -> None:
        est, opts = self.estimator, self.options
        tags = {
            "sklearn.estimator": type(est).__name__,
            "sklearn.source": opts.source,
            **opts.extra_tags,
            **{str(k): str(v) for k, v in (opts.tags or {}).items()},
        }
        self.guard("tags", lambda: self.run.set_tags(tags))
        self.guard("params", lambda: self.owner.log_params(_extract.estimator_params(est)))
        self.facts.update(
            estimator=_extract.qualified_name(est),
            fit_method=method,
            sklearn_version=_sklearn_version(),
        )
        states = self.guard("random states", lambda: _extract.random_states(est))
        if states is not None:
            missing = _extract.unseeded(states)
            self.guard(
                "seeds",
                lambda: self.run.update_section(
                    "seeds", {"sklearn": {"random_states": states, "unseeded": missing}}
                ),
            )
        data: dict[str, Any] = {}
        for name, obj in (("X", X), ("y", y), ("sample_weight", sample_weight)):
            if obj is None:
                continue
            desc = self.guard(f"data {name}", partial(_extract.describe_array, obj))
            if desc is not None:
                data[name] = desc
            self.guard(
                f"data {name}", partial(self.run.log_dataset, name, obj, context={"role": "train"})
            )
        self.facts["data"] = data
        search = calling_search()
        if search is not None:
            # We are the refit of GridSearchCV(Tracked(...)): the run stands for the search.
            self.facts["refit_by"] = self.guard("search", lambda: _extract.search_summary(search))
            self.guard(
                "search", lambda: self.run.set_tags({"sklearn.refit_by": type(search).__name__})
            )

    # ------------------------------------------------------------------ after the fit

    def after_fit(self, X: Any, y: Any, sample_weight: Any, fit_time: float) -> None:
        est = self.estimator
        self.facts["fit_time"] = fit_time
        self.guard("fit time", lambda: self.run.log({"fit_time": fit_time}, step=0))
        score = self.guard("training score", lambda: _score(est, X, y, sample_weight))
        if score is not None:
            self.facts["training_score"] = score
            self.guard("training score", lambda: self.run.log({"training_score": score}, step=0))
        self.guard("curves", self._log_fit_results)
        if self.options.eval_sets:
            self.guard("eval sets", self._log_eval_sets)
        if "cv_results_" in getattr(est, "__dict__", {}):
            self.guard("search results", self._log_search)
        if self.options.log_model:
            self.guard("model", self._log_model)
        self.guard("section", lambda: self.run.update_section(SECTION, self.facts))

    def _log_fit_results(self) -> None:
        curves, scalars = _extract.fit_results(self.estimator)
        for key, values in curves.items():
            for step, value in enumerate(values):
                self.run.log({key: value}, step=step)
        if scalars:
            self.run.log(scalars, step=0)
        self.facts["curves"] = {key: len(values) for key, values in curves.items()}

    def _log_eval_sets(self) -> None:
        scores: dict[str, float] = {}
        for name, (X_eval, y_eval) in (self.options.eval_sets or {}).items():
            for part, obj in (("X", X_eval), ("y", y_eval)):
                if obj is not None:
                    log = partial(self.run.log_dataset, f"{name}.{part}", obj)
                    self.guard(f"data {name}", partial(log, context={"role": "eval"}))
            value = self.guard(
                f"eval set {name}", partial(_score, self.estimator, X_eval, y_eval, None)
            )
            if value is not None:
                scores[f"{name}_score"] = value
        if scores:
            self.run.log(scores, step=0)
        self.facts["eval_scores"] = scores

    def _scratch(self) -> Path:
        if self.tmp is None:
            self.tmp = Path(tempfile.mkdtemp(prefix="reprolog-sklearn-"))
        return self.tmp

    def _log_search(self) -> None:
        est = self.estimator
        summary = _extract.search_summary(est)
        table = _extract.cv_results_table(est.cv_results_)
        import pyarrow.parquet as pq

        path = self._scratch() / "cv_results.parquet"
        pq.write_table(table, path)
        summary["cv_results_artifact"] = self.run.log_artifact(
            path,
            kind="table",
            copy=True,
            metadata={
                "format": "parquet",
                "what": "cv_results_",
                "rows": table.num_rows,
                "columns": table.column_names,
            },
        )
        self.facts["search"] = summary
        best = summary.get("best_score")
        if isinstance(best, (int, float)):
            self.run.log({"best_score": float(best)}, step=0)

    def _log_model(self) -> None:
        path = self._scratch() / "model.pkl"
        with open(path, "wb") as fh:
            pickle.dump(self.estimator, fh, protocol=pickle.HIGHEST_PROTOCOL)
        self.facts["model_artifact"] = self.run.log_artifact(
            path,
            kind="model",
            copy=True,
            metadata={
                "format": "pickle",
                "protocol": pickle.HIGHEST_PROTOCOL,
                "class": _extract.qualified_name(self.estimator),
                "sklearn_version": _sklearn_version(),
                "warning": PICKLE_WARNING,
            },
        )

    # ------------------------------------------------------------------ end

    def end(self, error: BaseException | None) -> None:
        if error is not None:
            self.guard("failure", lambda: self.run.update_section(SECTION, self.facts))
        try:
            owned = self.owner.owns
            self.owner.close(error)  # finishes only a run this fit started, truly
            if not owned and self.tmp is not None:
                # The user's run lives on: wait for its copies before deleting their sources.
                self.run.wait()
        except Exception as exc:
            logger.warning("reprolog: could not end the sklearn run (%s)", exc)
        finally:
            if self.tmp is not None:
                shutil.rmtree(self.tmp, ignore_errors=True)


def _score(estimator: Any, X: Any, y: Any, sample_weight: Any) -> float | None:
    """The estimator's own `score` on (X, y), or None when it has none."""
    if not hasattr(estimator, "score"):
        return None
    args = (X,) if y is None else (X, y)
    if sample_weight is not None:
        try:
            return float(estimator.score(*args, sample_weight=sample_weight))
        except Exception:  # no sample_weight in score() (or not routed): unweighted still helps
            pass
    return float(estimator.score(*args))


def _sklearn_version() -> str:
    import sklearn

    return str(sklearn.__version__)
