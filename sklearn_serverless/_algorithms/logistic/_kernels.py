"""The logistic kernels: weighted loss, gradient, Hessian and
Hessian-vector product sums over one partition (plain numpy functions).

The loss is the half binomial loss for two classes and the half multinomial
loss (full softmax, one coefficient row per class) for more. Coefficients
travel as scikit-learn's flat vector: for ``m`` outputs (1 for binary,
``n_classes`` otherwise) and ``d`` degrees of freedom per output (features,
plus one for the intercept, which is last), the flat vector is the C-order
ravel of a ``(d, m)`` matrix, i.e. sklearn's ``coef.ravel(order="F")`` of
its ``(n_classes, d)`` array. Hessians use the same index order.
"""

from __future__ import annotations

import numpy as np

# No scipy import: scipy.sparse costs each worker 0.1-0.3 s of start-up. Sparse
# partitions arrive as scipy CSR matrices and are used through their methods.


def issparse(X) -> bool:
    """``scipy.sparse.issparse`` without importing scipy.sparse."""
    return type(X).__module__.startswith("scipy.sparse")


#: Rows per block of the dense Hessian: the block and its scaled copies stay in cache.
_HESSIAN_BLOCK = 4096


def raw_prediction(X, coef: np.ndarray, fit_intercept: bool) -> np.ndarray:
    """``X @ W + b`` of shape (n_rows, m), in float64, from the flat ``coef``
    of shape (d * m,) (see module doc). One GEMM (GEMV for binary)."""
    n_features = X.shape[1]
    B = coef.reshape(n_features + int(fit_intercept), -1)
    W = B[:n_features].astype(X.dtype, copy=False)
    raw = np.asarray(X @ W, dtype=np.float64)
    if fit_intercept:
        raw += B[n_features]
    return raw


def pointwise_loss_gradient(raw: np.ndarray, y: np.ndarray, sample_weight: np.ndarray
                            ) -> tuple[float, np.ndarray]:
    """Weighted loss sum and the weighted pointwise gradient (n_rows, m).

    Binary (m == 1): half binomial loss ``log(1 + exp(r)) - y r``, gradient
    ``expit(r) - y``. Multiclass: ``logsumexp(r) - r_y``, gradient
    ``softmax(r) - onehot(y)``. Both are computed without overflow.
    """
    if raw.shape[1] == 1:
        r = raw[:, 0]
        # One exp for both: with e = exp(-|r|) (never overflows),
        # log(1 + exp(r)) = max(r, 0) + log1p(e) and expit(r) = (1 or e) / (1 + e).
        e = np.exp(-np.abs(r))
        loss = np.maximum(r, 0.0)
        loss += np.log1p(e)
        loss -= y * r
        grad = np.where(r >= 0, 1.0, e)
        grad /= 1.0 + e
        grad -= y
        grad *= sample_weight
        return float(loss @ sample_weight), grad[:, None]
    top = raw.max(axis=1, keepdims=True)
    shifted = raw - top
    proba = np.exp(shifted)
    total = proba.sum(axis=1, keepdims=True)
    proba /= total
    labels = y.astype(np.intp)
    # logsumexp(r) - r_y = log(sum exp(r - max)) - (r_y - max)
    loss = np.log(total[:, 0]) - np.take_along_axis(shifted, labels[:, None], 1)[:, 0]
    proba[np.arange(labels.shape[0]), labels] -= 1.0
    proba *= sample_weight[:, None]
    return float(loss @ sample_weight), proba


def gradient_sum(X, grad_pointwise: np.ndarray, fit_intercept: bool) -> np.ndarray:
    """``sum_i x_i g_i`` (and ``sum_i g_i`` for the intercept), flat: one ``X.T @ G``."""
    G = grad_pointwise.astype(X.dtype, copy=False)
    XtG = np.asarray(X.T @ G, dtype=np.float64)
    if fit_intercept:
        XtG = np.vstack([XtG, grad_pointwise.sum(axis=0)])
    return XtG.ravel()


