"""Pipelines where the data lies: transformers fitted by the workers on
datasets in moto's S3 (text columns, missing cells, a weight column), each
step's model equal to scikit-learn's on the same rows read into memory."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import KilledOnce
from sklearn.compose import make_column_transformer as sk_make_column_transformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_serverless import (
    ServerlessLogisticRegression,
    ServerlessMinMaxScaler,
    ServerlessOneHotEncoder,
    ServerlessSimpleImputer,
    ServerlessStandardScaler,
    read_csv,
    read_parquet,
)
from sklearn_serverless.preprocessing import make_column_transformer

pytestmark = pytest.mark.redis

BUCKET = "sks-pipelines"
NUMERIC = ["dep_delay", "distance", "air_time"]


@pytest.fixture(scope="module")
def store(moto_server, redis_server):
    moto_server.create_bucket(BUCKET)

    class Store:
        config = {"lithops": {"backend": "localhost", "storage": "minio"},
                  "minio": moto_server.storage_config(BUCKET)}
        redis = redis_server.url

        @staticmethod
        def put(key: str, body: bytes) -> str:
            moto_server.client.put_object(Bucket=BUCKET, Key=key, Body=body)
            return f"{BUCKET}/{key}"

        @classmethod
        def run(cls) -> dict:
            return {"n_workers": 2, "backend": cls.config, "state_store": cls.redis,
                    "timeout": 60}

    yield Store
    keys = moto_server.keys(BUCKET)
    if keys:
        moto_server.client.delete_objects(
            Bucket=BUCKET, Delete={"Objects": [{"Key": key} for key in keys]})


@pytest.fixture(scope="module")
def flights():
    """A flights-like table: numbers, text, missing air times, weights."""
    rng = np.random.default_rng(0)
    n = 3000
    frame = pd.DataFrame({
        "dep_delay": rng.normal(10, 30, n).round(1),
        "distance": rng.integers(100, 3000, n).astype(float),
        "air_time": rng.normal(1.5, 0.6, n).round(2),  # hours
        "carrier": rng.choice(["UA", "DL", "AA", "B6"], n),
        "origin": rng.choice(["JFK", "LGA", "EWR"], n),
        "w": rng.uniform(0.5, 2.0, n).round(3),
    })
    signal = 0.05 * frame.dep_delay + (frame.carrier == "UA") - 0.3 * (frame.origin == "JFK")
    frame["late"] = (signal + rng.normal(size=n) > 0.8).astype(int)
    frame.loc[rng.random(n) < 0.05, "air_time"] = np.nan  # cancelled flights
    return frame


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer,
                   row_group_size=700)
    return buffer.getvalue()


def _close(ours, theirs):
    np.testing.assert_allclose(ours.coef_, theirs.coef_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ours.intercept_, theirs.intercept_, rtol=1e-6, atol=1e-8)
    assert ours.n_iter_ == theirs.n_iter_


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_scaler_and_logistic_pipeline_on_a_dataset(store, flights, kind, leaves_nothing):
    """One fit per step; predict and score run in the workers."""
    frame = flights[["dep_delay", "distance", "late"]]
    if kind == "csv":
        data = read_csv(store.put("s/f.csv", frame.to_csv(index=False).encode()), label="late")
    else:
        data = read_parquet(store.put("s/f.parquet", _parquet(frame)), label="late")
    ours = make_pipeline(ServerlessStandardScaler(**store.run()),
                         ServerlessLogisticRegression(tol=1e-10, **store.run())).fit(data)
    X, y = frame[["dep_delay", "distance"]], frame.late
    theirs = make_pipeline(StandardScaler(), LogisticRegression(tol=1e-10)).fit(X, y)
    np.testing.assert_allclose(ours[0].mean_, theirs[0].mean_, rtol=1e-12)
    np.testing.assert_allclose(ours[0].scale_, theirs[0].scale_, rtol=1e-12)
    assert ours[0].n_samples_seen_ == theirs[0].n_samples_seen_
    _close(ours[-1], theirs[-1])
    np.testing.assert_array_equal(ours.predict(data), theirs.predict(X))
    assert ours.score(data) == pytest.approx(theirs.score(X, y), abs=1e-15)
    # The fitted scaler is scikit-learn's on arrays.
    np.testing.assert_allclose(ours[0].transform(X), theirs[0].transform(X), rtol=1e-12)


def test_column_transformer_encoder_and_imputer(store, flights, leaves_nothing):
    """Text columns one-hot encoded, missing air times imputed, by name."""
    columns = NUMERIC + ["carrier", "origin"]
    data = read_csv(store.put("c/f.csv", flights[columns + ["late"]].to_csv(index=False)
                              .encode()), label="late")
    run = store.run()
    ours = make_pipeline(
        make_column_transformer(
            (ServerlessSimpleImputer(**run), ["air_time"]),
            (ServerlessStandardScaler(**run), ["dep_delay", "distance"]),
            (ServerlessOneHotEncoder(**run), ["carrier", "origin"])),
        ServerlessLogisticRegression(tol=1e-10, **run)).fit(data)
    theirs = make_pipeline(
        sk_make_column_transformer(
            (SimpleImputer(), ["air_time"]),
            (StandardScaler(), ["dep_delay", "distance"]),
            (OneHotEncoder(), ["carrier", "origin"])),
        LogisticRegression(tol=1e-10)).fit(flights[columns], flights.late)
    imputer, encoder = ours[0].named_transformers_["serverlesssimpleimputer"], \
        ours[0].named_transformers_["serverlessonehotencoder"]
    np.testing.assert_allclose(imputer.statistics_, [np.nanmean(flights.air_time)],
                               rtol=1e-12)
    for got, expected in zip(encoder.categories_,
                             theirs[0].named_transformers_["onehotencoder"].categories_,
                             strict=True):
        np.testing.assert_array_equal(got, expected)
    _close(ours[-1], theirs[-1])
    assert [name.split("__")[1] for name in ours[0].get_feature_names_out()] == \
        [name.split("__")[1] for name in theirs[0].get_feature_names_out()]
    np.testing.assert_allclose(ours[0].transform(flights[columns]),
                               theirs[0].transform(flights[columns]), rtol=1e-12)
    assert ours.score(data) == pytest.approx(theirs.score(flights[columns], flights.late),
                                             abs=1e-15)


def test_column_transformer_fits_its_transformers_in_one_run(store, flights, leaves_nothing):
    """Transformers that share their execution parameters share one run of
    two rounds; one with other parameters gets a run of its own. Each is
    scikit-learn's on the same rows."""
    columns = NUMERIC + ["carrier"]
    data = read_csv(store.put("one/f.csv", flights[columns + ["late"]].to_csv(index=False)
                              .encode()), label="late")
    run = store.run()
    ours = make_column_transformer(
        (ServerlessSimpleImputer(strategy="most_frequent", **run), ["air_time"]),
        (ServerlessMinMaxScaler(**run), ["distance", "air_time"]),
        (ServerlessOneHotEncoder(sparse_output=False, **run), ["carrier"]),
        (ServerlessStandardScaler(**{**run, "n_workers": 1}), ["dep_delay", "air_time"]),
    ).fit(data)
    theirs = sk_make_column_transformer(
        (SimpleImputer(strategy="most_frequent"), ["air_time"]),
        (MinMaxScaler(), ["distance", "air_time"]),
        (OneHotEncoder(sparse_output=False), ["carrier"]),
        (StandardScaler(), ["dep_delay", "air_time"])).fit(flights[columns])
    fitted = [transformer for _, transformer, _ in ours.transformers_]
    assert fitted[0].timings_ is fitted[1].timings_ is fitted[2].timings_
    assert fitted[0].timings_["n_rounds"] == 2 and fitted[0].n_workers_ == 2
    assert fitted[3].timings_ is not fitted[0].timings_ and fitted[3].n_workers_ == 1
    for got, expected in zip(fitted, (t for _, t, _ in theirs.transformers_), strict=True):
        np.testing.assert_array_equal(got.feature_names_in_, expected.feature_names_in_)
        np.testing.assert_allclose(got.transform(flights[list(got.feature_names_in_)]),
                                   expected.transform(flights[list(got.feature_names_in_)]),
                                   rtol=1e-12)
    np.testing.assert_allclose(ours.transform(flights[columns]),
                               theirs.transform(flights[columns]), rtol=1e-12)
    # Refused before any run, whichever run it would share: an imputer given text.
    for imputer_run in (run, {**run, "n_workers": 1}):
        with pytest.raises(ValueError, match="SimpleImputer fills numeric features only"):
            make_column_transformer((ServerlessStandardScaler(**run), ["distance"]),
                                    (ServerlessSimpleImputer(**imputer_run), ["carrier"])
                                    ).fit(data)


