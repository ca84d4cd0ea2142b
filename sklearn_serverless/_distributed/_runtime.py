"""The worker loop shared by every algorithm.

One Lithops call per worker runs :func:`run_worker` for the whole fit. Worker
0 is the coordinator: it runs the algorithm (``coordinate``), and every round
publishes a command and the model, computes its own share, waits at the
barrier and reads the aggregate. The other workers :func:`follow`: fetch the
command, compute, contribute, until the stop command.

An algorithm is a module of this package with a ``Worker`` class (built
from the partition, the parameters and the :class:`~._sharing.Team`; its
commands: ``handle(code, flags, arrays) -> partial``, ``result() -> dict``)
and a ``coordinate(rounds, params) -> dict`` function. A partial is a vector
or a table of chunks (see :mod:`._sharing`).
"""

from __future__ import annotations

import importlib
import os
import time
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from .._placement import Partition, read_partition
from .._state import FitAborted, StateStore, StoreSpec, open_store
from .._state._codec import decode_arrays, encode_arrays
from ._prologue import DatasetWorker
from ._sharing import Team, fold_partials, fold_table

STOP = 0

#: Columns of the per-round time breakdown, as the paper measured it.
PHASES = ("compute", "publish", "barrier", "aggregate")


@dataclass(frozen=True)
class WorkerTask:
    """What one Lithops call receives: its id, its data and the fit's state."""

    worker: int
    algorithm: str
    params: dict
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
    _inject_faults(task.worker)
    store.check_in(task.worker)  # the driver waits a bounded time for every worker
    # Imports first: on localhost they overlap the driver writing the data.
    algorithm = importlib.import_module(f"{__package__}._{task.algorithm}")
    data = read_partition(task.partition, storage)
    team = Team(task.worker, task.store.n_workers, task.peers, _slowdown(task.worker))
    dataset = None
    if task.partition.kind == "dataset":
        # Raw rows: the first rounds make the algorithm's columns (see _prologue).
        dataset = importlib.import_module(f"{__package__}._{task.algorithm}_dataset")
        worker = DatasetWorker(data, task.params, team, dataset)
    else:
        worker = algorithm.Worker(data, task.params, team)
    clock = _Clock(time.perf_counter() - started)
    try:
        if task.worker == 0:
            rounds = Rounds(store, worker, clock)
            params = task.params
            if dataset is not None:
                params = dataset.dataset_prologue(rounds, params)
            result = algorithm.coordinate(rounds, params)
            result.update(params.get("for_driver", {}))
            rounds.stop(result.pop("stop_flags", ()))
        else:
            result = {}
            _follow(store, task.worker, worker, clock)
        result.update(worker.result())
    finally:
        worker.close()
    result["timings"] = clock.as_dict()
    return result


def _slowdown(worker: int) -> float:
    """Test hook ``SKLEARN_SERVERLESS_SLOW_WORKER=<id>:<seconds>``: that
    worker sleeps this long per chunk of rows it takes (a slow CPU)."""
    who, _, seconds = os.environ.get("SKLEARN_SERVERLESS_SLOW_WORKER", "").partition(":")
    return float(seconds) if who == str(worker) else 0.0


def _inject_faults(worker: int) -> None:
    """Fault injection for the test suite, off unless the variables are set:
    ``SKLEARN_SERVERLESS_FAIL_WORKER=<id>`` raises in that worker,
    ``SKLEARN_SERVERLESS_HANG_WORKERS=all`` keeps every worker from starting."""
    if os.environ.get("SKLEARN_SERVERLESS_FAIL_WORKER") == str(worker):
        raise RuntimeError("injected failure (SKLEARN_SERVERLESS_FAIL_WORKER)")
    if os.environ.get("SKLEARN_SERVERLESS_HANG_WORKERS") == "all":
        while True:
            time.sleep(1)


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


class Rounds:
    """The coordinator's side of a round: ``rounds(code, *arrays)`` returns
    the sum over all workers of their partial results."""

    def __init__(self, store: StateStore, worker, clock: _Clock):
        self.store, self.worker, self.clock = store, worker, clock
        self.count = 0
        self._last_end: float | None = None

    def __call__(self, code: int, *arrays: np.ndarray, flags=()) -> np.ndarray:
        t0 = time.perf_counter()
        if self._last_end is not None:
            # The coordinator's model update since the last round is aggregation work.
            self.clock.rows[-1][3] += t0 - self._last_end
        header = np.array([code, *flags], dtype=np.int64)
        self.store.publish(self.count, encode_arrays([header, *arrays]))
        t1 = time.perf_counter()
        partial = self.worker.handle(code, header[1:], list(arrays))
        t2 = time.perf_counter()
        _contribute(self.store, self.count, 0, partial)
        t3 = time.perf_counter()
        self.store.barrier(self.count)
        t4 = time.perf_counter()
        total = self.store.aggregate(self.count, fold_partials)
        t5 = time.perf_counter()
        self.clock.add(t2 - t1, (t1 - t0) + (t3 - t2), t4 - t3, t5 - t4, _helped(partial))
        self._last_end = t5
        self.count += 1
        return total

    def log(self, line: str) -> None:
        """A progress line, printed by the driver while the fit runs."""
        self.store.post_log(line)

    def stop(self, flags=()) -> None:
        header = np.array([STOP, *flags], dtype=np.int64)
        self.store.publish(self.count, encode_arrays([header]))
        self.worker.handle(STOP, header[1:], [])


def _follow(store: StateStore, worker_id: int, worker, clock: _Clock) -> None:
    round_ = 0
    while True:
        t0 = time.perf_counter()
        header, *arrays = decode_arrays(store.fetch(round_, worker_id))
        t1 = time.perf_counter()
        if clock.rows:
            clock.rows[-1][2] += t1 - t0  # waiting for the next round is the barrier
        code = int(header[0])
        partial = worker.handle(code, header[1:], arrays)
        if code == STOP:
            return
        t2 = time.perf_counter()
        _contribute(store, round_, worker_id, partial)
        clock.add(t2 - t1, time.perf_counter() - t2, 0.0, 0.0, _helped(partial))
        round_ += 1


def _contribute(store: StateStore, round_: int, worker: int, partial: np.ndarray) -> None:
    if store.spec.mode == "locked":
        partial = fold_table(partial)  # one accumulator: its rows are added as one
    store.contribute(round_, worker, partial)


def _helped(partial) -> int:
    """Chunks of other workers' rows in a partial table."""
    return partial.shape[0] - 1 if partial is not None and partial.ndim == 2 else 0
