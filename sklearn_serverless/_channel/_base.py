"""How a pool's owner and its workers talk: one interface, two channels.

A pool (:mod:`._pool`) sends each of its long-lived workers jobs (a job is
a pickled :class:`~sklearn_serverless._worker._loop.WorkerTask`
with the function that runs it) and waits for their results. What carries
them depends on where the workers run:

- ``'fifo'`` (:mod:`._pool_fifo`): workers on this machine with this
  machine's files (Lithops localhost compute and storage). Payloads are
  files of a private folder, job ids and "done" notes travel through FIFOs,
  and a worker checks its owner's pid.
- ``'cloud'`` (:mod:`._pool_cloud`): workers anywhere else (cloud
  functions, or localhost compute with an object storage). Payloads are
  objects in the Lithops storage under a prefix of the pool's own, job ids
  and "done" notes travel through Redis lists (the fit's Redis server) that
  the other side waits on with ``BLPOP``, and the owner proves it is alive
  with a heartbeat key that it renews while the pool lives.

Each channel has an owner side (:class:`OwnerChannel`) and a worker side
(:class:`WorkerChannel`), reached from the worker's end of the channel
(:class:`Endpoint`, what a pool call receives). Redis only ever holds job
ids and status bytes: the code and the results of a fit travel as files or
storage objects.
"""

from __future__ import annotations

import abc

#: What the owner sends a worker instead of a job id to end it.
STOP = "stop"


class OwnerChannel(abc.ABC):
    """The owner's side of a pool's channel."""

    @abc.abstractmethod
    def endpoint(self, slot: int) -> Endpoint:
        """What the pool call of ``slot`` receives to reach this channel."""

    @abc.abstractmethod
    def send(self, job: int, bodies: list[bytes]) -> None:
        """Hand job ``job`` to slots ``0..len(bodies)-1``, slot i ``bodies[i]``."""

    @abc.abstractmethod
    def done(self, seconds: float) -> list[tuple[int, int]]:
        """``(job, slot)`` of results posted since the last call; waits up to
        ``seconds`` for one when there is none."""

    @abc.abstractmethod
    def take(self, job: int, slot: int) -> bytes:
        """A posted result's body (which then leaves the channel)."""

    def clear(self, job: int, n_slots: int) -> None:  # noqa: B027 - optional step
        """Every slot's result of ``job`` was taken: delete what is left of it."""

    def heartbeats(self) -> dict[int, bool]:
        """Whether each worker that has a heartbeat of its own renews it
        (slots not yet seen alive left out); none by default."""
        return {}

    @abc.abstractmethod
    def pids(self) -> dict[int, int]:
        """The workers' processes on this machine, by slot, as far as known."""

    @abc.abstractmethod
    def stop(self, n_slots: int) -> None:
        """Ask every worker to end after its current job (best effort)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Delete everything the channel holds. Best effort; every step runs."""


class Endpoint(abc.ABC):
    """The worker's end of a channel, as a pool call receives it (pickled)."""

    @abc.abstractmethod
    def connect(self, storage) -> WorkerChannel:
        """Open it in the worker (``storage``: Lithops' ``Storage`` of the call)."""


class WorkerChannel(abc.ABC):
    """A pool worker's side of its channel."""

    @abc.abstractmethod
    def next_job(self, seconds: float) -> str | None:
        """The next job id (or :data:`STOP`), waiting up to ``seconds``; None
        when none came."""

    @abc.abstractmethod
    def owner_alive(self) -> bool:
        """The owner still runs (a worker whose owner is gone ends)."""

    @abc.abstractmethod
    def read_job(self, job: str) -> bytes:
        """The body of a job sent to this slot."""

    @abc.abstractmethod
    def post(self, job: str, body: bytes) -> None:
        """Hand the job's result to the owner and tell it."""

    @abc.abstractmethod
    def close(self, owner_gone: bool) -> None:
        """The worker ends; ``owner_gone``: nobody will clean up after it."""
