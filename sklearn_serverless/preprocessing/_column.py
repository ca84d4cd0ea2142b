"""ServerlessColumnTransformer: scikit-learn's ColumnTransformer, fitted on a
dataset by column name.

scikit-learn's own cannot take a dataset: it selects columns by name only in
dataframes (``_safe_indexing``) and stacks its parts with ``np.hstack``, which
would read the rows on the driver. This one selects the columns of a dataset
as a fitted view, fits every transformer on its columns (one run for all:
the rows are read once), sets scikit-learn's fitted attributes, and
transforms a dataset by one step the next step's workers apply as they read.
On arrays and dataframes it is scikit-learn's."""

from __future__ import annotations

import numpy as np
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.compose import make_column_transformer as _sklearn_make_column_transformer

from .._datasets import Dataset
from .._datasets._chain import Step
from .._datasets._transformed import transformed
from ._base import DatasetTransformerMixin, fit_on_dataset


class ServerlessColumnTransformer(ColumnTransformer):
    __doc__ = """Apply transformers to columns, also on a dataset where it lies.

    On arrays and dataframes it is scikit-learn's
    :class:`~sklearn.compose.ColumnTransformer`. On a dataset, columns are
    named as in its header or schema (or by index), every transformer must be
    a serverless one (``ServerlessStandardScaler`` & co.) or ``'drop'``, and
    ``remainder`` must be ``'drop'``; the transformers are fitted where the
    data lies, all in one run (one per set of execution parameters, when
    they differ), and ``transform`` returns a dataset.

    Parameters
    ----------
    transformers : list of tuples
        ``(name, transformer, columns)``, as scikit-learn's; on a dataset,
        columns by name or index.

    remainder : {'drop', 'passthrough'} or estimator, default='drop'
        What becomes of the columns no transformer takes (on a dataset:
        ``'drop'``).

    sparse_threshold : float, default=0.3
        Below this density the output of arrays in memory is sparse.

    n_jobs : int, default=None
        Parallel jobs for arrays in memory.

    transformer_weights : dict, default=None
        Multiplicative weights of each transformer's output.

    verbose : bool, default=False
        Print the time each transformer takes.

    verbose_feature_names_out : bool, str or callable, default=True
        Prefix the output feature names with the transformer's name.
    """

    def fit(self, X, y=None, **params):
        """Fit every transformer.

        Parameters
        ----------
        X : array-like, dataframe or dataset
            The data; on a dataset the transformers are fitted where it lies,
            in one run.
        y : array-like of shape (n_samples,), default=None
            Targets, for transformers that use them (arrays in memory).
        **params : dict
            Parameters routed to the transformers' ``fit`` (arrays in memory).

        Returns
        -------
        self : object
            The fitted column transformer.
        """
        if not isinstance(X, Dataset):
            return super().fit(X, y, **params)
        self._fit_dataset(X)
        return self

    def fit_transform(self, X, y=None, **params):
        """Fit every transformer, then transform ``X``.

        Parameters
        ----------
        X : array-like, dataframe or dataset
            The data.
        y : array-like of shape (n_samples,), default=None
            Targets, for transformers that use them (arrays in memory).
        **params : dict
            Parameters routed to the transformers (arrays in memory).

        Returns
        -------
        X_t : {array-like, sparse matrix} or dataset
            The transformed data; of a dataset, a dataset the next step's
            workers transform as they read.
        """
        if not isinstance(X, Dataset):
            return super().fit_transform(X, y, **params)
        return self._fit_dataset(X).transform(X)

    def transform(self, X, **params):
        """Transform ``X`` by each fitted transformer, side by side.

        Parameters
        ----------
        X : array-like, dataframe or dataset
            The data.
        **params : dict
            Parameters routed to the transformers (arrays in memory).

        Returns
        -------
        X_t : {array-like, sparse matrix} or dataset
            The transformed data; of a dataset, a dataset (nothing is read).
        """
        if not isinstance(X, Dataset):
            return super().transform(X, **params)
        parts = []
        for name, fitted, _ in self.transformers_:
            indices = self._transformer_to_input_indices[name]
            if fitted == "drop" or not len(indices):
                continue
            parts.append((tuple(indices), (fitted._step(),)))
        names = self.get_feature_names_out()
        return transformed(X, Step("columns", parts=tuple(parts)), len(names), names)

    def _fit_dataset(self, dataset):
        from .._driver._backends import open_storage

        self._validate_params()
        self._validate_transformers()
        if self.remainder != "drop":
            raise ValueError("on a dataset, remainder must be 'drop' (name the columns to "
                             "pass through with a transformer)")
        for name, transformer, selection in self.transformers:
            if callable(selection):
                raise ValueError("on a dataset, name the columns (a callable needs the rows)")
            if transformer != "drop" and not isinstance(transformer, DatasetTransformerMixin):
                raise ValueError(f"on a dataset every transformer must be a serverless one "
                                 f"(ServerlessStandardScaler & co.) or 'drop'; {name!r} is "
                                 f"{type(transformer).__name__}")
        clones = {name: clone(transformer) for name, transformer, _ in self.transformers
                  if transformer != "drop"}
        # One resolve of the dataset, by the first transformer (the one whose
        # run it is, when they share their execution parameters).
        for transformer in clones.values():
            transformer._validate_params()
            transformer._check_dataset_params()
        first = next(iter(clones.values()), None)
        if first is not None:
            resolved = first._resolve_dataset(dataset, None, None, raw=True)
        else:
            resolved = dataset.resolve(open_storage("localhost"))
        names = list(resolved.feature_names) if resolved.feature_names is not None else None
        self.n_features_in_ = resolved.n_features
        if names is not None:
            self.feature_names_in_ = np.asarray(names, dtype=object)
        to_indices = {name: _indices(selection, names, resolved.n_features)
                      for name, _, selection in self.transformers}
        self._columns = [selection for _, _, selection in self.transformers]
        self._transformer_to_input_indices = to_indices
        self._validate_remainder(dataset)
        parts = [(clones[name], to_indices[name]) for name, transformer, _ in self.transformers
                 if transformer != "drop" and to_indices[name]]
        if parts:
            # Every transformer's statistics in one run (per set of execution
            # parameters): the rows are read once, in two rounds at most.
            fit_on_dataset(parts, dataset, resolved=resolved if parts[0][0] is first else None)
        fitted = [transformer for transformer, _ in parts]
        self.sparse_output_ = False
        self._update_fitted_transformers(fitted)
        widths = [len(t.get_feature_names_out()) for t in fitted]
        self._record_output_indices([np.empty((0, w)) for w in widths])
        return self


def _indices(selection, names, n_features: int) -> list[int]:
    items = [selection] if isinstance(selection, str | int) else list(selection)
    out = []
    for item in items:
        if isinstance(item, str):
            if names is None or item not in names:
                raise ValueError(f"A given column is not a column of the dataset: {item!r}")
            out.append(names.index(item))
        else:
            out.append(int(item) % n_features)
    return out


def make_column_transformer(*transformers, **kwargs) -> ServerlessColumnTransformer:
    """scikit-learn's ``make_column_transformer``, giving a
    :class:`ServerlessColumnTransformer`."""
    made = _sklearn_make_column_transformer(*transformers, **kwargs)
    return ServerlessColumnTransformer(made.transformers, **{
        key: value for key, value in made.get_params(deep=False).items()
        if key != "transformers"})
