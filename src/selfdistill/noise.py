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
* ``paper-asym``: the reference implementation's asymmetric noise: keep with ``1 - rate``;
  every other class gets ``rate / K`` and the next class ``k + 1 mod K`` a further
  ``rate / K`` (so ``2 rate / K`` in all).
* ``paper-cc``: the reference implementation's confusable classes: classes are clustered
  by complete linkage on ``1 - corr`` of their class-mean features and the tree is cut at
  0.8 of its highest merge; flips go uniformly to the other classes of the same
  cluster. (The reference passes the square distance matrix to ``linkage``, which scipy
  reads as K observation vectors; we pass the condensed distances, which is what the
  definition says.) A class alone in its cluster flips to its most correlated class, so
  the realised rate still equals the requested one.
* ``idn`` (instance-dependent, :func:`idn_labels`): a weak annotator, a linear softmax
  model trained on a random 10 % of the rows, stratified by class, at a strong L2
  penalty, scores every row; the ``round(rate N)`` rows on which it most believes a
  wrong class are given that class. Which rows flip and where they go depend on the
  features of each row, as with a human annotator who confuses plausible classes. The
  returned ``T`` is the realised transition matrix.
* ``custom``: any row-stochastic matrix.

Sampling is stratified so the realised rate matches the requested one: in class k
exactly ``round(n_k (1 - T[k, k]))`` instances, chosen at random, are flipped, each to
class ``j != k`` with probability proportional to ``T[k, j]``.

:class:`NoiseSpec` is the one value that names a noise model everywhere (CLI ``--noise``,
sweep configs, the runner, result records, theory): ``kind``, ``rate`` and, for
``custom``, the matrix ``T``; :meth:`NoiseSpec.parse` reads the ``KIND:RATE`` spelling.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._errors import SelfDistillError
from ._validation import check_labels, check_rate, check_transition_matrix

__all__ = [
    "NOISE_KINDS",
    "NoiseSpec",
    "idn_labels",
    "transition_matrix",
    "make_noisy_labels",
    "sample_from_transition",
    "confusable_clusters",
    "realized_rate",
]

NOISE_KINDS = ("none", "sym", "asym", "cc", "idn", "paper-asym", "paper-cc", "custom")
#: kinds spelled ``KIND:RATE`` (``custom`` is ``matrix:PATH.npy``)
RATE_KINDS = ("sym", "asym", "cc", "idn", "paper-asym", "paper-cc")
#: kinds whose draw needs the features
FEATURE_KINDS = ("cc", "paper-cc", "idn")


def realized_rate(y_noisy: np.ndarray, y_clean: np.ndarray) -> float:
    """Fraction of labels that differ from the clean ones."""
    return float(np.mean(np.asarray(y_noisy) != np.asarray(y_clean)))


def _class_means(features: np.ndarray, y: np.ndarray, K: int) -> np.ndarray:
    means = np.zeros((K, features.shape[1]))
    for k in range(K):
        rows = features[y == k]
        if len(rows):
            means[k] = rows.mean(axis=0)
    return means


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
    R = np.corrcoef(_class_means(features, y, K)) if K > 2 else np.ones((K, K))
    R = np.nan_to_num(R, nan=0.0)
    dist = np.clip(1.0 - R, 0.0, 2.0)
    np.fill_diagonal(dist, 0.0)
    Z = linkage(squareform(dist, checks=False), method="average")
    return fcluster(Z, t=n_clusters, criterion="maxclust").astype(np.int64) - 1


