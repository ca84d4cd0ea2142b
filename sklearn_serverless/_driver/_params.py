"""The execution parameters every estimator, transformer and
:func:`~sklearn_serverless.distributed.run` takes: one definition of their
defaults, constraints and documentation."""

from __future__ import annotations

from numbers import Integral, Real

from sklearn.utils._param_validation import (
    Interval,
    InvalidParameterError,
    StrOptions,
    validate_parameter_constraints,
)

from .._state import STATE_MODES
from ._backends import BACKENDS, closest_backend


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
        Shared state store. None is shared memory in the fit's temporary
        folder, for localhost compute with localhost storage only;
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


def check_execution_params(caller: str, **params) -> None:
    """scikit-learn's error for an execution parameter out of its
    constraints, naming ``caller``; a misspelled backend also gets the
    closest names."""
    backend = params.get("backend")
    if isinstance(backend, str) and backend not in BACKENDS:
        raise InvalidParameterError(
            f"The 'backend' parameter of {caller} must be 'localhost', a "
            f"Lithops config dict or a Lithops compute backend among {sorted(BACKENDS)}. "
            f"Got {backend!r} instead.{closest_backend(backend)}")
    validate_parameter_constraints(
        {name: EXECUTION_CONSTRAINTS[name] for name in params}, params, caller_name=caller)
