"""k-means on a dataset the driver never held: the statistics sklearn takes
from X (the mean it centres on, the variances of its relative ``tol``) and
the initial centres, computed by the workers in the first rounds.

Initialisation is k-means|| (Bahmani et al., "Scalable K-Means++", VLDB
2012; the default of Spark MLlib and dask-ml): from one row drawn at random,
``_STEPS`` rounds each keep every row with probability ``l * d(x)^2 / phi``
(``l = 2k``, ``d`` the distance to the nearest candidate, ``phi`` their sum),
then k-means++ on the candidates weighted by the rows nearest to each, and a
few weighted Lloyd iterations on them (as Spark does). ``init='random'``
draws k rows; an array is used as given. Draws depend on ``random_state``
and, through each worker's own generator, on the partitioning: the same
data, ``n_workers`` and seed give the same centres.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..._common._messages import too_few_samples
from ..._worker import _prologue
from . import _kernels
from ._kernels import squared_distances, with_ones_column
from ._params import KMeansParams
from ._worker import Worker

#: Sampling rounds of k-means||, and candidates kept per round (times k).
_STEPS = 5
_OVERSAMPLING = 2.0
#: Weighted Lloyd iterations on the candidates.
_CANDIDATE_ITERATIONS = 30


def dataset_prologue(rounds, params: KMeansParams) -> tuple[KMeansParams, dict]:
    """The coordinator's first rounds: what the Lloyd iterations need, and
    the mean the workers centred their rows on."""
    d, k = params.n_features, params.n_clusters
    counts, mean = _prologue.count_rows(rounds, d)
    n = int(counts.sum())
    if n < k:
        raise too_few_samples(n, k)
    variances = _prologue.feature_variances(rounds, mean, n)
    # As sklearn: cluster centred data (distances lose less precision).
    _prologue.prepare(rounds, mean)
    dtype = np.dtype(params.dtype)
    inits = []
    for seed in params.seeds:
        rng = np.random.RandomState(seed)
        if params.init == "random":
            # In the order drawn, as sklearn's X[seeds].
            centers = _prologue.gather_rows(rounds, counts, rng.choice(n, k, replace=False), d)
        elif params.init == "k-means++":
            centers = _kmeans_parallel(rounds, counts, k, d, rng)
        else:
            centers = np.asarray(params.init_array, dtype=np.float64) - mean
        inits.append(np.ascontiguousarray(centers, dtype=dtype))
    params = replace(params, inits=tuple(inits), mean_variance=np.mean(variances))
    return params, {"x_mean": mean, "n_samples": n}


class DatasetWorker(_prologue.DatasetWorker):
    """A worker's raw rows, then the Lloyd worker on them; the commands of
    k-means|| in between."""

    commands = {"update": "_update", "sample": "_sample", "gather_sampled": "_gather",
                "weights": "_weights"}
    lloyd_worker = Worker

    def prepare(self, arrays: list) -> Worker:
        """The Lloyd worker on these rows, centred, with a column of ones."""
        mean = arrays[0].astype(self.X.dtype)
        X_ones = with_ones_column(self.X, subtract=mean)
        sample_weight = np.ones(X_ones.shape[0], dtype=X_ones.dtype)
        if self.sample_weight is not None:  # the dataset's weight column
            sample_weight = self.sample_weight.astype(X_ones.dtype)
        worker = self.lloyd_worker({"X": X_ones, "sample_weight": sample_weight}, self.params,
                                   self.context)
        self.X = worker.X  # the centred rows are all that is kept ('rows' reads them)
        return worker

    def _update(self, arrays) -> np.ndarray:
        """Distances to the new candidates; the sum of every row's nearest."""
        new, (first,) = arrays
        closest = _nearest_squared(self.inner.X, new)
        if first:
            self.state["closest"] = closest
        else:
            np.minimum(self.state["closest"], closest, out=self.state["closest"])
        return np.array([self.state["closest"].sum()])

    def _sample(self, arrays) -> np.ndarray:
        """Keep each row with probability ``l * d^2 / phi``; how many were kept."""
        (phi, oversampling), (seed,) = arrays
        generator = np.random.default_rng([int(seed), self.context.rank])
        keep = generator.random(self.inner.X.shape[0]) < oversampling * \
            self.state["closest"] / phi
        self.state["sampled"] = np.flatnonzero(keep)
        return np.array([keep.sum()])

    def _gather(self, arrays) -> np.ndarray:
        return self.inner.X[self.state.pop("sampled")]

    def _weights(self, arrays) -> np.ndarray:
        """Rows nearest to each candidate."""
        candidates = arrays[0]
        nearest = _nearest_index(self.inner.X, candidates)
        self.state.pop("closest", None)
        return np.bincount(nearest, minlength=candidates.shape[0]).astype(np.float64)


