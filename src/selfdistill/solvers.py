"""Fit one L2-regularised linear softmax model on soft targets (THEORY.md §1).

Minimise over ``W`` (K, d)

    F(W) = (1/N) sum_i sum_k T_ik ell(softmax(W x_i)_k) + (lam/2) ||W||_F^2

(no bias; ``ell`` is cross-entropy, or GCE for ``q > 0``; see :mod:`selfdistill.losses`).
For cross-entropy F is strictly convex for ``lam > 0`` and the minimiser is unique.

How it is solved
----------------
The features are rotated once into their right singular basis, ``X = U S V^T``
(from the small eigendecomposition of ``X^T X`` or ``X X^T``, never an N x N one
when d <= N), and the solver works with ``W = C D^{-1/2} V^T`` where
``D_j = c s_j^2 / N + lam`` and ``c`` is the softmax curvature at the start point
(1/K at W = 0). In these coordinates the Hessian is close to the identity, so
L-BFGS takes few steps. Directions outside the row space of X only feel the
penalty and are exactly 0 at the optimum. The basis is shared by all rounds of a
pipeline (:class:`SpectralBasis`), and each student warm-starts from its teacher.

Convergence means ``||dF/dW||_F <= tol * ||dF/dW(0)||_F`` (default ``tol = 1e-6``).
"""

from __future__ import annotations

import time
import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from ._errors import SelfDistillError
from ._validation import check_features, check_labels, check_positive, check_targets
from .losses import logit_loss_grad

__all__ = ["FitResult", "SpectralBasis", "fit_softmax", "one_hot", "STATUS_MESSAGES"]

#: One table of end-of-run texts; every solver picks a status and its entry.
STATUS_MESSAGES: dict[int, str] = {
    0: "converged: gradient norm at most tol times its value at W = 0",
    1: "stopped: maximum number of iterations reached",
    2: "stopped: line search found no decrease (precision loss near the optimum)",
    3: "stopped: non-finite objective or gradient",
}


@dataclass(frozen=True)
class FitResult:
    """Outcome of one fit; unpacks as ``W, info = fit_softmax(...)``.

    Attributes
    ----------
    W : ndarray of shape (K, d)
        The fitted weights.
    objective : float
        ``F(W)`` in float64.
    grad_norm : float
        ``||dF/dW||_F`` at ``W``.
    grad_norm0 : float
        ``||dF/dW||_F`` at ``W = 0`` (the convergence scale).
    iterations : int
        Solver iterations.
    seconds : float
        Wall-clock time of the fit (basis computation excluded when it was given).
    converged : bool
    status : int
        Key of :data:`STATUS_MESSAGES`.
    message : str
    solver : str
    """

    W: np.ndarray
    objective: float
    grad_norm: float
    grad_norm0: float
    iterations: int
    seconds: float
    converged: bool
    status: int
    message: str
    solver: str

    def __iter__(self):
        """Unpack as ``W, info``."""
        return iter((self.W, self))

    def __getitem__(self, key: str) -> Any:
        """Dict-style access to fields (``info["objective"]``)."""
        if key == "W" or key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def to_dict(self) -> dict[str, Any]:
        """The scalar fields (everything but ``W``) as a JSON-ready dict."""
        out = asdict(self)
        out.pop("W")
        return out


@dataclass(frozen=True)
class SpectralBasis:
    """Right singular basis of the features, shared by every fit on the same X.

    Attributes
    ----------
    V : ndarray of shape (d, r)
        Orthonormal right singular vectors (r = rank used, at most min(N, d)).
    s2 : ndarray of shape (r,)
        Squared singular values (eigenvalues of ``X^T X``), descending.
    XV : ndarray of shape (N, r)
        ``X V = U S``, the rotated features.
    """

    V: np.ndarray
    s2: np.ndarray
    XV: np.ndarray

    @classmethod
    def from_features(cls, X: np.ndarray) -> "SpectralBasis":
        """Compute the basis from ``X`` (N, d) in float64 in O(N d min(N, d))."""
        X64 = np.asarray(X, dtype=np.float64)
        N, d = X64.shape
        if d <= N:
            s2, V = np.linalg.eigh(X64.T @ X64)
            order = np.argsort(s2)[::-1]
            s2, V = np.clip(s2[order], 0.0, None), V[:, order]
            return cls(V=V, s2=s2, XV=X64 @ V)
        s2, Ucols = np.linalg.eigh(X64 @ X64.T)
        order = np.argsort(s2)[::-1]
        s2, Ucols = s2[order], Ucols[:, order]
        keep = s2 > s2[0] * 1e-13
        s2, Ucols = s2[keep], Ucols[:, keep]
        s = np.sqrt(s2)
        V = (X64.T @ Ucols) / s
        return cls(V=V, s2=s2, XV=Ucols * s)


