"""Experiment 2: serverless against serverful, side by side in one run.

At W = ``--max-workers`` workers, the estimators against (a) the same
algorithm run by W ``multiprocessing`` processes sharing memory (the paper's
serverful baseline), (b) scikit-learn's estimator using every core and (c)
dask-ml on a LocalCluster (W processes, one thread each). K-means: every
implementation starts from the same centres and runs the same number of
iterations (tol=0). Logistic regression: binary (dask-ml's is binary-only),
L-BFGS; dask-ml's objective is not normalised like scikit-learn's, so its
iteration count differs.
"""

from __future__ import annotations

import contextlib
import warnings

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
    ratio,
    save,
    target,
)

NAME = "serverful"
TITLE = "Serverless against serverful"


@contextlib.contextmanager
def quiet_dask():
    """dask's advice about large graphs and deprecated keys is noise here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


@contextlib.contextmanager
def dask_client(n_workers: int):
    """A local Dask cluster of ``n_workers`` single-thread processes, always closed."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                           dashboard_address=None)
    try:
        with Client(cluster) as client:
            yield client
    finally:
        cluster.close()


def _n_iter(result) -> int | None:
    """Iterations run, from an estimator or a baseline's result dict."""
    if isinstance(result, dict):
        return int(result["n_iter"])
    n_iter = getattr(result, "n_iter_", None)
    return None if n_iter is None else int(np.ravel(n_iter)[0])


def _model(result) -> np.ndarray:
    """The fitted model as one vector: centres, or coefficients then intercepts."""
    if isinstance(result, dict):
        return np.ravel(result["model"])
    if hasattr(result, "cluster_centers_"):
        return np.ravel(result.cluster_centers_)
    return np.concatenate([np.ravel(result.coef_), np.ravel(result.intercept_)])


def _entries(cases: dict, repeat: int) -> dict:
    """Timings per implementation, and how far its model is from
    scikit-learn's (same algorithm: it should be ~1e-12; dask-ml's LR has
    another objective)."""
    measured = interleaved(cases, repeat)
    reference = _model(measured["sklearn"][1])
    return {name: {"times": stats["times"], "median": stats["median"],
                   "n_iter": _n_iter(result),
                   "max_abs_diff_vs_sklearn": float(np.abs(_model(result) - reference).max())}
            for name, (stats, result) in measured.items()}


def _dask_array(X: np.ndarray, n_workers: int):
    import dask.array as da

    chunk = -(-X.shape[0] // n_workers)
    return da.from_array(X, chunks=(chunk, X.shape[1])).persist()


def _serverful_kmeans(X, init, n_iter: int, n_workers: int) -> dict:
    result = baselines.serverful_kmeans(X, init, n_iter, n_workers)
    return {"n_iter": result["n_rounds"], "model": result["centres"]}


def _kmeans(cfg: Config, client) -> dict:
    from sklearn.cluster import KMeans

    W, n_iter = cfg.max_workers, cfg.kmeans_iter
    X = blobs(cfg.n_samples, cfg.n_features, cfg.n_clusters, cfg.seed)
    init = initial_centres(X, cfg.n_clusters, cfg.seed)
    sk = KMeans(cfg.n_clusters, init=init, n_init=1, max_iter=n_iter, tol=0.0)
    cases = {
        "serverless": lambda: fit_kmeans(X, init, n_iter, W),
        "multiprocessing": lambda: _serverful_kmeans(X, init, n_iter, W),
        "sklearn": lambda: sk.fit(X),
    }
    with quiet_dask():
        if client is not None:
            from dask_ml.cluster import KMeans as DaskKMeans

            dk = DaskKMeans(n_clusters=cfg.n_clusters, init=init, max_iter=n_iter, tol=0.0)
            Xd = _dask_array(X, W)
            cases["dask-ml"] = lambda: dk.fit(Xd)
        return _entries(cases, cfg.repeat)


def _logistic(cfg: Config, client) -> dict:
    from sklearn.linear_model import LogisticRegression

    W = cfg.max_workers
    X, y = classification(cfg.n_samples, cfg.n_features, 2, cfg.seed)
    sk = LogisticRegression(max_iter=cfg.lr_iter)
    cases = {
        "serverless": lambda: fit_logistic(X, y, W, solver="lbfgs", max_iter=cfg.lr_iter),
        "multiprocessing": lambda: baselines.serverful_logistic(X, y, W, max_iter=cfg.lr_iter),
        "sklearn": lambda: sk.fit(X, y),
    }
    with quiet_dask():
        if client is not None:
            from dask_ml.linear_model import LogisticRegression as DaskLR

            dl = DaskLR(solver="lbfgs", max_iter=cfg.lr_iter)
            Xd, yd = _dask_array(X, W), _dask_array(y[:, None], W)[:, 0]
            cases["dask-ml"] = lambda: dl.fit(Xd, yd)
        return _entries(cases, cfg.repeat)


def run(cfg: Config) -> dict:
    skipped, results = [], {}
    with contextlib.ExitStack() as stack:
        client = None
        try:
            client = stack.enter_context(dask_client(cfg.max_workers))
        except Exception as exc:  # noqa: BLE001 - dask is an optional comparison
            skipped.append(f"dask-ml: {type(exc).__name__}: {exc}")
        results["kmeans"] = _kmeans(cfg, client)
        reason = logistic_unavailable()
        if reason:
            skipped.append(reason)
        else:
            results["logistic"] = _logistic(cfg, client)
    ratios = {
        f"{name}_serverless_over_{other}": ratio(r["serverless"]["median"], r[other]["median"])
        for name, r in results.items() for other in ("sklearn", "multiprocessing", "dask-ml")
        if other in r
    }
    targets = [
        target(f"{name} fit wall time / sklearn (all cores), {cfg.n_samples:,} x "
               f"{cfg.n_features}", ratios.get(f"{name}_serverless_over_sklearn"), 1.5, "lower")
        for name in results
    ]
    return {
        "params": {"n_workers": cfg.max_workers, "n_samples": cfg.n_samples,
                   "n_features": cfg.n_features, "n_clusters": cfg.n_clusters,
                   "kmeans_iter": cfg.kmeans_iter, "lr_iter": cfg.lr_iter,
                   "repeat": cfg.repeat},
        "results": results, "ratios": ratios, "targets": targets, "skipped": skipped,
    }


def plot(payload: dict, path) -> None:
    plt = pyplot()
    results = payload["results"]
    fig, axes = plt.subplots(1, max(1, len(results)), figsize=(11, 4), squeeze=False)
    for ax, (name, result) in zip(axes[0], results.items(), strict=False):
        labels = [f"{impl} ({r['n_iter']} it)" if r["n_iter"] is not None else impl
                  for impl, r in result.items()]
        bars(ax, labels, [r["median"] for r in result.values()], f"{name}: fit wall time",
             "seconds")
    p = payload["params"]
    fig.suptitle(f"{TITLE}: {p['n_samples']:,} x {p['n_features']}, {p['n_workers']} workers",
                 fontsize=10)
    save(fig, path)
