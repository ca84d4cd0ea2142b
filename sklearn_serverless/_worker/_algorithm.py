"""What a distributed algorithm is: a worker built from its rows, which
answers named commands with partial results, and a coordinator that runs the
algorithm through :class:`~sklearn_serverless.distributed.Rounds`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, Protocol

import numpy as np


@dataclass(frozen=True)
class Context:
    """What a worker knows of the run it is part of.

    Built by the runtime and given to the algorithm's ``worker``; its
    parameters are also its attributes.

    Parameters
    ----------
    rank : int
        This worker's number, from 0; worker 0 also runs the coordinator.
        Workers own contiguous blocks of rows in rank order.
    n_workers : int
        Number of workers of the run.
    """

    rank: int
    n_workers: int


class Worker(Protocol):
    """The worker side of an algorithm, built once per worker from its rows.

    ``handle(command, arrays)`` answers one command of the coordinator (a
    string of the algorithm's own: the runtime sends none) with this
    worker's partial result, an array of any shape (the same shape on every
    worker for :meth:`Rounds.allreduce`). Two methods are optional:
    ``result(*arrays)``, this worker's share of what the run returns (a dict;
    ``arrays`` are what ``coordinate`` gave :meth:`Rounds.finish`, none
    otherwise), called once when ``coordinate`` has returned; and
    ``close()``, called last, whatever happened, to release what the worker
    holds.

    Parameters
    ----------
    data : dict
        The worker's block of every array of the run, by name.
    params : object
        The run's ``params``, the same on every worker.
    context : Context
        The worker's rank and the number of workers.
    """

    def __init__(self, data: dict, params: Any, context: Context) -> None: ...

    def handle(self, command: str, arrays: list[np.ndarray]) -> np.ndarray:
        """Answer one command of the coordinator with this worker's partial.

        Parameters
        ----------
        command : str
            The command's name, as ``coordinate`` sent it.
        arrays : list of ndarray
            The arrays sent with the command.

        Returns
        -------
        partial : ndarray
            This worker's partial result.
        """
        ...


@dataclass(frozen=True)
class Algorithm:
    """A parallel algorithm, to run across serverless functions.

    :func:`~sklearn_serverless.distributed.run` runs it: one worker per block
    of rows, built by ``worker``, and a coordinator, ``coordinate``, on
    worker 0.

    Parameters
    ----------
    name : str
        A short name, for messages.
    worker : callable
        ``worker(data, params, context)`` builds one worker from its rows:
        ``data`` is a dict of row-aligned arrays (``'X'`` and, for a dataset
        with a label column, ``'y'``), ``context`` a :class:`Context`. The
        object it returns answers ``handle(command, arrays) -> partial``
        (see :class:`Worker`).
    coordinate : callable
        ``coordinate(rounds, params) -> dict`` runs on worker 0 and drives
        the rounds; its dict, with worker 0's ``result()``, is the run's
        result.
    setup_commands : frozenset of str, default=None
        Which messages a replacement worker handles again to rebuild its
        state after a worker was lost (see the user guide's page on
        faults). None (the default) replays every message of the run, in
        order, so that a worker that keeps state between rounds is rebuilt
        as it was; a set replays only those commands' messages, then the
        last message, which is cheaper for a long run whose worker state
        depends on few commands (the built-in estimators declare theirs).
    """

    name: str
    worker: Callable[..., Any]
    coordinate: Callable[..., dict]
    setup_commands: frozenset | None = None

    def __post_init__(self):
        if self.setup_commands is not None:
            object.__setattr__(self, "setup_commands", frozenset(self.setup_commands))

    #: Built-in algorithms only (:class:`BuiltinAlgorithm`); constant here.
    dataset_worker: ClassVar = None
    dataset_prologue: ClassVar = None
    outputs: ClassVar[Mapping] = MappingProxyType({})
    shares_work: ClassVar[bool] = False

    def build_worker(self, data: dict, params: Any, context: Context, dataset: bool):
        """Build one worker (called by the runtime, once per worker).

        Parameters
        ----------
        data : dict
            The worker's block of rows: row-aligned arrays by name.
        params : object
            The run's ``params``.
        context : Context
            The worker's rank and the number of workers.
        dataset : bool
            Whether ``data`` holds a dataset's raw rows: ``dataset_worker``
            is then built when there is one.

        Returns
        -------
        worker : object
            What ``worker`` (or ``dataset_worker``) returned.
        """
        factory = self.dataset_worker if dataset and self.dataset_worker else self.worker
        return factory(data, params, context)


@dataclass(frozen=True)
class BuiltinAlgorithm(Algorithm):
    """An algorithm of the package's own estimators: what a user's
    :class:`Algorithm` has, and the runtime features only they use.

    Parameters
    ----------
    dataset_worker : callable, default=None
        Built instead of ``worker`` when the data is a dataset the driver
        never held (the first rounds compute statistics of the raw rows
        there). None means ``worker``.
    dataset_prologue : callable, default=None
        ``dataset_prologue(rounds, params) -> (params, extra)``: rounds the
        coordinator runs first on a dataset, giving the parameters
        ``coordinate`` then gets and a dict added to the run's result.
    outputs : mapping, default={}
        ``name -> f(rows, model) -> dict``: what a fitted model computes on a
        dataset's rows where they lie (``predict``, ``transform``, ...).
    shares_work : bool, default=False
        Partials are chunk tables of the work-sharing format, so that
        workers on one machine compute each other's rows (k-means).
    """

    dataset_worker: Callable[..., Any] | None = None
    dataset_prologue: Callable[..., Any] | None = None
    outputs: Mapping[str, Callable[[dict, dict], dict]] = field(default_factory=dict)
    shares_work: bool = False
