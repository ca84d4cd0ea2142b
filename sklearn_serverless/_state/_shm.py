"""Shared-memory state store, for workers that all run on this machine.

The state of one fit is a folder (in the fit's private folder, itself in
``/dev/shm`` when there is room): a small ``control`` file every party maps
(the generation, the last round published, the failure flag, each worker's
last contribution, check-in and lease, and two wake-up words) and plain
files for what varies in size (messages, partials, records, the log).
Writes that must be fenced hold an ``flock`` on ``control`` (the kernel
drops it if its holder dies) and check the generation inside it; waiters
sleep on the wake-up words (:mod:`._futex`) and re-check the state when
woken. A round costs a few system calls instead of database transactions.

Partials are summed by the reader in worker order, as in the other stores:
the same bits whoever finished first. Messages and partials are written to
a temporary name and renamed, so a reader never sees half of one.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
import struct
import time

import numpy as np

from . import _futex
from ._base import Backoff, FitAborted, Reduce, StateStore, StoreSpec, sum_in_worker_order
from ._codec import decode_array, encode_array

# control: a header, then one row per worker (little-endian int64 / float64).
_GENERATION, _PROGRESS, _FAILED, _PUBLISHED, _CONTRIBUTED = 0, 8, 16, 24, 28
_HEADER, _ROW = 64, 48
# a worker's row: round + 1 of its last partial, checked in, then its lease
_DONE, _STARTED, _LEASE_GEN, _LEASE_PID, _LEASE_UNTIL, _LEASED = 0, 8, 16, 24, 32, 40
_Q, _D, _I = struct.Struct("<q"), struct.Struct("<d"), struct.Struct("<i")
#: A frame of the records and log files: round (or 0) and length, then the body.
_FRAME = struct.Struct("<qq")
#: Longest sleep before a waiter re-checks the state anyway.
RECHECK = 0.05


class SharedMemoryStore(StateStore):
    """State of one fit in the folder ``spec.location`` (see module doc)."""

    def __init__(self, spec: StoreSpec, create: bool = False):
        super().__init__(spec)
        self.folder = spec.location
        control = os.path.join(self.folder, "control")
        size = _HEADER + _ROW * spec.n_workers
        if create:
            os.makedirs(self.folder, mode=0o700, exist_ok=True)
            fd = os.open(control, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            os.ftruncate(fd, size)
        else:
            fd = os.open(control, os.O_RDWR)  # FileNotFoundError once the fit is over
        self._fd = fd
        self._fds: dict[str, int] = {}
        self._map = mmap.mmap(fd, size)
        if create:
            _Q.pack_into(self._map, _PROGRESS, -1)
        base = _futex.address_of(self._map)
        self._published_at = base + _PUBLISHED
        self._contributed_at = base + _CONTRIBUTED

    # fencing and wake-ups ---------------------------------------------------------------------

    def _get(self, offset: int) -> int:
        return _Q.unpack_from(self._map, offset)[0]

    def _set(self, offset: int, value: int) -> None:
        _Q.pack_into(self._map, offset, value)

    def _row(self, worker: int, field: int) -> int:
        return _HEADER + _ROW * worker + field

    @contextlib.contextmanager
    def _locked(self, fenced: bool = True):
        """Hold the store's lock; ``fenced``: only while this view's
        generation is the current one (else :class:`FitAborted`)."""
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            backoff = Backoff(self.timeout, first=1e-5)
            while True:
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not backoff.wait():
                        raise self._timeout_error("the state lock was not free") from None
        try:
            if fenced:
                self._check_generation()
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _check_generation(self) -> None:
        current = self._get(_GENERATION)
        if current != self.own_generation:
            raise self._replaced(current)

    def _bump(self, offset: int) -> None:
        (value,) = _I.unpack_from(self._map, offset)
        _I.pack_into(self._map, offset, (value + 1) & 0x7FFFFFFF)

    def _wait(self, word: int, ready, what: str):
        """``ready()``'s value once it is not None, sleeping on the wake-up
        word at offset ``word``; raises when aborted, replaced or after the
        timeout (``what`` says what did not come)."""
        deadline = time.monotonic() + self.timeout
        address = self._published_at - _PUBLISHED + word
        while True:
            (seen,) = _I.unpack_from(self._map, word)
            value = ready()
            if value is not None:
                return value
            self._check_generation()
            if self._get(_FAILED):
                raise FitAborted(self.failure() or "the fit was aborted")
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._timeout_error(what)
            _futex.wait(address, seen, min(left, RECHECK))

    # files ------------------------------------------------------------------------------------
    # The files of the rounds stay open and are rewritten in place (pwrite /
    # pread: a system call each, where creating and renaming a file costs
    # ten times as much).

    def _path(self, name: str) -> str:
        return os.path.join(self.folder, name)

    def _fd_of(self, name: str, create: bool = True) -> int | None:
        fd = self._fds.get(name)
        if fd is None:
            try:
                fd = os.open(self._path(name), os.O_RDWR | (os.O_CREAT if create else 0), 0o600)
            except FileNotFoundError:
                return None
            self._fds[name] = fd
        return fd

    def _put(self, name: str, key: int, body: bytes) -> None:
        """Body ``body`` under ``key`` (a round) in file ``name``. Written in
        place: nobody reads that file's body while it is rewritten (a round's
        readers are done before the next round writes it)."""
        os.pwrite(self._fd_of(name), _FRAME.pack(key, len(body)) + body, 0)

    def _take(self, name: str, key: int | None = None) -> bytes | None:
        """The body of file ``name``, if it holds ``key`` (None: any key)."""
        fd = self._fd_of(name, create=False)
        if fd is None:
            return None
        head = os.pread(fd, _FRAME.size, 0)
        if len(head) < _FRAME.size:
            return None
        stored, length = _FRAME.unpack(head)
        if key is not None and stored != key:
            return None
        return os.pread(fd, length, _FRAME.size)

    def _write(self, name: str, body: bytes) -> None:
        """Replace file ``name`` at once (the files written once a fit)."""
        path = self._path(name)
        temporary = f"{path}.{os.getpid()}.{id(self)}"
        with open(temporary, "wb") as file:
            file.write(body)
        os.replace(temporary, path)

    def _read(self, name: str) -> bytes | None:
        try:
            with open(self._path(name), "rb") as file:
                return file.read()
        except FileNotFoundError:
            return None

    def _close_files(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def _unlink(self, name: str) -> None:
        fd = self._fds.pop(name, None)
        if fd is not None:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(name))

    def _append(self, name: str, key: int, body: bytes) -> None:
        fd = self._fds.get(name)
        if fd is None:
            fd = os.open(self._path(name), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._fds[name] = fd
        os.write(fd, _FRAME.pack(key, len(body)) + body)

    def _frames(self, name: str) -> list[tuple[int, bytes]]:
        blob = self._read(name) or b""
        frames, at = [], 0
        while at + _FRAME.size <= len(blob):
            key, length = _FRAME.unpack_from(blob, at)
            at += _FRAME.size
            frames.append((key, blob[at:at + length]))
            at += length
        return frames

    # the interface ----------------------------------------------------------------------------

    def check_in(self, worker: int) -> None:
        with self._locked():
            self._set(self._row(worker, _STARTED), 1)

    def started(self) -> set[int]:
        return {w for w in range(self.n_workers) if self._get(self._row(w, _STARTED))}

    def publish(self, round_: int, message: bytes, record: bytes | None = None,
                setup: bool = False) -> None:
        with self._locked():
            # Two messages are kept: this round's and the last (a new worker
            # rebuilds its state from it); the one before last, which this one
            # replaces, everyone has read (they contributed to it).
            self._put(f"msg-{round_ % 2}", round_, message)
            if record is not None:
                self._append("records", round_ - 1, record)
            if setup:
                self._write(f"setup-{round_}", message)
            self._set(_PROGRESS, round_)
            self._bump(_PUBLISHED)
        _futex.wake(self._published_at)

    def message(self, round_: int) -> bytes | None:
        body = self._take(f"msg-{round_ % 2}", round_)
        return body if body is not None else self._read(f"setup-{round_}")

    def records(self) -> list[bytes]:
        kept = dict(self._frames("records"))  # a round recorded again: the last one
        return [kept[r] for r in sorted(kept)]

    def setup_rounds(self) -> list[int]:
        names = os.listdir(self.folder)
        return sorted(int(n[6:]) for n in names if n.startswith("setup-") and n[6:].isdigit())

    def claim(self, worker: int, generation: int, token: str) -> bool:
        path = self._path(f"claim-{generation}-{worker}")
        temporary = f"{path}.{token}"
        with open(temporary, "w") as file:
            file.write(token)
        try:
            os.link(temporary, path)  # fails if another call made it first
        except FileExistsError:
            pass
        finally:
            os.unlink(temporary)
        with open(path) as file:
            return file.read() == token

    def beat(self, worker: int, generation: int, pid: int, lease: float) -> None:
        with self._locked(fenced=False):
            if self._get(_GENERATION) != generation:
                return
            self._set(self._row(worker, _LEASE_GEN), generation)
            self._set(self._row(worker, _LEASE_PID), pid)
            _D.pack_into(self._map, self._row(worker, _LEASE_UNTIL), time.time() + lease)
            self._set(self._row(worker, _LEASED), 1)

    def leases(self) -> dict[int, int]:
        now, held = time.time(), {}
        for w in range(self.n_workers):
            if (self._get(self._row(w, _LEASED))
                    and self._get(self._row(w, _LEASE_GEN)) == self.own_generation
                    and _D.unpack_from(self._map, self._row(w, _LEASE_UNTIL))[0] > now):
                held[w] = self._get(self._row(w, _LEASE_PID))
        return held

    def generation(self) -> int:
        return self._get(_GENERATION)

    def failure(self) -> str | None:
        if not self._get(_FAILED):
            return None
        body = self._read("failure")
        return None if body is None else body.decode()

    def new_generation(self, generation: int) -> None:
        with self._locked(fenced=False):  # one step: no earlier write lands after it
            n_records = len(self.records())
            for name in os.listdir(self.folder):
                if name.startswith(("slot-", "acc-")) or name in ("failure", "log"):
                    self._unlink(name)
            kept = []
            for parity in (0, 1):
                body = self._take(f"msg-{parity}")
                if body is None:
                    continue
                (round_, _) = _FRAME.unpack(os.pread(self._fds[f"msg-{parity}"], _FRAME.size, 0))
                if round_ >= n_records:
                    # The round the next generation resumes at is published again
                    # by its coordinator: what the last one left there must not
                    # reach the new followers first.
                    self._put(f"msg-{parity}", -1, b"")
                elif round_ >= 0:
                    kept.append(round_)
            self._map[_HEADER:] = bytes(_ROW * self.n_workers)
            self._set(_PROGRESS, max(kept, default=-1))
            self._set(_FAILED, 0)
            self._set(_GENERATION, generation)
            self._bump(_PUBLISHED)
            self._bump(_CONTRIBUTED)
        self.own_generation = generation
        self._wake_all()

    def fetch(self, round_: int, worker: int) -> bytes:
        def ready():
            if self._get(_PROGRESS) >= round_:
                return self._take(f"msg-{round_ % 2}", round_)
            return None

        return self._wait(_PUBLISHED, ready,
                          f"worker {worker} got no message for round {round_}")

    def contribute(self, round_: int, worker: int, partial: np.ndarray,
                   slots: bool = False) -> None:
        done = self._row(worker, _DONE)
        if slots or self.spec.mode == "lock_free":
            # A second contribution of this generation's worker is the same
            # partial (another generation's file is never read).
            self._put(f"slot-{self.own_generation}-{worker}", round_, encode_array(partial))
            with self._locked():
                self._set(done, round_ + 1)
                complete = self._ring_if_complete(round_, worker)
        else:
            with self._locked():
                # A worker's partial is added once per round, even if given twice.
                if self._get(done) < round_ + 1:
                    name = f"acc-{self.own_generation}"
                    body = self._take(name, round_)
                    total = partial if body is None else decode_array(body) + partial
                    self._put(name, round_, encode_array(total))
                    self._set(done, round_ + 1)
                complete = self._ring_if_complete(round_, worker)
        if complete:
            _futex.wake(self._contributed_at)

    def _ring_if_complete(self, round_: int, worker: int) -> bool:
        """Bump the coordinator's word if this contribution completed the
        round (under the lock): it wakes once per round, not per worker."""
        if worker == 0 or not self._complete(round_):
            return False  # the coordinator checks at its barrier
        self._bump(_CONTRIBUTED)
        return True

    def _count(self, round_: int) -> int:
        return sum(self._get(self._row(w, _DONE)) == round_ + 1 for w in range(self.n_workers))

    def _complete(self, round_: int) -> bool:
        return self._count(round_) >= self.n_workers

    def barrier(self, round_: int, slots: bool = False) -> None:
        try:
            self._wait(_CONTRIBUTED, lambda: True if self._complete(round_) else None,
                       "")
        except TimeoutError:
            missing = [w for w in range(self.n_workers)
                       if self._get(self._row(w, _DONE)) != round_ + 1]
            raise self._timeout_error(
                f"workers {missing} did not contribute to round {round_}") from None

    def aggregate(self, round_: int, reduce: Reduce = sum_in_worker_order,
                  slots: bool = False):
        if slots or self.spec.mode == "lock_free":
            total = reduce([decode_array(self._take(f"slot-{self.own_generation}-{w}", round_))
                            for w in range(self.n_workers)])
        else:
            total = decode_array(self._take(f"acc-{self.own_generation}", round_))
        self._check_generation()  # a replaced coordinator goes no further
        return total

    def progress(self) -> int:
        return self._get(_PROGRESS)

    def post_log(self, line: str) -> None:
        with self._locked():
            self._append("log", 0, line.encode())

    def read_log(self, start: int) -> list[str]:
        return [body.decode() for _, body in self._frames("log")[start:]]

    def abort(self, message: str) -> None:
        with self._locked(fenced=False):
            if self._get(_GENERATION) != self.own_generation:
                return  # a replaced generation's failure is not the fit's
            if not self._get(_FAILED):
                self._write("failure", message.encode())
                self._set(_FAILED, 1)
            self._bump(_PUBLISHED)
            self._bump(_CONTRIBUTED)
        self._wake_all()

    def _wake_all(self) -> None:
        _futex.wake(self._published_at)
        _futex.wake(self._contributed_at)

    def cleanup(self) -> None:
        # A reader still attached keeps its mapping; nothing else stays.
        for name in os.listdir(self.folder):
            self._unlink(name)
        self._close_files()
        with contextlib.suppress(OSError):
            os.rmdir(self.folder)

    def close(self) -> None:
        if self._map.closed:
            return
        self._close_files()
        self._map.close()
        os.close(self._fd)
