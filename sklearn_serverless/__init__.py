"""scikit-learn estimators whose ``fit`` runs across serverless functions.

The estimators are imported lazily: workers import modules of this package,
and must not pay for importing scikit-learn (about one second each).
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["ServerlessColumnTransformer", "ServerlessKMeans", "ServerlessLogisticRegression",
           "ServerlessLogisticRegressionCV", "ServerlessMinMaxScaler", "ServerlessOneHotEncoder",
           "ServerlessSimpleImputer", "ServerlessStandardScaler",
           "config_context", "get_config", "last_cost", "read_csv", "read_npy", "read_parquet",
           "set_config", "shutdown_workers"]

_ESTIMATORS = {
    "ServerlessKMeans": ".cluster._kmeans",
    "ServerlessLogisticRegression": ".linear_model._logistic",
    "ServerlessLogisticRegressionCV": ".linear_model._logistic_cv",
    # Transformers fitted where the data lies.
    "ServerlessColumnTransformer": ".preprocessing",
    "ServerlessMinMaxScaler": ".preprocessing",
    "ServerlessOneHotEncoder": ".preprocessing",
    "ServerlessSimpleImputer": ".preprocessing",
    "ServerlessStandardScaler": ".preprocessing",
    # Datasets the workers read where they lie (with the driver's reads of
    # their row counts and labels installed).
    "read_csv": "._driver._rows",
    "read_npy": "._driver._rows",
    "read_parquet": "._driver._rows",
    # Package-wide settings (replacement of lost workers).
    "config_context": "._config",
    "get_config": "._config",
    "set_config": "._config",
    # What the last fit, run or prediction on a dataset cost.
    "last_cost": "._driver._cost",
    # Pools of workers that serve many fits.
    "shutdown_workers": "._driver._pool",
}


def __getattr__(name: str):
    if name in _ESTIMATORS:
        import importlib

        return getattr(importlib.import_module(_ESTIMATORS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
