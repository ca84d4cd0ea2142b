"""scikit-learn's model selection, unchanged, on datasets the driver never
holds: every tool gives what it gives on the same rows in memory with the
same splits (local files here; the same on moto's S3 in one test)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import load_breast_cancer
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import (
    GridSearchCV,
    HalvingGridSearchCV,
    KFold,
    RandomizedSearchCV,
    ShuffleSplit,
    StratifiedKFold,
    TimeSeriesSplit,
    cross_val_predict,
    cross_val_score,
    cross_validate,
    learning_curve,
    validation_curve,
)
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_serverless import (
    ServerlessKMeans,
    ServerlessLogisticRegression,
    ServerlessStandardScaler,
    read_csv,
    read_npy,
    read_parquet,
)

N_WORKERS = 2


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def files(cancer, tmp_path_factory):
    """The rows as two CSV objects (a prefix), one Parquet object of 4 row
    groups and one .npy object."""
    X, y = cancer
    folder = tmp_path_factory.mktemp("selection")
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    frame["target"] = y
    (folder / "csv").mkdir()
    frame[:250].to_csv(folder / "csv" / "a.csv", index=False)
    frame[250:].to_csv(folder / "csv" / "b.csv", index=False)
    frame.to_parquet(folder / "rows.parquet", row_group_size=150)
    np.save(folder / "rows.npy", X)
    return folder


def _model(**params):
    return ServerlessLogisticRegression(n_workers=N_WORKERS, timeout=60, **params)


def _same_search(search, reference, X):
    assert search.best_params_ == reference.best_params_
    for key in ("mean_test_score", "split0_test_score", "split1_test_score"):
        np.testing.assert_allclose(search.cv_results_[key], reference.cv_results_[key],
                                   rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(search.best_estimator_.coef_, reference.best_estimator_.coef_,
                               rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(search.best_estimator_.predict_proba(X),
                               reference.best_estimator_.predict_proba(X), atol=1e-8)


def test_rows_of_a_dataset(cancer, files):
    X, y = cancer
    data = read_csv(str(files / "csv") + "/", label="target")
    assert data.shape == (569, 30) and len(data) == 569
    view = data[np.arange(100, 500)][::3][[5, -1, 0]]  # a view of a view of a view
    np.testing.assert_array_equal(view.rows, np.arange(100, 500)[::3][[5, -1, 0]])
    np.testing.assert_array_equal(view.labels(), y[view.rows])
    assert view.shape == (3, 30) and data[data.labels() == 1].shape == ((y == 1).sum(), 30)
    with pytest.raises(TypeError, match="array of rows"):
        data[3]
    with pytest.raises(IndexError, match="out of range"):
        data[[569]]
    with pytest.raises(TypeError, match="read by the workers"):
        np.asarray(data)
    with pytest.raises(ValueError, match="no label column"):
        read_npy(str(files / "rows.npy")).labels()
    # Rows in another order, across both objects and both workers: the model is
    # the one of the same rows in memory, and predictions come in the view's order.
    rows = np.random.RandomState(0).permutation(569)[:400]
    model = _model().fit(data[rows])
    reference = LogisticRegression().fit(X[rows], y[rows])
    np.testing.assert_allclose(model.coef_, reference.coef_, rtol=1e-6)
    np.testing.assert_allclose(model.decision_function(data[rows[::-1]]),
                               reference.decision_function(X[rows[::-1]]), atol=1e-9)
    assert model.score(data[rows], y[rows]) == reference.score(X[rows], y[rows])
    with pytest.raises(ValueError, match="y may only be the labels"):
        model.score(data[rows], 1 - y[rows])
    # One counting pass (CSV lines) per plan: len()'s (the default, one
    # worker for these rows) and the fits' two workers, whatever the fits.
    assert data.cache()["counts"] == {1: (569,), 2: (286, 283)}


def test_grid_search_shuffled_kfold(cancer, files):
    """No labels on the driver: KFold needs the row count only; the
    estimator's score runs in the workers."""
    X, y = cancer
    data = read_csv(str(files / "csv") + "/", label="target")
    cv = KFold(3, shuffle=True, random_state=0)
    grid = {"C": [0.01, 1.0]}
    search = GridSearchCV(_model(), grid, cv=cv).fit(data)
    _same_search(search, GridSearchCV(LogisticRegression(), grid, cv=cv).fit(X, y), X)
    assert "labels" not in data.cache() and set(data.cache()["counts"]) == {1, 2}


