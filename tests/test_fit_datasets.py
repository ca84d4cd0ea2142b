"""Fits from data that lives only in object storage (moto's S3 server) or in
local files: each worker reads its part, the driver never holds the data,
and the model is the one fitted from the same rows in memory."""

from __future__ import annotations

import gzip
import io
import re
import threading
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs

from sklearn_serverless import (
    ServerlessKMeans,
    ServerlessLogisticRegression,
    ServerlessLogisticRegressionCV,
    read_csv,
    read_npy,
    read_parquet,
)
from sklearn_serverless._datasets import DataError

pytestmark = pytest.mark.redis

BUCKET = "sks-datasets"


@pytest.fixture(scope="module")
def store(moto_server, redis_server):
    moto_server.create_bucket(BUCKET)

    class Store:
        config = {"lithops": {"backend": "localhost", "storage": "minio"},
                  "minio": moto_server.storage_config(BUCKET)}
        redis = redis_server.url

        data_keys: set[str] = set()

        @classmethod
        def put(cls, key: str, body: bytes) -> str:
            moto_server.client.put_object(Bucket=BUCKET, Key=key, Body=body)
            cls.data_keys.add(key)
            return f"{BUCKET}/{key}"

        @staticmethod
        def keys() -> list[str]:
            return moto_server.keys(BUCKET)

    yield Store
    keys = moto_server.keys(BUCKET)
    if keys:
        moto_server.client.delete_objects(
            Bucket=BUCKET, Delete={"Objects": [{"Key": key} for key in keys]})


@pytest.fixture(autouse=True)
def nothing_added(store, redis_server):
    """A fit leaves the user's data in the bucket and nothing else (Lithops'
    cache of runtime metadata aside), and no Redis key."""
    yield
    left = {key for key in store.keys() if not key.startswith("lithops.runtimes/")}
    assert left - store.data_keys == set()
    assert redis_server.keys() == []


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _csv(frame: pd.DataFrame, header: bool = True) -> bytes:
    return frame.to_csv(index=False, header=header).encode()


@pytest.fixture(scope="module")
def blobs():
    X, _ = make_blobs(4001, 5, centers=6, cluster_std=1.5, random_state=0)
    return X, X[[0, 700, 1400, 2100, 2800, 3500]].copy()


def _same_model(model, X, init):
    reference = KMeans(init.shape[0], init=init, n_init=1).fit(X)
    np.testing.assert_allclose(model.cluster_centers_, reference.cluster_centers_, rtol=1e-9,
                               atol=1e-12)
    np.testing.assert_array_equal(model.labels_, reference.labels_)
    assert model.n_iter_ == reference.n_iter_
    assert model.inertia_ == pytest.approx(reference.inertia_, rel=1e-9)
    return reference


def test_kmeans_from_npy_csv_prefix_and_parquet(store, blobs, leaves_nothing):
    X, init = blobs
    columns = [f"f{i}" for i in range(X.shape[1])]
    frame = pd.DataFrame(X, columns=columns)
    npy = store.put("blobs/X.npy", _npy(X))
    # Three CSV objects of unequal size, an empty one and a header-only one among them.
    for key, part in [("a.csv", frame[:2500]), ("b.csv", frame[2500:2600]),
                      ("c.csv", frame[2600:])]:
        store.put(f"blobs/csv/{key}", _csv(part))
    store.put("blobs/csv/b0.csv", b"")
    store.put("blobs/csv/b1.csv", _csv(frame[:0]))
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame), buf, row_group_size=700)
    parquet = store.put("blobs/X.parquet", buf.getvalue())
    for data in (read_npy(f"s3://{npy}"), read_csv(f"{BUCKET}/blobs/csv/"),
                 read_parquet(parquet)):
        model = ServerlessKMeans(6, init=init, n_workers=3, backend=store.config,
                                 state_store=store.redis, timeout=60).fit(data)
        reference = _same_model(model, X, init)
        assert model.n_features_in_ == 5
        if data.format != "npy":
            assert list(model.feature_names_in_) == columns
        np.testing.assert_array_equal(model.predict(data), reference.predict(X))
        assert model.score(data) == pytest.approx(reference.score(X), rel=1e-9)
    np.testing.assert_allclose(model.transform(data), reference.transform(X), rtol=1e-9,
                               atol=1e-9)


