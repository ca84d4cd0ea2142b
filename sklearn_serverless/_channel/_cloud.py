"""The channel of a pool whose workers do not share this machine's files:
cloud functions, or localhost compute with an object storage (see
:mod:`._pool_channel`).

Bodies are objects in the Lithops storage, under a prefix of the pool's own
(``sklearn-serverless/pool-<id>/``): ``job-<job>-<slot>`` (written by the
owner) and ``result-<job>-<slot>`` (by the worker), both deleted by the owner
once every slot answered the job. Everything else is in the fit's Redis
server, under ``sks:pool:{<id>}:`` (``sks:*``, as a fit's own keys), and is
never pickle:

- ``slot:<i>``: a list of job ids (or ``stop``) that slot i's worker waits
  on with ``BLPOP``;
- ``done``: a list of ``"<job> <slot>"`` that the owner waits on;
- ``owner``: the owner's heartbeat, a key with an expiry of
  :data:`HEARTBEAT_SECONDS` that a thread of the owner renews while the pool
  lives; a worker that finds it gone ends (its owner was killed, or ended
  without a word);
- ``alive:<i>``: slot i's worker's heartbeat, ``"<host> <pid>"``, renewed by
  a thread of the worker: the owner takes a slot whose key lapsed for lost.

Every key carries an expiry, and the workers of an owner that is gone
delete what is theirs.
"""

from __future__ import annotations

import logging
import socket
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .._common._deadlines import POOL_HEARTBEAT, POOL_SOCKET
from .._common._storage import delete_storage_objects
from .._state._base import KEY_TTL
from .._state._redis_url import connect
from ._base import STOP, Endpoint, OwnerChannel, WorkerChannel

#: Seconds a heartbeat key lives unless renewed (see the pools' limits there).
HEARTBEAT_SECONDS = POOL_HEARTBEAT
#: Puts of a job's bodies at a time.
_PUT_THREADS = 8
#: The shortest blocking wait (a timeout of 0 would block for ever).
_MIN_WAIT = 0.01


def _keys(pool_id: str) -> str:
    return f"sks:pool:{{{pool_id}}}:"


class _Beat(threading.Thread):
    """Renews a heartbeat key until stopped; ``check`` runs with every beat."""

    def __init__(self, client, key: str, value: bytes, seconds: float, check=None):
        super().__init__(daemon=True, name="sklearn-serverless-pool-heartbeat")
        self.client, self.key, self.value, self.seconds = client, key, value, seconds
        self.check = check
        self.stopping = threading.Event()
        self.beat()

    def beat(self) -> None:
        self.client.set(self.key, self.value, px=int(self.seconds * 1000))
        if self.check is not None:
            self.check()

    def run(self) -> None:
        while not self.stopping.wait(self.seconds / 4):
            try:
                self.beat()
            except Exception:  # noqa: BLE001 - the next beat may pass; the key tells
                logging.getLogger(__name__).debug("pool heartbeat failed", exc_info=True)

    def stop(self) -> None:
        self.stopping.set()
        if self.is_alive() and self is not threading.current_thread():
            self.join(5)


