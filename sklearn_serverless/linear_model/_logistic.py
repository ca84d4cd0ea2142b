"""ServerlessLogisticRegression: scikit-learn's logistic regression (L2, L1,
elastic-net) with ``fit`` split across Lithops workers."""

from __future__ import annotations

import warnings
from dataclasses import replace
from numbers import Integral, Real
from types import SimpleNamespace

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from sklearn.base import BaseEstimator, _fit_context
from sklearn.callback import CallbackSupportMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model._base import LinearClassifierMixin, SparseCoefMixin
from sklearn.utils._param_validation import Hidden, Interval, StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.extmath import softmax
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.optimize import _check_optimize_result
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from .._algorithms.logistic._params import LogisticParams
from .._base._callbacks import IterationTasks
from .._base._estimator import (
    DEFAULT_TIMEOUT,
    EXECUTION_CONSTRAINTS,
    EXECUTION_PARAMS_DOC,
    FITTED_ATTRIBUTES_DOC,
    ServerlessMixin,
)
from .._common._messages import (
    CONVERGENCE_ADVICE,
    liblinear_multiclass,
    one_class,
    warm_start_shape,
)
from .._datasets import Dataset
from ._logistic_datasets import DatasetClassifierMixin
from ._penalty import SOLVER_NAMES, resolve_penalty

#: scikit-learn's extra advice when its L-BFGS solver stops early.
#: scikit-learn's warning when its stochastic or liblinear solver reaches max_iter.
_MAX_ITER_MESSAGES = {
    "liblinear": "Liblinear failed to converge, increase the number of iterations.",
    "sag": "The max_iter was reached which means the coef_ did not converge",
    "saga": "The max_iter was reached which means the coef_ did not converge",
}

#: The solvers that stop tighter than ``tol`` (see LogisticParams.inner_tol):
#: inner tolerance / tol, so that each reaches at least the accuracy of
#: scikit-learn's solver of that name at the same tol (measured on
#: scikit-learn's tests' problems, docs/user_guide/differences.rst).
_INNER_TOL = {"liblinear": 1e-2, "sag": 1e-2, "saga": 1e-2}

_WARNING_CATEGORIES = {
    "ConvergenceWarning": ConvergenceWarning,
    "LinAlgWarning": scipy.linalg.LinAlgWarning,
    "UserWarning": UserWarning,
}


class LogisticProbaMixin:
    """``predict_proba`` and ``predict_log_proba`` of a fitted logistic
    model, as scikit-learn's (every serverless logistic estimator)."""

    def predict_proba(self, X):
        """Probability of each class.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Probabilities, columns in the order of ``classes_``: the logistic
            function for binary problems, the softmax otherwise.
        """
        check_is_fitted(self)
        if self.classes_.shape[0] <= 2:
            return self._predict_proba_lr(X)
        return softmax(self.decision_function(X), copy=False)

    def predict_log_proba(self, X):
        """Logarithm of the probability of each class.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Log-probabilities, columns in the order of ``classes_``.
        """
        return np.log(self.predict_proba(X))


