"""The parameters of one logistic regression fit, built once by the
estimator for data in memory and for a dataset alike."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LogisticParams:
    """What the workers and the coordinator need of a logistic fit.

    The objective is scikit-learn's ``sum_i s_i loss_i / sum_i s_i`` plus
    the penalty with strengths :attr:`l2` and :attr:`l1`, from ``C``,
    ``l1_ratio`` and the total sample weight ``sw_sum``. ``n_outputs`` (1
    binary, else the classes) and ``sw_sum`` depend on the labels: known to
    the driver for data in memory (whose ``class_weight`` is then already in
    the sample weights), found by the first rounds for a dataset.
    """

    solver: str
    n_features: int
    fit_intercept: bool
    C: float
    l1_ratio: float
    max_iter: int
    tol: float
    verbose: int
    dtype: str
    learning_rate: object = "auto"
    #: liblinear penalises the intercept as the weight of a feature of this value.
    intercept_scaling: float | None = None
    liblinear: bool = False
    class_weight: object = None
    #: Initial coefficients (flat, the workers' layout), or None for zeros.
    coef: np.ndarray | None = None
    n_outputs: int | None = None
    sw_sum: float | None = None
    #: The solver's own stopping tolerance when tighter than ``tol`` ('sag',
    #: 'saga', 'liblinear': the accuracy of scikit-learn's solvers of those
    #: names); ``tol`` still decides the convergence warnings.
    inner_tol: float | None = None
    #: Per-iteration reports to the driver's callbacks ('lbfgs'): 0 none, 1 the
    #: loss, 2 the loss and the coefficients.
    report: int = 0

    @property
    def _strength(self) -> float:
        # liblinear minimises C sum_i s_i loss_i + penalty: the same minimiser.
        return 1.0 / (self.C * self.sw_sum)

    @property
    def l2(self) -> float:
        return (1.0 - self.l1_ratio) * self._strength

    @property
    def l1(self) -> float:
        return self.l1_ratio * self._strength
