"""What every experiment shares: the run configuration, the machine
description, timing, data generation, a private redis-server, JSON output and
plotting helpers."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent

#: AWS Lambda x86 prices (us-east-1), https://aws.amazon.com/lambda/pricing/ (2024-2025).
LAMBDA_PRICE_PER_GB_S = 0.0000166667
LAMBDA_PRICE_PER_REQUEST = 0.20 / 1_000_000


@dataclass
class Config:
    """Sizes and options of one benchmark run; ``quick`` and ``full`` are presets."""

    mode: str = "quick"
    repeat: int = 2
    n_samples: int = 200_000
    n_features: int = 50
    n_clusters: int = 20
    kmeans_iter: int = 10
    lr_iter: int = 100
    max_workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    # Locked against lock-free (experiment 3).
    sync_samples: int = 40_000
    sync_workers: int = 8
    sync_clusters: tuple[int, ...] = (10, 100, 1000)
    sync_classes: tuple[int, ...] = (2, 200)
    sync_iter: int = 5
    sync_rounds: int = 30
    sync_repeat: int = 1  # the locking experiment's fits (many of them)
    # The paper's design (its published sizes).
    paper_samples: int = 20_000
    paper_features: int = 10
    paper_clusters: tuple[int, ...] = (8, 64)
    paper_workers: int = 2
    paper_iter: int = 3
    # Rounds and cost.
    round_trip_ms: tuple[float, ...] = (5.0, 30.0)
    lambda_memory_mb: int = 1769  # one full vCPU on Lambda
    price_per_gb_s: float = LAMBDA_PRICE_PER_GB_S
    price_per_request: float = LAMBDA_PRICE_PER_REQUEST
    seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


QUICK = Config()
FULL = Config(mode="full", repeat=5, n_samples=1_000_000, kmeans_iter=20, sync_samples=100_000,
              sync_iter=20, sync_rounds=200, sync_repeat=3, sync_classes=(2, 20, 200),
              paper_iter=10)


# machine --------------------------------------------------------------------------------------

def machine() -> dict:
    """Where the numbers were taken: CPU, cores, memory, software versions."""
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": _versions(),
        "redis_server": _command_output(["redis-server", "--version"]),
        "git_commit": _command_output(["git", "-C", str(REPO), "rev-parse", "HEAD"]),
        "load_average": list(os.getloadavg()),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return round(int(line.split()[1]) / 2**20, 1)
    return None


def _versions() -> dict:
    from importlib import metadata

    names = ["numpy", "scipy", "scikit-learn", "lithops", "redis", "threadpoolctl", "dask",
             "distributed", "dask-ml", "matplotlib", "sklearn-serverless"]
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _command_output(command: list[str]) -> str | None:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


# timing ---------------------------------------------------------------------------------------

def timed(fn: Callable[[], object], repeat: int) -> tuple[dict, object]:
    """Run ``fn`` ``repeat`` times; the wall times, their median, and the last result."""
    times, result = [], None
    for _ in range(max(1, repeat)):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return {"times": times, "median": statistics.median(times)}, result


def interleaved(cases: dict[str, Callable[[], object]], repeat: int
                ) -> dict[str, tuple[dict, object]]:
    """Time every case ``repeat`` times, round-robin, so that a change in the
    machine's load hits every case alike; per case the wall times, their
    median, and the last result."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    results: dict[str, object] = {}
    for _ in range(max(1, repeat)):
        for name, fn in cases.items():
            started = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - started)
    return {name: ({"times": t, "median": statistics.median(t)}, results[name])
            for name, t in times.items()}


def median_of(values) -> float:
    return float(np.median(np.asarray(values, dtype=float)))


def round_breakdown(timings: dict) -> dict:
    """Medians over rounds of one fit's ``timings_``, from the coordinator's
    side (worker 0 lives through the whole round, so its four phases add up
    to the round time; its barrier wait includes waiting for the slowest
    worker); plus the mean and slowest worker compute, and the sync overhead:
    round time minus the slowest worker's compute."""
    phases = ("compute", "publish", "barrier", "aggregate")
    tables = {p: np.asarray(timings[p]) for p in phases}
    round_time = sum(tables[p][:, 0] for p in phases)
    slowest = tables["compute"].max(axis=1)
    out = {p: median_of(tables[p][:, 0]) for p in phases}
    out.update(
        round=median_of(round_time),
        mean_compute=median_of(tables["compute"].mean(axis=1)),
        slowest_compute=median_of(slowest),
        sync=median_of(round_time - slowest),
        n_rounds=int(timings["n_rounds"]),
        fit=float(timings["fit"]),
        load=median_of(timings["load"]),
    )
    return out


def worker_seconds(timings: dict) -> float:
    """Sum over workers of their busy span: load plus every round."""
    phases = ("compute", "publish", "barrier", "aggregate")
    rounds = sum(np.asarray(timings[p]).sum() for p in phases)
    return float(np.sum(timings["load"]) + rounds)


# data -----------------------------------------------------------------------------------------