def test_kmeans_from_local_files(tmp_path, blobs, leaves_nothing):
    X, init = blobs
    folder = tmp_path / "parts"
    folder.mkdir()
    frame = pd.DataFrame(X, columns=list("abcde"))
    (folder / "1.csv").write_bytes(_csv(frame[:1000]))
    (folder / "2.csv").write_bytes(_csv(frame[1000:]))
    model = ServerlessKMeans(6, init=init, n_workers=2).fit(read_csv(str(folder)))
    _same_model(model, X, init)


def test_kmeans_parallel_init_is_as_good_as_kmeans_plusplus(store, leaves_nothing):
    X, _ = make_blobs(6000, 8, centers=12, cluster_std=3.0, random_state=3)
    data = read_npy(store.put("kpp/X.npy", _npy(X)))
    ratios = []
    for seed in range(3):
        ours = ServerlessKMeans(12, n_workers=2, random_state=seed, backend=store.config,
                                state_store=store.redis).fit(data)
        theirs = KMeans(12, random_state=seed, n_init=1).fit(X)
        ratios.append(ours.inertia_ / theirs.inertia_)
    assert np.median(ratios) < 1.03, ratios
    again = ServerlessKMeans(12, n_workers=2, random_state=1, backend=store.config,
                             state_store=store.redis).fit(data)
    second = ServerlessKMeans(12, n_workers=2, random_state=1, backend=store.config,
                              state_store=store.redis).fit(data)
    np.testing.assert_array_equal(again.cluster_centers_, second.cluster_centers_)
    random = ServerlessKMeans(12, init="random", n_init=2, n_workers=2, random_state=0,
                              backend=store.config, state_store=store.redis).fit(data)
    assert random.inertia_ < 1.5 * theirs.inertia_


def test_rows_longer_than_lithops_partitioner_reads(store, leaves_nothing):
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(20, 8000)), rng.normal(5, size=(20, 8000))])
    body = _csv(pd.DataFrame(X))
    assert len(body) / X.shape[0] > 128 << 10  # every row longer than 128 KiB
    data = read_csv(store.put("wide/x.csv", body))
    init = X[[0, 39]].copy()
    model = ServerlessKMeans(2, init=init, n_workers=3, backend=store.config,
                             state_store=store.redis).fit(data)
    _same_model(model, X, init)


def test_bad_data_fails_the_fit_naming_object_and_row(store, blobs, leaves_nothing):
    X, init = blobs
    text = _csv(pd.DataFrame(X[:300], columns=list("abcde"))).decode().splitlines()
    text[201] = text[201].replace(text[201].split(",")[2], "oops", 1)
    path = store.put("bad/x.csv", "\n".join(text).encode())
    started = time.monotonic()
    with pytest.raises(DataError) as error:
        ServerlessKMeans(6, init=init, n_workers=2, backend=store.config,
                         state_store=store.redis, timeout=30).fit(read_csv(path))
    # About the data, not a worker failure: the object, the line, the column.
    assert str(error.value) == (f"{BUCKET}/bad/x.csv, line 202: the cell 'oops' in "
                                "column 'c' is not a number.")
    assert time.monotonic() - started < 20
    gz = store.put("bad/x.csv.gz", gzip.compress(b"a,b\n1,2\n"))
    with pytest.raises(ValueError, match=r"x\.csv\.gz is compressed"):
        ServerlessKMeans(2, n_workers=2, backend=store.config,
                         state_store=store.redis).fit(read_csv(gz))


