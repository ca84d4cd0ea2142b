"""The statistics of the transformers, as sums over the workers' rows.

``params`` is a tuple of tasks ``(kind, columns, weighted)``: 'moments' (per column:
weighted count of the present cells, weighted mean and variance, minimum,
maximum, count of missing cells) or 'categories' (per column: the sorted
distinct values and how many rows hold each). Missing cells are NaN.

However many tasks (the transformers of a column transformer), a run takes
at most two rounds: 'sums' gathers each worker's sums, distinct values and
their counts, packed in one blob of raw arrays; 'squares' (moments only)
sums the squared deviations around the means the first round found."""

from __future__ import annotations

import numpy as np

from ..._datasets._chain import split_columns
from ..._datasets._text import distinct
from ..._state._codec import decode_arrays, encode_arrays
from ..._worker._algorithm import Context


class DatasetWorker:
    """A worker's rows as columns (numbers or text) and its weights."""

    def __init__(self, raw: dict, params, context: Context):
        self.columns = split_columns(raw["X"], raw.get("text") or {})
        self.weights = raw.get("sample_weight")
        self.tasks = params

    def _numbers(self, j: int, weighted: bool) -> tuple[np.ndarray, np.ndarray]:
        column = np.asarray(self.columns[j], dtype=np.float64)
        present = ~np.isnan(column)
        weights = self.weights if self.weights is not None and weighted else \
            np.ones(column.size)
        return column[present], weights[present]

    def _sums(self, columns, weighted: bool) -> np.ndarray:
        out = []
        for j in columns:
            values, weights = self._numbers(j, weighted)
            low = values.min() if values.size else np.inf
            high = values.max() if values.size else -np.inf
            out.append([weights.sum(), values @ weights, low, high,
                        self.columns[j].size - values.size])
        return np.array(out, dtype=np.float64).reshape(-1, 5)

    def handle(self, command: str, arrays: list) -> np.ndarray | None:
        if command == "sums":
            out = []
            for kind, columns, weighted in self.tasks:
                if kind == "moments":
                    out.append(self._sums(columns, weighted))
                    continue
                for j in columns:
                    values, counts = distinct(self.columns[j])
                    out += [values, counts.astype(np.float64)]
            return np.frombuffer(encode_arrays(out), dtype=np.uint8)
        if command == "squares":
            mean, out = arrays[0], []
            for kind, columns, weighted in self.tasks:
                if kind != "moments":
                    continue
                for j in columns:
                    values, weights = self._numbers(j, weighted)
                    out.append(((values - mean[len(out)]) ** 2) @ weights)
            return np.array(out, dtype=np.float64)
        raise ValueError(f"unknown preprocessing command {command!r}")

    def close(self) -> None:
        self.columns = None


def _moments(parts: list[np.ndarray]) -> dict:
    """A moments task's statistics from each worker's sums (worker order);
    'var' is filled in by the second round."""
    total = np.zeros((parts[0].shape[0], 5))
    total[:, 2], total[:, 3] = np.inf, -np.inf
    for part in parts:  # worker order
        total[:, [0, 1, 4]] += part[:, [0, 1, 4]]
        total[:, 2] = np.minimum(total[:, 2], part[:, 2])
        total[:, 3] = np.maximum(total[:, 3], part[:, 3])
    weight = total[:, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total[:, 1] / weight
    return {"weight": weight, "mean": mean, "min": total[:, 2], "max": total[:, 3],
            "n_missing": total[:, 4]}


def _categories(values: list[np.ndarray], counts: list[np.ndarray]) -> dict:
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
    answers = [iter(decode_arrays(part.tobytes())) for part in rounds.gather("sums")]
    out: dict = {}
    moments = []
    for i, (kind, columns, _) in enumerate(params):
        if kind == "moments":
            out[f"task{i}"] = _moments([next(answer) for answer in answers])
            moments.append(out[f"task{i}"])
            continue
        for k in range(len(columns)):
            values = [next(answer) for answer in answers]
            counts = [next(answer) for answer in answers]
            out[f"task{i}_{k}"] = _categories(values, counts)
    if moments:
        mean = np.concatenate([np.nan_to_num(stats["mean"]) for stats in moments])
        squares = rounds.allreduce("squares", mean)
        start = 0
        for stats in moments:
            weight = stats["weight"]
            with np.errstate(invalid="ignore", divide="ignore"):
                stats["var"] = squares[start:start + weight.size] / weight
            start += weight.size
    return out
