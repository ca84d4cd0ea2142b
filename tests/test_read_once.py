"""Read the data once: the steps of a pipeline fitted on a dataset through a
pool of workers read its objects once; the workers keep their rows, keyed
by the objects' versions, for the next fit. Counted where the bytes leave:
moto's S3 server (in this process, its requests counted) and
``timings_['bytes_fetched']``."""

from __future__ import annotations

import io
import threading
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from conftest import MotoServer, _free_port
from sklearn.compose import make_column_transformer as sk_make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sklearn_serverless import (
    ServerlessLogisticRegression,
    ServerlessOneHotEncoder,
    ServerlessStandardScaler,
    config_context,
    read_csv,
    read_parquet,
    shutdown_workers,
)
from sklearn_serverless._datasets import _cache
from sklearn_serverless.preprocessing import make_column_transformer

BUCKET = "sks-read-once"
NUMERIC = ["dep_delay", "distance"]
#: What a worker reads past its range (its last row's end) and the driver
#: reads of an object's first lines: 64 KiB blocks.
BLOCK = 64 * 1024


class CountingMoto:
    """moto's S3 server in a thread of this process, counting the GETs of
    each object and the bytes they returned."""

    def __init__(self):
        import boto3
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        self.gets, self.bytes, self._lock = Counter(), Counter(), threading.Lock()
        app = DomainDispatcherApplication(create_backend_app)
        self.port = _free_port()
        self.server = make_server("127.0.0.1", self.port, self._counting(app), True,
                                  request_handler=MotoRequestHandler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.client = boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id=MotoServer.ACCESS_KEY,
            aws_secret_access_key=MotoServer.SECRET_KEY)
        self.client.create_bucket(Bucket=BUCKET)

    def _counting(self, app):
        def counted(environ, start_response):
            body = app(environ, start_response)
            path = environ.get("PATH_INFO", "")
            if environ["REQUEST_METHOD"] != "GET" or not path.startswith(f"/{BUCKET}/data/"):
                return body
            chunks = list(body)
            with self._lock:
                key = path[len(f"/{BUCKET}/"):]
                self.gets[key] += 1
                self.bytes[key] += sum(len(chunk) for chunk in chunks)
            return chunks
        return counted

    def reset(self) -> None:
        with self._lock:
            self.gets.clear()
            self.bytes.clear()

    def storage_config(self) -> dict:
        return {"endpoint": self.endpoint, "access_key_id": MotoServer.ACCESS_KEY,
                "secret_access_key": MotoServer.SECRET_KEY, "storage_bucket": BUCKET}

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(10)


@pytest.fixture(scope="module")
def counting_moto():
    server = CountingMoto()
    yield server
    server.stop()


def _flights(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "dep_delay": rng.normal(10, 30, n).round(1),
        "distance": rng.integers(100, 3000, n).astype(float),
        "carrier": rng.choice(["UA", "DL", "AA", "B6"], n),
        "origin": rng.choice(["JFK", "LGA", "EWR"], n),
    })
    signal = 0.05 * frame.dep_delay + (frame.carrier == "UA") - 0.3 * (frame.origin == "JFK")
    frame["late"] = (signal + rng.normal(size=n) > 0.8).astype(int)
    return frame


def _put(server: CountingMoto, frame: pd.DataFrame, n_objects: int) -> dict:
    """The table as CSV objects under data/; their sizes by key."""
    sizes = {}
    for i, part in enumerate(np.array_split(np.arange(len(frame)), n_objects)):
        body = frame.iloc[part].to_csv(index=False).encode()
        key = f"data/part-{i}.csv"
        server.client.put_object(Bucket=BUCKET, Key=key, Body=body)
        sizes[key] = len(body)
    return sizes


def _pipelines(run: dict):
    ours = make_pipeline(
        make_column_transformer((ServerlessStandardScaler(**run), NUMERIC),
                                (ServerlessOneHotEncoder(**run), ["carrier", "origin"])),
        ServerlessLogisticRegression(tol=1e-10, **run))
    theirs = make_pipeline(
        sk_make_column_transformer((StandardScaler(), NUMERIC),
                                   (OneHotEncoder(), ["carrier", "origin"])),
        LogisticRegression(tol=1e-10))
    return ours, theirs


def _steps(pipeline) -> list:
    """Every fitted serverless step: the column transformer's, then the model."""
    return [*(t for _, t, _ in pipeline[0].transformers_), pipeline[-1]]


def _same_model(ours, theirs) -> None:
    np.testing.assert_allclose(ours[-1].coef_, theirs[-1].coef_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ours[-1].intercept_, theirs[-1].intercept_, rtol=1e-6,
                               atol=1e-8)
    assert ours[-1].n_iter_ == theirs[-1].n_iter_


