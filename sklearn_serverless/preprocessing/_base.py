"""What the serverless transformers share: on arrays they are scikit-learn's
own; on a dataset, ``fit`` runs one round-based map of the 'preprocessing'
algorithm and ``transform`` returns the dataset with one more fitted step.

A transformer's dataset fit has two parts: the statistics it needs, as tasks
of that algorithm (``_dataset_tasks``), and its fitted attributes from those
statistics (``_fit_statistics``). :func:`fit_on_dataset` runs the tasks of
several transformers (a column transformer's) in one run."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from sklearn.utils.validation import check_is_fitted

from .._base._estimator import ServerlessMixin
from .._datasets import Dataset
from .._datasets._transformed import transformed

#: The parameters that say where a fit runs: transformers that agree on all
#: of them share one run.
_EXECUTION = ("backend", "n_workers", "state_store", "state_mode", "timeout")


class DatasetTransformerMixin(ServerlessMixin):
    """Dataset paths of a transformer whose array paths are scikit-learn's."""

    #: A transformer takes text features and missing cells as they are.
    _takes_raw_columns = True

    def _check_dataset_params(self) -> None:
        """Refuse, before anything is read, what cannot be fitted on a dataset."""

    def _dataset_tasks(self, resolved) -> list[tuple]:
        """The statistics to collect: tasks ``(kind, columns, weighted)`` over
        the columns of ``resolved`` (see ``_algorithms.preprocessing``)."""
        raise NotImplementedError

    def _fit_statistics(self, resolved, statistics: list) -> None:
        """Set the fitted attributes from each task's statistics (a dict for
        'moments', a list of one dict per column for 'categories')."""
        raise NotImplementedError

    def _fit_dataset(self, dataset, sample_weight=None):
        fit_on_dataset([(self, None)], dataset, sample_weight)
        return self

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


def fit_on_dataset(parts: list[tuple], dataset, sample_weight=None, resolved=None) -> None:
    """Fit each ``(transformer, indices)`` of ``parts`` on the columns
    ``indices`` of ``dataset`` (None: every column): one run for all the
    transformers that share their execution parameters.

    ``resolved``: the dataset as the first transformer resolved it (with
    ``_resolve_dataset``), when the caller has it already.
    """
    for transformer, _ in parts:
        transformer._validate_params()
        transformer._check_dataset_params()
    groups: list[list[tuple]] = []
    for part in parts:
        group = next((g for g in groups if _execution(g[0][0]) == _execution(part[0])), None)
        if group is None:
            groups.append([part])
        else:
            group.append(part)
    # Every group's tasks first: what a transformer refuses is refused before any run.
    planned = []
    for number, group in enumerate(groups):
        lead = group[0][0]
        if number or resolved is None:
            resolved = lead._resolve_dataset(dataset, None, sample_weight, raw=True)
        tasks, views, counts = [], [], []
        for transformer, indices in group:
            transformer._check_execution_params()
            view = resolved if indices is None else selected(resolved, indices)
            transformer._set_feature_names(view)
            own = transformer._dataset_tasks(view)
            tasks += [(kind, tuple(int(c if indices is None else indices[c]) for c in columns),
                       bool(weighted)) for kind, columns, weighted in own]
            views.append(view)
            counts.append(len(own))
        planned.append((group, resolved, tuple(tasks), views, counts))
    for group, resolved, tasks, views, counts in planned:
        lead = group[0][0]
        result = lead._run_distributed("preprocessing", tasks, resolved)[0]
        statistics = [result[f"task{i}"] if kind == "moments" else
                      [result[f"task{i}_{k}"] for k in range(len(columns))]
                      for i, (kind, columns, _) in enumerate(tasks)]
        start = 0
        for (transformer, _), view, count in zip(group, views, counts, strict=True):
            transformer._fit_statistics(view, statistics[start:start + count])
            transformer.n_workers_, transformer.timings_ = lead.n_workers_, lead.timings_
            start += count


def _execution(transformer) -> dict:
    return {name: getattr(transformer, name) for name in _EXECUTION}


def selected(resolved, indices):
    """The metadata of ``resolved``'s columns ``indices``, in that order."""
    kinds = resolved.kinds or ("number",) * resolved.n_features
    names = resolved.feature_names
    samples = resolved.text_samples
    return replace(resolved, n_features=len(indices),
                   feature_names=None if names is None else tuple(names[j] for j in indices),
                   kinds=tuple(kinds[j] for j in indices),
                   text_samples=tuple(samples[j] if j < len(samples) else None
                                      for j in indices))


def keep_set_output(cls):
    """Lets ``set_output`` configure the array paths (scikit-learn's own,
    already wrapped) while a dataset passes through unwrapped."""
    cls._sklearn_auto_wrap_output_keys = {"transform"}
    return cls


def init_signature(*names: str) -> str:
    return ", ".join(names)
