"""ServerlessKMeans against scikit-learn's KMeans: same numbers, same API,
same errors, and faults that end promptly with nothing left behind."""

from __future__ import annotations

import os
import pickle
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import IterationRecorder
from sklearn.base import clone
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_serverless import ServerlessKMeans

# sklearn's own KMeans fails these two: random init is not weight-equivalent.
KMEANS_EXPECTED_FAILURES = {
    "check_sample_weight_equivalence_on_dense_data": "random init, as sklearn's KMeans",
    "check_sample_weight_equivalence_on_sparse_data": "random init, as sklearn's KMeans",
}


@parametrize_with_checks(
    [ServerlessKMeans(n_workers=2, state_mode=mode) for mode in ("lock_free", "locked")],
    expected_failed_checks=lambda estimator: KMEANS_EXPECTED_FAILURES,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def blobs():
    X, _ = make_blobs(2003, 6, centers=5, cluster_std=2.5, random_state=0)
    return X, X[[0, 400, 800, 1200, 1600]].copy()


def _assert_same_model(model, reference, rtol=1e-10):
    np.testing.assert_allclose(model.cluster_centers_, reference.cluster_centers_, rtol=rtol)
    np.testing.assert_array_equal(model.labels_, reference.labels_)
    assert model.labels_.dtype == np.int32
    assert model.n_iter_ == reference.n_iter_
    assert model.inertia_ == pytest.approx(reference.inertia_, rel=rtol)


@pytest.mark.parametrize("n_workers", [1, 2, 5])
@pytest.mark.parametrize("state_mode", ["lock_free", "locked"])
def test_same_model_as_sklearn_sqlite(blobs, n_workers, state_mode, leaves_nothing):
    X, init = blobs
    reference = KMeans(5, init=init, n_init=1, tol=0).fit(X)
    model = ServerlessKMeans(5, init=init, tol=0, n_workers=n_workers,
                             state_mode=state_mode).fit(X)
    _assert_same_model(model, reference)
    assert model.n_workers_ == n_workers


@pytest.mark.parametrize("sparse", [False, True])
def test_rows_from_the_drivers_memory_or_files_give_the_same_bits(blobs, sparse, monkeypatch,
                                                                  leaves_nothing):
    # The workers copy their rows out of the driver's arrays (nothing written
    # to the fit's folder), or, where they may not, read the files it wrote.
    from sklearn_serverless._driver import _placement

    X, init = blobs
    X = sp.csr_matrix(np.where(X > 0, X, 0)) if sparse else X
    weights = np.random.RandomState(0).rand(X.shape[0])
    placed = []
    plan_memory, plan_files = _placement.plan_memory, _placement.plan_files
    monkeypatch.setattr(_placement, "plan_memory",
                        lambda *a: placed.append("memory") or plan_memory(*a))
    monkeypatch.setattr(_placement, "plan_files",
                        lambda *a: placed.append("files") or plan_files(*a))
    models = []
    for readable in (True, False):
        monkeypatch.setattr(_placement, "memory_readable", lambda ok=readable: ok)
        models.append(ServerlessKMeans(5, init=init, tol=0, n_workers=2)
                      .fit(X, sample_weight=weights))
    assert placed == ["memory", "files"]
    memory, files = models
    np.testing.assert_array_equal(memory.cluster_centers_, files.cluster_centers_)
    np.testing.assert_array_equal(memory.labels_, files.labels_)
    assert (memory.inertia_, memory.n_iter_) == (files.inertia_, files.n_iter_)
    reference = KMeans(5, init=init, n_init=1, tol=0).fit(X, sample_weight=weights)
    _assert_same_model(memory, reference, rtol=1e-9)


@pytest.mark.redis
@pytest.mark.parametrize("n_workers", [1, 2, 5])
@pytest.mark.parametrize("state_mode", ["lock_free", "locked"])
def test_same_model_as_sklearn_redis(blobs, redis_server, n_workers, state_mode,
                                     leaves_nothing):
    X, init = blobs
    reference = KMeans(5, init=init, n_init=1, tol=0).fit(X)
    model = ServerlessKMeans(5, init=init, tol=0, n_workers=n_workers, state_mode=state_mode,
                             state_store=redis_server.url).fit(X)
    _assert_same_model(model, reference)
    assert redis_server.keys() == []


def _iteration_inertias(out: str) -> list[float]:
    return [float(line.split("inertia ")[1].rstrip("."))
            for line in out.splitlines() if line.startswith("Iteration ")]


@pytest.mark.parametrize("store", ["embedded", pytest.param("redis", marks=pytest.mark.redis)])
@pytest.mark.parametrize("state_mode", ["lock_free", "locked"])
@pytest.mark.parametrize("data", ["dense", "sparse"])
def test_a_slow_worker_is_helped_and_the_model_does_not_change(
        request, slow_kmeans_worker, capsys, store, state_mode, data, leaves_nothing):
    # 8192-row chunks at k=5: 3 chunks per worker, 2 of which a helper can take.
    X, _ = make_blobs(60_000, 4, centers=5, cluster_std=3.0, random_state=3)
    init = X[[0, 10_000, 25_000, 40_000, 55_000]].copy()
    if data == "sparse":
        X = sp.csr_matrix(np.where(np.abs(X) < 2, 0, X))
    url = request.getfixturevalue("redis_server").url if store == "redis" else None
    params = dict(init=init, n_init=1, tol=0, max_iter=8, n_workers=2, state_mode=state_mode,
                  state_store=url, verbose=1)
    models, inertias = [], []
    for slow in (1, 0):  # worker 0 helps worker 1, then worker 1 helps worker 0
        slow_kmeans_worker(slow, 0.05)
        models.append(ServerlessKMeans(5, **params).fit(X))
        inertias.append(_iteration_inertias(capsys.readouterr().out))
        helped = models[-1].timings_["helped"]
        assert helped.shape == (models[-1].n_iter_ + 1, 2)
        assert helped[:, 1 - slow].sum() > 0, "the fast worker never helped"
    reference = KMeans(5, init=init, n_init=1, tol=0, max_iter=8).fit(X)
    for model in models:
        _assert_same_model(model, reference)
    one, other = models
    np.testing.assert_array_equal(one.labels_, other.labels_)
    assert len(inertias[0]) == one.n_iter_
    np.testing.assert_allclose(inertias[0], inertias[1], rtol=1e-12)
    if state_mode == "lock_free":
        # Bit for bit, whoever computed which chunk.
        np.testing.assert_array_equal(one.cluster_centers_, other.cluster_centers_)
        assert one.inertia_ == other.inertia_
        assert inertias[0] == inertias[1]
    if store == "redis":
        assert request.getfixturevalue("redis_server").keys() == []


@pytest.mark.parametrize("init", ["k-means++", "random"])
@pytest.mark.parametrize("data", ["dense", "float32", "sparse"])
def test_inits_weights_and_formats_as_sklearn(init, data):
    X, _ = make_blobs(1500, 5, centers=4, random_state=1)
    if data == "float32":
        X = X.astype(np.float32)
    elif data == "sparse":
        X = sp.csr_matrix(np.where(np.abs(X) < 3, 0, X))
    weights = np.random.RandomState(0).uniform(0.5, 2, X.shape[0])
    params = dict(init=init, n_init=3, random_state=7, tol=1e-4)
    reference = KMeans(4, **params).fit(X, sample_weight=weights)
    model = ServerlessKMeans(4, n_workers=3, **params).fit(X, sample_weight=weights)
    assert model.cluster_centers_.dtype == reference.cluster_centers_.dtype
    rtol = 1e-4 if data == "float32" else 1e-10
    _assert_same_model(model, reference, rtol=rtol)
    np.testing.assert_array_equal(model.predict(X), reference.predict(X))
    assert model.score(X, sample_weight=weights) == pytest.approx(
        reference.score(X, sample_weight=weights), rel=rtol)
    np.testing.assert_allclose(model.transform(X), reference.transform(X), rtol=rtol,
                               atol=1e-6)


def test_empty_cluster_relocated_as_sklearn(blobs):
    X, init = blobs
    init = init.copy()
    init[2] = 1e3  # no point is closest to it: sklearn relocates it to the farthest point
    reference = KMeans(5, init=init, n_init=1, tol=0).fit(X)
    model = ServerlessKMeans(5, init=init, tol=0, n_workers=3).fit(X)
    _assert_same_model(model, reference)


def test_relative_tol_and_max_iter_as_sklearn(blobs):
    X, init = blobs
    for params in (dict(tol=1e-2), dict(tol=0, max_iter=2)):
        reference = KMeans(5, init=init, n_init=1, **params).fit(X)
        model = ServerlessKMeans(5, init=init, n_workers=2, **params).fit(X)
        _assert_same_model(model, reference)


def test_fit_predict_fit_transform_and_feature_names(blobs):
    X, init = blobs
    model = ServerlessKMeans(5, init=init, n_workers=2)
    labels = model.fit_predict(X)
    np.testing.assert_array_equal(labels, model.labels_)
    np.testing.assert_allclose(model.fit_transform(X), model.transform(X))
    assert list(model.get_feature_names_out()) == [f"serverlesskmeans{i}" for i in range(5)]


def test_timings_record_each_round(blobs):
    X, init = blobs
    model = ServerlessKMeans(5, init=init, tol=0, n_workers=2).fit(X)
    timings = model.timings_
    # One round per Lloyd iteration plus the final E-step.
    assert timings["n_rounds"] == model.n_iter_ + 1
    for phase in ("compute", "publish", "barrier", "aggregate", "helped"):
        assert timings[phase].shape == (model.n_iter_ + 1, 2)
        assert (timings[phase] >= 0).all()
    assert (timings["compute"].sum(axis=0) > 0).all()
    assert timings["load"].shape == (2,)
    assert 0 < timings["compute"].sum() < timings["fit"]


def test_verbose_reports_each_iteration(blobs, capsys):
    X, init = blobs
    model = ServerlessKMeans(5, init=init, tol=0, n_workers=2, verbose=1).fit(X)
    out = capsys.readouterr().out
    assert out.count("Iteration ") == model.n_iter_
    assert "strict convergence" in out


def test_duplicate_points_warn_as_sklearn():
    X = np.repeat([[0.0, 0.0], [1.0, 1.0]], 50, axis=0)
    with pytest.warns(ConvergenceWarning, match="Number of distinct clusters"):
        ServerlessKMeans(3, n_workers=2, random_state=0).fit(X)


# drop-in -------------------------------------------------------------------------------


def test_pipeline_grid_search_clone_pickle(blobs):
    X, _ = blobs
    pipeline = make_pipeline(StandardScaler(), ServerlessKMeans(n_workers=2, random_state=0))
    search = GridSearchCV(pipeline, {"serverlesskmeans__n_clusters": [2, 5]}, cv=2)
    search.fit(X)
    # Inertia falls with more clusters, so the score (minus inertia) picks 5.
    assert search.best_params_ == {"serverlesskmeans__n_clusters": 5}

    model = ServerlessKMeans(5, n_workers=2, random_state=0).fit(X)
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    assert not hasattr(copy, "cluster_centers_")
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict(X), model.predict(X))
    np.testing.assert_array_equal(restored.cluster_centers_, model.cluster_centers_)


