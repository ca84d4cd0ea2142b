"""Logistic regression on a dataset the driver never held: the classes, the
class counts (``class_weight='balanced'``) and the weighted sample count of
the objective's normalisation come from the workers in the first rounds;
then each worker encodes its labels and weights its rows."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..._common._messages import liblinear_multiclass, one_class, warm_start_shape
from ..._worker import _prologue
from ._params import LogisticParams
from ._worker import Worker


def dataset_prologue(rounds, params: LogisticParams) -> tuple[LogisticParams, dict]:
    """The coordinator's first rounds: what the solver needs of the data."""
    d = params.n_features
    counts, _ = _prologue.count_rows(rounds, d)
    classes = _prologue.gather_classes(rounds)
    if classes.size < 2:
        raise one_class(_plain(classes[0]))
    if params.liblinear and classes.size >= 3:
        raise liblinear_multiclass()
    per_class = rounds.allreduce("class_counts", classes)
    weights = class_weights(params.class_weight, classes, per_class)
    sw_sum = float(per_class @ weights)
    n_outputs = 1 if classes.size == 2 else classes.size
    width = d + int(params.fit_intercept)
    coef = params.coef
    if coef is None:
        coef = np.zeros(width * n_outputs)
    elif coef.size != width * n_outputs:
        # The previous fit's (outputs, features [+ intercept]) coefficients.
        raise warm_start_shape((coef.size // width, width), (n_outputs, width), n_outputs)
    _prologue.prepare(rounds, classes, weights)
    params = replace(params, coef=coef, n_outputs=n_outputs, sw_sum=sw_sum)
    return params, {"classes": classes, "n_samples": int(counts.sum())}


def class_weights(class_weight, classes: np.ndarray, per_class: np.ndarray) -> np.ndarray:
    """scikit-learn's ``compute_class_weight`` from the class counts."""
    if class_weight is None:
        return np.ones(classes.size)
    if class_weight == "balanced":
        return per_class.sum() / (classes.size * per_class)
    key = str if classes.dtype.kind == "U" else float
    given = {key(label): float(weight) for label, weight in class_weight.items()}
    unknown = set(given) - {key(c) for c in classes}
    if unknown:
        raise ValueError(f"The classes, {sorted(unknown)}, are not in class_weight")
    return np.array([given.get(key(c), 1.0) for c in classes])


class DatasetWorker(_prologue.DatasetWorker):
    """A worker's raw rows, then the logistic worker on them."""

    commands = {"class_counts": "_class_counts"}

    def _encoded(self, classes: np.ndarray) -> np.ndarray:
        """This worker's labels as class indices (kept for the next command)."""
        if "encoded" not in self.state:
            y = self.y.astype(str) if classes.dtype.kind == "U" else self.y
            self.state["encoded"] = np.searchsorted(classes, y)
        return self.state["encoded"]

    def _class_counts(self, arrays) -> np.ndarray:
        classes = arrays[0]
        # Weighted by the dataset's weight column, as compute_class_weight weighs them.
        return np.bincount(self._encoded(classes), weights=self.sample_weight,
                           minlength=classes.size).astype(np.float64)

    def prepare(self, arrays: list) -> Worker:
        """The logistic worker on these rows: targets and sample weights."""
        classes, weights = arrays
        encoded = self._encoded(classes)
        target = (encoded == 1) if classes.size == 2 else encoded
        sample_weight = weights[encoded]
        if self.sample_weight is not None:
            sample_weight = sample_weight * self.sample_weight
        data = {"X": self.X, "y": target.astype(np.float64), "sample_weight": sample_weight}
        self.y = None
        return Worker(data, self.params, self.context)


def _plain(value):
    return value.item() if hasattr(value, "item") else value
