"""The first rounds of a fit whose data the driver never held (a dataset in
object storage): the workers tell the coordinator what the driver would
otherwise compute (row counts, feature means and variances, the classes),
then turn their raw rows into the algorithm's columns.

A worker reads its rows as they lie (``X`` and, with a label, ``y``), and
is a :class:`DatasetWorker` until the ``PREPARE`` command builds the
algorithm's own ``Worker`` from them; from then on it forwards every command
it does not know to that worker.

Some answers are one block per worker (a count, a list of labels, sampled
rows). A worker puts its block at its own place in a vector of zeros that
are summed: a sum of one number and zeros is that number exactly, so this
gathers in worker order through either state mode.
"""

from __future__ import annotations

import numpy as np

from ._sharing import Team

#: Commands of the prologue (the algorithms' own codes are small numbers).
COUNT, SQUARES, ROWS, LABEL_SIZES, LABELS, PREPARE = 101, 102, 103, 104, 105, 110


class DatasetWorker:
    """A worker's raw rows and the prologue's commands on them; then the
    algorithm's worker (``inner``)."""

    def __init__(self, raw: dict, params: dict, team: Team, algorithm):
        self.X = raw["X"]
        self.y = raw.get("y")
        self.params, self.team, self.algorithm = params, team, algorithm
        self.inner = None
        #: Algorithm-specific commands on the prepared worker: code -> f(self, flags, arrays).
        self.handlers = getattr(algorithm, "DATASET_HANDLERS", {})
        self.state: dict = {}  # what those handlers keep between rounds
        self._own = {COUNT: self._count, SQUARES: self._squares, ROWS: self._rows,
                     LABEL_SIZES: self._label_sizes, LABELS: self._labels,
                     PREPARE: self._prepare}

    @property
    def n_rows(self) -> int:
        return self.X.shape[0]

    def handle(self, code: int, flags: np.ndarray, arrays: list) -> np.ndarray | None:
        if code in self._own:
            return self._own[code](flags, arrays)
        if code in self.handlers:
            return self.handlers[code](self, flags, arrays)
        if self.inner is None:
            return None  # STOP before the algorithm started (a prologue error)
        return self.inner.handle(code, flags, arrays)

    def result(self) -> dict:
        return self.inner.result() if self.inner is not None else {}

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()

    def segment(self, values: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        """``values`` at this worker's place among blocks of ``sizes``."""
        sizes = np.asarray(sizes, dtype=np.int64)
        out = np.zeros(int(sizes.sum()))
        start = int(sizes[: self.team.worker].sum())
        out[start:start + values.size] = values.ravel()
        return out

    # commands ---------------------------------------------------------------------------

    def _count(self, flags, arrays) -> np.ndarray:
        """``[rows of each worker (own place)..., sum of each feature...]``."""
        counts = self.segment(np.array([self.n_rows]), np.ones(self.team.n_workers))
        return np.r_[counts, self.X.sum(axis=0, dtype=np.float64)]

    def _squares(self, flags, arrays) -> np.ndarray:
        """Sum of squared deviations from the broadcast mean, per feature."""
        centred = self.X - arrays[0].astype(self.X.dtype)
        return np.einsum("ij,ij->j", centred, centred, dtype=np.float64)

    def _rows(self, flags, arrays) -> np.ndarray:
        """The rows of the broadcast global indices that this worker owns
        (``arrays``: row offsets of every worker, then the indices)."""
        offsets, indices = arrays[0].astype(np.int64), arrays[1].astype(np.int64)
        start = offsets[self.team.worker]
        mine = (indices >= start) & (indices < start + self.n_rows)
        out = np.zeros((indices.size, self.X.shape[1]))
        out[mine] = self.X[indices[mine] - start]
        return out.ravel()

    def _label_sizes(self, flags, arrays) -> np.ndarray:
        """This worker's distinct labels: how many, bytes per label, and
        whether they are integers or other numbers (1 or 0 each)."""
        self.state["labels"] = labels = np.unique(self.y)
        width = _width(labels)
        kind = labels.dtype.kind if labels.size else ""
        return self.segment(np.array([labels.size, width, kind in "iu", kind in "fb"]),
                            np.full(self.team.n_workers, 4))

    def _labels(self, flags, arrays) -> np.ndarray:
        """This worker's distinct labels, as numbers or as bytes of ``width``
        (``arrays``: every worker's block size, the width)."""
        sizes, width = arrays[0], int(arrays[1][0])
        return self.segment(encode_labels(self.state.pop("labels"), width), sizes)

    def _prepare(self, flags, arrays) -> np.ndarray:
        self.inner = self.algorithm.dataset_worker(self, arrays)
        return np.zeros(1)


def _width(labels: np.ndarray) -> int:
    """Bytes per label: 0 for numbers, else the longest UTF-8 encoding."""
    if labels.dtype.kind in "fiub":
        return 0
    return max((len(str(label).encode()) for label in labels), default=1)


def encode_labels(labels: np.ndarray, width: int) -> np.ndarray:
    """Labels as float64: numbers as they are; strings as ``width`` bytes each."""
    if width == 0:
        return labels.astype(np.float64)
    out = np.zeros((labels.size, width), dtype=np.uint8)
    for row, label in enumerate(labels):
        data = str(label).encode()
        out[row, :len(data)] = np.frombuffer(data, dtype=np.uint8)
    return out.astype(np.float64).ravel()


def decode_labels(values: np.ndarray, width: int) -> np.ndarray:
    if width == 0:
        return values
    data = values.astype(np.uint8).reshape(-1, width)
    return np.array([bytes(row).rstrip(b"\0").decode() for row in data])


# the coordinator's side --------------------------------------------------------------------


def count_rows(rounds, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """Every worker's row count and the mean of every feature."""
    n_workers = rounds.store.n_workers
    total = rounds(COUNT)
    counts = total[:n_workers].astype(np.int64)
    n = int(counts.sum())
    if n == 0:
        raise ValueError("the dataset has no rows")
    return counts, total[n_workers:n_workers + n_features] / n


def feature_variances(rounds, mean: np.ndarray, n: int) -> np.ndarray:
    """``np.var(X, axis=0)``, by squared deviations from the mean."""
    return rounds(SQUARES, mean) / n


def gather_rows(rounds, counts: np.ndarray, indices: np.ndarray, n_features: int
                ) -> np.ndarray:
    """The rows at global ``indices`` (dataset order), from their workers."""
    offsets = np.r_[0, np.cumsum(counts)].astype(np.float64)
    total = rounds(ROWS, offsets, np.asarray(indices, dtype=np.float64))
    return total.reshape(len(indices), n_features)


def gather_classes(rounds) -> tuple[np.ndarray, int]:
    """The sorted distinct labels over all workers, and their byte width
    (0: numbers), to broadcast with :func:`encode_labels`."""
    n_workers = rounds.store.n_workers
    sizes = rounds(LABEL_SIZES).reshape(n_workers, 4)
    width = int(sizes[:, 1].max())
    blocks = sizes[:, 0] * max(width, 1)
    values = rounds(LABELS, blocks, np.array([width], dtype=np.float64))
    classes = np.unique(decode_labels(values, width))
    if width == 0 and sizes[:, 2].any() and not sizes[:, 3].any():
        classes = classes.astype(np.int64)  # integer labels stay integers
    return classes, width


def prepare(rounds, *arrays: np.ndarray) -> None:
    """Every worker builds the algorithm's worker from its rows and ``arrays``."""
    rounds(PREPARE, *arrays)
