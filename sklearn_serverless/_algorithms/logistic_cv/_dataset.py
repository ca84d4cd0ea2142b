"""Cross-validated logistic regression on a dataset the driver never held:
the first rounds find the row counts, the classes (and the order in which
they first appear) and each worker's class counts; from those alone the
coordinator computes scikit-learn's folds (KFold or StratifiedKFold without
shuffling), and each worker assigns its own rows to them."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..._common._messages import liblinear_multiclass, one_class
from ..._worker import _prologue
from ..logistic._dataset import class_weights
from ._params import LogisticCVParams
from ._worker import Worker


def kfold_bounds(n: int, n_splits: int) -> np.ndarray:
    """``KFold(n_splits)``'s test folds as global row boundaries (K + 1,)."""
    sizes = np.full(n_splits, n // n_splits, dtype=np.int64)
    sizes[: n % n_splits] += 1
    return np.r_[0, np.cumsum(sizes)]


def stratified_bounds(per_class: np.ndarray, first: np.ndarray, n_splits: int) -> np.ndarray:
    """``StratifiedKFold(n_splits)``'s allocation (no shuffling): for each
    class (sorted order), the cumulative number of its rows, in row order,
    that go to folds 0..K-1 (shape (n_classes, K)).

    scikit-learn sorts the labels encoded by first appearance and gives fold
    ``i`` the labels at positions ``i, i + K, ...``: class ``c`` occupies
    positions ``[a_c, a_c + n_c)`` of that order."""
    order = np.argsort(first, kind="stable")  # classes by first appearance
    starts = np.zeros(per_class.size, dtype=np.int64)
    starts[order] = np.r_[0, np.cumsum(per_class[order])[:-1]]
    ends = starts + per_class
    folds = np.arange(n_splits)
    # positions p in [a, b) with p % K == i: ceil((b - i) / K) - ceil((a - i) / K)
    allocation = (-((folds[None, :] - ends[:, None]) // n_splits)
                  + ((folds[None, :] - starts[:, None]) // n_splits))
    return np.cumsum(allocation, axis=1)


def dataset_prologue(rounds, params: LogisticCVParams) -> tuple[LogisticCVParams, dict]:
    """The coordinator's first rounds: classes, weights and the folds."""
    counts, _ = _prologue.count_rows(rounds, params.n_features)
    classes = _prologue.gather_classes(rounds)
    if classes.size < 2:
        raise one_class(classes[0].item() if hasattr(classes[0], "item") else classes[0])
    if params.intercept_scaling is not None and classes.size >= 3:
        raise liblinear_multiclass()
    parts = rounds.gather("class_stats", classes)  # per worker: counts, first local index
    offsets = np.r_[0, np.cumsum(counts)]
    per_worker = np.array([part[0] for part in parts], dtype=np.int64)  # (W, n_classes)
    per_class = per_worker.sum(axis=0)
    firsts = np.array([np.where(part[1] >= 0, part[1] + offsets[w], np.iinfo(np.int64).max)
                       for w, part in enumerate(parts)], dtype=np.int64)
    first = firsts.min(axis=0)
    K, n = params.n_folds, int(counts.sum())
    if params.splitter == "stratified":
        if np.all(K > per_class):
            raise ValueError(f"n_splits={K} cannot be greater than the number of members "
                             "in each class.")
        bounds = stratified_bounds(per_class, first, K)
        before = np.cumsum(np.vstack([np.zeros_like(per_class), per_worker]), axis=0)[:-1]
    else:
        if K > n:
            raise ValueError(f"Cannot have number of splits n_splits={K} greater than the "
                             f"number of samples: n_samples={n}.")
        bounds = kfold_bounds(n, K)[None, :]
        before = np.zeros((counts.size, 1), dtype=np.int64)
    weights = class_weights(params.class_weight, classes, per_class.astype(np.float64))
    _prologue.prepare(rounds, classes, weights, offsets, bounds, before,
                      np.array([params.splitter == "stratified"]))
    test_weight = rounds.allreduce("fold_weights")  # (K + 1,): every fold's test rows, all
    sw_sums = np.r_[test_weight[-1] - test_weight[:-1], test_weight[-1]]
    n_outputs = 1 if classes.size == 2 else classes.size
    params = replace(params, n_outputs=n_outputs, n_classes=int(classes.size),
                     sw_sums=sw_sums)
    return params, {"classes": classes, "n_samples": n}


class DatasetWorker(_prologue.DatasetWorker):
    """A worker's raw rows; then the CV worker on them with its folds."""

    commands = {"class_stats": "_class_stats", "fold_weights": "_fold_weights"}

    def _encoded(self, classes: np.ndarray) -> np.ndarray:
        if "encoded" not in self.state:
            y = self.y.astype(str) if classes.dtype.kind == "U" else self.y
            self.state["encoded"] = np.searchsorted(classes, y)
        return self.state["encoded"]

    def _class_stats(self, arrays) -> np.ndarray:
        classes = arrays[0]
        encoded = self._encoded(classes)
        count = np.bincount(encoded, minlength=classes.size)
        first = np.full(classes.size, -1, dtype=np.int64)
        present, index = np.unique(encoded, return_index=True)
        first[present] = index
        return np.vstack([count, first])

    def _fold_weights(self, arrays) -> np.ndarray:
        worker = self.inner
        test_weight = (worker.T > 0) * worker.S[:, -1:]
        return np.r_[test_weight.sum(axis=0), worker.S[:, -1].sum()]

    def prepare(self, arrays: list) -> Worker:
        classes, weights, offsets, bounds, before, (stratified,) = arrays
        encoded = self._encoded(classes)
        n, K = encoded.shape[0], bounds.shape[1] - int(not stratified)
        if stratified:
            # Each class's rows, in row order, take its folds in turn.
            fold = np.empty(n, dtype=np.int64)
            mine = before[self.context.rank]
            for c in range(classes.size):
                rows = np.flatnonzero(encoded == c)
                rank = mine[c] + np.arange(rows.size)
                fold[rows] = np.searchsorted(bounds[c], rank, side="right")
        else:
            start = offsets[self.context.rank]
            fold = np.searchsorted(bounds[0], start + np.arange(n), side="right") - 1
        test = fold[:, None] == np.arange(K)[None, :]
        sample_weight = weights[encoded]
        data = {"X": self.X, "y": ((encoded == 1) if classes.size == 2 else encoded
                                   ).astype(np.float64),
                "sample_weight": sample_weight, "score_weight": np.ones(n),
                "train": ~test, "test": test}
        self.y = None
        return Worker(data, replace(self.params, n_outputs=1 if classes.size == 2
                                    else classes.size, n_classes=int(classes.size)),
                      self.context)
