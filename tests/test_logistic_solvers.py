"""ServerlessLogisticRegression's penalties and solver names against
scikit-learn 1.9: L1 and elastic-net against 'saga' at a tight tolerance,
every solver name against its namesake, liblinear's own objective, the
whole signature, the deprecations and the errors."""

from __future__ import annotations

import inspect
import re
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.cluster import KMeans
from sklearn.datasets import load_breast_cancer, load_iris, make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.multiclass import OneVsRestClassifier
from sklearn.preprocessing import StandardScaler

from sklearn_serverless import ServerlessKMeans, ServerlessLogisticRegression

#: saga at this tolerance moves its coefficients by < 1e-10 relative per epoch.
SAGA = dict(solver="saga", tol=1e-10, max_iter=100_000)


def _breast_cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def _iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def _sparse():
    X, y = make_classification(300, 12, n_informative=5, random_state=3)
    X = np.where(np.abs(X) < 0.7, 0.0, X)
    return sp.csr_matrix(X), y


def _weights(n: int) -> np.ndarray:
    return np.random.RandomState(0).uniform(0.3, 3.0, n)


# name -> data, LogisticRegression parameters, fit's sample weights
L1_PROBLEMS = {
    "binary-elasticnet": (_breast_cancer, dict(C=1.0, l1_ratio=0.5), False),
    "binary-l1-weighted": (_breast_cancer, dict(C=0.1, l1_ratio=1.0,
                                                class_weight={0: 2.0, 1: 0.7}), True),
    "multinomial-elasticnet-weighted": (_iris, dict(C=1.0, l1_ratio=0.5,
                                                    class_weight="balanced"), True),
    "multinomial-l1": (_iris, dict(C=0.5, l1_ratio=1.0), False),
    "sparse-l1-weighted": (_sparse, dict(C=0.2, l1_ratio=1.0), True),
}


@pytest.fixture(scope="module", params=list(L1_PROBLEMS))
def l1_problem(request):
    """A problem and sklearn's saga model of it (computed once)."""
    make, params, weighted = L1_PROBLEMS[request.param]
    X, y = make()
    weights = _weights(X.shape[0]) if weighted else None
    reference = LogisticRegression(**params, **SAGA).fit(X, y, sample_weight=weights)
    return X, y, weights, params, reference


def test_l1_and_elasticnet_as_saga(l1_problem):
    X, y, weights, params, reference = l1_problem
    model = ServerlessLogisticRegression(**params, solver="saga", tol=1e-10, max_iter=2000,
                                         n_workers=3).fit(X, y, sample_weight=weights)
    assert model.coef_.shape == reference.coef_.shape
    np.testing.assert_allclose(model.coef_, reference.coef_, rtol=0, atol=1e-4)
    np.testing.assert_allclose(model.intercept_, reference.intercept_, rtol=0, atol=1e-4)
    # Exact zeros, where saga's proximal steps leave them.
    np.testing.assert_array_equal(model.coef_ == 0, reference.coef_ == 0)
    assert 0 < np.sum(model.coef_ == 0) < model.coef_.size
    # One round per objective evaluation, at least one per iteration.
    assert model.n_iter_[0] <= model.timings_["n_rounds"] < 10 * model.n_iter_[0] + 10


def _l2_reference(solver: str, X, y):
    return LogisticRegression(solver=solver, C=0.5, tol=1e-10, max_iter=10_000).fit(X, y)


@pytest.mark.parametrize("solver, data", [
    ("newton-cg", "binary"), ("newton-cg", "multinomial"), ("sag", "binary"),
    ("saga", "multinomial"), ("liblinear", "binary"),
])
def test_each_solver_reaches_its_namesakes_optimum(solver, data):
    """'lbfgs' and 'newton-cholesky' are compared in test_logistic.py."""
    X, y = _breast_cancer() if data == "binary" else _iris()
    reference = _l2_reference(solver, X, y)
    model = ServerlessLogisticRegression(solver=solver, C=0.5, tol=1e-10, max_iter=1000,
                                         n_workers=2).fit(X, y)
    # sag, saga and liblinear stop on their own criteria, close to the optimum.
    atol = 1e-8 if solver == "newton-cg" else 1e-5
    np.testing.assert_allclose(model.coef_, reference.coef_, rtol=0, atol=atol)
    np.testing.assert_allclose(model.intercept_, reference.intercept_, rtol=0, atol=atol)
    if solver == "newton-cg":
        # The same Newton steps: the same count.
        assert abs(int(model.n_iter_[0]) - int(reference.n_iter_[0])) <= 1
        # One round for the loss, then per step at least one Hessian-vector product.
        assert model.timings_["n_rounds"] > 2 * model.n_iter_[0]


