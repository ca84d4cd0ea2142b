"""Logistic regression, distributed: each worker evaluates the loss, its
gradient and (for Newton) its Hessian on its rows; the coordinator runs the
optimiser on the sums.

The objective is scikit-learn's::

    sum_i s_i loss_i / sum_i s_i + l2 / 2 ||w||^2,   l2 = 1 / (C sum_i s_i)

with the half binomial loss for two classes and the half multinomial loss
(full softmax, one coefficient row per class) for more, the intercept
unpenalised. Coefficients travel as scikit-learn's flat vector: for ``m``
outputs (1 for binary, ``n_classes`` otherwise) and ``d`` degrees of freedom
per output (features, plus one for the intercept, which is last), the flat
vector is the C-order ravel of a ``(d, m)`` matrix, i.e. sklearn's
``coef.ravel(order="F")`` of its ``(n_classes, d)`` array. Hessians use the
same index order.

The module has three layers: the kernels (loss, gradient and Hessian sums on
one partition: plain functions), the :class:`Worker` that serves them to the
runtime, and the coordinator's solvers (L-BFGS-B, Newton-Cholesky as
scikit-learn's ``NewtonCholeskySolver``, gradient descent), which only see a
:class:`DistributedObjective`.
"""

from __future__ import annotations

import warnings

import numpy as np

from ._runtime import STOP, Rounds
from ._sharing import Team

# No scipy import at module level: scipy.sparse, scipy.optimize and scipy.linalg cost
# each worker 0.1-0.3 s of start-up. Sparse partitions arrive as scipy CSR matrices
# and are used through their methods; the coordinator imports its solvers itself.


def _issparse(X) -> bool:
    """``scipy.sparse.issparse`` without importing scipy.sparse."""
    return type(X).__module__.startswith("scipy.sparse")

LOSS_GRAD, NEWTON_SETUP, NEWTON_TRIAL, NEWTON_HESSIAN, GRAM = 1, 2, 3, 4, 5

#: Rows per block of the dense Hessian: the block and its scaled copies stay in cache.
_HESSIAN_BLOCK = 4096
#: Above this many degrees of freedom the gd step comes from a trace bound, not the Gram.
MAX_GRAM_DOF = 2048


# kernels: sums over one partition ---------------------------------------------------------


def raw_prediction(X, coef: np.ndarray, fit_intercept: bool) -> np.ndarray:
    """``X @ W + b`` of shape (n_rows, m), in float64, from the flat ``coef``
    of shape (d * m,) (see module doc). One GEMM (GEMV for binary)."""
    n_features = X.shape[1]
    B = coef.reshape(n_features + int(fit_intercept), -1)
    W = B[:n_features].astype(X.dtype, copy=False)
    raw = np.asarray(X @ W, dtype=np.float64)
    if fit_intercept:
        raw += B[n_features]
    return raw


def pointwise_loss_gradient(raw: np.ndarray, y: np.ndarray, sample_weight: np.ndarray
                            ) -> tuple[float, np.ndarray]:
    """Weighted loss sum and the weighted pointwise gradient (n_rows, m).

    Binary (m == 1): half binomial loss ``log(1 + exp(r)) - y r``, gradient
    ``expit(r) - y``. Multiclass: ``logsumexp(r) - r_y``, gradient
    ``softmax(r) - onehot(y)``. Both are computed without overflow.
    """
    if raw.shape[1] == 1:
        r = raw[:, 0]
        # One exp for both: with e = exp(-|r|) (never overflows),
        # log(1 + exp(r)) = max(r, 0) + log1p(e) and expit(r) = (1 or e) / (1 + e).
        e = np.exp(-np.abs(r))
        loss = np.maximum(r, 0.0)
        loss += np.log1p(e)
        loss -= y * r
        grad = np.where(r >= 0, 1.0, e)
        grad /= 1.0 + e
        grad -= y
        grad *= sample_weight
        return float(loss @ sample_weight), grad[:, None]
    top = raw.max(axis=1, keepdims=True)
    shifted = raw - top
    proba = np.exp(shifted)
    total = proba.sum(axis=1, keepdims=True)
    proba /= total
    labels = y.astype(np.intp)
    # logsumexp(r) - r_y = log(sum exp(r - max)) - (r_y - max)
    loss = np.log(total[:, 0]) - np.take_along_axis(shifted, labels[:, None], 1)[:, 0]
    proba[np.arange(labels.shape[0]), labels] -= 1.0
    proba *= sample_weight[:, None]
    return float(loss @ sample_weight), proba


