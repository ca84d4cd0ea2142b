"""ServerlessLogisticRegression: scikit-learn's L2-penalised logistic
regression with ``fit`` split across Lithops workers."""

from __future__ import annotations

import warnings
from numbers import Integral, Real
from types import SimpleNamespace

import numpy as np
import scipy.linalg
from sklearn.base import BaseEstimator, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model._base import LinearClassifierMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.extmath import softmax
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.optimize import _check_optimize_result
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from ._base import (
    EXECUTION_CONSTRAINTS,
    EXECUTION_PARAMS_DOC,
    FITTED_ATTRIBUTES_DOC,
    ServerlessMixin,
)

#: scikit-learn's extra advice when its L-BFGS solver stops early.
_CONVERGENCE_ADVICE = (
    "Please also refer to the documentation for alternative solver options:\n"
    "    https://scikit-learn.org/stable/modules/linear_model.html"
    "#logistic-regression"
)

_WARNING_CATEGORIES = {
    "ConvergenceWarning": ConvergenceWarning,
    "LinAlgWarning": scipy.linalg.LinAlgWarning,
}


class ServerlessLogisticRegression(LinearClassifierMixin, ServerlessMixin, BaseEstimator):
    __doc__ = f"""Logistic regression (L2 penalty) fitted by serverless workers.

    A drop-in replacement for :class:`sklearn.linear_model.LogisticRegression`
    with an L2 penalty: same objective, parameters, attributes and (for
    'lbfgs' and 'newton-cholesky') the same coefficients, but ``fit`` runs as
    one Lithops map of ``n_workers`` long-lived workers, each owning a block
    of rows. Every round the coordinator (worker 0) broadcasts the
    coefficients; each worker returns its partition's weighted loss sum and
    gradient (and Hessian, for Newton), which are summed in worker order.

    The objective is ``sum_i s_i loss_i / sum_i s_i + ||w||^2 / (2 C sum_i
    s_i)`` with the binomial loss for two classes and the multinomial
    (softmax) loss for more; the intercept is not penalised.

    Parameters
    ----------
    C : float, default=1.0
        Inverse of regularisation strength; ``np.inf`` means no penalty.

    fit_intercept : bool, default=True
        Whether to fit an intercept (one per class for multinomial).

    tol : float, default=1e-4
        Tolerance: L-BFGS-B's ``gtol`` for 'lbfgs'; max |gradient| and half
        the Newton decrement for 'newton-cholesky'; max |gradient| for 'gd'.

    max_iter : int, default=100
        Maximum number of solver iterations (gradient steps for 'gd').

    solver : {{'lbfgs', 'newton-cholesky', 'gd'}}, default='lbfgs'
        The optimiser, run by the coordinator inside the one map of the fit:

        - 'lbfgs': scipy's L-BFGS-B with scikit-learn's options; one round
          per objective evaluation.
        - 'newton-cholesky': scikit-learn's Newton-Cholesky steps; workers
          also return their Hessian. Few rounds, each costing
          ``n_samples * n_features^2`` (times ``n_classes^2 / 2`` for
          multinomial); good for up to a few hundred features.
        - 'gd': full-batch gradient descent with a fixed step (the
          algorithm of the serverless ML paper this package follows), until
          max |gradient| <= ``tol`` or ``max_iter`` steps.

    learning_rate : float, default=None
        Step size of 'gd'. None is ``1 / L`` for an upper bound ``L`` on the
        gradient's Lipschitz constant, computed from the data in one extra
        round. Ignored by the other solvers.

    class_weight : dict or 'balanced', default=None
        Weights of the classes, multiplied into the sample weights, as
        scikit-learn does ('balanced': ``n_samples / (n_classes *
        np.bincount(y))``).

    warm_start : bool, default=False
        Start from the previous fit's coefficients.

    random_state : int, RandomState instance or None, default=None
        Unused: every solver is deterministic. Accepted for compatibility
        with code written for :class:`~sklearn.linear_model.LogisticRegression`.

    verbose : int, default=0
        Print each solver iteration (its loss; for 'gd' also the largest
        gradient entry) while the fit runs.
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
        "C": [Interval(Real, 0, None, closed="right")],
        "fit_intercept": ["boolean"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "solver": [StrOptions({"lbfgs", "newton-cholesky", "gd"})],
        "learning_rate": [Interval(Real, 0, None, closed="neither"), None],
        "class_weight": [dict, StrOptions({"balanced"}), None],
        "warm_start": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        **EXECUTION_CONSTRAINTS,
    }

    def __init__(self, C=1.0, *, fit_intercept=True, tol=1e-4, max_iter=100, solver="lbfgs",
                 learning_rate=None, class_weight=None, warm_start=False, random_state=None,
                 verbose=0, backend="localhost", state_mode="lock_free", n_workers=None,
                 state_store=None, timeout=120.0):
        self.C = C
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.solver = solver
        self.learning_rate = learning_rate
        self.class_weight = class_weight
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose
        self.backend = backend
        self.state_mode = state_mode
        self.n_workers = n_workers
        self.state_store = state_store
        self.timeout = timeout

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
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
        X, y = validate_data(self, X, y, accept_sparse="csr", dtype=[np.float64, np.float32],
                             order="C")
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        n_classes = self.classes_.shape[0]
        if n_classes < 2:
            raise ValueError(
                "This solver needs samples of at least 2 classes in the data, but the "
                f"data contains only one class: {self.classes_[0]!r}"
            )
        self._check_execution_params()
        n_samples, n_features = X.shape
        encoded = np.searchsorted(self.classes_, y)
        sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64, copy=True)
        if self.class_weight is not None:
            class_weight = compute_class_weight(self.class_weight, classes=self.classes_, y=y,
                                                sample_weight=sample_weight)
            sample_weight *= class_weight[encoded]
        binary = n_classes == 2
        # Binary: y in {0, 1} for the half binomial loss; else the class index.
        target = (encoded == 1) if binary else encoded
        n_outputs = 1 if binary else n_classes
        sw_sum = float(sample_weight.sum())
        params = {
            "solver": self.solver,
            "coef": self._initial_coef(n_features, n_outputs),
            "fit_intercept": bool(self.fit_intercept),
            "n_features": n_features,
            "n_outputs": n_outputs,
            "sw_sum": sw_sum,
            "l2": 1.0 / (self.C * sw_sum),
            "max_iter": self.max_iter,
            "tol": self.tol,
            "learning_rate": self.learning_rate,
            "verbose": self.verbose,
            "dtype": X.dtype.str,
        }
        columns = {"X": X, "y": target.astype(np.float64), "sample_weight": sample_weight}
        result = self._run_distributed("logistic", params, columns)[0]
        for category, message in result["warnings"]:
            warnings.warn(message, _WARNING_CATEGORIES[category], stacklevel=2)
        info = result["lbfgs"]
        if info is not None:
            # sklearn's warning (and iteration cap) for L-BFGS-B, raised here on the driver.
            _check_optimize_result("lbfgs", SimpleNamespace(**info), info["max_iter"],
                                   extra_warning_msg=_CONVERGENCE_ADVICE)
        self.n_iter_ = np.asarray([result["n_iter"]], dtype=np.int32)
        # Back from the flat (d, m) C-order vector to sklearn's (m, d) rows.
        coef = result["coef"].reshape(n_features + int(self.fit_intercept), n_outputs).T
        coef = coef.astype(X.dtype)
        if self.fit_intercept:
            self.coef_, self.intercept_ = coef[:, :-1].copy(), coef[:, -1].copy()
        else:
            self.coef_ = np.ascontiguousarray(coef)
            self.intercept_ = np.zeros(n_outputs, dtype=X.dtype)
        return self

    def _initial_coef(self, n_features: int, n_outputs: int) -> np.ndarray:
        """Zeros, or the previous fit's coefficients with ``warm_start``
        (sklearn's shape checks and messages)."""
        d = n_features + int(self.fit_intercept)
        coef = np.zeros((n_outputs, d))
        previous = getattr(self, "coef_", None) if self.warm_start else None
        if previous is not None:
            if self.fit_intercept:
                previous = np.concatenate([previous, self.intercept_[:, None]], axis=1)
            if previous.shape != coef.shape:
                if n_outputs == 1:
                    raise ValueError(
                        f"Initialization coef is of shape {previous.shape}, expected shape "
                        f"{(d,)} or (1, {d})"
                    )
                raise ValueError(
                    f"Initialization coef is of shape {previous.shape}, expected shape "
                    f"{coef.shape}"
                )
            coef[:] = previous
        # The workers' flat layout: the C-order ravel of the (d, m) transpose.
        return np.ascontiguousarray(coef.T).ravel()

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

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags
