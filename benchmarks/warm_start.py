"""Start costs of Lithops localhost jobs, plain interpreter against the warm
runtime (sklearn_serverless._warm): the executable's own start, one request
round trip, and map + get_result of 1 and 2 trivial calls (median of 10).

    TMPDIR=... python benchmarks/warm_start.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time

from lithops import FunctionExecutor

from sklearn_serverless._driver import _warm

REPEATS = 10


def double(x):
    return 2 * x


def config(runtime: str, n: int) -> dict:
    return {
        "lithops": {"backend": "localhost", "storage": "localhost", "log_level": None,
                    "data_cleaner": False, "monitoring_interval": 0.05},
        "localhost": {"runtime": runtime, "version": 1, "worker_processes": n},
    }


def median_ms(run, repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def maps(runtime: str, n: int) -> float:
    with FunctionExecutor(config=config(runtime, n), log_level=None) as fexec:
        fexec.get_result(fexec.map(double, range(n)), show_progressbar=False)  # warm-up

        def one():
            assert fexec.get_result(fexec.map(double, range(n)),
                                    show_progressbar=False) == [2 * i for i in range(n)]

        return median_ms(one)


def main() -> None:
    runtime = _warm.warm_runtime()
    time.sleep(3)  # let the server finish its imports
    with tempfile.NamedTemporaryFile("w", suffix=".py") as script:
        script.write("pass\n")
        script.flush()
        rows = [
            ("interpreter -IS, import _socket, os (the executable's start)",
             median_ms(lambda: subprocess.run(
                 [sys.executable, "-IS", "-c", "import _socket, os"], check=True))),
            ("plain interpreter, empty script",
             median_ms(lambda: subprocess.run([sys.executable, script.name], check=True))),
            ("warm executable, empty script (round trip)",
             median_ms(lambda: subprocess.run([runtime, script.name], check=True))),
        ]
    for n in (1, 2):
        rows.append((f"map + get_result, {n} call(s), plain interpreter", maps(sys.executable, n)))
        rows.append((f"map + get_result, {n} call(s), warm runtime", maps(runtime, n)))
    _warm.stop_server()
    for name, ms in rows:
        print(f"{name:64s} {ms:8.1f} ms")


if __name__ == "__main__":
    main()
