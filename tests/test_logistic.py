"""ServerlessLogisticRegression against scikit-learn's LogisticRegression:
same coefficients, same API, same errors, and faults that end promptly with
nothing left behind."""

from __future__ import annotations

import pickle
import time

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import IterationRecorder
from sklearn._loss.loss import HalfBinomialLoss, HalfMultinomialLoss
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.linear_model._linear_loss import LinearModelLoss
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_serverless import ServerlessLogisticRegression


@parametrize_with_checks(
    [ServerlessLogisticRegression(n_workers=2, state_mode=mode)
     for mode in ("lock_free", "locked")],
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def _data(n_classes: int, n_samples: int = 500, n_features: int = 6, seed: int = 0):
    X, y = make_classification(n_samples, n_features, n_informative=4, n_redundant=0,
                               n_classes=n_classes, n_clusters_per_class=1,
                               random_state=seed)
    weights = np.random.RandomState(seed).uniform(0.2, 3.0, n_samples)
    return X, y, weights


@pytest.fixture(scope="module", params=[2, 3], ids=["binary", "multinomial"])
def problem(request):
    """Data, sample weights and class weights; the reference model of each solver."""
    X, y, weights = _data(request.param)
    class_weight = {0: 0.5, 1: 2.0} if request.param == 2 else "balanced"
    references = {
        solver: LogisticRegression(C=0.5, solver=solver, tol=1e-10, max_iter=1000,
                                   class_weight=class_weight).fit(X, y, sample_weight=weights)
        for solver in ("lbfgs", "newton-cholesky")
    }
    return X, y, weights, class_weight, references


def _assert_same_model(model, reference, atol=1e-6):
    assert model.coef_.shape == reference.coef_.shape
    assert model.intercept_.shape == reference.intercept_.shape
    np.testing.assert_allclose(model.coef_, reference.coef_, rtol=0, atol=atol)
    np.testing.assert_allclose(model.intercept_, reference.intercept_, rtol=0, atol=atol)
    np.testing.assert_array_equal(model.classes_, reference.classes_)
    assert model.n_iter_.shape == (1,) and model.n_iter_.dtype == np.int32


def _fit(problem, solver="lbfgs", **params):
    X, y, weights, class_weight, references = problem
    model = ServerlessLogisticRegression(C=0.5, solver=solver, tol=1e-10, max_iter=1000,
                                         class_weight=class_weight, **params)
    return model.fit(X, y, sample_weight=weights), references[solver]


@pytest.mark.parametrize("n_workers", [1, 2, 5])
@pytest.mark.parametrize("state_mode", ["lock_free", "locked"])
@pytest.mark.parametrize("solver", ["lbfgs", "newton-cholesky"])
def test_same_model_as_sklearn_sqlite(problem, solver, n_workers, state_mode, leaves_nothing):
    model, reference = _fit(problem, solver, n_workers=n_workers, state_mode=state_mode)
    _assert_same_model(model, reference)
    # The same arithmetic up to rounding: the same path to the optimum.
    assert abs(int(model.n_iter_[0]) - int(reference.n_iter_[0])) <= 1
    assert model.n_workers_ == n_workers
    X = problem[0]
    np.testing.assert_allclose(model.predict_proba(X), reference.predict_proba(X), atol=1e-7)


@pytest.mark.redis
@pytest.mark.parametrize("n_workers, state_mode, solver", [
    (2, "lock_free", "lbfgs"),
    (5, "locked", "lbfgs"),
    (3, "locked", "newton-cholesky"),
])
def test_same_model_as_sklearn_redis(problem, redis_server, n_workers, state_mode, solver,
                                     leaves_nothing):
    model, reference = _fit(problem, solver, n_workers=n_workers, state_mode=state_mode,
                            state_store=redis_server.url)
    _assert_same_model(model, reference)
    assert redis_server.keys() == []


@pytest.mark.parametrize("data", ["float32", "sparse"])
@pytest.mark.parametrize("solver", ["lbfgs", "newton-cholesky", "newton-cg"])
def test_float32_and_sparse_as_sklearn(data, solver):
    X, y, weights = _data(3, n_features=8, seed=1)
    if data == "float32":
        X = X.astype(np.float32)
    else:
        X = sp.csr_matrix(np.where(np.abs(X) < 0.8, 0, X))
    # float32 arithmetic cannot reach a gradient of 1e-10.
    tol = 1e-6 if data == "float32" else 1e-10
    reference = LogisticRegression(solver=solver, tol=tol, max_iter=1000).fit(X, y)
    model = ServerlessLogisticRegression(solver=solver, tol=tol, max_iter=1000,
                                         n_workers=3).fit(X, y)
    assert model.coef_.dtype == reference.coef_.dtype
    _assert_same_model(model, reference, atol=1e-4 if data == "float32" else 1e-6)
    np.testing.assert_array_equal(model.predict(X), reference.predict(X))


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("solver", ["lbfgs", "newton-cholesky"])
def test_no_intercept_and_no_penalty_as_sklearn(n_classes, solver):
    X, y, _ = _data(n_classes, n_samples=300)
    for params in (dict(fit_intercept=False), dict(C=np.inf)):
        reference = LogisticRegression(solver=solver, tol=1e-10, max_iter=1000,
                                       **params).fit(X, y)
        model = ServerlessLogisticRegression(solver=solver, tol=1e-10, max_iter=1000,
                                             n_workers=2, **params).fit(X, y)
        _assert_same_model(model, reference, atol=1e-5)
        if not params.get("fit_intercept", True):
            assert np.all(model.intercept_ == 0)


def test_warm_start_continues_from_previous_fit():
    X, y, _ = _data(3)
    reference = LogisticRegression(tol=1e-10, max_iter=1000).fit(X, y)
    model = ServerlessLogisticRegression(max_iter=3, warm_start=True, n_workers=2, tol=1e-10)
    with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge after 3"):
        model.fit(X, y)
    assert model.n_iter_[0] == 3
    assert np.abs(model.coef_ - reference.coef_).max() > 1e-2
    model.set_params(max_iter=1000).fit(X, y)
    _assert_same_model(model, reference, atol=1e-6)
    # Started 3 iterations in: fewer iterations than from zero.
    assert model.n_iter_[0] < reference.n_iter_[0]
    model.fit(X, y)  # started at the optimum
    _assert_same_model(model, reference, atol=1e-6)
    assert model.n_iter_[0] <= 3
    with pytest.raises(ValueError, match="Initialization coef is of shape"):
        model.fit(X, y % 2)


def test_lbfgs_max_iter_warns_as_sklearn():
    X, y, _ = _data(2)
    with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge") as ours:
        model = ServerlessLogisticRegression(max_iter=2, n_workers=2).fit(X, y)
    with pytest.warns(ConvergenceWarning) as theirs:
        reference = LogisticRegression(max_iter=2).fit(X, y)
    assert str(ours[0].message) == str(theirs[0].message)
    assert model.n_iter_[0] == reference.n_iter_[0] == 2
    _assert_same_model(model, reference, atol=1e-10)


def test_newton_max_iter_warns_as_sklearn():
    X, y, _ = _data(3)
    with pytest.warns(ConvergenceWarning, match="Newton solver did not converge after 1"):
        model = ServerlessLogisticRegression(solver="newton-cholesky", max_iter=1,
                                             n_workers=2).fit(X, y)
    with pytest.warns(ConvergenceWarning):
        reference = LogisticRegression(solver="newton-cholesky", max_iter=1).fit(X, y)
    _assert_same_model(model, reference, atol=1e-10)


# gradient descent -------------------------------------------------------------------------


@pytest.mark.parametrize("n_classes", [2, 3])
def test_gd_converges_to_the_lbfgs_solution(n_classes):
    X, y, weights = _data(n_classes)
    X = StandardScaler().fit_transform(X)
    reference = LogisticRegression(tol=1e-10, max_iter=1000).fit(X, y, sample_weight=weights)
    model = ServerlessLogisticRegression(solver="gd", tol=1e-7, max_iter=20_000,
                                         n_workers=3).fit(X, y, sample_weight=weights)
    # max |gradient| <= 1e-7 at a strongly convex optimum: the coefficients are close.
    _assert_same_model(model, reference, atol=1e-5)
    assert 1 < model.n_iter_[0] < 20_000
    # One round for the Lipschitz bound, then one per gradient evaluation.
    assert model.timings_["n_rounds"] == model.n_iter_[0] + 2


def _objective(n_classes, fit_intercept=True):
    base = HalfBinomialLoss() if n_classes == 2 else HalfMultinomialLoss(n_classes=n_classes)
    return LinearModelLoss(base, fit_intercept=fit_intercept)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_gd_honours_learning_rate(n_classes):
    """Two steps of w <- w - lr * grad from zero, checked against sklearn's own
    loss gradient."""
    X, y, _ = _data(n_classes, n_samples=200)
    lr, C = 0.7, 2.0
    with pytest.warns(ConvergenceWarning, match="gd failed to converge after 2"):
        model = ServerlessLogisticRegression(C=C, solver="gd", learning_rate=lr, max_iter=2,
                                             n_workers=2).fit(X, y)
    loss = _objective(n_classes)
    target = (y == 1).astype(float) if n_classes == 2 else y.astype(float)
    shape = (X.shape[1] + 1,) if n_classes == 2 else ((X.shape[1] + 1) * n_classes,)
    coef = np.zeros(shape)
    l2 = 1.0 / (C * X.shape[0])
    for _ in range(2):
        coef = coef - lr * loss.gradient(coef, X, target, l2_reg_strength=l2)
    weights, intercept = loss.weight_intercept(coef)
    np.testing.assert_allclose(model.coef_, np.atleast_2d(weights), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(model.intercept_, np.atleast_1d(intercept), rtol=1e-12,
                               atol=1e-14)
    assert model.n_iter_[0] == 2
    # No Lipschitz round when the step is given.
    assert model.timings_["n_rounds"] == 3


def test_gd_default_step_is_inverse_lipschitz_bound():
    X, y, _ = _data(2, n_samples=200)
    X = StandardScaler().fit_transform(X)
    with pytest.warns(ConvergenceWarning):
        model = ServerlessLogisticRegression(solver="gd", max_iter=1, n_workers=2).fit(X, y)
    Xt = np.hstack([X, np.ones((X.shape[0], 1))])
    L = 0.25 * np.linalg.eigvalsh(Xt.T @ Xt / X.shape[0])[-1] + 1.0 / X.shape[0]
    loss = _objective(2)
    grad = loss.gradient(np.zeros(X.shape[1] + 1), X, (y == 1).astype(float),
                         l2_reg_strength=1.0 / X.shape[0])
    np.testing.assert_allclose(model.coef_[0], -grad[:-1] / L, rtol=1e-10)


# drop-in ----------------------------------------------------------------------------------


def test_pipeline_grid_search_cross_val_clone_pickle():
    X, y, _ = _data(3, n_samples=400)
    pipeline = make_pipeline(StandardScaler(), ServerlessLogisticRegression(n_workers=2))
    search = GridSearchCV(pipeline, {"serverlesslogisticregression__C": [1e-4, 1.0]}, cv=2)
    search.fit(X, y)
    # A tiny C forces near-zero coefficients: worse accuracy.
    assert search.best_params_ == {"serverlesslogisticregression__C": 1.0}
    reference = make_pipeline(StandardScaler(), LogisticRegression())
    ours = cross_val_score(pipeline, X, y, cv=3)
    theirs = cross_val_score(reference, X, y, cv=3)
    np.testing.assert_allclose(ours, theirs)

    model = ServerlessLogisticRegression(n_workers=2).fit(X, y)
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    assert not hasattr(copy, "coef_")
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.coef_, model.coef_)
    np.testing.assert_array_equal(restored.predict_proba(X), model.predict_proba(X))


def test_string_labels_and_methods_as_sklearn():
    X, y, _ = _data(3, n_samples=300)
    labels = np.array(["setosa", "versicolor", "virginica"], dtype=object)[y]
    reference = LogisticRegression(tol=1e-10).fit(X, labels)
    model = ServerlessLogisticRegression(tol=1e-10, n_workers=2).fit(X, labels)
    _assert_same_model(model, reference)
    np.testing.assert_array_equal(model.predict(X), reference.predict(X))
    np.testing.assert_allclose(model.predict_proba(X), reference.predict_proba(X), atol=1e-8)
    np.testing.assert_allclose(model.predict_log_proba(X), reference.predict_log_proba(X),
                               atol=1e-7)
    np.testing.assert_allclose(model.decision_function(X), reference.decision_function(X),
                               atol=1e-6)
    assert model.score(X, labels) == reference.score(X, labels)

    binary = np.where(y == 0, "no", "yes")
    model = ServerlessLogisticRegression(n_workers=2).fit(X, binary)
    assert model.decision_function(X).shape == (X.shape[0],)
    assert model.coef_.shape == (1, X.shape[1]) and model.intercept_.shape == (1,)
    assert set(model.predict(X)) == {"no", "yes"}


def test_timings_record_each_round():
    X, y, _ = _data(2)
    model = ServerlessLogisticRegression(n_workers=2).fit(X, y)
    timings = model.timings_
    n_rounds = timings["n_rounds"]
    assert n_rounds >= model.n_iter_[0]
    for phase in ("compute", "publish", "barrier", "aggregate"):
        assert timings[phase].shape == (n_rounds, 2)
        assert (timings[phase] >= 0).all()
    assert (timings["compute"].sum(axis=0) > 0).all()
    assert 0 < timings["compute"].sum() < timings["fit"]


def test_newton_uses_few_rounds():
    X, y, _ = _data(3)
    model = ServerlessLogisticRegression(solver="newton-cholesky", tol=1e-8,
                                         n_workers=2).fit(X, y)
    # One setup round, then per iteration a trial and a Hessian (none after the last).
    assert model.timings_["n_rounds"] == 2 * model.n_iter_[0]


def test_verbose_prints_the_log(capsys):
    X, y, _ = _data(2)
    model = ServerlessLogisticRegression(solver="newton-cholesky", n_workers=2, verbose=1)
    model.fit(X, y)
    assert capsys.readouterr().out.count("Newton iter=") == model.n_iter_[0]


def test_verbose_counts_its_workers_in_english(capsys):
    X, y, _ = _data(2)
    ServerlessLogisticRegression(n_workers=1, verbose=1).fit(X, y)
    out = capsys.readouterr().out
    assert "Lithops map, 1 worker started" in out and "1 workers" not in out


def test_progress_bar_callback_runs_with_rich():
    # scikit-learn's ProgressBar needs rich (the 'progress' extra, in 'test' too).
    pytest.importorskip("rich")
    from sklearn.callback import ProgressBar

    X, y, _ = _data(2)
    model = ServerlessLogisticRegression(n_workers=2).set_callbacks(ProgressBar()).fit(X, y)
    reference = LogisticRegression().fit(X, y)
    np.testing.assert_allclose(model.coef_, reference.coef_, atol=1e-10)


# bad input: sklearn's errors, before any worker is launched -------------------------------


@pytest.mark.parametrize("X, y, error, match", [
    (np.array([[0.0, np.nan], [1.0, 1.0], [2.0, 2.0]]), [0, 1, 0], ValueError, "NaN"),
    (np.array([[0.0, np.inf], [1.0, 1.0], [2.0, 2.0]]), [0, 1, 0], ValueError, "infinity"),
    (np.arange(6.0).reshape(3, 2), [0.5, 1.5, 2.25], ValueError, "Unknown label type"),
    (np.arange(6.0).reshape(3, 2), [1, 1, 1], ValueError, "only one class: np.int64\\(1\\)"),
    (np.arange(6.0).reshape(3, 2), [0, 1], ValueError, "inconsistent numbers of samples"),
    (np.empty((0, 2)), [], ValueError, "0 sample"),
])
def test_bad_input_raises_like_sklearn(X, y, error, match, no_workers):
    with pytest.raises(error, match=match):
        LogisticRegression().fit(X, y)
    with pytest.raises(error, match=match):
        ServerlessLogisticRegression().fit(X, y)


@pytest.mark.parametrize("params, match", [
    (dict(C=0), "'C' parameter"),
    (dict(solver="sgd"), "'solver' parameter"),
    (dict(learning_rate=0.0), "'learning_rate' parameter"),
    (dict(max_iter=-1), "'max_iter' parameter"),
    (dict(class_weight="auto"), "'class_weight' parameter"),
    (dict(state_mode="sometimes"), "state_mode"),
    (dict(backend="my_laptop"), "backend"),
    (dict(n_workers=0), "n_workers"),
    # A complete Lambda config (checked offline) and no Redis: the store is what is wrong.
    (dict(backend={"lithops": {"backend": "aws_lambda", "storage": "aws_s3"},
                   "aws": {"region": "us-east-1"},
                   "aws_lambda": {"execution_role": "arn:aws:iam::1:role/lithops"},
                   "aws_s3": {"storage_bucket": "lithops-bucket"}}),
     "embedded state store cannot work"),
    (dict(state_store="postgres://db"), "redis URL"),
])
def test_bad_parameters_raise_before_launch(params, match, no_workers):
    X, y = np.arange(10.0).reshape(5, 2), [0, 1, 0, 1, 0]
    with pytest.raises(ValueError, match=match):
        ServerlessLogisticRegression(**params).fit(X, y)


def test_wrong_width_at_predict():
    X, y, _ = _data(3, n_samples=200)
    model = ServerlessLogisticRegression(n_workers=1).fit(X, y)
    reference = LogisticRegression().fit(X, y)
    for method in ("predict", "predict_proba", "decision_function"):
        with pytest.raises(ValueError, match="features") as ours:
            getattr(model, method)(X[:, :3])
        with pytest.raises(ValueError) as theirs:
            getattr(reference, method)(X[:, :3])
        assert str(ours.value) == str(theirs.value).replace(
            "LogisticRegression", "ServerlessLogisticRegression")


# faults: a clear error within the timeout, nothing left behind ----------------------------


def test_raising_worker_names_itself(fail_worker, leaves_nothing):
    X, y, _ = _data(2)
    fail_worker("logistic", 1)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="worker 1 of 3 failed: injected failure"):
        ServerlessLogisticRegression(n_workers=3, timeout=30).fit(X, y)
    assert time.monotonic() - started < 10