class ServerlessLogisticRegression(CallbackSupportMixin, DatasetClassifierMixin,
                                   LogisticProbaMixin, LinearClassifierMixin, SparseCoefMixin,
                                   ServerlessMixin, BaseEstimator):
    __doc__ = f"""Logistic regression (L2, L1 or elastic-net) fitted by serverless workers.

    A drop-in replacement for :class:`sklearn.linear_model.LogisticRegression`:
    the same parameters, objective and attributes, and the optimum of
    scikit-learn's solver of the same name, but ``fit`` runs as one Lithops
    map of ``n_workers`` long-lived workers, each owning a block of rows.
    Every round the coordinator (worker 0) broadcasts the coefficients; each
    worker returns its partition's weighted loss sum and gradient (and
    Hessian or Hessian-vector product, for the Newton solvers), which are
    summed in worker order. Every solver is deterministic.

    The objective is scikit-learn's ``sum_i s_i loss_i / sum_i s_i + (l1_ratio
    ||w||_1 + (1 - l1_ratio) / 2 ||w||^2) / (C sum_i s_i)`` with the binomial
    loss for two classes and the multinomial (softmax) loss for more; the
    intercept is not penalised (except by 'liblinear', see ``solver``).

    Parameters
    ----------
    penalty : {{'l1', 'l2', 'elasticnet'}} or None, default='deprecated'
        Deprecated as in scikit-learn 1.8 (FutureWarning; removed in 1.10):
        use ``l1_ratio`` and ``C`` (``l1_ratio=0`` for 'l2', 1 for 'l1',
        between for 'elasticnet', ``C=np.inf`` for None).

    C : float, default=1.0
        Inverse of regularisation strength; ``np.inf`` means no penalty.

    l1_ratio : float, default=0.0
        The elastic-net mixing parameter, ``0 <= l1_ratio <= 1``: 0 is a pure
        L2 penalty, 1 a pure L1 penalty. Values above 0 need ``solver='saga'``
        (or 'liblinear' with ``l1_ratio=1``), as in scikit-learn.

    dual : bool, default=False
        Only ``False`` (the primal problem), except with 'liblinear' and an
        L2 penalty, whose dual has the same optimum: the primal is solved.

    tol : float, default=1e-4
        Tolerance: L-BFGS-B's ``gtol`` (``max(abs(projected gradient))``) for
        'lbfgs', 'sag', 'saga' and 'liblinear' with L2; ``max(abs(pseudo-gradient))``
        of OWL-QN when there is an L1 part; ``max(abs(gradient))`` (and half the
        Newton decrement) for 'newton-cholesky'; ``max(abs(gradient))`` for
        'newton-cg' and 'gd'.

    fit_intercept : bool, default=True
        Whether to fit an intercept (one per class for multinomial).

    intercept_scaling : float, default=1
        Only for 'liblinear': the intercept is the weight of a constant
        feature of this value, penalised like the other weights.

    class_weight : dict or 'balanced', default=None
        Weights of the classes, multiplied into the sample weights, as
        scikit-learn does ('balanced': ``n_samples / (n_classes *
        np.bincount(y))``).

    random_state : int, RandomState instance or None, default=None
        Unused: every solver is deterministic. Accepted for compatibility
        with code written for :class:`~sklearn.linear_model.LogisticRegression`.

    solver : {{'lbfgs', 'liblinear', 'newton-cg', 'newton-cholesky', 'sag', \
'saga', 'gd'}}, default='lbfgs'
        The optimiser, run by the coordinator inside the one map of the fit;
        each reaches the optimum of scikit-learn's solver of that name:

        - 'lbfgs': scipy's L-BFGS-B with scikit-learn's options; one round
          per objective evaluation.
        - 'newton-cg': truncated Newton (scikit-learn's Newton-CG): one
          round per Hessian-vector product inside conjugate gradients, one
          per line-search evaluation.
        - 'newton-cholesky': scikit-learn's Newton-Cholesky steps; workers
          also return their Hessian. Few rounds, each costing
          ``n_samples * n_features^2`` (times ``n_classes^2 / 2`` for
          multinomial); good for up to a few hundred features.
        - 'sag', 'saga': stochastic in scikit-learn; here the same objective
          is minimised by a deterministic distributed solver: L-BFGS for an
          L2 penalty, OWL-QN (orthant-wise L-BFGS, one round per objective
          evaluation, exact zeros) when ``l1_ratio > 0`` ('saga' only).
        - 'liblinear': liblinear's objective ``C sum_i s_i loss_i + penalty``
          with the intercept as a penalised feature of value
          ``intercept_scaling``; L-BFGS for L2, OWL-QN for L1. Binary only,
          as in scikit-learn (wrap it in a ``OneVsRestClassifier`` for more
          classes).
        - 'gd': full-batch gradient descent with a fixed step (the
          algorithm of the serverless ML paper this package follows), until
          ``max(abs(gradient))`` <= ``tol`` or ``max_iter`` steps; L2 only.

    max_iter : int, default=100
        Maximum number of solver iterations (gradient steps for 'gd').

    verbose : int, default=0
        Print each solver iteration (its loss; for 'gd' also the largest
        gradient entry) while the fit runs.

    warm_start : bool, default=False
        Start from the previous fit's coefficients.

    n_jobs : int, default=None
        Unused, as in scikit-learn 1.8+ (a FutureWarning when set): the
        parallelism is ``n_workers``.

    learning_rate : float, default=None
        Step size of 'gd'. None is ``1 / L`` for an upper bound ``L`` on the
        gradient's Lipschitz constant, computed from the data in one extra
        round. Ignored by the other solvers.
    {EXECUTION_PARAMS_DOC}
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.

    coef_ : ndarray of shape (1, n_features) or (n_classes, n_features)
        Coefficients; one row for a binary problem.

    intercept_ : ndarray of shape (1,) or (n_classes,)
        Intercepts (zeros when ``fit_intercept=False``).

    n_iter_ : ndarray of shape (1,)
        Iterations of the solver (gradient steps for 'gd').

    {FITTED_ATTRIBUTES_DOC}
    See Also
    --------
    sklearn.linear_model.LogisticRegression : The single-machine estimator
        this one mirrors.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn_serverless import ServerlessLogisticRegression
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = ServerlessLogisticRegression(max_iter=200, n_workers=2).fit(X, y)
    >>> clf.predict(X[:2, :])
    array([0, 0])
    >>> clf.predict_proba(X[:2, :]).shape
    (2, 3)
    >>> round(clf.score(X, y), 2)
    0.97
    """

    _parameter_constraints: dict = {
        "penalty": [StrOptions({"l1", "l2", "elasticnet"}), None,
                    Hidden(StrOptions({"deprecated"}))],
        "C": [Interval(Real, 0, None, closed="right")],
        "l1_ratio": [Interval(Real, 0, 1, closed="both"), None],
        "dual": ["boolean"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "fit_intercept": ["boolean"],
        "intercept_scaling": [Interval(Real, 0, None, closed="neither")],
        "class_weight": [dict, StrOptions({"balanced"}), None],
        "random_state": ["random_state"],
        "solver": [StrOptions(set(SOLVER_NAMES))],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "n_jobs": [None, Integral],
        "learning_rate": [Interval(Real, 0, None, closed="neither"), None],
        **EXECUTION_CONSTRAINTS,
    }

    def __init__(self, penalty="deprecated", *, C=1.0, l1_ratio=0.0, dual=False, tol=1e-4,
                 fit_intercept=True, intercept_scaling=1, class_weight=None,
                 random_state=None, solver="lbfgs", max_iter=100, verbose=0,
                 warm_start=False, n_jobs=None, learning_rate=None, backend="localhost",
                 state_mode="lock_free", n_workers=None, state_store=None,
                 timeout=DEFAULT_TIMEOUT):
        self.penalty = penalty
        self.C = C
        self.l1_ratio = l1_ratio
        self.dual = dual
        self.tol = tol
        self.fit_intercept = fit_intercept
        self.intercept_scaling = intercept_scaling
        self.class_weight = class_weight
        self.random_state = random_state
        self.solver = solver
        self.max_iter = max_iter
        self.verbose = verbose
        self.warm_start = warm_start
        self.n_jobs = n_jobs
        self.learning_rate = learning_rate
        self.backend = backend
        self.state_mode = state_mode
        self.n_workers = n_workers
        self.state_store = state_store
        self.timeout = timeout

    def set_callbacks(self, *callbacks):
        """Set callbacks (:mod:`sklearn.callback`) for the estimator.

        As in scikit-learn 1.9, iterations are reported for ``solver='lbfgs'``
        only (a warning otherwise): the coordinator sends each iteration's
        loss, and coefficients when a callback takes ``fitted_estimator``,
        to the driver, which calls the hooks in order while the fit runs.

        Parameters
        ----------
        *callbacks : callback instances
            The callbacks to set.

        Returns
        -------
        self : estimator instance
            The estimator instance itself.
        """
        if self.solver != "lbfgs":
            warnings.warn(
                f"Callbacks are only supported in LogisticRegression for solver='lbfgs' "
                f"(and so in {type(self).__name__}). This estimator has "
                f"solver='{self.solver}', callbacks will be ignored during the solving "
                "of the regression.", stacklevel=2,
            )
        return super().set_callbacks(*callbacks)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None):
        """Fit the model across serverless workers.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training vectors. Sparse input is converted to CSR.

        y : array-like of shape (n_samples,)
            Target labels, of any type ``np.unique`` sorts.

        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sample; multiplied by the class weights.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        penalty = resolve_penalty(self)
        # scikit-learn's callback tasks: the fit, then one per L-BFGS iteration,
        # at least one, and the empty one after the last.
        callback_ctx = self._init_callback_context(max_subtasks=max(self.max_iter, 1) + 1)
        if isinstance(X, Dataset):
            callback_ctx.call_on_fit_task_begin(estimator=self)
            self._fit_dataset(X, y, sample_weight, penalty)
            callback_ctx.call_on_fit_task_end(estimator=self, reconstruction_attributes={})
            return self
        X, y = validate_data(self, X, y, accept_sparse="csr", dtype=[np.float64, np.float32],
                             order="C")
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        n_classes = self.classes_.shape[0]
        liblinear = self.solver == "liblinear"
        if liblinear:
            _check_liblinear(X, n_classes)
        if n_classes < 2:
            raise one_class(self.classes_[0])
        self._check_execution_params()
        n_samples, n_features = X.shape
        encoded = np.searchsorted(self.classes_, y)
        original_weight = sample_weight
        sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64, copy=True)
        if self.class_weight is not None:
            class_weight = compute_class_weight(self.class_weight, classes=self.classes_, y=y,
                                                sample_weight=sample_weight)
            sample_weight *= class_weight[encoded]
        binary = n_classes == 2
        # Binary: y in {0, 1} for the half binomial loss; else the class index.
        target = (encoded == 1) if binary else encoded
        n_outputs = 1 if binary else n_classes
        params = self._params(penalty, n_features, X.dtype, n_outputs=n_outputs,
                              sw_sum=float(sample_weight.sum()),
                              coef=self._initial_coef(n_features, n_outputs))
        columns = {"X": X, "y": target.astype(np.float64), "sample_weight": sample_weight}
        metadata = None if original_weight is None else {"sample_weight": original_weight}
        callback_ctx.call_on_fit_task_begin(estimator=self, X=X, y=y, metadata=metadata)
        bridge = None
        if self.solver == "lbfgs" and getattr(self, "_skl_callbacks", None):
            bridge = _CallbackBridge(callback_ctx, self, X, y, metadata, params.coef,
                                     n_features=n_features, n_outputs=n_outputs)
            params = replace(params, report=2 if bridge.wants_model else 1)
        result = self._run_distributed("logistic", params, columns, progress=bridge)[0]
        if bridge is not None:
            bridge.close()
        if self.max_iter == 0 and self.solver in _MAX_ITER_MESSAGES:
            # scikit-learn's liblinear, sag and saga return their starting point
            # (L-BFGS-B, which they run here, takes a step even with maxiter=0).
            result = {**result, "coef": params.coef, "n_iter": 0}
        self._set_fitted(result, n_features, n_outputs, X.dtype)
        callback_ctx.call_on_fit_task_end(estimator=self, X=X, y=y, metadata=metadata,
                                          reconstruction_attributes={})
        return self

    def _set_fitted(self, result: dict, n_features: int, n_outputs: int, dtype):
        max_iter_message = _MAX_ITER_MESSAGES.get(self.solver)
        capped = result["n_iter"] >= self.max_iter
        for category, message in result["warnings"]:
            if (max_iter_message is not None and category == "ConvergenceWarning"
                    and message.startswith("OWL-QN failed to converge")):
                continue  # reaching max_iter: the solver's own warning, below
            warnings.warn(message, _WARNING_CATEGORIES[category], stacklevel=2)
        info = result["lbfgs"]
        if max_iter_message is not None:
            # scikit-learn's words for the solver asked for, whatever ran it.
            if capped:
                warnings.warn(max_iter_message, ConvergenceWarning, stacklevel=2)
            elif info is not None and info["status"] != 0:
                _check_optimize_result("lbfgs", SimpleNamespace(**info), info["max_iter"],
                                       extra_warning_msg=CONVERGENCE_ADVICE)
        elif info is not None:
            # sklearn's warning (and iteration cap) for L-BFGS-B, raised here on the driver.
            _check_optimize_result("lbfgs", SimpleNamespace(**info), info["max_iter"],
                                   extra_warning_msg=CONVERGENCE_ADVICE)
        self.n_iter_ = np.asarray([result["n_iter"]], dtype=np.int32)
        if self.solver == "liblinear":
            dtype = np.float64  # scikit-learn's liblinear always returns float64
        # Back from the flat (d, m) C-order vector to sklearn's (m, d) rows.
        coef = np.asarray(result["coef"])
        coef = coef.reshape(n_features + int(self.fit_intercept), n_outputs).T
        coef = coef.astype(dtype)
        if self.fit_intercept:
            self.coef_, self.intercept_ = coef[:, :-1].copy(), coef[:, -1].copy()
        else:
            self.coef_ = np.ascontiguousarray(coef)
            self.intercept_ = np.zeros(n_outputs, dtype=dtype)
        return self

    def _params(self, penalty, n_features: int, dtype, **data) -> LogisticParams:
        """The fit's parameters, for data in memory and for a dataset alike."""
        liblinear = self.solver == "liblinear"
        return LogisticParams(
            solver=penalty.algorithm, n_features=n_features,
            fit_intercept=bool(self.fit_intercept), C=penalty.C, l1_ratio=penalty.l1_ratio,
            max_iter=self.max_iter, tol=self.tol, verbose=self.verbose,
            dtype=np.dtype(dtype).str, learning_rate=self.learning_rate,
            intercept_scaling=(float(self.intercept_scaling)
                               if liblinear and self.fit_intercept else None),
            liblinear=liblinear, inner_tol=_INNER_TOL.get(self.solver, 0.0) * self.tol or None,
            **data)

    def _initial_coef(self, n_features: int, n_outputs: int) -> np.ndarray:
        """Zeros, or the previous fit's coefficients with ``warm_start``
        (sklearn's shape checks and messages)."""
        d = n_features + int(self.fit_intercept)
        coef = np.zeros((n_outputs, d))
        previous = getattr(self, "coef_", None) if self.warm_start else None
        if previous is not None:
            if sp.issparse(previous):  # after sparsify()
                previous = previous.toarray()
            if self.fit_intercept:
                previous = np.concatenate([previous, self.intercept_[:, None]], axis=1)
            if previous.shape != coef.shape:
                raise warm_start_shape(previous.shape, coef.shape, n_outputs)
            coef[:] = previous
        # The workers' flat layout: the C-order ravel of the (d, m) transpose.
        return np.ascontiguousarray(coef.T).ravel()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


