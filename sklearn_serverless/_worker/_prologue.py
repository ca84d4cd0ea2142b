"""The first rounds of a fit whose data the driver never held (a dataset in
object storage): the workers tell the coordinator what the driver would
otherwise compute (row counts, feature means and variances, the classes),
then turn their raw rows into the algorithm's columns.

A worker reads its rows as they lie (``X`` and, with a label, ``y``), and
is a :class:`DatasetWorker` until the ``'prepare'`` command builds the
algorithm's own worker from them; from then on it forwards every command it
does not know to that worker. An algorithm subclasses it with
:meth:`DatasetWorker.prepare` and, for commands of its own on the raw or
prepared rows, methods named in ``commands``.
"""

from __future__ import annotations

import numpy as np

from ._algorithm import Context


class DatasetWorker:
    """A worker's raw rows and the prologue's commands on them; then the
    algorithm's worker (``inner``)."""

    #: The algorithm's own commands answered here: command -> method name.
    commands: dict[str, str] = {}

    def __init__(self, raw: dict, params, context: Context):
        self.X = raw["X"]
        self.y = raw.get("y")
        #: The dataset's weight column, or None.
        self.sample_weight = raw.get("sample_weight")
        self.params, self.context = params, context
        self.inner = None
        self.state: dict = {}  # what the commands keep between rounds
        self._own = {"count": self._count, "squares": self._squares, "rows": self._rows,
                     "labels": self._labels, "prepare": self._prepare}

    def prepare(self, arrays: list):
        """The algorithm's worker, built from these rows and ``arrays``."""
        raise NotImplementedError

    @property
    def n_rows(self) -> int:
        return self.X.shape[0]

    def handle(self, command: str, arrays: list) -> np.ndarray | None:
        if command in self._own:
            return self._own[command](arrays)
        if command in self.commands:
            return getattr(self, self.commands[command])(arrays)
        return self.inner.handle(command, arrays)

    def result(self, *final) -> dict:
        return self.inner.result(*final) if self.inner is not None else {}

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()

    # commands ---------------------------------------------------------------------------

    def _count(self, arrays) -> np.ndarray:
        """``[rows, sum of each feature...]``."""
        return np.r_[self.n_rows, self.X.sum(axis=0, dtype=np.float64)]

    def _squares(self, arrays) -> np.ndarray:
        """Sum of squared deviations from the broadcast mean, per feature."""
        centred = self.X - arrays[0].astype(self.X.dtype)
        return np.einsum("ij,ij->j", centred, centred, dtype=np.float64)

    def _rows(self, arrays) -> np.ndarray:
        """The rows of the broadcast global indices that this worker owns, in
        the order given (``arrays``: this worker's first row, the indices)."""
        offsets, indices = arrays[0].astype(np.int64), arrays[1].astype(np.int64)
        start = offsets[self.context.rank]
        mine = (indices >= start) & (indices < start + self.n_rows)
        return self.X[indices[mine] - start]

    def _labels(self, arrays) -> np.ndarray:
        """This worker's distinct labels, as they are (numbers or strings)."""
        return np.unique(self.y)

    def _prepare(self, arrays) -> np.ndarray:
        self.inner = self.prepare(arrays)
        return np.zeros(1)


# the coordinator's side --------------------------------------------------------------------


def count_rows(rounds, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """Every worker's row count and the mean of every feature."""
    parts = rounds.gather("count")
    counts = np.array([int(part[0]) for part in parts], dtype=np.int64)
    n = int(counts.sum())
    if n == 0:
        raise ValueError("the dataset has no rows")
    sums = np.zeros(n_features)
    for part in parts:  # worker order
        sums += part[1:]
    return counts, sums / n


def feature_variances(rounds, mean: np.ndarray, n: int) -> np.ndarray:
    """``np.var(X, axis=0)``, by squared deviations from the mean."""
    return rounds.allreduce("squares", mean) / n


def gather_rows(rounds, counts: np.ndarray, indices: np.ndarray, n_features: int
                ) -> np.ndarray:
    """The rows at global ``indices`` (dataset order), from their workers, in
    the order of ``indices``."""
    indices = np.asarray(indices, dtype=np.int64)
    offsets = np.r_[0, np.cumsum(counts)]
    parts = rounds.gather("rows", offsets, indices)
    out = np.empty((indices.size, n_features))
    owner = np.searchsorted(offsets, indices, side="right") - 1
    for rank, part in enumerate(parts):
        out[owner == rank] = part
    return out


def gather_classes(rounds) -> np.ndarray:
    """The sorted distinct labels over all workers (numbers or strings)."""
    parts = [part for part in rounds.gather("labels") if part.size]
    if any(part.dtype.kind == "U" for part in parts):
        parts = [part.astype(str) for part in parts]
    return np.unique(np.concatenate(parts))


def prepare(rounds, *arrays: np.ndarray) -> None:
    """Every worker builds the algorithm's worker from its rows and ``arrays``."""
    rounds.allreduce("prepare", *arrays)
