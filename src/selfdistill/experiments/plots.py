"""Figures people look at: accuracy vs round, methods vs noise rate, labels fixed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .._plotting import pyplot as _plt
from .._plotting import savefig
from .tables import aggregate, round_index

__all__ = ["plot_accuracy_vs_rounds", "plot_methods_vs_rate", "plot_noisy_subset", "savefig"]


#: Width of every figure in inches: at the 110 dpi of :func:`savefig` about 1040 px, the
#: width the HTML report shows it at (its column is 1100 px), so ticks stay readable.
FIG_WIDTH = 9.4
#: Panels per figure row; more noise kinds wrap onto further rows.
MAX_COLS = 2


def _share_clean(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The clean rows (kind ``none``/``given`` at rate 0) copied into every noise kind.

    The clean point is rate 0 of every kind's curve, not a panel of its own (one point
    on an empty axis).
    """
    clean = ("none", "given")
    kinds = sorted({r["noise_kind"] for r in rows} - set(clean))
    if not kinds:
        return list(rows)
    out = []
    for r in rows:
        if r["noise_kind"] in clean and not r["rate"]:
            out.extend({**r, "noise_kind": k} for k in kinds)
        else:
            out.append(r)
    return out


def _panels_by_kind(rows: list[dict[str, Any]], metric: str):
    """A figure with one panel per noise kind: ``(fig, [(ax, kind)], aggregated metric)``.

    At most :data:`MAX_COLS` panels a row, :data:`FIG_WIDTH` wide in all.
    """
    rows = _share_clean(rows)
    kinds = sorted({r["noise_kind"] for r in rows})
    ncols = min(len(kinds), MAX_COLS)
    nrows = -(-len(kinds) // ncols)
    fig, axes = _plt().subplots(nrows, ncols, figsize=(FIG_WIDTH, 3.9 * nrows + 0.3),
                                squeeze=False, layout="constrained")
    flat = list(axes.ravel())
    for ax in flat[len(kinds):]:
        ax.set_visible(False)
    return fig, list(zip(flat, kinds)), aggregate(rows, ["noise_kind", "rate", "model"],
                                                  metric)


def _finish_panel(ax, kind: str, metric: str, xlabel: str, legend: bool = True) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{metric.replace('_', ' ')} (%)")
    ax.set_title(f"{kind} noise")
    ax.grid(alpha=0.3)
    if legend:  # below the axes, never over the curves
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2),
                  ncol=4, frameon=False)


def plot_accuracy_vs_rounds(rows: list[dict[str, Any]], path: str | Path,
                            metric: str = "test_acc") -> Path:
    """Accuracy vs SD round (0 = teacher), one line per noise kind and rate; PLL dashed."""
    plt = _plt()
    fig, panels, agg = _panels_by_kind(rows, metric)
    for ax, kind in panels:
        rates = sorted({k[1] for k in agg if k[0] == kind})
        colors = plt.cm.viridis(np.linspace(0, 0.9, max(len(rates), 1)))
        for rate, color in zip(rates, colors):
            pts = sorted((round_index(k[2]), v[0]) for k, v in agg.items()
                         if k[0] == kind and k[1] == rate and round_index(k[2]) >= 0)
            if pts:
                ax.plot([p[0] for p in pts], [100 * p[1] for p in pts], "o-", color=color,
                        label=f"rate {rate:g}")
            pll = agg.get((kind, rate, "pll"))
            if pll is not None:
                ax.axhline(100 * pll[0], color=color, ls="--", lw=1)
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        _finish_panel(ax, kind, metric, "SD round (0 = teacher); dashed = PLL student")
    fig.suptitle("Accuracy vs self-distillation round")
    return savefig(fig, path)


def best_sd(agg: dict, kind: str, rate: float) -> float | None:
    """Best mean accuracy over SD rounds >= 1 at (kind, rate)."""
    vals = [v[0] for k, v in agg.items() if k[0] == kind and k[1] == rate
            and round_index(k[2]) >= 1]
    return max(vals) if vals else None


def plot_methods_vs_rate(rows: list[dict[str, Any]], path: str | Path,
                         metric: str = "test_acc") -> Path:
    """Teacher vs best SD round vs PLL as a function of the noise rate, per noise kind."""
    fig, panels, agg = _panels_by_kind(rows, metric)
    for ax, kind in panels:
        rates = sorted({k[1] for k in agg if k[0] == kind})
        series = {
            "teacher": [agg.get((kind, r, "teacher"), (np.nan,))[0] for r in rates],
            "best SD round": [best_sd(agg, kind, r) or np.nan for r in rates],
            "PLL": [agg.get((kind, r, "pll"), (np.nan,))[0] for r in rates],
        }
        for (label, ys), marker, size in zip(series.items(), "osD", (8, 6, 5)):
            # decreasing marker sizes: equal values (teacher = SD at rate 0) stay visible
            ax.plot(rates, 100 * np.asarray(ys, dtype=float), marker + "-", ms=size,
                    label=label)
        if len(rates) == 1:
            ax.set_xlim(rates[0] - 0.1, rates[0] + 0.1)
        _finish_panel(ax, kind, metric, "noise rate", legend=False)
    handles, labels = panels[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=8,
               frameon=False)
    fig.suptitle("Teacher vs best SD vs PLL")
    return savefig(fig, path)


def plot_noisy_subset(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Share of wrongly-labelled training rows each model predicts correctly."""
    plt = _plt()
    sub = [r for r in rows if r.get("noisy_subset_acc") is not None]
    agg = aggregate(sub, ["noise_kind", "rate", "model"], "noisy_subset_acc")
    groups = sorted({(k[0], k[1]) for k in agg})
    models = sorted({k[2] for k in agg}, key=lambda m: (round_index(m) < 0, round_index(m)))
    fig, ax = plt.subplots(figsize=(min(FIG_WIDTH, max(6.0, 1.2 * len(groups) + 3)), 3.9),
                           layout="constrained")
    width = 0.8 / max(len(models), 1)
    for j, m in enumerate(models):
        ys = [100 * agg.get((g[0], g[1], m), (np.nan,))[0] for g in groups]
        ax.bar(np.arange(len(groups)) + j * width, ys, width, label=m)
    ax.set_xticks(np.arange(len(groups)) + 0.4 - width / 2)
    ax.set_xticklabels([f"{g[0]} {g[1]:g}" for g in groups],
                       rotation=30 if len(groups) > 6 else 0)
    ax.set_ylabel("wrong labels fixed (%)")
    ax.set_title("Accuracy on the training rows whose given label is wrong")
    # beside the bars, never over them
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.grid(alpha=0.3, axis="y")
    return savefig(fig, path)
