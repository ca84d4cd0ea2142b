"""Load scikit-learn's own test modules, from the installed scikit-learn,
with the estimator import pointed at ours.

Each ``test_sklearn_*.py`` stub next to this file calls :func:`load` with
its own ``globals()``: the installed test module's source is read, its one
estimator import line is replaced by a line that imports the same names from
scikit-learn except the estimator, which comes from ``sklearn_serverless``
under scikit-learn's name, and the result runs in the stub's namespace, where
pytest collects it. The line count is kept, so tracebacks point at the right
lines of the installed file (compiled under its path). Nothing is written to
disk: a fresh machine with scikit-learn installed needs nothing else.
"""

from __future__ import annotations

import importlib.util

import pytest
import sklearn

#: The scikit-learn release whose tests (and EXCEPTIONS in conftest.py) these are.
SKLEARN_RELEASE = "1.9"

#: stub module -> (installed test module, scikit-learn's import line, ours).
SUITES = {
    "test_sklearn_k_means": (
        "sklearn.cluster.tests.test_k_means",
        "from sklearn.cluster import KMeans, MiniBatchKMeans, k_means, kmeans_plusplus",
        "from sklearn.cluster import MiniBatchKMeans, k_means, kmeans_plusplus; "
        "from sklearn_serverless import ServerlessKMeans as KMeans",
    ),
    "test_sklearn_logistic": (
        "sklearn.linear_model.tests.test_logistic",
        "from sklearn.linear_model import LogisticRegression, LogisticRegressionCV, "
        "SGDClassifier",
        "from sklearn.linear_model import SGDClassifier; "
        "from sklearn_serverless import ServerlessLogisticRegression as LogisticRegression, "
        "ServerlessLogisticRegressionCV as LogisticRegressionCV",
    ),
}


def source_of(stub: str) -> tuple[str, str]:
    """The rewritten source of the test module behind ``stub``, and its path."""
    module, theirs, ours = SUITES[stub]
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ImportError(f"{module} is not installed (scikit-learn ships it)")
    with open(spec.origin, encoding="utf-8") as file:
        lines = file.read().split("\n")
    found = [i for i, line in enumerate(lines) if line == theirs]
    if len(found) != 1:
        raise RuntimeError(
            f"{spec.origin}: expected the line {theirs!r} once, found it {len(found)} "
            "times; update SUITES in tests/sklearn_suite/sklearn_copy.py"
        )
    lines[found[0]] = ours
    return "\n".join(lines), spec.origin


def load(namespace: dict) -> None:
    """Run the rewritten test module of the stub whose globals are ``namespace``."""
    if not sklearn.__version__.startswith(SKLEARN_RELEASE + "."):
        pytest.skip(f"scikit-learn {sklearn.__version__} is installed; these are the tests "
                    f"of scikit-learn {SKLEARN_RELEASE}", allow_module_level=True)
    stub = namespace["__name__"].rpartition(".")[2]
    source, path = source_of(stub)
    exec(compile(source, path, "exec"), namespace)  # noqa: S102 - scikit-learn's tests
