"""Read throughput of the dataset readers: MB parsed per second by one worker
(one process, one thread), for a ~50 MB object of each format, from local
files and from moto's S3 server (a Python server: a floor for S3, not S3).

    python benchmarks/readers.py [--mb 50] [--no-moto]

Prints one line per case; not part of the test suite.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np


def _frames(mb: float, cell_bytes: int):
    import pandas as pd

    n_features = 20
    n_rows = int(mb * 1e6 / ((n_features + 1) * cell_bytes))
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(n_rows, n_features)),
                         columns=[f"x{j}" for j in range(n_features)])
    frame["label"] = rng.integers(0, 2, n_rows)
    return frame


def _objects(mb: float) -> dict[str, tuple[bytes, object]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sklearn_serverless._datasets import read_csv, read_npy, read_parquet

    frame = _frames(mb, 19)  # ~19 bytes per CSV cell
    csv = frame.to_csv(index=False).encode()
    csv_str = frame.assign(label=np.where(frame["label"] > 0, "yes", "no")).to_csv(
        index=False).encode()
    frame = _frames(mb, 8)  # 8 bytes per binary cell: objects of ~mb MB too
    table = pa.Table.from_pandas(frame, preserve_index=False)
    parquet = {}
    for codec in ("none", "snappy"):
        sink = io.BytesIO()
        pq.write_table(table, sink, row_group_size=100_000, compression=codec)
        parquet[codec] = sink.getvalue()
    sink = io.BytesIO()
    np.save(sink, np.ascontiguousarray(frame.to_numpy(np.float64)))
    return {
        "csv (numeric label)": (csv, lambda p: read_csv(p, label="label")),
        "csv (str label)": (csv_str, lambda p: read_csv(p, label="label")),
        "parquet (uncompressed)": (parquet["none"], lambda p: read_parquet(p, label="label")),
        "parquet (snappy)": (parquet["snappy"], lambda p: read_parquet(p, label="label")),
        "npy": (sink.getvalue(), read_npy),
    }


def _measure(name: str, where: str, data: bytes, dataset, storage, repeat: int = 2) -> None:
    from sklearn_serverless._datasets import read_rows

    resolved = dataset.resolve(storage)
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for spec in resolved.plan(1):
            rows = read_rows(spec, storage)
        best = min(best, time.perf_counter() - started)
    mb = len(data) / 1e6
    print(f"{where:6s} {name:24s} {mb:6.1f} MB  {best:6.2f} s  {mb / best:7.1f} MB/s  "
          f"rows {rows['n_rows']}  GETs {rows['requests']}", flush=True)


def _moto():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                "-p", str(port)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    import boto3

    client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}",
                          region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
    deadline = time.monotonic() + 30
    while True:
        try:
            client.create_bucket(Bucket="bench")
            break
        except Exception:  # noqa: BLE001 - not listening yet
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.1)
    from lithops import Storage

    storage = Storage(config={"lithops": {"storage": "minio", "log_level": None}, "minio": {
        "endpoint": f"http://127.0.0.1:{port}", "access_key_id": "testing",
        "secret_access_key": "testing", "storage_bucket": "bench"}})
    return process, client, storage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=50)
    parser.add_argument("--no-moto", action="store_true")
    args = parser.parse_args()
    objects = _objects(args.mb)
    with tempfile.TemporaryDirectory() as folder:
        for i, (name, (data, make)) in enumerate(objects.items()):
            path = os.path.join(folder, f"{i}.bin")
            with open(path, "wb") as file:
                file.write(data)
            _measure(name, "local", data, make(path), None)
    if args.no_moto:
        return
    process, client, storage = _moto()
    try:
        for i, (name, (data, make)) in enumerate(objects.items()):
            client.put_object(Bucket="bench", Key=f"{i}.bin", Body=data)
            _measure(name, "moto", data, make(f"bench/{i}.bin"), storage, repeat=1)
            client.delete_object(Bucket="bench", Key=f"{i}.bin")
    finally:
        process.terminate()
        process.wait(10)


if __name__ == "__main__":
    main()
