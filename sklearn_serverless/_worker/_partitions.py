"""A worker's rows: where they lie (:class:`Partition`, planned by the
driver's :mod:`.._driver._placement`) and how the worker reads them, once,
into private memory. numpy only (scipy.sparse when the data is sparse)."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field

import numpy as np

from .._datasets._npy import read_header
from .._state._base import Backoff


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
