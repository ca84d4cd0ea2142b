"""A Lloyd round by the numpy kernel (where the compiled extension was
not built): labels by GEMM blocks (:func:`._kernels.assign`), cluster sums
by a one-hot sparse product, kept per chunk and updated with the rows that
changed cluster. A mixin of :class:`._worker.Worker`, whose attributes it
uses (rows, labels, chunks, workspace)."""

from __future__ import annotations

import os

import numpy as np
import scipy.sparse as sp

from ..._worker._sharing import shared_array
from ._batch import Batch
from ._kernels import assign, labels_inertia, row_norms, row_range

#: A run of at most this many chunks is summed as soon as it is labelled.
_SHORT_RUN = 2

#: A chunk's sums are updated with its changed rows only (see
#: :meth:`NumpyStep._partials`) until the rows changed since its last full
#: sum would exceed this fraction of its rows: then the update costs more
#: than a full sum, and its rounding could exceed the full sum's.
_UPDATE_BUDGET = 0.5


class NumpyStep:
    """The numpy kernel's side of :class:`._worker.Worker`."""

    def _chunk_sums_store(self, n_chunks: list[int]) -> np.ndarray | None:
        """Every run's and chunk's last sums, ``[sums..., weights..., rows
        changed since the last full sum]``, so that a round only adds the
        rows that changed cluster. In the fit folder when rows are shared
        (a helper updates the owner's chunks). None where the sums would
        outweigh half the rows (sparse rows with many columns, few rows per
        cluster, many runs)."""
        width = self.k * (self.X.shape[1] + 1) + 1
        if self.sparse:
            data_bytes = self.X.data.nbytes + self.X.indices.nbytes
        else:
            data_bytes = self.X_ones.nbytes
        if 2 * self.n_runs * n_chunks[self.team.rank] * width * 8 > data_bytes:
            return None
        shape = (self.n_runs, int(self.first_chunk[-1]), width)
        if self.team.shares_rows:
            return shared_array(os.path.join(self.team.folder, "chunk_sums"), shape, np.float64)
        return np.zeros(shape)

    def _row_norms(self) -> np.ndarray:
        if self.x_squared_norms is None:
            self.x_squared_norms = row_norms(self.X)
        return self.x_squared_norms

    def _numpy_step(self, centers: np.ndarray, batch: Batch
                    ) -> tuple[np.ndarray, list[tuple[int, int, np.ndarray]]]:
        """This worker's chunks from the front, then other owners' chunks
        from the back while any is left (see :mod:`._sharing`); each run of
        chunks taken is labelled for every entry of the batch in turn.

        A lone run labels its own chunks run by run and sums the big early
        runs in one product when the runs get short (a product after each
        run slowed the next run's GEMM: 2-3 ms per 60 ms round), the short
        last runs at once, so that little is left to do when the chunks run
        out. With several entries each is summed as soon as it is labelled
        (the one buffer of labels is then the next entry's). Returns this
        worker's own values and the chunks it computed for other owners."""
        X = self.X if self.sparse else self.X_ones
        new, maxima = self.workspace.labels, self.workspace.maxima
        own = np.zeros(batch.width)
        steps, finals = batch.steps, batch.finals
        lone = len(batch) == 1 and steps.size == 1
        summed = done = 0
        while (taken := self.chunks.take()) is not None:
            start = taken[0] * self.chunk_rows
            done = min(taken[1] * self.chunk_rows, X.shape[0])
            rows = row_range(X, start, done)
            for entry in steps:
                assign(rows, centers[entry], new[start:done], maxima[start:done], self.block,
                       augmented=not self.sparse, argmax=self.workspace.argmax)
                if not lone:
                    self._fold_own(own, batch, entry, slice(start, done))
                elif taken[1] - taken[0] <= _SHORT_RUN:
                    self._fold_own(own, batch, entry, slice(summed, done))
                    summed = done
            for entry in finals:
                run = batch.runs[entry]
                inertias = self._final_chunks(self._features(rows), self.sample_weight[start:done],
                                              centers[entry], self.labels[run, start:done])
                for inertia in inertias:  # chunk order, as the sums
                    own[batch.slot(entry)] += inertia
        if lone and summed < done:
            self._fold_own(own, batch, steps[0], slice(summed, done))
        borrowed = []
        while (got := self.chunks.steal()) is not None:
            owner, chunk = got
            rows = self._borrow(owner, chunk, batch.inertia)
            n = rows["sample_weight"].shape[0]
            start = self.team.peers[owner].start + chunk * self.chunk_rows
            values = np.zeros(batch.width)
            for entry in steps:
                run = batch.runs[entry]
                assign(rows["X"], centers[entry], new[:n], maxima[:n], self.block,
                       augmented=not self.sparse, argmax=self.workspace.argmax)
                (values[batch.slot(entry)],) = self._partials(
                    rows["X"], rows["sample_weight"], new[:n],
                    self.all_labels[run, start:start + n], batch.new_run[entry], maxima[:n],
                    rows["norms"] if batch.inertia else None,
                    int(self.first_chunk[owner]) + chunk, run)
            for entry in finals:
                run = batch.runs[entry]
                (values[batch.slot(entry)],) = self._final_chunks(
                    self._features(rows["X"]), rows["sample_weight"], centers[entry],
                    self.all_labels[run, start:start + n])
            borrowed.append((owner, chunk, values))
        return own, borrowed

    def _features(self, X):
        """Rows without the column of ones (dense rows carry one)."""
        return X if self.sparse else X[:, :-1]

    def _final_chunks(self, X, sample_weight: np.ndarray, centers: np.ndarray,
                      labels: np.ndarray) -> np.ndarray:
        """Final E-step on rows from a chunk boundary: labels into ``labels``
        and each chunk's exact inertia (as sklearn's ``_inertia``)."""
        inertias = []
        for start in range(0, X.shape[0], self.chunk_rows):
            stop = min(start + self.chunk_rows, X.shape[0])
            found, inertia = labels_inertia(row_range(X, start, stop),
                                            sample_weight[start:stop], centers, self.block)
            labels[start:stop] = found
            inertias.append(inertia)
        return np.array(inertias)

    def _fold_own(self, own: np.ndarray, batch: Batch, entry: int, rows: slice) -> None:
        """Add the partials of this worker's rows just labelled into the
        entry's values in ``own``, chunk by chunk."""
        X = self.X if self.sparse else self.X_ones
        new, maxima = self.workspace.labels, self.workspace.maxima
        run = batch.runs[entry]
        norms = self._row_norms()[rows] if batch.inertia else None
        first = int(self.first_chunk[self.team.rank]) + rows.start // self.chunk_rows
        slot = batch.slot(entry)
        for chunk in self._partials(row_range(X, rows.start, rows.stop),
                                    self.sample_weight[rows], new[rows],
                                    self.labels[run, rows], batch.new_run[entry], maxima[rows],
                                    norms, first, run):
            own[slot] += chunk

    def _partials(self, X, sample_weight: np.ndarray, new: np.ndarray, labels: np.ndarray,
                  new_run: bool, maxima: np.ndarray, norms: np.ndarray | None,
                  first_chunk: int, run: int) -> np.ndarray:
        """For a run of whole chunks just labelled ``new`` (global chunk ids
        from ``first_chunk``) by initialisation ``run``: one row per chunk
        of cluster sums with the weights as last column (k x (d+1)), labels
        changed since ``labels`` (then updated), and (given ``norms``) the
        inertia.

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
            state = self.chunk_sums[run, first_chunk:first_chunk + starts.size]
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
