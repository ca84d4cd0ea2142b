"""The cloud path on loopback: data as objects in a real S3-compatible server
(moto) or in Lithops' Redis storage, shared state in a real redis-server,
the package shipped to the functions, the same code a cloud runs. Compute is
Lithops localhost: the only compute backend that runs on this machine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from conftest import Cloud
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs, make_classification
from sklearn.linear_model import LogisticRegression
from test_kmeans import _fit_in_thread, _worker_pids

from sklearn_serverless import ServerlessKMeans, ServerlessLogisticRegression
from sklearn_serverless._driver import _placement

pytestmark = pytest.mark.redis

class Watcher:
    """Counts the fit's data objects while a fit runs (they exist only then)."""

    def __init__(self, cloud: Cloud):
        self.cloud, self.most = cloud, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            found = [key for key in self.cloud.objects() if "sklearn-serverless/" in key]
            self.most = max(self.most, len(found))
            time.sleep(0.01)

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture(scope="module")
def blobs():
    X, _ = make_blobs(3001, 5, centers=4, cluster_std=2.0, random_state=0)
    return X, X[[0, 700, 1400, 2100]].copy()


@pytest.mark.parametrize("mode", ["lock_free", "locked"])
def test_kmeans_on_the_cloud_path_is_sklearns(cloud, blobs, mode, leaves_nothing):
    X, init = blobs
    reference = KMeans(4, init=init, n_init=1).fit(X)
    with Watcher(cloud) as watcher:
        model = ServerlessKMeans(4, init=init, n_workers=3, backend=cloud.config,
                                 state_store=cloud.redis.url, state_mode=mode,
                                 timeout=60).fit(X)
    assert watcher.most >= 3  # one object per worker at least, in the storage
    np.testing.assert_allclose(model.cluster_centers_, reference.cluster_centers_, rtol=1e-9)
    np.testing.assert_array_equal(model.labels_, reference.labels_)
    assert model.n_iter_ == reference.n_iter_
    assert model.n_workers_ == 3
    assert model.timings_["upload"] > 0
    assert model.timings_["load"].shape == (3,)


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("mode", ["lock_free", "locked"])
def test_logistic_on_the_cloud_path_is_sklearns(cloud, n_classes, mode, leaves_nothing):
    X, y = make_classification(1500, 6, n_informative=4, n_redundant=0, n_classes=n_classes,
                               n_clusters_per_class=1, random_state=n_classes)
    weights = np.random.RandomState(0).uniform(0.5, 2.0, len(y))
    reference = LogisticRegression(tol=1e-10, max_iter=1000).fit(X, y, sample_weight=weights)
    with Watcher(cloud) as watcher:
        model = ServerlessLogisticRegression(
            tol=1e-10, max_iter=1000, n_workers=3, backend=cloud.config,
            state_store=cloud.redis.url, state_mode=mode, timeout=60,
        ).fit(X, y, sample_weight=weights)
    assert watcher.most >= 3
    np.testing.assert_allclose(model.coef_, reference.coef_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(model.intercept_, reference.intercept_, rtol=1e-6, atol=1e-8)


# what must happen before anything is uploaded --------------------------------------------


@pytest.fixture
def no_upload(monkeypatch):
    """Fails the test if any data is put in storage."""

    def tripwire(*args, **kwargs):
        raise AssertionError("data was uploaded")

    monkeypatch.setattr(_placement, "write_objects", tripwire)


@pytest.mark.parametrize("bad", ["nan", "shape", "object"])
def test_bad_input_fails_before_any_upload(cloud, blobs, bad, no_upload, leaves_nothing):
    X, init = blobs
    X = X.copy()
    if bad == "nan":
        X[5, 2] = np.nan
        expected = "NaN"
    elif bad == "shape":
        X = X[:, 0]
        expected = "2D array"
    else:
        X = X.astype(object)
        X[3, 1] = "x"
        expected = "could not convert"
    for model in (ServerlessKMeans(4, n_workers=3, backend=cloud.config,
                                   state_store=cloud.redis.url),
                  ServerlessLogisticRegression(n_workers=3, backend=cloud.config,
                                               state_store=cloud.redis.url)):
        with pytest.raises(ValueError, match=expected):
            model.fit(X, (X[:, 0] > 0).astype(int) if X.ndim == 2 else X > 0)


def test_remote_storage_needs_a_redis_url(cloud, blobs, no_upload, leaves_nothing):
    X, _ = blobs
    with pytest.raises(ValueError, match=r"state_store='redis://.*host:port"):
        ServerlessKMeans(4, n_workers=2, backend=cloud.config).fit(X)


# workers that cannot all run at once -----------------------------------------------------


def test_fewer_functions_than_workers_fail_at_the_start(cloud, blobs, leaves_nothing):
    X, init = blobs
    # Two functions at a time, as a backend's concurrency limit would allow.
    config = cloud.with_localhost(worker_processes=2)
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"only 2 of 3 workers started within 10 s "
                                           r"\(not started: 2\).*worker_processes=2"):
        ServerlessKMeans(4, init=init, n_workers=3, backend=config,
                         state_store=cloud.redis.url, timeout=20).fit(X)
    assert time.monotonic() - started < 18  # well before the 20 s timeout


# faults on the cloud path -----------------------------------------------------------------


