"""Block-model experiments (drivers): one noisy draw round by round, a population view, a lam sweep.

The drivers draw noisy labels, fit or evaluate the closed forms and assemble JSON-ready
results; the math they evaluate lives in :mod:`~selfdistill.theory.block`,
:mod:`~selfdistill.theory.population`, :mod:`~selfdistill.theory.linear` and
:mod:`~selfdistill.theory.exact`. Every driver takes keyword arguments only, named and
ordered alike: block model ``K, n, c, d``; noise ``noise, eta``; ``lam``; ``rounds``;
``solver``; ``seed``.

Everything here follows theory-derivation.md §3 and counts rounds as the derivation does:
round ``t = 1`` is the teacher ``P_1``, round ``t`` is the product's model ``sd-(t-1)``.
Every ``rounds`` argument is the number of SD rounds after the teacher
(``selfdistill fit --rounds``), so a trajectory has ``rounds + 1`` entries, rounds
``1 .. rounds + 1``, and ``min_rounds`` (the first round at which the closed form is right
on every instance) is on the same scale.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .._errors import SelfDistillError
from .._validation import (
    PLL_LOSSES,
    ROUNDS,
    TOL,
    check_in,
    check_lam,
    check_option,
    check_rate,
)
from ..distill import pll_targets
from ..noise import make_noisy_labels, realized_rate, transition_matrix
from ..solvers import one_hot
from .block import BlockModel, block_round, block_trajectory, shrink_factors
from .exact import EXACT_TOL, exact_trajectory
from .linear import GramSpectrum, linearised_trajectory
from .population import condition, population_accuracy

__all__ = [
    "SOLVERS",
    "NOISE_KINDS",
    "run_block_experiment",
    "noisy_block_labels",
    "condition",
    "population_accuracy",
    "population_view",
    "lam_sweep",
    "model_name",
]

#: ``solver=`` values: how the "measured" trajectory is computed
SOLVERS = ("linear", "exact")
#: noise kinds meaningful on the block model (cc needs distinct class correlations)
NOISE_KINDS = ("sym", "asym", "none")

Progress = Callable[[int, int, str], None]


def model_name(t: int) -> str:
    """The product's name of derivation round ``t``: ``teacher`` for 1, else ``sd-(t-1)``.

    Examples
    --------
    >>> [model_name(t) for t in (1, 2, 6)]
    ['teacher', 'sd-1', 'sd-5']
    """
    return "teacher" if t == 1 else f"sd-{t - 1}"


def _check_common(eta: float, noise: str, lam: float, rounds: int, solver: str | None) -> float:
    eta = check_rate(eta, name="eta")
    if noise not in NOISE_KINDS:
        raise SelfDistillError(
            f"noise must be one of {', '.join(NOISE_KINDS)} on the block model, got {noise!r}")
    check_lam(lam)
    check_in(rounds, ROUNDS, name="rounds")
    if solver is not None:
        check_option(solver, SOLVERS, name="solver")
    return eta


def noisy_block_labels(bm: BlockModel, eta: float, noise: str = "sym",
                       seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(y_true, y_given, T)``: the block model's classes and a seeded noisy labelling.

    Uses :func:`selfdistill.make_noisy_labels` (stratified: exactly ``round(n * eta)``
    labels change in each class).
    """
    y = bm.labels()
    kind = "none" if noise == "none" or eta == 0 else noise
    y_given, T = make_noisy_labels(y, kind=kind, rate=eta, n_classes=bm.K, seed=seed)
    return y, y_given, T


def _acc(P: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(P, axis=1) == y))


def _first_perfect(accs: Sequence[float]) -> int | None:
    """First round (1-based) with accuracy 1, or None."""
    return next((t for t, a in enumerate(accs, start=1) if a >= 1.0), None)


