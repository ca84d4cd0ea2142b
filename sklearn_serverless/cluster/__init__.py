"""Clustering estimators whose ``fit`` runs across serverless functions."""

from ._kmeans import ServerlessKMeans

__all__ = ["ServerlessKMeans"]
