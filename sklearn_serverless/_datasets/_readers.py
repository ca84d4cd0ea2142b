"""The public readers: :func:`read_csv`, :func:`read_parquet` and
:func:`read_npy` name a dataset where it lies (lazy: nothing is read)."""

from __future__ import annotations

import numpy as np

from ._dataset import CSVDataset, NpyDataset, ParquetDataset


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
