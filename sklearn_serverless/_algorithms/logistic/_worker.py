"""The worker's side of logistic regression: loss, gradient, Hessian and
Hessian-vector product sums on request, one command per round."""

from __future__ import annotations

import numpy as np

from ..._worker._algorithm import Context
from ._kernels import (
    gradient_sum,
    hessian_product,
    hessian_sum,
    issparse,
    loss_gradient_sum,
    pointwise_hessian,
    pointwise_loss_gradient,
    raw_prediction,
)
from ._params import LogisticParams


def _prefetch_solver_modules() -> None:
    """Import the coordinator's scipy modules in a thread (~0.2 s): the first
    round, which needs none of them, runs meanwhile (BLAS and the barrier
    wait release the GIL), so the import leaves the critical path."""
    import sys
    import threading

    if "scipy.optimize" in sys.modules and "scipy.linalg" in sys.modules:
        return  # a pool worker's later fits: a thread would only cost its start (~0.7 ms)

    def load():
        import scipy.linalg  # noqa: F401
        import scipy.optimize  # noqa: F401

    threading.Thread(target=load, name="prefetch-scipy", daemon=True).start()


class Worker:
    """One partition's side: loss, gradient and Hessian sums on request.

    Newton rounds keep the raw predictions of the current iterate, as
    scikit-learn's solver does: a line-search trial is ``raw + t * raw_step``
    and costs no GEMM beyond the one for the step direction. Hessian-vector
    products keep the raw predictions of the point they were last asked at.
    """

    def __init__(self, data: dict, params: LogisticParams, context: Context):
        self.X = data["X"]
        self.y = data["y"]
        self.sample_weight = data["sample_weight"]
        self.fit_intercept = params.fit_intercept
        self.raw = self.raw_step = self.raw_trial = None
        self.hessp_at = self.hessp_raw = None
        if context.rank == 0:
            _prefetch_solver_modules()

    def handle(self, command: str, arrays: list) -> np.ndarray | None:
        if command == "loss_gradient":
            return loss_gradient_sum(self.X, self.y, self.sample_weight, arrays[0],
                                     self.fit_intercept)
        if command == "newton_setup":
            self.raw = raw_prediction(self.X, arrays[0], self.fit_intercept)
            loss, grad = pointwise_loss_gradient(self.raw, self.y, self.sample_weight)
            return np.concatenate([[loss], gradient_sum(self.X, grad, self.fit_intercept),
                                   self._hessian(self.raw)])
        if command == "newton_trial":
            step, t, (new_step,), base = arrays
            if self.raw is None:  # a replacement worker: from the iterate
                self.raw = raw_prediction(self.X, base, self.fit_intercept)
            if new_step or self.raw_step is None:  # a new Newton direction
                self.raw_step = raw_prediction(self.X, step, self.fit_intercept)
            self.raw_trial = self.raw + float(t[0]) * self.raw_step
            loss, grad = pointwise_loss_gradient(self.raw_trial, self.y, self.sample_weight)
            return np.concatenate([[loss], gradient_sum(self.X, grad, self.fit_intercept)])
        if command == "newton_hessian":
            # The last trial was accepted (a replacement worker computes it).
            self.raw = (self.raw_trial if self.raw_trial is not None
                        else raw_prediction(self.X, arrays[0], self.fit_intercept))
            return self._hessian(self.raw)
        if command == "hessian_product":
            at, vector = arrays
            if self.hessp_at is None or not np.array_equal(at, self.hessp_at):
                self.hessp_at = np.array(at)
                self.hessp_raw = raw_prediction(self.X, at, self.fit_intercept)
            return hessian_product(self.X, self.hessp_raw, self.sample_weight, vector,
                                   self.fit_intercept)
        if command == "gram":
            return self._gram(full=bool(arrays[0][0]))
        raise ValueError(f"unknown logistic regression command {command!r}")

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
        if issparse(self.X):
            norms = np.asarray(self.X.multiply(self.X).sum(axis=1)).ravel()
        else:
            norms = np.einsum("ij,ij->i", self.X, self.X, dtype=np.float64)
        return np.array([(norms + int(self.fit_intercept)) @ self.sample_weight])
