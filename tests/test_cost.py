"""What a fit costs (``timings_['cost']``), checked against what the test
counts itself: the invocations, the requests an S3 server (moto, with a
counter in front of it) answered, and the commands a redis-server executed
(``INFO commandstats``, less those run inside scripts: ``MONITOR``)."""

from __future__ import annotations

import threading
from collections import Counter
from urllib.parse import parse_qs

import boto3
import numpy as np
import pytest
import redis
from conftest import _free_port
from sklearn.datasets import make_classification

from sklearn_serverless import (
    ServerlessKMeans,
    ServerlessLogisticRegression,
    config_context,
    last_cost,
)
from sklearn_serverless._common._prices import PRICES
from sklearn_serverless._driver._backends import site_of
from sklearn_serverless._driver._cost import bill, cost_line

BUCKET = "sks-cost-tests"


class CountingS3:
    """moto's S3 server in a thread of this process, counting the requests it
    answers by the classes object stores price (GET, PUT, LIST, HEAD, DELETE)."""

    def __init__(self):
        from moto.moto_server.threaded_moto_server import ThreadedMotoServer
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        self.counts: Counter = Counter()
        lock = threading.Lock()
        app = DomainDispatcherApplication(create_backend_app)

        def counted(environ, start_response):
            with lock:
                self.counts[_request_class(environ)] += 1
            return app(environ, start_response)

        class Server(ThreadedMotoServer):
            def _server_entry(server):
                server._server = make_server(server._ip_address, server._port, counted, True,
                                             request_handler=MotoRequestHandler)
                server._server_ready_event.set()
                server._server.serve_forever()

        self.endpoint = f"http://127.0.0.1:{_free_port()}"
        self.server = Server("127.0.0.1", int(self.endpoint.rsplit(":", 1)[1]), verbose=False)
        self.server.start()
        boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                     aws_access_key_id="testing", aws_secret_access_key="testing",
                     ).create_bucket(Bucket=BUCKET)

    def config(self) -> dict:
        return {"lithops": {"backend": "localhost", "storage": "minio"},
                "minio": {"endpoint": self.endpoint, "access_key_id": "testing",
                          "secret_access_key": "testing", "storage_bucket": BUCKET}}


def _request_class(environ) -> str:
    method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    if method == "GET" and ("list-type" in query or path.strip("/").count("/") == 0):
        return "LIST"
    if method == "POST" and "delete" in query:
        return "DELETE"
    return method


@pytest.fixture(scope="module")
def s3():
    server = CountingS3()
    yield server
    server.server.stop()


class ScriptCommands:
    """Counts the commands a redis-server runs inside Lua scripts (MONITOR
    shows them as from ``lua``): ``INFO commandstats`` counts them too."""

    def __init__(self, server):
        self.server, self.lua, self.done = server, 0, threading.Event()
        self.monitor = server.client.monitor().__enter__()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while True:
            try:
                command = self.monitor.next_command()
            except (redis.TimeoutError, redis.ConnectionError):
                continue
            if self.done.is_set() and command["command"] == "PING":
                return  # every command before it has been read
            self.lua += command.get("client_type") == "lua"

    def stop(self) -> int:
        self.done.set()
        self.server.client.ping()
        self.thread.join(10)
        assert not self.thread.is_alive()
        self.monitor.__exit__(None, None, None)
        return self.lua


def _fit_counted(s3, redis_server, estimator, X, y=None):
    """Fit with the test's own counts: S3 requests, Redis commands sent."""
    scripts = ScriptCommands(redis_server)
    redis_server.client.ping()  # the test's connections are open before the count starts
    s3.counts.clear()
    redis_server.client.config_resetstat()
    estimator.fit(X, y)
    stats = redis_server.client.info("commandstats")
    lua = scripts.stop()
    own = ("cmdstat_config|resetstat",)
    commands = sum(v["calls"] for k, v in stats.items() if k not in own) - lua
    return dict(s3.counts), commands


@pytest.mark.redis
def test_counts_match_the_servers_own(s3, redis_server, leaves_nothing):
    X, y = make_classification(3000, 5, random_state=0)
    est = ServerlessLogisticRegression(n_workers=3, backend=s3.config(),
                                       state_store=redis_server.url)
    requests, commands = _fit_counted(s3, redis_server, est, X, y)
    cost = est.timings_["cost"]
    assert {k: v for k, v in cost["storage_requests"].items() if v} == requests
    assert requests["GET"] >= 9 and requests["PUT"] >= 9  # 3 arrays per worker, each way
    assert cost["redis_commands"] == commands > 0
    assert cost["requests"] == 3
    assert cost["gb_seconds"].shape == (3,)
    # Localhost compute costs nothing, its storage requests and Redis commands do.
    items = cost["usd_by_item"]
    assert items["compute"] == items["invocations"] == 0
    expected = sum(n * PRICES["storage"][k] for k, n in requests.items())
    assert items["storage"] == pytest.approx(expected)
    assert items["redis"] == pytest.approx(commands * PRICES["redis"]["command"])


