"""Lloyd's k-means, distributed: each worker assigns its rows and sums them
per cluster; the coordinator turns the sums into the new centres.

- :mod:`._kernels`: the Lloyd step on a block of rows (:mod:`._compiled`:
  the same compiled at build time, for every run of a round in one pass);
- :mod:`._batch`: the runs (initialisations) one round computes, in lockstep;
- :mod:`._worker`: a partition's side, chunk by chunk (work sharing), with
  the numpy kernel's round in :mod:`._numpy_step`;
- :mod:`._coordinator`: the iterations, empty clusters, convergence, the
  choice among the runs;
- :mod:`._dataset`: statistics and k-means|| on a dataset's raw rows;
- :mod:`._apply`: a fitted model on a dataset's rows (predict, transform).
"""

from ..._worker._algorithm import BuiltinAlgorithm
from . import _apply
from ._coordinator import coordinate
from ._dataset import DatasetWorker, dataset_prologue
from ._worker import Worker

KMEANS = BuiltinAlgorithm(
    "kmeans", worker=Worker, coordinate=coordinate, dataset_worker=DatasetWorker,
    dataset_prologue=dataset_prologue,
    outputs={"labels": _apply.labels, "distances": _apply.distances}, shares_work=True,
    # k-means||'s distances accumulate over 'update' rounds.
    setup_commands=frozenset({"prepare", "update"}),
)

__all__ = ["KMEANS"]
