"""Which penalty and which distributed solver a ServerlessLogisticRegression
fit uses: scikit-learn 1.9's reading of ``penalty``, ``l1_ratio``, ``C`` and
``solver`` (its warnings and errors, word for word), then our choice of
coordinator algorithm."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

#: The solver names the estimators accept (scikit-learn's, plus our gradient
#: descent); :func:`resolve_penalty` maps each onto an algorithm of
#: ``_algorithms.logistic._solvers.SOLVERS``.
SOLVER_NAMES = ("lbfgs", "liblinear", "newton-cg", "newton-cholesky", "sag", "saga", "gd")


@dataclass(frozen=True)
class Penalty:
    """The resolved penalty: ``C`` (``np.inf`` for none), the L1 share
    ``l1_ratio`` and the distributed algorithm that minimises it."""

    name: str | None
    C: float
    l1_ratio: float
    algorithm: str


def _check_solver(solver: str, penalty: str | None, dual: bool) -> None:
    """scikit-learn's ``_check_solver`` (messages included)."""
    if solver not in ["liblinear", "saga"] and penalty not in ("l2", None):
        raise ValueError(
            f"Solver {solver} supports only 'l2' or None penalties, got {penalty} penalty."
        )
    if solver != "liblinear" and dual:
        raise ValueError(f"Solver {solver} supports only dual=False, got dual={dual}")
    if penalty == "elasticnet" and solver != "saga":
        raise ValueError(
            f"Only 'saga' solver supports elasticnet penalty, got solver={solver}."
        )
    if solver == "liblinear" and penalty is None:
        raise ValueError(
            "C=np.inf as well as penalty=None is not supported for the liblinear solver"
        )
    if solver == "liblinear" and dual and penalty == "l1":
        # liblinear's own refusal (sklearn.svm._base._get_liblinear_solver_type).
        raise ValueError(
            "Unsupported set of arguments: The combination of penalty='l1' and "
            "loss='logistic_regression' are not supported when dual=True, Parameters: "
            "penalty='l1', loss='logistic_regression', dual=True"
        )


def resolve_penalty(estimator) -> Penalty:
    """``LogisticRegression.fit``'s handling of ``penalty`` (deprecated),
    ``l1_ratio``, ``C``, ``dual`` and ``n_jobs``, with its warnings; then
    the algorithm: L-BFGS for smooth objectives under 'sag', 'saga' and
    'liblinear', OWL-QN when there is an L1 part."""
    l1_ratio, C = estimator.l1_ratio, estimator.C
    if estimator.penalty == "deprecated":
        if l1_ratio == 0 or l1_ratio is None:
            penalty = "l2"
            if l1_ratio is None:
                warnings.warn(
                    "'l1_ratio=None' was deprecated in version 1.8 and will trigger an "
                    "error in 1.10. Use 0<=l1_ratio<=1 instead.",
                    FutureWarning, stacklevel=3,
                )
        elif l1_ratio == 1:
            penalty = "l1"
        else:
            penalty = "elasticnet"
        if C == np.inf:
            penalty = None
    else:
        penalty = estimator.penalty
        warnings.warn(
            "'penalty' was deprecated in version 1.8 and will be removed in 1.10. To "
            "avoid this warning, leave 'penalty' set to its default value and use "
            "'l1_ratio' or 'C' instead. Use l1_ratio=0 instead of penalty='l2', "
            "l1_ratio=1 instead of penalty='l1', l1_ratio set to a float between 0 and 1 "
            "instead of penalty='elasticnet', and C=np.inf instead of penalty=None.",
            FutureWarning, stacklevel=3,
        )
    solver = estimator.solver
    _check_solver(solver, penalty, estimator.dual)
    if penalty != "elasticnet" and (l1_ratio is not None and 0 < l1_ratio < 1):
        warnings.warn(
            "l1_ratio parameter is only used when penalty is 'elasticnet'. Got "
            f"(penalty={penalty})", stacklevel=3,
        )
    if (estimator.penalty == "l2" and l1_ratio != 0) or (
        estimator.penalty == "l1" and l1_ratio != 1
    ):
        warnings.warn(
            f"Inconsistent values: penalty={estimator.penalty} with l1_ratio={l1_ratio}. "
            "penalty is deprecated. Please use l1_ratio only.", stacklevel=3,
        )
    if penalty == "elasticnet" and l1_ratio is None:
        raise ValueError("l1_ratio must be specified when penalty is elasticnet.")
    if estimator.penalty is None:
        if C != 1.0:
            warnings.warn("Setting penalty=None will ignore the C and l1_ratio parameters",
                          stacklevel=3)
        C = np.inf
    if estimator.n_jobs is not None:
        warnings.warn(
            "'n_jobs' has no effect since 1.8 and will be removed in 1.10. "
            f"You provided 'n_jobs={estimator.n_jobs}', please leave it unspecified.",
            category=FutureWarning, stacklevel=3,
        )
    share = {"l1": 1.0, "elasticnet": l1_ratio}.get(penalty, 0.0)
    if solver in ("sag", "saga", "liblinear"):
        algorithm = "owlqn" if share > 0 and C < np.inf else "lbfgs"
    else:
        algorithm = solver
    return Penalty(name=penalty, C=float(C), l1_ratio=float(share), algorithm=algorithm)