def test_dataset_argument_errors(store, blobs, leaves_nothing):
    X, init = blobs
    data = read_npy(store.put("args/X.npy", _npy(X[:10])))
    model = ServerlessKMeans(6, n_workers=2, backend=store.config, state_store=store.redis)
    with pytest.raises(ValueError, match="sample_weight must be None when fitting a dataset"):
        model.fit(data, sample_weight=np.ones(10))
    with pytest.raises(ValueError, match="n_samples=10 should be >= n_clusters=11"):
        ServerlessKMeans(11, n_workers=2, backend=store.config,
                         state_store=store.redis, timeout=30).fit(data)
    with pytest.raises(ValueError, match="does not match the number of features of the data"):
        ServerlessKMeans(6, init=init[:, :3], backend=store.config,
                         state_store=store.redis).fit(data)
    fitted = ServerlessKMeans(2, n_workers=2, backend=store.config,
                              state_store=store.redis).fit(data)
    other = read_npy(store.put("args/Y.npy", _npy(X[:10, :3])))
    with pytest.raises(ValueError, match="X has 3 features, but ServerlessKMeans is "
                                         "expecting 5 features"):
        fitted.predict(other)


def _rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def test_the_driver_never_holds_the_data(store, moto_server, tmp_path, leaves_nothing):
    # A 150 MB .npy object, written and uploaded block by block.
    n, d = 375_000, 50
    path = tmp_path / "big.npy"
    with open(path, "wb") as file:
        np.lib.format.write_array_header_1_0(
            file, {"descr": "<f8", "fortran_order": False, "shape": (n, d)})
        rng = np.random.default_rng(0)
        for start in range(0, n, 25_000):
            block = rng.normal(size=(25_000, d))
            block[:, 0] += 10 * (np.arange(start, start + 25_000) % 2)
            block.tofile(file)
    moto_server.client.upload_file(str(path), BUCKET, "big/X.npy")
    path.unlink()
    baseline, peak = _rss(), [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        model = ServerlessKMeans(2, init="random", max_iter=3, n_workers=2, random_state=0,
                                 backend=store.config, state_store=store.redis,
                                 timeout=60).fit(read_npy(f"{BUCKET}/big/X.npy"))
    finally:
        done.set()
        sampler.join()
    moto_server.client.delete_object(Bucket=BUCKET, Key="big/X.npy")
    assert model.labels_.shape == (n,)
    growth = peak[0] - baseline
    assert growth < 40 << 20, f"the driver grew by {growth / 2**20:.0f} MB for a 150 MB object"


# logistic regression -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def labelled():
    from sklearn.datasets import make_classification

    X, y = make_classification(3000, 5, n_informative=4, n_redundant=0, n_classes=3,
                               n_clusters_per_class=1, random_state=0)
    return X, np.array(["cat", "dog", "emu"])[y]


@pytest.mark.parametrize("n_classes", [2, 3])
def test_logistic_from_csv_and_parquet(store, labelled, n_classes, leaves_nothing):
    from sklearn.linear_model import LogisticRegression

    X, labels = labelled
    keep = labels != "emu" if n_classes == 2 else np.ones(len(labels), dtype=bool)
    X, labels = X[keep], labels[keep]
    frame = pd.DataFrame(X, columns=list("abcde"))
    frame["late"] = labels
    store.put(f"lr{n_classes}/csv/1.csv", _csv(frame[:1234]))
    store.put(f"lr{n_classes}/csv/2.csv", _csv(frame[1234:]))
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame), buf, row_group_size=500)
    parquet = store.put(f"lr{n_classes}/x.parquet", buf.getvalue())
    for data in (read_csv(f"{BUCKET}/lr{n_classes}/csv/", label="late"),
                 read_parquet(parquet, label="late")):
        for class_weight in (None, "balanced"):
            reference = LogisticRegression(tol=1e-10, max_iter=1000,
                                           class_weight=class_weight).fit(X, labels)
            model = ServerlessLogisticRegression(
                tol=1e-10, max_iter=1000, class_weight=class_weight, n_workers=3,
                backend=store.config, state_store=store.redis, timeout=60).fit(data)
            np.testing.assert_array_equal(model.classes_, reference.classes_)
            np.testing.assert_allclose(model.coef_, reference.coef_, rtol=1e-6, atol=1e-8)
            np.testing.assert_allclose(model.intercept_, reference.intercept_, rtol=1e-6,
                                       atol=1e-8)
            assert list(model.feature_names_in_) == list("abcde")
        np.testing.assert_array_equal(model.predict(data), reference.predict(X))
        np.testing.assert_allclose(model.predict_proba(data), reference.predict_proba(X),
                                   atol=1e-7)
        assert model.score(data) == pytest.approx(reference.score(X, labels))


