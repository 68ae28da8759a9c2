"""Fit one L2-regularised linear softmax model on soft targets (theory-derivation.md §1).

Minimise over ``W`` (K, d)

    F(W) = (1/N) sum_i sum_k T_ik ell(softmax(W x_i)_k) + (lam/2) ||W||_F^2

(no bias; ``ell`` is cross-entropy, or GCE for ``q > 0``; see :mod:`selfdistill.losses`).
For cross-entropy F is strictly convex for ``lam > 0`` and the minimiser is unique.

How it is solved
----------------
* **One rotation, shared.** The features are rotated once into their right singular
  basis, ``X V = U S`` (from the d x d eigendecomposition of ``X^T X``, or the N x N one
  of ``X X^T`` only when d > N), kept in :class:`SpectralBasis` and shared by every
  round of a pipeline. Directions outside the row space of X only feel the penalty
  and are exactly 0 at the optimum.
* **Scaled variables.** The solver works with ``W = C D^{-1/2} V^T``,
  ``D_j = lam sqrt(1 + s_j^2 / (K N lam))`` (:func:`_preconditioner`).
* **L-BFGS with a cheap exact line search.** Each step costs two float32 matmuls of
  size N x r x K: ``Xs d^T`` for the search direction ``d`` and ``dZ^T Xs`` for the new
  gradient. Line-search trials only move the logits, ``Z + t Xs d^T`` (element-wise
  work), so strong Wolfe steps come almost free.
* **Float32 speed, float64 accuracy.** Logits and gradient are float64 accumulators
  updated by float32 matmuls of *differences*; the rounding error is relative to the
  update, and a float64 recomputation removes drift before convergence is declared.
* **Threads over row blocks.** N x K work is split into row blocks run by a pool of
  Python threads with single-threaded BLAS (OpenBLAS's own threads spin and stall on a
  shared machine). The block layout fixes the summation order: same numbers for any
  thread count up to 8.
* **Memory: stored logits, or streamed.** The fast path keeps the rotated features
  (float64 and float32) and up to eight N x K float64 arrays: O(N d + N K). With
  ``low_memory`` (chosen automatically when those arrays would pass 4 GiB) nothing N x K
  and no copy of X is kept: :class:`_StreamingOps` recomputes the logits per row block in
  every line-search trial, and memory beyond X and the targets is O(K d + d^2) plus a few
  row blocks. Nothing N x N when d <= N.

What was tried and measured is in ``docs/performance.md``.

Convergence means ``||dF/dW||_F <= tol * ||dF/dW(0)||_F`` (default ``tol = 1e-6``).
The rule is scale-free: features multiplied by ``s`` with penalty ``lam`` are the problem
of the original features with ``lam / s^2`` (``W`` divided by ``s``), and both sides of
the test scale alike. Badly scaled features therefore mean a tiny or huge effective lam,
not a broken test; the doors warn about them (:func:`~selfdistill._validation.warn_feature_scale`).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController

from ._errors import SelfDistillError
from ._validation import (
    BACKENDS,
    MAX_ITER,
    ROUNDS,
    TOL,
    Q,
    check_features,
    check_flag,
    check_in,
    check_labels,
    check_lam,
    check_option,
    check_targets,
    feature_scale_hint,
)
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
    """Outcome of one fit (:func:`fit_softmax` returns ``W, info`` with ``info`` one of these).

    Attributes
    ----------
    W : ndarray of shape (K, d)
        The fitted weights.
    objective : float
        ``F(W)`` in float64 (with ``tol >= LOOSE_TOL``, kept up to date by float32
        differences: within ~1e-6 relative of the exact value).
    grad_norm : float
        ``||dF/dW||_F`` at ``W`` (likewise updated from ``LOOSE_TOL`` up).
    grad_norm0 : float
        ``||dF/dW||_F`` at ``W = 0`` (the convergence scale).
    iterations : int
        Solver iterations (L-BFGS steps), over all restarts.
    nfev : int
        Evaluations of the objective and its gradient: line-search trials plus exact
        float64 recomputations, over all restarts.
    seconds : float
        Wall-clock time of the fit (basis computation excluded when it was given).
    converged : bool
    status : int
        Key of :data:`STATUS_MESSAGES`.
    message : str
    restarts : int
        Restarts after a precision stop that were used.
    """

    W: np.ndarray
    objective: float
    grad_norm: float
    grad_norm0: float
    iterations: int
    nfev: int
    seconds: float
    converged: bool
    status: int
    message: str
    restarts: int = 0

    @property
    def relative_grad(self) -> float:
        """``grad_norm / grad_norm0``, the quantity compared with ``tol``."""
        return self.grad_norm / max(self.grad_norm0, 1e-300)

    def to_dict(self) -> dict[str, Any]:
        """The fit as a record: every field but ``W``, plus ``relative_grad``.

        The one projection of a fit: the estimator's ``history_``, the ``models`` records
        of a run and the theory's fit records all use it.
        """
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)
                               if f.name != "W"}
        out["relative_grad"] = self.relative_grad
        return out


@dataclass(frozen=True)
class SpectralBasis:
    """Right singular basis of the features, shared by every fit on the same X (or, with
    ``exact=False``, borrowed from a superset of its rows: :meth:`of_rows`).

    Attributes
    ----------
    V : ndarray of shape (d, r)
        Orthonormal right singular vectors (r = rank used, at most min(N, d)).
    s2 : ndarray of shape (r,)
        Squared singular values (eigenvalues of ``X^T X``), descending; for a borrowed
        basis the diagonal of ``V^T X^T X V``, in ``V``'s order.
    XV : ndarray of shape (N, r) or None
        ``X V = U S``, the rotated features (float64); None for a basis built with
        ``rotate=False``, which is all a ``low_memory`` fit needs.
    exact : bool
        True for a singular basis of these rows (:meth:`from_features`); False for one
        borrowed from a superset of the rows (:meth:`of_rows`), where ``s2`` is only the
        diagonal of ``V^T X^T X V``: a rotation and preconditioner for the solver, which
        converges to the same minimiser on either, but not a spectrum for the theory.
    """

    V: np.ndarray
    s2: np.ndarray
    XV: np.ndarray | None
    exact: bool = True

    def of_rows(self, rows: np.ndarray) -> SpectralBasis:
        """A basis for fits on the rows ``rows`` of this basis's X, without a new factorisation.

        Keeps ``V`` and takes the rows of ``XV``; ``s2`` becomes the squared column norms
        of those rows (``exact=False``). The rows of a random or pruned subset are spread
        like the whole, so ``V`` nearly diagonalises their Gram matrix too and the
        solver's preconditioner works as well (measured: the same L-BFGS steps within a
        few percent on BANKING77's cross-validation folds), while each fold skips its
        Gram matrix, eigendecomposition and rotation.

        Parameters
        ----------
        rows : ndarray of int or bool
            Rows of the X this basis was computed from.

        Examples
        --------
        >>> X = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
        >>> sub = SpectralBasis.from_features(X).of_rows(np.array([0, 1]))
        >>> sub.exact, round(float(sub.s2.sum()), 6)   # trace of X[:2]^T X[:2]
        (False, 5.0)
        """
        if self.XV is None:
            raise ValueError("of_rows needs the rotated features (a basis built with "
                             "rotate=True)")
        XV = self.XV[rows]
        return SpectralBasis(V=self.V, s2=np.einsum("ij,ij->j", XV, XV), XV=XV, exact=False)

    @classmethod
    def from_features(cls, X: np.ndarray, *, n_threads: int | None = None,
                      rotate: bool = True) -> SpectralBasis:
        """Compute the basis from ``X`` (N, d) in float64 in O(N d min(N, d)).

        Row blocks are processed by ``n_threads`` Python threads with one BLAS thread
        each and summed in block order, so the basis (and every fit on it) is bit-for-bit
        the same whatever the thread settings of the caller. With ``rotate=False`` (and
        d <= N) only ``V`` and ``s2`` are computed, from the d x d Gram matrix: memory
        O(d^2) beyond X, and ``XV`` is None.
        """
        N, d = X.shape
        with _single_blas(), _pool(_n_threads(n_threads)) as pool:
            if d <= N:
                s2, V = _gram_spectrum(X, pool)
                return cls(V=V, s2=s2, XV=_rotate(X, V, pool) if rotate else None)
            # d > N: eigendecomposition of the N x N Gram matrix X X^T (small N only)
            X64 = np.asarray(X, dtype=np.float64)
            s2, Ucols = np.linalg.eigh(X64 @ X64.T)
            order = np.argsort(s2)[::-1]
            s2, Ucols = s2[order], Ucols[:, order]
            keep = s2 > s2[0] * 1e-13
            s2, Ucols = s2[keep], Ucols[:, keep]
            s = np.sqrt(s2)
            V = (X64.T @ Ucols) / s
            return cls(V=V, s2=s2, XV=Ucols * s if rotate else None)


def _feature_blocks(N: int, d: int) -> list[slice]:
    """Row blocks of about 4M feature values (32 MB in float64) for the basis."""
    step = max(1, (1 << 22) // max(d, 1))
    return [slice(i, min(i + step, N)) for i in range(0, N, step)]


def _gram_spectrum(X: np.ndarray, pool: _Workers | None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``(s2, V)``: eigenvalues (descending, clipped at 0) and eigenvectors of ``X^T X``.

    The d x d Gram matrix is summed over row blocks in block order, each block converted
    to float64 on its own: no full float64 copy of X, one block's d x d part per worker.
    """
    N, d = X.shape

    def gram_of(sl: slice) -> np.ndarray:
        Xb = np.asarray(X[sl], dtype=np.float64)
        return Xb.T @ Xb

    gram = np.zeros((d, d))
    for part in _imap_blocks(pool, gram_of, _feature_blocks(N, d)):
        gram += part
    s2, V = np.linalg.eigh(gram)
    order = np.argsort(s2)[::-1]
    return np.clip(s2[order], 0.0, None), V[:, order]


