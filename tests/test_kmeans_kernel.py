"""The compiled Lloyd kernel (the extension built with the package) against
the numpy kernel it replaces where the extension is missing, and
against scikit-learn: the same labels, centres to 1e-9 and the same n_iter_
from the same initial centres, in float64 and float32, with sample weights
and empty clusters, on dense rows and on CSR rows (scikit-learn's sparse
Lloyd, which does not centre the data).

The fits here run workers in this process (:class:`_InProcessRounds`), so
that taking the compiled kernel away (``_kernels.compiled = None``) reaches
them; ``test_fit_through_workers_*`` runs a real fit with worker processes.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs

from sklearn_serverless import ServerlessKMeans
from sklearn_serverless._algorithms.kmeans import _apply, _dataset, _kernels
from sklearn_serverless._algorithms.kmeans._coordinator import coordinate
from sklearn_serverless._algorithms.kmeans._kernels import with_ones_column
from sklearn_serverless._algorithms.kmeans._params import KMeansParams
from sklearn_serverless._algorithms.kmeans._worker import Worker
from sklearn_serverless._worker._sharing import Team, fold_partials

compiled = _kernels.compiled
needs_compiled = pytest.mark.skipif(compiled is None,
                                    reason="the compiled extension is not built")
KERNELS = [pytest.param("compiled", marks=needs_compiled), "numpy"]


@pytest.fixture
def kernel(request, monkeypatch):
    """``'compiled'`` or ``'numpy'``: the numpy fallback is forced in this
    process by taking the compiled module away, as an install without a C
    compiler."""
    if request.param == "numpy":
        monkeypatch.setattr(_kernels, "compiled", None)
    return request.param


class _InProcessRounds:
    """The coordinator's side of :class:`~sklearn_serverless.distributed.Rounds`
    with every worker in this process, partial results folded as the runtime
    folds them (:func:`fold_partials`)."""

    def __init__(self, workers):
        self.workers = workers

    def allreduce(self, command, *arrays):
        return fold_partials([w.handle(command, list(arrays)) for w in self.workers])

    def gather(self, command, *arrays):
        return [w.handle(command, list(arrays)) for w in self.workers]

    def log(self, line):
        pass

    def finish(self, *arrays):
        self.final = arrays  # what every worker's result() gets when the run ends


def _fit(X, sample_weight, init, n_workers=2, max_iter=300, tol=0.0):
    """Lloyd's k-means with ``n_workers`` in-process workers, as the
    estimator runs it on data in memory (centred on the mean, with sklearn's
    relative tol). Returns centres, labels, inertia and n_iter_."""
    sparse = sp.issparse(X)
    mean = np.zeros(X.shape[1]) if sparse else X.mean(axis=0)
    centred = X if sparse else X - mean
    params = KMeansParams(init.shape[0], max_iter=max_iter, tol=tol, verbose=0,
                          n_features=X.shape[1], dtype=X.dtype.str,
                          mean_variance=np.mean(_variances(X)),
                          inits=((init - mean).astype(X.dtype),))
    bounds = np.linspace(0, X.shape[0], n_workers + 1).astype(int)
    workers = []
    for rank in range(n_workers):
        rows = centred[bounds[rank]:bounds[rank + 1]]
        workers.append(Worker({"X": rows if sparse else with_ones_column(rows),
                               "sample_weight": sample_weight[bounds[rank]:bounds[rank + 1]]},
                              params, Team(rank, n_workers)))
    rounds = _InProcessRounds(workers)
    best = coordinate(rounds, params)
    labels = np.concatenate([w.result(*rounds.final)["labels"] for w in workers])
    return best["centers"] + mean, labels, best["inertia"], best["n_iter"]


def _variances(X):
    if sp.issparse(X):
        mean = np.asarray(X.mean(axis=0)).ravel()
        return np.asarray(X.multiply(X).mean(axis=0)).ravel() - mean ** 2
    return X.var(axis=0)


def _data(dtype=np.float64, n=5000, d=6, k=5, seed=0):
    X, _ = make_blobs(n, d, centers=k, cluster_std=3.0, random_state=seed)
    X = X.astype(dtype)
    init = X[np.random.RandomState(seed).choice(n, k, replace=False)].copy()
    return X, init


def _assert_as_sklearn(X, sample_weight, init, tol, rtol, n_workers=2):
    reference = KMeans(init.shape[0], init=init, n_init=1, tol=tol).fit(
        X, sample_weight=sample_weight)
    centers, labels, inertia, n_iter = _fit(X, sample_weight, init, n_workers, tol=tol)
    np.testing.assert_array_equal(labels, reference.labels_)
    assert n_iter == reference.n_iter_
    np.testing.assert_allclose(centers, reference.cluster_centers_, rtol=rtol,
                               atol=rtol * np.abs(reference.cluster_centers_).max())
    assert inertia == pytest.approx(reference.inertia_, rel=max(rtol, 1e-12))
    return centers, labels, n_iter


def _sparse_data(dtype=np.float64, n=3000, d=8, k=4, seed=4):
    """Blobs with the small entries dropped (CSR, not centred: sklearn keeps
    sparse data as it is), and ``k`` of its rows as initial centres."""
    X, _ = _data(dtype, n=n, d=d, k=k, seed=seed)
    X[np.abs(X) < 2] = 0
    X = sp.csr_matrix(X)
    init = X[np.random.RandomState(seed).choice(X.shape[0], k, replace=False)].toarray()
    return X, init


#: Rows of each layout, and the shape of the sample-weight test's rows.
ROWS = {"dense": (_data, {"n": 4000, "k": 6, "seed": 1}),
        "sparse": (_sparse_data, {"n": 4000, "d": 10, "k": 6, "seed": 10})}


@pytest.mark.parametrize("kernel", KERNELS, indirect=True)
@pytest.mark.parametrize("rows", list(ROWS))
@pytest.mark.parametrize("tol", [0.0, 1e-4])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_same_model_as_sklearn(kernel, rows, tol, dtype):
    X, init = ROWS[rows][0](dtype)
    rtol = 1e-9 if dtype == np.float64 else 1e-5
    _assert_as_sklearn(X, np.ones(X.shape[0], dtype=dtype), init, tol, rtol)


@pytest.mark.parametrize("kernel", KERNELS, indirect=True)
@pytest.mark.parametrize("rows", list(ROWS))
def test_sample_weights_as_sklearn(kernel, rows):
    make, shape = ROWS[rows]
    X, init = make(**shape)
    weights = np.random.RandomState(shape["seed"] + 1).uniform(0.2, 3.0, X.shape[0])
    _assert_as_sklearn(X, weights, init, 0.0, 1e-9, n_workers=3)


@pytest.mark.parametrize("kernel", KERNELS, indirect=True)
def test_empty_cluster_relocated_as_sklearn(kernel):
    X, init = _data(n=3000, k=4, seed=3)
    init = np.vstack([init, X.max(axis=0) + 100.0])  # far from every row: empty at once
    _assert_as_sklearn(X, np.ones(X.shape[0]), init, 0.0, 1e-9)


@pytest.mark.parametrize("kernel", KERNELS, indirect=True)
def test_sparse_empty_cluster_relocated_as_sklearn(kernel):
    X, init = _sparse_data(n=3000, k=4, seed=11)
    far = np.asarray(X.max(axis=0).todense()).ravel() + 100.0  # empty at once
    _assert_as_sklearn(X, np.ones(X.shape[0]), np.vstack([init, far]), 0.0, 1e-9)


@needs_compiled
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sparse_one_pass_gives_labels_sums_changes_and_inertia(dtype):
    from sklearn.cluster._k_means_lloyd import lloyd_iter_chunked_sparse

    rng = np.random.RandomState(13)
    n, d, k, chunk = 3000, 40, 7, 512
    X = sp.random(n, d, density=0.1, format="csr", random_state=13, dtype=dtype)
    weights = rng.uniform(0.5, 2.0, n).astype(dtype)
    centers = X[rng.choice(n, k, replace=False)].toarray()
    expected = np.empty(n, dtype=np.int32)  # scikit-learn's labels, one thread
    lloyd_iter_chunked_sparse(X, weights, centers, np.empty_like(centers),
                              np.empty(k, dtype=dtype), expected, np.empty(k, dtype=dtype), 1,
                              False)
    old = rng.randint(0, k, n).astype(np.int32)
    labels = old.copy()
    out = compiled.lloyd_sparse(X, weights, centers, labels, chunk, inertia=True)
    np.testing.assert_array_equal(labels, expected)
    assert out.shape == (-(-n // chunk), k * (d + 1) + 2)
    dense = X.toarray().astype(np.float64)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    for c, start in enumerate(range(0, n, chunk)):
        rows = slice(start, start + chunk)
        sums = np.zeros((k, d + 1))
        np.add.at(sums[:, :-1], expected[rows], dense[rows] * weights[rows, None])
        np.add.at(sums[:, -1], expected[rows], weights[rows])
        np.testing.assert_allclose(out[c, :-2].reshape(k, d + 1), sums, rtol=rtol,
                                   atol=rtol * np.abs(sums).max())
        assert out[c, -2] == (old[rows] != expected[rows]).sum()
        diff = dense[rows] - centers[expected[rows]]
        assert out[c, -1] == pytest.approx(((diff ** 2).sum(axis=1) * weights[rows]).sum(),
                                           rel=rtol)
    again = compiled.lloyd_sparse(X, weights, centers, labels, chunk, new_run=True)
    assert again[:, -2].sum() == n  # a new run counts every row as changed


@needs_compiled
def test_sparse_ties_go_to_the_first_centre():
    X = sp.csr_matrix(np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]]))
    centers = np.array([[1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])  # equidistant from every row
    labels = np.full(3, -1, dtype=np.int32)
    compiled.lloyd_sparse(X, np.ones(3), centers, labels, 2)
    np.testing.assert_array_equal(labels, [0, 0, 0])


@pytest.mark.parametrize("kernel", KERNELS, indirect=True)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sparse_predict_and_score_as_sklearn(kernel, dtype):
    X, init = _sparse_data(dtype, seed=14)
    reference = KMeans(init.shape[0], init=init, n_init=1, max_iter=5).fit(X)
    model = ServerlessKMeans(init.shape[0], init=init, n_init=1, max_iter=5)
    model.cluster_centers_ = reference.cluster_centers_
    model.n_features_in_ = X.shape[1]
    weights = np.random.RandomState(14).uniform(0.5, 2.0, X.shape[0])
    np.testing.assert_array_equal(model.predict(X), reference.predict(X))
    rtol = 1e-9 if dtype == np.float64 else 1e-5
    assert model.score(X, sample_weight=weights) == pytest.approx(
        reference.score(X, sample_weight=weights), rel=rtol)
    out = _apply.labels({"X": X}, {"centers": reference.cluster_centers_})
    np.testing.assert_array_equal(out["labels"], reference.predict(X))


def _dense_rows(dtype):
    return _data(dtype, n=20_000, d=12, k=16, seed=5) + ({},)


def _sparse_rows(dtype):
    X = sp.random(20_000, 300, density=0.03, format="csr", random_state=12, dtype=dtype)
    init = X[np.random.RandomState(12).choice(X.shape[0], 16, replace=False)].toarray()
    return X, init, {"max_iter": 30}


@needs_compiled
@pytest.mark.parametrize("rows", [_dense_rows, _sparse_rows], ids=["dense", "sparse"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_compiled_and_numpy_kernels_give_the_same_model(rows, dtype, monkeypatch):
    X, init, params = rows(dtype)
    weights = np.random.RandomState(5).uniform(0.5, 2.0, X.shape[0]).astype(dtype)
    fast = _fit(X, weights, init, n_workers=2, **params)
    monkeypatch.setattr(_kernels, "compiled", None)
    slow = _fit(X, weights, init, n_workers=2, **params)
    np.testing.assert_array_equal(fast[1], slow[1])
    assert fast[3] == slow[3]
    rtol = 1e-9 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(fast[0], slow[0], rtol=rtol, atol=rtol * np.abs(slow[0]).max())
    assert fast[2] == pytest.approx(slow[2], rel=rtol)


@needs_compiled
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_one_pass_gives_labels_sums_changes_and_inertia(dtype):
    rng = np.random.RandomState(6)
    n, d, k, chunk = 3000, 5, 7, 512
    X = rng.normal(size=(n, d)).astype(dtype)
    weights = rng.uniform(0.5, 2.0, n).astype(dtype)
    centers = X[rng.choice(n, k, replace=False)]
    scores = X.astype(np.float64) @ centers.T.astype(np.float64) \
        - 0.5 * (centers.astype(np.float64) ** 2).sum(axis=1)
    expected = scores.argmax(axis=1)
    old = rng.randint(0, k, n).astype(np.int32)
    labels = old.copy()
    out = compiled.lloyd(with_ones_column(X), weights, centers, labels, chunk, inertia=True)
    np.testing.assert_array_equal(labels, expected)
    assert out.shape == (-(-n // chunk), k * (d + 1) + 2)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    for c, start in enumerate(range(0, n, chunk)):
        rows = slice(start, start + chunk)
        sums = np.zeros((k, d + 1))
        np.add.at(sums[:, :-1], expected[rows],
                  X[rows].astype(np.float64) * weights[rows, None])
        np.add.at(sums[:, -1], expected[rows], weights[rows])
        np.testing.assert_allclose(out[c, :-2].reshape(k, d + 1), sums, rtol=rtol,
                                   atol=rtol * np.abs(sums).max())
        assert out[c, -2] == (old[rows] != expected[rows]).sum()
        diff = X[rows].astype(np.float64) - centers[expected[rows]]
        assert out[c, -1] == pytest.approx(((diff ** 2).sum(axis=1) * weights[rows]).sum(),
                                           rel=rtol)
    again = compiled.lloyd(with_ones_column(X), weights, centers, labels, chunk, new_run=True)
    assert again[:, -2].sum() == n  # a new run counts every row as changed


@needs_compiled
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_known_final_e_step_gives_the_full_ones_inertia_to_the_bit(dtype):
    # Labels already those of the centres: the inertia from them, with no
    # scores, is the full E-step's to the bit; the labels are left as they are.
    rng = np.random.RandomState(8)
    n, d, k, chunk = 3000, 5, 7, 512
    X = with_ones_column(rng.normal(size=(n, d)).astype(dtype))
    weights = rng.uniform(0.5, 2.0, n).astype(dtype)
    centers = X[rng.choice(n, k, replace=False), :-1][None]
    labels = np.full((1, n), -1, dtype=np.int32)
    runs = np.zeros(1, dtype=np.int64)
    full = compiled.lloyd_runs(X, weights, centers, labels, runs, chunk, new_run=False,
                               sums=False, inertia=True)
    assigned = labels.copy()
    prepared = compiled.prepare_runs(centers, dtype, new_run=False, sums=False, inertia=True,
                                     width=d + 1, known=True)
    known = compiled.lloyd_prepared(X, weights, prepared, labels, runs, chunk)
    np.testing.assert_array_equal(known[:, 0, -1], full[:, 0, -1])
    np.testing.assert_array_equal(labels, assigned)
    assert known[:, 0, -2].sum() == 0
    labels[0, :5] = (labels[0, :5] + 1) % k  # known labels are taken as they are
    moved = compiled.lloyd_prepared(X, weights, prepared, labels, runs, chunk)
    assert moved[0, 0, -1] > known[0, 0, -1]


@needs_compiled
def test_ties_go_to_the_first_centre():
    X = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
    centers = np.array([[1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])  # equidistant from every row
    labels = np.full(3, -1, dtype=np.int32)
    compiled.lloyd(with_ones_column(X), np.ones(3), centers, labels, 2)
    np.testing.assert_array_equal(labels, [0, 0, 0])


@pytest.mark.parametrize("kernel", KERNELS, indirect=True)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_apply_labels_and_inertia_as_sklearn(kernel, dtype):
    X, init = _data(dtype, n=3000, seed=7)
    reference = KMeans(init.shape[0], init=init, n_init=1, max_iter=5).fit(X)
    out = _apply.labels({"X": X}, {"centers": reference.cluster_centers_})
    np.testing.assert_array_equal(out["labels"], reference.predict(X))
    assert out["inertia"] == pytest.approx(-reference.score(X), rel=1e-5)


@pytest.mark.parametrize("kernel", KERNELS, indirect=True)
def test_kmeans_parallel_helpers(kernel):
    rng = np.random.RandomState(8)
    X = rng.normal(size=(10_000, 4))
    candidates = X[rng.choice(X.shape[0], 37, replace=False)]
    squared = _kernels.squared_distances(X, candidates)
    np.testing.assert_allclose(_dataset._nearest_squared(X, candidates), squared.min(axis=1),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(_dataset._nearest_index(X, candidates), squared.argmin(axis=1))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fit_through_workers_as_sklearn(dtype):
    """Worker processes take whichever kernel their interpreter has."""
    X, init = _data(dtype, n=6000, d=5, k=6, seed=9)
    reference = KMeans(6, init=init, n_init=1, tol=0.0).fit(X)
    model = ServerlessKMeans(6, init=init, n_init=1, tol=0.0, n_workers=2).fit(X)
    np.testing.assert_array_equal(model.labels_, reference.labels_)
    assert model.n_iter_ == reference.n_iter_
    rtol = 1e-9 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(model.cluster_centers_, reference.cluster_centers_, rtol=rtol,
                               atol=rtol * np.abs(reference.cluster_centers_).max())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sparse_fit_through_workers_as_sklearn(dtype):
    X, init = _sparse_data(dtype, n=6000, d=12, k=6, seed=15)
    reference = KMeans(6, init=init, n_init=1, tol=0.0).fit(X)
    model = ServerlessKMeans(6, init=init, n_init=1, tol=0.0, n_workers=2).fit(X)
    np.testing.assert_array_equal(model.labels_, reference.labels_)
    assert model.n_iter_ == reference.n_iter_
    rtol = 1e-9 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(model.cluster_centers_, reference.cluster_centers_, rtol=rtol,
                               atol=rtol * np.abs(reference.cluster_centers_).max())


@needs_compiled
def test_read_only_rows_and_64_bit_indices_give_the_same_bits():
    # Rows in shared memory are read-only; CSR rows past 2**31 entries carry
    # int64 indices (and scipy may mix int32 and int64 index arrays).
    X, init = _sparse_data(n=2000, d=10, k=4, seed=16)
    weights = np.ones(X.shape[0])
    labels = np.full(X.shape[0], -1, dtype=np.int32)
    expected = compiled.lloyd_sparse(X, weights, init, labels.copy(), 512, inertia=True)
    wide = X.copy()
    wide.indices = wide.indices.astype(np.int64)
    for indptr in (wide.indptr, wide.indptr.astype(np.int64)):
        wide.indptr = indptr
        wide.data.flags.writeable = False
        out = compiled.lloyd_sparse(wide, weights, init, labels.copy(), 512, inertia=True)
        np.testing.assert_array_equal(out, expected)
    dense = with_ones_column(X.toarray())
    expected = compiled.lloyd(dense, weights, init, labels.copy(), 512, inertia=True)
    dense.flags.writeable = False
    out = compiled.lloyd(dense, weights, init, labels.copy(), 512, inertia=True)
    np.testing.assert_array_equal(out, expected)


#: A worker's first use of the kernel in a new interpreter, as a cold function
#: makes it: what it imported, and where the kernel came from.
_FRESH_WORKER = """
import json, sys, time
started = time.perf_counter()
import numpy as np
from sklearn_serverless._algorithms.kmeans import _kernels
from sklearn_serverless._algorithms.kmeans import _lloyd
rows = _kernels.with_ones_column(np.ones((256, 4)))
labels = np.full(256, -1, dtype=np.int32)
_kernels.compiled.lloyd(rows, np.ones(256), rows[:8, :-1], labels, 256)
print(json.dumps({"seconds": time.perf_counter() - started, "extension": _lloyd.__file__,
                  "modules": sorted(sys.modules)}))
"""


@needs_compiled
def test_a_fresh_worker_runs_the_built_kernel_and_compiles_nothing(tmp_path):
    # What a runtime built by the docs' recipe does at a function's start: the
    # extension built at install is loaded; no JIT, no Cython, no build tool is
    # imported, and nothing is written (no cache) under an empty HOME and TMPDIR.
    import importlib.machinery
    import json
    import os
    import subprocess
    import sys

    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    env = dict(os.environ, HOME=str(home), TMPDIR=str(tmp), PYTHONDONTWRITEBYTECODE="1")
    result = subprocess.run([sys.executable, "-c", _FRESH_WORKER], env=env, check=True,
                            capture_output=True, text=True, timeout=120)
    report = json.loads(result.stdout)
    assert report["extension"].endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
    # Built when the package was installed, not now.
    assert os.path.getmtime(report["extension"]) < os.path.getmtime(tmp_path)
    roots = {name.split(".")[0] for name in report["modules"]}
    assert not roots & {"numba", "llvmlite", "Cython", "pyximport", "setuptools", "distutils",
                        "sklearn"}
    assert list(home.iterdir()) == [] and list(tmp.iterdir()) == []