def run_block_experiment(
    *,
    K: int = 4,
    n: int = 200,
    c: float = 0.4,
    d: float = 0.1,
    noise: str = "sym",
    eta: float = 0.6,
    lam: float = 1e-4,
    rounds: int = 10,
    solver: str = "exact",
    seed: int = 0,
    pll_loss: str = "two-hot",
    tol: float = EXACT_TOL,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """One noisy draw on the block model: measured vs predicted accuracy per round.

    Parameters
    ----------
    K, n, c, d : block model (theory-derivation.md §3): K classes of n instances, within-class
        correlation c, across-class correlation d, ``1 > c > d >= 0``.
    eta : float in [0, 1), default=0.6
        Noise rate.
    noise : {"sym", "asym", "none"}, default="sym"
    lam : float, default=1e-4
    rounds : int, default=10
        SD rounds after the teacher: rounds ``1 .. rounds + 1`` are reported.
    solver : {"exact", "linear"}, default="exact"
        How ``train_acc`` is measured: ``"exact"`` fits the softmax fixed points with the
        product's pipeline; ``"linear"`` evaluates ``U + A^t (Y - U)`` from the thin SVD
        of the features (theory-derivation.md §2; equals the closed form up to rounding).
    seed : int, default=0
        Seed of the noise draw (:func:`selfdistill.make_noisy_labels`).
    pll_loss : {"two-hot", "gce"}, default="two-hot"
        Loss of the exact PLL student.
    tol : float, default=1e-6
        Relative gradient tolerance of the exact fits.
    progress : callable ``(done, total, label)``, optional

    Returns
    -------
    dict
        spec.md's ``selfdistill theory`` JSON: ``params``, ``eigenvalues``, ``a``, ``gap``,
        ``condition_holds``, ``t_star``, ``min_rounds``, ``rounds`` (one entry per round t:
        ``round``, ``model`` (product name), ``train_acc`` (measured with ``solver``),
        ``predicted_train_acc`` (closed form)), ``pll`` (``train_acc``,
        ``predicted_train_acc``, ``round`` = 2, ``loss``); plus ``noise`` (kind, rate,
        realized_rate, seed, transition_matrix), ``first_perfect_round`` (measured and
        predicted), ``fits`` (the exact solver's record per model: objective, iterations,
        seconds, converged, status, relative_grad; empty for ``"linear"``) and ``seconds``.

    Examples
    --------
    >>> out = run_block_experiment(n=50, eta=0.5, lam=1e-3, rounds=3, solver="linear")
    >>> [r["round"] for r in out["rounds"]], out["condition_holds"]
    ([1, 2, 3, 4], True)
    """
    t0 = time.perf_counter()
    bm = BlockModel(K=K, n=n, c=c, d=d)
    eta = _check_common(eta, noise, lam, rounds, solver)
    check_option(pll_loss, PLL_LOSSES, name="pll_loss")
    check_in(tol, TOL, name="tol")
    y, y_given, T = noisy_block_labels(bm, eta, noise, seed)
    cond = condition(bm, y, y_given, lam)
    a = (cond["a"]["a0"], cond["a"]["a1"], cond["a"]["a2"])
    Y = one_hot(y_given, K)

    # closed-form prediction (theory-derivation.md §3), PLL on the closed-form teacher's top-2
    predicted = block_trajectory(Y, y, K, a, rounds)
    pred_pll = block_round(pll_targets(predicted[0]), y, K, a, 1)

    total = rounds + 3
    if progress is not None:
        progress(0, total, "features")
    Phi = bm.features()
    basis = bm.spectral_basis()
    fit_records: list[dict[str, Any]] = []
    if solver == "linear":
        spec = GramSpectrum.from_basis(basis)
        measured = linearised_trajectory(spec, Y, lam, rounds)
        meas_pll = linearised_trajectory(spec, pll_targets(measured[0]), lam, 0)[0]
        loss = "linear"
    else:
        def step(name: str, i: int, tot: int) -> None:
            if progress is not None:
                progress(1 + i, total, name)

        tr = exact_trajectory(Phi, y_given, lam, rounds, n_classes=K, pll=True,
                              pll_loss=pll_loss, tol=tol, basis=basis, progress=step)
        measured, meas_pll = tr.P, tr.P_pll
        loss = pll_loss
        fit_records = [f.to_dict() for f in tr.fits]
    if progress is not None:
        progress(total, total, "done")

    acc_meas = [_acc(P, y) for P in measured]
    acc_pred = [_acc(P, y) for P in predicted]
    return {
        "params": {"K": K, "n": n, "N": bm.N, "c": c, "d": d, "eta": eta, "noise": noise,
                   "lam": lam, "rounds": rounds, "solver": solver, "seed": seed,
                   "tol": tol if solver == "exact" else None},
        "eigenvalues": cond["eigenvalues"],
        "a": cond["a"],
        "gamma": cond["gamma"],
        "gap": cond["gap"],
        "condition_holds": cond["condition_holds"],
        "t_star": cond["t_star"],
        "min_rounds": cond["min_rounds"],
        "rounds": [{"round": t, "model": model_name(t), "train_acc": am,
                    "predicted_train_acc": ap}
                   for t, (am, ap) in enumerate(zip(acc_meas, acc_pred), start=1)],
        "pll": {"round": 2, "loss": loss, "train_acc": _acc(meas_pll, y),
                "predicted_train_acc": _acc(pred_pll, y)},
        "first_perfect_round": {"measured": _first_perfect(acc_meas),
                                "predicted": _first_perfect(acc_pred)},
        "noise": {"kind": noise if eta > 0 else "none", "rate": eta,
                  "realized_rate": realized_rate(y_given, y), "seed": seed,
                  "transition_matrix": T.tolist()},
        "fits": fit_records,
        "seconds": time.perf_counter() - t0,
    }


def _parse_grid(values: Sequence[float], name: str) -> list[float]:
    vals = [float(v) for v in values]
    if not vals:
        raise SelfDistillError(f"{name} must list at least one value")
    return vals


def population_view(
    *,
    K: int = 4,
    n: int = 200,
    c: float = 0.4,
    d: float = 0.1,
    noise: str = "sym",
    etas: Sequence[float] = tuple(np.round(np.arange(0.0, 0.96, 0.05), 2)),
    lam: float = 1e-4,
    rounds: int = 10,
    solver: str = "linear",
    seeds: int = 20,
    tol: float = EXACT_TOL,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Accuracy averaged over ``seeds`` noise draws as a function of the noise rate.

    For each rate ``eta`` and seed ``0 .. seeds-1``: draw labels, check the plurality
    condition, run teacher + ``rounds`` SD rounds and one PLL student (closed form for
    ``solver="linear"``, the product's exact fits for ``"exact"``, about 0.5 s per draw at
    N=800), and average. Alongside: the population closed form
    (:func:`population_accuracy`) and the condition's edge ``eta = (K-1)/K`` (sym noise).

    Returns
    -------
    dict
        ``params``; ``edge`` ((K-1)/K); ``points``: one per eta with ``eta``,
        ``condition_rate`` (share of draws where it holds), ``mean_min_rounds`` (over
        those draws), ``teacher_acc``, ``final_acc`` (round rounds+1), ``best_acc`` (best
        round), ``pll_acc`` (means over draws), ``std_final_acc``, and the population
        formula's ``predicted_final_acc``, ``predicted_teacher_acc``,
        ``predicted_pll_acc``, ``predicted_t_star``.

    Examples
    --------
    >>> out = population_view(n=50, etas=[0.3, 0.9], seeds=3, rounds=20)
    >>> [p["condition_rate"] for p in out["points"]], out["edge"]
    ([1.0, 0.0], 0.75)
    """
    bm = BlockModel(K=K, n=n, c=c, d=d)
    etas = [_check_common(e, noise, lam, rounds, solver) for e in _parse_grid(etas, "etas")]
    if not (isinstance(seeds, (int, np.integer)) and seeds >= 1):
        raise SelfDistillError(f"seeds must be an integer in [1, inf), got {seeds}")
    mu = np.array(bm.eigenvalues())
    a = tuple(float(v) for v in shrink_factors(mu, K, bm.N, lam))
    Phi = basis = None
    if solver == "exact":
        Phi = bm.features()
        basis = bm.spectral_basis()
    total, done = len(etas) * seeds, 0
    points = []
    for eta in etas:
        rows = []
        for seed in range(seeds):
            y, y_given, T = noisy_block_labels(bm, eta, noise, seed)
            cond = condition(bm, y, y_given, lam)
            if solver == "exact":
                tr = exact_trajectory(Phi, y_given, lam, rounds, n_classes=K, tol=tol,
                                      basis=basis)
                Ps, P_pll = tr.P, tr.P_pll
            else:
                Ps = block_trajectory(one_hot(y_given, K), y, K, a, rounds)
                P_pll = block_round(pll_targets(Ps[0]), y, K, a, 1)
            accs = [_acc(P, y) for P in Ps]
            rows.append((cond["condition_holds"], cond["min_rounds"], accs, _acc(P_pll, y)))
            done += 1
            if progress is not None:
                progress(done, total, f"eta {eta:g}")
        T_pop = np.eye(K) if noise == "none" else transition_matrix(noise, eta, K)
        pop = population_accuracy(bm, T_pop, lam, rounds)
        final = np.array([r[2][-1] for r in rows])
        mins = [r[1] for r in rows if r[1] is not None]
        points.append({
            "eta": eta,
            "condition_rate": float(np.mean([r[0] for r in rows])),
            "mean_min_rounds": float(np.mean(mins)) if mins else None,
            "teacher_acc": float(np.mean([r[2][0] for r in rows])),
            "final_acc": float(final.mean()),
            "std_final_acc": float(final.std()),
            "best_acc": float(np.mean([max(r[2]) for r in rows])),
            "pll_acc": float(np.mean([r[3] for r in rows])),
            "predicted_teacher_acc": pop["train_acc"][0],
            "predicted_final_acc": pop["train_acc"][-1],
            "predicted_pll_acc": pop["pll_train_acc"],
            "predicted_t_star": pop["t_star"],
        })
    return {
        "params": {"K": K, "n": n, "N": bm.N, "c": c, "d": d, "lam": lam, "seeds": seeds,
                   "rounds": rounds, "noise": noise, "solver": solver},
        "a": dict(zip(("a0", "a1", "a2"), a)),
        "edge": (K - 1) / K,
        "points": points,
    }


# ---------------------------------------------------------------- diminishing returns

def lam_sweep(
    *,
    K: int = 4,
    n: int = 200,
    c: float = 0.4,
    d: float = 0.1,
    noise: str = "sym",
    eta: float = 0.6,
    lams: Sequence[float] = (1e-4, 1e-3, 1e-2, 3e-2),
    rounds: int = 30,
    solver: str = "linear",
    seed: int = 0,
    tol: float = EXACT_TOL,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Diminishing returns: accuracy vs round for several ``lam`` on one noisy draw.

    Larger ``lam`` shrinks every direction faster: fewer rounds are needed (``t*`` falls),
    but the global-mean direction (``a0 > a1``) takes over sooner and accuracy collapses
    to one class (``1/K``) after enough rounds (theory-derivation.md §3).

    Returns
    -------
    dict
        ``params``, and ``curves``: one per lam with ``lam``, ``a`` {a0, a1, a2},
        ``t_star``, ``min_rounds``, ``train_acc`` (measured with ``solver``, rounds
        1 .. rounds + 1), ``predicted_train_acc`` (closed form), ``first_perfect_round``,
        ``collapse_round`` (first round after the peak with accuracy below the peak, None
        if none).

    Examples
    --------
    >>> out = lam_sweep(n=50, lams=[1e-2], rounds=30)
    >>> c = out["curves"][0]
    >>> c["first_perfect_round"], c["collapse_round"] is not None
    (2, True)
    """
    bm = BlockModel(K=K, n=n, c=c, d=d)
    eta = _check_common(eta, noise, 1e-4, rounds, solver)
    lam_list = _parse_grid(lams, "lams")
    for lam in lam_list:
        _check_common(eta, noise, lam, rounds, None)
    y, y_given, _ = noisy_block_labels(bm, eta, noise, seed)
    Y = one_hot(y_given, K)
    basis = bm.spectral_basis()
    Phi = bm.features() if solver == "exact" else None
    spec = GramSpectrum.from_basis(basis) if solver == "linear" else None
    curves = []
    for j, lam in enumerate(lam_list):
        cond = condition(bm, y, y_given, lam)
        a = (cond["a"]["a0"], cond["a"]["a1"], cond["a"]["a2"])
        pred = [_acc(P, y) for P in block_trajectory(Y, y, K, a, rounds)]
        if solver == "exact":
            tr = exact_trajectory(Phi, y_given, lam, rounds, n_classes=K, pll=False, tol=tol,
                                  basis=basis)
            meas = [_acc(P, y) for P in tr.P]
        else:
            meas = [_acc(P, y) for P in linearised_trajectory(spec, Y, lam, rounds)]
        peak = int(np.argmax(meas))
        collapse = next((t for t in range(peak + 2, len(meas) + 1)
                         if meas[t - 1] < meas[peak]), None)
        curves.append({"lam": lam, "a": cond["a"], "t_star": cond["t_star"],
                       "min_rounds": cond["min_rounds"], "train_acc": meas,
                       "predicted_train_acc": pred,
                       "first_perfect_round": _first_perfect(meas),
                       "collapse_round": collapse})
        if progress is not None:
            progress(j + 1, len(lam_list), f"lam {lam:g}")
    return {"params": {"K": K, "n": n, "N": bm.N, "c": c, "d": d, "eta": eta, "noise": noise,
                       "rounds": rounds, "solver": solver, "seed": seed},
            "curves": curves}