def _rotate(X: np.ndarray, V: np.ndarray, pool: _Workers | None) -> np.ndarray:
    """``X V`` (N, r) in float64, row block by row block."""
    XV = np.empty((X.shape[0], V.shape[1]))

    def rotate(sl: slice) -> None:
        np.matmul(np.asarray(X[sl], dtype=np.float64), V, out=XV[sl])

    _map_blocks(pool, rotate, _feature_blocks(*X.shape))
    return XV


def one_hot(y: np.ndarray, n_classes: int) -> np.ndarray:
    """``(N, K)`` one-hot float64 matrix of integer labels ``y``."""
    Y = np.zeros((y.shape[0], n_classes))
    Y[np.arange(y.shape[0]), y] = 1.0
    return Y


def _data_gradient_at_zero(XV: np.ndarray, T: np.ndarray, q: float, K: int) -> np.ndarray:
    """``(U_K - T)^T XV / N`` (K, r) in float64 (``U_K = 1/K``): the data gradient at
    ``W = 0`` in XV's coordinates (cross-entropy; GCE: from the logit gradient at zero).
    Its norm is a fit's convergence scale ``g0``.

    With integer labels, ``T^T XV`` is the class sums of XV's rows (a sparse product:
    N x r work, not N x K x r).
    """
    N = XV.shape[0]
    if q != 0.0:
        _, dZ0 = logit_loss_grad(np.zeros((N, K)), T, q)
        return dZ0.T @ XV
    if T.ndim == 1:
        from scipy.sparse import csr_matrix

        TX = csr_matrix((np.ones(N), (T, np.arange(N))), shape=(K, N)) @ XV
    else:
        TX = T.T @ XV
    G = (XV.sum(axis=0) / K)[None, :] - TX
    G *= 1.0 / N
    return G


