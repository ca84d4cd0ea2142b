"""The worker loop every algorithm runs in.

One Lithops call per worker runs :func:`run_worker` for the whole run.
Worker 0 is the coordinator: it runs the algorithm's ``coordinate`` through
:class:`Rounds`, and every round publishes a command and its arrays,
computes its own share, waits at the barrier and reads the reduction. The
other workers follow: fetch the command, compute, contribute, until
``'stop'``.

The run's progress lives in the store, so that functions can come and go:
each round's result is recorded with the next round's message, and a
worker keeps a lease alive while it runs. A new generation of workers (after
a worker was lost, or to hand over before the function time limit) claims
the slots, rebuilds each worker's state by handling again the setup
messages and the last message (answers discarded), and the coordinator runs
``coordinate`` again from the start, answered from the records until they
run out: the same model, whichever functions computed it.

A message is ``[kind, command, *arrays]``: ``kind`` says how the round's
partials are combined (summed, or gathered in worker order into slots
whatever the state mode), ``command`` is the command's name as bytes.
"""

from __future__ import annotations

import base64
import contextlib
import os
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController

from .._execution._placement import Partition, read_partition
from .._process import process_alive
from .._state import FitAborted, StateStore, StoreSpec, open_store, sum_in_worker_order
from .._state._codec import decode_arrays, encode_arrays
from ._algorithm import Algorithm, Context
from ._sharing import Team, fold_partials, fold_table

STOP = "stop"
#: Kinds of round: how the partials are combined; a hand-over ends a generation.
_SUM, _GATHER, _STOP, _HANDOVER = 0, 1, 2, 3

#: A log entry starting with this character is a report (arrays), not a line.
_REPORT = "\x1e"

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
    #: Which generation of workers this call belongs to (0: the first).
    generation: int = 0
    #: Seconds a lease lasts; the worker renews it five times as often.
    lease: float = 10.0
    #: Seconds the platform lets a function run (None: no limit): the
    #: coordinator hands the run over to a new generation before it.
    limit: float | None = None
    #: The driver's process, when the workers run on its machine: they end
    #: with it (a killed driver leaves no workers behind).
    driver_pid: int | None = None


class HandedOver(Exception):
    """The coordinator ended this generation at a round boundary."""


def run_worker(task: WorkerTask, storage=None) -> dict:
    """Entry point of a Lithops call (``storage`` is injected by Lithops)."""
    started = time.perf_counter()
    store = open_store(task.store)
    heart = None
    try:
        if not store.claim(task.worker, task.generation, uuid.uuid4().hex):
            # A duplicate of a running call (a platform retry): it writes nothing.
            return {"duplicate": True}
        heart = _Heartbeat(task, store)
        with _thread_limit(task.n_threads):
            return _run(task, store, storage, started)
    except FitAborted:
        raise
    except BaseException as exc:
        try:  # wake the others; the store itself may be what failed
            if store.generation() == task.generation:  # not a replaced generation's
                store.abort(f"worker {task.worker} failed: {type(exc).__name__}: {exc}")
        except Exception:  # noqa: BLE001 - the original error is the one to report
            pass
        raise
    finally:
        if heart is not None:
            heart.stop(store)
        store.close()


_CONTROLLER: list = []


def _thread_limit(n_threads: int | None):
    """``threadpool_limits`` through one controller per process: a fresh
    scan of the loaded libraries costs ~1-5 ms per fit, which a worker that
    serves many fits (a pool) would pay each time."""
    if n_threads is None:
        return contextlib.nullcontext()
    if not _CONTROLLER or _CONTROLLER[0][0] != os.getpid():
        _CONTROLLER[:] = [(os.getpid(), ThreadpoolController())]
    return _CONTROLLER[0][1].limit(limits=n_threads)


