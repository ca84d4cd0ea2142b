"""The built-in distributed algorithms, one folder each, and their registry.

What runs inside the workers lives here: nothing imports scikit-learn
(importing it costs each worker about a second); numpy, scipy and the state
store client only. Each algorithm is an
:class:`~sklearn_serverless.distributed.Algorithm`; the estimators find
theirs in :data:`ALGORITHMS` by name.
"""

from __future__ import annotations

from .._worker._algorithm import Algorithm
from .kmeans import KMEANS
from .logistic import LOGISTIC
from .logistic_cv import LOGISTIC_CV
from .preprocessing import PREPROCESSING

#: Every built-in algorithm by name (tests replace an entry to inject faults).
ALGORITHMS: dict[str, Algorithm] = {
    algorithm.name: algorithm for algorithm in (KMEANS, LOGISTIC, LOGISTIC_CV, PREPROCESSING)
}

__all__ = ["ALGORITHMS"]
