"""The coordinator's side of a round, and what travels in one.

A message is ``[kind, command, *arrays]``: ``kind`` says how the round's
partials are combined (summed, or gathered in worker order into slots
whatever the state mode), ``command`` is the command's name as bytes.
Each round's result is recorded with the next round's message, so that a
new generation's coordinator can replay ``coordinate`` from the records.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass

import numpy as np

from .._common._deadlines import HANDOVER_MARGIN
from .._state import StateStore, sum_in_worker_order
from .._state._codec import decode_arrays, encode_arrays
from ._sharing import fold_partials, fold_table

STOP = "stop"
#: Kinds of round: how the partials are combined; a hand-over ends a generation.
_SUM, _GATHER, _STOP, _HANDOVER = 0, 1, 2, 3

#: A log entry starting with this character is a report (arrays), not a line.
_REPORT = "\x1e"

#: Columns of the per-round time breakdown, as the paper measured it.
PHASES = ("compute", "publish", "barrier", "aggregate")


class HandedOver(BaseException):
    """The coordinator ended this generation at a round boundary.

    A control-flow signal, not an error: it derives from ``BaseException``
    so that an algorithm's ``except Exception`` cannot swallow it."""


class _Clock:
    """Per-round seconds spent in each phase, for the fitted ``timings_``."""

    def __init__(self, load: float):
        self.load = load
        self.rows: list[list[float]] = []
        self.helped: list[int] = []
        self.cpu: list[float] = []  # the process's CPU seconds in each round
        self._cpu = time.process_time()

    def add(self, compute: float, publish: float, barrier: float, aggregate: float,
            helped: int = 0) -> None:
        self.rows.append([compute, publish, barrier, aggregate])
        self.helped.append(helped)
        now = time.process_time()
        self.cpu.append(now - self._cpu)
        self._cpu = now

    def as_dict(self) -> dict:
        table = np.array(self.rows, dtype=np.float64).reshape(-1, len(PHASES))
        return {"load": self.load, "rounds": table,
                "helped": np.array(self.helped, dtype=np.int64),
                "cpu": np.array(self.cpu, dtype=np.float64)}


def _message(kind: int, command: str, arrays) -> bytes:
    name = np.frombuffer(command.encode(), dtype=np.uint8)
    return encode_arrays([np.array([kind], dtype=np.int64), name, *arrays])


