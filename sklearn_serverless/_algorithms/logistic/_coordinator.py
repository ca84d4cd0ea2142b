"""The coordinator: runs the chosen solver on the distributed objective.

A solver is a module of this package with one function ``solve(objective,
coef, params, log) -> dict`` (keys ``coef``, ``n_iter`` and, optionally,
``warnings`` as ``(category, message)`` pairs and ``lbfgs``, the L-BFGS-B
result the driver checks as scikit-learn does); adding one is adding its
module and its line in :data:`SOLVERS`.
"""

from __future__ import annotations

import importlib

from ..._worker._rounds import Rounds
from ._objective import DistributedObjective
from ._params import LogisticParams

#: Algorithm name -> module of this package.
SOLVERS = {
    "lbfgs": "_lbfgs",
    "newton-cholesky": "_newton_cholesky",
    "newton-cg": "_newton_cg",
    "owlqn": "_owlqn",
    "gd": "_gd",
}


def coordinate(rounds: Rounds, params: LogisticParams) -> dict:
    """Run the chosen solver from ``params.coef``."""
    solver = params.solver
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}")
    module = importlib.import_module(f"{__package__}.{SOLVERS[solver]}")
    objective = DistributedObjective(rounds, params)
    out = {"warnings": [], "lbfgs": None}
    out.update(module.solve(objective, params.coef, params, rounds.log))
    out["n_evaluations"] = objective.n_evaluations
    return out
