"""Figures of the theory: accuracy vs round (SD vs PLL), population view, lam sweep.

All figures are PNG (matplotlib's Agg backend), written atomically, with the legend
beside the axes (never over the curves). The x axis of every accuracy-vs-round figure
uses theory-derivation.md's rounds: 1 = the teacher, t = the product's
``sd-(t-1)``, except :func:`plot_theory_vs_measurement`, which uses the product's model
names (teacher, sd-1, ...) because it sits in product reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._plotting import pyplot as _plt
from .._plotting import savefig as _save

__all__ = [
    "plot_block_experiment",
    "plot_population",
    "plot_lam_sweep",
    "plot_theory_vs_measurement",
]


def plot_block_experiment(result: dict[str, Any], path: str | Path) -> Path:
    """Train accuracy vs round: measured SD, closed form, PLL, predicted minimum round.

    Parameters
    ----------
    result : dict
        :func:`~selfdistill.theory.run_block_experiment`'s output.
    path : str or Path
        PNG to write.
    """
    plt = _plt()
    p = result["params"]
    t = [r["round"] for r in result["rounds"]]
    meas = [100 * r["train_acc"] for r in result["rounds"]]
    pred = [100 * r["predicted_train_acc"] for r in result["rounds"]]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    label = "exact fixed points" if p["solver"] == "exact" else "linearised (thin SVD)"
    ax.plot(t, meas, "o-", color="C0", label=f"SD, measured: {label}")
    ax.plot(t, pred, "s--", color="C1", mfc="none", label="SD, predicted: closed form (§3)")
    pll = result["pll"]
    ax.plot([2], [100 * pll["train_acc"]], "*", ms=15, color="C2",
            label=f"PLL (one student on top-2), measured ({pll['loss']})")
    ax.plot([2], [100 * pll["predicted_train_acc"]], "D", ms=9, mfc="none", color="C3",
            label="PLL, predicted")
    if result["min_rounds"] is not None:
        ax.axvline(result["min_rounds"], color="grey", ls=":",
                   label=f"predicted minimum round {result['min_rounds']} "
                         f"(t* = {result['t_star']:.2f})")
    ax.axhline(100, color="k", lw=0.5)
    ax.set_xlabel("round t (1 = teacher, t = sd-(t-1))")
    ax.set_ylabel("train accuracy vs true labels (%)")
    ax.set_ylim(-3, 105)
    cond = "holds" if result["condition_holds"] else "fails"
    ax.set_title(f"Block model K={p['K']}, n={p['n']}, c={p['c']:g}, d={p['d']:g}; "
                 f"{p['noise']} {p['eta']:g}, lam={p['lam']:g}\n"
                 f"gap={result['gap']:.3f} (condition {cond}), seed {p['seed']}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return _save(fig, path)


def plot_population(result: dict[str, Any], path: str | Path) -> Path:
    """Mean accuracy over noise draws vs noise rate, with the edge ``eta = (K-1)/K``."""
    plt = _plt()
    p = result["params"]
    pts = result["points"]
    eta = np.array([q["eta"] for q in pts])

    def col(key: str) -> np.ndarray:
        return 100 * np.array([np.nan if q[key] is None else q[key] for q in pts], dtype=float)

    R = p["rounds"] + 1
    fig, ax = plt.subplots(figsize=(6.6, 4.2))
    ax.plot(eta, col("teacher_acc"), "o-", color="C7", ms=4, label="teacher (round 1)")
    ax.errorbar(eta, col("final_acc"), yerr=col("std_final_acc"), fmt="o-", color="C0", ms=4,
                capsize=2, label=f"SD round {R}, mean ± sd over {p['seeds']} draws")
    ax.plot(eta, col("pll_acc"), "D-", color="C2", ms=4, label="PLL (round 2), mean")
    ax.plot(eta, col("predicted_final_acc"), "--", color="C0",
            label=f"SD round {R}, population closed form")
    ax.plot(eta, col("predicted_pll_acc"), "--", color="C2", label="PLL, population closed form")
    ax.plot(eta, col("condition_rate"), ":", color="C3", label="share of draws: condition holds")
    ax.axvline(result["edge"], color="k", ls="-.", lw=1,
               label=f"edge eta = (K-1)/K = {result['edge']:.3g}")
    ax.set_xlabel("noise rate eta")
    ax.set_ylabel("train accuracy vs true labels (%)")
    ax.set_ylim(-3, 105)
    ax.set_title(f"Population view: block model K={p['K']}, n={p['n']}, c={p['c']:g}, "
                 f"d={p['d']:g}, {p['noise']} noise, lam={p['lam']:g}, {p['solver']}",
                 fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    return _save(fig, path)


def plot_lam_sweep(result: dict[str, Any], path: str | Path) -> Path:
    """Accuracy vs round for several lam: fewer rounds needed, then collapse."""
    plt = _plt()
    p = result["params"]
    fig, ax = plt.subplots(figsize=(6.6, 4.2))
    colors = plt.cm.viridis(np.linspace(0, 0.9, max(len(result["curves"]), 1)))
    for cur, color in zip(result["curves"], colors):
        t = np.arange(1, len(cur["train_acc"]) + 1)
        ax.plot(t, 100 * np.asarray(cur["train_acc"]), "o-", ms=3, color=color,
                label=f"lam={cur['lam']:g}" + (f", min round {cur['min_rounds']}"
                                               if cur["min_rounds"] is not None else ""))
        if p["solver"] == "exact":
            ax.plot(t, 100 * np.asarray(cur["predicted_train_acc"]), "--", color=color, lw=1)
        if cur["min_rounds"] is not None and cur["min_rounds"] <= len(t):
            ax.axvline(cur["min_rounds"], color=color, ls=":", lw=1)
    ax.set_xlabel("round t (1 = teacher, t = sd-(t-1))")
    ax.set_ylabel("train accuracy vs true labels (%)")
    ax.set_ylim(-3, 105)
    extra = "; dashed: closed form" if p["solver"] == "exact" else ""
    ax.set_title(f"Diminishing returns: block model K={p['K']}, n={p['n']}, {p['noise']} "
                 f"{p['eta']:g}, seed {p['seed']}, {p['solver']}{extra}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return _save(fig, path)


def plot_theory_vs_measurement(curves: Sequence[dict[str, Any]], path: str | Path,
                               title: str = "Theory vs measurement") -> Path:
    """Predicted (linearised) vs measured train accuracy per model, one colour per run.

    Parameters
    ----------
    curves : sequence of dict
        Each with ``label``, ``predicted`` and ``measured`` (sequences over teacher,
        sd-1, ..., accuracies in [0, 1]; ``measured`` may hold None), and optionally
        ``pll_predicted``, ``pll_measured``.
    path : str or Path
    title : str
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.6, 4.2))
    n_max = 0
    for j, cur in enumerate(curves):
        color = f"C{j % 10}"
        pred = np.asarray(cur["predicted"], dtype=float)
        meas = np.asarray([np.nan if v is None else v for v in cur["measured"]], dtype=float)
        n_max = max(n_max, len(pred), len(meas))
        ax.plot(np.arange(len(meas)), 100 * meas, "o-", color=color,
                label=f"{cur['label']}: measured")
        ax.plot(np.arange(len(pred)), 100 * pred, "s--", mfc="none", color=color,
                label=f"{cur['label']}: linearised prediction")
        x_pll = max(len(pred), len(meas)) + 0.3
        if cur.get("pll_measured") is not None:
            ax.plot([x_pll], [100 * cur["pll_measured"]], "*", ms=12, color=color)
        if cur.get("pll_predicted") is not None:
            ax.plot([x_pll], [100 * cur["pll_predicted"]], "D", ms=8, mfc="none", color=color)
    ticks = list(range(n_max))
    labels = ["teacher"] + [f"sd-{s}" for s in range(1, n_max)]
    if any(c.get("pll_measured") is not None or c.get("pll_predicted") is not None
           for c in curves):
        ticks.append(n_max + 0.3)
        labels.append("PLL")
    ax.set_xticks(ticks)
    ax.set_xticklabels(labels)
    ax.set_ylabel("train accuracy vs true labels (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return _save(fig, path)