class CloudChannel(OwnerChannel):
    """The owner's side: objects in the Lithops storage, lists in Redis."""

    def __init__(self, size: int, storage, bucket: str, redis_url: str,
                 ca_data: str | None = None, **_):
        self.id = uuid.uuid4().hex
        self.size, self.storage, self.bucket = size, storage, bucket
        self.url, self.ca_data = redis_url, ca_data
        self.prefix = f"sklearn-serverless/pool-{self.id}/"
        self.keys = _keys(self.id)
        self.heartbeat = HEARTBEAT_SECONDS
        self.client = connect(redis_url, POOL_SOCKET, ca_data)
        self._pids: dict[int, int] = {}
        self._seen: set[int] = set()
        self._cleaner: ThreadPoolExecutor | None = None
        self._heart = _Beat(self.client, self.keys + "owner", b"1", self.heartbeat)
        self._heart.start()

    def endpoint(self, slot: int) -> CloudEndpoint:
        return CloudEndpoint(slot, self.bucket, self.prefix, self.keys, self.url,
                             self.ca_data, self.heartbeat)

    def _object(self, kind: str, job: int, slot: int) -> str:
        return f"{self.prefix}{kind}-{job}-{slot}"

    def send(self, job: int, bodies: list[bytes]) -> None:
        def put(slot: int) -> None:
            self.storage.put_object(self.bucket, self._object("job", job, slot), bodies[slot])

        if len(bodies) == 1:
            put(0)
        else:
            with ThreadPoolExecutor(min(_PUT_THREADS, len(bodies))) as threads:
                for future in [threads.submit(put, slot) for slot in range(len(bodies))]:
                    future.result()
        pipe = self.client.pipeline(transaction=False)
        for slot in range(len(bodies)):
            pipe.rpush(f"{self.keys}slot:{slot}", str(job))
            pipe.expire(f"{self.keys}slot:{slot}", KEY_TTL)
        pipe.execute()

    def done(self, seconds: float) -> list[tuple[int, int]]:
        reply = self.client.blpop([self.keys + "done"], timeout=max(seconds, _MIN_WAIT))
        if reply is None:
            return []
        job, slot = reply[1].split()
        return [(int(job), int(slot))]

    def take(self, job: int, slot: int) -> bytes:
        return self.storage.get_object(self.bucket, self._object("result", job, slot))

    def clear(self, job: int, n_slots: int) -> None:
        # Off the fit's path (a request's round trip per fit): close() waits.
        keys = [self._object(kind, job, slot) for kind in ("job", "result")
                for slot in range(n_slots)]
        if self._cleaner is None:
            self._cleaner = ThreadPoolExecutor(1, "sklearn-serverless-pool-clear")
        self._cleaner.submit(delete_storage_objects, self.storage, self.bucket, keys)

    def heartbeats(self) -> dict[int, bool]:
        values = self.client.mget([f"{self.keys}alive:{slot}" for slot in range(self.size)])
        here = socket.gethostname()
        for slot, value in enumerate(values):
            if value is not None:
                self._seen.add(slot)
                host, _, pid = value.decode().rpartition(" ")
                if host == here and pid.isdigit():
                    self._pids[slot] = int(pid)
        return {slot: values[slot] is not None for slot in self._seen}

    def pids(self) -> dict[int, int]:
        if len(self._pids) < self.size:
            try:
                self.heartbeats()
            except Exception:  # noqa: BLE001 - Redis gone: the pids known so far
                pass
        return dict(self._pids)

    def stop(self, n_slots: int) -> None:
        self._heart.stop()
        pipe = self.client.pipeline(transaction=False)
        pipe.delete(self.keys + "owner")  # a worker mid-job posts nothing more
        for slot in range(n_slots):
            pipe.rpush(f"{self.keys}slot:{slot}", STOP)
            pipe.expire(f"{self.keys}slot:{slot}", KEY_TTL)
        pipe.execute()

    def stop_heartbeat(self) -> None:
        """Stop renewing the owner's heartbeat (the workers end once it lapses)."""
        self._heart.stop()

    def close(self) -> None:
        self._heart.stop()
        steps = [self._await_cleaner, self._delete_keys, self._delete_objects,
                 self.client.close]
        for step in steps:
            try:
                step()
            except Exception:  # noqa: BLE001 - keys expire; every step runs
                logging.getLogger(__name__).debug("pool channel cleanup", exc_info=True)

    def _await_cleaner(self) -> None:
        if self._cleaner is not None:
            self._cleaner.shutdown(wait=True)

    def _delete_keys(self) -> None:
        keys = list(self.client.scan_iter(match=self.keys + "*", count=1000))
        if keys:
            self.client.delete(*keys)

    def _delete_objects(self) -> None:
        keys = self.storage.list_keys(self.bucket, self.prefix)
        delete_storage_objects(self.storage, self.bucket, keys)


@dataclass(frozen=True)
class CloudEndpoint(Endpoint):
    """Where slot ``slot``'s worker finds its jobs, and how it reaches Redis."""

    slot: int
    bucket: str
    prefix: str
    keys: str
    url: str
    ca_data: str | None
    heartbeat: float

    def connect(self, storage) -> _CloudWorker:
        return _CloudWorker(self, storage)

    def __repr__(self) -> str:  # the URL may hold a password
        return f"CloudEndpoint(slot={self.slot}, prefix={self.prefix!r})"


class _CloudWorker(WorkerChannel):
    def __init__(self, endpoint: CloudEndpoint, storage):
        import os

        self.end, self.storage = endpoint, storage
        self.client = connect(endpoint.url, POOL_SOCKET, endpoint.ca_data)
        self.owner_key = endpoint.keys + "owner"
        self.slot_key = f"{endpoint.keys}slot:{endpoint.slot}"
        self.alive_key = f"{endpoint.keys}alive:{endpoint.slot}"
        self._owner = True
        self._heart = _Beat(self.client, self.alive_key,
                            f"{socket.gethostname()} {os.getpid()}".encode(),
                            endpoint.heartbeat, self._check_owner)
        self._heart.start()

    def _check_owner(self) -> None:
        if not self.client.exists(self.owner_key):
            self._owner = False

    def next_job(self, seconds: float) -> str | None:
        reply = self.client.blpop([self.slot_key], timeout=max(seconds, _MIN_WAIT))
        return None if reply is None else reply[1].decode()

    def owner_alive(self) -> bool:
        return self._owner

    def _object(self, kind: str, job: str) -> str:
        return f"{self.end.prefix}{kind}-{job}-{self.end.slot}"

    def read_job(self, job: str) -> bytes:
        return self.storage.get_object(self.end.bucket, self._object("job", job))

    def post(self, job: str, body: bytes) -> None:
        if not self.client.exists(self.owner_key):  # the pool was shut down meanwhile
            self._owner = False
            return
        self.storage.put_object(self.end.bucket, self._object("result", job), body)
        pipe = self.client.pipeline(transaction=False)
        pipe.rpush(self.end.keys + "done", f"{job} {self.end.slot}")
        pipe.expire(self.end.keys + "done", KEY_TTL)
        pipe.execute()

    def close(self, owner_gone: bool) -> None:
        self._heart.stop()
        try:
            keys = [self.alive_key]
            if owner_gone:  # nobody else will: what is this slot's
                keys.append(self.slot_key)
                if self.end.slot == 0:
                    keys.append(self.end.keys + "done")
                mine = [key for key in self.storage.list_keys(self.end.bucket, self.end.prefix)
                        if key.endswith(f"-{self.end.slot}")]
                delete_storage_objects(self.storage, self.end.bucket, mine)
            self.client.delete(*keys)
        finally:
            self.client.close()
