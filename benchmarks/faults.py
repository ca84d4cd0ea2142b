"""What surviving lost functions costs: per round when nothing fails (this
tree against an earlier commit, side by side), a replaced worker, and a
hand-over before the function time limit.

    python benchmarks/faults.py --repeat 5 --before 62e16ad --json docs/img/faults.json

With ``--cloud SECONDS``: one worker of ten lost in a fit of about SECONDS on
the loopback cloud path (data in moto's S3 server, Redis state, the package
shipped), against the same fit with no loss, and the two models compared:

    python benchmarks/faults.py --cloud 60 --json docs/img/faults_cloud.json

``--before`` names a commit checked out into a temporary worktree; each arm
runs in its own process (a warm-up fit first), the arms interleaved. Also
measured in each arm: scikit-learn on the same data in the same process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: One fit of each workload in a fresh process of one arm (PYTHONPATH picks the tree).
_ARM = r"""
import json, sys, time, warnings
import numpy as np
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression
from sklearn_serverless import ServerlessKMeans, ServerlessLogisticRegression
warnings.simplefilter("ignore")
rng = np.random.default_rng(0)
n, d = 300_000, 50
X = rng.standard_normal((n, d)) + rng.integers(0, 4, n)[:, None]
y = (X[:, 0] + 0.5 * rng.standard_normal(n) > 1.5).astype(int)
init = X[:20].copy()
ServerlessKMeans(3, n_workers=2, max_iter=2).fit(X[:2000])  # warm runtime
out = {}
t = time.perf_counter(); m = ServerlessKMeans(20, init=init, n_init=1, max_iter=30, tol=0,
                                               n_workers=2).fit(X)
out["kmeans"] = time.perf_counter() - t
out["kmeans_round"] = float(np.median(m.timings_["compute"].max(axis=1)
                                       + m.timings_["barrier"][:, 0]))
t = time.perf_counter(); KMeans(20, init=init, n_init=1, max_iter=30, tol=0).fit(X)
out["kmeans_sklearn"] = time.perf_counter() - t
t = time.perf_counter(); ServerlessLogisticRegression(n_workers=2).fit(X, y)
out["logistic"] = time.perf_counter() - t
t = time.perf_counter(); LogisticRegression().fit(X, y)
out["logistic_sklearn"] = time.perf_counter() - t
print(json.dumps(out))
"""

#: A replaced worker and hand-overs, in this tree.
_FAULTS = r"""
import dataclasses, json, os, signal, sys, time, warnings
import numpy as np
from sklearn_serverless import ServerlessKMeans
from sklearn_serverless._algorithms import ALGORITHMS
warnings.simplefilter("ignore")
rng = np.random.default_rng(0)
X = rng.standard_normal((300_000, 50)) + rng.integers(0, 4, 300_000)[:, None]
init = X[:20].copy()
ServerlessKMeans(3, n_workers=2, max_iter=2).fit(X[:2000])
kmeans = ALGORITHMS["kmeans"]
MARKER, RANK = sys.argv[1], int(sys.argv[2])  # read here: workers have their own argv

