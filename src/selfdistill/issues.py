"""Likely label errors: training rows whose given label the refined model rejects.

Score of row i with given label g and suggested label s = argmax_k P_ik:

    score_i = P_is - P_ig  in (0, 1]

the margin by which the model prefers another class over the given one. It is 0 for
rows the model agrees with (not flagged) and near 1 when the model is sure and gives
the given label almost no mass. Larger means more likely wrong.
"""

from __future__ import annotations

import numpy as np

__all__ = ["rank_label_issues"]


def rank_label_issues(P: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rank training rows whose given label disagrees with the model's prediction.

    Parameters
    ----------
    P : ndarray of shape (N, K)
        Model probabilities on the training rows.
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