class _NumpyOps:
    """The N x K work of one fit in numpy: float32 matmuls, float64 everything else.

    The solver keeps the logits ``Z = Xs C^T`` and the gradient ``G`` up to date by
    adding *differences* computed with float32 matmuls (``Xs d^T`` along the search
    direction, ``(dZ_new - dZ_old)^T Xs / N`` for the gradient change) to float64
    accumulators. The rounding error of each update is relative to the update, not to
    ``Z`` or ``G``, so the float32 speed costs no accuracy near the optimum; a full
    float64 recomputation (:meth:`refresh`) removes any drift before convergence is
    declared (below :data:`LOOSE_TOL`). The logit gradients ``dZ`` it hands out are N
    times the gradient in the logits (the division by N is done on the small sums, not
    on N x K arrays), and the logits travel with their row log-sum-exp
    (:class:`_Logits`).

    Everything N x K is row-separable, so rows are split into blocks handled by a pool
    of ``n_threads`` Python threads (numpy and single-threaded BLAS release the GIL).
    Partial sums are added in block order: results do not depend on scheduling.
    """

    def __init__(self, XV, dinv_sqrt, T, q, pool, n_blocks, K=None):
        N = XV.shape[0]
        self.N, self.K = N, (T.shape[1] if K is None else K)  # labels T: K given
        self.XV = XV
        self.dinv_sqrt = dinv_sqrt
        self.T = T
        self.q = q
        self.pool = pool
        bounds = np.linspace(0, N, n_blocks + 1).astype(int)
        self.blocks = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        self._free: list[tuple[_Logits, np.ndarray]] = []  # see release()
        self._Zd: np.ndarray | None = None  # see direction_trial()
        self._at_zero: np.ndarray | None = None  # see data_gradient_at_zero()
        self.Xs32 = np.empty(XV.shape, dtype=np.float32)
        self._map(lambda sl: np.multiply(XV[sl], dinv_sqrt, out=self.Xs32[sl],
                                         casting="same_kind"))

    def _map(self, fn):
        return _map_blocks(self.pool, fn, self.blocks)

    def _take(self) -> tuple[_Logits, np.ndarray]:
        """A pair ``(Zt, dZ)`` for a trial or refresh: logits (with their row
        log-sum-exp) and an (N, K) float64 gradient; a released one when there is one,
        else new. Its contents are overwritten."""
        if self._free:
            return self._free.pop()
        shape = (self.N, self.K)
        return _Logits(np.empty(shape), np.empty(self.N)), np.empty(shape)

    def release(self, Zt, dZ) -> None:
        """Hand back the logits and logit gradient of a trial or refresh nobody holds any
        more (a rejected trial, the previous point): the next trial writes into them.

        The pool stays small: the driver holds at most the current point, the line
        search's best trial and the trial under way, so at most three pairs exist.
        """
        self._free.append((Zt, dZ))

    def direction(self, d: np.ndarray) -> np.ndarray:
        """``Xs d^T`` (N, K) in float64 from a float32 matmul."""
        d32 = np.ascontiguousarray(d, dtype=np.float32).T
        out = np.empty((self.N, d.shape[0]))

        def work(sl):
            out[sl] = self.Xs32[sl] @ d32

        self._map(work)
        return out

    def _trial_block(self, sl, Z, Zd, t, Zt, dZ):
        """One row block of :meth:`trial`: ``Zt = Z + t Zd``, loss, ``dZ``, slope.

        The exponentials are shifted by the row log-sum-exp of ``Z`` (no pass for the
        row maxima), and value, slope and ``dZ`` are left undivided by N: the callers
        divide their sums, which are small, instead of the N x K gradient.
        """
        if t == 1.0:  # t * Zd is Zd exactly: one pass fewer, the same bits
            np.add(Zd[sl], Z.Z[sl], out=Zt.Z[sl])
        else:
            np.multiply(Zd[sl], t, out=Zt.Z[sl])
            Zt.Z[sl] += Z.Z[sl]
        v, _ = logit_loss_grad(Zt.Z[sl], self.T[sl], self.q, n_total=1, out=dZ[sl],
                               shift=Z.lse[sl], lse=Zt.lse[sl])
        return v, float(np.vdot(dZ[sl].ravel(), Zd[sl].ravel()))

    def _summed(self, parts) -> tuple[float, float]:
        """Value and slope of a trial from its blocks' undivided parts, in block order."""
        return sum(p[0] for p in parts) / self.N, sum(p[1] for p in parts) / self.N

    def trial(self, Z, Zd, t):
        """Logits ``Z + t Zd``, data value, ``dZ`` and the slope ``<dZ, Zd>`` there.

        ``dZ`` and the logits are written into a pair from :meth:`release` when one is
        free (no N x K allocation per trial). ``dZ`` is N times the gradient in the
        logits: :meth:`grad_change` divides."""
        Zt, dZ = self._take()
        parts = self._map(lambda sl: self._trial_block(sl, Z, Zd, t, Zt, dZ))
        return (*self._summed(parts), dZ, Zt)

    def direction_trial(self, Z, d, t):
        """``(direction(d), trial(Z, Zd, t))`` in one pass over the row blocks: each
        block's trial runs right after its matmul, while its logits are in cache."""
        d32 = np.ascontiguousarray(d, dtype=np.float32).T
        if self._Zd is None:  # one direction is alive at a time: its logits reuse a buffer
            self._Zd = np.empty((self.N, d.shape[0]))
        Zd = self._Zd
        Zt, dZ = self._take()

        def work(sl):
            Zd[sl] = self.Xs32[sl] @ d32
            return self._trial_block(sl, Z, Zd, t, Zt, dZ)

        parts = self._map(work)
        return Zd, (*self._summed(parts), dZ, Zt)

    def grad_change(self, dZ_new: np.ndarray, dZ_old: np.ndarray) -> np.ndarray:
        """``(dZ_new - dZ_old)^T Xs / N`` (K, r) from float32 matmuls."""
        parts = np.empty((len(self.blocks), dZ_new.shape[1], self.XV.shape[1]))

        def work(b, sl):
            diff = np.subtract(dZ_new[sl], dZ_old[sl], dtype=np.float32)
            parts[b] = diff.T @ self.Xs32[sl]

        self._map_indexed(work)
        out = parts.sum(axis=0)  # block order
        out *= 1.0 / self.N
        return out

    def _map_indexed(self, fn):
        return _map_blocks(self.pool, lambda b: fn(b, self.blocks[b]),
                           list(range(len(self.blocks))))

    def data_gradient_at_zero(self) -> np.ndarray:
        """:func:`_data_gradient_at_zero` of this fit, kept for a cold start's first
        point (:meth:`start`), which then computes no product with XV (the logits at
        ``C = 0`` are exactly 0)."""
        self._at_zero = _data_gradient_at_zero(self.XV, self.T, self.q, self.K)
        return self._at_zero

    def start(self, C: np.ndarray) -> tuple[_Logits, float, np.ndarray, np.ndarray, bool]:
        """The solver's first point: :meth:`refresh`'s outputs and whether they are exact.

        At ``C = 0`` after :meth:`data_gradient_at_zero` (a cold start): exact, with the
        logits 0 and the gradient kept there (no product with XV). Elsewhere (a warm
        start): from float32 products, as a trial's differences are; below
        :data:`LOOSE_TOL` the drift this leaves is removed by the exact :meth:`refresh`
        before convergence is declared (or when a line search finds no decrease), as the
        trials' is; from it up it stays (a bias of 2-4e-5 of the threshold measured at
        tol 3e-3, N = 50,000, K = 100), as the trials' drift does.
        """
        if self._at_zero is not None and not np.any(C):
            Z, dZ = self._take()
            Z.Z[...] = 0.0

            def work0(sl):
                v, _ = logit_loss_grad(Z.Z[sl], self.T[sl], self.q, n_total=1,
                                       out=dZ[sl], lse=Z.lse[sl])
                return v

            value = sum(self._map(work0)) / self.N
            return Z, value, dZ, self._at_zero * self.dinv_sqrt, True
        return (*self._evaluate(C, exact=False), False)

    def refresh(self, C: np.ndarray) -> tuple[_Logits, float, np.ndarray, np.ndarray]:
        """Exact float64 ``Z`` (with its row log-sum-exp), data value, ``dZ`` (N times the
        logit gradient, as a trial's) and data gradient ``dZ^T Xs / N`` at ``C``."""
        return self._evaluate(C, exact=True)

    def _evaluate(self, C: np.ndarray, exact: bool
                  ) -> tuple[_Logits, float, np.ndarray, np.ndarray]:
        """:meth:`refresh`'s outputs at ``C`` from float64 products with XV (``exact``)
        or from float32 products with Xs (a warm :meth:`start`)."""
        if exact:
            A, Bt = self.XV, (C * self.dinv_sqrt).T
            dtype, scale = np.float64, self.dinv_sqrt / self.N
        else:   # Xs C^T = XV (C D^-1/2)^T; dZ^T Xs is already in C's coordinates
            A, Bt = self.Xs32, np.ascontiguousarray(C, dtype=np.float32).T
            dtype, scale = np.float32, 1.0 / self.N
        Z, dZ = self._take()
        parts = np.empty((len(self.blocks),) + C.shape)

        def work(b, sl):
            Z.Z[sl] = A[sl] @ Bt
            v, _ = logit_loss_grad(Z.Z[sl], self.T[sl], self.q, n_total=1, out=dZ[sl],
                                   lse=Z.lse[sl])
            parts[b] = dZ[sl].astype(dtype, copy=False).T @ A[sl]
            return v

        value = sum(self._map_indexed(work)) / self.N
        return Z, value, dZ, parts.sum(axis=0) * scale  # block order