@pytest.mark.redis
def test_a_pipeline_on_the_cloud_path_reads_each_object_once(counting_moto, redis_server,
                                                              pools_on, leaves_nothing):
    """Two runs on a pool (the column transformer's, for the scaler and the
    encoder together; the model's): the objects' bytes leave the server once,
    plus the first lines the driver reads once per object and what each
    worker reads past its range to end its last row."""
    shutdown_workers()
    frame = _flights(24000, 0)
    sizes = _put(counting_moto, frame, 3)
    total = sum(sizes.values())
    run = {"n_workers": 2, "state_store": redis_server.url, "timeout": 60,
           "backend": {"lithops": {"backend": "localhost", "storage": "minio"},
                       "minio": counting_moto.storage_config()}}
    data = read_csv(f"{BUCKET}/data/", label="late")
    X, y = frame.drop(columns="late"), frame.late
    counting_moto.reset()
    with config_context(worker_pool=True):
        ours, theirs = _pipelines(run)
        ours.fit(data)
        theirs.fit(X, y)
        _same_model(ours, theirs)
        fetched = sum(counting_moto.bytes.values())
        assert total <= fetched <= total + BLOCK * (len(sizes) + 2), (fetched, total)
        steps = _steps(ours)
        assert steps[0].timings_ is steps[1].timings_  # one run, two rounds
        assert steps[0].timings_["n_rounds"] == 2
        assert [step.timings_["cache_hits"] for step in steps] == [0, 0, 2]
        assert steps[0].timings_["bytes_fetched"] >= total
        assert steps[-1].timings_["bytes_fetched"] == 0

        # The same fit again: no byte of the objects leaves the server.
        counting_moto.reset()
        again, _ = _pipelines(run)
        again.fit(data)
        _same_model(again, theirs)
        assert sum(counting_moto.bytes.values()) == 0
        assert [step.timings_["cache_hits"] for step in _steps(again)] == [2, 2, 2]

        # A changed object (a new ETag) is read again, and the model is the
        # new data's.
        changed = _flights(24000, 1)
        body = changed.iloc[:8000].to_csv(index=False).encode()
        counting_moto.client.put_object(Bucket=BUCKET, Key="data/part-0.csv", Body=body)
        frame = pd.concat([changed.iloc[:8000], frame.iloc[8000:]], ignore_index=True)
        counting_moto.reset()
        ours, theirs = _pipelines(run)
        ours.fit(data)
        theirs.fit(frame.drop(columns="late"), frame.late)
        _same_model(ours, theirs)
        assert counting_moto.bytes["data/part-0.csv"] >= len(body)
        assert _steps(ours)[0].timings_["cache_hits"] < 2
        assert _steps(ours)[-1].timings_["cache_hits"] == 2
    shutdown_workers()
    counting_moto.client.delete_objects(
        Bucket=BUCKET, Delete={"Objects": [{"Key": key} for key in sizes]})


def test_a_localhost_pool_keeps_a_files_rows(tmp_path, pools_on, leaves_nothing):
    """On localhost a dataset's version is its file's inode, size and times:
    rewritten, it is read again; ``dataset_cache=0`` keeps nothing."""
    shutdown_workers()
    frame = _flights(6000, 2)[NUMERIC + ["late"]]
    path = tmp_path / "flights.csv"
    path.write_bytes(frame.to_csv(index=False).encode())
    data = read_csv(str(path), label="late")

    def fit(frame):
        ours = make_pipeline(ServerlessStandardScaler(n_workers=2),
                             ServerlessLogisticRegression(tol=1e-10, n_workers=2)).fit(data)
        theirs = make_pipeline(StandardScaler(), LogisticRegression(tol=1e-10)).fit(
            frame[NUMERIC], frame.late)
        _same_model(ours, theirs)
        return [(step.timings_["bytes_fetched"], step.timings_["cache_hits"])
                for step in ours]

    (scaler_bytes, scaler_hits), model = fit(frame)
    assert scaler_bytes >= path.stat().st_size and scaler_hits == 0
    assert model == (0, 2)
    frame = _flights(6000, 3)[NUMERIC + ["late"]]
    path.write_bytes(frame.to_csv(index=False).encode())
    (scaler_bytes, scaler_hits), model = fit(frame)
    assert scaler_bytes >= path.stat().st_size and scaler_hits == 0
    assert model == (0, 2)

    shutdown_workers()
    with config_context(dataset_cache=0):
        steps = fit(frame)
    assert [hits for _, hits in steps] == [0, 0]
    assert all(fetched >= path.stat().st_size for fetched, _ in steps)
    shutdown_workers()