def paper_cc_clusters(features: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    """Class clusters of ``paper-cc``: complete linkage on ``1 - corr`` of class means.

    The tree is cut at 0.8 of its highest merge (``fcluster(..., criterion="distance")``),
    so the number of clusters follows the data rather than K.

    Returns
    -------
    ndarray of shape (K,)
        Cluster id of each class, from 0.

    Examples
    --------
    >>> X = np.array([[1., 0, 0], [1, .1, 0], [0, 0, 1], [0, .1, 1]])
    >>> paper_cc_clusters(np.repeat(X, 2, axis=0), np.repeat(np.arange(4), 2), 4)
    array([0, 0, 1, 1])
    """
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    K = n_classes
    if K < 3:
        return np.zeros(K, dtype=np.int64)
    R = np.nan_to_num(np.corrcoef(_class_means(features, y, K)), nan=0.0)
    dist = np.clip(1.0 - R, 0.0, 2.0)
    np.fill_diagonal(dist, 0.0)
    Z = linkage(squareform(dist, checks=False), method="complete")
    labels = fcluster(Z, t=0.8 * float(np.max(Z[:, 2])), criterion="distance")
    return np.unique(labels, return_inverse=True)[1].astype(np.int64)


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
    >>> transition_matrix("paper-asym", 0.3, 3).round(2)
    array([[0.7, 0.2, 0.1],
           [0.1, 0.7, 0.2],
           [0.2, 0.1, 0.7]])
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
    if kind == "paper-asym":
        nxt = np.roll(eye, 1, axis=1)
        return (1 - rate) * eye + rate / K * (np.ones((K, K)) - eye) + rate / K * nxt
    if kind in ("cc", "paper-cc"):
        if features is None or y is None:
            raise SelfDistillError(f"{kind} noise needs the features and labels to cluster "
                                   "classes")
        cluster = (confusable_clusters(features, y, K, n_clusters) if kind == "cc"
                   else paper_cc_clusters(features, y, K))
        same = (cluster[:, None] == cluster[None, :]) & ~eye.astype(bool)
        M = same.astype(np.float64)
        lonely = M.sum(axis=1) == 0
        if np.any(lonely):
            R = np.nan_to_num(np.corrcoef(_class_means(features, y, K)), nan=-1.0)
            np.fill_diagonal(R, -np.inf)
            for k in np.flatnonzero(lonely):
                M[k, int(np.argmax(R[k]))] = 1.0
        M /= M.sum(axis=1, keepdims=True)
        return (1 - rate) * eye + rate * M
    if kind == "idn":
        raise SelfDistillError("idn noise has no fixed transition matrix; draw it with "
                               "make_noisy_labels(..., kind='idn', features=X)")
    raise SelfDistillError(
        f"unknown noise kind {kind!r}; choose one of {', '.join(RATE_KINDS)}, none, "
        "or a matrix file"
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


#: share of the rows the ``idn`` annotator is trained on
IDN_SHARE = 0.1
#: its L2 strength, relative to the mean squared row norm of the features
IDN_LAM = 1e-2


def idn_labels(y: np.ndarray, rate: float, n_classes: int, *, features: np.ndarray,
               seed: int | None = 0) -> np.ndarray:
    """Instance-dependent noise from a weak annotator's plausible confusions.

    1. The annotator is a linear softmax model (:func:`~selfdistill.fit_softmax`, lam =
       ``IDN_LAM`` x the mean squared row norm, so the definition is scale-free) fitted on
       ``IDN_SHARE`` = 10 % of the rows, drawn at random within each class (at least one
       per class), with their clean labels.
    2. For every row it gives ``w_i = max_{j != y_i} P_ij``, its belief in the most
       plausible wrong class ``j*_i``.
    3. The ``round(rate N)`` rows with the largest ``w_i`` get label ``j*_i`` (ties broken
       by a seeded random order); every other label is kept.

    The realised rate is exactly ``round(rate N) / N``; the same seed gives the same rows.

    Parameters
    ----------
    y : ndarray of shape (N,)
        Clean labels in ``0..K-1``.
    rate : float in [0, 1)
    n_classes : int
    features : ndarray of shape (N, d)
    seed : int, default=0

    Returns
    -------
    ndarray of shape (N,)

    Examples
    --------
    >>> from selfdistill.datasets import load_digits_dataset
    >>> ds = load_digits_dataset()
    >>> y_idn = idn_labels(ds.y_train, 0.3, 10, features=ds.X_train, seed=0)
    >>> round(float(np.mean(y_idn != ds.y_train)), 3)
    0.3
    """
    from .losses import softmax
    from .solvers import fit_softmax, one_hot

    K, N = int(n_classes), len(y)
    rng = np.random.default_rng(seed)
    n_flip = int(round(rate * N))
    if n_flip == 0:
        return y.copy()
    sub = []
    for k in range(K):
        idx = np.flatnonzero(y == k)
        if idx.size:
            sub.append(rng.choice(idx, size=max(1, int(round(IDN_SHARE * idx.size))),
                                  replace=False))
    sub = np.sort(np.concatenate(sub))
    X = np.asarray(features, dtype=np.float64)
    lam = IDN_LAM * float(np.mean(np.einsum("ij,ij->i", X[sub], X[sub]))) + 1e-12
    W, _ = fit_softmax(X[sub], one_hot(y[sub], K), lam=lam, tol=1e-5, max_iter=500,
                       check_input=False)
    P = np.empty((N, K))
    for start in range(0, N, 65536):
        P[start:start + 65536] = softmax(X[start:start + 65536] @ W.T)
    P[np.arange(N), y] = -1.0
    wrong = np.argmax(P, axis=1)
    belief = P[np.arange(N), wrong]
    tie = rng.permutation(N)
    flip = np.lexsort((tie, -belief))[:n_flip]
    y_noisy = y.copy()
    y_noisy[flip] = wrong[flip]
    return y_noisy


def empirical_transition(y_clean: np.ndarray, y_noisy: np.ndarray, n_classes: int
                         ) -> np.ndarray:
    """``T[k, j]`` = share of rows of clean class k given label j (identity row if empty)."""
    K = int(n_classes)
    C = np.zeros((K, K))
    np.add.at(C, (y_clean, y_noisy), 1.0)
    n = C.sum(axis=1, keepdims=True)
    return np.where(n > 0, C / np.maximum(n, 1.0), np.eye(K))


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
    kind : {"sym", "asym", "cc", "idn", "paper-asym", "paper-cc", "none", "custom"}, \
default="sym"
    rate : float in [0, 1), default=0.0
        Probability that a label is changed (ignored for ``custom``).
    n_classes : int, optional
        K (default ``max(y) + 1``).
    features : ndarray of shape (N, d), optional
        Needed by ``cc`` and ``paper-cc`` (class clusters come from the features) and by
        ``idn`` (the annotator is trained on them).
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
        The transition matrix used (``T[k, j] = P(j | k)``); for ``idn`` the realised one.

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
    elif kind == "idn":
        if features is None:
            raise SelfDistillError("idn noise needs the features (features=X)")
        y_noisy = idn_labels(y, check_rate(rate), K, features=features, seed=seed)
        return y_noisy, empirical_transition(y, y_noisy, K)
    else:
        T = transition_matrix(kind, rate, K, features=features, y=y,
                              asym_weight=asym_weight, n_clusters=n_clusters)
    rng = np.random.default_rng(seed)
    return sample_from_transition(y, T, rng), T


@dataclass(frozen=True, eq=False)
class NoiseSpec:
    """One noise model: what ``--noise``, sweep configs, records and theory all name.

    Parameters
    ----------
    kind : str
        One of :data:`NOISE_KINDS`: ``none``, a rate kind (``sym``, ``asym``, ``cc``,
        ``idn``, ``paper-asym``, ``paper-cc``), or ``custom`` with a matrix ``T``.
    rate : float in [0, 1), default=0.0
        Share of labels changed (``custom``: NaN, the matrix decides).
    T : ndarray of shape (K, K), optional
        Row-stochastic matrix of ``custom`` (``T[k, j] = P(given j | true k)``).
    source : str, optional
        Where ``T`` came from (the path of ``matrix:PATH.npy``), for messages.

    Examples
    --------
    >>> NoiseSpec.parse("sym:0.5")
    NoiseSpec('sym:0.5')
    >>> NoiseSpec.parse("none").is_none, NoiseSpec.parse("idn:0.2").needs_features
    (True, True)
    """

    kind: str = "none"
    rate: float = 0.0
    T: np.ndarray | None = field(default=None, repr=False)
    source: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in NOISE_KINDS:
            raise SelfDistillError(
                f"unknown noise kind {self.kind!r}; choose one of {', '.join(RATE_KINDS)}, "
                "none, or matrix:PATH.npy")
        if self.kind == "custom":
            if self.T is None:
                raise SelfDistillError("custom noise needs a transition matrix T")
            object.__setattr__(self, "rate", float("nan"))
        else:
            object.__setattr__(self, "rate", 0.0 if self.kind == "none"
                               else check_rate(self.rate, name="noise rate"))

    @classmethod
    def parse(cls, spec: str | NoiseSpec) -> NoiseSpec:
        """``none``, ``KIND:RATE`` or ``matrix:PATH.npy`` (a .npy array) -> NoiseSpec."""
        if isinstance(spec, NoiseSpec):
            return spec
        spec = str(spec).strip()
        if spec in ("none", ""):
            return cls()
        kind, sep, value = spec.partition(":")
        if not sep:
            raise SelfDistillError(
                f"noise must be none, KIND:RATE (KIND in {', '.join(RATE_KINDS)}) or "
                f"matrix:PATH.npy, got {spec!r}")
        if kind == "matrix":
            return cls("custom", T=_read_matrix(value), source=value)
        if kind not in RATE_KINDS and kind != "none":
            raise SelfDistillError(
                f"unknown noise kind {kind!r} in {spec!r}; choose {', '.join(RATE_KINDS)}, "
                "none or matrix:PATH.npy")
        try:
            rate = float(value)
        except ValueError:
            raise SelfDistillError(f"noise rate must be a number in [0, 1), got {value!r}"
                                   ) from None
        return cls(kind, rate)

    @property
    def is_none(self) -> bool:
        """True when no labels are changed."""
        return self.kind == "none" or (self.kind != "custom" and self.rate == 0.0)

    @property
    def needs_features(self) -> bool:
        """True for kinds whose draw reads the features."""
        return self.kind in FEATURE_KINDS

    def __repr__(self) -> str:
        return f"NoiseSpec({str(self)!r})"

    def __str__(self) -> str:
        if self.kind == "custom":
            return f"matrix:{self.source or '?'}"
        return "none" if self.kind == "none" else f"{self.kind}:{self.rate:g}"

    def draw(self, y: np.ndarray, n_classes: int, *, features: np.ndarray | None = None,
             seed: int | None = 0) -> tuple[np.ndarray, np.ndarray]:
        """Noisy labels and the transition matrix (:func:`make_noisy_labels`)."""
        if self.is_none:
            return np.asarray(y).copy(), np.eye(n_classes)
        if self.kind == "custom":
            T = check_transition_matrix(self.T, n_classes=n_classes, where=self.source)
            return make_noisy_labels(y, kind="custom", n_classes=n_classes, seed=seed, T=T)
        return make_noisy_labels(y, kind=self.kind, rate=self.rate, n_classes=n_classes,
                                 features=features, seed=seed)


def _read_matrix(value: str) -> np.ndarray:
    from ._errors import one_line

    path = Path(value)
    if not path.is_file():
        raise SelfDistillError(f"noise matrix file not found: {value}")
    try:  # our own file object, closed on every path (np.load leaks it on bad zips)
        with open(path, "rb") as fh:
            T = np.load(fh, allow_pickle=False)
            if not isinstance(T, np.ndarray):
                T.close()
    except Exception as exc:  # noqa: BLE001 - corrupt headers raise many kinds
        raise SelfDistillError(f"cannot read noise matrix {value}: {one_line(exc)}") from None
    if not isinstance(T, np.ndarray):
        raise SelfDistillError(f"noise matrix {value} must be a .npy array, not an archive")
    return T
