"""A fitted model applied to a dataset where it lies: calls that each read
their part of the objects and return the model's output for their rows
(``predict``, ``transform``, ... of a dataset), in dataset order. No shared
state, no rounds; nothing left behind, as a fit.

The calls run on an idle pool of workers of the same Lithops config when
there is one (the pool that served the fits before: each slot gets the read
it had in the fits, so it finds the rows it kept, :mod:`.._datasets._cache`),
else as one Lithops map of their own."""

from __future__ import annotations

import time
from collections.abc import Callable

from .._common._deadlines import Deadlines
from .._state._redis_url import split_ca_bundle
from .._worker._algorithm import Algorithm
from .._worker._apply import ApplyTask, SlotTask, apply_model, run_slot
from . import _placement, _pool
from ._backends import lithops_config, site_of
from ._collect import (
    _LOSS_SECONDS,
    _POLL_SECONDS,
    _await_job_end,
    _best_effort,
    _finished,
    _PoolCalls,
)
from ._cost import Meter
from ._fetched import note_fetched
from ._fit import _executor, _worker_count
from ._lithops_files import delete_lithops_job
from ._watch import JobFailures


def run_apply(algorithm: Algorithm, what: str, arrays: dict, dataset, *, backend,
              n_workers: int | None, timeout: float,
              state_store: str | None = None) -> list[dict]:
    """Apply a fitted model to a resolved dataset where it lies
    (``algorithm.outputs[what]``, see :func:`apply_model`), with the fits'
    plan of reads for ``n_workers``; the calls' results in dataset order.
    ``state_store``: the estimator's, whose pool may serve the calls."""
    output = algorithm.outputs[what]
    n_workers = _worker_count(dataset, backend, n_workers)
    partitions = _placement.plan_dataset(dataset, n_workers)
    results = run_calls(apply_model, [ApplyTask(output, arrays, p) for p in partitions],
                        backend=backend, timeout=timeout,
                        slots=_placement.slots_of(dataset, partitions, n_workers),
                        state_store=state_store)
    note_fetched(dataset.dataset, [result.pop("reads", {}) for result in results])
    return results


def run_calls(function: Callable, tasks: list, *, backend, timeout: float,
              slots: list[int] | None = None, state_store: str | None = None) -> list[dict]:
    """``function(task)`` for each task, each reading its partition of a
    dataset; the results in task order. On an idle pool when there is one
    (task i on slot ``slots[i]``, default i), else one Lithops map."""
    config = lithops_config(backend, len(tasks))
    site = site_of(config)
    deadlines = site.deadlines(timeout, len(tasks))
    meter = Meter(config, site)  # its cost: sklearn_serverless.last_cost()
    slots = list(range(len(tasks))) if slots is None else list(slots)
    redis = None
    if state_store is not None:
        redis = split_ca_bundle(state_store)
    pool = _pool.acquire_idle(config, site, max(slots) + 1, redis)
    if pool is not None:
        try:
            results = _on_pool(pool, function, tasks, slots, deadlines)
        finally:
            meter.pool_fit(pool, False)
            _pool.release(pool)
    else:
        results = _on_map(function, tasks, config, site, deadlines, meter)
    meter.workers([{"requests": result.pop("requests", {})} for result in results
                   if isinstance(result, dict)])
    meter.bill()
    return list(results)


def _on_map(function: Callable, tasks: list, config: dict, site, deadlines: Deadlines,
            meter: Meter) -> list:
    """One Lithops map of ``function(task)``, one call per task."""
    fexec = _executor(config, site)
    futures, submitted = None, time.time()
    try:
        with fexec:
            futures = fexec.map(
                function, [(task,) for task in tasks], chunksize=1,
                include_modules=None if site.local else ["sklearn_serverless"],
                timeout=deadlines.apply_call,
            )
            try:
                return _apply_results(fexec, futures, deadlines)
            finally:
                if site.local_compute:
                    _await_job_end(futures)
    finally:
        _best_effort(delete_lithops_job, fexec)
        meter.map_calls(futures, submitted)


def _on_pool(pool, function: Callable, tasks: list, slots: list[int],
             deadlines: Deadlines) -> list:
    """The tasks on a pool's slots (slots without a task run nothing, so
    that each task lands on its own slot); every slot's answer is awaited,
    within the calls' deadline, so the pool stays clean for the next run.
    A call's error is raised; a pool worker lost on the way is an error
    naming it (the pool is then discarded, see :func:`._pool.release`)."""
    bodies = [SlotTask(function)] * (max(slots) + 1)
    for slot, task in zip(slots, tasks, strict=True):
        bodies[slot] = SlotTask(function, task)
    calls = _PoolCalls(pool, pool.submit(run_slot, bodies), len(bodies))
    deadline = time.monotonic() + deadlines.apply_all
    checked = time.monotonic()
    while not calls.all_done():
        calls.poll()
        if time.monotonic() - checked > _LOSS_SECONDS:
            checked = time.monotonic()
            gone = calls.gone()
            if gone:
                slot = min(gone)
                raise RuntimeError(f"pool worker {slot} of {pool.size} was lost while "
                                   f"applying the model ({gone[slot]}): nothing was returned")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the calls applying the model gave no result within "
                               f"{deadlines.apply_all:g} s")
    for slot in slots:
        kind, value = calls.done[slot]
        if kind == "error":
            raise value
    return [calls.done[slot][1] for slot in slots]


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
