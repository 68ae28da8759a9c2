"""Exact softmax fixed points round by round (theory-derivation.md §1), product pipeline.

No linearisation: round 1 (the teacher) minimises the L2-regularised cross-entropy on the
given labels, round ``t`` the same objective on the targets ``P_{t-1}``, each an exact
minimiser found by :func:`selfdistill.fit_softmax` warm-started from the previous round.
The chain is the product's own (:func:`selfdistill.self_distill`, through its trusted
form), so the theory checks the product and not a re-implementation of it. The PLL student
uses the two-hot loss ``(e_k + e_l)/2`` by default: its minimiser is an exact fixed point,
which is what theory-derivation.md §3's PLL claim is about.

A fit that stops on float64's precision floor (status 2, "line search found no decrease")
is restarted by the solver from where it stopped, with a fresh L-BFGS memory
(``fit_softmax(restarts=...)``). A precision stop still within ``FLOOR_FACTOR * tol`` is
float64's floor and passes silently; anything worse reaches the caller as a
``ConvergenceWarning``. Each round's ``converged`` flag is kept in
:attr:`ExactTrajectory.fits`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from .._validation import check_params
from ..distill import NamedFit, _self_distill
from ..losses import softmax
from ..solvers import SpectralBasis

__all__ = ["EXACT_TOL", "ExactTrajectory", "exact_trajectory"]

#: default relative gradient tolerance of the exact fits (the product's own); tighter values
#: reach float64's floor (line search without decrease near 1e-7) without changing accuracies
EXACT_TOL = 1e-6
#: a precision stop within this factor of ``tol`` is float64's floor, not a failure
FLOOR_FACTOR = 100.0
#: restarts of a fit after a precision stop (:func:`selfdistill.fit_softmax`)
RESTARTS = 1


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
    kw = check_params(lam=lam, rounds=rounds, pll_loss=pll_loss, q=q, tol=tol,
                      max_iter=max_iter)
    Phi = np.asarray(Phi, dtype=np.float64)
    if basis is None:
        basis = SpectralBasis.from_features(Phi)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        fits = _self_distill(Phi, np.asarray(y_given), pll=pll, n_classes=n_classes,
                             basis=basis, progress=progress, restarts=RESTARTS, **kw)
    for w in caught:  # anything but the solver's non-convergence passes through unchanged
        if not issubclass(w.category, ConvergenceWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    for nf in fits:
        f = nf.fit
        at_floor = f.status == 2 and f.relative_grad <= FLOOR_FACTOR * tol
        if not f.converged and not at_floor:
            warnings.warn(f"{nf.name}: fit_softmax did not converge ({f.message}; relative "
                          f"gradient {f.relative_grad:.2e} > tol {tol:.0e}). Increase "
                          "max_iter or lam.", ConvergenceWarning, stacklevel=2)

    def outputs(W: np.ndarray) -> np.ndarray:
        return softmax(basis.XV @ (W @ basis.V).T)

    P = [outputs(nf.W) for nf in fits if nf.name != "pll"]
    P_pll = outputs(fits[-1].W) if pll else None
    return ExactTrajectory(P=P, P_pll=P_pll, fits=fits)
