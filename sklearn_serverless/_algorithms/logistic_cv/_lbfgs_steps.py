"""scipy's L-BFGS-B as a generator: the same iterates, without a thread.

``scipy.optimize.minimize(method='L-BFGS-B')`` drives a reverse-
communication routine (``setulb``): it returns whenever it needs the
objective at a new point. :func:`lbfgs_steps` runs the same loop with
scikit-learn's options but *yields* each point and receives its
``(loss, gradient)``, so that the coordinator can drive hundreds of models
in lockstep from one thread and evaluate them in one round. The loop is
scipy's own (``_minimize_lbfgsb``, scipy >= 1.15); :func:`available` is
False on other versions, where the solvers run in threads instead.
"""

from __future__ import annotations

from collections.abc import Generator

import numpy as np


def available() -> bool:
    """Whether this scipy has the reverse-communication ``setulb`` of scipy
    1.15+ (private; task codes as int32 pairs). Imported on first use, on
    the coordinator only: scipy.optimize costs a worker ~0.3 s to import."""
    try:
        import scipy
        from scipy.optimize import _lbfgsb
        from scipy.optimize._lbfgsb_py import status_messages, task_messages  # noqa: F401
    except ImportError:  # pragma: no cover - other scipy versions
        return False
    version = tuple(int(part) for part in scipy.__version__.split(".")[:2])
    return version >= (1, 15) and hasattr(_lbfgsb, "setulb")


#: setulb's task codes.
_FG, _NEW_X, _CONVERGED, _STOP = 3, 1, 4, 5
#: scipy's defaults for what scikit-learn does not set.
_MAXCOR, _MAXFUN = 10, 15000


def lbfgs_steps(x0: np.ndarray, max_iter: int, tol: float
                ) -> Generator[np.ndarray, tuple[float, np.ndarray], tuple[np.ndarray, dict]]:
    """Minimise from ``x0`` with scikit-learn's L-BFGS-B options
    (``maxiter=max_iter, maxls=50, gtol=tol, ftol=64 eps``).

    Yields each point to evaluate and expects ``(loss, gradient)`` back;
    returns the solution and ``{'status', 'nit', 'message'}`` as
    :func:`scipy.optimize.minimize` reports them."""
    from scipy.optimize import _lbfgsb
    from scipy.optimize._lbfgsb_py import status_messages, task_messages

    x = np.array(x0, dtype=np.float64).ravel()
    n = x.size
    m = _MAXCOR
    factr = 64.0  # ftol = 64 * eps
    nbd = np.zeros(n, np.int32)
    low = np.zeros(n, np.float64)
    upper = np.zeros(n, np.float64)
    wa = np.zeros(2 * m * n + 5 * n + 11 * m * m + 8 * m, np.float64)
    iwa = np.zeros(3 * n, dtype=np.int32)
    task = np.zeros(2, dtype=np.int32)
    ln_task = np.zeros(2, dtype=np.int32)
    lsave = np.zeros(4, dtype=np.int32)
    isave = np.zeros(44, dtype=np.int32)
    dsave = np.zeros(29, dtype=np.float64)
    # scipy's ScalarFunction evaluates x0 first, then again only at new points.
    f, g = yield x.copy()
    evaluated, nfev, n_iterations = x.copy(), 1, 0
    while True:
        g = np.asarray(g, dtype=np.float64)
        _lbfgsb.setulb(m, x, low, upper, nbd, f, g, factr, tol, wa, iwa, task, lsave,
                       isave, dsave, 50, ln_task)
        if task[0] == _FG:
            if not np.array_equal(x, evaluated):
                f, g = yield x.copy()
                evaluated = x.copy()
                nfev += 1
        elif task[0] == _NEW_X:
            n_iterations += 1
            if n_iterations >= max_iter:
                task[0], task[1] = _STOP, 504
            elif nfev > _MAXFUN:
                task[0], task[1] = _STOP, 502
        else:
            break
    if task[0] == _CONVERGED:
        status = 0
    elif nfev > _MAXFUN or n_iterations >= max_iter:
        status = 1
    else:
        status = 2
    message = status_messages[task[0]] + ": " + task_messages[task[1]]
    return x, {"status": status, "nit": n_iterations, "message": message}
