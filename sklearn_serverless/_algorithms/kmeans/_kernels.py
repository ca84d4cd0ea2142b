"""The Lloyd step's kernels on a block of rows: squared distances as
``||c||^2 - 2 x.c`` from a GEMM over row blocks, the first minimum as
scikit-learn picks it, and the exact inertia. numpy and scipy only.

Rows, dense or CSR, take the compiled kernels of :mod:`._compiled`
(assignment, sums, changed labels and inertia in one pass) where the
package was installed with its extension built: chosen here, once, at
import; ``compiled`` is None without it, and callers read it at the time of
the call (tests set it to None to take the numpy path)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

try:
    from . import _compiled as compiled
except ImportError:  # the extension was not built (no C compiler): numpy only
    compiled = None

#: Elements of one block of the distance matrix: small enough to stay in cache.
_BLOCK_ELEMENTS = 1 << 17


def block_size(n_clusters: int) -> int:
    """Rows per block of the distance matrix: small enough to stay in cache."""
    return max(256, min(8192, _BLOCK_ELEMENTS // max(n_clusters, 1)))


def _blocks(n_rows: int, block: int):
    for start in range(0, n_rows, block):
        yield start, min(start + block, n_rows)


def row_range(X, start: int, stop: int):
    """Rows ``[start, stop)`` of dense or CSR ``X``. scipy's CSR row slice
    goes through a general submatrix routine (70% of a sparse round at
    200,000 x 100); this costs a copy of the values and column indices."""
    if not sp.issparse(X):
        return X[start:stop]
    low, high = X.indptr[start], X.indptr[stop]
    return sp.csr_matrix((X.data[low:high], X.indices[low:high], X.indptr[start:stop + 1] - low),
                         shape=(stop - start, X.shape[1]))


def with_ones_column(X: np.ndarray, subtract: np.ndarray | None = None) -> np.ndarray:
    """``[X - subtract, 1]``: with the model ``[C, -||c||^2 / 2]`` one GEMM
    gives the scores, and the per-cluster sums of the ones are the weights."""
    augmented = np.empty((X.shape[0], X.shape[1] + 1), dtype=X.dtype)
    if subtract is None:
        augmented[:, :-1] = X
    else:
        np.subtract(X, subtract, out=augmented[:, :-1])
    augmented[:, -1] = 1
    return augmented


def one_hot_pointers(n_rows: int) -> np.ndarray:
    """Column pointers of the (k, n) one-hot matrix (one entry per row), in
    the labels' int32 so scipy need not convert them (0.4 ms per 500k rows)."""
    return np.arange(n_rows + 1, dtype=np.int32 if n_rows < 2**31 - 1 else np.int64)


class Workspace:
    """Buffers a worker reuses every iteration for up to ``n_rows`` rows
    (allocated per call, they doubled a round's compute at 10k rows): the
    new labels and row maxima of :func:`assign`, the one-hot matrix's index
    arrays."""

    def __init__(self, n_rows: int, n_clusters: int, dtype, block: int):
        self.row_pointers = one_hot_pointers(n_rows)
        self.columns = np.empty(n_rows, dtype=self.row_pointers.dtype)  # one-hot rows
        self.labels = np.empty(n_rows, dtype=np.int32)
        self.maxima = np.empty(n_rows, dtype=dtype)
        self.argmax = _Argmax(max(1, min(block, n_rows)), n_clusters, dtype)


def row_norms(X) -> np.ndarray:
    """Squared norm of every row, dense or CSR."""
    if sp.issparse(X):
        return np.asarray(X.multiply(X).sum(axis=1)).ravel()
    return np.einsum("ij,ij->i", X, X)


