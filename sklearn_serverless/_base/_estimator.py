"""What every serverless estimator shares: the parameters that choose where
and how ``fit`` runs, their validation, and the fitted time breakdown."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval, InvalidParameterError, StrOptions

from .._algorithms import ALGORITHMS
from .._driver._apply import run_apply
from .._driver._backends import (
    BACKENDS,
    check_backend,
    check_state_store,
    closest_backend,
    open_storage,
)
from .._driver._fit import run_distributed
from .._driver._timings import timings_of
from .._state import STATE_MODES
from .._state._redis_url import redacted


class _SortedStrOptions(StrOptions):
    """StrOptions whose error message lists the names in alphabetical order
    (scikit-learn's lists a set's, which changes from run to run)."""

    def __str__(self):
        return f"a str among {{{', '.join(repr(name) for name in sorted(self.options))}}}"


#: Parameter constraints of the execution parameters, merged into each
#: estimator's ``_parameter_constraints``.
EXECUTION_CONSTRAINTS = {
    "backend": [_SortedStrOptions(set(BACKENDS)), dict],
    "state_mode": [StrOptions(set(STATE_MODES))],
    "n_workers": [Interval(Integral, 1, None, closed="left"), None],
    "state_store": [str, None],
    "timeout": [Interval(Real, 0, None, closed="neither")],
}

EXECUTION_PARAMS_DOC = """
    backend : str or dict, default='localhost'
        Where the workers run: ``'localhost'`` (processes on this machine, no
        configuration), the name of a Lithops compute backend
        (``'aws_lambda'``, ``'gcp_functions'``, ``'code_engine'``, ``'k8s'``,
        ...; credentials come from your Lithops config file) or a complete
        Lithops config as a dict.

    state_mode : {'lock_free', 'locked'}, default='lock_free'
        How partial results are combined every round: ``'lock_free'`` gives
        each worker its own slot and one reducer sums them in worker order;
        ``'locked'`` adds them into one shared accumulator under a lock.

    n_workers : int, default=None
        Number of workers, each owning one contiguous block of rows. None
        means the CPU count on localhost (at most one worker per 20,000
        rows) and one worker per 20,000 rows, at most 64, in the cloud.

    state_store : str, default=None
        Shared state store. None is an embedded SQLite database in the fit's
        temporary folder, for localhost compute with localhost storage only;
        a URL ``redis://[user:password@]host:port/db`` uses that Redis server,
        which every worker must reach (required by any other Lithops compute
        or storage). ``rediss://...`` connects with TLS; add
        ``?ssl_ca_certs=/path/ca.pem`` to trust a private CA (the driver reads
        the file and sends its certificates to the workers). The password
        never appears in an error message, a log line or the repr.

    timeout : float, default=120.0
        Seconds any single wait (barrier, lock, message, a worker waiting
        for its data) may last before the fit fails with
        :class:`TimeoutError`; also how long a failed fit waits for its
        remaining workers. The driver's own checks follow from it: every
        worker must have started within the backend's start time (30 s on
        localhost, 60 s for function services, at most ``timeout / 2``; on
        localhost at least 0.5 s per worker and core),
        and a fit whose rounds stop advancing without an error is stopped
        after ``1.5 * timeout + 5`` s.
"""

#: Fitted attributes every serverless estimator has, for its docstring.
FITTED_ATTRIBUTES_DOC = """n_features_in_ : int
        Number of features seen during fit.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit, when X has string column names.

    n_workers_ : int
        Number of workers the fit used.

    timings_ : dict
        Where the fit's time went: ``'fit'`` (seconds, client side),
        ``'upload'`` (seconds the driver spent putting the data in object
        storage; 0 on localhost, where workers read local files),
        ``'load'`` (per worker: start to data in memory), ``'n_rounds'`` and,
        per round and worker,
        ``'compute'``, ``'publish'``, ``'barrier'`` and ``'aggregate'``
        (seconds), ``'cpu'`` (CPU seconds of the worker's process in the
        round, its threads included; the first round's includes its set-up
        after the load) and ``'helped'`` (chunks of other workers' rows this
        worker computed: work sharing on localhost), arrays of shape
        (n_rounds, ``n_workers_``).
