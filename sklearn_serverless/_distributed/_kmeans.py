"""Lloyd's k-means, distributed: each worker assigns its rows and sums them
per cluster; the coordinator turns the sums into the new centres.

Same arithmetic as scikit-learn's Lloyd: squared distances as
``||c||^2 - 2 x.c`` from a GEMM over row blocks, first minimum wins, centres
as weighted sums times the reciprocal weight, empty clusters relocated to the
farthest points, relative ``tol`` on the squared centre shift, strict
convergence when no label changes, and a final E-step.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ._runtime import STOP, Rounds

LLOYD, FARTHEST, FINAL = 1, 2, 3

#: Elements of one block of the distance matrix: small enough to stay in cache.
_BLOCK_ELEMENTS = 1 << 17


def block_size(n_clusters: int) -> int:
    """Rows per block of the distance matrix: small enough to stay in cache."""
    return max(256, min(8192, _BLOCK_ELEMENTS // max(n_clusters, 1)))


def _blocks(n_rows: int, block: int):
    for start in range(0, n_rows, block):
        yield start, min(start + block, n_rows)


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
    """Buffers :func:`assign` reuses when it labels the same rows every
    iteration (allocated per call, they doubled a round's compute at 10k rows)."""

    def __init__(self, n_rows: int, n_clusters: int, dtype, block: int):
        self.row_pointers = one_hot_pointers(n_rows)
        self.maxima = np.empty(n_rows, dtype=dtype)
        self.argmax = _RowArgmax(max(1, min(block, n_rows)), n_clusters, dtype)


def assign(X, centers: np.ndarray, sample_weight: np.ndarray, labels: np.ndarray,
           sums: np.ndarray | None = None, block: int | None = None,
           augmented: bool = False, best: bool = True,
           workspace: Workspace | None = None) -> np.ndarray | None:
    """Label every row of ``X`` with its nearest centre (into ``labels``) and,
    when ``sums`` is given, add the weighted rows into their cluster's sum.

    ``augmented`` means ``X`` is dense and ends with a column of ones (see
    :func:`with_ones_column`); ``sums`` then has that column too.
    ``workspace`` is a :class:`Workspace` for ``X``, kept by a caller that
    assigns the same rows every iteration.

    Returns ``max_c(x.c - ||c||^2 / 2)`` per row (when ``best``; in the
    workspace's buffer, valid until the next call): the scaled
    form of sklearn's ``min_c(||c||^2 - 2 x.c)``. Scaling by 2 is exact, so
    the decisions are sklearn's; ``||x||^2 - 2 * best`` is the squared distance.
    """
    sparse = sp.issparse(X)
    block = block or block_size(centers.shape[0])
    half_sq = 0.5 * np.einsum("ij,ij->i", centers, centers)
    k = centers.shape[0]
    if augmented:
        model_t = np.ascontiguousarray(np.hstack([centers, -half_sq[:, None]]).T)
    else:
        model_t = np.ascontiguousarray(centers.T)
    if workspace is None:
        workspace = Workspace(X.shape[0], k, centers.dtype, block)
    scores_of, argmax = workspace.maxima, workspace.argmax
    for start, stop in _blocks(X.shape[0], block):
        rows = X[start:stop]
        scores = np.asarray(rows @ model_t) if sparse else rows @ model_t
        if not augmented:
            scores -= half_sq
        argmax(scores, labels[start:stop], scores_of[start:stop])
    if sums is not None:
        # A (k, n) one-hot matrix of weights: the sums are one sparse product,
        # one pass over X (per block, building the matrix cost more than the product).
        one_hot = sp.csc_matrix((sample_weight, labels, workspace.row_pointers),
                                shape=(k, X.shape[0]))
        totals = one_hot @ X
        sums += totals.toarray() if sp.issparse(totals) else totals
    return scores_of if best else None


class _RowArgmax:
    """``argmax`` of each row of a (rows, k) block, first maximum winning as
    in numpy, and the maximum itself. numpy's row-wise argmax pays a call per
    row; here every step is a whole-array operation on a transposed copy
    (max, equality, then the smallest index among the maxima as the largest
    ``k - j``): 20-40% less time for the argmax at k=20."""

    def __init__(self, rows: int, k: int, dtype):
        self.k = k
        index_dtype = np.uint8 if k < 2**8 else np.uint16 if k < 2**16 else np.int64
        self.rank = (k - np.arange(k)).astype(index_dtype)[:, None]
        self.transposed = np.empty((k, rows), dtype=dtype)
        self.is_max = np.empty((k, rows), dtype=bool)
        self.ranked = np.empty((k, rows), dtype=index_dtype)
        self.top = np.empty(rows, dtype=index_dtype)

    def __call__(self, scores: np.ndarray, labels: np.ndarray, maxima: np.ndarray) -> None:
        n = scores.shape[0]
        transposed = self.transposed[:, :n]
        transposed[...] = scores.T
        np.max(transposed, axis=0, out=maxima)
        is_max = np.equal(transposed, maxima, out=self.is_max[:, :n])
        ranked = np.multiply(is_max, self.rank, out=self.ranked[:, :n])
        np.subtract(self.k, np.max(ranked, axis=0, out=self.top[:n]), out=labels,
                    casting="unsafe")


def labels_inertia(X, sample_weight: np.ndarray, centers: np.ndarray,
                   block: int | None = None) -> tuple[np.ndarray, float]:
    """Labels and ``sum_i w_i ||x_i - c_label||^2``, computed directly for
    dense data as sklearn's ``_inertia`` does."""
    labels = np.empty(X.shape[0], dtype=np.int32)
    block = block or block_size(centers.shape[0])
    best = assign(X, centers, sample_weight, labels, None, block)
    if sp.issparse(X):
        norms = np.asarray(X.multiply(X).sum(axis=1)).ravel()
        distances = np.maximum(norms - 2 * best, 0)
    else:
        distances = np.empty(X.shape[0], dtype=np.float64)
        for start, stop in _blocks(X.shape[0], block):
            diff = X[start:stop] - centers[labels[start:stop]]
            distances[start:stop] = np.einsum("ij,ij->i", diff, diff)
    return labels, float(distances @ sample_weight)


class Worker:
    """One partition's side of Lloyd's algorithm."""

    def __init__(self, data: dict, params: dict, worker: int, n_workers: int):
        self.sparse = sp.issparse(data["X"])
        # Dense rows arrive with a column of ones (with_ones_column): scores and
        # cluster weights come out of the same two products as distances and sums.
        self.X_ones = None if self.sparse else data["X"]
        self.X = data["X"] if self.sparse else self.X_ones[:, :-1]
        self.sample_weight = data["sample_weight"]
        self.worker, self.n_workers = worker, n_workers
        n = self.X.shape[0]
        self.labels = np.full(n, -1, dtype=np.int32)
        self.previous = np.full(n, -1, dtype=np.int32)
        self.final_labels = self.best_labels = self.labels
        self.block = block_size(params["n_clusters"])
        self.workspace = Workspace(n, params["n_clusters"], self.X.dtype, self.block)
        self.x_squared_norms = None

    def handle(self, code: int, flags: np.ndarray, arrays: list) -> np.ndarray | None:
        if code in (LLOYD, STOP) and flags.size and flags[0]:
            self.best_labels = self.final_labels  # the run just finished is the best so far
        if code == LLOYD:
            return self._lloyd_step(arrays[0], new_run=bool(flags[1]), inertia=bool(flags[2]))
        if code == FARTHEST:
            return self._farthest(arrays[0], int(flags[0]))
        if code == FINAL:
            return self._final(arrays[0])
        if code == STOP:
            return None
        raise ValueError(f"unknown k-means command {code}")

    def result(self) -> dict:
        return {"labels": self.best_labels}

    # kernels ------------------------------------------------------------------------------

    def _row_norms(self) -> np.ndarray:
        if self.x_squared_norms is None:
            if self.sparse:
                self.x_squared_norms = np.asarray(self.X.multiply(self.X).sum(axis=1)).ravel()
            else:
                self.x_squared_norms = np.einsum("ij,ij->i", self.X, self.X)
        return self.x_squared_norms

    def _lloyd_step(self, centers: np.ndarray, new_run: bool, inertia: bool) -> np.ndarray:
        k = centers.shape[0]
        if new_run:
            self.previous[:] = -1
        else:
            self.previous, self.labels = self.labels, self.previous
        X = self.X if self.sparse else self.X_ones
        sums = np.zeros((k, X.shape[1]), dtype=np.float64)
        best = assign(X, centers, self.sample_weight, self.labels, sums, self.block,
                      augmented=not self.sparse, best=inertia, workspace=self.workspace)
        if self.sparse:
            weights = np.bincount(self.labels, weights=self.sample_weight, minlength=k)
        else:
            sums, weights = sums[:, :-1], sums[:, -1]
        changed = np.count_nonzero(self.labels != self.previous)
        total = 0.0
        if inertia:
            distances = np.maximum(self._row_norms() - 2 * best, 0)
            total = float(distances @ self.sample_weight)
        return np.concatenate([sums.ravel(), weights, [changed, total]])

    def _farthest(self, centers: np.ndarray, n_empty: int) -> np.ndarray:
        """This worker's ``n_empty`` rows farthest from their centre, in this
        worker's block of the result (so summing the blocks concatenates them):
        each row as ``[distance, weight, label, x...]``, padded with distance -1."""
        d = centers.shape[1]
        width = d + 3
        out = np.zeros((self.n_workers, n_empty, width))
        mine = out[self.worker]
        mine[:, 0] = -1.0
        if self.sparse:
            diff_sq = (self._row_norms() - 2 * np.asarray(
                self.X.multiply(centers[self.labels]).sum(axis=1)).ravel()
                + np.einsum("ij,ij->i", centers, centers)[self.labels])
        else:
            diff = self.X - centers[self.labels]
            diff_sq = np.einsum("ij,ij->i", diff, diff)
        m = min(n_empty, diff_sq.shape[0])
        if m:
            far = np.argpartition(diff_sq, -m)[-m:]
            far = far[np.argsort(-diff_sq[far], kind="stable")]
            rows = self.X[far]
            mine[:m, 0] = diff_sq[far]
            mine[:m, 1] = self.sample_weight[far]
            mine[:m, 2] = self.labels[far]
            mine[:m, 3:] = rows.toarray() if self.sparse else rows
        return out.ravel()

    def _final(self, centers: np.ndarray) -> np.ndarray:
        """Final E-step: labels for the final centres and the exact inertia."""
        self.final_labels, inertia = labels_inertia(
            self.X, self.sample_weight, centers, self.block
        )
        return np.array([inertia])


def _relocate_empty(rounds: Rounds, centers, sums, weights, empty) -> None:
    """sklearn's ``_relocate_empty_clusters``: each empty cluster takes one of
    the points farthest from their centre, over all partitions."""
    d = centers.shape[1]
    n_empty = empty.size
    candidates = rounds(FARTHEST, centers, flags=(n_empty,)).reshape(-1, d + 3)
    candidates = candidates[candidates[:, 0] >= 0]
    order = np.argsort(-candidates[:, 0], kind="stable")[:n_empty]
    for new_cluster, row in zip(empty, candidates[order], strict=False):
        weight, old_cluster, x = row[1], int(row[2]), row[3:]
        sums[old_cluster] -= x * weight
        sums[new_cluster] = x * weight
        weights[new_cluster] = weight
        weights[old_cluster] -= weight


def coordinate(rounds: Rounds, params: dict) -> dict:
    """Run Lloyd from each initial set of centres; keep the lowest inertia."""
    max_iter, tol, verbose = params["max_iter"], params["tol"], params["verbose"]
    best = None
    keep = 0
    for run, init in enumerate(params["inits"]):
        centers = np.array(init, copy=True)
        k, d = centers.shape
        for i in range(max_iter):
            total = rounds(LLOYD, centers, flags=(keep, i == 0, verbose > 0))
            keep = 0
            sums = total[: k * d].reshape(k, d)
            weights = total[k * d: k * d + k]
            changed, inertia = total[-2], total[-1]
            empty = np.flatnonzero(weights == 0)
            if empty.size:
                _relocate_empty(rounds, centers, sums, weights, empty)
            scale = np.divide(1.0, weights, out=np.zeros_like(weights), where=weights > 0)
            new_centers = (sums * scale[:, None]).astype(centers.dtype)
            shift = float(((new_centers - centers) ** 2).sum())
            centers = new_centers
            if verbose:
                rounds.log(f"Iteration {i}, inertia {inertia}.")
            if changed == 0:
                if verbose:
                    rounds.log(f"Converged at iteration {i}: strict convergence.")
                break
            if shift <= tol:
                if verbose:
                    rounds.log(
                        f"Converged at iteration {i}: center shift {shift} within tolerance {tol}."
                    )
                break
        inertia = float(rounds(FINAL, centers)[0])
        if best is None or inertia < best["inertia"]:
            best = {"centers": centers, "inertia": inertia, "n_iter": i + 1, "run": run}
            keep = 1
    best["stop_flags"] = (keep,)
    return best
