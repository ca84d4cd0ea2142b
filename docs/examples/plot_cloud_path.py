"""
The cloud path on loopback
==========================

A fit whose Lithops storage is not ``localhost`` takes the cloud path: the
driver uploads each worker's rows as objects, the workers read them from the
object storage and meet through a Redis server. This example runs that path
on one machine: it starts moto's S3 server (an S3-compatible object store)
and a private ``redis-server`` on free loopback ports, fits through Lithops'
``minio`` storage with localhost compute, shows what the upload cost, and
stops both servers. Pointed at a real cloud (see
:doc:`/user_guide/cloud`), only the config and the Redis URL change.

When ``redis-server`` is not installed the example says so and fits on the
localhost path instead.
"""

# %%
# Two servers of our own, on free loopback ports, each waited for with a
# deadline.
import atexit
import shutil
import socket
import subprocess
import sys
import time

import boto3
import matplotlib.pyplot as plt
import numpy as np
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs

from sklearn_serverless import ServerlessKMeans


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


# Stopped at the end of the example, and by ``atexit`` should a cell fail.
servers = []
atexit.register(lambda: [stop(process) for process in servers])

s3_port = free_port()
servers.append(subprocess.Popen(
    [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(s3_port)],
    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
endpoint = f"http://127.0.0.1:{s3_port}"
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id="testing", aws_secret_access_key="testing")
wait_until(s3.list_buckets, "moto's S3 server")
s3.create_bucket(Bucket="sks-example")

redis_binary = shutil.which("redis-server")
if redis_binary is not None:
    import redis

    redis_port = free_port()
    servers.append(subprocess.Popen(
        [redis_binary, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    client = redis.Redis.from_url(redis_url)
    wait_until(client.ping, "redis-server")
else:
    print("redis-server is not installed: the cloud path needs a Redis server, "
          "so this example fits on the localhost path instead")

# %%
# The fit: Lithops localhost compute, S3 storage through Lithops' ``minio``
# backend, the shared state in Redis. Beside it, scikit-learn's KMeans from
# the same initial centres.
X, _ = make_blobs(n_samples=4000, n_features=10, centers=5, random_state=0)
init = X[:5]
if redis_binary is not None:
    backend = {
        "lithops": {"backend": "localhost", "storage": "minio"},
        "minio": {"endpoint": endpoint, "access_key_id": "testing",
                  "secret_access_key": "testing", "storage_bucket": "sks-example"},
    }
    state_store = redis_url
else:
    backend, state_store = "localhost", None
km = ServerlessKMeans(n_clusters=5, init=init, n_workers=2, backend=backend,
                      state_store=state_store).fit(X)
reference = KMeans(n_clusters=5, init=init, n_init=1).fit(X)
timings = km.timings_
print(f"fit {timings['fit']:.2f} s, of which upload {timings['upload']:.3f} s; "
      f"load per worker {np.round(timings['load'], 3)} s")
print("largest centre difference from scikit-learn:",
      np.abs(km.cluster_centers_ - reference.cluster_centers_).max())

# %%
# Nothing of the fit is left in the storage or in Redis: its objects and
# keys are deleted when it ends (only Lithops' cache of runtime metadata
# stays in the bucket).
left = [item["Key"] for item in s3.list_objects_v2(Bucket="sks-example")
        .get("Contents", []) if "sklearn-serverless/" in item["Key"]]
print("data objects left in the bucket:", left)
if redis_binary is not None:
    print("state keys left in Redis:", [k for k in client.scan_iter("sks:*")])
    client.close()

# %%
# Where the fit's time went: the upload, each worker's load, the rounds.
fig, ax = plt.subplots(figsize=(6, 3.2))
parts = {"upload (driver)": timings["upload"],
         "load (worker 0)": timings["load"][0],
         "rounds (worker 0)": sum(timings[p][:, 0].sum()
                                  for p in ("compute", "publish", "barrier", "aggregate"))}
parts["rest (map, start)"] = max(0.0, timings["fit"] - sum(parts.values()))
left_edge = 0.0
for name, seconds in parts.items():
    ax.barh([0], [seconds], left=left_edge, label=f"{name}: {seconds:.2f} s")
    left_edge += seconds
ax.set_yticks([])
ax.set_xlabel("seconds")
path = "S3 (moto) + Redis" if redis_binary is not None else "localhost"
ax.set_title(f"one fit on the {path} path")
ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=2, fontsize="small")
fig.tight_layout()

# %%
# Stop what the example started.
for process in reversed(servers):
    stop(process)
servers.clear()
