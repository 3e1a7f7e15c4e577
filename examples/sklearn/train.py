"""Train a small scikit-learn grid search with reprolog_sklearn.Tracked and print the run id.

Run: python examples/sklearn/train.py   (stores under $REPROLOG_DIR or ./.reprolog)
"""

from __future__ import annotations

import numpy as np
from reprolog_sklearn import Tracked, cv_results
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split


def main() -> str:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 6))
    y = (X[:, 0] + X[:, 1] ** 2 + rng.normal(scale=0.3, size=400) > 1).astype(int)
    X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.25, random_state=0)

    search = GridSearchCV(
        GradientBoostingClassifier(random_state=0),
        {"n_estimators": [20, 40], "max_depth": [2, 3]},
        cv=StratifiedKFold(3, shuffle=True, random_state=0),
    )
    model = Tracked(
        search, name="gb-search", experiment="examples", eval_sets={"val": (X_val, y_val)}
    )
    model.fit(X_train, y_train)

    run = model.run_id_
    table = cv_results(run)
    print(
        table[["params", "mean_test_score", "rank_test_score"]]
        .sort_values("rank_test_score")
        .to_string()
    )
    print(f"best params {model.best_params_}, val score {model.score(X_val, y_val):.3f}")
    print(f"run id: {run}")
    return str(run)


if __name__ == "__main__":
    main()
