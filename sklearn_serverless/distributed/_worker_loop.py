"""The worker loop every algorithm runs in.

One Lithops call per worker runs :func:`run_worker` for the whole run.
Worker 0 is the coordinator: it runs the algorithm's ``coordinate`` through
:class:`Rounds`, and every round publishes a command and its arrays,
computes its own share, waits at the barrier and reads the reduction. The
other workers follow: fetch the command, compute, contribute, until
``'stop'``.

A message is ``[kind, command, *arrays]``: ``kind`` says how the round's
partials are combined (summed, or gathered in worker order into slots
whatever the state mode), ``command`` is the command's name as bytes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from .._execution._placement import Partition, read_partition
from .._state import FitAborted, StateStore, StoreSpec, open_store, sum_in_worker_order
from .._state._codec import decode_arrays, encode_arrays
from ._algorithm import Algorithm, Context
from ._sharing import Team, fold_partials, fold_table

STOP = "stop"
#: Kinds of round: how the partials are combined.
_SUM, _GATHER, _STOP = 0, 1, 2

#: Columns of the per-round time breakdown, as the paper measured it.
PHASES = ("compute", "publish", "barrier", "aggregate")


@dataclass(frozen=True)
class WorkerTask:
    """What one Lithops call receives: its rank, its data and the run's state."""

    worker: int
    algorithm: Algorithm
    params: Any
    partition: Partition
    store: StoreSpec
    n_threads: int | None = None
    #: Every worker's partition, when all can read every one (localhost files).
    peers: tuple[Partition, ...] = ()


def run_worker(task: WorkerTask, storage=None) -> dict:
    """Entry point of a Lithops call (``storage`` is injected by Lithops)."""
    started = time.perf_counter()
    store = open_store(task.store)
    try:
        with threadpool_limits(limits=task.n_threads):
            return _run(task, store, storage, started)
    except FitAborted:
        raise
    except BaseException as exc:
        try:  # wake the others; the store itself may be what failed
            store.abort(f"worker {task.worker} failed: {type(exc).__name__}: {exc}")
        except Exception:  # noqa: BLE001 - the original error is the one to report
            pass
        raise
    finally:
        store.close()


def _run(task: WorkerTask, store: StateStore, storage, started: float) -> dict:
    store.check_in(task.worker)  # the driver waits a bounded time for every worker
    algorithm = task.algorithm
    data = read_partition(task.partition, storage)
    n_workers = task.store.n_workers
    if algorithm.shares_work:
        context = Team(task.worker, n_workers, task.peers)
    else:
        context = Context(task.worker, n_workers)
    on_dataset = task.partition.kind == "dataset"
    worker = algorithm.build_worker(data, task.params, context, on_dataset)
    clock = _Clock(time.perf_counter() - started)
    try:
        if task.worker == 0:
            rounds = Rounds(store, worker, clock, algorithm.shares_work)
            params = task.params
            extra: dict = {}
            if on_dataset and algorithm.dataset_prologue is not None:
                params, extra = algorithm.dataset_prologue(rounds, params)
            result = dict(algorithm.coordinate(rounds, params))
            result.update(extra)
            rounds.stop()
        else:
            result = {}
            _follow(store, task.worker, worker, clock, algorithm.shares_work)
        if hasattr(worker, "result"):
            result.update(worker.result())
    finally:
        if hasattr(worker, "close"):
            worker.close()
    result["timings"] = clock.as_dict()
    return result


class _Clock:
    """Per-round seconds spent in each phase, for the fitted ``timings_``."""

    def __init__(self, load: float):
        self.load = load
        self.rows: list[list[float]] = []
        self.helped: list[int] = []

    def add(self, compute: float, publish: float, barrier: float, aggregate: float,
            helped: int = 0) -> None:
        self.rows.append([compute, publish, barrier, aggregate])
        self.helped.append(helped)

    def as_dict(self) -> dict:
        table = np.array(self.rows, dtype=np.float64).reshape(-1, len(PHASES))
        return {"load": self.load, "rounds": table,
                "helped": np.array(self.helped, dtype=np.int64)}


def _message(kind: int, command: str, arrays) -> bytes:
    name = np.frombuffer(command.encode(), dtype=np.uint8)
    return encode_arrays([np.array([kind], dtype=np.int64), name, *arrays])


