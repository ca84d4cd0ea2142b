"""Work sharing between the workers of one fit on one machine.

On localhost every partition is a file every worker can read, so a worker
that is through its own rows takes the last chunks of a slower worker's
rows instead of waiting at the barrier: a busy or throttled CPU (measured:
one of two vCPUs 5-12 ms slower per 60 ms round, at random) then costs
nobody a wait. On cloud backends each worker has only its own rows and
computes all of them.

Each owner's rows are cut into a fixed grid of chunks. The owner takes
chunks from the front, helpers take them one at a time from the back, under
an ``flock`` on a small file of counters. A worker's partial result is a
table of rows ``[owner, chunk, values...]``: its own chunks folded in chunk
order (``chunk = -1``), then each chunk it took from another owner. Folding
every owner's chunks in chunk order, then the owners in worker order
(:func:`fold_partials`), gives the same bits whoever computed which chunk:
the model never depends on timing.
"""

from __future__ import annotations

import fcntl
import os
import time
from dataclasses import dataclass, replace

import numpy as np

from .._state import sum_in_worker_order
from .._state._base import Backoff
from ._algorithm import Context
from ._partitions import Partition, read_partition

#: Column of a partial-result table row holding the owner, and the chunk.
OWNER, CHUNK = 0, 1
#: ``chunk`` of the row that folds an owner's own chunks.
OWN = -1
#: Most chunks an owner takes at once.
MAX_RUN = 8


@dataclass(frozen=True)
class Team(Context):
    """The :class:`Context` of an algorithm that shares work: when the
    workers share a machine, where every partition's rows are (``peers``)."""

    peers: tuple[Partition, ...] = ()

    @property
    def shares_rows(self) -> bool:
        return self.n_workers > 1 and len(self.peers) == self.n_workers

    @property
    def folder(self) -> str:
        return self.peers[0].location

    @property
    def n_samples(self) -> int:
        return self.peers[-1].stop

    def read_rows(self, owner: int, start: int, stop: int) -> dict:
        """Rows ``[start, stop)`` of ``owner``'s partition, every column."""
        partition = self.peers[owner]
        return read_partition(replace(partition, start=partition.start + start,
                                      stop=partition.start + stop))


