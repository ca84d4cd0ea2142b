"""The coordinator of Lloyd's k-means: turns the workers' per-cluster sums
into the new centres, as scikit-learn's Lloyd does: centres as weighted sums
times the reciprocal weight, empty clusters relocated to the farthest
points, relative ``tol`` on the squared centre shift, strict convergence
when no label changes, and a final E-step.
"""

from __future__ import annotations

import numpy as np

from ...distributed import Rounds
from ._params import KMeansParams


def _relocate_empty(rounds: Rounds, centers, sums, weights, empty) -> None:
    """sklearn's ``_relocate_empty_clusters``: each empty cluster takes one of
    the points farthest from their centre, over all partitions."""
    n_empty = empty.size
    candidates = np.vstack(rounds.gather("farthest", centers, np.array([n_empty])))
    if candidates.shape[0] == 0 or candidates[:, 0].max() == 0:
        return  # more clusters than distinct points: relocating is pointless (as sklearn)
    order = np.argsort(-candidates[:, 0], kind="stable")[:n_empty]
    for new_cluster, row in zip(empty, candidates[order], strict=False):
        weight, old_cluster, x = row[1], int(row[2]), row[3:]
        sums[old_cluster] -= x * weight
        sums[new_cluster] = x * weight
        weights[new_cluster] = weight
        weights[old_cluster] -= weight


def _average_centers(sums: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """sklearn's ``_average_centers``: each centre is its sum times the
    reciprocal weight; a cluster still empty takes the place of the heaviest
    one (in cluster order, as sklearn's loop does)."""
    scale = np.divide(1.0, weights, out=np.zeros_like(weights), where=weights > 0)
    centers = sums * scale[:, None]
    empty = np.flatnonzero(weights <= 0)
    if empty.size:
        heaviest = int(np.argmax(weights))
        centers[empty[empty < heaviest]] = sums[heaviest]  # not yet averaged there
        centers[empty[empty > heaviest]] = centers[heaviest]
    return centers


def coordinate(rounds: Rounds, params: KMeansParams) -> dict:
    """Run Lloyd from each initial set of centres; keep the lowest inertia."""
    max_iter, tol, verbose = params.max_iter, params.absolute_tol, params.verbose
    best = None
    keep = 0
    for run, init in enumerate(params.inits):
        centers = np.array(init, copy=True)
        k, d = centers.shape
        for i in range(max_iter):
            inertia_wanted = verbose > 0 or params.report > 0
            total = rounds.allreduce("lloyd", centers, np.array([keep, i == 0, inertia_wanted]))
            keep = 0
            raw = total[: k * (d + 1)].reshape(k, d + 1)
            sums, weights = raw[:, :-1], raw[:, -1]
            changed, inertia = total[-2], total[-1]
            empty = np.flatnonzero(weights == 0)
            if empty.size:
                _relocate_empty(rounds, centers, sums, weights, empty)
            new_centers = _average_centers(sums, weights).astype(centers.dtype)
            shift = float(((new_centers - centers) ** 2).sum())
            centers = new_centers
            if verbose:
                rounds.log(f"Iteration {i}, inertia {inertia}.")
            if params.report:  # to the driver's callbacks
                rounds.report(np.array([inertia]), *([centers] if params.report > 1 else []))
            if changed == 0:
                if verbose:
                    rounds.log(f"Converged at iteration {i}: strict convergence.")
                break
            if shift <= tol:
                if verbose:
                    rounds.log(
                        f"Converged at iteration {i}: center shift {shift} within tolerance {tol}."
                    )
                break
        inertia = float(rounds.allreduce("final", centers)[0])
        if best is None or inertia < best["inertia"]:
            best = {"centers": centers, "inertia": inertia, "n_iter": i + 1, "run": run}
            keep = 1
    rounds.finish(np.array([keep]), best["centers"])
    return best
