"""ServerlessLogisticRegressionCV's fitted attributes in scikit-learn's two
layouts (legacy dicts per class, and ``use_legacy_attributes=False``'s arrays),
from the fold models of one run."""

from __future__ import annotations

import numpy as np


def set_cv_attributes(estimator, paths: np.ndarray, scores: np.ndarray, n_iter, refit_coef,
                      l1_ratios, l1_ratios_, penalty: str, legacy: bool, n_features: int,
                      is_binary: bool) -> None:
    """Set scikit-learn's fitted attributes on ``estimator`` from the fold models (``paths`` of
    shape (n_folds, n_l1, n_cs, m, d), ``scores`` and ``n_iter`` of shape
    (n_folds, n_l1, n_cs)) and the refitted (m, d) coefficients."""
    n_folds, n_l1, n_cs = scores.shape
    classes = estimator.classes_
    n_classes = 1 if is_binary else classes.size
    labels = classes[1:] if is_binary else classes
    if is_binary:
        coefs_paths = np.swapaxes(paths[:, :, :, 0, :], 1, 2)[None, ...]
    else:
        coefs_paths = np.moveaxis(paths, (0, 1, 3), (1, 3, 0))
    estimator.n_iter_ = np.swapaxes(np.asarray(n_iter, dtype=np.int32), 1, 2)[None, ...]
    tiled = np.tile(np.swapaxes(scores, 1, 2)[None, ...], (n_classes, 1, 1, 1))
    estimator.scores_ = dict(zip(labels, tiled, strict=True))
    estimator.coefs_paths_ = dict(zip(labels, coefs_paths, strict=True))
    scores = estimator.scores_[labels[0]]  # (n_folds, n_cs, n_l1)
    C_, l1_ratio_ = [], []
    estimator.intercept_ = np.zeros(n_classes)
    if estimator.refit:
        summed = scores.sum(axis=0)
        best = np.unravel_index(np.argmax(summed), summed.shape)
        C_.append(estimator.Cs_[best[0]])
        l1_ratio_.append(l1_ratios_[best[1]])
        w = refit_coef[0] if is_binary else refit_coef
    else:
        best_indices = np.argmax(scores.reshape(n_folds, -1), axis=1)
        best_indices = list(zip(*np.unravel_index(best_indices, (n_cs, n_l1)), strict=True))
        if is_binary:
            w = np.mean([coefs_paths[0, i, best_indices[i][0], best_indices[i][1], :]
                         for i in range(n_folds)], axis=0)
        else:
            w = np.mean([coefs_paths[:, i, best_indices[i][0], best_indices[i][1], :]
                         for i in range(n_folds)], axis=0)
        best_indices = np.asarray(best_indices)
        C_.append(np.mean(estimator.Cs_[best_indices[:, 0]]))
        if penalty == "elasticnet":
            l1_ratio_.append(np.mean(np.asarray(l1_ratios_)[best_indices[:, 1]]))
        else:
            l1_ratio_.append(0.0)
    if is_binary:
        estimator.coef_ = w[:, :n_features] if w.ndim == 2 else w[:n_features][None, :]
        if estimator.fit_intercept:
            estimator.intercept_[0] = w[0, -1] if w.ndim == 2 else w[-1]
    else:
        C_ = np.tile(C_, n_classes)
        l1_ratio_ = np.tile(l1_ratio_, n_classes)
        estimator.coef_ = w[:, :n_features]
        if estimator.fit_intercept:
            estimator.intercept_ = w[:, -1]
    estimator.coef_ = np.ascontiguousarray(estimator.coef_)
    estimator.C_ = np.asarray(C_)
    estimator.l1_ratio_ = np.asarray(l1_ratio_)
    estimator.l1_ratios_ = np.asarray(l1_ratios_)
    if l1_ratios is None:
        for cls, path in estimator.coefs_paths_.items():
            estimator.coefs_paths_[cls] = path[:, :, 0, :]
        for cls, score in estimator.scores_.items():
            estimator.scores_[cls] = score[:, :, 0]
        estimator.n_iter_ = estimator.n_iter_[:, :, :, 0]
    if not legacy:
        n_dof = n_features + int(estimator.fit_intercept)
        estimator.C_ = float(estimator.C_[0])
        newpaths = np.concatenate(list(estimator.coefs_paths_.values()))
        newscores = estimator.scores_[labels[0]]
        newniter = estimator.n_iter_[0]
        if l1_ratios is None:
            newpaths = newpaths.reshape(max(n_classes, 1), n_folds, n_cs, 1, n_dof)
            newscores = newscores.reshape(n_folds, n_cs, 1)
            newniter = newniter.reshape(n_folds, n_cs, 1)
            estimator.l1_ratio_ = 1.0 if estimator.penalty == "l1" else 0.0
        else:
            estimator.l1_ratio_ = float(estimator.l1_ratio_[0])
            newpaths = newpaths.reshape(n_classes, n_folds, n_cs, n_l1, n_dof)
        estimator.coefs_paths_ = np.moveaxis(newpaths, (0, 1, 3), (3, 0, 1))
        estimator.scores_ = np.moveaxis(newscores, (1, 2), (2, 1))
        estimator.n_iter_ = np.moveaxis(newniter, (1, 2), (2, 1))
