"""Fits that survive what serverless platforms do: a worker's process
killed mid-fit (a follower or the coordinator; the embedded store and Redis,
both state modes; the loopback cloud path), the function time limit, a
duplicate call for a slot, a slot lost every time, a driver killed mid-fit,
and a worker of a replaced generation that wakes up late and writes.
Faults are injected by the tests: a worker that SIGKILLs its own process
once, from a marker file, at a chosen round.

The ``remote`` fixture runs the loopback cloud path exactly as a remote
backend: the driver takes the workers for functions on other machines (no
local pids, never waiting for local processes), so a replaced generation's
functions may still run while the next one works, as on a cloud."""

from __future__ import annotations

import dataclasses
import os
import pickle
import signal
import subprocess
import sys
import threading
import time

import cloudpickle
import numpy as np
import pytest
from conftest import Cloud
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs, make_classification
from sklearn.linear_model import LogisticRegression

from sklearn_serverless import (
    ServerlessKMeans,
    ServerlessLogisticRegression,
    config_context,
    shutdown_workers,
)
from sklearn_serverless._driver._backends import Site

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _descendants(root: int) -> set[int]:
    parents = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                parents[int(pid)] = int(stat.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _await_orphans_gone(seconds: float = 20.0) -> None:
    """Until no Lithops process of this machine is left that is not ours (a
    killed driver's workers, re-parented, end within a lease)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ours = _descendants(os.getpid()) | {os.getpid()}
        orphans = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                    command = cmdline.read()
            except OSError:
                continue
            if int(pid) not in ours and (b"localhost-runner" in command
                                         or b"sklearn_serverless" in command):
                orphans.append(int(pid))
        if not orphans:
            return
        time.sleep(0.1)
    raise AssertionError(f"a killed driver's workers still run: {orphans}")


@pytest.fixture(scope="module")
def blobs():
    X, _ = make_blobs(20_000, 8, centers=12, cluster_std=4.0, random_state=1)
    return X, X[:12].copy()


def _same_kmeans(model, X, init, max_iter):
    reference = KMeans(12, init=init, n_init=1, tol=0, max_iter=max_iter).fit(X)
    np.testing.assert_allclose(model.cluster_centers_, reference.cluster_centers_,
                               rtol=0, atol=1e-9)
    np.testing.assert_array_equal(model.labels_, reference.labels_)
    assert model.n_iter_ == reference.n_iter_
    assert model.inertia_ == pytest.approx(reference.inertia_, rel=1e-12)


@pytest.mark.parametrize("rank", [1, 0], ids=["follower", "coordinator"])
@pytest.mark.parametrize("state_mode", ["lock_free", "locked"])
@pytest.mark.parametrize("store", ["embedded", pytest.param("redis", marks=pytest.mark.redis)])
def test_kmeans_survives_a_killed_worker(blobs, kill_worker, rank, state_mode, store, request,
                                         leaves_nothing):
    X, init = blobs
    url = request.getfixturevalue("redis_server").url if store == "redis" else None
    kill_worker("kmeans", rank, at=6)
    model = ServerlessKMeans(12, init=init, n_init=1, tol=0, max_iter=40, n_workers=2,
                             state_mode=state_mode, state_store=url, timeout=30).fit(X)
    assert model.timings_["generations"] == 2
    assert model.timings_["generation_ends"][0]["resume_seconds"] is not None
    _same_kmeans(model, X, init, 40)
    if url:
        assert request.getfixturevalue("redis_server").keys() == []


@pytest.mark.parametrize("rank", [1, 0], ids=["follower", "coordinator"])
def test_kmeans_lockstep_runs_survive_a_killed_worker(blobs, kill_worker, rank,
                                                      leaves_nothing):
    # n_init=10 in lockstep, killed after some runs have stopped: the new
    # generation replays the recorded rounds (steps of several runs, final
    # E-steps) and rebuilds the finished runs' labels where it needs them.
    X, _ = blobs
    params = dict(init="random", n_init=10, random_state=0)
    kill_worker("kmeans", rank, at=20)
    model = ServerlessKMeans(12, n_workers=2, timeout=30, **params).fit(X)
    assert model.timings_["generations"] == 2
    reference = KMeans(12, **params).fit(X)
    np.testing.assert_array_equal(model.labels_, reference.labels_)
    np.testing.assert_allclose(model.cluster_centers_, reference.cluster_centers_,
                               rtol=0, atol=1e-9)
    assert model.n_iter_ == reference.n_iter_
    assert model.inertia_ == pytest.approx(reference.inertia_, rel=1e-12)


@pytest.mark.parametrize("solver", ["lbfgs", "newton-cholesky"])
@pytest.mark.parametrize("rank", [1, 0], ids=["follower", "coordinator"])
def test_logistic_survives_a_killed_worker(kill_worker, solver, rank, leaves_nothing):
    X, y = make_classification(3000, 10, n_informative=6, n_classes=3, random_state=0)
    kill_worker("logistic", rank, at=4)
    model = ServerlessLogisticRegression(solver=solver, tol=1e-10, max_iter=500, n_workers=2,
                                         timeout=30).fit(X, y)
    reference = LogisticRegression(solver=solver, tol=1e-10, max_iter=500).fit(X, y)
    assert model.timings_["generations"] == 2
    np.testing.assert_allclose(model.coef_, reference.coef_, rtol=0, atol=1e-6)
    np.testing.assert_allclose(model.intercept_, reference.intercept_, rtol=0, atol=1e-6)


@pytest.mark.parametrize("state_mode", ["lock_free", "locked"])
@pytest.mark.parametrize("rank", [1, 0], ids=["follower", "coordinator"])
def test_the_cloud_path_survives_a_killed_worker(cloud, blobs, kill_worker, state_mode, rank,
                                                 leaves_nothing):
    X, init = blobs
    kill_worker("kmeans", rank, at=6)
    model = ServerlessKMeans(12, init=init, n_init=1, tol=0, max_iter=40, n_workers=2,
                             backend=cloud.config, state_store=cloud.redis.url,
                             state_mode=state_mode, timeout=30).fit(X)
    assert model.timings_["generations"] == 2
    _same_kmeans(model, X, init, 40)


def test_a_slot_lost_every_time_ends_the_fit_naming_it(blobs, kill_worker, leaves_nothing):
    X, init = blobs
    kill_worker("kmeans", 1, at=3, every=True)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match=r"worker 1 of 2 was lost 3 time\(s\), more than "
                                           r"max_replacements=2: .*(gone|lease|killed)"):
        with config_context(max_replacements=2):
            ServerlessKMeans(12, init=init, n_init=1, tol=0, max_iter=40, n_workers=2,
                             timeout=30).fit(X)
    assert time.monotonic() - started < 60


def test_a_fit_longer_than_the_function_time_limit_completes(blobs, slow_kmeans_worker,
                                                             leaves_nothing):
    # Lithops stops a call after execution_timeout (as Lambda after 900 s); a
    # fit of ~15 s with a 4 s limit hands over to new generations on the way.
    X, init = blobs
    slow_kmeans_worker(1, 0.15)
    config = {"lithops": {"backend": "localhost", "storage": "localhost",
                          "execution_timeout": 4},
              "localhost": {"runtime": sys.executable, "version": 1}}
    model = ServerlessKMeans(12, init=init, n_init=1, tol=0, max_iter=60, n_workers=2,
                             backend=config, timeout=30).fit(X)
    assert model.timings_["fit"] > 8, model.timings_["fit"]
    assert model.timings_["generations"] >= 3
    assert {end["why"] for end in model.timings_["generation_ends"]} == {"time limit"}
    _same_kmeans(model, X, init, 60)


@pytest.mark.usefixtures("no_pool")  # a second Lithops call of a fit's own map
def test_a_duplicate_call_for_a_slot_exits_without_writing(blobs, monkeypatch, tmp_path,
                                                           leaves_nothing):
    # A platform retry: a second call for slot 1, started while the fit runs.
    from sklearn_serverless._driver import _fit

    X, init = blobs
    out = str(tmp_path / "duplicate.pkl")
    monkeypatch.setattr(_fit, "run_worker", _duplicating(_fit.run_worker, out))
    model = ServerlessKMeans(12, init=init, n_init=1, tol=0, max_iter=40, n_workers=2,
                             timeout=30).fit(X)
    with open(out, "rb") as file:
        assert pickle.load(file) == {"duplicate": True}
    assert model.timings_["generations"] == 1
    _same_kmeans(model, X, init, 40)


def test_the_next_fit_removes_what_a_killed_driver_left(blobs, tmp_path, redis_server,
                                                        leaves_nothing):
    X, init = blobs
    code = ("import sys\n"
            "from sklearn.datasets import make_blobs\n"
            "from sklearn_serverless import ServerlessKMeans\n"
            "X, _ = make_blobs(300_000, 20, centers=50, cluster_std=8, random_state=0)\n"
            "ServerlessKMeans(50, init=X[:50], tol=0, max_iter=100000, n_workers=2,"
            " state_store=sys.argv[1], timeout=60).fit(X)\n")
    from lithops.constants import LITHOPS_TEMP_DIR

    def lithops_jobs() -> set[str]:
        found = set()
        for folder, _, files in os.walk(LITHOPS_TEMP_DIR):
            if "lithops.jobs" in folder or folder.endswith(("jobs", "logs")):
                found.update(os.path.join(folder, name) for name in files)
        return found

    before = lithops_jobs()
    driver = subprocess.Popen([sys.executable, "-c", code, redis_server.url])
    folders = []
    deadline = time.monotonic() + 60
    while not folders and time.monotonic() < deadline:
        folders = [name for name in os.listdir("/dev/shm")
                   if name.startswith(f"sklearn-serverless-{driver.pid}-")]
        time.sleep(0.1)
    deadline = time.monotonic() + 30
    while not redis_server.keys() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)
    driver.kill()
    driver.wait()
    assert folders and redis_server.keys()
    _await_orphans_gone()  # its workers notice and exit (they end with their driver)
    ServerlessKMeans(12, init=init, n_init=1, max_iter=5, n_workers=2,
                     state_store=redis_server.url).fit(X)
    assert not [name for name in os.listdir("/dev/shm")
                if name.startswith(f"sklearn-serverless-{driver.pid}-")]
    assert redis_server.keys() == []
    shutdown_workers()  # this process's own pool keeps job files while it lives
    assert lithops_jobs() - before == set()  # the killed driver's Lithops files, too


# the loopback cloud path run as a remote backend -------------------------------------------


@dataclasses.dataclass(frozen=True)
class _FunctionsElsewhere(Site):
    """A site whose workers the driver takes for functions on other machines."""

    @property
    def local_compute(self) -> bool:
        return False

    @property
    def kind(self) -> str:
        return "functions"


def _waited_for_local_processes(*args, **kwargs):
    raise AssertionError("the driver waited for local processes on a remote backend")


@pytest.fixture(params=["lock_free", "locked"])
def remote(request, moto_server, redis_server, bucket, monkeypatch):
    """``(cloud, state_mode)``: the loopback cloud path (moto's S3, a real
    redis-server, the package shipped) as the driver sees a remote backend."""
    from sklearn_serverless._driver import _fit

    real = _fit.site_of
    monkeypatch.setattr(_fit, "site_of",
                        lambda backend: _FunctionsElsewhere(*dataclasses.astuple(real(backend))))
    monkeypatch.setattr(_fit, "_await_gone", _waited_for_local_processes)
    monkeypatch.setattr(_fit, "_await_job_end", _waited_for_local_processes)
    cloud = Cloud("minio", moto_server, redis_server, bucket)
    yield cloud, request.param
    cloud.assert_empty()


def _remote_kmeans(remote, X, init, max_iter=40, **params):
    cloud, state_mode = remote
    return ServerlessKMeans(12, init=init, n_init=1, tol=0, max_iter=max_iter, n_workers=2,
                            backend=cloud.config, state_store=cloud.redis.url,
                            state_mode=state_mode, timeout=30, **params).fit(X)


@pytest.mark.parametrize("ranks", [(1,), (0,), (0, 1)], ids=["follower", "coordinator", "all"])
def test_a_remote_fit_survives_killed_workers(blobs, remote, kill_worker, ranks,
                                              leaves_nothing):
    X, init = blobs
    for rank in ranks:
        kill_worker("kmeans", rank, at=6)
    model = _remote_kmeans(remote, X, init)
    assert model.timings_["generations"] == 2
    _same_kmeans(model, X, init, 40)


def test_a_remote_slot_lost_every_time_ends_the_fit_naming_it(blobs, remote, kill_worker,
                                                              leaves_nothing):
    X, init = blobs
    kill_worker("kmeans", 1, at=3, every=True)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match=r"worker 1 of 2 was lost 2 time\(s\), more than "
                                           r"max_replacements=1"):
        with config_context(max_replacements=1):
            _remote_kmeans(remote, X, init)
    assert time.monotonic() - started < 25


def test_survivors_are_woken_before_a_loss_ends_the_fit(tmp_path):
    # When replacements run out the fit's error comes at once; the other
    # workers (on a cloud, nobody stops them) must not wait out their timeout.
    from sklearn_serverless._driver._fit import _end_generation
    from sklearn_serverless._driver._generations import Generations, WorkerLost
    from sklearn_serverless._state import FitAborted, StoreSpec, open_store

    spec = StoreSpec("shm", str(tmp_path / "state"), "ns", 2, timeout=5)
    driver = open_store(spec, create=True)
    follower = open_store(spec)
    with config_context(max_replacements=0):
        with pytest.raises(RuntimeError, match="more than max_replacements=0"):
            _end_generation(driver, Generations(2), WorkerLost(0, "its process was killed"))
    started = time.monotonic()
    with pytest.raises(FitAborted, match="worker 0 was lost"):
        follower.fetch(0, 1)
    assert time.monotonic() - started < 1
    for store in (follower, driver):
        store.close()


def _duplicating(real, out: str):
    """``run_worker`` with a second call for slot 1 started 0.3 s after the first."""

    def with_a_duplicate(task, storage=None):
        if task.worker == 1:
            path = out + ".task"
            with open(path, "wb") as file:
                cloudpickle.dump(task, file)
            code = ("import pickle, sys\n"
                    "from sklearn_serverless._worker._loop import run_worker\n"
                    "task = pickle.load(open(sys.argv[1], 'rb'))\n"
                    "pickle.dump(run_worker(task), open(sys.argv[2], 'wb'))\n")
            later = threading.Timer(0.3, subprocess.run, args=(
                [sys.executable, "-c", code, path, out],), kwargs={"check": True})
            later.start()
            try:
                return real(task, storage)
            finally:
                later.join()
        return real(task, storage)

    return with_a_duplicate


def test_a_remote_duplicate_call_exits_without_writing(blobs, remote, monkeypatch, tmp_path,
                                                       leaves_nothing):
    from sklearn_serverless._driver import _fit

    X, init = blobs
    out = str(tmp_path / "duplicate.pkl")
    monkeypatch.setattr(_fit, "run_worker", _duplicating(_fit.run_worker, out))
    model = _remote_kmeans(remote, X, init)
    with open(out, "rb") as file:
        assert pickle.load(file) == {"duplicate": True}
    assert model.timings_["generations"] == 1
    _same_kmeans(model, X, init, 40)


class ZombieOnce:
    """Builds the workers, each ``pause`` seconds slower per command. At its
    ``at``-th command the worker of ``rank`` forks: the original is killed
    (its loss starts the next generation), the copy leaves the job's process
    group (so that the job's end does not stop it, as nothing stops a cloud
    function) and sleeps until ``folder/wake`` exists, then goes on as the
    worker it was: a function of a replaced generation that wakes up late."""

    def __init__(self, build, rank: int, at: int, folder: str, pause: float):
        self.build, self.rank, self.at, self.folder = build, rank, at, folder
        self.pause = pause

    def __call__(self, data, params, context):
        worker = self.build(data, params, context)
        return _Zombie(worker, self.at if context.rank == self.rank else 0, self.folder,
                       self.pause)


class _Zombie:
    def __init__(self, inner, at: int, folder: str, pause: float):
        self.inner, self.at, self.folder, self.pause, self.count = inner, at, folder, pause, 0

    def handle(self, command, arrays):
        self.count += 1
        time.sleep(self.pause)
        forked = os.path.join(self.folder, "forked")
        if self.count == self.at and not os.path.exists(forked):
            open(forked, "w").close()
            if os.fork() == 0:
                os.setsid()
                null = os.open(os.devnull, os.O_RDWR)
                os.dup2(null, 1)
                os.dup2(null, 2)
                with open(os.path.join(self.folder, "zombie.pid"), "w") as file:
                    file.write(str(os.getpid()))
                deadline = time.monotonic() + 60
                while (not os.path.exists(os.path.join(self.folder, "wake"))
                       and time.monotonic() < deadline):
                    time.sleep(0.01)
                return self.inner.handle(command, arrays)
            os.kill(os.getpid(), signal.SIGKILL)
        return self.inner.handle(command, arrays)

    def result(self, *final):
        return self.inner.result(*final)

    def close(self):
        self.inner.close()


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wake_the_zombie(client, folder: str, ahead: int = 3) -> None:
    """Once the next generation has run ``ahead`` rounds of its own."""
    deadline = time.monotonic() + 60
    resumed_at = None
    while time.monotonic() < deadline:
        generations = [int(client.get(key) or 0)
                       for key in client.scan_iter(match="sks:*:generation")]
        rounds = [int(client.get(key) or -1) for key in client.scan_iter(match="sks:*:round")]
        if generations and max(generations) >= 1 and rounds:
            if resumed_at is None:
                resumed_at = max(rounds)
            elif max(rounds) >= resumed_at + ahead:
                break
        time.sleep(0.005)
    open(os.path.join(folder, "wake"), "w").close()


@pytest.mark.parametrize("rank", [1, 0], ids=["follower", "coordinator"])
def test_a_replaced_worker_that_wakes_up_late_changes_nothing(blobs, remote, rank,
                                                              monkeypatch, tmp_path,
                                                              leaves_nothing):
    from sklearn_serverless._algorithms import ALGORITHMS

    X, init = blobs
    folder = str(tmp_path)
    algorithm = ALGORITHMS["kmeans"]
    monkeypatch.setitem(ALGORITHMS, "kmeans", dataclasses.replace(
        algorithm, worker=ZombieOnce(algorithm.worker, rank, 6, folder, 0.05)))
    waker = threading.Thread(target=_wake_the_zombie, args=(remote[0].redis.client, folder))
    waker.start()
    try:
        model = _remote_kmeans(remote, X, init)
    finally:
        waker.join()
    with open(os.path.join(folder, "zombie.pid")) as file:
        zombie = int(file.read())
    deadline = time.monotonic() + 10
    while _running(zombie) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _running(zombie)  # it woke up, was refused, and ended
    # Not mistaken for a lost worker of the next generation, no message taken
    # from its successor, no partial added twice: one replacement, sklearn's model.
    assert model.timings_["generations"] == 2, model.timings_["generation_ends"]
    _same_kmeans(model, X, init, 40)


def test_a_replayed_generation_prints_each_verbose_line_once(blobs, kill_worker, capsys,
                                                             leaves_nothing):
    X, init = blobs
    kill_worker("kmeans", 1, at=6)
    model = ServerlessKMeans(12, init=init, n_init=1, tol=0, max_iter=40, n_workers=2,
                             timeout=30, verbose=1).fit(X)
    assert model.timings_["generations"] == 2
    lines = [line for line in capsys.readouterr().out.splitlines()
             if line.startswith("Iteration")]
    assert len(lines) == model.n_iter_, lines
    assert len(set(lines)) == len(lines)


class FailsToRejoin:
    """Builds the workers; the worker of ``rank`` is killed at its 4th
    command, and its replacement fails while it rebuilds its state. Every
    worker's ``close`` leaves a file in ``folder``."""

    def __init__(self, build, rank: int, folder: str):
        self.build, self.rank, self.folder = build, rank, folder

    def __call__(self, data, params, context):
        worker = self.build(data, params, context)
        return _Rejoining(worker, context.rank == self.rank, self.folder)


class _Rejoining:
    def __init__(self, inner, chosen: bool, folder: str):
        self.inner, self.chosen, self.folder, self.count = inner, chosen, folder, 0

    def handle(self, command, arrays):
        self.count += 1
        killed = os.path.join(self.folder, "killed")
        if self.chosen and os.path.exists(killed):
            raise RuntimeError("cannot rebuild the state")
        if self.chosen and self.count == 4:
            open(killed, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        return self.inner.handle(command, arrays)

    def result(self, *final):
        return self.inner.result(*final)

    def close(self):
        open(os.path.join(self.folder, f"closed-{os.getpid()}"), "w").close()
        self.inner.close()


def test_a_replacement_that_fails_to_rejoin_is_closed(blobs, monkeypatch, tmp_path,
                                                      leaves_nothing):
    from sklearn_serverless._algorithms import ALGORITHMS

    X, init = blobs
    algorithm = ALGORITHMS["kmeans"]
    monkeypatch.setitem(ALGORITHMS, "kmeans", dataclasses.replace(
        algorithm, worker=FailsToRejoin(algorithm.worker, 1, str(tmp_path))))
    with pytest.raises(RuntimeError, match="worker 1 of 2 failed: cannot rebuild the state"):
        ServerlessKMeans(12, init=init, n_init=1, tol=0, max_iter=40, n_workers=2,
                         timeout=30).fit(X)
    # Generation 0's worker 0 (at its end) and generation 1's two workers;
    # the killed one never closes.
    assert len([name for name in os.listdir(tmp_path) if name.startswith("closed-")]) == 3


# no fit that floods the machine ----------------------------------------------------------


def _processes_of(root: int) -> int:
    return len(_descendants(root))


@pytest.mark.parametrize("n_workers", [1000, 5000])
def test_more_localhost_workers_than_the_machine_takes_fail_at_once(n_workers, leaves_nothing):
    from sklearn_serverless import distributed
    from sklearn_serverless._common._deadlines import max_local_workers

    X, y = make_classification(6000, 5, random_state=0)
    limit = max_local_workers()
    never = _never_algorithm()
    for fit in (lambda: ServerlessLogisticRegression(n_workers=n_workers).fit(X, y),
                lambda: ServerlessKMeans(3, n_workers=n_workers).fit(X),
                lambda: distributed.run(never, {"x": X}, n_workers=n_workers)):
        before = _processes_of(os.getpid())
        started = time.monotonic()
        with pytest.raises(ValueError, match=rf"n_workers={n_workers} is more than this machine "
                                             rf"can run: .* at most {limit} "):
            fit()
        assert time.monotonic() - started < 5
        assert _processes_of(os.getpid()) <= before  # nothing started
    assert not [name for name in os.listdir("/dev/shm")
                if name.startswith(f"sklearn-serverless-{os.getpid()}-")]


def _never(*args):
    raise AssertionError("a worker ran")


def _never_algorithm():
    from sklearn_serverless.distributed import Algorithm

    return Algorithm(name="never", worker=_never, coordinate=_never)


def test_the_pool_channel_waits_on_descriptors_past_1024(tmp_path):
    # select() refuses a descriptor numbered 1,024 or more (a driver with many
    # open files); the channel must not care.
    from sklearn_serverless._channel._fifo import FifoChannel

    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        channel = FifoChannel(str(tmp_path), 1)
        worker = channel.endpoint(0).connect(None)
        assert min(channel._done, worker.fifo) > 1024
        assert channel.done(0.01) == []
        channel.send(7, [b"body"])
        assert worker.next_job(1.0) == "7"
        worker.post("7", b"result")
        assert channel.done(1.0) == [(7, 0)]
        worker.close(False)
        channel.close()
    finally:
        for fd in held:
            os.close(fd)
