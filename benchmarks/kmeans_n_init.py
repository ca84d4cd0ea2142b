"""k-means with several initialisations (n_init), beside scikit-learn's: the
same random_state gives the same initial centres, drawn on the driver as
scikit-learn draws them; scikit-learn runs them one after another, ours in
lockstep (each round steps every run still iterating), so ours takes about
as many rounds as the longest run has iterations.

    python benchmarks/kmeans_n_init.py --repeat 3   # 300,000 x 10, k=16, 'random', n_init=10
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
from pathlib import Path

import numpy as np
from _common import interleaved, machine, round_breakdown, write_json
from sklearn.cluster import KMeans

from sklearn_serverless import ServerlessKMeans


def iterations_per_run(X: np.ndarray, params: dict) -> list[int]:
    """Lloyd iterations of each of scikit-learn's runs (from its verbose
    output; an untimed fit)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        KMeans(verbose=1, **params).fit(X)
    return [block.count("Iteration ") + 1
            for block in re.split(r"Iteration 0,", out.getvalue())[1:]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=300_000)
    parser.add_argument("--n-features", type=int, default=10)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--init", default="random")
    parser.add_argument("--n-init", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    # Gaussian noise: no clusters to find, so each run takes ~50-200 iterations.
    X = np.random.default_rng(args.seed).normal(size=(args.n_samples, args.n_features))
    params = dict(n_clusters=args.k, init=args.init, n_init=args.n_init,
                  random_state=args.seed)
    cases = {
        "sklearn": lambda: KMeans(**params).fit(X),
        "ours": lambda: ServerlessKMeans(n_workers=args.workers, **params).fit(X),
    }
    for fn in cases.values():  # first imports, the warm runtime, numba's cache
        fn()
    timed = interleaved(cases, args.repeat)
    (ours_t, ours), (theirs_t, theirs) = timed["ours"], timed["sklearn"]
    runs = iterations_per_run(X, params)
    parts = round_breakdown(ours.timings_)
    out = {"machine": machine(), "args": vars(args), "sklearn": theirs_t, "ours": ours_t,
           "n_iter": [int(ours.n_iter_), int(theirs.n_iter_)],
           "iterations_per_run": runs, "n_rounds": int(ours.timings_["n_rounds"]),
           "ratio": ours_t["median"] / theirs_t["median"], "rounds": parts,
           "same_labels": bool(np.array_equal(ours.labels_, theirs.labels_)),
           "max_centre_diff": float(np.abs(ours.cluster_centers_
                                           - theirs.cluster_centers_).max())}
    print(f"sklearn {theirs_t['median']:.2f} s ({min(theirs_t['times']):.2f}-"
          f"{max(theirs_t['times']):.2f}), ours {ours_t['median']:.2f} s "
          f"({min(ours_t['times']):.2f}-{max(ours_t['times']):.2f}): {out['ratio']:.2f}x; "
          f"n_iter {out['n_iter']}; runs' iterations {runs} (sum {sum(runs)}, max "
          f"{max(runs)}), our rounds {out['n_rounds']}; per round compute "
          f"{parts['slowest_compute'] * 1e3:.1f} ms, sync {parts['sync'] * 1e3:.2f} ms; "
          f"same labels {out['same_labels']}, max centre diff {out['max_centre_diff']:.1e}")
    if args.json:
        write_json(Path(args.json), out)


if __name__ == "__main__":
    main()
