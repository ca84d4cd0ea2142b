"""Model selection where the data lies, against downloading it and searching
on the driver.

The data (``make_data``: standardised, binary, n x d plus a ``y`` column)
lies in moto's S3 server as one Parquet object. Interleaved and repeated:

- ``storage``: ``ServerlessLogisticRegressionCV(Cs, cv=5).fit(read_parquet(path,
  label="y"))`` on the cloud path (Redis state); each worker reads its row
  groups, the driver holds nothing;
- ``download + sklearn``: get the object on the driver, parse it with pyarrow,
  and run scikit-learn's ``LogisticRegressionCV(n_jobs=2)``;
- ``download + ours``: the same download and parse, then our estimator on the
  array (which places the rows back in storage for its workers).

Same ``Cs``, folds (``cv=5`` unshuffled: stratified in dataset order),
``scoring='accuracy'``, ``l1_ratios=(0,)``, lbfgs, ``tol=1e-4``.

    python benchmarks/logistic_cv_dataset.py --n-samples 300000 --repeat 3 --json out.json
"""

from __future__ import annotations

import argparse
import io
import warnings
from pathlib import Path

import boto3
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from _common import interleaved, machine, moto_server, redis_server, write_json
from logistic import make_data
from sklearn.linear_model import LogisticRegressionCV

from sklearn_serverless import ServerlessLogisticRegressionCV, read_parquet

BUCKET = "sks-bench-cv"
COMMON = {"l1_ratios": (0,), "scoring": "accuracy", "use_legacy_attributes": False}


def _parquet(X: np.ndarray, y: np.ndarray) -> bytes:
    columns = {f"x{j}": X[:, j] for j in range(X.shape[1])}
    columns["y"] = y
    body = io.BytesIO()
    pq.write_table(pa.table(columns), body, row_group_size=25_000)
    return body.getvalue()


def _parse(body: bytes) -> tuple[np.ndarray, np.ndarray]:
    table = pq.read_table(io.BytesIO(body))
    y = table.column("y").to_numpy()
    X = np.column_stack([table.column(name).to_numpy() for name in table.column_names
                         if name != "y"])
    return X, y


def run(n_samples: int, n_features: int, cs: int, n_workers: int, repeat: int) -> dict:
    X, y = make_data(n_samples, n_features, 2, 10)
    body = _parquet(X, y)
    out = {"machine": machine(), "n_samples": n_samples, "n_features": n_features,
           "Cs": cs, "n_workers": n_workers, "mb": len(body) / 1e6, "arms": {}}
    warnings.simplefilter("ignore", FutureWarning)
    with redis_server() as url, moto_server(BUCKET) as minio:
        client = boto3.client("s3", endpoint_url=minio["endpoint"], region_name="us-east-1",
                              aws_access_key_id="bench", aws_secret_access_key="bench")
        client.put_object(Bucket=BUCKET, Key="data/train.parquet", Body=body)
        config = {"lithops": {"backend": "localhost", "storage": "minio"}, "minio": minio}

        def ours():
            return ServerlessLogisticRegressionCV(Cs=cs, cv=5, **COMMON, n_workers=n_workers,
                                                  backend=config, state_store=url,
                                                  timeout=600)

        def download():
            return _parse(client.get_object(Bucket=BUCKET, Key="data/train.parquet")
                          ["Body"].read())

        cases = {
            "storage": lambda: ours().fit(read_parquet(f"{BUCKET}/data/train.parquet",
                                                       label="y")),
            "download + sklearn": lambda: LogisticRegressionCV(
                Cs=cs, cv=5, **COMMON, n_jobs=n_workers).fit(*download()),
            "download + ours": lambda: ours().fit(*download()),
        }
        for fn in cases.values():
            fn()  # warm-up: imports, the first map
        timed = interleaved(cases, repeat)
    reference = timed["download + sklearn"][1]
    for name, (stats, fitted) in timed.items():
        out["arms"][name] = {
            "median": stats["median"], "times": stats["times"], "C_": float(np.ravel(fitted.C_)[0]),
            "max_abs_coef_diff": float(np.abs(fitted.coef_ - reference.coef_).max()),
            "ratio": stats["median"] / timed["download + sklearn"][0]["median"]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=300_000)
    parser.add_argument("--n-features", type=int, default=50)
    parser.add_argument("--cs", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    results = run(args.n_samples, args.n_features, args.cs, args.workers, args.repeat)
    print(f"{results['n_samples']} x {results['n_features']}, Parquet {results['mb']:.0f} MB")
    print("| arm | median (s) | range | / download + sklearn | C_ | max abs coef diff |")
    print("|---|---|---|---|---|---|")
    for name, row in results["arms"].items():
        print(f"| {name} | {row['median']:.2f} | {min(row['times']):.2f}-{max(row['times']):.2f}"
              f" | {row['ratio']:.2f}x | {row['C_']:.3g} | {row['max_abs_coef_diff']:.1e} |")
    if args.json:
        write_json(Path(args.json), results)


if __name__ == "__main__":
    main()
