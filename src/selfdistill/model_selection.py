"""Choosing lam and the model (teacher, SD round, PLL) from the given noisy labels only.

Notation: N training rows, K classes, ``y`` (N,) the labels *as given* (possibly noisy);
a *candidate* is one (lam, model) pair, model in ``teacher, sd-1 .. sd-R, pll``.

Why held-out accuracy on noisy labels works
-------------------------------------------
Under class-symmetric noise at rate eta a held-out label is right with probability
1 - eta and otherwise uniform over the other K - 1 classes, independently of the
features. For a model with clean accuracy ``a`` on the held-out rows

    noisy accuracy = a (1 - eta) + (1 - a) eta / (K - 1)
                   = eta / (K - 1) + a (1 - eta K / (K - 1)),

an increasing affine function of ``a`` whenever ``eta < (K - 1) / K`` (the same edge as
the plurality condition of THEORY.md §3). Ranking candidates by out-of-fold accuracy on
the noisy labels therefore ranks them by clean accuracy, only less sharply: differences
shrink by the slope ``1 - eta K / (K - 1)`` (0.19 for K = 77, eta = 0.8) while the
sampling error does not, so the proxy needs more rows as eta grows.

Where it breaks: (1) noise that depends on the class or the features (asym pair flips,
cc flips inside clusters of confusable classes). A model that copies the systematic
confusion gains noisy accuracy, so the proxy is no longer monotone in clean accuracy
and tends to prefer the model that memorised the noise (the teacher, small lam) over a
student that undid it. It stays a fair guide while, in every class, the true label
remains the plurality of the given labels. (2) eta at or past (K - 1) / K, where the
slope is 0 or negative. (3) Tiny validation sets, where the differences between
candidates are below the sampling error (see ``z`` below).

How candidates are compared
---------------------------
Every row is held out exactly once (stratified K-fold on the given labels), so each
candidate gets a vector ``c`` of N out-of-fold hits. The best candidate has the highest
mean; any candidate whose mean is within ``z`` standard errors of the *paired*
difference ``c_best - c`` is statistically tied with it, and among tied candidates the
simplest wins: the fewest fits after the teacher (teacher < sd-1 < ... < sd-R < pll is
the pipeline order; PLL comes last because it changes the loss), then the largest lam
(the smoothest model). The paired standard error grows with the noise (more rows on
which two candidates disagree are coin flips), so the margin is noise-aware by
construction. ``z = 0`` (the default) picks the plain best.

Cost
----
Each fold computes its :class:`~selfdistill.solvers.SpectralBasis` once and reuses it
for every lam and every round; only the weights of each fold model are kept
(``(L, M, folds, K, d)``), so out-of-fold probabilities of any candidate cost one
matrix product (:meth:`CVSelection.oof_proba`), independent of N in memory.
Racing (``race``): after each fold a lam whose best model already trails the best
candidate by more than 4 paired standard errors is not fitted on the remaining folds;
on BANKING77 that is typically the slow lam = 1e-6 at low noise (two thirds of its
folds saved). Warm-starting a lam path from the previous lam's solution was measured
and not adopted: 66 -> 61 iterations for lam = 1e-5 from 1e-4, within timing noise.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ._errors import SelfDistillError
from ._validation import check_lam, check_params
from .distill import _self_distill, model_names
from .losses import softmax
from .solvers import SpectralBasis

__all__ = ["CV_TOL", "CVSelection", "cross_validate_pipeline", "select_candidate"]

#: Gradient tolerance of the fold fits. Selection needs held-out predictions, which
#: settle long before the weights do: on BANKING77 (lam=1e-5, sym 0 and 0.8) every
#: out-of-fold score at tol=1e-4 equals the one at 1e-6 within 0.03 points, in 0.4-0.6x
#: the time. The final models are still fitted at the caller's tol (1e-6 by default).
CV_TOL = 1e-4


@dataclass(frozen=True)
class CVSelection:
    """Out-of-fold accuracy on the given labels for each (lam, model) candidate.

    Attributes
    ----------
    lams : list of float
        Candidate L2 strengths (L).
    models : list of str
        Model names in pipeline order (M).
    scores : ndarray of shape (L, M)
        Out-of-fold accuracy against the *given* labels (every row held out once).
    stderr : ndarray of shape (L, M)
        Standard error of the paired difference (out-of-fold hits) between the
        selected candidate and this one (0 for the selected one itself).
    best_lam : float
        lam of the selected candidate.
    best_model : str
        Model name of the selected candidate.
    n_splits : int
        Folds actually used.
    z : float
        Tie margin in paired standard errors used by the rule.
    folds : list of (train_idx, val_idx)
    weights : ndarray of shape (L, M, n_splits, K, d)
        W of every fold model (fitted on ``train_idx``).
    seconds : float
        Wall-clock time of the whole cross-validation.
    folds_used : list of int
        Folds fitted per lam (fewer than ``n_splits`` when racing dropped it; its
        scores then cover only those folds' rows).
    """

    lams: list[float]
    models: list[str]
    scores: np.ndarray
    best_lam: float
    best_model: str
    n_splits: int = 3
    stderr: np.ndarray | None = None
    z: float = 0.0
    folds: list = field(default_factory=list, repr=False)
    weights: np.ndarray | None = field(default=None, repr=False)
    seconds: float = 0.0
    folds_used: list | None = None

    def oof_proba(self, X: np.ndarray, lam: float | None = None,
                  model: str | None = None) -> np.ndarray:
        """Out-of-fold probabilities (N, K) of one candidate (default: the selected one).

        Row i comes from the fold model that did not see row i, so a model that
        memorised a wrong label cannot vouch for it (cleanlab's out-of-sample rule).

        Parameters
        ----------
        X : ndarray of shape (N, d)
            The training features the selection was run on.
        lam, model : optional
            Candidate; defaults to ``best_lam``, ``best_model``.
        """
        if self.weights is None:
            raise ValueError("this CVSelection kept no fold weights")
        a = self.lams.index(self.best_lam if lam is None else float(lam))
        b = self.models.index(self.best_model if model is None else model)
        if self.folds_used is not None and self.folds_used[a] < len(self.folds):
            raise ValueError(f"lam={self.lams[a]:g} was dropped by racing after "
                             f"{self.folds_used[a]} folds: no out-of-fold probabilities")
        X64 = np.asarray(X, dtype=np.float64)
        P = np.empty((X64.shape[0], self.weights.shape[3]))
        for f, (_, va) in enumerate(self.folds):
            P[va] = softmax(X64[va] @ self.weights[a, b, f].T)
        return P

    def to_dict(self) -> dict:
        """SPEC ``lam_selection`` record.

        ``method``, ``candidates`` (the lams), ``scores`` (best model's out-of-fold
        accuracy on the given labels per lam), plus ``models``, ``scores_by_model``
        (L x M), ``stderr_by_model`` (L x M), ``rule``, ``n_splits``, ``best_lam``,
        ``best_model``, ``at_grid_edge`` (the chosen lam is the smallest or largest
        candidate: widen the grid) and ``seconds``.
        """
        se = self.stderr if self.stderr is not None else np.zeros_like(self.scores)
        return {
            "method": f"{self.n_splits}-fold cv on given labels",
            "candidates": [float(v) for v in self.lams],
            "scores": [float(v) for v in self.scores.max(axis=1)],
            "models": list(self.models),
            "scores_by_model": [[float(v) for v in row] for row in self.scores],
            "stderr_by_model": [[None if np.isnan(v) else float(v) for v in row]
                                for row in se],
            "folds_used": (None if self.folds_used is None
                           else [int(v) for v in self.folds_used]),
            "rule": (f"simplest candidate within {self.z:g} paired standard errors of the "
                     "best out-of-fold accuracy on the given labels"),
            "n_splits": int(self.n_splits),
            "best_lam": float(self.best_lam),
            "best_model": self.best_model,
            "at_grid_edge": bool(len(self.lams) > 1
                                 and self.best_lam in (min(self.lams), max(self.lams))),
            "seconds": float(self.seconds),
        }


def select_candidate(correct: np.ndarray, lams: Sequence[float],
                     z: float = 0.0) -> tuple[int, int, np.ndarray, np.ndarray]:
    """The simplest candidate statistically tied with the best (module docstring).

    Parameters
    ----------
    correct : ndarray of shape (L, M, N), bool
        Out-of-fold hits against the given labels; models in pipeline order.
    lams : sequence of float, length L
    z : float, default=0.0
        Margin in standard errors of the paired difference to the best.

    Returns
    -------
    a, b : int
        Index of the chosen lam and model.
    scores, stderr : ndarray of shape (L, M)

    Examples
    --------
    >>> c = np.array([[[1, 1, 0, 0], [1, 1, 1, 0]]], dtype=bool)   # L=1, M=2, N=4
    >>> select_candidate(c, [1e-5])[:2], select_candidate(c, [1e-5], z=2.0)[:2]
    ((0, 1), (0, 0))
    """
    c = np.asarray(correct, dtype=np.float64)
    L, M, N = c.shape
    scores = c.mean(axis=2)
    a0, b0 = np.unravel_index(int(np.argmax(scores)), scores.shape)
    diff = c[a0, b0][None, None, :] - c
    stderr = diff.std(axis=2, ddof=1) / np.sqrt(N) if N > 1 else np.zeros((L, M))
    tied = scores >= scores[a0, b0] - z * stderr - 1e-12
    by_lam = np.argsort(-np.asarray(lams, dtype=float), kind="stable")  # largest lam first
    for b in range(M):
        for a in by_lam:
            if tied[a, b]:
                return int(a), int(b), scores, stderr
    return int(a0), int(b0), scores, stderr  # pragma: no cover


def cross_validate_pipeline(
    X: np.ndarray,
    y: np.ndarray,
    *,
    lams: Sequence[float],
    rounds: int,
    pll: bool,
    n_classes: int,
    pll_loss: str = "gce",
    q: float = 0.7,
    n_splits: int = 3,
    seed: int = 0,
    tol: float = CV_TOL,
    z: float = 0.0,
    select_models: Sequence[str] | None = None,
    race: float | None = 4.0,
    progress: Callable[[int, int], None] | None = None,
) -> CVSelection:
    """Stratified K-fold CV of the whole pipeline for each lam, scored on the given labels.

    Each fold fits teacher, SD rounds and PLL on the other folds for every lam (one
    spectral basis per fold, shared by all lams and rounds) and scores every model on
    the held-out rows. Only ``y`` is read: clean labels never enter.

    Parameters
    ----------
    X : ndarray of shape (N, d)
    y : ndarray of shape (N,)
        Given labels in ``0..K-1``.
    lams : sequence of float
        Candidate lams.
    rounds, pll, pll_loss, q : see :func:`~selfdistill.distill.self_distill`.
    tol : float, default=CV_TOL
        Gradient tolerance of the fold fits (see :data:`CV_TOL`).
    n_classes : int
        K.
    n_splits : int, default=3
        Folds (lowered to the smallest class count when needed, at least 2).
    seed : int, default=0
        Shuffles the folds.
    z : float, default=0.0
        Tie margin of :func:`select_candidate`.
    select_models : sequence of str, optional
        Choose only among these models (e.g. ``["pll"]`` to tune lam for the PLL
        student); all models are still scored and reported.
    race : float or None, default=4.0
        Racing: after each fold, a lam whose best model trails the best candidate by
        more than ``race`` paired standard errors on the rows held out so far is not
        fitted on the remaining folds (its scores then cover only those rows, and it
        cannot be selected). 4 standard errors make a wrong drop very unlikely; it
        mostly saves the slow, clearly overfitting small lam. ``None`` fits all.
    progress : callable ``(done, total)``, optional

    Returns
    -------
    CVSelection

    Examples
    --------
    >>> from selfdistill.datasets import load_digits_dataset
    >>> ds = load_digits_dataset()
    >>> sel = cross_validate_pipeline(ds.X_train[:300], ds.y_train[:300], lams=[1e-3, 1e-2],
    ...                               rounds=1, pll=True, n_classes=10)
    >>> sel.scores.shape, sel.models
    ((2, 3), ['teacher', 'sd-1', 'pll'])
    >>> sel.oof_proba(ds.X_train[:300]).shape
    (300, 10)
    """
    from sklearn.model_selection import StratifiedKFold

    t0 = time.perf_counter()
    lams = [check_lam(v, name="lams[]") for v in lams]
    if not lams:
        raise SelfDistillError("lams must list at least one candidate")
    check_params(rounds=rounds, pll_loss=pll_loss, q=q, tol=tol)
    names = model_names(rounds, pll)
    K, N, d = int(n_classes), X.shape[0], X.shape[1]
    n_splits = int(max(2, min(n_splits, N)))
    with warnings.catch_warnings():
        # Noisy labels leave some classes with fewer rows than folds; stratification then
        # spreads what there is, which is all we need (K is fixed by ``n_classes``).
        warnings.filterwarnings("ignore", message="The least populated class",
                                category=UserWarning)
        folds = list(StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(X, y))
    correct = np.zeros((len(lams), len(names), N), dtype=bool)
    weights = np.zeros((len(lams), len(names), n_splits, K, d))
    total, done = len(lams) * n_splits, 0
    order = sorted(range(len(lams)), key=lambda a: -lams[a])  # large lam (fast) first
    active = set(range(len(lams)))
    folds_used = np.zeros(len(lams), dtype=int)
    keep = list(range(len(names))) if select_models is None else [
        names.index(m) for m in select_models]
    seen = np.zeros(N, dtype=bool)
    for f, (tr, va) in enumerate(folds):
        Xtr = X[tr]
        basis = SpectralBasis.from_features(Xtr)
        Xva = np.asarray(X[va], dtype=np.float64)
        for a in order:
            if a not in active:
                continue
            fits = _self_distill(Xtr, y[tr], lam=lams[a], rounds=rounds, pll=pll,
                                 pll_loss=pll_loss, q=q, n_classes=K, tol=tol,
                                 max_iter=2000, basis=basis)
            for b, nf in enumerate(fits):
                weights[a, b, f] = nf.W
                correct[a, b, va] = np.argmax(Xva @ nf.W.T, axis=1) == y[va]
            folds_used[a] += 1
            done += 1
            if progress is not None:
                progress(done, total)
        seen[va] = True
        if race is not None and f < n_splits - 1 and len(active) > 1:
            act = sorted(active)
            c = correct[act][:, keep][:, :, seen].astype(np.float64)
            sc = c.mean(axis=2)
            ab = np.unravel_index(int(np.argmax(sc)), sc.shape)
            for i, a in enumerate(act):
                b = int(np.argmax(sc[i]))
                diff = c[ab] - c[i, b]
                se = diff.std(ddof=1) / np.sqrt(diff.size)
                if diff.mean() > race * se and diff.mean() > 0:
                    active.discard(a)
                    done += n_splits - 1 - f
    complete = np.array([folds_used[a] == n_splits for a in range(len(lams))])
    c_sel = correct[complete][:, keep]
    a_c, bk, _, _ = select_candidate(c_sel, [lams[a] for a in np.flatnonzero(complete)], z=z)
    a, b = int(np.flatnonzero(complete)[a_c]), keep[bk]
    n_seen = np.array([sum(len(folds[f][1]) for f in range(folds_used[a_]))
                       for a_ in range(len(lams))])
    scores = correct.sum(axis=2) / np.maximum(n_seen, 1)[:, None]
    diff = correct[a, b][None, None, :].astype(np.float64) - correct
    stderr = diff.std(axis=2, ddof=1) / np.sqrt(N) if N > 1 else np.zeros_like(scores)
    stderr[~complete] = np.nan
    return CVSelection(lams, names, scores, lams[a], names[b], n_splits=n_splits,
                       stderr=stderr, z=float(z), folds=folds, weights=weights,
                       seconds=time.perf_counter() - t0, folds_used=folds_used.tolist())
