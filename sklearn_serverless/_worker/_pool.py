"""What a pool worker runs: one long-lived Lithops call that serves the fits
of its owner process one after another (see :mod:`._pool`).

It waits on its channel (:mod:`._pool_channel`: FIFOs on this machine,
Redis lists and storage objects elsewhere) for a job id; the job's body is a
pickled :class:`~sklearn_serverless._worker._loop.WorkerTask`
with the function that runs it (:func:`run_worker`). The worker runs it and
posts ``('ok', result)`` or ``('error', exception)``, pickled, then waits for
the next. ``stop`` ends it. Only job ids and status travel through FIFOs or
Redis: the code and the results of a fit are files or storage objects of
the pool's own.

Between fits a worker keeps the rows it read of datasets, within a share
of its memory (:mod:`.._datasets._cache`): the next fit on the same
objects reads none of them again.

A worker ends by itself when it has had no job for ``idle`` seconds, when
its owner is gone (its pid on this machine, its heartbeat key elsewhere), or
once it is older than ``retire`` seconds (half the platform's function time
limit: the owner stops sending it jobs then).
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass

from .._channel._base import STOP, Endpoint

#: How often an idle worker checks that its owner is alive.
_CHECK_SECONDS = 0.5
#: Seconds without a job after which a worker collects its garbage.
_COLLECT_AFTER = 2.0


@dataclass(frozen=True)
class PoolTask:
    """What one pool call receives."""

    slot: int
    endpoint: Endpoint
    idle: float
    retire: float | None = None
    #: Fraction of the worker's memory kept for dataset rows between fits,
    #: and how many workers share that memory (see :mod:`.._datasets._cache`).
    cache_fraction: float = 0.0
    cache_share: int = 1


def serve_pool(task: PoolTask, storage=None) -> dict:
    """Entry point of a pool's Lithops call (``storage`` is injected by Lithops)."""
    import cloudpickle

    from .._datasets._cache import budget_for, keep_rows

    started = time.monotonic()
    keep_rows(budget_for(task.cache_fraction, task.cache_share))
    channel = task.endpoint.connect(storage)
    served = 0
    last = time.monotonic()
    collected = True
    owner_gone = False
    try:
        while True:
            now = time.monotonic()
            if now - last > task.idle:
                break
            if task.retire is not None and now - started > task.retire:
                break
            if not channel.owner_alive():
                owner_gone = True
                break
            wait = min(_CHECK_SECONDS, max(0.0, task.idle - (now - last)))
            job = channel.next_job(wait)
            if job is None:
                if not collected and time.monotonic() - last > _COLLECT_AFTER:
                    gc.collect()  # between fits, never on a fit's path (~0.1 s)
                    collected = True
                continue
            if job == STOP:
                break
            try:
                entry, worker_task = cloudpickle.loads(channel.read_job(job))
                _fresh_like_a_new_call()
                outcome = ("ok", entry(worker_task, storage))
            except BaseException as exc:  # noqa: BLE001 - the fit's error, sent to its driver
                outcome = ("error", exc)
            channel.post(job, _dumps(outcome, task.slot, cloudpickle))
            served += 1
            outcome = worker_task = entry = None
            collected = False
            last = time.monotonic()
    finally:
        keep_rows(0)
        channel.close(owner_gone)
    return {"slot": task.slot, "served": served}


def _fresh_like_a_new_call() -> None:
    """What a fresh call would differ in: numpy's global seed."""
    import numpy as np

    np.random.seed()


def _dumps(outcome: tuple, slot: int, cloudpickle) -> bytes:
    try:
        return cloudpickle.dumps(outcome)
    except Exception as exc:  # noqa: BLE001 - an unpicklable result or error
        return cloudpickle.dumps(("error", RuntimeError(
            f"the result of pool slot {slot} could not be pickled: {exc!r} "
            f"(it was {outcome[0]}: {outcome[1]!r:.500})")))
