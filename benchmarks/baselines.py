"""Baselines the estimators are measured against, all outside the package:

- sequential: the same algorithm in one process and one thread (a numpy
  Lloyd loop; scipy's L-BFGS-B on the full data);
- serverful: W ``multiprocessing`` processes on one machine sharing memory
  (shared-memory arrays, a ``multiprocessing.Barrier``, partial results
  summed by the parent), the paper's serverful baseline;
- the paper's published serverless design, re-implemented faithfully:
  a per-point Python loop to assign points and a Redis state touched one
  element per call, by W processes meeting at a Redis barrier.
"""

from __future__ import annotations

import multiprocessing as mp
import time
import uuid
from collections.abc import Callable
from multiprocessing import shared_memory

import numpy as np
import scipy.optimize
import scipy.sparse as sp
from scipy.special import expit
from threadpoolctl import threadpool_limits

_BLOCK = 4096
_TIMEOUT = 300.0


# kernels: one partition's contribution to a round ----------------------------------------------

def kmeans_partial(X: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Per-cluster sums and counts of the rows of X, nearest centre by a GEMM
    over row blocks: ``[sums.ravel(), counts]``."""
    k, d = centres.shape
    half_sq = 0.5 * np.einsum("ij,ij->i", centres, centres)
    sums = np.zeros((k, d))
    counts = np.zeros(k)
    for start in range(0, X.shape[0], _BLOCK):
        rows = X[start:start + _BLOCK]
        labels = (rows @ centres.T - half_sq).argmax(axis=1)
        one_hot = sp.csr_matrix((np.ones(labels.size), (labels, np.arange(labels.size))),
                                shape=(k, labels.size))
        sums += one_hot @ rows
        counts += np.bincount(labels, minlength=k)
    return np.concatenate([sums.ravel(), counts])


def new_centres(total: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Centres from summed partials; an empty cluster keeps its centre."""
    k, d = centres.shape
    sums, counts = total[:k * d].reshape(k, d), total[k * d:]
    out = centres.copy()
    full = counts > 0
    out[full] = sums[full] / counts[full, None]
    return out


def logistic_partial(X: np.ndarray, y: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """Binary logistic loss sum and gradient (last coefficient: intercept):
    ``[loss, grad...]``."""
    z = X @ coef[:-1] + coef[-1]
    loss = float(np.sum(np.logaddexp(0.0, z) - y * z))
    residual = expit(z) - y
    return np.concatenate([[loss], X.T @ residual, [residual.sum()]])


def lbfgs(evaluate: Callable[[np.ndarray], np.ndarray], n_features: int, n_samples: int,
          C: float, tol: float, max_iter: int) -> scipy.optimize.OptimizeResult:
    """scikit-learn's binary objective and L-BFGS-B options, with the data
    term summed by ``evaluate(coef) -> [loss_sum, grad_sum...]``."""
    l2 = 1.0 / (C * n_samples)

    def objective(coef):
        total = evaluate(coef)
        w = coef[:-1]
        grad = total[1:] / n_samples
        grad[:-1] += l2 * w
        return total[0] / n_samples + 0.5 * l2 * (w @ w), grad

    return scipy.optimize.minimize(
        objective, np.zeros(n_features + 1), method="L-BFGS-B", jac=True,
        options={"maxiter": max_iter, "maxls": 50, "gtol": tol,
                 "ftol": 64 * np.finfo(float).eps},
    )


# sequential -----------------------------------------------------------------------------------

def sequential_kmeans(X: np.ndarray, init: np.ndarray, n_iter: int) -> np.ndarray:
    """``n_iter`` Lloyd iterations in one thread."""
    centres = init.copy()
    with threadpool_limits(limits=1):
        for _ in range(n_iter):
            centres = new_centres(kmeans_partial(X, centres), centres)
    return centres


def sequential_logistic(X: np.ndarray, y: np.ndarray, C: float = 1.0, tol: float = 1e-4,
                        max_iter: int = 100) -> scipy.optimize.OptimizeResult:
    """scipy L-BFGS-B on the full data in one thread."""
    with threadpool_limits(limits=1):
        return lbfgs(lambda coef: logistic_partial(X, y, coef), X.shape[1], X.shape[0],
                     C, tol, max_iter)


# serverful: multiprocessing with shared memory ------------------------------------------------

def _kmeans_kernel(columns: dict, model: np.ndarray, shape: tuple) -> np.ndarray:
    return kmeans_partial(columns["X"], model.reshape(shape))


def _logistic_kernel(columns: dict, model: np.ndarray, shape: tuple) -> np.ndarray:
    return logistic_partial(columns["X"], columns["y"], model)


_KERNELS = {"kmeans": _kmeans_kernel, "logistic": _logistic_kernel}


def _attach(name: str, shape: tuple, dtype=np.float64):
    block = shared_memory.SharedMemory(name=name)
    return block, np.ndarray(shape, dtype=dtype, buffer=block.buf)


def _serverful_worker(rank: int, n_workers: int, kernel: str, columns: dict, model: tuple,
                      partials: tuple, stop: mp.Value, barrier, model_shape: tuple) -> None:
    """One process: its rows of the shared columns; each round it computes
    its partial into its row of the shared partials, between two barriers."""
    blocks, views = [], {}
    for key, (name, shape) in columns.items():
        block, array = _attach(name, shape)
        bounds = np.linspace(0, shape[0], n_workers + 1).astype(int)
        blocks.append(block)
        views[key] = array[bounds[rank]:bounds[rank + 1]]
    model_block, model_array = _attach(*model)
    partial_block, partial_array = _attach(*partials)
    try:
        with threadpool_limits(limits=1):
            while True:
                barrier.wait(_TIMEOUT)  # the model is ready
                if stop.value:
                    return
                partial_array[rank] = _KERNELS[kernel](views, model_array, model_shape)
                barrier.wait(_TIMEOUT)  # every partial is ready
    finally:
        del views, model_array, partial_array
        for block in (*blocks, model_block, partial_block):
            block.close()


class Serverful:
    """W processes sharing memory; the parent drives the rounds and sums the
    partial results (``self.round(model) -> summed partial``). Close it (or
    use it as a context manager): it owns processes and shared memory."""

    def __init__(self, kernel: str, columns: dict[str, np.ndarray], n_workers: int,
                 model_shape: tuple, partial_size: int):
        ctx = mp.get_context("fork")
        self.n_workers = n_workers
        self.rounds = 0
        self._blocks: list[shared_memory.SharedMemory] = []
        specs = {key: self._share(array) for key, array in columns.items()}
        model = self._share(np.zeros(model_shape).ravel())
        partials = self._share(np.zeros((n_workers, partial_size)))
        self._model, self._partials = self._view(model), self._view(partials)
        self._stop = ctx.Value("b", 0, lock=False)
        self._barrier = ctx.Barrier(n_workers + 1)
        self._processes = [
            ctx.Process(target=_serverful_worker,
                        args=(rank, n_workers, kernel, specs, model, partials, self._stop,
                              self._barrier, model_shape), daemon=True)
            for rank in range(n_workers)
        ]
        for process in self._processes:
            process.start()

    def _share(self, array: np.ndarray) -> tuple[str, tuple]:
        block = shared_memory.SharedMemory(create=True, size=max(1, array.nbytes))
        self._blocks.append(block)
        np.ndarray(array.shape, dtype=np.float64, buffer=block.buf)[...] = array
        return block.name, array.shape

    def _view(self, spec: tuple[str, tuple]) -> np.ndarray:
        block = next(b for b in self._blocks if b.name == spec[0])
        return np.ndarray(spec[1], dtype=np.float64, buffer=block.buf)

    def round(self, model: np.ndarray) -> np.ndarray:
        self._model[:] = np.ravel(model)
        self._barrier.wait(_TIMEOUT)
        self._barrier.wait(_TIMEOUT)
        self.rounds += 1
        return self._partials.sum(axis=0)  # in rank order

    def close(self) -> None:
        try:
            if all(p.is_alive() for p in self._processes):
                self._stop.value = 1
                self._barrier.wait(10)
        except Exception:  # noqa: BLE001 - a broken barrier: terminate below
            self._barrier.abort()
        for process in self._processes:
            process.join(10)
            if process.is_alive():
                process.terminate()
                process.join()
        del self._model, self._partials
        for block in self._blocks:
            block.close()
            block.unlink()

    def __enter__(self) -> Serverful:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def serverful_kmeans(X: np.ndarray, init: np.ndarray, n_iter: int, n_workers: int) -> dict:
    """Lloyd by W shared-memory processes; setup (copying the data into
    shared memory, starting the processes) counts, as it does for a fit."""
    with Serverful("kmeans", {"X": X}, n_workers, init.shape,
                   init.size + init.shape[0]) as pool:
        centres = init.copy()
        for _ in range(n_iter):
            centres = new_centres(pool.round(centres), centres)
        return {"centres": centres, "n_rounds": pool.rounds}


def serverful_logistic(X: np.ndarray, y: np.ndarray, n_workers: int, C: float = 1.0,
                       tol: float = 1e-4, max_iter: int = 100) -> dict:
    """L-BFGS-B in the parent; loss and gradient summed over W processes."""
    d = X.shape[1]
    with Serverful("logistic", {"X": X, "y": y.astype(np.float64)}, n_workers, (d + 1,),
                   d + 2) as pool:
        result = lbfgs(pool.round, d, X.shape[0], C, tol, max_iter)
        return {"model": result.x, "n_iter": result.nit, "n_rounds": pool.rounds}


# the paper's design ---------------------------------------------------------------------------

class _RedisState:
    """The paper's shared state: every element its own key, one call each."""

    def __init__(self, url: str, prefix: str, n_workers: int):
        import redis

        self.r = redis.Redis.from_url(url)
        self.prefix, self.n_workers = prefix, n_workers

    def key(self, *parts) -> str:
        return self.prefix + ":".join(map(str, parts))

    def write(self, name: str, values: np.ndarray) -> None:
        for i, value in enumerate(values):
            self.r.set(self.key(name, i), float(value))

    def read(self, name: str, size: int) -> np.ndarray:
        return np.array([float(self.r.get(self.key(name, i)) or 0.0) for i in range(size)])

    def add_locked(self, name: str, cluster: int, items: list[tuple[int, float]]) -> None:
        """Add ``value`` at each ``index`` of the accumulator under the
        cluster's lock, element by element."""
        lock = self.key("lock", cluster)
        while not self.r.set(lock, 1, nx=True, px=int(_TIMEOUT * 1000)):
            time.sleep(1e-4)
        try:
            for index, value in items:
                self.r.incrbyfloat(self.key(name, index), float(value))
        finally:
            self.r.delete(lock)

    def barrier(self, generation: int) -> None:
        """Counter plus release list: the last one in releases the others."""
        if self.r.incr(self.key("barrier", generation)) == self.n_workers:
            if self.n_workers > 1:
                self.r.rpush(self.key("release", generation), *[1] * (self.n_workers - 1))
        elif self.r.blpop([self.key("release", generation)], timeout=_TIMEOUT) is None:
            raise TimeoutError("paper barrier timed out")


def _assign_per_point(X: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The paper's assignment: a Python loop over points."""
    k, d = centres.shape
    sums, counts = np.zeros((k, d)), np.zeros(k)
    for x in X:
        j = int(np.argmin(((centres - x) ** 2).sum(axis=1)))
        sums[j] += x
        counts[j] += 1
    return sums, counts


def _paper_worker(rank: int, X: np.ndarray, shape: tuple, n_iter: int, mode: str, url: str,
                  prefix: str, n_workers: int, times) -> None:
    k, d = shape
    size = k * d + k
    state = _RedisState(url, prefix, n_workers)
    generation = 0
    with threadpool_limits(limits=1):
        for _ in range(n_iter):
            started = time.perf_counter()
            centres = state.read("centres", k * d).reshape(k, d)
            sums, counts = _assign_per_point(X, centres)
            partial = np.concatenate([sums.ravel(), counts])
            if mode == "lock_free":
                state.write(f"slot{rank}", partial)
            else:
                for j in range(k):  # one lock per cluster: its d sums and its count
                    items = [(j * d + i, sums[j, i]) for i in range(d)]
                    state.add_locked("acc", j, items + [(k * d + j, counts[j])])
            state.barrier(generation)
            generation += 1
            if rank == 0:
                if mode == "lock_free":
                    total = sum(state.read(f"slot{w}", size) for w in range(n_workers))
                else:
                    total = state.read("acc", size)
                    state.write("acc", np.zeros(size))
                state.write("centres", new_centres(total, centres).ravel())
                state.r.set(state.key("converged"), 0)
            state.barrier(generation)
            generation += 1
            if rank == 0:
                times.append(time.perf_counter() - started)


def paper_kmeans(X: np.ndarray, init: np.ndarray, n_iter: int, n_workers: int, mode: str,
                 url: str) -> dict:
    """The paper's k-means: W processes, per-point assignment, element-wise
    Redis state and barrier. Returns worker 0's seconds per iteration and the
    final centres (to check it computes the same Lloyd iterations)."""
    ctx = mp.get_context("fork")
    prefix = f"paper:{uuid.uuid4().hex}:"
    manager_times = ctx.Manager()
    state = _RedisState(url, prefix, n_workers)
    processes = []
    try:
        times = manager_times.list()
        state.write("centres", init.ravel())
        if mode == "locked":
            state.write("acc", np.zeros(init.size + init.shape[0]))
        bounds = np.linspace(0, X.shape[0], n_workers + 1).astype(int)
        for rank in range(n_workers):
            part = X[bounds[rank]:bounds[rank + 1]]
            processes.append(ctx.Process(
                target=_paper_worker, daemon=True,
                args=(rank, part, init.shape, n_iter, mode, url, prefix, n_workers, times)))
        for process in processes:
            process.start()
        for process in processes:
            process.join(_TIMEOUT)
        if any(p.exitcode != 0 for p in processes):
            raise RuntimeError(f"paper worker failed: exit codes {[p.exitcode for p in processes]}")
        centres = state.read("centres", init.size).reshape(init.shape)
        return {"per_iteration": list(times), "centres": centres}
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
                process.join()
        keys = list(state.r.scan_iter(match=prefix + "*", count=1000))
        if keys:
            state.r.delete(*keys)
        state.r.close()
        manager_times.shutdown()
