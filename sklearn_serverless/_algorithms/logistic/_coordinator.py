"""The coordinator: runs the chosen solver (:data:`._solvers.SOLVERS`) on the
distributed objective."""

from __future__ import annotations

from ..._worker._rounds import Rounds
from ._objective import DistributedObjective
from ._params import LogisticParams
from ._solvers import SOLVERS


def coordinate(rounds: Rounds, params: LogisticParams) -> dict:
    """Run the chosen solver from ``params.coef``."""
    solver = params.solver
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}")
    objective = DistributedObjective(rounds, params)
    out = {"warnings": [], "lbfgs": None}
    out.update(SOLVERS[solver](objective, params.coef, params, rounds.log))
    out["n_evaluations"] = objective.n_evaluations
    return out
