"""Matplotlib at the bottom of the stack: the Agg backend and one atomic PNG writer.

Shared by :mod:`selfdistill.experiments.plots` and :mod:`selfdistill.theory.plots`, so
neither depends on the other. matplotlib is imported on first use only.
"""

from __future__ import annotations

from pathlib import Path

from ._io import atomic_path

__all__ = ["pyplot", "savefig"]


def pyplot():
    """``matplotlib.pyplot`` with the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def savefig(fig, path: str | Path) -> Path:
    """Save a figure as PNG atomically and close it."""
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    pyplot().close(fig)
    return Path(path)
