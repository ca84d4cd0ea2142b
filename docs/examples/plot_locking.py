"""
Locked against lock-free as k grows
===================================

``state_mode='lock_free'`` gives each worker its own slot in the shared state
and one reader sums them; ``state_mode='locked'`` adds every partial result
into one accumulator under a lock. The paper's lock-free design slowed down
as the number of clusters grew, because its reader fetched every array
element in a separate round trip; here each slot is one round trip. Small
data and a few values of k, with the embedded store and two workers: the
synchronisation per round (publish + barrier + aggregate, worker 0) in both
modes.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_blobs

from sklearn_serverless import ServerlessKMeans

X, _ = make_blobs(n_samples=8000, n_features=20, centers=16, random_state=0)
ks = [4, 32, 256]
modes = ["lock_free", "locked"]
sync = {mode: [] for mode in modes}
compute = {mode: [] for mode in modes}
for k in ks:
    for mode in modes:
        km = ServerlessKMeans(n_clusters=k, init=X[:k], tol=0, max_iter=8, n_workers=2,
                              state_mode=mode).fit(X)
        t = km.timings_
        sync[mode].append(1000 * np.median(t["publish"][:, 0] + t["barrier"][:, 0]
                                           + t["aggregate"][:, 0]))
        compute[mode].append(1000 * np.median(t["compute"][:, 0]))
        print(f"k={k:>4} {mode:>9}: sync {sync[mode][-1]:6.2f} ms, "
              f"compute {compute[mode][-1]:6.2f} ms per round")

# %%
# The two modes stay close: both cost one or two store round trips per worker
# and round. On a machine shared with other work single rounds vary by a few
# milliseconds; :doc:`/benchmarks` has the measured medians at 8 workers and
# k up to 1000.
fig, ax = plt.subplots(figsize=(6, 3.8))
for mode, marker in zip(modes, "os", strict=True):
    ax.plot(ks, sync[mode], marker=marker, label=f"{mode}: sync")
    ax.plot(ks, compute[mode], marker=marker, linestyle=":", label=f"{mode}: compute")
ax.set_xscale("log")
ax.set_xticks(ks, [str(k) for k in ks])
ax.set_xlabel("number of clusters k")
ax.set_ylabel("milliseconds per round (median)")
ax.set_title("8,000 x 20, 2 workers, embedded store")
ax.legend()
fig.tight_layout()
