"""ServerlessLogisticRegressionCV against scikit-learn's LogisticRegressionCV
on real data: the same best C, scores, coefficients and attribute shapes,
its warnings and errors; the batched kernel and the lockstep driver."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import GroupKFold, KFold, ShuffleSplit, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_serverless import ServerlessLogisticRegressionCV, read_csv, read_npy
from sklearn_serverless._algorithms.logistic._kernels import loss_gradient_sum
from sklearn_serverless._algorithms.logistic_cv._kernels import batch_loss_gradient
from sklearn_serverless._algorithms.logistic_cv._lockstep import Lockstep

#: What silences scikit-learn 1.9's FutureWarnings on both estimators.
NEW = {"l1_ratios": (0,), "use_legacy_attributes": False}


@parametrize_with_checks(
    # scikit-learn checks its own LogisticRegressionCV with these parameters.
    [ServerlessLogisticRegressionCV(max_iter=5, cv=3, use_legacy_attributes=False,
                                    scoring="neg_log_loss", n_workers=2)],
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def binary():
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def multinomial():
    X, y = load_wine(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def _pair(X, y, sample_weight=None, **params):
    kw = dict(NEW, scoring="accuracy") | params
    serverless = {k: kw.pop(k) for k in ("n_workers", "state_mode", "strategy") if k in kw}
    ours = ServerlessLogisticRegressionCV(n_workers=2, **kw, **serverless)
    ours.fit(X, y, sample_weight=sample_weight)
    ref = LogisticRegressionCV(**kw).fit(X, y, sample_weight=sample_weight)
    return ours, ref


def test_default_tol_fidelity(binary):
    # What docs/user_guide/model_selection.rst says of the default tol: the
    # models that converge well within max_iter are scikit-learn's (same
    # iterations, coefficients to 1e-4), the chosen C and the refit are the
    # same; the two largest C (near-separable folds) may stop elsewhere, and
    # n_iter_ counts L-BFGS-B's iterations as scikit-learn's, 0 where the warm
    # start already meets tol.
    X, y = binary
    ours, ref = _pair(X, y, Cs=10, cv=5)
    assert ours.C_ == ref.C_
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-12)
    np.testing.assert_array_equal(ours.n_iter_[:, :, :8], ref.n_iter_[:, :, :8])
    np.testing.assert_allclose(ours.coefs_paths_[:, :, :8], ref.coefs_paths_[:, :, :8],
                               atol=1e-4)
    np.testing.assert_array_equal(ours.scores_[:, :, :8], ref.scores_[:, :, :8])
    assert (ref.n_iter_ == 0).any() and (ours.n_iter_ == 0).any()
    # A model with n_iter_ 0 starts where the previous C ended, already within tol.
    fold, l1, c = np.argwhere(ours.n_iter_ == 0)[0]
    np.testing.assert_array_equal(ours.coefs_paths_[fold, l1, c],
                                  ours.coefs_paths_[fold, l1, c - 1])


@pytest.mark.parametrize("state_mode", ["lock_free", "locked"])
def test_binary_matches_sklearn(binary, state_mode):
    """Same folds' paths (warm-started along Cs), scores, best C and refit."""
    X, y = binary
    ours, ref = _pair(X, y, Cs=[0.01, 0.1, 1.0], cv=3, tol=1e-10, max_iter=500,
                      state_mode=state_mode)
    assert ours.C_ == ref.C_ and ours.l1_ratio_ == ref.l1_ratio_
    np.testing.assert_array_equal(ours.scores_, ref.scores_)
    np.testing.assert_allclose(ours.coefs_paths_, ref.coefs_paths_, atol=1e-6)
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-6)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, atol=1e-6)
    assert ours.n_iter_.shape == ref.n_iter_.shape == (3, 1, 3)
    assert np.abs(ours.n_iter_ - ref.n_iter_).max() <= 2
    np.testing.assert_array_equal(ours.Cs_, ref.Cs_)
    np.testing.assert_array_equal(ours.l1_ratios_, ref.l1_ratios_)
    assert ours.n_workers_ == 2


def test_multinomial_matches_sklearn(multinomial):
    X, y = multinomial
    weights = np.random.RandomState(0).uniform(0.5, 2.0, y.size)
    ours, ref = _pair(X, y, weights, Cs=[0.05, 0.5], cv=3, tol=1e-10, max_iter=500,
                      class_weight="balanced", scoring="neg_log_loss")
    assert ours.C_ == ref.C_
    np.testing.assert_allclose(ours.scores_, ref.scores_, rtol=1e-9)
    np.testing.assert_allclose(ours.coefs_paths_, ref.coefs_paths_, atol=1e-6)
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-6)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, atol=1e-6)
    assert ours.coefs_paths_.shape == ref.coefs_paths_.shape == (3, 1, 2, 3, 14)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-6)


