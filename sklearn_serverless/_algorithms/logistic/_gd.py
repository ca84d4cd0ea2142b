"""Full-batch gradient descent with a fixed step: the algorithm of the
serverless ML paper this package follows."""

from __future__ import annotations

import numpy as np

from ._lbfgs import _no_log
from ._objective import DistributedObjective
from ._params import LogisticParams


def gradient_descent(objective: DistributedObjective, coef: np.ndarray, *, n_outputs: int,
                     max_iter: int, tol: float, learning_rate: float | None,
                     verbose: int = 0, log=_no_log
                     ) -> tuple[np.ndarray, int, bool, float, float]:
    """Full-batch gradient descent with a fixed step (the paper's algorithm,
    with a convergence test): ``w <- w - lr * grad`` until ``max |grad| <=
    tol`` or ``max_iter`` steps. The default step is ``1 / L`` for an upper
    bound ``L`` on the gradient's Lipschitz constant, from one extra round.

    Returns the solution, the steps taken, whether it converged, the step
    size and the final max |gradient|; progress goes to ``log``."""
    if learning_rate is None:
        learning_rate = 1.0 / objective.lipschitz(n_outputs)
    coef = np.array(coef, dtype=np.float64)
    n_iter, converged, g_max = 0, False, np.inf
    while True:
        loss, grad = objective.loss_gradient(coef)
        g_max = float(np.max(np.abs(grad)))
        if verbose:
            log(f"Iteration {n_iter}, loss {loss}, max |gradient| {g_max}.")
        if g_max <= tol:
            converged = True
            break
        if n_iter >= max_iter:
            break
        coef -= learning_rate * grad
        n_iter += 1
    return coef, n_iter, converged, learning_rate, g_max


def solve(objective: DistributedObjective, coef: np.ndarray, params: LogisticParams, log) -> dict:
    """The coordinator's entry point (see :mod:`._coordinator`)."""
    tol = params.tol
    coef, n_iter, converged, lr, g_max = gradient_descent(
        objective, coef, n_outputs=params.n_outputs, max_iter=params.max_iter, tol=tol,
        learning_rate=params.learning_rate, verbose=params.verbose, log=log)
    caught = []
    if not converged:
        caught.append(("ConvergenceWarning", (
            f"gd failed to converge after {n_iter} iteration(s): max |gradient| "
            f"{g_max:.3g} > tol={tol:g} with learning_rate={lr:.3g}. Increase max_iter, "
            "scale the data or use solver='lbfgs'.")))
    return {"coef": coef, "n_iter": n_iter, "warnings": caught, "learning_rate": lr}
