"""What a new user meets first: each cloud misconfiguration is an error in
the user's terms, saying what to do, raised before anything starts (no
network: these fail before any call, or against moto on loopback); and what
``verbose=1`` says about the distributed part of a fit."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_serverless import ServerlessKMeans, ServerlessLogisticRegression, read_csv

X = np.random.RandomState(0).rand(200, 3)
y = (X[:, 0] > 0.5).astype(int)


@pytest.fixture
def no_config_file(monkeypatch, tmp_path):
    """No Lithops config file anywhere Lithops looks."""
    import lithops.config

    monkeypatch.delenv("LITHOPS_CONFIG_FILE", raising=False)
    monkeypatch.delenv("LITHOPS_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(lithops.config, "get_default_config_filename", lambda: None)


def test_cloud_name_without_config_file(no_config_file):
    # Not the state store's message: the missing config file is what is wrong.
    with pytest.raises(ValueError, match="Lithops config file, and there is none") as error:
        ServerlessKMeans(2, backend="aws_lambda").fit(X)
    message = str(error.value)
    assert "~/.lithops/config" in message and "backend={'lithops'" in message
    assert "state_store" not in message


def test_config_file_without_backend_section(monkeypatch, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("lithops:\n  backend: aws_lambda\n  storage: aws_s3\n")
    monkeypatch.setenv("LITHOPS_CONFIG_FILE", str(config))
    monkeypatch.delenv("LITHOPS_CONFIG", raising=False)
    with pytest.raises(ValueError) as error:
        ServerlessKMeans(2, backend="aws_lambda", state_store="redis://127.0.0.1:1/0").fit(X)
    message = str(error.value)
    assert "'aws_lambda' section is mandatory" in message
    assert str(config) in message and "backend='aws_lambda'" in message


def test_config_dict_without_backend_section():
    config = {"lithops": {"backend": "aws_lambda", "storage": "aws_s3"}, "aws_s3": {}}
    with pytest.raises(ValueError, match="config dict given as backend .*'aws_lambda' section"):
        ServerlessLogisticRegression(backend=config, state_store="redis://127.0.0.1:1/0").fit(X, y)


def test_missing_lithops_extra_names_pip_extra(monkeypatch, no_config_file):
    # As where Lithops' gcp extra is not installed: importing httplib2 fails.
    for name in list(sys.modules):
        if name.startswith("lithops.serverless.backends.gcp_functions"):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "httplib2", None)
    with pytest.raises(ImportError, match=r"pip install 'lithops\[gcp\]'") as error:
        ServerlessKMeans(2, backend="gcp_functions").fit(X)
    assert "httplib2" in str(error.value)


def test_misspelled_backend_suggests_closest():
    with pytest.raises(InvalidParameterError, match="Did you mean 'aws_lambda'") as error:
        ServerlessKMeans(2, backend="aws_lamda").fit(X)
    message = str(error.value)
    listed = message[message.index("["):message.index("]") + 1]
    names = eval(listed)  # noqa: S307 - our own message: a list literal
    assert names == sorted(names) and "aws_lambda" in names
    # scikit-learn's own wording is kept (check_estimator's param validation).
    assert "The 'backend' parameter of ServerlessKMeans must be" in message
    assert "Got 'aws_lamda' instead." in message


def test_object_storage_path_with_localhost_backend_suggests_backend(tmp_path):
    with pytest.raises(ValueError, match="No file or folder 's3://my-bucket/flights-csv/'") as e:
        ServerlessLogisticRegression().fit(read_csv("s3://my-bucket/flights-csv/", label="late"))
    assert "backend=" in str(e.value) and "'s3://' names object storage" in str(e.value)
    with pytest.raises(ValueError, match="backend=") as error:
        ServerlessKMeans(2).fit(read_csv(str(tmp_path / "missing.csv")))
    assert "on this machine" in str(error.value)


def test_wrong_bucket_is_named(moto_server):
    bucket = moto_server.create_bucket("sks-first-hour")
    config = {"lithops": {"backend": "localhost", "storage": "minio"},
              "minio": moto_server.storage_config(bucket)}
    with pytest.raises(ValueError, match="No bucket 'no-such-bucket'") as error:
        ServerlessKMeans(2, backend=config, state_store="redis://127.0.0.1:1/0").fit(
            read_csv("no-such-bucket/flights.csv"))
    assert "storage_bucket" in str(error.value)
    assert moto_server.keys(bucket) == []


def test_verbose_describes_the_distributed_fit(capsys):
    ServerlessKMeans(2, n_workers=2, n_init=1, verbose=1, random_state=0).fit(X)
    out = capsys.readouterr().out
    assert ("[ServerlessKMeans] fit: backend 'localhost' (compute 'localhost', storage "
            "'localhost'), 2 workers, state store shared memory (lock_free); starting one "
            "Lithops map") in out
    assert "[ServerlessKMeans] start: " in out and " ms/round (compute " in out
    assert "[ServerlessKMeans] done: " in out
    ServerlessLogisticRegression(n_workers=2, verbose=0).fit(X, y)
    assert capsys.readouterr().out == ""


def test_verbose_summary_blocks_rounds():
    from sklearn_serverless._base._estimator import fit_summary

    n_rounds, n_workers = 23, 2
    table = np.full((n_rounds, n_workers), 0.001)
    timings = {phase: table for phase in ("compute", "publish", "barrier", "aggregate")}
    timings.update(fit=1.0, load=np.array([0.1, 0.2]), upload=0.0, n_rounds=n_rounds)
    lines = fit_summary(timings, n_workers, "X")
    assert lines[0].startswith("[X] start: 0.908 s")
    assert [line.split(":")[0] for line in lines[1:-1]] == [
        "[X] rounds 1-5", "[X] rounds 6-10", "[X] rounds 11-15", "[X] rounds 16-20",
        "[X] rounds 21-23"]
    assert "4.0 ms/round" in lines[1]
    assert lines[-1] == "[X] done: 23 rounds in 0.092 s, fit 1.000 s"
