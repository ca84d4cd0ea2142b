"""Pools of workers that outlive a fit.

One Lithops map starts ``size`` long-lived calls (:func:`._pool_worker.serve_pool`);
they serve the fits of the process that started them (their owner), one fit
at a time, until they have been idle for ``pool_idle`` seconds
(:func:`sklearn_serverless.set_config`), their owner ends (also when it is
killed) or half the platform's function time limit has passed. A fit that
finds an idle pool of its Lithops config with enough slots sends its
:class:`WorkerTask` s to it instead of starting a map (see
:func:`._fit.run_distributed`); its data, state store and deadlines are its
own, exactly as with a map.

A pool serves one fit at a time. A fit that finds every matching pool busy
starts a pool of its own (at most :data:`MAX_POOLS` per process; beyond that
it runs on a one-off map). A pool whose fit did not end cleanly (a worker
lost or stuck, the driver interrupted) is discarded: its workers are stopped
and everything it holds deleted.

Jobs and results travel through a channel (:mod:`._pool_channel`): FIFOs and
files of a private folder when the workers share this machine's files
(Lithops localhost compute and storage, Linux), where pools are on by
default; storage objects and lists in the fit's Redis server anywhere else
(cloud functions, or localhost compute with an object storage), only with
``worker_pool=True``: an idle function is billed.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time

from .._channel import open_channel
from .._config import get_config
from ._backends import Site
from ._generations import process_alive
from ._lithops_files import delete_lithops_job, record_lithops_executor
from ._watch import JobFailures

#: Pools one process keeps at most.
MAX_POOLS = 4
#: A pool is not handed a fit this close (seconds) to its workers' idle end.
IDLE_MARGIN = 2.0
#: Seconds the owner waits for the workers of a pool that it shuts down.
_GRACE_SECONDS = {True: 2.0, False: 5.0}  # by ``site.local_compute``
#: Seconds between Lithops' polls of a pool map's status. A pool learns of
#: results through its channel and of lost workers from their pids or
#: heartbeats, so the poll is a backstop; every 5 ms it listed the status
#: files of all the pool's calls for as long as the pool lived (a third of a
#: core at 64 workers; paid requests on a cloud's storage).
MONITOR_SECONDS = 0.5

_lock = threading.Lock()
_pools: list[Pool] = []
_owner = [os.getpid()]


def enabled(site: Site) -> bool:
    """Whether fits on this site use pools (see module doc)."""
    if os.environ.get("SKLEARN_SERVERLESS_POOL", "1").strip() in ("0", "false"):
        return False
    if site.local and not sys.platform.startswith("linux"):
        return False  # FIFOs
    setting = get_config()["worker_pool"]
    if setting == "auto":
        return site.local
    return bool(setting)


class Pool:
    """The owner's handle on one pool (see module doc). ``redis`` (URL, CA
    bundle) is the fit's Redis server: the channel of a pool that is not
    on this machine's files."""

    def __init__(self, key: str, size: int, config: dict, site: Site, idle: float,
                 limit: float | None, executor_factory,
                 redis: tuple[str, str | None] | None = None):
        self.key, self.size, self.site, self.idle = key, size, site, idle
        self.config_key = _key(config, None)  # the key without the Redis server
        self.limit = limit
        self.retire = None if limit is None else limit / 2
        self.busy = True
        self.broken = False
        self.started = self.last_used = time.monotonic()
        self.billed_until = self.started  # what a fit costs: the pool's time billed so far
        self.jobs = 0
        self.outstanding: set[int] = set()
        self._posted: dict[int, set[int]] = {}
        self._n_tasks = 0
        base = "/dev/shm" if site.local and os.path.isdir("/dev/shm") else None
        # Private (0700): the FIFO channel's files, and the executors of the
        # pool (their local Lithops files go if this process is killed).
        self.folder = tempfile.mkdtemp(prefix=f"sklearn-serverless-pool-{os.getpid()}-",
                                       dir=base)
        self.fexec = None
        self.failures = None
        self.channel = None
        self.futures: list = []
        try:
            from .._worker._pool import PoolTask, serve_pool

            self.fexec = executor_factory()
            record_lithops_executor(self.folder, self.fexec)
            if site.local:
                self.channel = open_channel("fifo", folder=self.folder, size=size)
            else:
                url, ca_data = redis
                self.channel = open_channel(
                    "cloud", size=size, storage=self.fexec.storage,
                    bucket=self.fexec.internal_storage.bucket, redis_url=url, ca_data=ca_data)
            # Workers on this machine share its memory; a function has its own.
            share = size if site.local_compute else 1
            tasks = [(PoolTask(slot, self.channel.endpoint(slot), idle, self.retire,
                               float(get_config()["dataset_cache"]), share),)
                     for slot in range(size)]
            self.failures = JobFailures(self.fexec.executor_id).__enter__()
            self.futures = self.fexec.map(
                serve_pool, tasks, chunksize=1,
                include_modules=None if site.local else ["sklearn_serverless"])
            self.failures.watch(self.futures[0].job_id)
        except BaseException:
            self.shutdown()
            raise

    # -- one fit ------------------------------------------------------------

    def remaining(self) -> float | None:
        """Seconds of the function time limit left to a task sent now."""
        if self.limit is None:
            return None
        return max(1.0, self.limit - (time.monotonic() - self.started) - 1.0)

    def submit(self, entry, tasks: list) -> int:
        """Send one fit's tasks (slot i runs ``entry(tasks[i], storage)``); the job's id."""
        import cloudpickle

        self.jobs += 1
        job = self.jobs
        self.outstanding = set(range(len(tasks)))
        self._posted[job] = set()
        self._n_tasks = len(tasks)
        self.channel.send(job, [cloudpickle.dumps((entry, task)) for task in tasks])
        return job

    def wait(self, job: int, seconds: float) -> set[int]:
        """Slots that posted their result of ``job`` (waits up to ``seconds``
        for a new one)."""
        posted = self._posted[job]
        if len(posted) < self._n_tasks:
            for done_job, slot in self.channel.done(seconds):
                if done_job in self._posted:
                    self._posted[done_job].add(slot)
        return set(posted)

    def result(self, job: int, slot: int):
        """``('ok', result)`` or ``('error', exception)`` of a posted slot."""
        import cloudpickle

        outcome = cloudpickle.loads(self.channel.take(job, slot))
        self.outstanding.discard(slot)
        if not self.outstanding:
            self.channel.clear(job, self._n_tasks)
        return outcome

    def lost_slots(self) -> dict[int, str]:
        """Slots whose pool worker is gone, with why."""
        if self.failures is not None and self.failures.seen:
            return {slot: f"the pool's Lithops job failed: {self.failures.detail()}"
                    for slot in range(self.size)}
        if self.channel is None:
            return dict.fromkeys(range(self.size), "the pool did not start")
        lost = {slot: "its pool call ended" for slot, future in enumerate(self.futures)
                if future.ready or future.success or future.done}
        try:
            beating = self.channel.heartbeats()
        except Exception as exc:  # noqa: BLE001 - Redis gone: every worker with it
            beating = dict.fromkeys(range(self.size), False)
            logging.getLogger(__name__).debug("pool heartbeats: %r", exc)
        lost.update({slot: "its pool worker stopped renewing its heartbeat"
                     for slot, ok in beating.items() if not ok})
        if self.site.local_compute:
            for slot, pid in self.channel.pids().items():
                if not process_alive(pid):
                    lost[slot] = f"its pool process {pid} is gone"
        return lost

    def pids(self) -> list[int]:
        """The workers' processes on this machine (localhost compute)."""
        if self.channel is None:
            return []
        return [pid for _, pid in sorted(self.channel.pids().items())]

    def usable(self, now: float) -> bool:
        """Idle, alive and far enough from its workers' idle and age limits."""
        if self.busy or self.broken or self.fexec is None:
            return False
        if now - self.last_used > self.idle - IDLE_MARGIN:
            return False
        if self.retire is not None and now - self.started > self.retire - IDLE_MARGIN:
            return False
        return not self.lost_slots()

    # -- its end ------------------------------------------------------------

    def shutdown(self, grace: float | None = None) -> None:
        """Stop the workers (politely, then by closing the executor), delete
        the pool's Lithops job, channel and folder. Every step runs."""
        self.broken = True
        if grace is None:
            grace = _GRACE_SECONDS[self.site.local_compute]
        if self.channel is not None:
            _quietly(self.channel.stop, self.size)
        pids = self.pids()
        deadline = time.monotonic() + (grace if not self.outstanding or
                                       not self.site.local_compute else 0.2)
        while time.monotonic() < deadline and self._running(pids):
            time.sleep(0.005)
        if self.fexec is not None:
            self._await_job_end(deadline + 0.5)
            _quietly(self.fexec.__exit__, None, None, None)
            _quietly(delete_lithops_job, self.fexec)
        if self.failures is not None:
            self.failures.__exit__()
        if self.channel is not None:
            _quietly(self.channel.close)
        shutil.rmtree(self.folder, ignore_errors=True)

    def _running(self, pids: list[int]) -> bool:
        if self.site.local_compute:
            return any(process_alive(pid) for pid in pids)
        return not all(f.ready or f.success or f.done for f in self.futures)

    def _await_job_end(self, deadline: float) -> None:
        """The localhost runner writes its end marker after the calls end:
        wait for it (bounded), so the cleanup comes after it."""
        if not self.site.local_compute or not self.futures:
            return
        from lithops.constants import JOBS_DIR

        marker = os.path.join(JOBS_DIR, f"{self.futures[0].job_key}.done")
        while not os.path.exists(marker) and time.monotonic() < deadline:
            time.sleep(0.002)


