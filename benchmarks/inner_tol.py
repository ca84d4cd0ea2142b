"""Time and accuracy of 'saga' and 'liblinear' (and their L1 forms) at tol=1e-4:
the cost of stopping at the inner tolerance (``inner_tol``, 1e-2 * tol) that
gives scikit-learn's accuracy for those solver names.

    PYTHONPATH=. .venv/bin/python benchmarks/inner_tol.py --n-samples 300000

Distance to the optimum: max |coef - coef*| with coef* from Newton-Cholesky
at tol=1e-10 on the same objective.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from sklearn.datasets import make_classification
from sklearn.preprocessing import StandardScaler

from sklearn_serverless import ServerlessLogisticRegression

CASES = {"saga": {"solver": "saga"}, "saga-l1": {"solver": "saga", "l1_ratio": 1.0},
         "liblinear": {"solver": "liblinear"},
         "liblinear-l1": {"solver": "liblinear", "l1_ratio": 1.0}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-samples", type=int, default=300_000)
    parser.add_argument("--n-features", type=int, default=50)
    parser.add_argument("--n-workers", type=int, default=2)
    parser.add_argument("--C", type=float, default=1.0)
    args = parser.parse_args()
    X, y = make_classification(n_samples=args.n_samples, n_features=args.n_features,
                               n_informative=10, n_redundant=0, random_state=0)
    X = StandardScaler().fit_transform(X)
    warnings.simplefilter("ignore")
    reference = ServerlessLogisticRegression(C=args.C, solver="newton-cholesky", tol=1e-10,
                                             n_workers=args.n_workers).fit(X, y)
    print(f"{'case':14s} {'seconds':>8s} {'n_iter':>7s} {'max |coef - opt|':>17s}")
    for name, params in CASES.items():
        est = ServerlessLogisticRegression(C=args.C, n_workers=args.n_workers, **params)
        start = time.perf_counter()
        est.fit(X, y)
        seconds = time.perf_counter() - start
        if "l1_ratio" in params or params["solver"] == "liblinear":
            # L1 or liblinear's penalised intercept: its own optimum, tightly.
            opt = ServerlessLogisticRegression(C=args.C, tol=1e-10, max_iter=10_000,
                                               n_workers=args.n_workers, **params).fit(X, y)
        else:
            opt = reference
        dist = max(np.abs(est.coef_ - opt.coef_).max(),
                   np.abs(est.intercept_ - opt.intercept_).max())
        print(f"{name:14s} {seconds:8.2f} {int(est.n_iter_[0]):7d} {dist:17.2e}")


if __name__ == "__main__":
    main()
