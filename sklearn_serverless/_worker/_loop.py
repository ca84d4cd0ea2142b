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

import contextlib
import gc
import os
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from threadpoolctl import ThreadpoolController

from .._common._metering import count_storage, since, snapshot
from .._common._process import process_alive
from .._state import FitAborted, StateStore, StoreSpec, open_store
from .._state._codec import decode_arrays
from ._algorithm import Algorithm, Context
from ._partitions import Partition, read_partition
from ._rounds import (
    _GATHER,
    _HANDOVER,
    _STOP,
    _SUM,
    HandedOver,
    Rounds,
    _Clock,
    _contribute,
    _helped,
)
from ._sharing import Team


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
    #: Module name -> file of the algorithm's code shipped by value.
    sources: dict | None = None


def run_worker(task: WorkerTask, storage=None) -> dict:
    """Entry point of a Lithops call (``storage`` is injected by Lithops).
    Its result holds the storage requests and Redis commands it made
    (``'requests'``), for what the fit costs."""
    count_storage(storage)
    before = snapshot()
    out = _run_worker(task, storage)
    if not out.get("duplicate"):  # a duplicate returns exactly that
        out["requests"] = since(before)
    return out


def _run_worker(task: WorkerTask, storage) -> dict:
    started = time.perf_counter()
    store = open_store(task.store)
    heart = None
    try:
        if not store.claim(task.worker, task.generation, uuid.uuid4().hex):
            # A duplicate of a running call (a platform retry): it writes nothing.
            return {"duplicate": True}
        heart = _Heartbeat(task, store)
        with _thread_limit(task.n_threads), _frozen_heap():
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


@contextlib.contextmanager
def _frozen_heap():
    """Python's full garbage collections skip every object that exists when
    the worker starts (numpy, scipy, Lithops: ~0.1 s of CPU to walk
    each time one came, at random rounds: at 64 workers on 2 cores they
    added several ms to the rounds they hit); the objects go back to the
    collector when the worker ends (a pool worker collects between fits)."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


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
    """Renews this worker's lease in the store, so the driver notices a lost
    function within a lease. The first lease is taken here; the renewals come
    from one thread per process (:class:`_Beater`), which a pool worker keeps
    between fits: starting a thread per fit cost a small fit ~1 ms (up to 4
    under load), and most small fits end before the first renewal."""

    def __init__(self, task: WorkerTask, store: StateStore):
        self.task = task
        store.beat(task.worker, task.generation, os.getpid(), task.lease)
        _Beater.get().watch(task)

    def stop(self, store: StateStore) -> None:
        """The worker is done: its last lease says so (pid 0) for as long as
        the fit may last, so the driver does not take its end for a loss."""
        _Beater.get().unwatch(self.task)
        task = self.task
        try:
            store.beat(task.worker, task.generation, 0, task.lease + 2 * task.store.timeout)
        except Exception:  # noqa: BLE001 - the driver then sees the call end instead
            pass


class _Beater:
    """The lease thread of this process: renews the lease of the task it
    watches every fifth of a lease, through a store connection of its own
    (opened at the first renewal). A renewal runs under the thread's lock,
    so none comes after :meth:`unwatch`; one that fails is retried at the
    next. Watching is not signalled to the thread (waking it cost a small
    fit ~0.4 ms of GIL hand-offs): it looks again at least every
    :data:`_IDLE_CHECK` seconds, well within the first renewal's time."""

    _instance: list = []  # (pid, beater): a forked child starts its own

    def __init__(self):
        self.lock = threading.Condition()
        self.task: WorkerTask | None = None
        self.due = 0.0  # when the watched task's lease is next renewed
        self.store: StateStore | None = None
        threading.Thread(target=self._run, name="lease", daemon=True).start()

    @classmethod
    def get(cls) -> _Beater:
        if not cls._instance or cls._instance[0][0] != os.getpid():
            cls._instance[:] = [(os.getpid(), cls())]
        return cls._instance[0][1]

    def watch(self, task: WorkerTask) -> None:
        with self.lock:
            self._close()
            self.task = task
            self.due = time.monotonic() + task.lease / 5

    def unwatch(self, task: WorkerTask) -> None:
        with self.lock:
            if self.task is task:
                self._close()
                self.task = None

    def _close(self) -> None:
        if self.store is not None:
            store, self.store = self.store, None
            try:
                store.close()
            except Exception:  # noqa: BLE001 - a connection already gone
                pass

    def _run(self) -> None:
        with self.lock:
            while True:
                task, now = self.task, time.monotonic()
                if task is None or now < self.due:
                    self.lock.wait(_IDLE_CHECK if task is None
                                   else min(_IDLE_CHECK, self.due - now))
                    continue
                self.due = now + task.lease / 5
                if task.driver_pid is not None and not process_alive(task.driver_pid):
                    os._exit(1)  # nobody will read what this worker computes
                try:
                    if self.store is None:
                        self.store = open_store(task.store)
                    self.store.beat(task.worker, task.generation, os.getpid(), task.lease)
                except Exception:  # noqa: BLE001 - the next beat tries again
                    self._close()