def test_priced_as_lambda(no_pool, capsys):
    """A fit on this machine priced as Lambda: GB-s from each call's span,
    invocations, the INIT of cold calls, and the verbose line."""
    X, y = make_classification(500, 4, random_state=0)
    with config_context(price_as="aws_lambda", prices={"aws_lambda": {"memory_mb": 2048}}):
        est = ServerlessLogisticRegression(n_workers=2, verbose=1).fit(X, y)
        cost = last_cost()
    assert cost is est.timings_["cost"]
    assert cost["priced_as"] == "aws_lambda" and cost["requests"] == 2
    assert np.all(cost["seconds"] > 0) and cost["seconds"].sum() < 2 * est.timings_["fit"]
    np.testing.assert_allclose(cost["gb_seconds"], cost["seconds"] * 2)
    lam = PRICES["aws_lambda"]
    assert cost["usd"] == pytest.approx(cost["gb_seconds"].sum() * lam["gb_second"]
                                        + 2 * lam["request"])
    assert cost_line(cost, "ServerlessLogisticRegression") in capsys.readouterr().out
    # Without price_as, this machine costs nothing.
    assert ServerlessKMeans(2, n_workers=2, n_init=1).fit(X).timings_["cost"]["usd"] == 0


def test_a_pool_bills_its_idle_functions(pools_on):
    """A fit on a pool is billed for all its functions since the pool's
    previous fit ended: the idle time between fits included."""
    import time

    X, y = make_classification(500, 4, random_state=0)
    with config_context(price_as="aws_lambda"):
        first = ServerlessLogisticRegression(n_workers=2).fit(X, y).timings_["cost"]
        time.sleep(0.5)
        second = ServerlessLogisticRegression(n_workers=2).fit(X, y)
    cost = second.timings_["cost"]
    assert first["requests"] == 2 and cost["requests"] == 0  # the pool was invoked once
    assert np.all(cost["seconds"] >= 0.5)
    assert np.all(cost["seconds"] <= 0.5 + second.timings_["fit"] + 0.2)


def test_prices_and_settings():
    config = {"lithops": {"backend": "aws_lambda"},
              "aws_lambda": {"runtime_memory": 1024, "architecture": "arm64"}}
    cost = bill(config, site_of("localhost"), np.array([2.0, 4.0]), 0.0, 2,
                {"GET": 10, "PUT": 4, "redis": 1000})
    arm = PRICES["aws_lambda_arm64"]
    assert cost["priced_as"] == "aws_lambda_arm64"
    np.testing.assert_allclose(cost["gb_seconds"], [2.0, 4.0])
    assert cost["usd"] == pytest.approx(
        6 * arm["gb_second"] + 2 * arm["request"] + 10 * PRICES["storage"]["GET"]
        + 4 * PRICES["storage"]["PUT"] + 1000 * PRICES["redis"]["command"])
    with config_context(prices={"k8s": {"gb_second": 1e-5}}):
        k8s = bill({"lithops": {"backend": "k8s"}}, site_of("localhost"), np.array([1.0]),
                   0.0, 1, {})
    assert k8s["usd"] == pytest.approx(1e-5 * 512 / 1024)
    with pytest.raises(ValueError, match="price_as must be one of"):
        with config_context(price_as="aws_lamda"):
            pass
    with pytest.raises(ValueError, match="prices"):
        with config_context(prices={"aws_lambda": {"gb_second": -1}}):
            pass


def test_a_replaced_generation_is_billed(kill_worker, no_pool, leaves_nothing):
    """A worker killed mid-fit: both generations' functions are billed, the
    killed one's too (no statistics: from its submission to its loss)."""
    from sklearn.datasets import make_blobs

    X, _ = make_blobs(3000, 5, centers=12, cluster_std=3.0, random_state=0)
    kill_worker("kmeans", 1, at=6)
    with config_context(price_as="aws_lambda"):
        model = ServerlessKMeans(12, init=X[:12], n_init=1, tol=0, max_iter=40, n_workers=2,
                                 timeout=30).fit(X)
    cost = model.timings_["cost"]
    assert model.timings_["generations"] == 2
    assert cost["requests"] == 4 and cost["seconds"].shape == (4,)
    assert np.all(cost["seconds"] > 0)
    assert cost["seconds"].sum() < 4 * model.timings_["fit"]


def test_applying_a_model_on_a_dataset(s3):
    """predict on a dataset in the S3 server: the requests of the calls that
    read it and of the driver, as the server counted them."""
    import io

    from sklearn.cluster import KMeans

    from sklearn_serverless import read_npy
    from sklearn_serverless._algorithms import ALGORITHMS
    from sklearn_serverless._driver._apply import run_apply
    from sklearn_serverless._driver._backends import open_storage

    X, _ = make_classification(3000, 4, random_state=1)
    buffer = io.BytesIO()
    np.save(buffer, X)
    client = boto3.client("s3", endpoint_url=s3.endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.put_object(Bucket=BUCKET, Key="apply/X.npy", Body=buffer.getvalue())
    try:
        reference = KMeans(3, n_init=1, random_state=0).fit(X)
        dataset = read_npy(f"{BUCKET}/apply/X.npy").resolve(open_storage(s3.config()))
        s3.counts.clear()
        parts = run_apply(ALGORITHMS["kmeans"], "labels", dict(centers=reference.cluster_centers_),
                          dataset, backend=s3.config(), n_workers=2, timeout=30)
        requests = dict(s3.counts)
    finally:
        client.delete_object(Bucket=BUCKET, Key="apply/X.npy")
    np.testing.assert_array_equal(np.concatenate([p["labels"] for p in parts]),
                                  reference.labels_)
    cost = last_cost()
    assert cost["requests"] == len(parts) == 2
    assert {k: v for k, v in cost["storage_requests"].items() if v} == requests
    assert requests["GET"] >= 2  # each call read its rows
