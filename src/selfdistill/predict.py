"""Predictions of a saved model on new rows: the class, its probability and the top k."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._errors import SelfDistillError
from .inputs import Rows
from .model_io import SavedModel

__all__ = ["Predictions", "predict_rows", "write_predictions"]


@dataclass(frozen=True, eq=False)
class Predictions:
    """Top-k predictions of one model on ``n`` rows.

    Attributes
    ----------
    top : ndarray of shape (n, k) of int
        Class indices (into ``classes``), most probable first.
    proba : ndarray of shape (n, k)
        Their probabilities.
    classes : ndarray of shape (K,)
    labels : ndarray of shape (n,) of str or None
        Given labels of the rows, when the input had them.
    texts : list of str or None
    """

    top: np.ndarray
    proba: np.ndarray
    classes: np.ndarray
    labels: np.ndarray | None = None
    texts: list[str] | None = None

    @property
    def predicted(self) -> np.ndarray:
        """Predicted class name of each row (n,)."""
        return self.classes[self.top[:, 0]].astype(str)

    @property
    def accuracy(self) -> float | None:
        """Share of rows whose prediction equals the given label (``None`` without labels)."""
        if self.labels is None:
            return None
        return float(np.mean(self.predicted == self.labels.astype(str)))


def predict_rows(model: SavedModel, rows: Rows, *, top_k: int = 3) -> Predictions:
    """Apply ``model`` to ``rows``.

    The predicted class is the argmax of the logits ``X @ W.T`` computed in the
    features' dtype, exactly as ``fit`` scores its test set, so the accuracy on the same
    rows is the same number.

    Raises
    ------
    SelfDistillError
        ``rows`` do not have the model's ``d`` columns, or ``top_k < 1``.
    """
    if top_k < 1:
        raise SelfDistillError(f"--top-k must be at least 1, got {top_k}")
    model.check_features(rows.X, where=rows.source)
    Z = model.logits(rows.X).astype(np.float64)
    k = min(top_k, model.n_classes)
    order = np.argsort(-Z, axis=1, kind="stable")[:, :k]
    Z -= Z.max(axis=1, keepdims=True)
    P = np.exp(Z)
    P /= P.sum(axis=1, keepdims=True)
    return Predictions(order, np.take_along_axis(P, order, axis=1), np.asarray(model.classes),
                       rows.labels, rows.texts)


def write_predictions(path: str | Path, pred: Predictions) -> None:
    """CSV ``row,predicted,probability,top1,p1,...,topk,pk[,given][,text]`` (atomic).

    ``row`` counts the input's rows from 0; ``given`` and ``text`` appear when the
    input had labels / texts.
    """
    from ._io import write_text_atomic

    k = pred.top.shape[1]
    header = ["row", "predicted", "probability"]
    for j in range(1, k + 1):
        header += [f"top{j}", f"p{j}"]
    if pred.labels is not None:
        header.append("given")
    if pred.texts is not None:
        header.append("text")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    names = pred.classes.astype(str)
    for i in range(len(pred.top)):
        row: list[object] = [i, names[pred.top[i, 0]], f"{pred.proba[i, 0]:.6f}"]
        for j in range(k):
            row += [names[pred.top[i, j]], f"{pred.proba[i, j]:.6f}"]
        if pred.labels is not None:
            row.append(pred.labels[i])
        if pred.texts is not None:
            row.append(pred.texts[i])
        w.writerow(row)
    write_text_atomic(path, buf.getvalue())
