"""Label-corruption models (theory-derivation.md §5).

Every model is a row-stochastic transition matrix ``T`` (K, K) with
``T[k, j] = P(given label j | true label k)``:

* ``sym``: keep with probability ``1 - rate``, else a uniformly random other class
  (``rate / (K - 1)`` each).
* ``asym``: keep with ``1 - rate``; a share ``asym_weight`` (default 0.5) of the flips
  goes to the next class ``k -> k + 1 mod K``, the rest uniformly to all other classes,
  so the next class gets ``rate * (asym_weight + (1 - asym_weight)/(K - 1))``.
* ``cc`` (confusable clusters): classes are clustered by the correlation of their
  class-mean features (average-linkage hierarchical clustering, about ``K / 5``
  clusters); flips go uniformly to the other classes of the same cluster. A class
  alone in its cluster flips to its most correlated class.
* ``custom``: any row-stochastic matrix.

Sampling is stratified so the realised rate matches the requested one: in class k
exactly ``round(n_k (1 - T[k, k]))`` instances, chosen at random, are flipped, each to
class ``j != k`` with probability proportional to ``T[k, j]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._errors import SelfDistillError
from ._validation import check_labels, check_rate, check_transition_matrix

__all__ = [
    "NOISE_KINDS",
    "transition_matrix",
    "make_noisy_labels",
    "sample_from_transition",
    "confusable_clusters",
    "realized_rate",
]

NOISE_KINDS = ("none", "sym", "asym", "cc", "custom")


def realized_rate(y_noisy: np.ndarray, y_clean: np.ndarray) -> float:
    """Fraction of labels that differ from the clean ones."""
    return float(np.mean(np.asarray(y_noisy) != np.asarray(y_clean)))


def confusable_clusters(
    features: np.ndarray, y: np.ndarray, n_classes: int, n_clusters: int | None = None
) -> np.ndarray:
    """Cluster classes by the correlation of their class-mean features.

    Parameters
    ----------
    features : ndarray of shape (N, d)
    y : ndarray of shape (N,)
        Labels used to form the class means.
    n_classes : int
    n_clusters : int, optional
        Default ``max(2, round(K / 5))`` (at most K - 1 clusters).

    Returns
    -------
    ndarray of shape (K,)
        Cluster id of each class.
    """
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    K = n_classes
    if n_clusters is None:
        n_clusters = max(2, int(round(K / 5)))
    n_clusters = int(min(max(n_clusters, 1), max(K - 1, 1)))
    means = np.zeros((K, features.shape[1]))
    for k in range(K):
        rows = features[y == k]
        if len(rows):
            means[k] = rows.mean(axis=0)
    R = np.corrcoef(means) if K > 2 else np.ones((K, K))
    R = np.nan_to_num(R, nan=0.0)
    dist = np.clip(1.0 - R, 0.0, 2.0)
    np.fill_diagonal(dist, 0.0)
    Z = linkage(squareform(dist, checks=False), method="average")
    return fcluster(Z, t=n_clusters, criterion="maxclust").astype(np.int64) - 1


def transition_matrix(
    kind: str,
    rate: float,
    n_classes: int,
    *,
    features: np.ndarray | None = None,
    y: np.ndarray | None = None,
    asym_weight: float = 0.5,
    n_clusters: int | None = None,
) -> np.ndarray:
    """Build the K x K transition matrix of a noise model.

    Examples
    --------
    >>> transition_matrix("sym", 0.3, 3).round(2)
    array([[0.7 , 0.15, 0.15],
           [0.15, 0.7 , 0.15],
           [0.15, 0.15, 0.7 ]])
    """
    K = n_classes
    rate = check_rate(rate)
    eye = np.eye(K)
    if kind == "none" or rate == 0.0:
        return eye
    off = (np.ones((K, K)) - eye) / (K - 1)
    if kind == "sym":
        return (1 - rate) * eye + rate * off
    if kind == "asym":
        nxt = np.roll(eye, 1, axis=1)  # k -> k + 1 mod K
        return (1 - rate) * eye + rate * (asym_weight * nxt + (1 - asym_weight) * off)
    if kind == "cc":
        if features is None or y is None:
            raise SelfDistillError("cc noise needs the features and labels to cluster classes")
        cluster = confusable_clusters(features, y, K, n_clusters)
        same = (cluster[:, None] == cluster[None, :]) & ~eye.astype(bool)
        M = same.astype(np.float64)
        lonely = M.sum(axis=1) == 0
        if np.any(lonely):
            means = np.stack([features[y == k].mean(axis=0) if np.any(y == k)
                              else np.zeros(features.shape[1]) for k in range(K)])
            R = np.nan_to_num(np.corrcoef(means), nan=-1.0)
            np.fill_diagonal(R, -np.inf)
            for k in np.flatnonzero(lonely):
                M[k, int(np.argmax(R[k]))] = 1.0
        M /= M.sum(axis=1, keepdims=True)
        return (1 - rate) * eye + rate * M
    raise SelfDistillError(
        f"unknown noise kind {kind!r}; choose one of sym, asym, cc, none, or a matrix file"
    )


def sample_from_transition(
    y: np.ndarray, T: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Stratified draw of noisy labels from clean ``y`` and transition ``T``."""
    y_noisy = y.copy()
    K = T.shape[0]
    for k in range(K):
        idx = np.flatnonzero(y == k)
        if idx.size == 0:
            continue
        p_flip = 1.0 - T[k, k]
        n_flip = int(round(idx.size * p_flip))
        if n_flip == 0:
            continue
        chosen = rng.choice(idx, size=n_flip, replace=False)
        dest_p = T[k].copy()
        dest_p[k] = 0.0
        dest_p /= dest_p.sum()
        y_noisy[chosen] = rng.choice(K, size=n_flip, p=dest_p)
    return y_noisy


