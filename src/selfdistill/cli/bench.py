"""``selfdistill bench``: our solver vs scikit-learn, and the pipeline time."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from ._app import app, console
from ._common import guard, write_json


@app.command()
def bench(
    json_out: Path = typer.Option(None, "--json", help="Write the figures here (JSON)."),
    quick: bool = typer.Option(False, "--quick",
                               help="Tiny subsample, seconds: checks the plumbing only."),
    backend: str = typer.Option("numpy", help="Solver backend of our fit: numpy or torch."),
) -> None:
    """Time our teacher fit vs scikit-learn's LogisticRegression and the full pipeline."""
    from ..bench import BENCH_KEYS, run_bench

    with guard():
        if backend not in ("numpy", "torch"):
            from .._errors import SelfDistillError

            raise SelfDistillError(f"--backend must be numpy or torch, got {backend!r}")
        result = run_bench(quick=quick, backend=backend)
        if json_out is not None:
            write_json(json_out, {k: result[k] for k in BENCH_KEYS})
    table = Table(title="selfdistill bench" + (" (--quick: timings meaningless)" if quick else ""),
                  title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key in BENCH_KEYS:
        v = result[key]
        if isinstance(v, dict):
            v = ", ".join(f"{k} {x:.3g}" if isinstance(x, float) else f"{k} {x}"
                          for k, x in v.items())
        table.add_row(key, f"{v:.6g}" if isinstance(v, float) else str(v))
    console.print(table)