@pytest.mark.parametrize("rank", [1, 0], ids=["follower", "coordinator"])
def test_column_transformer_survives_a_killed_worker(flights, tmp_path, monkeypatch, rank,
                                                     leaves_nothing):
    """A worker killed in the second round (its process gone, as a platform
    does it): a new generation fits every transformer, scikit-learn's."""
    from sklearn_serverless._algorithms import ALGORITHMS

    columns = ["dep_delay", "air_time", "carrier"]
    for i, part in enumerate(np.array_split(np.arange(len(flights)), 2)):
        flights.iloc[part][columns].to_csv(tmp_path / f"part-{i}.csv", index=False)
    algorithm = ALGORITHMS["preprocessing"]
    monkeypatch.setitem(ALGORITHMS, "preprocessing", dataclasses.replace(
        algorithm, dataset_worker=KilledOnce(algorithm.dataset_worker, rank, 2,
                                             str(tmp_path / "killed"))))
    ours = make_column_transformer(
        (ServerlessStandardScaler(n_workers=2, timeout=30), ["dep_delay", "air_time"]),
        (ServerlessOneHotEncoder(sparse_output=False, n_workers=2, timeout=30), ["carrier"]),
    ).fit(read_csv(str(tmp_path)))
    theirs = sk_make_column_transformer(
        (StandardScaler(), ["dep_delay", "air_time"]),
        (OneHotEncoder(sparse_output=False), ["carrier"])).fit(flights[columns])
    scaler = ours.named_transformers_["serverlessstandardscaler"]
    assert scaler.timings_["generations"] == 2
    np.testing.assert_allclose(scaler.var_, theirs.named_transformers_["standardscaler"].var_,
                               rtol=1e-12)
    np.testing.assert_allclose(ours.transform(flights[columns]),
                               theirs.transform(flights[columns]), rtol=1e-12)


