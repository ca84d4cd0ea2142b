"""Dollars per model: the benchmark fits priced as AWS Lambda beside the same
model fitted by scikit-learn on one VM of as many vCPUs, and the time each
takes.

- Serverless: each estimator at ``--workers`` workers, one Lithops map per
  fit (``worker_pool=False``, Lambda's default here), priced by the fit's own
  account (``timings_['cost']``) as ``aws_lambda`` at 1,769 MB per function
  (one vCPU each): billed seconds of every call (its start included) x
  memory, the invocations, and the storage requests and Redis commands it
  made (none here: localhost files and the embedded store).
- VM: scikit-learn's fit of the same model on this machine (``--workers``
  cores) priced at an on-demand VM of as many vCPUs (``--vm-usd-per-hour``,
  default AWS c7i.large, 2 vCPUs, us-east-1), two ways: kept busy with fits
  back to back (seconds x price), and started for the one fit (billed per
  second, 60 s at least).

Arms interleaved, medians of ``--repeat``. The serverless seconds are
measured on this machine: a real Lambda adds its start and network, and
runs each function on a vCPU of its own.

    python benchmarks/cost.py --repeat 3 --json docs/img/cost-per-model.json
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
from _common import blobs, initial_centres, interleaved, machine, pyplot, save, write_json
from sklearn.cluster import KMeans
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from sklearn_serverless import ServerlessKMeans, ServerlessLogisticRegression, config_context
from sklearn_serverless._common._prices import PRICES, PRICES_DATE

#: AWS EC2 c7i.large on demand, Linux, us-east-1 (2 vCPUs, 4 GiB):
#: https://aws.amazon.com/ec2/pricing/on-demand/
VM_USD_PER_HOUR = 0.08925
VM_MIN_SECONDS = 60  # EC2 Linux per-second billing, one minute at least
LAMBDA_MEMORY_MB = 1769  # one full vCPU per function

SIZES = {"small": (2_000, 10), "medium": (100_000, 20), "large": (300_000, 50)}


def _cases(n: int, d: int, workers: int) -> dict:
    X, y = make_classification(n, d, random_state=0)
    Xb = blobs(n, d, 16)
    init = initial_centres(Xb, 16)
    kmeans = dict(init=init, n_init=1, max_iter=30, tol=0.0)
    return {
        "logistic serverless": lambda: ServerlessLogisticRegression(n_workers=workers).fit(X, y),
        "logistic vm": lambda: LogisticRegression().fit(X, y),
        "kmeans serverless": lambda: ServerlessKMeans(16, n_workers=workers, **kmeans).fit(Xb),
        "kmeans vm": lambda: KMeans(16, **kmeans).fit(Xb),
    }


def run(repeat: int, workers: int, vm_usd_per_hour: float) -> dict:
    rows = []
    prices = {"aws_lambda": {"memory_mb": LAMBDA_MEMORY_MB}}
    with config_context(worker_pool=False, price_as="aws_lambda", prices=prices), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for size, (n, d) in SIZES.items():
            cases = _cases(n, d, workers)
            for fn in cases.values():
                fn()  # warm-up: imports, the warm runtime
            timed = interleaved(cases, repeat)
            for model in ("logistic", "kmeans"):
                (ours, fitted), (vm, _) = timed[f"{model} serverless"], timed[f"{model} vm"]
                cost = fitted.timings_["cost"]
                per_second = vm_usd_per_hour / 3600
                rows.append({
                    "size": size, "n_samples": n, "n_features": d, "model": model,
                    "serverless_seconds": ours["median"], "serverless_times": ours["times"],
                    "serverless_usd": cost["usd"],
                    "serverless_gb_seconds": float(np.sum(cost["gb_seconds"])),
                    "serverless_init_seconds": cost["init_seconds"],
                    "serverless_billed_seconds": float(np.sum(cost["seconds"])),
                    "invocations": cost["requests"],
                    "vm_seconds": vm["median"], "vm_times": vm["times"],
                    "vm_busy_usd": vm["median"] * per_second,
                    "vm_one_fit_usd": max(VM_MIN_SECONDS, vm["median"]) * per_second,
                })
    return {
        "params": {"repeat": repeat, "workers": workers, "lambda_memory_mb": LAMBDA_MEMORY_MB,
                   "lambda": PRICES["aws_lambda"], "prices_date": PRICES_DATE,
                   "vm": "AWS EC2 c7i.large on demand, us-east-1, 2 vCPUs",
                   "vm_usd_per_hour": vm_usd_per_hour, "vm_min_seconds": VM_MIN_SECONDS,
                   "kmeans": "k=16, 30 Lloyd iterations from given centres",
                   "logistic": "binary, lbfgs, defaults"},
        "machine": machine(),
        "rows": rows,
    }


def plot(payload: dict, path: Path) -> None:
    plt = pyplot()
    rows = payload["rows"]
    labels = [f"{r['model']}\n{r['size']}" for r in rows]
    x = np.arange(len(rows))
    fig, (usd, seconds) = plt.subplots(1, 2, figsize=(12, 4.2))
    width = 0.27
    for i, (key, name) in enumerate([("serverless_usd", "serverless (as Lambda)"),
                                     ("vm_busy_usd", "VM kept busy"),
                                     ("vm_one_fit_usd", "VM started for the fit")]):
        usd.bar(x + (i - 1) * width, [1000 * r[key] for r in rows], width, label=name)
    usd.set_yscale("log")
    usd.set_ylabel("USD per 1000 models")
    usd.set_xticks(x, labels, fontsize=8)
    usd.legend(fontsize=8)
    usd.set_title("Dollars per model", fontsize=10)
    for i, (key, name) in enumerate([("serverless_seconds", "serverless"),
                                     ("vm_seconds", "scikit-learn on the VM")]):
        seconds.bar(x + (i - 0.5) * 0.4, [r[key] for r in rows], 0.4, label=name)
    seconds.set_yscale("log")
    seconds.set_ylabel("seconds per fit (median)")
    seconds.set_xticks(x, labels, fontsize=8)
    seconds.legend(fontsize=8)
    seconds.set_title(f"Time per fit ({payload['params']['workers']} workers / vCPUs)",
                      fontsize=10)
    save(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--vm-usd-per-hour", type=float, default=VM_USD_PER_HOUR)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/cost-per-model.json"))
    args = parser.parse_args()
    payload = run(args.repeat, args.workers, args.vm_usd_per_hour)
    write_json(args.json, payload)
    plot(payload, args.json.with_suffix(".png"))
    for r in payload["rows"]:
        print(f"{r['model']:8s} {r['size']:6s} serverless {r['serverless_seconds']:.3f} s "
              f"${1000 * r['serverless_usd']:.4f}/1000 | vm {r['vm_seconds']:.3f} s "
              f"busy ${1000 * r['vm_busy_usd']:.4f}/1000, "
              f"one fit ${1000 * r['vm_one_fit_usd']:.4f}/1000")


if __name__ == "__main__":
    main()
