"""
A drop-in replacement in a Pipeline and GridSearchCV
====================================================

:class:`~sklearn_serverless.ServerlessLogisticRegression` takes the place of
scikit-learn's ``LogisticRegression`` in a ``Pipeline`` searched by
``GridSearchCV``, and :class:`~sklearn_serverless.ServerlessKMeans` the place
of ``KMeans`` after a scaler. Both are fitted beside their scikit-learn
counterparts on the same data: the scores and the models agree.
"""

# %%
# Data: a small classification problem, split for a final check.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.cluster import KMeans
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_serverless import ServerlessKMeans, ServerlessLogisticRegression

X, y = make_classification(n_samples=3000, n_features=10, n_informative=5,
                           random_state=0)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)

# %%
# The same search twice: only the final step of the pipeline differs (its
# parameters keep their names: ``model__C``). Each serverless fit is one
# Lithops map of two workers.
grid = {"model__C": [0.01, 1.0]}
searches = {}
for name, model in [("scikit-learn", LogisticRegression()),
                    ("serverless", ServerlessLogisticRegression(n_workers=2))]:
    pipeline = Pipeline([("scale", StandardScaler()), ("model", model)])
    searches[name] = GridSearchCV(pipeline, grid, cv=2).fit(X_train, y_train)
    print(f"{name:>12}: best C {searches[name].best_params_['model__C']}, "
          f"test accuracy {searches[name].score(X_test, y_test):.4f}")

ours = searches["serverless"].best_estimator_[-1]
theirs = searches["scikit-learn"].best_estimator_[-1]
print("largest coefficient difference:", np.abs(ours.coef_ - theirs.coef_).max())
print("fitted by", ours.n_workers_, "workers in", ours.n_iter_[0], "iterations")

# %%
# The cross-validated scores of both searches, candidate by candidate.
fig, ax = plt.subplots(figsize=(6, 3.5))
width = 0.38
positions = np.arange(len(grid["model__C"]))
for offset, (name, search) in zip((-width / 2, width / 2), searches.items(), strict=True):
    ax.bar(positions + offset, search.cv_results_["mean_test_score"], width, label=name)
ax.set_xticks(positions, [f"C={c}" for c in grid["model__C"]])
ax.set_ylim(0.5, 1.0)
ax.set_ylabel("mean cross-validated accuracy")
ax.set_title("GridSearchCV over a Pipeline")
ax.legend(loc="lower right")
fig.tight_layout()

# %%
# k-means after a scaler: the same initial centres give the same clusters.
scaled = StandardScaler().fit_transform(X)
init = scaled[:4]
reference = KMeans(n_clusters=4, init=init, n_init=1).fit(scaled)
pipeline = make_pipeline(StandardScaler(),
                         ServerlessKMeans(n_clusters=4, init=init, n_workers=2)).fit(X)
serverless = pipeline[-1]
print("inertia, scikit-learn:", reference.inertia_, "serverless:", serverless.inertia_)
print("same labels:", np.array_equal(reference.labels_, serverless.labels_),
      "| iterations:", reference.n_iter_, serverless.n_iter_)
