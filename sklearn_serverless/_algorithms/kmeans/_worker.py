"""One partition's side of Lloyd's algorithm: each worker assigns its rows
and sums them per cluster, chunk by chunk, so that workers on one machine can
compute each other's chunks (see :mod:`sklearn_serverless.distributed._sharing`).
"""

from __future__ import annotations

import os

import numpy as np
import scipy.sparse as sp

from ...distributed._sharing import Chunks, Team, partial_table, shared_array
from . import _kernels
from ._kernels import Workspace, assign, block_size, labels_inertia, row_norms, row_range
from ._params import KMeansParams

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


class Worker:
    """One partition's side of Lloyd's algorithm.

    A Lloyd round works chunk by chunk (see :mod:`._sharing`): each chunk's
    cluster sums, weights and label changes come out on their own and are
    folded in chunk order, so a chunk gives the same bits whichever worker
    computes it. Labels live in a file every worker maps when rows are
    shared (a helper updates the owner's labels), in memory otherwise.
    """

    #: Seconds of sleep per chunk taken (a slow CPU): tests set it in a subclass.
    pause_per_chunk = 0.0

    def __init__(self, data: dict, params: KMeansParams, team: Team):
        self.sparse = sp.issparse(data["X"])
        # Dense rows arrive with a column of ones (with_ones_column): scores and
        # cluster weights come out of the same two products as distances and sums.
        self.X_ones = None if self.sparse else data["X"]
        self.X = data["X"] if self.sparse else self.X_ones[:, :-1]
        self.sample_weight = data["sample_weight"]
        self.team = team
        self.k = params.n_clusters
        n = self.X.shape[0]
        self.block = block_size(self.k)
        if team.shares_rows:
            owner_rows = [p.stop - p.start for p in team.peers]
            self.all_labels = shared_array(os.path.join(team.folder, "labels"),
                                           (team.n_samples,), np.int32)
            mine = team.peers[team.rank]
            self.labels = self.all_labels[mine.start:mine.stop]
        else:
            owner_rows = [n] * team.n_workers
            self.labels = np.full(n, -1, dtype=np.int32)
        self.chunk_rows = chunk_rows(self.block, max(owner_rows), self.k)
        self.owner_rows = owner_rows
        n_chunks = [-(-rows // self.chunk_rows) for rows in owner_rows]
        self.chunks = Chunks(team, n_chunks, self.pause_per_chunk)
        if team.shares_rows:  # every owner's chunks, numbered in worker order
            self.first_chunk = np.r_[0, np.cumsum(n_chunks)]
        else:  # its own only, from 0
            self.first_chunk = np.r_[np.zeros(team.n_workers, dtype=int), n_chunks[team.rank]]
        # Rows take the compiled kernel when there is one (read now, so a test
        # can take it away): a full sum costs it little, so no chunk_sums.
        self.compiled = _kernels.compiled
        self.chunk_sums = None if self.compiled else self._chunk_sums_store(team, n_chunks)
        if self.chunk_sums is not None:
            # Nothing is known of this worker's chunks yet (a replacement may
            # find a predecessor's file): their first round sums in full.
            first = int(self.first_chunk[team.rank])
            self.chunk_sums[first:first + n_chunks[team.rank], -1] = np.inf
        self.workspace = self.chunk_offsets = None
        if self.compiled is None:  # the numpy kernel's buffers
            workspace_rows = max(n, self.chunk_rows)
            self.workspace = Workspace(workspace_rows, self.k, self.X.dtype, self.block)
            # Row i of a run of whole chunks goes to one-hot row (i // chunk_rows) * k + label.
            self.chunk_offsets = (np.arange(workspace_rows) // self.chunk_rows * self.k).astype(
                self.workspace.row_pointers.dtype)
        self.borrowed: dict[tuple[int, int], dict] = {}
        # Labels of the last final E-step, and of the best run so far (None:
        # not seen by this worker, which then computes them from the centres).
        self.final_labels = self.best_labels = None
        self.x_squared_norms = None
        self.epoch = 0

    def handle(self, command: str, arrays: list) -> np.ndarray | None:
        if command == "lloyd":
            centers, (keep, new_run, inertia) = arrays
            if keep:
                self.best_labels = self.final_labels  # the run just finished is the best
            return self._lloyd_step(centers, new_run=bool(new_run), inertia=bool(inertia))
        if command == "farthest":
            return self._farthest(arrays[0], int(arrays[1][0]))
        if command == "final":
            return self._final(arrays[0])
        if command == "stop":
            keep, best_centers = arrays
            if keep[0]:
                self.best_labels = self.final_labels
            if self.best_labels is None:  # a replacement that did not see the best run end
                self.best_labels, _ = labels_inertia(self.X, self.sample_weight, best_centers,
                                                     self.block)
            return None
        raise ValueError(f"unknown k-means command {command!r}")

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
        if 2 * n_chunks[team.rank] * width * 8 > data_bytes:
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
        if self.compiled is not None:
            return self._compiled_step(centers, new_run, inertia)
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
        return partial_table(own, self.team.rank, taken)

    def _compiled_step(self, centers: np.ndarray, new_run: bool, inertia: bool) -> np.ndarray:
        """:meth:`_lloyd_step` by the compiled kernel: each run of chunks in
        one call that labels, sums and counts; full sums every round."""
        lloyd = self.compiled.lloyd_sparse if self.sparse else self.compiled.lloyd
        X = self.X if self.sparse else self.X_ones
        own = np.zeros(self.k * (self.X.shape[1] + 1) + 2)
        while (run := self.chunks.take()) is not None:
            start = run[0] * self.chunk_rows
            stop = min(run[1] * self.chunk_rows, X.shape[0])
            for chunk in lloyd(row_range(X, start, stop), self.sample_weight[start:stop],
                               centers, self.labels[start:stop], self.chunk_rows,
                               new_run=new_run, inertia=inertia):
                own += chunk
        taken = []
        while (got := self.chunks.steal()) is not None:
            owner, chunk = got
            rows = self._borrow(owner, chunk, False)
            n = rows["sample_weight"].shape[0]
            start = self.team.peers[owner].start + chunk * self.chunk_rows
            (partial,) = lloyd(rows["X"], rows["sample_weight"], centers,
                               self.all_labels[start:start + n], self.chunk_rows,
                               new_run=new_run, inertia=inertia)
            taken.append((owner, chunk, partial))
        return partial_table(own, self.team.rank, taken)

    def _fold_own(self, own: np.ndarray, rows: slice, new_run: bool, inertia: bool) -> None:
        """Add the partials of this worker's rows just labelled into ``own``,
        chunk by chunk."""
        X = self.X if self.sparse else self.X_ones
        new, maxima = self.workspace.labels, self.workspace.maxima
        norms = self._row_norms()[rows] if inertia else None
        first = int(self.first_chunk[self.team.rank]) + rows.start // self.chunk_rows
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
        """This worker's ``n_empty`` rows farthest from their centre, farthest
        first, each as ``[distance, weight, label, x...]`` (a gather)."""
        if self.sparse:
            diff_sq = (self._row_norms() - 2 * np.asarray(
                self.X.multiply(centers[self.labels]).sum(axis=1)).ravel()
                + np.einsum("ij,ij->i", centers, centers)[self.labels])
        else:
            diff = self.X - centers[self.labels]
            diff_sq = np.einsum("ij,ij->i", diff, diff)
        m = min(n_empty, diff_sq.shape[0])
        out = np.empty((m, centers.shape[1] + 3))
        if m:
            far = np.argpartition(diff_sq, -m)[-m:]
            far = far[np.argsort(-diff_sq[far], kind="stable")]
            rows = self.X[far]
            out[:, 0] = diff_sq[far]
            out[:, 1] = self.sample_weight[far]
            out[:, 2] = self.labels[far]
            out[:, 3:] = rows.toarray() if self.sparse else rows
        return out

    def _final(self, centers: np.ndarray) -> np.ndarray:
        """Final E-step: labels for the final centres and the exact inertia."""
        if self.compiled is not None:
            self.final_labels, inertia = _kernels.compiled_labels_inertia(
                self.X if self.sparse else self.X_ones, self.sample_weight, centers,
                augmented=not self.sparse)
            return np.array([inertia])
        self.final_labels, inertia = labels_inertia(
            self.X, self.sample_weight, centers, self.block
        )
        return np.array([inertia])
