"""One Lithops ``map`` per fit: which backend runs the workers, where the
data and the shared state live.

:func:`run_distributed` runs every algorithm (estimators and
:func:`sklearn_serverless.distributed.run`), on a pool of workers when one
serves (:mod:`._pool`), else on a map of its own. It owns
every resource of a fit (temporary folder, data objects, state namespace,
Lithops job files, worker processes) and releases all of them, whether the
fit succeeds or not.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .._common._deadlines import LOCAL_WORKERS_PER_CORE, max_local_workers
from .._common._metering import count_storage
from .._common._process import process_alive
from .._state import StateStore, StoreSpec, open_store
from .._state._redis_url import split_ca_bundle
from .._worker._algorithm import Algorithm
from .._worker._loop import WorkerTask, run_worker
from . import _placement, _pool
from ._backends import LOCALHOST, Site, default_n_workers, lithops_config, site_of
from ._collect import (
    _await_gone,
    _await_job_end,
    _best_effort,
    _collect,
    _collect_pool,
)
from ._cost import Meter
from ._fetched import note_fetched
from ._generations import Generations, LossWatch, WorkerLost, function_limit
from ._lithops_files import (
    delete_lithops_job,
    delete_recorded_lithops_files,
    own_lithops_session,
    quiet_lithops,
    record_lithops_executor,
    reuse_lithops_copy,
)
from ._shipping import ship_by_value
from ._watch import JobFailures, Watchdog, storage_probe


@dataclass
class FitOutcome:
    """What the workers returned, in worker order, and how long it took."""

    calls: list[dict]  # what each worker's call returned: its result, timings, generation
    n_workers: int
    seconds: float
    upload: float = 0.0  # seconds the driver spent putting the data in storage
    generations: Generations | None = None
    cost: dict | None = None  # what the fit cost (see _cost.py)

    @property
    def results(self) -> list[dict]:
        """Each worker's result (worker 0's: the coordinator's dict with its own)."""
        return [call["result"] for call in self.calls]


