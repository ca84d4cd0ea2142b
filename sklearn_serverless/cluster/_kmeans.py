"""ServerlessKMeans: scikit-learn's KMeans (Lloyd) with ``fit`` split across
Lithops workers."""

from __future__ import annotations

import warnings
from dataclasses import replace
from functools import partial
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    ClusterMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.callback import CallbackSupportMixin
from sklearn.cluster._kmeans import _BaseKMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics.pairwise import euclidean_distances
from sklearn.utils import check_array, check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.extmath import row_norms
from sklearn.utils.sparsefuncs import mean_variance_axis
from sklearn.utils.validation import (
    _check_sample_weight,
    _is_arraylike_not_scalar,
    check_is_fitted,
    validate_data,
)

from .._algorithms.kmeans._kernels import labels_inertia, with_ones_column
from .._algorithms.kmeans._params import KMeansParams
from .._base._callbacks import IterationTasks
from .._base._estimator import (
    DEFAULT_TIMEOUT,
    EXECUTION_CONSTRAINTS,
    EXECUTION_PARAMS_DOC,
    FITTED_ATTRIBUTES_DOC,
    ServerlessMixin,
)
from .._datasets import Dataset
from .._driver._placement import DerivedRows


class ServerlessKMeans(
    CallbackSupportMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, ClusterMixin,
    ServerlessMixin, BaseEstimator,
):
    __doc__ = f"""K-Means clustering (Lloyd) fitted by serverless workers.

    A drop-in replacement for :class:`sklearn.cluster.KMeans`: same
    parameters, attributes and results, but ``fit`` runs as one Lithops map
    of ``n_workers`` long-lived workers, each owning a block of rows, that
    meet every iteration through a shared state store.

    Parameters
    ----------
    n_clusters : int, default=8
        The number of clusters and centroids.

    init : {{'k-means++', 'random'}}, callable or array of shape \
(n_clusters, n_features), default='k-means++'
        Initialisation, computed on the driver exactly as scikit-learn does
        (same ``random_state``, same initial centres).

    n_init : 'auto' or int, default='auto'
        Runs from different initial centres, in lockstep inside the same map
        (each round steps every run still iterating); scikit-learn's choice
        wins: the lowest inertia, the first of equals. 'auto' is 1 for
        'k-means++' and arrays, 10 otherwise.

    max_iter : int, default=300
        Maximum Lloyd iterations of one run.

    tol : float, default=1e-4
        Relative tolerance: a run stops when the squared centre shift is at
        most ``tol`` times the mean variance of the features.

    verbose : int, default=0
        Print the inertia of each iteration as the fit runs, and why it stopped.

    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation.

    copy_x : bool, default=True
        Accepted for compatibility with :class:`sklearn.cluster.KMeans`,
        where False lets it centre X in place. This fit never modifies X
        (the workers read their own copy of the rows), whatever the value.

    algorithm : {{'lloyd', 'elkan'}}, default='lloyd'
        Both give the same model: 'elkan' runs Lloyd's iterations (Elkan's
        triangle-inequality bounds only skip distance computations, they do
        not change the result).
    {EXECUTION_PARAMS_DOC}
    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
        Coordinates of the cluster centres (float32 for float32 input).

    labels_ : ndarray of shape (n_samples,), dtype int32
        Label of each training point.

    inertia_ : float
        Sum of squared distances of samples to their closest centre,
        weighted by the sample weights.

    n_iter_ : int
        Iterations run by the best run.

    {FITTED_ATTRIBUTES_DOC}
    See Also
    --------
    sklearn.cluster.KMeans : The single-machine estimator this one mirrors.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_serverless import ServerlessKMeans
    >>> X = np.array([[1, 2], [1, 4], [1, 0], [10, 2], [10, 4], [10, 0]])
    >>> km = ServerlessKMeans(n_clusters=2, random_state=0, n_workers=2).fit(X)
    >>> km.cluster_centers_
    array([[10.,  2.],
           [ 1.,  2.]])
    >>> km.predict([[0, 0], [12, 3]])
    array([1, 0], dtype=int32)
    """

    _parameter_constraints: dict = {
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "init": [StrOptions({"k-means++", "random"}), callable, "array-like"],
        "n_init": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
        "copy_x": ["boolean"],
        "algorithm": [StrOptions({"lloyd", "elkan"})],
        **EXECUTION_CONSTRAINTS,
    }

    def __init__(self, n_clusters=8, *, init="k-means++", n_init="auto", max_iter=300,
                 tol=1e-4, verbose=0, random_state=None, copy_x=True, algorithm="lloyd",
                 backend="localhost", state_mode="lock_free", n_workers=None,
                 state_store=None, timeout=DEFAULT_TIMEOUT):
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.verbose = verbose
        self.random_state = random_state
        self.copy_x = copy_x
        self.algorithm = algorithm
        self.backend = backend
        self.state_mode = state_mode
        self.n_workers = n_workers
        self.state_store = state_store
        self.timeout = timeout

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None):
        """Compute k-means clustering across serverless workers.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training instances. Sparse input is converted to CSR.

        y : Ignored
            Not used, present for API consistency.

        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each observation.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        # scikit-learn's callback tasks (sklearn.callback): the fit, then one
        # per Lloyd iteration of every initialisation, reported while it runs.
        callback_ctx = self._init_callback_context(
            max_subtasks=self.max_iter * max(1, self._callback_inits()) + 1)
        if isinstance(X, Dataset):
            callback_ctx.call_on_fit_task_begin(estimator=self)
            self._fit_dataset(X, sample_weight)
            callback_ctx.call_on_fit_task_end(estimator=self, reconstruction_attributes={})
            return self
        X = validate_data(self, X, accept_sparse="csr", dtype=[np.float64, np.float32],
                          order="C", accept_large_sparse=False)
        self._check_execution_params()
        # scikit-learn's checks, in its order and words (sets _n_init and _tol).
        self._check_params_vs_input(X)
        sample_weight = _check_sample_weight(sample_weight, X, dtype=X.dtype)
        init = self.init
        init_is_array_like = _is_arraylike_not_scalar(init)
        if init_is_array_like:
            init = check_array(init, dtype=X.dtype, copy=True, order="C")
            self._validate_center_shape(X, init)
        random_state = check_random_state(self.random_state)
        # Of X before centring, as scikit-learn, which skips it for tol=0 too.
        mean_variance = _mean_variance(X) if self.tol else None
        # Like sklearn, cluster centred dense data: distances lose less precision.
        # The workers get it as [X - mean, 1], computed as it is written.
        x_mean = None
        columns = {"X": X, "sample_weight": sample_weight}
        if not sp.issparse(X):
            x_mean = X.mean(axis=0)
            columns["X"] = DerivedRows(X, partial(with_ones_column, subtract=x_mean),
                                       X.shape[1] + 1, X.dtype)
            if init_is_array_like:
                init -= x_mean
        # The centred copy only for an initialisation that reads the data.
        centred, x_squared_norms = X, None
        if not init_is_array_like:
            centred = X if x_mean is None else X - x_mean
            x_squared_norms = row_norms(centred, squared=True)
        inits = []
        for _ in range(self._n_init):
            # On the driver, before any worker starts: a bad callable fails here.
            inits.append(np.ascontiguousarray(self._init_centroids(
                centred, x_squared_norms=x_squared_norms, init=init,
                random_state=random_state, sample_weight=sample_weight), dtype=X.dtype))
            if self.verbose:
                print("Initialization complete")
        params = self._params(X.shape[1], X.dtype, mean_variance=mean_variance,
                              inits=tuple(inits))
        callback_ctx.call_on_fit_task_begin(estimator=self, X=X)
        bridge = None
        if getattr(self, "_skl_callbacks", None):
            bridge = _IterationTasks(callback_ctx, self, X, x_mean)
            params = replace(params, report=2 if bridge.wants_model else 1)
        results = self._run_distributed("kmeans", params, columns, progress=bridge)
        if bridge is not None:
            bridge.close()
        self._set_fitted(results, x_mean, X.dtype)
        callback_ctx.call_on_fit_task_end(estimator=self, X=X, reconstruction_attributes={})
        return self

    def _callback_inits(self) -> int:
        """Initialisations a fit runs, for the callbacks' task count."""
        if _is_arraylike_not_scalar(self.init):
            return 1
        if self.n_init == "auto":
            return 1 if isinstance(self.init, str) and self.init == "k-means++" else 10
        return int(self.n_init)

    def _fit_dataset(self, dataset, sample_weight):
        """Fit on a dataset the workers read (see ``read_csv`` & co.): its mean,
        variances and initial centres (k-means||) come from the workers."""
        resolved = self._resolve_dataset(dataset, None, sample_weight)
        init = self.init
        if callable(init):
            raise ValueError("a callable init needs the data in memory; with a dataset use "
                             "'k-means++', 'random' or an array")
        init_array = None
        self._set_n_init()
        if _is_arraylike_not_scalar(init):
            init_array = check_array(init, dtype=np.float64, copy=True, order="C")
            self._validate_center_shape(np.empty((0, resolved.n_features)), init_array)
            init = "array"
        seeds = check_random_state(self.random_state).randint(2**31 - 1, size=self._n_init)
        params = self._params(resolved.n_features, resolved.dtype, init=init,
                              init_array=init_array, seeds=tuple(seeds.tolist()))
        results = self._run_distributed("kmeans", params, resolved)
        return self._set_fitted(results, results[0]["x_mean"], np.dtype(resolved.dtype))

    def _params(self, n_features: int, dtype, **data) -> KMeansParams:
        """The fit's parameters, for data in memory and for a dataset alike."""
        return KMeansParams(n_clusters=self.n_clusters, max_iter=self.max_iter,
                            tol=float(self.tol), verbose=self.verbose, n_features=n_features,
                            dtype=np.dtype(dtype).str, **data)

    def _set_fitted(self, results: list[dict], x_mean, dtype):
        best = results[0]
        centers = best["centers"]
        if x_mean is not None:
            centers = centers + x_mean
        self.cluster_centers_ = centers.astype(dtype, copy=False)
        self._n_features_out = self.cluster_centers_.shape[0]
        self.labels_ = np.concatenate([result["labels"] for result in results])
        self.inertia_ = best["inertia"]
        self.n_iter_ = best["n_iter"]
        distinct = np.count_nonzero(np.bincount(self.labels_, minlength=self.n_clusters))
        if distinct < self.n_clusters:
            warnings.warn(
                f"Number of distinct clusters ({distinct}) found smaller than "
                f"n_clusters ({self.n_clusters}). Possibly due to duplicate points in X.",
                ConvergenceWarning, stacklevel=2,
            )
        return self

    def _check_params_vs_input(self, X):
        """scikit-learn's ``KMeans._check_params_vs_input``: n_samples against
        n_clusters, ``_tol``, ``_n_init`` (with its warning for an explicit init)
        and ``_algorithm`` (with its warning for 'elkan' and one cluster)."""
        _BaseKMeans._check_params_vs_input(self, X, default_n_init=10)
        self._algorithm = self.algorithm
        if self._algorithm == "elkan" and self.n_clusters == 1:
            warnings.warn(
                "algorithm='elkan' doesn't make sense for a single cluster. Using 'lloyd' "
                "instead.", RuntimeWarning, stacklevel=3,
            )
            self._algorithm = "lloyd"

    def _set_n_init(self) -> None:
        """``_n_init`` as scikit-learn resolves it, for a dataset the driver
        never holds (no X to check; same rule and warning)."""
        init = self.init
        if self.n_init != "auto":
            self._n_init = self.n_init
        elif isinstance(init, str) and init == "k-means++":
            self._n_init = 1
        elif (isinstance(init, str) and init == "random") or callable(init):
            self._n_init = 10
        else:
            self._n_init = 1
        if _is_arraylike_not_scalar(init) and self._n_init != 1:
            warnings.warn(
                "Explicit initial center position passed: performing only one init in "
                f"{self.__class__.__name__} instead of n_init={self._n_init}.",
                RuntimeWarning, stacklevel=3,
            )
            self._n_init = 1

    # scikit-learn's own: same draws and centres as KMeans, same shape checks
    # and messages (a callable's result is checked here, before the map).
    _validate_center_shape = _BaseKMeans._validate_center_shape
    _init_centroids = _BaseKMeans._init_centroids

    def _check_test_data(self, X):
        return validate_data(self, X, accept_sparse="csr", reset=False,
                             dtype=[np.float64, np.float32], order="C",
                             accept_large_sparse=False)

    def predict(self, X, sample_weight=None):
        """Index of the closest cluster centre for each sample in X.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            New data to predict.

        sample_weight : array-like of shape (n_samples,), default=None
            Checked but unused: a point's closest centre does not depend on
            its weight (accepted for code written for older KMeans).

        Returns
        -------
        labels : ndarray of shape (n_samples,), dtype int32
            Index of the cluster each sample belongs to.
        """
        check_is_fitted(self)
        if isinstance(X, Dataset):
            return np.concatenate([part["labels"] for part in self._apply_dataset(
                "kmeans", "labels", X, {"centers": self.cluster_centers_})])
        X = self._check_test_data(X)
        _check_sample_weight(sample_weight, X, dtype=X.dtype)
        ones = np.ones(X.shape[0], dtype=X.dtype)
        return labels_inertia(X, ones, self.cluster_centers_.astype(X.dtype, copy=False))[0]

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then return ``labels_``; see :meth:`fit`."""
        return self.fit(X, sample_weight=sample_weight).labels_

    def transform(self, X):
        """Distances of each sample to every cluster centre.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            New data to transform.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_clusters)
            X in the cluster-distance space.
        """
        check_is_fitted(self)
        if isinstance(X, Dataset):
            return np.vstack([part["distances"] for part in self._apply_dataset(
                "kmeans", "distances", X, {"centers": self.cluster_centers_})])
        X = self._check_test_data(X)
        return euclidean_distances(X, self.cluster_centers_)

    def fit_transform(self, X, y=None, sample_weight=None):
        """Fit, then transform X; see :meth:`fit` and :meth:`transform`."""
        return self.fit(X, sample_weight=sample_weight).transform(X)

    def score(self, X, y=None, sample_weight=None):
        """Opposite of the inertia of X on the fitted centres.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            New data.

        y : Ignored
            Not used, present for API consistency.

        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each observation.

        Returns
        -------
        score : float
            Opposite of the value of X on the K-means objective.
        """
        check_is_fitted(self)
        if isinstance(X, Dataset):
            if sample_weight is not None:
                raise ValueError("sample_weight is not supported with a dataset")
            return -sum(part["inertia"] for part in self._apply_dataset(
                "kmeans", "labels", X, {"centers": self.cluster_centers_}))
        X = self._check_test_data(X)
        sample_weight = _check_sample_weight(sample_weight, X, dtype=X.dtype)
        centers = self.cluster_centers_.astype(X.dtype, copy=False)
        return -labels_inertia(X, sample_weight, centers)[1]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


def _mean_variance(X):
    """The mean feature variance, the scale of sklearn's relative ``tol`` (a
    numpy scalar of X's precision: the bound is sklearn's to the last bit)."""
    if sp.issparse(X):
        variances = mean_variance_axis(X, axis=0)[1]
    else:
        variances = np.var(X, axis=0)
    return np.mean(variances)


class _IterationTasks(IterationTasks):
    """One scikit-learn callback task per Lloyd iteration; a report carries
    the inertia and, when a callback takes ``fitted_estimator``, the centres."""

    task_name = "lloyd-iter"

    def __init__(self, callback_ctx, estimator, X, x_mean):
        self._X, self._x_mean = X, x_mean
        super().__init__(callback_ctx, estimator, {"X": X})
        self._inertia = None

    def model(self, arrays: list):
        self._inertia = float(arrays[0][0])
        return arrays[1] if len(arrays) > 1 else None

    def attributes(self, centers) -> dict | None:
        if centers is None:
            return None
        if self._x_mean is not None:
            centers = centers + self._x_mean
        return {"cluster_centers_": centers.astype(self._X.dtype), "inertia_": self._inertia}
