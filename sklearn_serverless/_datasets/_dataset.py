"""Datasets that live in object storage: what the user names, what the driver
learns from metadata, and what each worker is told to read.

A :class:`Dataset` is lazy (no I/O). :meth:`Dataset.resolve` reads cheap
metadata on the driver (listings, CSV header lines, Parquet footers, .npy
headers) and gives a :class:`ResolvedDataset`, whose :meth:`~ResolvedDataset.plan`
cuts the work into :class:`ReadSpec` s; :func:`read_rows` runs in a worker.

Worker side: imports numpy only (pyarrow lazily, for Parquet and CSV).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np

from ._paths import Source, is_local, storage_for
from ._rows import RowSelection, as_rows, select_specs

_FORMATS = {"csv": "._csv", "parquet": "._parquet", "npy": "._npy"}


def _format_module(name: str):
    return importlib.import_module(_FORMATS[name], __package__)


class DataError(ValueError):
    """What a worker found wrong in a dataset's content (a cell that is not a
    number, a ragged row, ...); the message names the object and the line or
    row. A fit reports it as it is: the data's fault, not the worker's."""


@dataclass(frozen=True)
class Dataset:
    """A dataset in object storage (or local files), not read yet.

    Made by :func:`read_csv`, :func:`read_parquet` or :func:`read_npy`.
    Frozen and picklable; constructing one does no I/O.
    """

    path: str
    #: Where the driver's own reads (row counts, labels) run: see read_csv.
    backend: Any = field(default=None, compare=False, repr=False)
    format: ClassVar[str] = ""

    def resolve(self, storage: Any = None) -> ResolvedDataset:
        """Reads the dataset's metadata (never its rows) on the driver.

        Parameters
        ----------
        storage : lithops.Storage, default=None
            Where the objects are. ``None`` or a Storage of Lithops' localhost
            backend: the path names local files.

        Returns
        -------
        resolved : ResolvedDataset
            The objects (sorted by key) with their sizes, the number and names
            of the features, and enough to :meth:`~ResolvedDataset.plan` reads.

        Raises
        ------
        ValueError
            No object, an unknown column or label, an unsupported object
            (gzip'd CSV, Fortran-ordered .npy, ...), or no row at all; the
            message names the object.
        """
        return _format_module(self.format).resolve(self, storage, is_local(storage))

    # What scikit-learn's model selection asks of X: a row count, a shape,
    # rows by index. Counts and labels are read once and kept on the dataset.

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_rows, n_features)``: rows from metadata (Parquet, .npy) or one
        counting pass of the workers (CSV), once per dataset."""
        return (len(self), _driver_reads().n_features(self))

    def __len__(self) -> int:
        return _driver_reads().n_rows(self)

    def __bool__(self) -> bool:
        return True

    def __getitem__(self, key) -> DatasetView:
        """The rows ``key`` (integers, a boolean mask or a slice) as a
        dataset whose workers keep only those rows: nothing is read."""
        return DatasetView(self.path, self.backend, base=self, rows=as_rows(key, len(self)))

    def __iter__(self):
        raise TypeError("a dataset is read by the workers, not iterated on the driver")

    def __array__(self, dtype=None, copy=None):
        raise TypeError(f"{self!r} lies in storage and is read by the workers: pass it to "
                        "the serverless estimators, not to code that needs its rows in memory")

    def labels(self) -> np.ndarray:
        """The label column, fetched to the driver (once; 8 bytes a row for
        numbers): for splitters and scorers that need ``y``, as in
        ``GridSearchCV(...).fit(dataset, dataset.labels())``.

        Returns
        -------
        y : ndarray of shape (n_rows,)
            In row order; int64 or float64 numbers, or str.
        """
        return _driver_reads().labels(self)

    def cache(self) -> dict:
        """What the driver learnt of this dataset (row counts, labels)."""
        try:
            return self.__dict__["_cache"]
        except KeyError:
            object.__setattr__(self, "_cache", {})
            return self.__dict__["_cache"]


@dataclass(frozen=True)
class CSVDataset(Dataset):
    """Delimited text objects of numbers; see :func:`read_csv`."""

    label: str | int | None = None
    header: bool = True
    delimiter: str = ","
    columns: tuple | None = None
    dtype: str = "float64"
    sample_weight: str | int | None = None
    format: ClassVar[str] = "csv"


@dataclass(frozen=True)
class ParquetDataset(Dataset):
    """Parquet objects; see :func:`read_parquet`."""

    label: str | None = None
    columns: tuple | None = None
    sample_weight: str | None = None
    format: ClassVar[str] = "parquet"


@dataclass(frozen=True)
class NpyDataset(Dataset):
    """2-D ``.npy`` objects; see :func:`read_npy`."""

    format: ClassVar[str] = "npy"


@dataclass(frozen=True, eq=False)
class DatasetView(Dataset):
    """Rows of a dataset (``dataset[rows]``), by global row number, in order.

    Workers read their part of ``base`` as usual and keep the view's rows in
    it; a view of a view is a view of the same base.
    """

    base: Dataset = None
    rows: np.ndarray = field(default=None, repr=False)

    def __post_init__(self):
        rows = np.array(self.rows, dtype=np.int64)
        rows.flags.writeable = False
        object.__setattr__(self, "rows", rows)

    @property
    def format(self) -> str:
        return self.base.format

    def __repr__(self) -> str:
        return f"{self.base!r}[{self.rows.size} rows]"

    def __eq__(self, other) -> bool:
        return (isinstance(other, DatasetView) and self.base == other.base
                and np.array_equal(self.rows, other.rows))

    def __hash__(self) -> int:
        return hash((self.base, self.rows.tobytes()))

    def __len__(self) -> int:
        return self.rows.size

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows.size, _driver_reads().n_features(self.base))

    def __getitem__(self, key) -> DatasetView:
        return DatasetView(self.path, self.backend, base=self.base,
                           rows=self.rows[as_rows(key, self.rows.size)])

    def labels(self) -> np.ndarray:
        return self.base.labels()[self.rows]

    def cache(self) -> dict:
        return self.base.cache()

    def resolve(self, storage: Any = None) -> ResolvedDataset:
        """The base's metadata, with the view's rows."""
        from dataclasses import replace

        return replace(self.base.resolve(storage), rows=self.rows)


