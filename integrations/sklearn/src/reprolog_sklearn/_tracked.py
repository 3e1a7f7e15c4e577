"""`Tracked`: a scikit-learn meta-estimator that records each top-level fit as a reprolog run."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone
from sklearn.utils import get_tags
from sklearn.utils.metadata_routing import (
    MetadataRouter,
    MethodMapping,
    _routing_enabled,
    process_routing,
)
from sklearn.utils.metaestimators import available_if as _available_if
from sklearn.utils.validation import check_is_fitted

from reprolog import ArgumentError
from reprolog_sklearn._context import Role, fit_role
from reprolog_sklearn._recorder import Options, record_fit

F = TypeVar("F", bound=Callable[..., Any])
# scikit-learn is untyped: give its decorator the type it has.
available_if = cast("Callable[[Callable[[Any], bool]], Callable[[F], F]]", _available_if)
# Passed by reference by clone(): a live run cannot be deep-copied, and evaluation data
# would be copied once per search candidate for nothing.
_SHARED_PARAMS = ("run", "eval_sets")
_ROUTED_METHODS = (
    "fit",
    "fit_transform",
    "fit_predict",
    "predict",
    "predict_proba",
    "predict_log_proba",
    "decision_function",
    "transform",
    "inverse_transform",
    "score",
)


def _inner_has(attr: str) -> Callable[[Any], bool]:
    """`available_if` check: the fitted inner estimator (else the unfitted one) has `attr`."""

    def check(self: Tracked) -> bool:
        inner = self.__dict__.get("estimator_", self.estimator)
        getattr(inner, attr)  # raises the inner estimator's own AttributeError
        return True

    return check


class Tracked(MetaEstimatorMixin, BaseEstimator):  # type: ignore[misc]  # sklearn is untyped: Any bases
    """Wrap any estimator so that fitting it records a reprolog run.

    The wrapper behaves as the estimator it wraps: same tags (so `is_classifier` and
    stratified CV behave), same methods and fitted attributes, metadata routing passed
    through. `fit` fits a clone, `estimator_`, like scikit-learn's own meta-estimators.

    Each top-level fit records: `get_params(deep=True)`, every random_state (nested
    estimators and CV splitters included), fingerprints, shapes, dtypes and feature names
    of X, y and sample_weight, the fit time and training score, per-iteration curves
    (`loss_curve_`, `train_score_`, ...) as step metrics, scores on `eval_sets`, the
    pickled model, and for a search its whole `cv_results_` as a Parquet table. Fits
    made inside a search or cross-validation (clones fitted by scikit-learn's Parallel)
    pass through unrecorded: wrap the search to record it as one run.

    Fitted attributes: `estimator_` (the fitted clone) and `run_id_` (the run the last fit
    was recorded into; None when it passed through unrecorded).

    Args:
        estimator: the estimator to fit and record.
        run: a live `reprolog.Run` to record into (left running). None: the run you have
            open (`reprolog.active_run()`) is used the same way, with the params under
            `sklearn.`, unless `name`, `experiment`, `dir` or `capture=False` ask for a run
            of its own; else each top-level fit starts its own run and ends it with the true
            status (the policy of `reprolog.RunOwner`).
        name: name of the runs this wrapper starts; None: the estimator's class name.
        experiment: experiment of the runs it starts.
        dir: store folder of the runs it starts; None: `$REPROLOG_DIR` or `./.reprolog`.
        tags: extra tags for the run.
        eval_sets: {name: (X, y)} scored after each fit as `<name>_score`.
        log_model: store the fitted estimator as a pickled "model" artifact.
        capture: capture environment, code and command at run start.

    Example:
        >>> from sklearn.ensemble import RandomForestClassifier  # doctest: +SKIP
        >>> model = Tracked(RandomForestClassifier(random_state=0)).fit(X, y)
        >>> model.predict(X[:3])
    """

    def __init__(
        self,
        estimator: Any,
        *,
        run: Any = None,
        name: str | None = None,
        experiment: str | None = None,
        dir: Any = None,
        tags: Mapping[str, Any] | None = None,
        eval_sets: Mapping[str, Any] | None = None,
        log_model: bool = True,
        capture: bool = True,
    ) -> None:
        self.estimator = estimator
        self.run = run
        self.name = name
        self.experiment = experiment
        self.dir = dir
        self.tags = tags
        self.eval_sets = eval_sets
        self.log_model = log_model
        self.capture = capture

    # ------------------------------------------------------------------ fitting

    def fit(self, X: Any, y: Any = None, **fit_params: Any) -> Tracked:
        """Fit a clone of `estimator` on (X, y) and record the fit.

        Args:
            X: training data.
            y: targets, None for unsupervised estimators.
            **fit_params: passed to the inner `fit` (through metadata routing when enabled).

        Returns:
            self, fitted.

        Raises:
            ArgumentError: `eval_sets` is not a mapping of name to (X, y).
        """
        self._fit("fit", X, y, fit_params)
        return self

    @available_if(_inner_has("fit_transform"))
    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> Any:
        """Fit with the inner `fit_transform`, record the fit, return the transformed X."""
        return self._fit("fit_transform", X, y, fit_params)

    @available_if(_inner_has("fit_predict"))
    def fit_predict(self, X: Any, y: Any = None, **fit_params: Any) -> Any:
        """Fit with the inner `fit_predict`, record the fit, return the predictions."""
        return self._fit("fit_predict", X, y, fit_params)

    def _fit(self, method: str, X: Any, y: Any, params: dict[str, Any]) -> Any:
        self._check_eval_sets()
        role = fit_role()
        # A job of scikit-learn's Parallel fits a wrapper that scikit-learn cloned for this
        # job alone: cloning the inner estimator once more would only cost time (~5% of a
        # small fit). Everywhere else `estimator` stays untouched, as sklearn requires.
        estimator = self.estimator if role is Role.INTERNAL else clone(self.estimator)
        inner_params = self._route(method, params)
        options = Options(
            run=self.run,
            name=self.name,
            experiment=self.experiment,
            dir=self.dir,
            tags=self.tags,
            eval_sets=self.eval_sets,
            log_model=self.log_model,
            capture=self.capture,
        )
        result, run_id = record_fit(
            estimator,
            lambda: getattr(estimator, method)(X, y, **inner_params),
            X=X,
            y=y,
            sample_weight=params.get("sample_weight"),
            method=method,
            options=options,
            role=role,
        )
        self.estimator_ = estimator
        self.run_id_ = run_id
        return result

    def _check_eval_sets(self) -> None:
        sets = self.eval_sets
        if sets is None:
            return
        if not isinstance(sets, Mapping) or not all(
            isinstance(k, str) and isinstance(v, (tuple, list)) and len(v) == 2
            for k, v in sets.items()
        ):
            raise ArgumentError(
                "eval_sets must be a mapping of name to (X, y), e.g. {'val': (X_val, y_val)}; "
                f"got {type(sets).__name__}: {sets!r:.200}"
            )

    # ------------------------------------------------------------------ delegation

    def _route(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if not _routing_enabled():
            return params
        routed = process_routing(self, method, **params)
        return dict(getattr(routed.estimator, method))

    def _call(self, method: str, *args: Any, params: dict[str, Any]) -> Any:
        check_is_fitted(self)
        routed = self._route(method, params) if method in _ROUTED_METHODS else params
        return getattr(self.estimator_, method)(*args, **routed)

    @available_if(_inner_has("predict"))
    def predict(self, X: Any, **params: Any) -> Any:
        """Predict with the fitted inner estimator."""
        return self._call("predict", X, params=params)

    @available_if(_inner_has("predict_proba"))
    def predict_proba(self, X: Any, **params: Any) -> Any:
        """Class probabilities from the fitted inner estimator."""
        return self._call("predict_proba", X, params=params)

    @available_if(_inner_has("predict_log_proba"))
    def predict_log_proba(self, X: Any, **params: Any) -> Any:
        """Log class probabilities from the fitted inner estimator."""
        return self._call("predict_log_proba", X, params=params)

    @available_if(_inner_has("decision_function"))
    def decision_function(self, X: Any, **params: Any) -> Any:
        """Decision function of the fitted inner estimator."""
        return self._call("decision_function", X, params=params)

    @available_if(_inner_has("score_samples"))
    def score_samples(self, X: Any) -> Any:
        """Per-sample scores of the fitted inner estimator."""
        return self._call("score_samples", X, params={})

    @available_if(_inner_has("transform"))
    def transform(self, X: Any, **params: Any) -> Any:
        """Transform X with the fitted inner estimator."""
        return self._call("transform", X, params=params)

    @available_if(_inner_has("inverse_transform"))
    def inverse_transform(self, X: Any, **params: Any) -> Any:
        """Inverse-transform X with the fitted inner estimator."""
        return self._call("inverse_transform", X, params=params)

    @available_if(_inner_has("score"))
    def score(self, X: Any, y: Any = None, **params: Any) -> Any:
        """Score of the fitted inner estimator on (X, y)."""
        return self._call("score", X, y, params=params)

    @available_if(_inner_has("set_output"))
    def set_output(self, *, transform: str | None = None) -> Tracked:
        """Set the output container of the inner transformer (and of its fitted clone)."""
        self.estimator.set_output(transform=transform)
        if "estimator_" in self.__dict__:
            self.estimator_.set_output(transform=transform)
        return self

    def __getattr__(self, name: str) -> Any:
        # Fitted attributes (classes_, coef_, feature_names_in_, cv_results_, ...) come
        # from the fitted inner estimator, exactly when it has them.
        if name.endswith("_") and not name.startswith("_"):
            fitted = self.__dict__.get("estimator_")
            if fitted is not None:
                return getattr(fitted, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __sklearn_is_fitted__(self) -> bool:
        return "estimator_" in self.__dict__

    def __sklearn_tags__(self) -> Any:
        # The wrapper is its estimator, as far as scikit-learn's machinery is concerned.
        # get_tags builds a fresh Tags object per call, so no copy is needed; scorers and
        # CV splitters ask for tags several times per fit inside a search.
        return get_tags(self.estimator)

    def __sklearn_clone__(self) -> Tracked:
        params = self.get_params(deep=False)
        for key, value in params.items():
            if key not in _SHARED_PARAMS:
                params[key] = clone(value, safe=False)
        new = type(self)(**params)
        if hasattr(self, "_sklearn_output_config"):
            new._sklearn_output_config = copy.deepcopy(self._sklearn_output_config)
        return new

    def __getstate__(self) -> dict[str, Any]:
        # A live run holds locks and threads; a pickled (or worker-side) copy records nothing
        # into it, so it travels as None.
        state: dict[str, Any] = dict(super().__getstate__())
        state["run"] = None
        return state

    def get_metadata_routing(self) -> MetadataRouter:
        """Route each method's metadata to the same method of the inner estimator.

        Returns:
            The `MetadataRouter` describing that one-to-one mapping.
        """
        mapping = MethodMapping()
        for method in _ROUTED_METHODS:
            mapping.add(caller=method, callee=method)
        return MetadataRouter(owner=self).add(estimator=self.estimator, method_mapping=mapping)
