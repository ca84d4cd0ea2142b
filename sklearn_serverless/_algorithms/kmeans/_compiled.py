"""The Lloyd step compiled with numba: in one pass over a block of rows,
the nearest centre (the first maximum of ``x.c - ||c||^2 / 2``, as numpy's
argmax and scikit-learn pick it), the per-cluster weighted sums and weights,
the rows whose label changed and (on request) the exact inertia.

The scores of a block of 256 rows come from one BLAS GEMM (numba calls
scipy's BLAS), as in scikit-learn's ``lloyd_iter_chunked_dense``; the rest
is one loop over the block's rows while they are in cache. Sums accumulate
per chunk, row after row, in the rows' dtype (as the numpy kernel's one-hot
product and scikit-learn's Cython do), then go out as float64 rows, one per
chunk: a chunk gives the same bits whichever worker computes it. No
``fastmath``: the arithmetic is IEEE's, in a fixed order, on every CPU.

CSR rows (:func:`lloyd_sparse`) go one row at a time, as scikit-learn's
``_update_chunk_sparse`` does: a row's scores over its stored entries for
every centre, the first maximum, its entries added to its cluster's sums.

Importing this module imports numba (and compiles nothing: each kernel is
compiled on its first call for the dtypes it meets, or loaded from numba's
on-disk cache, see :func:`_enable_cache`). :mod:`._kernels` imports it when
numba is installed and falls back to numpy otherwise.
"""

from __future__ import annotations

import os
import tempfile

import numba
import numpy as np
import scipy.sparse as sp

#: Rows per GEMM block, counted from the start of each chunk.
BLOCK = 256


def _enable_cache(dispatcher):
    """numba's on-disk cache, wherever a directory is writable: the user's
    ``NUMBA_CACHE_DIR``, the package's ``__pycache__``, the user's cache
    directory, then (a read-only package in a cloud function whose home is
    read-only too) a folder under the temporary directory. Without any, or
    should numba's caching internals change, the kernel compiles in every
    process."""
    try:
        from numba.core.caching import (
            CompileResultCacheImpl,
            FunctionCache,
            UserProvidedCacheLocator,
        )

        class TempDirLocator(UserProvidedCacheLocator):
            def __init__(self, py_func, py_file):
                super().__init__(py_func, py_file)
                root = os.path.join(tempfile.gettempdir(),
                                    f"sklearn-serverless-numba-{os.getuid()}")
                self._cache_path = os.path.join(root, self.get_suitable_cache_subpath(py_file))

            @classmethod
            def from_function(cls, py_func, py_file):
                return super(UserProvidedCacheLocator, cls).from_function(py_func, py_file)

        class Impl(CompileResultCacheImpl):
            _locator_classes = [*CompileResultCacheImpl._locator_classes, TempDirLocator]

        class Cache(FunctionCache):
            _impl_class = Impl

        dispatcher._cache = Cache(dispatcher.py_func)
    except Exception:  # noqa: BLE001 - no cache is slower, never wrong
        pass
    return dispatcher


def _jit(function):
    return _enable_cache(numba.njit(nogil=True)(function))


@_jit
def _lloyd(X, sample_weight, model_t, shift, centers, labels, runs, offset, out, chunk_rows,
           new_run, sums_wanted, inertia_wanted, scores, accumulator, changed, inertia):
    """Chunk by chunk of ``chunk_rows`` rows, for each run ``e`` of a batch
    (its labels in row ``runs[e]`` of the ``labels`` table, from column
    ``offset``): scores ``X @ model_t[e] + shift[e]`` by GEMM blocks, the
    first maximum as the row's label (counting changes), the weighted sums
    of the rows by label, the inertia.
    Each block of rows is read once for all the runs (it stays in cache).
    ``out[chunk, e]``: ``k x m`` sums, changed (every row with
    ``new_run[e]``), inertia."""
    n, m = X.shape
    n_runs, _, k = model_t.shape
    d = centers.shape[2]
    n_chunks = out.shape[0]
    for chunk in range(n_chunks):
        first = chunk * chunk_rows
        last = min(first + chunk_rows, n)
        accumulator[:, :, :] = 0
        changed[:] = 0
        inertia[:] = 0.0
        for start in range(first, last, BLOCK):
            stop = min(start + BLOCK, last)
            rows = stop - start
            block = scores[:rows]
            for e in range(n_runs):
                np.dot(X[start:stop], model_t[e], block)
                run_labels = labels[runs[e]]
                run_shift = shift[e]
                fresh = new_run[e]
                sums = sums_wanted[e]
                distances = inertia_wanted[e]
                for r in range(rows):
                    i = start + r
                    best = 0
                    top = block[r, 0] + run_shift[0]
                    for c in range(1, k):
                        score = block[r, c] + run_shift[c]
                        if score > top:
                            top = score
                            best = c
                    if run_labels[offset + i] != best or fresh:
                        changed[e] += 1
                        run_labels[offset + i] = best
                    weight = sample_weight[i]
                    if sums:
                        for j in range(m):
                            accumulator[e, best, j] += weight * X[i, j]
                    if distances:
                        distance = 0.0
                        for j in range(d):
                            diff = X[i, j] - centers[e, best, j]
                            distance += diff * diff
                        inertia[e] += distance * weight
        for e in range(n_runs):
            if sums_wanted[e]:
                for c in range(k):
                    for j in range(m):
                        out[chunk, e, c * m + j] = accumulator[e, c, j]
            out[chunk, e, k * m] = changed[e]
            out[chunk, e, k * m + 1] = inertia[e]


