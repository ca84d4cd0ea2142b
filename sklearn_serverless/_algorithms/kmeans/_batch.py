"""The runs one Lloyd round computes, and how their values travel.

All initialisations of a fit run in lockstep: each ``'lloyd'`` round
carries the centres of every run still iterating (a *step*: labels, sums,
changed labels) and of every run that stopped in the round before (its
*final* E-step: labels and the exact inertia from its final centres), so
that one pass over a worker's rows serves them all. A worker's partial
result is one vector per chunk with each entry's values side by side:
``k x (d+1)`` sums and weights, changed, inertia for a step; the inertia
alone for a final E-step.

A run that stopped with no label changed and its centres unchanged to the
bit has the labels of its final centres already (an E-step would compute
the same ones): its final entry is *known*, and the compiled kernel then
computes the inertia from those labels without a pass of scores (as
scikit-learn skips its final E-step on strict convergence).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Batch:
    """The entries of one ``'lloyd'`` round, in message order.

    Parameters
    ----------
    runs : ndarray of shape (R,)
        The run (index of its initialisation) of each entry.
    final : ndarray of shape (R,), dtype bool
        Whether the entry is the run's final E-step (else a Lloyd step).
    new_run : ndarray of shape (R,), dtype bool
        A step from a run's initial centres: every label counts as changed.
    inertia : bool
        Whether the steps compute their inertia (verbose, callbacks).
    step_width : int
        Values of a step, ``k * (d + 1) + 2``.
    known : ndarray of shape (R,), dtype bool
        Final E-steps whose labels are known already (see module doc).
    """

    runs: np.ndarray
    final: np.ndarray
    new_run: np.ndarray
    inertia: bool
    step_width: int
    known: np.ndarray

    @classmethod
    def build(cls, steps: list[tuple[int, bool]], finals: list[tuple[int, bool]],
              inertia: bool, n_clusters: int, n_features: int) -> Batch:
        """Steps ``(run, new_run)`` first, then the final E-steps ``(run, known)``."""
        runs = [run for run, _ in steps] + [run for run, _ in finals]
        return cls(np.array(runs, dtype=np.int64),
                   np.array([False] * len(steps) + [True] * len(finals)),
                   np.array([new for _, new in steps] + [False] * len(finals)),
                   bool(inertia), n_clusters * (n_features + 1) + 2,
                   np.array([False] * len(steps) + [known for _, known in finals], dtype=bool))

    def message(self) -> list[np.ndarray]:
        """The arrays that follow the centres in the round's message (a known
        final E-step is a 2 in the table's ``final`` column)."""
        final = self.final.astype(np.int64) + self.known
        table = np.stack([self.runs, final, self.new_run], axis=1).astype(np.int64)
        return [table.reshape(-1, 3), np.array([self.inertia], dtype=np.int64)]

    @classmethod
    def from_message(cls, table: np.ndarray, flags: np.ndarray, centers: np.ndarray) -> Batch:
        k, d = centers.shape[1:]
        table = np.asarray(table, dtype=np.int64).reshape(-1, 3)
        return cls(table[:, 0], table[:, 1].astype(bool), table[:, 2].astype(bool),
                   bool(flags[0]), k * (d + 1) + 2, table[:, 1] == 2)

    def __len__(self) -> int:
        return self.runs.size

    @property
    def steps(self) -> np.ndarray:
        """Entries that are Lloyd steps."""
        return np.flatnonzero(~self.final)

    @property
    def finals(self) -> np.ndarray:
        """Entries that are final E-steps."""
        return np.flatnonzero(self.final)

    @property
    def offsets(self) -> np.ndarray:
        """Where each entry's values start in a partial vector, and the end."""
        widths = np.where(self.final, 1, self.step_width)
        return np.r_[0, np.cumsum(widths)]

    @property
    def width(self) -> int:
        return int(self.offsets[-1])

    def slot(self, entry: int) -> slice:
        offsets = self.offsets
        return slice(int(offsets[entry]), int(offsets[entry + 1]))

    def pack(self, values: np.ndarray) -> np.ndarray:
        """A partial vector from ``(R, step_width)`` values (the compiled
        kernel's per chunk): a final E-step keeps only its inertia."""
        return np.concatenate([row if not final else row[-1:]
                               for row, final in zip(values, self.final, strict=True)])

    def split(self, total: np.ndarray) -> list[np.ndarray]:
        """Each entry's values in a summed partial vector."""
        return [total[self.slot(entry)] for entry in range(len(self))]


def clustering_map(labels: np.ndarray, other: np.ndarray, n_clusters: int) -> np.ndarray:
    """This worker's share of scikit-learn's ``_is_same_clustering(labels,
    other)``: for each label of ``labels``, the label of ``other`` that its
    rows have (-1 where no row has it), or all -2 when its rows disagree."""
    mapping = np.full(n_clusters, -1, dtype=np.int64)
    # Repeated indices: whichever write lands, a disagreement shows below.
    mapping[labels] = other
    if not np.array_equal(mapping[labels], other):
        mapping[:] = -2
    return mapping


def same_clustering(mappings: list[np.ndarray]) -> bool:
    """Whether every worker's :func:`clustering_map` agrees: the rows of each
    label of the first clustering share one label of the other."""
    stacked = np.stack(mappings)
    if (stacked == -2).any():
        return False
    seen = stacked >= 0
    low = np.where(seen, stacked, np.iinfo(np.int64).max).min(axis=0)
    high = np.where(seen, stacked, -1).max(axis=0)
    return bool(np.all(~seen.any(axis=0) | (low == high)))
