"""ServerlessStandardScaler and ServerlessMinMaxScaler."""

from __future__ import annotations

import numpy as np
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.preprocessing._data import _handle_zeros_in_scale, _is_constant_feature

from .._base._estimator import DEFAULT_TIMEOUT, EXECUTION_CONSTRAINTS, EXECUTION_PARAMS_DOC
from .._datasets import Dataset
from .._datasets._chain import Step
from ._base import DatasetTransformerMixin, keep_set_output


def _moments(stats: dict) -> tuple:
    return stats["weight"], stats["mean"], stats["var"], stats["n_missing"]


@keep_set_output
class ServerlessStandardScaler(DatasetTransformerMixin, StandardScaler,
                               auto_wrap_output_keys=None):
    __doc__ = """Standardize features, fitted where the data lies.

    On arrays it is scikit-learn's :class:`~sklearn.preprocessing.StandardScaler`.
    On a dataset (:func:`~sklearn_serverless.read_csv` & co.) the workers sum
    each feature's weighted count, sum and squared deviations (missing cells
    ignored, as scikit-learn ignores NaN; the dataset's weight column weighs
    the rows), and ``transform`` returns a dataset the next step's workers
    scale as they read.

    Parameters
    ----------
    copy : bool, default=True
        Scale a copy of arrays in memory (a dataset is never changed).

    with_mean : bool, default=True
        Center the features before scaling.

    with_std : bool, default=True
        Scale the features to unit variance.
""" + EXECUTION_PARAMS_DOC + """
    Attributes
    ----------
    scale_, mean_, var_, n_samples_seen_, n_features_in_, feature_names_in_
        As scikit-learn's.
    """

    _parameter_constraints = {**StandardScaler._parameter_constraints, **EXECUTION_CONSTRAINTS}

    def __init__(self, *, copy=True, with_mean=True, with_std=True, backend="localhost",
                 state_mode="lock_free", n_workers=None, state_store=None,
                 timeout=DEFAULT_TIMEOUT):
        super().__init__(copy=copy, with_mean=with_mean, with_std=with_std)
        self.backend, self.n_workers, self.state_store = backend, n_workers, state_store
        self.state_mode, self.timeout = state_mode, timeout

    def fit(self, X, y=None, sample_weight=None):
        """Compute the mean and the standard deviation.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features) or dataset
            The data; a dataset is read by the workers where it lies.
        y : None
            Ignored.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the rows in memory (a dataset's weight column weighs
            its rows).

        Returns
        -------
        self : object
            The fitted scaler.
        """
        if not isinstance(X, Dataset):
            return super().fit(X, y, sample_weight=sample_weight)
        return self._fit_dataset(X, sample_weight)

    def _dataset_tasks(self, resolved) -> list[tuple]:
        return [("moments", tuple(range(resolved.n_features)), True)]

    def _fit_statistics(self, resolved, statistics: list) -> None:
        weight, mean, var, n_missing = _moments(statistics[0])
        n_seen = weight if resolved.has_weight else (weight.astype(np.int64))
        if np.ptp(n_seen) == 0:
            n_seen = n_seen[0]
        self.n_samples_seen_ = n_seen
        if not self.with_mean and not self.with_std:
            self.mean_ = self.var_ = self.scale_ = None
            return
        self.mean_, self.var_ = mean, var
        if self.with_std:
            constant = _is_constant_feature(self.var_, self.mean_, self.n_samples_seen_)
            self.scale_ = _handle_zeros_in_scale(np.sqrt(self.var_), copy=False,
                                                 constant_mask=constant)
        else:
            self.scale_ = None

    def _step(self) -> Step:
        arrays = {}
        if self.with_mean:
            arrays["mean"] = self.mean_
        if self.with_std:
            arrays["scale"] = self.scale_
        return Step("standard", arrays)


@keep_set_output
class ServerlessMinMaxScaler(DatasetTransformerMixin, MinMaxScaler, auto_wrap_output_keys=None):
    __doc__ = """Scale features to a range, fitted where the data lies.

    On arrays it is scikit-learn's :class:`~sklearn.preprocessing.MinMaxScaler`;
    on a dataset the workers find each feature's minimum and maximum
    (missing cells ignored), and ``transform`` returns a dataset the next
    step's workers scale as they read.

    Parameters
    ----------
    feature_range : tuple (min, max), default=(0, 1)
        The range of the transformed features.

    copy : bool, default=True
        Scale a copy of arrays in memory (a dataset is never changed).

    clip : bool, default=False
        Clip transformed values of held-out data to ``feature_range``.
""" + EXECUTION_PARAMS_DOC + """
    Attributes
    ----------
    min_, scale_, data_min_, data_max_, data_range_, n_samples_seen_, n_features_in_,
    feature_names_in_
        As scikit-learn's.
    """

    _parameter_constraints = {**MinMaxScaler._parameter_constraints, **EXECUTION_CONSTRAINTS}

    def __init__(self, feature_range=(0, 1), *, copy=True, clip=False, backend="localhost",
                 state_mode="lock_free", n_workers=None, state_store=None,
                 timeout=DEFAULT_TIMEOUT):
        super().__init__(feature_range=feature_range, copy=copy, clip=clip)
        self.backend, self.n_workers, self.state_store = backend, n_workers, state_store
        self.state_mode, self.timeout = state_mode, timeout

    def fit(self, X, y=None):
        """Compute each feature's minimum and maximum.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or dataset
            The data; a dataset is read by the workers where it lies.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The fitted scaler.
        """
        if not isinstance(X, Dataset):
            return super().fit(X, y)
        return self._fit_dataset(X)

    def _check_dataset_params(self) -> None:
        low, high = self.feature_range
        if low >= high:
            raise ValueError("Minimum of desired feature range must be smaller than maximum. "
                             f"Got {self.feature_range}.")

    def _dataset_tasks(self, resolved) -> list[tuple]:
        return [("moments", tuple(range(resolved.n_features)), False)]

    def _fit_statistics(self, resolved, statistics: list) -> None:
        low, high = self.feature_range
        stats = statistics[0]
        empty = stats["weight"] == 0
        data_min = np.where(empty, np.nan, stats["min"])
        data_max = np.where(empty, np.nan, stats["max"])
        self.n_samples_seen_ = int(stats["weight"][0] + stats["n_missing"][0])
        self.data_min_, self.data_max_ = data_min, data_max
        self.data_range_ = data_max - data_min
        self.scale_ = (high - low) / _handle_zeros_in_scale(self.data_range_, copy=True)
        self.min_ = low - data_min * self.scale_

    def _step(self) -> Step:
        clip = tuple(self.feature_range) if self.clip else None
        return Step("minmax", {"scale": self.scale_, "min": self.min_},
                    options=(("clip", clip),))
