"""Warm Lithops localhost workers: a runtime executable served by a warm server.

Lithops' localhost engine (version 1) starts, for each job,
``<runtime> RUNNER_FILE run_job <job file>``: a new interpreter that imports
Lithops, then numpy, scipy and this package in every call (about 1.2 s for a
small fit). :func:`warm_runtime` returns the path of a small executable to
use as that ``runtime``. The executable connects to a warm server of the
calling process (:mod:`._warm_server`), hands it its argv, cwd, environment
and stdin/stdout/stderr, and exits with the status of the forked child that
ran the runner with everything already imported. Lithops stays the engine:
its runner, handler and per-call forks run unchanged inside that child.

- One server per user process (the owner), started lazily. A process forked
  or spawned from the owner starts its own: the executable finds the server
  of its parent process (Lithops starts it from the owner), by name
  ``<owner pid>-<n>.sock``, and the server checks the peer's parent.
- The server ends with its owner (lifetime pipe, ``PR_SET_PDEATHSIG``), after
  :data:`IDLE_SECONDS` without requests (``SKLEARN_SERVERLESS_WARM_IDLE``),
  and is replaced when this package's source files or the environment it
  imported under change. Whatever the executable cannot hand over (no
  server, a declined request) runs in the plain interpreter instead.
- ``SKLEARN_SERVERLESS_WARM=0`` turns it off: :func:`warm_runtime` returns
  ``sys.executable``. Linux only (elsewhere it is off).
- Lithops caches runtime metadata per runtime path (``~/.lithops/cache`` and
  its storage); the executable's path is stable (one per interpreter and
  temporary folder, written once), so that cache holds one entry for it.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

from .._common._process import process_alive
from ._warm_child import IMPORT_ENV

#: Seconds without a request after which the server exits.
IDLE_SECONDS = 300.0
_RUNTIME_NAME = re.compile(r"^[A-Za-z0-9_/.:-]+$")
_MAX_SOCKET_PATH = 100

_CLIENT = '''#!{python} -IS
# sklearn-serverless warm runtime: hands this command to the warm server of
# the parent process, or runs the plain interpreter when there is none.
import os
import sys
import _socket

PYTHON = {python!r}
BASE = {base!r}
ACCEPT_SECONDS = 30.0


def cold():
    os.execv(PYTHON, [PYTHON] + sys.argv[1:])


def main():
    prefix = "%d-" % os.getppid()
    try:
        names = [n for n in os.listdir(BASE) if n.startswith(prefix) and n.endswith(".sock")]
    except OSError:
        names = []
    if not names:
        cold()
    name = max(names, key=lambda n: int(n[len(prefix):-5]))
    started = False
    try:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        sock.settimeout(ACCEPT_SECONDS)  # a server still importing takes a second or two
        sock.connect(BASE + "/" + name)
        if sock.recv(1) != b"A":
            cold()
        sock.settimeout(None)
        args = [os.fsencode(a) for a in sys.argv[1:]]
        env = [k + b"=" + v for k, v in os.environb.items()]
        payload = b"\\0".join([b"%d" % len(args)] + args + [os.getcwdb()] + env)
        fds = b"".join(fd.to_bytes(4, sys.byteorder) for fd in (0, 1, 2))
        sock.sendmsg([b"%d\\n" % len(payload)],
                     [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
        sock.sendall(payload)
        reply = b""
        while True:
            chunk = sock.recv(64)
            if not chunk:
                break
            reply += chunk
            if reply[:1] == b"D":
                break
            started = reply[:1] == b"S"
            if started and reply.endswith(b"\\n"):
                break
    except (OSError, ValueError):  # socket.timeout is an OSError
        reply = b""
    if not started:
        cold()
    if not reply[1:2] == b"X":
        os._exit(1)  # the server went away while the job ran
    code = int(reply[2:-1])
    if code < 0:
        import signal

        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        code = 128 - code
    os._exit(code)


main()
'''


@dataclass
class _Server:
    process: subprocess.Popen
    lifetime: int
    path: str
    sources: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)


_lock = threading.Lock()
_state: dict = {"owner": os.getpid(), "server": None, "retired": [], "executable": None}
_counter = [0]


def _forget_after_fork() -> None:
    """A forked child owns nothing of its parent's (nor its lifetime pipe)."""
    global _lock
    _lock = threading.Lock()
    servers = [_state["server"], *_state["retired"]]
    for server in servers:
        if server is not None:
            try:
                os.close(server.lifetime)
            except OSError:
                pass
    _state.update(owner=os.getpid(), server=None, retired=[])


os.register_at_fork(after_in_child=_forget_after_fork)


def enabled() -> bool:
    """Whether warm workers are on (Linux, and not turned off)."""
    return (sys.platform.startswith("linux")
            and os.environ.get("SKLEARN_SERVERLESS_WARM", "1").strip() not in ("0", "false"))


def warm_runtime() -> str:
    """The localhost ``runtime`` to give Lithops: the warm executable.

    Starts this process's warm server if it has none (it imports in the
    background; the first job waits for it in the socket's backlog), or a new
    one if this package's sources or the import environment changed.

    Returns
    -------
    runtime : str
        Path of the executable, or ``sys.executable`` where warm workers are
        off or cannot run.
    """
    if not enabled():
        return sys.executable
    with _lock:
        if _state["owner"] != os.getpid():
            _forget_after_fork()
        try:
            executable = _executable()
            if executable is None:
                return sys.executable
            _reap_retired()
            server = _state["server"]
            if server is not None and not _current(server):
                _retire(server)
                server = None
            if server is None:
                _state["server"] = _start(os.path.dirname(executable))
            return executable
        except OSError:
            return sys.executable


