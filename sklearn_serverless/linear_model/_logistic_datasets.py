"""What ServerlessLogisticRegression does with a dataset the driver never
holds (``read_csv`` & co.): fit it, and score, predict and compute decision
functions where it lies."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import check_is_fitted

from .._base._estimator import _check_dataset_labels
from .._base._scoring import install as install_scorers
from .._datasets import Dataset


class DatasetClassifierMixin:
    """Dataset paths of a linear classifier fitted by the workers."""

    def _fit_dataset(self, dataset, y, sample_weight, penalty):
        """Fit on a labelled dataset the workers read (see ``read_csv`` & co.):
        the classes, class counts and weight sum come from the workers."""
        resolved = self._resolve_dataset(dataset, y, sample_weight)
        if not resolved.has_label:
            raise ValueError("the dataset has no label column: name it, e.g. "
                             "read_csv(path, label='target')")
        n_features = resolved.n_features
        previous = getattr(self, "coef_", None) if self.warm_start else None
        coef = None if previous is None else self._initial_coef(n_features, previous.shape[0])
        params = self._params(penalty, n_features, resolved.dtype, coef=coef,
                              class_weight=self.class_weight)
        result = self._run_distributed("logistic", params, resolved)[0]
        self.classes_ = result["classes"]
        n_outputs = 1 if self.classes_.size == 2 else self.classes_.size
        return self._set_fitted(result, n_features, n_outputs, np.dtype(resolved.dtype))

    def _dataset_scores(self, dataset) -> tuple[np.ndarray, list[dict]]:
        """Decision scores of a dataset, computed where it lies."""
        coef = self.coef_.toarray() if sp.issparse(self.coef_) else self.coef_  # sparsify()
        parts = self._apply_dataset("logistic", "scores", dataset, {
            "coef": coef, "intercept": self.intercept_, "classes": self.classes_})
        return np.vstack([part["scores"] for part in parts]), parts

    def _dataset_metrics(self, dataset, log_loss: bool = False) -> list[dict]:
        """Per-part sums a scorer needs (see ``_algorithms.logistic._apply.metrics``),
        computed where the labelled dataset lies; no row comes back."""
        check_is_fitted(self)
        coef = self.coef_.toarray() if sp.issparse(self.coef_) else self.coef_
        parts = self._apply_dataset("logistic", "metrics", dataset, {
            "coef": coef, "intercept": self.intercept_, "classes": self.classes_,
            "log_loss": log_loss})
        if any("confusion" not in part for part in parts):
            raise ValueError("the dataset has no label column to score against")
        return parts

    def decision_function(self, X):
        """Confidence scores: signed distances to the hyperplanes.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features) or dataset
            Samples, or a dataset (``read_csv`` & co.) scored where it lies.

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
            One column per class, or the positive class's score for binary problems.
        """
        check_is_fitted(self)
        if isinstance(X, Dataset):
            scores = self._dataset_scores(X)[0]
            return scores.ravel() if scores.shape[1] == 1 else scores
        return super().decision_function(X)

    def predict(self, X):
        """Class labels of the samples.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features) or dataset
            Samples, or a dataset (``read_csv`` & co.) predicted where it lies.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            Predicted class of each sample.
        """
        if isinstance(X, Dataset):
            scores = self.decision_function(X)
            indices = (scores > 0).astype(int) if scores.ndim == 1 else scores.argmax(axis=1)
            return self.classes_[indices]
        return super().predict(X)

    def score(self, X, y=None, sample_weight=None):
        """Mean accuracy on the given data and labels.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features) or dataset
            Samples, or a labelled dataset scored where it lies (then
            ``sample_weight`` must be None, and ``y`` None or the labels that
            ``X.labels()`` fetched).

        y : array-like of shape (n_samples,)
            True labels of ``X``.

        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        score : float
            Mean accuracy of ``self.predict(X)`` against ``y``.
        """
        if isinstance(X, Dataset):
            check_is_fitted(self)
            if sample_weight is not None:
                raise ValueError("sample_weight must be None when scoring a dataset")
            _check_dataset_labels(X, y, "scoring")
            parts = self._dataset_scores(X)[1]
            if any("correct" not in part for part in parts):
                raise ValueError("the dataset has no label column to score against")
            return sum(p["correct"] for p in parts) / sum(p["n_rows"] for p in parts)
        return super().score(X, y, sample_weight=sample_weight)


# scikit-learn's scorers on datasets: from the workers' sums where the metric allows.
install_scorers()