def lloyd_runs(X: np.ndarray, sample_weight: np.ndarray, centers: np.ndarray,
               labels: np.ndarray, runs: np.ndarray, chunk_rows: int, *,
               new_run: np.ndarray, sums: np.ndarray, inertia: np.ndarray,
               offset: int = 0, augmented: bool = True) -> np.ndarray:
    """One Lloyd pass over dense rows ``X`` (C-contiguous), chunk by chunk,
    for a batch of runs at once: ``centers`` is ``(R, k, d)``; run ``e``'s
    labels are row ``runs[e]`` of the ``labels`` table (C-contiguous int32,
    one row per run of the fit), row ``i`` of ``X`` at column ``offset + i``
    (updated in place: one array layout, one compiled variant per dtype);
    ``new_run``, ``sums``, ``inertia`` are ``(R,)`` flags (or one for all).

    ``augmented``: ``X`` ends with a column of ones, so one GEMM with the
    model ``[C, -||c||^2 / 2]`` gives the scores and the ones' sums are the
    weights. Returns ``(n_chunks, R, k * X.shape[1] + 2)`` float64: per
    chunk and run the ``k x X.shape[1]`` sums (with ``augmented``, ``k x
    (d+1)`` sums and weights; zeros without ``sums``), the count of changed
    labels (every row with ``new_run``: the first round from new centres),
    and the inertia (0 without ``inertia``). Each run's values are those of
    :func:`lloyd` on that run alone, to the bit."""
    prepared = prepare_runs(centers, X.dtype, new_run=new_run, sums=sums, inertia=inertia,
                            augmented=augmented, width=X.shape[1])
    return lloyd_prepared(X, sample_weight, prepared, labels, runs, chunk_rows, offset=offset)


class Prepared:
    """What :func:`lloyd_prepared` needs of a batch of runs, computed once a
    round: every call on a run of chunks reuses it (a round makes ~20)."""

    def __init__(self, centers: np.ndarray, dtype, *, new_run, sums, inertia,
                 augmented: bool, width: int):
        centers = np.ascontiguousarray(centers, dtype=dtype)
        n_runs, k = centers.shape[:2]
        # Per run, as for one run (a batched einsum may sum in another order).
        half_sq = np.stack([0.5 * np.einsum("ij,ij->i", c, c) for c in centers])
        if augmented:
            self.model_t = np.ascontiguousarray(
                np.concatenate([centers, -half_sq[:, :, None]], axis=2).transpose(0, 2, 1))
            self.shift = np.zeros((n_runs, k), dtype=dtype)
        else:
            self.model_t = np.ascontiguousarray(centers.transpose(0, 2, 1))
            self.shift = (-half_sq).astype(dtype)
        self.centers, self.dtype, self.n_runs, self.width = centers, np.dtype(dtype), n_runs, width
        self.out_width = k * width + 2

        def flags(values):
            return np.ascontiguousarray(np.broadcast_to(values, (n_runs,)), dtype=np.bool_)

        self.new_run, self.sums, self.inertia = flags(new_run), flags(sums), flags(inertia)
        self.scores = np.empty((BLOCK, k), dtype=dtype)
        self.accumulator = np.empty((n_runs, k, width), dtype=dtype)
        self.changed = np.zeros(n_runs, dtype=np.int64)
        self.inertias = np.zeros(n_runs)


