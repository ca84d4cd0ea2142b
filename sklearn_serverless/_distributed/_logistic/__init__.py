"""Logistic regression, distributed: each worker evaluates the loss, its
gradient and (for the Newton solvers) its Hessian or Hessian-vector
products on its rows; the coordinator runs the optimiser on the sums.

As dask-glm splits it: :mod:`._kernels` (sums over one partition),
:mod:`._worker` (the :class:`Worker` that serves them, one command per
round), :mod:`._objective` (the coordinator's penalised objective) and one
module per solver, chosen by :mod:`._coordinator`. Nothing here imports
scikit-learn.
"""

from ._coordinator import coordinate
from ._worker import Worker

__all__ = ["Worker", "coordinate"]
