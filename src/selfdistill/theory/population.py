"""Block-model population math (theory-derivation.md §3): pure, no fitting, no noise draws.

* :func:`condition` - eigenvalues, ``a_j``, the plurality gap, ``t*`` and ``min_rounds`` of
  one labelling (true and given labels).
* :func:`population_accuracy` - each round's accuracy in the population limit, where the
  class label means equal the rows of the transition matrix ``T``.

Rounds are counted as docs/theory-derivation.md §1 does: round ``t = 1`` is the teacher
``P_1`` (the product calls round ``t + 1`` ``sd-t``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..solvers import one_hot
from .block import (
    BlockModel,
    class_label_means,
    plurality_gap,
    rounds_needed,
    shrink_factors,
)

__all__ = ["condition", "population_accuracy"]


def condition(bm: BlockModel, y_true: np.ndarray, y_given: np.ndarray,
              lam: float) -> dict[str, Any]:
    """Eigenvalues, ``a_j``, the plurality gap, ``t*`` and ``min_rounds`` of one labelling.

    Returns
    -------
    dict
        ``eigenvalues`` {mu0, mu1, mu2}, ``a`` {a0, a1, a2}, ``gamma``, ``gap``,
        ``condition_holds`` (gap > 0), ``t_star`` (max over the (true, given) pairs that
        occur, 0.0 without wrong labels, None when the condition fails), ``min_rounds``
        (first round t > t_star in that numbering, None when it fails).

    Examples
    --------
    >>> from selfdistill.theory import noisy_block_labels
    >>> bm = BlockModel(K=4, n=200, c=0.4, d=0.1)
    >>> y, yg, _ = noisy_block_labels(bm, 0.6, seed=0)
    >>> out = condition(bm, y, yg, 1e-4)
    >>> out["condition_holds"], round(out["t_star"], 2), out["min_rounds"]
    (True, 4.69, 5)
    """
    K, N = bm.K, bm.N
    mu0, mu1, mu2 = bm.eigenvalues()
    a0, a1, a2 = (float(v) for v in shrink_factors(np.array([mu0, mu1, mu2]), K, N, lam))
    ybar_k, _ = class_label_means(one_hot(y_given, K), y_true, K)
    gap = plurality_gap(ybar_k)
    holds = gap > 0
    wrong = y_true != y_given
    pairs = np.unique(np.stack([y_true[wrong], y_given[wrong]], axis=1), axis=0)
    t_star, min_rounds, _ = rounds_needed(ybar_k, pairs, a1, a2)
    if not holds:
        t_star = min_rounds = None
    return {
        "eigenvalues": {"mu0": mu0, "mu1": mu1, "mu2": mu2},
        "multiplicities": dict(zip(("mu0", "mu1", "mu2"), bm.multiplicities())),
        "gamma": 1.0 / (K * N * lam),
        "a": {"a0": a0, "a1": a1, "a2": a2},
        "gap": gap,
        "condition_holds": bool(holds),
        "t_star": t_star,
        "min_rounds": min_rounds,
    }


def _expected_top2(P: np.ndarray) -> np.ndarray:
    """Expected :func:`~selfdistill.distill.pll_targets` of each row under random tie-breaks."""
    out = np.zeros_like(P)
    for i, p in enumerate(P):
        vals = np.unique(np.round(p, 12))[::-1]
        slots = 2
        for v in vals:
            members = np.flatnonzero(np.isclose(p, v, rtol=0, atol=1e-12))
            take = min(slots, len(members))
            out[i, members] = 0.5 * take / len(members)
            slots -= take
            if slots == 0:
                break
    return out


def _type_correct(P: np.ndarray, k_of: np.ndarray) -> np.ndarray:
    """Row r predicts class ``k_of[r]`` strictly (ties count as wrong)."""
    rows = np.arange(P.shape[0])
    pk = P[rows, k_of]
    Q = P.copy()
    Q[rows, k_of] = -np.inf
    return pk > Q.max(axis=1) + 1e-12


def population_accuracy(bm: BlockModel, T: np.ndarray, lam: float,
                        rounds: int) -> dict[str, Any]:
    """Closed-form accuracy in the population limit: class label means equal ``T``'s rows.

    Instance types ``(k, l)`` (true class k, given label l) have weight ``T[k, l] / K``;
    ``ybar_k = T[k]``. Each round's accuracy is the weight of types predicted correctly by
    the theory-derivation.md §3 formula; the PLL student uses the expected top-2 targets of the
    teacher (ties between classes split evenly, as random tie-breaking would on average).

    Returns
    -------
    dict
        ``train_acc`` (list, rounds 1 .. rounds + 1), ``pll_train_acc``, ``gap``
        (``min_k min_j T[k,k] - T[k,j]``), ``t_star`` (None if gap <= 0).

    Examples
    --------
    >>> from selfdistill.noise import transition_matrix
    >>> bm = BlockModel(K=4, n=200, c=0.4, d=0.1)
    >>> out = population_accuracy(bm, transition_matrix("sym", 0.6, 4), 1e-4, 5)
    >>> [round(x, 2) for x in out["train_acc"]], round(out["t_star"], 2)
    ([0.4, 0.4, 0.4, 0.4, 1.0, 1.0], 4.24)
    """
    K = bm.K
    mu = np.array(bm.eigenvalues())
    a0, a1, a2 = shrink_factors(mu, K, bm.N, lam)
    k_of, l_of = np.divmod(np.arange(K * K), K)
    w = T[k_of, l_of] / K
    keep = w > 0
    k_of, l_of, w = k_of[keep], l_of[keep], w[keep]
    u = 1.0 / K
    ybar = T.mean(axis=0)

    def outputs(Yt: np.ndarray, Ybk: np.ndarray, yb: np.ndarray, t: int) -> np.ndarray:
        return u + a0**t * (yb - u) + a1**t * (Ybk[k_of] - yb) + a2**t * (Yt - Ybk[k_of])

    Yt = np.eye(K)[l_of]
    accs = [float(np.sum(w * _type_correct(outputs(Yt, T, ybar, t), k_of)))
            for t in range(1, rounds + 2)]
    # PLL: refined targets from the teacher, their class means, one student round
    Yp = _expected_top2(outputs(Yt, T, ybar, 1))
    Ybk_p = np.zeros((K, K))
    np.add.at(Ybk_p, k_of, (w * K)[:, None] * Yp)
    ybar_p = Ybk_p.mean(axis=0)
    pll_acc = float(np.sum(w * _type_correct(outputs(Yp, Ybk_p, ybar_p, 1), k_of)))
    gap = plurality_gap(T)
    t_star = None
    if gap > 0:
        g = np.diag(T)[k_of] - T[k_of, l_of]
        wrong = k_of != l_of
        t_star = float(np.max(np.log1p(1.0 / g[wrong]) / math.log(a1 / a2))) \
            if wrong.any() else 0.0
    return {"train_acc": accs, "pll_train_acc": pll_acc, "gap": gap, "t_star": t_star}
