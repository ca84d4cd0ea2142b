"""scikit-learn's Newton-Cholesky solver on the distributed objective:
workers return their Hessian sums, the coordinator solves the Newton system."""

from __future__ import annotations

import warnings

import numpy as np

from ._lbfgs import _no_log, lbfgs
from ._objective import DistributedObjective
from ._params import LogisticParams


def newton_cholesky(objective: DistributedObjective, coef: np.ndarray, *, n_outputs: int,
                    max_iter: int, tol: float, eps: float, verbose: int = 0, log=_no_log
                    ) -> tuple[np.ndarray, int, list, dict | None]:
    """scikit-learn's ``NewtonCholeskySolver`` on the distributed objective:
    same Newton steps, backtracking line search, stopping rule, multinomial
    gauge fixing and L-BFGS fallback.

    Returns the solution, the iteration count (as sklearn counts), the
    warnings to raise on the driver as ``(category, message)`` and the
    L-BFGS fallback's result, if any; progress goes to ``log``.
    """
    caught = []
    m = n_outputs
    multinomial = m > 1
    no_penalty = multinomial and objective.l2 == 0
    with_intercept = multinomial and objective.penalised[-1] == 0

    coef = np.array(coef, dtype=np.float64)
    loss, gradient, hessian, hessian_warning = objective.newton_setup(coef)
    # sklearn fixes the softmax's free shift after computing the first raw predictions.
    if no_penalty:
        coef2d = coef.reshape(-1, m)
        coef2d -= coef2d[:, -1:].copy()
    elif with_intercept:
        coef[-m:] -= coef[-1]

    iteration, converged, fallback = 1, False, False
    while iteration <= max_iter and not converged:
        if verbose:
            log(f"Newton iter={iteration}")
        if iteration > 1:
            hessian, hessian_warning = objective.newton_hessian(coef)
        step, fallback, message = _newton_step(gradient, hessian, hessian_warning, m,
                                               no_penalty, with_intercept, iteration)
        if message:
            caught.append(message)
        if fallback:
            break
        # Backtracking line search (sklearn's NewtonSolver.line_search).
        beta, sigma = 0.5, 0.00048828125
        armijo = sigma * float(gradient @ step)
        coef_old, loss_old, gradient_old = coef, loss, gradient
        sum_abs_grad_old = -1.0
        t = 1.0
        for i in range(21):
            coef = coef_old + t * step
            loss, gradient = objective.newton_trial(coef, step, t, new_step=i == 0,
                                                    base=coef_old)
            improvement = loss - loss_old
            if improvement <= t * armijo:
                break
            if abs(improvement) <= abs(loss_old * eps):
                if sum_abs_grad_old < 0:
                    sum_abs_grad_old = float(np.abs(gradient_old).sum())
                if float(np.abs(gradient).sum()) < sum_abs_grad_old:
                    break
            t *= beta
        else:
            caught.append(("ConvergenceWarning", (
                f"Line search of Newton solver NewtonCholeskySolver at iteration "
                f"#{iteration} did not converge after 21 line search refinement "
                "iterations. It will now resort to lbfgs instead.")))
            fallback = True  # from the last trial, as sklearn
            break
        if verbose:
            log(f"  line search successful after {i + 1} iterations with loss={loss}.")
        # Convergence (sklearn's check_convergence): max |gradient| and Newton decrement.
        if np.max(np.abs(gradient)) <= tol and 0.5 * float(step @ hessian @ step) <= tol:
            converged = True
        iteration += 1

    info = None
    if not converged:
        if fallback:
            # As sklearn: L-BFGS finishes with the iterations left.
            left = max_iter - iteration
            coef, info = lbfgs(objective, coef, left, tol, verbose, log)
            info["max_iter"] = left
            iteration += min(info["nit"], left)
        else:
            caught.append(("ConvergenceWarning",
                           f"Newton solver did not converge after {iteration - 1} iterations."))
    iteration -= 1
    if no_penalty:
        coef2d = coef.reshape(-1, m)
        coef2d -= coef2d.mean(axis=1, keepdims=True)
    elif with_intercept:
        coef[-m:] -= np.mean(coef[-m:])
    return coef, iteration, caught, info


def _newton_step(gradient, hessian, hessian_warning, m, no_penalty, with_intercept,
                 iteration):
    """sklearn's ``NewtonCholeskySolver.inner_solve``: the step, whether to
    fall back to L-BFGS, and a warning. Modifies ``gradient`` as sklearn does
    (the gauge-fixed entries are zeroed)."""
    import scipy.linalg

    name = "NewtonCholeskySolver"
    if hessian_warning:
        return None, True, ("ConvergenceWarning", (
            f"The inner solver of {name} detected a pointwise hessian with many negative "
            f"values at iteration #{iteration}. It will now resort to lbfgs instead."))
    if no_penalty:
        d = gradient.size // m
        n = gradient.size - d
        gradient[m - 1::m] = 0
        hessian[m - 1::m, :] = 0
        hessian[:, m - 1::m] = 0
        g = gradient.reshape(-1, m)[:, :-1].flatten()
        H = hessian.reshape(d, m, d, m)[:, :-1, :, :-1].reshape(n, n)
    elif with_intercept:
        gradient[-1] = 0
        hessian[-1, :] = 0
        hessian[:, -1] = 0
        g, H = gradient[:-1], hessian[:-1, :-1]
    else:
        g, H = gradient, hessian
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", scipy.linalg.LinAlgWarning)
            step = scipy.linalg.solve(H, -g, check_finite=False, assume_a="sym")
    except (np.linalg.LinAlgError, scipy.linalg.LinAlgWarning) as exc:
        return None, True, ("LinAlgWarning", (
            f"The inner solver of {name} stumbled upon a singular or very "
            f"ill-conditioned Hessian matrix at iteration {iteration}. It will now "
            "resort to lbfgs instead.\nFurther options are to use another solver or "
            "to avoid such situation in the first place. Possible remedies are "
            "removing collinear features of X or increasing the penalization "
            "strengths.\nThe original Linear Algebra message was:\n" + str(exc)))
    if no_penalty:
        d = gradient.size // m
        step = np.c_[step.reshape(d, m - 1), np.zeros(d)].reshape(-1)
    elif with_intercept:
        step = np.r_[step, 0]
    if gradient @ step > 0:  # not a descent direction
        return None, True, None
    return step, False, None


def solve(objective: DistributedObjective, coef: np.ndarray, params: LogisticParams, log) -> dict:
    """The coordinator's entry point (see :mod:`._coordinator`)."""
    coef, n_iter, caught, info = newton_cholesky(
        objective, coef, n_outputs=params.n_outputs, max_iter=params.max_iter,
        tol=params.tol, eps=16 * np.finfo(params.dtype).eps,
        verbose=params.verbose, log=log)
    return {"coef": coef, "n_iter": n_iter, "warnings": caught, "lbfgs": info}