def one_hot(y: np.ndarray, n_classes: int) -> np.ndarray:
    """``(N, K)`` one-hot float64 matrix of integer labels ``y``."""
    Y = np.zeros((y.shape[0], n_classes))
    Y[np.arange(y.shape[0]), y] = 1.0
    return Y


def _curvature(XV: np.ndarray, C0: np.ndarray | None, scale: np.ndarray, K: int) -> float:
    """Mean softmax curvature ``(1 - ||p||^2)/(K - 1)`` at the start (1/K at W = 0)."""
    if C0 is None or not np.any(C0):
        return 1.0 / K
    from .losses import softmax

    P = softmax(XV @ (C0 * scale).T)
    c = float(np.mean(1.0 - np.sum(P * P, axis=1))) / (K - 1)
    return max(c, 1e-3 / K)


def _lbfgs(
    fg: Callable[[np.ndarray], tuple[float, np.ndarray]],
    x0: np.ndarray,
    gscale: np.ndarray,
    gtol_abs: float,
    max_iter: int,
    memory: int,
    callback: Callable[[int, float, float], None] | None,
) -> tuple[np.ndarray, float, np.ndarray, int, int]:
    """L-BFGS with Armijo backtracking on preconditioned variables.

    ``gscale`` maps the gradient to the original coordinates for the stopping test.
    Returns ``x, f, g, iterations, status``.
    """
    x = x0
    f, g = fg(x)
    S: deque[np.ndarray] = deque(maxlen=memory)
    Yd: deque[np.ndarray] = deque(maxlen=memory)
    rho: deque[float] = deque(maxlen=memory)
    status, it = 1, 0
    for it in range(max_iter + 1):
        if not np.isfinite(f) or not np.all(np.isfinite(g)):
            return x, f, g, it, 3
        gnorm = float(np.linalg.norm(g * gscale))
        if callback is not None:
            callback(it, f, gnorm)
        if gnorm <= gtol_abs:
            return x, f, g, it, 0
        if it == max_iter:
            break
        # two-loop recursion
        qv = g.copy()
        alphas = []
        for s, y, r in zip(reversed(S), reversed(Yd), reversed(rho)):
            a = r * np.vdot(s, qv)
            alphas.append(a)
            qv -= a * y
        if S:
            qv *= np.vdot(S[-1], Yd[-1]) / np.vdot(Yd[-1], Yd[-1])
        for (s, y, r), a in zip(zip(S, Yd, rho), reversed(alphas)):
            b = r * np.vdot(y, qv)
            qv += (a - b) * s
        d = -qv
        gd = float(np.vdot(g, d))
        if gd >= 0:  # not a descent direction: restart from the preconditioned gradient
            S.clear(), Yd.clear(), rho.clear()
            d, gd = -g, -float(np.vdot(g, g))
        step = 1.0
        for _ in range(60):
            x_new = x + step * d
            f_new, g_new = fg(x_new)
            if np.isfinite(f_new) and f_new <= f + 1e-4 * step * gd:
                break
            # safeguarded quadratic interpolation of the step
            denom = 2.0 * (f_new - f - step * gd) if np.isfinite(f_new) else np.inf
            step_q = -gd * step * step / denom if denom > 0 else 0.5 * step
            step = float(np.clip(step_q, 0.1 * step, 0.5 * step))
        else:
            return x, f, g, it, 2
        s_vec, y_vec = x_new - x, g_new - g
        sy = float(np.vdot(s_vec, y_vec))
        if sy > 1e-12 * float(np.vdot(y_vec, y_vec)):
            S.append(s_vec), Yd.append(y_vec), rho.append(1.0 / sy)
        if f_new >= f and sy <= 0:
            x, f, g = x_new, f_new, g_new
            return x, f, g, it + 1, 2
        x, f, g = x_new, f_new, g_new
    return x, f, g, max_iter, status


SOLVERS = ("lbfgs",)


