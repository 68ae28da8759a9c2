"""Likely label errors: training rows whose given label the refined model rejects.

Notation: N training rows, K classes, ``y`` (N,) the given labels, ``P`` (N, K) model
probabilities on the training rows (columns are classes ``0..K-1``).

Which probabilities
-------------------
Use **out-of-fold** probabilities: row i scored by a model fitted without row i
(:meth:`selfdistill.model_selection.CVSelection.oof_proba`, already computed when lam or
the model is chosen by cross-validation). In-sample probabilities of a model that can
memorise its labels (small lam, d comparable to N) agree with the noise, which then
vouches for itself: on theory-derivation.md §3 block features at lam = 1e-4 the teacher flags none
of its 48 wrong labels in-sample and all 48 out-of-fold. Out-of-fold, a wrong label can
only be supported by its neighbours, which is the label-averaging argument of theory-derivation.md
§1-3 and cleanlab's out-of-sample rule. Where the refined model does not memorise
(BANKING77, lam = 1e-5, SD/PLL students) in-sample probabilities come from a model
fitted on all rows and were measured as good or slightly better (docs/label_issues.md);
out-of-fold is the choice that cannot fail silently.

Flagged set and score
---------------------
Score of row i with given label g: the probability that g is wrong,

    score_i = 1 - P_ig T_gg / sum_k P_ik T_kg       (:func:`wrong_label_posterior`)

Bayes' rule with ``P_i`` as the class probabilities and ``T`` (the noise matrix
estimated below, ``T[k, j] = P(given j | true k)``) as the way labels are given. Under
class-symmetric noise it is an increasing function of ``1 - P_ig`` (cleanlab's
self-confidence, reversed); where the noise concentrates on some confusions
(class-conditional pairs, an annotator's plausible mistakes) it ranks a row whose
predicted class often sends labels to g above an atypical clean row whose prediction is
a confusion the noise rarely makes. Measured on BANKING77 with the same out-of-fold
probabilities (5-fold teacher, lam = 1e-4; F1 of the flagged set, this score vs
``1 - P_ig``): sym 0.5 0.953 vs 0.955, asym 0.4 0.924 vs 0.878, idn 0.2 0.350 vs 0.126,
idn 0.4 0.372 vs 0.244, TF-IDF annotator 0.3 0.621 vs 0.523 (cleanlab's per-cell cut on
the same probabilities: 0.903, 0.883, 0.329, 0.353, 0.601).

How many rows to flag: the estimated number of label errors, from the calibrated
confident joint of Northcutt et al. (2021, "Confident learning"):

1. per-class thresholds ``t_j = mean of P_ij over rows given label j`` (the typical
   self-confidence of class j; it falls as the noise grows, so no noise rate is needed);
2. row i is confidently of class ``j*_i = argmax {P_ij : P_ij >= t_j}`` (none if no
   class reaches its threshold); ``C[g, j]`` counts rows given g, confidently j;
3. calibrate each row of C to the class size, ``C~[g, j] = C[g, j] n_g / sum_j C[g, j]``;
4. ``n_hat = sum of the off-diagonal of C~``.

The top ``n_hat`` rows by score among those whose top class differs from the given one
(so a suggestion exists) are flagged, most likely wrong first; ``suggested`` is the
model's top class. The count is pooled over classes rather than applied per class:
with a hundred rows per class the per-class counts are too noisy to cut on (measured:
F1 0.94 pooled vs 0.91 per class on BANKING77, sym noise 0.2); a class always keeps at
least one row.
Recall counts as much as precision: the pooled cut aims at the F1-best set. cleanlab's
per-cell cut (``flag_mask(..., rule="cells")``) is more precise and less complete;
``--lam auto`` uses it for the first rows to *leave out* before refitting, where a
dropped clean row costs more than a kept wrong one (measured: refit after pruning
asym 0.4, 88.6 with the per-cell set vs 86.7 with the pooled one).

Several models
--------------
``others`` (:func:`rank_label_issues`) unites the flags of several models: a row is
flagged when any of them flags it with its precise per-cell cut (``UNION_CUT``), scored
by the largest probability of a wrong label among those that flag it, and suggested the
class of that model. Each model's pooled set is sized to the whole estimated count, so
two pooled sets united flag up to twice as many rows as there are wrong labels (measured
on a synthetic 150-class set under idn 0.3, seeds 0 / 1, where the estimated rate is
right, 0.296 for 0.300: 6,406 / 6,484 rows flagged for 5,400 wrong, F1 0.581 / 0.629,
below cleanlab's 0.628 on seed 0); the per-cell sets are precise, and united they regain
the recall: F1 0.637 / 0.690 there. ``--lam auto`` adds the
screen's teacher nearest scikit-learn's default regularisation
(:func:`~selfdistill.model_selection.flag_lam`) to the recommended candidate when the
candidate is more flexible and flexibility fitted the given labels better in the screen
(docs/selection.md, "Which models flag"). Where the noise depends on the features (an
annotator's confusions), a flexible model learns the annotator and misses its mistakes,
and nothing in the given labels tells that from learning the classes; a stiffer model
learns fewer of them. Measured on BANKING77, seeds 0 / 1 (F1, recommended / stiff
teacher / union; cleanlab's find on the same rows): idn 0.2 0.256 / 0.350 / 0.366 and
0.233 / 0.336 / 0.342 (cleanlab 0.333, 0.319); idn 0.4 0.278 / 0.373 / 0.389 and 0.282 /
0.390 / 0.417 (0.356, 0.356); TF-IDF annotator 0.3 0.600 / 0.621 / 0.638 and 0.597 /
0.609 / 0.629 (0.608, 0.596). Those unions were of the pooled sets; the per-cell sets'
union, now used, gives (sixth session, same rows) idn 0.2 0.354 / 0.329, idn 0.4 0.376
/ 0.384, TF-IDF annotator 0.631 / 0.627: one to three points less where the estimated
count is far below the true one (idn 0.2: 684 estimated for 2,001 wrong), still above
cleanlab on every row. Under class-conditional noise, where both models flag too
many rows, the union would cost one or two points (sym 0.5 0.960 / 0.953 / 0.946, asym
0.4 0.940 / 0.924 / 0.918), and the condition keeps the candidate alone there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["LabelIssues", "NoiseEstimate", "confident_joint", "estimate_noise",
           "estimate_n_issues", "flag_mask", "FLAG_RULES", "label_scores", "rank_label_issues",
           "transition_of", "wrong_label_posterior",
           "find_label_issues", "label_issues_from_cv", "refit_without_issues"]


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
        :func:`label_scores` (probability the given label is wrong) in [0, 1], descending.
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


def confident_joint(P: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Calibrated confident joint ``C~`` (K, K): rows given label g, columns true class j.

    Steps 1-3 of the module docstring: per-class thresholds ``t_j``, confident class of
    each row, counts calibrated so that row g sums to ``n_g`` (rows of a class nobody
    is confidently in stay 0).

    Examples
    --------
    >>> P = np.array([[0.8, 0.2], [0.7, 0.3], [0.3, 0.7], [0.9, 0.1]])
    >>> confident_joint(P, np.array([0, 0, 0, 1]))
    array([[2., 1.],
           [1., 0.]])
    """
    N, K = P.shape
    n_k = np.bincount(y, minlength=K)
    sums = np.zeros(K)
    np.add.at(sums, y, P[np.arange(N), y])
    t = np.where(n_k > 0, sums / np.maximum(n_k, 1), np.inf)
    above = P >= t[None, :]
    conf = np.where(above, P, -1.0).argmax(axis=1)
    has = above.any(axis=1)
    C = np.zeros((K, K))
    np.add.at(C, (y[has], conf[has]), 1.0)
    return C / np.maximum(C.sum(axis=1, keepdims=True), 1.0) * n_k[:, None]


def _n_off_diagonal(C: np.ndarray) -> int:
    """Estimated number of wrong labels: the off-diagonal mass of a confident joint."""
    return int(round(float(C.sum() - np.trace(C))))


def estimate_n_issues(P: np.ndarray, y: np.ndarray) -> int:
    """Number of label errors: the off-diagonal mass of :func:`confident_joint`.

    Examples
    --------
    >>> P = np.array([[0.8, 0.2], [0.7, 0.3], [0.3, 0.7], [0.9, 0.1]])
    >>> estimate_n_issues(P, np.array([0, 0, 0, 1]))
    2
    """
    return _n_off_diagonal(confident_joint(P, y))


@dataclass(frozen=True, eq=False)
class NoiseEstimate:
    """The noise process as estimated from the given labels and out-of-fold probabilities.

    Attributes
    ----------
    rate : float
        Estimated share of wrong labels, ``n_issues / N``.
    T : ndarray of shape (K, K)
        Estimated transition matrix, ``T[k, j] = P(given j | true k)`` (rows sum to 1; a
        class no row is confidently in gets the identity row).
    joint : ndarray of shape (K, K)
        Calibrated confident joint ``C~[g, j]`` (given g, true j) divided by N.
    n_issues : int
        Estimated number of wrong labels (the size of the flagged set).
    method : str
        ``"confident-joint"``.

    Notes
    -----
    ``T[k, j] = C~[j, k] / sum_g C~[g, k]``: among rows whose true class is k (column k
    of the confident joint), the share given label j. It is the confident-learning
    estimate of Northcutt et al. (2021); a row's own label never vouches for it because
    the probabilities are out-of-fold.
    """

    rate: float
    T: np.ndarray
    joint: np.ndarray
    n_issues: int
    method: str = "confident-joint"

    @property
    def per_class(self) -> np.ndarray:
        """Estimated share of wrong labels among the rows *given* each class (K,)."""
        n = self.joint.sum(axis=1)
        return np.where(n > 0, 1.0 - np.diag(self.joint) / np.maximum(n, 1e-300), 0.0)

    def top_confusions(self, k: int = 10) -> list[tuple[int, int, float]]:
        """The ``k`` largest off-diagonal entries of the joint: (true, given, share of N)."""
        J = self.joint.copy()
        np.fill_diagonal(J, 0.0)
        flat = np.argsort(-J, axis=None, kind="stable")[:k]
        return [(int(j), int(g), float(J[g, j])) for g, j in
                zip(*np.unravel_index(flat, J.shape)) if J[g, j] > 0]

    def to_dict(self) -> dict:
        """JSON form: ``{"rate", "T", "method", "n_issues", "per_class"}``."""
        return {"rate": float(self.rate), "T": np.round(self.T, 6).tolist(),
                "method": self.method, "n_issues": int(self.n_issues),
                "per_class": np.round(self.per_class, 6).tolist()}


