"""scikit-learn's own sklearn/linear_model/tests/test_logistic.py, run against
ServerlessLogisticRegression and ServerlessLogisticRegressionCV; see
sklearn_copy.py and conftest.py (the listed exceptions)."""

from .sklearn_copy import load

load(globals())
