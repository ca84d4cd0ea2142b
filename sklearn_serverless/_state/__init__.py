"""Shared state of a fit: one interface (:class:`StateStore`), three stores:
shared memory (``'shm'``: every worker on this machine), SQLite (``'sqlite'``:
one database file) and Redis (``'redis'``: workers anywhere).

This package is imported by workers: it needs numpy and, for Redis, redis-py;
nothing from scikit-learn.
"""

from __future__ import annotations

from ._base import KEY_TTL, STATE_MODES, FitAborted, StateStore, StoreSpec, sum_in_worker_order

__all__ = ["KEY_TTL", "STATE_MODES", "FitAborted", "StateStore", "StoreSpec", "open_store",
           "sum_in_worker_order"]


def open_store(spec: StoreSpec, create: bool = False) -> StateStore:
    """Open the store ``spec`` describes; ``create`` prepares it (driver side)."""
    if spec.kind == "shm":
        from ._shm import SharedMemoryStore

        return SharedMemoryStore(spec, create=create)
    if spec.kind == "sqlite":
        from ._sqlite import SQLiteStore

        return SQLiteStore(spec, create=create)
    if spec.kind == "redis":
        from ._redis import RedisStore

        return RedisStore(spec, create=create)
    raise ValueError(f"unknown state store kind {spec.kind!r}")
