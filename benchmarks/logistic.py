"""ServerlessLogisticRegression against scikit-learn's LogisticRegression.

Standardised ``make_classification`` data (binary and multiclass); for each
solver: wall time of ``fit``, rounds, time per round and the largest
coefficient difference from scikit-learn (same solver; 'gd', which
scikit-learn lacks, is compared with its 'lbfgs').

    python benchmarks/logistic.py --n-samples 1000000 --json out.json
    python benchmarks/logistic.py --n-samples 200000 --solvers saga saga-l1 --density 0.1

``run(...)`` returns the same numbers as a dict for a benchmark suite.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from sklearn_serverless import ServerlessLogisticRegression

#: Benchmark name -> (solver, l1_ratio).
SPECS = {
    "lbfgs": ("lbfgs", 0.0), "newton-cholesky": ("newton-cholesky", 0.0),
    "newton-cg": ("newton-cg", 0.0), "sag": ("sag", 0.0), "saga": ("saga", 0.0),
    "saga-elasticnet": ("saga", 0.5), "saga-l1": ("saga", 1.0),
    "liblinear": ("liblinear", 0.0), "liblinear-l1": ("liblinear", 1.0), "gd": ("gd", 0.0),
}
SOLVERS = ("lbfgs", "newton-cholesky", "gd")
#: What each of our solvers is compared with in scikit-learn: its namesake
#: ('gd', which scikit-learn lacks, with 'lbfgs').
REFERENCE_SOLVER = {name: name for name in SPECS} | {"gd": "lbfgs"}


def make_data(n_samples: int, n_features: int, n_classes: int, n_informative: int,
              seed: int = 0, density: float = 1.0):
    """Standardised classification data (float64, C order); with ``density <
    1``, a CSR matrix keeping that share of the entries (at random). Below 1%
    (text-like: 200,000 x 20,000 at 0.1%) the CSR matrix is drawn directly and
    labelled by a sparse linear model with noise (a dense draw would not fit)."""
    if density < 0.01:
        import scipy.sparse as sp

        rng = np.random.RandomState(seed)
        per_row = max(1, round(density * n_features))
        indices = np.sort(rng.randint(0, n_features, size=(n_samples, per_row)), axis=1)
        X = sp.csr_matrix((rng.standard_normal(n_samples * per_row), indices.ravel(),
                           np.arange(0, n_samples * per_row + 1, per_row)),
                          shape=(n_samples, n_features))
        X.sum_duplicates()
        w = np.zeros((n_features, n_classes))
        active = rng.choice(n_features, size=min(n_features, 50 * n_informative),
                            replace=False)
        w[active] = rng.standard_normal((active.size, n_classes)) * 3
        scores = X @ w + rng.gumbel(size=(n_samples, n_classes))
        return X, scores.argmax(axis=1)
    X, y = make_classification(n_samples, n_features, n_informative=n_informative,
                               n_redundant=0, n_classes=n_classes, random_state=seed)
    X = StandardScaler().fit_transform(X)
    if density < 1:
        import scipy.sparse as sp

        keep = np.random.RandomState(seed).uniform(size=X.shape) < density
        X = sp.csr_matrix(np.where(keep, X, 0.0))
    return X, y


def _timed_fit(model, X, y, repeat: int = 1) -> tuple[float, list[float], list[str]]:
    """Median wall time of ``repeat`` fits (the model keeps the last fit)."""
    times = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        for _ in range(repeat):
            started = time.perf_counter()
            model.fit(X, y)
            times.append(time.perf_counter() - started)
    messages = list(dict.fromkeys(str(w.message).split("\n")[0] for w in caught))
    return float(np.median(times)), times, messages


def _warm_up(n_workers: int, state_mode: str, state_store: str | None) -> None:
    """One tiny fit of each estimator, so that no timed fit pays for first
    imports (Lithops in the driver) or first-use set-up."""
    X, y = make_data(200, 5, 2, 2)
    LogisticRegression().fit(X, y)
    ServerlessLogisticRegression(n_workers=n_workers, state_mode=state_mode,
                                 state_store=state_store).fit(X, y)


def run(n_samples: int = 1_000_000, n_features: int = 50, classes=(2, 5),
        n_informative: int = 10, solvers=SOLVERS, n_workers: int = 2, max_iter: int = 100,
        gd_max_iter: int = 500, tol: float = 1e-4, state_mode: str = "lock_free",
        state_store: str | None = None, seed: int = 0, repeat: int = 1,
        density: float = 1.0) -> dict:
    """Fit scikit-learn's and our estimator on the same data; return the numbers.

    Returns
    -------
    report : dict
        ``{'config': {...}, 'results': [{n_classes, solver, sklearn_seconds,
        sklearn_n_iter, seconds, ratio, n_iter, n_rounds, seconds_per_round,
        compute_per_round, max_abs_coef_diff, warnings}, ...]}``; times are
        medians of ``repeat`` fits, ``ratio`` is our time over scikit-learn's
        for the compared solver.
    """
    config = dict(n_samples=n_samples, n_features=n_features, classes=list(classes),
                  n_informative=n_informative, solvers=list(solvers), n_workers=n_workers,
                  max_iter=max_iter, gd_max_iter=gd_max_iter, tol=tol, state_mode=state_mode,
                  state_store="redis" if state_store else "sqlite", seed=seed,
                  repeat=repeat, density=density)
    _warm_up(n_workers, state_mode, state_store)
    results = []
    for n_classes in classes:
        X, y = make_data(n_samples, n_features, n_classes, n_informative, seed, density)
        # liblinear is binary only.
        names = [s for s in solvers if n_classes == 2 or not s.startswith("liblinear")]
        references = {}
        for name in dict.fromkeys(REFERENCE_SOLVER[s] for s in names):
            sk_solver, l1_ratio = SPECS[name]
            reference = LogisticRegression(solver=sk_solver, l1_ratio=l1_ratio, tol=tol,
                                           max_iter=max_iter)
            seconds, times, _ = _timed_fit(reference, X, y, repeat)
            references[name] = (reference, seconds, times)
        for solver in names:
            reference, reference_seconds, reference_times = references[REFERENCE_SOLVER[solver]]
            our_solver, l1_ratio = SPECS[solver]
            model = ServerlessLogisticRegression(
                solver=our_solver, l1_ratio=l1_ratio, tol=tol,
                max_iter=gd_max_iter if solver == "gd" else max_iter,
                n_workers=n_workers, state_mode=state_mode, state_store=state_store)
            seconds, times, caught = _timed_fit(model, X, y, repeat)
            timings = model.timings_
            n_rounds = int(timings["n_rounds"])
            round_seconds = sum(timings[phase] for phase in
                                ("compute", "publish", "barrier", "aggregate"))
            diff = max(np.abs(model.coef_ - reference.coef_).max(),
                       np.abs(model.intercept_ - reference.intercept_).max())
            results.append({
                "n_classes": n_classes,
                "solver": solver,
                "reference_solver": REFERENCE_SOLVER[solver],
                "sklearn_seconds": reference_seconds,
                "sklearn_times": reference_times,
                "sklearn_n_iter": int(reference.n_iter_[0]),
                "seconds": seconds,
                "times": times,
                "ratio": seconds / reference_seconds,
                "n_iter": int(model.n_iter_[0]),
                "n_rounds": n_rounds,
                # Worker 0's view: the coordinator's round trips, its solver included.
                "seconds_per_round": float(round_seconds[:, 0].sum() / max(n_rounds, 1)),
                "compute_per_round": float(timings["compute"].max(axis=1).mean())
                if n_rounds else 0.0,
                "load_seconds": float(timings["load"].max()),
                "max_abs_coef_diff": float(diff),
                "warnings": caught,
            })
            _print_row(results[-1])
    return {"config": config, "results": results}


def _print_row(row: dict) -> None:
    print(f"{row['n_classes']} classes {row['solver']:>15}: {row['seconds']:7.2f} s "
          f"(sklearn {row['reference_solver']} {row['sklearn_seconds']:6.2f} s, "
          f"x{row['ratio']:.2f}), iterations {row['n_iter']} (sklearn "
          f"{row['sklearn_n_iter']}), rounds {row['n_rounds']}, "
          f"{1000 * row['seconds_per_round']:.1f} ms/round "
          f"({1000 * row['compute_per_round']:.1f} ms compute), "
          f"max |coef diff| {row['max_abs_coef_diff']:.2e}"
          + (f", warnings: {row['warnings']}" if row["warnings"] else ""), flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-samples", type=int, default=1_000_000)
    parser.add_argument("--n-features", type=int, default=50)
    parser.add_argument("--n-informative", type=int, default=10)
    parser.add_argument("--classes", type=int, nargs="+", default=[2, 5])
    parser.add_argument("--solvers", nargs="+", default=list(SOLVERS), choices=list(SPECS))
    parser.add_argument("--density", type=float, default=1.0,
                        help="below 1: sparse CSR data with this share of entries")
    parser.add_argument("--n-workers", type=int, default=2)
    parser.add_argument("--max-iter", type=int, default=100)
    parser.add_argument("--gd-max-iter", type=int, default=500)
    parser.add_argument("--tol", type=float, default=1e-4)
    parser.add_argument("--state-mode", default="lock_free", choices=["lock_free", "locked"])
    parser.add_argument("--state-store", default=None, help="redis URL (default: SQLite)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=1, help="fits per model; medians")
    parser.add_argument("--json", metavar="PATH", help="write the report as JSON here")
    args = parser.parse_args(argv)
    report = run(n_samples=args.n_samples, n_features=args.n_features,
                 classes=args.classes, n_informative=args.n_informative,
                 solvers=args.solvers, n_workers=args.n_workers, max_iter=args.max_iter,
                 gd_max_iter=args.gd_max_iter, tol=args.tol, state_mode=args.state_mode,
                 state_store=args.state_store, seed=args.seed, repeat=args.repeat,
                 density=args.density)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(report, out, indent=2)


if __name__ == "__main__":
    main()