# k-means|| ------------------------------------------------------------------------------


def _kmeans_parallel(rounds, counts: np.ndarray, k: int, d: int,
                     rng: np.random.RandomState) -> np.ndarray:
    n = int(counts.sum())
    candidates = _prologue.gather_rows(rounds, counts, [rng.randint(n)], d)
    new = candidates
    for step in range(_STEPS):
        phi = float(rounds.allreduce("update", new, np.array([step == 0]))[0])
        if phi <= 0:
            break  # every row is a candidate already
        sampled = rounds.allreduce("sample", np.array([phi, _OVERSAMPLING * k]),
                                   np.array([rng.randint(2**31)]))
        if sampled[0] == 0:
            continue
        new = np.vstack(rounds.gather("gather_sampled")).reshape(-1, d)
        candidates = np.vstack([candidates, new])
    candidates = np.unique(candidates, axis=0)
    if candidates.shape[0] < k:  # tiny or duplicated data: add rows drawn at random
        extra = _prologue.gather_rows(rounds, counts, np.sort(rng.choice(n, k, replace=False)),
                                      d)
        candidates = np.unique(np.vstack([candidates, extra]), axis=0)
    weights = rounds.allreduce("weights", candidates)
    return _weighted_kmeans(candidates, weights, k, rng)


def _block_rows(n_centers: int) -> int:
    """Rows per block of distances: about 32 MB of them, whatever the
    number of candidates (k-means|| keeps ~10k of them at k=1000)."""
    return max(1, min(4096, (4 << 20) // max(1, n_centers)))


def _nearest_squared(X: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Squared distance of every row to its nearest centre."""
    if _kernels.compiled is not None:
        return _kernels.compiled.nearest(X, centers)[0]
    out = np.empty(X.shape[0])
    step = _block_rows(centers.shape[0])
    for start in range(0, X.shape[0], step):
        out[start:start + step] = squared_distances(X[start:start + step], centers).min(axis=1)
    return out


def _nearest_index(X: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Index of every row's nearest centre (the first of equals)."""
    if _kernels.compiled is not None:
        return _kernels.compiled.nearest(X, centers)[1]
    nearest = np.empty(X.shape[0], dtype=np.int64)
    step = _block_rows(centers.shape[0])
    for start in range(0, X.shape[0], step):
        rows = X[start:start + step]
        nearest[start:start + step] = np.argmin(squared_distances(rows, centers), axis=1)
    return nearest


def _weighted_kmeans(points: np.ndarray, weights: np.ndarray, k: int,
                     rng: np.random.RandomState) -> np.ndarray:
    """Greedy k-means++ (sklearn's: 2 + log k trials per centre) on weighted
    points, then weighted Lloyd iterations."""
    weights = np.maximum(weights, 0)
    if weights.sum() == 0:
        weights = np.ones_like(weights)
    trials = 2 + int(np.log(k))
    centers = np.empty((k, points.shape[1]))
    first = rng.choice(points.shape[0], p=weights / weights.sum())
    centers[0] = points[first]
    closest = squared_distances(points, centers[:1])[:, 0]
    for c in range(1, k):
        potential = float((weights * closest).sum())
        if potential <= 0:
            centers[c] = points[rng.randint(points.shape[0])]
            continue
        draws = rng.uniform(size=trials) * potential
        picks = np.searchsorted(np.cumsum(weights * closest), draws)
        picks = np.clip(picks, 0, points.shape[0] - 1)
        distances = np.minimum(closest[None, :],
                               squared_distances(points[picks], points))
        best = int(np.argmin((distances * weights[None, :]).sum(axis=1)))
        centers[c] = points[picks[best]]
        closest = distances[best]
    for _ in range(_CANDIDATE_ITERATIONS):
        nearest = np.argmin(squared_distances(points, centers), axis=1)
        mass = np.bincount(nearest, weights=weights, minlength=k)
        moved = np.zeros_like(centers)
        np.add.at(moved, nearest, points * weights[:, None])
        filled = mass > 0
        new = centers.copy()
        new[filled] = moved[filled] / mass[filled, None]
        if np.array_equal(new, centers):
            break
        centers = new
    return centers
