"""Experiment 4: rounds matter.

ServerlessLogisticRegression with each solver ('lbfgs', 'newton-cholesky',
'gd') on the same binary data at ``--max-workers`` workers: fit time as
rounds x time per round, and the fit time projected to a cloud where every
round also pays a round trip to the state store:
``projected = measured + rounds * rtt`` for each ``--round-trip-ms``.
Locally a round costs well under a millisecond of synchronisation, so the
solver that needs fewer rounds wins by more the farther the store is.
"""

from __future__ import annotations

import baselines
import numpy as np
from _common import (
    Config,
    classification,
    fit_logistic,
    logistic_unavailable,
    pyplot,
    round_breakdown,
    save,
    timed,
)

NAME = "rounds"
TITLE = "Rounds matter: logistic regression solvers"
SOLVERS = ("lbfgs", "newton-cholesky", "gd")


def _objective(X: np.ndarray, y: np.ndarray, est) -> float:
    """scikit-learn's objective (C=1) at the fitted coefficients."""
    coef = np.concatenate([est.coef_[0], est.intercept_])
    loss = baselines.logistic_partial(X, y, coef)[0] / X.shape[0]
    return float(loss + 0.5 / X.shape[0] * est.coef_[0] @ est.coef_[0])


def run(cfg: Config) -> dict:
    reason = logistic_unavailable()
    if reason:
        return {"results": {}, "skipped": [reason]}
    X, y = classification(cfg.n_samples, cfg.n_features, 2, cfg.seed)
    rows = []
    for solver in SOLVERS:
        stats, est = timed(lambda s=solver: fit_logistic(
            X, y, cfg.max_workers, solver=s, max_iter=cfg.lr_iter), cfg.repeat)
        breakdown = round_breakdown(est.timings_)
        row = {"solver": solver, "fit": stats["median"], "times": stats["times"],
               "n_iter": int(est.n_iter_[0]), "rounds": breakdown["n_rounds"],
               "time_per_round": breakdown["round"], "sync_per_round": breakdown["sync"],
               "objective": _objective(X, y, est)}
        row["projected"] = {f"{rtt:g}": stats["median"] + row["rounds"] * rtt / 1000
                            for rtt in cfg.round_trip_ms}
        rows.append(row)
    best = min(rows, key=lambda r: r["rounds"])
    return {
        "params": {"n_samples": cfg.n_samples, "n_features": cfg.n_features,
                   "n_workers": cfg.max_workers, "max_iter": cfg.lr_iter,
                   "round_trip_ms": cfg.round_trip_ms, "repeat": cfg.repeat},
        "results": {"logistic": rows},
        "ratios": {f"gd_rounds_over_{best['solver']}":
                   next(r["rounds"] for r in rows if r["solver"] == "gd") / best["rounds"]},
        "skipped": [],
    }


def plot(payload: dict, path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    rows = payload["results"].get("logistic", [])
    series = {"measured": [r["fit"] for r in rows]}
    for rtt in payload.get("params", {}).get("round_trip_ms", []):
        series[f"+ rounds x {rtt:g} ms"] = [r["projected"][f"{rtt:g}"] for r in rows]
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        ax.bar(np.arange(len(rows)) + i * width, values, width, label=name)
    ax.set_xticks(np.arange(len(rows)) + width * (len(series) - 1) / 2,
                  [f"{r['solver']}\n{r['rounds']} rounds x {1000 * r['time_per_round']:.1f} ms"
                   for r in rows], fontsize=8)
    ax.set_ylabel("fit seconds")
    ax.legend(fontsize=8)
    p = payload.get("params")
    ax.set_title(f"{TITLE}: {p['n_samples']:,} x {p['n_features']}, {p['n_workers']} workers"
                 if rows else f"{TITLE}: skipped", fontsize=10)
    save(fig, path)
