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
