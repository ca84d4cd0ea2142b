"""Warm Lithops localhost workers: real Lithops maps through the warm
runtime, real server processes, owners run as subprocesses where their death
is the point."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from sklearn_serverless._driver import _warm
from sklearn_serverless._driver._lithops_files import delete_lithops_job

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")


def _config(runtime: str, n: int = 2) -> dict:
    return {
        "lithops": {"backend": "localhost", "storage": "localhost", "log_level": None,
                    "data_cleaner": False, "monitoring_interval": 0.05},
        "localhost": {"runtime": runtime, "version": 1, "worker_processes": n},
    }


def _ancestors(pid: int) -> list[int]:
    chain = []
    while pid > 1:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                pid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            break
        chain.append(pid)
    return chain


def _alive(pid: int) -> bool:
    """Running (a zombie or a missing process is not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and _alive(int(name)):
            chain = _ancestors(int(name))
            if chain and chain[0] == pid:
                found.append(int(name))
    return found


def _wait_until(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def report(x):
    """A Lithops call: what its process had imported before it ran, and where."""
    import os
    import sys

    preloaded = {name: name in sys.modules for name in ("scipy.optimize", "sklearn")}
    import numpy as np
    from threadpoolctl import threadpool_info

    rng = np.random.default_rng(x)
    a, b = rng.random((300, 300)), rng.random((300, 300))
    blas = [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]
    exact = float(np.abs(a @ b - np.einsum("ij,jk->ik", a, b)).max())
    chain, pid = [], os.getpid()
    while pid > 1:
        with open(f"/proc/{pid}/stat") as stat:
            pid = int(stat.read().rsplit(")", 1)[1].split()[1])
        chain.append(pid)
    return {"x2": 2 * x, "preloaded": preloaded, "pid": os.getpid(), "blas": blas,
            "blas_error": exact, "cpus": len(os.sched_getaffinity(0)), "ancestors": chain}


def fail(x):
    raise ValueError(f"bad value {x}")


def sleep_forever(path):
    import os
    import time

    with open(path, "w") as file:
        file.write(str(os.getpid()))
    time.sleep(120)


@pytest.fixture
def warm(tmp_path, monkeypatch):
    """This process as the owner of a warm server, ended after the test."""
    monkeypatch.setenv("SKLEARN_SERVERLESS_WARM", "1")
    yield _warm.warm_runtime()
    _warm.stop_server()


def _map(runtime: str, function, args, n: int = 2):
    from lithops import FunctionExecutor

    fexec = FunctionExecutor(config=_config(runtime, n), log_level=None)
    try:
        with fexec:
            futures = fexec.map(function, args)
            return fexec.get_result(futures, show_progressbar=False, timeout=60)
    finally:
        delete_lithops_job(fexec)


def test_maps_run_in_forked_children_of_one_warm_server(warm):
    assert warm != sys.executable and os.access(warm, os.X_OK)
    server = _warm.server_pid()
    assert server is not None and _alive(server)
    results = [_map(_warm.warm_runtime(), report, [1, 2, 3]) for _ in range(2)]
    assert _warm.warm_runtime() == warm  # one stable path (one Lithops metadata entry)
    assert _warm.server_pid() == server  # reused
    for result in results[0] + results[1]:
        # Imported by the server before the call, sklearn never.
        assert result["preloaded"] == {"scipy.optimize": True, "sklearn": False}
        # OpenBLAS was loaded with one thread; the child got a fresh process's count.
        assert result["blas"] and set(result["blas"]) == {result["cpus"]}
        assert result["blas_error"] < 1e-9
    assert [r["x2"] for r in results[0]] == [2, 4, 6] == [r["x2"] for r in results[1]]
    pids = {r["pid"] for r in results[0] + results[1]}
    assert len(pids) == 6  # each call in its own process
    # The calls ran under the server (it forked the runner), not in fresh interpreters.
    for result in results[0] + results[1]:
        chain = result["ancestors"]
        assert server in chain and chain.index(server) < chain.index(os.getpid())
    assert _warm.server_pid() == server
    assert _wait_until(lambda: not _children(server), 10)  # every job's child exits


def test_an_error_is_reported_through_lithops(warm):
    with pytest.raises(ValueError, match="bad value 7"):
        _map(warm, fail, [7])
    assert _map(warm, report, [1], n=1)[0]["x2"] == 2  # the server still serves


def test_stopping_the_job_kills_the_forked_child(warm, tmp_path):
    from lithops import FunctionExecutor

    server = _warm.server_pid()
    marker = tmp_path / "pid"
    fexec = FunctionExecutor(config=_config(warm, 1), log_level=None)
    with fexec:
        fexec.map(sleep_forever, [str(marker)])
        assert _wait_until(marker.exists, 30)
        call = int(marker.read_text())
        assert server in _ancestors(call)
        assert _children(server)  # the job's runner and its forks
    # Leaving the executor kills the job process: everything under it goes.
    assert _wait_until(lambda: not _alive(call) and not _children(server), 10)
    delete_lithops_job(fexec)
    assert _alive(server)
    assert _map(warm, report, [3], n=1)[0]["x2"] == 6


def test_off_switch(monkeypatch):
    monkeypatch.setenv("SKLEARN_SERVERLESS_WARM", "0")
    assert _warm.warm_runtime() == sys.executable


def test_stale_sources_start_a_new_server(warm, monkeypatch):
    first = _warm.server_pid()
    sources = dict(_warm._state["server"].sources)
    path = next(iter(sources))
    # As if the file had been edited since the server imported it.
    monkeypatch.setitem(_warm._state["server"].sources, path, sources[path] - 1)
    assert _warm.warm_runtime() == warm
    second = _warm.server_pid()
    assert second != first
    assert _wait_until(lambda: not _alive(first), 10)  # retired, no job: it ends
    assert _map(warm, report, [2], n=1)[0]["x2"] == 4


OWNER = textwrap.dedent("""
    import json, os, sys
    from lithops import FunctionExecutor
    from sklearn_serverless._driver import _warm
    from sklearn_serverless._driver._lithops_files import delete_lithops_job

    def pid_chain(_):
        import os
        chain, pid = [], os.getpid()
        while pid > 1:
            with open(f"/proc/{pid}/stat") as stat:
                pid = int(stat.read().rsplit(")", 1)[1].split()[1])
            chain.append(pid)
        return chain

    def fit():
        runtime = _warm.warm_runtime()
        config = {"lithops": {"backend": "localhost", "storage": "localhost",
                              "log_level": None, "data_cleaner": False,
                              "monitoring_interval": 0.05},
                  "localhost": {"runtime": runtime, "version": 1, "worker_processes": 1}}
        with FunctionExecutor(config=config, log_level=None) as fexec:
            chain = fexec.get_result(fexec.map(pid_chain, [0]), show_progressbar=False,
                                     timeout=60)[0]
        delete_lithops_job(fexec)
        server = _warm.server_pid()
        path = _warm._state["server"].path
        return {"pid": os.getpid(), "server": server, "in_chain": server in chain,
                "socket": path}

    for command in sys.stdin:
        command = command.strip()
        if command == "fit":
            print(json.dumps(fit()), flush=True)
        elif command == "fork":
            read, write = os.pipe()
            child = os.fork()
            if child == 0:
                os.write(write, json.dumps(fit()).encode())
                os._exit(0)
            os.close(write)
            os.waitpid(child, 0)
            print(os.read(read, 10000).decode(), flush=True)
        elif command == "exit":
            break
""")


class Owner:
    """A user process, driven line by line."""

    def __init__(self, tmp_path, **env):
        script = tmp_path / "owner.py"
        script.write_text(OWNER)
        # Not this process's Lithops session: two owners would share executor ids.
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("__LITHOPS")}
        self.process = subprocess.Popen(
            [sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True, env={**inherited, "SKLEARN_SERVERLESS_WARM": "1", **env},
        )

    def send(self, command: str) -> None:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def read(self) -> dict:
        return json.loads(self.process.stdout.readline())

    def ask(self, command: str) -> dict:
        self.send(command)
        return self.read()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)


@pytest.fixture
def owners(tmp_path):
    made = []

    def make(**env):
        owner = Owner(tmp_path, **env)
        made.append(owner)
        return owner

    yield make
    for owner in made:
        owner.close()


def _gone(report: dict) -> bool:
    return not _alive(report["server"]) and not os.path.exists(report["socket"])


@pytest.mark.parametrize("how", ["exit", "sigkill"])
def test_the_server_ends_with_its_owner(owners, how):
    owner = owners()
    first = owner.ask("fit")
    assert first["in_chain"] and first["server"] != first["pid"]
    assert owner.ask("fit")["server"] == first["server"]
    if how == "exit":
        owner.send("exit")
        owner.process.wait(10)
    else:
        owner.process.send_signal(signal.SIGKILL)
    assert _wait_until(lambda: _gone(first), 5)


def test_an_idle_server_exits_and_the_next_fit_starts_another(owners):
    owner = owners(SKLEARN_SERVERLESS_WARM_IDLE="1")
    first = owner.ask("fit")
    assert _wait_until(lambda: _gone(first), 10)
    second = owner.ask("fit")
    assert second["in_chain"] and second["server"] != first["server"]


def test_each_process_has_its_own_server(owners):
    one, two = owners(), owners()
    one.send("fit")
    two.send("fit")  # both at once
    first, second = one.read(), two.read()
    assert first["server"] != second["server"]
    assert first["in_chain"] and second["in_chain"]
    child = one.ask("fork")  # a forked child of an owner starts its own
    assert child["pid"] != first["pid"] and child["in_chain"]
    assert child["server"] not in (first["server"], second["server"])
    assert _wait_until(lambda: _gone(child), 5)  # its owner (the child) exited
    assert one.ask("fit")["server"] == first["server"]  # the parent's is still there


SCRIPT = textwrap.dedent("""
    import os, signal, sys
    print("out", sys.argv[1:], os.getcwd(), os.environ.get("WARM_PROBE"),
          "scipy.optimize" in sys.modules, flush=True)
    print("err", file=sys.stderr, flush=True)
    if sys.argv[1] == "signal":
        os.kill(os.getpid(), signal.SIGTERM)
    sys.exit(int(sys.argv[1]))
""")


@pytest.mark.parametrize("through", ["warm", "no server"])
def test_the_executable_behaves_like_the_interpreter(warm, tmp_path, through):
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    command = [warm, "script.py"]
    if through == "no server":
        command = ["sh", "-c", '"$0" "$@"', *command]  # its parent owns no server: cold
    env = {**os.environ, "WARM_PROBE": "probe"}
    done = subprocess.run([*command, "3"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    warm_path = through == "warm"
    assert done.returncode == 3
    assert done.stdout == f"out ['3'] {tmp_path} probe {warm_path}\n"
    assert done.stderr == "err\n"
    killed = subprocess.run([*command, "signal"], cwd=tmp_path, env=env,
                            capture_output=True, timeout=60)
    assert killed.returncode == (-signal.SIGTERM if warm_path else 128 + signal.SIGTERM)