#: The driver's reads of a dataset (row counts, labels: Lithops maps),
#: installed by the driver side when it is imported; workers never need them.
_DRIVER_READS: list = []


def install_driver_reads(reads) -> None:
    """Installs the object whose ``n_rows(dataset)``, ``n_features(dataset)``
    and ``labels(dataset)`` read what the driver needs."""
    _DRIVER_READS[:] = [reads]


def _driver_reads():
    if not _DRIVER_READS:
        raise RuntimeError("a dataset's row count and labels are read through the "
                           "estimators' machinery: import sklearn_serverless's read_csv, "
                           "read_parquet or read_npy (or an estimator) first")
    return _DRIVER_READS[0]


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
    raw, hit = read_through(spec, lambda: _format_module(spec.format).read(spec, source))
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


def _float_dtype(dtype) -> str:
    name = np.dtype(dtype).name
    if name not in ("float64", "float32"):
        raise ValueError(f"dtype must be float64 or float32, got {dtype!r}.")
    return name


def _names(columns, what: str) -> tuple | None:
    if columns is None:
        return None
    if isinstance(columns, str | int):
        columns = [columns]
    columns = tuple(columns)
    if not columns:
        raise ValueError(f"{what} must name at least one column.")
    if len(set(columns)) != len(columns):
        raise ValueError(f"{what} names a column twice: {list(columns)}.")
    return columns


def read_csv(path: str, *, label: str | int | None = None, header: bool = True,
             delimiter: str = ",", columns=None, dtype=np.float64,
             sample_weight: str | int | None = None, backend=None) -> CSVDataset:
    """A dataset of delimited text objects (lazy: nothing is read).

    Workers split the objects by bytes: a row belongs to the worker whose byte
    range it starts in, and rows of any length are read whole. Each worker
    parses its rows with pyarrow's CSV reader (numpy's ``loadtxt`` where
    pyarrow is not installed: the same results, slower). A feature column
    holds numbers or text, as its first row says: text reaches the step that
    consumes it (an encoder encodes it; a model raises scikit-learn's error).
    An empty cell of a numeric column is missing (NaN), for an imputer to
    fill (a model refuses it, as scikit-learn's do); an empty cell of a text
    column is the text ``''``. Empty lines are
    skipped; quoted cells are unquoted but may not hold line breaks.
    Gzip'd objects are refused (compressed bytes cannot be split).

    Parameters
    ----------
    path : str
        ``bucket/key``, or ``bucket/prefix/`` for every object below it (names
        starting with ``_`` or ``.`` skipped), in key order; a storage scheme
        (``s3://``, ...) is stripped. With localhost storage, a local file or
        folder.
    label : str or int, default=None
        The column of the targets (name, or index with ``header=False``).
        Numeric labels (decided by the first row) are read as int64 when they
        are integers, else as float64; others as str.
    header : bool, default=True
        Whether every object starts with the same header line.
    delimiter : str, default=','
        The character between cells.
    columns : list of str or int, default=None
        The feature columns, in this order; None: every column but the label.
    dtype : {numpy.float64, numpy.float32}, default=numpy.float64
    sample_weight : str or int, default=None
        A column of numbers weighting the rows (name, or index with
        ``header=False``), used by every estimator and transformer that takes
        ``sample_weight``; not a feature.
    backend : str or dict, default=None
        Where the driver reads the dataset's row count and labels when
        scikit-learn's model selection asks for them (``len``, ``shape``,
        ``dataset.labels()``): the same value as the estimators'
        ``backend``. None: local files (Lithops' localhost storage). Fits and
        predictions read with their estimator's ``backend``.

    Returns
    -------
    dataset : Dataset
        The dataset, not read yet: pass it to ``fit``, ``predict``, ``score``
        and the other methods of the estimators, which read it where it lies.

    Examples
    --------
    >>> from sklearn_serverless import read_csv
    >>> data = read_csv("s3://my-bucket/flights/", label="late")
    >>> data.path, data.label
    ('s3://my-bucket/flights/', 'late')
    """
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in "\r\n\"":
        raise ValueError(f"delimiter must be one character, got {delimiter!r}.")
    columns = _names(columns, "columns")
    extra = tuple(name for name in (label, sample_weight) if name is not None)
    if label is not None and label == sample_weight:
        raise ValueError(f"The column {label!r} cannot be both the label and the weights.")
    for name in (columns or ()) + extra:
        if not isinstance(name, str | int) or isinstance(name, bool) or (
                not header and not isinstance(name, int)):
            raise ValueError(f"Column {name!r}: with header={header}, name columns by "
                             f"{'name or index' if header else 'index'}.")
    return CSVDataset(path, backend, label=label, header=bool(header), delimiter=delimiter,
                      columns=columns, dtype=_float_dtype(dtype), sample_weight=sample_weight)


