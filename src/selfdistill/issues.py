"""Likely label errors: training rows whose given label the refined model rejects.

Notation: N training rows, K classes, ``y`` (N,) the given labels, ``P`` (N, K) model
probabilities on the training rows (columns are classes ``0..K-1``).

Which probabilities
-------------------
Use **out-of-fold** probabilities: row i scored by a model fitted without row i
(:meth:`selfdistill.model_selection.CVSelection.oof_proba`, already computed when lam or
the model is chosen by cross-validation). In-sample probabilities of a model fitted on
the noisy labels partly memorise them (at lam = 1e-5 the BANKING77 teacher agrees with
most of its wrong labels), so the noise vouches for itself; the refined SD/PLL students
inherit part of that through the teacher's outputs. Out-of-fold, a wrong label can only
be supported by its neighbours, which is the label-averaging argument of THEORY.md §1-3.
This is cleanlab's out-of-sample rule, applied to the refined model.

Flagged set and score
---------------------
Row i with given label g is flagged when the model's top class s = argmax_k P_ik differs
from g (cleanlab's ``filter_by="predicted_neq_given"``). Under class-symmetric noise a
flagged row is wrong unless the model errs on a correctly labelled row, so the flagged
set's precision is about ``eta a / (eta a + (1 - eta)(1 - a_clean))`` and its recall
about the model's clean accuracy on the corrupted rows: the better the model, the better
both. Flagged rows are ranked by the margin

    score_i = P_is - P_ig  in (0, 1]

by which the model prefers another class over the given one (cleanlab's
``normalized_margin`` without the rescaling): near 1 when the model is sure and gives the
given label almost no mass, near 0 for a coin flip between the two. Larger means more
likely wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["LabelIssues", "rank_label_issues", "find_label_issues", "label_issues_from_cv"]


@dataclass(frozen=True)
class LabelIssues:
    """Flagged training rows, most confident first.

    Attributes
    ----------
    indices : ndarray of int, shape (n_issues,)
        Row indices into the training set.
    given : ndarray of int, shape (n_issues,)
        Their given labels.
    suggested : ndarray of int, shape (n_issues,)
        The model's top class for each (never equal to ``given``).
    scores : ndarray of float, shape (n_issues,)
        ``P[i, suggested] - P[i, given]`` in (0, 1], descending.
    source : str
        ``"out-of-fold"`` or ``"in-sample"``: which probabilities were used.
    """

    indices: np.ndarray
    given: np.ndarray
    suggested: np.ndarray
    scores: np.ndarray
    source: str = "out-of-fold"

    def __len__(self) -> int:
        return int(len(self.indices))

    def to_records(self) -> list[tuple[int, int, int, float]]:
        """``(index, given_label, suggested_label, score)`` tuples, the CSV's rows."""
        return [(int(i), int(g), int(s), float(sc))
                for i, g, s, sc in zip(self.indices, self.given, self.suggested, self.scores)]


def rank_label_issues(P: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rank training rows whose given label disagrees with the model's prediction.

    Parameters
    ----------
    P : ndarray of shape (N, K)
        Model probabilities on the training rows (out-of-fold ones preferred).
    y : ndarray of shape (N,)
        Given labels.

    Returns
    -------
    indices : ndarray of int
        Flagged rows, highest score first (ties by row index).
    scores : ndarray of float
        ``P[i, suggested] - P[i, given]`` for those rows, descending.

    Examples
    --------
    >>> P = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6]])
    >>> rank_label_issues(P, np.array([0, 0, 0]))
    (array([1, 2]), array([0.6, 0.2]))
    """
    N = len(y)
    suggested = np.argmax(P, axis=1)
    score = P[np.arange(N), suggested] - P[np.arange(N), y]
    flagged = np.flatnonzero(suggested != y)
    order = np.lexsort((flagged, -score[flagged]))
    idx = flagged[order]
    return idx, np.round(score[idx], 12)


def find_label_issues(P: np.ndarray, y: np.ndarray, *, source: str = "out-of-fold"
                      ) -> LabelIssues:
    """:func:`rank_label_issues` packaged with given and suggested labels.

    Parameters
    ----------
    P : ndarray of shape (N, K)
        Probabilities on the training rows; pass out-of-fold ones (see module docstring).
    y : ndarray of shape (N,)
        Given labels.
    source : str, default="out-of-fold"
        Recorded in the result.

    Examples
    --------
    >>> P = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6]])
    >>> find_label_issues(P, np.array([0, 0, 0])).to_records()
    [(1, 0, 1, 0.6), (2, 0, 1, 0.2)]
    """
    idx, scores = rank_label_issues(P, y)
    return LabelIssues(idx, np.asarray(y)[idx], np.argmax(P[idx], axis=1), scores, source)


def label_issues_from_cv(cv, X: np.ndarray, y: np.ndarray, *, lam: float | None = None,
                         model: str | None = None) -> LabelIssues:
    """Label issues from the out-of-fold probabilities of a cross-validated candidate.

    Parameters
    ----------
    cv : CVSelection
        Result of :func:`selfdistill.model_selection.cross_validate_pipeline` on ``X, y``.
    X : ndarray of shape (N, d)
        The same training features.
    y : ndarray of shape (N,)
        The same given labels.
    lam, model : optional
        Candidate to use; default the selected one (``cv.best_lam``, ``cv.best_model``).

    Returns
    -------
    LabelIssues

    Examples
    --------
    >>> from selfdistill.datasets import load_digits_dataset
    >>> from selfdistill.model_selection import cross_validate_pipeline
    >>> ds = load_digits_dataset()
    >>> X, y = ds.X_train[:300], ds.y_train[:300]
    >>> cv = cross_validate_pipeline(X, y, lams=[1e-2], rounds=0, pll=False, n_classes=10)
    >>> iss = label_issues_from_cv(cv, X, y)
    >>> iss.source, bool(np.all(iss.given != iss.suggested))
    ('out-of-fold', True)
    """
    return find_label_issues(cv.oof_proba(X, lam=lam, model=model), y, source="out-of-fold")
