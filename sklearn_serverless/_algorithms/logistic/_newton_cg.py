"""scikit-learn's Newton-CG (``sklearn.utils.optimize._newton_cg``) on the
distributed objective: truncated Newton steps by conjugate gradients, each
Hessian-vector product one round, then a Wolfe line search whose
evaluations are one round each (loss and gradient together)."""

from __future__ import annotations

from functools import partial

import numpy as np

from ._objective import DistributedObjective
from ._params import LogisticParams


class _Evaluations:
    """Loss and gradient at the last point asked: a line search asks for
    both at the same point, and that is one round."""

    def __init__(self, objective: DistributedObjective):
        self.objective = objective
        self.at = self.value = None

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        if self.at is None or not np.array_equal(x, self.at):
            self.value = self.objective.loss_gradient(x)
            self.at = np.array(x)
        return self.value

    def loss(self, x: np.ndarray) -> float:
        return self(x)[0]

    def gradient(self, x: np.ndarray) -> np.ndarray:
        return self(x)[1]


def _conjugate_gradient(hessp, gradient: np.ndarray, max_iter: int, tol: float,
                        eps: float) -> np.ndarray:
    """sklearn's ``_cg``: solve ``H x = -g`` approximately (stops on
    sum |residual| <= tol, tiny or negative curvature)."""
    x = np.zeros_like(gradient)
    residual = gradient.copy()
    direction = -residual
    i = 0
    dri0 = residual @ residual
    direction_norm2 = dri0
    while i <= max_iter:
        if np.sum(np.abs(residual)) <= tol:
            break
        Ap = hessp(direction)
        curvature = direction @ Ap
        if 0 <= curvature <= eps * direction_norm2:
            break
        if curvature < 0:
            if i == 0:  # steepest descent
                x += dri0 / curvature * direction
            break
        alpha = dri0 / curvature
        x += alpha * direction
        residual += alpha * Ap
        dri1 = residual @ residual
        beta = dri1 / dri0
        direction = -residual + beta * direction
        direction_norm2 = dri1 + beta ** 2 * direction_norm2
        i += 1
        dri0 = dri1
    return x


def _line_search(evaluations: _Evaluations, xk, pk, gfk, old_fval, old_old_fval, eps):
    """sklearn's ``_line_search_wolfe12``: Wolfe 1, then the tiny-improvement
    acceptance of a full step, then Wolfe 2. Returns ``(step, fval,
    old_fval)``; ``step`` is None on failure."""
    from scipy.optimize._linesearch import line_search_wolfe2, scalar_search_wolfe1

    stp, fval, old_fval_ = scalar_search_wolfe1(
        lambda s: evaluations.loss(xk + s * pk),
        lambda s: evaluations.gradient(xk + s * pk) @ pk,
        old_fval, old_old_fval, gfk @ pk, c1=1e-4, c2=0.9, amax=50, amin=1e-8, xtol=1e-14)
    if stp is not None:
        return stp, fval, old_fval_
    fval = evaluations.loss(xk + pk)
    if abs(fval - old_fval) <= abs(old_fval * eps):
        if np.abs(evaluations.gradient(xk + pk)).sum() < np.abs(gfk).sum():
            return 1.0, fval, old_fval
    ret = line_search_wolfe2(evaluations.loss, evaluations.gradient, xk, pk, gfk, old_fval,
                             old_old_fval)
    return ret[0], ret[3], ret[4]


def newton_cg(objective: DistributedObjective, coef: np.ndarray, *, max_iter: int,
              tol: float, eps: float, max_inner: int = 200, verbose: int = 0, log=None
              ) -> tuple[np.ndarray, int, list]:
    """Newton-CG until max |gradient| <= tol or ``max_iter`` Newton steps;
    ``eps`` is 16 times the data type's machine epsilon, as sklearn's.

    Returns the solution, the steps taken and the warnings to raise on the
    driver as ``(category, message)``."""
    evaluations = _Evaluations(objective)
    xk = np.array(coef, dtype=np.float64)
    old_fval, old_old_fval = evaluations.loss(xk), None
    caught, k = [], 0
    while k < max_iter:
        gradient = evaluations.gradient(xk).copy()
        absgrad = np.abs(gradient)
        if verbose and log is not None:
            log(f"Newton-CG iter = {k}, max |gradient| = {absgrad.max()}")
        if absgrad.max() <= tol:
            break
        maggrad = absgrad.sum()
        termcond = min(0.5, np.sqrt(maggrad)) * maggrad
        step = _conjugate_gradient(partial(objective.hessian_product, xk.copy()), gradient,
                                   max_inner, termcond, eps)
        alpha, fval, previous = _line_search(evaluations, xk, step, gradient, old_fval,
                                             old_old_fval, eps)
        if alpha is None:
            caught.append(("UserWarning", "Line Search failed"))
            break
        old_fval, old_old_fval = fval, previous
        xk += alpha * step
        k += 1
    if k >= max_iter:
        caught.append(("ConvergenceWarning", (
            f"newton-cg failed to converge at loss = {old_fval}. Increase the number of "
            "iterations.")))
    return xk, k, caught


def solve(objective: DistributedObjective, coef: np.ndarray, params: LogisticParams, log) -> dict:
    """The coordinator's entry point (see :mod:`._coordinator`)."""
    coef, n_iter, caught = newton_cg(objective, coef, max_iter=params.max_iter,
                                     tol=params.tol, verbose=params.verbose, log=log,
                                     eps=16 * np.finfo(params.dtype).eps)
    return {"coef": coef, "n_iter": n_iter, "warnings": caught}
