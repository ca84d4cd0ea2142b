"""scikit-learn's own tests, run against our estimators (a package, so that its
conftest does not shadow tests/conftest.py, which tests import as ``conftest``)."""
