"""scikit-learn's own sklearn/cluster/tests/test_k_means.py, run against
ServerlessKMeans; see sklearn_copy.py and conftest.py (the listed exceptions)."""

from .sklearn_copy import load

load(globals())
