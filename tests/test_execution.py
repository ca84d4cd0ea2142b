"""The execution layer: backend resolution, the localhost config, worker
imports, and what a fit leaves behind."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from sklearn_serverless import ServerlessKMeans
from sklearn_serverless._driver._backends import (
    check_backend,
    default_n_workers,
    lithops_config,
)
from sklearn_serverless._driver._warm import warm_runtime


def test_unknown_backend_lists_the_valid_ones():
    with pytest.raises(ValueError, match="aws_lambda") as info:
        check_backend("my_cluster")
    assert "localhost" in str(info.value) and "k8s" in str(info.value)
    with pytest.raises(ValueError, match="complete Lithops config"):
        check_backend({"localhost": {}})


def test_localhost_config_is_built_in_code():
    config = lithops_config("localhost", n_workers=3)
    assert config["lithops"]["backend"] == "localhost"
    assert config["lithops"]["storage"] == "localhost"
    assert config["localhost"]["runtime"] == warm_runtime()  # this interpreter, warm
    assert config["localhost"]["version"] == 1
    assert config["localhost"]["worker_processes"] == 3
    assert config["lithops"]["data_limit"] is False
    assert config["lithops"]["data_cleaner"] is False


def test_default_n_workers_keeps_a_useful_share_of_rows():
    assert default_n_workers("localhost", 100) == 1
    assert default_n_workers("localhost", 10**9) >= 1
    assert default_n_workers("aws_lambda", 10**9) == 64
    assert default_n_workers("aws_lambda", 100_000) == 5


def test_a_user_lithops_config_file_does_not_change_localhost(tmp_path, monkeypatch,
                                                              leaves_nothing):
    bogus = tmp_path / "lithops.yaml"
    bogus.write_text("lithops:\n    backend: aws_lambda\n    storage: aws_s3\n")
    monkeypatch.setenv("LITHOPS_CONFIG_FILE", str(bogus))
    X, _ = make_blobs(500, 3, centers=3, random_state=0)
    model = ServerlessKMeans(3, n_workers=2, random_state=0).fit(X)
    assert model.n_workers_ == 2


def test_backend_as_a_config_dict(leaves_nothing):
    X, _ = make_blobs(500, 3, centers=3, random_state=0)
    config = {"lithops": {"backend": "localhost", "storage": "localhost"},
              "localhost": {"runtime": sys.executable, "version": 1}}
    model = ServerlessKMeans(3, n_workers=2, random_state=0, backend=config).fit(X)
    reference = ServerlessKMeans(3, n_workers=2, random_state=0).fit(X)
    np.testing.assert_array_equal(model.labels_, reference.labels_)


def test_worker_modules_do_not_import_sklearn():
    code = (
        "import sys\n"
        "import sklearn_serverless.distributed, sklearn_serverless._algorithms\n"
        "import sklearn_serverless._state._sqlite, sklearn_serverless._state._redis\n"
        "import sklearn_serverless._worker._partitions, sklearn_serverless._worker._loop\n"
        "assert not [m for m in sys.modules if m.split('.')[0] == 'sklearn'], 'sklearn imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_failed_lithops_job_process_is_noticed():
    # Lithops' localhost engine logs this (with the process output after it)
    # and leaves the job's futures pending; the driver must not wait on them.
    import logging

    from sklearn_serverless._driver._watch import JobFailures

    lithops_logger = logging.getLogger("lithops.localhost.v1.localhost")
    with JobFailures("abc123-4") as failures:
        failures.watch("M001")
        lithops_logger.error("ExecutorID abc123-4 | JobID M000 - Job process failed with code 1")
        lithops_logger.error("ExecutorID abc123-40 | JobID M001 - Job process failed with code 1")
        assert not failures.seen
        lithops_logger.error("ExecutorID abc123-4 | JobID M001 - Job process failed with code 1")
        lithops_logger.error("ModuleNotFoundError: No module named 'lithops.worker.invoker'")
        assert failures.seen
        assert "lithops.worker.invoker" in failures.detail()
    assert failures not in lithops_logger.parent.handlers


def test_the_localhost_start_time_grows_with_the_workers_per_core(monkeypatch):
    # Each worker's process start takes CPU: 64 of them took 6.5 s on 2 cores.
    from sklearn_serverless._common import _deadlines
    from sklearn_serverless._common._deadlines import Deadlines

    monkeypatch.setattr(_deadlines, "_cores", lambda: 2)
    assert Deadlines.from_timeout(10, "localhost", 2).start == 5.0
    assert Deadlines.from_timeout(10, "localhost", 64).start == 16.0
    assert Deadlines.from_timeout(120, "localhost", 64).start == 30.0
    assert Deadlines.from_timeout(120, "localhost", 256).start == 64.0
    assert Deadlines.from_timeout(10, "functions", 256).start == 5.0
