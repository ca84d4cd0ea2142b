"""One partition's side of Lloyd's algorithm: each worker assigns its rows
and sums them per cluster, chunk by chunk, so that workers on one machine can
compute each other's chunks (see :mod:`sklearn_serverless._worker._sharing`),
for every initialisation still running at once (see :mod:`._batch`).
"""

from __future__ import annotations

import os

import numpy as np
import scipy.sparse as sp

from ..._worker._sharing import Chunks, Team, partial_table, shared_array
from . import _kernels
from ._batch import Batch, clustering_map
from ._kernels import Workspace, assign, block_size, row_range
from ._numpy_step import NumpyStep
from ._params import KMeansParams

#: Chunks per worker (see :mod:`._sharing`): enough that the last ones, which
#: helpers take, are short; each is a whole number of blocks.
_CHUNKS_PER_WORKER = 64

#: What a run's row of labels holds on this worker: nothing known (a
#: replacement worker), its last Lloyd step's labels, its final labels.
_UNKNOWN, _STEP, _FINAL = 0, 1, 2


def chunk_rows(block: int, rows_per_worker: int, n_clusters: int) -> int:
    """Rows per chunk: whole blocks, so a chunk's scores come out of the
    same GEMM calls whoever computes it, and at least 4k rows, so a chunk's
    k x (d+1) sums stay within a quarter of its rows (at k=1000 and 256-row
    chunks they were four times the rows: 3x the compute per round)."""
    blocks = max(1, rows_per_worker // (block * _CHUNKS_PER_WORKER), -(-4 * n_clusters // block))
    return block * blocks


class Worker(NumpyStep):
    """One partition's side of Lloyd's algorithm.

    A Lloyd round works chunk by chunk (see :mod:`._sharing`): each chunk's
    cluster sums, weights and label changes come out on their own and are
    folded in chunk order, so a chunk gives the same bits whichever worker
    computes it. Labels, one row per initialisation (run), live in a file
    every worker maps when rows are shared (a helper updates the owner's
    labels), in memory otherwise.

    Commands: ``'lloyd'`` (a :class:`._batch.Batch` of Lloyd steps and
    final E-steps), ``'farthest'`` (empty clusters' candidates),
    ``'same'`` (scikit-learn's same-clustering test between runs); its
    ``result`` gets which run's labels are the model's.
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
        # Data in memory brings its initial centres, a dataset its seeds.
        self.n_runs = max(1, len(params.inits), len(params.seeds))
        n = self.X.shape[0]
        self.block = block_size(self.k)
        if team.shares_rows:
            owner_rows = [p.stop - p.start for p in team.peers]
            self.all_labels = shared_array(os.path.join(team.folder, "labels"),
                                           (self.n_runs, team.n_samples), np.int32)
            mine = team.peers[team.rank]
            self.label_offset = mine.start
            self.labels = self.all_labels[:, mine.start:mine.stop]
        else:
            owner_rows = [n] * team.n_workers
            self.all_labels = self.labels = np.full((self.n_runs, n), -1, dtype=np.int32)
            self.label_offset = 0
        self.status = np.full(self.n_runs, _UNKNOWN, dtype=np.int8)
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
        self._prepared = None  # (epoch, the compiled kernel's per-round part)
        self.chunk_sums = None if self.compiled else self._chunk_sums_store(n_chunks)
        if self.chunk_sums is not None:
            # Nothing is known of this worker's chunks yet (a replacement may
            # find a predecessor's file): their first round sums in full.
            first = int(self.first_chunk[team.rank])
            self.chunk_sums[:, first:first + n_chunks[team.rank], -1] = np.inf
        self.workspace = self.chunk_offsets = None
        if self.compiled is None:  # the numpy kernel's buffers
            workspace_rows = max(n, self.chunk_rows)
            self.workspace = Workspace(workspace_rows, self.k, self.X.dtype, self.block)
            # Row i of a run of whole chunks goes to one-hot row (i // chunk_rows) * k + label.
            self.chunk_offsets = (np.arange(workspace_rows) // self.chunk_rows * self.k).astype(
                self.workspace.row_pointers.dtype)
        self.borrowed: dict[tuple[int, int], dict] = {}
        self.best_labels = None
        self.x_squared_norms = None
        self.epoch = 0

    def handle(self, command: str, arrays: list) -> np.ndarray | None:
        if command == "lloyd":
            centers, table, flags = arrays
            return self._lloyd_round(centers, Batch.from_message(table, flags, centers))
        if command == "farthest":
            centers, table = arrays
            return self._farthest(centers, np.asarray(table, dtype=np.int64).reshape(-1, 2))
        if command == "same":
            centers, runs, pairs = arrays
            for run_centers, run in zip(centers, runs, strict=True):
                self._ensure_final(int(run), run_centers)
            return np.stack([clustering_map(self.labels[a], self.labels[b], self.k)
                             for a, b in np.asarray(pairs, dtype=np.int64).reshape(-1, 2)])
        raise ValueError(f"unknown k-means command {command!r}")

    def result(self, best: np.ndarray, centers: np.ndarray) -> dict:
        """The chosen run's labels (``best`` and its centres: the coordinator's
        ``finish``)."""
        self._ensure_final(int(best[0]), centers)
        self.best_labels = np.array(self.labels[int(best[0])], dtype=np.int32)
        return {"labels": self.best_labels}

    def close(self) -> None:
        self.chunks.close()
        self.labels = self.best_labels = self.all_labels = None
        self.chunk_sums = None

    # a round ------------------------------------------------------------------------------

    def _lloyd_round(self, centers: np.ndarray, batch: Batch) -> np.ndarray:
        """Every entry of the batch on this worker's chunks from the front,
        then on other owners' chunks from the back while any is left."""
        self.epoch += 1
        self.chunks.open_round(self.epoch)
        if self.compiled is not None:
            own, borrowed = self._compiled_step(centers, batch)
        else:
            own, borrowed = self._numpy_step(centers, batch)
        self.status[batch.runs] = np.where(batch.final, _FINAL, _STEP)
        return partial_table(own, self.team.rank, borrowed)

    def _compiled_step(self, centers: np.ndarray, batch: Batch
                       ) -> tuple[np.ndarray, list[tuple[int, int, np.ndarray]]]:
        """:meth:`_lloyd_round` by the compiled kernel: each run of chunks in
        one call that labels, sums and counts for every entry of the batch
        (a block of dense rows read once for all); full sums every round."""
        own = np.zeros(batch.width)
        X = self._rows()
        while (taken := self.chunks.take()) is not None:
            start = taken[0] * self.chunk_rows
            stop = min(taken[1] * self.chunk_rows, X.shape[0])
            for chunk in self._compiled(row_range(X, start, stop),
                                        self.sample_weight[start:stop], centers, batch,
                                        self.label_offset + start):
                own += batch.pack(chunk)
        borrowed = []
        while (got := self.chunks.steal()) is not None:
            owner, chunk = got
            rows = self._borrow(owner, chunk, False)
            start = self.team.peers[owner].start + chunk * self.chunk_rows
            (values,) = self._compiled(rows["X"], rows["sample_weight"], centers, batch, start)
            borrowed.append((owner, chunk, batch.pack(values)))
        return own, borrowed

    def _rows(self):
        """The rows the kernels read: dense ones with their column of ones."""
        return self.X if self.sparse else self.X_ones

    def _compiled_labels(self, run: int, centers: np.ndarray) -> None:
        """Run ``run``'s labels for ``centers`` by the compiled kernel, nothing else."""
        kernel = self.compiled.lloyd_runs_sparse if self.sparse else self.compiled.lloyd_runs
        kernel(self._rows(), self.sample_weight, centers[None], self.all_labels,
               np.array([run]), self.chunk_rows, new_run=False, sums=False, inertia=False,
               offset=self.label_offset)

    def _compiled(self, X, sample_weight: np.ndarray, centers: np.ndarray,
                  batch: Batch, offset: int) -> np.ndarray:
        """The compiled kernel on rows whose labels start at column ``offset``
        of the labels table: sums for the steps, inertia for the final
        E-steps (and the steps when wanted)."""
        flags = {"new_run": batch.new_run, "sums": ~batch.final,
                 "inertia": batch.final | batch.inertia}
        if self.sparse:
            return self.compiled.lloyd_runs_sparse(X, sample_weight, centers, self.all_labels,
                                                   batch.runs, self.chunk_rows, **flags,
                                                   offset=offset)
        if self._prepared is None or self._prepared[0] != self.epoch:
            # Once a round: a round calls the kernel once per run of chunks.
            # A known final E-step reads the last step's labels: a worker that
            # has not computed them (a replacement) computes them instead.
            known = batch.known & (self.status[batch.runs] == _STEP)
            self._prepared = (self.epoch, self.compiled.prepare_runs(
                centers, X.dtype, **flags, width=X.shape[1], known=known))
        return self.compiled.lloyd_prepared(X, sample_weight, self._prepared[1],
                                            self.all_labels, batch.runs, self.chunk_rows,
                                            offset=offset)

    def _borrow(self, owner: int, chunk: int, inertia: bool) -> dict:
        """Another owner's chunk of rows, read once and kept."""
        rows = self.borrowed.get((owner, chunk))
        if rows is None:
            start = chunk * self.chunk_rows
            stop = min(start + self.chunk_rows, self.owner_rows[owner])
            rows = self.borrowed[owner, chunk] = self.team.read_rows(owner, start, stop)
        if inertia and "norms" not in rows:
            rows["norms"] = _kernels.row_norms(self._features(rows["X"]))
        return rows

    # what a replacement worker rebuilds ---------------------------------------------------

    def _ensure_step(self, run: int, centers: np.ndarray) -> None:
        """Run ``run``'s labels from its last Lloyd step (``centers``), as the
        step computed them, where this worker has not seen that step (a
        replacement whose first message is ``'farthest'``)."""
        if self.status[run] == _STEP:
            return
        n = self.X.shape[0]
        if self.compiled is not None:
            self._compiled_labels(run, centers)
        else:
            X = self.X if self.sparse else self.X_ones
            assign(X, centers, self.labels[run], self.workspace.maxima[:n], self.block,
                   augmented=not self.sparse, argmax=self.workspace.argmax)
        self.status[run] = _STEP

    def _ensure_final(self, run: int, centers: np.ndarray) -> None:
        """Run ``run``'s final labels from its final ``centers``, as its final
        E-step computed them, where this worker has not seen that E-step."""
        if self.status[run] == _FINAL:
            return
        if self.compiled is not None:
            self._compiled_labels(run, centers)
        else:
            self._final_chunks(self.X, self.sample_weight, centers, self.labels[run])
        self.status[run] = _FINAL

    # empty clusters -----------------------------------------------------------------------

    def _farthest(self, centers: np.ndarray, table: np.ndarray) -> np.ndarray:
        """For each run ``[run, n_empty]`` of ``table`` (``centers``: those of
        its last step), this worker's ``n_empty`` rows farthest from their
        centre, farthest first, each as ``[run, distance, weight, label,
        x...]`` (a gather). Every run's labels are rebuilt if need be, so
        that a replacement worker is ready for the next step."""
        out = [np.empty((0, centers.shape[2] + 4))]
        for run_centers, (run, n_empty) in zip(centers, table, strict=True):
            self._ensure_step(int(run), run_centers)
            if n_empty:
                rows = self._farthest_rows(run_centers, self.labels[run], int(n_empty))
                out.append(np.c_[np.full(rows.shape[0], run), rows])
        return np.vstack(out)

    def _farthest_rows(self, centers: np.ndarray, labels: np.ndarray, n_empty: int
                       ) -> np.ndarray:
        if self.sparse:
            diff_sq = (self._row_norms() - 2 * np.asarray(
                self.X.multiply(centers[labels]).sum(axis=1)).ravel()
                + np.einsum("ij,ij->i", centers, centers)[labels])
        else:
            diff = self.X - centers[labels]
            diff_sq = np.einsum("ij,ij->i", diff, diff)
        m = min(n_empty, diff_sq.shape[0])
        out = np.empty((m, centers.shape[1] + 3))
        if m:
            far = np.argpartition(diff_sq, -m)[-m:]
            far = far[np.argsort(-diff_sq[far], kind="stable")]
            rows = self.X[far]
            out[:, 0] = diff_sq[far]
            out[:, 1] = self.sample_weight[far]
            out[:, 2] = labels[far]
            out[:, 3:] = rows.toarray() if self.sparse else rows
        return out