def estimate_noise(P: np.ndarray, y: np.ndarray) -> NoiseEstimate:
    """Estimate the noise rate and transition matrix from out-of-fold probabilities.

    Parameters
    ----------
    P : ndarray of shape (N, K)
        Out-of-fold probabilities (row i from a model that did not see row i).
    y : ndarray of shape (N,)
        Given labels.

    Returns
    -------
    NoiseEstimate

    Examples
    --------
    >>> P = np.array([[0.8, 0.2], [0.7, 0.3], [0.3, 0.7], [0.9, 0.1]])
    >>> est = estimate_noise(P, np.array([0, 0, 0, 1]))
    >>> est.rate, est.T.round(2)
    (0.5, array([[0.67, 0.33],
           [1.  , 0.  ]]))
    """
    y = np.asarray(y)
    N = P.shape[0]
    C = confident_joint(P, y)
    n_issues = _n_off_diagonal(C)
    return NoiseEstimate(rate=n_issues / max(N, 1), T=transition_of(C), joint=C / max(N, 1),
                         n_issues=n_issues)


def transition_of(C: np.ndarray) -> np.ndarray:
    """Transition estimate ``T[k, j] = P(given j | true k)`` from a confident joint ``C[g, j]``.

    Column k of ``C`` (rows confidently of true class k) normalised; a class no row is
    confidently in gets the identity row.

    Examples
    --------
    >>> transition_of(np.array([[2., 1.], [1., 0.]])).round(2)
    array([[0.67, 0.33],
           [1.  , 0.  ]])
    """
    K = C.shape[0]
    col = C.sum(axis=0)
    return np.where(col[:, None] > 0, C.T / np.maximum(col[:, None], 1e-300), np.eye(K))


