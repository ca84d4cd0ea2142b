"""The housekeeping Lithops needs from us: the job files of every executor a
fit or pool made deleted (here and in storage, also those of a killed
process, through the record each fit folder keeps), a Lithops session of
this process's own, Lithops' shared package copy left alone, its logger
quiet."""

from __future__ import annotations

import logging
import os
import shutil

from .._common._storage import delete_storage_objects


def delete_lithops_job(fexec) -> None:
    """Delete the executor's Lithops files now, on this machine and in its
    storage (its data cleaner would leave a detached process running for
    minutes). The local files go first: the storage may be what failed."""
    from lithops import constants

    executor = fexec.executor_id
    bucket = fexec.internal_storage.bucket
    delete_local_lithops_files(executor, bucket)
    prefix = f"{constants.JOBS_PREFIX}/{executor}"
    storage = fexec.storage
    # "<id>/" or "<id>-": executor "ab-1" must not take the files of "ab-12".
    keys = [key for key in storage.list_keys(bucket, prefix) if key[len(prefix)] in "-/"]
    delete_storage_objects(storage, bucket, keys)


def record_lithops_executor(folder: str, fexec) -> None:
    """Note an executor in the folder of its fit or pool, so that the next fit
    can delete its local Lithops files if this process is killed (see
    :func:`delete_recorded_lithops_files`)."""
    with open(os.path.join(folder, "lithops-executors"), "a") as file:
        file.write(f"{fexec.executor_id} {fexec.internal_storage.bucket}\n")


def delete_recorded_lithops_files(folder: str) -> None:
    """The local Lithops files of the executors recorded in ``folder``."""
    try:
        with open(os.path.join(folder, "lithops-executors")) as file:
            lines = file.read().split("\n")
    except OSError:
        return
    for line in lines:
        if line.strip():
            executor, _, bucket = line.partition(" ")
            delete_local_lithops_files(executor, bucket)


def delete_local_lithops_files(executor: str, bucket: str) -> None:
    """An executor's Lithops files on this machine."""
    from lithops import constants
    # Written on the machine that ran the workers (this one, for localhost compute),
    # whatever the storage: job files, task logs and stats, shipped modules.
    temp = constants.LITHOPS_TEMP_DIR
    folders = (
        os.path.join(temp, bucket, constants.JOBS_PREFIX),
        os.path.join(temp, "storage", bucket, constants.JOBS_PREFIX),
        constants.JOBS_DIR, constants.LOGS_DIR, constants.MODULES_DIR,
    )
    for folder in folders:
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            if name == executor or name.startswith(f"{executor}-"):
                path = os.path.join(folder, name)
                if os.path.isdir(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    try:
                        os.remove(path)
                    except FileNotFoundError:
                        pass


def own_lithops_session() -> None:
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


def reuse_lithops_copy() -> None:
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


def quiet_lithops() -> None:
    """Lithops logs worker exceptions as warnings; we re-raise them ourselves.
    A NullHandler keeps Python's last-resort handler from printing them when
    the user has configured no logging."""
    logger = logging.getLogger("lithops")
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
