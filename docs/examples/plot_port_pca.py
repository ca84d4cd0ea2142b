"""
Porting an algorithm: a distributed PCA
=======================================

The package has no PCA, but :mod:`sklearn_serverless.distributed` runs any
algorithm made of rounds over blocks of rows (:doc:`/user_guide/porting`).
A PCA through the covariance matrix takes two rounds: the workers' row
counts and column sums give the mean; each worker's centred scatter matrix
:math:`(X_i - \\mu)^T (X_i - \\mu)`, summed over the workers, gives the
covariance, whose eigendecomposition on the coordinator gives the
components. This example ports it, runs it on the localhost path and on the
cloud path on loopback (moto's S3 server and a private ``redis-server``, as
in :ref:`sphx_glr_auto_examples_plot_cloud_path.py`), and checks it against
:class:`sklearn.decomposition.PCA`.
"""

# %%
# The algorithm
# -------------
# The worker holds its block of rows and answers two commands; the
# coordinator runs on worker 0 and combines their answers. Worker code uses
# NumPy only, never scikit-learn (importing it would cost each worker a
# second or more); scikit-learn only runs on the driver, for the comparison.
import atexit
import shutil
import socket
import subprocess
import sys
import time

import boto3
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA

from sklearn_serverless.distributed import Algorithm, run


class CovarianceWorker:
    """One worker's share of the covariance matrix."""

    def __init__(self, data, params, context):
        self.X = data["X"]

    def handle(self, command, arrays):
        if command == "sums":  # row count, then the column sums
            return np.concatenate([[self.X.shape[0]], self.X.sum(axis=0)])
        if command == "scatter":  # centred on the global mean the coordinator sends
            centred = self.X - arrays[0]
            return centred.T @ centred
        raise ValueError(f"unknown command {command!r}")


def coordinate(rounds, params):
    sums = rounds.allreduce("sums")
    n_samples, mean = sums[0], sums[1:] / sums[0]
    rounds.log(f"{int(n_samples)} rows on {rounds.n_workers} workers")
    covariance = rounds.allreduce("scatter", mean) / (n_samples - 1)
    values, vectors = np.linalg.eigh(covariance)
    keep = np.argsort(values)[::-1][: params["n_components"]]
    rounds.log(f"top eigenvalue {values[keep[0]]:.3f}")
    return {"mean": mean, "explained_variance": values[keep],
            "explained_variance_ratio": values[keep] / values.sum(),
            "components": vectors[:, keep].T}


PCA_ALGORITHM = Algorithm("pca", CovarianceWorker, coordinate)

# %%
# On the localhost path
# ---------------------
# The 8x8 digits, 1797 rows of 64 pixels, on two workers; ``verbose=True``
# prints the coordinator's log lines.
X, digit = load_digits(return_X_y=True)
params = {"n_components": 10}
local = run(PCA_ALGORITHM, {"X": X}, params=params, n_workers=2, verbose=True)
reference = PCA(n_components=10, svd_solver="full").fit(X)


def compare(result, what):
    """Largest differences from scikit-learn (components up to their sign)."""
    signs = np.sign(np.sum(result["components"] * reference.components_, axis=1))
    print(f"{what}: explained_variance_ rel. diff "
          f"{np.max(np.abs(result['explained_variance'] / reference.explained_variance_ - 1)):.1e}"
          f", components diff "
          f"{np.abs(signs[:, None] * result['components'] - reference.components_).max():.1e}"
          f", mean diff {np.abs(result['mean'] - reference.mean_).max():.1e}")
    np.testing.assert_allclose(result["explained_variance"], reference.explained_variance_,
                               rtol=1e-9)
    np.testing.assert_allclose(signs[:, None] * result["components"], reference.components_,
                               atol=1e-9)


compare(local.result, "localhost")
print(f"run {local.timings['fit']:.2f} s, {local.timings['n_rounds']} rounds")

# %%
# On the cloud path, on loopback
# ------------------------------
# The same algorithm object, unchanged: only the backend and the state store
# differ. The worker class and ``coordinate`` are defined in this script, so
# their code travels with the run (pickled by value): the functions need not
# import anything of the script. Two servers of our own on free loopback
# ports, each waited for with a deadline.


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

redis_binary = shutil.which("redis-server")
cloud = None
if redis_binary is None:
    print("redis-server is not installed: the cloud path needs a Redis server, "
          "so this example runs on the localhost path only")
else:
    import redis

    s3_port, redis_port = free_port(), free_port()
    servers.append(subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(s3_port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    servers.append(subprocess.Popen(
        [redis_binary, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    endpoint = f"http://127.0.0.1:{s3_port}"
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    wait_until(s3.list_buckets, "moto's S3 server")
    s3.create_bucket(Bucket="sks-pca-example")
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    client = redis.Redis.from_url(redis_url)
    wait_until(client.ping, "redis-server")

    backend = {
        "lithops": {"backend": "localhost", "storage": "minio"},
        "minio": {"endpoint": endpoint, "access_key_id": "testing",
                  "secret_access_key": "testing", "storage_bucket": "sks-pca-example"},
    }
    cloud = run(PCA_ALGORITHM, {"X": X}, params=params, n_workers=2, backend=backend,
                state_store=redis_url)
    compare(cloud.result, "cloud path")
    print(f"run {cloud.timings['fit']:.2f} s, of which upload "
          f"{cloud.timings['upload']:.3f} s")
    print("state keys left in Redis:", list(client.scan_iter("sks:*")))
    client.close()

# %%
# Both paths sum the partials in worker order (``state_mode='lock_free'``),
# so they return the same floats.
if cloud is not None:
    print("localhost and cloud path identical:",
          all(np.array_equal(local.result[key], cloud.result[key]) for key in local.result))

# %%
# The digits on their first two components, and the variance each
# component explains, against scikit-learn's.
projected = (X - local.result["mean"]) @ local.result["components"][:2].T
fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
points = left.scatter(projected[:, 0], projected[:, 1], c=digit, cmap="tab10", s=6)
left.set_xlabel("component 1")
left.set_ylabel("component 2")
left.set_title("digits, distributed PCA")
fig.colorbar(points, ax=left, label="digit")
ranks = np.arange(1, 11)
right.bar(ranks - 0.2, local.result["explained_variance_ratio"], width=0.4,
          label="sklearn_serverless.distributed")
right.bar(ranks + 0.2, reference.explained_variance_ratio_, width=0.4,
          label="sklearn.decomposition.PCA")
right.set_xlabel("component")
right.set_ylabel("explained variance ratio")
right.set_xticks(ranks)
right.legend(fontsize="small")
fig.tight_layout()

# %%
# Stop what the example started.
for process in reversed(servers):
    stop(process)
servers.clear()
