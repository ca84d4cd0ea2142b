"""Where a fit runs: Lithops backends and the fit's Lithops config (the
housekeeping Lithops needs from us is :mod:`._lithops_files`).

What decides the data placement, the state store and module shipping is where
the data can be reached (:class:`Site`), not the name of the compute backend:
only localhost compute with localhost storage lets every worker read this
machine's files.
"""

from __future__ import annotations

import copy
import difflib
import importlib
import json
import os
import threading
from dataclasses import dataclass

from .._common._deadlines import Deadlines
from ._lithops_files import quiet_lithops

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

_CONTAINER_BACKENDS = {"gcp_cloudrun", "azure_containers", "code_engine", "knative", "k8s",
                       "singularity", "aws_batch"}
_MACHINE_BACKENDS = {"aws_ec2", "gcp_compute_engine", "azure_vms", "ibm_vpc", "vm"}

#: The pip extra of Lithops that installs what a backend (compute or storage) imports.
LITHOPS_EXTRAS = {
    "aws_lambda": "aws", "aws_batch": "aws", "aws_ec2": "aws", "aws_s3": "aws",
    "gcp_functions": "gcp", "gcp_cloudrun": "gcp", "gcp_compute_engine": "gcp",
    "gcp_storage": "gcp",
    "azure_functions": "azure", "azure_containers": "azure", "azure_vms": "azure",
    "azure_storage": "azure",
    "ibm_cf": "ibm", "code_engine": "ibm", "ibm_vpc": "ibm", "ibm_cos": "ibm",
    "k8s": "kubernetes", "knative": "knative", "singularity": "kubernetes",
    "aliyun_fc": "aliyun", "aliyun_oss": "aliyun", "oracle_f": "oracle", "oracle_oss": "oracle",
    "minio": "minio", "ceph": "ceph", "redis": "redis",
}
#: Where Lithops looks for its config file when a backend is given by name.
CONFIG_FILE_PLACES = ("$LITHOPS_CONFIG_FILE", "./.lithops_config", "~/.lithops/config",
                      "/etc/lithops/config")


@dataclass(frozen=True)
class Site:
    """The Lithops compute and storage backends of a fit."""

    compute: str
    storage: str

    @property
    def local_compute(self) -> bool:
        """Workers are processes of this machine."""
        return self.compute == LOCALHOST

    @property
    def local(self) -> bool:
        """Workers can read this machine's files: local data files, the
        embedded store, work sharing, no module shipping."""
        return self.compute == LOCALHOST and self.storage == LOCALHOST

    @property
    def kind(self) -> str:
        """What starts a worker: ``'localhost'``, ``'functions'``,
        ``'containers'`` or ``'machines'`` (see ``_deadlines.START_SECONDS``)."""
        if self.compute == LOCALHOST:
            return LOCALHOST
        if self.compute in _CONTAINER_BACKENDS:
            return "containers"
        if self.compute in _MACHINE_BACKENDS:
            return "machines"
        return "functions"

    def deadlines(self, timeout: float, n_workers: int = 1) -> Deadlines:
        """Every limit of a fit of ``n_workers`` on this site, from ``timeout``."""
        return Deadlines.from_timeout(timeout, self.kind, n_workers)


def site_of(backend) -> Site:
    """The :class:`Site` of a backend name or complete Lithops config."""
    if isinstance(backend, dict):
        settings = backend.get("lithops", {})
        compute = settings.get("backend", LOCALHOST)
        default_storage = LOCALHOST if compute == LOCALHOST else "cloud"
        return Site(compute, settings.get("storage", default_storage))
    # A cloud name takes its storage from the user's Lithops config: not this machine's.
    return Site(backend, LOCALHOST if backend == LOCALHOST else "cloud")


def check_backend(backend) -> None:
    """ValueError for a backend that is neither a known name nor a config dict."""
    if isinstance(backend, dict):
        if "lithops" not in backend:
            raise ValueError("a backend given as a dict must be a complete Lithops config")
        site = site_of(backend)
        if not site.local_compute and site.storage == LOCALHOST:
            raise ValueError(
                f"compute backend {site.compute!r} cannot reach storage 'localhost': "
                "give the Lithops config an object storage its functions can reach"
            )
        check_lithops_config(backend)
        return
    if backend not in BACKENDS:
        raise ValueError(unknown_backend_message(backend))
    if backend != LOCALHOST:
        check_lithops_config(backend)


