"""Execution layer: which Lithops backend runs the workers, where the data
and the shared state live, and the one ``map`` per fit.

:func:`run_distributed` is the only entry point the estimators use. It owns
every resource of a fit (temporary folder, data objects, state namespace,
Lithops job files, worker processes) and releases all of them, whether the
fit succeeds or not.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import _placement
from ._distributed._runtime import WorkerTask, run_worker
from ._state import FitAborted, StateStore, StoreSpec, open_store
from ._warm import warm_runtime

LOCALHOST = "localhost"
#: Lithops compute backends, by the name Lithops gives them.
CLOUD_BACKENDS = (
    "aws_lambda", "gcp_functions", "gcp_cloudrun", "azure_functions", "azure_containers",
    "ibm_cf", "code_engine", "knative", "openwhisk", "aliyun_fc", "oracle_f", "k8s",
    "singularity", "aws_batch", "aws_ec2", "gcp_compute_engine", "azure_vms", "ibm_vpc", "vm",
)
BACKENDS = (LOCALHOST, *CLOUD_BACKENDS)

#: Below this many rows per worker, another worker costs more than it saves.
MIN_ROWS_PER_WORKER = 20_000
#: Default number of workers on a cloud backend for large data.
MAX_CLOUD_WORKERS = 64
_POLL_SECONDS = 0.02
#: How often the driver checks that rounds still advance.
_PROGRESS_SECONDS = 0.5


def check_backend(backend) -> None:
    """ValueError for a backend that is neither a known name nor a config dict."""
    if isinstance(backend, dict):
        if "lithops" not in backend:
            raise ValueError("a backend given as a dict must be a complete Lithops config")
        return
    if backend not in BACKENDS:
        raise ValueError(f"backend must be a Lithops config dict or one of {BACKENDS}; "
                         f"got {backend!r}")


def is_local(backend) -> bool:
    if isinstance(backend, dict):
        return backend["lithops"].get("backend", LOCALHOST) == LOCALHOST
    return backend == LOCALHOST


def check_state_store(state_store, backend) -> None:
    """ValueError for a store the backend's workers could not reach."""
    if state_store is None:
        if not is_local(backend):
            raise ValueError(
                "a cloud backend needs a shared state store: pass "
                "state_store='redis://host:port/db' (the embedded store works on localhost only)"
            )
        return
    if not isinstance(state_store, str) or not state_store.startswith(
        ("redis://", "rediss://", "unix://")
    ):
        raise ValueError(
            f"state_store must be None or a redis URL (redis://, rediss://), got {state_store!r}"
        )


def lithops_config(backend, n_workers: int = 1) -> dict:
    """The Lithops config of a fit. localhost is built here and never read
    from a file; a cloud name takes the user's Lithops config for credentials."""
    if isinstance(backend, dict):
        config = {key: dict(value) for key, value in backend.items()}
    elif backend == LOCALHOST:
        config = {
            "lithops": {"backend": LOCALHOST, "storage": LOCALHOST},
            # This interpreter, warm (it has this package); engine v1 (v2 was seen to hang).
            "localhost": {"runtime": warm_runtime(), "version": 1},
        }
    else:
        from lithops.config import load_config

        config = load_config(log=False) or {}
        config = {key: dict(value) for key, value in config.items()}
        config.setdefault("lithops", {})["backend"] = backend
    settings = config.setdefault("lithops", {})
    settings.update(data_limit=False, data_cleaner=False, log_level=None)
    settings.setdefault("monitoring_interval", 0.05 if is_local(backend) else 0.5)
    if is_local(backend):
        # Workers live for the whole fit and wait for each other: all must run at once.
        config.setdefault(LOCALHOST, {})["worker_processes"] = n_workers
    return config


