"""How fast a worker turns CSV bytes into arrays, and what that does to a fit.

Parse: the same ~60 MB of rows (n x d floats as pandas writes them, and an
integer label), parsed in memory by one process, one thread, as a worker
does: ``pyarrow`` (the reader's path), ``numpy`` (the reader's fallback where
pyarrow is not installed) and plain ``numpy.loadtxt`` and ``pandas.read_csv``
for reference. Then ``read_rows`` of a local file (the reads included) with
either engine. Arms interleaved, ``--repeat`` times; medians and ranges.

Fit (``--fit``): ``ServerlessKMeans(...).fit(read_csv(path))`` from a local
file (localhost, SQLite state) and from moto's S3 server (Redis state),
against downloading the object, parsing it with pandas and fitting
scikit-learn's KMeans on the driver; k-means with a given init and a fixed
number of iterations.

    python benchmarks/csv_reader.py --n-samples 300000 --n-features 10 --repeat 5 --fit \\
        --json docs/img/csv-reader.json
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
from pathlib import Path

import numpy as np
from _common import (
    blobs,
    initial_centres,
    interleaved,
    machine,
    moto_server,
    redis_server,
    write_json,
)

from sklearn_serverless._datasets import _csv_parse as _csv
from sklearn_serverless._datasets import read_csv, read_rows

BUCKET = "sks-bench-csv"


def _data(n_samples: int, n_features: int) -> bytes:
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(n_samples, n_features)),
                         columns=[f"x{j}" for j in range(n_features)])
    frame["label"] = rng.integers(0, 2, n_samples)
    return frame.to_csv(index=False).encode()


def _numpy_engine(fn):
    """``fn`` run as where pyarrow is not installed."""
    def run():
        arrow, _csv._arrow = _csv._arrow, lambda: None
        try:
            return fn()
        finally:
            _csv._arrow = arrow
    return run


def _stats(stats: dict, mb: float) -> dict:
    times = stats["times"]
    return {"median_s": stats["median"], "times": times, "mb_per_s": mb / stats["median"],
            "mb_per_s_range": [mb / max(times), mb / min(times)]}


def parse(n_samples: int, n_features: int, repeat: int) -> dict:
    import pandas as pd

    data = _data(n_samples, n_features)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "x.csv")
        Path(path).write_bytes(data)
        resolved = read_csv(path, label="label").resolve()
        spec = resolved.plan(1)[0]
        rows = data[resolved.objects[0].data_start:]
        mb = len(rows) / 1e6
        cases = {
            "pyarrow": lambda: _csv.parse(rows, spec, engine="pyarrow"),
            "numpy": lambda: _csv.parse(rows, spec, engine="numpy"),
            "numpy.loadtxt": lambda: np.loadtxt(io.StringIO(rows.decode()), delimiter=",",
                                                ndmin=2),
            "pandas.read_csv": lambda: pd.read_csv(io.BytesIO(rows), header=None).to_numpy(),
            "read_rows pyarrow": lambda: read_rows(spec),
            "read_rows numpy": _numpy_engine(lambda: read_rows(spec)),
        }
        for fn in cases.values():
            fn()  # warm-up: imports, page cache
        timed = interleaved(cases, repeat)
    X, y = timed["pyarrow"][1]
    X_np, y_np = timed["numpy"][1]
    assert X.dtype == X_np.dtype and y.dtype == y_np.dtype == np.int64
    np.testing.assert_array_equal(X, X_np)
    np.testing.assert_array_equal(y, y_np)
    return {"mb": mb, "n_samples": n_samples, "n_features": n_features,
            "arms": {name: _stats(stats, mb) for name, (stats, _) in timed.items()}}


def fit(n_samples: int, n_features: int, k: int, iters: int, n_workers: int,
        repeat: int) -> dict:
    import boto3
    import pandas as pd
    from sklearn.cluster import KMeans

    from sklearn_serverless import ServerlessKMeans

    X = blobs(n_samples, n_features, k)
    init = initial_centres(X, k)
    body = pd.DataFrame(X, columns=[f"x{j}" for j in range(n_features)]).to_csv(
        index=False).encode()
    out = {"mb": len(body) / 1e6, "n_samples": n_samples, "n_features": n_features, "k": k,
           "iters": iters, "n_workers": n_workers}
    with tempfile.TemporaryDirectory() as folder, redis_server() as url, \
            moto_server(BUCKET) as minio:
        path = os.path.join(folder, "X.csv")
        Path(path).write_bytes(body)
        client = boto3.client("s3", endpoint_url=minio["endpoint"], region_name="us-east-1",
                              aws_access_key_id="bench", aws_secret_access_key="bench")
        client.put_object(Bucket=BUCKET, Key="X.csv", Body=body)
        s3 = {"lithops": {"backend": "localhost", "storage": "minio"}, "minio": minio}

        def serverless(backend, state_store):
            return ServerlessKMeans(k, init=init, n_init=1, max_iter=iters, tol=0.0,
                                    n_workers=n_workers, backend=backend,
                                    state_store=state_store, timeout=300)

        def sklearn(data: bytes):
            return KMeans(k, init=init, n_init=1, max_iter=iters, tol=0.0).fit(
                pd.read_csv(io.BytesIO(data)).to_numpy())

        cases = {
            "local file: fit where it lies": lambda: serverless("localhost", None).fit(
                read_csv(path)),
            "local file: read, pandas, sklearn": lambda: sklearn(Path(path).read_bytes()),
            "moto S3: fit where it lies": lambda: serverless(s3, url).fit(
                read_csv(f"{BUCKET}/X.csv")),
            "moto S3: download, pandas, sklearn": lambda: sklearn(
                client.get_object(Bucket=BUCKET, Key="X.csv")["Body"].read()),
        }
        for fn in cases.values():
            fn()  # warm-up
        timed = interleaved(cases, repeat)
    out["arms"] = {}
    for name, (stats, model) in timed.items():
        arm = {"median_s": stats["median"], "times": stats["times"]}
        if hasattr(model, "timings_"):
            arm["worker_load_s"] = float(np.median(model.timings_["load"]))
        out["arms"][name] = arm
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=300_000)
    parser.add_argument("--n-features", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--fit", action="store_true", help="also time fits from a CSV")
    parser.add_argument("--fit-samples", type=int, default=200_000)
    parser.add_argument("--fit-features", type=int, default=20)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    results = {"machine": machine(),
               "parse": parse(args.n_samples, args.n_features, args.repeat)}
    mb = results["parse"]["mb"]
    print(f"Parse, {args.n_samples:,} x {args.n_features} floats + an integer label, "
          f"{mb:.1f} MB, one process, medians of {args.repeat} (range):")
    print("| arm | seconds | MB/s |")
    print("|---|---|---|")
    for name, arm in results["parse"]["arms"].items():
        times, low, high = arm["times"], *arm["mb_per_s_range"]
        print(f"| {name} | {arm['median_s']:.3f} ({min(times):.3f}-{max(times):.3f}) | "
              f"{arm['mb_per_s']:.0f} ({low:.0f}-{high:.0f}) |")
    if args.fit:
        results["fit"] = fit(args.fit_samples, args.fit_features, args.k, args.iters,
                             args.workers, args.repeat)
        print(f"\nFit, {args.fit_samples:,} x {args.fit_features} "
              f"({results['fit']['mb']:.0f} MB CSV), k={args.k}, {args.iters} iterations, "
              f"{args.workers} workers, medians of {args.repeat} (range):")
        print("| arm | seconds | worker load (s) |")
        print("|---|---|---|")
        for name, arm in results["fit"]["arms"].items():
            times = arm["times"]
            load = f"{arm['worker_load_s']:.2f}" if "worker_load_s" in arm else ""
            print(f"| {name} | {arm['median_s']:.2f} ({min(times):.2f}-{max(times):.2f}) "
                  f"| {load} |")
    if args.json:
        write_json(Path(args.json), results)


if __name__ == "__main__":
    main()
