"""
GridSearchCV on a dataset the driver never loads
=================================================

scikit-learn's :class:`~sklearn.model_selection.GridSearchCV`, unchanged,
searches ``C`` of :class:`~sklearn_serverless.ServerlessLogisticRegression`
on a Parquet file that the workers read (a
:func:`~sklearn_serverless.read_parquet` dataset): every fold is a view of
the dataset's rows, which each worker keeps from the rows it reads. The
same search runs beside it on the same rows in memory, with scikit-learn's
``LogisticRegression``.
"""

# %%
# Data: breast_cancer, standardised, 569 rows, written as a Parquet file.
import os
import tempfile

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.preprocessing import StandardScaler

from sklearn_serverless import ServerlessLogisticRegression, read_parquet

bunch = load_breast_cancer()
X = StandardScaler().fit_transform(bunch.data)
y = bunch.target
folder = tempfile.mkdtemp()
path = os.path.join(folder, "cancer.parquet")
frame = pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])])
frame["y"] = y
frame.to_parquet(path, row_group_size=200)

# %%
# The dataset: its row count comes from the Parquet footer; nothing else is
# read on the driver.
data = read_parquet(path, label="y")
print(data.shape)

# %%
# The same search twice: shuffled 3-fold splits (they need only the row
# count), three values of ``C``.
grid = {"C": [0.01, 0.1, 1.0]}
cv = KFold(3, shuffle=True, random_state=0)
ours = GridSearchCV(ServerlessLogisticRegression(n_workers=2), grid, cv=cv).fit(data)
theirs = GridSearchCV(LogisticRegression(), grid, cv=cv).fit(X, y)
print("best C:", ours.best_params_, theirs.best_params_)
print("largest score difference:",
      np.abs(ours.cv_results_["mean_test_score"]
             - theirs.cv_results_["mean_test_score"]).max())

# %%
# What the search read of the file, over all of its fits and scores: the
# pool's workers keep the rows they read, so every read after the first
# run's is served by them (``cache_hits``, no byte fetched).
print(data.fetched())

# %%
# The scores per ``C``: the same on the dataset and in memory.
fig, ax = plt.subplots(figsize=(5, 3))
ax.semilogx(grid["C"], theirs.cv_results_["mean_test_score"], "o-", label="scikit-learn, memory")
ax.semilogx(grid["C"], ours.cv_results_["mean_test_score"], "x--", label="serverless, Parquet")
ax.set_xlabel("C")
ax.set_ylabel("mean accuracy (3 folds)")
ax.legend()
fig.tight_layout()
plt.show()
