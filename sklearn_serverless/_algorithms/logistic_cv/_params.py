"""The parameters of one cross-validated logistic regression run."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Scorers the workers compute on the test rows of each fold (their sums
#: decompose over rows); any other scorer is computed by the driver.
WORKER_SCORERS = ("accuracy", "neg_log_loss", "balanced_accuracy")

#: How the grid of ``Cs`` is run: 'path' warm-starts each fold's models
#: along ``Cs`` (scikit-learn's order, one model per fold and l1_ratio in
#: each round); 'grid' runs every (fold, C, l1_ratio) side by side from zero.
STRATEGIES = ("path", "grid")


@dataclass(frozen=True)
class LogisticCVParams:
    """What the workers and the coordinator need of a cross-validated fit.

    Models are indexed by ``(fold, l1_ratio, C)``; fold ``n_folds`` is the
    refit on every row. ``sw_sums[k]`` is the total (class-weighted) sample
    weight of fold ``k``'s training rows, ``sw_sums[n_folds]`` of all rows.
    """

    solver: str  # 'lbfgs' or 'owlqn' (the distributed algorithm)
    n_features: int
    fit_intercept: bool
    n_outputs: int
    n_classes: int
    Cs: np.ndarray
    l1_ratios: np.ndarray
    n_folds: int
    sw_sums: np.ndarray
    max_iter: int
    tol: float
    verbose: int
    dtype: str
    #: liblinear penalises the intercept as the weight of a feature of this value.
    intercept_scaling: float | None = None
    #: One of WORKER_SCORERS, or None: the fold models come back unscored.
    scoring: str | None = "accuracy"
    refit: bool = True
    strategy: str = "path"
    #: Only refit from this start (flat), at ``refit_C`` and ``refit_l1_ratio``:
    #: the second run when the driver scored the folds.
    refit_coef: np.ndarray | None = None
    refit_C: float | None = None
    refit_l1_ratio: float | None = None
    #: A dataset's folds, computed where the rows lie: 'kfold' or 'stratified'
    #: (scikit-learn's KFold and StratifiedKFold without shuffling).
    splitter: str | None = None
    #: A dataset's class weights (in memory they are in the sample weights).
    class_weight: object = None
    #: The tighter tolerance of 'liblinear', 'sag' and 'saga' (LogisticParams.inner_tol):
    #: OWL-QN stops there, and the L2 refit is polished there by Newton-CG steps,
    #: as ServerlessLogisticRegression's fit of the same solver.
    inner_tol: float | None = None

    @property
    def width(self) -> int:
        """Coefficients per model: ``(n_features + fit_intercept) * n_outputs``."""
        return (self.n_features + int(self.fit_intercept)) * self.n_outputs