@pytest.mark.parametrize("values", [[0, 1], [3, 7, 9]])
def test_logistic_integer_labels_stay_integers(store, labelled, values, leaves_nothing):
    from sklearn.linear_model import LogisticRegression

    X, labels = labelled
    y = np.array(values)[np.unique(labels, return_inverse=True)[1] % len(values)]
    frame = pd.DataFrame(X, columns=list("abcde"))
    frame["late"] = y
    data = read_csv(store.put(f"lr-int{len(values)}/x.csv", _csv(frame)), label="late")
    reference = LogisticRegression(tol=1e-10, max_iter=1000).fit(X, y)
    model = ServerlessLogisticRegression(tol=1e-10, max_iter=1000, n_workers=2,
                                         backend=store.config, state_store=store.redis,
                                         timeout=60).fit(data)
    assert model.classes_.dtype == reference.classes_.dtype == np.int64
    np.testing.assert_array_equal(model.classes_, reference.classes_)
    predicted = model.predict(data)
    assert predicted.dtype == reference.predict(X).dtype
    np.testing.assert_array_equal(predicted, reference.predict(X))


def test_logistic_dataset_errors(store, labelled, tmp_path, leaves_nothing):
    X, labels = labelled
    frame = pd.DataFrame(X[:50], columns=list("abcde"))
    frame["late"] = "cat"
    one_class = read_csv(store.put("lr-err/one.csv", _csv(frame)), label="late")
    model = ServerlessLogisticRegression(n_workers=2, backend=store.config,
                                         state_store=store.redis, timeout=30)
    with pytest.raises(ValueError, match="only one class: 'cat'"):
        model.fit(one_class)
    with pytest.raises(ValueError, match="y must be None when fitting a dataset"):
        model.fit(one_class, labels[:50])
    with pytest.raises(ValueError, match="no label column"):
        model.fit(read_csv(f"{BUCKET}/lr-err/one.csv", columns=list("abcde")))
    with pytest.raises(ValueError, match="could not convert string to float: .*'late' holds text"):
        model.fit(read_csv(f"{BUCKET}/lr-err/one.csv"))
    with pytest.raises(ValueError, match="'nope'"):
        model.fit(read_csv(f"{BUCKET}/lr-err/one.csv", label="nope"))


