"""scikit-learn's scorers on a dataset, computed by the workers where the
metric is a sum over rows.

scikit-learn's model selection scores a fold with ``scorer(estimator,
X_test, y_test)``; a named scorer (``scoring='accuracy'``, ...) calls the
estimator's ``predict`` or ``predict_proba`` and then the metric on the
driver. On a dataset that would bring every test row's prediction to the
driver. For the metrics that are functions of per-worker sums, the workers
return the sums instead:

- the confusion-matrix metrics (accuracy, balanced accuracy, precision,
  recall, F-beta, Jaccard, Matthews' coefficient): each worker counts its
  rows per (true label, predicted class) cell; the driver calls
  scikit-learn's own metric function on one row per cell, weighted by its
  count, which gives the number of the metric on the rows themselves (the
  same counts, summed exactly) with scikit-learn's checks and options;
- the log-loss (``'neg_log_loss'``): each worker sums its rows' losses,
  with scikit-learn's probabilities and clipping; the mean is taken on the
  driver (the same sum up to its rounding, in another order).

Any other scorer, a scorer given metadata, and a model or pipeline that
cannot compute the sums keep scikit-learn's route (the predictions are
gathered to the driver). The hook is :meth:`_Scorer._score`, wrapped once
when this package is imported; it only acts on a dataset, which
scikit-learn's own route cannot score without the workers.
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics
from sklearn.metrics._scorer import _Scorer

from .._datasets import Dataset
from ._estimator import _check_dataset_labels

#: Metrics computed from confusion counts, scored with scikit-learn's
#: function on one row per cell weighted by its count (exact: integer sums).
CONFUSION_METRICS = frozenset({
    metrics.accuracy_score, metrics.balanced_accuracy_score, metrics.precision_score,
    metrics.recall_score, metrics.f1_score, metrics.fbeta_score, metrics.jaccard_score,
    metrics.matthews_corrcoef,
})


def worker_score(scorer, estimator, X, y_true, kwargs: dict) -> float | None:
    """The score of ``scorer`` (scikit-learn's ``_Scorer``) on a dataset
    from the workers' sums, or None when it takes scikit-learn's route."""
    function, method = scorer._score_func, scorer._response_method
    confusion = function in CONFUSION_METRICS and method == "predict"
    log_loss = (function is metrics.log_loss and method == "predict_proba"
                and not scorer._kwargs)
    if kwargs or not (confusion or log_loss):
        return None
    model, Xt = _final_step(estimator, X)
    if model is None or not hasattr(model, "_dataset_metrics"):
        return None
    _check_dataset_labels(X, y_true, "scoring")
    parts = model._dataset_metrics(Xt, log_loss=log_loss)
    values, cells, counts = _confusion(parts, y_true, model.classes_.size)
    if log_loss:
        if set(values.tolist()) != set(model.classes_.tolist()) or any(
                part["log_loss"] is None for part in parts):
            return None  # scikit-learn's checks of the test labels decide
        total = sum(part["log_loss"] for part in parts)
        return scorer._sign * float(total / sum(int(part["n_rows"]) for part in parts))
    y_cells = values[cells // model.classes_.size]
    predicted = model.classes_[cells % model.classes_.size]
    return scorer._sign * function(y_cells, predicted, sample_weight=counts.astype(np.float64),
                                   **scorer._kwargs)


def _final_step(estimator, X):
    """``(model, X as it reaches it)``: a pipeline's steps before its last
    turn a dataset into a dataset (nothing is read), else ``(None, None)``."""
    steps = getattr(estimator, "steps", None)
    if steps is None:
        return estimator, X
    for _, step in steps[:-1]:
        if step is None or step == "passthrough":
            continue
        if not hasattr(step, "transform"):
            return None, None
        X = step.transform(X)
        if not isinstance(X, Dataset):
            return None, None
    return _final_step(steps[-1][1], X)


def _confusion(parts: list[dict], y_true, n_classes: int) -> tuple:
    """The label values and the confusion cells with their counts, summed
    over the parts (labels typed as the driver's ``y``, or as
    ``dataset.labels()`` gives them)."""
    values = [part["confusion"][0] for part in parts]
    if y_true is not None:
        dtype = np.asarray(y_true).dtype
        values = [part.astype(dtype) for part in values]
    elif any(part.dtype.kind == "U" for part in values):
        values = [part.astype(str) for part in values]
    elif any(part.dtype.kind == "f" for part in values):
        values = [part.astype(np.float64) for part in values]
    union = np.unique(np.concatenate(values))
    counted: dict[int, int] = {}
    for part, local in zip(parts, values, strict=True):
        _, cells, counts = part["confusion"]
        where = np.searchsorted(union, local)
        for cell, count in zip(cells.tolist(), counts.tolist(), strict=True):
            key = int(where[cell // n_classes]) * n_classes + cell % n_classes
            counted[key] = counted.get(key, 0) + count
    keys = np.array(sorted(counted), dtype=np.int64)
    return union, keys, np.array([counted[key] for key in keys.tolist()], dtype=np.int64)


_ORIGINAL = _Scorer._score


def _score(self, method_caller, estimator, X, *y_true, **kwargs):
    # y_true is left out where model selection has no y: the workers have the labels.
    if isinstance(X, Dataset):
        score = worker_score(self, estimator, X, y_true[0] if y_true else None, kwargs)
        if score is not None:
            return score
    return _ORIGINAL(self, method_caller, estimator, X, *y_true, **kwargs)


def install() -> None:
    """Route scikit-learn's scorers on datasets through :func:`worker_score` (once)."""
    if _Scorer._score is not _score:
        _Scorer._score = _score