#: Seconds between the lease thread's looks at what it watches; at most a
#: fifth of the shortest lease (:class:`~.._common._deadlines.Deadlines`).
_IDLE_CHECK = 0.5


def _run(task: WorkerTask, store: StateStore, storage, started: float) -> dict:
    """One worker's whole run. Returns ``{'result': ..., 'timings': ...,
    'generation': ...}``: the algorithm's dict apart from the runtime's keys."""
    store.check_in(task.worker)  # the driver waits a bounded time for every worker
    algorithm = task.algorithm
    if task.sources:
        _restore_filenames(algorithm, task.sources)
    data = read_partition(task.partition, storage)
    # What reading a dataset cost (nothing for rows the driver placed).
    reads = {name: int(data.get(name) or 0) for name in ("bytes_fetched", "cache_hits")}
    n_workers = task.store.n_workers
    if algorithm.shares_work:
        context = Team(task.worker, n_workers, task.peers)
    else:
        context = Context(task.worker, n_workers)
    on_dataset = task.partition.kind == "dataset"
    worker = algorithm.build_worker(data, task.params, context, on_dataset)
    clock = _Clock(time.perf_counter() - started)
    try:
        records = store.records() if task.generation else []
        if records:
            _rejoin(store, worker, len(records))
            clock.load = time.perf_counter() - started  # rebuilding is loading
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
            final = rounds._stop()
        else:
            result = {}
            final = _follow(store, task.worker, worker, clock, algorithm.shares_work,
                            len(records))
        if hasattr(worker, "result"):
            own = dict(worker.result(*final))
            clash = sorted(set(own) & set(result))
            if clash:
                raise ValueError(f"worker 0's result() and the dict coordinate returned both "
                                 f"have the keys {clash}: the run's result cannot hold both")
            result.update(own)
    except HandedOver:
        return {"handed_over": True, "timings": clock.as_dict(), "generation": task.generation,
                "reads": reads}
    finally:
        if hasattr(worker, "close"):
            worker.close()
    return {"result": result, "timings": clock.as_dict(), "generation": task.generation,
            "reads": reads}


def _restore_filenames(algorithm: Algorithm, sources: dict) -> None:
    """Code shipped by value reaches the function with the file name
    ``<dynamic-code>``: give it back its module's file, so that a traceback
    names the user's file and line."""
    seen: set[int] = set()

    def fix(function) -> None:
        code = getattr(function, "__code__", None)
        path = sources.get(getattr(function, "__module__", None))
        if code is None or path is None or id(function) in seen:
            return
        seen.add(id(function))
        function.__code__ = _renamed(code, path)

    for part in (algorithm.worker, algorithm.coordinate):
        if isinstance(part, type):
            for klass in part.__mro__:
                for value in vars(klass).values():
                    fix(getattr(value, "__func__", value))
        else:
            fix(part)


def _renamed(code, path: str):
    if code.co_filename != "<dynamic-code>":
        return code
    consts = tuple(_renamed(c, path) if hasattr(c, "co_filename") else c
                   for c in code.co_consts)
    return code.replace(co_filename=path, co_consts=consts)


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


def _follow(store: StateStore, worker_id: int, worker, clock: _Clock, shares_work: bool,
            round_: int = 0) -> list:
    while True:
        t0 = time.perf_counter()
        header, name, *arrays = decode_arrays(store.fetch(round_, worker_id))
        t1 = time.perf_counter()
        if clock.rows:
            clock.rows[-1][2] += t1 - t0  # waiting for the next round is the barrier
        kind, command = int(header[0]), name.tobytes().decode()
        if kind == _HANDOVER:
            raise HandedOver
        if kind == _STOP:
            return arrays  # what the coordinator gave Rounds.finish
        partial = worker.handle(command, arrays)
        t2 = time.perf_counter()
        gather = kind == _GATHER
        _contribute(store, round_, worker_id, partial, shares_work and not gather, gather)
        clock.add(t2 - t1, time.perf_counter() - t2, 0.0, 0.0,
                  _helped(partial) if shares_work else 0)
        round_ += 1
