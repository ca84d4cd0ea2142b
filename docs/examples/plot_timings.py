"""
Where a fit's time goes
=======================

Every fitted estimator has ``timings_``: the fit's wall time, each worker's
load time, and per round and worker the seconds spent computing its partial
result, publishing it to the shared state, waiting at the barrier and
aggregating (the breakdown the paper measured). Here, worker 0's rounds of a
k-means fit as a stacked bar per round.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_blobs

from sklearn_serverless import ServerlessKMeans

X, _ = make_blobs(n_samples=20_000, n_features=20, centers=8, cluster_std=6.0,
                  random_state=0)
# tol=0 and a fixed number of iterations: every round does the same work.
km = ServerlessKMeans(n_clusters=8, init=X[:8], tol=0, max_iter=15, n_workers=2).fit(X)
timings = km.timings_
print(f"fit {timings['fit']:.2f} s, {timings['n_rounds']} rounds, "
      f"{km.n_workers_} workers, load per worker {np.round(timings['load'], 3)} s")

# %%
# One row per round, one column per worker (``(n_rounds, n_workers_)``).
phases = ["compute", "publish", "barrier", "aggregate"]
worker = 0
per_round = {phase: 1000 * timings[phase][:, worker] for phase in phases}
for phase in phases:
    print(f"{phase:>9}: median {np.median(per_round[phase]):6.2f} ms per round")

fig, ax = plt.subplots(figsize=(7, 3.8))
rounds = np.arange(timings["n_rounds"])
bottom = np.zeros(len(rounds))
for phase in phases:
    ax.bar(rounds, per_round[phase], bottom=bottom, label=phase)
    bottom += per_round[phase]
ax.set_xlabel("round")
ax.set_ylabel("milliseconds (worker 0)")
ax.set_title("ServerlessKMeans, 20,000 x 20, k=8, 2 workers")
ax.legend()
fig.tight_layout()

# %%
# The rest of the wall time is the fixed cost of a fit: one Lithops map,
# starting the workers and loading their rows.
in_rounds = sum(timings[phase][:, worker].sum() for phase in phases)
print(f"in rounds: {in_rounds:.3f} s of {timings['fit']:.3f} s")