def test_the_cache_keeps_within_its_budget():
    """Least recently used reads go first; a read over the budget is not kept;
    a run gets its own copy; an object without a version is never kept."""
    from dataclasses import replace

    from sklearn_serverless._datasets import ReadSpec
    from sklearn_serverless._datasets._spec import Piece

    def spec(key: str, version: str = "v1") -> ReadSpec:
        return ReadSpec("csv", 0, False, (Piece("b", key, 0, 10, 10),), (0,), None, None,
                        "float64", versions=(version,))

    reads = Counter()

    def read(key: str, n: int):
        def go():
            reads[key] += 1
            return {"X": np.full((n, 1), float(len(key)))}
        return go

    try:
        _cache.keep_rows(2 * 80)  # two reads of ten float64 rows
        for key in ("a", "b", "a", "c", "a", "b"):
            rows, _ = _cache.read_through(spec(key), read(key, 10))
            rows["X"][:] = -1  # a run writes into its rows
        assert reads == {"a": 1, "b": 2, "c": 1}  # b was the least recently used
        assert _cache.kept_bytes() == 160
        rows, hit = _cache.read_through(spec("a"), read("a", 10))
        assert hit and (rows["X"] == 1).all()
        _cache.read_through(spec("big"), read("big", 30))
        _cache.read_through(spec("big"), read("big", 30))
        assert reads["big"] == 2 and _cache.kept_bytes() == 160
        _cache.read_through(spec("a", version="v2"), read("a", 10))
        assert reads["a"] == 2
        unversioned = replace(spec("d"), versions=("",))
        _cache.read_through(unversioned, read("d", 1))
        _cache.read_through(unversioned, read("d", 1))
        assert reads["d"] == 2
        # What the fitted steps do to the rows is not part of the key.
        _cache.read_through(replace(spec("a", "v2"), consumer="X", allow_nan=True),
                            read("a", 10))
        assert reads["a"] == 2
    finally:
        _cache.keep_rows(0)
    assert _cache.kept_bytes() == 0
    assert _cache.budget_for(0.5, 2) > 0 and _cache.budget_for(0, 1) == 0


@pytest.mark.redis
def test_a_search_on_the_cloud_path_reads_each_object_once(counting_moto, redis_server,
                                                           pools_on, leaves_nothing):
    """GridSearchCV over a pipeline, on a pool: every fold's fits and scores
    run on the pool's workers, which keep their rows, so the Parquet
    object's bytes leave the server once (plus the footer the driver reads);
    ``dataset.fetched()`` counts it over the whole search."""
    shutdown_workers()
    frame = _flights(6000, 1)[["dep_delay", "distance", "late"]]
    key = "data/search.parquet"
    body = io.BytesIO()
    frame.to_parquet(body, row_group_size=1500)
    counting_moto.client.put_object(Bucket=BUCKET, Key=key, Body=body.getvalue())
    run = {"n_workers": 2, "state_store": redis_server.url, "timeout": 60,
           "backend": {"lithops": {"backend": "localhost", "storage": "minio"},
                       "minio": counting_moto.storage_config()}}
    grid = {"logisticregression__C": [0.01, 1.0]}
    cv = KFold(3, shuffle=True, random_state=0)
    counting_moto.reset()
    try:
        with config_context(worker_pool=True):
            data = read_parquet(f"{BUCKET}/{key}", label="late", backend=run["backend"])
            ours = Pipeline([("scaler", ServerlessStandardScaler(**run)),
                             ("logisticregression", ServerlessLogisticRegression(**run))])
            search = GridSearchCV(ours, grid, cv=cv, scoring=["accuracy", "neg_log_loss"],
                                  refit="accuracy").fit(data)
        reference = GridSearchCV(make_pipeline(StandardScaler(), LogisticRegression()), grid,
                                 cv=cv, scoring=["accuracy", "neg_log_loss"],
                                 refit="accuracy").fit(frame[NUMERIC], frame.late)
        np.testing.assert_array_equal(search.cv_results_["mean_test_accuracy"],
                                      reference.cv_results_["mean_test_accuracy"])
        np.testing.assert_allclose(search.cv_results_["mean_test_neg_log_loss"],
                                   reference.cv_results_["mean_test_neg_log_loss"], rtol=1e-9)
        fetched = data.fetched()
        # 3 folds x 2 C x (scaler, model, 2 scorers) + the refit's 2 runs, 2 reads each.
        assert fetched["reads"] == 2 * (3 * 2 * 4 + 2)
        assert fetched["cache_hits"] == fetched["reads"] - 2  # the first fit's reads
        assert fetched["driver_bytes"] == 0  # KFold needs the row count: the footer
        # Each worker's one read: at most the object and a block read ahead.
        assert 0 < fetched["bytes"] <= 2 * (len(body.getvalue()) + BLOCK)
        # What left the server: those reads and the driver's footer reads.
        assert fetched["bytes"] <= counting_moto.bytes[key] <= fetched["bytes"] + 2 * BLOCK
    finally:
        shutdown_workers()
        counting_moto.client.delete_object(Bucket=BUCKET, Key=key)
    assert redis_server.keys() == []
    left = [k["Key"] for k in counting_moto.client.list_objects_v2(
        Bucket=BUCKET).get("Contents", []) if not k["Key"].startswith("lithops.runtimes/")]
    assert [k for k in left if not k.startswith("data/part-")] == []
