"""Shared fixtures: a real ``redis-server`` and an S3-compatible object store
(moto's server mode) on free loopback ports, and checks that a fit left
nothing behind."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import cloudpickle
import pytest

#: Set by .ci/run: a missing redis-server is then a failure, not a skip.
REQUIRE_REDIS = os.environ.get("SKLEARN_SERVERLESS_REQUIRE_REDIS") == "1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(process: subprocess.Popen) -> None:
    """Terminate a server of ours, killing it if it does not stop in 10 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class RedisServer:
    """A ``redis-server`` process of our own, without persistence. ``args``
    add settings (a password, TLS); ``url`` is then how clients reach it."""

    def __init__(self, binary: str, args: tuple[str, ...] = (), url: str | None = None):
        self.port = _free_port()
        self.url = url.format(port=self.port) if url else f"redis://127.0.0.1:{self.port}/0"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--protected-mode", "yes", *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        import redis

        from sklearn_serverless._state._redis_url import connect, split_ca_bundle

        url, ca_data = split_ca_bundle(self.url)
        self.client = connect(url, 10.0, ca_data)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.02)

    def keys(self) -> list[bytes]:
        return list(self.client.scan_iter(count=1000))

    def stop(self) -> None:
        stop_process(self.process)
        self.client.close()


def _start_redis(**options) -> RedisServer:
    binary = shutil.which("redis-server")
    if binary is None:
        if REQUIRE_REDIS:
            pytest.fail("redis-server is not installed (SKLEARN_SERVERLESS_REQUIRE_REDIS=1)")
        pytest.skip("redis-server is not installed")
    return RedisServer(binary, **options)


@pytest.fixture(scope="session")
def redis_server():
    """One server for the whole session; tests check it holds no keys after."""
    server = _start_redis()
    yield server
    server.stop()


class MotoServer:
    """moto's S3 server in a process of its own (so a test can stop it)."""

    ACCESS_KEY = "testing"
    SECRET_KEY = "testing"

    def __init__(self):
        import boto3

        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.client = boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id=self.ACCESS_KEY, aws_secret_access_key=self.SECRET_KEY,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                self.client.list_buckets()
                break
            except Exception:  # noqa: BLE001 - not listening yet
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.05)

    def create_bucket(self, name: str) -> str:
        self.client.create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def storage_config(self, bucket: str, backend: str = "minio") -> dict:
        """The Lithops storage section that reaches this server."""
        return {"endpoint": self.endpoint, "access_key_id": self.ACCESS_KEY,
                "secret_access_key": self.SECRET_KEY, "storage_bucket": bucket}

    def stop(self) -> None:
        stop_process(self.process)


@pytest.fixture(scope="session")
def moto_server():
    """One object store for the whole session; tests check their buckets are empty after."""
    server = MotoServer()
    yield server
    server.stop()


@pytest.fixture
def private_moto():
    """An object store for one test, which may stop it."""
    server = MotoServer()
    yield server
    server.stop()


@pytest.fixture
def private_redis():
    """A server for one test, which may stop it."""
    server = _start_redis()
    yield server
    server.stop()


def _lithops_job_files() -> set[str]:
    """Files of this process's Lithops session anywhere under Lithops' local
    temporary folder, whatever the storage (other processes may be running
    fits of their own)."""
    from lithops.constants import LITHOPS_TEMP_DIR, SESSION_ID_ENV

    session = os.environ.get(SESSION_ID_ENV, "")
    found = set()
    if not session:
        return found
    for dirpath, _, files in os.walk(LITHOPS_TEMP_DIR):
        if "runtimes" in dirpath:
            continue
        found.update(os.path.join(dirpath, name) for name in files
                     if session in os.path.join(dirpath, name))
    return found


def _scratch_folders() -> set[str]:
    found = set()
    for base in ("/dev/shm", tempfile.gettempdir()):
        if os.path.isdir(base):
            found.update(
                os.path.join(base, name) for name in os.listdir(base)
                if name.startswith(f"sklearn-serverless-{os.getpid()}-")
            )
    return found


#: Processes the fixtures start, which outlive single tests.
_SERVICES = (b"redis-server", b"moto.server", b"sklearn_serverless._driver._warm_server")


def _worker_processes() -> set[int]:
    """Child processes of this test process (Lithops' localhost workers)."""
    children = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and fields[0] != "Z":
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                    command = cmdline.read()
                    if any(name in command for name in _SERVICES):
                        continue
            except OSError:
                continue
            children.add(int(pid))
    return children


