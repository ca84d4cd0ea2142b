"""The interface every state store implements, and what they share."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

#: Seconds a key or row may outlive a fit that could not clean up after itself.
KEY_TTL = 3600

STATE_MODES = ("lock_free", "locked")

#: Sums the partial results of a round, given in worker order.
Reduce = Callable[[list[np.ndarray]], np.ndarray]


class FitAborted(RuntimeError):
    """Raised in a worker when another party of the fit has failed."""


def sum_in_worker_order(parts: list[np.ndarray]) -> np.ndarray:
    """Sum partial results in the order given (worker id), so results never
    depend on which worker finished first."""
    total = np.array(parts[0], dtype=np.float64, copy=True)
    for part in parts[1:]:
        total += part
    return total


@dataclass(frozen=True)
class StoreSpec:
    """Everything a worker needs to open its view of one fit's shared state.

    ``kind`` is ``'sqlite'`` (``location`` is a database file) or ``'redis'``
    (``location`` is a redis URL, which may hold a password: it is left out of
    the repr). ``namespace`` is unique per fit. ``ca_data``: the PEM text of
    the CA bundle a TLS connection trusts. ``generation``: the generation of
    workers this view belongs to; the store refuses its writes once a later
    generation has begun (see :meth:`StateStore.new_generation`).
    """

    kind: str
    location: str = field(repr=False)
    namespace: str
    n_workers: int
    mode: str = "lock_free"
    timeout: float = 120.0
    ca_data: str | None = field(default=None, repr=False)
    generation: int = 0


class StateStore(ABC):
    """One fit's shared state, as seen by one party (a worker or the driver).

    Every round the coordinator (worker 0) :meth:`publish` es a message (the
    model and a command); every worker :meth:`fetch` es it, computes its
    partial result and :meth:`contribute` s it. The coordinator waits at the
    :meth:`barrier` until all ``n_workers`` have contributed and reads the sum
    with :meth:`aggregate`. ``mode='locked'`` adds every partial result into
    one accumulator under a lock; ``mode='lock_free'`` writes one slot per
    worker, summed by the reader in worker order. Every wait gives up after
    ``spec.timeout`` seconds; :meth:`abort` wakes every waiter with an error.
    The coordinator calls :meth:`barrier` right after its own
    :meth:`contribute`: a store may send the end of that contribution (Redis:
    the lock release) with the barrier's first wait.

    Fencing: every party belongs to a generation (``spec.generation``; the
    driver's view follows :meth:`new_generation`). Everything a worker writes
    or waits on (inboxes, partials, accumulators, locks, leases, check-ins,
    the log, the failure) belongs to its generation, and the writes to what
    generations share (messages, records) are refused once a later
    generation has begun: a worker of a replaced generation that wakes up
    late gets :class:`FitAborted`, and can neither pass for a live worker,
    take a message meant for its replacement nor add to a round twice.
    """

    def __init__(self, spec: StoreSpec):
        if spec.mode not in STATE_MODES:
            raise ValueError(f"state_mode must be one of {STATE_MODES}, got {spec.mode!r}")
        self.spec = spec
        self.n_workers = spec.n_workers
        self.timeout = spec.timeout
        #: The generation this view reads and writes.
        self.own_generation = spec.generation

    @abstractmethod
    def check_in(self, worker: int) -> None:
        """Record that ``worker`` has started; :class:`FitAborted` when the
        fit is already over (a worker that started too late)."""

    @abstractmethod
    def started(self) -> set[int]:
        """The workers that have checked in."""

    @abstractmethod
    def publish(self, round_: int, message: bytes, record: bytes | None = None,
                setup: bool = False) -> None:
        """Make ``message`` the message of ``round_`` for every worker.
        ``record``: the result of round ``round_ - 1`` (the log a replacement
        coordinator replays); ``setup``: keep the message for the whole fit
        (a replacement worker handles it again to rebuild its state)."""

    @abstractmethod
    def message(self, round_: int) -> bytes | None:
        """The message of ``round_`` if it is still kept (this round and the
        one before, and setup messages)."""

    @abstractmethod
    def records(self) -> list[bytes]:
        """The recorded results of rounds 0, 1, ... (see :meth:`publish`)."""

    @abstractmethod
    def setup_rounds(self) -> list[int]:
        """The rounds whose messages are kept for the whole fit, in order."""

    @abstractmethod
    def claim(self, worker: int, generation: int, token: str) -> bool:
        """Atomically make ``token`` the owner of ``worker``'s slot in
        ``generation``; False when another call owns it (a duplicate)."""

    @abstractmethod
    def beat(self, worker: int, generation: int, pid: int, lease: float) -> None:
        """This worker is alive for the next ``lease`` seconds."""

    @abstractmethod
    def leases(self) -> dict[int, int]:
        """``worker -> pid`` of every worker of this view's generation whose
        lease holds (pid 0: a worker whose call is ending)."""

    @abstractmethod
    def generation(self) -> int:
        """The current generation of workers (0 until :meth:`new_generation`)."""

    @abstractmethod
    def failure(self) -> str | None:
        """The message of the first :meth:`abort`, or None."""

    @abstractmethod
    def new_generation(self, generation: int) -> None:
        """Driver side: begin ``generation`` (this view now belongs to it).
        From then on the writes of earlier generations are refused; their
        round state is dropped; the messages, records and setup messages are
        kept. The new generation's log starts empty (its coordinator runs
        again from the start)."""

    @abstractmethod
    def fetch(self, round_: int, worker: int) -> bytes:
        """Wait for the message of ``round_``."""

    @abstractmethod
    def contribute(self, round_: int, worker: int, partial: np.ndarray,
                   slots: bool = False) -> None:
        """Add ``worker``'s partial result (float64) to ``round_``; with
        ``slots``, keep it in the worker's own slot whatever the mode (a
        gather: partials of any shape and dtype)."""

    @abstractmethod
    def barrier(self, round_: int, slots: bool = False) -> None:
        """Wait until every worker has contributed to ``round_``."""

    @abstractmethod
    def aggregate(self, round_: int, reduce: Reduce = sum_in_worker_order,
                  slots: bool = False):
        """Sum of the partial results of ``round_``; frees the round's state.
        ``lock_free`` (or ``slots``) reduces the workers' slots with
        ``reduce`` (default: :func:`sum_in_worker_order`); ``locked``
        returns the accumulator."""

    @abstractmethod
    def progress(self) -> int:
        """The last round published (-1 before the first): the driver's sign
        that the workers are alive."""

    @abstractmethod
    def post_log(self, line: str) -> None:
        """Append a progress line (``verbose``) for the driver to print."""

    @abstractmethod
    def read_log(self, start: int) -> list[str]:
        """Progress lines from number ``start`` on."""

    @abstractmethod
    def abort(self, message: str) -> None:
        """Record a failure and wake every party waiting on this fit."""

    @abstractmethod
    def cleanup(self) -> None:
        """Delete everything this fit wrote."""

    def close(self) -> None:  # noqa: B027 - optional for stores without a connection
        """Release the connection."""

    # shared helpers -------------------------------------------------------------------------

    def _timeout_error(self, what: str) -> TimeoutError:
        return TimeoutError(
            f"{what} within {self.timeout:g} s (state store timeout); "
            "a worker is probably dead or stuck"
        )

    def _replaced(self, current: int) -> FitAborted:
        return FitAborted(f"generation {self.own_generation} of workers was replaced by "
                          f"generation {current}")

    def _missing(self, present: set[int]) -> list[int]:
        return [w for w in range(self.n_workers) if w not in present]


class Backoff:
    """Sleeps for polling loops: short at first (a reply is usually near),
    then capped so an idle waiter costs little CPU."""

    def __init__(self, timeout: float, first: float = 5e-5, cap: float = 1e-3):
        self.deadline = time.monotonic() + timeout
        self.delay = first
        self.cap = cap

    def wait(self) -> bool:
        """Sleep once; False when the deadline has passed."""
        if time.monotonic() > self.deadline:
            return False
        time.sleep(self.delay)
        self.delay = min(self.delay * 2, self.cap)
        return True
