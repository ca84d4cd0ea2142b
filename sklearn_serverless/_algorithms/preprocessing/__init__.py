"""Transformers fitted on a dataset: the workers compute per-column sums
(weighted counts, sums, squared deviations, minima, maxima) and category
counts of their rows; the coordinator combines them in worker order. One run
fits every transformer of a column transformer. numpy only."""

from ..._worker._algorithm import BuiltinAlgorithm
from ._worker import DatasetWorker, coordinate

# Every message is replayed to a replacement worker (setup_commands=None): the
# category counts of a 'distinct' round are kept for the next 'counts' round.
PREPROCESSING = BuiltinAlgorithm("preprocessing", worker=DatasetWorker, coordinate=coordinate,
                                 dataset_worker=DatasetWorker)

__all__ = ["PREPROCESSING"]