def read_parquet(path: str, *, label: str | None = None, columns=None,
                 sample_weight: str | None = None, backend=None) -> ParquetDataset:
    """A dataset of Parquet objects (lazy: nothing is read).

    Workers read whole row groups, and only the columns asked for, through
    ranged GETs. Feature columns are numeric (integer, float or boolean;
    a null is missing: NaN, for an imputer to fill) or strings (text, for an
    encoder; a null there is refused).

    Parameters
    ----------
    path : str
        ``bucket/key`` or ``bucket/prefix/``; see :func:`read_csv`.
    label : str, default=None
        The column of the targets; numeric labels are read as float64, others
        as str.
    columns : list of str, default=None
        The feature columns, in this order; None: every column but the label
        and the weights.
    sample_weight : str, default=None
        A numeric column weighting the rows; not a feature.
    backend : str or dict, default=None
        Where the driver reads the dataset's row count and labels when
        scikit-learn's model selection asks for them (``len``, ``shape``,
        ``dataset.labels()``): the same value as the estimators'
        ``backend``. None: local files (Lithops' localhost storage). Fits and
        predictions read with their estimator's ``backend``.

    Returns
    -------
    dataset : Dataset
        The dataset, not read yet: pass it to ``fit``, ``predict``, ``score``
        and the other methods of the estimators, which read it where it lies.

    Examples
    --------
    >>> from sklearn_serverless import read_parquet
    >>> data = read_parquet("my-bucket/flights/", label="late", columns=["distance"])
    >>> data.columns
    ('distance',)
    """
    columns = _names(columns, "columns")
    if label is not None and label == sample_weight:
        raise ValueError(f"The column {label!r} cannot be both the label and the weights.")
    for name in (columns or ()) + tuple(n for n in (label, sample_weight) if n is not None):
        if not isinstance(name, str):
            raise ValueError(f"Parquet columns are named by str, got {name!r}.")
    return ParquetDataset(path, backend, label=label, columns=columns, sample_weight=sample_weight)


def read_npy(path: str, *, backend=None) -> NpyDataset:
    """A dataset of 2-D ``.npy`` objects, rows concatenated (lazy: nothing is read).

    Each worker fetches its row range with one ranged GET per object (one per
    column for a Fortran-ordered object, as ``np.save(frame.to_numpy())``
    writes). Objects must hold numbers, with the same number of columns;
    float32 stays float32 when every object is float32, else rows are float64.

    Parameters
    ----------
    path : str
        ``bucket/key`` or ``bucket/prefix/``; see :func:`read_csv`.
    backend : str or dict, default=None
        Where the driver reads the dataset's row count and labels when
        scikit-learn's model selection asks for them (``len``, ``shape``,
        ``dataset.labels()``): the same value as the estimators'
        ``backend``. None: local files (Lithops' localhost storage). Fits and
        predictions read with their estimator's ``backend``.

    Returns
    -------
    dataset : Dataset
        The dataset, not read yet: pass it to ``fit``, ``predict``, ``score``
        and the other methods of the estimators, which read it where it lies.

    Examples
    --------
    >>> from sklearn_serverless import read_npy
    >>> read_npy("my-bucket/X.npy")
    NpyDataset(path='my-bucket/X.npy')
    """
    return NpyDataset(path, backend)
