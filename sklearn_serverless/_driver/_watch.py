"""The driver's watch over a running fit: what ends it early when no worker
can say so itself. Lithops' localhost engine logs a failed job process and
leaves its futures pending (:class:`JobFailures`); workers that never start,
rounds that stop advancing or a failing Lithops storage (:class:`Watchdog`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from .._common._deadlines import Deadlines
from .._state import StateStore
from .._state._redis_url import redacted
from ._backends import Site

#: How often the driver checks that rounds still advance.
PROGRESS_SECONDS = 0.5
#: How long the Lithops storage may fail before the driver ends the fit.
STORAGE_GRACE_SECONDS = 5.0


class JobFailures(logging.Handler):
    """Lithops' localhost engine logs a job process that failed, then leaves
    its futures pending for ever; this handler notices it for one executor."""

    def __init__(self, executor_id: str):
        super().__init__(logging.ERROR)
        self.executor_id = executor_id
        self.watch(None)

    def watch(self, job_id: str | None) -> None:
        """Look out for this job (the executor's latest map) only."""
        self.tag = f"ExecutorID {self.executor_id} | JobID {job_id} "
        self.seen = False
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if self.tag in message and "Job process failed" in message:
            self.seen = True
            self.lines = [message]
        elif self.seen:
            self.lines.append(message)  # the process's output, logged just after

    def detail(self) -> str:
        return "\n".join(self.lines)[-2000:]

    def __enter__(self) -> JobFailures:
        self._logger = logging.getLogger("lithops.localhost")
        self._logger.addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        self._logger.removeHandler(self)


class Watchdog:
    """Notices a fit that cannot go on although no worker reported an error:
    workers that did not all start within the backend's start time (checked
    in through the store), or rounds that stopped advancing. Workers time out
    their own waits after ``timeout`` and report it; the stall check comes a
    little later, so that their error comes first (see :class:`Deadlines`)."""

    def __init__(self, store: StateStore, deadlines: Deadlines, site: Site, config: dict,
                 probe: Callable[[], None] | None = None):
        self.store, self.site, self.config, self.probe = store, site, config, probe
        self.storage_failing_since: float | None = None
        self.start_limit = deadlines.start
        self.limit = deadlines.stall
        self.last = -1
        self.all_started = False
        self.began = self.changed_at = self.checked_at = time.monotonic()

    def check(self) -> Exception | None:
        """The error that ends the fit, or None while it may go on."""
        now = time.monotonic()
        if now - self.checked_at < PROGRESS_SECONDS:
            return None
        self.checked_at = now
        try:
            if not self.all_started:
                started = self.store.started()
                self.all_started = len(started) == self.store.n_workers
                if not self.all_started and now - self.began > self.start_limit:
                    return self._not_started(started)
            latest = self.store.progress()
        except Exception:  # noqa: BLE001 - an unreachable store: the workers will say so
            latest = self.last
        if latest != self.last:
            self.last, self.changed_at = latest, now
        if self.probe is not None:
            problem = self._check_storage(now)
            if problem is not None:
                return problem
        if now - self.changed_at > self.limit:
            return TimeoutError(
                f"no round of the fit advanced for {self.limit:g} s and no worker "
                f"reported an error: the workers are stuck (round {self.last})"
            )
        return None

    def _check_storage(self, now: float) -> Exception | None:
        """The workers return their results through the Lithops storage (and
        Lithops' own monitor only logs its failures): a storage that fails
        for a while ends the fit with its error."""
        try:
            self.probe()
        except Exception as exc:  # noqa: BLE001 - reported below once it persists
            if self.storage_failing_since is None:
                self.storage_failing_since = now
            elif now - self.storage_failing_since > STORAGE_GRACE_SECONDS:
                return RuntimeError(
                    f"the Lithops storage ({self.site.storage}) has failed for "
                    f"{now - self.storage_failing_since:.0f} s, so the workers cannot "
                    f"return their results: {type(exc).__name__}: {redacted(str(exc))}"
                )
        else:
            self.storage_failing_since = None
        return None

    def _not_started(self, started: set[int]) -> TimeoutError:
        n = self.store.n_workers
        missing = [w for w in range(n) if w not in started]
        shown = ", ".join(map(str, missing[:10])) + (", ..." if len(missing) > 10 else "")
        compute = self.site.compute
        if self.site.local_compute:
            limit = self.config.get(compute, {}).get("worker_processes")
            setting = f"Lithops' localhost worker_processes={limit}"
        else:
            limit = self.config.get(compute, {}).get("max_workers")
            setting = (f"Lithops' {compute} max_workers={limit}" if limit is not None else
                       f"the {compute} account's concurrency limit (e.g. Lambda reserved "
                       "concurrency, a Kubernetes quota)")
        return TimeoutError(
            f"only {len(started)} of {n} workers started within {self.start_limit:g} s "
            f"(not started: {shown}); the workers of a fit all run at once and wait for "
            f"each other, so the likely cause is a concurrency limit below n_workers={n}: "
            f"{setting}. Lower n_workers or raise the limit."
        )


def storage_probe(fexec) -> Callable[[], None]:
    """One cheap request to the fit's Lithops storage."""
    from lithops import constants

    prefix = f"{constants.JOBS_PREFIX}/{fexec.executor_id}-"

    def probe() -> None:
        fexec.storage.list_keys(fexec.internal_storage.bucket, prefix)

    return probe
