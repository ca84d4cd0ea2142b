"""Cross-validated logistic regression in one run: every (fold, C,
l1_ratio) model is fitted side by side, each round evaluating all of them
in one pass over the rows (:mod:`._kernels`), their solvers driven in
lockstep (:mod:`._lbfgs_steps`, :mod:`._lockstep`, :mod:`._coordinator`);
the test folds are scored on the workers and the best model refitted on
every row, in the same run; a dataset's folds are computed where its rows
lie (:mod:`._dataset`). The objective, its penalty and the solvers are those of
:mod:`..logistic`. Nothing here imports scikit-learn.
"""

from ..._worker._algorithm import BuiltinAlgorithm
from ._coordinator import coordinate
from ._dataset import DatasetWorker, dataset_prologue
from ._worker import Worker

LOGISTIC_CV = BuiltinAlgorithm(
    "logistic_cv", worker=Worker, coordinate=coordinate,
    dataset_worker=DatasetWorker, dataset_prologue=dataset_prologue,
    setup_commands=frozenset())

__all__ = ["LOGISTIC_CV"]