def _liblinear_objective(model, X, y, C, intercept_scaling, l1):
    """liblinear's ``C sum_i loss_i + penalty`` with the intercept a weight of
    the feature ``intercept_scaling``."""
    w = np.r_[model.coef_.ravel(), model.intercept_ / intercept_scaling]
    margin = np.where(y == model.classes_[1], 1.0, -1.0) * (X @ model.coef_.ravel()
                                                             + model.intercept_[0])
    penalty = np.abs(w).sum() if l1 else 0.5 * w @ w
    return C * np.logaddexp(0, -margin).sum() + penalty


@pytest.mark.parametrize("l1_ratio", [0.0, 1.0])
def test_liblinear_penalises_the_intercept(l1_ratio):
    X, y = _breast_cancer()
    X = X[:, :8] + 2.0  # an off-centre intercept, so that its penalty matters
    params = dict(solver="liblinear", C=0.05, l1_ratio=l1_ratio, intercept_scaling=0.5)
    reference = LogisticRegression(**params, tol=1e-12, max_iter=10_000).fit(X, y)
    model = ServerlessLogisticRegression(**params, tol=1e-10, max_iter=1000,
                                         n_workers=2).fit(X, y)
    np.testing.assert_allclose(model.coef_, reference.coef_, rtol=0, atol=1e-5)
    np.testing.assert_allclose(model.intercept_, reference.intercept_, rtol=0, atol=1e-5)
    ours = _liblinear_objective(model, X, y, 0.05, 0.5, l1_ratio == 1)
    theirs = _liblinear_objective(reference, X, y, 0.05, 0.5, l1_ratio == 1)
    assert ours <= theirs + 1e-9 * abs(theirs)
    # A different model from the unpenalised intercept of the other solvers.
    lbfgs = LogisticRegression(C=0.05, tol=1e-10, max_iter=1000).fit(X, y)
    assert np.abs(model.intercept_ - lbfgs.intercept_).max() > 1e-2
    if l1_ratio == 1:
        np.testing.assert_array_equal(model.coef_ == 0, reference.coef_ == 0)


def test_liblinear_dual_is_the_same_l2_optimum():
    X, y = _breast_cancer()
    reference = LogisticRegression(solver="liblinear", dual=True, tol=1e-12,
                                   max_iter=100_000).fit(X, y)
    model = ServerlessLogisticRegression(solver="liblinear", dual=True, tol=1e-10,
                                         max_iter=1000, n_workers=2).fit(X, y)
    np.testing.assert_allclose(model.coef_, reference.coef_, rtol=0, atol=1e-5)
    np.testing.assert_allclose(model.intercept_, reference.intercept_, rtol=0, atol=1e-5)


def test_liblinear_one_vs_rest_for_three_classes():
    X, y = _iris()
    reference = OneVsRestClassifier(
        LogisticRegression(solver="liblinear", tol=1e-12, max_iter=10_000)).fit(X, y)
    model = OneVsRestClassifier(ServerlessLogisticRegression(
        solver="liblinear", tol=1e-10, max_iter=1000, n_workers=2)).fit(X, y)
    for ours, theirs in zip(model.estimators_, reference.estimators_, strict=True):
        np.testing.assert_allclose(ours.coef_, theirs.coef_, rtol=0, atol=1e-4)
        np.testing.assert_allclose(ours.intercept_, theirs.intercept_, rtol=0, atol=1e-4)
    np.testing.assert_allclose(model.predict_proba(X), reference.predict_proba(X), atol=1e-5)


def test_grid_search_over_l1_ratio_and_C_picks_what_sklearn_picks():
    X, y = _breast_cancer()
    X, y = X[::2], y[::2]
    grid = {"C": [0.02, 0.3], "l1_ratio": [0.3, 1.0]}
    common = dict(scoring="neg_log_loss", cv=2)
    reference = GridSearchCV(LogisticRegression(solver="saga", tol=1e-7, max_iter=50_000),
                             grid, **common).fit(X, y)
    search = GridSearchCV(ServerlessLogisticRegression(solver="saga", tol=1e-7,
                                                       max_iter=1000, n_workers=2),
                          grid, **common).fit(X, y)
    assert search.best_params_ == reference.best_params_
    np.testing.assert_allclose(search.cv_results_["mean_test_score"],
                               reference.cv_results_["mean_test_score"], atol=1e-4)


# the signature -----------------------------------------------------------------------------


@pytest.mark.parametrize("ours, theirs", [
    (ServerlessLogisticRegression, LogisticRegression), (ServerlessKMeans, KMeans),
])
def test_sklearns_parameters_and_defaults_accepted_whole(ours, theirs):
    reference = theirs().get_params()
    params = ours(**reference).get_params()
    assert {name: params[name] for name in reference} == reference
    assert ours().get_params() == params  # the same defaults
    # sklearn's in its order, then ours; the execution parameters last, unchanged.
    names = list(inspect.signature(ours).parameters)
    assert names[:len(reference)] == list(inspect.signature(theirs).parameters)
    assert names[-5:] == ["backend", "state_mode", "n_workers", "state_store", "timeout"]


