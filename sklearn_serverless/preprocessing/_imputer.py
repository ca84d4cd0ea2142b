"""ServerlessSimpleImputer."""

from __future__ import annotations

import numpy as np
from sklearn.impute import SimpleImputer
from sklearn.utils._missing import is_scalar_nan

from .._base._estimator import DEFAULT_TIMEOUT, EXECUTION_CONSTRAINTS, EXECUTION_PARAMS_DOC
from .._datasets import Dataset
from .._datasets._chain import Step
from ._base import DatasetTransformerMixin, keep_set_output


@keep_set_output
class ServerlessSimpleImputer(DatasetTransformerMixin, SimpleImputer,
                              auto_wrap_output_keys=None):
    __doc__ = """Fill missing values with a statistic, fitted where the data lies.

    On arrays it is scikit-learn's :class:`~sklearn.impute.SimpleImputer`. On a
    dataset, the missing cells are the empty CSV cells and Parquet nulls of
    numeric features (NaN); the workers sum each feature's present values
    (``'mean'``) or count its distinct values (``'most_frequent'``), and
    ``transform`` returns a dataset the next step's workers fill as they
    read. ``'median'`` is refused on a dataset: an exact median needs every
    value in one place (or many passes over the data), not sums.

    Parameters
    ----------
    missing_values : int, float, str, np.nan or None, default=np.nan
        The placeholder of a missing value (on a dataset: NaN only).

    strategy : {'mean', 'median', 'most_frequent', 'constant'}, default='mean'
        The fill value of each feature (``'median'``: arrays in memory only).

    fill_value : str or number, default=None
        The fill value with ``strategy='constant'``.

    copy : bool, default=True
        Fill a copy of arrays in memory (a dataset is never changed).

    add_indicator : bool, default=False
        Add columns marking the missing values (arrays in memory only).

    keep_empty_features : bool, default=False
        Keep the features that are all missing.
""" + EXECUTION_PARAMS_DOC + """
    Attributes
    ----------
    statistics_, indicator_, n_features_in_, feature_names_in_
        As scikit-learn's.
    """

    _parameter_constraints = {**SimpleImputer._parameter_constraints, **EXECUTION_CONSTRAINTS}

    def __init__(self, *, missing_values=np.nan, strategy="mean", fill_value=None, copy=True,
                 add_indicator=False, keep_empty_features=False, backend="localhost",
                 state_mode="lock_free", n_workers=None, state_store=None,
                 timeout=DEFAULT_TIMEOUT):
        super().__init__(missing_values=missing_values, strategy=strategy,
                         fill_value=fill_value, copy=copy, add_indicator=add_indicator,
                         keep_empty_features=keep_empty_features)
        self.backend, self.n_workers, self.state_store = backend, n_workers, state_store
        self.state_mode, self.timeout = state_mode, timeout

    def fit(self, X, y=None):
        """Find each feature's fill value.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features) or dataset
            The data; a dataset's sums or distinct values come from the workers.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The fitted imputer.
        """
        if not isinstance(X, Dataset):
            return super().fit(X, y)
        return self._fit_dataset(X)

    def _check_dataset_params(self) -> None:
        if self.strategy == "median" or callable(self.strategy):
            raise ValueError(f"strategy={self.strategy!r} is not supported on a dataset: an "
                             "exact median needs every value of a feature in one place, not "
                             "the sums the workers compute. Use 'mean', 'most_frequent' or "
                             "'constant', or fit on the rows in memory.")
        if not is_scalar_nan(self.missing_values):
            raise ValueError("on a dataset the missing cells are NaN (empty CSV cells, "
                             "Parquet nulls): missing_values must be np.nan")
        if self.add_indicator:
            raise ValueError("add_indicator=True is not supported on a dataset yet")

    def _dataset_tasks(self, resolved) -> list[tuple]:
        if resolved.text_features:
            raise ValueError("on a dataset SimpleImputer fills numeric features only; "
                             f"features {list(resolved.text_features)} hold text (their "
                             "empty cells are the text '')")
        kind = "categories" if self.strategy == "most_frequent" else "moments"
        return [(kind, tuple(range(resolved.n_features)), False)]

    def _fit_statistics(self, resolved, statistics: list) -> None:
        d = resolved.n_features
        if self.strategy == "constant":
            fill = 0 if self.fill_value is None else self.fill_value
            statistics = np.full(d, fill, dtype=np.float64)
        elif self.strategy == "mean":
            statistics = statistics[0]["mean"]  # NaN where no value is present
        else:
            columns, statistics = statistics[0], np.full(d, np.nan)
            for j, column in enumerate(columns):
                values, counts = column["values"], column["counts"]
                present = ~np.isnan(values)
                if present.any():  # ties: the smallest value, as scikit-learn's
                    statistics[j] = values[present][np.argmax(counts[present])]
        if self.keep_empty_features and self.strategy != "constant":
            statistics = np.where(np.isnan(statistics), 0.0, statistics)
        self._fit_dtype = self._fill_dtype = np.dtype(np.float64)
        self.statistics_ = statistics
        self.indicator_ = None

    def _step(self) -> Step:
        keep = np.flatnonzero(~np.isnan(self.statistics_)) if self.strategy != "constant" \
            else np.arange(self.statistics_.size)
        return Step("impute", {"fill": np.asarray(self.statistics_, np.float64), "keep": keep})
