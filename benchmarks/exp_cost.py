"""Experiment 6: what a fit would cost on AWS Lambda.

Prices the fits of the speedup experiment (same run, same configuration):
the billed time of a worker is its busy span (load plus every round), so
``GB-s = sum over workers of busy seconds * memory / 1024`` and
``price = GB-s * price_per_gb_s + n_workers * price_per_request``. Defaults:
AWS Lambda x86, $0.0000166667 per GB-s and $0.20 per million requests
(https://aws.amazon.com/lambda/pricing/); ``--lambda-memory-mb`` defaults to
1769 MB, the size that buys one full vCPU. Locally measured busy time is
only an estimate of Lambda's: loading reads a local file, not object storage.
"""

from __future__ import annotations

import exp_speedup
from _common import Config, bars, pyplot, save

NAME = "cost"
TITLE = "Estimated AWS Lambda cost per fit"


def price(worker_seconds: float, n_workers: int, cfg: Config) -> dict:
    gb_seconds = worker_seconds * cfg.lambda_memory_mb / 1024
    usd = gb_seconds * cfg.price_per_gb_s + n_workers * cfg.price_per_request
    return {"gb_seconds": gb_seconds, "usd_per_fit": usd, "usd_per_1000_fits": 1000 * usd}


def run(cfg: Config) -> dict:
    measured = exp_speedup.measure(cfg)
    results, skipped = {}, []
    for name, result in measured.items():
        if "skipped" in result:
            skipped.append(result["skipped"])
            continue
        rows = []
        for r in result["serverless"]:
            rows.append({"n_workers": r["n_workers"], "wall_seconds": r["median"],
                         "worker_seconds": r["worker_seconds"],
                         **price(r["worker_seconds"], r["n_workers"], cfg)})
        # One function running the sequential algorithm, for reference.
        sequential = result["sequential"]["median"]
        rows.append({"n_workers": "sequential (1 function)", "wall_seconds": sequential,
                     "worker_seconds": sequential, **price(sequential, 1, cfg)})
        results[name] = rows
    return {
        "params": {"lambda_memory_mb": cfg.lambda_memory_mb,
                   "price_per_gb_s": cfg.price_per_gb_s,
                   "price_per_request": cfg.price_per_request,
                   "price_source": "https://aws.amazon.com/lambda/pricing/ (x86, us-east-1)",
                   "n_samples": cfg.n_samples, "n_features": cfg.n_features,
                   "n_clusters": cfg.n_clusters},
        "results": results,
        "skipped": skipped,
    }


def plot(payload: dict, path) -> None:
    plt = pyplot()
    results = payload["results"]
    fig, axes = plt.subplots(1, max(1, len(results)), figsize=(11, 4), squeeze=False)
    for ax, (name, rows) in zip(axes[0], results.items(), strict=False):
        labels = [f"{r['n_workers']}w, {r['wall_seconds']:.2f}s wall"
                  if isinstance(r["n_workers"], int) else f"seq, {r['wall_seconds']:.2f}s wall"
                  for r in rows]
        bars(ax, labels, [r["usd_per_1000_fits"] for r in rows],
             f"{name}: USD per 1000 fits", "USD")
    p = payload["params"]
    fig.suptitle(f"{TITLE} ({p['lambda_memory_mb']} MB, ${p['price_per_gb_s']}/GB-s)",
                 fontsize=10)
    save(fig, path)