def _quietly(step, *args) -> None:
    try:
        step(*args)
    except Exception:  # noqa: BLE001 - every shutdown step runs
        logging.getLogger(__name__).debug("pool shutdown step", exc_info=True)


_PER_FIT = ("worker_processes", "monitoring_interval")


def _key(config: dict, redis: tuple[str, str | None] | None) -> str:
    stripped = {name: ({k: v for k, v in value.items() if k not in _PER_FIT}
                       if isinstance(value, dict) else value)
                for name, value in config.items()}
    return json.dumps([stripped, redis], sort_keys=True, default=repr)


def executor_config(config: dict) -> dict:
    """A fit's Lithops config for its pool's map: statuses polled every
    :data:`MONITOR_SECONDS`."""
    pool_config = {name: dict(value) if isinstance(value, dict) else value
                   for name, value in config.items()}
    pool_config.setdefault("lithops", {})["monitoring_interval"] = MONITOR_SECONDS
    return pool_config


def acquire(config: dict, site: Site, n_workers: int, limit: float | None,
            executor_factory, redis: tuple[str, str | None] | None = None) -> Pool | None:
    """An idle pool for a fit of ``n_workers`` on this config, marked busy;
    a new one when none is idle; None when pools are off or too many are busy.
    ``redis`` (URL, CA bundle): the fit's Redis state store, which a pool off
    this machine's files needs for its channel (and is keyed by)."""
    if not enabled(site) or (not site.local and redis is None):
        return None
    key = _key(config, None if site.local else redis)
    idle = float(get_config()["pool_idle"])
    retired = []
    try:
        with _lock:
            _forget_if_forked()
            now = time.monotonic()
            for pool in list(_pools):
                if not pool.busy and not pool.usable(now):
                    _pools.remove(pool)
                    retired.append(pool)
            for pool in _pools:
                if not pool.busy and pool.key == key and pool.size >= n_workers:
                    pool.busy = True
                    return pool
            while len(_pools) >= MAX_POOLS:
                idle_pools = [pool for pool in _pools if not pool.busy]
                if not idle_pools:
                    return None
                oldest = min(idle_pools, key=lambda pool: pool.last_used)
                _pools.remove(oldest)
                retired.append(oldest)
            pool = Pool(key, n_workers, config, site, idle, limit, executor_factory, redis)
            _pools.append(pool)
            return pool
    finally:
        for pool in retired:
            pool.shutdown()