def test_missing_cells_and_text_reach_the_step_that_consumes_them(store, flights,
                                                                   leaves_nothing):
    frame = flights[NUMERIC + ["carrier", "late"]]
    path = store.put("m/f.parquet", _parquet(frame))
    model = ServerlessLogisticRegression(**store.run())
    with pytest.raises(ValueError, match=r"Input X contains NaN\.\n"
                                         r"ServerlessLogisticRegression does not accept"):
        model.fit(read_parquet(path, label="late", columns=NUMERIC))
    with pytest.raises(ValueError, match=r"could not convert string to float.*'carrier'"):
        model.fit(read_parquet(path, label="late"))
    for strategy in ("mean", "most_frequent", "constant"):
        ours = ServerlessSimpleImputer(strategy=strategy, **store.run()).fit(
            read_parquet(path, label="late", columns=NUMERIC))
        theirs = SimpleImputer(strategy=strategy).fit(frame[NUMERIC])
        np.testing.assert_allclose(ours.statistics_.astype(float),
                                   theirs.statistics_.astype(float), rtol=1e-12)
    with pytest.raises(ValueError, match="median.* not supported on a dataset: an exact "
                                         "median needs every value"):
        ServerlessSimpleImputer(strategy="median").fit(read_parquet(path, columns=NUMERIC))
    scaler = ServerlessMinMaxScaler(**store.run()).fit(
        read_parquet(path, columns=NUMERIC))
    reference = MinMaxScaler().fit(frame[NUMERIC])
    for name in ("data_min_", "data_max_", "scale_", "min_"):
        np.testing.assert_allclose(getattr(scaler, name), getattr(reference, name),
                                   rtol=1e-12)
    assert scaler.n_samples_seen_ == reference.n_samples_seen_