def make_noisy_labels(
    y: Any,
    kind: str = "sym",
    rate: float = 0.0,
    n_classes: int | None = None,
    *,
    features: np.ndarray | None = None,
    seed: int | None = 0,
    T: np.ndarray | None = None,
    asym_weight: float = 0.5,
    n_clusters: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Corrupt labels with a noise model.

    Parameters
    ----------
    y : array-like of shape (N,)
        Clean labels in ``0..K-1``.
    kind : {"sym", "asym", "cc", "none", "custom"}, default="sym"
    rate : float in [0, 1), default=0.0
        Probability that a label is changed (ignored for ``custom``).
    n_classes : int, optional
        K (default ``max(y) + 1``).
    features : ndarray of shape (N, d), optional
        Needed by ``cc``, whose class clusters come from the features.
    seed : int, default=0
        Same seed, same noisy labels.
    T : ndarray of shape (K, K), optional
        Row-stochastic matrix for ``kind="custom"``.
    asym_weight : float, default=0.5
        ``asym``: share of flips sent to the next class.
    n_clusters : int, optional
        ``cc``: number of class clusters.

    Returns
    -------
    y_noisy : ndarray of shape (N,)
    T : ndarray of shape (K, K)
        The transition matrix used (``T[k, j] = P(j | k)``).

    Examples
    --------
    >>> y = np.repeat(np.arange(4), 250)
    >>> y_noisy, T = make_noisy_labels(y, kind="sym", rate=0.4, n_classes=4, seed=0)
    >>> float(np.mean(y_noisy != y)), T.shape
    (0.4, (4, 4))
    """
    K = n_classes
    y = check_labels(y, n_classes=K, min_classes=1)
    K = K or int(y.max()) + 1
    if kind == "custom" or T is not None:
        if T is None:
            raise SelfDistillError("custom noise needs a transition matrix T")
        T = check_transition_matrix(T, n_classes=K)
    else:
        T = transition_matrix(kind, rate, K, features=features, y=y,
                              asym_weight=asym_weight, n_clusters=n_clusters)
    rng = np.random.default_rng(seed)
    return sample_from_transition(y, T, rng), T