class Dying:
    def __init__(self, inner):
        self.inner, self.count = inner, 0
    def handle(self, command, arrays):
        self.count += 1
        if self.count == 12 and not os.path.exists(MARKER):
            open(MARKER, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        return self.inner.handle(command, arrays)
    def result(self):
        return self.inner.result()
    def close(self):
        self.inner.close()

def build(data, params, context):
    worker = kmeans.worker(data, params, context)
    return Dying(worker) if context.rank == RANK else worker

out = {}
params = dict(init=init, n_init=1, max_iter=30, tol=0, n_workers=2)
t = time.perf_counter(); ServerlessKMeans(20, **params).fit(X)
out["clean"] = time.perf_counter() - t
ALGORITHMS["kmeans"] = dataclasses.replace(kmeans, worker=build)
t = time.perf_counter(); m = ServerlessKMeans(20, **params).fit(X)
out["killed"] = time.perf_counter() - t
out["resume"] = m.timings_["generation_ends"][0]["resume_seconds"]
ALGORITHMS["kmeans"] = kmeans
# No runtime named: the warm runtime serves every generation's map.
config = {"lithops": {"backend": "localhost", "storage": "localhost", "execution_timeout": 8},
          "localhost": {"version": 1}}
params["max_iter"] = 600
t = time.perf_counter(); ServerlessKMeans(20, **params).fit(X)
out["long_clean"] = time.perf_counter() - t
t = time.perf_counter(); m = ServerlessKMeans(20, backend=config, **params).fit(X)
out["long_limited"] = time.perf_counter() - t
out["generations"] = m.timings_["generations"]
out["handover_resume"] = [e["resume_seconds"] for e in m.timings_["generation_ends"]]
print(json.dumps(out))
"""


#: One worker of ten lost on the loopback cloud path: gradient descent with
#: tol=0 runs exactly max_iter rounds, sized from a probe to last the target.
_CLOUD = r"""
import dataclasses, json, os, signal, sys, time, warnings
import numpy as np
from sklearn.datasets import make_classification
from sklearn_serverless import ServerlessLogisticRegression
from sklearn_serverless._algorithms import ALGORITHMS
warnings.simplefilter("ignore")
MINIO, REDIS, TARGET, MARKER = json.loads(sys.argv[1]), sys.argv[2], float(sys.argv[3]), sys.argv[4]
X, y = make_classification(200_000, 20, random_state=0)
config = {"lithops": {"backend": "localhost", "storage": "minio"}, "minio": MINIO}
logistic = ALGORITHMS["logistic"]
RANK = 3

def fit(max_iter):
    model = ServerlessLogisticRegression(solver="gd", tol=0, max_iter=max_iter, n_workers=10,
                                         backend=config, state_store=REDIS, timeout=60)
    started = time.perf_counter()
    model.fit(X, y)
    return model, time.perf_counter() - started

class Dying:
    def __init__(self, inner, at):
        self.inner, self.at, self.count = inner, at, 0
    def handle(self, command, arrays):
        self.count += 1
        if self.count == self.at and not os.path.exists(MARKER):
            open(MARKER, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        return self.inner.handle(command, arrays)
    def result(self):
        return self.inner.result()
    def close(self):
        self.inner.close()

fit(5)  # warm: the runtime, the shipped modules
_, short = fit(20)
_, longer = fit(220)
per_round = (longer - short) / 200
max_iter = max(50, int((TARGET - short) / per_round))
clean, clean_seconds = fit(max_iter)
at = max_iter // 2
ALGORITHMS["logistic"] = dataclasses.replace(logistic, worker=lambda data, params, context: (
    Dying(logistic.worker(data, params, context), at) if context.rank == RANK
    else logistic.worker(data, params, context)))
lost, lost_seconds = fit(max_iter)
print(json.dumps({
    "n_samples": X.shape[0], "n_features": X.shape[1], "n_workers": 10, "solver": "gd",
    "max_iter": max_iter, "killed_rank": RANK, "killed_at_command": at,
    "clean_seconds": clean_seconds, "lost_seconds": lost_seconds,
    "extra": lost_seconds / clean_seconds - 1,
    "generations": lost.timings_["generations"],
    "resume_seconds": lost.timings_["generation_ends"][0]["resume_seconds"],
    "same_n_iter": int(lost.n_iter_[0]) == int(clean.n_iter_[0]),
    "max_coef_difference": float(np.abs(lost.coef_ - clean.coef_).max()),
    "same_model": bool(np.array_equal(lost.coef_, clean.coef_)
                       and np.array_equal(lost.intercept_, clean.intercept_)),
}))
"""


def _cloud(seconds: float) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import machine, moto_server, redis_server

    with redis_server() as url, moto_server("sks-faults") as minio, \
            tempfile.TemporaryDirectory() as folder:
        measured = _run(_CLOUD, REPO, json.dumps(minio), url, str(seconds),
                        os.path.join(folder, "marker"))
    return {"machine": machine(), "target_seconds": seconds, **measured}


def _run(code: str, root: Path, *args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=root,
                          capture_output=True, text=True, check=True, timeout=900)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "runs": values}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--before", default="62e16ad", help="commit of the earlier arm")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--cloud", type=float, metavar="SECONDS",
                        help="instead: one worker of ten lost in a fit of this length on "
                             "the loopback cloud path")
    args = parser.parse_args()
    if args.cloud:
        text = json.dumps(_cloud(args.cloud), indent=1)
        if args.json:
            args.json.write_text(text + "\n")
        print(text)
        return
    before = Path(tempfile.mkdtemp(prefix="sks-before-"))
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(before),
                    args.before], check=True, capture_output=True)
    try:
        arms = {"before": [], "after": []}
        for _ in range(args.repeat):
            for name, root in (("before", before), ("after", REPO)):
                arms[name].append(_run(_ARM, root))
                print(name, arms[name][-1], flush=True)
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(before)],
                       check=False, capture_output=True)
    result = {"no_failure": {
        name: {key: _summary([run[key] for run in runs]) for key in runs[0]}
        for name, runs in arms.items()}}
    faults = []
    for rank in ("1", "0"):
        with tempfile.TemporaryDirectory() as folder:
            faults.append({"killed_rank": int(rank),
                           **_run(_FAULTS, REPO, os.path.join(folder, "marker"), rank)})
            print(faults[-1], flush=True)
    result["faults"] = faults
    text = json.dumps(result, indent=1)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