@pytest.mark.redis
def test_raising_worker_leaves_no_redis_key(redis_server, fail_worker, leaves_nothing):
    X, y, _ = _data(3)
    fail_worker("logistic", 1)
    with pytest.raises(RuntimeError, match="worker 1 of 2 failed"):
        ServerlessLogisticRegression(solver="newton-cholesky", n_workers=2,
                                     state_store=redis_server.url, state_mode="locked",
                                     timeout=30).fit(X, y)
    assert redis_server.keys() == []


def test_unreachable_redis_fails_promptly(leaves_nothing):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    X, y, _ = _data(2)
    started = time.monotonic()
    with pytest.raises(ConnectionError, match=f"127.0.0.1:{port}"):
        ServerlessLogisticRegression(state_store=f"redis://127.0.0.1:{port}/0",
                                     n_workers=2, timeout=30).fit(X, y)
    assert time.monotonic() - started < 10


def test_callbacks_get_scikit_learns_tasks_and_iterates(leaves_nothing):
    X, y = make_classification(500, 6, random_state=0)
    ours, theirs = IterationRecorder(), IterationRecorder()
    ServerlessLogisticRegression(n_workers=2).set_callbacks(ours).fit(X, y)
    LogisticRegression().set_callbacks(theirs).fit(X, y)
    assert ours.begins == theirs.begins
    assert [c is None for c in ours.coefs] == [c is None for c in theirs.coefs]
    for mine, reference in zip(ours.coefs, theirs.coefs, strict=True):
        if reference is not None:
            np.testing.assert_allclose(mine, reference, rtol=0, atol=1e-12)
