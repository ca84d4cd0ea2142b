"""The demo job: each serverless estimator beside its scikit-learn twin on
the same generated data, in both state modes."""

from __future__ import annotations

import time

import numpy as np
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs, make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import StandardScaler

from . import ServerlessKMeans, ServerlessLogisticRegression

MODES = ("lock_free", "locked")


def _timed_fit(estimator, *args):
    started = time.perf_counter()
    estimator.fit(*args)
    return estimator, time.perf_counter() - started


def _row(name: str, seconds: float, **quality) -> str:
    cells = "  ".join(f"{key} {value}" for key, value in quality.items())
    return f"  {name:<40} fit {seconds:7.2f} s  {cells}"


def demo_kmeans(n_samples: int, n_features: int, n_workers: int, state_store) -> None:
    n_clusters = 10
    X, _ = make_blobs(n_samples, n_features, centers=n_clusters, cluster_std=4.0,
                      random_state=0)
    init = X[np.random.RandomState(0).choice(n_samples, n_clusters, replace=False)]
    print(f"k-means: {n_samples} x {n_features}, k={n_clusters}, same initial centres")
    reference, seconds = _timed_fit(KMeans(n_clusters, init=init, n_init=1), X)
    print(_row("sklearn KMeans", seconds, inertia=f"{reference.inertia_:.6e}",
               n_iter=reference.n_iter_))
    for i, mode in enumerate(MODES):
        model, seconds = _timed_fit(ServerlessKMeans(
            n_clusters, init=init, n_init=1, n_workers=n_workers, state_mode=mode,
            state_store=state_store), X)
        agreement = adjusted_rand_score(reference.labels_, model.labels_)
        name = f"ServerlessKMeans {mode}" + (" (*)" if i == 0 else "")
        print(_row(name, seconds, inertia=f"{model.inertia_:.6e}",
                   n_iter=model.n_iter_, ARI_vs_sklearn=f"{agreement:.4f}"))


def demo_logistic(n_samples: int, n_features: int, n_workers: int, state_store) -> None:
    X, y = make_classification(n_samples, n_features, n_informative=n_features // 2,
                               n_classes=3, random_state=0)
    X = StandardScaler().fit_transform(X)
    print(f"logistic regression: {n_samples} x {n_features}, 3 classes, lbfgs")
    reference, seconds = _timed_fit(LogisticRegression(), X, y)
    print(_row("sklearn LogisticRegression", seconds,
               accuracy=f"{reference.score(X, y):.4f}", n_iter=int(reference.n_iter_[0])))
    for mode in MODES:
        model, seconds = _timed_fit(ServerlessLogisticRegression(
            n_workers=n_workers, state_mode=mode, state_store=state_store), X, y)
        gap = np.abs(model.coef_ - reference.coef_).max()
        print(_row(f"ServerlessLogisticRegression {mode}", seconds,
                   accuracy=f"{model.score(X, y):.4f}", n_iter=int(model.n_iter_[0]),
                   max_coef_diff=f"{gap:.1e}"))


def run_demo(n_samples: int = 200_000, n_features: int = 20, n_workers: int = 2,
             state_store: str | None = None) -> None:
    store = state_store or "shared memory"
    print(f"sklearn-serverless demo: Lithops localhost, {n_workers} workers, state: {store}\n")
    demo_kmeans(n_samples, n_features, n_workers, state_store)
    print()
    demo_logistic(n_samples, n_features, n_workers, state_store)
    print("\n(*) The first fit in a process also pays the start of the warm runtime (a\n"
          "    server of this process with numpy, scipy and the workers imported, once);\n"
          "    every later fit forks it. The other rows are steady-state times.")
