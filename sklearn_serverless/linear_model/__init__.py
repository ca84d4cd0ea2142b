"""Linear models whose ``fit`` runs across serverless functions."""

from ._logistic import ServerlessLogisticRegression
from ._logistic_cv import ServerlessLogisticRegressionCV

__all__ = ["ServerlessLogisticRegression", "ServerlessLogisticRegressionCV"]