@pytest.mark.parametrize("n_classes", [2, 3])
def test_logistic_cv_from_csv_prefix_and_parquet(store, labelled, n_classes, leaves_nothing):
    """The whole search where the rows lie (a CSV prefix of several objects, a
    Parquet object) is the search in memory on the same rows and folds, and
    scikit-learn's LogisticRegressionCV at a tight tol."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import KFold, StratifiedKFold

    X, labels = labelled
    keep = labels != "emu" if n_classes == 2 else np.ones(len(labels), dtype=bool)
    X, labels = X[keep][:1500], labels[keep][:1500]
    frame = pd.DataFrame(X, columns=list("abcde"))
    frame["late"] = labels
    for i, (low, high) in enumerate([(0, 400), (400, 401), (401, 1100), (1100, 1500)]):
        store.put(f"cv{n_classes}/csv/{i}.csv", _csv(frame[low:high]))
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame), buf, row_group_size=300)
    parquet = store.put(f"cv{n_classes}/x.parquet", buf.getvalue())
    common = dict(Cs=[0.01, 1.0], l1_ratios=(0,), use_legacy_attributes=False, tol=1e-10,
                  max_iter=1000, scoring="neg_log_loss")
    execution = dict(n_workers=3, backend=store.config, state_store=store.redis, timeout=60)
    for cv in ((None, KFold(3)) if n_classes == 2 else (StratifiedKFold(4),)):
        reference = LogisticRegressionCV(**common, cv=cv).fit(X, labels)
        memory = ServerlessLogisticRegressionCV(**common, cv=cv, **execution).fit(X, labels)
        for data in (read_csv(f"{BUCKET}/cv{n_classes}/csv/", label="late"),
                     read_parquet(parquet, label="late")):
            model = ServerlessLogisticRegressionCV(**common, cv=cv, **execution).fit(data)
            np.testing.assert_array_equal(model.classes_, reference.classes_)
            assert model.C_ == memory.C_ == reference.C_
            np.testing.assert_allclose(model.scores_, memory.scores_, rtol=1e-9)
            np.testing.assert_allclose(model.scores_, reference.scores_, rtol=1e-6)
            np.testing.assert_allclose(model.coef_, memory.coef_, atol=1e-9)
            np.testing.assert_allclose(model.coef_, reference.coef_, rtol=1e-5, atol=1e-6)
            assert model.n_iter_.shape == reference.n_iter_.shape
            assert list(model.feature_names_in_) == list("abcde")


def test_logistic_cv_dataset_refuses_folds_it_cannot_compute(store, labelled, no_workers):
    """Splitters and scorers that need the rows on the driver are refused
    before any worker starts (nothing placed: the bucket keeps the data only)."""
    from sklearn.model_selection import GroupKFold, KFold, ShuffleSplit

    X, labels = labelled
    frame = pd.DataFrame(X[:300], columns=list("abcde"))
    frame["late"] = labels[:300]
    data = read_csv(store.put("cv-err/x.csv", _csv(frame)), label="late")
    model = dict(l1_ratios=(0,), use_legacy_attributes=False, scoring="accuracy",
                 n_workers=2, backend=store.config, state_store=store.redis)
    for cv in (KFold(3, shuffle=True, random_state=0), ShuffleSplit(3), GroupKFold(3),
               [(np.arange(100), np.arange(100, 300))]):
        with pytest.raises(ValueError, match="cv must be None, an int, KFold or Strat"):
            ServerlessLogisticRegressionCV(**model, cv=cv).fit(data)
    for scoring in ("roc_auc", "f1", "precision"):
        with pytest.raises(ValueError, match="computed on the driver"):
            ServerlessLogisticRegressionCV(**(model | {"scoring": scoring})).fit(data)


def test_warm_start_of_the_wrong_shape_on_a_dataset_names_both_shapes(tmp_path, labelled,
                                                                       leaves_nothing):
    # Three classes, then two: the previous (3, d + 1) coefficients cannot start
    # a binary fit. The message is the in-memory fit's: given shape, then expected.
    X, y = labelled
    binary = np.where(y == "cat", "cat", "dog")
    d = X.shape[1] + 1
    expected = re.escape(f"Initialization coef is of shape (3, {d}), expected shape "
                         f"({d},) or (1, {d})")
    in_memory = ServerlessLogisticRegression(warm_start=True, n_workers=2).fit(X, y)
    with pytest.raises(ValueError, match=expected):
        in_memory.fit(X, binary)
    path = tmp_path / "binary.csv"
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])]).assign(late=binary)
    path.write_bytes(_csv(frame))
    model = ServerlessLogisticRegression(warm_start=True, n_workers=2).fit(X, y)
    with pytest.raises(ValueError, match=expected):
        model.fit(read_csv(str(path), label="late"))