# bad input: sklearn's errors, before any worker is launched -----------------------------


@pytest.mark.parametrize("X, match", [
    (np.array([[0.0, np.nan], [1.0, 1.0], [2.0, 2.0]]), "NaN"),
    (np.array([[0.0, np.inf], [1.0, 1.0], [2.0, 2.0]]), "infinity"),
    (np.empty((0, 2)), "0 sample"),
    (np.arange(5.0), "Expected 2D array"),
])
def test_bad_input_raises_like_sklearn(X, match, no_workers):
    with pytest.raises(ValueError, match=match):
        KMeans(2).fit(X)
    with pytest.raises(ValueError, match=match):
        ServerlessKMeans(2).fit(X)


@pytest.mark.parametrize("params, match", [
    (dict(n_clusters=10), "n_samples=5 should be >= n_clusters=10"),
    (dict(state_mode="sometimes"), "state_mode"),
    (dict(backend="my_laptop"), "backend"),
    (dict(n_workers=0), "n_workers"),
    (dict(timeout=-1), "timeout"),
    # A complete Lambda config (checked offline) and no Redis: the store is what is wrong.
    (dict(backend={"lithops": {"backend": "aws_lambda", "storage": "aws_s3"},
                   "aws": {"region": "us-east-1"},
                   "aws_lambda": {"execution_role": "arn:aws:iam::1:role/lithops"},
                   "aws_s3": {"storage_bucket": "lithops-bucket"}}),
     "embedded state store cannot work"),
    (dict(state_store="postgres://db"), "redis URL"),
    (dict(init=np.zeros((3, 2))), "does not match"),
])
def test_bad_parameters_raise_before_launch(params, match, no_workers):
    X = np.arange(10.0).reshape(5, 2)
    with pytest.raises(ValueError, match=match):
        ServerlessKMeans(**{"n_clusters": 2, **params}).fit(X)


