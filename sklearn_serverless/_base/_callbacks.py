"""scikit-learn's callbacks on a fit that runs in the functions: one task
per iteration, fed by the coordinator's reports while the fit runs."""

from __future__ import annotations

import inspect

from ..distributed._run import print_line


class IterationTasks:
    """The driver's ``progress`` for a fit with callbacks.

    Each report (:meth:`Rounds.report <sklearn_serverless.distributed.Rounds.report>`:
    the iteration's numbers and, when a callback takes ``fitted_estimator``,
    the model) ends the current iteration's task and begins the next;
    :meth:`close` ends the one that never ran. A report sent again by a new
    generation of workers is skipped; text lines are printed when the
    estimator is verbose. Subclasses name the task and turn a report's
    arrays into fitted attributes.

    Parameters
    ----------
    callback_ctx : CallbackContext
        The fit's callback context.
    estimator : estimator
        The estimator being fitted.
    data : dict
        What every hook receives besides the estimator (``X``, ``y``, ...).
    initial : object, default=None
        The model the first iteration starts from, given to :meth:`attributes`.
    """

    #: The name of each iteration's task.
    task_name = "iter"
    #: Whether the hook that begins a task gets the model too.
    attributes_on_begin = False

    def __init__(self, callback_ctx, estimator, data: dict, initial=None):
        self._ctx, self._estimator, self._data = callback_ctx, estimator, data
        self._seen = 0
        #: A callback takes ``fitted_estimator``: the reports must carry the model.
        self.wants_model = any(
            "fitted_estimator" in inspect.signature(getattr(callback, hook)).parameters
            for callback in callback_ctx._callbacks
            for hook in ("on_fit_task_begin", "on_fit_task_end"))
        self._task = self._begin(initial)

    def attributes(self, model) -> dict | None:
        """The fitted attributes of a report's model (None: no model)."""
        raise NotImplementedError

    def model(self, arrays: list):
        """The model a report carries (None when it carries none)."""
        return arrays[1] if len(arrays) > 1 else None

    def _begin(self, model):
        task = self._ctx.subcontext(task_name=self.task_name)
        extra = ({"reconstruction_attributes": self.attributes(model)}
                 if self.attributes_on_begin else {})
        task.call_on_fit_task_begin(estimator=self._estimator, **self._data, **extra)
        return task

    def __call__(self, entry) -> None:
        if isinstance(entry, str):
            if self._estimator.verbose:
                print_line(entry)
            return
        if entry.number < self._seen:
            return  # sent again by a new generation of workers
        self._seen += 1
        model = self.model(entry.arrays)
        self._task.call_on_fit_task_end(estimator=self._estimator, **self._data,
                                        reconstruction_attributes=self.attributes(model))
        self._task = self._begin(model)

    def close(self) -> None:
        """End the task begun after the last iteration (an empty task)."""
        self._task.call_on_fit_task_end(estimator=self._estimator)