def server_pid() -> int | None:
    """Pid of this process's live warm server (None if it has none)."""
    with _lock:
        server = _state["server"]
        if server is None or _state["owner"] != os.getpid() or server.process.poll() is not None:
            return None
        return server.process.pid


def stop_server(timeout: float = 5.0) -> None:
    """End this process's warm servers now (their jobs are killed) and wait."""
    with _lock:
        if _state["owner"] != os.getpid():
            _forget_after_fork()
            return
        servers = [s for s in [_state["server"], *_state["retired"]] if s is not None]
        _state.update(server=None, retired=[])
        for server in servers:
            os.close(server.lifetime)  # EOF: the server kills its jobs and exits
        for server in servers:
            try:
                server.process.wait(timeout)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait()


def _base_dir() -> str | None:
    """A folder of this user's only (0700), for the executable and sockets."""
    base = os.path.join(tempfile.gettempdir(), f"sklearn-serverless-warm-{os.getuid()}")
    try:
        os.mkdir(base, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(base)
    if (not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid()
            or info.st_mode & 0o077):
        return None
    return base


def _executable() -> str | None:
    """Write the client (once per interpreter and folder); its stable path."""
    cached = _state["executable"]
    if cached is not None and os.path.exists(cached):
        return cached
    python = sys.executable
    base = _base_dir()
    if (base is None or not python or not _RUNTIME_NAME.match(python) or len(python) > 200
            or not _RUNTIME_NAME.match(base)
            or len(base) + 40 > _MAX_SOCKET_PATH):
        return None
    text = _CLIENT.format(python=python, base=base)
    path = os.path.join(base, f"python-{hashlib.sha256(text.encode()).hexdigest()[:16]}")
    if not os.path.exists(path):
        temporary = f"{path}.{os.getpid()}.tmp"
        with open(temporary, "w") as file:
            file.write(text)
        os.chmod(temporary, 0o700)
        os.replace(temporary, path)
    _state["executable"] = path
    return path


def _sources() -> dict:
    """mtimes of this package's source files (a few stats)."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    times = {}
    for folder, _, names in os.walk(package):
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                try:
                    times[path] = os.stat(path).st_mtime_ns
                except OSError:
                    pass
    return times


def _import_env() -> dict:
    return {name: os.environ.get(name) for name in IMPORT_ENV}


#: Seconds a scan of the sources stands for: fits in a row (a grid search
#: on a pool) would otherwise pay ~1-3 ms of stats each.
_RESCAN_SECONDS = 1.0
_scan: list = [float("-inf"), None]  # when, what


def _current(server: _Server) -> bool:
    if time.monotonic() - _scan[0] > _RESCAN_SECONDS:
        _scan[:] = [time.monotonic(), _sources()]
    return (server.process.poll() is None and os.path.exists(server.path)
            and server.env == _import_env() and server.sources == _scan[1])


def _idle_seconds() -> float:
    try:
        return float(os.environ.get("SKLEARN_SERVERLESS_WARM_IDLE", IDLE_SECONDS))
    except ValueError:
        return IDLE_SECONDS


def _start(base: str) -> _Server:
    sources = _sources()
    _counter[0] += 1
    path = os.path.join(base, f"{os.getpid()}-{time.time_ns()}{_counter[0]:03d}.sock")
    _sweep(base)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    read_end, write_end = os.pipe()
    try:
        listener.bind(path)
        listener.listen(128)
        # PR_SET_PDEATHSIG fires when the creating *thread* ends: main thread only.
        pdeathsig = "1" if threading.current_thread() is threading.main_thread() else "0"
        boot = ("import sys; sys.path.pop(0); "
                "from sklearn_serverless._driver._warm_server import main; main()")
        process = subprocess.Popen(
            [sys.executable, "-c", boot, str(listener.fileno()), str(read_end),
             repr(_idle_seconds()), str(os.getpid()), path, pdeathsig],
            pass_fds=(listener.fileno(), read_end), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
    except BaseException:
        os.close(write_end)
        try:
            os.unlink(path)
        except OSError:
            pass
        raise
    finally:
        listener.close()
        os.close(read_end)
    return _Server(process, write_end, path, sources, _import_env())


def _retire(server: _Server) -> None:
    """Stop a server from taking requests; it ends once its jobs are done."""
    try:
        os.write(server.lifetime, b"r")
    except OSError:
        pass
    _state["retired"].append(server)


def _reap_retired() -> None:
    kept = []
    for server in _state["retired"]:
        if server.process.poll() is None:
            kept.append(server)
        else:
            os.close(server.lifetime)
    _state["retired"] = kept
    server = _state["server"]
    if server is not None and server.process.poll() is not None:
        os.close(server.lifetime)
        _state["server"] = None


def _sweep(base: str) -> None:
    """Remove sockets left by servers that were killed (their owner is gone)."""
    for name in os.listdir(base):
        if not name.endswith(".sock"):
            continue
        owner = name.split("-", 1)[0]
        if owner.isdigit() and not process_alive(int(owner)):
            try:
                os.unlink(os.path.join(base, name))
            except OSError:
                pass