def test_wrong_width_at_predict(blobs):
    X, init = blobs
    model = ServerlessKMeans(5, init=init, n_workers=1).fit(X)
    with pytest.raises(ValueError, match="features"):
        model.predict(X[:, :3])
    with pytest.raises(ValueError, match="features"):
        model.transform(X[:, :3])


# faults: a clear error within the timeout, nothing left behind -------------------------


def test_raising_worker_names_itself(blobs, fail_worker, leaves_nothing):
    X, init = blobs
    fail_worker("kmeans", 1)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="worker 1 of 3 failed: injected failure"):
        ServerlessKMeans(5, init=init, n_workers=3, timeout=30).fit(X)
    assert time.monotonic() - started < 10


def test_workers_that_never_start_fail_the_fit(blobs, hang_workers, leaves_nothing):
    X, init = blobs
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"only 0 of 2 workers started within 5 s "
                                           r"\(not started: 0, 1\).*worker_processes=2"):
        ServerlessKMeans(5, init=init, n_workers=2, timeout=1).fit(X)
    assert time.monotonic() - started < 15


def test_driver_failing_to_write_the_data_stops_the_waiting_workers(blobs, monkeypatch,
                                                                    leaves_nothing):
    # The workers are already started and waiting for their files (placed in
    # files: as where the workers may not read the driver's memory).
    from sklearn_serverless._driver import _placement

    def disk_full(columns, folder):
        raise OSError("No space left on device")

    monkeypatch.setattr(_placement, "memory_readable", lambda: False)
    monkeypatch.setattr(_placement, "write_files", disk_full)
    X, init = blobs
    started = time.monotonic()
    with pytest.raises(OSError, match="No space left"):
        ServerlessKMeans(5, init=init, n_workers=2, timeout=30).fit(X)
    assert time.monotonic() - started < 10