def _messages(record) -> list[tuple[type, str]]:
    return sorted((w.category.__name__, str(w.message)) for w in record)


def _outcome(estimator, X, y):
    """The error (type, message) of a fit, and its warnings."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        try:
            estimator.fit(X, y)
        except (ValueError, AssertionError) as exc:
            return type(exc).__name__, str(exc), _messages(record)
    return None, None, _messages(record)


@pytest.mark.parametrize("params", [
    dict(l1_ratio=0.5), dict(l1_ratio=1.0), dict(solver="newton-cg", l1_ratio=1.0),
    dict(solver="sag", l1_ratio=0.3), dict(solver="liblinear", l1_ratio=0.5),
    dict(solver="liblinear", C=np.inf), dict(dual=True), dict(solver="saga", dual=True),
    dict(solver="liblinear", l1_ratio=1.0, dual=True),
    dict(penalty="l1", solver="lbfgs"), dict(penalty="elasticnet", solver="saga",
                                             l1_ratio=None),
])
def test_errors_as_sklearn(params, no_workers):
    X, y = np.arange(20.0).reshape(10, 2), [0, 1] * 5
    error, message, _ = _outcome(ServerlessLogisticRegression(**params), X, y)
    reference_error, reference_message, _ = _outcome(LogisticRegression(**params), X, y)
    assert reference_error == "ValueError"
    assert (error, message) == (reference_error, reference_message)


@pytest.mark.parametrize("params", [
    dict(penalty="l2"), dict(penalty="l1", solver="saga", l1_ratio=1.0),
    dict(penalty="l2", l1_ratio=0.5), dict(penalty=None, C=2.0), dict(n_jobs=2),
    dict(l1_ratio=None), dict(l1_ratio=0.5, solver="saga"),
])
def test_deprecations_and_warnings_as_sklearn(params, no_workers):
    X, y = np.arange(20.0).reshape(10, 2), [0, 1] * 5
    error, _, caught = _outcome(ServerlessLogisticRegression(**params), X, y)
    assert error == "AssertionError"  # validated, then stopped at the launch
    _, _, expected = _outcome(LogisticRegression(**params), X, y)
    expected = [w for w in expected if w[0] != "ConvergenceWarning"]
    assert caught == expected
    if "penalty" in params:
        assert any(category == "FutureWarning" and re.search("'penalty' was deprecated", m)
                   for category, m in caught)


def test_liblinear_multiclass_refused_as_sklearn(no_workers):
    X, y = _iris()
    with pytest.raises(ValueError, match="does not support multiclass") as theirs:
        LogisticRegression(solver="liblinear").fit(X, y)
    with pytest.raises(ValueError) as ours:
        ServerlessLogisticRegression(solver="liblinear").fit(X, y)
    assert str(ours.value) == str(theirs.value)


def test_penalty_none_is_no_penalty():
    X, y = _iris()
    with pytest.warns(FutureWarning, match="'penalty' was deprecated"):
        model = ServerlessLogisticRegression(penalty=None, tol=1e-10, max_iter=1000,
                                             n_workers=2).fit(X, y)
    reference = LogisticRegression(C=np.inf, tol=1e-10, max_iter=1000).fit(X, y)
    np.testing.assert_allclose(model.predict_proba(X), reference.predict_proba(X), atol=1e-6)


@pytest.mark.parametrize("params", [dict(algorithm="elkan"), dict(copy_x=False)])
def test_kmeans_algorithm_and_copy_x_give_the_lloyd_model(params):
    X, _ = make_classification(300, 4, random_state=0)
    X_before = X.copy()
    model = ServerlessKMeans(4, random_state=0, n_workers=2, **params).fit(X)
    np.testing.assert_array_equal(X, X_before)  # never modified, whatever copy_x says
    # sklearn's copy_x=False centres X in place and back: rounding-level differences.
    reference = KMeans(4, random_state=0, **params).fit(X)
    np.testing.assert_array_equal(model.labels_, reference.labels_)
    np.testing.assert_allclose(model.cluster_centers_, reference.cluster_centers_,
                               rtol=1e-10, atol=1e-10)


def test_newton_cholesky_fallback_to_lbfgs_prints_its_progress(capsys, leaves_nothing):
    # A singular Hessian (a duplicated column, no penalty): Newton-Cholesky
    # resorts to L-BFGS, whose iterations verbose shows too, as scikit-learn's.
    X, y = make_classification(300, 4, random_state=0)
    X = np.hstack([X, X[:, :1]])
    model = ServerlessLogisticRegression(solver="newton-cholesky", C=np.inf, n_workers=2,
                                         verbose=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, y)
    out = capsys.readouterr().out
    assert "Newton iter=1" in out
    assert re.search(r"^Iteration 1, loss [0-9.e-]+\.$", out, flags=re.MULTILINE), out
