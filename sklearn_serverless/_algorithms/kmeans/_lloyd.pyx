# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""The Lloyd step's loops, compiled when the package is built (see
:mod:`._compiled`, which prepares their arguments): scores of a block of
rows by one BLAS GEMM (scipy's, as scikit-learn's ``_k_means_lloyd``),
then one pass over the block's rows while they are in cache.

The arithmetic is IEEE's in a fixed order (the extension is built with
``-ffp-contract=off``: no fused multiply-add, whatever the CPU), so a chunk
of rows gives the same bits whichever worker computes it.
"""

from libc.math cimport INFINITY
from libc.stdint cimport int32_t, int64_t
from scipy.linalg.cython_blas cimport dgemm, sgemm

ctypedef fused floating:
    float
    double

ctypedef fused index_t:
    int32_t
    int64_t

#: Rows per GEMM block, counted from the start of each chunk.
BLOCK = 256
cdef enum:
    _BLOCK = 256


cdef inline void _gemm(const floating *model_t, const floating *rows, floating *scores,
                       int n_rows, int k, int m) noexcept nogil:
    """``scores (n_rows x k) = rows (n_rows x m) @ model_t (m x k)``, all
    C-ordered: in BLAS' column order, ``scores^T = model_t^T @ rows^T``."""
    cdef char trans = b"n"
    cdef floating one = 1.0, zero = 0.0
    if floating is double:
        dgemm(&trans, &trans, &k, &n_rows, &m, &one, <double *>model_t, &k,
              <double *>rows, &m, &zero, scores, &k)
    else:
        sgemm(&trans, &trans, &k, &n_rows, &m, &one, <float *>model_t, &k,
              <float *>rows, &m, &zero, scores, &k)


