"""Experiment 1 (and 5): speedup over sequential.

The same algorithm in one process and one thread (a numpy Lloyd loop; scipy
L-BFGS-B on the full data) against the estimators with n_workers = 1, 2, 4,
... up to ``--max-workers`` (default: the machine's cores). Sizes come from
``--n-samples``, ``--n-features``, ``--n-clusters`` so the same experiment
scales to a bigger machine, e.g. on 16 cores::

    python benchmarks/run.py --full --only speedup,cost --max-workers 16 \\
        --n-samples 8000000 --n-features 50 --n-clusters 50
"""

from __future__ import annotations

import json

import baselines
import numpy as np
from _common import (
    Config,
    bars,
    blobs,
    classification,
    fit_kmeans,
    fit_logistic,
    initial_centres,
    interleaved,
    logistic_unavailable,
    pyplot,
    round_breakdown,
    save,
    worker_counts,
    worker_seconds,
)

NAME = "speedup"
TITLE = "Speedup over a sequential implementation (one process, one thread)"

_CACHE: dict[str, dict] = {}


def measure(cfg: Config) -> dict:
    """The measurements, computed once per configuration (the cost
    experiment prices the same fits)."""
    key = json.dumps(cfg.as_dict(), sort_keys=True)
    if key not in _CACHE:
        results = {"kmeans": _kmeans(cfg)}
        reason = logistic_unavailable()
        results["logistic"] = {"skipped": reason} if reason else _logistic(cfg)
        _CACHE[key] = results
    return _CACHE[key]


def _measure(sequential, fit, n_iter_of, cfg: Config) -> dict:
    """The sequential run and the estimator at each worker count, timed
    round-robin (side by side in the same run)."""
    cases = {"sequential": sequential}
    for n_workers in worker_counts(cfg.max_workers):
        cases[n_workers] = lambda w=n_workers: fit(w)
    measured = interleaved(cases, cfg.repeat)
    seq_stats, seq_result = measured.pop("sequential")
    seq = {**seq_stats, "n_iter": n_iter_of(seq_result)}
    seq["per_iteration"] = seq["median"] / seq["n_iter"]
    runs = []
    for n_workers, (stats, est) in measured.items():
        breakdown = round_breakdown(est.timings_)  # of the last fit
        runs.append({
            "n_workers": n_workers, "times": stats["times"], "median": stats["median"],
            "breakdown": breakdown, "worker_seconds": worker_seconds(est.timings_),
            "n_iter": int(np.ravel(est.n_iter_)[0]),
            "speedup": seq["median"] / stats["median"],
            # Per iteration: the sequential time per iteration over the coordinator's
            # median round, free of start-up costs.
            "per_iteration_speedup": seq["per_iteration"] / breakdown["round"],
        })
    return {"sequential": seq, "serverless": runs}


def _kmeans(cfg: Config) -> dict:
    X = blobs(cfg.n_samples, cfg.n_features, cfg.n_clusters, cfg.seed)
    init = initial_centres(X, cfg.n_clusters, cfg.seed)
    return _measure(lambda: baselines.sequential_kmeans(X, init, cfg.kmeans_iter),
                    lambda w: fit_kmeans(X, init, cfg.kmeans_iter, w),
                    lambda _: cfg.kmeans_iter, cfg)


def _logistic(cfg: Config) -> dict:
    X, y = classification(cfg.n_samples, cfg.n_features, 2, cfg.seed)
    return _measure(lambda: baselines.sequential_logistic(X, y, max_iter=cfg.lr_iter),
                    lambda w: fit_logistic(X, y, w, solver="lbfgs", max_iter=cfg.lr_iter),
                    lambda result: int(result.nit), cfg)


def run(cfg: Config) -> dict:
    results = measure(cfg)
    summary = {}
    for name, result in results.items():
        if "skipped" in result:
            continue
        best = max(result["serverless"], key=lambda r: r["speedup"])
        summary[name] = {"best_speedup": best["speedup"], "at_n_workers": best["n_workers"],
                         "best_per_iteration_speedup": max(
                             r["per_iteration_speedup"] for r in result["serverless"])}
    return {
        "params": {"n_samples": cfg.n_samples, "n_features": cfg.n_features,
                   "n_clusters": cfg.n_clusters, "kmeans_iter": cfg.kmeans_iter,
                   "lr_iter": cfg.lr_iter, "max_workers": cfg.max_workers,
                   "repeat": cfg.repeat},
        "results": results,
        "summary": summary,
        "skipped": [r["skipped"] for r in results.values() if "skipped" in r],
    }


def plot(payload: dict, path) -> None:
    plt = pyplot()
    results = payload["results"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (name, result) in zip(axes, results.items(), strict=False):
        if "skipped" in result:
            ax.set_title(f"{name}: skipped")
            continue
        runs = result["serverless"]
        labels = ["sequential"] + [f"W={r['n_workers']}" for r in runs]
        values = [result["sequential"]["median"]] + [r["median"] for r in runs]
        bars(ax, labels, values, f"{name}: fit wall time (median)",
             "seconds")
        text = "\n".join(f"{r['n_workers']}w: fit {r['speedup']:.2f}x, per iteration "
                         f"{r['per_iteration_speedup']:.2f}x" for r in runs)
        ax.text(0.02, 0.95, f"speedup over sequential\n{text}", transform=ax.transAxes,
                fontsize=8, va="top")
    p = payload["params"]
    fig.suptitle(f"{TITLE}\n{p['n_samples']:,} x {p['n_features']}, k={p['n_clusters']}",
                 fontsize=10)
    save(fig, path)
