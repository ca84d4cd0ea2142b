"""Data placement: the driver writes the training columns once, each worker
reads its own row partition once.

Columns are row-aligned arrays (``X``, ``sample_weight``, ``y``, ...); ``X``
may be scipy CSR. Two placements:

- ``'files'`` (localhost backend): each column is one ``.npy`` file in the
  fit's private folder (on ``/dev/shm`` where it fits), written while the
  workers start (:func:`plan_files` before the map, :func:`write_files`
  after it); each worker waits for the files, then reads its rows with one
  read per column. Nothing is serialised.
- ``'objects'`` (cloud backends): one storage object per worker and column,
  put through Lithops' storage API.
- ``'dataset'``: the data already lies in storage (or local files); each
  worker reads its part of the objects itself (:mod:`.._datasets`), the
  driver never holds it.

Both are raw ``.npy`` bytes read with ``allow_pickle=False``. A column may be
:class:`DerivedRows` (rows computed block by block as they are written). The
reading side runs in workers and imports numpy only (scipy.sparse when the
data is sparse).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from .._datasets._npy import read_header
from .._datasets._plan import even_cuts
from .._state._base import Backoff

_CSR_PARTS = ("data", "indices", "indptr")
#: Objects uploaded at once (the cloud path).
_UPLOAD_THREADS = 8
#: Bytes of one block of rows written at a time.
_WRITE_BLOCK_BYTES = 8 << 20


@dataclass(frozen=True)
class Partition:
    """Where one worker's rows ``[start, stop)`` of each column live."""

    kind: str  # 'files' or 'objects'
    location: str  # folder or bucket
    start: int
    stop: int
    dense: tuple[str, ...] = ()
    sparse: tuple[str, ...] = ()
    keys: dict = field(default_factory=dict)  # objects: (column, part) -> key
    widths: dict = field(default_factory=dict)  # sparse column -> number of columns
    timeout: float = 120.0  # files: how long a worker waits for the driver to write them
    spec: object = None  # datasets: the worker's ReadSpec (see sklearn_serverless._datasets)


@dataclass(frozen=True)
class DerivedRows:
    """A dense column computed from ``source`` a block of rows at a time,
    as it is written (k-means' centred ``[X, 1]``): the driver never holds
    the whole derived array. ``function`` maps rows to rows of ``width``."""

    source: np.ndarray
    function: Callable[[np.ndarray], np.ndarray]
    width: int
    dtype: np.dtype

    @property
    def shape(self) -> tuple[int, int]:
        return (self.source.shape[0], self.width)

    @property
    def nbytes(self) -> int:
        return self.shape[0] * self.width * np.dtype(self.dtype).itemsize

    def __getitem__(self, rows: slice) -> np.ndarray:
        return np.asarray(self.function(self.source[rows]), dtype=self.dtype)


def row_bounds(n_samples: int, n_workers: int) -> list[tuple[int, int]]:
    """Contiguous, near-equal row ranges, one per worker."""
    edges = even_cuts(n_samples, n_workers)
    return list(zip(edges[:-1], edges[1:], strict=True))


def _is_sparse(array) -> bool:
    return hasattr(array, "tocsr") and hasattr(array, "indptr")


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def plan_files(columns: dict, n_workers: int, folder: str, timeout: float) -> list[Partition]:
    """Each worker's row range of the files :func:`write_files` will write."""
    dense = tuple(name for name, array in columns.items() if not _is_sparse(array))
    sparse = tuple(name for name, array in columns.items() if _is_sparse(array))
    n_samples = _n_rows(next(iter(columns.values())))
    widths = {name: columns[name].shape[1] for name in sparse}
    return [
        Partition("files", folder, start, stop, dense, sparse, widths=widths, timeout=timeout)
        for start, stop in row_bounds(n_samples, n_workers)
    ]


def write_files(columns: dict, folder: str) -> None:
    """Write each column once under ``folder``. Each file appears whole (it
    is renamed into place), so a worker never reads one half-written."""
    for name, array in columns.items():
        if _is_sparse(array):
            for part in _CSR_PARTS:
                _write_npy(os.path.join(folder, f"{name}.{part}.npy"), getattr(array, part))
        else:
            _write_npy(os.path.join(folder, f"{name}.npy"), array)


def _write_npy(path: str, array) -> None:
    """``np.save``, a block of rows at a time (a :class:`DerivedRows` is
    computed block by block), then renamed into place."""
    if not isinstance(array, DerivedRows):
        array = np.asarray(array)
    n_rows = array.shape[0]
    row_bytes = max(1, array.nbytes // max(n_rows, 1))
    block = max(1, _WRITE_BLOCK_BYTES // row_bytes)
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(array.dtype)),
              "fortran_order": False, "shape": tuple(array.shape)}
    partial = f"{path}.partial"
    with open(partial, "wb") as file:
        np.lib.format.write_array_header_1_0(file, header)
        for start in range(0, n_rows, block):
            np.ascontiguousarray(array[start:start + block]).tofile(file)
    os.rename(partial, path)


