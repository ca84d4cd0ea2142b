"""Many sequential solvers driven in lockstep by one batched evaluation.

Each solver (scipy's L-BFGS-B, OWL-QN, or a warm-started sequence of them)
runs unchanged in its own thread and asks for its objective through
:meth:`Lockstep.evaluate`, which blocks. The coordinator's thread waits
until every solver still running has asked (or finished), evaluates all the
requests in one batch (one round of the workers) and hands each its answer.
A solver that finished simply stops asking: the batch shrinks.

The batches do not depend on thread timing: a round starts only when every
live solver waits, so each batch holds exactly the models whose previous
answer they have consumed; requests are ordered by solver number.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any


class _Aborted(Exception):
    """Raised in a solver's thread when another solver failed."""


class Lockstep:
    """Run ``tasks`` (callables taking the lockstep's ``evaluate``) in threads
    whose evaluations are batched by ``evaluate_batch(requests) -> answers``
    (lists in the same order), called in the caller's thread."""

    def __init__(self, evaluate_batch: Callable[[list], list]):
        self._evaluate_batch = evaluate_batch
        self._cond = threading.Condition()
        self._pending: dict[int, Any] = {}
        self._answers: dict[int, Any] = {}
        self._running = 0
        self._error: BaseException | None = None
        self.n_batches = 0
        self.n_evaluations = 0

    def _ask(self, task: int, request) -> Any:
        with self._cond:
            if self._error is not None:
                raise _Aborted
            self._pending[task] = request
            self._cond.notify_all()
            while task not in self._answers:
                if self._error is not None:
                    raise _Aborted
                self._cond.wait()
            return self._answers.pop(task)

    def run(self, tasks: Sequence[Callable[[Callable[[Any], Any]], Any]]) -> list:
        """Every task's return value, in task order."""
        results: list = [None] * len(tasks)

        def body(index: int, task) -> None:
            try:
                results[index] = task(lambda request: self._ask(index, request))
            except _Aborted:
                pass
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                with self._cond:
                    if self._error is None:
                        self._error = exc
            finally:
                with self._cond:
                    self._running -= 1
                    self._cond.notify_all()

        self._running = len(tasks)
        threads = [threading.Thread(target=body, args=(i, task), daemon=True,
                                    name=f"lockstep-{i}") for i, task in enumerate(tasks)]
        for thread in threads:
            thread.start()
        try:
            while True:
                with self._cond:
                    while (self._error is None and self._running
                           and len(self._pending) < self._running):
                        self._cond.wait()
                    if self._error is not None or not self._running:
                        break
                    order = sorted(self._pending)
                    requests = [self._pending.pop(i) for i in order]
                try:
                    answers = self._evaluate_batch(requests)
                except BaseException as exc:
                    with self._cond:
                        self._error = exc
                        self._cond.notify_all()
                    raise
                self.n_batches += 1
                self.n_evaluations += len(requests)
                with self._cond:
                    self._answers.update(zip(order, answers, strict=True))
                    self._cond.notify_all()
        finally:
            for thread in threads:
                thread.join()
        if self._error is not None:
            raise self._error
        return results
