"""Linearised self-distillation for any features (theory-derivation.md §2).

With ``softmax(z) ~ (1 + z)/K`` for zero-sum logits and ``gamma = 1/(K N lam)``, the
round-``t`` outputs (``t = 1`` is the teacher, ``P_1``) are

    P_t - U = A^t (Y - U),   A = gamma G (I + gamma G)^{-1},   G = Phi Phi^T.

``A`` shares ``G``'s eigenvectors; an eigenvalue ``mu`` of ``G`` becomes
``a = gamma mu / (1 + gamma mu)``. ``G`` has rank at most ``d``, so everything is computed
from the thin SVD ``Phi = Us S V^T`` (``O(N d^2)``, never an N x N eigendecomposition):
``mu = s^2``, and the part of ``Y - U`` outside the column space of ``Us`` (the null space
of ``G``) is mapped to 0 by ``A``.

Rounds: the product's ``sd-s`` is derivation round ``s + 1``; every ``rounds`` argument here
counts SD rounds after the teacher (as ``selfdistill fit --rounds``), so trajectories have
``rounds + 1`` entries, entry ``i`` being the teacher (``i = 0``) or ``sd-i``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._errors import SelfDistillError
from .._validation import check_features, check_labels
from ..distill import pll_targets
from ..solvers import SpectralBasis, one_hot
from .block import shrink_factors

__all__ = ["GramSpectrum", "linearised_trajectory", "linearised_pll", "linearised_sd_accuracy"]


@dataclass(frozen=True)
class GramSpectrum:
    """Non-zero eigen-pairs of ``G = Phi Phi^T`` from the thin SVD of ``Phi``.

    Attributes
    ----------
    Us : ndarray of shape (N, r)
        Orthonormal eigenvectors of ``G`` with non-zero eigenvalue (left singular vectors).
    mu : ndarray of shape (r,)
        Eigenvalues ``s^2``, descending.
    """

    Us: np.ndarray
    mu: np.ndarray

    @property
    def N(self) -> int:
        """Number of instances."""
        return int(self.Us.shape[0])

    @classmethod
    def from_features(cls, Phi: np.ndarray, rtol: float = 1e-12) -> GramSpectrum:
        """Thin SVD of ``Phi`` (N, d); singular values below ``rtol * s_max`` are dropped.

        Examples
        --------
        >>> Phi = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
        >>> GramSpectrum.from_features(Phi).mu
        array([4., 1.])
        """
        Phi = np.asarray(Phi, dtype=np.float64)
        Us, s, _ = np.linalg.svd(Phi, full_matrices=False)
        keep = s > rtol * (s[0] if s.size else 0.0)
        return cls(Us=Us[:, keep], mu=s[keep] ** 2)

    @classmethod
    def from_basis(cls, basis: SpectralBasis, rtol: float = 1e-13) -> GramSpectrum:
        """Reuse the solver's factorisation (``XV = Us S``) instead of a second SVD.

        Eigenvalues below ``rtol * mu_max`` are dropped (their ``a`` is ~0 anyway).
        The basis must be a singular basis of its rows (``basis.exact``).
        """
        if not basis.exact:
            raise ValueError("from_basis needs a singular basis of the features "
                             "(SpectralBasis.from_features), not one borrowed with of_rows")
        s2 = np.asarray(basis.s2, dtype=np.float64)
        keep = s2 > rtol * (s2.max() if s2.size else 0.0)
        return cls(Us=basis.XV[:, keep] / np.sqrt(s2[keep]), mu=s2[keep])

    def shrink(self, K: int, lam: float) -> np.ndarray:
        """``a = gamma mu / (1 + gamma mu)`` per eigen-direction (``gamma = 1/(K N lam)``)."""
        return shrink_factors(self.mu, K, self.N, lam)

    def apply_A(self, M: np.ndarray, a: np.ndarray, t: float) -> np.ndarray:
        """``A^t M`` for ``M`` (N, K): ``Us diag(a^t) Us^T M`` (the null space goes to 0)."""
        return self.Us @ ((a**t)[:, None] * (self.Us.T @ M))


def linearised_trajectory(
    Phi: np.ndarray | GramSpectrum, Y: np.ndarray, lam: float, rounds: int
) -> list[np.ndarray]:
    """Linearised outputs ``P_t = U + A^t (Y - U)`` for ``t = 1 .. rounds + 1``.

    Parameters
    ----------
    Phi : ndarray of shape (N, d), or GramSpectrum
        Features (X in the product's API), or their precomputed spectrum.
    Y : ndarray of shape (N, K)
        Given labels, one-hot or soft rows summing to 1.
    lam : float
        L2 strength (the objective's ``(lam/2) ||W||^2``).
    rounds : int
        SD rounds after the teacher.

    Returns
    -------
    list of ndarray of shape (N, K)
        ``[P_1 (teacher), P_2 (sd-1), ..., P_{rounds+1} (sd-rounds)]``.

    Notes
    -----
    theory-derivation.md §2. Cost ``O(N d^2)`` for the SVD plus ``O(N r K)`` per round.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> Phi = rng.normal(size=(40, 5)); Y = np.eye(2)[(Phi[:, 0] > 0).astype(int)]
    >>> Ps = linearised_trajectory(Phi, Y, lam=1e-2, rounds=3)
    >>> len(Ps), np.allclose(Ps[0].sum(axis=1), 1.0)
    (4, True)
    """
    spec = Phi if isinstance(Phi, GramSpectrum) else GramSpectrum.from_features(Phi)
    Y = np.asarray(Y, dtype=np.float64)
    N, K = Y.shape
    if spec.N != N:
        raise SelfDistillError(f"Y has {N} rows but the features have {spec.N}")
    if rounds < 0:
        raise SelfDistillError(f"rounds must be in [0, inf), got {rounds}")
    a = spec.shrink(K, lam)
    M = Y - 1.0 / K
    C = spec.Us.T @ M  # coordinates of Y - U in G's range; the rest is killed by A
    return [1.0 / K + spec.Us @ ((a**t)[:, None] * C) for t in range(1, rounds + 2)]


def linearised_pll(Phi: np.ndarray | GramSpectrum, P_teacher: np.ndarray, lam: float,
                   k: int = 2) -> np.ndarray:
    """One linearised student on the teacher's top-``k`` partial labels: ``U + A (Y' - U)``.

    ``Y' = pll_targets(P_teacher)`` (uniform over each row's top-2 classes, the product's
    refinement), so the student is derivation round 2 on refined targets
    (theory-derivation.md §3, PLL).
    """
    Yp = pll_targets(np.asarray(P_teacher, dtype=np.float64), k=k)
    return linearised_trajectory(Phi, Yp, lam, rounds=0)[0]


def linearised_sd_accuracy(
    X: np.ndarray,
    y_given: np.ndarray,
    y_true: np.ndarray,
    lam: float,
    rounds: int,
    *,
    n_classes: int | None = None,
    pll: bool = False,
    spectrum: GramSpectrum | None = None,
) -> dict[str, np.ndarray | float]:
    """Predicted training accuracy of the teacher and each SD round from the linearised form.

    Parameters
    ----------
    X : array-like of shape (N, d)
        Training features (Phi in theory-derivation.md), e.g. sentence embeddings.
    y_given : array-like of shape (N,)
        Labels as given (possibly noisy), ints in ``0..K-1``: the teacher's targets.
    y_true : array-like of shape (N,)
        Clean labels, used only to score.
    lam : float
        L2 strength of the product's objective.
    rounds : int
        SD rounds after the teacher (``selfdistill fit --rounds``).
    n_classes : int, optional
        K (default ``max(y_given, y_true) + 1``).
    pll : bool, default=False
        Also predict one PLL student on the linearised teacher's top-2 classes.
    spectrum : GramSpectrum, optional
        Precomputed thin SVD of ``X``.

    Returns
    -------
    dict
        ``train_acc`` : ndarray of shape (rounds + 1,), entry 0 the teacher (derivation round 1),
        entry ``s`` the model ``sd-s`` (derivation round ``s + 1``), accuracy against ``y_true``;
        ``train_acc_given`` : the same against ``y_given``;
        ``pll_train_acc`` : float (only with ``pll=True``).

    Notes
    -----
    theory-derivation.md §2. The closed form assumes small logits (``softmax(z) ~ (1+z)/K``); with a
    small ``lam`` the exact teacher memorises more than the linearised one, so the
    prediction describes the direction and timing of the SD effect, not exact values.

    Examples
    --------
    >>> from selfdistill.datasets import load_digits_dataset
    >>> ds = load_digits_dataset()
    >>> out = linearised_sd_accuracy(ds.X_train, ds.y_train, ds.y_train, 1e-3, rounds=2)
    >>> out["train_acc"].shape
    (3,)
    """
    X = check_features(X)
    N = X.shape[0]
    y_given = check_labels(y_given, n_samples=N, n_classes=n_classes, name="y_given",
                           min_classes=1)
    y_true = check_labels(y_true, n_samples=N, n_classes=n_classes, name="y_true",
                          min_classes=1)
    K = n_classes or int(max(y_given.max(), y_true.max())) + 1
    if K < 2:
        raise SelfDistillError(f"at least 2 classes are needed, got K={K}")
    spec = spectrum if spectrum is not None else GramSpectrum.from_features(X)
    Ps = linearised_trajectory(spec, one_hot(y_given, K), lam, rounds)
    preds = [np.argmax(P, axis=1) for P in Ps]
    out: dict[str, np.ndarray | float] = {
        "train_acc": np.array([np.mean(p == y_true) for p in preds]),
        "train_acc_given": np.array([np.mean(p == y_given) for p in preds]),
    }
    if pll:
        out["pll_train_acc"] = float(np.mean(np.argmax(linearised_pll(spec, Ps[0], lam), 1)
                                             == y_true))
    return out
