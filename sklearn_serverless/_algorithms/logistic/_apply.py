"""What a fitted linear model computes on a dataset's rows where they lie."""

from __future__ import annotations

import numpy as np


def scores(rows: dict, model: dict) -> dict:
    """``X @ coef.T + intercept`` and, with labels, the rows predicted right."""
    X = rows["X"]
    raw = X @ model["coef"].T.astype(X.dtype, copy=False) + model["intercept"]
    out = {"scores": raw}
    if "y" in rows and "classes" in model:
        classes = model["classes"]
        if raw.shape[1] == 1:
            predicted = classes[(raw[:, 0] > 0).astype(int)]
        else:
            predicted = classes[np.argmax(raw, axis=1)]
        y = rows["y"]
        out["correct"] = int(np.sum(predicted.astype(str) == y.astype(str))
                             if predicted.dtype.kind in "UO" or y.dtype.kind in "UO"
                             else np.sum(predicted == y))
    return out


def metrics(rows: dict, model: dict) -> dict:
    """What a classification scorer needs of one part's labelled rows, as
    sums: ``'confusion'`` (the part's label values, and for each (true,
    predicted) cell that holds rows, ``true * n_classes + predicted`` and
    its count) and, when ``model['log_loss']``, ``'log_loss'`` (the sum of
    the rows' log-losses, scikit-learn's: probabilities from ``expit`` or
    the softmax, clipped to ``[eps, 1 - eps]``; None when a label is not one
    of the classes). No row's value leaves the worker."""
    if "y" not in rows:
        return {}
    X, y, classes = rows["X"], rows["y"], model["classes"]
    raw = X @ model["coef"].T.astype(X.dtype, copy=False) + model["intercept"]
    k = classes.size
    predicted = (raw[:, 0] > 0).astype(np.int64) if raw.shape[1] == 1 else np.argmax(raw, 1)
    values, true = np.unique(y, return_inverse=True)
    cells, counts = np.unique(true.ravel() * k + predicted, return_counts=True)
    out = {"confusion": (values, cells, counts)}
    if model.get("log_loss"):
        out["log_loss"] = _log_loss_sum(raw, y, classes)
    return out


def _log_loss_sum(raw: np.ndarray, y: np.ndarray, classes: np.ndarray) -> float | None:
    """Sum of ``-log(p[true class])`` with scikit-learn's probabilities and
    clipping (``predict_proba``, then ``log_loss``)."""
    if (y.dtype.kind in "UO") != (classes.dtype.kind in "UO"):
        return None
    position = np.searchsorted(classes, y)
    if y.size and (position.max() >= classes.size or np.any(classes[position] != y)):
        return None
    if raw.shape[1] == 1:
        from scipy.special import expit

        positive = expit(raw[:, 0])
        proba = np.where(position == 1, positive, 1 - positive)
    else:
        exp = np.exp(raw - raw.max(axis=1)[:, None])
        proba = (exp / exp.sum(axis=1)[:, None])[np.arange(y.size), position]
    eps = np.finfo(proba.dtype).eps
    return float(-np.sum(np.log(np.clip(proba, eps, 1 - eps))))
