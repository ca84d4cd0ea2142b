"""Pools of workers that serve many fits: real Lithops maps, real processes.

Fits served by a pool give scikit-learn's models; two fits at once (threads
of one process, two processes) each get theirs; a pool process killed
between fits or during one; the idle end; the owner's death; and nothing
left once the pools are shut down (``leaves_nothing``)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import cloudpickle
import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs, make_classification
from sklearn.linear_model import LogisticRegression

from sklearn_serverless import (
    ServerlessKMeans,
    ServerlessLogisticRegression,
    config_context,
    last_cost,
    shutdown_workers,
)
from sklearn_serverless._driver import _pool
from sklearn_serverless._driver._generations import process_alive

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(autouse=True)
def no_pool_before(pools_on):
    shutdown_workers()
    yield


def _wait_gone(pids, seconds: float = 10.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        alive = [pid for pid in pids if process_alive(pid)]
        if not alive:
            return []
        time.sleep(0.05)
    return alive


def _same_logistic(model, X, y, **params):
    reference = LogisticRegression(**params).fit(X, y)
    np.testing.assert_allclose(model.coef_, reference.coef_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.intercept_, reference.intercept_, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(model.n_iter_, reference.n_iter_)


def _same_kmeans(model, X, **params):
    reference = KMeans(**params).fit(X)
    np.testing.assert_allclose(model.cluster_centers_, reference.cluster_centers_, atol=1e-9)
    np.testing.assert_array_equal(model.labels_, reference.labels_)
    assert model.n_iter_ == reference.n_iter_


def test_fits_served_by_one_pool_give_sklearns_models(leaves_nothing):
    X, y = make_classification(600, 6, random_state=0)
    Xb, _ = make_blobs(900, 4, centers=5, random_state=2)
    init = Xb[:5].copy()
    for C in (0.1, 1.0, 10.0):
        _same_logistic(ServerlessLogisticRegression(C=C, n_workers=2).fit(X, y), X, y, C=C)
    # Another estimator, other data, fewer workers: the same pool.
    model = ServerlessKMeans(5, init=init, n_init=1, n_workers=2).fit(Xb)
    _same_kmeans(model, Xb, n_clusters=5, init=init, n_init=1)
    model = ServerlessLogisticRegression(n_workers=1).fit(X[:300], y[:300])
    _same_logistic(model, X[:300], y[:300])
    assert len(_pool._pools) == 1
    pool = _pool._pools[0]
    assert pool.jobs == 5 and not pool.busy
    assert len(pool.pids()) == 2
    _same_logistic(ServerlessLogisticRegression(n_workers=2).fit(X, y), X, y)
    assert _pool._pools == [pool]


def test_a_worker_error_through_the_pool_is_the_fits_error(fail_worker, leaves_nothing):
    X, y = make_classification(400, 5, random_state=1)
    ServerlessLogisticRegression(n_workers=2).fit(X, y)  # starts the pool
    pool = _pool._pools[0]
    fail_worker("logistic", 1)
    with pytest.raises(RuntimeError, match="worker 1 of 2 failed: injected failure"):
        ServerlessLogisticRegression(n_workers=2).fit(X, y)
    assert _pool._pools == [pool] and not pool.busy  # every slot answered: kept


def test_pools_are_off_when_configured(leaves_nothing):
    X, y = make_classification(400, 5, random_state=1)
    with config_context(worker_pool=False):
        _same_logistic(ServerlessLogisticRegression(n_workers=2).fit(X, y), X, y)
    assert _pool._pools == []


def test_two_fits_at_once_from_threads(leaves_nothing):
    datasets = [make_classification(800, 6, random_state=seed) for seed in (3, 4)]
    models: dict = {}
    errors: list = []
    barrier = threading.Barrier(2)

    def fit(i):
        try:
            barrier.wait()
            for _ in range(3):
                X, y = datasets[i]
                models[i] = ServerlessLogisticRegression(n_workers=2).fit(X, y)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=fit, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    for i, (X, y) in enumerate(datasets):
        _same_logistic(models[i], X, y)
    assert 1 <= len(_pool._pools) <= 2  # a busy pool is never shared


_OWNER = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    from sklearn.datasets import make_classification
    from sklearn_serverless import ServerlessLogisticRegression
    from sklearn_serverless._driver import _pool

    seed, mode = int(sys.argv[1]), sys.argv[2]
    X, y = make_classification(700, 5, random_state=seed)
    coefs = [ServerlessLogisticRegression(n_workers=2).fit(X, y).coef_.tolist()
             for _ in range(3)]
    print(json.dumps({"coefs": coefs, "pids": _pool.live_pids()}), flush=True)
    if mode == "linger":
        time.sleep(120)
""")


