"""Choosing lam and the model (teacher, SD round, PLL) from the given noisy labels only.

Why held-out accuracy on noisy labels works: under class-symmetric noise at rate
eta, a held-out label is right with probability 1 - eta and otherwise uniform over the
other K - 1 classes, so for a model with clean accuracy ``a``

    noisy accuracy = a (1 - eta) + (1 - a) eta / (K - 1)
                   = eta / (K - 1) + a (1 - eta K / (K - 1)),

an increasing function of ``a`` whenever ``eta < (K - 1) / K`` (the same edge as the
plurality condition of THEORY.md §3). Ranking candidates by cross-validated accuracy on
noisy labels therefore ranks them by clean accuracy, only less sharply (the slope
shrinks as eta grows, so more folds or more data are needed at high noise). It breaks
when the noise is not symmetric: with pair-flip (asym) or cluster (cc) noise a model
can gain noisy accuracy by copying the systematic confusion, and the proxy may then
prefer the teacher over a student that undid it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .distill import model_names, self_distill

__all__ = ["CVSelection", "cross_validate_pipeline", "choose_model"]


@dataclass(frozen=True)
class CVSelection:
    """Cross-validated accuracy on the given labels for each (lam, model).

    Attributes
    ----------
    lams : list of float
    models : list of str
    scores : ndarray of shape (len(lams), len(models))
        Mean held-out accuracy against the *given* labels.
    best_lam : float
    best_model : str
    method : str
    """

    lams: list[float]
    models: list[str]
    scores: np.ndarray
    best_lam: float
    best_model: str
    method: str = "cv"
    n_splits: int = 3
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """SPEC ``lam_selection`` record: method, candidates, scores (+ models)."""
        return {
            "method": f"{self.n_splits}-fold cv on given labels",
            "candidates": [float(v) for v in self.lams],
            "scores": [float(v) for v in self.scores.max(axis=1)],
            "models": self.models,
            "scores_by_model": [[float(v) for v in row] for row in self.scores],
            "best_lam": float(self.best_lam),
            "best_model": self.best_model,
        }


def choose_model(scores: Sequence[float], names: Sequence[str], margin: float = 0.0) -> str:
    """Pick the best-scoring model; ties (within ``margin``) go to the earliest (simplest).

    Examples
    --------
    >>> choose_model([0.90, 0.905, 0.89], ["teacher", "sd-1", "pll"], margin=0.01)
    'teacher'
    """
    scores = np.asarray(scores, dtype=float)
    best = float(np.max(scores))
    for name, s in zip(names, scores):
        if s >= best - margin:
            return name
    return names[int(np.argmax(scores))]  # pragma: no cover


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
    tol: float = 1e-6,
    progress: Callable[[int, int], None] | None = None,
) -> CVSelection:
    """K-fold CV of the whole pipeline for each lam, scored on the given labels.

    Folds are stratified on the given labels; each fold fits teacher, SD rounds and
    PLL on the other folds and scores every model on the held-out fold.

    Returns
    -------
    CVSelection
    """
    from sklearn.model_selection import StratifiedKFold

    names = model_names(rounds, pll)
    counts = np.bincount(y, minlength=n_classes)
    n_splits = int(max(2, min(n_splits, counts[counts > 0].min())))
    folds = list(StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(X, y))
    scores = np.zeros((len(lams), len(names)))
    total, done = len(lams) * n_splits, 0
    for a, lam in enumerate(lams):
        for tr, va in folds:
            fits = self_distill(X[tr], y[tr], lam=lam, rounds=rounds, pll=pll,
                                pll_loss=pll_loss, q=q, n_classes=n_classes, tol=tol)
            for b, nf in enumerate(fits):
                pred = np.argmax(X[va] @ nf.W.T, axis=1)
                scores[a, b] += np.mean(pred == y[va]) / n_splits
            done += 1
            if progress is not None:
                progress(done, total)
    a_best = int(np.argmax(scores.max(axis=1)))
    best_model = choose_model(scores[a_best], names)
    return CVSelection(list(map(float, lams)), names, scores, float(lams[a_best]), best_model,
                       n_splits=n_splits)
