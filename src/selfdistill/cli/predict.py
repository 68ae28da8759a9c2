"""``selfdistill predict``: a saved model on new rows -> class, probability and top k."""

from __future__ import annotations

from pathlib import Path

import typer

from ._app import app, console
from ._common import check_distinct_paths, guard, progress_bar


@app.command()
def predict(
    model: Path = typer.Argument(..., metavar="MODEL",
                                 help="Model file written by fit --model (.npz)."),
    input_path: Path = typer.Argument(
        ..., metavar="INPUT", help="Rows to predict: .npz (X_test when present, else X_train; "
        "see --split), .csv/.jsonl of texts, or .parquet with an embedding column."),
    out: Path = typer.Option(..., "--out", "-o", help="Predictions to write (.csv)."),
    top_k: int = typer.Option(3, "--top-k", min=1, help="Most probable classes listed per row."),
    text_col: str = typer.Option("text", help="Text column of .csv/.jsonl."),
    label_col: str = typer.Option("category", help="Label column; when present, the "
                                  "accuracy is printed and a 'given' column written."),
    embedding_col: str = typer.Option("embedding", help="Embedding column of .parquet."),
    split: str = typer.Option("auto", help="Rows of an .npz: auto (X_test when present, "
                              "else X_train), test or train."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Predict INPUT's rows with MODEL; write row, predicted, probability and the top k."""
    from .._errors import SelfDistillError
    from ..inputs import read_rows
    from ..model_io import read_model
    from ..predict import predict_rows, write_predictions

    with guard():
        check_distinct_paths({"MODEL": model, "INPUT": input_path}, {"--out": out})
        if out.suffix.lower() != ".csv":
            raise SelfDistillError(f"--out must name a .csv file, got {out}")
        if out.is_dir():
            raise SelfDistillError(f"cannot write {out}: it is a directory")
        if split not in ("auto", "test", "train"):
            raise SelfDistillError(f"--split must be auto, test or train, got {split!r}")
        saved = read_model(model)
        with progress_bar("predict", quiet=quiet) as update:
            rows = read_rows(input_path, text_col=text_col, label_col=label_col,
                             embedding_col=embedding_col, need_labels=False, split=split,
                             progress=lambda d, t: update(d, t, "embedding texts"))
        if saved.embedding_model and rows.embedding_model not in ("", saved.embedding_model):
            raise SelfDistillError(f"{model} was trained on {saved.embedding_model} embeddings "
                                   f"but {input_path} is embedded with {rows.embedding_model}")
        pred = predict_rows(saved, rows, top_k=top_k)
        write_predictions(out, pred)
    acc = pred.accuracy
    console.print(f"{out}: {len(pred.top)} rows predicted by {saved.model_name} "
                  f"(lam={saved.lam:g}, K={saved.n_classes}, d={saved.d})"
                  + ("" if acc is None else f"; accuracy on the given labels "
                     f"{100 * acc:.2f}%"), markup=False, highlight=False, soft_wrap=True)
