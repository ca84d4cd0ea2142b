"""What a fit costs: the functions' billed seconds, their invocations, the
storage requests and Redis commands of the fit, priced from the table of
:mod:`._prices` (``timings_['cost']``, ``RunResult.timings['cost']`` and
:func:`sklearn_serverless.last_cost`).

Billed seconds come from Lithops' call statistics: each call's handler
span (``worker_start_tstamp`` to ``worker_end_tstamp``), plus, for a call
that started cold, its start (INIT: billed on AWS Lambda since August 2025),
estimated as the time from its submission to the handler's start (an upper
bound: it holds the invocation's latency too). A call without statistics (a
lost function) is billed from its submission to when the driver gave it up.
A pool's functions run between fits: a fit served by a pool is billed every
one of its functions from the end of the pool's previous fit (from its
start, for the first) to its own end.

Requests: the driver's and the workers' storage requests (counted by
:mod:`sklearn_serverless._common._metering`), plus those Lithops makes
where no counter of ours sees them (:data:`UNSEEN`), and the Redis commands
the driver and the workers send.
"""

from __future__ import annotations

import contextvars
import time

import numpy as np

from .._common import _metering
from .._common._prices import price_entry
from .._config import get_config
from ._backends import Site

#: Storage requests Lithops makes where no counter of ours sees them (read
#: from Lithops 3.8 and checked against an S3 server's own count): a storage
#: client checks its bucket when it is made (HEAD: the driver's executor's,
#: made before counting starts, and each call's handler's); each call writes
#: its start and end statuses (2 PUTs), and its result as an object of its
#: own when it is 8 KiB or more (a PUT); the function and its arguments are
#: read (2 GETs) by each call on a cloud, once per map by Lithops' localhost
#: runner (with its own storage client: a HEAD).
UNSEEN = {"executor": {"HEAD": 1}, "call": {"PUT": 2, "HEAD": 1},
          "inputs": {"GET": 2}, "runner": {"HEAD": 1}, "large_result": {"PUT": 1}}
#: Results from this size on travel as objects of their own (Lithops').
_INLINE_RESULT = 8 * 1024

_last: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "sklearn_serverless_last_cost", default=None)


def last_cost() -> dict | None:
    """What the last fit, run or prediction of this thread cost.

    The dict of ``timings_['cost']``, for a ``run`` or a prediction on a
    dataset too (they have no fitted attribute to hold it); None before any.

    Returns
    -------
    cost : dict or None
        See the user guide's "What a fit costs".
    """
    return _last.get()


class Meter:
    """The bill of one fit (or one application of a model), as it runs."""

    def __init__(self, config: dict, site: Site):
        self.config, self.site = config, site
        self.before = _metering.snapshot()
        self.seconds: list[float] = []  # billed seconds per function
        self.init = 0.0
        self.idle = 0.0
        self.invocations = 0
        self.unseen = dict.fromkeys(_metering.STORAGE_KINDS, 0)
        self.reported = dict.fromkeys((*_metering.STORAGE_KINDS, "redis"), 0)

    def map_calls(self, futures, submitted: float) -> None:
        """Bill the calls of one Lithops map (once they have ended or been
        given up), submitted at ``submitted`` (``time.time()``)."""
        now = time.time()
        if futures and not self.site.local:
            self._unseen("executor")
            if self.site.local_compute:
                self._unseen("inputs", "runner")
        for future in futures or ():
            stats = getattr(future, "stats", None) or {}
            self.invocations += 1
            if not self.site.local:
                self._unseen("call", *(("inputs",) if not self.site.local_compute else ()))
                if stats.get("func_result_size", 0) >= _INLINE_RESULT:
                    self._unseen("large_result")
            start, end = stats.get("worker_start_tstamp"), stats.get("worker_end_tstamp")
            if start is None or end is None:
                self.seconds.append(max(0.0, now - submitted))
                continue
            init = 0.0
            if stats.get("worker_cold_start") and stats.get("host_submit_tstamp"):
                init = max(0.0, start - stats["host_submit_tstamp"])
            self.init += init
            self.seconds.append(max(0.0, end - start) + init)

    def pool_fit(self, pool, new: bool) -> None:
        """Bill a fit served by ``pool`` (``new``: it started the pool):
        every function of the pool, since its previous fit ended."""
        now = time.monotonic()
        since = pool.billed_until
        pool.billed_until = now
        if new:
            self.invocations += pool.size
            if not self.site.local:
                self._unseen("executor", *(("inputs", "runner") if self.site.local_compute
                                           else ()))
                for _ in range(pool.size):
                    self._unseen("call", *(("inputs",) if not self.site.local_compute
                                           else ()))
        self.seconds.extend([now - since] * pool.size)

    def _unseen(self, *what: str) -> None:
        for name in what:
            for kind, n in UNSEEN[name].items():
                self.unseen[kind] += n

    def workers(self, results) -> None:
        """Add the requests the workers counted themselves."""
        for result in results or ():
            for kind, n in (result.get("requests") or {}).items():
                self.reported[kind] = self.reported.get(kind, 0) + n

    def bill(self) -> dict:
        """The cost dict (see the user guide); also :func:`last_cost`."""
        cost = bill(self.config, self.site, np.array(self.seconds), self.init,
                    self.invocations, self._requests())
        _last.set(cost)
        return cost

    def _requests(self) -> dict:
        counts = _metering.since(self.before)
        for kind, n in self.reported.items():
            counts[kind] = counts.get(kind, 0) + n
        for kind, n in self.unseen.items():
            counts[kind] += n
        return counts


