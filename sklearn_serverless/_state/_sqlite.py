"""Embedded state store: one SQLite database (WAL mode) in the fit's private
temporary folder. A waiter sleeps on a doorbell (a Unix datagram socket next
to the database) that writers ring after they commit, and re-checks the
database when woken; the lock of ``mode='locked'`` is an immediate (write)
transaction. A contribution rings the coordinator only when it completes
the round (it counts the round's slots after its own): the coordinator
wakes once per round, not once per worker.

Fencing: the tables hold the current generation's rows only
(:meth:`SQLiteStore.new_generation` empties them in the transaction that
advances the generation), and every write checks the generation in its own
statement or transaction: a worker of an earlier generation writes nothing."""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import time

import numpy as np

from ._base import Backoff, FitAborted, Reduce, StateStore, StoreSpec, sum_in_worker_order
from ._codec import decode_array, encode_array

_SCHEMA = """
CREATE TABLE IF NOT EXISTS message (round INTEGER PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS slot (
    round INTEGER NOT NULL, worker INTEGER NOT NULL, body BLOB,
    PRIMARY KEY (round, worker));
CREATE TABLE IF NOT EXISTS accumulator (round INTEGER PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS failure (id INTEGER PRIMARY KEY, message TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS log (id INTEGER PRIMARY KEY, line TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS started (worker INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS generation (id INTEGER PRIMARY KEY, number INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS record (round INTEGER PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS setup (round INTEGER PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS claim (
    worker INTEGER NOT NULL, generation INTEGER NOT NULL, token TEXT NOT NULL,
    PRIMARY KEY (worker, generation));
CREATE TABLE IF NOT EXISTS lease (
    worker INTEGER PRIMARY KEY, generation INTEGER NOT NULL, pid INTEGER NOT NULL,
    until REAL NOT NULL);
"""
#: The current generation, in a statement (no row: generation 0).
_GEN = "COALESCE((SELECT number FROM generation WHERE id = 0), 0)"
_TABLES = ("generation", "message", "slot", "accumulator", "failure", "log", "started",
           "record", "setup", "claim", "lease")


