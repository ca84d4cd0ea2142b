"""Data placement: the driver writes the training columns once, each worker
reads its own row partition once.

Columns are row-aligned arrays (``X``, ``sample_weight``, ``y``, ...); ``X``
may be scipy CSR. The placements:

- ``'memory'`` (localhost backend, where this process's memory can be read
  by its workers: :func:`memory_readable`): nothing is written; each worker
  copies its rows straight from the driver's arrays into its own memory
  (``process_vm_readv``), computing a :class:`DerivedRows` column as it
  reads. Writing the rows to a file cost the driver more than scikit-learn's
  whole copy of X (shared memory pages come without huge pages: 15 ms for
  300,000 x 11 float64 against 4 ms).
- ``'files'`` (localhost backend otherwise): each column is one ``.npy`` file in the
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

import dataclasses
import io
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .._datasets._plan import even_cuts
from .._worker._partitions import Partition

_CSR_PARTS = ("data", "indices", "indptr")
#: Objects uploaded at once (the cloud path).
_UPLOAD_THREADS = 8
#: Bytes of one block of rows written at a time.
_WRITE_BLOCK_BYTES = 8 << 20


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


def plan_memory(columns: dict, n_workers: int, folder: str) -> tuple[list[Partition], list]:
    """Each worker's rows of the driver's arrays (see module doc; ``folder``:
    the fit's, where workers that share rows keep their shared files), and the
    arrays they are read from: the caller keeps these alive until the fit
    ends (a C-contiguous copy is made of a column that is not)."""
    held, keys, derive = [], {}, {}
    dense, sparse, widths = [], [], {}

    def address(name: str, part: str | None, array) -> None:
        array = np.ascontiguousarray(array)
        held.append(array)
        keys[name, part] = (os.getpid(), array.ctypes.data, array.dtype.str, array.shape[1:])

    for name, array in columns.items():
        if _is_sparse(array):
            sparse.append(name)
            widths[name] = array.shape[1]
            for part in _CSR_PARTS:
                address(name, part, getattr(array, part))
            continue
        dense.append(name)
        if isinstance(array, DerivedRows):
            derive[name] = (array.function, array.width, np.dtype(array.dtype).str)
            array = array.source
        address(name, None, array)
    n_samples = _n_rows(next(iter(columns.values())))
    partitions = [Partition("memory", folder, start, stop, tuple(dense), tuple(sparse),
                            keys, widths, derive=derive)
                  for start, stop in row_bounds(n_samples, n_workers)]
    return partitions, held


#: A child reads 8 bytes of its parent with process_vm_readv; exit 0 if they match.
_PROBE = """
import ctypes, sys
class V(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("length", ctypes.c_size_t)]
libc = ctypes.CDLL(None, use_errno=True)
libc.process_vm_readv.restype = ctypes.c_ssize_t
out = ctypes.create_string_buffer(8)
local, remote = V(ctypes.addressof(out), 8), V(int(sys.argv[2]), 8)
got = libc.process_vm_readv(int(sys.argv[1]), ctypes.byref(local), ctypes.c_ulong(1),
                            ctypes.byref(remote), ctypes.c_ulong(1), ctypes.c_ulong(0))
sys.exit(0 if got == 8 and out.raw == bytes.fromhex(sys.argv[3]) else 1)
"""

_readable: dict[int, bool] = {}


def memory_readable() -> bool:
    """Whether another process of this machine can read this one's memory
    (``process_vm_readv``: Linux, the same user, no ptrace restriction on
    this process), tried once per process by a child interpreter."""
    pid = os.getpid()
    if pid not in _readable:
        ok = False
        if sys.platform.startswith("linux"):
            secret = os.urandom(8)
            buffer = np.frombuffer(secret, dtype=np.uint8).copy()
            try:
                ok = subprocess.run([sys.executable, "-S", "-c", _PROBE, str(pid),
                                     str(buffer.ctypes.data), secret.hex()],
                                    capture_output=True, timeout=30).returncode == 0
            except (OSError, subprocess.SubprocessError):
                ok = False
        _readable[pid] = ok
    return _readable[pid]


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
    from .._common._storage import delete_storage_objects

    keys = [key for p in partitions if p.kind == "objects" for key in p.keys.values()]
    if keys:
        delete_storage_objects(storage, partitions[0].location, keys)


def plan_dataset(resolved, n_workers: int) -> list[Partition]:
    """One partition per read of a resolved dataset (at most ``n_workers``)."""
    return [Partition("dataset", "", 0, 0, spec=spec) for spec in resolved.plan(n_workers)]


def _n_rows(array) -> int:
    return array.shape[0]


def slots_of(resolved, partitions: list[Partition], n_workers: int) -> list[int]:
    """Where each partition of a dataset's view stands in the plan of every
    row (the plan of the fits): a view leaves out the reads that keep none
    of its rows, and a pool slot keeps the rows of its place in the plan."""
    if resolved.rows is None:
        return list(range(len(partitions)))
    everything = [spec.pieces for spec in dataclasses.replace(
        resolved, rows=None, counts=None).plan(n_workers)]
    return [everything.index(partition.spec.pieces) for partition in partitions]