def priced_as(config: dict) -> str:
    """The price table's entry a fit on ``config`` is priced as:
    ``set_config(price_as=...)``, else its compute backend (Lambda on arm64
    by its ``architecture``)."""
    name = get_config().get("price_as")
    if name:
        return name
    backend = config.get("lithops", {}).get("backend", "localhost")
    if backend == "aws_lambda" and config.get("aws_lambda", {}).get("architecture") == "arm64":
        return "aws_lambda_arm64"
    return backend


def bill(config: dict, site: Site, seconds: np.ndarray, init: float, invocations: int,
         requests: dict) -> dict:
    """Price billed ``seconds`` per function, ``invocations`` and
    ``requests`` (storage requests by class, ``'redis'`` commands)."""
    name = priced_as(config)
    prices = get_config().get("prices") or {}
    entry = price_entry(name, prices)
    section = config.get(name.replace("_arm64", ""), {})
    memory_mb = float(section.get("runtime_memory") or entry["memory_mb"])
    vcpus = float(section.get("runtime_cpu") or entry["vcpus"])
    gb_seconds = seconds * memory_mb / 1024
    vcpu_seconds = seconds * vcpus
    storage = {kind: int(requests.get(kind, 0)) for kind in _metering.STORAGE_KINDS}
    store_prices = price_entry("storage", prices)
    usd_by_item = {
        "compute": float(gb_seconds.sum() * entry["gb_second"]
                         + vcpu_seconds.sum() * entry["vcpu_second"]),
        "invocations": invocations * entry["request"],
        "storage": sum(n * store_prices.get(kind, 0.0) for kind, n in storage.items()),
        "redis": int(requests.get("redis", 0)) * price_entry("redis", prices)["command"],
    }
    return {
        "priced_as": name,
        "memory_mb": memory_mb,
        "vcpus": vcpus,
        "seconds": seconds,
        "init_seconds": float(init),
        "gb_seconds": gb_seconds,
        "vcpu_seconds": vcpu_seconds,
        "requests": int(invocations),
        "storage_requests": storage,
        "redis_commands": int(requests.get("redis", 0)),
        "usd_by_item": usd_by_item,
        "usd": float(sum(usd_by_item.values())),
    }


def cost_line(cost: dict, name: str) -> str:
    """What a verbose fit says of its cost."""
    storage = sum(cost["storage_requests"].values())
    return (f"[{name}] cost: ${cost['usd']:.6f} priced as {cost['priced_as']} "
            f"({float(np.sum(cost['gb_seconds'])):.3f} GB-s at {cost['memory_mb']:g} MB, "
            f"{cost['requests']} invocations, {storage} storage requests, "
            f"{cost['redis_commands']} Redis commands)")
