"""Redis state store, as in the paper, with one round trip per array.

Followers block on their own inbox list (BLPOP), so a message wakes them at
once, then read the round's message (stored once); arrivals are a list the
coordinator blocks on. ``abort`` pushes a marker into every list anyone may be
blocked on. All keys share the prefix
``sks:{namespace}:`` (a hash tag, so a cluster keeps them on one node) and
carry an expiry.
"""

from __future__ import annotations

import time
import uuid

import numpy as np
import redis

from ._base import KEY_TTL, FitAborted, Reduce, StateStore, StoreSpec, sum_in_worker_order
from ._codec import decode_array, encode_array

_ABORT = b"abort"
#: Messages up to this size travel in the inboxes themselves.
_INLINE_BYTES = 64 << 10
#: Deletes the lock only if this worker still owns it.
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def connect(url: str, timeout: float) -> redis.Redis:
    """A client for ``url`` whose blocking reads outlast ``timeout``."""
    return redis.Redis.from_url(
        url, socket_timeout=timeout + 10, socket_connect_timeout=min(timeout, 10)
    )


def redacted(url: str) -> str:
    """``url`` without its password, for error messages."""
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"


class RedisStore(StateStore):
    """State of one fit on the Redis server at ``spec.location``."""

    def __init__(self, spec: StoreSpec, create: bool = False):
        super().__init__(spec)
        self._redis = connect(spec.location, spec.timeout)
        self._release = self._redis.register_script(_RELEASE)
        self._prefix = f"sks:{{{spec.namespace}}}:"
        if create:
            try:
                self._redis.ping()
            except redis.RedisError as exc:
                raise ConnectionError(
                    f"cannot reach the Redis state store at {redacted(spec.location)}: {exc}"
                ) from exc

    def _key(self, *parts: object) -> str:
        return self._prefix + ":".join(map(str, parts))

    def publish(self, round_: int, message: bytes) -> None:
        # A small message rides in the inboxes (one round trip for a follower);
        # a large one is written once and the inboxes get its round number (a
        # 400 KB model pushed to W-1 inboxes cost W-1 copies per round).
        header = round_.to_bytes(8, "little")
        pipe = self._redis.pipeline(transaction=False)
        if len(message) <= _INLINE_BYTES:
            note = b"M" + header + message
        else:
            note = b"R" + header
            pipe.set(self._key("message", round_), message, ex=KEY_TTL)
        # Everyone has read the message before last: they contributed to it.
        pipe.delete(self._key("message", round_ - 2))
        for worker in range(1, self.n_workers):
            pipe.rpush(self._key("inbox", worker), note)
            pipe.expire(self._key("inbox", worker), KEY_TTL)
        pipe.set(self._key("round"), round_, ex=KEY_TTL)
        pipe.execute()

    def fetch(self, round_: int, worker: int) -> bytes:
        reply = self._redis.blpop([self._key("inbox", worker)], timeout=self.timeout)
        if reply is None:
            raise self._timeout_error(f"worker {worker} got no message for round {round_}")
        note = reply[1]
        if note == _ABORT:
            raise FitAborted(self._failure())
        got = int.from_bytes(note[1:9], "little")
        if got != round_:
            raise RuntimeError(f"worker {worker} expected round {round_}, got {got}")
        if note[:1] == b"M":
            return note[9:]
        message = self._redis.get(self._key("message", round_))
        if message is None:
            raise RuntimeError(f"the message of round {round_} is gone (expired or cleaned up)")
        return message

    def contribute(self, round_: int, worker: int, partial: np.ndarray) -> None:
        arrival = f"{round_}:{worker}"
        if self.spec.mode == "lock_free":
            pipe = self._redis.pipeline(transaction=False)
            pipe.set(self._key("slot", round_, worker), encode_array(partial), ex=KEY_TTL)
            pipe.rpush(self._key("arrivals"), arrival)
            pipe.expire(self._key("arrivals"), KEY_TTL)
            pipe.execute()
            return
        # The lock (a key with an expiry and an owner token) is taken and the
        # accumulator read in one round trip, written and released in another.
        # A worker that finds it taken blocks on the "released" list, which
        # every release pushes to, instead of polling.
        lock, acc = self._key("lock", round_), self._key("acc", round_)
        released = self._key("released", round_)
        token = f"{worker}:{uuid.uuid4().hex}"
        deadline = time.monotonic() + self.timeout
        while True:
            pipe = self._redis.pipeline(transaction=False)
            pipe.set(lock, token, nx=True, px=int(self.timeout * 1000))
            pipe.get(acc)
            taken, body = pipe.execute()
            if taken:
                break
            if time.monotonic() > deadline:
                raise self._timeout_error(
                    f"worker {worker} could not take the lock of round {round_}")
            # At most 1 s (whole seconds work on any Redis): a holder that
            # died pushes nothing, and its lock expires.
            reply = self._redis.blpop([released], timeout=1)
            if reply is not None and reply[1] == _ABORT:
                self._redis.rpush(released, _ABORT)  # for the next waiter
                raise FitAborted(self._failure())
            if reply is None and self._redis.exists(self._key("failure")):
                raise FitAborted(self._failure())
        total = partial if body is None else decode_array(body) + partial
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(acc, encode_array(total), ex=KEY_TTL)
        pipe.rpush(self._key("arrivals"), arrival)
        pipe.expire(self._key("arrivals"), KEY_TTL)
        self._release(keys=[lock], args=[token], client=pipe)
        pipe.rpush(released, b"1")
        pipe.expire(released, KEY_TTL)
        pipe.execute()

    def barrier(self, round_: int) -> None:
        arrived: set[int] = set()
        deadline = time.monotonic() + self.timeout
        while len(arrived) < self.n_workers:
            left = deadline - time.monotonic()
            reply = None if left <= 0 else self._redis.blpop([self._key("arrivals")], timeout=left)
            if reply is None:
                missing = self._missing(arrived)
                raise self._timeout_error(f"workers {missing} did not contribute to round {round_}")
            if reply[1] == _ABORT:
                raise FitAborted(self._failure())
            got_round, worker = map(int, reply[1].split(b":"))
            if got_round != round_:
                raise RuntimeError(f"round {got_round} arrival while waiting for round {round_}")
            arrived.add(worker)

    def aggregate(self, round_: int, reduce: Reduce = sum_in_worker_order) -> np.ndarray:
        pipe = self._redis.pipeline(transaction=False)
        if self.spec.mode == "lock_free":
            keys = [self._key("slot", round_, w) for w in range(self.n_workers)]
            pipe.mget(keys)
            pipe.delete(*keys)
            bodies, _ = pipe.execute()
            return reduce([decode_array(body) for body in bodies])
        pipe.get(self._key("acc", round_))
        pipe.delete(self._key("acc", round_), self._key("released", round_))
        body, _ = pipe.execute()
        return decode_array(body)

    def progress(self) -> int:
        latest = self._redis.get(self._key("round"))
        return -1 if latest is None else int(latest)

    def post_log(self, line: str) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.rpush(self._key("log"), line)
        pipe.expire(self._key("log"), KEY_TTL)
        pipe.execute()

    def read_log(self, start: int) -> list[str]:
        return [line.decode() for line in self._redis.lrange(self._key("log"), start, -1)]

    def abort(self, message: str) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(self._key("failure"), message, ex=KEY_TTL, nx=True)
        latest = self.progress()
        # Lock waiters block on "released" of the current (or next) round.
        waiting = [self._key("released", r) for r in (latest, latest + 1)]
        for key in [self._key("arrivals"), *waiting] + [
            self._key("inbox", w) for w in range(1, self.n_workers)
        ]:
            pipe.rpush(key, _ABORT)
            pipe.expire(key, KEY_TTL)
        pipe.execute()

    def cleanup(self) -> None:
        keys = list(self._redis.scan_iter(match=self._prefix + "*", count=1000))
        if keys:
            self._redis.delete(*keys)

    def close(self) -> None:
        self._redis.close()

    def _failure(self) -> str:
        message = self._redis.get(self._key("failure"))
        return message.decode() if message else "the fit was aborted"
