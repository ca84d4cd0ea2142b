"""Batched kernels: the loss and gradient sums of many logistic models at
once on one partition, each over its own training rows, and the test-fold
statistics that the decomposable scorers need.

A batch is ``M`` models given as ``coefs`` of shape (M, d * m), each row in
the flat layout of :mod:`..logistic._kernels` (the C-order ravel of a (d, m)
matrix, intercept last), and ``folds`` of shape (M,): model ``j`` trains on
the rows of fold ``folds[j]``'s training set (weights ``S[:, folds[j]]``,
zero on the other rows). One pass over the rows, by cache-sized blocks,
computes ``X_b @ W`` for every model's columns at once (one GEMM), the
pointwise losses and gradients of every model, and ``X_b.T @ G`` (one GEMM).
"""

from __future__ import annotations

import numpy as np

from ..logistic._kernels import issparse, loss_block_rows


def _split(coefs: np.ndarray, n_features: int, fit_intercept: bool, n_outputs: int):
    """``(W, b)``: the (p, M * m) weights of every model side by side and
    the (M * m,) intercepts (zeros without an intercept)."""
    M = coefs.shape[0]
    d = n_features + int(fit_intercept)
    B = coefs.reshape(M, d, n_outputs).transpose(1, 0, 2).reshape(d, M * n_outputs)
    W = np.ascontiguousarray(B[:n_features])
    b = B[n_features] if fit_intercept else np.zeros(M * n_outputs)
    return W, b


def _raw(rows, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    raw = rows @ W.astype(rows.dtype, copy=False)
    raw = np.asarray(raw, dtype=np.float64)
    raw += b
    return raw


def _blocks(X, n_columns: int):
    n = X.shape[0]
    if issparse(X):
        block = max(1, min(n, 16384))
    else:
        block = loss_block_rows(max(X.shape[1], n_columns))
    for start in range(0, n, block):
        yield start, min(start + block, n)


def batch_loss_gradient(X, y: np.ndarray, S: np.ndarray, folds: np.ndarray,
                        coefs: np.ndarray, fit_intercept: bool, n_outputs: int) -> np.ndarray:
    """Per model ``[sum_i s_i loss_i, gradient of it...]`` over its training
    rows: shape (M, 1 + d * m), no penalty."""
    M = coefs.shape[0]
    m = n_outputs
    p = X.shape[1]
    W, b = _split(coefs, p, fit_intercept, m)
    XtG = np.zeros((p, M * m))
    G_sum = np.zeros(M * m)
    loss = np.zeros(M)
    for start, stop in _blocks(X, M * m):
        rows = X[start:stop]
        raw = _raw(rows, W, b)
        weights = S[start:stop][:, folds]  # (nb, M)
        target = y[start:stop]
        if m == 1:
            # With y in {0, 1} and sign = 1 - 2y, z = sign * r: the loss is
            # softplus(z) = max(z, 0) + log1p(exp(-|z|)) and the gradient
            # expit(r) - y = sign * expit(z) = -sign * expm1(-softplus(z)):
            # a dozen in-place passes over the (rows, models) block.
            sign = (1.0 - 2.0 * target)[:, None]
            z = raw * sign
            e = np.abs(z)
            np.negative(e, out=e)
            np.exp(e, out=e)
            np.log1p(e, out=e)
            np.maximum(z, 0.0, out=z)
            z += e
            loss += np.einsum("ij,ij->j", z, weights)
            np.negative(z, out=z)
            G = np.expm1(z, out=z)
            G *= weights
            G *= -sign
        else:
            raw = raw.reshape(-1, M, m)
            raw -= raw.max(axis=2, keepdims=True)
            proba = np.exp(raw)
            total = proba.sum(axis=2)
            proba /= total[:, :, None]
            labels = target.astype(np.intp)
            picked = raw[np.arange(labels.shape[0]), :, labels]  # (nb, M) shifted r_y
            pointwise = np.log(total)
            pointwise -= picked
            loss += np.einsum("ij,ij->j", pointwise, weights)
            proba[np.arange(labels.shape[0]), :, labels] -= 1.0
            proba *= weights[:, :, None]
            G = proba.reshape(-1, M * m)
        XtG += np.asarray(rows.T @ G.astype(X.dtype, copy=False), dtype=np.float64)
        G_sum += G.sum(axis=0)
    grad = XtG.reshape(p, M, m)
    if fit_intercept:
        grad = np.concatenate([grad, G_sum.reshape(1, M, m)], axis=0)
    out = np.empty((M, 1 + grad.shape[0] * m))
    out[:, 0] = loss
    out[:, 1:] = grad.transpose(1, 0, 2).reshape(M, -1)
    return out


def score_statistics(X, labels: np.ndarray, T: np.ndarray, folds: np.ndarray,
                     coefs: np.ndarray, fit_intercept: bool, n_outputs: int,
                     n_classes: int) -> np.ndarray:
    """Per model, over its test rows (weights ``T[:, folds[j]]``): the weight
    of the rows of each class predicted right, the weight of each class's
    rows, and the weighted log loss sum: shape (M, 2 * n_classes + 1).

    Predictions and probabilities are scikit-learn's: class 1 where the
    decision is > 0 (binary), else the first largest; ``expit`` and
    ``1 - expit`` (binary) or the softmax, clipped to ``[eps, 1 - eps]``.
    """
    M = coefs.shape[0]
    m = n_outputs
    W, b = _split(coefs, X.shape[1], fit_intercept, m)
    eps = np.finfo(np.float64).eps
    correct = np.zeros((n_classes, M))
    totals = np.zeros((n_classes, M))
    log_loss = np.zeros(M)
    for start, stop in _blocks(X, M * m):
        raw = _raw(X[start:stop], W, b)
        weights = T[start:stop][:, folds]
        y = labels[start:stop]
        onehot = (y[:, None] == np.arange(n_classes)).astype(np.float64)
        if m == 1:
            predicted = (raw > 0).astype(np.intp)
            p1 = 1.0 / (1.0 + np.exp(-raw))
            p_true = np.where(y[:, None] == 1, p1, 1.0 - p1)
        else:
            raw = raw.reshape(-1, M, m)
            predicted = raw.argmax(axis=2)
            proba = np.exp(raw - raw.max(axis=2, keepdims=True))
            proba /= proba.sum(axis=2, keepdims=True)
            p_true = proba[np.arange(y.shape[0]), :, y]
        right = (predicted == y[:, None]) * weights
        correct += onehot.T @ right
        totals += onehot.T @ weights
        log_loss -= np.einsum("ij,ij->j", np.log(np.clip(p_true, eps, 1 - eps)), weights)
    return np.concatenate([correct.T, totals.T, log_loss[:, None]], axis=1)


def score_of(stats: np.ndarray, scoring: str) -> np.ndarray:
    """Scores (M,) from the summed :func:`score_statistics` of every worker."""
    n_classes = (stats.shape[1] - 1) // 2
    correct, totals = stats[:, :n_classes], stats[:, n_classes:2 * n_classes]
    weight = totals.sum(axis=1)
    if scoring == "accuracy":
        return correct.sum(axis=1) / weight
    if scoring == "neg_log_loss":
        return -stats[:, -1] / weight
    if scoring == "balanced_accuracy":
        present = totals > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            recall = np.where(present, correct / np.where(present, totals, 1.0), 0.0)
        return recall.sum(axis=1) / present.sum(axis=1)
    raise ValueError(f"scoring {scoring!r} is not computed by the workers")
