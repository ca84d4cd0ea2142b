"""One Lithops ``map`` per fit: which backend runs the workers, where the
data and the shared state live.

:func:`run_distributed` runs every algorithm (estimators and
:func:`sklearn_serverless.distributed.run`); :func:`run_apply` a fitted
model's output on a dataset where it lies. :func:`run_distributed` owns
every resource of a fit (temporary folder, data objects, state namespace,
Lithops job files, worker processes) and releases all of them, whether the
fit succeeds or not.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .._datasets import DataError
from .._process import process_alive
from .._state import FitAborted, StateStore, StoreSpec, open_store
from .._state._redis_url import split_ca_bundle
from ..distributed._algorithm import Algorithm
from ..distributed._run import ship_by_value
from ..distributed._worker_loop import WorkerTask, read_report, run_worker
from . import _placement, _pool
from ._backends import (
    Site,
    default_n_workers,
    delete_lithops_job,
    lithops_config,
    own_lithops_session,
    quiet_lithops,
    reuse_lithops_copy,
    site_of,
)
from ._deadlines import Deadlines
from ._generations import Generations, LossWatch, WorkerLost, function_limit
from ._watch import JobFailures, Watchdog, storage_probe

_POLL_SECONDS = 0.005
#: How often the driver looks for lost workers (a store read).
_LOSS_SECONDS = 0.25


@dataclass
class FitOutcome:
    """What the workers returned, in worker order, and how long it took."""

    results: list[dict]
    n_workers: int
    seconds: float
    upload: float = 0.0  # seconds the driver spent putting the data in storage
    generations: Generations | None = None


def run_distributed(algorithm: Algorithm, params, columns, *, backend, state_store,
                    state_mode: str, n_workers: int | None, timeout: float,
                    progress: Callable[[str], None] | None = None) -> FitOutcome:
    """Run ``algorithm`` over ``columns`` with one Lithops map; see module doc.
    ``columns`` is a dict of row-aligned arrays (the driver's data), or a
    resolved dataset (``sklearn_serverless._datasets``) the workers read.
    ``progress`` receives the coordinator's log lines as they come."""
    started = time.perf_counter()
    ship_by_value(algorithm)
    dataset = None if isinstance(columns, dict) else columns
    n_workers = _worker_count(columns, backend, n_workers)
    planned = None
    if dataset is not None:
        planned = _placement.plan_dataset(dataset, n_workers)
        n_workers = len(planned)
    config = lithops_config(backend, n_workers)
    site = site_of(config)
    deadlines = site.deadlines(timeout)
    n_threads = max(1, (os.cpu_count() or 1) // n_workers) if site.local_compute else None
    scratch = _scratch_dir(columns) if site.local and dataset is None else None
    _sweep_orphans()
    folder = tempfile.mkdtemp(prefix=f"sklearn-serverless-{os.getpid()}-", dir=scratch)
    namespace = uuid.uuid4().hex
    if state_store is None:
        spec = StoreSpec("sqlite", os.path.join(folder, "state.db"), namespace, n_workers,
                         state_mode, deadlines.wait)
    else:
        url, ca_data = split_ca_bundle(state_store)
        spec = StoreSpec("redis", url, namespace, n_workers, state_mode, deadlines.wait,
                         ca_data)
    store = partitions = pool = None
    executors: list = []
    upload = 0.0
    generations = Generations(n_workers)
    limit = function_limit(config)
    writer = None  # the Lithops executor whose storage holds the fit's objects

    def make_tasks(remaining: float | None) -> list[WorkerTask]:
        return [
            WorkerTask(i, algorithm, params, partitions[i], spec, n_threads,
                       peers=tuple(partitions) if site.local and planned is None
                       and algorithm.shares_work else (),
                       generation=generations.number, lease=deadlines.lease,
                       limit=remaining,
                       driver_pid=os.getpid() if site.local_compute else None)
            for i in range(n_workers)
        ]

    def place(fexec) -> None:
        nonlocal partitions, upload, writer
        if planned is not None:
            partitions = planned  # read by the workers where it lies
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
                             lambda: _executor(config, site))
        while True:
            if pool is not None:
                pids = []
                try:
                    if partitions is None:
                        place(pool.fexec)
                        if site.local and planned is None:
                            _placement.write_files(columns, folder)
                    results = _collect_pool(pool, make_tasks(pool.remaining()), store,
                                            deadlines, site, config, progress, generations)
                except WorkerLost as lost:
                    generations.lost(lost)  # raises once a slot was lost too often
                    pids = [pid for generation, pid in store.leases().values()
                            if generation == generations.number - 1 and pid]
                    _best_effort(store.abort, "a new generation replaces this one")
                    results = None
                finally:
                    _pool.release(pool)
                    pool = None
            else:
                fexec = _executor(config, site)
                executors.append(fexec)
                with fexec:
                    if partitions is None:
                        place(fexec)
                    tasks = make_tasks(limit)
                    futures = None
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
                            if site.local and planned is None and generations.number == 0:
                                # Written after the map: the workers start meanwhile.
                                _placement.write_files(columns, folder)
                            watchdog = Watchdog(store, deadlines, site, config,
                                                None if site.local else storage_probe(fexec))
                            losses = LossWatch(store, generations.number, site.local_compute)
                            results = _collect(fexec, futures, store, deadlines.stragglers,
                                               progress, failures, watchdog, losses,
                                               generations)
                    except WorkerLost as lost:
                        generations.lost(lost)  # raises once a slot was lost too often
                        # The others wake with an error, and on this machine their
                        # processes are stopped when the executor closes.
                        pids = [pid for generation, pid in store.leases().values()
                                if generation == generations.number - 1 and pid]
                        _best_effort(store.abort, "a new generation replaces this one")
                        results = None
                    finally:
                        if site.local_compute and futures is not None:
                            _await_job_end(futures)
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
    return FitOutcome(results, n_workers, time.perf_counter() - started, upload,
                      generations)


def run_apply(algorithm: Algorithm, what: str, arrays: dict, dataset, *, backend,
              n_workers: int | None, timeout: float) -> list[dict]:
    """One Lithops map that applies a fitted model to a resolved dataset
    where it lies (``algorithm.outputs[what]``, see :func:`apply_model`);
    the calls' results in dataset order. Leaves nothing behind, as a fit."""
    output = algorithm.outputs[what]

    partitions = _placement.plan_dataset(dataset, _worker_count(dataset, backend, n_workers))
    config = lithops_config(backend, len(partitions))
    site = site_of(config)
    deadlines = site.deadlines(timeout)
    fexec = _executor(config, site)
    try:
        with fexec:
            futures = fexec.map(
                apply_model, [(ApplyTask(output, arrays, p),) for p in partitions], chunksize=1,
                include_modules=None if site.local else ["sklearn_serverless"],
                timeout=deadlines.apply_call,
            )
            try:
                results = _apply_results(fexec, futures, deadlines)
            finally:
                if site.local_compute:
                    _await_job_end(futures)
    finally:
        _best_effort(delete_lithops_job, fexec)
    return list(results)


@dataclass(frozen=True)
class ApplyTask:
    """What one call computes: ``output(rows, arrays)`` on its rows."""

    output: Callable[[dict, dict], dict]
    arrays: dict
    partition: _placement.Partition


def apply_model(task: ApplyTask, storage=None) -> dict:
    """Entry point of a Lithops call applying a model (``storage`` is
    injected by Lithops). No shared state: one map, no rounds."""
    rows = _placement.read_partition(task.partition, storage)
    return {"n_rows": rows["X"].shape[0], **task.output(rows, task.arrays)}


def _worker_count(columns, backend, n_workers: int | None) -> int:
    """``n_workers``, or the backend's default for this many rows (a
    dataset's rows estimated from its bytes when its format does not say);
    never more workers than rows."""
    if isinstance(columns, dict):
        n_samples = next(iter(columns.values())).shape[0]
    else:
        n_samples = columns.n_rows or max(1, columns.total_bytes // max(1, columns.row_length))
    if n_workers is None:
        n_workers = default_n_workers(backend, n_samples)
    return max(1, min(n_workers, n_samples))


def _apply_results(fexec, futures, deadlines: Deadlines) -> list:
    """Every call's result, in order; a call's error is raised. Each call is
    limited in the function (Lithops' map timeout); the driver
    gives up a little after that, so a call whose process died without a
    status (Lithops' localhost engine leaves it pending) cannot hang it."""
    from lithops.wait import ALWAYS

    deadline = time.monotonic() + deadlines.apply_all
    with JobFailures(fexec.executor_id) as failures:
        failures.watch(futures[0].job_id)
        while not all(_finished(future) for future in futures):
            if failures.seen:
                raise RuntimeError(f"the Lithops job failed: {failures.detail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the calls applying the model gave no result within "
                                   f"{deadlines.apply_all:g} s")
            fexec.wait(futures, throw_except=False, return_when=ALWAYS, show_progressbar=False)
            time.sleep(_POLL_SECONDS)
    return [future.result(throw_except=True, internal_storage=fexec.internal_storage)
            for future in futures]


def _executor(config: dict, site: Site):
    """A Lithops executor of this process's own session, quiet."""
    quiet_lithops()
    from lithops import FunctionExecutor

    own_lithops_session()
    if site.local_compute:
        reuse_lithops_copy()
    return FunctionExecutor(config=config, log_level=None)


def _collect(fexec, futures, store: StateStore, stragglers: float,
             progress: Callable[[str], None] | None, failures: JobFailures,
             watchdog: Watchdog, losses: LossWatch, generations: Generations) -> list[dict]:
    """Wait for every worker; on the first failure wake the others, and raise
    the root cause naming its worker; :class:`WorkerLost` for a worker whose
    function is gone without an error of its own. Never waits for ever:
    after a failure stragglers get ``stragglers`` seconds."""
    from lithops.wait import ALWAYS

    failed_at = None
    shown = 0
    checked = time.monotonic()
    resume = len(store.records()) if generations.number else None
    while True:
        fexec.wait(futures, throw_except=False, return_when=ALWAYS, show_progressbar=False)
        if progress is not None:
            shown += _show_log(store, shown, progress)
        if failed_at is None and any(f.error for f in futures):
            # A call that failed is the fit's error (the worker's own, or the
            # platform's: a storage gone, ...), unless its function was lost:
            # its process killed (Lithops says so) before it could report.
            worker = next(w for w, f in enumerate(futures) if f.error)
            cause = _call_error(futures[worker], fexec)
            if _no_failure(store) and _function_lost(cause):
                raise WorkerLost(worker, cause)
            failed_at = time.monotonic()
            _best_effort(store.abort, "another worker failed")
        if all(_finished(f) for f in futures):
            break
        if failed_at is None and failures.seen:
            _best_effort(store.abort, "the Lithops job failed")
            raise RuntimeError(f"the Lithops job running the workers failed: {failures.detail()}")
        if failed_at is None and time.monotonic() - checked > _LOSS_SECONDS:
            checked = time.monotonic()
            finished = {w for w, f in enumerate(futures) if _finished(f)}
            try:
                lost = losses.check(finished)
                if resume is not None and store.progress() >= resume:
                    generations.resumed()
                    resume = None
            except Exception:  # noqa: BLE001 - a failing store: the workers report it
                lost = None
            if lost is not None and _no_failure(store):
                raise lost
        if failed_at is None:
            problem = watchdog.check()
            if problem is not None:
                # Workers that never started (or hang outside any wait of ours):
                # their processes are stopped when the executor closes.
                _best_effort(store.abort, "the driver stopped the fit")
                raise problem
        if failed_at is not None and time.monotonic() - failed_at > stragglers:
            break
        time.sleep(_POLL_SECONDS)
    if progress is not None:
        _show_log(store, shown, progress)  # posted after the last read, before the end
    if resume is not None:
        generations.resumed()  # at the latest: the generation has ended
    errors = []
    results = []
    for worker, future in enumerate(futures):
        if not _finished(future):
            errors.append((worker, TimeoutError(f"no result within {stragglers:g} s")))
            continue
        try:
            results.append(future.result(throw_except=True,
                                         internal_storage=fexec.internal_storage))
        except BaseException as exc:  # noqa: BLE001 - re-raised below, named
            errors.append((worker, exc))
    if errors:
        # The root cause, not the aborts it triggered in the other workers.
        worker, exc = min(errors, key=lambda e: (isinstance(e[1], FitAborted), e[0]))
        raise _named(exc, worker, len(futures)) from exc
    return results


def _collect_pool(pool, tasks: list, store: StateStore, deadlines: Deadlines, site: Site,
                  config: dict, progress: Callable[[str], None] | None,
                  generations: Generations) -> list[dict]:
    """:func:`_collect` for a fit served by a pool: the same checks (a
    worker's error, lost workers, the watchdog), results from the pool's
    files instead of futures. :class:`WorkerLost` when a pool process is gone."""
    job = pool.submit(run_worker, tasks)
    n = len(tasks)
    watchdog = Watchdog(store, deadlines, site, config)
    losses = LossWatch(store, generations.number, site.local_compute)
    failed_at = None
    shown = 0
    checked = time.monotonic()
    resume = len(store.records()) if generations.number else None
    outcomes: dict[int, tuple] = {}
    while True:
        for slot in pool.wait(job, _POLL_SECONDS) - outcomes.keys():
            outcomes[slot] = pool.result(job, slot)
        if progress is not None:
            shown += _show_log(store, shown, progress)
        if failed_at is None and any(kind == "error" for kind, _ in outcomes.values()):
            failed_at = time.monotonic()
            _best_effort(store.abort, "another worker failed")
        if len(outcomes) == n:
            break
        if failed_at is None and time.monotonic() - checked > _LOSS_SECONDS:
            checked = time.monotonic()
            gone = {slot: why for slot, why in pool.lost_slots().items()
                    if slot < n and slot not in outcomes}
            try:
                lost = losses.check(set(outcomes))
                if resume is not None and store.progress() >= resume:
                    generations.resumed()
                    resume = None
            except Exception:  # noqa: BLE001 - a failing store: the workers report it
                lost = None
            if gone and lost is None:
                slot = min(gone)
                lost = WorkerLost(slot, gone[slot])
            if lost is not None and _no_failure(store):
                raise lost
        if failed_at is None:
            problem = watchdog.check()
            if problem is not None:
                _best_effort(store.abort, "the driver stopped the fit")
                raise problem
        if failed_at is not None and time.monotonic() - failed_at > deadlines.stragglers:
            break
    if resume is not None:
        generations.resumed()
    errors = [(worker, TimeoutError(f"no result within {deadlines.stragglers:g} s"))
              for worker in range(n) if worker not in outcomes]
    errors += [(worker, value) for worker, (kind, value) in sorted(outcomes.items())
               if kind == "error"]
    if errors:
        worker, exc = min(errors, key=lambda e: (isinstance(e[1], FitAborted), e[0]))
        raise _named(exc, worker, n) from exc
    return [outcomes[worker][1] for worker in range(n)]


def _await_job_end(futures, seconds: float = 2.0) -> None:
    """Wait (briefly) for a finished job's localhost runner to write its end
    marker: the runner does so after the results are in, and leaving the
    executor first would let it write the file after the cleanup (measured:
    5 of ~580 fits left a ``jobs/<job>.done``). A job with calls still
    running is stopped when the executor closes, and writes no marker."""
    if not futures or not all(_finished(future) for future in futures):
        return
    from lithops.constants import JOBS_DIR

    marker = os.path.join(JOBS_DIR, f"{futures[0].job_key}.done")
    deadline = time.monotonic() + seconds
    while not os.path.exists(marker) and time.monotonic() < deadline:
        time.sleep(0.001)


def _show_log(store: StateStore, start: int, progress: Callable[[str], None]) -> int:
    try:
        lines = store.read_log(start)
    except Exception:  # noqa: BLE001 - progress must never break a fit
        return 0
    for line in lines:
        # A coordinator's report (Rounds.report) goes on as a Report, in order.
        report = read_report(line)
        progress(line if report is None else report)
    return len(lines)


def _finished(future) -> bool:
    """The worker has stopped: its status is in, result fetched or not."""
    return future.ready or future.success or future.done


def _await_gone(pids: list[int], seconds: float) -> None:
    """Wait (bounded) until a replaced generation's processes on this machine
    have ended: none may write into the next generation's rounds."""
    deadline = time.monotonic() + seconds
    while any(process_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.01)


def _no_failure(store: StateStore) -> bool:
    """The store holds no worker's error (and answers)."""
    try:
        return store.failure() is None
    except Exception:  # noqa: BLE001 - unreachable: the workers report what failed
        return False


def _call_error(future, fexec) -> BaseException | None:
    try:
        future.result(throw_except=True, internal_storage=fexec.internal_storage)
    except BaseException as exc:  # noqa: BLE001 - examined, not raised
        return exc
    return None


def _function_lost(error: BaseException | None) -> bool:
    """Lithops' word for a call whose process died (killed, out of memory)."""
    text = str(error).lower()
    return isinstance(error, MemoryError) or "sigkill" in text or "was killed" in text


def _named(exc: BaseException, worker: int, n_workers: int) -> BaseException:
    if isinstance(exc, DataError):  # the data's fault: the message names where
        return DataError(*exc.args)
    message = f"worker {worker} of {n_workers} failed: {exc}"
    try:
        named = type(exc)(message)
    except Exception:  # noqa: BLE001 - exceptions with unusual constructors
        named = RuntimeError(f"{message} ({type(exc).__name__})")
    return named


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


def _best_effort(step, *args) -> None:
    """Run a cleanup or wake-up step whose failure must not hide the fit's
    own error (the store may be the thing that failed; keys also expire)."""
    try:
        step(*args)
    except Exception:  # noqa: BLE001
        logging.getLogger(__name__).debug("best-effort step failed", exc_info=True)


_FOLDER = re.compile(r"^sklearn-serverless-(?:pool-)?(\d+)-")


def _sweep_orphans() -> None:
    """Remove the fit folders of drivers that were killed (SIGKILL, a crash)
    before they could: a folder's name holds its driver's pid."""
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