def test_grid_search_stratified_with_a_driver_scorer(cancer, files):
    """Labels fetched once make check_cv pick StratifiedKFold; roc_auc is
    computed on the driver from the gathered decision functions."""
    X, y = cancer
    data = read_parquet(str(files / "rows.parquet"), label="target")
    grid = {"C": [0.01, 1.0]}
    search = GridSearchCV(_model(), grid, cv=3, scoring="roc_auc").fit(data, data.labels())
    reference = GridSearchCV(LogisticRegression(), grid, cv=3, scoring="roc_auc").fit(X, y)
    _same_search(search, reference, X)
    folds = [test for _, test in StratifiedKFold(3).split(X, y)]
    assert search.cv_results_["split0_test_score"][0] == pytest.approx(
        reference.cv_results_["split0_test_score"][0], rel=1e-12)
    assert len(folds) == 3


#: Scorers the workers compute from sums (confusion counts, the log-loss).
WORKER_SCORERS = ["accuracy", "balanced_accuracy", "f1", "precision", "recall",
                  "f1_macro", "precision_weighted", "jaccard", "matthews_corrcoef",
                  "neg_log_loss"]


def _gathered(monkeypatch) -> list:
    """Records every time predictions are gathered to the driver."""
    calls = []
    gather = ServerlessLogisticRegression._dataset_scores

    def recorded(self, dataset):
        calls.append(len(dataset))
        return gather(self, dataset)

    monkeypatch.setattr(ServerlessLogisticRegression, "_dataset_scores", recorded)
    return calls


def test_scorers_computed_by_the_workers(cancer, files, monkeypatch):
    """Named scorers whose metric is a sum over rows: the workers return
    counts and sums, no prediction reaches the driver, and no label either
    (y=None); scikit-learn's numbers, through a pipeline too."""
    X, y = cancer
    data = read_parquet(str(files / "rows.parquet"), label="target")
    gathered = _gathered(monkeypatch)
    cv = KFold(3, shuffle=True, random_state=0)
    grid = {"logisticregression__C": [0.01, 1.0]}
    ours = Pipeline([("scaler", ServerlessStandardScaler(n_workers=N_WORKERS, timeout=60)),
                     ("logisticregression", _model())])
    search = GridSearchCV(ours, grid, cv=cv, scoring=WORKER_SCORERS, refit="f1").fit(data)
    reference = GridSearchCV(make_pipeline(StandardScaler(), LogisticRegression()), grid,
                             cv=cv, scoring=WORKER_SCORERS, refit="f1").fit(X, y)
    assert gathered == [] and "labels" not in data.cache()
    assert search.best_params_ == reference.best_params_
    for name in WORKER_SCORERS:
        for split in range(3):
            key = f"split{split}_test_{name}"
            if name == "neg_log_loss":  # a sum of floats, in another order
                np.testing.assert_allclose(search.cv_results_[key],
                                           reference.cv_results_[key], rtol=1e-12)
            else:  # counts: the same number
                np.testing.assert_array_equal(search.cv_results_[key],
                                              reference.cv_results_[key])
    # Multiclass, string labels, labels given: the same, from the workers.
    three = np.array(["a", "b", "c"])[np.digitize(X[:, 0], [-0.5, 0.5])]
    frame = pd.DataFrame(X[:, :5], columns=[f"f{i}" for i in range(5)])
    frame["target"] = three
    frame.to_parquet(files / "three.parquet", row_group_size=200)
    data = read_parquet(str(files / "three.parquet"), label="target")
    scoring = ["balanced_accuracy", "f1_macro", "neg_log_loss"]
    ours = cross_validate(_model(), data, data.labels(), cv=cv, scoring=scoring)
    theirs = cross_validate(LogisticRegression(), X[:, :5], three, cv=cv, scoring=scoring)
    for name in scoring:
        np.testing.assert_allclose(ours[f"test_{name}"], theirs[f"test_{name}"], rtol=1e-12)
    assert gathered == []
    # A metric that is not a sum over rows: the predictions are gathered.
    ours = cross_validate(_model(), data, data.labels(), cv=cv, scoring="roc_auc_ovr")
    theirs = cross_validate(LogisticRegression(), X[:, :5], three, cv=cv,
                            scoring="roc_auc_ovr")
    np.testing.assert_allclose(ours["test_score"], theirs["test_score"], rtol=1e-9)
    assert len(gathered) == 3


