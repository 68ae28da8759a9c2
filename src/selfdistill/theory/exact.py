"""Exact softmax fixed points round by round (theory-derivation.md §1), product pipeline.

No linearisation: round 1 (the teacher) minimises the L2-regularised cross-entropy on the
given labels, round ``t`` the same objective on the targets ``P_{t-1}``, each an exact
minimiser found by :func:`selfdistill.fit_softmax` warm-started from the previous round.
Every fit is a call of :func:`selfdistill.fit_softmax` with the product's targets
(:func:`selfdistill.solvers.one_hot`, the previous outputs, :func:`selfdistill.pll_targets`),
exactly as :func:`selfdistill.self_distill` chains them, so the theory checks the product
and not a re-implementation of it. The PLL student uses the two-hot loss ``(e_k + e_l)/2``
by default: its minimiser is an exact fixed point, which is what theory-derivation.md §3's
PLL claim is about.

A fit that stops on float64's precision floor (status 2, "line search found no decrease")
is restarted from where it stopped, with a fresh L-BFGS memory, up to ``restarts`` times;
only if it still misses ``tol`` does the solver's ``ConvergenceWarning`` reach the caller.
Each round's ``converged`` flag is kept in :attr:`ExactTrajectory.fits`.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from .._errors import SelfDistillError
from ..distill import PLL_LOSSES, NamedFit, model_names, pll_targets
from ..losses import softmax
from ..solvers import FitResult, SpectralBasis, fit_softmax, one_hot

__all__ = ["EXACT_TOL", "ExactTrajectory", "exact_trajectory", "fit_fixed_point"]

#: default relative gradient tolerance of the exact fits (the product's own); tighter values
#: reach float64's floor (line search without decrease near 1e-7) without changing accuracies
EXACT_TOL = 1e-6
#: a precision stop within this factor of ``tol`` is float64's floor, not a failure
FLOOR_FACTOR = 100.0


@dataclass(frozen=True)
class ExactTrajectory:
    """Training outputs of the exact fixed points.

    Attributes
    ----------
    P : list of ndarray of shape (N, K)
        ``[P_1 (teacher), P_2 (sd-1), ..., P_{R+1} (sd-R)]``.
    P_pll : ndarray of shape (N, K) or None
        The PLL student's outputs (one student on the teacher's top-2 classes).
    fits : list of NamedFit
        The product's fit records (objective, iterations, seconds, converged).
    """

    P: list[np.ndarray]
    P_pll: np.ndarray | None
    fits: list[NamedFit]


def fit_fixed_point(
    Phi: np.ndarray,
    targets: np.ndarray,
    lam: float,
    *,
    W0: np.ndarray | None = None,
    q: float = 0.0,
    tol: float = EXACT_TOL,
    max_iter: int = 5000,
    basis: SpectralBasis | None = None,
    restarts: int = 1,
    floor_factor: float = FLOOR_FACTOR,
) -> FitResult:
    """:func:`~selfdistill.fit_softmax`, restarted from its own result on a precision stop.

    Parameters
    ----------
    Phi, targets, lam, W0, q, tol, max_iter, basis
        As for :func:`~selfdistill.fit_softmax`.
    restarts : int, default=1
        Restarts (fresh L-BFGS memory, from the last ``W``) after a precision stop.
    floor_factor : float, default=100
        A precision stop (status 2) whose relative gradient is within ``floor_factor * tol``
        is kept without a warning: the objective cannot decrease further in float64 (late
        rounds, targets within ~1e-5 of uniform). Its record still says
        ``converged=False`` and ``status=2``. Anything worse re-emits the solver's
        ``ConvergenceWarning``.

    Returns
    -------
    FitResult
        ``iterations`` and ``seconds`` add up all attempts.
    """
    total_it, total_s = 0, 0.0
    for attempt in range(restarts + 1):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            res = fit_softmax(Phi, targets, lam, q=q, W0=W0, tol=tol, max_iter=max_iter,
                              basis=basis, check_input=False)
        total_it += res.iterations
        total_s += res.seconds
        if res.converged or res.status != 2 or attempt == restarts:
            break
        W0 = res.W
    at_floor = res.status == 2 and res.grad_norm <= floor_factor * tol * res.grad_norm0
    if not at_floor:
        for w in caught:  # what the last attempt said (nothing if it converged)
            warnings.warn(w.message, w.category, stacklevel=2)
    return dataclasses.replace(res, iterations=total_it, seconds=total_s)


def exact_trajectory(
    Phi: np.ndarray,
    y_given: np.ndarray,
    lam: float,
    rounds: int,
    *,
    n_classes: int,
    pll: bool = True,
    pll_loss: str = "two-hot",
    q: float = 0.7,
    tol: float = EXACT_TOL,
    max_iter: int = 5000,
    basis: SpectralBasis | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> ExactTrajectory:
    """Teacher, ``rounds`` SD rounds and optionally one PLL student, fitted exactly.

    Parameters
    ----------
    Phi : ndarray of shape (N, d)
        Features (X in the product's API).
    y_given : ndarray of shape (N,)
        Given labels in ``0..K-1`` (the teacher's targets).
    lam : float
        L2 strength.
    rounds : int
        SD rounds after the teacher.
    n_classes : int
        K.
    pll : bool, default=True
    pll_loss : {"two-hot", "gce"}, default="two-hot"
    q : float, default=0.7
        GCE exponent (``pll_loss="gce"`` only).
    tol : float, default=1e-6
        Relative gradient tolerance of every fit.
    max_iter : int, default=5000
    basis : SpectralBasis, optional
        Shared factorisation of ``Phi``.
    progress : callable ``(name, index, total)``, optional

    Returns
    -------
    ExactTrajectory

    Notes
    -----
    Round ``t`` (theory-derivation.md §1) minimises
    ``(1/N) sum_i CE(p_{t-1,i}, softmax(W phi_i)) + (lam/2) ||W||^2``, warm-started from
    ``W_{t-1}``; the teacher (t = 1) uses the one-hot given labels and starts at 0.

    Examples
    --------
    >>> from selfdistill.theory.block import BlockModel
    >>> bm = BlockModel(K=3, n=10, c=0.5, d=0.1)
    >>> tr = exact_trajectory(bm.features(), bm.labels(), 1e-2, 2, n_classes=3)
    >>> len(tr.P), tr.P_pll.shape, [f.name for f in tr.fits]
    (3, (30, 3), ['teacher', 'sd-1', 'sd-2', 'pll'])
    """
    if pll_loss not in PLL_LOSSES:
        raise SelfDistillError(f"pll_loss must be one of {PLL_LOSSES}, got {pll_loss!r}")
    Phi = np.asarray(Phi, dtype=np.float64)
    if basis is None:
        basis = SpectralBasis.from_features(Phi)
    names = model_names(rounds, pll)
    kw = dict(lam=lam, tol=tol, max_iter=max_iter, basis=basis)

    def outputs(W: np.ndarray) -> np.ndarray:
        return softmax(basis.XV @ (W @ basis.V).T)

    def fit(name: str, targets: np.ndarray, W0: np.ndarray | None, q_: float) -> NamedFit:
        if progress is not None:
            progress(name, len(fits), len(names))
        return NamedFit(name, fit_fixed_point(Phi, targets, W0=W0, q=q_, **kw))

    fits: list[NamedFit] = []
    fits.append(fit("teacher", one_hot(np.asarray(y_given), n_classes), None, 0.0))
    P = [outputs(fits[0].W)]
    for t in range(1, rounds + 1):
        fits.append(fit(f"sd-{t}", P[-1], fits[-1].W, 0.0))
        P.append(outputs(fits[-1].W))
    P_pll = None
    if pll:
        fits.append(fit("pll", pll_targets(P[0]), fits[0].W,
                        q if pll_loss == "gce" else 0.0))
        P_pll = outputs(fits[-1].W)
    if progress is not None:
        progress("done", len(names), len(names))
    return ExactTrajectory(P=P, P_pll=P_pll, fits=fits)