def acquire_idle(config: dict, site: Site, n_workers: int,
                 redis: tuple[str, str | None] | None = None) -> Pool | None:
    """An idle pool of this config with at least ``n_workers`` slots, marked
    busy, or None: never a new pool (what applies a fitted model or reads a
    dataset for the driver runs on the pool of the fits before it, where
    the workers keep their rows). ``redis``: the caller's Redis state store,
    when it has one; without, a pool of any Redis server serves."""
    if not enabled(site):
        return None
    key = _key(config, None if site.local else redis)
    with _lock:
        _forget_if_forked()
        now = time.monotonic()
        for pool in _pools:
            same = pool.key == key if redis is not None or site.local else \
                pool.config_key == key
            if same and pool.size >= n_workers and pool.usable(now):
                pool.busy = True
                return pool
    return None


def release(pool: Pool) -> None:
    """The fit is over: the pool serves the next one if every slot answered
    it, else it is discarded."""
    clean = not pool.outstanding and not pool.broken
    with _lock:
        if clean:
            pool.busy = False
            pool.last_used = time.monotonic()
            return
        if pool in _pools:
            _pools.remove(pool)
    pool.shutdown()


def shutdown_workers() -> None:
    """End every pool of workers of this process now.

    Their processes stop and their files are deleted (see the user guide's
    "Workers that serve many fits"). A pool serving a fit is stopped too (the
    fit then falls back to a new map). The next fit starts a new pool.
    """
    with _lock:
        _forget_if_forked()
        pools = list(_pools)
        _pools.clear()
    for pool in pools:
        pool.shutdown()


def live_pids() -> list[int]:
    """Processes of this process's live pools (their workers)."""
    with _lock:
        return [pid for pool in _pools for pid in pool.pids()]


def _forget_if_forked() -> None:
    """A forked child owns none of its parent's pools."""
    if _owner[0] != os.getpid():
        _owner[0] = os.getpid()
        _pools.clear()


# At exit, before the interpreter's thread pools refuse work (they stop in
# threading's own exit hooks, run last-registered first): Lithops' monitor of
# a pool's map still reads statuses through one until the pool is closed.
if hasattr(threading, "_register_atexit"):
    threading._register_atexit(shutdown_workers)
else:  # pragma: no cover - Python without the hook
    atexit.register(shutdown_workers)
