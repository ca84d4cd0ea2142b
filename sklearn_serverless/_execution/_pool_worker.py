"""What a pool worker runs: one long-lived Lithops call that serves the fits
of its owner process one after another (see :mod:`._pool`).

The pool's folder (private, 0700, on this machine) holds one FIFO per slot
(``slot-<i>.fifo``) and one for the owner (``done.fifo``). A job is a line
``<job id>`` on the slot's FIFO; its task, a pickled
:class:`~sklearn_serverless.distributed._worker_loop.WorkerTask` with the
function that runs it (:func:`run_worker`), is the file
``job-<id>-<slot>.pkl``. The worker runs it, writes
``result-<id>-<slot>.pkl`` (``('ok', result)`` or ``('error', exception)``),
renamed into place, and writes ``<id> <slot>`` on ``done.fifo``. The line
``stop`` ends it. Nothing but job ids travel through the FIFOs: the code of a
fit lives in files of the owner's private folder.

A worker ends by itself when it has had no job for ``idle`` seconds, when
its owner process is gone, or once it is older than ``retire`` seconds (half
the platform's function time limit: the owner stops sending it jobs then).
"""

from __future__ import annotations

import gc
import os
import select
import time
from dataclasses import dataclass

from .._process import process_alive

#: How often an idle worker checks that its owner is alive.
_CHECK_SECONDS = 0.5
#: Seconds without a job after which a worker collects its garbage.
_COLLECT_AFTER = 2.0


@dataclass(frozen=True)
class PoolTask:
    """What one pool call receives."""

    slot: int
    folder: str
    idle: float
    owner_pid: int | None
    retire: float | None = None


def serve_pool(task: PoolTask, storage=None) -> dict:
    """Entry point of a pool's Lithops call (``storage`` is injected by Lithops)."""
    import cloudpickle

    started = time.monotonic()
    folder = task.folder
    fifo = os.open(os.path.join(folder, f"slot-{task.slot}.fifo"), os.O_RDWR | os.O_NONBLOCK)
    _write_file(os.path.join(folder, f"slot-{task.slot}.pid"), str(os.getpid()).encode())
    served = 0
    pending = b""
    last = time.monotonic()
    collected = True
    try:
        while True:
            if b"\n" not in pending:
                now = time.monotonic()
                if now - last > task.idle:
                    break
                if task.retire is not None and now - started > task.retire:
                    break
                if task.owner_pid is not None and not process_alive(task.owner_pid):
                    break
                wait = min(_CHECK_SECONDS, max(0.0, task.idle - (now - last)))
                ready, _, _ = select.select([fifo], [], [], wait)
                if not ready and not collected and now - last > _COLLECT_AFTER:
                    gc.collect()  # between fits, never on a fit's path (~0.1 s)
                    collected = True
                if ready:
                    try:
                        pending += os.read(fifo, 4096)
                    except BlockingIOError:
                        pass
                continue
            line, pending = pending.split(b"\n", 1)
            job = line.decode().strip()
            if job == "stop":
                break
            path = os.path.join(folder, f"job-{job}-{task.slot}.pkl")
            try:
                with open(path, "rb") as file:
                    entry, worker_task = cloudpickle.loads(file.read())
                os.unlink(path)
                _fresh_like_a_new_call()
                outcome = ("ok", entry(worker_task, storage))
            except BaseException as exc:  # noqa: BLE001 - the fit's error, sent to its driver
                outcome = ("error", exc)
            _post(folder, job, task.slot, outcome, cloudpickle)
            served += 1
            outcome = worker_task = entry = None
            collected = False

            last = time.monotonic()
    finally:
        os.close(fifo)
    return {"slot": task.slot, "served": served}


def _fresh_like_a_new_call() -> None:
    """What a fresh call would differ in: numpy's global seed."""
    import numpy as np

    np.random.seed()


def _post(folder: str, job: str, slot: int, outcome, cloudpickle) -> None:
    try:
        body = cloudpickle.dumps(outcome)
    except Exception as exc:  # noqa: BLE001 - an unpicklable result or error
        body = cloudpickle.dumps(("error", RuntimeError(
            f"the result of pool slot {slot} could not be pickled: {exc!r} "
            f"(it was {outcome[0]}: {outcome[1]!r:.500})")))
    _write_file(os.path.join(folder, f"result-{job}-{slot}.pkl"), body)
    try:
        done = os.open(os.path.join(folder, "done.fifo"), os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # the owner is gone (no reader): nobody waits for it
        return
    try:
        os.write(done, f"{job} {slot}\n".encode())
    except OSError:
        pass
    finally:
        os.close(done)


def _write_file(path: str, body: bytes) -> None:
    partial = f"{path}.partial"
    with open(partial, "wb") as file:
        file.write(body)
    os.rename(partial, path)
