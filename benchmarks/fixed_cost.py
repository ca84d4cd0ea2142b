"""What a small fit costs, beside scikit-learn, side by side in one run.

- Small fits: 2,000 x 10, 2 workers, embedded store, after a warm-up fit;
  both estimators against scikit-learn's, interleaved.
- Fits served by a pool of workers (the default on localhost) and, for the
  before/after, the same fits with ``worker_pool=False`` (one map per fit).
- The floor: with a pool, the fit's own rounds times its median
  synchronisation and compute per round (store round trips); without, plus
  an empty Lithops map of 2 calls through the same runtime (executor, map,
  results, cleanup).
- GridSearchCV of logistic regression over C in {0.01, 0.1, 1, 10}, cv=5,
  on breast_cancer scaled, against scikit-learn's: ours as a user writes it
  (``ServerlessLogisticRegression()``: one worker for 455 rows, the
  default), and with ``n_workers=2`` (every round between two processes).

    python benchmarks/fixed_cost.py --repeat 7 --json out.json
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

from _common import interleaved, machine, round_breakdown, write_json
from sklearn.cluster import KMeans
from sklearn.datasets import load_breast_cancer, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.preprocessing import StandardScaler

from sklearn_serverless import ServerlessKMeans, ServerlessLogisticRegression, config_context


def _identity(x):
    return x


def _empty_map() -> float:
    from lithops import FunctionExecutor

    from sklearn_serverless._driver._backends import lithops_config
    from sklearn_serverless._driver._lithops_files import delete_lithops_job

    started = time.perf_counter()
    fexec = FunctionExecutor(config=lithops_config("localhost", 2), log_level=None)
    with fexec:
        futures = fexec.map(_identity, [1, 2], chunksize=1, include_modules=None)
        fexec.get_result(futures, show_progressbar=False)
    delete_lithops_job(fexec)
    return time.perf_counter() - started


def _no_pool(model, *data):
    with config_context(worker_pool=False):
        return model.fit(*data)


def run(repeat: int) -> dict:
    X, y = make_classification(2000, 10, random_state=0)
    cases = {
        "sklearn logistic": lambda: LogisticRegression().fit(X, y),
        "ours logistic": lambda: ServerlessLogisticRegression(n_workers=2).fit(X, y),
        "sklearn kmeans": lambda: KMeans(8, random_state=0).fit(X),
        "ours kmeans": lambda: ServerlessKMeans(8, n_workers=2, random_state=0).fit(X),
        "empty map": _empty_map,
        "no pool logistic": lambda: _no_pool(ServerlessLogisticRegression(n_workers=2), X, y),
        "no pool kmeans": lambda: _no_pool(ServerlessKMeans(8, n_workers=2, random_state=0), X),
    }
    for fn in cases.values():
        fn()  # warm-up: first imports, the warm server
    timed = interleaved(cases, repeat)
    out = {"machine": machine(), "small": {}}
    for name, (stats, model) in timed.items():
        row = {"median": stats["median"], "times": stats["times"]}
        if name.startswith(("ours", "no pool")):
            parts = round_breakdown(model.timings_)
            row.update(n_rounds=parts["n_rounds"], sync=parts["sync"],
                       compute=parts["slowest_compute"])
            row["floor"] = None  # filled below
        out["small"][name] = row
    empty = out["small"]["empty map"]["median"]
    for name in ("ours logistic", "ours kmeans", "no pool logistic", "no pool kmeans"):
        row = out["small"][name]
        row["floor"] = row["n_rounds"] * (row["sync"] + row["compute"])
        if name.startswith("no pool"):
            row["floor"] += empty
        reference = name.replace("ours", "sklearn").replace("no pool", "sklearn")
        row["ratio"] = row["median"] / out["small"][reference]["median"]

    Xb, yb = load_breast_cancer(return_X_y=True)
    Xb = StandardScaler().fit_transform(Xb)
    grid = {"C": [0.01, 0.1, 1, 10]}
    searches = {
        "sklearn grid": lambda: GridSearchCV(LogisticRegression(), grid, cv=5).fit(Xb, yb),
        "ours grid": lambda: GridSearchCV(ServerlessLogisticRegression(), grid,
                                          cv=5).fit(Xb, yb),
        "ours grid 2 workers": lambda: GridSearchCV(ServerlessLogisticRegression(n_workers=2),
                                                    grid, cv=5).fit(Xb, yb),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        searched = interleaved(searches, repeat)
    out["grid"] = {name: {"median": stats["median"], "times": stats["times"],
                          "best": result.best_params_}
                   for name, (stats, result) in searched.items()}
    grids = out["grid"]
    grids["ratio"] = grids["ours grid"]["median"] / grids["sklearn grid"]["median"]
    grids["ratio 2 workers"] = (grids["ours grid 2 workers"]["median"]
                                / grids["sklearn grid"]["median"])
    return out


def cloud_path(repeat: int) -> dict:
    """The loopback cloud path (localhost compute, moto's S3 as the Lithops
    storage, a Redis state store, as tests/conftest.py's ``cloud`` fixture):
    the first and the second of two successive fits in a fresh process state,
    with a pool (``worker_pool=True``: jobs and results as storage objects,
    job ids in Redis lists) and without, for both estimators."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from conftest import MotoServer, _start_redis

    from sklearn_serverless import shutdown_workers

    moto, redis = MotoServer(), _start_redis()
    try:
        moto.create_bucket("sks-bench")
        config = {"lithops": {"backend": "localhost", "storage": "minio"},
                  "minio": moto.storage_config("sks-bench")}
        X, y = make_classification(2000, 10, random_state=0)
        estimators = {
            "logistic": (lambda: ServerlessLogisticRegression(
                n_workers=2, backend=config, state_store=redis.url), (X, y)),
            "kmeans": (lambda: ServerlessKMeans(8, n_workers=2, random_state=0, backend=config,
                                                state_store=redis.url), (X,)),
        }
        out: dict = {}
        for _ in range(repeat):  # the arms interleaved
            for pooled in (True, False):
                for name, (make, data) in estimators.items():
                    shutdown_workers()
                    with config_context(worker_pool=pooled):
                        times = []
                        for _ in range(2):
                            started = time.perf_counter()
                            make().fit(*data)
                            times.append(time.perf_counter() - started)
                    row = out.setdefault("pool" if pooled else "no pool", {}).setdefault(
                        name, {"first": [], "second": []})
                    row["first"].append(times[0])
                    row["second"].append(times[1])
        shutdown_workers()
        return out
    finally:
        moto.stop()
        redis.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", default=None)
    parser.add_argument("--cloud", action="store_true",
                        help="only the loopback cloud path (moto + Redis): first vs second fit")
    args = parser.parse_args()
    if args.cloud:
        import statistics

        results = {"machine": machine(), "cloud": cloud_path(args.repeat)}
        for arm, rows in results["cloud"].items():
            for name, row in rows.items():
                print(f"{arm:8s} {name:9s} first fit {statistics.median(row['first']) * 1e3:7.1f}"
                      f" ms, second {statistics.median(row['second']) * 1e3:7.1f} ms")
        if args.json:
            write_json(Path(args.json), results)
        return
    results = run(args.repeat)
    for name, row in results["small"].items():
        extra = ""
        if "floor" in row:
            extra = (f"  ratio {row['ratio']:.0f}x, {row['n_rounds']} rounds, sync "
                     f"{row['sync'] * 1e3:.2f} ms/round, floor {row['floor'] * 1e3:.0f} ms")
        print(f"{name:18s} {row['median'] * 1e3:8.1f} ms ({min(row['times']) * 1e3:.1f}-"
              f"{max(row['times']) * 1e3:.1f}){extra}")
    for name in ("sklearn grid", "ours grid"):
        row = results["grid"][name]
        print(f"{name:18s} {row['median']:8.2f} s  ({min(row['times']):.2f}-"
              f"{max(row['times']):.2f}) best {row['best']}")
    print(f"grid search ratio {results['grid']['ratio']:.1f}x")
    if args.json:
        write_json(Path(args.json), results)


if __name__ == "__main__":
    main()
