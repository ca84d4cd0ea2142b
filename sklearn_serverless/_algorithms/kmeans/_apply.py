"""What a fitted k-means computes on a dataset's rows where they lie."""

from __future__ import annotations

import numpy as np

from ._kernels import labels_inertia, squared_distances


def labels(rows: dict, model: dict) -> dict:
    """Nearest centre of every row, and the rows' inertia."""
    X = rows["X"]
    found, inertia = labels_inertia(X, np.ones(X.shape[0], dtype=X.dtype),
                                    model["centers"].astype(X.dtype, copy=False))
    return {"labels": found, "inertia": inertia}


def distances(rows: dict, model: dict) -> dict:
    """Euclidean distance of every row to every centre (``transform``)."""
    X = rows["X"].astype(np.float64, copy=False)
    squared = squared_distances(X, model["centers"].astype(np.float64, copy=False))
    return {"distances": np.sqrt(squared).astype(rows["X"].dtype, copy=False)}
