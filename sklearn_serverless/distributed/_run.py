"""Running an algorithm: :func:`run`, the public entry point, and what it
returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._common._deadlines import DEFAULT_TIMEOUT
from .._worker._algorithm import Algorithm


@dataclass
class RunResult:
    """What :func:`run` returns.

    Its parameters are also its attributes.

    Parameters
    ----------
    result : dict
        What the algorithm's ``coordinate`` returned together with worker
        0's ``result()``, and nothing else (a key in both is an error).
    worker_results : list of dict
        Every worker's ``result()``, in worker order (``{}`` for a worker
        without one; worker 0's entry is ``result``).
    timings : dict
        Where the time went: ``'fit'`` (seconds, client side), ``'upload'``,
        ``'load'`` (per worker), ``'n_rounds'`` and, per round and worker,
        ``'compute'``, ``'publish'``, ``'barrier'``, ``'aggregate'`` and
        ``'helped'``, and ``'cost'``: what the run cost (see the
        estimators' ``timings_``).
    n_workers : int
        Number of workers the run used.
    """

    result: dict
    worker_results: list
    timings: dict
    n_workers: int


def run(algorithm: Algorithm, data, *, params: Any = None, backend="localhost",
        n_workers: int | None = None, state_store: str | None = None,
        state_mode: str = "lock_free", timeout: float = DEFAULT_TIMEOUT,
        verbose: bool | Callable = False) -> RunResult:
    """Run ``algorithm`` over ``data`` across serverless functions.

    One Lithops map starts ``n_workers`` long-lived workers, each owning a
    contiguous block of rows; worker 0 runs ``algorithm.coordinate``, whose
    every :class:`Rounds` call is one round of the workers.

    Parameters
    ----------
    algorithm : Algorithm
        What to run.
    data : dict or dataset
        A dict of row-aligned arrays (dense or CSR, the same number of rows),
        or a dataset from :func:`~sklearn_serverless.read_csv`,
        :func:`~sklearn_serverless.read_parquet` or
        :func:`~sklearn_serverless.read_npy`, read by the workers where it
        lies: its rows reach each worker as ``data['X']``, and ``data['y']``
        when it has a label column.
    params : object, default=None
        Given as it is to every worker and to ``coordinate``.
    backend : str or dict, default='localhost'
        Where the workers run: a Lithops backend name or a complete Lithops
        config dict, as for the estimators (see
        :class:`~sklearn_serverless.ServerlessKMeans`).
    n_workers : int, default=None
        Number of workers; None chooses from the backend and the number of
        rows. Never more than the number of rows.
    state_store : str, default=None
        Where the workers meet: None for the embedded shared-memory store (workers
        that share this machine's files), or a Redis URL
        (``'redis://...'``, ``'rediss://...'``) every worker can reach.
    state_mode : {'lock_free', 'locked'}, default='lock_free'
        How partials are combined: ``'lock_free'`` sums per-worker slots in
        worker order (reproducible bit for bit); ``'locked'`` adds them into
        one shared accumulator under a lock, in the order the workers take
        it. ``gather`` keeps per-worker slots in both modes.
    timeout : float, default=120.0
        Seconds any wait of the run may last: a round's barrier, a worker
        waiting for the coordinator's next command.
    verbose : bool or callable, default=False
        Print the coordinator's :meth:`Rounds.log` lines as they come; a
        callable receives each line (a str) and each :meth:`Rounds.report`
        instead.

    Returns
    -------
    RunResult
        The coordinator's dict, the per-worker results and the time
        breakdown.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_serverless.distributed import Algorithm, run
    >>> class Sums:
    ...     def __init__(self, data, params, context):
    ...         self.X = data["X"]
    ...     def handle(self, command, arrays):
    ...         return self.X.sum(axis=0)
    >>> def coordinate(rounds, params):
    ...     return {"total": rounds.allreduce("sum")}
    >>> out = run(Algorithm("sums", Sums, coordinate), {"X": np.ones((10, 2))},
    ...           n_workers=2)
    >>> out.result["total"]
    array([10., 10.])
    """
    from .._datasets import Dataset, ResolvedDataset
    from .._driver._backends import check_backend, check_state_store, open_storage
    from .._driver._fit import run_distributed
    from .._driver._params import check_execution_params
    from .._driver._timings import timings_of

    if not isinstance(algorithm, Algorithm):
        raise TypeError(f"algorithm must be an Algorithm, got {type(algorithm).__name__}")
    check_execution_params("run", backend=backend, state_mode=state_mode, n_workers=n_workers,
                           state_store=state_store, timeout=timeout)
    check_backend(backend)
    check_state_store(state_store, backend)
    if isinstance(data, Dataset):
        columns = data.resolve(open_storage(backend))
    elif isinstance(data, ResolvedDataset):  # an estimator's, resolved when it validated
        columns = data
    else:
        columns = _checked_columns(data)
    progress = verbose if callable(verbose) else print_line if verbose else None
    outcome = run_distributed(
        algorithm, params, columns, backend=backend, state_store=state_store,
        state_mode=state_mode, n_workers=n_workers, timeout=timeout,
        progress=progress,
    )
    results = outcome.results
    return RunResult(results[0], results, timings_of(outcome), outcome.n_workers)


def _checked_columns(data) -> dict:
    if not isinstance(data, dict) or not data:
        raise TypeError("data must be a non-empty dict of row-aligned arrays, or a dataset "
                        "from read_csv, read_parquet or read_npy")
    columns = {}
    for name, array in data.items():
        if not hasattr(array, "shape"):
            array = np.asarray(array)
        if array.dtype.hasobject:
            raise TypeError(f"data[{name!r}] has dtype object: only numeric arrays travel")
        columns[name] = array
    lengths = {name: array.shape[0] for name, array in columns.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"the arrays of data must have the same number of rows, got {lengths}")
    return columns


def print_line(line) -> None:
    """What a verbose run prints of a coordinator's message: its lines, not
    its reports (arrays, for callbacks)."""
    if isinstance(line, str):
        print(line, flush=True)
