"""
Model selection in one run, also where the data lies
====================================================

:class:`~sklearn_serverless.ServerlessLogisticRegressionCV` searches ``C``
over every fold in **one** serverless run: each worker reads its rows once,
and each round evaluates every (fold, ``C``) model still running in one pass
over them. It is fitted here beside scikit-learn's ``LogisticRegressionCV``
on the same folds, then on the same rows read by the workers from a Parquet
file (a :func:`~sklearn_serverless.read_parquet` dataset, which the driver
never loads), where ``GridSearchCV`` cannot go: it needs ``X[train]``.
"""

# %%
# Data: breast_cancer, standardised, 569 rows.
import os
import tempfile

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegressionCV
from sklearn.preprocessing import StandardScaler

from sklearn_serverless import ServerlessLogisticRegressionCV, read_parquet

data = load_breast_cancer()
X = StandardScaler().fit_transform(data.data)
y = data.target
Cs = [0.001, 0.01, 0.1, 1.0, 10.0]
# scikit-learn 1.9's future defaults, set explicitly (no FutureWarning).
common = {"Cs": Cs, "cv": 5, "l1_ratios": (0,), "scoring": "accuracy",
          "use_legacy_attributes": False}

# %%
# The same search twice: scikit-learn's, and the serverless one (two workers,
# one run for the 25 fold models and the refit).
theirs = LogisticRegressionCV(**common).fit(X, y)
ours = ServerlessLogisticRegressionCV(**common, n_workers=2).fit(X, y)
print("best C, scikit-learn:", theirs.C_, "serverless:", ours.C_)
print("largest score difference:", np.abs(ours.scores_ - theirs.scores_).max())
print("largest coefficient difference:", np.abs(ours.coef_ - theirs.coef_).max())
print("rounds of the run:", ours.timings_["n_rounds"],
      "| L-BFGS iterations in all:", int(ours.n_iter_.sum()))

# %%
# The rows as a Parquet file (here a local file; a ``bucket/key`` path on a
# cloud backend is read the same way). Each worker reads its row groups, and
# the folds are scikit-learn's ``StratifiedKFold(5)`` over the rows in file
# order, computed by the workers from their class counts.
folder = tempfile.mkdtemp()
path = os.path.join(folder, "cancer.parquet")
frame = pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])])
frame["target"] = y
frame.to_parquet(path, row_group_size=100)
stored = ServerlessLogisticRegressionCV(**common, n_workers=2).fit(
    read_parquet(path, label="target"))
print("from the file: best C", stored.C_, "| same scores as in memory:",
      np.array_equal(stored.scores_, ours.scores_))
os.remove(path)
os.rmdir(folder)

# %%
# Mean accuracy over the folds, per ``C``: the three searches agree.
fig, ax = plt.subplots(figsize=(6, 3.5))
for name, model, style in [("scikit-learn", theirs, "o-"), ("serverless", ours, "s--"),
                           ("serverless, from Parquet", stored, "x:")]:
    ax.plot(Cs, model.scores_.mean(axis=0).ravel(), style, label=name)
ax.set_xscale("log")
ax.set_xlabel("C")
ax.set_ylabel("mean cross-validated accuracy")
ax.set_title("LogisticRegressionCV, 5 folds")
ax.legend(loc="lower right")
fig.tight_layout()
