"""The driver's reads of a dataset that scikit-learn's model selection needs:
its row count, its labels, and, for rows of a CSV dataset, how many rows each
worker's byte range holds. Counts and labels are read once (Lithops maps of
the workers, never the rows to the driver) and kept on the dataset object,
so a search over many folds and candidates reads them once.

Importing this module installs these reads into the datasets
(:func:`sklearn_serverless._datasets._dataset.install_driver_reads`); the
public ``read_csv``, ``read_parquet`` and ``read_npy`` are imported from here.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .._datasets import Dataset, read_csv, read_npy, read_parquet
from .._datasets._dataset import DatasetView, install_driver_reads
from .._datasets._rows import view_order
from ._fetched import note_fetched

__all__ = ["attach_counts", "in_view_order", "read_csv", "read_npy", "read_parquet"]

#: Seconds any call of the driver's reads may take.
_TIMEOUT = 300.0


def _base(dataset: Dataset) -> Dataset:
    return dataset.base if isinstance(dataset, DatasetView) else dataset


def _backend_of(dataset: Dataset):
    """The dataset's ``backend``; None is the estimators' default."""
    return "localhost" if dataset.backend is None else dataset.backend


def _resolved(dataset: Dataset):
    """The dataset's metadata, read with its own ``backend`` (kept)."""
    from ._backends import open_storage

    base = _base(dataset)
    cache = base.cache()
    if "resolved" not in cache:
        cache["resolved"] = base.resolve(open_storage(_backend_of(base)))
    return cache["resolved"]


def counts_for(resolved, backend, n_workers: int, timeout: float = _TIMEOUT) -> tuple:
    """Rows of each spec of ``resolved.plan(n_workers)``: one map of
    counting calls (CSV lines, not parsed), kept on the dataset."""
    from .._worker._apply import ReadTask, read_task
    from ._apply import run_calls
    from ._placement import plan_dataset

    cache = resolved.dataset.cache().setdefault("counts", {})
    if n_workers not in cache:
        base = replace(resolved, rows=None, counts=None)
        partitions = plan_dataset(base, n_workers)
        results = run_calls(read_task, [ReadTask("count", p) for p in partitions],
                            backend=backend, timeout=timeout)
        cache[n_workers] = tuple(int(r["n_rows"]) for r in results)
        _note_fetched(resolved.dataset, results)
    return cache[n_workers]


def attach_counts(resolved, backend, n_workers: int | None):
    """``resolved`` ready to plan: a view of a CSV dataset gets the row
    counts of the plan it will use (counted once; with ``n_workers=None``,
    a plan already counted is reused)."""
    from ._fit import _worker_count

    if resolved.rows is None or resolved.counts is not None or resolved.n_rows is not None:
        return resolved  # every row, counted already, or counts from metadata
    counted = resolved.dataset.cache().get("counts", {})
    if n_workers is None and counted:
        workers = next(iter(counted))
    else:
        workers = _worker_count(resolved, backend, n_workers)
    return replace(resolved, counts=(workers, counts_for(resolved, backend, workers)))


def in_view_order(resolved, parts: list[dict]) -> list[dict]:
    """The results of a view's calls (rows in global order) with their
    row-aligned arrays put in the view's order; other values (sums) as they are."""
    order = None if resolved.rows is None else view_order(resolved.rows)
    if order is None:
        return parts
    sizes = [int(part["n_rows"]) for part in parts]
    cuts = np.cumsum(sizes)[:-1]
    out = [dict(part) for part in parts]
    for key, value in parts[0].items():
        if not (isinstance(value, np.ndarray) and value.ndim and all(
                part[key].shape[0] == size for part, size in zip(parts, sizes, strict=True))):
            continue
        held = np.concatenate([part[key] for part in parts])
        ordered = np.empty_like(held)
        ordered[order] = held
        for part, piece in zip(out, np.split(ordered, cuts), strict=True):
            part[key] = piece
    return out


def _note_fetched(dataset: Dataset, results: list[dict]) -> None:
    """What the driver's reads fetched (see :meth:`Dataset.fetched`)."""
    note_fetched(dataset, [{"bytes_fetched": r.get("bytes_fetched", 0)} for r in results],
                 driver=True)


class DriverReads:
    """What a dataset asks of the driver (see ``Dataset.shape``)."""

    def n_rows(self, dataset: Dataset) -> int:
        from ._fit import _worker_count

        base = _base(dataset)
        cache = base.cache()
        if "n_rows" not in cache:
            resolved = _resolved(base)
            if resolved.n_rows is None:
                workers = _worker_count(resolved, _backend_of(base), None)
                cache["n_rows"] = sum(counts_for(resolved, _backend_of(base), workers))
            else:
                cache["n_rows"] = resolved.n_rows
        return cache["n_rows"]

    def n_features(self, dataset: Dataset) -> int:
        return _resolved(dataset).n_features

    def labels(self, dataset: Dataset) -> np.ndarray:
        from .._worker._apply import ReadTask, read_task
        from ._apply import run_calls
        from ._fit import _worker_count
        from ._placement import plan_dataset

        base = _base(dataset)
        cache = base.cache()
        if "labels" not in cache:
            resolved = _resolved(base)
            if not resolved.has_label:
                raise ValueError("the dataset has no label column: name it, e.g. "
                                 "read_csv(path, label='target')")
            workers = _worker_count(resolved, _backend_of(base), None)
            results = run_calls(read_task, [ReadTask("labels", p) for p in
                                            plan_dataset(resolved, workers)],
                                backend=_backend_of(base), timeout=_TIMEOUT)
            _note_fetched(base, results)
            cache.setdefault("counts", {})[workers] = tuple(int(r["n_rows"]) for r in results)
            cache["n_rows"] = sum(cache["counts"][workers])
            labels = [r["y"] for r in results]
            if any(part.dtype.kind == "U" for part in labels):
                labels = [part.astype(str) for part in labels]
            elif any(part.dtype.kind == "f" for part in labels):
                labels = [part.astype(np.float64) for part in labels]
            y = np.concatenate(labels)
            y.flags.writeable = False
            cache["labels"] = y
        return cache["labels"]


install_driver_reads(DriverReads())