def run_distributed(algorithm: Algorithm, params, columns, *, backend, state_store,
                    state_mode: str, n_workers: int | None, timeout: float,
                    progress: Callable[[str], None] | None = None) -> FitOutcome:
    """Run ``algorithm`` over ``columns`` with one Lithops map; see module doc.
    ``columns`` is a dict of row-aligned arrays (the driver's data), or a
    resolved dataset (``sklearn_serverless._datasets``) the workers read.
    ``progress`` receives the coordinator's log lines as they come."""
    started = time.perf_counter()
    sources = ship_by_value(algorithm)
    dataset = None if isinstance(columns, dict) else columns
    n_workers = _worker_count(columns, backend, n_workers)
    planned = None
    if dataset is not None:
        planned = _placement.plan_dataset(dataset, n_workers)
        n_workers = len(planned)
    config = lithops_config(backend, n_workers)
    site = site_of(config)
    meter = Meter(config, site)
    deadlines = site.deadlines(timeout, n_workers)
    n_threads = _threads_per_worker(columns, n_workers) if site.local_compute else None
    scratch = _scratch_dir(columns) if site.local and dataset is None else None
    _sweep_orphans()
    folder = tempfile.mkdtemp(prefix=f"sklearn-serverless-{os.getpid()}-", dir=scratch)
    namespace = uuid.uuid4().hex
    if state_store is None:
        # The workers share this machine: they meet through shared memory.
        spec = StoreSpec("shm", os.path.join(folder, "state"), namespace, n_workers,
                         state_mode, deadlines.wait)
    else:
        url, ca_data = split_ca_bundle(state_store)
        spec = StoreSpec("redis", url, namespace, n_workers, state_mode, deadlines.wait,
                         ca_data)
    store = partitions = pool = None
    # The driver's arrays the workers read ('memory' placement): alive until
    # this function returns, after every worker (any generation) has ended.
    held: list = []
    executors: list = []
    upload = 0.0
    generations = Generations(n_workers)
    limit = function_limit(config)
    writer = None  # the Lithops executor whose storage holds the fit's objects

    def make_tasks(remaining: float | None) -> list[WorkerTask]:
        return [
            WorkerTask(i, algorithm, params, partitions[i],
                       dataclasses.replace(spec, generation=generations.number), n_threads,
                       peers=tuple(partitions) if site.local and planned is None
                       and algorithm.shares_work else (),
                       generation=generations.number, lease=deadlines.lease,
                       limit=remaining,
                       driver_pid=os.getpid() if site.local_compute else None,
                       sources=sources or None)
            for i in range(n_workers)
        ]

    def place(fexec) -> None:
        nonlocal partitions, upload, writer, held
        if planned is not None:
            partitions = planned  # read by the workers where it lies
        elif site.local and _rows_in_memory(config):
            partitions, held = _placement.plan_memory(columns, n_workers, folder)
        elif site.local:
            partitions = _placement.plan_files(columns, n_workers, folder, deadlines.wait)
        else:
            writer = fexec
            partitions = _placement.plan_objects(
                columns, n_workers, fexec.internal_storage.bucket,
                f"sklearn-serverless/{namespace}",
            )
            upload = time.perf_counter()
            _placement.write_objects(columns, partitions, fexec.storage)
            upload = time.perf_counter() - upload

    try:
        store = open_store(spec, create=True)
        pool = _pool.acquire(config, site, n_workers, limit,
                             lambda: _executor(_pool.executor_config(config), site),
                             None if spec.kind != "redis" else (spec.location, spec.ca_data))
        while True:
            if pool is not None:
                pids, new_pool = [], pool.jobs == 0
                try:
                    if partitions is None:
                        place(pool.fexec)
                        if partitions[0].kind == "files":
                            _placement.write_files(columns, folder)
                    results = _collect_pool(pool, make_tasks(pool.remaining()), store,
                                            deadlines, site, config, progress, generations)
                except WorkerLost as lost:
                    pids, results = _end_generation(store, generations, lost), None
                finally:
                    meter.pool_fit(pool, new_pool)
                    _pool.release(pool)
                    pool = None
            else:
                fexec = _executor(config, site)
                executors.append(fexec)
                record_lithops_executor(folder, fexec)
                with fexec:
                    if partitions is None:
                        place(fexec)
                    tasks = make_tasks(limit)
                    futures, submitted = None, time.time()
                    try:
                        with JobFailures(fexec.executor_id) as failures:
                            # chunksize=1: one call per worker, never two in one
                            # sequential chunk. Workers that share this machine's files
                            # import this package from the interpreter that has it;
                            # others get it shipped (their runtime needs its
                            # dependencies).
                            futures = fexec.map(
                                run_worker, [(task,) for task in tasks], chunksize=1,
                                include_modules=None if site.local else ["sklearn_serverless"],
                            )
                            failures.watch(futures[0].job_id)
                            if partitions[0].kind == "files" and generations.number == 0:
                                # Written after the map: the workers start meanwhile.
                                _placement.write_files(columns, folder)
                            watchdog = Watchdog(store, deadlines, site, config,
                                                None if site.local else storage_probe(fexec))
                            losses = LossWatch(store, generations.number, site.local_compute)
                            results = _collect(fexec, futures, store, deadlines.stragglers,
                                               progress, failures, watchdog, losses,
                                               generations)
                    except WorkerLost as lost:
                        pids, results = _end_generation(store, generations, lost), None
                    finally:
                        if site.local_compute and futures is not None:
                            _await_job_end(futures)
                        meter.map_calls(futures, submitted)
            meter.workers(results)
            if results is not None and not any(r.get("handed_over") for r in results):
                break
            if results is not None:
                generations.handed_over()
            elif site.local_compute:
                _await_gone(pids, deadlines.wait)
            store.new_generation(generations.number)
    finally:
        if pool is not None:
            _best_effort(_pool.release, pool)
        _release(store, writer, executors, partitions, folder)
    if dataset is not None:
        note_fetched(dataset.dataset, [call.get("reads", {}) for call in results])
    return FitOutcome(results, n_workers, time.perf_counter() - started, upload,
                      generations, meter.bill())


def _end_generation(store: StateStore, generations: Generations, lost: WorkerLost) -> list[int]:
    """Wake the generation's other workers with an error, then count
    ``lost`` (the fit's error once a slot was lost too often: the survivors
    are woken first, not left to wait out their timeout), and return their
    local pids: on this machine the next generation starts once they are
    gone."""
    try:
        pids = [pid for pid in store.leases().values() if pid]
    except Exception:  # noqa: BLE001 - a failing store: nothing to wait for
        pids = []
    _best_effort(store.abort, f"this generation of workers ended: {lost}")
    generations.lost(lost)
    return pids


#: Values of a worker's rows below which a BLAS thread more is not worth it:
#: OpenBLAS threads a product of a few thousand values, then its threads spin
#: for the core that the driver or another worker needs next (a grid search
#: of 455-row folds on 2 cores: 0.15 s with two threads a worker, 0.09 s with one).
MIN_VALUES_PER_THREAD = 1 << 17


