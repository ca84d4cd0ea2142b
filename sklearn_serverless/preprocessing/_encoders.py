"""ServerlessOneHotEncoder."""

from __future__ import annotations

import numpy as np
from sklearn.preprocessing import OneHotEncoder

from .._base._estimator import DEFAULT_TIMEOUT, EXECUTION_CONSTRAINTS, EXECUTION_PARAMS_DOC
from .._datasets import Dataset
from .._datasets._chain import Step
from ._base import DatasetTransformerMixin, keep_set_output


@keep_set_output
class ServerlessOneHotEncoder(DatasetTransformerMixin, OneHotEncoder,
                              auto_wrap_output_keys=None):
    __doc__ = """Encode categorical features as one-hot columns, fitted where the data lies.

    On arrays it is scikit-learn's :class:`~sklearn.preprocessing.OneHotEncoder`.
    On a dataset the workers count each feature's distinct values (text or
    numbers; NaN is a category, as scikit-learn makes it), the categories
    are fitted by scikit-learn from them, and ``transform`` returns a dataset
    the next step's workers encode as they read (dense columns: the next
    step reads numbers). ``min_frequency`` and ``max_categories`` are refused
    on a dataset.

    Parameters
    ----------
    categories : 'auto' or list of array-like, default='auto'
        Each feature's categories: found in the data, or given.

    drop : {'first', 'if_binary'} or array-like of shape (n_features,), default=None
        Which category of each feature to drop, as scikit-learn's.

    sparse_output : bool, default=True
        A sparse matrix from arrays in memory (a dataset's transform gives
        the next step dense columns).

    dtype : number type, default=np.float64
        The output's dtype.

    handle_unknown : {'error', 'ignore', 'infrequent_if_exist', 'warn'}, default='error'
        What ``transform`` does with a category not seen in ``fit``.

    min_frequency : int or float, default=None
        Categories rarer than this are infrequent (arrays in memory only).

    max_categories : int, default=None
        At most this many output categories per feature (arrays in memory
        only).

    feature_name_combiner : 'concat' or callable, default='concat'
        How output feature names are made from a feature and a category.
""" + EXECUTION_PARAMS_DOC + """
    Attributes
    ----------
    categories_, drop_idx_, n_features_in_, feature_names_in_
        As scikit-learn's.
    """

    _parameter_constraints = {**OneHotEncoder._parameter_constraints, **EXECUTION_CONSTRAINTS}

    def __init__(self, *, categories="auto", drop=None, sparse_output=True, dtype=np.float64,
                 handle_unknown="error", min_frequency=None, max_categories=None,
                 feature_name_combiner="concat", backend="localhost", state_mode="lock_free",
                 n_workers=None, state_store=None, timeout=DEFAULT_TIMEOUT):
        super().__init__(categories=categories, drop=drop, sparse_output=sparse_output,
                         dtype=dtype, handle_unknown=handle_unknown,
                         min_frequency=min_frequency, max_categories=max_categories,
                         feature_name_combiner=feature_name_combiner)
        self.backend, self.n_workers, self.state_store = backend, n_workers, state_store
        self.state_mode, self.timeout = state_mode, timeout

    def fit(self, X, y=None):
        """Find each feature's categories.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or dataset
            The data; a dataset's distinct values are counted by the workers.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The fitted encoder.
        """
        if not isinstance(X, Dataset):
            return super().fit(X, y)
        return self._fit_dataset(X)

    def _check_dataset_params(self) -> None:
        if self.min_frequency is not None or self.max_categories is not None:
            raise ValueError("min_frequency and max_categories are not supported on a "
                             "dataset yet: fit on the rows in memory, or leave them None")

    def _dataset_tasks(self, resolved) -> list[tuple]:
        return [("categories", tuple(range(resolved.n_features)), False)]

    def _fit_statistics(self, resolved, statistics: list) -> None:
        names = getattr(self, "feature_names_in_", None)
        # Every category once, in a table scikit-learn's own fit sees: the
        # same categories_, drop_idx_ and errors as on the rows themselves.
        values = [column["values"] for column in statistics[0]]
        d, rows = len(values), max(v.size for v in values)
        table = np.empty((rows, d), dtype=object)
        # An empty CSV text cell is missing, as pandas reads it: NaN here.
        blank_is_missing = getattr(resolved.dataset, "format", "") == "csv"
        for j, column in enumerate(values):
            cells = column.astype(object) if column.dtype.kind == "U" else column
            if blank_is_missing and column.dtype.kind == "U":
                cells[column == ""] = np.nan
            table[:, j] = np.resize(cells, rows)
        super().fit(table)
        if names is not None:
            self.feature_names_in_ = names
        self.categories_ = [c.astype(object) if values[j].dtype.kind == "U" else
                            c.astype(np.float64) for j, c in enumerate(self.categories_)]

    def _step(self) -> Step:
        arrays = {}
        for j, categories in enumerate(self.categories_):
            if categories.dtype == object:
                missing = np.array([isinstance(c, float) and np.isnan(c) for c in categories])
                if missing.any():
                    # NaN (sorted last): what an empty text cell is.
                    arrays[f"blank{j}"] = np.ones(1)
                arrays[f"cat{j}"] = categories[~missing].astype(str)
            else:
                arrays[f"cat{j}"] = categories.astype(np.float64)
        drops = self.drop_idx_ if self.drop_idx_ is not None else [None] * len(self.categories_)
        arrays["drop"] = np.array([-1 if k is None else int(k) for k in drops])
        unknown = "error" if self.handle_unknown == "error" else "ignore"
        return Step("onehot", arrays, options=(("handle_unknown", unknown),))