def shared_array(path: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A zero-filled array in a file that every worker maps. Whichever worker
    comes first creates it; the size is fixed, so a second creation is a no-op."""
    size = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_size < size:
            os.ftruncate(fd, size)
    finally:
        os.close(fd)
    # A plain ndarray over the mapping (it keeps the map alive): np.memmap's
    # slicing costs ~5 us per view, a dozen views per round and worker.
    return np.memmap(path, dtype=dtype, mode="r+", shape=shape).view(np.ndarray)


class Chunks:
    """Who computes which chunk this round. ``n_chunks[w]`` is the size of
    owner ``w``'s grid. Without shared rows the owner takes all of its own."""

    def __init__(self, team: Team, n_chunks: list[int], pause: float = 0.0):
        self.me, self.n_workers = team.rank, team.n_workers
        self.n_chunks = n_chunks
        #: Seconds of sleep per chunk taken: a slow CPU, injected by tests.
        self.slow = pause
        self.epoch = 0
        self.fd = None
        self.timeout = team.peers[0].timeout if team.peers else 0.0
        if team.shares_rows:
            path = os.path.join(team.folder, "chunks")
            # [epoch, front, back] per owner: chunks [front, back) are still free.
            self.counters = shared_array(path, (team.n_workers, 3), np.int64)
            self.fd = os.open(path, os.O_RDWR)
        else:
            self.counters = np.zeros((team.n_workers, 3), dtype=np.int64)

    def open_round(self, epoch: int) -> None:
        """Put all of this owner's chunks up for round ``epoch``."""
        self.epoch = epoch
        with self._lock():
            self.counters[self.me] = (epoch, 0, self.n_chunks[self.me])

    def take(self) -> tuple[int, int] | None:
        """The next run of this owner's chunks ``[first, stop)``, or None when
        none is left: half of what is left per worker, at most
        :data:`MAX_RUN` (few lock round trips early, single chunks near the
        end where helpers are; a worker whose CPU stalls holds few chunks)."""
        with self._lock():
            _, front, back = self.counters[self.me]
            if front >= back:
                return None
            share = int(back - front) // (2 * self.n_workers)
            stop = front + max(1, min(share, MAX_RUN))
            self.counters[self.me, 1] = stop
        if self.slow:
            time.sleep(self.slow * (stop - front))
        return int(front), int(stop)

    def steal(self) -> tuple[int, int] | None:
        """``(owner, chunk)``: the last free chunk of the owner with the most
        left this round, or None when every owner's chunks are taken."""
        if self.fd is None:
            return None
        with self._lock():
            epoch, front, back = self.counters.T
            left = np.where(epoch == self.epoch, back - front, 0)
            left[self.me] = 0
            owner = int(np.argmax(left))
            if left[owner] <= 0:
                return None
            self.counters[owner, 2] -= 1
            chunk = int(self.counters[owner, 2])
        if self.slow:
            time.sleep(self.slow)
        return owner, chunk

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def _lock(self):
        return _Flock(self.fd, self.timeout)


class _Flock:
    """The counters' lock. Held for a few microseconds, and released by the
    kernel if its holder dies; still, a wait has a deadline."""

    def __init__(self, fd: int | None, timeout: float):
        self.fd, self.timeout = fd, timeout

    def __enter__(self) -> None:
        if self.fd is None:
            return
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            backoff = Backoff(self.timeout, first=1e-5, cap=1e-3)
            while True:
                try:
                    fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return
                except BlockingIOError:
                    if not backoff.wait():
                        raise TimeoutError(
                            f"the work-sharing lock was not free within {self.timeout:g} s"
                        ) from None

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)


def partial_table(own: np.ndarray, owner: int, taken: list[tuple[int, int, np.ndarray]]
                  ) -> np.ndarray:
    """A worker's partial result: its own chunks folded (``own``), then the
    chunks it computed for other owners as ``(owner, chunk, values)``."""
    table = np.empty((1 + len(taken), 2 + own.size), dtype=np.float64)
    table[0, :2] = owner, OWN
    table[0, 2:] = own
    for row, (other, chunk, values) in enumerate(taken, start=1):
        table[row, :2] = other, chunk
        table[row, 2:] = values
    return table


def fold_partials(parts: list[np.ndarray]) -> np.ndarray:
    """Sum of partial results in an order that does not depend on timing:
    plain vectors in worker order; tables (:func:`partial_table`) by owner,
    each owner's own fold first and then its other chunks in chunk order."""
    if parts[0].ndim == 1:
        return sum_in_worker_order(parts)
    rows = np.vstack(parts)
    if rows.shape[0] == len(parts) and (rows[:, CHUNK] == OWN).all() and (
            rows[:, OWNER] == np.arange(len(parts))).all():
        # Nobody computed another owner's chunks: the owners' own rows, in order.
        return sum_in_worker_order(list(rows[:, 2:]))
    rows = rows[np.lexsort((rows[:, CHUNK], rows[:, OWNER]))]
    owners = rows[:, OWNER]
    starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
    totals = []
    for start, stop in zip(starts, np.r_[starts[1:], len(rows)], strict=True):
        if rows[start, CHUNK] != OWN:
            raise RuntimeError(f"owner {int(owners[start])}'s own partial result is missing")
        totals.append(sum_in_worker_order(list(rows[start:stop, 2:])))
    return sum_in_worker_order(totals)


def fold_table(partial: np.ndarray) -> np.ndarray:
    """One worker's table summed into one vector (row order), for a store
    that adds every partial into one accumulator."""
    if partial.ndim == 1:
        return partial
    return sum_in_worker_order(list(partial[:, 2:]))
