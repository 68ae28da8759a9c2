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
the plurality condition of theory-derivation.md §3). Ranking candidates by out-of-fold accuracy on
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
The folds borrow the :class:`~selfdistill.solvers.SpectralBasis` of all of X
(:meth:`~selfdistill.solvers.SpectralBasis.of_rows`: no factorisation per fold) for
every lam and every round; only the weights of each fold model are kept
(``(L, M, folds, K, d)``), so out-of-fold probabilities of any candidate cost one
matrix product (:meth:`CVSelection.oof_proba`), independent of N in memory.
Racing (``race``): after each fold a lam whose best model already trails the best
candidate by more than 4 paired standard errors is not fitted on the remaining folds;
on BANKING77 that is typically the slow lam = 1e-6 at low noise (two thirds of its
folds saved). Warm-starting a lam path from the previous lam's solution was measured
and not adopted: 66 -> 61 iterations for lam = 1e-5 from 1e-4, within timing noise.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ._errors import SelfDistillError
from ._validation import LAM, check_lam, check_params, mean_squared_row_norm
from .distill import _self_distill, chain_of, model_names, pll_applies
from .losses import softmax
from .prior import adjust_prior
from .solvers import SpectralBasis, _n_threads, _single_blas

__all__ = ["CV_TOL", "CVSelection", "cross_validate_pipeline", "select_candidate",
           "AutoSelection", "resolve_auto", "flag_lam", "corrected_accuracy", "noise_inverse",
           "DEFAULT_LAM_GRID", "lam_unit", "default_lam_grid"]

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
        """spec.md ``lam_selection`` record.

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


def _stratified_folds(y: np.ndarray, n_splits: int, seed: int) -> list:
    """``(train, held-out)`` index pairs of a shuffled stratified K-fold on the given labels.

    The folds of scikit-learn's ``StratifiedKFold(n_splits, shuffle=True,
    random_state=seed)``, row for row (a test compares them), without importing
    scikit-learn (a second of every command's start-up): the classes, in order of first
    appearance, take turns over the folds (fold ``f`` gets as many rows of each class as
    the positions ``f, f + n_splits, ...`` of the labels sorted by that order hold), and
    which rows of a class go to which fold is shuffled by ``np.random.RandomState(seed)``,
    one class after the other.
    Noisy labels leave some classes with fewer rows than folds; stratification then
    spreads what there is, which is all we need (K is fixed by ``n_classes``).
    """
    y = np.asarray(y)
    _, first, inverse = np.unique(y, return_index=True, return_inverse=True)
    encoded = np.argsort(np.argsort(first))[inverse.ravel()]   # by first appearance
    n_classes = len(first)
    counts = np.bincount(encoded, minlength=n_classes)
    if np.all(counts < n_splits):
        raise ValueError(f"n_splits={n_splits} cannot be greater than the number of "
                         "members in each class.")
    ordered = np.sort(encoded)
    allocation = np.stack([np.bincount(ordered[f::n_splits], minlength=n_classes)
                           for f in range(n_splits)])
    rng = np.random.RandomState(seed)
    fold_of = np.empty(len(y), dtype=np.intp)
    for k in range(n_classes):
        folds_k = np.repeat(np.arange(n_splits), allocation[:, k])
        rng.shuffle(folds_k)
        fold_of[encoded == k] = folds_k
    rows = np.arange(len(y))
    return [(rows[fold_of != f], rows[fold_of == f]) for f in range(n_splits)]


def _paired_race(cur: dict, best: dict,
                 terms: Callable[[np.ndarray], np.ndarray]) -> tuple[str, str, float, float]:
    """Two sets of candidates on the same raced rows (each ``{name: probabilities}``):
    each set's candidate with the best mean per-row ``terms`` of its predictions, the
    mean difference of those per-row terms (``cur``'s minus ``best``'s) and that mean
    over its paired standard error (``z``; 0 when the rows do not differ).

    Examples
    --------
    >>> a = {"a": np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])}
    >>> b = {"b": np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4]])}
    >>> hit = lambda pred: (pred == np.array([0, 1, 0])).astype(float)
    >>> name_a, name_b, diff, z = _paired_race(a, b, hit)
    >>> name_a, name_b, round(diff, 3), round(z, 2)
    ('a', 'b', 0.333, 1.22)
    """
    def best_of(Ps: dict) -> tuple[str, np.ndarray]:
        return max(((n, terms(P.argmax(axis=1))) for n, P in Ps.items()),
                   key=lambda nt: nt[1].mean())

    (name_cur, per_cur), (name_best, per_best) = best_of(cur), best_of(best)
    diff = per_cur - per_best
    se = float(diff.std() / np.sqrt(len(diff)))
    mean = float(diff.mean())
    return name_cur, name_best, mean, (mean / se if se > 0 else 0.0)


def _checked(lams: Sequence[float], **params) -> list[float]:
    """The lam candidates and the pipeline's parameters, checked at a public entry."""
    out = [check_lam(v, name="lams[]") for v in lams]
    if not out:
        raise SelfDistillError("lams must list at least one candidate")
    check_params(**params)
    return out


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
    basis: SpectralBasis | None = None,
) -> CVSelection:
    """Stratified K-fold CV of the whole pipeline for each lam, scored on the given labels.

    Each fold fits teacher, SD rounds and PLL on the other folds for every lam (the
    folds share the spectral basis of X, :meth:`~selfdistill.solvers.SpectralBasis.of_rows`)
    and scores every model on the held-out rows. Only ``y`` is read: clean labels never
    enter.

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
    basis : SpectralBasis, optional
        Of all of X (computed here otherwise).

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
    t0 = time.perf_counter()
    lams = _checked(lams, rounds=rounds, pll_loss=pll_loss, q=q, tol=tol)
    names = model_names(rounds, pll)
    K, N, d = int(n_classes), X.shape[0], X.shape[1]
    n_splits = int(max(2, min(n_splits, N)))
    folds = _stratified_folds(y, n_splits, seed)
    correct = np.zeros((len(lams), len(names), N), dtype=bool)
    weights = np.zeros((len(lams), len(names), n_splits, K, d))
    total, done = len(lams) * n_splits, 0
    order = sorted(range(len(lams)), key=lambda a: -lams[a])  # large lam (fast) first
    active = set(range(len(lams)))
    folds_used = np.zeros(len(lams), dtype=int)
    keep = list(range(len(names))) if select_models is None else [
        names.index(m) for m in select_models]
    seen = np.zeros(N, dtype=bool)
    if basis is None or basis.XV is None:
        basis = SpectralBasis.from_features(X)
    for f, (tr, va) in enumerate(folds):
        Xtr = X[tr]
        fold_basis = basis.of_rows(tr)
        Xva = np.asarray(X[va], dtype=np.float64)
        for a in order:
            if a not in active:
                continue
            fits = _self_distill(Xtr, y[tr], lam=lams[a], rounds=rounds, pll=pll,
                                 pll_loss=pll_loss, q=q, n_classes=K, tol=tol,
                                 max_iter=2000, basis=fold_basis)
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


# -- lam="auto": screen, prune, refine (the one resolution of "auto") ----------------------
#: Default candidates for ``lam="auto"``, for rows of norm about 1 (sentence embeddings;
#: :func:`default_lam_grid` scales them to other features; the path stops early, so a
#: longer grid only costs when its small end is reached).
DEFAULT_LAM_GRID = (1e-6, 1e-5, 1e-4)


#: Bounds of :func:`lam_unit`: the default grid times the unit stays inside the lam range
LAM_UNIT_RANGE = (1e-6, 1e8)


def lam_unit(X: np.ndarray) -> float:
    """The mean squared row norm of the features ``X``, to two significant digits: the
    unit of ``lam="auto"``'s default grid and of its flagging lam (:func:`flag_lam`).

    Multiplying the features by ``s`` poses the same problem as dividing lam by ``s^2``
    (the penalty against the data term), so a grid meant for rows of norm 1 is too
    flexible for larger rows by their squared norm, and ``auto`` counted in this unit
    makes the same choices at any scale (docs/selection.md, step 1, "The lam unit").
    Two digits keep the lams short and unit-norm rows (every normalised sentence
    embedding) at exactly 1. scikit-learn's digits scaled to [0, 1] count in 15. Clamped
    to :data:`LAM_UNIT_RANGE`, where the default grid stays inside the lam range.

    Examples
    --------
    >>> lam_unit(np.full((3, 16), 0.25)), lam_unit(np.full((3, 16), 1.0))
    (1.0, 16.0)
    >>> lam_unit(np.full((3, 16), 1e5))      # clamped: the grid stays in the lam range
    100000000.0
    """
    sq = mean_squared_row_norm(X)
    if not (np.isfinite(sq) and sq > 0):
        return 1.0
    # kept where the default grid stays inside the lam range (rows of norm 1e-3 .. 1e4;
    # beyond, fit warns that the features look unscaled)
    return float(f"{min(max(sq, LAM_UNIT_RANGE[0]), LAM_UNIT_RANGE[1]):.1e}")


def default_lam_grid(unit: float = 1.0) -> tuple[float, ...]:
    """:data:`DEFAULT_LAM_GRID` in the lam ``unit`` of the features (:func:`lam_unit`).

    Examples
    --------
    >>> default_lam_grid(lam_unit(np.full((3, 16), 1.0)))
    (1.6e-05, 0.00016, 0.0016)
    """
    return tuple(float(f"{v * unit:.1e}") for v in DEFAULT_LAM_GRID)
#: Folds of the automatic choice. Four (fourteenth session; five, cleanlab's recipe,
#: before): each fold model sees 75 % of the rows, and on two CPUs the folds go two by
#: two with none left over. Against five on the 26 BANKING77 rows: test accuracy
#: -1.1..+2.0 points (mean +0.1), flags F1 -1.3..+2.1, in 0.62-0.95x the time; on the 16
#: synthetic rows accuracy -0.6..+0.5, F1 mean -0.6, 0.76-1.0x (three folds: 0.51-0.72x on
#: five rows, but -0.6 points on text 0.3 seed 0). docs/selection.md, section 4.
AUTO_SPLITS = 4
#: Gradient tolerance of the fits inside ``auto``; the final fits use the caller's tol.
#: Selection needs out-of-fold predictions, which settle long before the weights do.
#: Measured against 1e-3 (seed 0): on the twelve BANKING77 rows of docs/label_issues.md the
#: final test accuracy moved by -0.52 to +0.26 points (mean -0.05) and the flags' F1 by at
#: most 0.013, in 0.70-0.96x the time (idn 0.2: 17.5 -> 12.7 s); on digits (sym 0.3 / 0.6,
#: asym 0.3, cc 0.4, idn 0.3) by -0.19 to +0.37. 1e-2 was faster still (0.52-0.79x) and
#: as good on BANKING77, but lost 0.2-0.9 points on four of the five digits rows: the
#: looser fits moved which rows the cleaning pass flagged. (1e-3 against 1e-4 had given
#: the same choices in 0.75x the time.)
AUTO_TOL = 3e-3
#: Tolerance of ``--lam auto``'s final fits unless one is given (``run_pipeline``'s
#: ``tol=None``). Measured on BANKING77 text 0.5 (teacher and SD rounds 1-4 at lam 1e-5,
#: intercept, uniform class prior): test accuracy within 0.1 point at 1e-6, 1e-5, 1e-4
#: and 1e-3, in 6.3, 4.7, 3.3 and 2.1 s. 1e-3 against 1e-4 (fourteenth session): the same
#: choice on the 8 BANKING77 and 10 synthetic rows where label averaging fires (round or
#: PLL student) and on synthetic sym 0.5 and asym 0.4, test accuracy -0.2..+0.3 points,
#: flags unchanged (they are out of fold), in 0.81-0.95x the whole run's time; still a
#: third of the choice's own AUTO_TOL.
AUTO_FINAL_TOL = 1e-3
#: SD rounds fitted at every lam of the refine's path (the others at its best lam only).
#: 0 (the teacher walks the path; SD rounds continue it at the best lam) against 1:
#: the same choice on 23 of the 24 BANKING77 rows of docs/label_issues.md (asym 0.2 seed 0:
#: pruned teacher at 1e-5, 92.11 instead of pruned sd-1 at 1e-6, 92.08) and on 4 of 5 digits
#: rows (cc 0.4: pruned teacher at 1e-3, 93.70, instead of pruned sd-2 at 1e-4, 94.07: two
#: test rows), in 0.83-0.88x the time.
AUTO_PATH_ROUNDS = 0
#: Run the cleaning pass between screen and refine (see :func:`resolve_auto`).
AUTO_CLEAN_PASS = True
#: Steps (x10 or /10) the lam grid may widen itself past either end during ``auto``.
AUTO_WIDEN = 2
#: SD rounds tried on the pruned folds (at most; ``rounds`` caps it too). Measured on
#: BANKING77 (11 noise settings): after pruning, the best round was the teacher, sd-1 or
#: sd-2, and the PLL student (whose top-2 target helps on noisy labels) always lost to
#: the pruned teacher, so neither later rounds nor PLL are cross-validated there.
AUTO_MAX_ROUNDS = 2
#: How candidates are scored: ``"kept"`` (accuracy on held-out rows not flagged) or
#: ``"corrected"`` (clean accuracy implied by the held-out confusion and estimated T).
AUTO_SCORE = "corrected"
#: Largest total size of the fold bases kept between the fits of ``auto`` (the folds'
#: rows of the rotated features in float64; above it each fit takes its rows again).
AUTO_BASIS_CACHE_BYTES = 2 * 1024**3
#: Flag rule (:func:`~selfdistill.issues.flag_mask`) of the cleaning pass's first, precise
#: set, cut from the screening teacher's out-of-fold probabilities.
AUTO_FIRST_CUT = "cells"
#: The screen moves to the next lam only when both its accuracy on the given labels and
#: the clean accuracy implied by its own noise estimate improve (False: the former only).
AUTO_SCREEN_GUARD = True
#: Flag rule of the rows the refine folds and the final fits leave out.
AUTO_KEEP_CUT = "pooled"
#: Flag rule of the rows the final fits leave out when a stiffer teacher's flags join
#: (``lam_flag``), cut from that teacher's out-of-fold probabilities. Measured against
#: the reported union (BANKING77 idn 0.2 / 0.4 / text 0.3, seeds 0 / 1): -0.3..+1.0
#: points; the synthetic 150-class set under idn 0.3: +8.7 / +6.9 (docs/selection.md).
AUTO_STIFF_CUT = "cells"
#: SD rounds (up to ``AUTO_MAX_ROUNDS``) of the unpruned chain at the screened lam below
#: the screen's are candidates too (docs/selection.md, "Self-distillation without pruning").
AUTO_UNPRUNED_SD = True
#: Noise matrix of the final choice under the corrected score (:func:`choice_noise`):
#: ``"given-best"``, the estimate of the candidate with the best out-of-fold accuracy on
#: the given labels; ``"mean"``, the mean of every candidate's own estimate; or
#: ``"clean"``, the cleaning pass's estimate that also guides the refine's path
#: (docs/selection.md, "The noise matrix of the choice": "clean" loses 13-21 points on
#: the synthetic view rows; with ``T^-1`` the given-best matrix misled the choice on
#: synthetic idn and view rows and the mean on BANKING77 cc 0.5 with an intercept).
AUTO_CHOOSE_T = "given-best"
#: Score of the final choice: ``"posterior"``, the mean of
#: :func:`posterior_accuracy_terms` (bounded, no inverse of T), or ``"inverse"``,
#: :func:`corrected_accuracy` with ``T^-1`` (docs/selection.md, "The noise matrix of
#: the choice").
AUTO_CHOOSE_SCORE = "posterior"
#: When an unpruned SD round wins, prune the folds with its own flags and refine again
#: (docs/selection.md, "Self-distillation without pruning").
AUTO_SD_PRUNE = True
#: Label averaging's round (:func:`averaging_round`): the last SD round whose outputs keep
#: at least this share of the teacher's confidence (mean top probability on the training
#: rows). Each round averages the labels over correlated rows and flattens the outputs;
#: past about 0.6 of the teacher's confidence the rounds average the classes themselves
#: away. Ninth session, 0.5: sd-4 on BANKING77's 8 idn and text rows, whose confidence
#: falls 4-8% a round, sd-2 or sd-3 on the synthetic set's 10 idn and view rows, where it
#: falls 20-25% a round. Twelfth session, 0.6 (read off the 5 synthetic seed-0 rows after
#: the tenth session's final rows had moved the confidences: every sd-2 kept 0.63-0.67,
#: every sd-3 0.51-0.56): one round fewer on all 10 synthetic rows, +0.2..+2.2 points on
#: the 5 held-out seed-1 rows and on 6 rows of two other synthetic draws (+0.1..+1.7),
#: BANKING77 unchanged (sd-4 keeps 0.78-0.82); docs/selection.md, "How many rounds".
AUTO_AVG_CONFIDENCE_SHARE = 0.6
#: The unpruned SD rounds are first fitted on the folds of the pool's first turn (two
#: with two CPUs) and the other folds only when, on those folds' held-out rows, the best
#: round does not trail the best candidate so far by more than this many paired standard
#: errors (docs/selection.md, step 4). Measured (z of that race with every fold fitted
#: anyway): BANKING77's 24 rows -8.5..+0.6 (19 below -2; the unpruned SD rounds lost the
#: full choice on all 24), the synthetic view rows +1.2..+7.0 (they won it).
AUTO_SD_RACE_Z = 2.0
#: A lam path's next lam (the screen's and the refine's, step 1 and 3) is first fitted on
#: the last fold, and the other folds only when, on that fold's held-out rows, it does
#: not trail the path's best lam so far by more than this many paired standard errors
#: (the path stops at the first lam that scores lower, so a clear loss there ends it;
#: with as many CPUs as folds there is no race; docs/selection.md, "Races").
AUTO_PATH_RACE_Z = 2.0


@dataclass
class _FoldFits:
    """One lam's fits on some of the folds so far (``resolve_auto``'s ``at``): each
    model's out-of-fold probabilities (rows of the fitted folds filled), the shifted
    teacher's (the screen and the cleaning pass), and each fitted fold's teacher and last
    round weights."""

    P: dict
    moved: np.ndarray | None
    W: dict = field(default_factory=dict)
    W_last: dict = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class AutoSelection:
    """What ``lam="auto"`` decided, and the out-of-fold evidence behind it.

    Attributes
    ----------
    lam : float
        L2 strength of the final fits.
    best_model : str
        Name of the recommended model (``teacher``, ``sd-t``, ``pll``, or the same with
        the prefix ``pruned-`` when it is fitted without the flagged rows).
    pruned : bool
        Whether a pruned candidate won: the final fits then leave out the flagged rows
        (:meth:`final_rows`).
    train_rows : ndarray of bool, shape (N,) or None
        Rows the refine folds kept (the cleaning pass's set; None: no pruned candidate
        won, or label averaging). The final fits use :meth:`final_rows`.
    lam_screen : float
        lam of the screening teacher.
    screen_scores : dict
        Out-of-fold accuracy on the given labels of the screening teacher, per lam tried
        (a lam that lost its race, ``AUTO_PATH_RACE_Z``: estimated from the raced folds).
    scores_by_model : dict
        Score of every candidate (``rule`` below), by model name at ``lam``.
    path : list of dict
        Every (stage, lam, model, score) tried, in order.
    oof_proba : ndarray of shape (N, K)
        Out-of-fold probabilities of the recommended candidate (row i from the fold
        model that did not see row i): label issues and the noise estimate use them.
    screen_proba : ndarray of shape (N, K)
        Out-of-fold probabilities of the screening teacher.
    n_splits : int
    rule : str
    seconds : float
    widened : tuple of float
        lams tried beyond the given grid because its best was at an edge.
    teacher_W : ndarray of shape (K, d) or None
        Mean of the fold teachers at ``lam`` on the chosen rows: a warm start for the
        final teacher (its solution is close, so the final fit needs fewer steps).
    lam_flag : float or None
        lam of the screen's teacher whose out-of-fold probabilities also flag label
        issues (:func:`flag_lam`): set when it is larger than ``lam`` and the screen's
        next smaller lam predicted the given labels better; else None.
    flag_proba : ndarray of shape (N, K) or None
        Those probabilities (:meth:`label_issues`).
    label_averaging : bool
        Whether step 6 stopped the procedure after the cleaning pass and recommended the
        chain at ``lam`` on the rows the stiff teacher at ``lam_flag`` does not flag
        (:meth:`final_rows`; ``average_learnable``; ``best_model`` is its last SD round,
        ``pruned-sd-t``, and the caller picks the round, or the PLL student, from the
        fitted chain with :func:`averaging_round`); ``oof_proba`` is then
        the cleaning pass's (the label issues' evidence), and no candidate was scored.
    pll : bool
        Under label averaging, whether the final chain also fits the PLL student (the
        caller's ``pll``), which :func:`averaging_round` may recommend instead of the
        round.
    lam_unit : float
        The features' :func:`lam_unit` that :func:`flag_lam` counted in.
    """

    lam: float
    best_model: str
    pruned: bool
    train_rows: np.ndarray | None
    lam_screen: float
    screen_scores: dict
    scores_by_model: dict
    path: list
    oof_proba: np.ndarray = field(repr=False)
    screen_proba: np.ndarray = field(repr=False)
    n_splits: int = AUTO_SPLITS
    rule: str = AUTO_SCORE
    seconds: float = 0.0
    widened: tuple = ()
    teacher_W: np.ndarray | None = field(default=None, repr=False)
    lam_flag: float | None = None
    flag_proba: np.ndarray | None = field(default=None, repr=False)
    label_averaging: bool = False
    pll: bool = False
    lam_unit: float = 1.0

    def chain(self) -> tuple[int, bool]:
        """``(rounds, pll)`` of the final chain: teacher -> ... -> the chosen model (under
        label averaging, its last SD round and the PLL student when ``pll``)."""
        rounds, pll = chain_of(self.best_model)
        return rounds, pll or (self.label_averaging and self.pll)

    def final_rows(self, y: np.ndarray) -> np.ndarray | None:
        """Rows the final fits use: all (None), or, when a pruned candidate won, all but
        those flagged by its out-of-fold probabilities (``AUTO_KEEP_CUT``; measured
        cleaner than the screen's set), or, when a stiffer teacher's flags joined
        (``lam_flag``: noise a flexible model learns), all but that teacher's precise
        per-cell set (``AUTO_STIFF_CUT``): the union the label issues report is complete
        but loose, and a dropped clean row costs more than a kept wrong one
        (docs/selection.md, "Which models flag")."""
        if not self.pruned:
            return None
        y = np.asarray(y)
        from .issues import flag_mask

        if self.flag_proba is not None:
            return ~flag_mask(self.flag_proba, y, rule=AUTO_STIFF_CUT)
        return ~flag_mask(self.oof_proba, y, rule=AUTO_KEEP_CUT)

    def flag_probas(self) -> tuple[np.ndarray, ...]:
        """Out-of-fold probabilities of the models whose flags are united into the label
        issues: the recommended candidate, then (when ``lam_flag`` is set) the screen's
        teacher at ``lam_flag``.

        Why two (docs/selection.md, "Which models flag"): a more flexible model that
        predicts the given labels better out of fold has learnt either the classes or the
        annotator's confusions, and the labels cannot tell which; one that learnt the
        annotator misses those wrong labels, a stiffer one misses fewer."""
        return (self.oof_proba,) + (() if self.flag_proba is None else (self.flag_proba,))

    def noise_proba(self) -> np.ndarray:
        """Out-of-fold probabilities the noise estimate reads: the stiffest of
        :meth:`flag_probas` (the screen's teacher at ``lam_flag`` when it joins, else
        the recommended candidate's).

        A model flexible enough to learn the annotator's confusions predicts the wrong
        labels it learnt, and its confident joint misses them; the stiffer teacher
        misses fewer (docs/selection.md, section 3, "Which model estimates the noise":
        on 18 rows of learnable noise the rate's error fell from 0.120 to 0.088 on
        average, BANKING77 idn 0.4 0.12-0.13 -> 0.18-0.19 against 0.40)."""
        return self.flag_probas()[-1]

    def label_issues(self, y: np.ndarray):
        """:class:`~selfdistill.issues.LabelIssues` flagged by :meth:`flag_probas`."""
        from .issues import find_label_issues

        P, *others = self.flag_probas()
        return find_label_issues(P, np.asarray(y), source="out-of-fold", others=others)

    def to_dict(self) -> dict:
        """spec.md ``lam_selection`` record (``method``, ``candidates``, ``scores`` and more)."""
        lams = sorted({p["lam"] for p in self.path})
        best = {lam: max(p["score"] for p in self.path if p["lam"] == lam) for lam in lams}
        return {
            "method": (f"{self.n_splits}-fold screen, clean, label averaging"
                       if self.label_averaging else
                       f"{self.n_splits}-fold screen, prune, refine on given labels "
                       f"({self.rule} score)"),
            "candidates": [float(v) for v in lams],
            "scores": [float(best[v]) for v in lams],
            "best_lam": float(self.lam),
            "best_model": self.best_model,
            "pruned": bool(self.pruned),
            "n_pruned": (0 if self.train_rows is None
                         else int(self.train_rows.size - self.train_rows.sum())),
            "lam_screen": float(self.lam_screen),
            "screen_scores": {f"{k:g}": float(v) for k, v in self.screen_scores.items()},
            "scores_by_model": {k: float(v) for k, v in self.scores_by_model.items()},
            "path": self.path,
            "rule": _RULE_TEXT[self.rule],
            "n_splits": int(self.n_splits),
            "widened": [float(v) for v in self.widened],
            "lam_flag": None if self.lam_flag is None else float(self.lam_flag),
            "lam_unit": float(self.lam_unit),
            "label_averaging": bool(self.label_averaging),
            "at_grid_edge": bool(len(lams) > 1 and self.lam in (min(lams), max(lams))
                                 and self.lam in self.widened),
            "seconds": float(self.seconds),
        }


_RULE_TEXT = {
    "kept": "highest out-of-fold accuracy on the held-out rows that were not flagged",
    "corrected": ("highest clean accuracy implied by the out-of-fold confusion with the "
                  "given labels and the noise matrix estimated from the candidate that "
                  "predicts the given labels best out of fold: for each predicted class, "
                  "the true classes of its rows by non-negative least squares from their "
                  "given labels; a ranking score, in [0, 1] and optimistic)"),
}


def corrected_accuracy(pred: np.ndarray, y: np.ndarray, T_inv: np.ndarray) -> float:
    """Clean accuracy implied by held-out predictions, given labels and ``T^-1``.

    With ``J[p, g]`` the share of held-out rows predicted p and given g, and given labels
    drawn from the true ones through ``T`` independently of the prediction (true for
    out-of-fold predictions under class-conditional noise), ``J = A^T T`` where
    ``A[k, p]`` is the joint share of true k and predicted p; hence the clean accuracy
    ``trace(A) = trace(J T^-1)``. Noisy accuracy, ``trace(J)``, instead rewards a model
    for predicting the classes the noise sends labels to.

    Examples
    --------
    >>> T = np.array([[0.6, 0.4], [0.0, 1.0]])        # class 0 often given as 1
    >>> y_true = np.repeat([0, 1], 500)
    >>> y = np.where((y_true == 0) & (np.arange(1000) % 5 < 2), 1, y_true)
    >>> round(corrected_accuracy(y_true, y, np.linalg.inv(T)), 3)   # the true labels
    1.0
    """
    # trace(J T^-1) = sum_{p, g} J[p, g] T^-1[g, p] = (1/n) sum_i T^-1[y_i, pred_i]: O(n),
    # where forming J and the product costs O(K^3) (0.4 s a candidate at K = 2000)
    return float(np.sum(T_inv[np.asarray(y), np.asarray(pred)]) / max(len(y), 1))


def posterior_accuracy_terms(pred: np.ndarray, y: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Per held-out row, the probability that its prediction is the true class, from the
    predictions, the given labels and an estimated noise matrix ``T``, without
    inverting ``T``; their mean estimates the clean accuracy and lies in [0, 1].

    For each predicted class p, the true classes of the rows predicted p,
    ``b[k] = P(true k | predicted p)``, are estimated from their given labels,
    ``c[g] = P(given g | predicted p) = sum_k b[k] T[k, g]``, by non-negative least
    squares with ``sum_k b[k] = 1`` (a penalty row of weight 10; 0 and 1000 choose the
    same, docs/selection.md), over the classes that can give those labels. A row
    predicted p and given g then has the posterior ``b[p] T[p, g] / sum_k b[k] T[k, g]``;
    where the fit is exact, the terms of the rows predicted p sum to the joint share
    ``A[p, p]`` of :func:`corrected_accuracy`. Unlike ``trace(J T^-1)``, the estimate
    cannot leave [0, 1] when ``T`` is estimated and badly conditioned (a mean of
    estimated matrices scored one BANKING77 candidate 8.55, docs/selection.md).

    Examples
    --------
    >>> T = np.array([[0.6, 0.4], [0.0, 1.0]])        # class 0 often given as 1
    >>> y_true = np.repeat([0, 1], 500)
    >>> y = np.where((y_true == 0) & (np.arange(1000) % 5 < 2), 1, y_true)
    >>> round(float(posterior_accuracy_terms(y_true, y, T).mean()), 3)  # the true labels
    1.0
    >>> round(float(posterior_accuracy_terms(y, y, T).mean()), 3)       # the given ones
    1.0

    (A model that copies the given labels, right on 80 % of the rows: 1.0 here, 1.2 with
    ``T^-1``; no score from the labels alone can tell it from the true labels.)
    """
    from scipy.optimize import nnls

    pred, y = np.asarray(pred), np.asarray(y)
    T = np.asarray(T, dtype=np.float64)
    K = T.shape[0]
    counts = np.zeros((K, K))
    np.add.at(counts, (pred, y), 1.0)
    post = np.zeros((K, K))
    for p in np.flatnonzero(counts.sum(axis=1)):
        c = counts[p] / counts[p].sum()
        ks = np.flatnonzero(T[:, c > 0].sum(axis=1) > 0)   # classes giving these labels
        if p not in ks:
            continue
        cols = np.flatnonzero(T[ks].sum(axis=0) > 0)
        Tt = T[np.ix_(ks, cols)].T
        b = nnls(np.vstack([Tt, np.full(len(ks), _SUM_WEIGHT)]),
                 np.concatenate([c[cols], [_SUM_WEIGHT]]))[0]
        given = Tt @ b                                       # P(given g | predicted p)
        bp = b[np.searchsorted(ks, p)]
        with np.errstate(divide="ignore", invalid="ignore"):
            post[p, cols] = np.where(given > 0, bp * T[p, cols] / given, 0.0)
    return np.clip(post[pred, y], 0.0, 1.0)


#: weight of the sum-to-one row of :func:`posterior_accuracy_terms`' least squares
_SUM_WEIGHT = 10.0


def noise_inverse(T: np.ndarray) -> np.ndarray:
    """``T^-1`` of an estimated noise matrix, or its pseudo-inverse when it is singular.

    The estimated ``T`` is row-stochastic and usually far from singular: an LU
    factorisation, with LAPACK's estimate of the condition number, inverts it in
    ``2 K^3`` flops. With many classes and few rows per class it is often singular
    (two classes whose confident rows all carry the same given label have equal rows;
    2,000 classes x 3 rows: rank 1945). Then, when the reciprocal condition number is
    below 1e-12, the minimum-norm least-squares solution of ``T X = I`` is returned,
    which is the Moore-Penrose pseudo-inverse of ``T`` with singular values below
    1e-12 of the largest treated as zero; it comes from a complete orthogonal
    factorisation (QR with column pivoting, LAPACK ``gelsy``). Both run on one BLAS
    thread, as the solver does (OpenBLAS's own threads stall on a shared machine). They
    replace ``np.linalg.pinv``: on the singular 2000 x 2000 ``T`` above, pinv took 10-30 s
    with two BLAS threads on a loaded 2-core machine and 3.7 s with one; ``gelsy`` 1.9 s
    with one (an invertible one: LU 0.3-0.5 s); the pseudo-inverses agree to 3e-13.

    Examples
    --------
    >>> noise_inverse(np.array([[0.75, 0.25], [0.0, 1.0]]))
    array([[ 1.33333333, -0.33333333],
           [ 0.        ,  1.        ]])
    >>> noise_inverse(np.array([[0.5, 0.5], [0.5, 0.5]])).round(12)
    array([[0.5, 0.5],
           [0.5, 0.5]])
    """
    from scipy.linalg import LinAlgWarning, lstsq, lu_factor, lu_solve
    from scipy.linalg.lapack import dgecon

    from .solvers import _single_blas

    T = np.asarray(T, dtype=np.float64)
    eye = np.eye(T.shape[0])
    with _single_blas(), warnings.catch_warnings():
        warnings.simplefilter("ignore", LinAlgWarning)  # exactly singular: rcond 0 below
        lu, piv = lu_factor(T, check_finite=False)
        rcond, info = dgecon(lu, float(np.abs(T).sum(axis=0).max()), norm="1")
        if info == 0 and rcond >= _RCOND:
            return lu_solve((lu, piv), eye, check_finite=False)
        return lstsq(T, eye, cond=_RCOND, lapack_driver="gelsy", check_finite=False)[0]


#: singular values of the noise matrix below this share of the largest count as zero
_RCOND = 1e-12


def _self_corrected_of(y: np.ndarray) -> Callable[[np.ndarray], float]:
    """Scorer: the clean accuracy implied by ``P``'s held-out confusion and the noise
    matrix estimated from the same ``P`` (:func:`corrected_accuracy`)."""
    from .issues import estimate_noise

    def scorer(P: np.ndarray) -> float:
        T_inv = noise_inverse(estimate_noise(P, y).T)
        return corrected_accuracy(P.argmax(axis=1), y, T_inv)

    return scorer


def _given_accuracy(y: np.ndarray) -> Callable[[np.ndarray], float]:
    """Scorer: accuracy of ``P``'s top class on the given labels."""
    return lambda P: float(np.mean(P.argmax(axis=1) == y))


def choice_noise(Ps: Sequence[np.ndarray], y: np.ndarray,
                 how: str = "given-best") -> np.ndarray:
    """Noise matrix ``T`` the choice scores the candidates with, from their out-of-fold
    probabilities ``Ps`` (:func:`~selfdistill.issues.estimate_noise` of each).

    ``how="given-best"`` takes the estimate of the candidate that predicts the given
    labels best, usually the best model; ``how="mean"`` averages every candidate's
    estimate. Each confident joint is blind to the flips its own model believes (a model
    that has learnt the annotator's confusions sees too few), which the mean offsets;
    but the mean's inverse is worse conditioned (docs/selection.md, "The noise matrix of
    the choice").

    Examples
    --------
    >>> y = np.array([0, 0, 0, 1])
    >>> P1 = np.array([[0.8, 0.2], [0.7, 0.3], [0.3, 0.7], [0.9, 0.1]])
    >>> P2 = np.array([[0.8, 0.2], [0.7, 0.3], [0.6, 0.4], [0.2, 0.8]])
    >>> choice_noise([P1, P2], y)
    array([[1., 0.],
           [0., 1.]])
    >>> choice_noise([P1, P2], y, how="mean").round(3)
    array([[0.833, 0.167],
           [0.5  , 0.5  ]])
    """
    from .issues import estimate_noise

    if how not in ("mean", "given-best"):
        raise ValueError(f"how must be 'mean' or 'given-best', got {how!r}")
    if how == "given-best":
        return estimate_noise(max(Ps, key=_given_accuracy(y)), y).T
    T = np.zeros((Ps[0].shape[1],) * 2)
    for P in Ps:    # summed one at a time: K x K each (K = 2000: 32 MB)
        T += estimate_noise(P, y).T
    return T / len(Ps)


def _choice_terms(T: np.ndarray, y: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Per-row terms of the choice's score under the noise matrix ``T``
    (``AUTO_CHOOSE_SCORE``), as a function of the predictions: the posterior that each
    prediction is right (:func:`posterior_accuracy_terms`), or :func:`corrected_accuracy`'s
    terms ``T^-1[given, predicted]``; the score is their mean."""
    if AUTO_CHOOSE_SCORE == "posterior":
        return lambda pred: posterior_accuracy_terms(pred, y, T)
    T_inv = noise_inverse(T)
    return lambda pred: T_inv[y, pred]


def resolve_auto(
    X: np.ndarray,
    y: np.ndarray,
    *,
    lams: Sequence[float] | None = None,
    rounds: int = 4,
    pll: bool = True,
    n_classes: int,
    pll_loss: str = "gce",
    q: float = 0.7,
    n_splits: int = AUTO_SPLITS,
    seed: int = 0,
    tol: float = AUTO_TOL,
    score: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    basis: SpectralBasis | None = None,
    average_learnable: bool = False,
    class_prior: str = "given",
    unit: float = 1.0,
) -> AutoSelection:
    """Choose lam, whether to prune, and the model, from the given labels only.

    Stages on one set of stratified folds (every row held out once; docs/selection.md):

    1. **Screen.** The teacher along the lam path, largest lam first, each fold
       warm-started from the previous lam; the path stops at the first lam whose
       out-of-fold accuracy on the given labels drops or whose self-corrected score
       (:func:`corrected_accuracy` with the noise estimated from its own out-of-fold
       probabilities) drops, and widens past the grid's edges (``AUTO_WIDEN``) when its
       best is there. With fewer CPUs than folds, every lam after the first races on
       the last fold (``AUTO_PATH_RACE_Z``): a clear loss there ends the walk without
       the other folds.
    2. **Clean.** The screen's out-of-fold probabilities flag a precise set
       (:func:`~selfdistill.issues.flag_mask` ``rule="cells"``); the screening teacher
       refitted on the folds minus that set gives out-of-fold probabilities whose pooled
       flags (precise and complete) define the rows to leave out, and the noise estimate
       (:func:`~selfdistill.issues.estimate_noise`) the score uses.
    3. **Refine.** On each fold's training rows minus those rows, the teacher along the
       lam path from the screening lam down to the grid's end (stopping at the first
       drop; ``AUTO_PATH_ROUNDS`` SD rounds walk with it), then SD rounds 1 and 2 at the
       best lam, each fold's chain continued (the walk races as the screen's, scored
       by the terms ``T^-1[given, predicted]``; the refine after an SD round won, step
       5, does not race). The
       unpruned screening teacher stays a
       candidate (clean data: pruning only removes hard rows).
    4. **SD without pruning.** SD rounds 1 and 2 of the unpruned chain at the screened
       lam just below the screen's, each fold continuing from its screening teacher
       there (``AUTO_UNPRUNED_SD``). They race first: fitted on the folds of the pool's
       first turn, they go on to the other folds only when, on those folds' held-out
       rows, they do not trail the best candidate so far by more than
       ``AUTO_SD_RACE_Z`` paired standard errors. Skipped with ``average_learnable``
       (step 6 takes the noise these rounds are for).
    5. **Choose** the candidate with the best ``score`` on the held-out rows:
       ``"corrected"`` (default), the clean accuracy implied by the held-out confusion
       and the noise matrix estimated from the candidate that predicts the given labels
       best out of fold (:func:`corrected_accuracy`, ``AUTO_CHOOSE_T``); or ``"kept"``,
       plain accuracy on the held-out rows that were not flagged. When an unpruned SD
       round wins, its own flags prune the folds and the refine runs again from its lam
       (``AUTO_SD_PRUNE``), and the choice is made again.
    6. **Learnable noise.** When the screen's lam just below ``lam_flag`` (the lam
       nearest scikit-learn's default regularisation, :func:`flag_lam`) predicted the
       given labels better than ``lam_flag``: with ``average_learnable`` the procedure
       stops after step 2 and recommends the chain at the screened lam that predicted
       the given labels best, fitted without that stiffer teacher's precise per-cell set
       (:meth:`AutoSelection.final_rows`), up to the round :func:`averaging_round` picks
       from the fitted chain, or that chain's PLL student (its label issues: the
       cleaning pass's and that stiffer teacher's; docs/selection.md, "Learnable noise:
       label averaging"); without it, when the chosen model is more flexible than
       ``lam_flag``, the stiffer teacher's flags join the chosen candidate's.

    Parameters
    ----------
    X : ndarray of shape (N, d)
    y : ndarray of shape (N,)
        Given labels in ``0..K-1``.
    lams : sequence of float, optional
        The lam grid (walked from the largest); default :func:`default_lam_grid` of
        ``unit``.
    rounds, pll, pll_loss, q : see :func:`~selfdistill.distill.self_distill`
    n_classes : int
    n_splits : int, default=AUTO_SPLITS
        Lowered to the smallest class count when needed (at least 2).
    seed : int, default=0
    tol : float, default=AUTO_TOL
    score : {"corrected", "kept"}, optional
        Default :data:`AUTO_SCORE`.
    progress : callable ``(done, total)``, optional
    basis : SpectralBasis, optional
        Of all of X (computed here otherwise, unless the folds' rows exceed
        ``AUTO_BASIS_CACHE_BYTES``): every fold's fits borrow it
        (:meth:`~selfdistill.solvers.SpectralBasis.of_rows`).
    average_learnable : bool, default=False
        Step 6's label averaging. Measured with final models whose class prior is
        shifted to uniform (:mod:`selfdistill.prior`): the SD rounds keep the given
        labels' class skew, which the shift removes; ``run_pipeline`` and the estimator
        pass ``class_prior == "uniform"``.
    class_prior : {"given", "uniform"}, default="given"
        The prior the final models will be shifted to (:mod:`selfdistill.prior`). The
        candidates of steps 3-5 predict as the final model will: each fold's fits are
        shifted by their :func:`~selfdistill.prior.prior_shift` on that fold's training
        rows before they predict its held-out rows, for the choice, the final rows and
        the flags (``oof_proba``). The screen's and the cleaning pass's teachers flag
        shifted too (``flag_proba``, and ``oof_proba`` under label averaging), while their
        scores, and so the learnable-noise rule, read the fits as they are: the given
        labels, whose class counts are part of the noise.
    unit : float, default=1.0
        The features' :func:`lam_unit` (of ``X`` without an intercept column): the
        default grid and :func:`flag_lam` count in it.

    Returns
    -------
    AutoSelection

    Examples
    --------
    >>> from selfdistill.datasets import load_digits_dataset
    >>> ds = load_digits_dataset()
    >>> sel = resolve_auto(ds.X_train[:400], ds.y_train[:400], lams=[1e-3, 1e-2],
    ...                    rounds=1, n_classes=10)
    >>> sel.lam in (1e-3, 1e-2), sel.oof_proba.shape
    (True, (400, 10))
    """
    from .issues import estimate_noise, flag_mask

    score = AUTO_SCORE if score is None else score
    if score not in _RULE_TEXT:
        raise ValueError(f"score must be one of {sorted(_RULE_TEXT)}, got {score!r}")
    t0 = time.perf_counter()
    lams = default_lam_grid(unit) if lams is None else lams
    grid = sorted(set(_checked(lams, rounds=rounds, pll_loss=pll_loss, q=q, tol=tol)),
                  reverse=True)
    y = np.asarray(y)
    K, N = int(n_classes), X.shape[0]
    counts = np.bincount(y, minlength=K)
    n_splits = int(max(2, min(n_splits, N, counts[counts > 0].min() if counts.any() else 2)))
    folds = _stratified_folds(y, n_splits, seed)
    names = model_names(rounds, pll)
    total = n_splits * (len(grid) * 3 + 2 * min(rounds, AUTO_MAX_ROUNDS))
    done = 0

    def tick(n: int = 1) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(min(done, total), total)

    # every fold's fits borrow the basis of all of X (its rows of XV: no factorisation
    # per row set, 10 % of auto's time on BANKING77); a fold's rows serve every lam and
    # round fitted on the same rows (the screen's lam path; the refine's), kept for one
    # row set per fold at a time, and only while X's and the folds' rotated features
    # take at most AUTO_BASIS_CACHE_BYTES together (above it each fit computes its own)
    bases: dict[int, tuple[bytes, SpectralBasis]] = {}
    cache = n_splits * N * X.shape[1] * 8 <= AUTO_BASIS_CACHE_BYTES
    if cache and (basis is None or basis.XV is None):
        basis = SpectralBasis.from_features(X)

    def basis_of(f: int, rows: np.ndarray) -> SpectralBasis | None:
        if not cache:  # not kept: each fit takes its rows (or factorises them)
            return None if basis is None or basis.XV is None else basis.of_rows(rows)
        key = hashlib.blake2b(rows.tobytes(), digest_size=16).digest()
        if f not in bases or bases[f][0] != key:
            bases[f] = (key, basis.of_rows(rows))
        return bases[f][1]

    # the folds are fitted side by side, each on its share of the CPUs: the same numbers
    # as one after the other (a fit's numbers do not depend on its thread count), ~12 %
    # less wall time on 2 cores (fewer hand-offs per step than splitting each fit); the
    # folds left over when the workers do not divide them share all the CPUs
    cpus = _n_threads(None)
    workers = min(n_splits, cpus)

    def each_fold(fit_fold: Callable[[int, int], list],
                  ids: Sequence[int] = range(n_splits)) -> Iterator[list]:
        """``fit_fold(f, n_threads)`` for every fold ``f`` in ``ids`` (ascending), in that
        order as they finish (folds side by side)."""
        ids = list(ids)
        if workers == 1:
            yield from (fit_fold(f, cpus) for f in ids)
            return
        cut = len(ids) - len(ids) % workers   # whole turns, then the folds left over
        with _single_blas():
            for group in (ids[:cut], ids[cut:]):
                if len(group) == 0:
                    continue
                # the folds left over share every CPU (one alone, a race, takes them all)
                n_threads = max(1, cpus // min(workers, len(group)))
                with ThreadPoolExecutor(min(workers, len(group))) as pool:
                    yield from pool.map(lambda f, n=n_threads: fit_fold(f, n), group)

    shift = class_prior != "given"

    def at(lam: float, rows_of: Callable, W_prev: list | None, scorer: Callable | None,
           stage: str, prefix: str, n_rounds: int, from_round: int | None = None,
           ids: Sequence[int] = range(n_splits), part: _FoldFits | None = None):
        """Teacher (and ``n_rounds`` SD rounds) at one lam on every fold, each fold
        warm-started from ``W_prev[f]``; with ``from_round = s`` each fold's chain is
        continued from its round ``s`` (weights ``W_prev[f]``): rounds ``s+1 ..
        n_rounds`` only. With ``scorer=None`` only the folds ``ids`` are fitted and their
        fits returned (:class:`_FoldFits`); a later call with the other folds and those
        fits (``part``) completes them. The candidate
        stages (all but the screen and the cleaning pass) predict with each fold's fits
        shifted to ``class_prior`` (on the fold's training rows), as the final models
        will be; the screen and the cleaning pass predict with their own (their scores
        read the given labels) and keep the shifted teacher's probabilities in
        ``moved_P`` (for the flags and the screening teacher as a candidate)."""
        shifted = shift and stage not in ("screen", "clean")
        moved_too = shift and not shifted
        fitted = names[:n_rounds + 1] if from_round is None else names[from_round + 1:
                                                                        n_rounds + 1]
        if part is None:
            part = _FoldFits({n: np.zeros((N, K)) for n in fitted},
                             np.zeros((N, K)) if moved_too else None)

        def fit_fold(f: int, n_threads: int) -> tuple[list, list, np.ndarray | None]:
            """Fold ``f``'s fits, their probabilities on its held-out rows, and (with
            ``moved_too``) the shifted teacher's there."""
            tr, te = rows_of(folds[f][0]), folds[f][1]
            warm = ({"teacher_W": None if W_prev is None else W_prev[f]}
                    if from_round is None else {"start": (from_round, W_prev[f])})
            fits = _self_distill(X[tr], y[tr], lam=lam, rounds=n_rounds, pll=False,
                                 pll_loss=pll_loss, q=q, n_classes=K, tol=tol,
                                 max_iter=2000, basis=basis_of(f, tr),
                                 n_threads=n_threads, **warm)
            if shifted:
                fits = adjust_prior(fits, X[tr], class_prior)
            moved = (adjust_prior(fits[:1], X[tr], class_prior)[0].predict_proba(X[te])
                     if moved_too else None)
            return fits, [nf.predict_proba(X[te]) for nf in fits], moved

        for f, (fits, probas, moved) in zip(ids, each_fold(fit_fold, ids)):
            part.W[f], part.W_last[f] = fits[0].W, fits[-1].W
            for nf, P in zip(fits, probas):
                part.P[nf.name][folds[f][1]] = P
            if moved_too:
                part.moved[folds[f][1]] = moved
            tick(len(fitted))
        if scorer is None:
            return part
        if moved_too:
            moved_P[(stage, lam)] = part.moved
        Ps = part.P
        Ws = [part.W[f] for f in range(n_splits)]
        W_last = [part.W_last[f] for f in range(n_splits)]
        scored = {n: scorer(P) for n, P in Ps.items()}
        if stage == "screen":
            screen_P[lam], screen_W[lam] = Ps["teacher"], Ws
        for n, sc in scored.items():
            path.append({"stage": stage, "lam": lam, "model": prefix + n, "score": sc})
        return lam, max(scored.values()), Ps, scored, Ws, W_last

    def lam_path(rows_of: Callable, lams_: list[float], W_start: list | None,
                 scorer: Callable[[np.ndarray], float], stage: str, prefix: str,
                 n_rounds: int, widen_down: bool = True,
                 guard: Callable[[np.ndarray], float] | None = None,
                 terms: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None):
        """Walk ``lams_`` (descending), each fold warm-started from the previous lam,
        until the best score of a lam first drops (or, with ``guard``, the guard's value
        of the teacher's out-of-fold probabilities drops: a step must improve both). The
        grid widens itself: when the first lam is the best, larger ones (x10) are tried,
        and when the last one still improves, smaller ones (/10), while the score
        improves (at most ``AUTO_WIDEN`` steps each way, inside the lam range).

        With ``terms(pred, rows)`` (the score's per-row terms on the held-out ``rows``)
        and fewer CPUs than folds, every lam after the first races the best so far
        (:func:`race_step`): a clear
        loss ends the walk (or the widening) without fitting the other folds."""
        g_of = {}

        def worse(cur, best) -> bool:
            if cur is None or cur[1] <= best[1]:   # None: lost its race
                return True
            if guard is None:
                return False
            for c in (cur, best):
                if c[0] not in g_of:
                    g_of[c[0]] = guard(c[2]["teacher"])
                    path.append({"stage": stage + "-guard", "lam": c[0], "model": "teacher",
                                 "score": g_of[c[0]]})
            return g_of[cur[0]] <= g_of[best[0]]

        def step(lam: float, W_prev: list | None, best):
            """``at`` at ``lam``, raced against ``best`` when there is one."""
            if terms is None or best is None or not racing:
                return at(lam, rows_of, W_prev, scorer, stage, prefix, n_rounds)
            return race_step(lam, rows_of, W_prev, scorer, stage, prefix, n_rounds,
                             terms, best)

        best, W_prev, dropped = None, W_start, False
        for lam in lams_:
            cur = step(lam, W_prev, best)
            if best is not None and worse(cur, best):
                dropped = True
                break
            best, W_prev = cur, cur[4]
        up = best[0] == lams_[0] and dropped       # the largest lam won: look above
        if up or (not dropped and widen_down):     # or still improving at the smallest
            lam = best[0]
            for _ in range(AUTO_WIDEN):
                lam = lam * 10 if up else lam / 10
                if not LAM.lo <= lam <= LAM.hi:
                    break
                # upward from zero: a smaller lam's larger weights are a poor start, and
                # a loose tol would stop near them (measured on digits, asym 0.4)
                cur = step(lam, None if up else best[4], best)
                if lam not in widened:
                    widened.append(lam)
                if worse(cur, best):
                    break
                best = cur
        return best

    # the lam walks race on the last fold, whatever the CPUs (the same numbers on any
    # machine with fewer CPUs than folds; with as many, every fold is in the first turn
    # and there is no race): with 4 folds on 2 CPUs it is fitted alone on both CPUs, then
    # the other three (a turn of two and one more alone): a lam that goes on costs about
    # a tenth more than without the race, one that loses about a third as much
    racing = [n_splits - 1] if workers < n_splits else []
    rest = [f for f in range(n_splits) if f not in racing]
    raced_rows = np.concatenate([folds[f][1] for f in racing]) if racing else None
    # the screen's lams that lost their race: (fits so far, W_prev, estimated score)
    raced: dict[float, tuple] = {}

    def race_step(lam: float, rows_of: Callable, W_prev: list | None, scorer: Callable,
                  stage: str, prefix: str, n_rounds: int, terms: Callable, best):
        """``at`` at ``lam`` on the folds ``racing``, then the other folds unless, on
        their held-out rows, its best model trails ``best``'s by more than
        ``AUTO_PATH_RACE_Z`` paired standard errors (per-row ``terms`` of the score):
        then None, and the path records ``<stage>-race`` with the lam's estimated
        score (``best``'s plus the mean difference there) and ``z``."""
        part = at(lam, rows_of, W_prev, None, stage, prefix, n_rounds, ids=racing)
        yr = raced_rows
        name, _, diff, z = _paired_race({n: P[yr] for n, P in part.P.items()},
                                        {n: P[yr] for n, P in best[2].items()},
                                        lambda pred: terms(pred, yr))
        if z >= -AUTO_PATH_RACE_Z:
            return at(lam, rows_of, W_prev, scorer, stage, prefix, n_rounds,
                      ids=rest, part=part)
        est = float(best[1] + diff)
        path.append({"stage": stage + "-race", "lam": lam, "model": prefix + name,
                     "score": est, "z": z})
        if stage == "screen":   # its other folds may be fitted later (``screened``)
            raced[lam] = (part, W_prev, est)
        else:
            tick(len(part.P) * len(rest))
        return None

    path: list[dict] = []
    widened: list[float] = []
    screen_P: dict[float, np.ndarray] = {}
    screen_W: dict[float, list] = {}
    # the screen's and the cleaning pass's teachers shifted to class_prior: the flags'
    # probabilities (the given labels' class skew, which the models learn from them,
    # hides the rows that made it: docs/selection.md step 2, "Which flags")
    moved_P: dict[tuple[str, float], np.ndarray] = {}

    def flag_P(stage: str, lam: float, P: np.ndarray) -> np.ndarray:
        """``P`` (a screen or cleaning-pass teacher's) shifted to ``class_prior``."""
        return moved_P.get((stage, lam), P)

    def screened(lam: float) -> tuple[np.ndarray, list]:
        """The screen's teacher at ``lam``: out-of-fold probabilities and fold weights;
        a lam that lost its race has its other folds fitted now (once)."""
        if lam in raced:
            part, W_prev, _ = raced.pop(lam)
            at(lam, lambda tr: tr, W_prev, _given_accuracy(y), "screen", "", 0,
               ids=rest, part=part)
        return screen_P[lam], screen_W[lam]

    def screen_flags(lam: float) -> np.ndarray:
        """The screen's teacher at ``lam`` as it flags and as a final model predicts
        (shifted to ``class_prior``)."""
        return flag_P("screen", lam, screened(lam)[0])

    # 1. screen: the teacher along the lam path, each lam scored by the clean accuracy its
    #    own out-of-fold probabilities imply (their noise estimate), or by accuracy on the
    #    given labels
    lam_screen, _, Ps, _, W_screen, _ = lam_path(
        lambda tr: tr, grid, None, _given_accuracy(y), "screen", "", 0,
        guard=_self_corrected_of(y) if AUTO_SCREEN_GUARD else None,
        terms=lambda pred, rows: (pred == y[rows]).astype(float))
    P_screen = Ps["teacher"]
    # the lams that lost their race: the score estimated from the raced folds
    screen_scores = {p["lam"]: p["score"] for p in path if p["stage"] == "screen"}
    screen_scores.update({v: est for v, (_, _, est) in raced.items()})
    keep = ~flag_mask(P_screen, y, rule=AUTO_FIRST_CUT)
    if AUTO_CLEAN_PASS and not keep.all():
        # 2. one cleaning pass: the screening teacher refitted (warm) on the folds minus the
        # screen's precise per-cell set; its out-of-fold probabilities, from cleaner
        # folds, flag with both precision and recall (the pooled cut), and that set
        # prunes the folds of the refine stage and the final fit alike
        _, _, Pc, _, W_clean, _ = at(lam_screen, lambda tr: tr[keep[tr]], W_screen,
                                     _given_accuracy(y), "clean", "pruned-", 0)
        P_clean, P_clean_flags = Pc["teacher"], flag_P("clean", lam_screen, Pc["teacher"])
        keep = ~flag_mask(P_clean_flags, y, rule=AUTO_KEEP_CUT)
    else:
        P_clean, W_clean = P_screen, W_screen
        P_clean_flags = screen_flags(lam_screen)
    # 6 (decided here). learnable noise: the screen's lam just below the stiff flagging
    # teacher's predicted the given labels better than it. Flags are blind to noise a
    # model can learn (idn F1 0.33-0.38 on BANKING77) and pruning leaves most of it;
    # SD rounds average it away over correlated rows. The recommended model is the
    # chain at the screened lam that fitted the given labels best (its round is picked
    # from the fitted chain: averaging_round), fitted without the stiff teacher's precise
    # per-cell set (final_rows; with the flags read shifted to the class prior that set
    # is clean enough to leave out: +0.2..+3.1 points on 8 BANKING77 and synthetic rows,
    # docs/selection.md, "Which rows"); the label issues come from the
    # cleaning pass and the stiff teacher (the fold SD rounds' own flags, alone or
    # united, won on the synthetic view rows but lost F1 on BANKING77 idn and text and
    # cost 1.5-6 s: docs/selection.md), and the refine and the choice are skipped
    # (docs/selection.md, "Learnable noise")
    lam_flag = flag_lam(list(screen_scores), N * (n_splits - 1) / n_splits, unit)
    below = [v for v in screen_scores if v < lam_flag]
    learnable = bool(below) and screen_scores[max(below)] > screen_scores[lam_flag]
    if average_learnable and rounds > 0 and learnable:
        lam_avg = max(below, key=screen_scores.get)
        model = f"pruned-sd-{rounds}"
        # (a lam that lost its race has its other folds fitted here, before the end)
        W_avg = np.mean(screened(lam_avg)[1], axis=0)
        P_flag = screen_flags(lam_flag)
        path.append({"stage": "label-averaging", "lam": lam_avg, "model": model,
                     "score": float(screen_scores[lam_avg])})
        if progress is not None:
            progress(total, total)
        return AutoSelection(
            lam=lam_avg, best_model=model, pruned=True, train_rows=None,
            lam_screen=lam_screen, screen_scores=screen_scores, scores_by_model={},
            path=path, oof_proba=P_clean_flags, screen_proba=P_screen, n_splits=n_splits,
            rule=score, seconds=time.perf_counter() - t0, widened=tuple(widened),
            teacher_W=W_avg, lam_flag=lam_flag, flag_proba=P_flag, label_averaging=True,
            lam_unit=unit,
            pll=bool(pll) and pll_applies(K))   # top-2 of 2 classes: no label
    est = estimate_noise(P_clean, y)
    T_inv = noise_inverse(est.T)
    choice_terms = None   # the choice's per-row terms, once ``rescore`` has run

    def score_of(P: np.ndarray) -> float:
        pred = P.argmax(axis=1)
        if score == "kept":
            return float(np.mean((pred == y)[keep]))
        if choice_terms is not None:
            return float(choice_terms(pred).mean())
        return corrected_accuracy(pred, y, T_inv)

    cands: dict[tuple[float, str], tuple[float, np.ndarray]] = {}
    P_teacher = screen_flags(lam_screen)   # as the final model predicts
    cands[(lam_screen, "teacher")] = (score_of(P_teacher), P_teacher)
    path.append({"stage": "choose", "lam": lam_screen, "model": "teacher",
                 "score": cands[(lam_screen, "teacher")][0]})

    W_mean = {(lam_screen, False): np.mean(W_screen, axis=0)}

    n_sd = min(rounds, AUTO_MAX_ROUNDS)   # SD rounds fitted as candidates

    def refine(rows: np.ndarray, lam_start: float, W_start: list, stage: str) -> None:
        """The teacher on each fold's training rows in ``rows`` along the lam path from
        ``lam_start`` down (each fold warm-started from ``W_start``), then the SD rounds
        continued at the best lam: candidates ``pruned-…``."""
        n1 = min(rounds, AUTO_PATH_ROUNDS)
        # the race's per-row terms: the corrected score's (the choice's posterior terms,
        # once ``rescore`` has run, and the "kept" score are not raced)
        terms = (None if score != "corrected" or choice_terms is not None else
                 lambda pred, rows_: T_inv[y[rows_], pred])
        lam_ref, _, Ps, scored, W_ref, W_sd = lam_path(
            lambda tr: tr[rows[tr]], [lam_start] + [v for v in grid if v < lam_start],
            W_start, score_of, stage, "pruned-", n1, widen_down=False, terms=terms)
        W_mean[(lam_ref, True)] = np.mean(W_ref, axis=0)
        for n, P in Ps.items():
            cands[(lam_ref, "pruned-" + n)] = (scored[n], P)
        if names[n1 + 1:n_sd + 1]:   # continue each fold's chain at lam_ref
            _, _, Pm, scored, _, _ = at(lam_ref, lambda tr: tr[rows[tr]], W_sd, score_of,
                                        stage, "pruned-", n_sd, from_round=n1)
            for n, P in Pm.items():
                cands[(lam_ref, "pruned-" + n)] = (scored[n], P)

    # 3. refine on the folds' unflagged training rows (warm from the cleaning pass's fits:
    #    the same lam on nearly the same rows)
    if not keep.all():
        refine(keep, lam_screen, W_clean, "refine")

    def rescore() -> None:
        """Score every candidate again for the choice: the noise matrix from the
        candidates' out-of-fold probabilities (:func:`choice_noise`, ``AUTO_CHOOSE_T``;
        the cleaning pass's teacher alone can be far off: rate 0.52 against 0.30
        realised on view 0.3, docs/selection.md) under the bounded posterior score
        (:func:`posterior_accuracy_terms`, ``AUTO_CHOOSE_SCORE``), which later stages
        (the refine after an SD round won) score with too."""
        nonlocal choice_terms
        if score != "corrected" or AUTO_CHOOSE_T == "clean":
            return
        choice_terms = _choice_terms(
            choice_noise([P for _, P in cands.values()], y, AUTO_CHOOSE_T), y)
        for key, (_, P) in list(cands.items()):
            cands[key] = (score_of(P), P)

    def winner(prefix: str = "") -> tuple[float, str]:
        """Best score among the candidates whose model starts with ``prefix``; a later
        (more flexible) candidate must beat the best so far by more than a fixed margin
        of 1/N (one row of an accuracy over the N held-out rows), closer is a tie, kept
        by the simpler one."""
        among = [(k, v) for k, v in cands.items() if k[1].startswith(prefix)]
        key_best, (s_best, _) = among[0]
        for key, (sc, _) in among:
            if sc > s_best + 1.0 / N:
                key_best, s_best = key, sc
        return key_best

    def sd_race(P_sd: dict, rows: np.ndarray) -> dict | None:
        """The unpruned SD rounds against the candidates so far on ``rows`` (held-out rows
        of the folds fitted first), scored as the choice would be (the noise matrix of
        :func:`choice_noise` from the candidates' probabilities there): the best SD round's
        mean per-row score minus the best other's, and that difference over its paired
        standard error (``z``). None when every fold is already fitted."""
        if len(rows) == N:
            return None
        yr = y[rows]
        others = {k: P[rows] for k, (_, P) in cands.items()}
        sds = {n: P[rows] for n, P in P_sd.items()}
        terms = ((lambda pred: T_inv[yr, pred]) if AUTO_CHOOSE_T == "clean" else
                 _choice_terms(choice_noise([*others.values(), *sds.values()], yr,
                                            AUTO_CHOOSE_T), yr))

        sd_name, best, diff, z = _paired_race(sds, others, terms)
        return {"model": f"{sd_name} vs {best[1]} at lam {best[0]:g} (z {z:+.1f})",
                "score": diff, "z": z}

    def record_choice() -> None:
        """Every candidate's score as the choice sees it, into the path (``choose``)."""
        for (lv, m), (sc, _) in cands.items():
            path.append({"stage": "choose", "lam": lv, "model": m, "score": sc})

    # 4. the unpruned chain one screened lam below the screen's: SD rounds average the
    #    labels of correlated rows, so they suit a more flexible teacher than the one
    #    that fits the given labels best (docs/selection.md, "Self-distillation without
    #    pruning"); each fold's chain continues from its screening teacher there. Both
    #    rounds are fitted: with sd-1 alone, the noise matrix of its choice was estimated
    #    from a weaker model and sd-1 lost to the screening teacher (view 0.5, seed 0:
    #    47.1 % chosen, 63.2 % for sd-2)
    #    The folds of the pool's first turn race the candidates so far on their held-out
    #    rows (``sd_race``): a clear loss there skips the other folds
    below_screen = [v for v in screen_scores if v < lam_screen]
    #    Not with ``average_learnable``: the learnable noise these rounds are for has left
    #    for label averaging by then, and on the rest the race was lost by 4.7-96 standard
    #    errors on all 18 such BANKING77 rows and all 6 synthetic ones (1.3 s of 10 there)
    if AUTO_UNPRUNED_SD and not average_learnable and below_screen and n_sd:
        lam_sd = max(below_screen)
        W_sd = screened(lam_sd)[1]
        W_mean[(lam_sd, False)] = np.mean(W_sd, axis=0)
        # the folds of the pool's first turn race (all of them when there are as many
        # CPUs as folds: no race then)
        sd_first = range(min(n_splits, max(workers, 2)) if score == "corrected"
                         else n_splits)
        Pu = at(lam_sd, lambda tr: tr, W_sd, None, "unpruned-sd", "", n_sd,
                from_round=0, ids=sd_first)
        race = sd_race(Pu.P, np.concatenate([folds[f][1] for f in sd_first]))
        if race is not None:
            path.append({"stage": "unpruned-sd-race", "lam": lam_sd, **race})
        if race is None or race["z"] >= -AUTO_SD_RACE_Z:
            _, _, Pu, scored, _, _ = at(lam_sd, lambda tr: tr, W_sd, score_of,
                                        "unpruned-sd", "", n_sd, from_round=0,
                                        ids=range(len(sd_first), n_splits), part=Pu)
            for n, P in Pu.items():
                cands[(lam_sd, n)] = (scored[n], P)
        else:
            tick(n_sd * (n_splits - len(sd_first)))
    rescore()
    record_choice()
    # 5. choose (``winner``); when an unpruned SD round wins, its flags (better than the
    #    cleaning pass's there) prune the folds once more and the refine runs again from
    #    its lam, its candidates replacing the first refine's (which lost)
    lam_best, model = winner()
    sd_won = model.startswith("sd-")
    if AUTO_SD_PRUNE and sd_won:
        rows_sd = ~flag_mask(cands[(lam_best, model)][1], y, rule=AUTO_KEEP_CUT)
        if not rows_sd.all():
            for key in [k for k in cands if k[1].startswith("pruned-")]:
                del cands[key]
            keep = rows_sd
            # scored with the noise matrix that chose the SD round (estimated again, the
            # choice flipped to the screening teacher at view 0.5, seed 0: 47.1 vs 63.2)
            refine(keep, lam_best, screened(lam_best)[1], "refine-sd")
            record_choice()
            lam_best, model = winner("pruned-" if AUTO_CHOOSE_SCORE == "posterior" else "")
    P_best = cands[(lam_best, model)][1]
    pruned = model.startswith("pruned-")
    by_model = {m: s for (lv, m), (s, _) in cands.items() if lv == lam_best}
    # 6. a stiffer teacher's flags join the candidate's when the chosen model is more
    #    flexible and, in the screen, flexibility fitted the given labels better; not
    #    when an unpruned SD round won (its flags, which pruned the winner, are the
    #    trusted ones: with the stiffer teacher's set left out instead, view 0.3 with an
    #    intercept scored 62.3 % against 87 %); ``learnable`` was read from the screen
    #    before step 3
    if sd_won or not (lam_flag > lam_best and learnable):
        lam_flag = None
    P_flag = None if lam_flag is None else screen_flags(lam_flag)
    if progress is not None:
        progress(total, total)
    return AutoSelection(
        lam=lam_best, best_model=model, pruned=pruned,
        train_rows=keep if pruned else None, lam_screen=lam_screen,
        screen_scores=screen_scores, scores_by_model=by_model, path=path,
        oof_proba=P_best, screen_proba=P_screen, n_splits=n_splits, rule=score,
        seconds=time.perf_counter() - t0, widened=tuple(widened),
        teacher_W=W_mean.get((lam_best, pruned)), lam_flag=lam_flag, flag_proba=P_flag,
        lam_unit=unit)


def averaging_round(fits: Sequence, X: np.ndarray, share: float = AUTO_AVG_CONFIDENCE_SHARE,
                    given: tuple[np.ndarray, np.ndarray] | None = None
                    ) -> tuple[str, dict, dict, dict]:
    """The model label averaging recommends from its fitted chain.

    The last SD round whose mean top probability on the training rows ``X`` is at least
    ``share`` times the teacher's (the teacher when even ``sd-1`` is below). A round
    multiplies every eigen-direction of the labels by ``a = gamma mu / (1 + gamma mu)``
    (docs/theory-derivation.md): noise in weak directions fades first, then the classes'
    own structure. The outputs' confidence falls with it, and how fast it falls per round
    tells how hard the rounds average on these features (:data:`AUTO_AVG_CONFIDENCE_SHARE`).

    Then the PLL student, when the chain has one, replaces that round unless its
    predictions on ``X`` are spread over the classes less evenly than the round's
    (:func:`class_balance`). Its top-2 target keeps the class a label-averaged teacher
    ranks second, which at high noise is often the true one (the paper's claim 4; on
    BANKING77's 8 idn and text rows +0.3..+2.4 points over sd-4 on 6, 0.0 and -0.5 on the
    others). Where the teacher's top two are systematically the same pair of related
    classes, the student can put both on one of them and never predict the other; that
    collapse (synthetic 150-class sets: 70-121 classes predicted of 150, 20-45 points
    lost) is what the balance test reads, without labels (docs/selection.md, "How many
    rounds"). With ``given`` (rows and their given labels: every training row, the
    left-out ones included), the student must also depart from the given labels on
    more of those rows than the round does: its partial label exists to move a row from
    its given class to the one the teacher ranks second, so a student that keeps the
    given labels as often as the round has corrected nothing the round did not
    (scikit-learn's digits under idn noise: as often or more on 4 of 6 rows, 2.0-3.6
    points below sd-4 there; on BANKING77's 20 idn and text rows, seeds 0-4, it departs
    on 3-8 % more rows than sd-4).

    Parameters
    ----------
    fits : sequence of NamedFit
        The chain ``teacher, sd-1, ...`` and optionally ``pll`` (the names may carry the
        prefix ``pruned-``), as it predicts (class-prior shift included).
    X : ndarray of shape (N, d)
        The rows the chain was fitted on.
    share : float, default=AUTO_AVG_CONFIDENCE_SHARE
    given : (ndarray of shape (M, d), ndarray of shape (M,)), optional
        Rows and their given labels for the PLL student's departure test above.

    Returns
    -------
    name : str
        ``"teacher"``, ``"sd-t"`` or ``"pll"`` (with the fits' prefix, if any).
    confidence : dict
        Mean top probability of each model of the chain but PLL.
    balance : dict
        :func:`class_balance` of the round picked by confidence and of the PLL student
        (empty without one).
    kept_given : dict
        With ``given`` and a PLL student: the share of its rows on which each of the two
        predicts the given label (else empty).

    Examples
    --------
    >>> from selfdistill.distill import self_distill
    >>> X = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    >>> fits = self_distill(X, np.array([0, 0, 1, 1]), lam=1e-2, rounds=3, pll=False)
    >>> averaging_round(fits, X, share=0.95)[0], averaging_round(fits, X, share=0.5)[0]
    ('sd-1', 'sd-3')
    """
    confidence, pred, pll = {}, {}, None
    for f in fits:   # one model's (N, K) probabilities at a time; kept: its predictions
        P = f.predict_proba(X)
        K, pred[f.name] = P.shape[1], P.argmax(axis=1)
        if chain_of(f.name)[1]:   # the PLL student is not a round
            pll = pll or f.name
        else:
            confidence[f.name] = float(P.max(axis=1).mean())
    name = teacher = next(iter(confidence))
    for m, c in confidence.items():
        if m != teacher and c >= share * confidence[teacher]:
            name = m
    if pll is None:
        return name, confidence, {}, {}
    balance = {m: class_balance(pred[m], K) for m in (name, pll)}
    kept = {}
    if given is not None and len(given[1]):
        by_name = {f.name: f for f in fits}
        Xg, yg = given
        kept = {m: float(np.mean(by_name[m].predict_proba(Xg).argmax(axis=1) == yg))
                for m in (name, pll)}
    take = balance[pll] >= balance[name] and (not kept or kept[pll] < kept[name])
    return (pll if take else name), confidence, balance, kept


def class_balance(pred: np.ndarray, n_classes: int) -> float:
    """How evenly predictions spread over the classes: the entropy of the predicted
    classes' shares over ``log K``; 1 when every class is predicted equally often, lower
    when some are predicted rarely or never.

    Examples
    --------
    >>> class_balance(np.array([0, 1, 2, 3]), 4), class_balance(np.array([0, 0, 1, 1]), 4)
    (1.0, 0.5)
    """
    share = np.bincount(pred, minlength=n_classes) / max(len(pred), 1)
    share = share[share > 0]
    return float(-(share * np.log(share)).sum() / np.log(n_classes)) if n_classes > 1 else 1.0


def flag_lam(screened: Sequence[float], n_fit: float, unit: float = 1.0) -> float:
    """lam of the stiffer flagging teacher of ``auto``: the screened lam nearest (in log)
    to ``unit / n_fit``, scikit-learn's default regularisation for a fold's ``n_fit`` rows
    of norm about 1 (``LogisticRegression(C=1)`` minimises ``sum_i CE_i + |W|^2 / 2``,
    i.e. lam = 1/n on the mean loss of theory-derivation.md), in the features'
    :func:`lam_unit` ``unit``.

    Examples
    --------
    >>> flag_lam([1e-4, 1e-5, 1e-6], 8000)
    0.0001
    >>> flag_lam([1e-4, 1e-5, 1e-6], 800_000)
    1e-06
    >>> flag_lam([1.5e-2, 1.5e-3, 1.5e-4], 1000, unit=15.0)
    0.015
    """
    return min(screened, key=lambda v: (abs(np.log(v * n_fit / unit)), -v))
