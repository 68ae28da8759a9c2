"""Closed forms of the block model (theory-derivation.md §3).

Notation (theory-derivation.md): ``N = K n`` instances, ``n`` per class, features with Gram matrix
``G_ii = 1``, ``G_ij = c`` within a class, ``G_ij = d`` across classes (``1 > c > d >= 0``).
``Y`` (N, K) are the given labels, ``U`` the N x K matrix of ``1/K``, ``lam`` the L2
strength and ``gamma = 1/(K N lam)``. ``G`` has three eigenvalues:

* ``mu2 = 1 - c`` (within-class contrasts, multiplicity N - K),
* ``mu1 = 1 - c + n (c - d)`` (contrasts between class means, multiplicity K - 1),
* ``mu0 = mu1 + N d`` (the global mean, multiplicity 1),

and the linearised round ``t`` (t = 1 is the teacher) shrinks each eigen-direction of
``Y - U`` by ``a_j^t`` with ``a_j = gamma mu_j / (1 + gamma mu_j)``::

    p_i - u = a0^t (ybar - u) + a1^t (ybar_k - ybar) + a2^t (y_i - ybar_k)

for instance ``i`` of class ``k`` (``ybar_k`` its class's mean given-label vector,
``ybar`` the overall mean).

Rounds: theory-derivation.md's round ``t`` is ``P_t``; ``P_1`` is the teacher, so the product's
model ``sd-s`` is derivation round ``s + 1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._errors import SelfDistillError
from .._validation import check_lam

__all__ = [
    "BlockModel",
    "shrink_factors",
    "class_label_means",
    "plurality_gap",
    "rounds_needed",
    "block_trajectory",
    "block_round",
    "MAX_MATERIALISED_N",
]

#: largest N for which the features / Gram matrix are built explicitly (N x (N+K+1) floats)
MAX_MATERIALISED_N = 4000


@dataclass(frozen=True)
class BlockModel:
    """The block model of theory-derivation.md §3: ``K`` classes of ``n`` instances.

    Parameters
    ----------
    K : int
        Number of classes, at least 2.
    n : int
        Instances per class, at least 1 (``N = K n``).
    c : float
        Within-class feature correlation, in ``(d, 1)``.
    d : float
        Across-class feature correlation, in ``[0, c)``.

    Examples
    --------
    >>> bm = BlockModel(K=4, n=200, c=0.4, d=0.1)
    >>> bm.N, [round(m, 6) for m in bm.eigenvalues()]
    (800, [140.6, 60.6, 0.6])
    """

    K: int
    n: int
    c: float
    d: float

    def __post_init__(self) -> None:
        check_block_params(self.K, self.n, self.c, self.d)

    @property
    def N(self) -> int:
        """Number of instances ``K n``."""
        return self.K * self.n

    def labels(self) -> np.ndarray:
        """True class of each instance, shape (N,): ``n`` zeros, then ``n`` ones, ..."""
        return np.repeat(np.arange(self.K), self.n)

    def eigenvalues(self) -> tuple[float, float, float]:
        """``(mu0, mu1, mu2)`` of ``G`` in closed form (theory-derivation.md §3)."""
        K, n, c, d = self.K, self.n, self.c, self.d
        mu2 = 1.0 - c
        mu1 = 1.0 - c + n * (c - d)
        mu0 = mu1 + K * n * d
        return mu0, mu1, mu2

    def multiplicities(self) -> tuple[int, int, int]:
        """Multiplicities of ``(mu0, mu1, mu2)``: ``(1, K - 1, N - K)``."""
        return 1, self.K - 1, self.N - self.K

    def features(self) -> np.ndarray:
        """``Phi`` (N, N + K + 1) with ``Phi Phi^T = G`` exactly.

        ``phi_i = sqrt(1-c) e_i + sqrt(c-d) e_{N+class(i)} + sqrt(d) e_{N+K}``.
        """
        N, K = self.N, self.K
        if N > MAX_MATERIALISED_N:
            raise SelfDistillError(
                f"block features are built explicitly only for N = K n <= "
                f"{MAX_MATERIALISED_N}, got N = {N}"
            )
        y = self.labels()
        Phi = np.zeros((N, N + K + 1))
        Phi[np.arange(N), np.arange(N)] = math.sqrt(1.0 - self.c)
        Phi[np.arange(N), N + y] = math.sqrt(self.c - self.d)
        Phi[:, N + K] = math.sqrt(self.d)
        return Phi

    def eigenvectors(self) -> tuple[np.ndarray, np.ndarray]:
        """Orthonormal eigenvectors ``Us`` (N, N) of ``G`` and their eigenvalues, descending.

        Columns: the global mean ``1/sqrt(N)`` (``mu0``), ``K - 1`` Helmert contrasts of the
        class indicators (``mu1``), ``N - K`` Helmert contrasts within each class (``mu2``).
        Built in closed form: no eigendecomposition.
        """
        K, n, N = self.K, self.n, self.N
        mu0, mu1, mu2 = self.eigenvalues()
        E = np.zeros((N, K))
        E[np.arange(N), self.labels()] = 1.0 / math.sqrt(n)
        Us = np.hstack([np.full((N, 1), 1.0 / math.sqrt(N)), E @ _helmert(K),
                        np.kron(np.eye(K), _helmert(n))])
        mu = np.concatenate([[mu0], np.full(K - 1, mu1), np.full(N - K, mu2)])
        return Us, mu

    def spectral_basis(self):
        """The solver's :class:`~selfdistill.SpectralBasis` of :meth:`features`, in closed form.

        Equal (up to the order of equal eigenvalues) to
        ``SpectralBasis.from_features(self.features())`` without its N x N
        eigendecomposition: ``XV = Us S`` and ``V = Phi^T Us S^{-1}``.
        """
        from ..solvers import SpectralBasis

        Us, mu = self.eigenvectors()
        s = np.sqrt(mu)
        K, N = self.K, self.N
        y = self.labels()
        PhiT_Us = np.zeros((N + K + 1, N))
        PhiT_Us[:N] = math.sqrt(1.0 - self.c) * Us
        np.add.at(PhiT_Us[N:N + K], y, math.sqrt(self.c - self.d) * Us)
        PhiT_Us[N + K] = math.sqrt(self.d) * Us.sum(axis=0)
        return SpectralBasis(V=PhiT_Us / s, s2=mu, XV=Us * s)

    def gram(self) -> np.ndarray:
        """``G`` (N, N): 1 on the diagonal, ``c`` within a class, ``d`` across."""
        y = self.labels()
        G = np.where(y[:, None] == y[None, :], self.c, self.d)
        np.fill_diagonal(G, 1.0)
        return G


def _helmert(m: int) -> np.ndarray:
    """(m, m-1) orthonormal columns orthogonal to the ones vector (Helmert contrasts)."""
    j = np.arange(1, m, dtype=np.float64)
    i = np.arange(m)[:, None]
    H = np.where(i < j, 1.0, 0.0) - np.where(i == j, j, 0.0)
    return H / np.sqrt(j * (j + 1))


def check_block_params(K: int, n: int, c: float, d: float) -> None:
    """Raise :class:`SelfDistillError` unless ``K >= 2``, ``n >= 1`` and ``1 > c > d >= 0``."""
    if not (isinstance(K, (int, np.integer)) and K >= 2):
        raise SelfDistillError(f"K must be an integer in [2, inf), got {K}")
    if not (isinstance(n, (int, np.integer)) and n >= 1):
        raise SelfDistillError(f"n must be an integer in [1, inf), got {n}")
    for name, v in (("c", c), ("d", d)):
        if not (isinstance(v, (int, float, np.floating)) and math.isfinite(v)):
            raise SelfDistillError(f"{name} must be a finite number, got {v}")
    if not (0.0 <= d < 1.0):
        raise SelfDistillError(f"d must be in [0, 1), got {d}")
    if not (0.0 < c < 1.0):
        raise SelfDistillError(f"c must be in (0, 1), got {c}")
    if not c > d:
        raise SelfDistillError(f"c must be larger than d (1 > c > d >= 0), got c={c}, d={d}")


def shrink_factors(mu: np.ndarray | float, K: int, N: int, lam: float) -> np.ndarray:
    """``a = gamma mu / (1 + gamma mu)`` with ``gamma = 1/(K N lam)`` (theory-derivation.md §2).

    Parameters
    ----------
    mu : float or ndarray
        Eigenvalues of ``G``.
    K, N : int
        Classes and instances.
    lam : float
        L2 strength, > 0.

    Returns
    -------
    ndarray
        The per-round factor of each eigen-direction, in ``[0, 1)``.

    Examples
    --------
    >>> shrink_factors(np.array([140.6, 60.6, 0.6]), K=4, N=800, lam=1e-2).round(4)
    array([0.8146, 0.6544, 0.0184])
    """
    lam = check_lam(lam)
    gamma = 1 / (K * N * lam)
    gm = gamma * np.asarray(mu, dtype=np.float64)
    return gm / (1.0 + gm)


def class_label_means(Y: np.ndarray, y_class: np.ndarray, K: int) -> tuple[np.ndarray, np.ndarray]:
    """``ybar_k`` (K, K), row k the mean given-label vector of class k, and ``ybar`` (K,).

    Examples
    --------
    >>> Y = np.eye(2)[[0, 0, 1, 1]]; y = np.array([0, 0, 0, 1])
    >>> class_label_means(Y, y, 2)[0]
    array([[0.66666667, 0.33333333],
           [0.        , 1.        ]])
    """
    Y = np.asarray(Y, dtype=np.float64)
    counts = np.bincount(y_class, minlength=K).astype(np.float64)
    sums = np.zeros((K, Y.shape[1]))
    np.add.at(sums, y_class, Y)
    ybar_k = sums / np.maximum(counts, 1.0)[:, None]
    return ybar_k, Y.mean(axis=0)


def plurality_gap(ybar_k: np.ndarray) -> float:
    """``gap = min_k min_{j != k} (ybar_k[k] - ybar_k[j])``: > 0 iff the plurality condition holds.

    Examples
    --------
    >>> plurality_gap(np.array([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3], [0.3, 0.3, 0.4]]))
    0.1
    """
    K = ybar_k.shape[0]
    diag = np.diag(ybar_k)[:, None]
    diff = diag - ybar_k
    diff[np.arange(K), np.arange(K)] = np.inf
    return float(np.round(diff.min(), 15))


def rounds_needed(
    ybar_k: np.ndarray, pairs: np.ndarray, a1: float, a2: float
) -> tuple[float | None, int | None, np.ndarray]:
    """``t*`` and the minimum round under the plurality condition (theory-derivation.md §3).

    An instance of class ``k`` labelled ``l != k`` is predicted correctly once
    ``a1^t g - a2^t (1 + g) > 0`` with ``g = ybar_k[k] - ybar_k[l]``, i.e. for
    ``t > t* = log(1 + 1/g) / log(a1/a2)``.

    Parameters
    ----------
    ybar_k : ndarray of shape (K, K)
        Class means of the given labels.
    pairs : ndarray of shape (m, 2)
        The ``(k, l)`` pairs (true class, given label, ``l != k``) that occur.
    a1, a2 : float
        Shrink factors of ``mu1`` and ``mu2``.

    Returns
    -------
    t_star : float or None
        ``max`` over the pairs of ``t*`` (0.0 when no label is wrong), None when some
        ``g <= 0`` (condition fails for that pair).
    min_rounds : int or None
        The first round ``t`` (1 = teacher) with ``t > t_star`` (``ceil(t*)`` unless
        ``t*`` is an integer), at least 1; None when ``t_star`` is None.
    per_pair : ndarray of shape (m,)
        ``t*`` of each pair (``inf`` where ``g <= 0``).

    Examples
    --------
    >>> ybar_k = np.array([[0.4, 0.3, 0.3], [0.3, 0.4, 0.3], [0.3, 0.3, 0.4]])
    >>> t, r, _ = rounds_needed(ybar_k, np.array([[0, 1]]), a1=0.99, a2=0.6)
    >>> round(t, 3), r
    (4.788, 5)
    """
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if pairs.shape[0] == 0:
        return 0.0, 1, np.zeros(0)
    g = ybar_k[pairs[:, 0], pairs[:, 0]] - ybar_k[pairs[:, 0], pairs[:, 1]]
    per_pair = np.full(g.shape, np.inf)
    ok = g > 1e-12
    with np.errstate(divide="ignore"):
        per_pair[ok] = np.log1p(1.0 / g[ok]) / math.log(a1 / a2)
    if not np.all(ok):
        return None, None, per_pair
    t_star = float(per_pair.max())
    return t_star, max(1, math.floor(t_star) + 1), per_pair


def block_round(Y: np.ndarray, y_class: np.ndarray, K: int,
                a: tuple[float, float, float], t: float) -> np.ndarray:
    """Linearised round-``t`` outputs ``P_t`` on the block model, in closed form.

    ``p_i - u = a0^t (ybar - u) + a1^t (ybar_k - ybar) + a2^t (y_i - ybar_k)``
    (theory-derivation.md §3), which equals ``U + A^t (Y - U)`` exactly because ``G``'s
    eigenspaces are the global mean, the class-mean contrasts and the within-class
    contrasts.

    Parameters
    ----------
    Y : ndarray of shape (N, K)
        Targets of round 1 (the given labels, or refined partial labels).
    y_class : ndarray of shape (N,)
        True class of each instance (the block structure).
    K : int
    a : (a0, a1, a2)
    t : float
        Round (1 = the teacher fitted on ``Y``).

    Returns
    -------
    P : ndarray of shape (N, K)

    Examples
    --------
    >>> Y = np.eye(2)[[0, 1, 1, 1]]; y = np.array([0, 0, 1, 1])
    >>> block_round(Y, y, 2, (0.9, 0.8, 0.5), 1).round(3)
    array([[0.725, 0.275],
           [0.225, 0.775],
           [0.075, 0.925],
           [0.075, 0.925]])
    """
    a0, a1, a2 = a
    Y = np.asarray(Y, dtype=np.float64)
    ybar_k, ybar = class_label_means(Y, y_class, K)
    u = 1.0 / Y.shape[1]
    Yk = ybar_k[y_class]
    return u + a0**t * (ybar - u) + a1**t * (Yk - ybar) + a2**t * (Y - Yk)


def block_trajectory(Y: np.ndarray, y_class: np.ndarray, K: int,
                     a: tuple[float, float, float], rounds: int) -> list[np.ndarray]:
    """``[P_1, ..., P_{rounds+1}]`` of :func:`block_round` (teacher + ``rounds`` SD rounds)."""
    return [block_round(Y, y_class, K, a, t) for t in range(1, rounds + 2)]