class _CallbackBridge(IterationTasks):
    """scikit-learn's ``_LbfgsCallbackBridge``: the first iteration's task
    begins with the initial coefficients; a report carries the iteration
    number, the loss and, when a callback takes ``fitted_estimator``, the
    coefficients."""

    task_name = "lbfgs-iter"
    attributes_on_begin = True

    def __init__(self, callback_ctx, estimator, X, y, metadata, coef, *, n_features: int,
                 n_outputs: int):
        self._shape = (n_features + int(estimator.fit_intercept), n_outputs)
        self._dtype, self._fit_intercept = X.dtype, estimator.fit_intercept
        super().__init__(callback_ctx, estimator, {"X": X, "y": y, "metadata": metadata},
                         initial=coef)

    def attributes(self, coef) -> dict | None:
        if coef is None:
            return None
        # The workers' flat (d, m) C-order layout back to sklearn's (m, d) rows.
        coef = np.asarray(coef).reshape(self._shape).T.astype(self._dtype)
        if self._fit_intercept:
            return {"coef_": coef[:, :-1].copy(), "intercept_": coef[:, -1].copy()}
        return {"coef_": np.ascontiguousarray(coef),
                "intercept_": np.zeros(self._shape[1], dtype=self._dtype)}


def _check_liblinear(X, n_classes: int) -> None:
    """scikit-learn's refusals for 'liblinear' (messages included)."""
    if n_classes >= 3:
        raise liblinear_multiclass()
    if X.max() > 1e30:
        raise ValueError(
            "Using the 'liblinear' solver while X contains a maximum "
            "value > 1e30 results in a frozen fit. Please choose another "
            "solver or rescale the input X."
        )
