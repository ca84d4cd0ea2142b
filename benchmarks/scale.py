"""The runtime's per-round synchronisation and a map's start as the number of
workers grows, with tiny partitions (the compute is negligible, so what is
measured is the runtime): k-means, ``--rows-per-worker`` rows of 5 features
each, k=4, ``--iterations`` Lloyd rounds (tol=0), on the embedded SQLite
store and on a loopback redis-server, in both state modes.

    python benchmarks/scale.py --workers 2 4 8 16 --out docs/img/scale.json
    python benchmarks/scale.py --workers 2 4 8 16 32 64 --repeat 3 --out scale-16core.json

Per round, from ``timings_`` (worker 0, which runs the coordinator: its
publish, barrier wait and aggregate add up to the round), medians over the
rounds and then over the repeats: publish, barrier, aggregate, the round,
and sync = round minus the slowest worker's compute. "outside" is the fit's
wall time minus the upload and worker 0's rounds: the map's start (the
workers' processes, imports, loading the rows) and its end. The slope of the
aggregate over the number of workers says whether it grows linearly.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, redis_server  # noqa: E402

PHASES = ("compute", "publish", "barrier", "aggregate")


def one_fit(n_workers: int, store: str | None, mode: str, rows: int, iterations: int) -> dict:
    from sklearn_serverless import ServerlessKMeans

    rng = np.random.default_rng(n_workers)
    X = rng.normal(size=(n_workers * rows, 5))
    init = X[:4].copy()
    model = ServerlessKMeans(4, init=init, n_init=1, tol=0.0, max_iter=iterations,
                             n_workers=n_workers, state_mode=mode, state_store=store)
    started = time.perf_counter()
    model.fit(X)
    wall = time.perf_counter() - started
    t = model.timings_
    n = model.n_iter_
    tables = {p: np.asarray(t[p])[:n] for p in PHASES}
    round_time = sum(tables[p][:, 0] for p in PHASES)
    rounds_total = float(sum(np.asarray(t[p])[:, 0].sum() for p in PHASES))
    return {"wall_s": wall, "n_iter": int(n),
            **{f"{p}_ms": float(1e3 * np.median(tables[p][:, 0])) for p in PHASES[1:]},
            "round_ms": float(1e3 * np.median(round_time)),
            "sync_ms": float(1e3 * np.median(round_time - tables["compute"].max(axis=1))),
            "load_s": float(np.max(t["load"])),
            "outside_s": float(t["fit"] - (t["upload"] or 0) - rounds_total)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 4, 8, 16, 32, 64])
    parser.add_argument("--stores", nargs="+", default=["sqlite", "redis"],
                        choices=["sqlite", "redis"])
    parser.add_argument("--modes", nargs="+", default=["lock_free", "locked"],
                        choices=["lock_free", "locked"])
    parser.add_argument("--rows-per-worker", type=int, default=200)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--out", default=None, help="write the measurements to this JSON file")
    args = parser.parse_args(argv)
    rows = []
    with redis_server() as url:
        stores = {"sqlite": None, "redis": url}
        for n_workers in args.workers:
            for store in args.stores:
                for mode in args.modes:
                    one_fit(n_workers, stores[store], mode, args.rows_per_worker, 2)  # warm-up
                    fits = [one_fit(n_workers, stores[store], mode, args.rows_per_worker,
                                    args.iterations) for _ in range(args.repeat)]
                    row = {"n_workers": n_workers, "store": store, "mode": mode,
                           **{key: float(np.median([f[key] for f in fits]))
                              for key in fits[0]}, "fits": fits}
                    rows.append(row)
                    print(f"{n_workers:3d} workers {store:6s} {mode:9s}: round "
                          f"{row['round_ms']:6.2f} ms (publish {row['publish_ms']:.2f}, "
                          f"barrier {row['barrier_ms']:.2f}, aggregate "
                          f"{row['aggregate_ms']:.2f}), sync {row['sync_ms']:.2f} ms; "
                          f"outside the rounds {row['outside_s']:.2f} s (load "
                          f"{row['load_s']:.2f} s); fit {row['wall_s']:.2f} s", flush=True)
    slopes = {}
    for store in args.stores:
        for mode in args.modes:
            arm = [r for r in rows if r["store"] == store and r["mode"] == mode]
            if len(arm) > 1:
                w = np.array([r["n_workers"] for r in arm], dtype=float)
                slope, intercept = np.polyfit(w, [r["aggregate_ms"] for r in arm], 1)
                slopes[f"{store} {mode}"] = {"aggregate_ms_per_worker": float(slope),
                                             "intercept_ms": float(intercept)}
                print(f"aggregate {store} {mode}: {slope:.3f} ms per worker "
                      f"(+{intercept:.2f} ms)")
    if args.out:
        Path(args.out).write_text(json.dumps({"machine": machine(), "args": vars(args),
                                              "rows": rows, "aggregate_fit": slopes}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