def test_weight_column(store, flights, leaves_nothing):
    """read_csv(..., sample_weight='w') weighs the scaler and the model."""
    frame = flights[["dep_delay", "distance", "w", "late"]]
    data = read_csv(store.put("w/f.csv", frame.to_csv(index=False).encode()), label="late",
                    sample_weight="w")
    ours = make_pipeline(ServerlessStandardScaler(**store.run()),
                         ServerlessLogisticRegression(tol=1e-10, class_weight="balanced",
                                                      **store.run())).fit(data)
    X, y, w = frame[["dep_delay", "distance"]], frame.late, frame.w.to_numpy()
    theirs = make_pipeline(StandardScaler(), LogisticRegression(
        tol=1e-10, class_weight="balanced")).fit(
        X, y, standardscaler__sample_weight=w, logisticregression__sample_weight=w)
    np.testing.assert_allclose(ours[0].mean_, theirs[0].mean_, rtol=1e-12)
    np.testing.assert_allclose(ours[0].var_, theirs[0].var_, rtol=1e-10)
    _close(ours[-1], theirs[-1])
    with pytest.raises(ValueError, match="sample_weight must be None when fitting a dataset"):
        ServerlessStandardScaler(**store.run()).fit(data, sample_weight=w)


@pytest.mark.parametrize("drop", [None, "first"])
def test_an_empty_text_cell_is_missing_as_pandas_reads_it(store, flights, drop,
                                                         leaves_nothing):
    """An empty CSV text cell is the category NaN (sorted last, named
    'carrier_nan'), as scikit-learn's encoder has it from pandas' read_csv."""
    frame = flights[["dep_delay", "carrier", "origin", "late"]].copy()
    frame.loc[frame.index % 7 == 3, "carrier"] = ""
    body = frame.to_csv(index=False).encode()
    data = read_csv(store.put(f"blank/{drop}.csv", body), label="late")
    read = pd.read_csv(io.BytesIO(body))
    assert read.carrier.isna().sum() == (frame.carrier == "").sum() > 0
    run = store.run()
    ours = make_pipeline(
        make_column_transformer((ServerlessStandardScaler(**run), ["dep_delay"]),
                                (ServerlessOneHotEncoder(drop=drop, **run),
                                 ["carrier", "origin"])),
        ServerlessLogisticRegression(tol=1e-10, **run)).fit(data)
    theirs = make_pipeline(
        sk_make_column_transformer((StandardScaler(), ["dep_delay"]),
                                   (OneHotEncoder(drop=drop), ["carrier", "origin"])),
        LogisticRegression(tol=1e-10)).fit(read.drop(columns="late"), read.late)
    encoder = ours[0].named_transformers_["serverlessonehotencoder"]
    reference = theirs[0].named_transformers_["onehotencoder"]
    assert [list(c) for c in encoder.categories_][0][:-1] == ["AA", "B6", "DL", "UA"]
    assert np.isnan(encoder.categories_[0][-1])
    np.testing.assert_array_equal(encoder.get_feature_names_out(),
                                  reference.get_feature_names_out())
    _close(ours[-1], theirs[-1])
    assert ours.score(data) == pytest.approx(theirs.score(read.drop(columns="late"),
                                                          read.late), abs=1e-15)


def test_encoder_refuses_what_it_cannot_do_on_a_dataset(store, flights):
    data = read_csv(store.put("e/f.csv", flights[["carrier"]].to_csv(index=False).encode()))
    with pytest.raises(ValueError, match="min_frequency and max_categories are not supported"):
        ServerlessOneHotEncoder(min_frequency=3).fit(data)


@parametrize_with_checks([ServerlessStandardScaler(), ServerlessMinMaxScaler(),
                          ServerlessOneHotEncoder(), ServerlessSimpleImputer()])
def test_sklearn_compatible_on_arrays(estimator, check):
    check(estimator)