class SQLiteStore(StateStore):
    """State of one fit in the SQLite file ``spec.location``."""

    def __init__(self, spec: StoreSpec, create: bool = False):
        super().__init__(spec)
        if not create and not os.path.exists(spec.location):
            raise FileNotFoundError(f"state database {spec.location} does not exist")
        self._db = sqlite3.connect(
            spec.location, timeout=spec.timeout, isolation_level=None, check_same_thread=False
        )
        # The state lives as long as one fit: durability buys nothing.
        self._db.execute("PRAGMA synchronous=OFF")
        self._bells = _Doorbells(os.path.dirname(spec.location), spec.generation)
        if create:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)

    def check_in(self, worker: int) -> None:
        # The database goes with the fit's folder: a late worker cannot open it.
        self._db.execute(f"INSERT OR IGNORE INTO started SELECT ? WHERE {_GEN} = ?",
                         (worker, self.own_generation))
        self._check_generation()

    def _check_generation(self) -> None:
        current = self.generation()
        if current != self.own_generation:
            raise self._replaced(current)

    @contextlib.contextmanager
    def _fenced(self):
        """A write transaction that commits only while this view's
        generation is the current one (else :class:`FitAborted`)."""
        # BEGIN IMMEDIATE takes the database's write lock, waiting at most `timeout`.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            (current,) = self._db.execute(f"SELECT {_GEN}").fetchone()
            if current != self.own_generation:
                raise self._replaced(current)
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def started(self) -> set[int]:
        return {worker for (worker,) in self._db.execute("SELECT worker FROM started")}

    def publish(self, round_: int, message: bytes, record: bytes | None = None,
                setup: bool = False) -> None:
        with self._fenced():
            # A replacement coordinator publishes again the round it resumes at.
            self._db.execute("INSERT OR REPLACE INTO message VALUES (?, ?)", (round_, message))
            # Everyone has read the message before last: they contributed to it.
            self._db.execute("DELETE FROM message WHERE round < ?", (round_ - 1,))
            if record is not None:
                self._db.execute("INSERT OR REPLACE INTO record VALUES (?, ?)",
                                 (round_ - 1, record))
            if setup:
                self._db.execute("INSERT OR REPLACE INTO setup VALUES (?, ?)", (round_, message))
        self._bells.ring(range(1, self.n_workers))

    def message(self, round_: int) -> bytes | None:
        for table in ("message", "setup"):
            row = self._db.execute(f"SELECT body FROM {table} WHERE round = ?",
                                   (round_,)).fetchone()
            if row is not None:
                return row[0]
        return None

    def records(self) -> list[bytes]:
        return [body for (body,) in self._db.execute("SELECT body FROM record ORDER BY round")]

    def setup_rounds(self) -> list[int]:
        return [r for (r,) in self._db.execute("SELECT round FROM setup ORDER BY round")]

    def claim(self, worker: int, generation: int, token: str) -> bool:
        self._db.execute("INSERT OR IGNORE INTO claim VALUES (?, ?, ?)",
                         (worker, generation, token))
        (owner,) = self._db.execute("SELECT token FROM claim WHERE worker = ? AND generation = ?",
                                    (worker, generation)).fetchone()
        return owner == token

    def beat(self, worker: int, generation: int, pid: int, lease: float) -> None:
        self._db.execute(f"INSERT OR REPLACE INTO lease SELECT ?, ?, ?, ? WHERE {_GEN} = ?",
                         (worker, generation, pid, time.time() + lease, generation))

    def leases(self) -> dict[int, int]:
        rows = self._db.execute(
            "SELECT worker, pid FROM lease WHERE until > ? AND generation = ?",
            (time.time(), self.own_generation))
        return dict(rows.fetchall())

    def generation(self) -> int:
        row = self._db.execute("SELECT number FROM generation WHERE id = 0").fetchone()
        return 0 if row is None else int(row[0])

    def failure(self) -> str | None:
        row = self._db.execute("SELECT message FROM failure ORDER BY id LIMIT 1").fetchone()
        return None if row is None else row[0]

    def new_generation(self, generation: int) -> None:
        self._db.execute("BEGIN IMMEDIATE")  # one step: no earlier write lands after it
        try:
            for table in ("slot", "accumulator", "failure", "started", "lease", "log"):
                self._db.execute(f"DELETE FROM {table}")
            # The round the next generation resumes at is published again by
            # its coordinator: what the last one left there (a hand-over, a
            # half-run round) must not reach the new followers first.
            self._db.execute("DELETE FROM message WHERE round >= (SELECT COUNT(*) FROM record)")
            self._db.execute("INSERT OR REPLACE INTO generation VALUES (0, ?)", (generation,))
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        self.own_generation = generation
        self._bells.generation = generation

    def fetch(self, round_: int, worker: int) -> bytes:
        row = self._poll("SELECT body FROM message WHERE round = ?", (round_,), worker)
        if row is None:
            raise self._timeout_error(f"worker {worker} got no message for round {round_}")
        return row[0]

    def contribute(self, round_: int, worker: int, partial: np.ndarray,
                   slots: bool = False) -> None:
        if slots or self.spec.mode == "lock_free":
            # OR REPLACE: a second contribution of this generation's worker
            # is the same partial (another generation's writes nothing).
            written = self._db.execute(
                f"INSERT OR REPLACE INTO slot SELECT ?, ?, ? WHERE {_GEN} = ?",
                (round_, worker, encode_array(partial), self.own_generation)
            ).rowcount
            if not written:
                self._check_generation()
            self._ring_coordinator(round_, worker)
            return
        with self._fenced():
            # A worker's partial is added once per round, even if it is given
            # twice (the marker row is in the same transaction).
            added = self._db.execute("INSERT OR IGNORE INTO slot VALUES (?, ?, NULL)",
                                     (round_, worker)).rowcount
            if added:
                row = self._db.execute(
                    "SELECT body FROM accumulator WHERE round = ?", (round_,)
                ).fetchone()
                total = partial if row is None else decode_array(row[0]) + partial
                self._db.execute(
                    "INSERT OR REPLACE INTO accumulator VALUES (?, ?)",
                    (round_, encode_array(total))
                )
        self._ring_coordinator(round_, worker)

    def _ring_coordinator(self, round_: int, worker: int) -> None:
        """Wake the coordinator if this contribution completed the round.
        Counted after the commit: the last to commit sees every slot (two
        that commit together may both ring; a ring is only a hint)."""
        if worker == 0:
            return  # the coordinator checks at its barrier
        (count,) = self._db.execute("SELECT COUNT(*) FROM slot WHERE round = ?",
                                    (round_,)).fetchone()
        if count >= self.n_workers:
            self._bells.ring([0])

    def barrier(self, round_: int, slots: bool = False) -> None:
        query = "SELECT 1 FROM (SELECT COUNT(*) AS n FROM slot WHERE round = ?) WHERE n = ?"
        if self._poll(query, (round_, self.n_workers), 0) is None:
            rows = self._db.execute("SELECT worker FROM slot WHERE round = ?", (round_,))
            missing = self._missing({w for (w,) in rows})
            raise self._timeout_error(f"workers {missing} did not contribute to round {round_}")

    def aggregate(self, round_: int, reduce: Reduce = sum_in_worker_order,
                  slots: bool = False):
        if slots or self.spec.mode == "lock_free":
            rows = self._db.execute(
                "SELECT body FROM slot WHERE round = ? ORDER BY worker", (round_,)
            ).fetchall()
            total = reduce([decode_array(body) for (body,) in rows])
        else:
            (body,) = self._db.execute(
                "SELECT body FROM accumulator WHERE round = ?", (round_,)
            ).fetchone()
            total = decode_array(body)
        with self._fenced():
            self._db.execute("DELETE FROM slot WHERE round = ?", (round_,))
            self._db.execute("DELETE FROM accumulator WHERE round = ?", (round_,))
        return total

    def progress(self) -> int:
        (latest,) = self._db.execute("SELECT COALESCE(MAX(round), -1) FROM message").fetchone()
        return int(latest)

    def post_log(self, line: str) -> None:
        if not self._db.execute(f"INSERT INTO log (line) SELECT ? WHERE {_GEN} = ?",
                                (line, self.own_generation)).rowcount:
            self._check_generation()

    def read_log(self, start: int) -> list[str]:
        rows = self._db.execute("SELECT line FROM log ORDER BY id LIMIT -1 OFFSET ?", (start,))
        return [line for (line,) in rows]

    def abort(self, message: str) -> None:
        if self._db.execute(f"INSERT INTO failure (message) SELECT ? WHERE {_GEN} = ?",
                            (message, self.own_generation)).rowcount:
            self._bells.ring(range(self.n_workers))

    def cleanup(self) -> None:
        # The database file goes with the fit's temporary folder; empty it first
        # so that a reader still attached sees nothing stale.
        with self._db:
            for table in _TABLES:
                self._db.execute(f"DELETE FROM {table}")

    def close(self) -> None:
        self._bells.close()
        self._db.close()

    def _poll(self, query: str, args: tuple, party: int) -> tuple | None:
        """The first row of ``query`` once there is one; None after the timeout.
        ``party`` is who waits: its doorbell wakes it (else it polls)."""
        bell = self._bells.listen(party)
        backoff = Backoff(self.timeout)
        while True:
            row = self._db.execute(query, args).fetchone()
            if row is not None:
                return row
            failure, current = self._db.execute(
                f"SELECT (SELECT message FROM failure ORDER BY id LIMIT 1), {_GEN}").fetchone()
            if current != self.own_generation:
                raise self._replaced(current)
            if failure is not None:
                raise FitAborted(failure)
            if not (backoff.wait() if bell is None else bell.wait(backoff.deadline)):
                return None


