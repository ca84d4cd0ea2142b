"""Redis state store, as in the paper, with one round trip per array.

Followers block on their own inbox list (BLPOP), so a message wakes them at
once, then read the round's message (stored once). Lock-free partials are
the fields of one hash per round; the contribution that completes it (in
locked mode: the one that adds the last partial) pushes the round's arrival
to a list the coordinator blocks on, so the coordinator wakes once per
round, not once per worker, and reads every partial with one command. ``abort`` pushes a
marker into every list anyone may be blocked on. All keys share the prefix
``sks:{namespace}:`` (a hash tag, so a cluster keeps them on one node) and
carry an expiry.

Fencing: what a generation's workers write or wait on lives under
``g<generation>:`` (inboxes, partials, accumulator, lock, leases, check-ins,
log, failure); the shared keys (messages, records, the round) are written
by a script that first checks the fit's ``generation`` key, as are the
partials, lock, leases and check-ins: a replaced worker writes nothing
there, and finds the abort marker in its own lists.

The coordinator (worker 0) skips the round trips that would only tell it what
it knows: it keeps its own lock-free partial instead of writing a slot it
would read back, and it does not announce its own arrival. In locked mode
each arrival carries the accumulator as that worker left it (when it is
small), with the count of partial results in it, so the complete sum
reaches the coordinator with the arrival. The round's first partial is
written in the acquiring round trip, without holding the lock; when the
coordinator's partial is the last, it writes nothing back and does not wait
at the barrier. Its lock release rides with its wait for the arrival, and
the lock-free slots are read in the same pipeline; a round's keys go with
the next publish.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from urllib.parse import urlsplit

import numpy as np
import redis

from .._common._process import process_alive
from ._base import KEY_TTL, FitAborted, Reduce, StateStore, StoreSpec, sum_in_worker_order
from ._codec import decode_array, decode_arrays, encode_array, encode_arrays
from ._redis_scripts import _ACQUIRE, _ARRIVE, _BEAT, _CHECK_IN, _CLAIM, _PUBLISH, _RELEASE
from ._redis_url import connect, redacted

_ABORT = b"abort"
#: A lock waiter's grant when its partial is in the accumulator already.
_COUNTED = b"counted"
#: What a replaced generation's workers may still block on or read: kept
#: (with their abort markers) when the next generation begins.
_WOKEN = ("inbox", "arrivals", "grant", "failure")
#: Fits in progress: namespace -> "host:pid" of their driver.
_OWNERS = "sks:owners"
#: Messages up to this size travel in the inboxes themselves.
_INLINE_BYTES = 64 << 10


class RedisStore(StateStore):
    """State of one fit on the Redis server at ``spec.location``."""

    def __init__(self, spec: StoreSpec, create: bool = False):
        super().__init__(spec)
        self._redis = connect(spec.location, spec.timeout, spec.ca_data)
        self._prefix = f"sks:{{{spec.namespace}}}:"
        self._own: dict[int, np.ndarray] = {}  # coordinator: its partial, or the full sum
        self._stale: list[str] = []  # keys of finished rounds, deleted with the next publish
        self._held = None  # the coordinator's lock release, sent with its barrier wait
        self._slots: dict[int, dict] = {}  # lock-free slots read with the round's arrival
        self._inbox_keys: list[str] | None = None
        if create:
            self._create()

    def _create(self) -> None:
        """Check that the server takes us (clear errors, before any worker
        starts), mark the fit as running and register its driver, and remove
        the keys of fits whose driver on this machine was killed."""
        where = redacted(self.spec.location)
        try:
            self._redis.set(self._key("alive"), b"1", ex=KEY_TTL)
            self._sweep_orphans()
        except (redis.AuthenticationError, redis.ResponseError) as exc:
            cause = redacted(str(exc))
            if not isinstance(exc, redis.AuthenticationError) and not any(
                    code in cause for code in ("NOAUTH", "NOPERM", "WRONGPASS")):
                raise
            if "NOPERM" in cause:
                problem = "does not let this user write the fit's keys (sks:*)"
            elif urlsplit(self.spec.location).password is None:
                problem = "needs a user and password in the URL"
            else:
                problem = "refused the credentials in the URL"
            raise ConnectionError(
                f"the Redis state store at {where} {problem}: {cause}") from None
        except redis.RedisError as exc:
            cause = redacted(str(exc))
            if "certificate" in cause.lower() or "ssl" in cause.lower():
                cause = (f"the TLS handshake failed ({cause}); give the CA bundle that signed "
                         "the server's certificate as ?ssl_ca_certs=/path/ca.pem")
            raise ConnectionError(
                f"cannot reach the Redis state store at {where}: {cause}") from None

    def _key(self, *parts: object) -> str:
        return self._prefix + ":".join(map(str, parts))

    def _gkey(self, *parts: object) -> str:
        """A key of this view's generation."""
        return self._key(f"g{self.own_generation}", *parts)

    def _fenced(self) -> FitAborted:
        return self._replaced(self.generation())

    def check_in(self, worker: int) -> None:
        answer = self._redis.eval(_CHECK_IN, 3, self._key("alive"), self._gkey("started"),
                                  self._key("generation"), worker, KEY_TTL,
                                  self.own_generation)
        if answer == 0:
            raise FitAborted(f"the fit ended before worker {worker} started")
        if answer == -1:
            raise self._fenced()

    def started(self) -> set[int]:
        return {int(worker) for worker in self._redis.smembers(self._gkey("started"))}

    def publish(self, round_: int, message: bytes, record: bytes | None = None,
                setup: bool = False) -> None:
        # A small message rides in the inboxes (one round trip for a follower);
        # a large one is read from its key by the followers (a 400 KB model
        # pushed to W-1 inboxes cost W-1 copies per round). Either way the key
        # keeps it for a replacement worker, in the same round trip.
        header = round_.to_bytes(8, "little")
        note = b"M" + header + message if len(message) <= _INLINE_BYTES else b"R" + header
        # Everyone has read the message before last: they contributed to it.
        stale = [self._key("message", round_ - 2), *self._stale]
        self._stale = []
        keys = [self._key("generation"), self._key("message", round_), self._key("records"),
                self._key("setup"), self._key("round"), *stale, *self._inboxes()]
        if not self._redis.eval(
                _PUBLISH, len(keys), *keys, self.own_generation, message, record or b"",
                "0" if record is None else "1", round_ - 1, "1" if setup else "0", round_,
                note, KEY_TTL, len(stale)):
            raise self._fenced()

    def _inboxes(self) -> list[str]:
        if self._inbox_keys is None:
            self._inbox_keys = [self._gkey("inbox", w) for w in range(1, self.n_workers)]
        return self._inbox_keys

    def fetch(self, round_: int, worker: int) -> bytes:
        reply = self._redis.blpop([self._gkey("inbox", worker)], timeout=self.timeout)
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

    def contribute(self, round_: int, worker: int, partial: np.ndarray,
                   slots: bool = False) -> None:
        members = self._gkey("arrived", round_)
        if slots or self.spec.mode == "lock_free":
            if worker == 0:
                self._own[round_] = partial
                return
            if not self._redis.eval(
                    _ARRIVE, 3, self._gkey("slots", round_), self._gkey("arrivals"),
                    self._key("generation"), encode_array(partial), KEY_TTL, worker,
                    self.n_workers - 1, f"{round_}:{worker}:0:".encode(),
                    self.own_generation):
                raise self._fenced()
            return
        # The lock is a key with an expiry and an owner token. It is taken and
        # the accumulator read in one round trip, written and released in
        # another; the round's first partial is written in the first. A worker
        # that finds it taken queues itself and blocks on its grant list: the
        # holder hands the lock and the accumulator straight to the first in
        # the queue (no second try, no polling).
        lock, acc, waiters = (self._gkey(name, round_) for name in ("lock", "acc", "waiters"))
        grants = [self._gkey("grant", round_, w) for w in range(self.n_workers)]
        token = f"{worker}:{uuid.uuid4().hex}"
        expiry = int(self.timeout * 1000)
        first = encode_arrays([partial, np.array([1])])
        if len(first) > _INLINE_BYTES:
            first = b""  # large: the usual way

        def acquire():
            # No arrival with the first partial: with two workers or more it
            # never completes the round.
            return self._redis.eval(_ACQUIRE, 7, lock, acc, waiters, grants[worker],
                                    self._gkey("arrivals"), members, self._key("generation"),
                                    token, expiry, f"{worker} {token}", KEY_TTL, first, b"",
                                    worker, self.own_generation)

        deadline = time.monotonic() + self.timeout
        taken, body = (acquire() + [None])[:2]
        while taken == 0:
            if time.monotonic() > deadline:
                raise self._timeout_error(
                    f"worker {worker} could not take the lock of round {round_}")
            # At most 1 s (whole seconds work on any Redis): a holder that
            # died hands nothing over, and its lock expires.
            reply = self._redis.blpop([grants[worker]], timeout=1)
            if reply is not None and reply[1] == _ABORT:
                raise FitAborted(self._failure())
            if reply is not None and reply[1] == _COUNTED:
                return  # this worker's partial is in the round already
            if reply is not None:  # handed over, with the accumulator when small
                taken, body = 1, reply[1] or self._redis.get(acc)
            elif self._redis.exists(self._gkey("failure")):
                raise FitAborted(self._failure())
            else:
                taken, body = (acquire() + [None])[:2]
        if taken == -1:
            raise self._fenced()
        if taken == 3:
            return  # this worker's partial is in the round already (a second call)
        if taken == 2:  # the round's first partial: written (and its worker), the lock free
            if worker == 0:
                self._keep_fullest(round_, 1, first)
            return
        if body is None:
            total, count = partial, 1
        else:
            total, count = decode_arrays(body)
            total, count = total + partial, int(count[0]) + 1
        state = encode_arrays([total, np.array([count])])
        if worker == 0 and count == self.n_workers:
            # The coordinator added the last partial result: the sum is whole and
            # nobody else reads it. Nothing is written back; the lock goes with
            # the next publish.
            self._own[round_] = (count, state)
            self._stale += [lock, acc, members]
            return
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(acc, state, ex=KEY_TTL)
        # A large accumulator is not copied into the lists: it is read from its key.
        inline = state if len(state) <= _INLINE_BYTES else b""
        if worker == 0:
            self._keep_fullest(round_, count, state)
        else:
            pipe.sadd(members, worker)
            pipe.expire(members, KEY_TTL)
            if count == self.n_workers:  # the sum is whole: the round's arrival
                pipe.rpush(self._gkey("arrivals"),
                           f"{round_}:{worker}:{count}:".encode() + inline)
                pipe.expire(self._gkey("arrivals"), KEY_TTL)
        # EVAL, not a registered Script: in a pipeline that costs a SCRIPT
        # EXISTS round trip on every execute.
        pipe.eval(_RELEASE, 3 + self.n_workers, lock, waiters, members, *grants,
                  token, expiry, inline, KEY_TTL)
        if worker == 0:
            self._held = pipe  # goes out with the barrier's first wait: one round trip
            return
        pipe.execute()

    def barrier(self, round_: int, slots: bool = False) -> None:
        lock_free = slots or self.spec.mode == "lock_free"
        pipe, self._held = self._held, None
        if (self.n_workers == 1 or not lock_free
                and self._own.get(round_, (0,))[0] == self.n_workers):
            if pipe is not None:
                pipe.execute()
            return  # the coordinator's contribution was the last
        deadline = time.monotonic() + self.timeout
        while True:
            left = deadline - time.monotonic()
            reply = None if left <= 0 else self._wait_arrival(round_, pipe, left, lock_free)
            pipe = None
            if reply is None:
                arrived = (self._redis.hkeys(self._gkey("slots", round_)) if lock_free
                           else self._redis.smembers(self._gkey("arrived", round_)))
                missing = self._missing({0} | {int(w) for w in arrived})
                raise self._timeout_error(f"workers {missing} did not contribute to round {round_}")
            if reply[1] == _ABORT:
                raise FitAborted(self._failure())
            got, _, count, state = reply[1].split(b":", 3)
            if int(got) < round_:
                continue  # a replaced worker's late arrival
            if int(got) != round_:
                raise RuntimeError(f"round {int(got)} arrival while waiting for round {round_}")
            if lock_free:
                self._stale.append(self._gkey("slots", round_))
            else:  # the accumulator as the last worker left it
                self._stale.append(self._gkey("arrived", round_))
                self._keep_fullest(round_, int(count), state or None)
            return

    def _wait_arrival(self, round_: int, pipe, timeout: float, lock_free: bool):
        """BLPOP the round's arrival, after what ``pipe`` holds (the
        coordinator's release) and, lock-free, before reading the slots: one
        round trip where three would do the same."""
        pipe = pipe if pipe is not None else self._redis.pipeline(transaction=False)
        pipe.blpop([self._gkey("arrivals")], timeout=timeout)
        if lock_free:
            pipe.hgetall(self._gkey("slots", round_))
        replies = pipe.execute()
        if lock_free:
            self._slots[round_] = replies[-1]
            return replies[-2]
        return replies[-1]

    def aggregate(self, round_: int, reduce: Reduce = sum_in_worker_order,
                  slots: bool = False):
        own = self._own.pop(round_)
        if slots or self.spec.mode == "lock_free":
            found = self._slots.pop(round_, None)
            if found is None and self.n_workers > 1:
                pipe = self._redis.pipeline(transaction=False)
                pipe.hgetall(self._gkey("slots", round_))
                pipe.delete(self._gkey("slots", round_))
                found, _ = pipe.execute()
            bodies = [found[str(w).encode()] for w in range(1, self.n_workers)]
            return reduce([own] + [decode_array(body) for body in bodies])
        count, state = own
        if state is None:
            state = self._redis.get(self._gkey("acc", round_))
        total, stored = decode_arrays(state)
        if count != self.n_workers or int(stored[0]) != count:
            raise RuntimeError(f"round {round_}: the accumulator holds {int(stored[0])} of "
                               f"{self.n_workers} partial results")
        self._stale.append(self._gkey("acc", round_))
        return total

    def _keep_fullest(self, round_: int, count: int, state: bytes | None) -> None:
        """Keep the accumulator state with the most partial results in it
        (``None``: too large to travel, read from its key)."""
        kept = self._own.get(round_)
        if kept is None or count > kept[0]:
            self._own[round_] = (count, state)

    def progress(self) -> int:
        latest = self._redis.get(self._key("round"))
        return -1 if latest is None else int(latest)

    def message(self, round_: int) -> bytes | None:
        body = self._redis.get(self._key("message", round_))
        return body if body is not None else self._redis.hget(self._key("setup"), str(round_))

    def records(self) -> list[bytes]:
        found = self._redis.hgetall(self._key("records"))
        return [found[str(r).encode()] for r in range(len(found))]

    def setup_rounds(self) -> list[int]:
        return sorted(int(r) for r in self._redis.hkeys(self._key("setup")))

    def claim(self, worker: int, generation: int, token: str) -> bool:
        return bool(self._redis.eval(_CLAIM, 2, self._key("alive"),
                                     self._key("claim", generation, worker), token, KEY_TTL))

    def beat(self, worker: int, generation: int, pid: int, lease: float) -> None:
        lease_key = self._key(f"g{generation}", "lease", worker)
        self._redis.eval(_BEAT, 3, self._key("alive"), lease_key, self._key("generation"),
                         pid, max(1, int(lease * 1000)), generation)

    def leases(self) -> dict[int, int]:
        values = self._redis.mget([self._gkey("lease", w) for w in range(self.n_workers)])
        return {worker: int(value) for worker, value in enumerate(values) if value is not None}

    def generation(self) -> int:
        number = self._redis.get(self._key("generation"))
        return 0 if number is None else int(number)

    def failure(self) -> str | None:
        message = self._redis.get(self._gkey("failure"))
        return None if message is None else message.decode()

    def new_generation(self, generation: int) -> None:
        # The fence first: from here on no earlier generation writes.
        self._redis.set(self._key("generation"), generation, ex=KEY_TTL)
        # Messages up to the round the next generation resumes at (its
        # coordinator publishes that one again), records, setup messages;
        # of the earlier generations, what their workers may still block on
        # (with its abort marker) and their claims.
        resume = self._redis.hlen(self._key("records"))
        kept = {self._key(name) for name in ("records", "setup", "round", "alive",
                                             "generation")}
        kept |= {self._key("message", r) for r in range(max(0, resume - 2), resume)}
        stale = []
        for key in self._redis.scan_iter(match=self._prefix + "*", count=1000):
            name = key.decode()
            part, _, rest = name[len(self._prefix):].partition(":")
            if name in kept or part == "claim" or (
                    part[:1] == "g" and rest.partition(":")[0] in _WOKEN):
                continue
            stale.append(key)
        if stale:
            self._redis.delete(*stale)
        self.own_generation = generation
        self._inbox_keys = None
        self._own.clear()
        self._slots.clear()
        self._stale, self._held = [], None

    def post_log(self, line: str) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.rpush(self._gkey("log"), line)
        pipe.expire(self._gkey("log"), KEY_TTL)
        pipe.execute()

    def read_log(self, start: int) -> list[str]:
        return [line.decode() for line in self._redis.lrange(self._gkey("log"), start, -1)]

    def abort(self, message: str) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(self._gkey("failure"), message, ex=KEY_TTL, nx=True)
        latest = self.progress()
        # Lock waiters block on their grant list of the current (or next) round.
        waiting = [self._gkey("grant", r, w) for r in (latest, latest + 1)
                   for w in range(self.n_workers)]
        for key in [self._gkey("arrivals"), *waiting] + [
            self._gkey("inbox", w) for w in range(1, self.n_workers)
        ]:
            pipe.rpush(key, _ABORT)
            pipe.expire(key, KEY_TTL)
        pipe.execute()

    def _sweep_orphans(self) -> None:
        here = socket.gethostname()
        for namespace, owner in self._redis.hgetall(_OWNERS).items():
            host, _, pid = owner.decode().rpartition(":")
            if host == here and pid.isdigit() and not process_alive(int(pid)):
                prefix = f"sks:{{{namespace.decode()}}}:"
                keys = list(self._redis.scan_iter(match=prefix + "*", count=1000))
                if keys:
                    self._redis.delete(*keys)
                self._redis.hdel(_OWNERS, namespace)
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(_OWNERS, self.spec.namespace, f"{here}:{os.getpid()}")
        pipe.expire(_OWNERS, KEY_TTL)
        pipe.execute()

    def cleanup(self) -> None:
        keys = list(self._redis.scan_iter(match=self._prefix + "*", count=1000))
        if keys:
            self._redis.delete(*keys)
        self._redis.hdel(_OWNERS, self.spec.namespace)

    def close(self) -> None:
        self._redis.close()

    def _failure(self) -> str:
        message = self._redis.get(self._gkey("failure"))
        return message.decode() if message else "the fit was aborted"
