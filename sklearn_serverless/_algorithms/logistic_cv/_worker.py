"""The worker's side of a cross-validated logistic regression: the batched
loss and gradient of every running model, and the test-fold statistics."""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

from ..._worker._algorithm import Context
from ..logistic._kernels import hessian_product, raw_prediction
from ..logistic._worker import _prefetch_solver_modules
from ._kernels import batch_loss_gradient, score_statistics
from ._params import LogisticCVParams

#: Below this many entries of X a worker computes on one BLAS thread.
SMALL_PARTITION = 1_000_000


class Worker:
    """One partition's rows and, per fold, their training and test weights.

    ``data`` holds ``X``, ``y`` (0/1 for binary, else the class index),
    ``sample_weight`` (class weights included: the objective's),
    ``score_weight`` (the caller's sample weights: the scorers'), and
    ``train`` and ``test``, (n_rows, n_folds) masks of fold membership.
    """

    def __init__(self, data: dict, params: LogisticCVParams, context: Context):
        self.X = data["X"]
        self.y = np.asarray(data["y"], dtype=np.float64)
        self.labels = self.y.astype(np.intp)
        sw = np.asarray(data["sample_weight"], dtype=np.float64)
        train = np.asarray(data["train"], dtype=bool).reshape(sw.shape[0], -1)
        test = np.asarray(data["test"], dtype=bool).reshape(sw.shape[0], -1)
        # Training weights of each fold, then of the refit (every row).
        self.S = np.empty((sw.shape[0], train.shape[1] + 1))
        self.S[:, :-1] = train * sw[:, None]
        self.S[:, -1] = sw
        self.T = test * np.asarray(data["score_weight"], dtype=np.float64)[:, None]
        self.params = params
        if self.X.shape[0] * self.X.shape[1] < SMALL_PARTITION:
            # Hundreds of tiny GEMMs (and the coordinator's L-BFGS-B updates) on
            # two BLAS threads under load cost more than they compute: breast_cancer
            # took 0.4-1.7 s on one worker with 2 threads, 0.25-0.38 s with 1.
            threadpool_limits(limits=1)
        if context.rank == 0:
            _prefetch_solver_modules()

    def handle(self, command: str, arrays: list) -> np.ndarray | None:
        p = self.params
        if command == "loss_gradient":
            folds, coefs = arrays
            return batch_loss_gradient(self.X, self.y, self.S, folds.astype(np.intp), coefs,
                                       p.fit_intercept, p.n_outputs)
        if command == "score":
            folds, coefs = arrays
            return score_statistics(self.X, self.labels, self.T, folds.astype(np.intp), coefs,
                                    p.fit_intercept, p.n_outputs, p.n_classes)
        if command == "hessian_product":
            # One model's (the refit's Newton-CG polish): its fold's weights.
            fold, at, vector = arrays
            raw = raw_prediction(self.X, at, p.fit_intercept)
            return hessian_product(self.X, raw, self.S[:, int(fold[0])], vector,
                                   p.fit_intercept)
        raise ValueError(f"unknown logistic regression CV command {command!r}")

    def result(self) -> dict:
        return {}

    def close(self) -> None:
        """Nothing to release."""