class _Doorbells:
    """Wake-ups between the processes of one fit: each waiting party binds a
    Unix datagram socket in the fit's folder; a writer sends it a byte after
    committing. A ring is only a hint to re-check the database, and a waiter
    re-checks every ``RECHECK`` seconds anyway, so a lost ring costs time,
    never correctness. Without Unix sockets (or with a too long path) the
    waiter polls instead."""

    RECHECK = 0.05

    def __init__(self, folder: str, generation: int):
        self.folder = folder
        self.generation = generation  # a replaced worker's bell is not its successor's
        self._listening: dict[int, _Bell | None] = {}
        self._sender: socket.socket | None = None
        self._paths: dict[tuple[int, int], str] = {}

    def _path(self, party: int) -> str:
        path = self._paths.get((self.generation, party))
        if path is None:
            path = os.path.join(self.folder, f"bell-{self.generation}-{party}")
            self._paths[self.generation, party] = path
        return path

    def listen(self, party: int) -> _Bell | None:
        """``party``'s bell, bound on first use; None where sockets fail."""
        if party not in self._listening:
            self._listening[party] = _Bell.bind(self._path(party))
        return self._listening[party]

    def ring(self, parties) -> None:
        if self._sender is None:
            try:
                self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sender.setblocking(False)
            except (AttributeError, OSError):
                return
        sendto, path = self._sender.sendto, self._path
        for party in parties:
            try:
                sendto(b"!", path(party))
            except OSError:  # not listening (yet), or already rung: it re-checks anyway
                pass

    def close(self) -> None:
        for bell in self._listening.values():
            if bell is not None:
                bell.close()
        if self._sender is not None:
            self._sender.close()


class _Bell:
    def __init__(self, sock: socket.socket, path: str):
        self.sock, self.path = sock, path

    @classmethod
    def bind(cls, path: str) -> _Bell | None:
        """A bell at ``path``; None without AF_UNIX (Windows) or where
        ``path`` cannot be bound (too long, already taken)."""
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        except (AttributeError, OSError):
            return None
        try:
            sock.bind(path)
        except OSError:
            sock.close()
            return None
        return cls(sock, path)

    def wait(self, deadline: float) -> bool:
        """Sleep until rung, ``RECHECK`` passes or ``deadline``; False after it."""
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(min(left, _Doorbells.RECHECK))
        try:
            self.sock.recv(16)
            self.sock.setblocking(False)
            while True:  # drain rings that piled up: one re-check covers them
                self.sock.recv(16)
        except OSError:  # timeout, or nothing more to drain
            pass
        return True

    def close(self) -> None:
        self.sock.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass
