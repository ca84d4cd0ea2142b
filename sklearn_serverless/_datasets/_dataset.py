"""Datasets that live in object storage: what the user names.

A :class:`Dataset` is lazy (no I/O). :meth:`Dataset.resolve` reads cheap
metadata on the driver (listings, CSV header lines, Parquet footers, .npy
headers) and gives a :class:`~._spec.ResolvedDataset`, whose ``plan`` cuts
the work into :class:`~._spec.ReadSpec` s; :func:`._read.read_rows` runs in a
worker. A dataset is also what scikit-learn's model selection indexes:
``len``, ``shape``, ``dataset[rows]`` (a :class:`DatasetView`) and
``labels()``.

Worker side: imports numpy only (pyarrow lazily, for Parquet and CSV).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ._paths import is_local, list_dataset
from ._rows import as_rows
from ._spec import ResolvedDataset, _format_module


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

    def resolve(self, storage: Any = None, recheck: bool = True) -> ResolvedDataset:
        """Reads the dataset's metadata (never its rows) on the driver.

        Parameters
        ----------
        storage : lithops.Storage, default=None
            Where the objects are. ``None`` or a Storage of Lithops' localhost
            backend: the path names local files.

        recheck : bool, default=True
            Metadata read before is kept on the dataset object and given
            again while one listing shows the objects unchanged; False:
            without that listing (a check of the features only).

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
        kept = self.cache().get("metadata")
        if not recheck and kept is not None:
            return kept[1]
        local = is_local(storage)
        try:
            listed = tuple(list_dataset(self.path, storage, local))
        except Exception:  # noqa: BLE001 - the format's resolve raises its own message
            listed = ()
        # Model selection resolves a dataset for every fit and score: its
        # metadata is kept while one listing shows the same object versions.
        if listed and kept is not None and kept[0] == listed:
            return kept[1]
        resolved = _format_module(self.format).resolve(self, storage, local)
        if listed and all(obj.version for obj in listed):
            self.cache()["metadata"] = (listed, resolved)
        return resolved

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

    def fetched(self) -> dict:
        """What the workers fetched of this dataset's objects so far.

        Every run that read it counts: fits, predictions, scores and the
        driver's reads (row count, labels), through this object and its
        views (``dataset[rows]``) and transformed views: over a whole
        search on it, ``GridSearchCV(...).fit(dataset)``.

        Returns
        -------
        fetched : dict
            ``'bytes'``: bytes fetched from storage; ``'reads'``: the
            workers' reads of their part; ``'cache_hits'``: those served by
            rows a pool worker kept from an earlier run (no byte fetched);
            ``'driver_bytes'``: the bytes of the driver's reads.
        """
        counted = self.cache().get("fetched", {})
        return {name: int(counted.get(name, 0))
                for name in ("bytes", "reads", "cache_hits", "driver_bytes")}

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

    def resolve(self, storage: Any = None, recheck: bool = True) -> ResolvedDataset:
        """The base's metadata, with the view's rows."""
        from dataclasses import replace

        return replace(self.base.resolve(storage, recheck), rows=self.rows)


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
