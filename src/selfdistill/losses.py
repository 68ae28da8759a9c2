"""Losses of one linear softmax model on soft targets (theory-derivation.md §1).

Notation: ``X`` (N, d) is Phi, ``W`` (K, d) the model, ``Z = X W^T`` the logits,
``P = softmax(Z)`` row-wise, ``T`` (N, K) the targets (rows sum to 1). The objective is

    F(W) = (1/N) sum_i sum_k T_ik ell(P_ik) + (lam/2) ||W||_F^2

with ``ell(p) = -log p`` (cross-entropy, ``q = 0``) or ``ell(p) = (1 - p^q) / q``
(generalised cross-entropy, GCE, ``0 < q <= 1``; q -> 0 recovers CE). For PLL the
targets are two-hot ``(e_k + e_l)/2``, so the GCE term is the mean over the two
candidate classes.

Gradient with respect to the logits (row i, class j), divided by N:

* CE:  ``dF/dZ = (P - T) / N`` (rows of T sum to 1)
* GCE: ``dF/dZ = (P * s - T * P^q) / N`` with ``s_i = sum_k T_ik P_ik^q``

and ``dF/dW = (dF/dZ)^T X + lam W``. The CE Hessian-vector product along ``V``:
``dZ = X V^T``, ``dP = P * dZ - P * rowsum(P * dZ)``, ``H V = dP^T X / N + lam V``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "softmax",
    "objective",
    "logit_loss_grad",
    "logit_hvp",
    "loss_grad",
    "hvp",
]


def softmax(Z: np.ndarray) -> np.ndarray:
    """Row-wise softmax ``P = softmax(Z)``, stable for large logits.

    Examples
    --------
    >>> softmax(np.array([[0.0, 0.0], [0.0, np.log(3.0)]])).round(3)
    array([[0.5 , 0.5 ],
           [0.25, 0.75]])
    """
    Zs = Z - Z.max(axis=1, keepdims=True)
    E = np.exp(Zs)
    E /= E.sum(axis=1, keepdims=True)
    return E


def logit_loss_grad(
    Z: np.ndarray, T: np.ndarray, q: float = 0.0, n_total: int | None = None,
    out: np.ndarray | None = None, *, shift: np.ndarray | None = None,
    lse: np.ndarray | None = None,
) -> tuple[float, np.ndarray]:
    """Data term ``(1/N) sum_i sum_k T_ik ell(P_ik)`` and its gradient in the logits.

    Parameters
    ----------
    Z : ndarray of shape (N, K)
        Logits.
    T : ndarray of shape (N, K) or (N,)
        Targets, rows summing to 1; or integer labels in ``0..K-1``, the one-hot
        targets without their N x K array (cross-entropy: two passes over Z fewer, a
        gather and a scatter instead; the value's sum is ordered differently, so it may
        differ from the one-hot array's in the last bits, ``dZ`` is the same).
    q : float, default=0.0
        0 for cross-entropy, in (0, 1] for GCE.
    n_total : int, optional
        The N to divide by (default ``Z.shape[0]``); a block of rows passes the full N
        so that the blocks' values and gradients add up to the whole; the solver's
        stored path passes 1 and divides its (small) sums instead of the N x K
        gradient.
    out : ndarray of shape (N, K), optional
        Where to write ``dZ`` (dtype of ``Z``, not overlapping ``Z`` or ``T``); the
        solver passes buffers it reuses across line-search trials. Same numbers as
        without it.
    shift : ndarray of shape (N,), optional
        Per-row numbers subtracted before the exponential instead of the row maximum
        (a pass over Z fewer): the solver passes the row log-sum-exp of the nearby
        point a trial starts from, within a few units of the maximum. Rows where it is
        far off (an exponential overflows, or all underflow) are redone with their
        maximum. The same values to rounding.
    lse : ndarray of shape (N,), optional
        Where to write the rows' log-sum-exp ``log sum_k exp(Z_ik)`` (the next trial's
        ``shift``); it may be the ``shift`` array itself.

    Returns
    -------
    value : float
        Accumulated in float64.
    dZ : ndarray of shape (N, K)
        Gradient of the value with respect to ``Z`` (``out``, or a new array of the
        dtype of ``Z - shift``).

    Notes
    -----
    Written for speed (it runs once per solver step on an N x K array): a handful of
    passes over the array, in place where possible, row sums as matrix-vector
    products. With a shift ``c_i`` and ``s_i = sum_k exp(Z_ik - c_i)``, CE is
    ``(1/N) sum_i (c_i + log s_i - sum_k T_ik Z_ik)`` (rows of T sum to 1).

    Examples
    --------
    >>> v, dZ = logit_loss_grad(np.zeros((1, 2)), np.array([[1.0, 0.0]]))
    >>> round(v, 6), dZ.tolist()
    (0.693147, [[-0.5, 0.5]])
    """
    N = Z.shape[0] if n_total is None else n_total
    if T.ndim == 1 and q != 0.0:
        T = np.eye(Z.shape[1])[T]  # GCE: the dense one-hot targets
    rows = np.arange(Z.shape[0]) if T.ndim == 1 else None  # labels: (rows, T) are the ones
    ones = np.ones(Z.shape[1], dtype=Z.dtype)
    c = Z.max(axis=1) if shift is None else shift
    E = np.subtract(Z, c[:, None], out=out)
    with np.errstate(over="ignore", under="ignore"):  # far rows: redone just below
        np.exp(E, out=E)
    s = E @ ones
    if shift is not None:
        far = ~((s > _SUM_FLOOR) & (s < _SUM_CEIL))  # NaN rows too: redone, NaN again
        if far.any():
            c = c.copy()
            c[far] = Z[far].max(axis=1)
            E[far] = np.exp(Z[far] - c[far, None])
            s[far] = E[far] @ ones
    E *= (1.0 / s)[:, None]  # E is now P
    log_s = np.log(s)
    if q == 0.0:
        # sum_k T_ik log P_ik = sum_k T_ik Z_ik - c_i - log s_i  (rows of T sum to 1)
        tz = (float(np.sum(Z[rows, T], dtype=np.float64)) if rows is not None
              else float(np.vdot(T.ravel(), Z.ravel())))
        value = (float(np.sum(log_s, dtype=np.float64)) + float(np.sum(c, dtype=np.float64))
                 - tz) / N
    if lse is not None:  # after the last read of c: lse may be the shift array
        np.add(log_s, c, out=lse)
    if q == 0.0:
        if rows is not None:
            E[rows, T] -= 1.0
        else:
            E -= T
        if N != 1:
            E *= 1.0 / N
        return value, E
    Pq = np.power(E, q)
    Pq *= T  # T * P^q
    value = (float(np.sum(T, dtype=np.float64)) - float(np.sum(Pq, dtype=np.float64))) / (q * N)
    E *= (Pq @ ones)[:, None]
    E -= Pq
    if N != 1:
        E *= 1.0 / N
    return value, E


#: Row sums ``sum_k exp(Z_ik - shift_i)`` trusted with a given shift: above the floor the
#: largest term is above e^-461 (terms down to ~e^-700 keep full precision); below the
#: ceiling ``1 / s`` is a normal number.
_SUM_FLOOR = 1e-200
_SUM_CEIL = 1e300


def logit_hvp(P: np.ndarray, dZ: np.ndarray) -> np.ndarray:
    """Cross-entropy curvature in the logits: ``S_i dz_i`` with ``S_i = diag(p_i) - p_i p_i^T``.

    Divided by N, as :func:`logit_loss_grad`. With ``dZ = X V^T`` the Hessian-vector
    product of F is ``logit_hvp(P, dZ)^T X + lam V``.
    """
    PdZ = P * dZ
    PdZ -= P * PdZ.sum(axis=1, keepdims=True)
    PdZ *= 1.0 / P.shape[0]
    return PdZ


def loss_grad(
    W: np.ndarray, X: np.ndarray, T: np.ndarray, lam: float, q: float = 0.0
) -> tuple[float, np.ndarray]:
    """Objective ``F(W)`` and gradient ``dF/dW`` (float64), theory-derivation.md §1.

    Examples
    --------
    >>> X = np.eye(2); T = np.eye(2)
    >>> f, g = loss_grad(np.zeros((2, 2)), X, T, lam=1.0)
    >>> round(f, 6), g.round(3).tolist()
    (0.693147, [[-0.25, 0.25], [0.25, -0.25]])
    """
    Z = X @ W.T
    value, dZ = logit_loss_grad(np.asarray(Z, dtype=np.float64), T, q)
    grad = np.asarray(dZ.T @ X, dtype=np.float64) + lam * W
    return value + 0.5 * lam * float(np.sum(W * W)), grad


def objective(W: np.ndarray, X: np.ndarray, T: np.ndarray, lam: float, q: float = 0.0) -> float:
    """``F(W)`` evaluated in float64: the one shared objective used by every comparison."""
    X64 = np.asarray(X, dtype=np.float64)
    W64 = np.asarray(W, dtype=np.float64)
    T64 = np.asarray(T, dtype=np.float64)
    return loss_grad(W64, X64, T64, lam, q)[0]


def hvp(W: np.ndarray, X: np.ndarray, lam: float, V: np.ndarray) -> np.ndarray:
    """Cross-entropy Hessian-vector product ``H V`` at ``W`` (independent of T)."""
    P = softmax(X @ W.T)
    return logit_hvp(P, X @ V.T).T @ X + lam * V
