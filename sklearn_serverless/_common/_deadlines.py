"""Every limit of a fit, derived from its one ``timeout`` parameter.

``timeout`` is how long any single wait may last. The other limits follow
from it so that the error a user sees names the first cause: a worker's
own wait fails first and reports what it waited for; the driver's checks
come later and catch what no worker can report (workers that never
started, a stuck process, a dead storage).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

#: Seconds any single wait of a fit may last, by default (``timeout``).
DEFAULT_TIMEOUT = 120.0

#: Seconds within which every worker must have started, by kind of backend:
#: what a cold start costs there, with room for a slow one. Function services
#: start a Python container in 0.2-3 s (10 s for a large image); container
#: services and Kubernetes pull and schedule a pod in 5-60 s; virtual machines
#: boot in minutes. A fit whose workers do not all start in time fails at once
#: instead of waiting ``timeout`` at its first barrier (the usual cause: a
#: concurrency limit below ``n_workers``).
START_SECONDS = {"localhost": 30.0, "functions": 60.0, "containers": 120.0,
                 "machines": 600.0}
#: On localhost the workers' processes start on this machine's cores, each
#: with ~0.2 s of CPU (a 64-worker map took 6.5 s on 2 cores): the start
#: time allows this many seconds per worker and core at least.
LOCAL_START_PER_WORKER = 0.5
#: Seconds the coordinator keeps, besides twice its longest round, between
#: a hand-over and the platform's function time limit: the platform's clock
#: starts before the worker's.
HANDOVER_MARGIN = 1.5

#: Pools outlive fits, so their limits do not follow one fit's ``timeout``.
#: Seconds a pool's heartbeat key (the owner's, a worker's) lives unless
#: renewed; each is renewed four times as often.
POOL_HEARTBEAT = 10.0
#: A pool channel's Redis socket reads outlast its longest blocking wait.
POOL_SOCKET = 30.0
#: On localhost every worker is a process of this machine, and all of them run
#: at once for the whole fit: a fit may have at most this many per core (64
#: workers on 2 cores ran; 1,000 started 1,600 processes and never ended).
LOCAL_WORKERS_PER_CORE = 32


def max_local_workers() -> int:
    """The most workers a fit may start on this machine."""
    return LOCAL_WORKERS_PER_CORE * _cores()


@dataclass(frozen=True)
class Deadlines:
    """The limits of one fit (seconds)."""

    #: Any single wait of a worker: barrier, lock, message, its data file.
    wait: float
    #: Every worker checked in: the backend's start time, at most half of
    #: ``wait`` (at least 5 s: a later start is reported by its peers' waits);
    #: on localhost at least :data:`LOCAL_START_PER_WORKER` per worker and core.
    start: float
    #: No round advanced and no worker reported an error: the driver stops
    #: the fit. Later than ``wait``, so that a worker's own error comes first.
    stall: float
    #: After a worker failed: how long the driver waits for the others.
    stragglers: float
    #: A call applying a model to its rows (Lithops' per-call limit), and the
    #: driver's wait for all of them (a call whose process died gives no status).
    apply_call: int
    apply_all: float
    #: A worker renews its lease five times per lease: one that stops for a
    #: lease is lost (its function died) and is replaced.
    lease: float
    #: The Redis client's socket reads outlast a blocking wait of ``wait``.
    socket: float
    connect: float

    @classmethod
    def from_timeout(cls, timeout: float, backend_kind: str = "localhost",
                     n_workers: int = 1) -> Deadlines:
        start = min(START_SECONDS[backend_kind], max(timeout / 2, 5.0))
        if backend_kind == "localhost":
            start = max(start, LOCAL_START_PER_WORKER * n_workers / _cores())
        return cls(
            wait=timeout,
            start=start,
            stall=1.5 * timeout + 5,
            stragglers=timeout,
            apply_call=max(1, int(timeout)),
            apply_all=timeout + 30,
            lease=min(10.0, max(5.0, timeout / 12)),
            socket=timeout + 10,
            connect=min(timeout, 10),
        )


def _cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1
