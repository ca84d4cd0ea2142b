"""The scores of ServerlessLogisticRegressionCV's fold models computed on the
driver: scorers that need every prediction at once (the workers compute the
decomposable ones, see ``_algorithms/logistic_cv``)."""

from __future__ import annotations

import inspect

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import get_scorer, make_scorer
from sklearn.utils.validation import _check_method_params


def driver_scores(estimator, X, y, folds, paths: np.ndarray, scoring, score_params: dict
                  ) -> np.ndarray:
    """scikit-learn's ``_log_reg_scoring_path`` scoring of every fold model
    on the driver (scorers the workers do not compute)."""
    classes = estimator.classes_
    is_binary = classes.size <= 2
    scorer = get_scorer(scoring)
    if hasattr(scorer, "_score_func"):
        signature = inspect.signature(scorer._score_func).parameters
        if "labels" in signature:
            pos_label = {"pos_label": classes[-1]} if (
                is_binary and "pos_label" in signature) else {}
            scorer = make_scorer(
                scorer._score_func, greater_is_better=scorer._sign == 1,
                response_method=scorer._response_method, labels=classes, **pos_label,
                **getattr(scorer, "_kwargs", {}))
    model = LogisticRegression(solver=estimator.solver)
    model.classes_ = classes
    n_folds, n_l1, n_cs = paths.shape[:3]
    scores = np.empty((n_folds, n_l1, n_cs))
    for k, (_, test) in enumerate(folds):
        params = _check_method_params(X=X, params=score_params, indices=test)
        for li in range(n_l1):
            for ci in range(n_cs):
                w = paths[k, li, ci]
                model.C = estimator.Cs_[ci]
                if estimator.fit_intercept:
                    model.coef_, model.intercept_ = w[:, :-1], w[:, -1]
                else:
                    model.coef_, model.intercept_ = w, 0.0
                scores[k, li, ci] = scorer(model, X[test], y[test], **params)
    return scores