def wrong_label_posterior(P: np.ndarray, y: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Probability that each given label is wrong, from ``P`` and the noise estimate ``T``.

    Bayes' rule with ``P[i]`` as the class probabilities of row i and ``T`` as the way
    labels are given: the given label g is right with probability
    ``P[i, g] T[g, g] / sum_k P[i, k] T[k, g]``; the score is one minus that. Under
    class-symmetric noise (all off-diagonal ``T`` alike) it is an increasing function of
    ``1 - P[i, g]``, so it ranks rows as the self-confidence does; where the noise
    concentrates on some confusions (class-conditional, or instance-dependent from a
    plausible annotator) it ranks a row whose predicted class often sends labels to g
    above an atypical row whose prediction is a confusion the noise rarely makes
    (docs/selection.md, "Flagged set").

    Parameters
    ----------
    P : ndarray of shape (N, K)
    y : ndarray of shape (N,)
    T : ndarray of shape (K, K)
        ``T[k, j] = P(given j | true k)`` (:attr:`NoiseEstimate.T`).

    Returns
    -------
    ndarray of shape (N,), values in [0, 1]

    Examples
    --------
    >>> P = np.array([[0.6, 0.4], [0.3, 0.7]])
    >>> T = np.array([[0.9, 0.1], [0.2, 0.8]])
    >>> wrong_label_posterior(P, np.array([0, 0]), T).round(3)
    array([0.129, 0.341])
    """
    y = np.asarray(y)
    rows = np.arange(y.shape[0])
    into_given = np.einsum("ik,ki->i", P, T[:, y])   # sum_k P[i, k] T[k, y_i]
    right = P[rows, y] * T[y, y]
    with np.errstate(invalid="ignore", divide="ignore"):
        s = 1.0 - right / into_given
    return np.clip(np.where(into_given > 0, s, 1.0), 0.0, 1.0)


#: How the flagged set is cut (:func:`flag_mask`)
FLAG_RULES = ("posterior", "pooled", "cells")
#: Flag rule of each model when several models' flags are united (``others``): each
#: model's pooled set is sized to the whole estimated count, so two of them united flag
#: up to twice that count; the precise per-cell sets united regain the recall without
#: it (module docstring, "Several models").
UNION_CUT = "cells"


def flag_mask(P: np.ndarray, y: np.ndarray, C: np.ndarray | None = None, *,
              rule: str = "posterior") -> np.ndarray:
    """The flagged rows (module docstring, "Flagged set").

    Parameters
    ----------
    P : ndarray of shape (N, K)
        Out-of-fold probabilities.
    y : ndarray of shape (N,)
    C : ndarray of shape (K, K), optional
        :func:`confident_joint` of ``P, y`` (computed when omitted).
    rule : {"posterior", "pooled", "cells"}, default="posterior"
        ``"posterior"``: the ``n_issues`` rows (off-diagonal mass of ``C``) with the
        highest :func:`wrong_label_posterior` (``T`` from ``C``) among those whose top
        class is not the given one. ``"pooled"``: the same count and candidates ranked by
        ``1 - P[given]``, which ignores which confusions the noise makes. Measured on
        BANKING77, 5-fold teacher at lam = 1e-4 (F1 posterior / pooled / cells): sym 0.5
        0.953 / 0.955 / 0.903, asym 0.4 0.924 / 0.878 / 0.883, idn 0.2 0.350 / 0.126 /
        0.329, idn 0.4 0.372 / 0.244 / 0.353, TF-IDF annotator 0.3 0.621 / 0.523 / 0.601.
        ``"cells"`` (cleanlab's ``prune_by_noise_rate``): for every off-diagonal cell
        ``(g, j)`` the ``round(C[g, j])`` rows given g with the largest margin
        ``P_j - P_g``, then the union. Measured on BANKING77 with out-of-fold
        probabilities of the chosen candidate (F1, pooled vs cells): sym 0.2 0.939 vs
        0.854 (under symmetric noise most cells round to 0), asym 0.2 0.922 vs 0.881,
        asym 0.4 0.940 vs 0.910, cc 0.5 0.870 vs 0.850; idn 0.2 0.194 vs 0.256.

    Returns
    -------
    ndarray of bool, shape (N,)

    Examples
    --------
    >>> P = np.array([[0.8, 0.2], [0.7, 0.3], [0.3, 0.7], [0.9, 0.1], [0.2, 0.8]])
    >>> flag_mask(P, np.array([0, 0, 0, 1, 1]))
    array([False, False,  True,  True, False])
    """
    y = np.asarray(y)
    N, K = P.shape
    if rule not in FLAG_RULES:
        raise ValueError(f"rule must be one of {FLAG_RULES}, got {rule!r}")
    if C is None:
        C = confident_joint(P, y)
    top = np.argmax(P, axis=1)
    mask = np.zeros(N, dtype=bool)
    if rule in ("posterior", "pooled"):
        score = (wrong_label_posterior(P, y, transition_of(C)) if rule == "posterior"
                 else 1.0 - P[np.arange(N), y])
        mask[_pooled_flags(P, y, C, score)] = True
        return mask
    counts = np.rint(C).astype(np.int64)
    np.fill_diagonal(counts, 0)
    for g in np.flatnonzero(counts.sum(axis=1)):
        rows = np.flatnonzero(y == g)
        Pg = P[rows]
        for j in np.flatnonzero(counts[g]):
            n = int(min(counts[g, j], rows.size))
            margin = Pg[:, j] - Pg[:, g]
            pick = np.argpartition(-margin, n - 1)[:n] if n < rows.size else np.arange(rows.size)
            mask[rows[pick]] = True
    mask &= top != y
    return mask


def label_scores(P: np.ndarray, y: np.ndarray, others: Sequence[np.ndarray] = ()
                 ) -> np.ndarray:
    """Score of every row: :func:`wrong_label_posterior` under the noise estimated from ``P``.

    The ``score`` of ``--issues`` and ``--relabel`` (larger: more likely wrong). With
    ``others`` (probabilities of further models, same shape), the largest score over all
    the models.

    Examples
    --------
    >>> P = np.array([[0.8, 0.2], [0.7, 0.3], [0.3, 0.7], [0.9, 0.1], [0.2, 0.8]])
    >>> label_scores(P, np.array([0, 0, 0, 1, 1])).round(3)
    array([0.158, 0.243, 0.636, 0.857, 0.143])
    """
    y = np.asarray(y)
    return np.max([wrong_label_posterior(Q, y, transition_of(confident_joint(Q, y)))
                   for Q in (P, *others)], axis=0)


def _pooled_flags(P: np.ndarray, y: np.ndarray, C: np.ndarray, score: np.ndarray
                  ) -> np.ndarray:
    """The pooled cut: the ``n_issues`` rows of highest ``score`` (N,) among those whose
    top class is not the given one, each class keeping a row; most likely wrong first
    (ties by row index)."""
    cand = np.flatnonzero(np.argmax(P, axis=1) != y)
    ranked = cand[np.lexsort((cand, -score[cand]))]
    return ranked[_within_class_cap(ranked, y, C)][:_n_off_diagonal(C)]


def _within_class_cap(ranked: np.ndarray, y: np.ndarray, C: np.ndarray) -> np.ndarray:
    """Which of the ``ranked`` rows may be flagged so that every class keeps some rows.

    Every class keeps at least one row (cleanlab's ``min_examples_per_class=1``): the
    most likely wrong rows of a class are flagged first, and a class is never flagged
    away, so a cleaned training set has every class. A larger floor (the class's
    estimated right labels less two standard deviations) was measured and not kept: it
    moved which rows the cleaning pass dropped and cost F1 on the text-annotator rows.
    """
    K = C.shape[0]
    cap = np.bincount(y, minlength=K) - 1
    cls = y[ranked]
    order = np.argsort(cls, kind="stable")
    start = np.searchsorted(cls[order], cls[order])   # first position of each class
    rank_in_class = np.empty(ranked.size, dtype=np.int64)
    rank_in_class[order] = np.arange(ranked.size) - start
    return rank_in_class < cap[cls]


def rank_label_issues(P: np.ndarray, y: np.ndarray, others: Sequence[np.ndarray] = ()
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Flag and rank likely label errors (module docstring: score, flagged set).

    Parameters
    ----------
    P : ndarray of shape (N, K)
        Out-of-fold probabilities on the training rows.
    y : ndarray of shape (N,)
        Given labels.
    others : sequence of ndarray of shape (N, K), optional
        Out-of-fold probabilities of further models ("Several models" in the module
        docstring): a row is flagged when any model flags it (each by its per-cell cut,
        ``UNION_CUT``), and scored by the largest :func:`wrong_label_posterior` among the
        models that flag it.

    Returns
    -------
    indices : ndarray of int
        The flagged rows (:func:`flag_mask`; with ``others``, each model's
        ``rule=UNION_CUT`` set, united), highest score first
        (ties by row index); every class keeps a row.
    scores : ndarray of float
        Their scores (the probability that the given label is wrong), descending.

    Examples
    --------
    >>> P = np.array([[0.8, 0.2], [0.7, 0.3], [0.3, 0.7], [0.9, 0.1], [0.2, 0.8]])
    >>> rank_label_issues(P, np.array([0, 0, 0, 1, 1]))
    (array([3, 2]), array([0.85714286, 0.63636364]))
    """
    idx, scores, _ = _ranked_flags(P, np.asarray(y), others)
    return idx, scores


def _ranked_flags(P: np.ndarray, y: np.ndarray, others: Sequence[np.ndarray]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`rank_label_issues` plus each row's suggested class: the top class of the
    model its score came from (never the given label)."""
    N = y.size
    score = np.full(N, -np.inf)
    suggested = np.zeros(N, dtype=np.int64)
    C = None
    for Q in (P, *others):
        C = confident_joint(Q, y)
        s_q = wrong_label_posterior(Q, y, transition_of(C))
        idx_q = (np.flatnonzero(flag_mask(Q, y, C, rule=UNION_CUT)) if others
                 else _pooled_flags(Q, y, C, s_q))
        better = idx_q[s_q[idx_q] > score[idx_q]]
        score[better] = s_q[better]
        suggested[better] = np.argmax(Q[better], axis=1)
    cand = np.flatnonzero(np.isfinite(score))
    ranked = cand[np.lexsort((cand, -score[cand]))]
    if others:   # the union may flag a class away that each model kept
        ranked = ranked[_within_class_cap(ranked, y, C)]
    return ranked, np.round(score[ranked], 12), suggested[ranked]


def find_label_issues(P: np.ndarray, y: np.ndarray, *, source: str = "out-of-fold",
                      others: Sequence[np.ndarray] = ()) -> LabelIssues:
    """:func:`rank_label_issues` packaged with given and suggested labels.

    Parameters
    ----------
    P : ndarray of shape (N, K)
        Probabilities on the training rows; pass out-of-fold ones (see module docstring).
    y : ndarray of shape (N,)
        Given labels.
    source : str, default="out-of-fold"
        Recorded in the result.
    others : sequence of ndarray of shape (N, K), optional
        Further models' out-of-fold probabilities (:func:`rank_label_issues`).

    Examples
    --------
    >>> P = np.array([[0.8, 0.2], [0.7, 0.3], [0.3, 0.7], [0.9, 0.1], [0.2, 0.8]])
    >>> find_label_issues(P, np.array([0, 0, 0, 1, 1])).to_records()
    [(3, 1, 0, 0.857142857143), (2, 0, 1, 0.636363636364)]
    """
    y = np.asarray(y)
    idx, scores, suggested = _ranked_flags(P, y, others)
    return LabelIssues(idx, y[idx], suggested, scores, source)


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


def refit_without_issues(X: np.ndarray, y: np.ndarray, issues: LabelIssues, *, lam: float,
                         n_classes: int, tol: float = 1e-6, max_iter: int = 2000):
    """Teacher refitted at ``lam`` on the rows not flagged: model ``"clean"``.

    CleanLearning's recipe (find issues out-of-fold, drop them, refit) with our flags.
    Dropping rather than relabelling: a wrongly flagged clean row only costs one
    training row, a wrong relabel adds a new error (measured on BANKING77: dropping
    beat relabelling at every noise rate tried).

    Parameters
    ----------
    X : ndarray of shape (N, d)
    y : ndarray of shape (N,)
        Given labels.
    issues : LabelIssues
        Typically :func:`label_issues_from_cv`.
    lam : float
    n_classes : int
    tol, max_iter : passed to :func:`~selfdistill.fit_softmax`.

    Returns
    -------
    NamedFit
        Named ``"clean"``.

    Examples
    --------
    >>> from selfdistill.datasets import load_digits_dataset
    >>> ds = load_digits_dataset()
    >>> P = np.eye(10)[ds.y_train] * 0.9 + 0.01
    >>> iss = find_label_issues(P, ds.y_train)
    >>> refit_without_issues(ds.X_train, ds.y_train, iss, lam=1e-3, n_classes=10).name
    'clean'
    """
    from .distill import NamedFit, self_distill

    keep = np.ones(len(y), dtype=bool)
    keep[issues.indices] = False
    (teacher,) = self_distill(X[keep], np.asarray(y)[keep], lam=lam, rounds=0, pll=False,
                              n_classes=n_classes, tol=tol, max_iter=max_iter)
    return NamedFit("clean", teacher.fit)
