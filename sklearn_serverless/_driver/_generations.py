"""Generations of workers: a fit outlives its functions.

A worker is lost when its function dies (killed, out of memory, a host
failure): Lithops reports its process killed, its lease in the store
lapses, or on this machine its process is gone. The driver then ends that
generation and starts the next one, which claims every slot, rebuilds each
worker's state and goes on from the rounds the store recorded (see
:mod:`sklearn_serverless._worker._loop`).
Before the platform's function time limit the coordinator hands the run over
to a next generation in the same way. An error a worker raises itself (bad
data, a bug) ends the fit at once: a new generation would raise it again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .._common._process import process_alive
from .._config import get_config
from .._state import StateStore

#: Lithops' default ``execution_timeout`` (seconds).
_LITHOPS_EXECUTION_TIMEOUT = 1800


class WorkerLost(Exception):
    """A worker of the current generation is gone."""

    def __init__(self, worker: int, cause: str):
        super().__init__(f"worker {worker} was lost: {cause}")
        self.worker, self.cause = worker, cause


@dataclass
class Generations:
    """The driver's account of a fit's generations, for ``timings_`` and
    the bound on replacements."""

    n_workers: int
    number: int = 0
    losses: dict = field(default_factory=dict)
    #: One entry per ended generation: why, at which round, and the seconds
    #: from its end to the next generation's first round.
    ends: list = field(default_factory=list)
    #: Progress entries (lines, reports) passed on to the user so far. A new
    #: generation's coordinator posts the same entries again, in the same
    #: order, to a log of its own: the driver passes on those past this count.
    shown: int = 0
    _ended_at: float | None = None

    def lost(self, error: WorkerLost) -> None:
        """Count a loss; the fit's error once a slot was lost too often."""
        limit = get_config()["max_replacements"]
        count = self.losses[error.worker] = self.losses.get(error.worker, 0) + 1
        if count > limit:
            raise RuntimeError(
                f"worker {error.worker} of {self.n_workers} was lost {count} time(s), more "
                f"than max_replacements={limit}: {error.cause}") from None
        self._end("lost", str(error))

    def handed_over(self) -> None:
        self._end("time limit", "handed over before the function time limit")

    def _end(self, why: str, cause: str) -> None:
        self.ends.append({"generation": self.number, "why": why, "cause": cause,
                          "resume_seconds": None})
        self._ended_at = time.perf_counter()
        self.number += 1

    def resumed(self) -> None:
        """The new generation ran its first round."""
        if self._ended_at is not None and self.ends:
            self.ends[-1]["resume_seconds"] = time.perf_counter() - self._ended_at
            self._ended_at = None


class LossWatch:
    """Finds lost workers of a generation: a lapsed lease, or (on this
    machine) a process that is gone."""

    def __init__(self, store: StateStore, generation: int, local: bool):
        self.store, self.generation, self.local = store, generation, local
        self.seen: set[int] = set()

    def check(self, finished: set[int]) -> WorkerLost | None:
        # The store's view belongs to this generation: its leases are this
        # generation's only (a replaced worker's beats are refused).
        leases = self.store.leases()
        for worker, pid in leases.items():
            self.seen.add(worker)
            if pid == 0:  # done: its call is ending
                finished = finished | {worker}
                continue
            if self.local and worker not in finished and not process_alive(pid):
                return WorkerLost(worker, f"its process {pid} is gone")
        for worker in sorted(self.seen - finished):
            if worker not in leases:
                return WorkerLost(worker, "it stopped renewing its lease")
        return None


def function_limit(config: dict) -> float | None:
    """Seconds Lithops lets one call run with this config: its
    ``execution_timeout`` (default 1800), and for a serverless backend at
    most the runtime's own timeout less 5 s (as Lithops clamps it)."""
    lithops = config.get("lithops", {})
    limit = float(lithops.get("execution_timeout", _LITHOPS_EXECUTION_TIMEOUT))
    backend = lithops.get("backend")
    runtime_timeout = config.get(backend, {}).get("runtime_timeout") if backend else None
    if runtime_timeout and backend != "localhost":
        limit = min(limit, float(runtime_timeout) - 5)
    return limit
