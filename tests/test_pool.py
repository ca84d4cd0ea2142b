"""Pools of workers that serve many fits: real Lithops maps, real processes.

Fits served by a pool give scikit-learn's models; two fits at once (threads
of one process, two processes) each get theirs; a pool process killed
between fits or during one; the idle end; the owner's death; and nothing
left once the pools are shut down (``leaves_nothing``)."""

from __future__ import annotations

import dataclasses
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
    shutdown_workers,
)
from sklearn_serverless._algorithms import ALGORITHMS
from sklearn_serverless._execution import _pool
from sklearn_serverless._execution._generations import process_alive

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(autouse=True)
def no_pool_before():
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
    from sklearn_serverless._execution import _pool

    seed, mode = int(sys.argv[1]), sys.argv[2]
    X, y = make_classification(700, 5, random_state=seed)
    coefs = [ServerlessLogisticRegression(n_workers=2).fit(X, y).coef_.tolist()
             for _ in range(3)]
    print(json.dumps({"coefs": coefs, "pids": _pool.live_pids()}), flush=True)
    if mode == "linger":
        time.sleep(120)
""")


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
    owner = _owner(7, "linger")
    line = owner.stdout.readline()
    assert line, owner.stderr.read()[-3000:]
    pids = json.loads(line)["pids"]
    assert pids and all(process_alive(pid) for pid in pids)
    owner.send_signal(signal.SIGKILL)
    owner.wait(10)
    owner.stdout.close()
    owner.stderr.close()
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


class _KilledOnce:
    def __init__(self, build, rank: int, at: int, marker: str):
        self.build, self.rank, self.at, self.marker = build, rank, at, marker

    def __call__(self, data, params, context):
        worker = self.build(data, params, context)
        return _Dying(worker, self.at, self.marker) if context.rank == self.rank else worker


class _Dying:
    def __init__(self, inner, at: int, marker: str):
        self.inner, self.at, self.marker, self.count = inner, at, marker, 0

    def handle(self, command, arrays):
        self.count += 1
        if self.count == self.at and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        return self.inner.handle(command, arrays)

    def result(self):
        return self.inner.result()

    def close(self):
        self.inner.close()


@pytest.mark.parametrize("rank", [1, 0], ids=["follower", "coordinator"])
def test_a_pool_process_killed_during_a_fit(rank, monkeypatch, tmp_path, leaves_nothing):
    X, y = make_classification(3000, 8, random_state=9)
    ServerlessLogisticRegression(n_workers=2).fit(X, y)
    old = _pool._pools[0]
    algorithm = ALGORITHMS["logistic"]
    monkeypatch.setitem(ALGORITHMS, "logistic", dataclasses.replace(
        algorithm, worker=_KilledOnce(algorithm.worker, rank, 4, str(tmp_path / "killed"))))
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


@pytest.mark.redis
def test_the_loopback_cloud_path_uses_a_pool_when_asked(cloud, leaves_nothing):
    # Localhost compute with remote storage (moto's S3 or Lithops' Redis
    # storage) and a Redis state store: pools are opt-in there.
    X, y = make_classification(900, 6, random_state=11)
    with config_context(worker_pool=True):
        for C in (0.5, 2.0):
            model = ServerlessLogisticRegression(C=C, n_workers=2, backend=cloud.config,
                                                 state_store=cloud.redis.url).fit(X, y)
            _same_logistic(model, X, y, C=C)
    assert len(_pool._pools) == 1 and _pool._pools[0].jobs == 2
    # Each fit's data objects and state keys are gone; the pool's own Lithops
    # job stays in the storage while it lives.
    assert [key for key in cloud.objects()
            if "lithops.jobs" not in key and key not in ("storage/", "storage/lithops.jobs/")] == []
    assert cloud.state_keys() == []
    # By default ('auto') that site starts a map per fit.
    ServerlessLogisticRegression(n_workers=2, backend=cloud.config,
                                 state_store=cloud.redis.url).fit(X, y)
    assert _pool._pools[0].jobs == 2
    shutdown_workers()
    cloud.assert_empty()