@pytest.mark.redis
def test_raising_worker_leaves_no_redis_key(blobs, redis_server, fail_worker, leaves_nothing):
    X, init = blobs
    fail_worker("kmeans", 0)
    with pytest.raises(RuntimeError, match="worker 0 of 2 failed"):
        ServerlessKMeans(5, init=init, n_workers=2, state_store=redis_server.url,
                         state_mode="locked", timeout=30).fit(X)
    assert redis_server.keys() == []


def _worker_pids(root: int) -> list[int]:
    """Processes running the workers' function: Lithops localhost runs a
    runner (plain, or forked by the warm server of this process), one pool
    process per worker, and the call in a child of each: three levels below
    the runner."""
    children: dict[int, list[int]] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        children.setdefault(parent, []).append(int(pid))
    from sklearn_serverless._driver._warm import server_pid

    server = server_pid()
    level = [server] if server in children.get(root, []) else [root]
    for _ in range(3):
        level = [child for pid in level for child in children.get(pid, [])]
    return level


def _fit_in_thread(model, *data):
    outcome = {}

    def fit():
        try:
            model.fit(*data)
        except BaseException as exc:  # noqa: BLE001 - examined by the test
            outcome["error"] = exc

    thread = threading.Thread(target=fit)
    thread.start()
    return thread, outcome


