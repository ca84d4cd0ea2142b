"""Solvers on a sparse, text-like problem beside scikit-learn's: 200,000 x
20,000 CSR at 0.1% density, binary, tol=1e-4. scikit-learn's saga with an
L1 part takes ~13 s an epoch here, so it is timed for 2 epochs only.

    python benchmarks/solvers_sparse.py     # writes docs/img/solvers-sparse.json
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from sklearn_serverless import ServerlessLogisticRegression

sys.path.insert(0, str(Path(__file__).parent))
import logistic  # noqa: E402


def _fit(model, X, y):
    started = time.time()
    model.fit(X, y)
    return model, time.time() - started


def main() -> None:
    warnings.simplefilter("ignore", ConvergenceWarning)
    X, y = logistic.make_data(200_000, 20_000, 2, 10, 0, 0.001)
    logistic._warm_up(2, "lock_free", None)
    out, references = {}, {}
    for name, max_iter in [("lbfgs", 100), ("newton-cg", 100), ("saga", 100), ("saga-l1", 2)]:
        solver, l1_ratio = logistic.SPECS[name]
        model, seconds = _fit(LogisticRegression(solver=solver, l1_ratio=l1_ratio, tol=1e-4,
                                                 max_iter=max_iter), X, y)
        references[name] = model
        out[f"sklearn {name}"] = {"seconds": seconds, "n_iter": int(model.n_iter_[0]),
                                  "max_iter": max_iter}
    for name in ["lbfgs", "newton-cg", "saga", "saga-elasticnet", "saga-l1"]:
        solver, l1_ratio = logistic.SPECS[name]
        model, seconds = _fit(ServerlessLogisticRegression(
            solver=solver, l1_ratio=l1_ratio, tol=1e-4, max_iter=100, n_workers=2), X, y)
        row = {"seconds": seconds, "n_iter": int(model.n_iter_[0]),
               "rounds": int(model.timings_["n_rounds"]), "zeros": int((model.coef_ == 0).sum())}
        if name in references and name != "saga-l1":
            row["max_coef_diff"] = float(np.abs(model.coef_ - references[name].coef_).max())
        out[f"ours {name}"] = row
    for name, row in out.items():
        print(name, row)
    target = Path(__file__).parent.parent / "docs" / "img" / "solvers-sparse.json"
    target.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