def test_legacy_attributes(multinomial):
    """The dict-valued attributes and their shapes, with sklearn's warnings."""
    X, y = multinomial
    with pytest.warns(FutureWarning) as ours_caught:
        ours = ServerlessLogisticRegressionCV(Cs=2, cv=2, n_workers=2).fit(X, y)
    with pytest.warns(FutureWarning) as ref_caught:
        ref = LogisticRegressionCV(Cs=2, cv=2).fit(X, y)
    future = sorted({str(w.message) for w in ours_caught if w.category is FutureWarning})
    assert future == sorted({str(w.message).replace("LogisticRegressionCV",
                                                    "ServerlessLogisticRegressionCV")
                             for w in ref_caught if w.category is FutureWarning})
    assert set(ours.scores_) == set(ref.scores_) == set(ref.classes_)
    for label in ref.classes_:
        assert ours.scores_[label].shape == ref.scores_[label].shape
        assert ours.coefs_paths_[label].shape == ref.coefs_paths_[label].shape
        np.testing.assert_allclose(ours.coefs_paths_[label], ref.coefs_paths_[label],
                                   atol=1e-3)
    assert ours.n_iter_.shape == ref.n_iter_.shape
    assert ours.C_.shape == ref.C_.shape == (3,)
    assert ours.l1_ratios_.tolist() == ref.l1_ratios_.tolist() == [None]


@pytest.mark.parametrize("scoring", ["balanced_accuracy", "roc_auc"])
def test_scorers_and_no_refit(binary, scoring):
    """A worker-side scorer and a driver-side one (roc_auc), refit=False."""
    X, y = binary
    ours, ref = _pair(X, y, Cs=[0.01, 1.0], cv=3, tol=1e-8, max_iter=300, scoring=scoring,
                      refit=False)
    np.testing.assert_allclose(ours.scores_, ref.scores_, rtol=1e-9)
    assert ours.C_ == ref.C_
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-5)


def test_driver_scorer_refits_in_a_second_run(binary):
    X, y = binary
    ours, ref = _pair(X, y, Cs=[0.01, 1.0], cv=3, tol=1e-8, max_iter=300,
                      scoring="roc_auc")
    assert ours.C_ == ref.C_
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-5)
    assert set(ours.timings_) == {"cv", "refit"}


@pytest.mark.parametrize("cv", [
    KFold(3), StratifiedKFold(3, shuffle=True, random_state=0),
    ShuffleSplit(n_splits=3, test_size=0.3, train_size=0.5, random_state=0),
], ids=["kfold", "stratified-shuffled", "shuffle-split"])
def test_cv_objects(binary, cv):
    """Splitters whose test sets overlap or leave rows out train the same models."""
    X, y = binary
    ours, ref = _pair(X, y, Cs=[0.1, 1.0], cv=cv, tol=1e-8, max_iter=300)
    np.testing.assert_array_equal(ours.scores_, ref.scores_)
    np.testing.assert_allclose(ours.coefs_paths_, ref.coefs_paths_, atol=1e-5)


def test_iterable_of_splits_and_groups(binary):
    X, y = binary
    groups = np.arange(y.size) % 7
    splits = list(GroupKFold(3).split(X, y, groups))
    ours, ref = _pair(X, y, Cs=[0.1, 1.0], cv=splits, tol=1e-8, max_iter=300)
    np.testing.assert_array_equal(ours.scores_, ref.scores_)
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-5)


def test_grid_strategy_same_optimum(binary):
    """Side by side from zero: the same optima at a tight tolerance."""
    X, y = binary
    ours, ref = _pair(X, y, Cs=[0.01, 0.1, 1.0], cv=3, tol=1e-10, max_iter=500,
                      strategy="grid")
    assert ours.C_ == ref.C_
    # gtol bounds the gradient, not the coefficients: other starts, other last digits.
    np.testing.assert_allclose(ours.coefs_paths_, ref.coefs_paths_, atol=1e-5)
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-6)


