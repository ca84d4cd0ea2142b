"""scikit-learn's GridSearchCV, unchanged, over our logistic regression: on a
Parquet object in moto's S3 server, and in memory on breast_cancer.

``dataset`` (interleaved, repeated):

- ``storage``: ``GridSearchCV(make_pipeline(ServerlessStandardScaler(),
  ServerlessLogisticRegression()), 3 values of C, cv=5).fit(read_parquet(path,
  label="y"))`` on a pool of workers (``worker_pool=True``, so that the
  workers keep the rows they read between the search's runs): every fold's
  fits and scores read their rows where they lie (a view of the dataset),
  Redis state; each repetition starts without a pool (the search reads the
  object once), and records ``dataset.fetched()`` and where its time went
  (``profile``: its fits, their loads and rounds, its scores, the driver);
- ``download + sklearn``: get the object, parse it with pyarrow, and run
  scikit-learn's ``GridSearchCV(make_pipeline(StandardScaler(),
  LogisticRegression()), ..., n_jobs=2)``.

``memory``: ``GridSearchCV`` over 4 values of C, cv=5, on scaled
breast_cancer, ours (localhost) against scikit-learn's LogisticRegression.

    python benchmarks/search_dataset.py --n-samples 300000 --repeat 3 --json out.json
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import boto3
import numpy as np
from _common import interleaved, machine, moto_server, redis_server, write_json
from logistic import make_data
from logistic_cv_dataset import _parquet, _parse
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_serverless import (
    ServerlessLogisticRegression,
    ServerlessStandardScaler,
    config_context,
    read_parquet,
    shutdown_workers,
)

BUCKET = "sks-bench-search"
KEY = "data/train.parquet"


def _summary(timed: dict, reference: str) -> dict:
    base = timed[reference][0]["median"]
    out = {}
    for name, (stats, search) in timed.items():
        best = search.best_params_
        out[name] = {"median": stats["median"], "times": stats["times"],
                     "ratio": stats["median"] / base,
                     "best_C": next(v for k, v in best.items() if k.split("__")[-1] == "C"),
                     "mean_test_score": search.cv_results_["mean_test_score"].tolist()}
    return out


class Profile:
    """Where the storage arm's time goes: the serverless runs (fits) and the
    calls applying a fitted model (scores) it made, timed as they return.
    Benchmark instrumentation: it wraps the package's two entry points."""

    def __init__(self):
        from sklearn_serverless._base import _estimator
        from sklearn_serverless._driver import _apply

        self.modules = (_estimator, _apply)
        self.run, self.run_calls = _estimator.run, _apply.run_calls
        self.clear()

    def clear(self) -> None:
        self.fits, self.scores = [], []

    def __enter__(self):
        _estimator, _apply = self.modules

        def run(*args, **kwargs):
            started = time.perf_counter()
            out = self.run(*args, **kwargs)
            timings = out.timings
            # A round lasts as long as its slowest worker's four phases (fit_summary's).
            rounds = float(np.sum([timings[phase] for phase in
                                   ("compute", "publish", "barrier", "aggregate")],
                                  axis=0).max(axis=1).sum()) if timings["n_rounds"] else 0.0
            self.fits.append({"seconds": time.perf_counter() - started,
                              "load": float(np.max(timings["load"])),
                              "rounds": rounds, "n_rounds": int(timings["n_rounds"])})
            return out

        def run_calls(*args, **kwargs):
            started = time.perf_counter()
            out = self.run_calls(*args, **kwargs)
            self.scores.append(time.perf_counter() - started)
            return out

        _estimator.run, _apply.run_calls = run, run_calls
        return self

    def __exit__(self, *exc):
        _estimator, _apply = self.modules
        _estimator.run, _apply.run_calls = self.run, self.run_calls

    def summary(self, total: float) -> dict:
        """Seconds of the search: in its fits (the workers' load, their
        rounds, the rest: the pool's job round trips), in its scores, and on
        the driver besides (scikit-learn's loop, the datasets' metadata)."""
        fits = sum(fit["seconds"] for fit in self.fits)
        scores = sum(self.scores)
        return {"search": total, "n_fits": len(self.fits), "fits": fits,
                "fits_load": sum(fit["load"] for fit in self.fits),
                "fits_rounds": sum(fit["rounds"] for fit in self.fits),
                "n_rounds": sum(fit["n_rounds"] for fit in self.fits),
                "n_scores": len(self.scores), "scores": scores,
                "driver": total - fits - scores}


