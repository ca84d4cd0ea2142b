"""The solvers, by algorithm name: each is one function
``solve(objective, coef, params, log) -> dict`` (keys ``coef``, ``n_iter``
and, optionally, ``warnings`` as ``(category, message)`` pairs and
``lbfgs``, the L-BFGS-B result the driver checks as scikit-learn does).
Adding a solver is writing its function and its line here. The modules
import numpy only; scipy is imported by the solvers that use it, when they
run."""

from __future__ import annotations

from collections.abc import Callable

from . import _gd, _lbfgs, _newton_cg, _newton_cholesky, _owlqn

SOLVERS: dict[str, Callable[..., dict]] = {
    "lbfgs": _lbfgs.solve,
    "newton-cholesky": _newton_cholesky.solve,
    "newton-cg": _newton_cg.solve,
    "owlqn": _owlqn.solve,
    "gd": _gd.solve,
}