def test_l1_saga_and_liblinear(binary):
    """OWL-QN for the L1 part; liblinear's penalised intercept."""
    X, y = binary
    ours, ref = _pair(X, y, Cs=[0.1, 1.0], cv=3, tol=1e-8, max_iter=3000,
                      solver="liblinear")
    assert ours.C_ == ref.C_
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-3)
    X, y = X[:, :8], y
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = ServerlessLogisticRegressionCV(
            Cs=[0.05, 0.5], cv=3, l1_ratios=(0.5, 1.0), solver="saga", tol=1e-8,
            max_iter=5000, scoring="accuracy", use_legacy_attributes=False,
            n_workers=2).fit(X, y)
    assert ours.scores_.shape == (3, 2, 2)
    assert ours.coefs_paths_.shape == (3, 2, 2, 1, 9)
    assert ours.l1_ratio_ in (0.5, 1.0)
    assert np.any(ours.coefs_paths_ == 0.0)  # L1: exact zeros


def test_pipeline(binary):
    X, y = binary
    X = X * 10 + 3
    pipe = make_pipeline(StandardScaler(), ServerlessLogisticRegressionCV(
        Cs=[0.1, 1.0], cv=3, **NEW, scoring="accuracy", n_workers=2))
    ref = make_pipeline(StandardScaler(), LogisticRegressionCV(
        Cs=[0.1, 1.0], cv=3, **NEW, scoring="accuracy"))
    pipe.fit(X, y)
    ref.fit(X, y)
    np.testing.assert_array_equal(pipe.predict(X), ref.predict(X))
    assert pipe.score(X, y) == ref.score(X, y)


def test_errors(binary, multinomial, tmp_path):
    X, y = binary
    base = dict(NEW, scoring="accuracy", n_workers=2)
    cases = [
        (dict(l1_ratios=(1,)), "Solver lbfgs supports only 'l2' or None penalties"),
        (dict(l1_ratios=(0.5,), solver="liblinear"), "Only 'saga' solver supports elasticnet"),
        (dict(l1_ratios=[0.5, 2.0], solver="saga"), "l1_ratios must be an array-like"),
        (dict(dual=True), "Solver lbfgs supports only dual=False"),
        (dict(class_weight={5: 1.0}), "The given class_weight dict must have"),
        (dict(Cs=0), "The 'Cs' parameter"),
        (dict(strategy="nope"), "The 'strategy' parameter"),
    ]
    for params, message in cases:
        for estimator in (ServerlessLogisticRegressionCV(**(base | params)),
                          LogisticRegressionCV(**(NEW | dict(scoring="accuracy") | params))
                          if "strategy" not in params else None):
            if estimator is None:
                continue
            with pytest.raises(ValueError, match=message):
                estimator.fit(X, y)
    with pytest.raises(ValueError, match="only one class"):
        ServerlessLogisticRegressionCV(**base).fit(X, np.zeros_like(y))
    Xw, yw = multinomial
    with pytest.raises(ValueError, match="does not support multiclass"):
        ServerlessLogisticRegressionCV(**base, solver="liblinear").fit(Xw, yw)
    with pytest.warns(FutureWarning, match="'penalty' was deprecated"):
        ServerlessLogisticRegressionCV(**base, Cs=[1.0], cv=2, penalty="l2").fit(X, y)
    np.save(tmp_path / "X.npy", X)
    with pytest.raises(ValueError, match="no label column"):
        ServerlessLogisticRegressionCV(**base).fit(read_npy(str(tmp_path / "X.npy")))


def _csv_dataset(folder, X, labels):
    """Two CSV files of the rows (exact round trip), labels in column 't'."""
    import pandas as pd

    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    frame["t"] = labels
    folder.mkdir()
    frame[:100].to_csv(folder / "1.csv", index=False, float_format="%.17g")
    frame[100:].to_csv(folder / "2.csv", index=False, float_format="%.17g")
    return read_csv(str(folder), label="t")


@pytest.mark.parametrize("cv", [None, KFold(3)], ids=["stratified", "kfold"])
def test_dataset_folds_are_sklearns(binary, multinomial, tmp_path, cv):
    """A dataset's folds, computed where the rows lie from class counts, are
    scikit-learn's: the same fit as from memory."""
    for name, (X, y) in {"binary": binary, "multinomial": multinomial}.items():
        if cv is not None and name == "multinomial":
            continue  # wine is sorted by class: KFold's folds lack classes
        labels = np.array(["ant", "bee", "cat"])[y]
        data = _csv_dataset(tmp_path / name, X, labels)
        params = dict(NEW, Cs=[0.1, 1.0], cv=cv, scoring="neg_log_loss", tol=1e-8,
                      max_iter=300, class_weight="balanced", n_workers=2)
        ours = ServerlessLogisticRegressionCV(**params).fit(data)
        memory = ServerlessLogisticRegressionCV(**params).fit(X, labels)
        np.testing.assert_array_equal(ours.classes_, memory.classes_)
        assert ours.C_ == memory.C_
        np.testing.assert_allclose(ours.scores_, memory.scores_, rtol=1e-9)
        np.testing.assert_allclose(ours.coef_, memory.coef_, atol=1e-7)
        assert ours.n_features_in_ == X.shape[1]