class _Heartbeat:
    """Renews this worker's lease in the store from a thread, so the driver
    notices a lost function within a lease. The thread has a connection of
    its own; a beat that fails is retried at the next one."""

    def __init__(self, task: WorkerTask, store: StateStore):
        self.task, self.done = task, threading.Event()
        store.beat(task.worker, task.generation, os.getpid(), task.lease)
        self.thread = threading.Thread(target=self._run, name="lease", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        task = self.task
        store = open_store(task.store)
        try:
            while not self.done.wait(task.lease / 5):
                if task.driver_pid is not None and not process_alive(task.driver_pid):
                    os._exit(1)  # nobody will read what this worker computes
                try:
                    store.beat(task.worker, task.generation, os.getpid(), task.lease)
                except Exception:  # noqa: BLE001 - the next beat tries again
                    pass
        finally:
            store.close()

    def stop(self, store: StateStore) -> None:
        """The worker is done: its last lease says so (pid 0) for as long as
        the fit may last, so the driver does not take its end for a loss."""
        self.done.set()
        self.thread.join(self.task.lease)
        task = self.task
        try:
            store.beat(task.worker, task.generation, 0, task.lease + 2 * task.store.timeout)
        except Exception:  # noqa: BLE001 - the driver then sees the call end instead
            pass


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
    records = store.records() if task.generation else []
    if records:
        _rejoin(store, worker, len(records))
    clock = _Clock(time.perf_counter() - started)
    try:
        if task.worker == 0:
            rounds = Rounds(store, worker, clock, algorithm.shares_work, records,
                            started=started, limit=task.limit,
                            setup_commands=algorithm.setup_commands)
            params = task.params
            extra: dict = {}
            if on_dataset and algorithm.dataset_prologue is not None:
                params, extra = algorithm.dataset_prologue(rounds, params)
            result = dict(algorithm.coordinate(rounds, params))
            result.update(extra)
            rounds.stop()
        else:
            result = {}
            _follow(store, task.worker, worker, clock, algorithm.shares_work, len(records))
        if hasattr(worker, "result"):
            result.update(worker.result())
    except HandedOver:
        result = {"handed_over": True}
    finally:
        if hasattr(worker, "close"):
            worker.close()
    result["timings"] = clock.as_dict()
    result["generation"] = task.generation
    return result


def _rejoin(store: StateStore, worker, resume: int) -> None:
    """A new worker's state as its predecessor had it when round ``resume``
    began: the setup messages, then the last message, handled again with
    their answers discarded (the algorithms' partials are deterministic)."""
    rounds = [r for r in store.setup_rounds() if r < resume - 1] + [resume - 1]
    for round_ in rounds:
        body = store.message(round_)
        if body is None:
            raise RuntimeError(f"the message of round {round_} is gone: a new worker "
                               "cannot rebuild its state")
        header, name, *arrays = decode_arrays(body)
        if int(header[0]) in (_SUM, _GATHER):
            worker.handle(name.tobytes().decode(), arrays)


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
    records : list of bytes, default=()
        Results of the rounds a previous generation of workers ran: they are
        answered from these, without a round, until they run out.
    started : float, default=None
        When this worker started (``time.perf_counter``), for ``limit``.
    limit : float, default=None
        The platform's function time limit in seconds: before it, the run
        is handed over to a new generation at a round boundary.
    setup_commands : frozenset of str, default=frozenset()
        Commands whose messages the store keeps for replacement workers.
    """

    def __init__(self, store: StateStore, worker, clock: _Clock, shares_work: bool = False,
                 records: list[bytes] = (), started: float | None = None,
                 limit: float | None = None, setup_commands: frozenset = frozenset()):
        self.store, self.worker, self.clock = store, worker, clock
        self.shares_work = shares_work
        self.count = 0
        self._last_end: float | None = None
        self._final: list[np.ndarray] = []
        #: Results of the rounds a previous generation ran, answered from the log.
        self._replay = list(records)
        self._record: bytes | None = None  # this round's result, sent with the next message
        self._started = started if started is not None else time.perf_counter()
        self._limit = limit
        self._longest = 0.0
        self._live = 0  # rounds this generation ran
        self._setup = setup_commands
        self._reports = 0

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

    def report(self, *arrays: np.ndarray) -> None:
        """Send numeric arrays to the driver (per-iteration data for callbacks).

        Reports travel in order with the :meth:`log` lines, as raw arrays
        (never pickle). Each is numbered: a new generation, which runs
        ``coordinate`` again from the start, sends the same reports again
        and the driver keeps the first of each number.

        Parameters
        ----------
        *arrays : ndarray
            Plain numeric arrays.
        """
        blob = encode_arrays([np.array([self._reports], dtype=np.int64), *arrays])
        self._reports += 1
        self.store.post_log(_REPORT + base64.b64encode(blob).decode("ascii"))

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
        if self.count < len(self._replay):
            self.count += 1
            recorded = decode_arrays(self._replay[self.count - 1])
            return recorded if kind == _GATHER else recorded[0]
        self._hand_over_if_late()
        t0 = time.perf_counter()
        if self._last_end is not None:
            # The coordinator's model update since the last round is aggregation work.
            self.clock.rows[-1][3] += t0 - self._last_end
        arrays = [np.asarray(a) for a in arrays]
        self.store.publish(self.count, _message(kind, command, arrays), self._record,
                           command in self._setup)
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
        self._record = encode_arrays(total if gather else [total])
        t5 = time.perf_counter()
        self.clock.add(t2 - t1, (t1 - t0) + (t3 - t2), t4 - t3, t5 - t4,
                       _helped(partial) if self.shares_work else 0)
        if self._live:  # a generation's first round waits for its workers' start
            self._longest = max(self._longest, t5 - t0)
        self._live += 1
        self._last_end = t5
        self.count += 1
        return total

    def _hand_over_if_late(self) -> None:
        """Before the platform's time limit, end this generation at this
        round boundary: a new one goes on from the records."""
        if self._limit is None:
            return
        # Room for the round about to run and its successor's start, and for
        # the platform's clock starting before this worker's.
        margin = 2 * self._longest + 1.5
        if time.perf_counter() - self._started + margin > self._limit:
            self.store.publish(self.count, _message(_HANDOVER, STOP, []), self._record)
            raise HandedOver

    def stop(self) -> None:
        """Send ``'stop'`` to every worker: the runtime's call, after ``coordinate``."""
        self.store.publish(self.count, _message(_STOP, STOP, self._final), self._record)
        self.worker.handle(STOP, list(self._final))


@dataclass(frozen=True)
class Report:
    """A coordinator's :meth:`Rounds.report`, as the driver's ``progress`` gets it."""

    number: int
    arrays: list


def read_report(entry: str) -> Report | None:
    """The report a log entry carries, or None for a text line."""
    if not entry.startswith(_REPORT):
        return None
    number, *arrays = decode_arrays(base64.b64decode(entry[1:]))
    return Report(int(number[0]), arrays)


def _follow(store: StateStore, worker_id: int, worker, clock: _Clock, shares_work: bool,
            round_: int = 0) -> None:
    while True:
        t0 = time.perf_counter()
        header, name, *arrays = decode_arrays(store.fetch(round_, worker_id))
        t1 = time.perf_counter()
        if clock.rows:
            clock.rows[-1][2] += t1 - t0  # waiting for the next round is the barrier
        kind, command = int(header[0]), name.tobytes().decode()
        if kind == _HANDOVER:
            raise HandedOver
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
