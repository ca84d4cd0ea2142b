"""What the serverless transformers share: on arrays they are scikit-learn's
own; on a dataset, ``fit`` runs one round-based map of the 'preprocessing'
algorithm and ``transform`` returns the dataset with one more fitted step."""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import check_is_fitted

from .._base._estimator import ServerlessMixin
from .._datasets import Dataset
from .._datasets._transformed import transformed


class DatasetTransformerMixin(ServerlessMixin):
    """Dataset paths of a transformer whose array paths are scikit-learn's."""

    #: A transformer takes text features and missing cells as they are.
    _takes_raw_columns = True

    def _dataset_statistics(self, dataset, tasks, sample_weight=None) -> tuple:
        """``(resolved, statistics)``: the workers' sums for each task
        ``(kind, columns, weighted)`` (see ``_algorithms.preprocessing``)."""
        resolved = self._resolve_dataset(dataset, None, sample_weight, raw=True)
        result = self._run_distributed("preprocessing", tuple(tasks), resolved)[0]
        return resolved, result

    def _check_dataset_features(self, dataset) -> None:
        """The dataset has the features the transformer was fitted on."""
        from .._driver._backends import open_storage

        check_is_fitted(self)
        resolved = dataset.resolve(open_storage(self.backend), recheck=False)
        if resolved.n_features != self.n_features_in_:
            raise ValueError(f"X has {resolved.n_features} features, but "
                             f"{type(self).__name__} is expecting {self.n_features_in_} "
                             "features as input.")
        names = getattr(self, "feature_names_in_", None)
        if names is not None and resolved.feature_names is not None and \
                tuple(names) != tuple(resolved.feature_names):
            raise ValueError("The feature names should match those that were passed during "
                             f"fit: {list(names)} against {list(resolved.feature_names)}.")

    def _transform_dataset(self, dataset):
        self._check_dataset_features(dataset)
        step = self._step()
        names = self.get_feature_names_out()
        return transformed(dataset, step, len(names), names)

    def transform(self, X, *args, **kwargs):
        """Transform X; a dataset is returned as a dataset, transformed by
        the workers that read it next (nothing is read now)."""
        if isinstance(X, Dataset):
            return self._transform_dataset(X)
        return super().transform(X, *args, **kwargs)

    def fit_transform(self, X, y=None, **fit_params):
        """Fit, then transform (a dataset: its fitted view, read by no one yet)."""
        if isinstance(X, Dataset):
            return self.fit(X, y, **fit_params)._transform_dataset(X)
        return super().fit_transform(X, y, **fit_params)

    def _set_feature_names(self, resolved) -> None:
        self.n_features_in_ = resolved.n_features
        if resolved.feature_names is not None:
            self.feature_names_in_ = np.asarray(resolved.feature_names, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_


def keep_set_output(cls):
    """Lets ``set_output`` configure the array paths (scikit-learn's own,
    already wrapped) while a dataset passes through unwrapped."""
    cls._sklearn_auto_wrap_output_keys = {"transform"}
    return cls


def init_signature(*names: str) -> str:
    return ", ".join(names)
