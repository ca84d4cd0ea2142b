"""The coordinator of Lloyd's k-means: turns the workers' per-cluster sums
into the new centres, as scikit-learn's Lloyd does: centres as weighted sums
times the reciprocal weight, empty clusters relocated to the farthest
points, relative ``tol`` on the squared centre shift, strict convergence
when no label changes, and a final E-step.

Every initialisation runs at once, in lockstep (see :mod:`._batch`): each
round steps every run still iterating and gives the final E-step of the
runs that stopped in the round before, so a fit takes about as many rounds
as its longest run has iterations, not their sum. Then the model is
scikit-learn's choice among the runs: the lowest inertia, the first of
equals, and never a run whose clustering is the best one's relabelled.
Every decision comes from the rounds' results alone, so that a new
generation of workers, replaying the rounds from their records, makes the
same ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..._worker._rounds import Rounds
from ._batch import Batch, same_clustering
from ._params import KMeansParams


@dataclass
class _Run:
    """One initialisation's state on the coordinator."""

    index: int
    centers: np.ndarray
    n_iter: int = 0
    stopped: bool = False
    inertia: float | None = None
    #: Its last step's labels are those of its final centres (see _batch.py).
    labels_final: bool = False


@dataclass
class _Progress:
    """The verbose lines and callback reports of every run, sent in
    scikit-learn's order: run after run. The lowest run still unsent is sent
    as it goes; a later run's are held until the runs before it are done."""

    rounds: Rounds
    n_runs: int
    head: int = 0
    held: dict = field(default_factory=dict)
    done: set = field(default_factory=set)

    def add(self, run: int, entry) -> None:
        """A line (str) or a report (tuple of arrays) of ``run``."""
        if run == self.head:
            self._send(entry)
        else:
            self.held.setdefault(run, []).append(entry)

    def end(self, run: int) -> None:
        """``run`` has nothing more to send."""
        self.done.add(run)
        while self.head in self.done:
            self.head += 1
            for entry in self.held.pop(self.head, []):
                self._send(entry)

    def _send(self, entry) -> None:
        if isinstance(entry, str):
            self.rounds.log(entry)
        else:
            self.rounds.report(*entry)


def _relocate_empty(rounds: Rounds, stepped: list[_Run], totals: list[tuple]) -> None:
    """sklearn's ``_relocate_empty_clusters`` for every run of the round with
    an empty cluster, in one gather: each empty cluster takes one of the
    points farthest from their centre, over all partitions."""
    empties = [np.flatnonzero(weights == 0) for _, weights, _, _ in totals]
    if not any(empty.size for empty in empties):
        return
    # Every stepped run's centres travel, so that a replacement worker whose
    # first message this is rebuilds all of its labels (see Worker._farthest).
    table = np.array([[run.index, empty.size] for run, empty in zip(stepped, empties,
                                                                     strict=True)])
    gathered = np.vstack(rounds.gather("farthest", np.stack([run.centers for run in stepped]),
                                       table))
    for run, empty, (sums, weights, _, _) in zip(stepped, empties, totals, strict=True):
        if not empty.size:
            continue
        candidates = gathered[gathered[:, 0] == run.index, 1:]  # worker order
        if candidates.shape[0] == 0 or candidates[:, 0].max() == 0:
            continue  # more clusters than distinct points: relocating is pointless (as sklearn)
        order = np.argsort(-candidates[:, 0], kind="stable")[:empty.size]
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


def _step_totals(values: np.ndarray, k: int, d: int) -> tuple:
    """Sums, weights, changed labels and inertia of a step's summed values."""
    raw = values[: k * (d + 1)].reshape(k, d + 1)
    return raw[:, :-1].copy(), raw[:, -1].copy(), values[-2], values[-1]


def _advance(run: _Run, totals: tuple, params: KMeansParams, progress: _Progress) -> None:
    """The new centres of one run's step, its lines and report, and whether
    it stops (sklearn's tests, in its order)."""
    sums, weights, changed, inertia = totals
    i = run.n_iter
    new_centers = _average_centers(sums, weights).astype(run.centers.dtype)
    shift = float(((new_centers - run.centers) ** 2).sum())
    old_centers, run.centers = run.centers, new_centers
    run.n_iter += 1
    verbose, tol = params.verbose, params.absolute_tol
    if verbose:
        progress.add(run.index, f"Iteration {i}, inertia {inertia}.")
    if params.report:  # to the driver's callbacks
        progress.add(run.index, (np.array([inertia]),
                                 *([new_centers] if params.report > 1 else [])))
    if changed == 0:
        if verbose:
            progress.add(run.index, f"Converged at iteration {i}: strict convergence.")
        run.stopped = True
        run.labels_final = bool(np.array_equal(new_centers, old_centers))
    elif shift <= tol:
        if verbose:
            progress.add(run.index, f"Converged at iteration {i}: center shift {shift} "
                                    f"within tolerance {tol}.")
        run.stopped = True
    elif run.n_iter == params.max_iter:
        run.stopped = True
    if run.stopped:
        progress.end(run.index)


def _best(rounds: Rounds, runs: list[_Run], k: int) -> _Run:
    """scikit-learn's choice, run after run: a run replaces the best so far
    when its inertia is lower and its clustering is not the best's with
    other labels. The clustering tests it needs are asked of the workers in
    one round (assuming different clusterings, the usual answer), and again
    only for tests a 'same' answer made necessary."""
    known: dict[tuple[int, int], bool] = {}
    while True:
        best, needed = runs[0], []
        for run in runs[1:]:
            if run.inertia < best.inertia:
                pair = (run.index, best.index)
                if pair not in known:
                    needed.append(pair)
                if not known.get(pair, False):
                    best = run
        if not needed:
            return best
        involved = sorted({index for pair in needed for index in pair})
        parts = rounds.gather("same", np.stack([runs[i].centers for i in involved]),
                              np.array(involved), np.array(needed))
        for p, pair in enumerate(needed):
            known[pair] = same_clustering([part[p] for part in parts])


def coordinate(rounds: Rounds, params: KMeansParams) -> dict:
    """Run Lloyd from every initial set of centres at once; keep
    scikit-learn's choice among them."""
    runs = [_Run(index, np.array(init, copy=True)) for index, init in enumerate(params.inits)]
    k, d = runs[0].centers.shape
    progress = _Progress(rounds, len(runs))
    inertia_wanted = params.verbose > 0 or params.report > 0
    finishing: list[_Run] = []
    while True:
        stepping = [run for run in runs if not run.stopped]
        if not stepping and not finishing:
            break
        batch = Batch.build([(run.index, run.n_iter == 0) for run in stepping],
                            [(run.index, run.labels_final) for run in finishing],
                            inertia_wanted, k, d)
        centers = np.stack([run.centers for run in stepping + finishing])
        values = batch.split(rounds.allreduce("lloyd", centers, *batch.message()))
        for run, value in zip(finishing, values[len(stepping):], strict=True):
            run.inertia = float(value[0])
        totals = [_step_totals(value, k, d) for value in values[:len(stepping)]]
        _relocate_empty(rounds, stepping, totals)
        for run, total in zip(stepping, totals, strict=True):
            _advance(run, total, params, progress)
        finishing = [run for run in stepping if run.stopped]
    best = _best(rounds, runs, k)
    rounds.finish(np.array([best.index]), best.centers)
    return {"centers": best.centers, "inertia": best.inertia, "n_iter": best.n_iter,
            "run": best.index}
