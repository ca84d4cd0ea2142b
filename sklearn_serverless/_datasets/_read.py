"""A worker's read of its part of a dataset (:func:`read_rows`), and the
driver's cheap reads run by workers: row counts and the label column.
numpy only (pyarrow lazily, for Parquet and CSV)."""

from __future__ import annotations

from typing import Any

from ._paths import Source, storage_for
from ._spec import ReadSpec, _format_module


def read_rows(spec: ReadSpec, storage: Any = None) -> dict:
    """Reads one spec's rows (runs in a worker).

    Parameters
    ----------
    spec : ReadSpec
    storage : lithops.Storage, default=None
        Where the objects are; ignored for local files.

    Returns
    -------
    rows : dict
        ``'X'``: C-ordered 2-D array of the dataset's dtype (after the
        spec's fitted ``steps``; a text feature's slots hold NaN, its cells
        are in ``'text'``: feature index -> 1-D str array); ``'y'`` (with a
        label): 1-D int64, float64 or str; ``'sample_weight'`` (with a weight
        column): 1-D float64; ``'row_offset'`` (None for CSV) and
        ``'n_rows'``; ``'requests'`` and ``'bytes_fetched'``: the GETs made;
        ``'cache_hits'``: 1 when the rows came from what this process kept
        of an earlier run (a pool worker, see :mod:`._cache`), else 0.

    Raises
    ------
    DataError
        A cell that is not a number in a numeric column, infinity, a ragged
        row or a missing label: the message names the object, the row and the
        column (a subclass of ValueError).
    ValueError
        A missing cell (NaN) where the spec does not ``allow_nan``: the
        message is scikit-learn's ("Input X contains NaN.").
    """
    from ._cache import read_through
    from ._chain import finish_rows

    source = Source(storage_for(storage, spec.local))
    # A view's selection makes new arrays: the kept ones need no copy first.
    raw, hit = read_through(spec, lambda: _format_module(spec.format).read(spec, source),
                            copy=spec.selection is None)
    if spec.selection is not None:
        raw = spec.selection.apply(raw, raw["X"].shape[0])
    rows = finish_rows(raw, spec)
    rows["cache_hits"] = int(hit)
    rows["row_offset"] = spec.row_offset
    rows["n_rows"] = rows["X"].shape[0]
    rows["requests"] = source.requests
    rows["bytes_fetched"] = source.bytes_fetched
    return rows


def count_rows(spec: ReadSpec, storage: Any = None) -> dict:
    """The number of rows of one spec (runs in a worker): counted without
    parsing where the format allows (CSV lines), else read.

    Returns
    -------
    counted : dict
        ``'n_rows'``, ``'requests'`` and ``'bytes_fetched'``.
    """
    module = _format_module(spec.format)
    if not hasattr(module, "count"):
        rows = read_rows(spec, storage)
        return {key: rows[key] for key in ("n_rows", "requests", "bytes_fetched")}
    source = Source(storage_for(storage, spec.local))
    return {"n_rows": module.count(spec, source), "requests": source.requests,
            "bytes_fetched": source.bytes_fetched}


def read_labels(spec: ReadSpec, storage: Any = None) -> dict:
    """One spec's labels (runs in a worker); Parquet reads the label column only.

    Returns
    -------
    labels : dict
        ``'y'``, ``'n_rows'``, ``'requests'`` and ``'bytes_fetched'``.
    """
    if spec.label is None:
        raise ValueError("the dataset has no label column: name it, e.g. "
                         "read_csv(path, label='target')")
    if spec.format == "parquet":
        from dataclasses import replace

        spec = replace(spec, columns=())
    rows = read_rows(spec, storage)
    return {key: rows[key] for key in ("y", "n_rows", "requests", "bytes_fetched")}
