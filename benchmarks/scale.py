"""The runtime's per-round synchronisation and a map's start as the number of
workers grows, with tiny partitions (the compute is negligible, so what is
measured is the runtime): k-means, ``--rows-per-worker`` rows of 5 features
each, k=4, ``--iterations`` Lloyd rounds (tol=0), on the embedded SQLite
store and on a loopback redis-server, in both state modes; then, from the
measured costs, a projection to AWS Lambda (``--project``).

    python benchmarks/scale.py --workers 2 4 8 16 32 64 --repeat 2 --iterations 10 \\
        --project 256 1000 --out docs/img/scale.json

Per round, from ``timings_`` (worker 0, which runs the coordinator: its
publish, barrier wait and aggregate add up to the round), medians over the
rounds and then over the repeats: publish, barrier, aggregate, the round,
and sync = round minus the slowest worker's compute. CPU per round: each
worker's process time over its rounds (``timings_['cpu']``), the
coordinator's, and redis-server's (``INFO cpu``); "floor" is all the
workers' CPU per round over this machine's cores: the shortest round
possible when they time-share it. "start" is a one-off map's start (the
pool of workers off): the fit's wall time minus its rounds after the first.
The slopes over the number of workers say what grows linearly.

The projection (see :func:`project`) keeps what does not time-share on
Lambda, where every worker has its own vCPU: one follower's CPU, and the
serial work per worker at the coordinator and the Redis server (the fitted
slopes), plus the store's round trips at ``--rtt-ms``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, pyplot, redis_server, save  # noqa: E402

PHASES = ("compute", "publish", "barrier", "aggregate")
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _redis_cpu(client) -> float:
    if client is None:
        return 0.0
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def one_fit(n_workers: int, store: str | None, mode: str, rows: int, iterations: int,
            server=None, pool: bool = True) -> dict:
    from sklearn_serverless import ServerlessKMeans, config_context

    rng = np.random.default_rng(n_workers)
    X = rng.normal(size=(n_workers * rows, 5))
    init = X[:4].copy()
    model = ServerlessKMeans(4, init=init, n_init=1, tol=0.0, max_iter=iterations,
                             n_workers=n_workers, state_mode=mode, state_store=store)
    server_cpu = _redis_cpu(server)
    started = time.perf_counter()
    with config_context(worker_pool=pool):
        model.fit(X)
    wall = time.perf_counter() - started
    server_cpu = _redis_cpu(server) - server_cpu
    t = model.timings_
    n = model.n_iter_
    tables = {p: np.asarray(t[p])[:n] for p in PHASES}
    round_time = sum(tables[p][:, 0] for p in PHASES)
    all_rounds = sum(np.asarray(t[p])[:, 0] for p in PHASES)
    # CPU per round (rounds after the first, which includes the set-up): one
    # follower's (median), the coordinator's, and everyone's over the cores.
    cpu = np.asarray(t["cpu"])[1:n] if "cpu" in t else np.full((1, n_workers), np.nan)
    return {"wall_s": wall, "n_iter": int(n),
            **{f"{p}_ms": float(1e3 * np.median(tables[p][:, 0])) for p in PHASES[1:]},
            "round_ms": float(1e3 * np.median(round_time)),
            "sync_ms": float(1e3 * np.median(round_time - tables["compute"].max(axis=1))),
            "load_s": float(np.max(t["load"])),
            "cpu_worker_ms": float(1e3 * np.median(cpu[:, 1:])),
            "cpu_coordinator_ms": float(1e3 * np.median(cpu[:, 0])),
            "cpu_floor_ms": float(1e3 * np.median(cpu.sum(axis=1)) / CORES),
            "server_cpu_s": server_cpu, "n_rounds": int(t["n_rounds"]),
            "outside_s": float(t["fit"] - (t["upload"] or 0) - all_rounds.sum()),
            # The first round's barrier waits for every worker's start: replaced
            # by a typical round, the rest of the fit is the map's start and end.
            "start_s": float(t["fit"] - (t["upload"] or 0) - all_rounds[1:].sum()
                             - np.median(all_rounds[1:]))}


def _slope(rows: list[dict], key: str) -> tuple[float, float]:
    w = np.array([r["n_workers"] for r in rows], dtype=float)
    slope, intercept = np.polyfit(w, [r[key] for r in rows], 1)
    return float(slope), float(intercept)


def project(rows: list[dict], sizes: list[int], rtt_ms: float, cold_s: float,
            invoke_rate: float, compute_ms: float) -> list[dict]:
    """Per-round and start costs on AWS Lambda with ElastiCache Redis, from
    the Redis rows measured here (the model is printed with the table).

    Lock-free round: the publish reaches the followers in one round trip,
    their partials reach the coordinator in one more (2 x rtt); one
    follower's CPU (``compute_ms`` of kernel on top of the runtime's CPU
    measured at the fewest workers, where nothing time-shares); then what
    is serial per worker: the coordinator's CPU (decoding and adding each
    partial, packing each inbox) and redis-server's (each push, arrival and
    slot read), their slopes over the workers measured here. A reduction
    tree would replace the coordinator's per-worker slope by ceil(log2 W)
    levels of one round trip each: shown as ``tree_ms``.

    Locked round: every partial takes the lock in turn, each hand-over a
    round trip plus the holder's CPU (a follower's, which grows with W: its
    release names every worker's grant list), so W x (rtt + follower CPU).

    Start: Lithops invokes from the driver's thread pool at ``invoke_rate``
    calls per second, and the last call's cold start ``cold_s`` follows."""
    out = []
    fits = {}
    for mode in ("lock_free", "locked"):
        arm = [r for r in rows if r["store"] == "redis" and r["mode"] == mode]
        if len(arm) < 2:
            continue
        low = min(arm, key=lambda r: r["n_workers"])
        fits[mode] = {"coordinator": _slope(arm, "cpu_coordinator_ms"),
                      "server": _slope(arm, "cpu_server_ms"),
                      "worker": _slope(arm, "cpu_worker_ms"),
                      "worker_low": low["cpu_worker_ms"]}
    for n in sizes:
        row = {"n_workers": n, "start_s": n / invoke_rate + cold_s}
        if "lock_free" in fits:
            f = fits["lock_free"]
            serial = max(0.0, f["coordinator"][0]) * n
            server = max(0.0, f["server"][0]) * n
            row["lock_free_ms"] = 2 * rtt_ms + compute_ms + f["worker_low"] + serial + server
            row["coordinator_ms"], row["server_ms"] = serial, server
            row["tree_ms"] = row["lock_free_ms"] - serial + math.ceil(math.log2(n)) * rtt_ms
        if "locked" in fits:
            f = fits["locked"]
            holder = max(f["worker_low"], f["worker"][0] * n + f["worker"][1])
            row["locked_ms"] = compute_ms + n * (rtt_ms + holder)
        out.append(row)
    return out, fits


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
    parser.add_argument("--no-start", action="store_true",
                        help="skip the one-off map's start (pool off) per size")
    parser.add_argument("--project", type=int, nargs="*", default=[],
                        help="project a fit of these many Lambda functions")
    parser.add_argument("--rtt-ms", type=float, default=0.4,
                        help="Redis round trip within an AWS availability zone")
    parser.add_argument("--cold-start-s", type=float, default=1.0,
                        help="a Python function's cold start with numpy and scipy")
    parser.add_argument("--invoke-rate", type=float, default=500.0,
                        help="calls per second Lithops' 64 invoker threads start")
    parser.add_argument("--compute-ms", type=float, default=0.0,
                        help="the kernel's time per round, added to the projection")
    parser.add_argument("--out", default=None, help="write the measurements to this JSON file")
    parser.add_argument("--plot", default=None, metavar="PNG",
                        help="draw the round and its CPU floor against the workers here")
    parser.add_argument("--from-json", default=None, metavar="JSON",
                        help="measure nothing: draw --plot from an earlier --out file")
    args = parser.parse_args(argv)
    if args.from_json:
        plot(json.loads(Path(args.from_json).read_text()), Path(args.plot))
        return 0
    rows, starts = [], []
    with redis_server() as url:
        import redis

        server = redis.Redis.from_url(url)
        stores = {"sqlite": None, "redis": url}
        for n_workers in args.workers:
            for store in args.stores:
                for mode in args.modes:
                    redis_server_ = server if store == "redis" else None
                    short = one_fit(n_workers, stores[store], mode, args.rows_per_worker, 2,
                                    redis_server_)  # a warm-up
                    fits = [one_fit(n_workers, stores[store], mode, args.rows_per_worker,
                                    args.iterations, redis_server_)
                            for _ in range(args.repeat)]
                    for f in fits:  # redis-server's CPU per round: the longer fit's extra
                        f["cpu_server_ms"] = 1e3 * (f["server_cpu_s"] - short["server_cpu_s"]) \
                            / max(1, f["n_rounds"] - short["n_rounds"])
                    row = {"n_workers": n_workers, "store": store, "mode": mode,
                           **{key: float(np.median([f[key] for f in fits]))
                              for key in fits[0]}, "fits": fits}
                    rows.append(row)
                    print(f"{n_workers:3d} workers {store:6s} {mode:9s}: round "
                          f"{row['round_ms']:6.2f} ms (publish {row['publish_ms']:.2f}, "
                          f"barrier {row['barrier_ms']:.2f}, aggregate "
                          f"{row['aggregate_ms']:.2f}), sync {row['sync_ms']:.2f} ms; CPU per "
                          f"round: worker {row['cpu_worker_ms']:.2f}, coordinator "
                          f"{row['cpu_coordinator_ms']:.2f}, server {row['cpu_server_ms']:.2f}, "
                          f"floor {row['cpu_floor_ms']:.2f} ms; fit {row['wall_s']:.2f} s",
                          flush=True)
            if not args.no_start:
                one_fit(n_workers, None, "lock_free", args.rows_per_worker, 2, pool=False)
                fits = [one_fit(n_workers, None, "lock_free", args.rows_per_worker, 2,
                                pool=False) for _ in range(args.repeat)]
                starts.append({"n_workers": n_workers,
                               "start_s": float(np.median([f["start_s"] for f in fits])),
                               "load_s": float(np.median([f["load_s"] for f in fits]))})
                print(f"{n_workers:3d} workers, a one-off map: start "
                      f"{starts[-1]['start_s']:.2f} s (load {starts[-1]['load_s']:.2f} s)",
                      flush=True)
    slopes = {}
    for store in args.stores:
        for mode in args.modes:
            arm = [r for r in rows if r["store"] == store and r["mode"] == mode]
            if len(arm) > 1:
                slopes[f"{store} {mode}"] = {key: _slope(arm, key) for key in (
                    "aggregate_ms", "round_ms", "cpu_coordinator_ms", "cpu_server_ms",
                    "cpu_worker_ms")}
                fit = slopes[f"{store} {mode}"]
                print(f"per worker, {store} {mode}: aggregate {fit['aggregate_ms'][0]:.4f} ms, "
                      f"round {fit['round_ms'][0]:.3f} ms, coordinator CPU "
                      f"{fit['cpu_coordinator_ms'][0]:.4f} ms, server CPU "
                      f"{fit['cpu_server_ms'][0]:.4f} ms, a worker's CPU "
                      f"{fit['cpu_worker_ms'][0]:.4f} ms")
    projection, model = [], {}
    if args.project:
        projection, model = project(rows, args.project, args.rtt_ms, args.cold_start_s,
                                    args.invoke_rate, args.compute_ms)
        print(f"\nAWS Lambda + ElastiCache Redis (rtt {args.rtt_ms} ms, cold start "
              f"{args.cold_start_s} s, {args.invoke_rate:.0f} invocations/s, kernel "
              f"{args.compute_ms} ms per round):")
        print("| functions | start | lock-free round | of which coordinator / server "
              "| with a reduction tree | locked round |")
        print("|---|---|---|---|---|---|")
        for p in projection:
            print(f"| {p['n_workers']} | {p['start_s']:.1f} s | "
                  f"{p.get('lock_free_ms', math.nan):.1f} ms | "
                  f"{p.get('coordinator_ms', math.nan):.1f} / {p.get('server_ms', math.nan):.1f}"
                  f" ms | {p.get('tree_ms', math.nan):.1f} ms | "
                  f"{p.get('locked_ms', math.nan):.0f} ms |")
    if args.out:
        Path(args.out).write_text(json.dumps(
            {"machine": machine(), "cores": CORES, "args": vars(args), "rows": rows,
             "starts": starts, "per_worker_fit": slopes, "projection": projection,
             "projection_model": model}, indent=2))
    if args.plot:
        plot({"rows": rows, "cores": CORES}, Path(args.plot))
    return 0


def plot(report: dict, path: Path) -> None:
    """Per store, the round (ms) against the workers in both modes, with
    the CPU floor (every worker's CPU in a round over the cores), log-log."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, store in zip(axes, ("sqlite", "redis"), strict=True):
        for mode, colour in (("lock_free", "tab:blue"), ("locked", "tab:orange")):
            arm = sorted((r for r in report["rows"] if r["store"] == store
                          and r["mode"] == mode), key=lambda r: r["n_workers"])
            if not arm:
                continue
            workers = [r["n_workers"] for r in arm]
            ax.plot(workers, [r["round_ms"] for r in arm], "o-", color=colour,
                    label=f"{mode}: round")
            ax.plot(workers, [r["cpu_floor_ms"] for r in arm], ":", color=colour,
                    label=f"{mode}: CPU floor on {report['cores']} cores")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("workers")
        ax.set_title(f"{store}: one round (tiny partitions)")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("ms per round")
    save(fig, path)


if __name__ == "__main__":
    sys.exit(main())