def run_dataset(n_samples: int, n_features: int, n_workers: int, repeat: int) -> dict:
    X, y = make_data(n_samples, n_features, 2, 10)
    body = _parquet(X, y)
    grid = {"C": [0.01, 0.1, 1.0]}
    ours, theirs = ({f"{name}__C": grid["C"]}
                    for name in ("serverlesslogisticregression", "logisticregression"))
    out = {"n_samples": n_samples, "n_features": n_features, "n_workers": n_workers,
           "mb": len(body) / 1e6, "grid": grid}
    with redis_server() as url, moto_server(BUCKET) as minio:
        client = boto3.client("s3", endpoint_url=minio["endpoint"], region_name="us-east-1",
                              aws_access_key_id="bench", aws_secret_access_key="bench")
        client.put_object(Bucket=BUCKET, Key=KEY, Body=body)
        config = {"lithops": {"backend": "localhost", "storage": "minio"}, "minio": minio}
        datasets, profile, profiles = [], Profile(), []

        def storage():
            # Every repetition a search from scratch: a new pool, whose workers
            # read the object once (none kept from the previous repetition).
            shutdown_workers()
            started = time.perf_counter()
            data = read_parquet(f"{BUCKET}/{KEY}", label="y", backend=config)
            datasets.append(data)
            execution = {"n_workers": n_workers, "backend": config, "state_store": url,
                         "timeout": 600}
            pipeline = make_pipeline(ServerlessStandardScaler(**execution),
                                     ServerlessLogisticRegression(**execution))
            profile.clear()
            with config_context(worker_pool=True), profile:
                search = GridSearchCV(pipeline, ours, cv=5).fit(data)
            profiles.append(profile.summary(time.perf_counter() - started))
            return search

        def download():
            X, y = _parse(client.get_object(Bucket=BUCKET, Key=KEY)["Body"].read())
            pipeline = make_pipeline(StandardScaler(), LogisticRegression())
            return GridSearchCV(pipeline, theirs, cv=5, n_jobs=n_workers).fit(X, y)

        cases = {"storage": storage, "download + sklearn": download}
        timed = interleaved(cases, repeat)
    out["arms"] = _summary(timed, "download + sklearn")
    # What the search read of the object (the last repetition's dataset.fetched():
    # the first one fetches it, later ones find the rows the pool kept), and
    # where each repetition's time went.
    out["arms"]["storage"]["fetched"] = [data.fetched() for data in datasets]
    out["arms"]["storage"]["profile"] = profiles
    return out


def run_memory(repeat: int) -> dict:
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    grid = {"C": [0.01, 0.1, 1.0, 10.0]}
    cases = {
        "ours": lambda: GridSearchCV(ServerlessLogisticRegression(), grid, cv=5).fit(X, y),
        "sklearn": lambda: GridSearchCV(LogisticRegression(), grid, cv=5).fit(X, y),
    }
    for fn in cases.values():
        fn()  # warm-up: imports, the first map, the pool of workers
    return {"n_samples": X.shape[0], "grid": grid,
            "arms": _summary(interleaved(cases, repeat), "sklearn")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=300_000)
    parser.add_argument("--n-features", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-dataset", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    warnings.simplefilter("ignore", FutureWarning)
    results = {"machine": machine(), "memory": run_memory(args.repeat)}
    if not args.skip_dataset:
        results["dataset"] = run_dataset(args.n_samples, args.n_features, args.workers,
                                         args.repeat)
    for part in ("memory", "dataset"):
        if part not in results:
            continue
        print(f"{part}:")
        print("| arm | median (s) | range | ratio | best C |")
        print("|---|---|---|---|---|")
        for name, row in results[part]["arms"].items():
            print(f"| {name} | {row['median']:.2f} | {min(row['times']):.2f}-"
                  f"{max(row['times']):.2f} | {row['ratio']:.2f}x | {row['best_C']:g} |")
    if args.json:
        write_json(Path(args.json), results)


if __name__ == "__main__":
    main()