"""


class ServerlessMixin:
    """Runs a built-in algorithm (:data:`sklearn_serverless._algorithms.ALGORITHMS`)
    with the estimator's execution parameters."""

    def _validate_params(self):
        # A misspelled backend: scikit-learn's message, and the closest names.
        backend = self.get_params(deep=False).get("backend")
        if isinstance(backend, str) and backend not in BACKENDS:
            raise InvalidParameterError(
                f"The 'backend' parameter of {type(self).__name__} must be 'localhost', a "
                f"Lithops config dict or a Lithops compute backend among {sorted(BACKENDS)}. "
                f"Got {backend!r} instead.{closest_backend(backend)}")
        super()._validate_params()

    def _check_execution_params(self) -> None:
        """Errors a fit would hit later, raised before any data is moved."""
        check_backend(self.backend)
        check_state_store(self.state_store, self.backend)

    def __repr__(self, N_CHAR_MAX: int = 700) -> str:
        # A state_store URL may hold a password: it never appears in a repr.
        return redacted(super().__repr__(N_CHAR_MAX))

    def _repr_html_inner(self) -> str:
        return redacted(super()._repr_html_inner())

    def _repr_mimebundle_(self, **kwargs) -> dict:
        return {kind: redacted(text) for kind, text in super()._repr_mimebundle_(**kwargs).items()}

    def _resolve_dataset(self, dataset, y, sample_weight):
        """A dataset's metadata (objects, features), read on the driver; sets
        ``n_features_in_`` and ``feature_names_in_`` from its header or schema."""
        if y is not None:
            raise ValueError("y must be None when fitting a dataset: its labels are the "
                             "dataset's label column (read_csv(..., label=...))")
        if sample_weight is not None:
            raise ValueError("sample_weight is not supported when fitting a dataset")
        self._check_execution_params()
        resolved = dataset.resolve(open_storage(self.backend))
        self.n_features_in_ = resolved.n_features
        if resolved.feature_names is not None:
            self.feature_names_in_ = np.asarray(resolved.feature_names, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        return resolved

    def _apply_dataset(self, algorithm: str, what: str, dataset, arrays: dict) -> list[dict]:
        """The fitted model ``arrays`` applied where the dataset lies: the
        output ``what`` of ``algorithm``, one result per read, in dataset order."""
        self._check_execution_params()
        resolved = dataset.resolve(open_storage(self.backend))
        if resolved.n_features != self.n_features_in_:
            raise ValueError(
                f"X has {resolved.n_features} features, but {type(self).__name__} is "
                f"expecting {self.n_features_in_} features as input."
            )
        return run_apply(ALGORITHMS[algorithm], what, arrays, resolved, backend=self.backend,
                         n_workers=self.n_workers, timeout=self.timeout)

    def _run_distributed(self, algorithm: str, params: dict, columns: dict,
                         progress=None) -> list[dict]:
        """``progress`` gets the coordinator's lines and reports (default:
        the lines are printed when ``verbose``)."""
        verbose = getattr(self, "verbose", 0)
        if verbose:
            _print_line(self._start_line(columns))
        if progress is None and verbose:
            progress = _print_line
        outcome = run_distributed(
            ALGORITHMS[algorithm], params, columns, backend=self.backend,
            state_store=self.state_store,
            state_mode=self.state_mode, n_workers=self.n_workers, timeout=self.timeout,
            progress=progress,
        )
        self.n_workers_ = outcome.n_workers
        self.timings_ = timings_of(outcome)
        if verbose:
            for line in fit_summary(self.timings_, self.n_workers_, type(self).__name__):
                _print_line(line)
        return outcome.results

    def _start_line(self, columns) -> str:
        """What a verbose fit says before its Lithops map: where it runs."""
        from .._driver import _warm
        from .._driver._backends import site_of
        from .._driver._fit import _worker_count

        site = site_of(self.backend)
        backend = (repr(self.backend) if isinstance(self.backend, str)
                   else "a Lithops config dict")
        try:
            n_workers = _worker_count(columns, self.backend, self.n_workers)
            workers = f"{n_workers} worker{'s' if n_workers != 1 else ''}"
        except Exception:  # noqa: BLE001 - a dataset without a row count yet
            workers = "workers"
        if self.n_workers is None:
            workers += " (n_workers=None: the backend's default for this data)"
        store = ("embedded SQLite" if self.state_store is None
                 else redacted(self.state_store))
        line = (f"[{type(self).__name__}] fit: backend {backend} (compute {site.compute!r}, "
                f"storage {site.storage!r}), {workers}, state store {store} "
                f"({self.state_mode}); starting one Lithops map")
        if site.local_compute and _warm.enabled() and _warm.server_pid() is None:
            line += ("; the first fit in this process also starts the warm runtime "
                     "(once: a second or more)")
        return line


#: A verbose fit prints its rounds' times in at most this many lines.
_ROUND_LINES = 5


def fit_summary(timings: dict, n_workers: int, name: str = "fit") -> list[str]:
    """What a verbose fit says at its end, from its ``timings_``: the start
    (Lithops map, workers' start and data load), then the time per round,
    in at most :data:`_ROUND_LINES` blocks of rounds, and the total."""
    n_rounds = int(timings["n_rounds"])
    phases = ("compute", "publish", "barrier", "aggregate")
    # A round lasts as long as its slowest worker's four phases.
    per_round = (np.sum([timings[phase] for phase in phases], axis=0).max(axis=1)
                 if n_rounds else np.zeros(0))
    rounds_total = float(per_round.sum())
    start = max(0.0, float(timings["fit"]) - rounds_total)
    load = float(np.max(timings["load"])) if len(timings["load"]) else 0.0
    workers = "1 worker" if n_workers == 1 else f"{n_workers} workers"
    lines = [f"[{name}] start: {start:.3f} s before the first round (Lithops map, {workers} "
             f"started, data loaded: slowest load {load:.3f} s"
             + (f", upload {timings['upload']:.3f} s" if timings["upload"] else "") + ")"]
    step = max(1, -(-n_rounds // _ROUND_LINES))
    for first in range(0, n_rounds, step):
        block = slice(first, min(n_rounds, first + step))
        means = {phase: float(timings[phase][block].max(axis=1).mean()) for phase in phases}
        rounds = (f"round {first + 1}" if block.stop - first == 1
                  else f"rounds {first + 1}-{block.stop}")
        lines.append(f"[{name}] {rounds}: {per_round[block].mean() * 1e3:.1f} ms/round ("
                     + ", ".join(f"{phase} {value * 1e3:.1f}" for phase, value in means.items())
                     + " ms, slowest worker)")
    extra = ""
    if timings.get("generations", 1) > 1:
        extra = f", {timings['generations']} generations of workers"
    lines.append(f"[{name}] done: {n_rounds} rounds in {rounds_total:.3f} s, fit "
                 f"{float(timings['fit']):.3f} s{extra}")
    return lines


def _print_line(line) -> None:
    if isinstance(line, str):  # a coordinator's report (arrays) is not printed
        print(line, flush=True)
