"""The time breakdown of a run, as ``timings_`` and ``RunResult.timings`` give it."""

from __future__ import annotations

import numpy as np

from .._worker._rounds import PHASES


def timings_of(outcome) -> dict:
    """The time breakdown: the run's wall time, each worker's load time, and
    one (n_rounds, n_workers) table per phase of a round."""
    tables = [result["timings"]["rounds"] for result in outcome.calls]
    n_rounds = min(len(table) for table in tables)
    stacked = np.stack([table[:n_rounds] for table in tables], axis=1)
    timings = {phase: stacked[:, :, i] for i, phase in enumerate(PHASES)}
    timings["helped"] = np.stack(
        [result["timings"]["helped"][:n_rounds] for result in outcome.calls], axis=1)
    timings["load"] = np.array([result["timings"]["load"] for result in outcome.calls])
    timings["cpu"] = np.stack(
        [result["timings"]["cpu"][:n_rounds] for result in outcome.calls], axis=1)
    timings["fit"] = outcome.seconds
    timings["upload"] = outcome.upload
    timings["n_rounds"] = n_rounds
    # A dataset's bytes the workers fetched, and the workers whose rows came
    # from what their pool process kept of an earlier fit (no bytes fetched).
    for name in ("bytes_fetched", "cache_hits"):
        timings[name] = sum(call.get("reads", {}).get(name, 0) for call in outcome.calls)
    generations = outcome.generations
    # Generations of workers the run had (more than 1 after a lost worker or a
    # hand-over before the function time limit), and each end: why, and the
    # seconds from it to the next generation's first round.
    timings["generations"] = 1 if generations is None else generations.number + 1
    timings["generation_ends"] = [] if generations is None else list(generations.ends)
    timings["cost"] = outcome.cost  # see _cost.py
    return timings