def default_n_workers(backend, n_samples: int) -> int:
    by_size = max(1, n_samples // MIN_ROWS_PER_WORKER)
    if is_local(backend):
        return max(1, min(os.cpu_count() or 1, by_size))
    return min(MAX_CLOUD_WORKERS, by_size)


@dataclass
class FitOutcome:
    """What the workers returned, in worker order, and how long it took."""

    results: list[dict]
    n_workers: int
    seconds: float


def run_distributed(algorithm: str, params: dict, columns: dict, *, backend, state_store,
                    state_mode: str, n_workers: int | None, timeout: float,
                    progress: Callable[[str], None] | None = None) -> FitOutcome:
    """Run ``algorithm`` over ``columns`` with one Lithops map; see module doc.
    ``progress`` receives the coordinator's log lines as they come."""
    started = time.perf_counter()
    n_samples = next(iter(columns.values())).shape[0]
    if n_workers is None:
        n_workers = default_n_workers(backend, n_samples)
    n_workers = max(1, min(n_workers, n_samples))
    local = is_local(backend)
    n_threads = max(1, (os.cpu_count() or 1) // n_workers) if local else None
    folder = tempfile.mkdtemp(prefix=f"sklearn-serverless-{os.getpid()}-",
                              dir=_scratch_dir(columns))
    namespace = uuid.uuid4().hex
    if state_store is None:
        spec = StoreSpec("sqlite", os.path.join(folder, "state.db"), namespace, n_workers,
                         state_mode, timeout)
    else:
        spec = StoreSpec("redis", state_store, namespace, n_workers, state_mode, timeout)
    store = partitions = fexec = futures = None
    try:
        store = open_store(spec, create=True)
        _quiet_lithops()
        from lithops import FunctionExecutor

        _own_lithops_session()
        if local:
            _reuse_lithops_copy()
        fexec = FunctionExecutor(config=lithops_config(backend, n_workers), log_level=None)
        with fexec:
            if local:
                # Written after the map: the workers start while the driver writes.
                partitions = _placement.plan_files(columns, n_workers, folder, timeout)
            else:
                partitions = _placement.write_objects(
                    columns, n_workers, fexec.storage, fexec.internal_storage.bucket,
                    f"sklearn-serverless/{namespace}",
                )
            tasks = [
                WorkerTask(i, algorithm, params, partitions[i], spec, n_threads,
                           peers=tuple(partitions) if local else ())
                for i in range(n_workers)
            ]
            with _JobFailures(fexec.executor_id) as failures:
                # chunksize=1: one call per worker, never two in one sequential chunk.
                # Local workers import this package from the interpreter that has it;
                # cloud workers get it shipped (their runtime needs its dependencies).
                futures = fexec.map(
                    run_worker, [(task,) for task in tasks], chunksize=1,
                    include_modules=None if local else ["sklearn_serverless"],
                )
                failures.watch(futures[0].job_id)
                if local:
                    _placement.write_files(columns, folder)
                results = _collect(fexec, futures, store, timeout, progress, failures)
    finally:
        _release(store, fexec, futures, partitions, folder)
    return FitOutcome(results, n_workers, time.perf_counter() - started)


def _collect(fexec, futures, store: StateStore, timeout: float,
             progress: Callable[[str], None] | None, failures: _JobFailures) -> list[dict]:
    """Wait for every worker; on the first failure wake the others, and raise
    the root cause naming its worker. Never waits for ever: after a failure
    stragglers get ``timeout`` seconds."""
    from lithops.wait import ALWAYS

    failed_at = None
    shown = 0
    watchdog = _Watchdog(store, timeout)
    while True:
        fexec.wait(futures, throw_except=False, return_when=ALWAYS, show_progressbar=False)
        if progress is not None:
            shown += _show_log(store, shown, progress)
        if failed_at is None and any(f.error for f in futures):
            failed_at = time.monotonic()
            _best_effort(store.abort, "another worker failed")
        if all(_finished(f) for f in futures):
            break
        if failed_at is None and failures.seen:
            _best_effort(store.abort, "the Lithops job failed")
            raise RuntimeError(f"the Lithops job running the workers failed: {failures.detail()}")
        if failed_at is None and watchdog.stalled():
            # No worker reported an error, yet no round advanced: workers that
            # never started (or hang outside any wait of ours). Their processes
            # are stopped when the executor closes.
            _best_effort(store.abort, "the driver saw no progress")
            raise TimeoutError(
                f"no round of the fit advanced for {watchdog.limit:g} s and no worker "
                f"reported an error: the workers did not start or are stuck "
                f"(round {watchdog.last})"
            )
        if failed_at is not None and time.monotonic() - failed_at > timeout:
            break
        time.sleep(_POLL_SECONDS)
    errors = []
    results = []
    for worker, future in enumerate(futures):
        if not _finished(future):
            errors.append((worker, TimeoutError(f"no result within {timeout:g} s")))
            continue
        try:
            results.append(future.result(throw_except=True,
                                         internal_storage=fexec.internal_storage))
        except BaseException as exc:  # noqa: BLE001 - re-raised below, named
            errors.append((worker, exc))
    if errors:
        # The root cause, not the aborts it triggered in the other workers.
        worker, exc = min(errors, key=lambda e: (isinstance(e[1], FitAborted), e[0]))
        raise _named(exc, worker, len(futures)) from exc
    return results


class _JobFailures(logging.Handler):
    """Lithops' localhost engine logs a job process that failed, then leaves
    its futures pending for ever; this handler notices it for one executor."""

    def __init__(self, executor_id: str):
        super().__init__(logging.ERROR)
        self.executor_id = executor_id
        self.watch(None)

    def watch(self, job_id: str | None) -> None:
        """Look out for this job (the executor's latest map) only."""
        self.tag = f"ExecutorID {self.executor_id} | JobID {job_id} "
        self.seen = False
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if self.tag in message and "Job process failed" in message:
            self.seen = True
            self.lines = [message]
        elif self.seen:
            self.lines.append(message)  # the process's output, logged just after

    def detail(self) -> str:
        return "\n".join(self.lines)[-2000:]

    def __enter__(self) -> _JobFailures:
        self._logger = logging.getLogger("lithops.localhost")
        self._logger.addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        self._logger.removeHandler(self)


class _Watchdog:
    """Notices when rounds stop advancing. Workers time out their own waits
    after ``timeout`` and report it; this catches what they cannot (a worker
    that never started), a little later, so that their error comes first."""

    def __init__(self, store: StateStore, timeout: float):
        self.store = store
        self.limit = 1.5 * timeout + 5
        self.last = -1
        self.changed_at = self.checked_at = time.monotonic()

    def stalled(self) -> bool:
        now = time.monotonic()
        if now - self.checked_at < _PROGRESS_SECONDS:
            return False
        self.checked_at = now
        try:
            latest = self.store.progress()
        except Exception:  # noqa: BLE001 - an unreachable store: the workers will say so
            latest = self.last
        if latest != self.last:
            self.last, self.changed_at = latest, now
        return now - self.changed_at > self.limit


def _show_log(store: StateStore, start: int, progress: Callable[[str], None]) -> int:
    try:
        lines = store.read_log(start)
    except Exception:  # noqa: BLE001 - progress must never break a fit
        return 0
    for line in lines:
        progress(line)
    return len(lines)


def _finished(future) -> bool:
    """The worker has stopped: its status is in, result fetched or not."""
    return future.ready or future.success or future.done


def _named(exc: BaseException, worker: int, n_workers: int) -> BaseException:
    message = f"worker {worker} of {n_workers} failed: {exc}"
    try:
        named = type(exc)(message)
    except Exception:  # noqa: BLE001 - exceptions with unusual constructors
        named = RuntimeError(f"{message} ({type(exc).__name__})")
    return named


def _release(store, fexec, futures, partitions, folder: str) -> None:
    """Delete everything the fit wrote; each step runs even if one fails."""
    steps = []
    if store is not None:
        steps += [store.cleanup, store.close]
    if fexec is not None:
        if partitions and partitions[0].kind == "objects":
            steps.append(lambda: _placement.delete_objects(partitions, fexec.storage))
        steps.append(lambda: _delete_lithops_job(fexec))
    steps.append(lambda: shutil.rmtree(folder, ignore_errors=True))
    for step in steps:
        _best_effort(step)


def _best_effort(step, *args) -> None:
    """Run a cleanup or wake-up step whose failure must not hide the fit's
    own error (the store may be the thing that failed; keys also expire)."""
    try:
        step(*args)
    except Exception:  # noqa: BLE001
        logging.getLogger(__name__).debug("best-effort step failed", exc_info=True)


def _delete_lithops_job(fexec) -> None:
    """Delete the job's Lithops files now (its data cleaner would leave a
    detached process running for minutes)."""
    from lithops import constants

    storage, bucket = fexec.storage, fexec.internal_storage.bucket
    prefix = f"{constants.JOBS_PREFIX}/{fexec.executor_id}"
    # "<id>/" or "<id>-": executor "ab-1" must not take the files of "ab-12".
    keys = [key for key in storage.list_keys(bucket, prefix) if key[len(prefix)] in "-/"]
    if keys:
        storage.delete_objects(bucket, keys)
    if fexec.backend == LOCALHOST:
        root = os.path.join(constants.LITHOPS_TEMP_DIR, "storage", bucket, constants.JOBS_PREFIX)
        for directory in (root, constants.JOBS_DIR, constants.LOGS_DIR):
            if os.path.isdir(directory):
                for name in os.listdir(directory):
                    if name == fexec.executor_id or name.startswith(f"{fexec.executor_id}-"):
                        path = os.path.join(directory, name)
                        if os.path.isdir(path):
                            shutil.rmtree(path, ignore_errors=True)
                        else:
                            os.remove(path)


def _scratch_dir(columns: dict) -> str | None:
    """``/dev/shm`` when the data fits twice there (no disk write-back), else
    the default temporary folder."""
    size = sum(_nbytes(array) for array in columns.values())
    try:
        if shutil.disk_usage("/dev/shm").free > 2 * size + (64 << 20):
            return "/dev/shm"
    except OSError:
        pass
    return None


def _nbytes(array) -> int:
    if hasattr(array, "indptr"):
        return array.data.nbytes + array.indices.nbytes + array.indptr.nbytes
    return array.nbytes if hasattr(array, "nbytes") else np.asarray(array).nbytes


def _own_lithops_session() -> None:
    """Give this process a Lithops session of its own.

    Lithops exports its session id and executor count to child processes, so
    that they join the parent's session; two siblings (joblib workers, two
    scripts started by one shell session of Python) then create the same
    executor id and overwrite each other's job files: one fit runs the other's
    tasks. A session this process did not create is dropped before use.
    """
    try:
        from lithops import constants, utils

        with utils._SESSION_LOCK:
            inherited = os.environ.get(constants.SESSION_ID_ENV)
            if inherited and inherited != utils._SESSION_ID:
                os.environ.pop(constants.SESSION_ID_ENV, None)
                os.environ.pop(constants.TOTAL_EXECUTORS_ENV, None)
    except Exception:  # noqa: BLE001 - other Lithops internals: nothing to fix
        logging.getLogger(__name__).debug("could not check the Lithops session", exc_info=True)


def _reuse_lithops_copy() -> None:
    """Keep this process from replacing Lithops' shared package copy.

    Lithops' localhost engine copies its package into a temporary folder shared
    by all processes, once per process, and its job runners import from there.
    A copy made while another process's runner starts breaks that runner
    ("No module named 'lithops.worker.invoker'") and its job never runs. When
    the copy there is already current, mark it as copied by this process.
    Best effort: with other Lithops internals the copy simply happens.
    """
    try:
        from lithops import constants
        from lithops.localhost import utils
        from lithops.localhost.v1.localhost import LITHOPS_LOCATION

        source = utils._source_fingerprint(LITHOPS_LOCATION)
        copy = os.path.join(constants.LITHOPS_TEMP_DIR, "lithops")
        if os.path.isdir(copy) and utils._source_fingerprint(copy) == source:
            utils._COPIED_PACKAGES.add((LITHOPS_LOCATION, constants.LITHOPS_TEMP_DIR, source))
    except Exception:  # noqa: BLE001
        logging.getLogger(__name__).debug("could not reuse Lithops' package copy", exc_info=True)


def _quiet_lithops() -> None:
    """Lithops logs worker exceptions as warnings; we re-raise them ourselves.
    A NullHandler keeps Python's last-resort handler from printing them when
    the user has configured no logging."""
    logger = logging.getLogger("lithops")
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