class Rounds:
    """The coordinator's handle on the workers, given to ``coordinate``.

    Every call of :meth:`allreduce` or :meth:`gather` is one round: the
    command and its arrays go to every worker (the coordinator included),
    each answers with its partial result. In ``state_mode='lock_free'``
    partials are summed in worker order, never in arrival order, so that a
    result does not depend on timing; :meth:`gather` returns them in worker
    order in both modes.

    Built by the runtime on worker 0, never by your code.

    Parameters
    ----------
    store : StateStore
        Worker 0's connection to the run's shared state.
    worker : object
        Worker 0's own worker, which answers each command too.
    clock : object
        Where the time of each round's phases is recorded.
    shares_work : bool, default=False
        Partials are chunk tables (the built-in k-means).
    records : list of bytes, default=()
        Results of the rounds a previous generation of workers ran: they are
        answered from these, without a round, until they run out.
    started : float, default=None
        When this worker started (``time.perf_counter``), for ``limit``.
    limit : float, default=None
        The platform's function time limit in seconds: before it, the run
        is handed over to a new generation at a round boundary.
    setup_commands : frozenset of str, default=None
        Commands whose messages the store keeps for replacement workers;
        None keeps every message.
    """

    def __init__(self, store: StateStore, worker, clock: _Clock, shares_work: bool = False,
                 records: list[bytes] = (), started: float | None = None,
                 limit: float | None = None, setup_commands: frozenset | None = None):
        self.store, self.worker, self.clock = store, worker, clock
        self.shares_work = shares_work
        self.count = 0
        self._last_end: float | None = None
        self._final: list[np.ndarray] = []
        #: Results of the rounds a previous generation ran, answered from the log.
        self._replay = list(records)
        self._record: bytes | None = None  # this round's result, sent with the next message
        self._started = started if started is not None else time.perf_counter()
        self._limit = limit
        self._longest = 0.0
        self._live = 0  # rounds this generation ran
        self._setup = setup_commands
        self._reports = 0

    @property
    def n_workers(self) -> int:
        """Number of workers of the run."""
        return self.store.n_workers

    def allreduce(self, command: str, *arrays: np.ndarray) -> np.ndarray:
        """Sum every worker's answer to a command.

        Parameters
        ----------
        command : str
            The command each worker's ``handle`` answers.
        *arrays : ndarray
            Numeric arrays sent to every worker with the command.

        Returns
        -------
        total : ndarray
            The sum of the partials, float64, of their common shape (every
            worker must answer with the same shape); added in worker order
            in ``state_mode='lock_free'``.
        """
        return self._round(_SUM, command, arrays)

    def gather(self, command: str, *arrays: np.ndarray) -> list[np.ndarray]:
        """Collect every worker's answer to a command.

        Parameters
        ----------
        command : str
            The command each worker's ``handle`` answers.
        *arrays : ndarray
            Numeric arrays sent to every worker with the command.

        Returns
        -------
        partials : list of ndarray
            One numeric array per worker, in worker order, each of the shape
            and dtype that worker answered with.
        """
        return self._round(_GATHER, command, arrays)

    def log(self, line: str) -> None:
        """Send a progress line to the driver.

        The driver prints it while the run goes on when ``run`` was called
        with ``verbose=True`` (the estimators' ``verbose`` output).

        Parameters
        ----------
        line : str
            The line, without its newline.
        """
        self.store.post_log(line)

    def report(self, *arrays: np.ndarray) -> None:
        """Send numeric arrays to the driver (per-iteration data for callbacks).

        Reports travel in order with the :meth:`log` lines, as raw arrays
        (never pickle). Each is numbered: a new generation, which runs
        ``coordinate`` again from the start, sends the same reports again
        and the driver keeps the first of each number.

        Parameters
        ----------
        *arrays : ndarray
            Plain numeric arrays.
        """
        blob = encode_arrays([np.array([self._reports], dtype=np.int64), *arrays])
        self._reports += 1
        self.store.post_log(_REPORT + base64.b64encode(blob).decode("ascii"))

    def finish(self, *arrays: np.ndarray) -> None:
        """Set the arrays every worker's ``result`` gets when the run ends.

        When ``coordinate`` returns, every worker's ``result(*arrays)`` is
        called with these arrays (for example, which of several candidate
        models to keep); without a call, ``result()`` gets none.

        Parameters
        ----------
        *arrays : ndarray
            Numeric arrays for every worker.
        """
        self._final = [np.asarray(a) for a in arrays]

    def _round(self, kind: int, command: str, arrays):
        if self.count < len(self._replay):
            self.count += 1
            recorded = decode_arrays(self._replay[self.count - 1])
            return recorded if kind == _GATHER else recorded[0]
        self._hand_over_if_late()
        t0 = time.perf_counter()
        if self._last_end is not None:
            # The coordinator's model update since the last round is aggregation work.
            self.clock.rows[-1][3] += t0 - self._last_end
        arrays = [np.asarray(a) for a in arrays]
        self.store.publish(self.count, _message(kind, command, arrays), self._record,
                           self._setup is None or command in self._setup)
        t1 = time.perf_counter()
        partial = self.worker.handle(command, list(arrays))
        t2 = time.perf_counter()
        gather = kind == _GATHER
        fold = list if gather else fold_partials if self.shares_work else sum_in_worker_order
        if self.store.n_workers == 1:
            # Nobody to wait for: the store's round trip would return this partial.
            t3 = t4 = time.perf_counter()
            total = _alone(self.count, partial, fold, self.store.spec.mode, gather,
                           self.shares_work)
        else:
            _contribute(self.store, self.count, 0, partial, self.shares_work and not gather,
                        gather)
            t3 = time.perf_counter()
            self.store.barrier(self.count, slots=gather)
            t4 = time.perf_counter()
            total = self.store.aggregate(self.count, fold, slots=gather)
        self._record = encode_arrays(total if gather else [total])
        t5 = time.perf_counter()
        self.clock.add(t2 - t1, (t1 - t0) + (t3 - t2), t4 - t3, t5 - t4,
                       _helped(partial) if self.shares_work else 0)
        if self._live:  # a generation's first round waits for its workers' start
            self._longest = max(self._longest, t5 - t0)
        self._live += 1
        self._last_end = t5
        self.count += 1
        return total

    def _hand_over_if_late(self) -> None:
        """Before the platform's time limit, end this generation at this
        round boundary: a new one goes on from the records."""
        if self._limit is None:
            return
        # Room for the round about to run and its successor's start, and for
        # the platform's clock starting before this worker's.
        margin = 2 * self._longest + HANDOVER_MARGIN
        if time.perf_counter() - self._started + margin > self._limit:
            self.store.publish(self.count, _message(_HANDOVER, STOP, []), self._record)
            raise HandedOver

    def _stop(self) -> list[np.ndarray]:
        """End the run for every worker (the runtime's call, after
        ``coordinate``) and return what :meth:`finish` set: the arrays each
        worker's ``result`` gets."""
        self.store.publish(self.count, _message(_STOP, STOP, self._final), self._record)
        return list(self._final)


@dataclass(frozen=True)
class Report:
    """A coordinator's :meth:`Rounds.report`, as the driver's ``progress`` gets it."""

    number: int
    arrays: list


def read_report(entry: str) -> Report | None:
    """The report a log entry carries, or None for a text line."""
    if not entry.startswith(_REPORT):
        return None
    number, *arrays = decode_arrays(base64.b64decode(entry[1:]))
    return Report(int(number[0]), arrays)


def _contribute(store: StateStore, round_: int, worker: int, partial, table: bool,
                gather: bool) -> None:
    if partial is None:
        raise TypeError(f"worker {worker} answered round {round_} with None, not an array")
    partial = np.asarray(partial)
    if gather:
        store.contribute(round_, worker, partial, slots=True)
        return
    if table and store.spec.mode == "locked":
        partial = fold_table(partial)  # one accumulator: its rows are added as one
    store.contribute(round_, worker, partial.astype(np.float64, copy=False))


def _alone(round_: int, partial, fold, mode: str, gather: bool, table: bool):
    """What the store's aggregate returns when one worker contributed
    ``partial``: the same checks, the same reduction, the same bits."""
    if partial is None:
        raise TypeError(f"worker 0 answered round {round_} with None, not an array")
    partial = np.asarray(partial)
    if gather:
        return [partial.copy()]
    if mode == "locked":  # one accumulator: a copy of the partial, tables folded
        return (fold_table(partial) if table else partial).astype(np.float64)
    return fold([partial.astype(np.float64, copy=False)])


def _helped(partial) -> int:
    """Chunks of other workers' rows in a partial table."""
    return partial.shape[0] - 1 if isinstance(partial, np.ndarray) and partial.ndim == 2 else 0