def test_raising_worker_on_the_cloud_path(cloud, blobs, fail_worker, leaves_nothing):
    X, init = blobs
    fail_worker("kmeans", 2)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="worker 2 of 3 failed: injected failure"):
        ServerlessKMeans(4, init=init, n_workers=3, backend=cloud.config,
                         state_store=cloud.redis.url, timeout=30).fit(X)
    assert time.monotonic() - started < 15


@pytest.fixture(scope="module")
def long_fit_data():
    X, y = make_classification(2000, 5, random_state=0)
    return X, y


def _start_long_fit(cloud: Cloud, X, y, state_store: str):
    """Gradient descent with tol=0 runs until max_iter: rounds for minutes."""
    model = ServerlessLogisticRegression(solver="gd", tol=0, max_iter=10**7, n_workers=2,
                                         backend=cloud.config, state_store=state_store,
                                         timeout=20)
    return _fit_in_thread(model, X, y)


def _wait_for_rounds(redis_client, count: int = 3) -> None:
    """Until the fit has run ``count`` rounds (its state shows the round)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        rounds = [int(redis_client.get(key) or -1)
                  for key in redis_client.scan_iter(match="sks:*:round")]
        if rounds and max(rounds) >= count:
            return
        time.sleep(0.02)
    raise AssertionError("the fit did not start its rounds")


def test_killed_worker_on_the_cloud_path_without_replacements(cloud, long_fit_data,
                                                              leaves_nothing):
    # Replacement off: the lost worker ends the fit, named, within seconds
    # (tests/test_faults.py has fits that survive it).
    from sklearn_serverless import config_context

    X, y = long_fit_data
    model = ServerlessLogisticRegression(solver="gd", tol=0, max_iter=10**7, n_workers=2,
                                         backend=cloud.config, state_store=cloud.redis.url,
                                         timeout=20)

    class WithoutReplacements:
        def fit(self, X, y):
            with config_context(max_replacements=0):
                model.fit(X, y)

    thread, outcome = _fit_in_thread(WithoutReplacements(), X, y)
    _wait_for_rounds(cloud.redis.client)
    victims = _worker_pids(os.getpid())
    assert len(victims) == 2, victims
    killed_at = time.monotonic()
    os.kill(max(victims), signal.SIGKILL)
    thread.join(40)
    assert not thread.is_alive()
    assert time.monotonic() - killed_at < 25
    assert "was lost 1 time(s), more than max_replacements=0" in str(outcome["error"])


def _stop_during_a_fit(cloud: Cloud, state, server) -> BaseException:
    """Start a long fit, stop ``server`` in its rounds; the fit's error."""
    X, y = make_classification(2000, 5, random_state=0)
    thread, outcome = _start_long_fit(cloud, X, y, state.url)
    _wait_for_rounds(state.client)
    stopped_at = time.monotonic()
    server.stop()
    thread.join(60)
    assert not thread.is_alive()
    assert time.monotonic() - stopped_at < 45
    return outcome["error"]


def test_object_store_stopped_during_a_fit(private_moto, redis_server, leaves_nothing):
    cloud = Cloud("minio", private_moto, redis_server, private_moto.create_bucket("doomed"))
    error = _stop_during_a_fit(cloud, redis_server, private_moto)
    assert "storage" in str(error).lower(), error
    # The objects went with the server; nothing else may remain.
    assert cloud.state_keys() == []


def test_redis_stopped_during_a_fit(moto_server, bucket, private_redis, leaves_nothing):
    cloud = Cloud("minio", moto_server, private_redis, bucket)
    error = _stop_during_a_fit(cloud, private_redis, private_redis)
    assert "worker" in str(error) and "failed" in str(error)
    assert cloud.objects() == []


# the package reaches the functions by Lithops' module shipping ----------------------------


_BLOCKER = '''
"""Installed by the test: this interpreter cannot import sklearn_serverless
except from the modules Lithops ships with a job."""
import importlib.machinery
import sys


class _ShippedOnly:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name != "sklearn_serverless":
            return None
        shipped = [entry for entry in sys.path if "/modules/" in entry]
        spec = importlib.machinery.PathFinder.find_spec(name, shipped)
        if spec is None:
            raise ModuleNotFoundError("No module named 'sklearn_serverless' (blocked)")
        return spec


sys.meta_path.insert(0, _ShippedOnly)
'''


@pytest.fixture
def interpreter_without_the_package(tmp_path):
    """A localhost runtime (an executable Lithops runs as its Python) that has
    every dependency but cannot import the installed sklearn_serverless."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(textwrap.dedent(_BLOCKER))
    runtime = tmp_path / "python"
    runtime.write_text(f'#!/bin/sh\nPYTHONPATH="{site}" exec "{sys.executable}" "$@"\n')
    runtime.chmod(0o755)
    return str(runtime)


def test_workers_run_the_shipped_package(cloud, blobs, interpreter_without_the_package,
                                         leaves_nothing):
    runtime = interpreter_without_the_package
    check = subprocess.run([runtime, "-c", "import sklearn_serverless"], capture_output=True,
                           text=True, timeout=60)
    assert check.returncode != 0 and "blocked" in check.stderr
    X, init = blobs
    reference = KMeans(4, init=init, n_init=1).fit(X)
    config = cloud.with_localhost(runtime=runtime)
    model = ServerlessKMeans(4, init=init, n_workers=3, backend=config,
                             state_store=cloud.redis.url, timeout=60).fit(X)
    np.testing.assert_allclose(model.cluster_centers_, reference.cluster_centers_, rtol=1e-9)