def loss_block_rows(n_features: int) -> int:
    """Rows per block of the loss-gradient kernel: about 1 MiB of ``X``."""
    return max(256, min(8192, (1 << 20) // (8 * max(n_features, 1))))


def loss_gradient_sum(X, y: np.ndarray, sample_weight: np.ndarray, coef: np.ndarray,
                      fit_intercept: bool) -> np.ndarray:
    """``[sum_i s_i loss_i, gradient of it...]`` on one partition, no penalty.

    Dense rows go by cache-sized blocks: ``X_b @ W``, the pointwise loss,
    then ``X_b^T @ G_b`` while the block is still in cache, so each round
    reads ``X`` from memory once instead of twice (~1.6x faster)."""
    if issparse(X):
        raw = raw_prediction(X, coef, fit_intercept)
        loss, grad = pointwise_loss_gradient(raw, y, sample_weight)
        return np.concatenate([[loss], gradient_sum(X, grad, fit_intercept)])
    n, p = X.shape
    B = coef.reshape(p + int(fit_intercept), -1)
    W = B[:p].astype(X.dtype, copy=False)
    XtG = np.zeros((p, B.shape[1]))
    G_sum = np.zeros(B.shape[1])
    loss = 0.0
    block = loss_block_rows(p)
    for start in range(0, n, block):
        stop = min(start + block, n)
        rows = X[start:stop]
        raw = np.asarray(rows @ W, dtype=np.float64)
        if fit_intercept:
            raw += B[p]
        block_loss, G = pointwise_loss_gradient(raw, y[start:stop], sample_weight[start:stop])
        loss += block_loss
        XtG += rows.T @ G.astype(X.dtype, copy=False)
        G_sum += G.sum(axis=0)
    if fit_intercept:
        XtG = np.vstack([XtG, G_sum])
    return np.concatenate([[loss], XtG.ravel()])


def pointwise_hessian(raw: np.ndarray, sample_weight: np.ndarray) -> list[list[np.ndarray]]:
    """Weighted pointwise Hessian: ``h[k][j]`` (l >= k) is the (n_rows,) weight of
    the (k, l) class block. Binary: ``p (1 - p)`` as ``e / (1 + e)^2``,
    ``e = exp(-|r|)`` (no underflow to 0 before |r| ~ 700). Multiclass:
    ``p_k delta_kl - p_k p_l``."""
    if raw.shape[1] == 1:
        e = np.exp(-np.abs(raw[:, 0]))
        return [[sample_weight * e / (1.0 + e) ** 2]]
    proba = np.exp(raw - raw.max(axis=1, keepdims=True))
    proba /= proba.sum(axis=1, keepdims=True)
    m = raw.shape[1]
    h = [[None] * m for _ in range(m)]
    for k in range(m):
        sp_k = sample_weight * proba[:, k]
        h[k][k] = sp_k * (1.0 - proba[:, k])
        for j in range(k + 1, m):
            h[k][j] = -sp_k * proba[:, j]
    return h


def _sandwich_sparse(X, h: np.ndarray, fit_intercept: bool) -> np.ndarray:
    """``[X, 1]^T diag(h) [X, 1]`` for CSR ``X``."""
    p = X.shape[1]
    d = p + int(fit_intercept)
    out = np.empty((d, d))
    out[:p, :p] = (X.T @ X.multiply(h[:, None]).tocsr()).toarray()
    if fit_intercept:
        Xh = np.asarray(X.T @ h).ravel()
        out[:p, p] = out[p, :p] = Xh
        out[p, p] = h.sum()
    return out


def hessian_sum(X, h: list[list[np.ndarray]], fit_intercept: bool) -> np.ndarray:
    """``sum_i h_i,kl x~_i x~_i^T`` for every class pair, with ``x~ = [x, 1]``,
    flat in scikit-learn's order (module doc): shape (d * m) ** 2.

    Dense rows go by blocks with the ones column appended, so each class row
    ``k`` is one GEMM ``X~^T [h_kk X~ | h_k,k+1 X~ | ...]`` per block.
    """
    m = len(h)
    n, p = X.shape
    d = p + int(fit_intercept)
    H = np.zeros((d, m, d, m))
    if issparse(X):
        for k in range(m):
            for j in range(k, m):
                H[:, k, :, j] = _sandwich_sparse(X, h[k][j], fit_intercept)
    else:
        Xb = np.ones((min(_HESSIAN_BLOCK, n), d), dtype=X.dtype)
        acc = [np.zeros((d, (m - k) * d)) for k in range(m)]
        for start in range(0, n, _HESSIAN_BLOCK):
            stop = min(start + _HESSIAN_BLOCK, n)
            rows = Xb[: stop - start]
            rows[:, :p] = X[start:stop]
            for k in range(m):
                scaled = np.hstack([
                    h[k][j][start:stop, None].astype(X.dtype, copy=False) * rows
                    for j in range(k, m)
                ])
                acc[k] += rows.T @ scaled
        for k in range(m):
            for j in range(k, m):
                H[:, k, :, j] = acc[k][:, (j - k) * d:(j - k + 1) * d]
    for k in range(m):
        for j in range(k + 1, m):
            H[:, j, :, k] = H[:, k, :, j].T
    return H.ravel()


def hessian_product(X, raw: np.ndarray, sample_weight: np.ndarray, vector: np.ndarray,
                    fit_intercept: bool) -> np.ndarray:
    """``sum_i x~_i (H_i (B_v^T x~_i))``: the Hessian of the weighted loss sum at
    the point whose raw predictions are ``raw``, times the flat ``vector``.

    Binary: ``h_i = s_i p_i (1 - p_i)`` times the direction's raw prediction.
    Multiclass: ``s_i p_ik (r_ik - sum_l p_il r_il)`` with ``r = X~ B_v``.
    """
    direction = raw_prediction(X, vector, fit_intercept)
    if raw.shape[1] == 1:
        e = np.exp(-np.abs(raw[:, 0]))
        direction[:, 0] *= sample_weight * e / (1.0 + e) ** 2
    else:
        proba = np.exp(raw - raw.max(axis=1, keepdims=True))
        proba /= proba.sum(axis=1, keepdims=True)
        mean = np.einsum("ij,ij->i", proba, direction)
        direction -= mean[:, None]
        direction *= proba
        direction *= sample_weight[:, None]
    return gradient_sum(X, direction, fit_intercept)
