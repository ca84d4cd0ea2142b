"""ServerlessLogisticRegressionCV: scikit-learn's LogisticRegressionCV with
every fold, C and l1_ratio fitted in one run of serverless workers."""

from __future__ import annotations

import warnings
from numbers import Integral, Real
from types import SimpleNamespace

import numpy as np
from sklearn.base import BaseEstimator, _fit_context
from sklearn.linear_model._base import LinearClassifierMixin
from sklearn.metrics import get_scorer, get_scorer_names
from sklearn.model_selection import KFold, StratifiedKFold, check_cv
from sklearn.utils import metadata_routing
from sklearn.utils._param_validation import Hidden, Interval, StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.metadata_routing import (
    MetadataRouter,
    MethodMapping,
    _raise_for_params,
    _routing_enabled,
    process_routing,
)
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.optimize import _check_optimize_result
from sklearn.utils.validation import (
    _check_sample_weight,
    validate_data,
)

from .._algorithms.logistic_cv._params import STRATEGIES, WORKER_SCORERS, LogisticCVParams
from .._base._estimator import (
    DEFAULT_TIMEOUT,
    EXECUTION_CONSTRAINTS,
    EXECUTION_PARAMS_DOC,
    FITTED_ATTRIBUTES_DOC,
    ServerlessMixin,
)
from .._common._messages import CONVERGENCE_ADVICE, liblinear_multiclass
from .._datasets import Dataset
from ._logistic import _INNER_TOL, _WARNING_CATEGORIES, LogisticProbaMixin
from ._logistic_cv_attributes import set_cv_attributes
from ._logistic_cv_options import resolve_options
from ._logistic_cv_scores import driver_scores
from ._penalty import SOLVER_NAMES


