"""Waiting for a fit's workers: their results, the first error named by
its worker, and the workers lost on the way (see :mod:`._generations`)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from .._common._deadlines import Deadlines
from .._common._process import process_alive
from .._datasets import DataError
from .._state import FitAborted, StateStore
from .._worker._loop import run_worker
from .._worker._rounds import read_report
from ._backends import (
    Site,
)
from ._generations import Generations, LossWatch, WorkerLost
from ._watch import JobFailures, Watchdog

_POLL_SECONDS = 0.005
#: How often the driver looks for lost workers (a store read).
_LOSS_SECONDS = 0.25


def _collect(fexec, futures, store: StateStore, stragglers: float,
             progress: Callable[[str], None] | None, failures: JobFailures,
             watchdog: Watchdog, losses: LossWatch, generations: Generations) -> list[dict]:
    """Wait for the workers of a Lithops map (see :func:`_watch`)."""
    return _watch(_MapCalls(fexec, futures, store, failures), store, stragglers, progress,
                  watchdog, losses, generations)


def _collect_pool(pool, tasks: list, store: StateStore, deadlines: Deadlines, site: Site,
                  config: dict, progress: Callable[[str], None] | None,
                  generations: Generations) -> list[dict]:
    """Wait for the workers of a fit served by a pool (see :func:`_watch`):
    results from the pool's channel instead of futures; :class:`WorkerLost`
    when a pool process is gone."""
    calls = _PoolCalls(pool, pool.submit(run_worker, tasks), len(tasks))
    return _watch(calls, store, deadlines.stragglers, progress, Watchdog(store, deadlines, site,
                  config), LossWatch(store, generations.number, site.local_compute), generations)


def _watch(calls, store: StateStore, stragglers: float,
           progress: Callable[[str], None] | None, watchdog: Watchdog, losses: LossWatch,
           generations: Generations) -> list[dict]:
    """Wait for every worker; on the first failure wake the others, and raise
    the root cause naming its worker; :class:`WorkerLost` for a worker whose
    function is gone without an error of its own. Never waits for ever:
    after a failure stragglers get ``stragglers`` seconds."""
    failed_at = None
    checked = time.monotonic()
    resume = len(store.records()) if generations.number else None
    while True:
        calls.poll()
        if progress is not None:
            generations.shown += _show_log(store, generations.shown, progress)
        if failed_at is None and calls.failed():
            failed_at = time.monotonic()
            _best_effort(store.abort, "another worker failed")
        if calls.all_done():
            break
        if failed_at is None:
            calls.check_job()
        if failed_at is None and time.monotonic() - checked > _LOSS_SECONDS:
            checked = time.monotonic()
            resume = _check_losses(losses, calls.finished(), calls.gone(), store, generations,
                                   resume)
        if failed_at is None:
            problem = watchdog.check()
            if problem is not None:
                # Workers that never started (or hang outside any wait of ours):
                # their processes are stopped when the executor closes.
                _best_effort(store.abort, "the driver stopped the fit")
                raise problem
        if failed_at is not None and time.monotonic() - failed_at > stragglers:
            break
    if progress is not None:
        # Posted after the last read, before the end.
        generations.shown += _show_log(store, generations.shown, progress)
    if resume is not None:
        generations.resumed()  # at the latest: the generation has ended
    results, errors = calls.outcomes(stragglers)
    if errors:
        # The root cause, not the aborts it triggered in the other workers.
        worker, exc = min(errors, key=lambda e: (isinstance(e[1], FitAborted), e[0]))
        raise _named(exc, worker, calls.n) from exc
    return results


class _MapCalls:
    """The calls of one Lithops map, as :func:`_watch` sees them."""

    def __init__(self, fexec, futures, store: StateStore, failures: JobFailures):
        self.fexec, self.futures, self.store, self.failures = fexec, futures, store, failures
        self.n = len(futures)
        self._polled = False

    def poll(self) -> None:
        from lithops.wait import ALWAYS

        if self._polled:
            time.sleep(_POLL_SECONDS)
        self._polled = True
        self.fexec.wait(self.futures, throw_except=False, return_when=ALWAYS,
                        show_progressbar=False)

    def failed(self) -> bool:
        """A call failed: the fit's error (the worker's own, or the
        platform's: a storage gone, ...), unless its function was lost (its
        process killed, Lithops says so) before it could report."""
        if not any(f.error for f in self.futures):
            return False
        worker = next(w for w, f in enumerate(self.futures) if f.error)
        cause = _call_error(self.futures[worker], self.fexec)
        if _no_failure(self.store) and _function_lost(cause):
            raise WorkerLost(worker, cause)
        return True

    def check_job(self) -> None:
        if self.failures.seen:
            _best_effort(self.store.abort, "the Lithops job failed")
            raise RuntimeError(
                f"the Lithops job running the workers failed: {self.failures.detail()}")

    def all_done(self) -> bool:
        return all(_finished(f) for f in self.futures)

    def finished(self) -> set[int]:
        return {w for w, f in enumerate(self.futures) if _finished(f)}

    def gone(self) -> dict[int, str]:
        return {}  # a lost call's process is seen through its lease and Lithops

    def outcomes(self, stragglers: float) -> tuple[list[dict], list[tuple]]:
        results, errors = [], []
        for worker, future in enumerate(self.futures):
            if not _finished(future):
                errors.append((worker, TimeoutError(f"no result within {stragglers:g} s")))
                continue
            try:
                results.append(future.result(throw_except=True,
                                             internal_storage=self.fexec.internal_storage))
            except BaseException as exc:  # noqa: BLE001 - re-raised by the caller, named
                errors.append((worker, exc))
        return results, errors


class _PoolCalls:
    """The calls of one job on a pool, as :func:`_watch` sees them."""

    def __init__(self, pool, job, n: int):
        self.pool, self.job, self.n = pool, job, n
        self.done: dict[int, tuple] = {}

    def poll(self) -> None:
        for slot in self.pool.wait(self.job, _POLL_SECONDS) - self.done.keys():
            self.done[slot] = self.pool.result(self.job, slot)

    def failed(self) -> bool:
        return any(kind == "error" for kind, _ in self.done.values())

    def check_job(self) -> None:
        pass  # a pool process that dies is a lost slot (gone)

    def all_done(self) -> bool:
        return len(self.done) == self.n

    def finished(self) -> set[int]:
        return set(self.done)

    def gone(self) -> dict[int, str]:
        return {slot: why for slot, why in self.pool.lost_slots().items()
                if slot < self.n and slot not in self.done}

    def outcomes(self, stragglers: float) -> tuple[list[dict], list[tuple]]:
        errors = [(worker, TimeoutError(f"no result within {stragglers:g} s"))
                  for worker in range(self.n) if worker not in self.done]
        errors += [(worker, value) for worker, (kind, value) in sorted(self.done.items())
                   if kind == "error"]
        return [self.done[worker][1] for worker in range(self.n) if worker in self.done], errors


def _check_losses(losses: LossWatch, finished: set[int], gone: dict[int, str],
                  store: StateStore, generations: Generations, resume: int | None) -> int | None:
    """Raise :class:`WorkerLost` for a lost worker of this generation (its
    lease, its process, or ``gone``: slots the caller saw die) unless the
    store holds a worker's own error; note when the generation has resumed.
    Returns the round still awaited for that (None once seen)."""
    try:
        lost = losses.check(finished)
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
    return resume


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


def _best_effort(step, *args) -> None:
    """Run a cleanup or wake-up step whose failure must not hide the fit's
    own error (the store may be the thing that failed; keys also expire)."""
    try:
        step(*args)
    except Exception:  # noqa: BLE001
        logging.getLogger(__name__).debug("best-effort step failed", exc_info=True)
