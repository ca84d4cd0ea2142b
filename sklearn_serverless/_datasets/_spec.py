"""What the driver learns of a dataset and what each worker is told to read:
the objects (:class:`DataObject`), the pieces of them a read covers
(:class:`Piece`), one worker's read (:class:`ReadSpec`) and a resolved
dataset's metadata and plan (:class:`ResolvedDataset`). numpy only."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from ._rows import RowSelection, select_specs

if TYPE_CHECKING:
    from ._dataset import Dataset

_FORMATS = {"csv": "._csv", "parquet": "._parquet", "npy": "._npy"}


def _format_module(name: str):
    return importlib.import_module(_FORMATS[name], __package__)


class DataError(ValueError):
    """What a worker found wrong in a dataset's content (a cell that is not a
    number, a ragged row, ...); the message names the object and the line or
    row. A fit reports it as it is: the data's fault, not the worker's."""


@dataclass(frozen=True)
class DataObject:
    """One object of a resolved dataset.

    ``data_start``: first byte of the rows (after a CSV header line, or a
    .npy header). ``row_groups``: rows per Parquet row group, or the .npy row
    count and width. ``dtype`` and ``order``: the .npy element type and layout.
    """

    bucket: str
    key: str
    size: int
    data_start: int = 0
    row_groups: tuple[int, ...] = ()
    dtype: str = ""
    order: str = "C"
    #: The object's ETag (or version; a local file's inode, size and times):
    #: what a worker's kept copy of its rows is keyed by (see :mod:`._cache`).
    version: str = ""


@dataclass(frozen=True)
class Piece:
    """Part of one object that a worker reads: bytes ``[start, stop)`` (CSV;
    rows starting there), row groups ``[start, stop)`` (Parquet) or rows
    ``[start, stop)`` (.npy)."""

    bucket: str
    key: str
    start: int
    stop: int
    size: int
    data_start: int = 0
    dtype: str = ""
    order: str = "C"


@dataclass(frozen=True)
class ReadSpec:
    """What one worker reads; made by :meth:`ResolvedDataset.plan`, read by
    :func:`read_rows`. Small and picklable.

    ``row_offset`` and ``n_rows``: the global index of the first row and the
    row count, known before reading for Parquet and .npy; ``None`` for CSV
    (rows are only counted by reading: offsets are the running sum of the
    ``n_rows`` that earlier specs return).
    """

    format: str
    index: int
    local: bool
    pieces: tuple[Piece, ...]
    columns: tuple
    label: str | int | None
    label_kind: str | None
    dtype: str
    row_offset: int | None = None
    n_rows: int | None = None
    delimiter: str = ","
    n_columns: int = 0
    #: Every column's name (CSV with a header), for messages.
    names: tuple[str, ...] | None = None
    #: Per feature column: 'number' or 'str' (text, read as a str array).
    kinds: tuple[str, ...] = ()
    #: The weight column (index or name), read as float64 ``'sample_weight'``.
    weight: str | int | None = None
    #: The fitted transformers the rows go through as they are read
    #: (see :mod:`._chain`), and what the step consuming them accepts.
    steps: tuple = ()
    allow_nan: bool = False
    consumer: str = ""
    #: A view's rows among those read (:class:`RowSelection`); None: all.
    selection: RowSelection | None = None
    #: Each piece's object version ('' unknown), for :mod:`._cache`.
    versions: tuple[str, ...] = ()


@dataclass(frozen=True)
class ResolvedDataset:
    """A dataset's metadata, read on the driver by :meth:`Dataset.resolve`.

    Attributes
    ----------
    dataset : Dataset
    local : bool
        Whether the objects are local files.
    objects : tuple of DataObject
        Sorted by key.
    n_features : int
    feature_names : tuple of str or None
        From the CSV header or Parquet schema; None for .npy and headerless CSV.
    has_label : bool
    label_kind : {'number', 'str'} or None
        Labels come back as numbers ('number': int64 where every label a
        worker reads is an integer, else float64) or str.
    n_rows : int or None
        Known for Parquet and .npy; None for CSV.
    """

    dataset: Dataset
    local: bool
    objects: tuple[DataObject, ...]
    n_features: int
    feature_names: tuple[str, ...] | None
    has_label: bool
    label_kind: str | None
    dtype: str
    n_rows: int | None = None
    columns: tuple = ()
    label: str | int | None = None
    n_columns: int = 0
    row_length: int = field(default=1, repr=False)
    column_names: tuple[str, ...] | None = field(default=None, repr=False)
    #: Per feature: 'number' or 'str'; empty means every feature is a number.
    kinds: tuple[str, ...] = ()
    #: The weight column (see ``read_csv(..., sample_weight=...)``).
    weight: str | int | None = None
    #: First text cell of each text feature, for messages.
    text_samples: tuple = field(default=(), repr=False)
    steps: tuple = ()
    allow_nan: bool = False
    consumer: str = ""
    #: The stored columns' kinds, when ``steps`` change them (``kinds``: after).
    read_kinds: tuple[str, ...] = ()

    #: A view's global row numbers, in its order (None: every row); ``n_rows``
    #: stays the dataset's.
    rows: np.ndarray | None = field(default=None, repr=False, compare=False)
    #: ``(n_workers, rows of each spec of plan(n_workers))``: a CSV view's counts.
    counts: tuple | None = field(default=None, repr=False, compare=False)

    @property
    def has_weight(self) -> bool:
        """Whether the dataset has a weight column."""
        return self.weight is not None

    @property
    def text_features(self) -> tuple[int, ...]:
        """Indices of the features that hold text."""
        return tuple(j for j, kind in enumerate(self.kinds) if kind == "str")

    def for_consumer(self, name: str, allow_nan: bool = False) -> ResolvedDataset:
        """This dataset as the step ``name`` reads it: text features are
        refused (as scikit-learn's ``check_array`` does) unless
        ``allow_nan`` says the step takes raw columns; NaN is refused in the
        workers unless ``allow_nan``."""
        return replace(self, allow_nan=allow_nan, consumer=name)

    @property
    def total_bytes(self) -> int:
        """Bytes of all objects together."""
        return sum(obj.size for obj in self.objects)

    def plan(self, n_workers: int) -> list[ReadSpec]:
        """Cuts the reads into at most ``n_workers`` specs, deterministically.

        CSV: even byte ranges over the concatenation of the objects' rows (a
        spec may span several objects); at most one spec per row of the first
        row's length. Parquet: runs of whole row groups balanced by rows; at
        most one spec per non-empty row group. .npy: even row ranges; at most
        one spec per row. Specs come in dataset order.

        Parameters
        ----------
        n_workers : int
            The most specs wanted (>= 1).

        Returns
        -------
        specs : list of ReadSpec
        """
        if isinstance(n_workers, bool) or not isinstance(n_workers, int | np.integer) \
                or n_workers < 1:
            raise ValueError(f"n_workers must be an integer >= 1, got {n_workers!r}.")
        specs = _format_module(self.dataset.format).plan(self, int(n_workers))
        if self.rows is None:
            return specs
        if specs[0].n_rows is not None:
            counts = [spec.n_rows for spec in specs]
        elif self.counts is not None and self.counts[0] == int(n_workers):
            counts = self.counts[1]
        else:
            raise ValueError(f"rows of a CSV dataset need its row counts for {n_workers} "
                             "workers (counted by the driver's reads)")
        specs = select_specs(specs, counts, self.rows)
        if not specs:
            raise ValueError("the dataset's view holds no row")
        return specs

    def spec(self, index: int, pieces: list[Piece], **extra) -> ReadSpec:
        """A spec carrying this dataset's options."""
        return ReadSpec(
            format=self.dataset.format, index=index, local=self.local, pieces=tuple(pieces),
            columns=self.columns, label=self.label, label_kind=self.label_kind,
            dtype=self.dtype, n_columns=self.n_columns,
            delimiter=getattr(self.dataset, "delimiter", ","), names=self.column_names,
            kinds=self.read_kinds or self.kinds, weight=self.weight, steps=self.steps,
            allow_nan=self.allow_nan, consumer=self.consumer,
            versions=_versions(self.objects, pieces), **extra)


def _versions(objects: tuple[DataObject, ...], pieces: list[Piece]) -> tuple[str, ...]:
    by_key = {(obj.bucket, obj.key): obj.version for obj in objects}
    return tuple(by_key.get((piece.bucket, piece.key), "") for piece in pieces)