def test_randomized_and_halving_searches(cancer, files):
    X, y = cancer
    data = read_parquet(str(files / "rows.parquet"), label="target")
    # RandomizedSearchCV over a ShuffleSplit (rows in shuffled order).
    cv = ShuffleSplit(2, test_size=0.25, random_state=1)
    options = dict(param_distributions={"C": [0.01, 0.1, 1.0]}, n_iter=2, random_state=0, cv=cv)
    search = RandomizedSearchCV(_model(), **options).fit(data)
    reference = RandomizedSearchCV(LogisticRegression(), **options).fit(X, y)
    _same_search(search, reference, X)
    # HalvingGridSearchCV: random subsets of rows, growing round by round.
    options = dict(param_grid={"C": [0.01, 1.0]}, cv=2, factor=2, min_resources=280,
                   random_state=0, refit=False)
    search = HalvingGridSearchCV(_model(), **options).fit(data, data.labels())
    reference = HalvingGridSearchCV(LogisticRegression(), **options).fit(X, y)
    assert search.best_params_ == reference.best_params_
    np.testing.assert_array_equal(search.n_resources_, reference.n_resources_)
    np.testing.assert_allclose(search.cv_results_["mean_test_score"],
                               reference.cv_results_["mean_test_score"], rtol=1e-9)


def test_cross_validation_and_curves(cancer, files):
    X, y = cancer
    data = read_parquet(str(files / "rows.parquet"), label="target")
    labels = data.labels()
    # cross_validate with two scorers computed on the driver from one predict.
    scoring = {"accuracy": "accuracy", "f1": "f1"}
    ours = cross_validate(_model(), data, labels, cv=TimeSeriesSplit(2), scoring=scoring)
    theirs = cross_validate(LogisticRegression(), X, y, cv=TimeSeriesSplit(2), scoring=scoring)
    for key in ("test_accuracy", "test_f1"):
        np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-12)
    # cross_val_predict: shuffled test folds, predictions put back in row order.
    cv = KFold(2, shuffle=True, random_state=2)
    np.testing.assert_allclose(
        cross_val_predict(_model(), data, cv=cv, method="predict_proba"),
        cross_val_predict(LogisticRegression(), X, y, cv=cv, method="predict_proba"),
        atol=1e-8)
    # validation_curve and learning_curve, train scores included.
    ours = validation_curve(_model(), data, labels, param_name="C", param_range=[0.01, 1.0],
                            cv=2)
    theirs = validation_curve(LogisticRegression(), X, y, param_name="C",
                              param_range=[0.01, 1.0], cv=2)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    ours = learning_curve(_model(), data, labels, train_sizes=[0.5], cv=2)
    theirs = learning_curve(LogisticRegression(), X, y, train_sizes=[0.5], cv=2)
    for got, expected in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_kmeans_cross_val_score(cancer, files):
    """The score of k-means (minus the inertia of the test rows) runs in
    the workers; no label is read."""
    X, _ = cancer
    data = read_npy(str(files / "rows.npy"))
    init = X[[0, 100, 200]]
    cv = KFold(3, shuffle=True, random_state=0)
    ours = cross_val_score(ServerlessKMeans(3, init=init, n_workers=N_WORKERS, timeout=60),
                           data, cv=cv)
    theirs = cross_val_score(KMeans(3, init=init, n_init=1), X, cv=cv)
    np.testing.assert_allclose(ours, theirs, rtol=1e-9)


@pytest.mark.redis
def test_grid_search_from_s3(cancer, moto_server, redis_server):
    """The same on a Parquet object in moto's S3: the dataset's backend is
    where its row count and labels are read."""
    X, y = cancer
    bucket = "sks-selection"
    moto_server.create_bucket(bucket)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    frame["target"] = y
    body = io.BytesIO()
    frame.to_parquet(body, row_group_size=200)
    moto_server.client.put_object(Bucket=bucket, Key="rows.parquet", Body=body.getvalue())
    config = {"lithops": {"backend": "localhost", "storage": "minio"},
              "minio": moto_server.storage_config(bucket)}
    try:
        data = read_parquet(f"s3://{bucket}/rows.parquet", label="target", backend=config)
        grid = {"C": [0.01, 1.0]}
        model = _model(backend=config, state_store=redis_server.url)
        search = GridSearchCV(model, grid, cv=2, scoring="f1").fit(data, data.labels())
        reference = GridSearchCV(LogisticRegression(), grid, cv=2, scoring="f1").fit(X, y)
        _same_search(search, reference, X)
        # The labels: the footer and the label column, not the features.
        assert data.fetched()["driver_bytes"] < len(body.getvalue()) / 2
        left = {key for key in moto_server.keys(bucket)
                if not key.startswith("lithops.runtimes/")}
        assert left == {"rows.parquet"}
        assert redis_server.keys() == []
    finally:
        keys = moto_server.keys(bucket)
        moto_server.client.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": key} for key in keys]})