@contextlib.contextmanager
def _ended(owner: subprocess.Popen):
    """The owner process, killed and reaped however the test ends."""
    try:
        yield owner
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait(10)
        owner.stdout.close()
        owner.stderr.close()


def _owner(seed: int, mode: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen([sys.executable, "-c", _OWNER, str(seed), mode],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)


def test_two_processes_at_once_each_get_their_models():
    owners = [_owner(seed, "exit") for seed in (5, 6)]
    outputs = [owner.communicate(timeout=240) for owner in owners]
    pids = []
    for seed, owner, (out, err) in zip((5, 6), owners, outputs, strict=True):
        assert owner.returncode == 0, err[-3000:]
        found = json.loads(out.strip().splitlines()[-1])
        X, y = make_classification(700, 5, random_state=seed)
        reference = LogisticRegression().fit(X, y).coef_
        for coef in found["coefs"]:
            np.testing.assert_allclose(coef, reference, rtol=1e-10, atol=1e-12)
        assert len(found["pids"]) == 2
        pids += found["pids"]
    assert not _wait_gone(pids)  # an owner that exits ends its pool


def test_a_killed_owner_leaves_no_pool_behind():
    with _ended(_owner(7, "linger")) as owner:
        line = owner.stdout.readline()
        assert line, owner.stderr.read()[-3000:]
        pids = json.loads(line)["pids"]
        assert pids and all(process_alive(pid) for pid in pids)
        owner.send_signal(signal.SIGKILL)
        owner.wait(10)
    assert not _wait_gone(pids)


def test_a_pool_process_killed_between_fits(leaves_nothing):
    X, y = make_classification(600, 6, random_state=8)
    ServerlessLogisticRegression(n_workers=2).fit(X, y)
    old = _pool._pools[0]
    victim = old.pids()[1]
    os.kill(victim, signal.SIGKILL)
    assert not _wait_gone([victim])
    model = ServerlessLogisticRegression(n_workers=2).fit(X, y)
    _same_logistic(model, X, y)
    assert model.timings_["generations"] == 1  # the dead pool was not handed the fit
    assert old not in _pool._pools and len(_pool._pools) == 1
    assert not _wait_gone(old.pids())


@pytest.mark.parametrize("rank", [1, 0], ids=["follower", "coordinator"])
def test_a_pool_process_killed_during_a_fit(rank, kill_worker, leaves_nothing):
    X, y = make_classification(3000, 8, random_state=9)
    ServerlessLogisticRegression(n_workers=2).fit(X, y)
    old = _pool._pools[0]
    kill_worker("logistic", rank, at=4)
    model = ServerlessLogisticRegression(n_workers=2).fit(X, y)
    _same_logistic(model, X, y)
    assert model.timings_["generations"] == 2  # the next generation ran on a fresh map
    assert old not in _pool._pools
    assert not _wait_gone(old.pids())
    # The next fit starts a new pool.
    _same_logistic(ServerlessLogisticRegression(n_workers=2).fit(X, y), X, y)
    assert len(_pool._pools) == 1 and _pool._pools[0] is not old


def test_an_idle_pool_ends(leaves_nothing):
    X, y = make_classification(400, 5, random_state=10)
    with config_context(pool_idle=1.0):
        ServerlessLogisticRegression(n_workers=2).fit(X, y)
    pool = _pool._pools[0]
    pids = pool.pids()
    assert len(pids) == 2
    assert not _wait_gone(pids, 8.0)  # idle 1 s, checked every 0.5 s
    # The owner does not hand a fit to it: a new pool serves the next one.
    _same_logistic(ServerlessLogisticRegression(n_workers=2).fit(X, y), X, y)
    assert pool not in _pool._pools


# pools of cloud functions, on loopback: localhost compute with moto's S3 or
# Lithops' Redis storage, a real redis-server: the storage + Redis channel ---------------


def _pool_keys(cloud) -> list[bytes]:
    return [key for key in cloud.state_keys() if key.startswith(b"sks:pool:")]


def _fit_objects(cloud) -> list[str]:
    """Objects other than the Lithops job files of a pool's map."""
    return [key for key in cloud.objects()
            if "lithops.jobs" not in key and key not in ("storage/", "storage/lithops.jobs/")]


def _cloud_fit(cloud, model, *data):
    model.set_params(backend=cloud.config, state_store=cloud.redis.url)
    started = time.perf_counter()
    model.fit(*data)
    return model, time.perf_counter() - started


@pytest.mark.redis
def test_a_cloud_pool_serves_successive_fits(cloud, leaves_nothing):
    X, y = make_classification(900, 6, random_state=11)
    Xb, _ = make_blobs(1200, 4, centers=5, random_state=12)
    init = Xb[:5].copy()
    with config_context(worker_pool=True):
        model, first = _cloud_fit(cloud, ServerlessLogisticRegression(C=0.5, n_workers=2), X, y)
        _same_logistic(model, X, y, C=0.5)
        assert len(_pool._pools) == 1
        pool = _pool._pools[0]
        assert pool.channel.__class__.__name__ == "CloudChannel"
        pids = pool.pids()
        assert len(pids) == 2
        # Another estimator, other data and parameters: the same pool, no new map.
        model, second = _cloud_fit(cloud, ServerlessKMeans(5, init=init, n_init=1,
                                                           n_workers=2), Xb)
        _same_kmeans(model, Xb, n_clusters=5, init=init, n_init=1)
        model, _ = _cloud_fit(cloud, ServerlessLogisticRegression(C=2.0, n_workers=1),
                              X[:500], y[:500])
        _same_logistic(model, X[:500], y[:500], C=2.0)
    assert _pool._pools == [pool] and pool.jobs == 3 and pool.pids() == pids
    assert len(pool.futures) == 2  # one map, started by the first fit
    assert second < 0.6 * first, (first, second)
    # Each fit's data, jobs, results and state keys are gone; while the pool
    # lives it has its Lithops job files, its owner's and workers' heartbeats.
    assert _fit_objects(cloud) == []
    tag = pool.channel.keys.encode()
    assert sorted(_pool_keys(cloud)) == [tag + name for name in
                                         (b"alive:0", b"alive:1", b"owner")]
    assert cloud.state_keys() == _pool_keys(cloud)
    # The default ('auto') is a map per fit there: idle functions are billed.
    ServerlessLogisticRegression(n_workers=2, backend=cloud.config,
                                 state_store=cloud.redis.url).fit(X, y)
    assert pool.jobs == 3
    shutdown_workers()
    cloud.assert_empty()
    assert not _wait_gone(pids)


@pytest.mark.redis
def test_a_cloud_pool_worker_killed_during_a_fit(cloud, kill_worker, leaves_nothing):
    X, y = make_classification(3000, 8, random_state=9)
    with config_context(worker_pool=True):
        _cloud_fit(cloud, ServerlessLogisticRegression(n_workers=2), X, y)
        old = _pool._pools[0]
        pids = old.pids()
        kill_worker("logistic", 1, at=4)
        model, _ = _cloud_fit(cloud, ServerlessLogisticRegression(n_workers=2), X, y)
        _same_logistic(model, X, y)
        assert model.timings_["generations"] == 2  # the next generation on a fresh map
        assert old not in _pool._pools
        assert not _wait_gone(pids)
        assert _fit_objects(cloud) == [] and _pool_keys(cloud) == []
        _same_logistic(_cloud_fit(cloud, ServerlessLogisticRegression(n_workers=2), X, y)[0],
                       X, y)
    assert len(_pool._pools) == 1 and _pool._pools[0] is not old


@pytest.mark.redis
def test_a_cloud_pool_ends_when_its_owners_heartbeat_stops(cloud, monkeypatch, leaves_nothing):
    from sklearn_serverless._channel import _cloud as _pool_cloud

    monkeypatch.setattr(_pool_cloud, "HEARTBEAT_SECONDS", 1.0)
    X, y = make_classification(600, 5, random_state=13)
    with config_context(worker_pool=True):
        _cloud_fit(cloud, ServerlessLogisticRegression(n_workers=2), X, y)
        pool = _pool._pools[0]
        pids = pool.pids()
        assert len(pids) == 2
        pool.channel.stop_heartbeat()  # as if the owner were gone
        assert not _wait_gone(pids, 8.0)
        # The workers deleted their keys; the owner's lapsed.
        deadline = time.monotonic() + 5
        while _pool_keys(cloud) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _pool_keys(cloud) == []
        assert _fit_objects(cloud) == []
        # The owner does not hand a fit to it: a new pool serves the next one.
        model, _ = _cloud_fit(cloud, ServerlessLogisticRegression(n_workers=2), X, y)
        _same_logistic(model, X, y)
    assert pool not in _pool._pools and len(_pool._pools) == 1


@pytest.mark.redis
def test_a_cloud_pool_worker_whose_heartbeat_lapses_gets_no_fit(cloud, monkeypatch,
                                                                leaves_nothing):
    # A frozen function: its process is there, its heartbeat is not (what
    # the owner sees of a cloud function that died without a word).
    from sklearn_serverless._channel import _cloud as _pool_cloud

    monkeypatch.setattr(_pool_cloud, "HEARTBEAT_SECONDS", 2.0)
    X, y = make_classification(600, 5, random_state=14)
    with config_context(worker_pool=True):
        _cloud_fit(cloud, ServerlessLogisticRegression(n_workers=2), X, y)
        pool = _pool._pools[0]
        victim = pool.pids()[1]
        os.kill(victim, signal.SIGSTOP)
        try:
            deadline = time.monotonic() + 10
            while 1 not in pool.lost_slots() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert pool.lost_slots()[1] == "its pool worker stopped renewing its heartbeat"
            model, _ = _cloud_fit(cloud, ServerlessLogisticRegression(n_workers=2), X, y)
        finally:
            if process_alive(victim):  # else the old pool's shutdown killed it
                os.kill(victim, signal.SIGCONT)
        _same_logistic(model, X, y)
        assert model.timings_["generations"] == 1  # never handed to the frozen worker
    assert pool not in _pool._pools and len(_pool._pools) == 1
    assert not _wait_gone([victim])


_CLOUD_OWNER = textwrap.dedent("""
    import json, sys, time
    from sklearn.datasets import make_classification
    from sklearn_serverless import ServerlessLogisticRegression, config_context
    from sklearn_serverless._channel import _cloud as _pool_cloud
    from sklearn_serverless._driver import _pool

    _pool_cloud.HEARTBEAT_SECONDS = 2.0
    config, redis_url = json.loads(sys.argv[1]), sys.argv[2]
    X, y = make_classification(700, 5, random_state=5)
    with config_context(worker_pool=True):
        ServerlessLogisticRegression(n_workers=2, backend=config,
                                     state_store=redis_url).fit(X, y)
    print(json.dumps({"pids": _pool.live_pids()}), flush=True)
    time.sleep(120)
""")


@pytest.mark.redis
def test_a_killed_owner_leaves_no_cloud_pool_behind(moto_server, redis_server):
    from conftest import Cloud

    cloud = Cloud("minio", moto_server, redis_server, moto_server.create_bucket("sks-owner"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with _ended(subprocess.Popen([sys.executable, "-c", _CLOUD_OWNER,
                                  json.dumps(cloud.config), redis_server.url],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                 text=True)) as owner:
        line = owner.stdout.readline()
        assert line, owner.stderr.read()[-3000:]
        pids = json.loads(line)["pids"]
        assert len(pids) == 2 and _pool_keys(cloud)
        owner.send_signal(signal.SIGKILL)
        owner.wait(10)
    assert not _wait_gone(pids)
    deadline = time.monotonic() + 10  # the heartbeats lapse
    while _pool_keys(cloud) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _pool_keys(cloud) == [] and cloud.state_keys() == []
    # What stays is the Lithops job files of the killed owner's map, as with a
    # killed fit: no job, result or data object of a fit.
    assert _fit_objects(cloud) == []
    leftovers = moto_server.keys("sks-owner")
    if leftovers:
        moto_server.client.delete_objects(
            Bucket="sks-owner", Delete={"Objects": [{"Key": key} for key in leftovers]})


def _parquet_rows(tmp_path, n: int = 3000):
    """A labelled Parquet file of 4 row groups, and its rows in memory."""
    import pandas as pd

    from sklearn_serverless import read_parquet

    X, y = make_classification(n, 6, random_state=10)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(6)])
    frame["y"] = y
    frame.to_parquet(tmp_path / "rows.parquet", row_group_size=n // 4)
    return read_parquet(str(tmp_path / "rows.parquet"), label="y"), X, y


def test_predictions_on_a_dataset_run_on_the_pool_of_the_fit(tmp_path, leaves_nothing):
    """The fit's pool serves the prediction: each read lands on the slot that
    kept its rows (a view that leaves out worker 0's rows too), no new map."""
    data, X, y = _parquet_rows(tmp_path)
    model = ServerlessLogisticRegression(n_workers=2).fit(data)
    pool = _pool._pools[0]
    jobs = pool.jobs
    tail = np.arange(2000, 3000)  # worker 1's rows only
    reference = LogisticRegression().fit(X, y)
    np.testing.assert_allclose(model.predict_proba(data[tail]),
                               reference.predict_proba(X[tail]), atol=1e-8)
    assert model.score(data) == reference.score(X, y)
    assert _pool._pools == [pool] and pool.jobs == jobs + 2
    # Billed as a fit on the pool: no invocation, every pool function since the last job.
    cost = last_cost()
    assert cost["requests"] == 0 and cost["seconds"].shape == (2,)
    assert np.all(cost["seconds"] > 0)
    assert data.fetched()["reads"] == 2 + 1 + 2
    assert data.fetched()["cache_hits"] == 3  # every read after the fit's two


def test_a_pool_process_killed_before_a_prediction(tmp_path, leaves_nothing, monkeypatch):
    """A pool worker lost while the calls applying a model wait for it: an
    error naming it, the pool discarded; the next prediction runs anyway."""
    data, X, y = _parquet_rows(tmp_path)
    model = ServerlessLogisticRegression(n_workers=2).fit(data)
    pool = _pool._pools[0]
    victim = pool.pids()[1]
    submit = _pool.Pool.submit

    def killing_first(self, entry, tasks):
        os.kill(victim, signal.SIGKILL)  # after the pool was found alive, before the job
        assert not _wait_gone([victim])
        return submit(self, entry, tasks)

    monkeypatch.setattr(_pool.Pool, "submit", killing_first)
    with pytest.raises(RuntimeError, match="pool worker 1 of 2 was lost while applying"):
        model.predict(data)
    monkeypatch.setattr(_pool.Pool, "submit", submit)
    assert pool not in _pool._pools and not _wait_gone(pool.pids())
    reference = LogisticRegression().fit(X, y)
    np.testing.assert_array_equal(model.predict(data), reference.predict(X))  # a one-off map
    assert _pool._pools == []
