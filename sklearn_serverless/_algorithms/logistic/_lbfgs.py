"""L-BFGS-B (scipy's, with scikit-learn's options) on the distributed
objective: one round per evaluation. Also what 'sag', 'saga' and
'liblinear' run for an L2 penalty."""

from __future__ import annotations

import numpy as np

from ._objective import DistributedObjective
from ._params import LogisticParams


def _lbfgs_options(max_iter: int, tol: float, verbose: int) -> dict:
    """scikit-learn's L-BFGS-B options for logistic regression."""
    import scipy
    options = {"maxiter": max_iter, "maxls": 50, "gtol": tol,
               "ftol": 64 * np.finfo(float).eps}
    major, minor = (int(part) for part in scipy.__version__.split(".")[:2])
    if (major, minor) < (1, 15):  # iprint was deprecated in 1.15
        options["iprint"] = [-1, 50, 1, 100, 101][int(np.searchsorted([0, 1, 2, 3], verbose))]
    return options


def _no_log(line: str) -> None:
    """Where progress goes when nobody prints it."""


def lbfgs(objective: DistributedObjective, coef: np.ndarray, max_iter: int, tol: float,
          verbose: int = 0, log=_no_log, report=None) -> tuple[np.ndarray, dict]:
    """scipy's L-BFGS-B with scikit-learn's options; one round per evaluation.

    ``report``, when given, receives each iteration's coefficients and loss.
    Returns the solution and what the driver needs to warn as scikit-learn
    does (``status``, ``nit``, ``message``)."""
    coef = np.array(coef, dtype=np.float64)
    # The first evaluation goes before importing scipy.optimize (see _prefetch_solver_modules).
    first = [coef.copy(), objective.loss_gradient(coef)]

    def loss_gradient(x):
        if first and np.array_equal(x, first[0]):
            return first.pop()
        first.clear()
        return objective.loss_gradient(x)

    import scipy.optimize

    iterations = [0]

    def progress(intermediate_result) -> None:
        iterations[0] += 1
        if verbose:
            log(f"Iteration {iterations[0]}, loss {intermediate_result.fun}.")
        if report is not None:
            report(intermediate_result.x, intermediate_result.fun)

    result = scipy.optimize.minimize(
        loss_gradient, coef, method="L-BFGS-B", jac=True,
        options=_lbfgs_options(max_iter, tol, verbose),
        callback=progress if verbose or report is not None else None,
    )
    info = {"status": int(result.status), "nit": int(result.nit),
            "message": str(result.message)}
    return result.x, info


def solve(objective: DistributedObjective, coef: np.ndarray, params: LogisticParams, log) -> dict:
    """The coordinator's entry point (see :mod:`._coordinator`)."""
    max_iter = params.max_iter
    report = None
    if params.report:
        def report(x, loss):
            # To the driver's callbacks: the loss, and the coefficients if asked.
            coef = [np.asarray(x, dtype=np.float64)] if params.report > 1 else []
            objective.rounds.report(np.array([loss], dtype=np.float64), *coef)
    coef, info = lbfgs(objective, coef, max_iter, params.tol, params.verbose, log, report)
    info["max_iter"] = max_iter
    n_iter = min(info["nit"], max_iter)
    if params.inner_tol is not None and info["status"] == 0 and n_iter < max_iter - 1:
        coef, steps = _refine(objective, coef, params, max_iter - n_iter - 1, log)
        n_iter += steps
    return {"coef": coef, "lbfgs": info, "n_iter": n_iter}


def _refine(objective: DistributedObjective, coef: np.ndarray, params: LogisticParams,
            max_steps: int, log) -> tuple[np.ndarray, int]:
    """Newton-CG steps from L-BFGS-B's point until max |gradient| <=
    ``inner_tol`` ('sag', 'saga', 'liblinear' with an L2 penalty): L-BFGS-B
    stops on ``gtol=tol`` or on its ``ftol`` before the accuracy those
    solvers reach, a Newton step or two from there gets it. The fit already
    converged at ``tol``: a step that fails (rounding) just ends it."""
    from ._newton_cg import newton_cg

    coef, steps, _ = newton_cg(objective, coef, max_iter=max_steps, tol=params.inner_tol,
                               eps=16 * np.finfo(params.dtype).eps, verbose=params.verbose,
                               log=log)
    return coef, steps