def test_dataset_errors(binary, tmp_path):
    X, y = binary
    data = _csv_dataset(tmp_path / "d", X, y)
    base = dict(NEW, scoring="accuracy", n_workers=2)
    with pytest.raises(ValueError, match="cv must be None, an int, KFold or StratifiedKFold"):
        ServerlessLogisticRegressionCV(**base, cv=KFold(3, shuffle=True)).fit(data)
    with pytest.raises(ValueError, match="computed on the driver"):
        ServerlessLogisticRegressionCV(**(base | {"scoring": "roc_auc"})).fit(data)
    with pytest.raises(ValueError, match="y must be None"):
        ServerlessLogisticRegressionCV(**base).fit(data, y)


# the pieces --------------------------------------------------------------------------


@pytest.mark.parametrize("n_outputs", [1, 3])
def test_batched_kernel_is_each_models_kernel(n_outputs):
    rng = np.random.RandomState(0)
    X = rng.randn(3000, 7)
    y = (rng.rand(3000) < 0.5 if n_outputs == 1 else rng.randint(0, 3, 3000)).astype(float)
    sw = rng.rand(3000)
    fold = rng.randint(0, 3, 3000)
    S = np.column_stack([sw * (fold != k) for k in range(3)] + [sw])
    folds = np.array([0, 2, 3, 1, 1])
    for fit_intercept in (True, False):
        coefs = rng.randn(folds.size, (7 + fit_intercept) * n_outputs)
        batched = batch_loss_gradient(X, y, S, folds, coefs, fit_intercept, n_outputs)
        for j, k in enumerate(folds):
            single = loss_gradient_sum(X, y, S[:, k], coefs[j], fit_intercept)
            np.testing.assert_allclose(batched[j], single, rtol=1e-11, atol=1e-9)


def test_lockstep_batches_and_errors():
    seen = []

    def evaluate(requests):
        seen.append(list(requests))
        return [r * 10 for r in requests]

    def task(n, offset):
        def run(ask):
            return [ask(offset + i) for i in range(n)]
        return run

    lockstep = Lockstep(evaluate)
    out = lockstep.run([task(3, 0), task(1, 100), task(2, 200)])
    assert out == [[0, 10, 20], [1000], [2000, 2010]]
    assert seen == [[0, 100, 200], [1, 201], [2]]  # finished tasks drop out
    assert lockstep.n_batches == 3 and lockstep.n_evaluations == 6

    def failing(ask):
        ask(1)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        Lockstep(evaluate).run([task(5, 0), failing])


@pytest.mark.parametrize("max_iter, tol", [(100, 1e-4), (7, 1e-4), (500, 1e-12)])
def test_lbfgs_steps_are_scipys(binary, max_iter, tol):
    """The generator form of L-BFGS-B gives scipy's iterates bit for bit."""
    import scipy.optimize

    from sklearn_serverless._algorithms.logistic._lbfgs import _lbfgs_options
    from sklearn_serverless._algorithms.logistic_cv._lbfgs_steps import available, lbfgs_steps

    if not available():
        pytest.skip("this scipy has no setulb of the 1.15 form: threads are used instead")
    X, y = binary
    y = y.astype(float)
    penalty = np.r_[np.ones(X.shape[1]), 0.0] / (10.0 * y.size)

    def loss_gradient(w):
        total = loss_gradient_sum(X, y, np.ones(y.size), w, True)
        return total[0] / y.size + 0.5 * (penalty * w) @ w, total[1:] / y.size + penalty * w

    reference = scipy.optimize.minimize(loss_gradient, np.zeros(X.shape[1] + 1),
                                        method="L-BFGS-B", jac=True,
                                        options=_lbfgs_options(max_iter, tol, 0))
    steps = lbfgs_steps(np.zeros(X.shape[1] + 1), max_iter, tol)
    point, n_evaluations = next(steps), 0
    with pytest.raises(StopIteration) as stop:
        while True:
            n_evaluations += 1
            point = steps.send(loss_gradient(point))
    x, info = stop.value.value
    np.testing.assert_array_equal(x, reference.x)
    assert (info["nit"], info["status"], info["message"]) == (
        reference.nit, reference.status, reference.message)
    assert n_evaluations == reference.nfev
