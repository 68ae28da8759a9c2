"""What ``fit`` writes about the user's own data: the model file and the relabelled rows."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._errors import SelfDistillError
from ..datasets import Dataset
from ..issues import label_scores
from ..model_io import SavedModel, write_model
from .runner import RunResult

__all__ = ["Relabel", "relabel_rows", "write_relabel", "pick_model", "save_run_model"]


@dataclass(frozen=True, eq=False)
class Relabel:
    """Every training row with its given and suggested label.

    Attributes
    ----------
    given, suggested, cleaned : ndarray of shape (N,) of str
        Given label, the model's top class, and the label to keep (``suggested`` where
        flagged, else ``given``).
    flag : ndarray of shape (N,) of int8
        1 for a likely label error (the flagged set of ``fit``), else 0.
    score : ndarray of shape (N,)
        :func:`~selfdistill.issues.label_scores`, the probability that the given label
        is wrong under the noise estimated from the same probabilities, in [0, 1] (the
        largest over the flagging models, ``RunResult.flag_others``).
    source : str
        ``"out-of-fold"`` (each row judged by fold models that never saw it) or
        ``"in-sample"`` (the selected model, when no cross-validation ran).
    texts : list of str or None
    """

    given: np.ndarray
    suggested: np.ndarray
    cleaned: np.ndarray
    flag: np.ndarray
    score: np.ndarray
    source: str
    texts: list[str] | None = None


def relabel_rows(result: RunResult, ds: Dataset, texts: list[str] | None = None) -> Relabel:
    """One :class:`Relabel` row per training row of a run."""
    y = result.y_given
    if result.oof_proba is not None:
        P, source = result.oof_proba, "out-of-fold"
    else:
        P, source = result.predict_proba(ds.X_train), "in-sample"
    N = len(y)
    flag = np.zeros(N, dtype=np.int8)
    sugg = np.argmax(P, axis=1)
    if result.issues is not None:
        flag[result.issues.indices] = 1
        sugg[result.issues.indices] = result.issues.suggested
    names = ds.classes.astype(str)
    cleaned = np.where(flag == 1, sugg, y)
    return Relabel(names[y], names[sugg], names[cleaned], flag,
                   label_scores(P, y, result.flag_others), source, texts)


def write_relabel(path: str | Path, rel: Relabel) -> None:
    """``.csv`` (``row,given,suggested,cleaned,flag,score[,text]``) or ``.npz`` (same keys).

    Raises
    ------
    SelfDistillError
        Any other suffix.
    """
    from .._io import atomic_path, write_text_atomic

    p = Path(path)
    cols = {"row": np.arange(len(rel.given)), "given": rel.given, "suggested": rel.suggested,
            "cleaned": rel.cleaned, "flag": rel.flag, "score": rel.score}
    if rel.texts is not None:
        cols["text"] = np.array(rel.texts, dtype=str)
    if p.suffix.lower() == ".npz":
        with atomic_path(p, suffix=".npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **cols)
        return
    if p.suffix.lower() != ".csv":
        raise SelfDistillError(f"--relabel must name a .csv or .npz file, got {p}")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(list(cols))
    for i in range(len(rel.given)):
        row = [i, rel.given[i], rel.suggested[i], rel.cleaned[i], int(rel.flag[i]),
               f"{rel.score[i]:.6f}"]
        if rel.texts is not None:
            row.append(rel.texts[i])
        w.writerow(row)
    write_text_atomic(p, buf.getvalue())


def pick_model(result: RunResult, name: str | None) -> str:
    """The model ``fit --model`` saves: ``name`` (``pll`` also finds ``pruned-pll``), or
    the selected one.

    Raises
    ------
    SelfDistillError
        No model of that name; the message lists the names.
    """
    if name is None:
        return result.selected
    names = [f.name for f in result.fits]
    for cand in (name, f"pruned-{name}"):
        if cand in names:
            return cand
    raise SelfDistillError(f"--model-name {name!r} is not a fitted model; choose one of "
                           f"{', '.join(names)}")


def save_run_model(path: str | Path, result: RunResult, ds: Dataset, *, name: str,
                   features_sha256: str = "", embedding_model: str = "") -> SavedModel:
    """Write the final model ``name`` of a run as a model file; return what was written."""
    coef, intercept = result.weights(name)
    model = SavedModel(W=coef, intercept=intercept, classes=ds.classes.astype(str),
                       lam=result.lam, model_name=name, features_sha256=features_sha256,
                       embedding_model=embedding_model)
    write_model(path, model)
    return model
