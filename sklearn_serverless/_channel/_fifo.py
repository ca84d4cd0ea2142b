"""The channel of a pool whose workers share this machine's files (see
:mod:`._pool_channel`).

The pool's folder (private, 0700, in ``/dev/shm`` when there is one) holds
one FIFO per slot (``slot-<i>.fifo``) and one for the owner (``done.fifo``).
A job is a line ``<job id>`` on the slot's FIFO; its body is the file
``job-<id>-<slot>.pkl``. The worker writes ``result-<id>-<slot>.pkl``,
renamed into place, then the line ``<id> <slot>`` on ``done.fifo``. A
worker writes its pid to ``slot-<i>.pid`` and ends when its owner's process
is gone.
"""

from __future__ import annotations

import os
import selectors
from dataclasses import dataclass

from .._common._process import process_alive
from ._base import STOP, Endpoint, OwnerChannel, WorkerChannel


class FifoChannel(OwnerChannel):
    """The owner's side: FIFOs and files in the pool's folder."""

    def __init__(self, folder: str, size: int, **_):
        self.folder = folder
        self._fds: list[int] = []
        self._done: int | None = None
        self._lines = b""
        self._pids: dict[int, int] = {}
        for slot in range(size):
            os.mkfifo(self._path(f"slot-{slot}.fifo"), 0o600)
            self._fds.append(os.open(self._path(f"slot-{slot}.fifo"),
                                     os.O_RDWR | os.O_NONBLOCK))
        os.mkfifo(self._path("done.fifo"), 0o600)
        self._done = os.open(self._path("done.fifo"), os.O_RDWR | os.O_NONBLOCK)
        # Not select(): it fails on a descriptor numbered past 1,023.
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._done, selectors.EVENT_READ)

    def _path(self, name: str) -> str:
        return os.path.join(self.folder, name)

    def endpoint(self, slot: int) -> FifoEndpoint:
        return FifoEndpoint(self.folder, slot, os.getpid())

    def send(self, job: int, bodies: list[bytes]) -> None:
        for slot, body in enumerate(bodies):
            _write_file(self._path(f"job-{job}-{slot}.pkl"), body)
        for slot in range(len(bodies)):
            os.write(self._fds[slot], f"{job}\n".encode())

    def done(self, seconds: float) -> list[tuple[int, int]]:
        if not self._selector.select(seconds):
            return []
        try:
            self._lines += os.read(self._done, 4096)
        except BlockingIOError:
            pass
        *lines, self._lines = self._lines.split(b"\n")
        return [tuple(map(int, line.split())) for line in lines]

    def take(self, job: int, slot: int) -> bytes:
        path = self._path(f"result-{job}-{slot}.pkl")
        with open(path, "rb") as file:
            body = file.read()
        os.unlink(path)
        return body

    def pids(self) -> dict[int, int]:
        for slot in range(len(self._fds)):
            if slot not in self._pids:
                try:
                    with open(self._path(f"slot-{slot}.pid"), "rb") as file:
                        self._pids[slot] = int(file.read())
                except (OSError, ValueError):
                    pass
        return dict(self._pids)

    def stop(self, n_slots: int) -> None:
        for fd in self._fds[:n_slots]:
            try:
                os.write(fd, f"{STOP}\n".encode())
            except OSError:
                pass

    def close(self) -> None:
        if self._done is not None:
            self._selector.close()
        for fd in [*self._fds, self._done]:
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._fds, self._done = [], None  # the folder itself is the pool's


@dataclass(frozen=True)
class FifoEndpoint(Endpoint):
    """A slot's FIFO in the pool's folder, and the owner's pid."""

    folder: str
    slot: int
    owner_pid: int

    def connect(self, storage) -> _FifoWorker:
        return _FifoWorker(self)


class _FifoWorker(WorkerChannel):
    def __init__(self, endpoint: FifoEndpoint):
        self.folder, self.slot, self.owner = endpoint.folder, endpoint.slot, endpoint.owner_pid
        self.fifo = os.open(self._path(f"slot-{self.slot}.fifo"), os.O_RDWR | os.O_NONBLOCK)
        self.pending = b""
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.fifo, selectors.EVENT_READ)
        _write_file(self._path(f"slot-{self.slot}.pid"), str(os.getpid()).encode())

    def _path(self, name: str) -> str:
        return os.path.join(self.folder, name)

    def next_job(self, seconds: float) -> str | None:
        if b"\n" not in self.pending:
            if self._selector.select(seconds):
                try:
                    self.pending += os.read(self.fifo, 4096)
                except BlockingIOError:
                    pass
            if b"\n" not in self.pending:
                return None
        line, self.pending = self.pending.split(b"\n", 1)
        return line.decode().strip()

    def owner_alive(self) -> bool:
        return process_alive(self.owner)

    def read_job(self, job: str) -> bytes:
        path = self._path(f"job-{job}-{self.slot}.pkl")
        with open(path, "rb") as file:
            body = file.read()
        os.unlink(path)
        return body

    def post(self, job: str, body: bytes) -> None:
        _write_file(self._path(f"result-{job}-{self.slot}.pkl"), body)
        try:
            done = os.open(self._path("done.fifo"), os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # the owner is gone (no reader): nobody waits for it
            return
        try:
            os.write(done, f"{job} {self.slot}\n".encode())
        except OSError:
            pass
        finally:
            os.close(done)

    def close(self, owner_gone: bool) -> None:
        self._selector.close()
        os.close(self.fifo)


def _write_file(path: str, body: bytes) -> None:
    partial = f"{path}.partial"
    with open(partial, "wb") as file:
        file.write(body)
    os.rename(partial, path)