def gradient_sum(X, grad_pointwise: np.ndarray, fit_intercept: bool) -> np.ndarray:
    """``sum_i x_i g_i`` (and ``sum_i g_i`` for the intercept), flat: one ``X.T @ G``."""
    G = grad_pointwise.astype(X.dtype, copy=False)
    XtG = np.asarray(X.T @ G, dtype=np.float64)
    if fit_intercept:
        XtG = np.vstack([XtG, grad_pointwise.sum(axis=0)])
    return XtG.ravel()


def loss_block_rows(n_features: int) -> int:
    """Rows per block of the loss-gradient kernel: about 1 MiB of ``X``."""
    return max(256, min(8192, (1 << 20) // (8 * max(n_features, 1))))


def loss_gradient_sum(X, y: np.ndarray, sample_weight: np.ndarray, coef: np.ndarray,
                      fit_intercept: bool) -> np.ndarray:
    """``[sum_i s_i loss_i, gradient of it...]`` on one partition, no penalty.

    Dense rows go by cache-sized blocks: ``X_b @ W``, the pointwise loss,
    then ``X_b^T @ G_b`` while the block is still in cache, so each round
    reads ``X`` from memory once instead of twice (~1.6x faster)."""
    if _issparse(X):
        raw = raw_prediction(X, coef, fit_intercept)
        loss, grad = pointwise_loss_gradient(raw, y, sample_weight)
        return np.concatenate([[loss], gradient_sum(X, grad, fit_intercept)])
    n, p = X.shape
    B = coef.reshape(p + int(fit_intercept), -1)
    W = B[:p].astype(X.dtype, copy=False)
    XtG = np.zeros((p, B.shape[1]))
    G_sum = np.zeros(B.shape[1])
    loss = 0.0
    block = loss_block_rows(p)
    for start in range(0, n, block):
        stop = min(start + block, n)
        rows = X[start:stop]
        raw = np.asarray(rows @ W, dtype=np.float64)
        if fit_intercept:
            raw += B[p]
        block_loss, G = pointwise_loss_gradient(raw, y[start:stop], sample_weight[start:stop])
        loss += block_loss
        XtG += rows.T @ G.astype(X.dtype, copy=False)
        G_sum += G.sum(axis=0)
    if fit_intercept:
        XtG = np.vstack([XtG, G_sum])
    return np.concatenate([[loss], XtG.ravel()])


def pointwise_hessian(raw: np.ndarray, sample_weight: np.ndarray) -> list[list[np.ndarray]]:
    """Weighted pointwise Hessian: ``h[k][j]`` (l >= k) is the (n_rows,) weight of
    the (k, l) class block. Binary: ``p (1 - p)`` as ``e / (1 + e)^2``,
    ``e = exp(-|r|)`` (no underflow to 0 before |r| ~ 700). Multiclass:
    ``p_k delta_kl - p_k p_l``."""
    if raw.shape[1] == 1:
        e = np.exp(-np.abs(raw[:, 0]))
        return [[sample_weight * e / (1.0 + e) ** 2]]
    proba = np.exp(raw - raw.max(axis=1, keepdims=True))
    proba /= proba.sum(axis=1, keepdims=True)
    m = raw.shape[1]
    h = [[None] * m for _ in range(m)]
    for k in range(m):
        sp_k = sample_weight * proba[:, k]
        h[k][k] = sp_k * (1.0 - proba[:, k])
        for j in range(k + 1, m):
            h[k][j] = -sp_k * proba[:, j]
    return h


def _sandwich_sparse(X, h: np.ndarray, fit_intercept: bool) -> np.ndarray:
    """``[X, 1]^T diag(h) [X, 1]`` for CSR ``X``."""
    p = X.shape[1]
    d = p + int(fit_intercept)
    out = np.empty((d, d))
    out[:p, :p] = (X.T @ X.multiply(h[:, None]).tocsr()).toarray()
    if fit_intercept:
        Xh = np.asarray(X.T @ h).ravel()
        out[:p, p] = out[p, :p] = Xh
        out[p, p] = h.sum()
    return out


def hessian_sum(X, h: list[list[np.ndarray]], fit_intercept: bool) -> np.ndarray:
    """``sum_i h_i,kl x~_i x~_i^T`` for every class pair, with ``x~ = [x, 1]``,
    flat in scikit-learn's order (module doc): shape (d * m) ** 2.

    Dense rows go by blocks with the ones column appended, so each class row
    ``k`` is one GEMM ``X~^T [h_kk X~ | h_k,k+1 X~ | ...]`` per block.
    """
    m = len(h)
    n, p = X.shape
    d = p + int(fit_intercept)
    H = np.zeros((d, m, d, m))
    if _issparse(X):
        for k in range(m):
            for j in range(k, m):
                H[:, k, :, j] = _sandwich_sparse(X, h[k][j], fit_intercept)
    else:
        Xb = np.ones((min(_HESSIAN_BLOCK, n), d), dtype=X.dtype)
        acc = [np.zeros((d, (m - k) * d)) for k in range(m)]
        for start in range(0, n, _HESSIAN_BLOCK):
            stop = min(start + _HESSIAN_BLOCK, n)
            rows = Xb[: stop - start]
            rows[:, :p] = X[start:stop]
            for k in range(m):
                scaled = np.hstack([
                    h[k][j][start:stop, None].astype(X.dtype, copy=False) * rows
                    for j in range(k, m)
                ])
                acc[k] += rows.T @ scaled
        for k in range(m):
            for j in range(k, m):
                H[:, k, :, j] = acc[k][:, (j - k) * d:(j - k + 1) * d]
    for k in range(m):
        for j in range(k + 1, m):
            H[:, j, :, k] = H[:, k, :, j].T
    return H.ravel()


# the worker --------------------------------------------------------------------------------


def _prefetch_solver_modules() -> None:
    """Import the coordinator's scipy modules in a thread (~0.2 s): the first
    round, which needs none of them, runs meanwhile (BLAS and the barrier
    wait release the GIL), so the import leaves the critical path."""
    import threading

    def load():
        import scipy.linalg  # noqa: F401
        import scipy.optimize  # noqa: F401

    threading.Thread(target=load, name="prefetch-scipy", daemon=True).start()


class Worker:
    """One partition's side: loss, gradient and Hessian sums on request.

    Newton rounds keep the raw predictions of the current iterate, as
    scikit-learn's solver does: a line-search trial is ``raw + t * raw_step``
    and costs no GEMM beyond the one for the step direction.
    """

    def __init__(self, data: dict, params: dict, team: Team):
        self.X = data["X"]
        self.y = data["y"]
        self.sample_weight = data["sample_weight"]
        self.fit_intercept = params["fit_intercept"]
        self.raw = self.raw_step = self.raw_trial = None
        if team.worker == 0:
            _prefetch_solver_modules()

    def handle(self, code: int, flags: np.ndarray, arrays: list) -> np.ndarray | None:
        if code == LOSS_GRAD:
            return loss_gradient_sum(self.X, self.y, self.sample_weight, arrays[0],
                                     self.fit_intercept)
        if code == NEWTON_SETUP:
            self.raw = raw_prediction(self.X, arrays[0], self.fit_intercept)
            loss, grad = pointwise_loss_gradient(self.raw, self.y, self.sample_weight)
            return np.concatenate([[loss], gradient_sum(self.X, grad, self.fit_intercept),
                                   self._hessian(self.raw)])
        if code == NEWTON_TRIAL:
            step, t = arrays
            if flags[0]:  # a new Newton direction
                self.raw_step = raw_prediction(self.X, step, self.fit_intercept)
            self.raw_trial = self.raw + float(t[0]) * self.raw_step
            loss, grad = pointwise_loss_gradient(self.raw_trial, self.y, self.sample_weight)
            return np.concatenate([[loss], gradient_sum(self.X, grad, self.fit_intercept)])
        if code == NEWTON_HESSIAN:
            self.raw = self.raw_trial  # the last trial was accepted
            return self._hessian(self.raw)
        if code == GRAM:
            return self._gram(full=bool(flags[0]))
        if code == STOP:
            return None
        raise ValueError(f"unknown logistic regression command {code}")

    def result(self) -> dict:
        return {}

    def close(self) -> None:
        """Nothing to release: every row is this worker's own."""

    def _hessian(self, raw: np.ndarray) -> np.ndarray:
        """The Hessian sum, then the weight of rows whose pointwise Hessian is
        not positive (sklearn falls back to L-BFGS when that passes 25%)."""
        h = pointwise_hessian(raw, self.sample_weight)
        flat = hessian_sum(self.X, h, self.fit_intercept)
        not_positive = float(self.sample_weight @ (h[0][0] <= 0)) if len(h) == 1 else 0.0
        return np.concatenate([flat, [not_positive]])

    def _gram(self, full: bool) -> np.ndarray:
        """``X~^T S X~`` (flat), or only its trace when it would be too large."""
        if full:
            return hessian_sum(self.X, [[self.sample_weight]], self.fit_intercept)
        if _issparse(self.X):
            norms = np.asarray(self.X.multiply(self.X).sum(axis=1)).ravel()
        else:
            norms = np.einsum("ij,ij->i", self.X, self.X, dtype=np.float64)
        return np.array([(norms + int(self.fit_intercept)) @ self.sample_weight])


# the coordinator: objective -----------------------------------------------------------------


class DistributedObjective:
    """The penalised objective over all workers, one round per evaluation.

    Workers return sums; this divides by the total weight and adds the L2
    penalty once, on the coefficients but not the intercepts.
    """

    def __init__(self, rounds: Rounds, params: dict):
        self.rounds = rounds
        self.sw_sum = params["sw_sum"]
        self.l2 = params["l2"]
        m = params["n_outputs"]
        d = params["n_features"] + int(params["fit_intercept"])
        self.size = d * m
        penalised = np.ones((d, m))
        if params["fit_intercept"]:
            penalised[-1] = 0.0
        self.penalised = penalised.ravel()
        self.n_evaluations = 0

    def _finish(self, total: np.ndarray, coef: np.ndarray) -> tuple[float, np.ndarray]:
        w = coef * self.penalised
        loss = total[0] / self.sw_sum + 0.5 * self.l2 * float(w @ w)
        grad = total[1:self.size + 1] / self.sw_sum + self.l2 * w
        return float(loss), grad

    def loss_gradient(self, coef: np.ndarray) -> tuple[float, np.ndarray]:
        """Objective and gradient at ``coef``."""
        self.n_evaluations += 1
        coef = np.ascontiguousarray(coef, dtype=np.float64)
        return self._finish(self.rounds(LOSS_GRAD, coef), coef)

    def _hessian(self, flat: np.ndarray) -> tuple[np.ndarray, bool]:
        n = self.size
        H = flat[:n * n].reshape(n, n) / self.sw_sum
        H[np.diag_indices(n)] += self.l2 * self.penalised
        return H, bool(flat[n * n] > 0.25 * self.sw_sum)

    def newton_setup(self, coef: np.ndarray):
        """Objective, gradient, Hessian and the Hessian warning at ``coef``;
        the workers keep its raw predictions."""
        total = self.rounds(NEWTON_SETUP, coef)
        loss, grad = self._finish(total, coef)
        H, warning = self._hessian(total[self.size + 1:])
        return loss, grad, H, warning

    def newton_trial(self, coef: np.ndarray, step: np.ndarray, t: float, new_step: bool):
        """Objective and gradient at ``coef`` (= current + t * step), from the
        workers' raw predictions."""
        total = self.rounds(NEWTON_TRIAL, step, np.array([t]), flags=(int(new_step),))
        return self._finish(total, coef)

    def newton_hessian(self) -> tuple[np.ndarray, bool]:
        """Accept the last trial; the Hessian there."""
        return self._hessian(self.rounds(NEWTON_HESSIAN))

    def lipschitz(self, n_outputs: int) -> float:
        """An upper bound on the gradient's Lipschitz constant: the largest
        eigenvalue of ``X~^T S X~ / sum(s)`` (a trace bound when the Gram
        matrix would be too large) times the loss's curvature bound (1/4
        binary, 1/2 multinomial), plus the penalty."""
        d = self.size // n_outputs
        full = d <= MAX_GRAM_DOF
        total = self.rounds(GRAM, flags=(int(full),))
        if full:
            import scipy.linalg

            bound = float(scipy.linalg.eigvalsh(total.reshape(d, d) / self.sw_sum)[-1])
        else:
            bound = float(total[0] / self.sw_sum)
        return (0.25 if n_outputs == 1 else 0.5) * bound + self.l2


# the coordinator: solvers -------------------------------------------------------------------


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
          verbose: int = 0, log=_no_log) -> tuple[np.ndarray, dict]:
    """scipy's L-BFGS-B with scikit-learn's options; one round per evaluation.

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
        log(f"Iteration {iterations[0]}, loss {intermediate_result.fun}.")

    result = scipy.optimize.minimize(
        loss_gradient, coef, method="L-BFGS-B", jac=True,
        options=_lbfgs_options(max_iter, tol, verbose), callback=progress if verbose else None,
    )
    info = {"status": int(result.status), "nit": int(result.nit),
            "message": str(result.message)}
    return result.x, info


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
            hessian, hessian_warning = objective.newton_hessian()
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
            loss, gradient = objective.newton_trial(coef, step, t, new_step=i == 0)
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
            coef, info = lbfgs(objective, coef, left, tol, verbose)
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


def coordinate(rounds: Rounds, params: dict) -> dict:
    """Run the chosen solver from ``params['coef']``."""
    objective = DistributedObjective(rounds, params)
    solver, coef = params["solver"], params["coef"]
    max_iter, tol, verbose = params["max_iter"], params["tol"], params["verbose"]
    out = {"warnings": [], "lbfgs": None}
    if solver == "lbfgs":
        coef, info = lbfgs(objective, coef, max_iter, tol, verbose, rounds.log)
        info["max_iter"] = max_iter
        out.update(coef=coef, lbfgs=info, n_iter=min(info["nit"], max_iter))
    elif solver == "newton-cholesky":
        coef, n_iter, caught, info = newton_cholesky(
            objective, coef, n_outputs=params["n_outputs"], max_iter=max_iter, tol=tol,
            eps=16 * np.finfo(params["dtype"]).eps, verbose=verbose, log=rounds.log)
        out.update(coef=coef, n_iter=n_iter, warnings=caught, lbfgs=info)
    elif solver == "gd":
        coef, n_iter, converged, lr, g_max = gradient_descent(
            objective, coef, n_outputs=params["n_outputs"], max_iter=max_iter, tol=tol,
            learning_rate=params["learning_rate"], verbose=verbose, log=rounds.log)
        if not converged:
            out["warnings"].append(("ConvergenceWarning", (
                f"gd failed to converge after {n_iter} iteration(s): max |gradient| "
                f"{g_max:.3g} > tol={tol:g} with learning_rate={lr:.3g}. Increase max_iter, "
                "scale the data or use solver='lbfgs'.")))
        out.update(coef=coef, n_iter=n_iter, learning_rate=lr)
    else:
        raise ValueError(f"unknown solver {solver!r}")
    out["n_evaluations"] = objective.n_evaluations
    return out