@pytest.fixture(scope="module")
def long_fit_data():
    X, _ = make_blobs(300_000, 20, centers=50, cluster_std=8, random_state=0)
    return X, X[:50].copy()


def _wait_for_recorded_rounds(redis_url: str | None, count: int) -> None:
    """Until this process's running fit has recorded ``count`` rounds in its
    store (the embedded one in its fit folder, or Redis)."""
    import glob

    import redis

    from sklearn_serverless._state import StoreSpec, open_store

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        recorded = 0
        if redis_url:
            client = redis.Redis.from_url(redis_url)
            recorded = max([client.hlen(key) for key in client.scan_iter("sks:*:records")],
                           default=0)
            client.close()
        else:
            for path in glob.glob(f"/dev/shm/sklearn-serverless-{os.getpid()}-*/state"):
                try:
                    store = open_store(StoreSpec("shm", path, "", 2))
                except OSError:  # the fit ended meanwhile
                    continue
                try:
                    recorded = len(store.records())
                finally:
                    store.close()
        if recorded >= count:
            return
        time.sleep(0.01)
    raise AssertionError(f"the fit did not record {count} rounds within 30 s")


@pytest.mark.parametrize("state_store", ["embedded", "redis"])
@pytest.mark.usefixtures("no_pool")
def test_a_killed_worker_is_replaced_and_the_model_does_not_change(long_fit_data, state_store,
                                                                   request, leaves_nothing):
    # An outside SIGKILL of one worker's process mid-fit: a new generation of
    # workers goes on from the rounds the store recorded.
    X, init = long_fit_data
    url = request.getfixturevalue("redis_server").url if state_store == "redis" else None
    model = ServerlessKMeans(50, init=init, tol=0, max_iter=40, n_workers=2,
                             state_store=url, timeout=20)
    thread, outcome = _fit_in_thread(model, X)
    _wait_for_recorded_rounds(url, 5)  # well inside the Lloyd iterations
    victims = _worker_pids(os.getpid())
    assert len(victims) == 2, victims
    os.kill(max(victims), signal.SIGKILL)
    thread.join(120)
    assert not thread.is_alive()
    assert outcome.get("error") is None, outcome["error"]
    assert model.timings_["generations"] == 2
    assert model.timings_["generation_ends"][0]["why"] == "lost"
    reference = KMeans(50, init=init, n_init=1, tol=0, max_iter=40).fit(X)
    _assert_same_model(model, reference)
    if url:
        assert request.getfixturevalue("redis_server").keys() == []


@pytest.mark.usefixtures("no_pool")
def test_a_killed_worker_fails_the_fit_without_replacements(long_fit_data, leaves_nothing):
    from sklearn_serverless import config_context

    X, init = long_fit_data
    model = ServerlessKMeans(50, init=init, tol=0, max_iter=10_000, n_workers=2, timeout=20)

    class WithoutReplacements:
        def fit(self, X):
            with config_context(max_replacements=0):
                model.fit(X)

    thread, outcome = _fit_in_thread(WithoutReplacements(), X)
    deadline = time.monotonic() + 30
    while len(_worker_pids(os.getpid())) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    victims = _worker_pids(os.getpid())
    killed_at = time.monotonic()
    os.kill(max(victims), signal.SIGKILL)
    thread.join(60)
    assert not thread.is_alive()
    assert time.monotonic() - killed_at < 15  # noticed in seconds
    assert re.search(r"worker \d of 2 was lost 1 time\(s\), more than max_replacements=0",
                     str(outcome["error"])), outcome["error"]