def prepare_runs(centers: np.ndarray, dtype, *, new_run, sums, inertia, augmented: bool = True,
                 width: int) -> Prepared:
    """The per-round part of :func:`lloyd_runs` for rows of ``width`` columns."""
    return Prepared(centers, dtype, new_run=new_run, sums=sums, inertia=inertia,
                    augmented=augmented, width=width)


def lloyd_prepared(X: np.ndarray, sample_weight: np.ndarray, prepared: Prepared,
                   labels: np.ndarray, runs: np.ndarray, chunk_rows: int, *,
                   offset: int = 0) -> np.ndarray:
    """:func:`lloyd_runs` with its per-round part computed beforehand."""
    X = np.ascontiguousarray(X)
    p = prepared
    out = np.zeros((max(1, -(-X.shape[0] // chunk_rows)), p.n_runs, p.out_width))
    _lloyd(X, np.ascontiguousarray(sample_weight, dtype=p.dtype), p.model_t, p.shift, p.centers,
           labels, np.ascontiguousarray(runs, dtype=np.int64), offset, out, chunk_rows,
           p.new_run, p.sums, p.inertia, p.scores, p.accumulator, p.changed, p.inertias)
    return out


def lloyd(X: np.ndarray, sample_weight: np.ndarray, centers: np.ndarray, labels: np.ndarray,
          chunk_rows: int, *, new_run: bool = False, augmented: bool = True,
          sums: bool = True, inertia: bool = False) -> np.ndarray:
    """One Lloyd pass over dense rows ``X`` (C-contiguous), chunk by chunk,
    for one run: :func:`lloyd_runs` with ``centers`` of shape ``(k, d)`` and
    ``labels`` (int32, one per row) updated in place. Returns one float64
    row per chunk: the sums, the count of changed labels, the inertia."""
    out = lloyd_runs(X, sample_weight, np.asarray(centers)[None], labels[None],
                     np.zeros(1, dtype=np.int64), chunk_rows, new_run=new_run, sums=sums,
                     inertia=inertia, augmented=augmented)
    return out[:, 0]


@_jit
def _lloyd_sparse(data, indices, indptr, sample_weight, centers_t, half_sq, centers,
                  center_norms, labels, out, chunk_rows, new_run, sums_wanted, inertia_wanted,
                  scores, accumulator):
    """:func:`_lloyd` for CSR rows, one row at a time as scikit-learn's
    ``_update_chunk_sparse``: each score ``x.c`` accumulates over the row's
    stored entries in their order, in the rows' dtype, for every centre at
    once (``centers_t`` is ``d x k``); the sums go to ``k x (d+1)`` with the
    weights last; the inertia is scikit-learn's ``_euclidean_sparse_dense``."""
    k = centers_t.shape[1]
    m = accumulator.shape[1]
    n = indptr.shape[0] - 1
    n_chunks = out.shape[0]
    for chunk in range(n_chunks):
        first = chunk * chunk_rows
        last = min(first + chunk_rows, n)
        accumulator[:, :] = 0
        changed = 0
        inertia = 0.0
        for i in range(first, last):
            for c in range(k):
                scores[c] = 0
            low, high = indptr[i], indptr[i + 1]
            for p in range(low, high):
                value = data[p]
                centre = centers_t[indices[p]]
                for c in range(k):
                    scores[c] += value * centre[c]
            best = 0
            top = scores[0] - half_sq[0]
            for c in range(1, k):
                score = scores[c] - half_sq[c]
                if score > top:
                    top = score
                    best = c
            if labels[i] != best or new_run:
                changed += 1
                labels[i] = best
            weight = sample_weight[i]
            if sums_wanted:
                sums = accumulator[best]
                for p in range(low, high):
                    sums[indices[p]] += data[p] * weight
                sums[m - 1] += weight
            if inertia_wanted:
                distance = 0.0
                for p in range(low, high):
                    centre = centers[best, indices[p]]
                    diff = data[p] - centre
                    distance += diff * diff - centre * centre
                distance += center_norms[best]
                inertia += max(distance, 0.0) * weight
        if sums_wanted:
            for c in range(k):
                for j in range(m):
                    out[chunk, c * m + j] = accumulator[c, j]
        out[chunk, k * m] = changed
        out[chunk, k * m + 1] = inertia


def lloyd_sparse(X, sample_weight: np.ndarray, centers: np.ndarray, labels: np.ndarray,
                 chunk_rows: int, *, new_run: bool = False, sums: bool = True,
                 inertia: bool = False) -> np.ndarray:
    """:func:`lloyd` for CSR rows ``X`` (not centred, as scikit-learn keeps
    sparse data): the same output, ``k x (d+1)`` sums and weights, changed
    labels and inertia per chunk of ``chunk_rows`` rows."""
    dtype = X.dtype
    centers = np.ascontiguousarray(centers, dtype=dtype)
    k, d = centers.shape
    half_sq = 0.5 * np.einsum("ij,ij->i", centers, centers)
    n_chunks = max(1, -(-X.shape[0] // chunk_rows))
    out = np.zeros((n_chunks, k * (d + 1) + 2))
    _lloyd_sparse(X.data, X.indices, X.indptr, np.ascontiguousarray(sample_weight, dtype=dtype),
                  np.ascontiguousarray(centers.T), half_sq, centers,
                  np.einsum("ij,ij->i", centers, centers).astype(np.float64), labels, out,
                  chunk_rows, new_run, sums, inertia, np.empty(k, dtype=dtype),
                  np.empty((k, d + 1), dtype=dtype))
    return out


def lloyd_runs_sparse(X, sample_weight: np.ndarray, centers: np.ndarray, labels: np.ndarray,
                      runs: np.ndarray, chunk_rows: int, *, new_run, sums, inertia,
                      offset: int = 0) -> np.ndarray:
    """:func:`lloyd_runs` for CSR rows: run after run over the rows (a sparse
    row is cheap to read again), each as :func:`lloyd_sparse` with the labels
    of row ``runs[e]`` of the ``labels`` table from column ``offset``."""
    n_runs, k, d = np.shape(centers)
    n = X.shape[0]
    flags = [np.broadcast_to(np.asarray(f, dtype=bool), (n_runs,)) for f in (new_run, sums,
                                                                              inertia)]
    out = np.zeros((max(1, -(-n // chunk_rows)), n_runs, k * (d + 1) + 2))
    for e in range(n_runs):
        out[:, e] = lloyd_sparse(X, sample_weight, centers[e],
                                 labels[runs[e], offset:offset + n], chunk_rows,
                                 new_run=bool(flags[0][e]), sums=bool(flags[1][e]),
                                 inertia=bool(flags[2][e]))
    return out


@_jit
def _nearest(X, centers_t, center_norms, row_norms, closest, nearest, scores, rows):
    """scikit-learn's ``euclidean_distances(squared=True)`` to every centre,
    ``(-2 x.c + ||x||^2) + ||c||^2`` clipped at 0, its minimum and first
    argmin per row, without the (n, k) matrix. ``X`` may be strided (a
    view without the ones column): each block is copied into ``rows``."""
    n = X.shape[0]
    k = centers_t.shape[1]
    for start in range(0, n, BLOCK):
        stop = min(start + BLOCK, n)
        block = scores[:stop - start]
        rows[:stop - start] = X[start:stop]
        np.dot(rows[:stop - start], centers_t, block)
        for r in range(stop - start):
            i = start + r
            best = 0
            low = np.inf
            for c in range(k):
                distance = max(-2.0 * block[r, c] + row_norms[i] + center_norms[c], 0.0)
                if distance < low:
                    low = distance
                    best = c
            closest[i] = low
            nearest[i] = best


def nearest(X: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Squared distance to the nearest centre and its index, for dense rows
    (k-means|| on a dataset), in float64 as :func:`._kernels.squared_distances`."""
    centers = np.ascontiguousarray(centers, dtype=np.float64)
    closest = np.empty(X.shape[0])
    found = np.empty(X.shape[0], dtype=np.int64)
    scores = np.empty((BLOCK, centers.shape[0]))
    rows = np.empty((BLOCK, X.shape[1]))
    _nearest(X, np.ascontiguousarray(centers.T), np.einsum("ij,ij->i", centers, centers),
             np.einsum("ij,ij->i", X, X), closest, found, scores, rows)
    return closest, found


def warm_up() -> None:
    """Compile (or load from the cache) the kernels for the types a fit
    passes them, float64 and float32 (CSR rows with int32 indices): a
    process that forks workers (the warm server) calls this once, so that no
    worker pays for it."""
    for dtype in (np.float64, np.float32):
        X = np.ones((4, 3), dtype=dtype)
        labels = np.full(4, -1, dtype=np.int32)
        lloyd(X, np.ones(4, dtype=dtype), X[:2, :-1], labels, 2, inertia=True)
        nearest(X[:, :-1], X[:2, :-1])
        sparse = sp.csr_matrix(X[:, :-1])
        lloyd_sparse(sparse, np.ones(4, dtype=dtype), X[:2, :-1], labels, 2, inertia=True)
