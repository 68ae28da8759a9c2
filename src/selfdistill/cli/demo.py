"""``selfdistill demo``: the main job on the bundled BANKING77 embeddings."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from ._app import app, console
from ._common import guard, progress_bar

#: Training rows of `demo --quick` (stratified subsample; the test set is kept whole).
QUICK_N = 1000


@app.command()
def demo(
    out: Path = typer.Option(Path("selfdistill-demo"), "--out", help="Output folder."),
    quick: bool = typer.Option(
        False, "--quick", help=f"A {QUICK_N:,}-row training subsample (for smoke tests)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Sym noise 0, 0.5, 0.8 on BANKING77: teacher + SD 1..4 + PLL; report.html and CSV/JSON."""
    from .._io import ensure_dir
    from ..datasets import load_banking77
    from ..experiments.demo import headline_rows, run_demo, subsample, write_demo_outputs

    with guard():
        out = ensure_dir(out)
        ds = load_banking77()
        if quick:
            ds = subsample(ds, QUICK_N)
        with progress_bar("demo", quiet=quiet) as update:
            records = run_demo(ds, progress=update)
        paths = write_demo_outputs(records, out, ds)
    rows = headline_rows(records)
    table = Table(title=f"{records[0]['dataset']}: test accuracy (%), lam={records[0]['lam']:g}",
                  title_justify="left")
    for col in rows[0]:
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(*["-" if v is None else str(v) for v in r.values()])
    console.print(table)
    console.print(f"report: {paths['html']}  (also results.csv, results.json, *.png in {out})")
