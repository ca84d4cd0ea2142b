"""Transformers fitted on a dataset: the workers compute per-column sums
(weighted counts, sums, squared deviations, minima, maxima) and category
counts of their rows; the coordinator combines them in worker order. One run
fits every transformer of a column transformer, in at most two rounds.
numpy only."""

from ..._worker._algorithm import BuiltinAlgorithm
from ._worker import DatasetWorker, coordinate

# A worker keeps nothing between rounds: a replacement replays no message.
PREPROCESSING = BuiltinAlgorithm("preprocessing", worker=DatasetWorker, coordinate=coordinate,
                                 dataset_worker=DatasetWorker, setup_commands=frozenset())

__all__ = ["PREPROCESSING"]
