"""The intercept, fitted the way liblinear fits it: as a constant feature column.

Notation: N rows, d features, K classes; ``s`` is ``intercept_scaling``.

With ``fit_intercept=True`` the public entries (:class:`~selfdistill.SelfDistillationClassifier`
and ``selfdistill fit``) append a column of value ``s`` to the features,
``X~ = [X, s 1]`` (N, d + 1) (:func:`add_intercept`), and hand ``X~`` to everything
downstream unchanged: the spectral basis, the teacher, the SD rounds, the PLL student,
cross-validation and ``lam="auto"``, the label issues, and the Gram matrix
``G = X~ X~^T = X X^T + s^2 1 1^T`` of docs/theory-derivation.md. A fitted ``W~`` (K, d + 1)
splits into ``coef = W~[:, :d]`` (K, d) and the bias ``b = s W~[:, d]`` (K,)
(:func:`split_weights`), and the logits are ``X~ W~^T = X coef^T + b``.

The bias is penalised with the weights: the objective ``(1/N) sum_i loss_i +
(lam/2) ||W~||^2`` is ``(1/N) sum_i loss_i + (lam/2) (||coef||^2 + ||b||^2 / s^2)``. A
larger ``s`` penalises the bias less (``s -> inf``: unpenalised), at the price of a
less well conditioned problem.

The default ``s`` is :data:`INTERCEPT_SCALING_DEFAULT` = 0.3 (scikit-learn's liblinear uses
1), a compromise measured between speed and accuracy (docs/pipeline.md, "Why s = 0.3").
Rows of norm about 1, the scale ``lam`` is meant for
(:data:`~selfdistill._validation.FEATURE_SCALE`), have columns of root mean square about
``1 / sqrt(d)``; a column of 1 is then the largest direction of ``X~`` by far (``N s^2``
against about ``N / d``), and the solver needs about 2x the L-BFGS steps of the model
without a bias (synthetic 150-class set, lam 1e-5, tol 1e-4: 32 steps at ``s = 1``, 23 at
0.3, 21 at 0.1, 17 without; a larger L-BFGS memory does not help). A smaller ``s``
penalises the bias more, ``(lam / s^2) / 2 ||b||^2``, and that costs SD rounds accuracy
where the given class counts are skewed: on the synthetic set's weak-annotator rows
(``view`` 0.5, seed 0) sd-4 scored 82.4 / 82.2 / 82.0% at ``s`` = 1 / 0.5 / 0.3, in
24.7 / 20.1 / 17.7 s (one run), and 77.5% at 0.1.
"""

from __future__ import annotations

import numpy as np

__all__ = ["INTERCEPT_SCALING_DEFAULT", "add_intercept", "split_weights", "linear_logits"]

#: ``s``, the value of the constant column, wherever a bias is fitted and none is given.
INTERCEPT_SCALING_DEFAULT = 0.3


def add_intercept(X: np.ndarray, scaling: float = INTERCEPT_SCALING_DEFAULT) -> np.ndarray:
    """``[X, scaling 1]``: the features with a constant last column (N, d + 1).

    float32 features stay float32 (the column holds ``scaling`` rounded to float32),
    anything else becomes float64.

    Parameters
    ----------
    X : ndarray of shape (N, d)
        Checked features (Phi in theory-derivation.md).
    scaling : float, default=INTERCEPT_SCALING_DEFAULT
        Value of the column, ``s``; the bias is penalised by ``(lam/2) ||b||^2 / s^2``.

    Returns
    -------
    ndarray of shape (N, d + 1)

    Examples
    --------
    >>> add_intercept(np.array([[0.5, -1.0], [2.0, 0.0]]), 2.0)
    array([[ 0.5, -1. ,  2. ],
           [ 2. ,  0. ,  2. ]])
    """
    X = np.asarray(X)
    dtype = np.float32 if X.dtype == np.float32 else np.float64
    out = np.empty((X.shape[0], X.shape[1] + 1), dtype=dtype)
    out[:, :-1] = X
    out[:, -1] = scaling
    return out


def split_weights(W: np.ndarray, scaling: float = INTERCEPT_SCALING_DEFAULT
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``(coef, intercept)`` of weights fitted on :func:`add_intercept`'s features.

    Parameters
    ----------
    W : ndarray of shape (K, d + 1)
        Weights on ``[X, scaling 1]``.
    scaling : float, default=INTERCEPT_SCALING_DEFAULT
        The column's value.

    Returns
    -------
    coef : ndarray of shape (K, d)
        ``W[:, :d]``.
    intercept : ndarray of shape (K,)
        ``scaling * W[:, d]``, so that ``X coef^T + intercept = [X, scaling 1] W^T``.

    Examples
    --------
    >>> coef, b = split_weights(np.array([[1.0, 2.0, 0.5], [0.0, -1.0, -0.5]]), 2.0)
    >>> coef, b
    (array([[ 1.,  2.],
           [ 0., -1.]]), array([ 1., -1.]))
    """
    W = np.asarray(W, dtype=np.float64)
    return W[:, :-1].copy(), scaling * W[:, -1]


def linear_logits(X: np.ndarray, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """``X coef^T + intercept`` (M, K), computed in ``X``'s float dtype.

    The one formula for the logits of a fitted model: the estimator, ``fit``'s test
    accuracy, model files and ``predict`` all use it, so the same rows give the same
    numbers everywhere.

    Examples
    --------
    >>> linear_logits(np.array([[1.0, 2.0]]), np.array([[1.0, 0.0], [0.0, 1.0]]),
    ...               np.array([0.5, -0.5]))
    array([[1.5, 1.5]])
    """
    X = np.asarray(X)
    if X.dtype.kind != "f":
        X = X.astype(np.float64)
    Z = X @ np.asarray(coef).T.astype(X.dtype, copy=False)
    Z += np.asarray(intercept).astype(X.dtype, copy=False)
    return Z