def _threads_per_worker(columns, n_workers: int) -> int:
    """BLAS threads for each of ``n_workers`` workers on this machine: its
    share of the cores, fewer when its rows are too few to use them."""
    threads = max(1, (os.cpu_count() or 1) // n_workers)
    if isinstance(columns, dict):
        values = sum(a.nnz if hasattr(a, "nnz") else int(np.prod(a.shape, dtype=np.int64))
                     for a in columns.values())
    else:
        values = columns.total_bytes // 8  # a dataset: about 8 bytes a value
    return max(1, min(threads, values // n_workers // MIN_VALUES_PER_THREAD))


def _worker_count(columns, backend, n_workers: int | None) -> int:
    """``n_workers``, or the backend's default for this many rows (a
    dataset's rows estimated from its bytes when its format does not say);
    never more workers than rows."""
    if isinstance(columns, dict):
        n_samples = next(iter(columns.values())).shape[0]
    elif columns.counts is not None:
        return columns.counts[0]  # rows of a CSV dataset: the plan they were counted for
    elif columns.rows is not None:
        n_samples = max(1, columns.rows.size)  # a dataset's view
    else:
        n_samples = columns.n_rows or max(1, columns.total_bytes // max(1, columns.row_length))
    if n_workers is None:
        n_workers = default_n_workers(backend, n_samples)
    n_workers = max(1, min(n_workers, n_samples))
    if n_workers > max_local_workers() and site_of(backend).local_compute:
        cores = max_local_workers() // LOCAL_WORKERS_PER_CORE
        raise ValueError(
            f"n_workers={n_workers} is more than this machine can run: on localhost every "
            f"worker is a process of this machine, and all of them run at once for the "
            f"whole fit; its {cores} core(s) take at most {max_local_workers()} "
            f"({LOCAL_WORKERS_PER_CORE} per core). Lower n_workers, or run the fit on a "
            "cloud backend.")
    return n_workers


def _rows_in_memory(config: dict) -> bool:
    """Whether the workers read their rows from this process's memory: they
    run this machine's Python (not a container) and may read it (see
    :func:`._placement.memory_readable`)."""
    from lithops.localhost.config import LocalhostEnvironment, get_environment

    runtime = config.get(LOCALHOST, {}).get("runtime", sys.executable)
    return (get_environment(runtime) == LocalhostEnvironment.DEFAULT
            and _placement.memory_readable())


def _executor(config: dict, site: Site):
    """A Lithops executor of this process's own session, quiet."""
    quiet_lithops()
    from lithops import FunctionExecutor

    own_lithops_session()
    if site.local_compute:
        reuse_lithops_copy()
    fexec = FunctionExecutor(config=config, log_level=None)
    count_storage(fexec.internal_storage)  # what a fit costs counts its requests
    return fexec


def _release(store, writer, executors: list, partitions, folder: str) -> None:
    """Delete everything the fit wrote; each step runs even if one fails."""
    steps = []
    if store is not None:
        steps += [store.cleanup, store.close]
    if writer is not None and partitions and partitions[0].kind == "objects":
        steps.append(lambda: _placement.delete_objects(partitions, writer.storage))
    steps += [lambda fexec=fexec: delete_lithops_job(fexec) for fexec in executors]
    steps.append(lambda: shutil.rmtree(folder, ignore_errors=True))
    for step in steps:
        _best_effort(step)


_FOLDER = re.compile(r"^sklearn-serverless-(?:pool-)?(\d+)-")


def _sweep_orphans() -> None:
    """Remove the fit folders of drivers that were killed (SIGKILL, a crash)
    before they could, and their Lithops files on this machine: a folder's
    name holds its driver's pid, and it lists its executors."""
    for base in ("/dev/shm", tempfile.gettempdir()):
        try:
            names = os.listdir(base)
        except OSError:
            continue
        for name in names:
            match = _FOLDER.match(name)
            if match is None or int(match.group(1)) == os.getpid():
                continue
            if not process_alive(int(match.group(1))):
                delete_recorded_lithops_files(os.path.join(base, name))
                shutil.rmtree(os.path.join(base, name), ignore_errors=True)


def _scratch_dir(columns: dict) -> str | None:
    """``/dev/shm`` when the data fits twice there (no disk write-back), else
    the default temporary folder."""
    size = sum(_nbytes(array) for array in columns.values())
    try:
        if shutil.disk_usage("/dev/shm").free > 2 * size + (64 << 20):
            return "/dev/shm"
    except OSError:
        pass
    return None


def _nbytes(array) -> int:
    if hasattr(array, "indptr"):
        return array.data.nbytes + array.indices.nbytes + array.indptr.nbytes
    return array.nbytes if hasattr(array, "nbytes") else np.asarray(array).nbytes
