"""A cold function's start on the loopback cloud path: from the moment a
Lithops call enters the worker's entry to the worker's first round, by phase.

The loopback cloud path is tests/conftest.py's ``cloud`` fixture: Lithops'
localhost compute with moto's S3 server as its storage (the rows travel as
storage objects) and a Redis state store. A **cold** function runs the plain
interpreter as its Lithops runtime (``'runtime': sys.executable``): each
call is a process forked from Lithops' job runner, which has imported
Lithops and nothing of numpy, scipy or this package, as a new cloud
function's container has. A **warm** function, for comparison, is a fork of
this package's warm runtime (everything imported). Each fit is a new map
(no pool of workers).

The benchmark replaces, in this process only, the Lithops function of the
fit's map by an entry that takes the worker's task as bytes, so that
everything the task needs is imported inside the call, and times:

- ``imports``: numpy and the worker runtime (its loop, the Redis store);
- ``kernel_import``: k-means' kernel module (the compiled extension and the
  BLAS it calls) and its first call on a few rows: the kernel ready;
- ``task``: the task unpickled (the algorithm's remaining modules);
- ``store_connect``: the Redis connection, the worker's claim and lease;
- ``rows_read``: its rows read from the storage objects;
- ``first_round``: the worker built, its first round's message awaited and
  computed, its partial posted.

    python benchmarks/cold_function.py --repeat 5 --json docs/img/cold-function.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cloudpickle

PHASES = ("imports", "kernel_import", "task", "store_connect", "rows_read", "first_round")


def cold_entry(blob: bytes, storage=None) -> dict:
    """The Lithops function: the worker's entry (``run_worker``), its task
    unpickled here, each phase stamped (see module doc)."""
    import time

    stamps = {"entry": time.time()}
    import sys

    import numpy as np

    from sklearn_serverless._state import _redis  # noqa: F401 - the store the worker opens
    from sklearn_serverless._worker import _loop, _rounds

    stamps["imports"] = time.time()
    from sklearn_serverless._algorithms.kmeans import _kernels

    rows = _kernels.with_ones_column(np.ones((256, 4)))
    labels = np.full(256, -1, dtype=np.int32)
    if _kernels.compiled is not None:
        _kernels.compiled.lloyd(rows, np.ones(256), rows[:8, :-1], labels, 256)
    stamps["kernel_import"] = time.time()
    import cloudpickle

    task = cloudpickle.loads(blob)
    stamps["task"] = time.time()
    first: dict[str, tuple[float, float]] = {}

    def stamped(name, function):
        def call(*args, **kwargs):
            started = time.time()
            out = function(*args, **kwargs)
            first.setdefault(name, (started, time.time()))
            return out
        return call

    patched = [(_loop, "open_store"), (_loop, "read_partition"), (_loop, "_contribute"),
               (_rounds, "_contribute")]
    saved = [getattr(module, name) for module, name in patched]
    for module, name in patched:
        setattr(module, name, stamped(name, getattr(module, name)))
    try:
        out = _loop.run_worker(task, storage)
    finally:
        for (module, name), function in zip(patched, saved, strict=True):
            setattr(module, name, function)
    stamps["store_connect"] = first["read_partition"][0]
    stamps["rows_read"] = first["read_partition"][1]
    stamps["first_round"] = first["_contribute"][1]
    marks = [stamps["entry"]] + [stamps[phase] for phase in PHASES]
    out["cold"] = {
        "phases": dict(zip(PHASES, np.diff(marks).tolist(), strict=True)),
        "total": marks[-1] - marks[0],
        "worker": task.worker,
        "kernel": "compiled" if _kernels.compiled is not None else "numpy",
        "kernel_file": _kernels.__file__,
        "numba_imported": "numba" in sys.modules,
        "cython_imported": any(name.split(".")[0] in ("Cython", "pyximport")
                               for name in sys.modules),
    }
    return out


class _Capture:
    """The benchmark's hooks in this process: the map's function and task
    bytes, and the workers' results as the driver collects them."""

    def __init__(self):
        self.calls: list[dict] = []

    def install(self) -> None:
        import lithops

        from sklearn_serverless._driver import _fit
        from sklearn_serverless._worker._loop import run_worker

        base = lithops.FunctionExecutor

        class ColdExecutor(base):
            def map(self, map_function, map_iterdata, **kwargs):
                if map_function is run_worker:
                    map_function = cold_entry
                    map_iterdata = [(cloudpickle.dumps(task),) for (task,) in map_iterdata]
                return super().map(map_function, map_iterdata, **kwargs)

        lithops.FunctionExecutor = ColdExecutor
        collect = _fit._collect

        def capturing(*args, **kwargs):
            results = collect(*args, **kwargs)
            self.calls.extend(results)
            return results

        _fit._collect = capturing


def run(repeat: int, n_samples: int, n_features: int) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from conftest import MotoServer, _start_redis
    from sklearn.datasets import make_blobs

    from sklearn_serverless import ServerlessKMeans, config_context

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    capture = _Capture()
    capture.install()
    moto, redis = MotoServer(), _start_redis()
    try:
        moto.create_bucket("sks-cold")
        base = {"lithops": {"backend": "localhost", "storage": "minio"},
                "minio": moto.storage_config("sks-cold")}
        configs = {"cold": dict(base, localhost={"runtime": sys.executable}), "warm": base}
        X, _ = make_blobs(n_samples, n_features, centers=8, random_state=0)
        out = {arm: {"fits": [], "workers": []} for arm in configs}
        for config in configs.values():  # warm-up: Lithops' runtime metadata, the warm server
            with config_context(worker_pool=False):
                ServerlessKMeans(8, n_workers=2, random_state=0, max_iter=5, backend=config,
                                 state_store=redis.url).fit(X[:1000])
        for _ in range(repeat):
            for arm, config in configs.items():  # interleaved
                capture.calls.clear()
                started = time.perf_counter()
                with config_context(worker_pool=False):
                    ServerlessKMeans(8, n_workers=2, random_state=0, max_iter=5,
                                     backend=config, state_store=redis.url).fit(X)
                out[arm]["fits"].append(time.perf_counter() - started)
                out[arm]["workers"].extend(call["cold"] for call in capture.calls)
        return out
    finally:
        moto.stop()
        redis.stop()


def _summary(workers: list[dict]) -> dict:
    def stats(values):
        return {"median": statistics.median(values), "min": min(values), "max": max(values)}

    return {"phases": {phase: stats([w["phases"][phase] for w in workers]) for phase in PHASES},
            "total": stats([w["total"] for w in workers]),
            "kernels": sorted({w["kernel"] for w in workers}),
            "numba_imported": any(w["numba_imported"] for w in workers),
            "cython_imported": any(w["cython_imported"] for w in workers)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--n-samples", type=int, default=100_000)
    parser.add_argument("--n-features", type=int, default=10)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import machine, write_json

    runs = run(args.repeat, args.n_samples, args.n_features)
    results = {"args": vars(args), "machine": machine(), "runs": runs,
               "summary": {arm: _summary(r["workers"]) for arm, r in runs.items()}}
    for arm, summary in results["summary"].items():
        phases = ", ".join(f"{phase} {1e3 * s['median']:.1f} ms"
                           for phase, s in summary["phases"].items())
        print(f"{arm}: entry to first round {1e3 * summary['total']['median']:.0f} ms "
              f"({phases}); kernel {summary['kernels']}, numba imported "
              f"{summary['numba_imported']}; fit {statistics.median(runs[arm]['fits']):.2f} s",
              flush=True)
    if args.json:
        write_json(Path(args.json), results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
