"""The parameters of one k-means fit, built once by the estimator for data
in memory and for a dataset alike."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class KMeansParams:
    """What the workers and the coordinator need of a k-means fit.

    ``tol`` is scikit-learn's relative tolerance; the coordinator stops when
    the squared centre shift is at most ``tol * mean_variance``, the mean
    variance of the features: computed by the driver for data in memory, by
    the first rounds for a dataset (None until then). Initial centres are
    ``inits`` (centred on the data's mean), given for data in memory; a
    dataset's come from ``init`` (``'k-means++'``, ``'random'`` or
    ``'array'``: ``init_array``) drawn from each of ``seeds``.
    """

    n_clusters: int
    max_iter: int
    tol: float
    verbose: int
    n_features: int
    dtype: str
    mean_variance: np.floating | None = None
    inits: tuple[np.ndarray, ...] = ()
    init: str = "given"
    init_array: np.ndarray | None = None
    seeds: tuple[int, ...] = ()
    #: Per-iteration reports to the driver's callbacks: 0 none, 1 the
    #: inertia, 2 also the centres.
    report: int = 0

    @property
    def absolute_tol(self) -> float:
        """The bound on the squared centre shift."""
        if self.tol == 0:
            return 0.0
        return float(self.mean_variance * self.tol)
