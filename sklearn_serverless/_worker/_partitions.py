"""A worker's rows: where they lie (:class:`Partition`, planned by the
driver's :mod:`.._driver._placement`) and how the worker reads them, once,
into private memory. numpy only (scipy.sparse when the data is sparse).

Rows of kind ``'memory'`` are read from the driver's own arrays with
``process_vm_readv`` (Linux cross-memory attach, as MPI libraries move data
between processes of one machine): one copy, made by the worker into its own
memory, with no file written by the driver."""

from __future__ import annotations

import ctypes
import errno
import io
import os
from dataclasses import dataclass, field

import numpy as np

from .._datasets._npy import read_header
from .._state._base import Backoff


@dataclass(frozen=True)
class Partition:
    """Where one worker's rows ``[start, stop)`` of each column live."""

    kind: str  # 'files', 'memory', 'objects' or 'dataset'
    location: str  # folder (files, memory: the fit's) or bucket
    start: int
    stop: int
    dense: tuple[str, ...] = ()
    sparse: tuple[str, ...] = ()
    #: objects: (column, part) -> key; memory: (column, part) -> (the driver's
    #: pid, address, dtype, shape of a row) of the driver's array
    keys: dict = field(default_factory=dict)
    widths: dict = field(default_factory=dict)  # sparse column -> number of columns
    timeout: float = 120.0  # files: how long a worker waits for the driver to write them
    spec: object = None  # datasets: the worker's ReadSpec (see sklearn_serverless._datasets)
    #: memory: column -> (function, width, dtype) computing the column from the
    #: driver's rows as they are read (k-means' centred ``[X, 1]``)
    derive: dict = field(default_factory=dict)


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
    if partition.kind == "memory":
        return _read_memory_rows(partition, name, part, start, stop)
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


#: Bytes of the driver's rows read at a time into a buffer that stays in cache,
#: where a column is computed from them.
_DERIVE_BYTES = 1 << 19


def _read_memory_rows(partition: Partition, name: str, part: str | None, start: int,
                      stop: int) -> np.ndarray:
    """Rows ``start:stop`` of one of the driver's arrays (see module doc); a
    derived column is computed a cache-sized block of rows at a time."""
    pid, address, dtype, row_shape = partition.keys[name, part]
    dtype = np.dtype(dtype)
    row_bytes = dtype.itemsize * int(np.prod(row_shape, dtype=np.int64))
    address += start * row_bytes
    n_rows = stop - start
    derive = partition.derive.get(name) if part is None else None
    if derive is None:
        out = np.empty((n_rows, *row_shape), dtype=dtype)
        read_process_memory(pid, address, out)
        return out
    function, width, out_dtype = derive
    out = np.empty((n_rows, width), dtype=out_dtype)
    block = max(1, _DERIVE_BYTES // max(row_bytes, 1))
    buffer = np.empty((min(block, n_rows), *row_shape), dtype=dtype)
    for low in range(0, n_rows, block):
        rows = buffer[:min(block, n_rows - low)]
        read_process_memory(pid, address + low * row_bytes, rows)
        out[low:low + rows.shape[0]] = function(rows)
    return out


class _IOVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("length", ctypes.c_size_t)]


_LIBC: list = []


def read_process_memory(pid: int, address: int, out: np.ndarray) -> None:
    """Fill C-contiguous ``out`` with the bytes at ``address`` in process
    ``pid`` (``process_vm_readv``: the same user's process, Linux)."""
    if not _LIBC:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.process_vm_readv.restype = ctypes.c_ssize_t
        libc.process_vm_readv.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_ulong,
                                          ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]
        _LIBC.append(libc)
    base, total, done = out.ctypes.data, out.nbytes, 0
    while done < total:
        local = _IOVec(base + done, total - done)
        remote = _IOVec(address + done, total - done)
        got = _LIBC[0].process_vm_readv(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
        if got <= 0:
            code = ctypes.get_errno()
            if code == errno.ESRCH:
                raise RuntimeError(f"the driver process {pid} is gone: its rows cannot be read")
            raise OSError(code, f"reading the driver's rows (process {pid}): "
                                f"{os.strerror(code)}")
        done += got
