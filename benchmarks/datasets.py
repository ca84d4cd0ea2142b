"""Fitting from object storage against download-then-fit, on the same data.

The data (n x d blobs, as .npy, CSV and Parquet) lies in moto's S3 server.
Per format, interleaved and repeated: ``storage`` fits
``ServerlessKMeans(...).fit(read_npy(path))`` (each worker reads its part;
the driver holds nothing), ``download`` gets the whole object on the driver,
parses it (numpy, pandas, pyarrow) and fits the array on the same cloud path
(which puts each worker's rows back in storage). Both with Redis state,
k-means with a given init and a fixed number of iterations.

    python benchmarks/datasets.py --n-samples 200000 --repeat 3 --json out.json
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import boto3
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from _common import (
    blobs,
    initial_centres,
    interleaved,
    machine,
    moto_server,
    redis_server,
    write_json,
)

from sklearn_serverless import ServerlessKMeans, read_csv, read_npy, read_parquet

BUCKET = "sks-bench-data"


def _bodies(X: np.ndarray) -> dict[str, bytes]:
    frame = pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])])
    npy, parquet = io.BytesIO(), io.BytesIO()
    np.save(npy, X)
    pq.write_table(pa.Table.from_pandas(frame), parquet, row_group_size=25_000)
    return {"npy": npy.getvalue(), "csv": frame.to_csv(index=False).encode(),
            "parquet": parquet.getvalue()}


def _parse(kind: str, body: bytes) -> np.ndarray:
    if kind == "npy":
        return np.load(io.BytesIO(body))
    if kind == "csv":
        return pd.read_csv(io.BytesIO(body)).to_numpy()
    return pq.read_table(io.BytesIO(body)).to_pandas().to_numpy()


def run(n_samples: int, n_features: int, k: int, iters: int, n_workers: int,
        repeat: int) -> dict:
    X = blobs(n_samples, n_features, k)
    init = initial_centres(X, k)
    readers = {"npy": read_npy, "csv": read_csv, "parquet": read_parquet}
    out = {"machine": machine(), "n_samples": n_samples, "n_features": n_features, "k": k,
           "iters": iters, "n_workers": n_workers, "formats": {}}
    with redis_server() as url, moto_server(BUCKET) as minio:
        client = boto3.client("s3", endpoint_url=minio["endpoint"], region_name="us-east-1",
                              aws_access_key_id="bench", aws_secret_access_key="bench")
        config = {"lithops": {"backend": "localhost", "storage": "minio"}, "minio": minio}
        for kind, body in _bodies(X).items():
            client.put_object(Bucket=BUCKET, Key=f"data/X.{kind}", Body=body)
            out["formats"][kind] = {"mb": len(body) / 1e6}

        def model():
            return ServerlessKMeans(k, init=init, n_init=1, max_iter=iters, tol=0.0,
                                    n_workers=n_workers, backend=config, state_store=url,
                                    timeout=300)

        cases = {}
        for kind in readers:
            path = f"{BUCKET}/data/X.{kind}"
            cases[f"{kind} storage"] = lambda kind=kind, path=path: model().fit(
                readers[kind](path))
            cases[f"{kind} download"] = lambda kind=kind: model().fit(_parse(
                kind, client.get_object(Bucket=BUCKET, Key=f"data/X.{kind}")["Body"].read()))
        for fn in cases.values():
            fn()  # warm-up
        timed = interleaved(cases, repeat)
    for name, (stats, fitted) in timed.items():
        kind, arm = name.split()
        out["formats"][kind][arm] = {"median": stats["median"], "times": stats["times"],
                                     "load": float(np.median(fitted.timings_["load"])),
                                     "upload": float(fitted.timings_["upload"])}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=200_000)
    parser.add_argument("--n-features", type=int, default=20)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    results = run(args.n_samples, args.n_features, args.k, args.iters, args.workers,
                  args.repeat)
    print("| format | MB | from storage (s) | download, parse, fit (s) | worker load (s) |")
    print("|---|---|---|---|---|")
    for kind, row in results["formats"].items():
        s, d = row["storage"], row["download"]
        print(f"| {kind} | {row['mb']:.0f} | {s['median']:.2f} ({min(s['times']):.2f}-"
              f"{max(s['times']):.2f}) | {d['median']:.2f} ({min(d['times']):.2f}-"
              f"{max(d['times']):.2f}) | {s['load']:.2f} / {d['load']:.2f} |")
    if args.json:
        write_json(Path(args.json), results)


if __name__ == "__main__":
    main()