@pytest.mark.redis
@pytest.mark.usefixtures("no_pool")
def test_redis_stopped_mid_fit(long_fit_data, private_redis, leaves_nothing):
    X, init = long_fit_data
    model = ServerlessKMeans(50, init=init, tol=0, max_iter=10_000, n_workers=2,
                             state_store=private_redis.url, timeout=20)
    thread, outcome = _fit_in_thread(model, X)
    deadline = time.monotonic() + 30
    while len(_worker_pids(os.getpid())) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    stopped_at = time.monotonic()
    private_redis.stop()
    thread.join(40)
    assert not thread.is_alive()
    assert time.monotonic() - stopped_at < 25
    assert "worker" in str(outcome["error"]) or "Redis" in str(outcome["error"])


def test_unreachable_redis_fails_before_launch(blobs, leaves_nothing):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    X, init = blobs
    started = time.monotonic()
    with pytest.raises(ConnectionError, match=f"127.0.0.1:{port}"):
        ServerlessKMeans(5, init=init, state_store=f"redis://127.0.0.1:{port}/0").fit(X)
    assert time.monotonic() - started < 5


_FIT_SCRIPT = """
import sys
import numpy as np
from sklearn.datasets import make_blobs
from sklearn_serverless import ServerlessKMeans

X, _ = make_blobs(2003, 6, centers=5, cluster_std=2.5, random_state=0)
init = X[[0, 400, 800, 1200, 1600]]
model = ServerlessKMeans(5, init=init, tol=0, n_workers=2, state_mode=sys.argv[1],
                         state_store=sys.argv[2]).fit(X)
np.save(sys.argv[3], model.cluster_centers_)
"""


@pytest.mark.redis
def test_two_fits_at_once_on_one_redis(blobs, redis_server, tmp_path):
    # Separate processes, as two users' fits would be.
    X, init = blobs
    reference = KMeans(5, init=init, n_init=1, tol=0).fit(X)
    script = tmp_path / "fit.py"
    script.write_text(_FIT_SCRIPT)
    outputs = {mode: tmp_path / f"{mode}.npy" for mode in ("lock_free", "locked")}
    fits = [subprocess.Popen([sys.executable, str(script), mode, redis_server.url, str(out)])
            for mode, out in outputs.items()]
    assert [fit.wait(120) for fit in fits] == [0, 0]
    for out in outputs.values():
        np.testing.assert_allclose(np.load(out), reference.cluster_centers_, rtol=1e-10)
    assert redis_server.keys() == []


def test_callbacks_get_one_task_per_lloyd_iteration_while_the_fit_runs(blobs, capsys,
                                                                        leaves_nothing):
    # The coordinator reports each iteration's inertia and centres through the
    # store; the driver turns them into scikit-learn's callback tasks.
    X, init = blobs
    recorder = IterationRecorder()
    model = ServerlessKMeans(5, init=init, n_init=1, tol=0, n_workers=2, verbose=1)
    model.set_callbacks(recorder).fit(X)
    verbose = _iteration_inertias(capsys.readouterr().out)
    # The fit's task, one per iteration, and the empty one after the last.
    assert recorder.begins == model.n_iter_ + 2
    # Iterations end in order, each with the inertia of its round; the fit's
    # own task ends last, with the fitted model.
    assert len(verbose) == model.n_iter_
    np.testing.assert_allclose(recorder.inertias[:model.n_iter_], verbose, rtol=1e-12)
    assert recorder.inertias[-1] == model.inertia_