def plan_objects(columns: dict, n_workers: int, bucket: str, prefix: str) -> list[Partition]:
    """One storage object per worker and column, under ``prefix``: the keys
    :func:`write_objects` will put (and cleanup deletes, written or not)."""
    n_samples = _n_rows(next(iter(columns.values())))
    partitions = []
    for worker, (start, stop) in enumerate(row_bounds(n_samples, n_workers)):
        keys, dense, sparse = {}, [], []
        for name, array in columns.items():
            if _is_sparse(array):
                sparse.append(name)
                for part in _CSR_PARTS:
                    keys[name, part] = f"{prefix}/{worker}/{name}.{part}.npy"
            else:
                dense.append(name)
                keys[name, None] = f"{prefix}/{worker}/{name}.npy"
        widths = {name: columns[name].shape[1] for name in sparse}
        partitions.append(
            Partition("objects", bucket, start, stop, tuple(dense), tuple(sparse), keys, widths)
        )
    return partitions


def write_objects(columns: dict, partitions: list[Partition], storage) -> None:
    """Put every planned object through a Lithops ``Storage``, several at a
    time (each put is mostly waiting for the network)."""

    def put(partition: Partition, name: str, part: str | None) -> None:
        rows = columns[name][partition.start:partition.stop]
        body = _npy_bytes(getattr(rows, part) if part else rows)
        storage.put_object(partition.location, partition.keys[name, part], body)

    puts = [(p, name, part) for p in partitions for name, part in p.keys]
    with ThreadPoolExecutor(max(1, min(_UPLOAD_THREADS, len(puts)))) as pool:
        # Every put is waited for, and the first failure is raised.
        for future in [pool.submit(put, *job) for job in puts]:
            future.result()


def delete_objects(partitions: list[Partition], storage) -> None:
    """Delete every planned object (put or not)."""
    from ._backends import delete_storage_objects

    keys = [key for p in partitions if p.kind == "objects" for key in p.keys.values()]
    if keys:
        delete_storage_objects(storage, partitions[0].location, keys)


def plan_dataset(resolved, n_workers: int) -> list[Partition]:
    """One partition per read of a resolved dataset (at most ``n_workers``)."""
    return [Partition("dataset", "", 0, 0, spec=spec) for spec in resolved.plan(n_workers)]


def read_partition(partition: Partition, storage=None) -> dict:
    """The worker's rows of every column, in private memory."""
    if partition.kind == "dataset":
        from .._datasets import read_rows

        return read_rows(partition.spec, storage)
    columns = {}
    n_rows = partition.stop - partition.start
    for name in partition.dense:
        columns[name] = _read(partition, storage, name, None, partition.start, partition.stop)
    for name in partition.sparse:
        import scipy.sparse as sp

        indptr = _read(partition, storage, name, "indptr", partition.start, partition.stop + 1)
        lo, hi = int(indptr[0]), int(indptr[-1])
        data = _read(partition, storage, name, "data", lo, hi)
        indices = _read(partition, storage, name, "indices", lo, hi)
        columns[name] = sp.csr_matrix(
            (data, indices, indptr - lo), shape=(n_rows, partition.widths[name])
        )
    return columns


def _read(partition: Partition, storage, name: str, part: str | None, start: int,
          stop: int) -> np.ndarray:
    """Rows ``start:stop`` of one array (a partition's object holds only its
    own rows; a file holds all of them)."""
    if partition.kind == "objects":
        body = storage.get_object(partition.location, partition.keys[name, part])
        return np.load(io.BytesIO(body), allow_pickle=False)
    suffix = f".{part}" if part else ""
    path = os.path.join(partition.location, f"{name}{suffix}.npy")
    return _read_file_rows(path, start, stop, partition.timeout)


def _wait_for_file(path: str, timeout: float) -> None:
    """Wait for the driver to write ``path``; its folder gone means the fit ended."""
    backoff = Backoff(timeout, first=1e-4, cap=5e-3)
    while not os.path.exists(path):
        if not os.path.isdir(os.path.dirname(path)):
            raise RuntimeError(f"the fit ended before its data {path} was written")
        if not backoff.wait():
            raise TimeoutError(f"the driver did not write {path} within {timeout:g} s")


def _read_file_rows(path: str, start: int, stop: int, timeout: float) -> np.ndarray:
    """Rows of a C-ordered .npy file with one read (a memory map faults in
    page by page: measured 3x slower on /dev/shm)."""
    _wait_for_file(path, timeout)
    with open(path, "rb") as file:
        shape, fortran, dtype = read_header(file)
        if fortran or dtype.hasobject:
            raise ValueError(f"{path}: expected a C-ordered numeric array")
        row_shape = shape[1:]
        row_bytes = dtype.itemsize * int(np.prod(row_shape, dtype=np.int64))
        out = np.empty((stop - start, *row_shape), dtype=dtype)
        file.seek(start * row_bytes, os.SEEK_CUR)
        file.readinto(memoryview(out.reshape(-1).view(np.uint8)))
    return out


def _n_rows(array) -> int:
    return array.shape[0]