def closest_backend(backend) -> str:
    """`` Did you mean 'aws_lambda'?`` for a misspelled name, else ``''``."""
    close = difflib.get_close_matches(str(backend), sorted(BACKENDS), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def unknown_backend_message(backend) -> str:
    """What to say of a backend name Lithops does not have: the closest names."""
    return (f"backend must be 'localhost' (this machine), a complete Lithops config as a "
            f"dict, or a Lithops compute backend among {sorted(BACKENDS)}; got "
            f"{backend!r}.{closest_backend(backend)}")


def _module_of(name: str, kind: str) -> str | None:
    """The Lithops module that implements a compute or storage backend."""
    if name == LOCALHOST:
        return None
    if kind == "storage":
        return f"lithops.storage.backends.{name}"
    if name in _MACHINE_BACKENDS:
        return f"lithops.standalone.backends.{name}"
    return f"lithops.serverless.backends.{name}"


def _check_installed(name: str, kind: str, described: str) -> None:
    """ImportError naming Lithops' pip extra when a backend's libraries are missing."""
    module = _module_of(name, kind)
    if module is None:
        return
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name and not error.name.startswith("lithops"):
            extra = LITHOPS_EXTRAS.get(name)
            install = (f"pip install 'lithops[{extra}]'" if extra else
                       f"pip install the package that provides {error.name!r}")
            raise ImportError(
                f"{described}: Lithops' {kind} backend {name!r} needs the module "
                f"{error.name!r}, which is not installed. Install Lithops' {extra or name} "
                f"extra in this environment: {install}"
            ) from None
        # A Lithops module missing: Lithops does not know this backend; its own check says so.


def check_lithops_config(backend) -> None:
    """Errors of a cloud backend's Lithops config, in the user's terms, raised
    before anything starts: no config file for a backend given by name, a
    missing section or setting (Lithops' own validation, which makes no network
    call), a Lithops extra that is not installed."""
    described = (f"backend={backend!r}" if isinstance(backend, str)
                 else "the Lithops config dict given as backend")
    if isinstance(backend, str):
        _check_installed(backend, "compute", described)
        from lithops.config import get_default_config_filename

        filename = get_default_config_filename()
        if "LITHOPS_CONFIG" not in os.environ and (
                filename is None or not os.path.exists(os.path.expanduser(filename))):
            raise ValueError(
                f"{described} takes its settings (credentials, region, runtime, storage "
                f"bucket) from your Lithops config file, and there is none (Lithops looks "
                f"at {', '.join(CONFIG_FILE_PLACES)}). Write one as Lithops documents for "
                f"{backend!r}, or pass the complete config as a dict: backend={{'lithops': "
                f"{{'backend': {backend!r}, 'storage': ...}}, {backend!r}: {{...}}, ...}} "
                "(see the user guide's page 'On a cloud')."
            )
    # A dict as given (lithops_config would start the warm server for localhost compute).
    config = copy.deepcopy(backend) if isinstance(backend, dict) else lithops_config(backend)
    site = site_of(config)
    if site.local:
        return
    _check_installed(site.compute, "compute", described)
    _check_installed(site.storage, "storage", described)
    from lithops.config import default_config

    where = "the config dict" if isinstance(backend, dict) else _config_file_name()
    try:
        default_config(config_data=copy.deepcopy(config), load_storage_config=True)
    except ModuleNotFoundError as error:
        raise ImportError(f"{described}: {error}. Install the Lithops extra of "
                          f"{site.compute!r}: pip install 'lithops[all]'") from None
    except Exception as error:  # noqa: BLE001 - Lithops raises bare Exception
        raise ValueError(
            f"{described} (compute {site.compute!r}, storage {site.storage!r}): the Lithops "
            f"config in {where} is incomplete: {error}. Add it as Lithops documents for "
            f"{site.compute!r}; the user guide's page 'On a cloud' has a complete example."
        ) from None


def _config_file_name() -> str:
    from lithops.config import get_default_config_filename

    if "LITHOPS_CONFIG_FILE" not in os.environ and "LITHOPS_CONFIG" in os.environ:
        return "$LITHOPS_CONFIG"
    return get_default_config_filename() or "your Lithops config file"


def check_state_store(state_store, backend) -> None:
    """ValueError for a store the backend's workers could not reach."""
    if state_store is None:
        site = site_of(backend)
        if not site.local:
            raise ValueError(
                f"with Lithops compute {site.compute!r} and storage {site.storage!r} the "
                "workers do not share this machine's files, so the embedded state store "
                "cannot work: pass a Redis server every function can reach, "
                "state_store='redis://[user:password@]host:port/db' (or 'rediss://' for TLS)"
            )
        return
    if not isinstance(state_store, str) or not state_store.startswith(
        ("redis://", "rediss://", "unix://")
    ):
        raise ValueError(
            "state_store must be None or a redis URL (redis://, rediss://), got "
            f"{_redacted(state_store)!r}"
        )


def _redacted(value):
    if isinstance(value, str):
        from .._state._redis_url import redacted

        return redacted(value)
    return value


def lithops_config(backend, n_workers: int = 1) -> dict:
    """The Lithops config of a fit. localhost is built here and never read
    from a file; a cloud name takes the user's Lithops config for credentials."""
    if isinstance(backend, dict):
        config = {key: dict(value) if isinstance(value, dict) else value
                  for key, value in backend.items()}
    elif backend == LOCALHOST:
        config = {"lithops": {"backend": LOCALHOST, "storage": LOCALHOST}}
    else:
        from lithops.config import load_config

        config = load_config(log=False) or {}
        config = {key: dict(value) if isinstance(value, dict) else value
                  for key, value in config.items()}
        config.setdefault("lithops", {})["backend"] = backend
    site = site_of(config)
    settings = config.setdefault("lithops", {})
    settings.update(data_limit=False, data_cleaner=False, log_level=None)
    # Remote storage is polled for the workers' status: often, a fit waits on it.
    # Local status files cost a directory listing: poll them often (a small
    # fit lasts ~0.1 s), but less often with many workers: a poll lists every
    # call's status file (~1.7 ms at 64 calls, a third of a core at 5 ms
    # polls, taken from the workers), so it is spaced in proportion past 8
    # calls. Remote storage costs a request per poll.
    settings.setdefault("monitoring_interval", local_monitoring_interval(n_workers)
                        if site.storage == LOCALHOST else 0.2)
    if site.local_compute:
        local = config.setdefault(LOCALHOST, {})
        # This interpreter (it has this package), warm: a server of this process
        # forks each job with everything imported (see _warm.py); engine v1 (v2
        # was seen to hang).
        if "runtime" not in local:
            from ._warm import warm_runtime

            local["runtime"] = warm_runtime()
        local.setdefault("version", 1)
        # Workers live for the whole fit and wait for each other: all must run at
        # once. A limit the user set is kept (it is theirs): the start check reports it.
        local.setdefault("worker_processes", n_workers)
    return config


def local_monitoring_interval(n_calls: int) -> float:
    """Seconds between Lithops' polls of a localhost job's status files."""
    return 0.005 * max(1.0, n_calls / 8)


def open_storage(backend):
    """The Lithops ``Storage`` of a backend's config; None for localhost
    storage (there a dataset's path names local files)."""
    config = lithops_config(backend)
    if site_of(config).storage == LOCALHOST:
        return None
    # One per config and process: making a storage client costs more than
    # the metadata read it serves, and model selection reads it per fit.
    key = (os.getpid(), json.dumps(config, sort_keys=True, default=repr))
    with _STORAGES_LOCK:
        if key not in _STORAGES:
            quiet_lithops()
            from lithops import Storage

            if len(_STORAGES) >= 8:
                _STORAGES.pop(next(iter(_STORAGES)))
            _STORAGES[key] = Storage(config=config)
        return _STORAGES[key]


_STORAGES: dict = {}
_STORAGES_LOCK = threading.Lock()


def default_n_workers(backend, n_samples: int) -> int:
    by_size = max(1, n_samples // MIN_ROWS_PER_WORKER)
    if site_of(backend).local_compute:
        return max(1, min(os.cpu_count() or 1, by_size))
    return min(MAX_CLOUD_WORKERS, by_size)