def _describe(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            text = cmdline.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return f"{pid}: (gone)"
    return f"{pid}: {text[:200]}"


@pytest.fixture
def no_pool(monkeypatch):
    """Fits of this test start their own map (no pool of workers): for tests
    that find the workers' processes in the process tree while a fit runs."""
    from sklearn_serverless import shutdown_workers

    shutdown_workers()
    monkeypatch.setenv("SKLEARN_SERVERLESS_POOL", "0")


@pytest.fixture
def pools_on(monkeypatch):
    """Pools as the package's settings say, whatever ``SKLEARN_SERVERLESS_POOL``
    the suite runs under (for the tests of pools)."""
    monkeypatch.delenv("SKLEARN_SERVERLESS_POOL", raising=False)


class IterationRecorder:
    """A scikit-learn callback (sklearn.callback's protocol) that records
    each task's end and the fitted estimator's inertia (k-means) or
    coefficients (logistic regression) at that point."""

    def __init__(self):
        self.begins, self.inertias, self.coefs = 0, [], []

    def setup(self, estimator, context):
        pass

    def teardown(self, estimator, context):
        pass

    def on_fit_task_begin(self, estimator, context, *, X=None, y=None, metadata=None):
        self.begins += 1

    def on_fit_task_end(self, estimator, context, *, X=None, y=None, metadata=None,
                        fitted_estimator=None):
        self.inertias.append(getattr(fitted_estimator, "inertia_", None))
        coef = getattr(fitted_estimator, "coef_", None)
        self.coefs.append(None if coef is None else coef.copy())


@pytest.fixture
def no_workers(monkeypatch):
    """Fails the test if a fit gets as far as launching workers."""
    from sklearn_serverless._driver import _fit

    def launched(*args, **kwargs):
        raise AssertionError("workers were launched")

    monkeypatch.setattr(_fit, "run_distributed", launched)


@pytest.fixture
def leaves_nothing():
    """Asserts that the test's fits left no temp folder, Lithops job file or
    worker process behind (Redis keys are checked by the tests themselves)."""
    files, folders = _lithops_job_files(), _scratch_folders()
    yield
    # Pools of workers outlive fits by design (the documented exception): the
    # test ends them, and then nothing may be left.
    from sklearn_serverless import shutdown_workers

    shutdown_workers()
    deadline = time.monotonic() + 5
    while True:
        left = {
            "lithops files": sorted(_lithops_job_files() - files),
            "temp folders": sorted(_scratch_folders() - folders),
            "processes": sorted(_describe(pid) for pid in _worker_processes()),
        }
        if not any(left.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not any(left.values()), left


# the cloud path on loopback (tests/test_cloud.py, tests/test_distributed_api.py) ---------

#: Lithops storages of the loopback cloud path: moto's S3 server, or Lithops' Redis storage.
CLOUD_STORAGES = ["minio", "redis"]
CLOUD_BUCKET = "sks-cloud-tests"


@pytest.fixture(scope="module")
def bucket(moto_server):
    return moto_server.create_bucket(CLOUD_BUCKET)


@pytest.fixture(scope="module")
def storage_redis():
    """A redis-server for Lithops' Redis storage backend, apart from the state
    store's: Lithops keeps its runtime metadata in its storage for good."""
    server = _start_redis()
    yield server
    server.stop()


class Cloud:
    """A Lithops config whose storage is remote, and what it holds."""

    def __init__(self, storage: str, moto, redis, bucket: str, storage_redis=None):
        self.storage, self.moto, self.redis, self.bucket = storage, moto, redis, bucket
        self.storage_redis = storage_redis
        self.config = {"lithops": {"backend": "localhost", "storage": storage}}
        if storage == "minio":
            self.config["minio"] = moto.storage_config(bucket)
        else:
            self.config["redis"] = {"host": "127.0.0.1", "port": storage_redis.port}

    def with_localhost(self, **settings) -> dict:
        return {**self.config, "localhost": settings}

    def objects(self) -> list[str]:
        """Every object in the storage (Lithops' own cache of runtime metadata aside)."""
        if self.storage == "minio":
            keys = self.moto.keys(self.bucket)
        else:
            keys = [key.decode() for key in self.storage_redis.keys()
                    if key.startswith(b"storage/")]
            if self.storage_redis.client.smembers("storage/") <= {b"lithops.runtimes/"}:
                keys = [key for key in keys if key != "storage/"]  # the root folder of that
        return [key for key in keys if "lithops.runtimes" not in key]

    def state_keys(self) -> list[bytes]:
        return [key for key in self.redis.keys() if key.startswith(b"sks:")]

    def assert_empty(self) -> None:
        assert self.objects() == []
        assert self.state_keys() == []


@pytest.fixture(params=CLOUD_STORAGES)
def cloud(request, moto_server, redis_server, bucket, storage_redis):
    cloud = Cloud(request.param, moto_server, redis_server, bucket, storage_redis)
    yield cloud
    cloud.assert_empty()


# faults, injected into a fit by replacing its algorithm in the registry ------------------

# The workers unpickle what these fixtures inject: send this module's code along.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


class KilledOnce:
    """Builds the worker of ``rank``; it SIGKILLs its own process when it
    handles its ``at``-th command, once per ``marker`` file (every time when
    ``marker`` is None)."""

    def __init__(self, build, rank: int, at: int, marker: str | None):
        self.build, self.rank, self.at, self.marker = build, rank, at, marker

    def __call__(self, data, params, context):
        worker = self.build(data, params, context)
        if context.rank != self.rank:
            return worker
        return _Dying(worker, self.at, self.marker)


class _Dying:
    def __init__(self, inner, at: int, marker: str | None):
        self.inner, self.at, self.marker, self.count = inner, at, marker, 0

    def handle(self, command, arrays):
        self.count += 1
        if self.count == self.at and (self.marker is None or not os.path.exists(self.marker)):
            if self.marker is not None:
                open(self.marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        return self.inner.handle(command, arrays)

    def result(self, *final):
        return self.inner.result(*final) if hasattr(self.inner, "result") else {}

    def close(self):
        if hasattr(self.inner, "close"):
            self.inner.close()


@pytest.fixture
def kill_worker(monkeypatch, tmp_path):
    """``kill_worker('kmeans', rank, at)``: that worker's process is killed
    at its ``at``-th command (``every=True``: in every generation)."""
    from sklearn_serverless._algorithms import ALGORITHMS

    def inject(name: str, rank: int, at: int, every: bool = False) -> None:
        algorithm = ALGORITHMS[name]
        marker = None if every else str(tmp_path / f"killed-{rank}")
        monkeypatch.setitem(ALGORITHMS, name, dataclasses.replace(
            algorithm, worker=KilledOnce(algorithm.worker, rank, at, marker)))

    return inject


class FailingBuild:
    """Builds the algorithm's worker, except on ``rank``: raises there."""

    def __init__(self, build, rank: int):
        self.build, self.rank = build, rank

    def __call__(self, data, params, context):
        if context.rank == self.rank:
            raise RuntimeError("injected failure")
        return self.build(data, params, context)


@pytest.fixture
def fail_worker(monkeypatch):
    """``fail_worker('kmeans', 1)``: worker 1 of the next fits raises."""
    from sklearn_serverless._algorithms import ALGORITHMS

    def inject(name: str, rank: int) -> None:
        algorithm = ALGORITHMS[name]
        dataset_worker = algorithm.dataset_worker or algorithm.worker
        monkeypatch.setitem(ALGORITHMS, name, dataclasses.replace(
            algorithm, worker=FailingBuild(algorithm.worker, rank),
            dataset_worker=FailingBuild(dataset_worker, rank)))

    return inject


def never_start(task, storage=None):
    """A Lithops call that never reaches the worker loop (a stuck start)."""
    while True:
        time.sleep(1)


@pytest.fixture
def hang_workers(monkeypatch, no_pool):
    """Every worker of the next fits' own map hangs before it checks in (a
    Lithops call that never starts; pools, whose calls are running, are off)."""
    from sklearn_serverless._driver import _fit

    monkeypatch.setattr(_fit, "run_worker", never_start)


@pytest.fixture
def slow_kmeans_worker(monkeypatch):
    """``slow_kmeans_worker(rank, seconds)``: that k-means worker sleeps this
    long per chunk of rows it takes (a slow CPU)."""
    from sklearn_serverless._algorithms import ALGORITHMS
    from sklearn_serverless._algorithms.kmeans._worker import Worker

    def inject(rank: int, seconds: float) -> None:
        class SlowWorker(Worker):
            def __init__(self, data, params, team):
                if team.rank == rank:
                    self.pause_per_chunk = seconds
                super().__init__(data, params, team)

        monkeypatch.setitem(ALGORITHMS, "kmeans",
                            dataclasses.replace(ALGORITHMS["kmeans"], worker=SlowWorker))

    return inject
