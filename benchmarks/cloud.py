"""The cloud path on loopback against the localhost path, on the same data.

Arms, interleaved and repeated: ``local`` (files and the embedded SQLite
store: the localhost shortcut), ``local+redis`` (files, Redis state),
``objects`` (data as objects in moto's S3 server through Lithops' ``minio``
storage, Redis state, the package shipped: the path of AWS Lambda & co.) and
``redis-storage`` (Lithops' Redis storage backend). For each: fit time,
upload, load, and per round compute / publish / barrier / aggregate.

From the measured rounds and compute it projects a fit on a real cloud, with
the store's round trip and the functions' start as parameters:

    fit = start + upload + load + n_rounds * (slowest compute + trips * rtt)

``trips`` is the number of store round trips on a round's critical path (the
coordinator's publish, the followers' fetch, their contribution, the
coordinator's barrier wake-up: 4 lock-free, 5 locked), ``upload`` the
measured one (a cloud driver uploads at its own bandwidth).

    python benchmarks/cloud.py --n-samples 200000 --repeat 3 --json out.json
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

from _common import (
    blobs,
    classification,
    initial_centres,
    interleaved,
    machine,
    moto_server,
    preload,
    redis_server,
    round_breakdown,
    write_json,
)
from sklearn.exceptions import ConvergenceWarning

from sklearn_serverless import ServerlessKMeans, ServerlessLogisticRegression

TRIPS = {"lock_free": 4, "locked": 5}
RTTS = (0.3e-3, 1e-3)
STARTS = (0.5, 3.0)


def _backends(minio: dict, redis_url: str) -> dict[str, tuple[object, str | None]]:
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    return {
        "local": ("localhost", None),
        "local+redis": ("localhost", redis_url),
        "objects": ({"lithops": {"backend": "localhost", "storage": "minio"},
                     "minio": minio}, redis_url),
        "redis-storage": ({"lithops": {"backend": "localhost", "storage": "redis"},
                           "redis": {"host": "127.0.0.1", "port": port}}, redis_url),
    }


def _project(row: dict, mode: str) -> dict:
    out = {}
    for start in STARTS:
        for rtt in RTTS:
            per_round = row["slowest_compute"] + TRIPS[mode] * rtt
            fit = start + row["upload"] + row["load"] + row["n_rounds"] * per_round
            out[f"start {start:g} s, rtt {rtt * 1e3:g} ms"] = fit
    return out


def run(n_samples: int, n_features: int, k: int, iters: int, n_workers: int, repeat: int,
        mode: str) -> dict:
    X = blobs(n_samples, n_features, k)
    init = initial_centres(X, k)
    Xc, yc = classification(n_samples, n_features)
    results = {"machine": machine(), "n_samples": n_samples, "n_features": n_features,
               "k": k, "iters": iters, "n_workers": n_workers, "mode": mode, "arms": {}}
    preload()
    with redis_server() as url, moto_server("sks-bench") as minio:
        arms = _backends(minio, url)
        cases = {}
        for name, (backend, store) in arms.items():
            execution = dict(backend=backend, state_store=store, state_mode=mode,
                             n_workers=n_workers, timeout=120)
            cases[f"kmeans {name}"] = (
                lambda e=execution: ServerlessKMeans(k, init=init, n_init=1, max_iter=iters,
                                                     tol=0.0, **e).fit(X))
            cases[f"logistic {name}"] = (
                lambda e=execution: ServerlessLogisticRegression(**e).fit(Xc, yc))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for fn in cases.values():
                fn()  # warm-up: first imports, runtime metadata
            timed = interleaved(cases, repeat)
    for name, (stats, model) in timed.items():
        row = round_breakdown(model.timings_)
        row.update(fit_median=stats["median"], fit_times=stats["times"],
                   upload=float(model.timings_["upload"]))
        row["projected"] = _project(row, mode)
        results["arms"][name] = row
    return results


def _table(results: dict) -> str:
    lines = ["| arm | fit (s) | upload | load | rounds | compute/round (ms) | sync/round (ms) |",
             "|---|---|---|---|---|---|---|"]
    for name, row in results["arms"].items():
        lines.append(
            f"| {name} | {row['fit_median']:.2f} ({min(row['fit_times']):.2f}-"
            f"{max(row['fit_times']):.2f}) | {row['upload']:.3f} | {row['load']:.3f} | "
            f"{row['n_rounds']} | {row['slowest_compute'] * 1e3:.2f} | "
            f"{row['sync'] * 1e3:.2f} |")
    lines += ["", "projected fit on a cloud (s):", ""]
    keys = list(next(iter(results["arms"].values()))["projected"])
    lines += ["| arm | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, row in results["arms"].items():
        if name.endswith("objects"):
            lines.append(f"| {name} | " + " | ".join(f"{row['projected'][key]:.2f}"
                                                      for key in keys) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=200_000)
    parser.add_argument("--n-features", type=int, default=20)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mode", choices=sorted(TRIPS), default="lock_free")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    results = run(args.n_samples, args.n_features, args.k, args.iters, args.workers,
                  args.repeat, args.mode)
    print(_table(results))
    if args.json:
        write_json(Path(args.json), results)
    else:
        print(json.dumps({name: row["fit_median"] for name, row in results["arms"].items()}))


if __name__ == "__main__":
    main()
