"""The warm server behind :func:`sklearn_serverless._driver._warm.warm_runtime`.

It runs in its own interpreter, started by one user process (the owner). It
imports once what every Lithops job of a fit needs (Lithops' worker handler,
numpy, scipy, the state stores, this package's worker-side modules; never
scikit-learn), then waits. Each request of the runtime executable (one
``<runtime> RUNNER_FILE <command> ...`` of Lithops' localhost engine) becomes
a forked child that adopts the executable's stdin/stdout/stderr, argv, cwd
and environment, runs the runner file and exits; the executable exits with
its status. Protocol on the Unix stream socket: the server sends ``A``
when it takes the connection (a client that waited too long for it gives up
before sending anything, so no request runs twice), the client its request
(stdin/stdout/stderr as SCM_RIGHTS, argv, cwd, environment), the server
``S`` (the child started) then ``X<exit code>\\n``, or ``D`` to decline (the
executable then runs the plain interpreter).

Lifetimes:

- the server ends, killing every child's process group, when the owner is
  gone (EOF on the lifetime pipe, whose write end only the owner holds; also
  SIGTERM from ``PR_SET_PDEATHSIG``);
- ``r`` on that pipe retires it (a newer server replaces it): it stops
  accepting and exits once its children are done;
- it exits after ``idle`` seconds with no request and no child;
- a child dies when its executable does (the connection's EOF): Lithops kills
  the executable's process group to stop a job, and the server then kills the
  child's.

Single-threaded, so that forking is safe: OpenBLAS is loaded with one thread
(no thread pool to fork) and each child sets the thread count the request's
environment asks for.
"""

from __future__ import annotations

import ctypes
import os
import selectors
import signal
import socket
import struct
import sys
import time

from ._warm_child import IMPORT_ENV, preload, run_request

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_MAX_REQUEST = 1 << 20
_KILL_WAIT_SECONDS = 5.0


