"""The Lloyd step compiled when the package is built (the Cython extension
:mod:`._lloyd`): in one pass over a block of rows, the nearest centre (the
first maximum of ``x.c - ||c||^2 / 2``, as numpy's argmax and
scikit-learn pick it), the per-cluster weighted sums and weights, the rows
whose label changed and (on request) the exact inertia.

The scores of a block of 256 rows come from one BLAS GEMM (scipy's
``cython_blas``), as in scikit-learn's ``lloyd_iter_chunked_dense``; the
rest is one loop over the block's rows while they are in cache. Sums
accumulate per chunk, row after row, in the rows' dtype (as the numpy
kernel's one-hot product and scikit-learn's Cython do), then go out as
float64 rows, one per chunk: a chunk gives the same bits whichever worker
computes it.

CSR rows (:func:`lloyd_sparse`) go one row at a time, as scikit-learn's
``_update_chunk_sparse`` does: a row's scores over its stored entries for
every centre, the first maximum, its entries added to its cluster's sums.

This module prepares the extension's arguments; importing it fails with
ImportError where the extension was not built (an install without a C
compiler), and :mod:`._kernels` then takes the numpy kernel.
"""

from __future__ import annotations

import numpy as np

from ._lloyd import BLOCK, lloyd_csr, lloyd_dense, nearest_dense


def lloyd_runs(X: np.ndarray, sample_weight: np.ndarray, centers: np.ndarray,
               labels: np.ndarray, runs: np.ndarray, chunk_rows: int, *,
               new_run: np.ndarray, sums: np.ndarray, inertia: np.ndarray,
               offset: int = 0, augmented: bool = True) -> np.ndarray:
    """One Lloyd pass over dense rows ``X`` (C-contiguous), chunk by chunk,
    for a batch of runs at once: ``centers`` is ``(R, k, d)``; run ``e``'s
    labels are row ``runs[e]`` of the ``labels`` table (C-contiguous int32,
    one row per run of the fit), row ``i`` of ``X`` at column ``offset + i``
    (updated in place); ``new_run``, ``sums``, ``inertia`` are ``(R,)``
    flags (or one for all).

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
                 augmented: bool, width: int, known=False):
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
            return np.ascontiguousarray(np.broadcast_to(values, (n_runs,)), dtype=np.uint8)

        self.new_run, self.sums, self.inertia = flags(new_run), flags(sums), flags(inertia)
        self.known = flags(known)
        self.scores = np.empty((BLOCK, k), dtype=dtype)
        self.accumulator = np.empty((n_runs, k, width), dtype=dtype)
        self.changed = np.zeros(n_runs, dtype=np.int64)
        self.inertias = np.zeros(n_runs)


def prepare_runs(centers: np.ndarray, dtype, *, new_run, sums, inertia, augmented: bool = True,
                 width: int, known=False) -> Prepared:
    """The per-round part of :func:`lloyd_runs` for rows of ``width`` columns;
    ``known`` (per run): its labels are those of ``centers`` already, only
    the inertia is computed from them (no scores)."""
    return Prepared(centers, dtype, new_run=new_run, sums=sums, inertia=inertia,
                    augmented=augmented, width=width, known=known)


def lloyd_prepared(X: np.ndarray, sample_weight: np.ndarray, prepared: Prepared,
                   labels: np.ndarray, runs: np.ndarray, chunk_rows: int, *,
                   offset: int = 0) -> np.ndarray:
    """:func:`lloyd_runs` with its per-round part computed beforehand."""
    X = np.ascontiguousarray(X)
    p = prepared
    out = np.zeros((max(1, -(-X.shape[0] // chunk_rows)), p.n_runs, p.out_width))
    lloyd_dense(X, np.ascontiguousarray(sample_weight, dtype=p.dtype), p.model_t, p.shift,
                p.centers, labels, np.ascontiguousarray(runs, dtype=np.int64), offset, out,
                chunk_rows, p.new_run, p.sums, p.inertia, p.known, p.scores, p.accumulator,
                p.changed, p.inertias)
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
    indices, indptr = X.indices, X.indptr
    if indices.dtype != indptr.dtype:  # scipy may mix int32 and int64 (a compiled variant each)
        indices, indptr = indices.astype(np.int64), indptr.astype(np.int64)
    lloyd_csr(X.data, indices, indptr, np.ascontiguousarray(sample_weight, dtype=dtype),
              np.ascontiguousarray(centers.T), half_sq, centers,
              np.einsum("ij,ij->i", centers, centers).astype(np.float64), labels, out,
              chunk_rows, bool(new_run), bool(sums), bool(inertia), np.empty(k, dtype=dtype),
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


def nearest(X: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Squared distance to the nearest centre and its index, for dense rows
    (k-means|| on a dataset), in float64 as :func:`._kernels.squared_distances`."""
    centers = np.ascontiguousarray(centers, dtype=np.float64)
    closest = np.empty(X.shape[0])
    found = np.empty(X.shape[0], dtype=np.int64)
    scores = np.empty((BLOCK, centers.shape[0]))
    rows = np.empty((BLOCK, X.shape[1]))
    nearest_dense(X, np.ascontiguousarray(centers.T), np.einsum("ij,ij->i", centers, centers),
                  np.einsum("ij,ij->i", X, X).astype(np.float64), closest, found, scores, rows)
    return closest, found
