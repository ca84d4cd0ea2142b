"""Logistic regression, distributed: each worker evaluates the loss, its
gradient and (for the Newton solvers) its Hessian or Hessian-vector
products on its rows; the coordinator runs the optimiser on the sums.

As dask-glm splits it: :mod:`._kernels` (sums over one partition),
:mod:`._worker` (the worker that serves them, one command per round),
:mod:`._objective` (the coordinator's penalised objective), one module per
solver, chosen by :mod:`._coordinator`; :mod:`._penalty` reads scikit-learn's
penalty parameters; :mod:`._dataset` the first rounds on a dataset;
:mod:`._apply` a fitted model on a dataset's rows. Nothing here imports
scikit-learn.
"""

from ..._worker._algorithm import BuiltinAlgorithm
from . import _apply
from ._coordinator import coordinate
from ._dataset import DatasetWorker, dataset_prologue
from ._worker import Worker

LOGISTIC = BuiltinAlgorithm(
    "logistic", worker=Worker, coordinate=coordinate, dataset_worker=DatasetWorker,
    dataset_prologue=dataset_prologue, outputs={"scores": _apply.scores, "metrics": _apply.metrics},
    setup_commands=frozenset({"prepare"}),
)

__all__ = ["LOGISTIC"]
