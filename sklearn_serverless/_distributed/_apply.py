"""A fitted model applied to a dataset where it lies: each Lithops call
reads its part of the objects and returns the model's output for its rows
(``predict``, ``transform``, ``decision_function``, ... of a dataset), in
dataset order when the driver concatenates the calls' results. No shared
state: one map, no rounds. Imports numpy only, as every worker module."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._placement import Partition, read_partition
from ._kmeans import labels_inertia


@dataclass(frozen=True)
class ApplyTask:
    """What one call computes: ``what`` of the model ``arrays`` on its rows."""

    what: str
    arrays: dict
    partition: Partition


def apply_model(task: ApplyTask, storage=None) -> dict:
    """Entry point of a Lithops call (``storage`` is injected by Lithops)."""
    rows = read_partition(task.partition, storage)
    return {"n_rows": rows["X"].shape[0], **_OUTPUTS[task.what](rows, task.arrays)}


def _kmeans_labels(rows: dict, model: dict) -> dict:
    X = rows["X"]
    labels, inertia = labels_inertia(X, np.ones(X.shape[0], dtype=X.dtype),
                                     model["centers"].astype(X.dtype, copy=False))
    return {"labels": labels, "inertia": inertia}


def _kmeans_distances(rows: dict, model: dict) -> dict:
    """sklearn's ``euclidean_distances``: ``sqrt(||x||^2 - 2 x.c + ||c||^2)``."""
    X = rows["X"].astype(np.float64, copy=False)
    centers = model["centers"].astype(np.float64, copy=False)
    squared = -2.0 * (X @ centers.T)
    squared += np.einsum("ij,ij->i", X, X)[:, None]
    squared += np.einsum("ij,ij->i", centers, centers)[None, :]
    np.maximum(squared, 0, out=squared)
    return {"distances": np.sqrt(squared).astype(rows["X"].dtype, copy=False)}


def _linear_scores(rows: dict, model: dict) -> dict:
    """``X @ coef.T + intercept`` and, with labels, the rows predicted right."""
    X = rows["X"]
    scores = X @ model["coef"].T.astype(X.dtype, copy=False) + model["intercept"]
    out = {"scores": scores}
    if "y" in rows and "classes" in model:
        classes = model["classes"]
        if scores.shape[1] == 1:
            predicted = classes[(scores[:, 0] > 0).astype(int)]
        else:
            predicted = classes[np.argmax(scores, axis=1)]
        y = rows["y"]
        out["correct"] = int(np.sum(predicted.astype(str) == y.astype(str))
                             if predicted.dtype.kind in "UO" or y.dtype.kind in "UO"
                             else np.sum(predicted == y))
    return out


_OUTPUTS = {"kmeans_labels": _kmeans_labels, "kmeans_distances": _kmeans_distances,
            "linear_scores": _linear_scores}