@dataclass
class _Logits:
    """Logits ``Z`` (N, K) of a point of :class:`_NumpyOps` with their row log-sum-exp
    ``lse`` (N,): the shift of the exponentials of the trials that start there."""

    Z: np.ndarray
    lse: np.ndarray


@dataclass(frozen=True)
class _Point:
    """Where :class:`_StreamingOps` stands: the variables ``C`` and the data value there.

    Its stand-in for the N x K logits of :class:`_NumpyOps` (nothing N x K is kept).
    """

    C: np.ndarray
    value: float


def _target_rows(T: np.ndarray, sl: slice, K: int) -> np.ndarray:
    """Rows ``sl`` of the targets as float64 (n, K): one-hot of labels, or soft rows."""
    if T.ndim == 1:
        return one_hot(T[sl], K)
    return np.asarray(T[sl], dtype=np.float64)


#: Values per row block of the streaming path (rows = this // max(K, d)): each of a
#: block's N_b x K float64 arrays and its float64 copy of the features is ~16 MB.
_STREAM_BLOCK_ELEMENTS = 1 << 21

#: From this ``tol`` up, the stored numpy path declares convergence on the gradient it
#: keeps up to date with float32 differences, without the exact float64 recomputation
#: (two float64 products with the features, ~15 % of a warm fit at tol 3e-3;
#: ``FitResult``'s ``objective`` and ``grad_norm`` are then the updated ones; torch and
#: the streaming path keep the recomputation). That gradient's drift
#: was at most 7.4e-5 of the threshold ``tol * g0`` over 102 fits at tol 3e-3 (auto
#: selection on the 150-class synthetic set, sym 0.5, asym 0.4, view 0.4, idn 0.4), and
#: up to 1.4e-2 of it at tol 1e-4, where the recomputation stays.
LOOSE_TOL = 1e-3


