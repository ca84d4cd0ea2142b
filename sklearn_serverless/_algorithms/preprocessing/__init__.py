"""Transformers fitted on a dataset: the workers compute per-column sums
(weighted counts, sums, squared deviations, minima, maxima) and category
counts of their rows; the coordinator combines them in worker order. One run
fits every transformer of a column transformer. numpy only."""

from ..._worker._algorithm import Algorithm
from ._worker import DatasetWorker, coordinate

PREPROCESSING = Algorithm("preprocessing", worker=DatasetWorker, coordinate=coordinate,
                          dataset_worker=DatasetWorker)

__all__ = ["PREPROCESSING"]
