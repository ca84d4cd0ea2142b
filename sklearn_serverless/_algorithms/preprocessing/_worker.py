"""The statistics of the transformers, as sums over the workers' rows.

``params`` is a tuple of tasks ``(kind, columns, weighted)``: 'moments' (per column:
weighted count of the present cells, weighted mean and variance, minimum,
maximum, count of missing cells) or 'categories' (per column: the sorted
distinct values and how many rows hold each). Missing cells are NaN."""

from __future__ import annotations

import numpy as np

from ..._datasets._chain import split_columns
from ..._worker._algorithm import Context


class DatasetWorker:
    """A worker's rows as columns (numbers or text) and its weights."""

    def __init__(self, raw: dict, params, context: Context):
        self.columns = split_columns(raw["X"], raw.get("text") or {})
        self.weights = raw.get("sample_weight")
        self.counts: dict = {}

    def _numbers(self, j: int, weighted) -> tuple[np.ndarray, np.ndarray]:
        column = np.asarray(self.columns[j], dtype=np.float64)
        present = ~np.isnan(column)
        weights = self.weights if self.weights is not None and weighted[0] else \
            np.ones(column.size)
        return column[present], weights[present]

    def handle(self, command: str, arrays: list) -> np.ndarray | None:
        if command == "sums":
            out = []
            for j in arrays[0].astype(np.int64):
                values, weights = self._numbers(int(j), arrays[1])
                low = values.min() if values.size else np.inf
                high = values.max() if values.size else -np.inf
                out.append([weights.sum(), values @ weights, low, high,
                            self.columns[j].size - values.size])
            return np.array(out, dtype=np.float64).reshape(-1, 5)
        if command == "squares":
            columns, mean = arrays[0].astype(np.int64), arrays[1]
            out = np.zeros(columns.size)
            for k, j in enumerate(columns):
                values, weights = self._numbers(int(j), arrays[2])
                out[k] = ((values - mean[k]) ** 2) @ weights
            return out
        if command == "distinct":
            values, counts = np.unique(self.columns[int(arrays[0][0])], return_counts=True)
            self.counts[int(arrays[0][0])] = counts
            return values
        if command == "counts":
            return self.counts.pop(int(arrays[0][0])).astype(np.float64)
        raise ValueError(f"unknown preprocessing command {command!r}")

    def close(self) -> None:
        self.columns = None


def _moments(rounds, columns: np.ndarray, weighted: bool) -> dict:
    flag = np.array([float(weighted)])
    parts = rounds.gather("sums", columns, flag)
    total = np.zeros((columns.size, 5))
    total[:, 2], total[:, 3] = np.inf, -np.inf
    for part in parts:  # worker order
        total[:, [0, 1, 4]] += part[:, [0, 1, 4]]
        total[:, 2] = np.minimum(total[:, 2], part[:, 2])
        total[:, 3] = np.maximum(total[:, 3], part[:, 3])
    weight = total[:, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total[:, 1] / weight
    squares = rounds.allreduce("squares", columns, np.nan_to_num(mean), flag)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = squares / weight
    return {"weight": weight, "mean": mean, "var": var, "min": total[:, 2],
            "max": total[:, 3], "n_missing": total[:, 4]}


def _categories(rounds, column: int) -> dict:
    values = rounds.gather("distinct", np.array([column]))
    counts = rounds.gather("counts", np.array([column]))
    if any(part.dtype.kind == "U" for part in values):
        values = [part.astype(str) for part in values]
    merged = np.concatenate(values)
    distinct, inverse = np.unique(merged, return_inverse=True)  # NaN last, once
    total = np.zeros(distinct.size)
    np.add.at(total, inverse.reshape(-1), np.concatenate(counts))  # worker order
    return {"values": distinct, "counts": total}


def coordinate(rounds, params) -> dict:
    """Every task's statistics: ``{'task<i>': {...}}`` (categories: one
    entry per column, ``'task<i>_<k>'``)."""
    out: dict = {}
    for i, (kind, columns, weighted) in enumerate(params):
        columns = np.asarray(columns, dtype=np.int64)
        if kind == "moments":
            out[f"task{i}"] = _moments(rounds, columns, weighted)
        else:
            for k, j in enumerate(columns):
                out[f"task{i}_{k}"] = _categories(rounds, int(j))
    return out
