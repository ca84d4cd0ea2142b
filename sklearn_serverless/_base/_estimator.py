"""What every serverless estimator shares: the parameters that choose where
and how ``fit`` runs, their validation, and the fitted time breakdown."""

from __future__ import annotations

import numpy as np

from .._algorithms import ALGORITHMS
from .._common._deadlines import DEFAULT_TIMEOUT  # noqa: F401 - the estimators' default
from .._driver._apply import run_apply
from .._driver._backends import (
    check_backend,
    check_state_store,
    open_storage,
)
from .._driver._cost import cost_line
from .._driver._params import (  # noqa: F401 - the estimators' one definition
    EXECUTION_CONSTRAINTS,
    EXECUTION_PARAMS_DOC,
    check_execution_params,
)
from .._driver._rows import attach_counts, in_view_order
from .._state._redis_url import redacted
from ..distributed._run import print_line, run

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
        ``'load'`` (per worker: start to data in memory), ``'bytes_fetched'``
        and ``'cache_hits'`` (a dataset's bytes the workers fetched, and the
        workers that read none because their pool process kept its rows
        from an earlier fit; both 0 for arrays), ``'n_rounds'`` and,
        per round and worker,
        ``'compute'``, ``'publish'``, ``'barrier'`` and ``'aggregate'``
        (seconds), ``'cpu'`` (CPU seconds of the worker's process in the
        round, its threads included; the first round's includes its set-up
        after the load) and ``'helped'`` (chunks of other workers' rows this
        worker computed: work sharing on localhost), arrays of shape
        (n_rounds, ``n_workers_``); ``'cost'``: what the fit cost, a dict
        with ``'usd'``, ``'gb_seconds'`` (per function billed), ``'requests'``
        (invocations), ``'storage_requests'`` and ``'redis_commands'`` (see
        the user guide, "What a fit costs").
"""


class ServerlessMixin:
    """Runs a built-in algorithm (:data:`sklearn_serverless._algorithms.ALGORITHMS`)
    with the estimator's execution parameters."""

    def _validate_params(self):
        # A misspelled backend: scikit-learn's message, and the closest names.
        backend = self.get_params(deep=False).get("backend")
        if isinstance(backend, str):
            check_execution_params(type(self).__name__, backend=backend)
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

    def _resolve_dataset(self, dataset, y, sample_weight, *, raw: bool = False):
        """A dataset's metadata (objects, features), read on the driver; sets
        ``n_features_in_`` and ``feature_names_in_`` from its header or schema.
        ``raw``: the step takes text features and missing cells (a
        transformer); otherwise text is refused here, NaN by the workers."""
        _check_dataset_labels(dataset, y, "fitting")
        if sample_weight is not None:
            raise ValueError("sample_weight must be None when fitting a dataset: its "
                             "weights are the dataset's weight column "
                             "(read_csv(..., sample_weight=...))")
        self._check_execution_params()
        resolved = self._consumed(attach_counts(dataset.resolve(open_storage(self.backend)),
                                                self.backend, self.n_workers), raw)
        self.n_features_in_ = resolved.n_features
        if resolved.feature_names is not None:
            self.feature_names_in_ = np.asarray(resolved.feature_names, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        return resolved

    def _consumed(self, resolved, raw: bool):
        """The dataset as this estimator reads it: text features refused on the
        driver as scikit-learn's ``check_array`` refuses them, NaN refused by the
        workers with its message (unless ``raw``)."""
        if not raw and resolved.text_features:
            j = resolved.text_features[0]
            sample = resolved.text_samples[j] if j < len(resolved.text_samples) else None
            name = (resolved.feature_names[j] if resolved.feature_names is not None
                    else f"{j} (from 0)")
            raise ValueError(f"could not convert string to float: {sample!r} (the feature "
                             f"{name!r} holds text: encode it first, e.g. with "
                             "ServerlessOneHotEncoder in a pipeline)")
        return resolved.for_consumer(type(self).__name__, allow_nan=raw)

    def _apply_dataset(self, algorithm: str, what: str, dataset, arrays: dict) -> list[dict]:
        """The fitted model ``arrays`` applied where the dataset lies: the
        output ``what`` of ``algorithm``, one result per read, in dataset order."""
        self._check_execution_params()
        resolved = self._consumed(attach_counts(dataset.resolve(open_storage(self.backend)),
                                                self.backend, self.n_workers),
                                  getattr(self, "_takes_raw_columns", False))
        if resolved.n_features != self.n_features_in_:
            raise ValueError(
                f"X has {resolved.n_features} features, but {type(self).__name__} is "
                f"expecting {self.n_features_in_} features as input."
            )
        parts = run_apply(ALGORITHMS[algorithm], what, arrays, resolved, backend=self.backend,
                          n_workers=self.n_workers, timeout=self.timeout,
                          state_store=self.state_store)
        return in_view_order(resolved, parts)

    def _run_distributed(self, algorithm: str, params: dict, columns: dict,
                         progress=None) -> list[dict]:
        """``progress`` gets the coordinator's lines and reports (default:
        the lines are printed when ``verbose``)."""
        verbose = getattr(self, "verbose", 0)
        if verbose:
            print_line(self._start_line(columns))
        if progress is None and verbose:
            progress = print_line
        # The same entry point as a user's algorithm (sklearn_serverless.distributed.run).
        out = run(ALGORITHMS[algorithm], columns, params=params, backend=self.backend,
                  n_workers=self.n_workers, state_store=self.state_store,
                  state_mode=self.state_mode, timeout=self.timeout, verbose=progress or False)
        self.n_workers_ = out.n_workers
        self.timings_ = out.timings
        if verbose:
            for line in fit_summary(self.timings_, self.n_workers_, type(self).__name__):
                print_line(line)
        return out.worker_results

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
        store = ("shared memory" if self.state_store is None
                 else redacted(self.state_store))
        line = (f"[{type(self).__name__}] fit: backend {backend} (compute {site.compute!r}, "
                f"storage {site.storage!r}), {workers}, state store {store} "
                f"({self.state_mode}); starting one Lithops map")
        if site.local_compute and _warm.enabled() and _warm.server_pid() is None:
            line += ("; the first fit in this process also starts the warm runtime "
                     "(once: a second or more)")
        return line


def _check_dataset_labels(dataset, y, doing: str) -> None:
    """``y`` given with a dataset must be its labels as ``dataset.labels()``
    fetched them (model selection passes them back, row subsets included):
    the workers use the label column where it lies."""
    if y is None:
        return
    labels = dataset.cache().get("labels")
    if labels is not None and hasattr(dataset, "rows"):
        labels = labels[dataset.rows]
    if labels is None or np.shape(y) != labels.shape or not np.array_equal(
            np.asarray(y), labels):
        raise ValueError(f"y must be None when {doing} a dataset: its labels are the "
                         "dataset's label column (read_csv(..., label=...)); y may only be "
                         "the labels that dataset.labels() fetched")


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
    if timings.get("cost") is not None:
        lines.append(cost_line(timings["cost"], name))
    return lines
