"""A fitted model applied to a dataset where it lies: one Lithops map whose
calls each read their part of the objects and return the model's output for
their rows (``predict``, ``transform``, ... of a dataset), in dataset order.
No shared state, no rounds; nothing left behind, as a fit."""

from __future__ import annotations

import time
from collections.abc import Callable

from .._common._deadlines import Deadlines
from .._worker._algorithm import Algorithm
from .._worker._apply import ApplyTask, apply_model
from . import _placement
from ._backends import delete_lithops_job, lithops_config, site_of
from ._collect import _POLL_SECONDS, _await_job_end, _best_effort, _finished
from ._cost import Meter
from ._fit import _executor, _worker_count
from ._watch import JobFailures


def run_apply(algorithm: Algorithm, what: str, arrays: dict, dataset, *, backend,
              n_workers: int | None, timeout: float) -> list[dict]:
    """One Lithops map that applies a fitted model to a resolved dataset
    where it lies (``algorithm.outputs[what]``, see :func:`apply_model`);
    the calls' results in dataset order. Leaves nothing behind, as a fit."""
    output = algorithm.outputs[what]
    partitions = _placement.plan_dataset(dataset, _worker_count(dataset, backend, n_workers))
    return run_calls(apply_model, [ApplyTask(output, arrays, p) for p in partitions],
                     backend=backend, timeout=timeout)


def run_calls(function: Callable, tasks: list, *, backend, timeout: float) -> list[dict]:
    """One Lithops map of ``function(task)``, one call per task, each
    reading its partition of a dataset; the results in task order."""
    config = lithops_config(backend, len(tasks))
    site = site_of(config)
    deadlines = site.deadlines(timeout, len(tasks))
    meter = Meter(config, site)  # its cost: sklearn_serverless.last_cost()
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
                results = _apply_results(fexec, futures, deadlines)
            finally:
                if site.local_compute:
                    _await_job_end(futures)
    finally:
        _best_effort(delete_lithops_job, fexec)
        meter.map_calls(futures, submitted)
    meter.workers([{"requests": result.pop("requests", {})} for result in results
                   if isinstance(result, dict)])
    meter.bill()
    return list(results)


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