def lloyd_dense(const floating[:, ::1] X, const floating[::1] sample_weight,
                const floating[:, :, ::1] model_t, const floating[:, ::1] shift,
                const floating[:, :, ::1] centers, int32_t[:, ::1] labels,
                const int64_t[::1] runs, Py_ssize_t offset, double[:, :, ::1] out,
                Py_ssize_t chunk_rows, const unsigned char[::1] new_run,
                const unsigned char[::1] sums_wanted, const unsigned char[::1] inertia_wanted,
                const unsigned char[::1] labels_known,
                floating[:, ::1] scores, floating[:, :, ::1] accumulator,
                int64_t[::1] changed, double[::1] inertia):
    """Chunk by chunk of ``chunk_rows`` rows, for each run ``e`` of a batch
    (its labels in row ``runs[e]`` of ``labels``, from column ``offset``):
    scores ``X @ model_t[e] + shift[e]`` by GEMM blocks, the first maximum
    as the row's label (counting changes), the weighted sums of the rows by
    label, the inertia. Each block of rows is read once for all the runs.
    ``out[chunk, e]``: ``k x m`` sums, changed (every row with
    ``new_run[e]``), inertia. With ``labels_known[e]`` the labels are taken
    as they are (no scores: the centres are those that gave them)."""
    cdef Py_ssize_t n = X.shape[0], m = X.shape[1]
    cdef Py_ssize_t n_runs = model_t.shape[0], k = model_t.shape[2]
    cdef Py_ssize_t d = centers.shape[2]
    cdef Py_ssize_t n_chunks = out.shape[0]
    cdef Py_ssize_t chunk, first, last, block, start, stop, rows, e, r, i, c, j, best, run
    cdef floating top, score, weight, diff
    cdef double distance
    cdef bint fresh, known
    with nogil:
        for chunk in range(n_chunks):
            first = chunk * chunk_rows
            last = min(first + chunk_rows, n)
            accumulator[:, :, :] = 0
            changed[:] = 0
            inertia[:] = 0.0
            for block in range((last - first + _BLOCK - 1) // _BLOCK):
                start = first + block * _BLOCK
                stop = min(start + _BLOCK, last)
                rows = stop - start
                for e in range(n_runs):
                    known = labels_known[e]
                    if not known:
                        _gemm(&model_t[e, 0, 0], &X[start, 0], &scores[0, 0], <int>rows,
                              <int>k, <int>m)
                    run = runs[e]
                    fresh = new_run[e]
                    for r in range(rows):
                        i = start + r
                        if known:
                            best = labels[run, offset + i]
                        else:
                            # The first maximum, as numpy's argmax picks it.
                            best = 0
                            top = scores[r, 0] + shift[e, 0]
                            for c in range(1, k):
                                score = scores[r, c] + shift[e, c]
                                if score > top:
                                    top = score
                                    best = c
                            if labels[run, offset + i] != best or fresh:
                                changed[e] += 1
                                labels[run, offset + i] = <int32_t>best
                        weight = sample_weight[i]
                        if sums_wanted[e]:
                            for j in range(m):
                                accumulator[e, best, j] += weight * X[i, j]
                        if inertia_wanted[e]:
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


def lloyd_csr(const floating[::1] data, const index_t[::1] indices,
              const index_t[::1] indptr, const floating[::1] sample_weight,
              const floating[:, ::1] centers_t, const floating[::1] half_sq,
              const floating[:, ::1] centers, const double[::1] center_norms,
              int32_t[::1] labels, double[:, ::1] out, Py_ssize_t chunk_rows, bint new_run,
              bint sums_wanted, bint inertia_wanted, floating[::1] scores,
              floating[:, ::1] accumulator):
    """:func:`lloyd_dense` for CSR rows and one run, a row at a time as
    scikit-learn's ``_update_chunk_sparse``: each score ``x.c`` accumulates
    over the row's stored entries in their order, in the rows' dtype, for
    every centre at once (``centers_t`` is ``d x k``); the sums go to ``k x
    (d+1)`` with the weights last; the inertia is scikit-learn's
    ``_euclidean_sparse_dense``."""
    cdef Py_ssize_t k = centers_t.shape[1], m = accumulator.shape[1]
    cdef Py_ssize_t n = indptr.shape[0] - 1
    cdef Py_ssize_t n_chunks = out.shape[0]
    cdef Py_ssize_t chunk, first, last, i, c, j, p, low, high, best, column
    cdef floating value, top, score, weight, diff, centre
    cdef double distance, total
    cdef int64_t n_changed
    with nogil:
        for chunk in range(n_chunks):
            first = chunk * chunk_rows
            last = min(first + chunk_rows, n)
            accumulator[:, :] = 0
            n_changed = 0
            total = 0.0
            for i in range(first, last):
                for c in range(k):
                    scores[c] = 0
                low = indptr[i]
                high = indptr[i + 1]
                for p in range(low, high):
                    value = data[p]
                    column = indices[p]
                    for c in range(k):
                        scores[c] += value * centers_t[column, c]
                best = 0
                top = scores[0] - half_sq[0]
                for c in range(1, k):
                    score = scores[c] - half_sq[c]
                    if score > top:
                        top = score
                        best = c
                if labels[i] != best or new_run:
                    n_changed += 1
                    labels[i] = <int32_t>best
                weight = sample_weight[i]
                if sums_wanted:
                    for p in range(low, high):
                        accumulator[best, indices[p]] += data[p] * weight
                    accumulator[best, m - 1] += weight
                if inertia_wanted:
                    distance = 0.0
                    for p in range(low, high):
                        centre = centers[best, indices[p]]
                        diff = data[p] - centre
                        distance += diff * diff - centre * centre
                    distance += center_norms[best]
                    total += max(distance, 0.0) * weight
            if sums_wanted:
                for c in range(k):
                    for j in range(m):
                        out[chunk, c * m + j] = accumulator[c, j]
            out[chunk, k * m] = n_changed
            out[chunk, k * m + 1] = total


def nearest_dense(const floating[:, :] X, const double[:, ::1] centers_t,
                  const double[::1] center_norms, const double[::1] row_norms,
                  double[::1] closest, int64_t[::1] nearest, double[:, ::1] scores,
                  double[:, ::1] rows):
    """scikit-learn's ``euclidean_distances(squared=True)`` to every centre,
    ``(-2 x.c + ||x||^2) + ||c||^2`` clipped at 0, its minimum and first
    argmin per row, without the (n, k) matrix. ``X`` may be strided (a view
    without the ones column) and float32: each block is copied into the
    float64 ``rows``."""
    cdef Py_ssize_t n = X.shape[0], m = X.shape[1], k = centers_t.shape[1]
    cdef Py_ssize_t block, start, stop, r, i, c, j, best
    cdef double low, distance
    with nogil:
        for block in range((n + _BLOCK - 1) // _BLOCK):
            start = block * _BLOCK
            stop = min(start + _BLOCK, n)
            for r in range(stop - start):
                for j in range(m):
                    rows[r, j] = X[start + r, j]
            _gemm(&centers_t[0, 0], &rows[0, 0], &scores[0, 0], <int>(stop - start), <int>k,
                  <int>m)
            for r in range(stop - start):
                i = start + r
                best = 0
                low = INFINITY
                for c in range(k):
                    distance = max(-2.0 * scores[r, c] + row_norms[i] + center_norms[c], 0.0)
                    if distance < low:
                        low = distance
                        best = c
                closest[i] = low
                nearest[i] = best
