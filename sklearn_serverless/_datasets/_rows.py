"""Row subsets of a dataset (``dataset[indices]``): which of its rows each
worker keeps, by global row number.

A view's rows are global row numbers in the view's order. Each worker keeps
the view's rows that fall in its own range, in global order, so a worker's
rows never depend on how the view was ordered, and the view's order is put
back on the driver (:func:`view_order`) for outputs that come back row by row.

Worker side: numpy only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RowSelection:
    """Which of a worker's ``n`` rows it keeps: a bit mask (each row at most
    once, 1 bit a row) or the local row numbers in increasing order (a row
    repeated)."""

    n: int
    mask: bytes | None = None
    take: bytes | None = None

    @classmethod
    def of(cls, local: np.ndarray, n: int) -> RowSelection:
        """The selection of ``local`` (sorted row numbers in ``[0, n)``)."""
        if local.size < 2 or np.all(local[1:] != local[:-1]):
            mask = np.zeros(n, dtype=bool)
            mask[local] = True
            return cls(n, mask=np.packbits(mask).tobytes())
        return cls(n, take=local.astype(np.int64).tobytes())

    @property
    def count(self) -> int:
        return self.indices().size

    def indices(self) -> np.ndarray:
        """The kept local rows, in increasing order."""
        if self.take is not None:
            return np.frombuffer(self.take, dtype=np.int64)
        bits = np.unpackbits(np.frombuffer(self.mask, dtype=np.uint8), count=self.n)
        return np.flatnonzero(bits)

    def apply(self, rows: dict, n_read: int) -> dict:
        """``rows`` (arrays of ``n_read`` rows) reduced to the kept rows."""
        if n_read != self.n:
            raise ValueError(f"a worker read {n_read} rows where the dataset's row count "
                             f"gave it {self.n}: the objects changed since they were counted")
        keep = self.indices()
        return {name: _kept(value, keep, n_read) for name, value in rows.items()}


def as_rows(key, n_rows: int) -> np.ndarray:
    """Global row numbers (int64, in order) of a row key: integers (negative
    counted from the end), a boolean mask of ``n_rows``, or a slice."""
    if isinstance(key, tuple):  # X[key, ...], as scikit-learn's _safe_indexing writes it
        if len(key) == 2 and key[1] is Ellipsis:
            key = key[0]
        else:
            raise TypeError("a dataset is indexed by rows only: dataset[rows]")
    if isinstance(key, slice):
        return np.arange(n_rows, dtype=np.int64)[key]
    if isinstance(key, int | np.integer) and not isinstance(key, bool | np.bool_):
        raise TypeError("a dataset is indexed by an array of rows (dataset[[i]] for one "
                        "row), not by a single integer")
    rows = np.asarray(key)
    if rows.ndim != 1:
        raise IndexError(f"row indices must be 1-D, got shape {rows.shape}")
    if rows.dtype == bool:
        if rows.size != n_rows:
            raise IndexError(f"a boolean row mask of {rows.size} rows for a dataset of "
                             f"{n_rows}")
        return np.flatnonzero(rows).astype(np.int64)
    if rows.size == 0:
        return np.empty(0, dtype=np.int64)
    if rows.dtype.kind not in "iu":
        raise IndexError(f"row indices must be integers, got {rows.dtype}")
    rows = rows.astype(np.int64)
    if rows.max() >= n_rows or rows.min() < -n_rows:
        bad = rows.max() if rows.max() >= n_rows else rows.min()
        raise IndexError(f"row {bad} is out of range for a dataset of {n_rows} rows")
    return np.where(rows < 0, rows + n_rows, rows)


def select_specs(specs: list, counts, rows: np.ndarray) -> list:
    """The specs of a view: each base spec with its global ``row_offset``,
    its row count and the :class:`RowSelection` of the view's rows in its
    range; specs keeping no row are left out (the rest renumbered).
    ``counts``: each spec's row count (known from metadata or counted)."""
    ordered = np.sort(rows)
    out, offset = [], 0
    for spec, count in zip(specs, counts, strict=True):
        low, high = np.searchsorted(ordered, [offset, offset + count])
        if high > low:
            selection = RowSelection.of(ordered[low:high] - offset, int(count))
            out.append(dataclasses.replace(spec, index=len(out), row_offset=offset,
                                           n_rows=int(high - low), selection=selection))
        offset += int(count)
    if offset and ordered.size and ordered[-1] >= offset:
        raise ValueError(f"row {ordered[-1]} is out of range: the dataset has {offset} rows")
    return out


def view_order(rows: np.ndarray) -> np.ndarray | None:
    """Where each of the rows the workers hold (in global order) goes in the
    view's order; None when they are the same."""
    if rows.size < 2 or np.all(rows[1:] >= rows[:-1]):
        return None
    return np.argsort(rows, kind="stable")


def _kept(value, keep: np.ndarray, n_read: int):
    """``value``'s kept rows: an array of the rows read, or a dict of them
    (a dataset's text columns by index); anything else as it is."""
    if isinstance(value, dict):
        return {key: _kept(column, keep, n_read) for key, column in value.items()}
    if isinstance(value, np.ndarray) and value.ndim and value.shape[0] == n_read:
        return value[keep]
    return value
