"""``selfdistill report``: DIR/report.html (figures embedded) from a sweep or demo folder."""

from __future__ import annotations

from pathlib import Path

import typer

from ._app import app, console
from ._common import guard


@app.command()
def report(
    folder: Path = typer.Argument(..., help="Folder of a sweep (results.sqlite) or of "
                                  "`selfdistill demo` (results.csv)."),
    title: str = typer.Option(None, help="Report title (default: the config's title)."),
) -> None:
    """Write FOLDER/report.html: headline table, accuracy vs rounds, methods vs noise rate."""
    from .._io import check_writable_dir
    from ..experiments.sweep_report import write_sweep_report

    with guard():
        if folder.is_dir():  # a missing folder is reported by the reader
            check_writable_dir(folder, what="the report")
        paths = write_sweep_report(folder, title=title)
    n_fig = sum(1 for k in paths if k not in ("html", "headline"))
    console.print(f"report: {paths['html']} ({n_fig} figures, also saved as PNG in {folder}; "
                  f"headline table as Markdown: {paths['headline']})",
                  markup=False, highlight=False, soft_wrap=True)
