"""The embedded state store: rounds through shared memory against SQLite.

Two measures that hold on a loaded machine (CPU time, not only wall time):

- ``ops``: one round's store operations (publish with a record, fetch,
  two contributions, barrier, aggregate) called back to back in one
  process, 2,000 rounds per store and repeat, stores interleaved: the CPU
  a round costs its parties, without any wait.
- ``two_processes``: the same rounds between two processes (a forked
  follower fetches and contributes; no compute): wall time per round, the
  floor of a round's synchronisation on this machine, and the
  coordinator's CPU.
- ``fits``: small fits (2,000 x 10, 2 workers, on the pool) through either
  store, interleaved: wall time, the driver's CPU and the coordinator's
  CPU over its rounds (``timings_['cpu']``). The SQLite arm is the store
  fits used before the shared-memory one; the driver chooses the store, so
  this script swaps the store description it builds.

    python benchmarks/embedded_store.py --repeat 7 --json docs/img/embedded-store.json
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from _common import machine, write_json
from sklearn.datasets import make_classification

from sklearn_serverless import ServerlessKMeans, ServerlessLogisticRegression
from sklearn_serverless._driver import _fit
from sklearn_serverless._state import StoreSpec, open_store
from sklearn_serverless._worker._rounds import _message

KINDS = ("shm", "sqlite")
PHASES = ("compute", "publish", "barrier", "aggregate")


def _ops(kind: str, folder: str, n_rounds: int) -> dict:
    """CPU seconds per round of each operation, one party after the other."""
    location = f"{folder}/{kind}-{uuid.uuid4().hex}" + (".db" if kind == "sqlite" else "")
    spec = StoreSpec(kind, location, uuid.uuid4().hex, 2, "lock_free", 10.0)
    driver = open_store(spec, create=True)
    coordinator, follower = open_store(spec), open_store(spec)
    partial = np.ones(90)
    message = _message(0, "step", [np.ones((8, 10))])
    record = bytes(700)
    spent = dict.fromkeys(("publish", "fetch", "contribute", "barrier", "aggregate"), 0.0)
    try:
        for round_ in range(n_rounds):
            t0 = time.process_time()
            coordinator.publish(round_, message, record if round_ else None)
            t1 = time.process_time()
            follower.fetch(round_, 1)
            t2 = time.process_time()
            follower.contribute(round_, 1, partial)
            coordinator.contribute(round_, 0, partial)
            t3 = time.process_time()
            coordinator.barrier(round_)
            t4 = time.process_time()
            coordinator.aggregate(round_)
            t5 = time.process_time()
            for name, seconds in zip(spent, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4),
                                     strict=True):
                spent[name] += seconds
    finally:
        driver.cleanup()
        for store in (driver, coordinator, follower):
            store.close()
    out = {name: seconds / n_rounds for name, seconds in spent.items()}
    out["round"] = sum(out.values())
    return out


def _two_processes(kind: str, folder: str, n_rounds: int) -> dict:
    """Wall and coordinator CPU seconds per round, the follower a forked process."""
    import os

    location = f"{folder}/{kind}-{uuid.uuid4().hex}" + (".db" if kind == "sqlite" else "")
    spec = StoreSpec(kind, location, uuid.uuid4().hex, 2, "lock_free", 10.0)
    driver = open_store(spec, create=True)
    partial, message = np.ones(11), bytes(200)
    child = os.fork()
    if child == 0:
        status = 1
        try:
            follower = open_store(spec)
            for round_ in range(n_rounds):
                follower.fetch(round_, 1)
                follower.contribute(round_, 1, partial)
            status = 0
        finally:
            os._exit(status)
    coordinator = open_store(spec)
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        for round_ in range(n_rounds):
            coordinator.publish(round_, message)
            coordinator.contribute(round_, 0, partial)
            coordinator.barrier(round_)
            coordinator.aggregate(round_)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        os.waitpid(child, 0)
        driver.cleanup()
        for store in (driver, coordinator):
            store.close()
    return {"wall": wall / n_rounds, "coordinator_cpu": cpu / n_rounds}


def _with_store(kind: str):
    def spec(_, location, *args, **kwargs):
        return StoreSpec(kind, location + (".db" if kind == "sqlite" else ""), *args, **kwargs)
    return spec


def _fits(repeat: int) -> dict:
    X, y = make_classification(2000, 10, random_state=0)
    estimators = {
        "logistic": lambda: ServerlessLogisticRegression(n_workers=2).fit(X, y),
        "kmeans": lambda: ServerlessKMeans(8, n_workers=2, random_state=0).fit(X),
    }
    real = _fit.StoreSpec
    rows: dict = {}
    try:
        for kind in KINDS:  # warm-up: the pool, the imports
            _fit.StoreSpec = _with_store(kind)
            for fit in estimators.values():
                fit()
        for _ in range(repeat):
            for kind in KINDS:
                _fit.StoreSpec = _with_store(kind)
                for name, fit in estimators.items():
                    cpu, started = time.process_time(), time.perf_counter()
                    model = fit()
                    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
                    timings = model.timings_
                    row = rows.setdefault(f"{kind} {name}", {
                        "wall": [], "driver_cpu": [], "coordinator_cpu": [], "rounds": [],
                        "n_rounds": int(timings["n_rounds"])})
                    row["wall"].append(wall)
                    row["driver_cpu"].append(cpu)
                    row["coordinator_cpu"].append(float(np.asarray(timings["cpu"])[:, 0].sum()))
                    row["rounds"].append(float(sum(np.asarray(timings[p])[:, 0].sum()
                                                   for p in PHASES)))
    finally:
        _fit.StoreSpec = real
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(dir="/dev/shm" if Path("/dev/shm").is_dir() else None)
    try:
        ops: dict = {kind: [] for kind in KINDS}
        pairs: dict = {kind: [] for kind in KINDS}
        for _ in range(args.repeat):
            for kind in KINDS:
                ops[kind].append(_ops(kind, folder, args.rounds))
                pairs[kind].append(_two_processes(kind, folder, args.rounds))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    results = {"machine": machine(), "rounds_per_repeat": args.rounds, "ops": {},
               "two_processes": {}, "fits": {}}
    for kind, runs in ops.items():
        results["ops"][kind] = {name: statistics.median(run[name] for run in runs)
                                for name in runs[0]}
        print(f"ops {kind:7s} " + "  ".join(f"{name} {seconds * 1e6:.1f} us" for name, seconds
                                             in results["ops"][kind].items()))
    for kind, runs in pairs.items():
        results["two_processes"][kind] = {
            name: {"median": statistics.median(run[name] for run in runs),
                   "min": min(run[name] for run in runs), "max": max(run[name] for run in runs)}
            for name in runs[0]}
        print(f"two processes {kind:7s} " + "  ".join(
            f"{name} {v['median'] * 1e6:.1f} us ({v['min'] * 1e6:.1f}-{v['max'] * 1e6:.1f})"
            for name, v in results["two_processes"][kind].items()))
    for name, row in _fits(args.repeat).items():
        summary = {key: {"median": statistics.median(values), "min": min(values),
                         "max": max(values), "values": values}
                   for key, values in row.items() if key != "n_rounds"}
        summary["n_rounds"] = row["n_rounds"]
        results["fits"][name] = summary
        print(f"{name:16s} " + "  ".join(
            f"{key} {v['median'] * 1e3:.2f} ms ({v['min'] * 1e3:.2f}-{v['max'] * 1e3:.2f})"
            for key, v in summary.items() if key != "n_rounds"))
    if args.json:
        write_json(Path(args.json), results)


if __name__ == "__main__":
    main()