def _stream_blocks(N: int, K: int, d: int) -> list[slice]:
    """Row blocks of the streaming path: at most :data:`_STREAM_BLOCK_ELEMENTS` values
    wide, and at least 8 of them (work for up to 8 threads). The layout depends on
    (N, K, d) only, never on the thread count."""
    rows = max(1, min(_STREAM_BLOCK_ELEMENTS // max(K, d), -(-N // 8)))
    return [slice(i, min(i + rows, N)) for i in range(0, N, rows)]


class _StreamingOps:
    """The N x K work of one fit streamed over row blocks: nothing N x K is stored.

    Same four methods as :class:`_NumpyOps` (:func:`_lbfgs` only passes their results
    back), but the handles are small: the "logits" are a :class:`_Point` (``C`` and the
    data value there), the "direction logits" the direction ``d`` itself, and the
    "logit gradient" of a trial the change of the data gradient (K, r) since the trial's
    base point (None after :meth:`refresh`).

    A trial at step ``t`` recomputes, per row block, the logits at the base point and
    along ``d`` with one float32 matmul, ``X_b [W; W_d]^T`` (``W = C D^{-1/2} V^T``, the
    features X used as they are, no rotated copy), then in float64 the loss and logit
    gradient at ``t = 0`` and at ``t``, and the gradient change
    ``(dZ_t - dZ_0)^T X_b`` as a float32 matmul of the *difference*. Value and gradient
    therefore move by differences of one consistent evaluation, as in :class:`_NumpyOps`:
    the float32 rounding is relative to the update, and :meth:`refresh` (float64
    throughout, features converted block by block) removes the drift.

    Cost per trial: three N x d x K float32 matmuls and two element-wise passes (the
    stored path: two matmuls per step, one element-wise pass per trial). Memory: a few
    (N_b, K) float64 arrays per worker. Blocks come from :func:`_stream_blocks` and
    partial sums are added in block order: same numbers for any thread count.
    """

    def __init__(self, X, V, dinv_sqrt, T, K, q, pool, blocks):
        self.X = X
        self.V = V
        self.dinv_sqrt = dinv_sqrt
        self.T = T
        self.K = K
        self.q = q
        self.pool = pool
        self.blocks = blocks
        self.N = X.shape[0]
        self._at_zero: tuple[float, np.ndarray] | None = None

    def _sum(self, fn) -> list:
        """Block-order sums of the tuples ``fn(block)`` returns (parts not all held)."""
        total = None
        for part in _imap_blocks(self.pool, fn, self.blocks):
            total = list(part) if total is None else [a + b for a, b in zip(total, part)]
        return total

    def _weights(self, C: np.ndarray) -> np.ndarray:
        """``W = C D^{-1/2} V^T`` (K, d): the variables in the features' coordinates."""
        return (C * self.dinv_sqrt) @ self.V.T

    def _to_scaled(self, GW: np.ndarray) -> np.ndarray:
        """A gradient in W (K, d) as a gradient in C (K, r): ``G V D^{-1/2}``."""
        return (GW @ self.V) * self.dinv_sqrt

    def data_gradient_at_zero(self) -> np.ndarray:
        """``dF_data/dW`` at ``W = 0`` (K, d), in float64.

        Kept with the data value there: a cold start's first :meth:`refresh` (at
        ``C = 0``, where the logits are exactly 0) reuses them instead of a second pass.
        """

        def work(sl):
            Xb = np.asarray(self.X[sl], dtype=np.float64)
            Z0 = np.zeros((Xb.shape[0], self.K))
            v, dZ = logit_loss_grad(Z0, _target_rows(self.T, sl, self.K), self.q,
                                    n_total=self.N)
            return v, dZ.T @ Xb

        value, GW = self._sum(work)
        self._at_zero = (value, GW)
        return GW

    def direction(self, d: np.ndarray) -> np.ndarray:
        """The direction itself: its logits are recomputed in every trial."""
        return d

    def direction_trial(self, Z: _Point, d: np.ndarray, t: float):
        """``(direction(d), trial(Z, d, t))``, as :meth:`_NumpyOps.direction_trial`."""
        return d, self.trial(Z, d, t)

    def release(self, Zt, dZ) -> None:
        """Nothing to hand back: no N x K buffers (see :meth:`_NumpyOps.release`)."""

    def trial(self, Z: _Point, Zd: np.ndarray, t: float):
        """Data value, slope ``<dZ, X_s d^T>``, gradient change and point at ``C + t d``."""
        K = self.K
        M32 = np.ascontiguousarray(
            np.concatenate([self._weights(Z.C), self._weights(Zd)]).T, dtype=np.float32)

        def work(sl):
            Xb = np.asarray(self.X[sl], dtype=np.float32)
            L = Xb @ M32  # (n, 2K): logits at t = 0, then along d
            Z0, Zdir = L[:, :K].astype(np.float64), L[:, K:].astype(np.float64)
            Tb = _target_rows(self.T, sl, K)
            v0, dZ0 = logit_loss_grad(Z0, Tb, self.q, n_total=self.N)
            Zt = np.multiply(Zdir, t)
            Zt += Z0
            vt, dZt = logit_loss_grad(Zt, Tb, self.q, n_total=self.N)
            slope = float(np.vdot(dZt.ravel(), Zdir.ravel()))
            diff = np.subtract(dZt, dZ0, dtype=np.float32)
            return vt - v0, slope, (diff.T @ Xb).astype(np.float64)

        dv, slope, GW = self._sum(work)
        value = Z.value + dv
        return value, slope, self._to_scaled(GW), _Point(Z.C + t * Zd, value)

    def grad_change(self, dZ_new: np.ndarray, dZ_old: np.ndarray | None) -> np.ndarray:
        """The trial's gradient change: it was measured from its base point, ``dZ_old``'s."""
        return dZ_new

    def start(self, C: np.ndarray) -> tuple[_Point, float, None, np.ndarray, bool]:
        """The solver's first point: :meth:`refresh` (exact)."""
        return (*self.refresh(C), True)

    def refresh(self, C: np.ndarray) -> tuple[_Point, float, None, np.ndarray]:
        """Exact float64 data value and data gradient at ``C``, from X block by block."""
        if self._at_zero is not None and not np.any(C):
            value, GW = self._at_zero
            return _Point(C, value), value, None, self._to_scaled(GW)
        Wt = np.ascontiguousarray(self._weights(C).T)

        def work(sl):
            Xb = np.asarray(self.X[sl], dtype=np.float64)
            v, dZ = logit_loss_grad(Xb @ Wt, _target_rows(self.T, sl, self.K), self.q,
                                    n_total=self.N)
            return v, dZ.T @ Xb

        value, GW = self._sum(work)
        return _Point(C, value), value, None, self._to_scaled(GW)


_CONTROLLER: list[ThreadpoolController] = []


def _blas_controller() -> ThreadpoolController:
    """One controller per process (scanning the loaded libraries costs ~0.1 s)."""
    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0]


def _single_blas() -> contextlib.AbstractContextManager:
    """One BLAS thread: our own threads split the work, in a fixed block order."""
    return _blas_controller().limit(limits=1, user_api="blas")


class _Workers(ThreadPoolExecutor):
    """A thread pool that knows its size (:func:`_map_blocks` hands out one task per
    worker, not one per block)."""

    def __init__(self, n_threads: int) -> None:
        super().__init__(n_threads)
        self.n_threads = n_threads


def _pool(n_threads: int) -> contextlib.AbstractContextManager:
    """A pool of ``n_threads`` workers (:class:`_Workers`), or ``None`` for one."""
    if n_threads > 1:
        return _Workers(n_threads)
    return contextlib.nullcontext()


def _map_blocks(pool: _Workers | None, fn: Callable, blocks: list) -> list:
    """``[fn(b) for b in blocks]``, on ``pool`` when there is one; results in block order.

    The calling thread and ``n_threads - 1`` of the pool's workers each take the next
    block nobody has taken until none is left: one hand-off per worker instead of one
    per block. Which thread computes a block does not change its result, and the
    results come back in block order.
    """
    if pool is None or len(blocks) == 1:
        return [fn(b) for b in blocks]
    out: list = [None] * len(blocks)
    take = itertools.count().__next__   # atomic under the GIL

    def drain() -> None:
        while (i := take()) < len(blocks):
            out[i] = fn(blocks[i])

    helpers = [pool.submit(drain) for _ in range(min(pool.n_threads, len(blocks)) - 1)]
    try:
        drain()
    finally:
        wait(helpers)      # no block may still run when the caller moves on
    for h in helpers:
        h.result()         # a helper's exception
    return out


def _imap_blocks(pool: _Workers | None, fn: Callable, blocks: list) -> Iterator:
    """``fn(b)`` for each block, yielded in block order as they come.

    Sums over many blocks consume the parts one by one instead of holding them all.
    """
    if pool is None or len(blocks) == 1:
        return map(fn, blocks)
    return pool.map(fn, blocks)


def _n_threads(n_threads: int | None) -> int:
    """Worker threads: ``n_threads``, or the CPUs this process may run on."""
    if n_threads is not None:
        return max(1, int(n_threads))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _n_blocks(N: int, n_threads: int) -> int:
    """Row blocks: 8 (fewer for small N, more for more than 8 threads).

    The block layout, not the thread count, fixes the summation order, so results are
    identical for any ``n_threads <= 8``.
    """
    return max(1, min(N // 512, max(8, n_threads)))


#: Budget of the stored path's N x K float64 arrays above which ``low_memory=None``
#: streams (:func:`_resolve_low_memory`). A fixed number, not a share of this machine's
#: memory, so that the same call takes the same path (and gives the same bits) anywhere.
LOW_MEMORY_AUTO_BYTES = 4 * 2**30


def _stored_state_bytes(N: int, K: int) -> int:
    """Peak bytes of the stored path's N x K float64 arrays: eight of them (targets,
    logits, their gradient, the direction's logits, and the logits and gradient of two
    line-search trials; tracemalloc measured 8.3 on N=20,000, K=100)."""
    return 8 * 8 * N * K


def _resolve_low_memory(low_memory: bool | None, backend: str, N: int, K: int) -> bool:
    """Whether a fit streams: ``low_memory`` when given, else by :data:`LOW_MEMORY_AUTO_BYTES`.

    Only the numpy backend streams; torch keeps its arrays on its device.
    """
    if backend != "numpy":
        if low_memory:
            raise SelfDistillError(
                f"low_memory=True needs backend='numpy', got backend={backend!r}; "
                "use low_memory=False or None with torch")
        return False
    if low_memory is None:
        return _stored_state_bytes(N, K) > LOW_MEMORY_AUTO_BYTES
    return bool(low_memory)


def _preconditioner(s2: np.ndarray, N: int, K: int, lam: float) -> np.ndarray:
    """Per-direction scale ``D_j`` of the variables ``C = B D^{1/2}``.

    ``D_j = lam (1 + c s_j^2 / (N lam))^alpha``: the penalty alone (``lam``) where the
    features have no variance, growing with the data curvature ``c s_j^2 / N``
    (c = 1/K, the softmax curvature at W = 0) raised to ``alpha = 1/2``, because the
    curvature at the optimum is far below its value at 0 for confidently fitted rows.
    Measured on BANKING77 (lam = 1e-5): alpha = 1 (full whitening) 157 L-BFGS steps,
    alpha = 0 (plain rotation) 117, alpha = 1/2 95.
    """
    return lam * np.sqrt(1.0 + s2 / (K * N * lam))


def _line_search(ops, Z, Zd, first, C, d, pen, f, slope0, data_f, max_trials=20):
    """Step ``t`` along ``d`` meeting the strong Wolfe conditions (c1=1e-4, c2=0.9).

    Every trial costs only N x K element-wise work: the logits move as ``Z + t Zd``.
    ``first`` is the trial at ``t = 1``, ``ops.trial(Z, Zd, 1.0)``, which the caller
    computed with the direction (:meth:`_NumpyOps.direction_trial`).
    Cubic interpolation between bracketing points; returns ``(found, trials)``: ``found``
    is ``(t, value, data value, dZ, Z_t)`` or ``None`` when no acceptable step is found,
    ``trials`` the number of function evaluations spent. The ``(Z_t, dZ)`` of every other
    trial goes back to ``ops.release`` as soon as the search no longer needs it.
    """
    pen_cd, pen_dd = float(np.sum(pen * C * d)), float(np.sum(pen * d * d))
    pen_cc = float(np.sum(pen * C * C))

    def point(t, res):
        v, slope, dZ, Zt = res
        val = v + 0.5 * (pen_cc + 2 * t * pen_cd + t * t * pen_dd)
        return t, val, slope + pen_cd + t * pen_dd, v, dZ, Zt

    c1, c2 = 1e-4, 0.9
    best = None  # lowest point with sufficient decrease, the fallback
    # Near the optimum the decrease c1 t slope0 falls below the rounding error of F
    # (a sum of N terms), and the Armijo test fails on noise. There the approximate
    # Wolfe conditions of Hager & Zhang (2005) decide from the slope instead, which
    # stays accurate: F may rise by at most its rounding error, the slope must have
    # flattened (curvature) but not turned steeply positive (sufficient decrease of
    # the quadratic model).
    eps_f = 1e-12 * max(abs(f), 1.0)

    def accept(t, val):
        return np.isfinite(val) and val <= f + c1 * t * slope0

    def approx_wolfe(val, der):
        return (np.isfinite(val) and val <= f + eps_f
                and c2 * slope0 <= der <= -0.8 * slope0)

    def found(p):  # the result tuple of trial p; every other trial's buffers go back
        if best is not None and best is not p:
            ops.release(best[5], best[4])
        return (p[0], p[1], p[3], p[4], p[5]), n

    def make_best(p):
        nonlocal best
        if best is not None:
            ops.release(best[5], best[4])
        best = p

    def drop(p):  # p is no longer needed unless it is the best
        if p is not best:
            ops.release(p[5], p[4])

    # bracketing phase (Nocedal & Wright, Algorithm 3.5)
    prev = (0.0, f, slope0)
    t, n = 1.0, 0
    lo = hi = None
    while n < max_trials:
        p = point(t, first if n == 0 else ops.trial(Z, Zd, t))
        _, val, der = p[:3]
        n += 1
        if approx_wolfe(val, der):
            return found(p)
        if accept(t, val) and (best is None or val < best[1]):
            make_best(p)
        if not accept(t, val) or (n > 1 and val >= prev[1]):
            lo, hi = prev, (t, val, der)
            drop(p)
            break
        if abs(der) <= -c2 * slope0:
            return found(p)
        drop(p)
        if der >= 0:
            lo, hi = (t, val, der), prev
            break
        prev = (t, val, der)
        t *= 4.0
    if lo is None:
        return (None, n) if best is None else found(best)
    # zoom phase (Algorithm 3.6) with safeguarded cubic interpolation
    while n < max_trials:
        t = _cubic_min(*lo, *hi)
        p = point(t, ops.trial(Z, Zd, t))
        _, val, der = p[:3]
        n += 1
        if approx_wolfe(val, der):
            return found(p)
        if not accept(t, val) or val >= lo[1]:
            hi = (t, val, der)
            drop(p)
            continue
        if best is None or val < best[1]:
            make_best(p)
        if abs(der) <= -c2 * slope0:
            return found(p)
        drop(p)
        if der * (hi[0] - lo[0]) >= 0:
            hi = lo
        lo = (t, val, der)
    return (None, n) if best is None else found(best)


def _cubic_min(a, fa, ga, b, fb, gb):
    """Minimiser of the cubic through ``(a, fa, ga)``, ``(b, fb, gb)``, kept inside the bracket.

    An interpolant outside the middle 80% of the bracket is clamped to its edge, so a
    badly scaled first step (``fb`` many orders of magnitude above ``fa``) shrinks
    tenfold per trial instead of halving. Arithmetic is in numpy float64 with warnings
    off: a zero denominator or an overflow gives a non-finite interpolant and the
    fallbacks below, never an exception; a bracket that has collapsed to one point
    returns that point.
    """
    a, fa, ga, b, fb, gb = (np.float64(v) for v in (a, fa, ga, b, fb, gb))
    lo, hi = min(a, b), max(a, b)
    width = hi - lo
    if not (np.isfinite(width) and width > 0):
        return float(a)
    t = np.nan
    with np.errstate(all="ignore"):
        if np.isfinite(fb) and np.isfinite(gb):
            d1 = ga + gb - 3 * (fa - fb) / (a - b)
            disc = d1 * d1 - ga * gb
            if disc >= 0:
                d2 = np.sign(b - a) * np.sqrt(disc)
                t = b - (b - a) * (gb + d2 - d1) / (gb - ga + 2 * d2)
        if not np.isfinite(t) and np.isfinite(fb) and np.isfinite(ga):
            # quadratic through (a, fa, ga) and (b, fb)
            h = b - a
            curv = fb - fa - ga * h
            if curv > 0:
                t = a - ga * h * h / (2 * curv)
        if not np.isfinite(t):
            # b undefined (overflow): step back hard towards a
            return float(a + 0.1 * (b - a)) if np.isfinite(ga) else float(0.5 * (a + b))
        return float(min(max(t, lo + 0.1 * width), hi - 0.1 * width))


def _lbfgs(ops, C0, pen, gscale, gtol_abs, max_iter, memory, callback, restarts=0,
           exact_stop=True):
    """L-BFGS on the preconditioned variables ``C`` with incremental logits/gradient.

    A line search without decrease from exact float64 values (a precision stop) ends the
    run with status 2, unless ``restarts`` remain: then the L-BFGS memory is dropped
    and the run goes on from the same point along the steepest descent.

    Returns ``C, f, G, iterations, status, nfev, restarts_used`` with ``G`` exact
    (float64, refreshed) when ``exact_stop``; without it, convergence is declared on
    the float32-updated ``G`` and ``f`` (:data:`LOOSE_TOL`).
    """
    C = C0
    nfev = 1
    restarts_used = 0
    # fresh: Z, G exact float64 (no accumulated float32 drift)
    Z, data_f, dZ, GD, fresh = ops.start(C)
    G = GD + pen * C
    f = data_f + 0.5 * float(np.sum(pen * C * C))
    S: deque[np.ndarray] = deque(maxlen=memory)
    Yd: deque[np.ndarray] = deque(maxlen=memory)
    rho: deque[float] = deque(maxlen=memory)
    since_refresh = 0
    it = 0
    while True:
        if not np.isfinite(f) or not np.all(np.isfinite(G)):
            return C, f, G, it, 3, nfev, restarts_used
        gnorm = float(np.linalg.norm(G * gscale))
        if gnorm <= gtol_abs and not fresh and exact_stop:
            ops.release(Z, dZ)
            Z, data_f, dZ, GD = ops.refresh(C)
            nfev += 1
            G = GD + pen * C
            f = data_f + 0.5 * float(np.sum(pen * C * C))
            fresh, since_refresh = True, 0
            gnorm = float(np.linalg.norm(G * gscale))
        if callback is not None:
            callback(it, f, gnorm)
        if gnorm <= gtol_abs:
            return C, f, G, it, 0, nfev, restarts_used
        if it >= max_iter:
            if not fresh:
                ops.release(Z, dZ)
                Z, data_f, dZ, GD = ops.refresh(C)
                nfev += 1
                G = GD + pen * C
                f = data_f + 0.5 * float(np.sum(pen * C * C))
            return C, f, G, it, 1, nfev, restarts_used
        # two-loop recursion
        qv = G.copy()
        alphas = []
        for s_, y_, r_ in zip(reversed(S), reversed(Yd), reversed(rho)):
            a = r_ * float(np.vdot(s_, qv))
            alphas.append(a)
            qv -= a * y_
        if S:
            qv *= float(np.vdot(S[-1], Yd[-1])) / float(np.vdot(Yd[-1], Yd[-1]))
        for (s_, y_, r_), a in zip(zip(S, Yd, rho), reversed(alphas)):
            b = r_ * float(np.vdot(y_, qv))
            qv += (a - b) * s_
        d = -qv
        slope0 = float(np.vdot(G, d))
        if slope0 >= 0:  # not a descent direction: restart from the gradient
            S.clear(), Yd.clear(), rho.clear()
            d, slope0 = -G, -float(np.vdot(G, G))
        Zd, first = ops.direction_trial(Z, d, 1.0)
        found, trials = _line_search(ops, Z, Zd, first, C, d, pen, f, slope0, data_f)
        nfev += trials
        if found is None:
            if not fresh:  # maybe float32 drift: recompute exactly and try again
                ops.release(Z, dZ)
                Z, data_f, dZ, GD = ops.refresh(C)
                nfev += 1
                G = GD + pen * C
                f = data_f + 0.5 * float(np.sum(pen * C * C))
                fresh, since_refresh = True, 0
                S.clear(), Yd.clear(), rho.clear()
                continue
            if S and restarts_used < restarts:  # precision stop: go on without the memory
                restarts_used += 1
                S.clear(), Yd.clear(), rho.clear()
                continue
            return C, f, G, it, 2, nfev, restarts_used
        t, f_new, data_f, dZ_new, Z_new = found
        step = t * d
        dG = ops.grad_change(dZ_new, dZ) + pen * step
        ops.release(Z, dZ)
        Z, dZ = Z_new, dZ_new
        C = C + step
        G = G + dG
        f = f_new
        sy = float(np.vdot(step, dG))
        if sy > 1e-12 * float(np.vdot(dG, dG)):
            S.append(step), Yd.append(dG), rho.append(1.0 / sy)
        it += 1
        since_refresh += 1
        fresh = False
        if since_refresh >= 50:  # bound the float32 drift of Z and G
            ops.release(Z, dZ)
            Z, data_f, dZ, GD = ops.refresh(C)
            nfev += 1
            G = GD + pen * C
            f = data_f + 0.5 * float(np.sum(pen * C * C))
            fresh, since_refresh = True, 0


def fit_softmax(
    X: np.ndarray,
    targets: np.ndarray,
    lam: float = 1e-5,
    *,
    q: float = 0.0,
    W0: np.ndarray | None = None,
    tol: float = 1e-6,
    max_iter: int = 2000,
    memory: int = 10,
    basis: SpectralBasis | None = None,
    n_classes: int | None = None,
    callback: Callable[[int, float, float], None] | None = None,
    check_input: bool = True,
    n_threads: int | None = None,
    backend: str = "numpy",
    device: str | None = None,
    restarts: int = 0,
    low_memory: bool | None = None,
) -> tuple[np.ndarray, FitResult]:
    """Exact minimiser of the L2-regularised softmax objective on soft or hard targets.

    Parameters
    ----------
    X : array-like of shape (N, d)
        Features (Phi in theory-derivation.md).
    targets : array-like of shape (N, K) or (N,)
        Soft targets with rows summing to 1 (Y in theory-derivation.md), or integer labels.
    lam : float, default=1e-5
        L2 strength in :data:`~selfdistill._validation.LAM` (``[1e-12, 1e4]``); the
        objective is ``(1/N) sum_i CE + (lam/2) ||W||^2``.
    q : float, default=0.0
        In ``[0, 1]``: 0 for cross-entropy, otherwise the GCE loss (non-convex: a
        stationary point).
    W0 : ndarray of shape (K, d), optional
        Warm start (a student starts from its teacher).
    tol : float, default=1e-6
        In ``(0, 1)``. Stop when ``||grad|| <= tol * ||grad at W=0||``.
    max_iter : int, default=2000
        Iteration cap, at least 1.
    memory : int, default=10
        L-BFGS history length (pairs of steps kept); unrelated to ``low_memory``.
    basis : SpectralBasis, optional
        Precomputed basis of X (reuse across rounds).
    n_classes : int, optional
        K for integer targets (default ``max(targets) + 1``).
    callback : callable ``(iteration, objective, grad_norm)``, optional
    check_input : bool, default=True
        Validate inputs (internal callers that already did pass False).
    n_threads : int, optional
        Worker threads of the numpy backend (default: the CPUs this process may use).
        Results are identical for any value up to 8.
    backend : {"numpy", "torch"}, default="numpy"
        ``"torch"`` runs the N x K work with PyTorch (extra ``[torch]``); same
        objective to about 1e-6 relative or better.
    device : str, optional
        Torch device; default ``"cuda"`` when available, else ``"cpu"``.
    restarts : int, default=0
        After a precision stop (status 2: no decrease found along the L-BFGS direction,
        from exact float64 values), drop the L-BFGS memory and go on from the same point,
        at most this many times.
    low_memory : bool, optional
        True streams the N x K work over row blocks of X: nothing N x K is stored
        (integer labels are never one-hot encoded as a whole), no rotated copy of X is
        made, and memory beyond X and the targets is O(K d + d^2) plus a few row blocks.
        A trial costs three float32 matmuls instead of a step's two, but on row blocks
        that stay in cache: measured 1.03-1.06x the CPU time per step of the stored path
        (docs/performance.md, "Scale"). False keeps the logits (the fast path, up to
        eight N x K float64 arrays). None (default) streams when those arrays would exceed
        :data:`LOW_MEMORY_AUTO_BYTES` (4 GiB: N K above ~67 million). Both reach the
        same minimiser (to about 1e-6 relative); only ``backend="numpy"`` streams.

    Returns
    -------
    W : ndarray of shape (K, d)
    info : FitResult
        ``info.objective``, ``info.iterations``, ``info.nfev``, ``info.seconds``,
        ``info.converged`` (``info.W`` is ``W``).

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
    if check_input:
        X = check_features(X)
        lam = check_lam(lam)
        q = check_in(q, Q, name="q")
        tol = check_in(tol, TOL, name="tol")
        max_iter = check_in(max_iter, MAX_ITER, name="max_iter")
        restarts = check_in(restarts, ROUNDS, name="restarts")
        check_option(backend, BACKENDS, name="backend")
        low_memory = check_flag(low_memory, name="low_memory", allow_none=True)
        t_arr = np.asarray(targets)
        if t_arr.ndim == 1:  # labels stay labels: one-hot only where the path needs it
            targets = check_labels(t_arr, n_samples=X.shape[0], n_classes=n_classes,
                                   min_classes=1)
            n_classes = n_classes or int(targets.max()) + 1
            K = n_classes
        else:
            targets = check_targets(t_arr, n_samples=X.shape[0])
            K = targets.shape[1]
        if K < 2:
            raise SelfDistillError("targets must cover at least 2 classes")
        if W0 is not None and np.shape(W0) != (K, X.shape[1]):
            raise SelfDistillError(f"W0 must have shape {(K, X.shape[1])}, got {np.shape(W0)}")
    res = _fit_softmax(X, targets, lam, q=q, W0=W0, tol=tol, max_iter=max_iter, memory=memory,
                       basis=basis, callback=callback, n_threads=n_threads, backend=backend,
                       device=device, restarts=restarts, n_classes=n_classes,
                       low_memory=low_memory)
    return res.W, res


def _fit_softmax(
    X: np.ndarray,
    T: np.ndarray,
    lam: float,
    *,
    q: float = 0.0,
    W0: np.ndarray | None = None,
    tol: float = 1e-6,
    max_iter: int = 2000,
    memory: int = 10,
    basis: SpectralBasis | None = None,
    callback: Callable[[int, float, float], None] | None = None,
    n_threads: int | None = None,
    backend: str = "numpy",
    device: str | None = None,
    restarts: int = 0,
    n_classes: int | None = None,
    low_memory: bool | None = None,
) -> FitResult:
    """:func:`fit_softmax` behind the door: trusted inputs, soft targets ``T`` (N, K).

    ``T`` may also be integer labels (N,), with ``n_classes`` K (default
    ``max(T) + 1``). For callers that validated already (the pipeline, the theory
    drivers); returns the :class:`FitResult` itself.
    """
    t0 = time.perf_counter()
    T = np.asarray(T)
    N = X.shape[0]
    if T.ndim == 1:  # integer labels
        T = T.astype(np.intp, copy=False)
        K = int(n_classes) if n_classes is not None else int(T.max()) + 1
    else:
        K = T.shape[1]
    stream = _resolve_low_memory(low_memory, backend, N, K)
    if not stream and (T.ndim == 2 or backend != "numpy" or q != 0.0):
        # numpy's cross-entropy keeps labels: a gather and a scatter instead of two passes
        T = one_hot(T, K) if T.ndim == 1 else np.asarray(T, dtype=np.float64)
    n_threads = _n_threads(n_threads)
    with contextlib.ExitStack() as stack:
        if backend == "numpy":
            # one BLAS thread per worker: OpenBLAS's own threads spin and stall when the
            # machine is shared; Python threads over row blocks degrade gracefully, and the
            # fixed block order makes results independent of every thread setting
            stack.enter_context(_single_blas())
        if basis is None:
            basis = SpectralBasis.from_features(X, n_threads=n_threads, rotate=not stream)
        elif basis.V.shape[0] != X.shape[1] or (basis.XV is not None
                                                 and basis.XV.shape[0] != N):
            raise ValueError(
                f"basis is of features with {basis.V.shape[0]} columns and "
                f"{'?' if basis.XV is None else basis.XV.shape[0]} rows, X has shape "
                f"{X.shape}: pass the basis of these rows (SpectralBasis.of_rows)")
        s2, V = basis.s2, basis.V
        B0 = None if W0 is None else np.asarray(W0, dtype=np.float64) @ V
        r = len(s2)
        shape = (K, r)
        D = _preconditioner(s2, N, K, lam)
        dinv_sqrt = 1.0 / np.sqrt(D)
        pen = lam / D  # penalty weight per coordinate of C
        pool = stack.enter_context(_pool(n_threads)) if backend == "numpy" else None
        if stream:
            ops = _StreamingOps(X, V, dinv_sqrt, T, K, q, pool,
                                _stream_blocks(N, K, X.shape[1]))
            g0 = float(np.linalg.norm(ops.data_gradient_at_zero() @ V))
        else:
            XV = basis.XV if basis.XV is not None else _rotate(X, V, pool)
            # gradient norm at W = 0 in original coordinates: ||(U_K - T)^T X / N||, U_K = 1/K
            if backend == "torch":
                from ._torch_backend import TorchOps, resolve_device

                ops = TorchOps(XV, dinv_sqrt, T, q, resolve_device(device))
                g0 = float(np.linalg.norm(_data_gradient_at_zero(XV, T, q, K)))
            else:
                ops = _NumpyOps(XV, dinv_sqrt, T, q, pool, _n_blocks(N, n_threads), K)
                g0 = float(np.linalg.norm(ops.data_gradient_at_zero()))
        # targets already uniform (e.g. PLL with K = 2): W = 0 is stationary and g0 = 0, so
        # measure convergence against the gradient scale of one-hot targets instead
        g_floor = 1e-3 * float(np.sqrt(np.sum(s2) / N)) / K
        g0 = max(g0, g_floor)
        gscale = np.sqrt(D)
        C0 = np.zeros(shape) if B0 is None else B0 / dinv_sqrt
        # the loose stop only where its drift was measured: the stored numpy path (torch
        # may run its float32 products in TF32, whose drift is ~1e-3 relative)
        loose = tol >= LOOSE_TOL and isinstance(ops, _NumpyOps)
        C, f, g, iters, status, nfev, used = _lbfgs(ops, C0, pen, gscale, tol * g0, max_iter,
                                                    memory, callback, restarts,
                                                    exact_stop=not loose)
        B = C * dinv_sqrt
        W = B @ V.T
    grad_norm = float(np.linalg.norm(g * gscale))
    converged = status == 0
    if not converged:
        # scikit-learn's class, so that its filters apply; imported here, where it is
        # needed: importing sklearn costs 0.75 s of every command's start-up
        from sklearn.exceptions import ConvergenceWarning

        hint = feature_scale_hint(float(np.sqrt(np.sum(s2) / max(N, 1))))
        warnings.warn(
            f"fit_softmax did not converge ({STATUS_MESSAGES[status]}; relative gradient "
            f"{grad_norm / max(g0, 1e-300):.2e} > tol {tol:.0e}). "
            + (f"Increase max_iter or lam; {hint}." if hint else "Increase max_iter or lam."),
            ConvergenceWarning,
            stacklevel=3,
        )
    return FitResult(
        W=W,
        objective=float(f),
        grad_norm=grad_norm,
        grad_norm0=g0,
        iterations=int(iters),
        nfev=int(nfev),
        seconds=time.perf_counter() - t0,
        converged=converged,
        status=status,
        message=STATUS_MESSAGES[status],
        restarts=int(used),
    )
