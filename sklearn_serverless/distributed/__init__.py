"""Run your own parallel algorithm across serverless functions.

The built-in estimators run through this module, and so can any algorithm
of the same shape: a worker per block of rows that answers named commands
with partial results, and a coordinator that combines them round by round.
See the user guide's page "Porting your own algorithm".

- :class:`Algorithm`: the worker class and the coordinator function;
- :class:`Rounds`: the coordinator's ``allreduce``, ``gather`` and ``log``;
- :class:`Context`: what a worker knows of the run (its rank, the workers);
- :func:`run`: one Lithops map, the same deadlines, errors and clean-up as
  an estimator's ``fit``; returns a :class:`RunResult`.

Worker code may use numpy, scipy and its own modules, never scikit-learn
(importing it costs each worker about a second).
"""

from .._worker._algorithm import Algorithm, Context, Worker
from .._worker._rounds import Rounds
from ._run import RunResult, run

__all__ = ["Algorithm", "Context", "Rounds", "RunResult", "Worker", "run"]