def assign(X, centers: np.ndarray, labels: np.ndarray, maxima: np.ndarray,
           block: int | None = None, augmented: bool = False,
           argmax: _Argmax | None = None) -> None:
    """Label every row of ``X`` with its nearest centre (into ``labels``),
    and put ``max_c(x.c - ||c||^2 / 2)`` into ``maxima``: the scaled form of
    sklearn's ``min_c(||c||^2 - 2 x.c)``. Scaling by 2 is exact, so the
    decisions are sklearn's; ``||x||^2 - 2 * maxima`` is the squared distance.

    ``augmented`` means ``X`` is dense and ends with a column of ones (see
    :func:`with_ones_column`). ``argmax`` is an :class:`_Argmax` for
    ``block`` rows, kept by a caller that labels rows every iteration.
    """
    sparse = sp.issparse(X)
    k = centers.shape[0]
    block = block or block_size(k)
    half_sq = 0.5 * np.einsum("ij,ij->i", centers, centers)
    model = np.hstack([centers, -half_sq[:, None]]) if augmented else np.ascontiguousarray(centers)
    if argmax is None:
        argmax = _Argmax(max(1, min(block, X.shape[0])), k, centers.dtype)
    for start, stop in _blocks(X.shape[0], block):
        rows = row_range(X, start, stop)
        scores = argmax.scores[:, :stop - start]
        if sparse:
            scores[...] = (rows @ model.T).T
        else:
            # Scores laid out (k, rows): the per-row argmax then works on whole
            # rows of k, with no transposed copy (a quarter of the assignment).
            np.matmul(model, rows.T, out=scores)
        if not augmented:
            scores -= half_sq[:, None]
        argmax(scores, labels[start:stop], maxima[start:stop])


class _Argmax:
    """For each column of a (k, rows) block of scores: the first row of
    highest score, as numpy's argmax picks it, and the score. numpy's argmax
    over a row of k pays a call per row; here every step is a whole-array
    operation (max, equality, then the smallest index among the maxima as
    the largest ``k - j``). ``scores`` is the block buffer callers fill."""

    def __init__(self, rows: int, k: int, dtype):
        self.k = k
        index_dtype = np.uint8 if k < 2**8 else np.uint16 if k < 2**16 else np.int64
        self.rank = (k - np.arange(k)).astype(index_dtype)[:, None]
        self.scores = np.empty((k, rows), dtype=dtype)
        self.is_max = np.empty((k, rows), dtype=bool)
        self.ranked = np.empty((k, rows), dtype=index_dtype)
        self.top = np.empty(rows, dtype=index_dtype)

    def __call__(self, scores: np.ndarray, labels: np.ndarray, maxima: np.ndarray) -> None:
        n = scores.shape[1]
        np.max(scores, axis=0, out=maxima)
        is_max = np.equal(scores, maxima, out=self.is_max[:, :n])
        ranked = np.multiply(is_max, self.rank, out=self.ranked[:, :n])
        np.subtract(self.k, np.max(ranked, axis=0, out=self.top[:n]), out=labels,
                    casting="unsafe")


def labels_inertia(X, sample_weight: np.ndarray, centers: np.ndarray,
                   block: int | None = None) -> tuple[np.ndarray, float]:
    """Labels and ``sum_i w_i ||x_i - c_label||^2``, computed directly for
    dense data as sklearn's ``_inertia`` does."""
    if compiled is not None:
        return compiled_labels_inertia(X, sample_weight, centers)
    labels = np.empty(X.shape[0], dtype=np.int32)
    best = np.empty(X.shape[0], dtype=centers.dtype)
    block = block or block_size(centers.shape[0])
    assign(X, centers, labels, best, block)
    if sp.issparse(X):
        distances = np.maximum(row_norms(X) - 2 * best, 0)
    else:
        distances = np.empty(X.shape[0], dtype=np.float64)
        for start, stop in _blocks(X.shape[0], block):
            diff = X[start:stop] - centers[labels[start:stop]]
            distances[start:stop] = np.einsum("ij,ij->i", diff, diff)
    return labels, float(distances @ sample_weight)


def compiled_labels_inertia(X, sample_weight: np.ndarray, centers: np.ndarray,
                            augmented: bool = False) -> tuple[np.ndarray, float]:
    """:func:`labels_inertia` by the compiled kernels, for dense ``X`` (with
    ``augmented``, ending with a column of ones that is not a feature) or CSR."""
    labels = np.full(X.shape[0], -1, dtype=np.int32)
    if sp.issparse(X):
        out = compiled.lloyd_sparse(X, sample_weight, centers, labels, max(1, X.shape[0]),
                                    sums=False, inertia=True)
    else:
        out = compiled.lloyd(X, sample_weight, centers, labels, max(1, X.shape[0]),
                             augmented=augmented, sums=False, inertia=True)
    return labels, float(out[0, -1])


def squared_distances(rows: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """scikit-learn's ``euclidean_distances(squared=True)`` for dense rows:
    ``||x||^2 - 2 x.c + ||c||^2``, clipped at 0."""
    out = -2.0 * (rows @ centers.T)
    out += row_norms(rows)[:, None]
    out += row_norms(centers)[None, :]
    return np.maximum(out, 0, out=out)
