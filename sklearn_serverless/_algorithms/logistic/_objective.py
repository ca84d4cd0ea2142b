"""The coordinator's view of the objective: sums from all workers, one
round per evaluation, divided by the total weight, plus the penalty.

The smooth objective is scikit-learn's::

    f(w) = sum_i s_i loss_i / sum_i s_i + 1/2 sum_j l2_j w_j^2

and solvers with an L1 part add ``sum_j l1_j |w_j|`` themselves. The
per-coefficient strengths are ``l2 = (1 - l1_ratio) / (C sum_i s_i)`` and
``l1 = l1_ratio / (C sum_i s_i)`` on the weights and 0 on the intercepts;
for 'liblinear', whose intercept ``b`` is ``intercept_scaling * w_b`` for a
penalised weight ``w_b``, ``l2 / scaling^2`` and ``l1 / scaling`` on ``b``.
"""

from __future__ import annotations

import numpy as np

from ..._worker._rounds import Rounds
from ._params import LogisticParams

#: Above this many degrees of freedom the gd step comes from a trace bound, not the Gram.
MAX_GRAM_DOF = 2048


class DistributedObjective:
    """The penalised objective over all workers, one round per evaluation."""

    def __init__(self, rounds: Rounds, params: LogisticParams):
        self.rounds = rounds
        self.sw_sum = params.sw_sum
        self.l2 = params.l2
        m = params.n_outputs
        d = params.n_features + int(params.fit_intercept)
        self.size = d * m
        penalised = np.ones((d, m))
        l1_weights = np.ones((d, m))
        if params.fit_intercept:
            scaling = params.intercept_scaling
            penalised[-1] = 0.0 if scaling is None else 1.0 / scaling ** 2
            l1_weights[-1] = 0.0 if scaling is None else 1.0 / scaling
        self.penalised = penalised.ravel()
        self.l2_diag = self.l2 * self.penalised
        #: Each coefficient's L1 strength (used by OWL-QN).
        self.l1_diag = params.l1 * l1_weights.ravel()
        self.n_evaluations = 0

    def _finish(self, total: np.ndarray, coef: np.ndarray) -> tuple[float, np.ndarray]:
        penalty = self.l2_diag * coef
        loss = total[0] / self.sw_sum + 0.5 * float(penalty @ coef)
        grad = total[1:self.size + 1] / self.sw_sum + penalty
        return float(loss), grad

    def loss_gradient(self, coef: np.ndarray) -> tuple[float, np.ndarray]:
        """Objective and gradient at ``coef``."""
        self.n_evaluations += 1
        coef = np.ascontiguousarray(coef, dtype=np.float64)
        return self._finish(self.rounds.allreduce("loss_gradient", coef), coef)

    def hessian_product(self, coef: np.ndarray, vector: np.ndarray) -> np.ndarray:
        """The objective's Hessian at ``coef`` times ``vector``: one round."""
        coef = np.ascontiguousarray(coef, dtype=np.float64)
        vector = np.ascontiguousarray(vector, dtype=np.float64)
        total = self.rounds.allreduce("hessian_product", coef, vector)
        return total / self.sw_sum + self.l2_diag * vector

    def _hessian(self, flat: np.ndarray) -> tuple[np.ndarray, bool]:
        n = self.size
        H = flat[:n * n].reshape(n, n) / self.sw_sum
        H[np.diag_indices(n)] += self.l2_diag
        return H, bool(flat[n * n] > 0.25 * self.sw_sum)

    def newton_setup(self, coef: np.ndarray):
        """Objective, gradient, Hessian and the Hessian warning at ``coef``;
        the workers keep its raw predictions."""
        total = self.rounds.allreduce("newton_setup", coef)
        loss, grad = self._finish(total, coef)
        H, warning = self._hessian(total[self.size + 1:])
        return loss, grad, H, warning

    def newton_trial(self, coef: np.ndarray, step: np.ndarray, t: float, new_step: bool,
                     base: np.ndarray):
        """Objective and gradient at ``coef`` (= ``base + t * step``), from
        the workers' raw predictions; ``base`` lets a replacement worker
        rebuild them."""
        total = self.rounds.allreduce("newton_trial", step, np.array([t]),
                                      np.array([new_step]), base)
        return self._finish(total, coef)

    def newton_hessian(self, coef: np.ndarray) -> tuple[np.ndarray, bool]:
        """Accept the last trial, ``coef``; the Hessian there."""
        return self._hessian(self.rounds.allreduce("newton_hessian", coef))

    def lipschitz(self, n_outputs: int) -> float:
        """An upper bound on the gradient's Lipschitz constant: the largest
        eigenvalue of ``X~^T S X~ / sum(s)`` (a trace bound when the Gram
        matrix would be too large) times the loss's curvature bound (1/4
        binary, 1/2 multinomial), plus the penalty."""
        d = self.size // n_outputs
        full = d <= MAX_GRAM_DOF
        total = self.rounds.allreduce("gram", np.array([full]))
        if full:
            import scipy.linalg

            bound = float(scipy.linalg.eigvalsh(total.reshape(d, d) / self.sw_sum)[-1])
        else:
            bound = float(total[0] / self.sw_sum)
        return (0.25 if n_outputs == 1 else 0.5) * bound + float(self.l2_diag.max(initial=0))
