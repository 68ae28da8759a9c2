"""``selfdistill embed``: CSV/JSONL text -> feature file (extra ``[text]``)."""

from __future__ import annotations

from pathlib import Path

import typer

from ._app import app, console
from ._common import check_distinct_paths, guard, progress_bar


@app.command()
def embed(
    train: Path = typer.Argument(..., help="Training texts: .csv with a header, or .jsonl."),
    out: Path = typer.Option(..., "-o", "--out", help="Feature file to write (.npz)."),
    test: Path = typer.Option(None, "--test", help="Test texts, same format."),
    text_col: str = typer.Option("text", help="Column / key holding the text."),
    label_col: str = typer.Option("category", help="Column / key holding the label."),
    batch_size: int = typer.Option(128, min=1, help="Sentences per model batch."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Embed texts with the bundled all-MiniLM-L6-v2 (normalised, 384-d) into OUT.npz."""
    from .._errors import SelfDistillError
    from ..datasets import save_features
    from ..embed import embed_files

    with guard():
        if out.suffix != ".npz":
            raise SelfDistillError(f"-o must name a .npz file, got {out}")
        if out.is_dir():
            raise SelfDistillError(f"cannot write {out}: it is a directory")
        if not out.parent.is_dir() and str(out.parent):
            raise SelfDistillError(f"cannot write {out}: folder {out.parent} does not exist")
        check_distinct_paths({"TRAIN": train, "--test": test}, {"--out": out})
        with progress_bar("embedding", quiet=quiet) as update:
            ds = embed_files(train, test=test, text_col=text_col, label_col=label_col,
                             batch_size=batch_size, progress=update)
        save_features(out, ds)
    console.print(f"{out}: X_train {ds.X_train.shape}, {ds.n_test} test rows, "
                  f"{ds.n_classes} classes", markup=False, highlight=False, soft_wrap=True)
