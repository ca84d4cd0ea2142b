"""What a warm server's forked child runs: one request, as a fresh interpreter would.

:func:`preload` runs once in the server (see :mod:`._warm_server`);
:func:`run_request` in each forked child: it adopts the executable's
stdin/stdout/stderr, cwd and environment, sets what a new interpreter would
have differently from a fork of the server (BLAS threads, numpy's seed), runs
the script as ``__main__`` and exits with its status.
"""

from __future__ import annotations

import os
import sys

#: Imported once in the server; each forked child finds them in sys.modules.
PRELOAD = (
    "numpy", "scipy.optimize", "scipy.sparse", "threadpoolctl", "redis",
    "cloudpickle", "tblib", "psutil", "runpy", "mmap", "multiprocessing.connection",
    "multiprocessing.popen_fork", "lithops.monitoring.backends.storage",
    "lithops.worker", "lithops.worker.handler", "lithops.worker.jobrunner",
    "lithops.worker.utils", "lithops.storage.backends.localhost",
    "lithops.storage.backends.localhost.localhost",
    "sklearn_serverless._state", "sklearn_serverless._state._shm",
    "sklearn_serverless._state._redis", "sklearn_serverless._driver._placement",
    "sklearn_serverless._worker._loop", "sklearn_serverless._worker._pool",
    "sklearn_serverless._channel._fifo", "sklearn_serverless._channel._cloud",
    # Every built-in algorithm, from its registry.
    "sklearn_serverless._algorithms",
)
#: Environment variables read when the modules above are imported: a request
#: whose values differ is declined, not run with a stale import.
IMPORT_ENV = ("TMPDIR", "TEMP", "TMP", "USER", "HOME", "PYTHONPATH", "LITHOPS_CONFIG_FILE")
#: Thread-count variables a child honours when it sets BLAS threads.
BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")


#: The BLAS libraries' thread controls, found once (a scan costs ~10 ms).
_BLAS: list = []


def preload() -> None:
    """Import :data:`PRELOAD` with one BLAS thread (no pool to fork)."""
    import importlib

    saved = {name: os.environ.get(name) for name in BLAS_ENV}
    os.environ.update(dict.fromkeys(BLAS_ENV, "1"))
    try:
        for name in PRELOAD:
            try:
                importlib.import_module(name)
            except ImportError:  # an optional one (redis, psutil): imported per call if used
                pass
        try:
            from threadpoolctl import ThreadpoolController, threadpool_limits

            _BLAS[:] = [lib for lib in ThreadpoolController().lib_controllers
                        if lib.user_api == "blas"]
            with threadpool_limits(limits=1):  # its first call pays for lazy set-up
                pass
        except Exception:  # noqa: BLE001 - then children keep one BLAS thread
            _BLAS.clear()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_request(fds: list[int], args: list[str], cwd: str, env: dict) -> None:
    """``python <args>`` with these stdin/stdout/stderr, cwd and environment;
    never returns (``os._exit`` with the script's status)."""
    code = 1
    try:
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        _start_like_a_new_interpreter(env)
        code = _run_script(args)
    except BaseException:  # noqa: BLE001 - reported on stderr, as an interpreter would
        import traceback

        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
        os._exit(code)


def _start_like_a_new_interpreter(env: dict) -> None:
    """What a fresh interpreter would differ in: BLAS threads, numpy's seed."""
    threads = next((env[name] for name in BLAS_ENV if env.get(name)), None)
    try:
        count = int(threads) if threads else len(os.sched_getaffinity(0))
    except ValueError:
        count = os.cpu_count() or 1
    if count != 1:
        for lib in _BLAS:
            lib.set_num_threads(count)
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()


def _run_script(args: list[str]) -> int:
    """``python <args>``: run the script as ``__main__``; its exit code."""
    import runpy

    sys.argv = list(args)
    sys.path[0] = os.path.dirname(os.path.abspath(args[0]))
    try:
        runpy.run_path(args[0], run_name="__main__")
    except SystemExit as stop:
        if stop.code is None:
            return 0
        if isinstance(stop.code, int):
            return stop.code
        print(stop.code, file=sys.stderr)
        return 1
    return 0
