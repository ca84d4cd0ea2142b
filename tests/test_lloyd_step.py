"""One worker's Lloyd round, in process: the cluster sums it reports are the
sums of its rows by label, whether a chunk's sums were updated with its
changed rows only or summed in full. The numpy kernel's (the compiled one
sums in full every round: tests/test_kmeans_kernel.py)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import make_blobs

from sklearn_serverless._algorithms.kmeans import _kernels
from sklearn_serverless._algorithms.kmeans._kernels import block_size, with_ones_column
from sklearn_serverless._algorithms.kmeans._params import KMeansParams
from sklearn_serverless._algorithms.kmeans._worker import Worker, chunk_rows
from sklearn_serverless._worker._sharing import Team

K = 4


@pytest.fixture(autouse=True)
def numpy_kernel(monkeypatch):
    monkeypatch.setattr(_kernels, "compiled", None)


def _worker(X, sample_weight):
    rows = X if sp.issparse(X) else with_ones_column(X)
    return Worker({"X": rows, "sample_weight": sample_weight},
                  KMeansParams(K, max_iter=1, tol=0.0, verbose=0, n_features=X.shape[1],
                               dtype=X.dtype.str), Team(0, 1))


def _round(worker, centers, new_run):
    # One Lloyd step of run 0: [run, final, new_run]; no inertia.
    table = worker.handle("lloyd", [centers[None], np.array([[0, 0, new_run]]), np.array([0])])
    return table[0, 2:]  # the own row: k x (d+1) sums and weights, changed, inertia


def _expected(X, sample_weight, centers):
    distances = ((X[:, None, :] - centers[None]) ** 2).sum(axis=2)
    labels = distances.argmin(axis=1)
    sums = np.zeros((K, X.shape[1] + 1))
    np.add.at(sums[:, :-1], labels, X * sample_weight[:, None])
    np.add.at(sums[:, -1], labels, sample_weight)
    return labels, sums


@pytest.mark.parametrize("dtype", [np.float64, np.float32, "sparse"])
def test_updated_and_full_sums_are_the_rows_sums_by_label(dtype):
    X, _ = make_blobs(40_000, 3, centers=K, cluster_std=4.0, random_state=0)
    if dtype == "sparse":
        dtype = np.float64
        X[np.abs(X) < 1] = 0
        rows = sp.csr_matrix(X)
    else:
        X = X.astype(dtype)
        rows = X
    sample_weight = np.random.RandomState(0).uniform(0.5, 2.0, X.shape[0]).astype(dtype)
    worker = _worker(rows, sample_weight)
    assert worker.chunk_sums.shape[:2] == (1, 5)  # one run, 8192-row chunks

    centers = X[[0, 1, 2, 3]].astype(np.float64)
    labels = None
    updated_rounds = 0
    for i in range(12):
        if i == 8:
            centers = centers[::-1].copy()  # every label changes: every chunk in full
        own = _round(worker, centers.astype(dtype), new_run=i == 0)
        sums = own[:-2].reshape(K, -1)
        new_labels, expected = _expected(X.astype(np.float64), sample_weight, centers)
        rtol = 1e-12 if dtype == np.float64 else 1e-5
        np.testing.assert_allclose(sums, expected, rtol=rtol, atol=rtol * np.abs(expected).max())
        changed = X.shape[0] if labels is None else int((new_labels != labels).sum())
        assert own[-2] == changed
        touched = worker.chunk_sums[0, :, -1]
        if i == 0 or i == 8:
            assert not touched.any(), "a new run or a mass change is summed in full"
        else:
            updated_rounds += bool(touched.any())
        assert (touched <= 0.5 * worker.chunk_rows).all()
        labels = new_labels
        centers = sums[:, :-1] / sums[:, -1:]
    assert updated_rounds >= 5, "the sums were never updated from the changed rows"


def test_a_chunk_is_summed_in_full_once_its_changes_exceed_the_budget():
    X = np.random.RandomState(1).uniform(0, 1, (20_000, 2))
    sample_weight = np.ones(X.shape[0])
    worker = _worker(X, sample_weight)
    a = np.c_[[0.125, 0.375, 0.625, 0.875], np.full(K, 0.5)]
    b = a + [0.1, 0.0]  # moves the three boundaries by 0.1: 30% of the rows change
    _round(worker, a, new_run=True)
    history = []
    for centers in (b, a, b):
        own = _round(worker, centers, new_run=False)
        history.append(worker.chunk_sums[0, :, -1].copy())
        _, expected = _expected(X, sample_weight, centers)
        np.testing.assert_allclose(own[:-2].reshape(K, -1), expected, rtol=1e-12,
                                   atol=1e-12 * np.abs(expected).max())
    sizes = np.diff(np.r_[0:X.shape[0]:worker.chunk_rows, X.shape[0]])
    # 30% of each chunk: updated; 30% more would make 60%: summed in full, then updated.
    assert np.all((history[0] > 0.25 * sizes) & (history[0] < 0.35 * sizes))
    assert not history[1].any()
    np.testing.assert_array_equal(history[2], history[0])


@pytest.mark.parametrize("n_clusters, rows, expected", [
    (20, 500_000, 6553),  # 64 chunks per worker, one GEMM block each
    (20, 5_000_000, 6553 * 11),
    (1000, 100_000, 256 * 16),  # at least 4k rows: 64 chunks would be 1,562 rows
    (1000, 5_000, 256 * 16),
])
def test_chunks_are_whole_blocks_of_at_least_4k_rows(n_clusters, rows, expected):
    block = block_size(n_clusters)
    assert chunk_rows(block, rows, n_clusters) == expected


def test_no_kept_sums_where_they_would_outweigh_the_rows():
    # 2,000 sparse rows of 1,000 columns, 1 entry each: k x 1,001 sums per chunk
    # would outweigh the rows (24 KB).
    rng = np.random.RandomState(0)
    X = sp.csr_matrix((np.ones(2000), rng.randint(0, 1000, 2000), np.arange(2001)),
                      shape=(2000, 1000))
    worker = _worker(X, np.ones(2000))
    assert worker.chunk_sums is None
    centers = X[:K].toarray()
    own = _round(worker, centers, new_run=True)
    np.testing.assert_allclose(own[:-2].reshape(K, -1),
                               _expected(X.toarray(), np.ones(2000), centers)[1], rtol=1e-12)
