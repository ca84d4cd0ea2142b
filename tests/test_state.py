"""The state stores, directly: rounds, worker-order sums, timeouts, aborts,
cleanup and the no-pickle rule, on SQLite and on a real redis-server."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import pickle
import struct
import threading
import time
import uuid

import numpy as np
import pytest

from sklearn_serverless._state import KEY_TTL, FitAborted, StoreSpec, open_store
from sklearn_serverless._state._base import sum_in_worker_order
from sklearn_serverless._state._codec import decode_arrays, encode_arrays
from sklearn_serverless._state._redis_scripts import _RELEASE


@pytest.fixture(params=["shm", "sqlite", "redis"])
def store_location(request, tmp_path):
    if request.param == "shm":
        return "shm", str(tmp_path / "state"), None
    if request.param == "sqlite":
        return "sqlite", str(tmp_path / "state.db"), None
    server = request.getfixturevalue("redis_server")
    return "redis", server.url, server


def _spec(location, n_workers=3, mode="lock_free", timeout=10.0):
    kind, where, _ = location
    return StoreSpec(kind, where, uuid.uuid4().hex, n_workers, mode, timeout)


def _run_round(spec, parts, message=b"model"):
    """Worker 0 publishes and aggregates; workers 1.. fetch and contribute
    from threads (each with its own connection, as separate processes have)."""
    driver = open_store(spec, create=True)
    stores = [open_store(spec) for _ in parts]
    fetched = {}

    def follow(worker):
        fetched[worker] = stores[worker].fetch(0, worker)
        stores[worker].contribute(0, worker, parts[worker])

    threads = [threading.Thread(target=follow, args=(w,)) for w in range(1, len(parts))]
    for thread in threads:
        thread.start()
    stores[0].publish(0, message)
    stores[0].contribute(0, 0, parts[0])
    stores[0].barrier(0)
    total = stores[0].aggregate(0)
    for thread in threads:
        thread.join(10)
    for store in stores:
        store.close()
    return driver, total, fetched


@pytest.mark.parametrize("size", [1000, 20_000])  # 20,000 floats: too large to ride in lists
@pytest.mark.parametrize("mode", ["lock_free", "locked"])
def test_a_round_sums_every_worker(store_location, mode, size):
    rng = np.random.RandomState(0)
    parts = [rng.randn(size) * 10.0 ** rng.randint(-8, 8, size) for _ in range(3)]
    spec = _spec(store_location, mode=mode)
    driver, total, fetched = _run_round(spec, parts)
    assert fetched == {1: b"model", 2: b"model"}
    if mode == "lock_free":
        # Reduced in worker order: bit for bit the same whatever the arrival order.
        np.testing.assert_array_equal(total, sum_in_worker_order(parts))
    else:
        np.testing.assert_allclose(total, parts[0] + parts[1] + parts[2], rtol=1e-12)
    driver.cleanup()
    driver.close()
    _assert_clean(store_location, spec)


def _assert_clean(location, spec):
    kind, where, server = location
    if kind == "shm":
        assert not os.path.exists(where)
    if kind == "redis":
        assert [k for k in server.keys() if spec.namespace.encode() in k] == []


def test_redis_keys_expire_and_cleanup_deletes_them(redis_server):
    location = ("redis", redis_server.url, redis_server)
    spec = _spec(location, n_workers=1)
    driver = open_store(spec, create=True)
    worker = open_store(spec)
    worker.publish(0, b"m")
    worker.contribute(0, 0, np.ones(4))
    keys = [k for k in redis_server.keys() if spec.namespace.encode() in k]
    assert keys
    assert all(0 < redis_server.client.ttl(k) <= KEY_TTL for k in keys)
    driver.cleanup()
    assert [k for k in redis_server.keys() if spec.namespace.encode() in k] == []
    worker.close()
    driver.close()


def test_barrier_times_out_naming_missing_workers(store_location):
    spec = _spec(store_location, n_workers=3, timeout=0.5)
    driver = open_store(spec, create=True)
    store = open_store(spec)
    store.publish(0, b"m")
    store.contribute(0, 0, np.ones(3))
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"\[1, 2\]"):
        store.barrier(0)
    assert 0.4 < time.monotonic() - started < 3
    driver.cleanup()
    driver.close()
    store.close()
    _assert_clean(store_location, spec)


def test_fetch_times_out(store_location):
    spec = _spec(store_location, n_workers=2, timeout=0.3)
    driver = open_store(spec, create=True)
    store = open_store(spec)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        store.fetch(0, 1)
    assert time.monotonic() - started < 3
    driver.cleanup()
    driver.close()
    store.close()


def test_abort_wakes_waiters_promptly(store_location):
    spec = _spec(store_location, n_workers=3, timeout=30)
    driver = open_store(spec, create=True)
    waiter, barrier_waiter = open_store(spec), open_store(spec)
    errors = {}

    def wait(name, call):
        started = time.monotonic()
        try:
            call()
        except FitAborted as exc:
            errors[name] = (str(exc), time.monotonic() - started)

    barrier_waiter.contribute(0, 0, np.ones(2))
    threads = [threading.Thread(target=wait, args=("fetch", lambda: waiter.fetch(0, 1))),
               threading.Thread(target=wait, args=("barrier", lambda: barrier_waiter.barrier(0)))]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    driver.abort("worker 2 failed: boom")
    for thread in threads:
        thread.join(5)
    assert set(errors) == {"fetch", "barrier"}
    for message, waited in errors.values():
        assert "worker 2 failed: boom" in message
        assert waited < 2
    driver.cleanup()
    for store in (driver, waiter, barrier_waiter):
        store.close()
    _assert_clean(store_location, spec)


def test_two_fits_do_not_interfere(store_location):
    first, second = _spec(store_location, n_workers=2), _spec(store_location, n_workers=2)
    if store_location[0] != "redis":  # separate fits have separate files
        second = StoreSpec(first.kind, first.location + "-2", second.namespace, 2)
    results = {}

    def run(name, spec, value):
        results[name] = _run_round(spec, [np.full(3, value), np.full(3, value)])[1]

    threads = [threading.Thread(target=run, args=("a", first, 1.0)),
               threading.Thread(target=run, args=("b", second, 5.0))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    np.testing.assert_array_equal(results["a"], np.full(3, 2.0))
    np.testing.assert_array_equal(results["b"], np.full(3, 10.0))
    for spec in (first, second):
        store = open_store(spec)
        store.cleanup()
        store.close()


def test_unreachable_redis_is_a_connection_error():
    spec = StoreSpec("redis", "redis://:secret@127.0.0.1:1/0", "ns", 2)
    with pytest.raises(ConnectionError) as info:
        open_store(spec, create=True)
    assert "secret" not in str(info.value)


def test_codec_round_trip_keeps_dtype_and_shape():
    arrays = [np.arange(6, dtype=np.float32).reshape(2, 3), np.array(7, dtype=np.int64),
              np.zeros((0, 4)), np.asfortranarray(np.eye(3))]
    decoded = decode_arrays(encode_arrays(arrays))
    for original, back in zip(arrays, decoded, strict=True):
        assert back.dtype == original.dtype and back.shape == original.shape
        np.testing.assert_array_equal(back, original)


def test_codec_never_pickles():
    with pytest.raises(ValueError, match="plain numeric"):
        encode_arrays([np.array([{"a": 1}], dtype=object)])
    # A blob that claims an object array (8 bytes: a pointer) is refused on decode.
    crafted = b"SKS1" + struct.pack("<IB", 1, 2) + b"|O" + struct.pack("<BQ", 1, 1) + bytes(8)
    with pytest.raises(ValueError, match="non-numeric"):
        decode_arrays(crafted)
    # Neither a pickle nor a .npy file carrying a pickled array is an array blob.
    npy = io.BytesIO()
    np.lib.format.write_array(npy, np.array([os.system], dtype=object), allow_pickle=True)
    for blob in (pickle.dumps(np.ones(3)), npy.getvalue()):
        with pytest.raises(ValueError, match="not an array blob"):
            decode_arrays(blob)
    with pytest.raises(ValueError, match="trailing"):
        decode_arrays(encode_arrays([np.ones(2)]) + b"x")


def test_sqlite_waiters_are_rung_not_polled(tmp_path, monkeypatch):
    from sklearn_serverless._state import _sqlite

    # Without a ring, a waiter would only re-check after 30 s.
    monkeypatch.setattr(_sqlite._Doorbells, "RECHECK", 30.0)
    spec = _spec(("sqlite", str(tmp_path / "state.db"), None), n_workers=2, timeout=60)
    driver = open_store(spec, create=True)
    coordinator, follower = open_store(spec), open_store(spec)
    got = {}

    def follow():
        got["message"] = follower.fetch(0, 1)
        got["woken"] = time.monotonic()
        follower.contribute(0, 1, np.ones(3))

    thread = threading.Thread(target=follow)
    thread.start()
    time.sleep(0.3)  # the follower is asleep on its doorbell
    published = time.monotonic()
    coordinator.publish(0, b"model")
    coordinator.contribute(0, 0, np.ones(3))
    coordinator.barrier(0)  # woken by the follower's contribution
    np.testing.assert_array_equal(coordinator.aggregate(0), 2 * np.ones(3))
    thread.join(10)
    assert got["message"] == b"model" and got["woken"] - published < 5
    for store in (coordinator, follower):
        store.close()
    assert not [name for name in os.listdir(tmp_path) if name.startswith("bell-")]
    driver.cleanup()
    driver.close()


def test_shm_waiters_are_woken_not_polled(tmp_path, monkeypatch):
    from sklearn_serverless._state import _futex, _shm

    if not _futex.AVAILABLE:
        pytest.skip("no futex on this platform: shared-memory waiters poll")
    # Without a wake-up, a waiter would only re-check after 30 s.
    monkeypatch.setattr(_shm, "RECHECK", 30.0)
    spec = _spec(("shm", str(tmp_path / "state"), None), n_workers=2, timeout=60)
    driver = open_store(spec, create=True)
    coordinator, follower = open_store(spec), open_store(spec)
    got = {}

    def follow():
        for round_ in range(3):
            got[round_] = (follower.fetch(round_, 1), time.monotonic())
            follower.contribute(round_, 1, np.full(3, round_ + 1.0))

    thread = threading.Thread(target=follow)
    thread.start()
    for round_ in range(3):
        time.sleep(0.2)  # the follower is asleep
        published = time.monotonic()
        coordinator.publish(round_, b"model %d" % round_)
        coordinator.contribute(round_, 0, np.ones(3))
        coordinator.barrier(round_)  # woken by the follower's contribution
        assert time.monotonic() - published < 2
        np.testing.assert_array_equal(coordinator.aggregate(round_), np.full(3, round_ + 2.0))
        assert got[round_][0] == b"model %d" % round_ and got[round_][1] - published < 2
    thread.join(10)
    driver.abort("stop")
    driver.cleanup()
    assert not os.path.exists(spec.location)
    with pytest.raises(FileNotFoundError):  # a worker that starts after the fit
        open_store(spec)
    for store in (coordinator, follower, driver):
        store.close()


def test_shm_keeps_what_a_new_generation_needs(tmp_path):
    # Records, setup messages and the last message survive a new generation;
    # the message of the round it resumes at, partials and the log do not.
    spec = _spec(("shm", str(tmp_path / "state"), None), n_workers=1)
    driver = open_store(spec, create=True)
    worker = open_store(spec)
    worker.publish(0, b"setup", setup=True)
    for round_ in range(4):
        if round_:
            worker.publish(round_, b"m%d" % round_, record=b"r%d" % (round_ - 1))
        worker.contribute(round_, 0, np.full(2, float(round_)))
        worker.barrier(round_)
        worker.aggregate(round_)
    worker.post_log("line")
    worker.publish(4, b"m4", record=b"r3")  # its round never ran
    driver.new_generation(1)
    assert driver.records() == [b"r0", b"r1", b"r2", b"r3"]
    assert driver.setup_rounds() == [0]
    assert (driver.message(0), driver.message(3), driver.message(4)) == (b"setup", b"m3", None)
    assert driver.progress() == 3 and driver.read_log(0) == []
    assert not [n for n in os.listdir(spec.location) if n.startswith("slot-")]
    driver.cleanup()
    for store in (worker, driver):
        store.close()


def test_sqlite_polls_where_a_doorbell_cannot_be_made(tmp_path):
    # A Unix socket path is limited to ~108 bytes: this folder is too deep for one.
    folder = tmp_path / ("d" * 100) / ("e" * 100)
    folder.mkdir(parents=True)
    spec = _spec(("sqlite", str(folder / "state.db"), None), n_workers=2, timeout=10)
    driver = open_store(spec, create=True)
    follower = open_store(spec)
    threading.Timer(0.2, driver.publish, args=(0, b"model")).start()
    assert follower.fetch(0, 1) == b"model"
    follower.close()
    driver.cleanup()
    driver.close()


def test_abort_wakes_every_worker_waiting_for_the_redis_lock(redis_server):
    spec = _spec(("redis", redis_server.url, redis_server), n_workers=3, mode="locked",
                 timeout=30)
    driver = open_store(spec, create=True)
    waiters = [open_store(spec) for _ in range(2)]
    # Somebody holds round 0's lock and never releases it (a dead worker).
    driver._redis.set(driver._gkey("lock", 0), "dead", px=60_000)
    outcomes = {}

    def contribute(worker):
        started = time.monotonic()
        try:
            waiters[worker - 1].contribute(0, worker, np.ones(2))
        except FitAborted as exc:
            outcomes[worker] = (str(exc), time.monotonic() - started)

    threads = [threading.Thread(target=contribute, args=(w,)) for w in (1, 2)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    driver.abort("worker 0 failed: boom")
    for thread in threads:
        thread.join(10)
    assert set(outcomes) == {1, 2}
    for message, waited in outcomes.values():
        assert "worker 0 failed: boom" in message and waited < 3
    driver.cleanup()
    for store in (driver, *waiters):
        store.close()
    _assert_clean(("redis", redis_server.url, redis_server), spec)


def test_a_dead_holders_redis_lock_expires_and_the_waiter_takes_it(redis_server):
    location = ("redis", redis_server.url, redis_server)
    spec = _spec(location, n_workers=2, mode="locked", timeout=30)
    driver = open_store(spec, create=True)
    stores = [open_store(spec) for _ in range(2)]
    # A worker died holding round 0's lock: nothing is handed over, the lock expires.
    driver._redis.set(driver._gkey("lock", 0), "dead", px=300)
    started = time.monotonic()
    follower = threading.Thread(target=stores[1].contribute, args=(0, 1, np.full(3, 2.0)))
    follower.start()
    stores[0].contribute(0, 0, np.full(3, 1.0))
    stores[0].barrier(0)  # the coordinator's release may go out with its barrier
    follower.join(10)
    np.testing.assert_array_equal(stores[0].aggregate(0), np.full(3, 3.0))
    assert time.monotonic() - started < 3
    driver.cleanup()
    for store in (driver, *stores):
        store.close()
    _assert_clean(location, spec)


def test_the_redis_lock_is_handed_to_each_waiter_in_turn(redis_server):
    location = ("redis", redis_server.url, redis_server)
    spec = _spec(location, n_workers=4, mode="locked", timeout=30)
    driver = open_store(spec, create=True)
    stores = [open_store(spec) for _ in range(4)]
    driver._redis.set(driver._gkey("lock", 0), "holder", px=30_000)
    threads = [threading.Thread(target=stores[w].contribute, args=(0, w, np.full(2, 10.0 ** w)))
               for w in (1, 2, 3)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while driver._redis.llen(driver._gkey("waiters", 0)) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert driver._redis.llen(driver._gkey("waiters", 0)) == 3  # queued, not polling
    # The holder releases: the lock passes from waiter to waiter, with the sum.
    grants = [driver._gkey("grant", 0, w) for w in range(4)]
    driver._redis.eval(_RELEASE, 7, driver._gkey("lock", 0), driver._gkey("waiters", 0),
                       driver._gkey("arrived", 0), *grants, "holder", 30_000,
                       encode_arrays([np.zeros(2), np.array([0])]), 60)
    for thread in threads:
        thread.join(10)
    stores[0].contribute(0, 0, np.full(2, 0.5))
    stores[0].barrier(0)
    np.testing.assert_array_equal(stores[0].aggregate(0), np.full(2, 1110.5))
    _assert_round_0_gone_with_the_next_publish(driver, stores[0], stores, location, spec)


@pytest.mark.parametrize("first", [0, 1])
def test_the_first_redis_partial_of_a_round_is_written_without_holding_the_lock(
        redis_server, first):
    location = ("redis", redis_server.url, redis_server)
    spec = _spec(location, n_workers=2, mode="locked")
    driver = open_store(spec, create=True)
    stores = [open_store(spec) for _ in range(2)]
    partials = {0: np.full(3, 1.0), 1: np.full(3, 2.0)}
    stores[first].contribute(0, first, partials[first])
    # Written at once as the accumulator (count 1); no lock left behind.
    assert not driver._redis.exists(driver._gkey("lock", 0))
    total, count = decode_arrays(driver._redis.get(driver._gkey("acc", 0)))
    np.testing.assert_array_equal(total, partials[first])
    assert count[0] == 1
    stores[1 - first].contribute(0, 1 - first, partials[1 - first])
    stores[0].barrier(0)
    np.testing.assert_array_equal(stores[0].aggregate(0), np.full(3, 3.0))
    _assert_round_0_gone_with_the_next_publish(driver, stores[0], stores, location, spec)


def test_redis_locked_rounds_in_either_order_over_several_rounds(redis_server):
    location = ("redis", redis_server.url, redis_server)
    spec = _spec(location, n_workers=2, mode="locked")
    driver = open_store(spec, create=True)
    coordinator, follower = open_store(spec), open_store(spec)
    for round_, order in enumerate([(1, 0), (0, 1), (1, 0), (1, 0), (0, 1)]):
        coordinator.publish(round_, b"model")
        assert follower.fetch(round_, 1) == b"model"
        for worker in order:
            store = coordinator if worker == 0 else follower
            store.contribute(round_, worker, np.full(2, 10.0 ** worker + round_))
        coordinator.barrier(round_)
        np.testing.assert_array_equal(coordinator.aggregate(round_), np.full(2, 11.0 + 2 * round_))
    driver.cleanup()
    for store in (driver, coordinator, follower):
        store.close()
    _assert_clean(location, spec)


def _assert_round_0_gone_with_the_next_publish(driver, coordinator, stores, location, spec):
    """What is left of a locked round 0 (the coordinator's lock when it added
    the last partial, arrivals it did not wait for) goes with the next
    publish; cleanup then leaves nothing."""
    coordinator.publish(1, b"next")
    assert not driver._redis.exists(driver._gkey("lock", 0), driver._gkey("acc", 0))
    assert driver._redis.llen(driver._gkey("arrivals")) == 0
    driver.cleanup()
    for store in (driver, *stores):
        store.close()
    _assert_clean(location, spec)


# generations: a replaced worker that wakes up late -----------------------------------------


@pytest.mark.parametrize("mode", ["lock_free", "locked"])
def test_a_replaced_generation_writes_nothing_the_next_one_reads(store_location, mode):
    spec = _spec(store_location, n_workers=2, mode=mode)
    driver = open_store(spec, create=True)
    old = [open_store(spec) for _ in range(2)]  # generation 0
    old[1].check_in(1)
    old[0].publish(0, b"m0")
    assert old[1].fetch(0, 1) == b"m0"
    old[1].beat(1, 0, 1234, 30)
    assert driver.leases() == {1: 1234}
    driver.abort("this generation of workers ended")
    driver.new_generation(1)
    assert driver.leases() == {} and driver.started() == set()
    new = [open_store(dataclasses.replace(spec, generation=1)) for _ in range(2)]
    new[1].check_in(1)
    new[1].beat(1, 1, 4321, 30)
    # The old follower wakes up late: it cannot take a message, add a
    # partial, check in, renew a lease, publish, log or abort the new one.
    with pytest.raises(FitAborted):
        old[1].fetch(1, 1)
    with pytest.raises(FitAborted, match="replaced by generation 1"):
        old[1].contribute(0, 1, np.full(2, 1000.0))
    with pytest.raises(FitAborted, match="replaced by generation 1"):
        old[1].check_in(1)
    with pytest.raises(FitAborted, match="replaced by generation 1"):
        old[0].publish(1, b"stale")
    old[1].beat(1, 0, 999, 30)
    with contextlib.suppress(FitAborted):
        old[0].post_log("stale line")
    old[0].abort("a zombie failed")
    assert driver.leases() == {1: 4321}
    assert driver.started() == {1}
    assert driver.read_log(0) == []
    assert driver.failure() is None
    assert driver.records() == []
    # The new generation's round 0: its own message and partials only.
    new[0].post_log("line")
    new[0].publish(0, b"m0 again")
    assert new[1].fetch(0, 1) == b"m0 again"
    new[1].contribute(0, 1, np.full(2, 2.0))
    new[0].contribute(0, 0, np.full(2, 1.0))
    new[0].barrier(0)
    np.testing.assert_array_equal(new[0].aggregate(0), np.full(2, 3.0))
    assert driver.read_log(0) == ["line"]
    driver.cleanup()
    for store in (driver, *old, *new):
        store.close()
    _assert_clean(store_location, spec)


def test_a_workers_second_partial_is_not_added_to_the_round(store_location):
    # A call given twice (a retried request, a replaced call of its slot):
    # the accumulator holds each worker's partial once.
    spec = _spec(store_location, n_workers=3, mode="locked")
    driver = open_store(spec, create=True)
    stores = [open_store(spec) for _ in range(3)]
    stores[1].contribute(0, 1, np.full(2, 10.0))
    stores[1].contribute(0, 1, np.full(2, 10.0))
    stores[2].contribute(0, 2, np.full(2, 100.0))
    stores[2].contribute(0, 2, np.full(2, 100.0))
    stores[0].contribute(0, 0, np.full(2, 1.0))
    stores[0].barrier(0)
    np.testing.assert_array_equal(stores[0].aggregate(0), np.full(2, 111.0))
    driver.cleanup()
    for store in (driver, *stores):
        store.close()
    _assert_clean(store_location, spec)


def test_a_queued_second_redis_partial_is_not_added(redis_server):
    location = ("redis", redis_server.url, redis_server)
    spec = _spec(location, n_workers=3, mode="locked", timeout=30)
    driver = open_store(spec, create=True)
    stores = [open_store(spec) for _ in range(3)]
    stores[1].contribute(0, 1, np.full(2, 10.0))
    lock, waiters = driver._gkey("lock", 0), driver._gkey("waiters", 0)
    driver._redis.set(lock, "holder", px=30_000)
    again = threading.Thread(target=stores[1].contribute, args=(0, 1, np.full(2, 10.0)))
    again.start()
    deadline = time.monotonic() + 5
    while driver._redis.llen(waiters) < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    grants = [driver._gkey("grant", 0, w) for w in range(3)]
    driver._redis.eval(_RELEASE, 6, lock, waiters, driver._gkey("arrived", 0), *grants,
                       "holder", 30_000, b"", 60)
    again.join(5)
    assert not again.is_alive()
    assert not driver._redis.exists(lock)  # the queued call took nothing
    stores[2].contribute(0, 2, np.full(2, 100.0))
    stores[0].contribute(0, 0, np.full(2, 1.0))
    stores[0].barrier(0)
    np.testing.assert_array_equal(stores[0].aggregate(0), np.full(2, 111.0))
    _assert_round_0_gone_with_the_next_publish(driver, stores[0], stores, location, spec)


# the embedded store of fits ------------------------------------------------------------------


@pytest.mark.parametrize("state_mode", ["lock_free", "locked"])
def test_fits_through_shared_memory_give_the_same_bits_as_through_sqlite(
        monkeypatch, state_mode, leaves_nothing):
    # The store carries raw bytes and reduces in worker order: which store
    # the workers met through changes no bit of the model.
    from sklearn.datasets import make_classification

    from sklearn_serverless import ServerlessKMeans, ServerlessLogisticRegression
    from sklearn_serverless._driver import _fit

    X, y = make_classification(3000, 8, random_state=0)
    kinds = []

    def spec_of(kind):
        def spec(_, location, *args, **kwargs):
            kinds.append(kind)
            if kind == "sqlite":
                location += ".db"
            return StoreSpec(kind, location, *args, **kwargs)
        return spec

    models = {}
    for kind in ("shm", "sqlite"):
        monkeypatch.setattr(_fit, "StoreSpec", spec_of(kind))
        models[kind] = (
            ServerlessKMeans(6, n_workers=2, random_state=0, state_mode=state_mode).fit(X),
            ServerlessLogisticRegression(n_workers=2, state_mode=state_mode).fit(X, y))
    assert kinds == ["shm", "shm", "sqlite", "sqlite"]
    (kmeans, logistic), (kmeans_sqlite, logistic_sqlite) = models["shm"], models["sqlite"]
    assert kmeans.n_iter_ == kmeans_sqlite.n_iter_
    np.testing.assert_array_equal(kmeans.cluster_centers_, kmeans_sqlite.cluster_centers_)
    np.testing.assert_array_equal(kmeans.labels_, kmeans_sqlite.labels_)
    assert kmeans.inertia_ == kmeans_sqlite.inertia_
    np.testing.assert_array_equal(logistic.coef_, logistic_sqlite.coef_)
    np.testing.assert_array_equal(logistic.intercept_, logistic_sqlite.intercept_)