class Rounds:
    """The coordinator's handle on the workers, given to ``coordinate``.

    Every call of :meth:`allreduce` or :meth:`gather` is one round: the
    command and its arrays go to every worker (the coordinator included),
    each answers with its partial result. In ``state_mode='lock_free'``
    partials are summed in worker order, never in arrival order, so that a
    result does not depend on timing; :meth:`gather` returns them in worker
    order in both modes.

    Built by the runtime on worker 0, never by your code.

    Parameters
    ----------
    store : StateStore
        Worker 0's connection to the run's shared state.
    worker : object
        Worker 0's own worker, which answers each command too.
    clock : object
        Where the time of each round's phases is recorded.
    shares_work : bool, default=False
        Partials are chunk tables (the built-in k-means).
    """

    def __init__(self, store: StateStore, worker, clock: _Clock, shares_work: bool = False):
        self.store, self.worker, self.clock = store, worker, clock
        self.shares_work = shares_work
        self.count = 0
        self._last_end: float | None = None
        self._final: list[np.ndarray] = []

    @property
    def n_workers(self) -> int:
        """Number of workers of the run."""
        return self.store.n_workers

    def allreduce(self, command: str, *arrays: np.ndarray) -> np.ndarray:
        """Sum every worker's answer to a command.

        Parameters
        ----------
        command : str
            The command each worker's ``handle`` answers (not ``'stop'``).
        *arrays : ndarray
            Numeric arrays sent to every worker with the command.

        Returns
        -------
        total : ndarray
            The sum of the partials, float64, of their common shape (every
            worker must answer with the same shape); added in worker order
            in ``state_mode='lock_free'``.
        """
        return self._round(_SUM, command, arrays)

    def gather(self, command: str, *arrays: np.ndarray) -> list[np.ndarray]:
        """Collect every worker's answer to a command.

        Parameters
        ----------
        command : str
            The command each worker's ``handle`` answers (not ``'stop'``).
        *arrays : ndarray
            Numeric arrays sent to every worker with the command.

        Returns
        -------
        partials : list of ndarray
            One numeric array per worker, in worker order, each of the shape
            and dtype that worker answered with.
        """
        return self._round(_GATHER, command, arrays)

    def log(self, line: str) -> None:
        """Send a progress line to the driver.

        The driver prints it while the run goes on when ``run`` was called
        with ``verbose=True`` (the estimators' ``verbose`` output).

        Parameters
        ----------
        line : str
            The line, without its newline.
        """
        self.store.post_log(line)

    def finish(self, *arrays: np.ndarray) -> None:
        """Set the arrays that the final ``'stop'`` command carries.

        When ``coordinate`` returns, every worker's ``handle`` receives
        ``'stop'`` with these arrays, before its ``result()`` is taken (for
        example, which of several candidate models to keep).

        Parameters
        ----------
        *arrays : ndarray
            Numeric arrays for every worker.
        """
        self._final = [np.asarray(a) for a in arrays]

    def _round(self, kind: int, command: str, arrays):
        if command == STOP:
            raise ValueError("'stop' is the runtime's own command")
        t0 = time.perf_counter()
        if self._last_end is not None:
            # The coordinator's model update since the last round is aggregation work.
            self.clock.rows[-1][3] += t0 - self._last_end
        arrays = [np.asarray(a) for a in arrays]
        self.store.publish(self.count, _message(kind, command, arrays))
        t1 = time.perf_counter()
        partial = self.worker.handle(command, list(arrays))
        t2 = time.perf_counter()
        gather = kind == _GATHER
        _contribute(self.store, self.count, 0, partial, self.shares_work and not gather, gather)
        t3 = time.perf_counter()
        self.store.barrier(self.count, slots=gather)
        t4 = time.perf_counter()
        if gather:
            total = self.store.aggregate(self.count, list, slots=True)
        else:
            fold = fold_partials if self.shares_work else sum_in_worker_order
            total = self.store.aggregate(self.count, fold)
        t5 = time.perf_counter()
        self.clock.add(t2 - t1, (t1 - t0) + (t3 - t2), t4 - t3, t5 - t4,
                       _helped(partial) if self.shares_work else 0)
        self._last_end = t5
        self.count += 1
        return total

    def stop(self) -> None:
        """Send ``'stop'`` to every worker: the runtime's call, after ``coordinate``."""
        self.store.publish(self.count, _message(_STOP, STOP, self._final))
        self.worker.handle(STOP, list(self._final))


def _follow(store: StateStore, worker_id: int, worker, clock: _Clock, shares_work: bool) -> None:
    round_ = 0
    while True:
        t0 = time.perf_counter()
        header, name, *arrays = decode_arrays(store.fetch(round_, worker_id))
        t1 = time.perf_counter()
        if clock.rows:
            clock.rows[-1][2] += t1 - t0  # waiting for the next round is the barrier
        kind, command = int(header[0]), name.tobytes().decode()
        partial = worker.handle(command, arrays)
        if kind == _STOP:
            return
        t2 = time.perf_counter()
        gather = kind == _GATHER
        _contribute(store, round_, worker_id, partial, shares_work and not gather, gather)
        clock.add(t2 - t1, time.perf_counter() - t2, 0.0, 0.0,
                  _helped(partial) if shares_work else 0)
        round_ += 1


def _contribute(store: StateStore, round_: int, worker: int, partial, table: bool,
                gather: bool) -> None:
    if partial is None:
        raise TypeError(f"worker {worker} answered round {round_} with None, not an array")
    partial = np.asarray(partial)
    if gather:
        store.contribute(round_, worker, partial, slots=True)
        return
    if table and store.spec.mode == "locked":
        partial = fold_table(partial)  # one accumulator: its rows are added as one
    store.contribute(round_, worker, partial.astype(np.float64, copy=False))


def _helped(partial) -> int:
    """Chunks of other workers' rows in a partial table."""
    return partial.shape[0] - 1 if isinstance(partial, np.ndarray) and partial.ndim == 2 else 0