def blobs(n: int, d: int, k: int, seed: int = 0) -> np.ndarray:
    """Gaussian blobs with wide clusters, so Lloyd does not converge in a few
    iterations and every implementation runs the same number of them."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-3, 3, size=(k, d))
    X = rng.standard_normal((n, d))
    X += centres[rng.integers(0, k, size=n)]
    return X


def initial_centres(X: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed + 1)
    return X[rng.choice(X.shape[0], size=k, replace=False)].copy()


def classification(n: int, d: int, n_classes: int = 2, seed: int = 0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Linear-softmax labelled data with noise (not separable: finite optimum).
    Column scales spread over 0.4-2.5 make the problem mildly ill-conditioned,
    so solvers need tens of iterations, as on real data."""
    rng = np.random.default_rng(seed)
    scales = np.logspace(-0.4, 0.4, d)
    X = rng.standard_normal((n, d)) * scales
    W = rng.standard_normal((d, n_classes)) / np.sqrt(d) / scales[:, None]
    logits = X @ W + rng.gumbel(size=(n, n_classes))
    return X, logits.argmax(axis=1)


# redis ----------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A private redis-server on a free loopback port, without persistence;
    yields its URL and always stops it."""
    import redis

    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"redis-server did not start on port {port}") from None
                time.sleep(0.05)
        client.close()
        yield url
    finally:
        _stop(process)


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def moto_server(bucket: str) -> Iterator[dict]:
    """moto's S3 server on a free loopback port, with ``bucket`` created;
    yields the Lithops ``minio`` storage section that reaches it."""
    import boto3

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    section = {"endpoint": f"http://127.0.0.1:{port}", "access_key_id": "bench",
               "secret_access_key": "bench", "storage_bucket": bucket}
    try:
        client = boto3.client("s3", endpoint_url=section["endpoint"], region_name="us-east-1",
                              aws_access_key_id="bench", aws_secret_access_key="bench")
        deadline = time.monotonic() + 30
        while True:
            try:
                client.create_bucket(Bucket=bucket)
                break
            except Exception:  # noqa: BLE001 - not listening yet
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.05)
        yield section
    finally:
        _stop(process)


# output ---------------------------------------------------------------------------------------

def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_jsonable(payload), indent=2) + "\n")


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return float(numerator) / float(denominator)


def target(name: str, value: float | None, limit: float, better: str) -> dict:
    """A quotable target: its measured ratio, the limit and whether it is met.
    ``better`` is ``'lower'`` (value <= limit) or ``'higher'`` (value >= limit)."""
    met = None
    if value is not None:
        met = value <= limit if better == "lower" else value >= limit
    return {"name": name, "value": value, "limit": limit, "better": better, "met": met}


# plots ----------------------------------------------------------------------------------------

def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    pyplot().close(fig)


def bars(ax, labels: list[str], values: list[float | None], title: str, ylabel: str,
         log: bool = False) -> None:
    """One bar per label, the value written on top."""
    heights = [v if v is not None else 0.0 for v in values]
    drawn = ax.bar(range(len(labels)), heights, color="tab:blue")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    for bar, value in zip(drawn, values, strict=False):
        if value is not None:
            ax.annotate(f"{value:.3g}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=7)


def stacked_bars(ax, labels: list[str], parts: dict[str, list[float]], title: str,
                 ylabel: str) -> None:
    """Stacked bars: one bar per label, one segment per key of ``parts``."""
    bottom = np.zeros(len(labels))
    for name, values in parts.items():
        ax.bar(range(len(labels)), values, bottom=bottom, label=name)
        bottom += np.asarray(values, dtype=float)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=7)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)


# the estimators -------------------------------------------------------------------------------

def logistic_unavailable() -> str | None:
    """Why ServerlessLogisticRegression cannot be benchmarked, or None."""
    try:
        from sklearn_serverless import ServerlessLogisticRegression  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any import failure is a reason to skip
        return f"ServerlessLogisticRegression unavailable: {type(exc).__name__}: {exc}"
    return None


def preload() -> None:
    """Import the estimators (and scikit-learn, Lithops) and run one tiny fit,
    so that no timed fit pays for first imports."""
    from sklearn_serverless import ServerlessKMeans

    X = blobs(2000, 4, 2)
    ServerlessKMeans(2, n_workers=1, max_iter=2).fit(X)
    if logistic_unavailable() is None:
        from sklearn_serverless import ServerlessLogisticRegression  # noqa: F401


def fit_kmeans(X: np.ndarray, init: np.ndarray, n_iter: int, n_workers: int, **execution):
    """A ServerlessKMeans fit of exactly ``n_iter`` Lloyd iterations from
    ``init`` (tol=0; it stops earlier only on strict convergence)."""
    from sklearn.exceptions import ConvergenceWarning

    from sklearn_serverless import ServerlessKMeans

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return ServerlessKMeans(init.shape[0], init=init, n_init=1, max_iter=n_iter, tol=0.0,
                                n_workers=n_workers, **execution).fit(X)


def fit_logistic(X: np.ndarray, y: np.ndarray, n_workers: int, **params):
    """A ServerlessLogisticRegression fit; a fixed iteration budget is the
    point of several experiments, so ConvergenceWarning is silenced."""
    from sklearn.exceptions import ConvergenceWarning

    from sklearn_serverless import ServerlessLogisticRegression

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return ServerlessLogisticRegression(n_workers=n_workers, **params).fit(X, y)


def worker_counts(max_workers: int) -> list[int]:
    """1, 2, 4, ... up to ``max_workers`` (always included)."""
    counts, w = [], 1
    while w < max_workers:
        counts.append(w)
        w *= 2
    return counts + [max_workers]
