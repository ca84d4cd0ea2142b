"""OWL-QN (Andrew and Gao 2007, Spark MLlib's choice) for objectives with an
L1 part: ``f(w) + sum_j l1_j |w_j|`` with ``f`` smooth and distributed.

L-BFGS on the pseudo-gradient, each trial point projected onto the orthant
of the current iterate, so coefficients become exactly zero; a backtracking
line search of one round (loss and gradient) per trial. This is what
'saga' (elastic-net and L1) and 'liblinear' (L1) run here.
"""

from __future__ import annotations

import numpy as np

from ._objective import DistributedObjective
from ._params import LogisticParams

#: Pairs (s, y) kept for the inverse-Hessian approximation, as L-BFGS-B's default.
MEMORY = 10
#: Halvings of the step before the line search gives up.
MAX_BACKTRACKS = 30


def pseudo_gradient(x: np.ndarray, g: np.ndarray, l1: np.ndarray) -> np.ndarray:
    """The minimal-norm subgradient of ``f + sum l1 |x|`` (0 where the
    subdifferential at a zero contains 0)."""
    pg = g + l1 * np.sign(x)
    at_zero = x == 0
    right, left = g + l1, g - l1
    pg[at_zero] = np.where(right[at_zero] < 0, right[at_zero],
                           np.where(left[at_zero] > 0, left[at_zero], 0.0))
    return pg


def _two_loop(pg: np.ndarray, pairs: list) -> np.ndarray:
    """``-H pg`` by the L-BFGS two-loop recursion (``H0 = gamma I``)."""
    q = pg.copy()
    alphas = []
    for s, y, rho in reversed(pairs):
        a = rho * (s @ q)
        q -= a * y
        alphas.append(a)
    if pairs:
        s, y, _ = pairs[-1]
        q *= (s @ y) / (y @ y)
    for (s, y, rho), a in zip(pairs, reversed(alphas), strict=True):
        q += (a - rho * (y @ q)) * s
    return -q


def owlqn(objective: DistributedObjective, coef: np.ndarray, *, max_iter: int, tol: float,
          eps: float = 16 * np.finfo(np.float64).eps, verbose: int = 0, log=None,
          accept: float | None = None) -> tuple[np.ndarray, int, list]:
    """Minimise until max |pseudo-gradient| <= tol or ``max_iter`` iterations;
    a change of the objective below ``eps`` relative is rounding noise.
    Stopping early with max |pseudo-gradient| <= ``accept`` (a looser
    tolerance: the user's, when ``tol`` is the tighter inner one) is no
    failure: no warning.

    Returns the solution, the iterations and the warnings to raise on the
    driver as ``(category, message)``."""
    l1 = objective.l1_diag
    penalised = l1 > 0  # the intercepts are free: no orthant, no sign rule
    x = np.array(coef, dtype=np.float64)
    f, g = objective.loss_gradient(x)
    F = f + float(l1 @ np.abs(x))
    pairs: list = []
    caught: list = []
    n_iter = 0
    while True:
        pg = pseudo_gradient(x, g, l1)
        pg_max = float(np.max(np.abs(pg), initial=0.0))
        if verbose and log is not None:
            log(f"OWL-QN iter = {n_iter}, objective {F}, max |pseudo-gradient| {pg_max}")
        if pg_max <= tol:
            break
        accepted = accept is not None and pg_max <= accept
        if n_iter >= max_iter and accepted:
            break
        if n_iter >= max_iter:
            caught.append(("ConvergenceWarning", (
                f"OWL-QN failed to converge after {n_iter} iteration(s): max "
                f"|pseudo-gradient| {pg_max:.3g} > tol={tol:g}. Increase max_iter.")))
            break
        direction = _two_loop(pg, pairs)
        # A zero coefficient may only leave zero downhill; the orthant projection
        # guards the signs of the other penalised ones.
        direction[penalised & (x == 0) & (direction * pg >= 0)] = 0.0
        if direction @ pg >= 0:  # not a descent direction: restart from -pg
            pairs.clear()
            direction = -pg
        if not pairs:  # first step: unit length, as L-BFGS-B starts
            direction /= max(np.linalg.norm(direction), 1.0)
        orthant = np.where(x != 0, np.sign(x), -np.sign(pg))
        t = 1.0
        for _ in range(MAX_BACKTRACKS):
            trial = x + t * direction
            trial[penalised & (np.sign(trial) != orthant)] = 0.0
            f_new, g_new = objective.loss_gradient(trial)
            F_new = f_new + float(l1 @ np.abs(trial))
            if F_new <= F + 1e-4 * float(pg @ (trial - x)):
                break
            # At rounding level the objective cannot tell; the gradient still can
            # (scikit-learn's Newton line search does the same).
            if (abs(F_new - F) <= eps * abs(F)
                    and np.abs(pseudo_gradient(trial, g_new, l1)).sum() < np.abs(pg).sum()):
                break
            t *= 0.5
        else:
            if accepted:
                break
            caught.append(("ConvergenceWarning", (
                f"OWL-QN line search failed at iteration {n_iter} with max "
                f"|pseudo-gradient| {pg_max:.3g} > tol={tol:g}: the objective cannot "
                "decrease further in floating point. Increase tol.")))
            break
        s, y = trial - x, g_new - g
        sy = float(s @ y)
        if sy > 1e-16 * float(y @ y):
            pairs.append((s, y, 1.0 / sy))
            del pairs[:-MEMORY]
        x, f, g, F = trial, f_new, g_new, F_new
        n_iter += 1
        if not np.any(s):  # the step moved nothing: a fixed point
            break
    return x, n_iter, caught


def solve(objective: DistributedObjective, coef: np.ndarray, params: LogisticParams, log) -> dict:
    """The coordinator's entry point (see :mod:`._coordinator`)."""
    inner = params.inner_tol
    coef, n_iter, caught = owlqn(objective, coef, max_iter=params.max_iter,
                                 tol=params.tol if inner is None else inner,
                                 verbose=params.verbose, log=log,
                                 eps=16 * np.finfo(params.dtype).eps,
                                 accept=None if inner is None else params.tol)
    return {"coef": coef, "n_iter": n_iter, "warnings": caught}