def _prctl(option: int, value: int) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _parent_of(pid: int) -> int:
    """The parent pid of ``pid`` (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        return int(fields[1])
    except (OSError, IndexError, ValueError):
        return 0


def n_threads() -> int:
    """Threads of this process (a fork is only safe with one)."""
    return len(os.listdir("/proc/self/task"))


class Server:
    """The accept / fork / reap loop; see module doc."""

    def __init__(self, listener: socket.socket, lifetime: int, idle: float, owner: int,
                 path: str):
        self.listener = listener
        self.lifetime = lifetime
        self.idle = idle
        self.owner = owner
        self.path = path
        self.import_env = {name: os.environ.get(name) for name in IMPORT_ENV}
        self.children: dict[int, socket.socket | None] = {}
        self.retired = False
        self.owner_gone = False
        self.last_active = time.monotonic()
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)

    def serve(self) -> None:
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, lambda *_: None)
        signal.set_wakeup_fd(self.wake_w.fileno(), warn_on_full_buffer=False)
        self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        self.selector.register(self.lifetime, selectors.EVENT_READ, "lifetime")
        self.selector.register(self.wake_r, selectors.EVENT_READ, "wake")
        self.last_active = time.monotonic()  # idle from now, not from before the imports
        try:
            while not self.owner_gone:
                if not self.children and (self.retired or self._idle_for() > self.idle):
                    if self.retired or not self._accept():  # one may wait in the backlog
                        break
                    continue
                timeout = 1.0 if self.children else max(0.05, self.idle - self._idle_for())
                for key, _ in self.selector.select(min(timeout, 1.0)):
                    self._dispatch(key)
                if os.getppid() != self.owner:
                    self.owner_gone = True
        finally:
            self._shutdown()

    def _idle_for(self) -> float:
        return time.monotonic() - self.last_active

    def _dispatch(self, key: selectors.SelectorKey) -> None:
        if key.data == "accept":
            self._accept()
        elif key.data == "lifetime":
            data = os.read(self.lifetime, 64)
            if not data:
                self.owner_gone = True
            elif b"r" in data:
                self._retire()
        elif key.data == "wake":
            signals = self._drain_wake()
            self._reap()
            if signal.SIGTERM in signals:
                self.owner_gone = True  # PR_SET_PDEATHSIG: the owner died
        else:
            self._watch(key.fileobj, key.data)

    def _drain_wake(self) -> set[int]:
        signals: set[int] = set()
        try:
            while True:
                data = self.wake_r.recv(256)
                if not data:
                    break
                signals.update(data)
        except (BlockingIOError, InterruptedError):
            pass
        return signals

    def _retire(self) -> None:
        if self.retired:
            return
        self.retired = True
        self.selector.unregister(self.listener)
        self._remove_socket()
        self.listener.close()

    def _remove_socket(self) -> None:
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def _accept(self) -> bool:
        """Take one request (False when none was waiting)."""
        try:
            conn, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return False
        self.last_active = time.monotonic()
        fds: list[int] = []
        try:
            conn.settimeout(5.0)
            conn.sendall(b"A")  # the client sends its request only after this
            args, cwd, env, fds = self._read_request(conn)
            reason = self._refusal(conn, args, cwd, env)
            if reason:
                _log(f"declined {args[:2]}: {reason}")
                conn.sendall(b"D")
                conn.close()
                return True
            pid = os.fork()
            if pid == 0:
                self._run_child(conn, fds, args, cwd, env)  # never returns
            self.children[pid] = conn
            conn.sendall(b"S")
            conn.setblocking(False)
            self.selector.register(conn, selectors.EVENT_READ, pid)
        except (OSError, ValueError) as exc:
            _log(f"request failed: {exc!r}")
            conn.close()
        finally:
            for fd in fds:
                os.close(fd)
        return True

    def _read_request(self, conn: socket.socket):
        data, fds, _, _ = socket.recv_fds(conn, 64, 3)
        if len(fds) != 3:
            for fd in fds:
                os.close(fd)
            raise ValueError("a request carries stdin, stdout and stderr")
        header, _, rest = data.partition(b"\n")
        size = int(header)
        if size > _MAX_REQUEST:
            raise ValueError("request too large")
        chunks = [rest]
        received = len(rest)
        while received < size:
            chunk = conn.recv(size - received)
            if not chunk:
                raise ValueError("truncated request")
            chunks.append(chunk)
            received += len(chunk)
        items = b"".join(chunks).split(b"\0")
        n_args = int(items[0])
        args = [os.fsdecode(item) for item in items[1:1 + n_args]]
        cwd = os.fsdecode(items[1 + n_args])
        env = {}
        for item in items[2 + n_args:]:
            name, sep, value = item.partition(b"=")
            if sep:
                env[os.fsdecode(name)] = os.fsdecode(value)
        return args, cwd, env, fds

    def _refusal(self, conn: socket.socket, args: list[str], cwd: str, env: dict) -> str:
        """Why this request must run in a plain interpreter ('' if it need not)."""
        if self.retired:
            return "retired"
        if not args or args[0].startswith("-") or not os.path.isfile(os.path.join(cwd, args[0])):
            return "only 'python <script> ...' is served"
        pid, uid, _ = struct.unpack("3i", conn.getsockopt(
            socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
        if uid != os.getuid() or _parent_of(pid) != self.owner:
            return "not a job process of the owner"
        if any(env.get(name) != value for name, value in self.import_env.items()):
            return "environment differs from the one the modules were imported in"
        if n_threads() != 1:
            return "the server has threads: a fork is not safe"
        return ""

    def _run_child(self, conn: socket.socket, fds: list[int], args: list[str], cwd: str,
                   env: dict) -> None:
        try:
            os.setsid()  # its own process group: killed as one
            _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
            for signum in (signal.SIGCHLD, signal.SIGTERM):
                signal.signal(signum, signal.SIG_DFL)
            signal.set_wakeup_fd(-1)
            for other in [c for c in self.children.values() if c is not None]:
                other.close()
            self.selector.close()
            for sock in (conn, self.wake_r, self.wake_w):
                sock.close()
            if not self.retired:
                self.listener.close()
            os.close(self.lifetime)
        except BaseException:  # noqa: BLE001 - the request cannot run: as a failed start
            os._exit(1)
        run_request(fds, args, cwd, env)

    def _watch(self, conn: socket.socket, pid: int) -> None:
        """The executable's connection: EOF means it was killed (kill the child)."""
        try:
            data = conn.recv(64)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.selector.unregister(conn)
            conn.close()
            self.children[pid] = None
            _kill_group(pid)

    def _reap(self) -> None:
        """Collect exited children (and orphans: this is a subreaper)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid not in self.children:
                continue
            conn = self.children.pop(pid)
            self.last_active = time.monotonic()
            if conn is not None:
                self.selector.unregister(conn)
                try:
                    conn.setblocking(True)
                    conn.settimeout(1.0)
                    conn.sendall(b"X%d\n" % os.waitstatus_to_exitcode(status))
                except OSError:
                    pass
                conn.close()

    def _shutdown(self) -> None:
        if self.owner_gone:
            for pid in self.children:
                _kill_group(pid)
        deadline = time.monotonic() + _KILL_WAIT_SECONDS
        while self.children and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.01)
        if not self.retired:
            self._remove_socket()


def _log(message: str) -> None:
    """To ``SKLEARN_SERVERLESS_WARM_LOG`` when set (the server has no console)."""
    path = os.environ.get("SKLEARN_SERVERLESS_WARM_LOG")
    if path:
        with open(path, "a") as log:
            log.write(f"{time.time():.3f} server {os.getpid()}: {message}\n")


def _kill_group(pid: int) -> None:
    # The child may not have called setsid yet: kill it by pid as well.
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except OSError:
            pass


def main(argv: list[str] | None = None) -> None:
    """``listener_fd lifetime_fd idle_seconds owner_pid socket_path pdeathsig``"""
    listener_fd, lifetime, idle, owner, path, pdeathsig = argv or sys.argv[1:]
    if pdeathsig == "1":
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    owner_pid = int(owner)
    if os.getppid() != owner_pid:
        return  # the owner died before the death signal was set
    listener = socket.socket(fileno=int(listener_fd))
    listener.setblocking(False)
    server = Server(listener, int(lifetime), float(idle), owner_pid, path)
    # Clients that connect meanwhile wait in the listener's backlog.
    preload()
    server.serve()
