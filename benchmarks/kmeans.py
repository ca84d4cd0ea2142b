"""ServerlessKMeans against scikit-learn's KMeans, side by side in one run.

    python benchmarks/kmeans.py                  # 1,000,000 x 50, k=20, 50 iterations
    python benchmarks/kmeans.py --n-samples 200000 --json results/kmeans.json

Same data, same initial centres, tol=0 so both run exactly ``--max-iter``
Lloyd iterations; n_workers=2; both state modes on the embedded SQLite store
and on a loopback redis-server started (and stopped) here. Reports wall time,
time per iteration and the per-iteration breakdown (compute, publish,
barrier wait, aggregate) from ``timings_``, how much of the barrier wait
is load imbalance (waiting for the slower worker's compute) and how many
chunks of rows workers computed for each other; medians over the repeats.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs

from sklearn_serverless import ServerlessKMeans

PHASES = ("compute", "publish", "barrier", "aggregate")


@contextlib.contextmanager
def loopback_redis():
    """A private redis-server on a free port, or None when not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1",
                                "--save", "", "--appendonly", "no"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import redis

        client = redis.Redis(port=port)
        for _ in range(200):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.02)
        client.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


def per_iteration_breakdown(timings: dict, n_iter: int) -> dict:
    """Mean seconds per Lloyd iteration and phase, averaged over workers
    (the final E-step round is excluded)."""
    return {phase: float(timings[phase][:n_iter].mean()) for phase in PHASES}


def imbalance(timings: dict, n_iter: int) -> float:
    """Mean seconds a worker waits for the slowest worker's compute: the part
    of the barrier that is load imbalance, not the store's or runtime's cost."""
    compute = timings["compute"][:n_iter]
    return float((compute.max(axis=1, keepdims=True) - compute).mean())


def _round_costs(timings: list[dict], n_iter: int) -> dict:
    """Per-iteration breakdown, sync and imbalance: medians over the repeats
    (each repeat's value is a mean over its rounds and workers)."""
    breakdowns = [per_iteration_breakdown(t, n_iter) for t in timings]
    syncs = [1e3 * sum(b[p] for p in PHASES[1:]) for b in breakdowns]
    imbalances = [1e3 * imbalance(t, n_iter) for t in timings]
    return {
        "breakdown_s": {p: float(np.median([b[p] for b in breakdowns])) for p in PHASES},
        "sync_ms": float(np.median(syncs)), "syncs_ms": syncs,
        "imbalance_ms": float(np.median(imbalances)),
        "sync_minus_imbalance_ms": float(np.median(np.subtract(syncs, imbalances))),
        "helped_per_round": float(np.median([t["helped"][:n_iter].sum(axis=1).mean()
                                             for t in timings])),
        "load_s": float(np.median([t["load"].max() for t in timings])),
    }


def run(n_samples: int = 1_000_000, n_features: int = 50, n_clusters: int = 20,
        max_iter: int = 50, n_workers: int = 2, repeat: int = 1) -> dict:
    X, _ = make_blobs(n_samples, n_features, centers=n_clusters, cluster_std=5.0,
                      random_state=0)
    init = X[np.random.RandomState(0).choice(n_samples, n_clusters, replace=False)]
    common = dict(init=init, n_init=1, tol=0, max_iter=max_iter)
    rows = []

    def measure(name, make):
        times, timings, model = [], [], None
        for _ in range(repeat):
            model = make()
            started = time.perf_counter()
            model.fit(X)
            times.append(time.perf_counter() - started)
            timings.append(getattr(model, "timings_", None))
        row = {"name": name, "fit_s": float(np.median(times)), "fits_s": times,
               "n_iter": int(model.n_iter_), "inertia": float(model.inertia_)}
        row["per_iteration_s"] = row["fit_s"] / row["n_iter"]
        if timings[0] is not None:
            row.update(_round_costs(timings, model.n_iter_))
        rows.append(row)
        print(_format(row), flush=True)
        return model

    reference = measure("sklearn KMeans", lambda: KMeans(n_clusters, **common))
    with loopback_redis() as redis_url:
        stores = [("sqlite", None)] + ([("redis", redis_url)] if redis_url else [])
        for store, url in stores:
            for mode in ("lock_free", "locked"):
                model = measure(f"ServerlessKMeans {mode} {store}", functools.partial(
                    ServerlessKMeans, n_clusters, n_workers=n_workers, state_mode=mode,
                    state_store=url, **common))
                gap = np.abs(model.cluster_centers_ - reference.cluster_centers_).max()
                rows[-1]["max_center_diff"] = float(gap)
                rows[-1]["ratio_to_sklearn"] = rows[-1]["fit_s"] / rows[0]["fit_s"]
    return {"params": dict(n_samples=n_samples, n_features=n_features, n_clusters=n_clusters,
                           max_iter=max_iter, n_workers=n_workers, repeat=repeat),
            "rows": rows}


def _format(row: dict) -> str:
    text = (f"{row['name']:<34} fit {row['fit_s']:7.3f} s  "
            f"{1e3 * row['per_iteration_s']:7.2f} ms/iter  n_iter {row['n_iter']}")
    if "breakdown_s" in row:
        parts = " ".join(f"{p} {1e3 * v:.2f}" for p, v in row["breakdown_s"].items())
        text += (f"  [ms/iter: {parts}; sync {row['sync_ms']:.2f} (imbalance "
                 f"{row['imbalance_ms']:.2f}); chunks shared per round "
                 f"{row['helped_per_round']:.1f}; load {row['load_s']:.2f} s]")
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=1_000_000)
    parser.add_argument("--n-features", type=int, default=50)
    parser.add_argument("--n-clusters", type=int, default=20)
    parser.add_argument("--max-iter", type=int, default=50)
    parser.add_argument("--n-workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", help="write the measurements to this file")
    args = parser.parse_args(argv)
    result = run(args.n_samples, args.n_features, args.n_clusters, args.max_iter,
                 args.n_workers, args.repeat)
    for row in result["rows"][1:]:
        print(f"{row['name']}: {row['ratio_to_sklearn']:.2f}x sklearn's wall time, "
              f"sync {row['sync_ms']:.2f} ms/iter ({row['sync_minus_imbalance_ms']:.2f} "
              f"without load imbalance), max centre diff {row['max_center_diff']:.1e}")
    if args.json:
        from _common import machine  # benchmarks/ is on the path when run as a script

        result["machine"] = machine()
        with open(args.json, "w") as out:
            json.dump(result, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
