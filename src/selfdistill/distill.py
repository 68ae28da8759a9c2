"""Teacher -> self-distillation rounds -> partial-label (PLL) student (theory-derivation.md §1-3).

* The **teacher** is fitted on the given labels ``Y_0`` (one-hot).
* **SD round t** (``sd-t``) is fitted on the previous model's training outputs
  ``P_{t-1} = softmax(X W_{t-1}^T)`` as soft targets, warm-started from ``W_{t-1}``.
* The **PLL student** refines the teacher's outputs into a partial label, the set of
  its top-2 classes, and is fitted once on that set, warm-started from the teacher.
  Two losses are offered:

  - ``"gce"`` (default): generalised cross-entropy ``(1 - p^q)/q`` averaged over the two
    candidates (q = 0.7). GCE is bounded, so a candidate that is wrong cannot pull the
    logits without limit; it is what the paper's PLL variant uses and it measured best
    at high noise on BANKING77.
  - ``"two-hot"``: cross-entropy on the target ``(e_k + e_l)/2``. Convex (an exact
    fixed point, the object of theory-derivation.md §3's PLL claim) and slightly weaker on
    real data.

With two classes (K = 2) the top-2 set is every class: the partial label carries no
information, so the estimator and ``selfdistill fit`` never fit (nor select) the PLL
student there (:func:`pll_applies`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._errors import SelfDistillError
from ._validation import PLL_LOSSES, check_features, check_labels, check_params
from .losses import softmax
from .solvers import FitResult, SpectralBasis, _fit_softmax

__all__ = [
    "NamedFit",
    "PLL_LOSSES",
    "pll_applies",
    "pll_targets",
    "self_distill",
    "model_names",
    "chain_of",
]

#: progress callback: (model name, index, total)
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class NamedFit:
    """One fitted model of a pipeline: a :class:`FitResult` plus its name and targets.

    Attributes
    ----------
    name : str
        ``"teacher"``, ``"sd-1"`` .. ``"sd-R"`` or ``"pll"``.
    fit : FitResult
    bias : ndarray of shape (K,) or None
        A shift added to the logits after fitting (:mod:`selfdistill.prior`,
        ``class_prior="uniform"``); None: none. The chain's students are fitted on
        the unshifted outputs.
    """

    name: str
    fit: FitResult
    bias: np.ndarray | None = None

    @property
    def W(self) -> np.ndarray:
        """The fitted weights (K, d)."""
        return self.fit.W

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """``softmax(X W^T + bias)``, shape (M, K)."""
        Z = np.asarray(X, dtype=np.float64) @ self.fit.W.T
        return softmax(Z if self.bias is None else Z + self.bias)

    def to_dict(self) -> dict[str, Any]:
        """``name`` followed by :meth:`FitResult.to_dict` (objective, iterations, nfev,
        seconds, converged, status, ...): a history entry or the fit part of a model record.
        """
        return {"name": self.name, **self.fit.to_dict()}


def model_names(rounds: int, pll: bool) -> list[str]:
    """Names of the models a pipeline fits, in order.

    Examples
    --------
    >>> model_names(2, True)
    ['teacher', 'sd-1', 'sd-2', 'pll']
    """
    return ["teacher"] + [f"sd-{t}" for t in range(1, rounds + 1)] + (["pll"] if pll else [])


def pll_applies(n_classes: int) -> bool:
    """Whether the top-2 PLL student means anything for ``n_classes`` classes (K >= 3).

    With K = 2 the top-2 candidate set is every class, so the partial label rules
    nothing out; callers then leave the PLL student out of the pipeline.

    Examples
    --------
    >>> pll_applies(2), pll_applies(3)
    (False, True)
    """
    return int(n_classes) > 2


def chain_of(name: str) -> tuple[int, bool]:
    """``(rounds, pll)`` of the chain that ends at model ``name`` (``pruned-`` ignored).

    Examples
    --------
    >>> chain_of("sd-3"), chain_of("pruned-teacher"), chain_of("pll")
    ((3, False), (0, False), (0, True))
    """
    base = name.removeprefix("pruned-")
    return (int(base[3:]) if base.startswith("sd-") else 0), base == "pll"


def pll_targets(P: np.ndarray, k: int = 2) -> np.ndarray:
    """Refine teacher outputs into partial labels: uniform over each row's top-``k`` classes.

    Parameters
    ----------
    P : ndarray of shape (N, K)
        Teacher outputs on the training set.
    k : int, default=2
        Candidate-set size, capped at ``K - 1`` so that a partial label always rules
        out at least one class: with ``K = 2`` the top-2 set would be every class
        (uniform targets, no information), and the refinement becomes the teacher's
        hard prediction.

    Returns
    -------
    ndarray of shape (N, K)
        ``(e_k1 + e_k2) / 2`` for the two most probable classes of each row.

    Examples
    --------
    >>> pll_targets(np.array([[0.5, 0.3, 0.2]]))
    array([[0.5, 0.5, 0. ]])
    >>> pll_targets(np.array([[0.3, 0.7]]))
    array([[0., 1.]])
    """
    if k < 1:
        raise SelfDistillError(f"k must be at least 1, got {k}")
    k = max(1, min(k, P.shape[1] - 1))
    top = _top_k(P, k)
    T = np.zeros_like(P, dtype=np.float64)
    np.put_along_axis(T, top, 1.0 / k, axis=1)
    return T


def _top_k(P: np.ndarray, k: int) -> np.ndarray:
    """Indices of each row's ``k`` largest entries, largest first, ties to the lower index.

    The same as ``argsort(-P, kind="stable")[:, :k]`` in O(N K) instead of
    O(N K log K): ``argpartition`` picks ``k + 1`` candidates, which are sorted; rows
    where the k-th and (k+1)-th values tie (where the partition may have dropped an
    equal entry of lower index) fall back to the full stable sort.
    """
    N, K = P.shape
    if K <= 2 * k + 2:
        return np.argsort(-P, axis=1, kind="stable")[:, :k]
    cand = np.argpartition(-P, k, axis=1)[:, :k + 1]
    vals = np.take_along_axis(P, cand, axis=1)
    order = np.lexsort((cand, -vals), axis=1)  # by value descending, then index
    cand = np.take_along_axis(cand, order, axis=1)
    vals = np.take_along_axis(vals, order, axis=1)
    top = cand[:, :k].copy()
    tied = vals[:, k - 1] == vals[:, k]
    if tied.any():
        top[tied] = np.argsort(-P[tied], axis=1, kind="stable")[:, :k]
    return top


def self_distill(
    X: np.ndarray,
    y: np.ndarray,
    *,
    lam: float,
    rounds: int = 4,
    pll: bool = True,
    pll_loss: str = "gce",
    q: float = 0.7,
    n_classes: int | None = None,
    tol: float = 1e-6,
    max_iter: int = 2000,
    basis: SpectralBasis | None = None,
    progress: Progress | None = None,
    teacher_W: np.ndarray | None = None,
) -> list[NamedFit]:
    """Fit the teacher, ``rounds`` SD students and optionally the PLL student.

    Parameters
    ----------
    X : array-like of shape (N, d)
        Training features (Phi).
    y : array-like of shape (N,)
        Given (possibly noisy) labels in ``0..K-1``.
    lam : float
        L2 strength shared by all models, in ``[1e-12, 1e4]``.
    rounds : int, default=4
        Number of SD students (``sd-1`` .. ``sd-rounds``); 0 for none.
    pll : bool, default=True
        Also fit the PLL student on the teacher's top-2 classes.
    pll_loss : {"gce", "two-hot"}, default="gce"
    q : float, default=0.7
        GCE exponent for ``pll_loss="gce"``, in ``[0, 1]``.
    n_classes : int, optional
        K (default ``max(y) + 1``).
    tol, max_iter : passed to :func:`~selfdistill.fit_softmax`.
    basis : SpectralBasis, optional
        Shared basis of X (computed once here otherwise).
    progress : callable ``(name, index, total)``, optional
        Called before each fit.
    teacher_W : ndarray of shape (K, d), optional
        Warm start of the teacher (e.g. the same fit at a neighbouring lam).

    Returns
    -------
    list of NamedFit
        In the order of :func:`model_names`.

    Raises
    ------
    SelfDistillError
        A parameter outside its range (``selfdistill._validation``), features that are
        not a finite 2-D array, labels outside ``0..K-1``.

    Examples
    --------
    >>> from selfdistill.datasets import load_digits_dataset
    >>> ds = load_digits_dataset()
    >>> fits = self_distill(ds.X_train, ds.y_train, lam=1e-3, rounds=2)
    >>> [f.name for f in fits]
    ['teacher', 'sd-1', 'sd-2', 'pll']
    """
    params = check_params(lam=lam, rounds=rounds, pll_loss=pll_loss, q=q, tol=tol,
                          max_iter=max_iter)
    X = check_features(X)
    y = check_labels(y, n_samples=X.shape[0], n_classes=n_classes, min_classes=1)
    return _self_distill(X, y, pll=bool(pll), n_classes=n_classes, basis=basis,
                         progress=progress, teacher_W=teacher_W, **params)


#: Warm start of SD round t >= 2: ``W_{t-1} + SD_EXTRAPOLATE (W_{t-1} - W_{t-2})``. The
#: rounds move the weights the same way, by shrinking steps, so the next solution lies past
#: the last one. Same minimiser (each student's objective is strictly convex); measured on
#: BANKING77 (sym 0.2, asym 0.4, idn 0.4; lam 1e-6 .. 1e-4; tol 1e-6) 5-22 % fewer steps
#: for rounds 2-4 than starting at W_{t-1} (23-48 % at tol 1e-3); 1.0 saved less
#: (docs/performance.md, "Fewer SD steps").
SD_EXTRAPOLATE = 0.5


def _self_distill(
    X: np.ndarray,
    y: np.ndarray,
    *,
    lam: float,
    rounds: int,
    pll: bool,
    pll_loss: str,
    q: float,
    n_classes: int | None,
    tol: float,
    max_iter: int,
    basis: SpectralBasis | None = None,
    progress: Progress | None = None,
    restarts: int = 0,
    teacher_W: np.ndarray | None = None,
    start: tuple[int, np.ndarray] | None = None,
    n_threads: int | None = None,
) -> list[NamedFit]:
    """:func:`self_distill` behind the door: trusted inputs, one chain for every caller.

    ``restarts`` is passed to each fit (see :func:`~selfdistill.fit_softmax`).
    ``start=(s, W)`` continues a chain whose round ``s`` (the teacher for 0, else
    ``sd-s``) has weights ``W``: only rounds ``s+1 .. rounds`` are fitted and returned (no
    teacher, no PLL). ``n_threads`` is each fit's (and the basis's) thread count: the
    numbers do not depend on it.
    """
    K = n_classes or int(np.max(y)) + 1
    if basis is None:
        basis = SpectralBasis.from_features(X, n_threads=n_threads)
    names = model_names(rounds, pll and start is None)
    total = len(names) - (0 if start is None else start[0] + 1)
    kw = dict(lam=lam, tol=tol, max_iter=max_iter, basis=basis, restarts=restarts,
              n_threads=n_threads, n_classes=K)

    def _fit(name: str, targets: np.ndarray, W0: np.ndarray | None, q_: float) -> NamedFit:
        if progress is not None:
            progress(name, len(out), total)
        return NamedFit(name, _fit_softmax(X, targets, W0=W0, q=q_, **kw))

    out: list[NamedFit] = []
    if start is None:
        s0 = 0
        out.append(_fit("teacher", y, teacher_W, 0.0))   # labels: one-hot targets
        W_prev = out[0].W
    else:
        (s0, W_prev), pll = start, False
    W_before = None     # round t - 2: sd-t starts half a step past round t - 1
    for t in range(s0 + 1, rounds + 1):
        P_prev = softmax(basis.XV @ (W_prev @ basis.V).T)
        W0 = W_prev if W_before is None else W_prev + SD_EXTRAPOLATE * (W_prev - W_before)
        out.append(_fit(f"sd-{t}", P_prev, W0, 0.0))
        W_before, W_prev = W_prev, out[-1].W
    if pll:
        teacher = out[0]
        P1 = softmax(basis.XV @ (teacher.W @ basis.V).T)
        T = pll_targets(P1)
        out.append(_fit("pll", T, teacher.W, q if pll_loss == "gce" else 0.0))
    if progress is not None:
        progress("done", total, total)
    return out
