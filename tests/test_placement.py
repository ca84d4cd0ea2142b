"""Data placement, directly: rows read straight from the driver's memory (by
this process and by another interpreter), files written while the workers
start (a reader waits for them), derived columns computed block by block,
and the cloud path's storage objects through a real Lithops localhost
storage."""

from __future__ import annotations

import os
import threading
import time
import uuid

import numpy as np
import pytest
import scipy.sparse as sp

from sklearn_serverless._driver import _placement
from sklearn_serverless._driver._placement import DerivedRows, plan_files, write_files
from sklearn_serverless._worker._partitions import read_partition


def _columns(n=1000, d=4, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, d)
    return {
        "X": X,
        "centred": DerivedRows(X, lambda rows: np.hstack([rows - 1.5, np.ones((len(rows), 1))]),
                               d + 1, np.float64),
        "sample_weight": rng.rand(n).astype(np.float32),
        "S": sp.random(n, 7, density=0.3, format="csr", random_state=seed),
    }


def _assert_partitions_hold(partitions, columns, storage=None):
    X = columns["X"]
    for partition in partitions:
        rows = slice(partition.start, partition.stop)
        data = read_partition(partition, storage)
        np.testing.assert_array_equal(data["X"], X[rows])
        expected = np.hstack([X[rows] - 1.5, np.ones((partition.stop - partition.start, 1))])
        np.testing.assert_array_equal(data["centred"], expected)
        assert data["sample_weight"].dtype == np.float32
        np.testing.assert_array_equal(data["sample_weight"], columns["sample_weight"][rows])
        assert sp.isspmatrix_csr(data["S"]) or sp.issparse(data["S"])
        np.testing.assert_array_equal(data["S"].toarray(), columns["S"][rows].toarray())
    assert [p.start for p in partitions][0] == 0 and partitions[-1].stop == X.shape[0]


def test_files_written_after_the_readers_start(tmp_path, monkeypatch):
    # Small blocks: the derived column is computed and written in many pieces.
    monkeypatch.setattr(_placement, "_WRITE_BLOCK_BYTES", 512)
    columns = _columns()
    partitions = plan_files(columns, 3, str(tmp_path), timeout=30)
    results, errors = {}, []

    def read(partition):
        try:
            results[partition.start] = read_partition(partition)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    readers = [threading.Thread(target=read, args=(p,)) for p in partitions]
    for reader in readers:
        reader.start()
    time.sleep(0.3)  # the readers are waiting for files that do not exist yet
    assert not results and not errors
    write_files(columns, str(tmp_path))
    for reader in readers:
        reader.join(10)
    assert not errors and len(results) == 3
    _assert_partitions_hold(partitions, columns)
    # Whole files only: nothing half-written is left next to them.
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".partial")]


def test_a_reader_gives_up_when_the_fit_ends_or_times_out(tmp_path):
    columns = {"X": np.zeros((10, 2))}
    folder = tmp_path / "fit"
    folder.mkdir()
    (partition,) = plan_files(columns, 1, str(folder), timeout=0.3)
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="did not write"):
        read_partition(partition)
    assert time.monotonic() - started < 3
    folder.rmdir()  # the driver cleaned up: the fit is over
    with pytest.raises(RuntimeError, match="fit ended"):
        read_partition(partition)


def test_storage_objects_round_trip_and_are_deleted():
    from lithops import Storage

    storage = Storage(backend="localhost")
    bucket = storage.bucket
    prefix = f"sklearn-serverless-test/{uuid.uuid4().hex}"
    columns = _columns(n=500, seed=1)
    partitions = _placement.plan_objects(columns, 2, bucket, prefix)
    try:
        _placement.write_objects(columns, partitions, storage)
        assert {p.kind for p in partitions} == {"objects"}
        _assert_partitions_hold(partitions, columns, storage)
    finally:
        _placement.delete_objects(partitions, storage)
    assert storage.list_keys(bucket, prefix) == []


def test_rows_read_from_the_drivers_memory(tmp_path):
    # 'memory': a worker copies its rows out of the driver's arrays (here this
    # process's own), the derived column computed as it reads, in small blocks.
    columns = _columns()
    columns["sample_weight"] = columns["sample_weight"][::-1]  # not contiguous: a copy is held
    partitions, held = _placement.plan_memory(columns, 3, str(tmp_path))
    assert {p.kind for p in partitions} == {"memory"}
    assert any(array.base is None and array.dtype == np.float32 for array in held)
    _assert_partitions_hold(partitions, columns)
    assert os.listdir(tmp_path) == []  # nothing written


def test_rows_read_from_the_drivers_memory_in_blocks(tmp_path, monkeypatch):
    from sklearn_serverless._worker import _partitions

    monkeypatch.setattr(_partitions, "_DERIVE_BYTES", 100)  # 3 rows a block
    columns = _columns(n=101)
    partitions, _ = _placement.plan_memory(columns, 2, str(tmp_path))
    _assert_partitions_hold(partitions, columns)


def test_another_process_reads_the_drivers_rows(tmp_path):
    # A child interpreter (as a worker) reads this process's arrays.
    import subprocess
    import sys

    import cloudpickle

    if not _placement.memory_readable():
        pytest.fail("this machine lets no process read another's memory (process_vm_readv)")
    columns = _columns(n=300)
    partitions, held = _placement.plan_memory(columns, 2, str(tmp_path))
    path = tmp_path / "partition.pkl"
    path.write_bytes(cloudpickle.dumps(partitions[1]))
    code = ("import pickle, sys, numpy as np\n"
            "from sklearn_serverless._worker._partitions import read_partition\n"
            "data = read_partition(pickle.load(open(sys.argv[1], 'rb')))\n"
            "np.save(sys.argv[2], data['centred'])\n")
    out = tmp_path / "centred.npy"
    subprocess.run([sys.executable, "-c", code, str(path), str(out)], check=True, timeout=60)
    rows = slice(partitions[1].start, partitions[1].stop)
    expected = np.hstack([columns["X"][rows] - 1.5, np.ones((rows.stop - rows.start, 1))])
    np.testing.assert_array_equal(np.load(out), expected)
    del held


def test_a_reader_of_a_driver_that_is_gone_fails(tmp_path):
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # its pid now names no process
    partitions, _ = _placement.plan_memory({"X": np.zeros((10, 2))}, 1, str(tmp_path))
    (partition,) = partitions
    (key,) = partition.keys
    pid, *where = partition.keys[key]
    partition.keys[key] = (child.pid, *where)
    with pytest.raises(RuntimeError, match=f"driver process {child.pid} is gone"):
        read_partition(partition)