class ServerlessLogisticRegressionCV(LogisticProbaMixin, LinearClassifierMixin, ServerlessMixin,
                                     BaseEstimator):
    __doc__ = f"""Logistic regression cross-validated over ``C`` in one serverless run.

    ``C`` and ``l1_ratio`` are chosen by cross-validation; every model is
    fitted in one run of serverless workers.

    A drop-in replacement for :class:`sklearn.linear_model.LogisticRegressionCV`:
    the same parameters, defaults, warnings and fitted attributes, and the
    optimum of the same objective for every fold, ``C`` and ``l1_ratio``. The
    whole search is one Lithops map: each worker reads its rows once and
    every round computes, in one pass over them, the loss and gradient of
    every model still running, each over its own fold's training rows (two
    matrix products for all models at once). Converged models drop out of
    the round. The test folds are then scored where the rows lie and, with
    ``refit=True``, the best model is refitted on every row in the same run.

    Each model's solver is scipy's L-BFGS-B with scikit-learn's options (or
    OWL-QN with an L1 part), unchanged: the solvers of all models run in
    lockstep on the coordinator, fed by the shared rounds (L-BFGS-B as
    generators over scipy's own reverse-communication routine, OWL-QN one
    thread each). By default each
    fold's models are warm-started along ``Cs`` in their order, as
    scikit-learn does (``strategy='path'``), which gives scikit-learn's
    iterates and ``n_iter_``; ``strategy='grid'`` starts every model from
    zero side by side, with fewer, wider rounds.

    Parameters
    ----------
    Cs : int or list of floats, default=10
        The inverse regularisation strengths to try; an int ``n`` means
        ``np.logspace(-4, 4, n)``.

    l1_ratios : array-like of shape (n_l1_ratios,), default=None
        Elastic-net mixing parameters to try (``0`` is L2, ``1`` is L1).
        Left at its default, a FutureWarning as in scikit-learn 1.8 (the
        default becomes ``(0.0,)`` in 1.10); ``None`` is deprecated.

    fit_intercept : bool, default=True
        Whether to fit an intercept.

    cv : int, cross-validation generator or iterable, default=None
        Any splitter of :mod:`sklearn.model_selection` or iterable of
        ``(train, test)`` index arrays, resolved on the driver with
        :func:`~sklearn.model_selection.check_cv` (None is a 5-fold
        :class:`~sklearn.model_selection.StratifiedKFold`). Each worker
        receives, for its rows, their membership of every fold's training
        and test sets. For a dataset: None, an int, or KFold or
        StratifiedKFold without shuffling, computed where the rows lie.

    dual : bool, default=False
        Only ``False``, except with 'liblinear' and an L2 penalty (the
        primal problem is solved).

    penalty : {{'l1', 'l2', 'elasticnet'}}, default='deprecated'
        Deprecated as in scikit-learn 1.8 (FutureWarning): use ``l1_ratios``.

    scoring : str or callable, default=None
        How a fold's model is scored on its test rows. None (accuracy),
        'accuracy', 'balanced_accuracy' and 'neg_log_loss' are computed by
        the workers and the refit runs in the same map; any other scorer is
        scikit-learn's, computed on the driver from the fold coefficients,
        and the refit is then a second, short run. Left at its default, a
        FutureWarning as in scikit-learn 1.9 (accuracy is used).

    solver : {{'lbfgs', 'liblinear', 'newton-cg', 'newton-cholesky', 'sag', \
'saga'}}, default='lbfgs'
        scikit-learn's solver name, for its rules on penalties and classes;
        every L2 fit runs L-BFGS-B (the optimum of the named solver, at
        ``tol``), every fit with an L1 part OWL-QN (``'saga'``, or
        ``'liblinear'`` with ``l1_ratios=(1,)``). 'liblinear' penalises the
        intercept as a feature of value ``intercept_scaling`` and is binary
        only, as in scikit-learn.

    tol : float, default=1e-4
        Tolerance of each model's solver (L-BFGS-B's ``gtol``).

    max_iter : int, default=100
        Maximum iterations of each model's solver.

    class_weight : dict or 'balanced', default=None
        Class weights, multiplied into the sample weights; 'balanced' is
        computed once on all of ``y``, as scikit-learn does.

    n_jobs : int, default=None
        Unused: the parallelism is ``n_workers``. Accepted for compatibility.

    verbose : int, default=0
        Print progress lines while the fit runs.

    refit : bool, default=True
        Refit the best ``C`` (and ``l1_ratio``) on every row, started from
        the mean of its fold models; otherwise average the best fold models.

    intercept_scaling : float, default=1.0
        Only for 'liblinear': the intercept is the weight of a constant
        feature of this value, penalised like the other weights.

    random_state : int, RandomState instance or None, default=None
        Unused: every solver is deterministic (the splitter has its own).

    use_legacy_attributes : bool, default=True
        As in scikit-learn 1.9: True keeps the dict-valued ``scores_`` and
        ``coefs_paths_`` and array-valued ``C_`` and ``l1_ratio_``; False
        gives arrays of shape (n_folds, n_l1_ratios, n_cs[, ...]) and floats.
        Left at its default, a FutureWarning.

    strategy : {{'path', 'grid'}}, default='path'
        How the grid of ``Cs`` runs: 'path' warm-starts each fold's models
        along ``Cs`` (scikit-learn's iterates; rounds hold one model per fold
        and l1_ratio), 'grid' fits every (fold, C, l1_ratio) from zero side
        by side (fewer rounds, each holding every model still running).
    {EXECUTION_PARAMS_DOC}
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.

    coef_ : ndarray of shape (1, n_features) or (n_classes, n_features)
        Coefficients of the refitted (or averaged) model.

    intercept_ : ndarray of shape (1,) or (n_classes,)
        Intercepts (zeros when ``fit_intercept=False``).

    Cs_ : ndarray of shape (n_cs,)
        The values of ``C`` tried.

    l1_ratios_ : ndarray of shape (n_l1_ratios,)
        The values of ``l1_ratio`` tried (``[None]`` for ``l1_ratios=None``).

    coefs_paths_ : dict or ndarray
        Every fold model's coefficients (intercept last), as scikit-learn's
        (see ``use_legacy_attributes``).

    scores_ : dict or ndarray
        Every fold model's test score, as scikit-learn's.

    C_ : ndarray of shape (n_classes,) or (1,), or float
        The best ``C``.

    l1_ratio_ : ndarray of shape (n_classes,) or (1,), or float
        The best ``l1_ratio``.

    n_iter_ : ndarray of shape (1, n_folds, n_cs) or (1, n_folds, n_cs, n_l1_ratios)
        Solver iterations of every fold model.

    {FITTED_ATTRIBUTES_DOC}
    See Also
    --------
    sklearn.linear_model.LogisticRegressionCV : The single-machine estimator
        this one mirrors.
    ServerlessLogisticRegression : One fit, for a given ``C``.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn_serverless import ServerlessLogisticRegressionCV
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = ServerlessLogisticRegressionCV(
    ...     Cs=[0.1, 1, 10], cv=3, l1_ratios=(0,), scoring="accuracy",
    ...     use_legacy_attributes=False, max_iter=200, n_workers=2).fit(X, y)
    >>> clf.scores_.shape
    (3, 1, 3)
    >>> clf.predict(X[:2, :])
    array([0, 0])
    """

    # As scikit-learn's: score's sample_weight is a parameter, not routed metadata.
    __metadata_request__score = {"sample_weight": metadata_routing.UNUSED}
    _parameter_constraints: dict = {
        "Cs": [Interval(Integral, 1, None, closed="left"), "array-like"],
        "l1_ratios": ["array-like", None, Hidden(StrOptions({"warn"}))],
        "fit_intercept": ["boolean"],
        "cv": ["cv_object"],
        "dual": ["boolean"],
        "penalty": [StrOptions({"l1", "l2", "elasticnet"}), Hidden(StrOptions({"deprecated"}))],
        "scoring": [StrOptions(set(get_scorer_names())), callable, None,
                    Hidden(StrOptions({"warn"}))],
        "solver": [StrOptions(set(SOLVER_NAMES) - {"gd"})],
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "class_weight": [dict, StrOptions({"balanced"}), None],
        "n_jobs": [None, Integral],
        "verbose": ["verbose"],
        "refit": ["boolean"],
        "intercept_scaling": [Interval(Real, 0, None, closed="neither")],
        "random_state": ["random_state"],
        "use_legacy_attributes": ["boolean", Hidden(StrOptions({"warn"}))],
        "strategy": [StrOptions(set(STRATEGIES))],
        **EXECUTION_CONSTRAINTS,
    }

    def __init__(self, *, Cs=10, l1_ratios="warn", fit_intercept=True, cv=None, dual=False,
                 penalty="deprecated", scoring="warn", solver="lbfgs", tol=1e-4, max_iter=100,
                 class_weight=None, n_jobs=None, verbose=0, refit=True, intercept_scaling=1.0,
                 random_state=None, use_legacy_attributes="warn", strategy="path",
                 backend="localhost", state_mode="lock_free", n_workers=None,
                 state_store=None, timeout=DEFAULT_TIMEOUT):
        self.Cs = Cs
        self.l1_ratios = l1_ratios
        self.fit_intercept = fit_intercept
        self.cv = cv
        self.dual = dual
        self.penalty = penalty
        self.scoring = scoring
        self.solver = solver
        self.tol = tol
        self.max_iter = max_iter
        self.class_weight = class_weight
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.refit = refit
        self.intercept_scaling = intercept_scaling
        self.random_state = random_state
        self.use_legacy_attributes = use_legacy_attributes
        self.strategy = strategy
        self.backend = backend
        self.state_mode = state_mode
        self.n_workers = n_workers
        self.state_store = state_store
        self.timeout = timeout

    # parameters, as scikit-learn reads them -------------------------------------------

    # fit -----------------------------------------------------------------------------

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None, **params):
        """Fit every fold, ``C`` and ``l1_ratio``, then the best on every row.

        One serverless run does it all (two when the driver scores).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features) or dataset
            Training vectors (sparse input is converted to CSR), or a
            labelled dataset (``read_csv(..., label=...)`` & co.) the workers
            read where it lies; its folds are then KFold's or
            StratifiedKFold's without shuffling (``cv`` None, an int, or one
            of those) and its scorer one the workers compute.

        y : array-like of shape (n_samples,)
            Target labels; None for a dataset (its label column).

        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sample, in the objective (times the class weights)
            and in the scores.

        **params : dict
            With metadata routing enabled, parameters of the splitter (for
            example ``groups``) and of the scorer, as in scikit-learn.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        _raise_for_params(params, self, "fit")
        l1_ratios, l1_ratios_, penalty, scoring, legacy = resolve_options(self)
        if isinstance(X, Dataset):
            return self._fit_dataset(X, y, sample_weight, l1_ratios, l1_ratios_, penalty,
                                     scoring, legacy)
        X, y = validate_data(self, X, y, accept_sparse="csr", dtype=np.float64, order="C",
                             accept_large_sparse=self.solver not in ["liblinear", "sag", "saga"])
        n_samples, n_features = X.shape
        check_classification_targets(y)
        self.classes_ = classes = np.unique(y)
        n_classes = classes.size
        is_binary = n_classes == 2
        if n_classes < 2:
            raise ValueError(
                "This solver needs samples of at least 2 classes"
                " in the data, but the data contains only one"
                f" class: {classes[0]}."
            )
        self._check_execution_params()
        if _routing_enabled():
            routed = process_routing(self, "fit", sample_weight=sample_weight, **params)
            split_params, score_params = routed.splitter.split, dict(routed.scorer.score)
        else:
            split_params = {}
            score_params = {} if sample_weight is None else {"sample_weight": sample_weight}
        cv = check_cv(self.cv, y, classifier=True)
        folds = list(cv.split(X, y, **split_params))
        class_weight = self.class_weight
        if isinstance(class_weight, dict):
            if not (set(class_weight.keys()) <= set(classes)):
                raise ValueError(
                    "The given class_weight dict must have the class labels as keys; "
                    f"classes={classes} but key={class_weight.keys()}"
                )
        elif class_weight == "balanced":
            weights = compute_class_weight(class_weight, classes=classes, y=y,
                                           sample_weight=sample_weight)
            class_weight = dict(zip(classes, weights, strict=True))
        if self.solver == "liblinear" and not is_binary:
            raise liblinear_multiclass()

        encoded = np.searchsorted(classes, y)
        sw = _check_sample_weight(sample_weight, X, dtype=np.float64, copy=True)
        score_weight = sw.copy()
        if class_weight is not None:
            sw *= compute_class_weight(class_weight, classes=classes, y=y)[encoded]
        n_folds = len(folds)
        train = np.zeros((n_samples, n_folds), dtype=np.uint8)
        test = np.zeros((n_samples, n_folds), dtype=np.uint8)
        for k, (train_k, test_k) in enumerate(folds):
            train[train_k, k] = 1
            test[test_k, k] = 1
        sw_sums = np.r_[[float(sw[train[:, k] == 1].sum()) for k in range(n_folds)],
                        float(sw.sum())]

        worker_scoring = self._worker_scoring(scoring, score_params)
        n_outputs = 1 if is_binary else n_classes
        cv_params = self._cv_params(penalty, l1_ratios_, n_features, n_folds, worker_scoring,
                                    n_outputs=n_outputs, n_classes=n_classes, sw_sums=sw_sums)
        columns = {"X": X, "y": (encoded == 1 if is_binary else encoded).astype(np.float64),
                   "sample_weight": sw, "score_weight": score_weight,
                   "train": train, "test": test}
        result = self._run_distributed("logistic_cv", cv_params, columns)[0]

        def score_on_driver(paths):
            return driver_scores(self, X, y, folds, paths, scoring, score_params)

        scores = score_on_driver if worker_scoring is None else result["scores"]
        return self._finish(result, cv_params, scores, columns, l1_ratios,
                            l1_ratios_, penalty, legacy, n_features)

    def _cv_params(self, penalty, l1_ratios_, n_features, n_folds, worker_scoring, **data
                   ) -> LogisticCVParams:
        """The run's parameters, for data in memory and for a dataset alike."""
        Cs = np.logspace(-4, 4, self.Cs) if isinstance(self.Cs, Integral) else self.Cs
        self.Cs_ = np.asarray(Cs)
        share = {"l2": 0.0, "l1": 1.0}
        shares = np.array([share.get(penalty, r) for r in l1_ratios_], dtype=np.float64)
        l1_part = penalty in ("l1", "elasticnet") and np.any(shares > 0)
        return LogisticCVParams(
            solver="owlqn" if l1_part else "lbfgs", n_features=n_features,
            fit_intercept=bool(self.fit_intercept), Cs=self.Cs_.astype(np.float64),
            l1_ratios=shares, n_folds=n_folds, max_iter=self.max_iter, tol=self.tol,
            verbose=self.verbose, dtype=np.dtype(np.float64).str,
            intercept_scaling=(float(self.intercept_scaling)
                               if self.solver == "liblinear" and self.fit_intercept else None),
            scoring=worker_scoring, refit=bool(self.refit), strategy=self.strategy,
            inner_tol=_INNER_TOL.get(self.solver, 0.0) * self.tol or None, **data,
        )

    def _fit_dataset(self, dataset, y, sample_weight, l1_ratios, l1_ratios_, penalty, scoring,
                     legacy):
        """Fit on a labelled dataset the workers read: the folds are
        scikit-learn's KFold or StratifiedKFold without shuffling, computed
        from the workers' class counts; the workers score the test folds."""
        resolved = self._resolve_dataset(dataset, y, sample_weight)
        if resolved.has_weight:
            raise ValueError("ServerlessLogisticRegressionCV does not take a dataset's weight "
                             "column yet: its folds are counted in rows, not weights")
        if not resolved.has_label:
            raise ValueError("the dataset has no label column: name it, e.g. "
                             "read_csv(path, label='target')")
        cv = 5 if self.cv is None else self.cv
        if isinstance(cv, Integral):
            splitter, n_folds = "stratified", int(cv)
        elif isinstance(cv, (KFold, StratifiedKFold)) and not cv.shuffle:
            splitter = "stratified" if isinstance(cv, StratifiedKFold) else "kfold"
            n_folds = cv.n_splits
        else:
            raise ValueError(
                "a dataset's folds are computed where its rows lie: cv must be None, an "
                f"int, KFold or StratifiedKFold without shuffling, got {cv!r}")
        worker_scoring = self._worker_scoring(scoring, {})
        if worker_scoring is None:
            raise ValueError(
                f"scoring={scoring!r} is computed on the driver, which does not hold a "
                f"dataset's rows: use one of {sorted(WORKER_SCORERS)} (or None)")
        if n_folds < 2:
            raise ValueError(f"k-fold cross-validation requires at least one train/test "
                             f"split by setting n_splits=2 or more, got n_splits={n_folds}.")
        cv_params = self._cv_params(penalty, l1_ratios_, resolved.n_features, n_folds,
                                    worker_scoring, n_outputs=None, n_classes=None,
                                    sw_sums=None, splitter=splitter,
                                    class_weight=self.class_weight)
        result = self._run_distributed("logistic_cv", cv_params, resolved)[0]
        self.classes_ = result["classes"]
        n_classes = self.classes_.size
        cv_params = _replace(cv_params, n_outputs=1 if n_classes == 2 else n_classes,
                             n_classes=n_classes)
        return self._finish(result, cv_params, result["scores"], None, l1_ratios, l1_ratios_,
                            penalty, legacy, resolved.n_features)

    def _finish(self, result, cv_params, scores, columns, l1_ratios, l1_ratios_, penalty,
                legacy, n_features):
        """Warnings, the driver's scores and refit where needed, the attributes."""
        self._warn(result)
        n_outputs, n_folds = cv_params.n_outputs, cv_params.n_folds
        shares = cv_params.l1_ratios
        is_binary = n_outputs == 1
        d = n_features + int(self.fit_intercept)
        # (n_folds, n_l1, n_cs, m, d): each model's (m, d) rows, sklearn's layout.
        paths = result["coefs"].reshape(n_folds, len(l1_ratios_), self.Cs_.size, d, n_outputs)
        paths = np.swapaxes(paths, 3, 4)
        if callable(scores):
            scores = scores(paths)
        refit_coef = None
        if self.refit:
            summed = scores.sum(axis=0).T  # (n_cs, n_l1): sklearn's tie order
            ci, li = np.unravel_index(np.argmax(summed), summed.shape)
            refit = result.get("refit")
            if refit is None:  # scored on the driver: the refit is a second run
                start = np.mean(result["coefs"][:, li, ci], axis=0)
                refit_params = _replace(cv_params, refit_coef=start,
                                        refit_C=float(self.Cs_[ci]),
                                        refit_l1_ratio=float(shares[li]))
                timings = self.timings_
                refit = self._run_distributed("logistic_cv", refit_params, columns)[0]["refit"]
                self.timings_ = {"cv": timings, "refit": self.timings_}
            self._warn({"lbfgs": [refit["lbfgs"]], "warnings": refit["warnings"]})
            refit_coef = refit["coef"].reshape(d, n_outputs).T
        set_cv_attributes(self, paths, scores, result["n_iter"], refit_coef, l1_ratios,
                          l1_ratios_, penalty, legacy, n_features, is_binary)
        return self

    def _worker_scoring(self, scoring, score_params: dict) -> str | None:
        """The scorer's name when the workers compute it, else None."""
        if set(score_params) - {"sample_weight"}:
            return None
        if scoring is None:
            return "accuracy"
        if isinstance(scoring, str) and scoring in WORKER_SCORERS:
            return scoring
        return None

    def _warn(self, result: dict) -> None:
        for category, message in result["warnings"]:
            warnings.warn(message, _WARNING_CATEGORIES[category], stacklevel=3)
        for info in result["lbfgs"]:
            if info is not None:
                _check_optimize_result("lbfgs", SimpleNamespace(**info), info["max_iter"],
                                       extra_warning_msg=CONVERGENCE_ADVICE)

    # prediction and scoring ----------------------------------------------------------

    def score(self, X, y, *, sample_weight=None, **score_params):
        """Score with the ``scoring`` option (accuracy by default).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Test samples.

        y : array-like of shape (n_samples,)
            True labels for ``X``.

        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        **score_params : dict
            Parameters of the scorer (metadata routing).

        Returns
        -------
        score : float
            The score of the fitted model on ``X`` and ``y``.
        """
        _raise_for_params(score_params, self, "score")
        if sample_weight is not None:
            score_params["sample_weight"] = sample_weight
        scorer = self._get_scorer()
        if _routing_enabled():
            params = process_routing(self, "score", **score_params).scorer.score
        else:
            params = ({"sample_weight": score_params["sample_weight"]}
                      if score_params.get("sample_weight") is not None else {})
        if isinstance(X, Dataset) and y is None:
            y = X.labels()  # predictions gathered to the driver, scored against its labels
        return scorer(self, X, y, **params)

    def get_metadata_routing(self):
        """Get metadata routing of this object: its splitter and scorer.

        Returns
        -------
        routing : MetadataRouter
            The routing of ``fit`` and ``score`` parameters.
        """
        return (
            MetadataRouter(owner=self)
            .add_self_request(self)
            .add(splitter=self.cv,
                 method_mapping=MethodMapping().add(caller="fit", callee="split"))
            .add(scorer=self._get_scorer(),
                 method_mapping=MethodMapping().add(caller="score", callee="score")
                 .add(caller="fit", callee="score"))
        )

    def _get_scorer(self):
        if self.scoring == "warn":
            return get_scorer("accuracy")
        return get_scorer(self.scoring or "accuracy")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


def _replace(params: LogisticCVParams, **changes) -> LogisticCVParams:
    from dataclasses import replace

    return replace(params, **changes)
