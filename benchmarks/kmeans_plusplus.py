"""k-means from k-means++ to convergence, beside scikit-learn's: the same
seed gives the same initial centres (drawn on the driver as scikit-learn
draws them), so both run the same Lloyd iterations; many iterations at
small d make the per-round cost, not the start, dominate.

    python benchmarks/kmeans_plusplus.py --n-samples 300000 --n-features 10 --k 16
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from _common import interleaved, machine, round_breakdown, write_json
from sklearn.cluster import KMeans

from sklearn_serverless import ServerlessKMeans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=300_000)
    parser.add_argument("--n-features", type=int, default=10)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    # Gaussian noise: no clusters to find, so Lloyd takes ~100-200 iterations.
    X = np.random.default_rng(args.seed).normal(size=(args.n_samples, args.n_features))
    cases = {
        "sklearn": lambda: KMeans(args.k, random_state=args.seed, n_init=1).fit(X),
        "ours": lambda: ServerlessKMeans(args.k, random_state=args.seed, n_init=1,
                                         n_workers=args.workers).fit(X),
    }
    for fn in cases.values():
        fn()
    timed = interleaved(cases, args.repeat)
    (ours_t, ours), (theirs_t, theirs) = timed["ours"], timed["sklearn"]
    parts = round_breakdown(ours.timings_)
    out = {"machine": machine(), "args": vars(args), "sklearn": theirs_t, "ours": ours_t,
           "n_iter": [int(ours.n_iter_), int(theirs.n_iter_)],
           "ratio": ours_t["median"] / theirs_t["median"], "rounds": parts,
           "max_centre_diff": float(np.abs(ours.cluster_centers_
                                           - theirs.cluster_centers_).max())}
    print(f"sklearn {theirs_t['median']:.2f} s ({min(theirs_t['times']):.2f}-"
          f"{max(theirs_t['times']):.2f}), ours {ours_t['median']:.2f} s "
          f"({min(ours_t['times']):.2f}-{max(ours_t['times']):.2f}): {out['ratio']:.2f}x; "
          f"n_iter {out['n_iter']}; per round compute {parts['slowest_compute'] * 1e3:.1f} ms, "
          f"sync {parts['sync'] * 1e3:.2f} ms; max centre diff {out['max_centre_diff']:.1e}")
    if args.json:
        write_json(Path(args.json), out)


if __name__ == "__main__":
    main()
