"""Lloyd's k-means, distributed: each worker assigns its rows and sums them
per cluster; the coordinator turns the sums into the new centres.

Same arithmetic as scikit-learn's Lloyd: squared distances as
``||c||^2 - 2 x.c`` from a GEMM over row blocks, first minimum wins, centres
as weighted sums times the reciprocal weight, empty clusters relocated to the
farthest points, relative ``tol`` on the squared centre shift, strict
convergence when no label changes, and a final E-step.
"""

from __future__ import annotations

import os

import numpy as np
import scipy.sparse as sp

from ._runtime import STOP, Rounds
from ._sharing import Chunks, Team, partial_table, shared_array

LLOYD, FARTHEST, FINAL = 1, 2, 3

#: Elements of one block of the distance matrix: small enough to stay in cache.
_BLOCK_ELEMENTS = 1 << 17


def block_size(n_clusters: int) -> int:
    """Rows per block of the distance matrix: small enough to stay in cache."""
    return max(256, min(8192, _BLOCK_ELEMENTS // max(n_clusters, 1)))


#: Chunks per worker (see :mod:`._sharing`): enough that the last ones, which
#: helpers take, are short; each is a whole number of blocks.
_CHUNKS_PER_WORKER = 64


#: A run of at most this many chunks is summed as soon as it is labelled.
_SHORT_RUN = 2

#: A chunk's sums are updated with its changed rows only (see
#: :meth:`Worker._partials`) until the rows changed since its last full sum
#: would exceed this fraction of its rows: then the update costs more than a
#: full sum, and its rounding could exceed the full sum's.
_UPDATE_BUDGET = 0.5


def chunk_rows(block: int, rows_per_worker: int, n_clusters: int) -> int:
    """Rows per chunk: whole blocks, so a chunk's scores come out of the
    same GEMM calls whoever computes it, and at least 4k rows, so a chunk's
    k x (d+1) sums stay within a quarter of its rows (at k=1000 and 256-row
    chunks they were four times the rows: 3x the compute per round)."""
    blocks = max(1, rows_per_worker // (block * _CHUNKS_PER_WORKER), -(-4 * n_clusters // block))
    return block * blocks


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


class Worker:
    """One partition's side of Lloyd's algorithm.

    A Lloyd round works chunk by chunk (see :mod:`._sharing`): each chunk's
    cluster sums, weights and label changes come out on their own and are
    folded in chunk order, so a chunk gives the same bits whichever worker
    computes it. Labels live in a file every worker maps when rows are
    shared (a helper updates the owner's labels), in memory otherwise.
    """

    def __init__(self, data: dict, params: dict, team: Team):
        self.sparse = sp.issparse(data["X"])
        # Dense rows arrive with a column of ones (with_ones_column): scores and
        # cluster weights come out of the same two products as distances and sums.
        self.X_ones = None if self.sparse else data["X"]
        self.X = data["X"] if self.sparse else self.X_ones[:, :-1]
        self.sample_weight = data["sample_weight"]
        self.team = team
        self.k = params["n_clusters"]
        n = self.X.shape[0]
        self.block = block_size(self.k)
        if team.shares_rows:
            owner_rows = [p.stop - p.start for p in team.peers]
            self.all_labels = shared_array(os.path.join(team.folder, "labels"),
                                           (team.n_samples,), np.int32)
            mine = team.peers[team.worker]
            self.labels = self.all_labels[mine.start:mine.stop]
        else:
            owner_rows = [n] * team.n_workers
            self.labels = np.full(n, -1, dtype=np.int32)
        self.chunk_rows = chunk_rows(self.block, max(owner_rows), self.k)
        self.owner_rows = owner_rows
        n_chunks = [-(-rows // self.chunk_rows) for rows in owner_rows]
        self.chunks = Chunks(team, n_chunks)
        if team.shares_rows:  # every owner's chunks, numbered in worker order
            self.first_chunk = np.r_[0, np.cumsum(n_chunks)]
        else:  # its own only, from 0
            self.first_chunk = np.r_[np.zeros(team.n_workers, dtype=int), n_chunks[team.worker]]
        self.chunk_sums = self._chunk_sums_store(team, n_chunks)
        workspace_rows = max(n, self.chunk_rows)
        self.workspace = Workspace(workspace_rows, self.k, self.X.dtype, self.block)
        # Row i of a run of whole chunks goes to one-hot row (i // chunk_rows) * k + label.
        self.chunk_offsets = (np.arange(workspace_rows) // self.chunk_rows * self.k).astype(
            self.workspace.row_pointers.dtype)
        self.borrowed: dict[tuple[int, int], dict] = {}
        self.final_labels = self.best_labels = self.labels
        self.x_squared_norms = None
        self.epoch = 0

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
        return {"labels": np.array(self.best_labels, dtype=np.int32)}

    def close(self) -> None:
        self.chunks.close()
        self.labels = self.final_labels = self.best_labels = self.all_labels = None
        self.chunk_sums = None

    # kernels ------------------------------------------------------------------------------

    def _chunk_sums_store(self, team: Team, n_chunks: list[int]) -> np.ndarray | None:
        """Every chunk's last sums, ``[sums..., weights..., rows changed since
        the last full sum]``, so that a round only adds the rows that changed
        cluster. In the fit folder when rows are shared (a helper updates the
        owner's chunks). None where the sums would outweigh half the rows
        (sparse rows with many columns, few rows per cluster)."""
        width = self.k * (self.X.shape[1] + 1) + 1
        if self.sparse:
            data_bytes = self.X.data.nbytes + self.X.indices.nbytes
        else:
            data_bytes = self.X_ones.nbytes
        if 2 * n_chunks[team.worker] * width * 8 > data_bytes:
            return None
        shape = (int(self.first_chunk[-1]), width)
        if team.shares_rows:
            return shared_array(os.path.join(team.folder, "chunk_sums"), shape, np.float64)
        return np.zeros(shape)

    def _row_norms(self) -> np.ndarray:
        if self.x_squared_norms is None:
            self.x_squared_norms = row_norms(self.X)
        return self.x_squared_norms

    def _lloyd_step(self, centers: np.ndarray, new_run: bool, inertia: bool) -> np.ndarray:
        """This worker's chunks from the front, then other owners' chunks
        from the back while any is left (see :mod:`._sharing`).

        Own chunks are labelled run by run; the big early runs are summed in
        one product when the runs get short (a product after each run slowed
        the next run's GEMM: 2-3 ms per 60 ms round), the short last runs at
        once, so that little is left to do when the chunks run out."""
        self.epoch += 1
        self.chunks.open_round(self.epoch)
        X = self.X if self.sparse else self.X_ones
        new, maxima = self.workspace.labels, self.workspace.maxima
        own = np.zeros(self.k * (self.X.shape[1] + 1) + 2)
        summed = done = 0
        while (run := self.chunks.take()) is not None:
            start, done = run[0] * self.chunk_rows, min(run[1] * self.chunk_rows, X.shape[0])
            assign(row_range(X, start, done), centers, new[start:done], maxima[start:done],
                   self.block, augmented=not self.sparse, argmax=self.workspace.argmax)
            if run[1] - run[0] <= _SHORT_RUN:
                self._fold_own(own, slice(summed, done), new_run, inertia)
                summed = done
        if summed < done:
            self._fold_own(own, slice(summed, done), new_run, inertia)
        taken = []
        while (got := self.chunks.steal()) is not None:
            owner, chunk = got
            rows = self._borrow(owner, chunk, inertia)
            n = rows["sample_weight"].shape[0]
            assign(rows["X"], centers, new[:n], maxima[:n], self.block,
                   augmented=not self.sparse, argmax=self.workspace.argmax)
            start = self.team.peers[owner].start + chunk * self.chunk_rows
            (partial,) = self._partials(rows["X"], rows["sample_weight"], new[:n],
                                        self.all_labels[start:start + n], new_run,
                                        maxima[:n], rows.get("norms"),
                                        int(self.first_chunk[owner]) + chunk)
            taken.append((owner, chunk, partial))
        return partial_table(own, self.team.worker, taken)

    def _fold_own(self, own: np.ndarray, rows: slice, new_run: bool, inertia: bool) -> None:
        """Add the partials of this worker's rows just labelled into ``own``,
        chunk by chunk."""
        X = self.X if self.sparse else self.X_ones
        new, maxima = self.workspace.labels, self.workspace.maxima
        norms = self._row_norms()[rows] if inertia else None
        first = int(self.first_chunk[self.team.worker]) + rows.start // self.chunk_rows
        for chunk in self._partials(row_range(X, rows.start, rows.stop),
                                    self.sample_weight[rows], new[rows],
                                    self.labels[rows], new_run, maxima[rows], norms, first):
            own += chunk

    def _borrow(self, owner: int, chunk: int, inertia: bool) -> dict:
        """Another owner's chunk of rows, read once and kept."""
        rows = self.borrowed.get((owner, chunk))
        if rows is None:
            start = chunk * self.chunk_rows
            stop = min(start + self.chunk_rows, self.owner_rows[owner])
            rows = self.borrowed[owner, chunk] = self.team.read_rows(owner, start, stop)
        if inertia and "norms" not in rows:
            X = rows["X"] if self.sparse else rows["X"][:, :-1]
            rows["norms"] = row_norms(X)
        return rows

    def _partials(self, X, sample_weight: np.ndarray, new: np.ndarray, labels: np.ndarray,
                  new_run: bool, maxima: np.ndarray, norms: np.ndarray | None,
                  first_chunk: int) -> np.ndarray:
        """For a run of whole chunks just labelled ``new`` (global chunk ids
        from ``first_chunk``): one row per chunk of cluster sums with the
        weights as last column (k x (d+1)), labels changed since ``labels``
        (then updated), and (given ``norms``) the inertia.

        A chunk's sums are its last sums plus the rows that changed cluster
        (in at the new label, out at the old), while the rows changed since
        its last full sum stay within :data:`_UPDATE_BUDGET` of its rows;
        otherwise a full sum. After the first rounds few labels change, so
        this skips a pass over the rows (a third of a round's compute).
        Either way a chunk's values depend only on its rows and its last
        sums, never on who computes it or with which other chunks."""
        n, k, workspace = X.shape[0], self.k, self.workspace
        starts = np.arange(0, n, self.chunk_rows)
        sizes = np.diff(np.r_[starts, n])
        out = np.empty((starts.size, k * (self.X.shape[1] + 1) + 2))
        changed = None if new_run else new != labels
        out[:, -2] = sizes if new_run else np.add.reduceat(changed, starts, dtype=np.int64)
        state = None
        if self.chunk_sums is not None:
            state = self.chunk_sums[first_chunk:first_chunk + starts.size]
            touched = state[:, -1] + out[:, -2]
            full = np.asarray(touched > _UPDATE_BUDGET * sizes) | new_run
        if state is None or full.all():
            columns = np.add(new, self.chunk_offsets[:n], out=workspace.columns[:n])
            one_hot = sp.csc_matrix((sample_weight, columns, workspace.row_pointers[:n + 1]),
                                    shape=(starts.size * k, n))
            sums = self._sums(one_hot, X, columns, sample_weight, starts.size * k)
        else:
            sums = self._updated_sums(X, sample_weight, new, labels, changed, full,
                                      state[:, :-1])
        labels[:] = new
        out[:, :-2] = sums.reshape(starts.size, -1)
        if state is not None:
            state[:, :-1] = out[:, :-2]
            state[:, -1] = np.where(full, 0, touched)
        out[:, -1] = 0.0
        if norms is not None:
            distances = np.maximum(norms - 2 * maxima, 0) * sample_weight
            out[:, -1] = np.add.reduceat(distances, starts)
        return out

    def _sums(self, one_hot, X, columns: np.ndarray, sample_weight: np.ndarray,
              n_rows: int) -> np.ndarray:
        """``one_hot @ X`` as a dense array with the weights as last column."""
        sums = one_hot @ X
        if self.sparse:
            weights = np.bincount(columns, weights=sample_weight, minlength=n_rows)
            sums = np.hstack([sums.toarray(), weights[:, None]])
        return sums

    def _updated_sums(self, X, sample_weight: np.ndarray, new: np.ndarray,
                      old: np.ndarray, changed: np.ndarray, full: np.ndarray,
                      last: np.ndarray) -> np.ndarray:
        """Sums of a run of chunks: ``last`` plus the changed rows (in at
        ``new``, out at ``old``) for the chunks not ``full``, every row for
        those that are, in one product over just those rows."""
        k = self.k
        n = X.shape[0]
        full_rows = np.repeat(full, self.chunk_rows)[:n]
        rows = np.flatnonzero(full_rows | changed)
        leaving = ~full_rows[rows]  # a changed row of an updated chunk also leaves its old cluster
        pointers = np.zeros(rows.size + 1, dtype=np.int64)
        np.cumsum(1 + leaving, out=pointers[1:])
        offsets = self.chunk_offsets[rows]
        weights = sample_weight[rows]
        columns = np.empty(pointers[-1], dtype=np.int64)
        values = np.empty(pointers[-1], dtype=sample_weight.dtype)
        columns[pointers[:-1]] = offsets + new[rows]
        values[pointers[:-1]] = weights
        second = pointers[:-1][leaving] + 1
        columns[second] = offsets[leaving] + old[rows[leaving]]
        values[second] = -weights[leaving]
        one_hot = sp.csc_matrix((values, columns, pointers), shape=(full.size * k, rows.size))
        sums = self._sums(one_hot, X[rows], columns, values, full.size * k)
        sums = sums.reshape(full.size, -1)
        return np.where(full[:, None], sums, last + sums)

    def _farthest(self, centers: np.ndarray, n_empty: int) -> np.ndarray:
        """This worker's ``n_empty`` rows farthest from their centre, in this
        worker's block of the result (so summing the blocks concatenates them):
        each row as ``[distance, weight, label, x...]``, padded with distance -1."""
        d = centers.shape[1]
        width = d + 3
        out = np.zeros((self.team.n_workers, n_empty, width))
        mine = out[self.team.worker]
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
            raw = total[: k * (d + 1)].reshape(k, d + 1)
            sums, weights = raw[:, :-1], raw[:, -1]
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