def fit_softmax(
    X: np.ndarray,
    targets: np.ndarray,
    lam: float = 1e-5,
    *,
    q: float = 0.0,
    W0: np.ndarray | None = None,
    tol: float = 1e-6,
    max_iter: int = 2000,
    solver: str = "lbfgs",
    memory: int = 20,
    basis: SpectralBasis | None = None,
    n_classes: int | None = None,
    callback: Callable[[int, float, float], None] | None = None,
    check_input: bool = True,
) -> FitResult:
    """Exact minimiser of the L2-regularised softmax objective on soft or hard targets.

    Parameters
    ----------
    X : array-like of shape (N, d)
        Features (Phi in THEORY.md).
    targets : array-like of shape (N, K) or (N,)
        Soft targets with rows summing to 1 (Y in THEORY.md), or integer labels.
    lam : float, default=1e-5
        L2 strength; the objective is ``(1/N) sum_i CE + (lam/2) ||W||^2``.
    q : float, default=0.0
        0 for cross-entropy; in (0, 1] for the GCE loss (non-convex: a stationary point).
    W0 : ndarray of shape (K, d), optional
        Warm start (a student starts from its teacher).
    tol : float, default=1e-6
        Stop when ``||grad|| <= tol * ||grad at W=0||``.
    max_iter : int, default=2000
    solver : {"lbfgs"}, default="lbfgs"
    memory : int, default=20
        L-BFGS history length.
    basis : SpectralBasis, optional
        Precomputed basis of X (reuse across rounds).
    n_classes : int, optional
        K for integer targets (default ``max(targets) + 1``).
    callback : callable ``(iteration, objective, grad_norm)``, optional
    check_input : bool, default=True
        Validate inputs (internal callers that already did pass False).

    Returns
    -------
    FitResult
        Unpacks as ``W, info``; ``info.objective``, ``info.iterations``,
        ``info.seconds``, ``info.converged``.

    Warns
    -----
    ConvergenceWarning
        When the gradient test is not met; ``converged`` is then False.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 5)); y = (X[:, 0] > 0).astype(int)
    >>> W, info = fit_softmax(X, y, lam=1e-2)
    >>> W.shape, info.converged
    ((2, 5), True)
    """
    t0 = time.perf_counter()
    if check_input:
        X = check_features(X)
        lam = check_positive(lam, name="lam")
        t_arr = np.asarray(targets)
        if t_arr.ndim == 1:
            y = check_labels(t_arr, n_samples=X.shape[0], n_classes=n_classes, min_classes=1)
            targets = one_hot(y, n_classes or int(y.max()) + 1)
        else:
            targets = check_targets(t_arr, n_samples=X.shape[0])
        if not (0.0 <= q <= 1.0):
            raise SelfDistillError(f"q must be in [0, 1], got {q}")
        if solver not in SOLVERS:
            raise SelfDistillError(f"solver must be one of {SOLVERS}, got {solver!r}")
        if targets.shape[1] < 2:
            raise SelfDistillError("targets must cover at least 2 classes")
    T = np.asarray(targets, dtype=np.float64)
    N, K = T.shape
    if basis is None:
        basis = SpectralBasis.from_features(X)
    XV, s2, V = basis.XV, basis.s2, basis.V
    if W0 is not None:
        W0 = np.asarray(W0, dtype=np.float64)
        if check_input and W0.shape != (K, X.shape[1]):
            raise SelfDistillError(f"W0 must have shape {(K, X.shape[1])}, got {W0.shape}")
        B0 = W0 @ V
    else:
        B0 = None
    c = _curvature(XV, B0, np.ones(len(s2)), K)
    D = c * s2 / N + lam  # preconditioner: approximate Hessian eigenvalues
    dinv_sqrt = 1.0 / np.sqrt(D)
    Xs = XV * dinv_sqrt  # (N, r) preconditioned features
    pen = lam / D  # penalty weight per coordinate in C
    r = len(s2)
    shape = (K, r)

    def fg(cflat: np.ndarray) -> tuple[float, np.ndarray]:
        C = cflat.reshape(shape)
        value, dZ = logit_loss_grad(Xs @ C.T, T, q)
        grad = dZ.T @ Xs + C * pen
        return value + 0.5 * float(np.sum(C * C * pen)), grad.ravel()

    # gradient norm at W = 0 in original coordinates: ||(U_K - T)^T X / N||, U_K = 1/K
    _, dZ0 = logit_loss_grad(np.zeros((N, K)), T, q)
    g0 = float(np.linalg.norm(dZ0.T @ XV))
    # targets already uniform (e.g. PLL with K = 2): W = 0 is stationary and g0 = 0, so
    # measure convergence against the gradient scale of one-hot targets instead
    g_floor = 1e-3 * float(np.sqrt(np.sum(s2) / N)) / K
    g0 = max(g0, g_floor)
    gscale = np.broadcast_to(np.sqrt(D), shape).ravel()
    C0 = np.zeros(shape) if B0 is None else B0 / dinv_sqrt
    cflat, f, g, iters, status = _lbfgs(
        fg, C0.ravel(), gscale, tol * g0, max_iter, memory, callback
    )
    B = cflat.reshape(shape) * dinv_sqrt
    W = B @ V.T
    grad_norm = float(np.linalg.norm(g * gscale))
    converged = status == 0
    if not converged:
        warnings.warn(
            f"fit_softmax did not converge ({STATUS_MESSAGES[status]}; relative gradient "
            f"{grad_norm / max(g0, 1e-300):.2e} > tol {tol:.0e}). Increase max_iter or lam.",
            ConvergenceWarning,
            stacklevel=2,
        )
    return FitResult(
        W=W,
        objective=float(f),
        grad_norm=grad_norm,
        grad_norm0=g0,
        iterations=int(iters),
        seconds=time.perf_counter() - t0,
        converged=converged,
        status=status,
        message=STATUS_MESSAGES[status],
        solver=solver,
    )
