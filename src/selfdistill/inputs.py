"""Any supported input file -> features (and labels, texts) for ``fit`` and ``predict``.

=====================  ==============================================================
suffix                 read as
=====================  ==============================================================
``.npz``               a feature file (:mod:`selfdistill.datasets`, spec.md)
``.csv``, ``.jsonl``   texts in ``text_col`` and labels in ``label_col``, embedded with
                       the bundled all-MiniLM-L6-v2 (extra ``[text]``); the embeddings
                       are cached beside the input (:func:`cache_path`), so a second run
                       on the same file does not embed again
``.parquet``           an embedding column (fixed-size list, or lists of one length, of
                       numbers) and a label column, through pyarrow (extra ``[parquet]``);
                       a ``text_col`` column, when present, is kept as the rows' texts
=====================  ==============================================================

Labels are class *names* (text) everywhere here; :func:`load_training` turns them into
indices into the sorted training names, as ``selfdistill embed`` does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._errors import SelfDistillError, one_line
from ._validation import check_features
from .datasets import Dataset, dataset_from_arrays, load_features

__all__ = ["Rows", "TrainingInput", "read_rows", "load_training", "cache_path", "SUFFIXES",
           "CACHE_DIR"]

TEXT_SUFFIXES = (".csv", ".jsonl", ".ndjson")
SUFFIXES = (".npz", *TEXT_SUFFIXES, ".parquet")
#: folder beside a text input holding its cached embeddings
CACHE_DIR = ".selfdistill-cache"

Progress = Callable[[int, int], None]


@dataclass(frozen=True, eq=False)
class Rows:
    """The rows of one input file.

    Attributes
    ----------
    X : ndarray of shape (n, d)
        Features (float32 for embedded texts).
    labels : ndarray of shape (n,) of str, or None
        Class names as given (``None`` when the file has no labels).
    texts : list of str or None
        The rows' texts, when the file had them.
    source : str
        The file.
    embedding_model : str
        Sentence model that embedded the texts, ``""`` for given features.
    classes : ndarray of str or None
        Class order declared by a feature file's ``classes`` (``None`` otherwise).
    from_cache : bool
        The embeddings were read from the cache (nothing was embedded).
    """

    X: np.ndarray
    labels: np.ndarray | None
    texts: list[str] | None
    source: str
    embedding_model: str = ""
    classes: np.ndarray | None = None
    from_cache: bool = False


@dataclass(frozen=True, eq=False)
class TrainingInput:
    """What ``fit`` trains on: the dataset, and where its features came from.

    Attributes
    ----------
    dataset : Dataset
    texts : list of str or None
        Training texts (for the relabelled file and the report).
    embedding_model : str
        ``""`` for given features.
    features_sha256 : str
        :func:`selfdistill.model_io.features_sha256` of ``dataset.X_train``.
    embedded : int
        Texts embedded by this call (0 when every embedding came from the cache).
    """

    dataset: Dataset
    texts: list[str] | None
    embedding_model: str
    features_sha256: str
    embedded: int = 0


def _suffix(path: Path, *, strict: bool = True) -> str:
    """The input kind by suffix; anything unknown is an ``.npz`` unless ``strict``."""
    suffix = path.suffix.lower()
    if suffix in SUFFIXES:
        return suffix
    if strict and path.is_dir():
        raise SelfDistillError(f"expected an input file, got a directory: {path}")
    if strict:
        raise SelfDistillError(f"{path}: expected a .npz, .csv, .jsonl or .parquet file")
    return ".npz"


def cache_path(path: str | Path, *, text_col: str = "text") -> Path:
    """Where the embeddings of text file ``path`` are cached.

    ``<folder of path>/.selfdistill-cache/<sha256>.npz``; the digest covers the file's
    bytes, the embedding model's name and ``text_col``, so an edited file (or another
    column) is embedded again, never served stale vectors.
    """
    from .embed import MODEL_NAME

    p = Path(path)
    h = hashlib.sha256()
    with open(p, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    h.update(f"\0{MODEL_NAME}\0{text_col}".encode())
    return p.parent / CACHE_DIR / f"{h.hexdigest()}.npz"


def _read_cache(path: Path, n: int) -> np.ndarray | None:
    """Cached embeddings of ``n`` texts, or ``None`` when absent or unusable."""
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as z:
            X = z["X"]
    except Exception:  # noqa: BLE001 - any unreadable cache just means "embed again"
        return None
    if X.ndim != 2 or X.shape[0] != n or X.dtype != np.float32 or not np.isfinite(X).all():
        return None
    return X


def _write_cache(path: Path, X: np.ndarray) -> None:
    """Store embeddings; best effort (a read-only folder only costs a re-embedding).

    Written straight to its place (temp file, rename), not in the command's output
    batch: valid embeddings are kept even when the command fails later. A new cache
    folder gets a ``.gitignore`` of ``*``.
    """
    from ._io import _umask

    with contextlib.suppress(OSError):
        if not path.parent.is_dir():
            path.parent.mkdir()
            # keep the cache out of version control without touching the user's .gitignore
            (path.parent / ".gitignore").write_text("*\n", encoding="utf-8")
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                os.fchmod(fh.fileno(), 0o666 & ~_umask())
                np.savez(fh, X=X)
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


_MODEL: list = []


def _sentence_model():
    """The bundled sentence model, loaded once per process."""
    from .embed import load_model

    if not _MODEL:
        _MODEL.append(load_model())
    return _MODEL[0]


def _read_text_rows(path: Path, *, text_col: str, label_col: str, need_labels: bool,
                    cache: bool, progress: Progress | None) -> Rows:
    from .embed import MODEL_NAME, embed_texts, read_text_table

    texts, labels = read_text_table(path, text_col=text_col, label_col=label_col,
                                    need_labels=need_labels)
    where = cache_path(path, text_col=text_col) if cache else None
    X = _read_cache(where, len(texts)) if where is not None else None
    hit = X is not None
    if X is None:
        X = embed_texts(texts, model=_sentence_model(), progress=progress)
        if where is not None:
            _write_cache(where, X)
    elif progress is not None:
        progress(len(texts), len(texts))
    return Rows(X, None if labels is None else np.array(labels, dtype=str), texts, str(path),
                MODEL_NAME, None, hit)


def _parquet_embeddings(col, *, name: str, where: str) -> np.ndarray:
    """An Arrow column of fixed-size lists / equal-length lists of numbers -> (n, d)."""
    import pyarrow as pa

    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    t = col.type
    if col.null_count:
        raise SelfDistillError(f"column {name!r} in {where} has {col.null_count} missing "
                               "(null) embeddings")
    if pa.types.is_fixed_size_list(t):
        width = t.list_size
    elif pa.types.is_list(t) or pa.types.is_large_list(t):
        lengths = np.asarray(col.value_lengths().to_numpy(zero_copy_only=False))
        if lengths.size and lengths.min() != lengths.max():
            raise SelfDistillError(
                f"column {name!r} in {where} is ragged: embeddings of {lengths.min()} to "
                f"{lengths.max()} values; every row needs the same length")
        width = int(lengths[0]) if lengths.size else 0
    else:
        raise SelfDistillError(f"column {name!r} in {where} must hold lists of numbers "
                               f"(one embedding a row), got type {t}")
    values = col.flatten()
    if not (pa.types.is_floating(values.type) or pa.types.is_integer(values.type)):
        raise SelfDistillError(f"column {name!r} in {where} must hold numbers, got "
                               f"{values.type}")
    if values.null_count:
        raise SelfDistillError(f"column {name!r} in {where} has {values.null_count} missing "
                               "(null) values inside embeddings")
    X = np.asarray(values.to_numpy(zero_copy_only=False))
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    return X.reshape(len(col), width)


def _read_parquet_rows(path: Path, *, text_col: str, label_col: str, embedding_col: str,
                       need_labels: bool) -> Rows:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise SelfDistillError("reading .parquet needs pyarrow: pip install "
                               "'selfdistill[parquet]'") from None
    where = str(path)
    if not path.is_file():
        raise SelfDistillError(f"input file not found: {where}")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise SelfDistillError(f"{where} is not a readable Parquet file: {one_line(exc)}"
                               ) from None
    cols = table.column_names
    need = (embedding_col, label_col) if need_labels else (embedding_col,)
    for col in need:
        if col not in cols:
            raise SelfDistillError(f"{where} has no column {col!r}; columns: "
                                   f"{', '.join(cols) or 'none'}")
    if table.num_rows == 0:
        raise SelfDistillError(f"{where} has no rows")
    X = _parquet_embeddings(table.column(embedding_col), name=embedding_col, where=where)
    X = check_features(X, name=f"column {embedding_col!r}", where=where)
    labels = None
    if label_col in cols:
        raw = table.column(label_col).to_pylist()
        empty = sum(v is None or not str(v).strip() for v in raw)
        if empty:
            raise SelfDistillError(f"column {label_col!r} in {where} has {empty} empty "
                                   "label(s)")
        labels = np.array([str(v) for v in raw], dtype=str)
    texts = None
    if text_col in cols and pa.types.is_string(table.column(text_col).type):
        texts = ["" if v is None else str(v) for v in table.column(text_col).to_pylist()]
    return Rows(X, labels, texts, where)


def _npz_label_names(y: np.ndarray, classes: np.ndarray | None, *, name: str,
                     where: str) -> np.ndarray:
    from .datasets import _raw_labels

    raw = _raw_labels(y, name=name, where=where)
    if raw.dtype.kind == "U" or classes is None:
        return raw.astype(str)
    if raw.min() < 0 or raw.max() >= len(classes):
        raise SelfDistillError(f"{name} in {where} must lie in [0, {len(classes) - 1}], got "
                               f"values in [{raw.min()}, {raw.max()}]")
    return classes[raw]


def _read_npz_rows(path: Path, *, split: str, need_labels: bool) -> Rows:
    from .datasets import _read_npz

    where = str(path)
    if not path.exists():
        raise SelfDistillError(f"input file not found: {where}")
    arrays = _read_npz(path)
    if split not in ("auto", "test", "train"):
        raise SelfDistillError(f"split must be auto, test or train, got {split!r}")
    key = "X_test" if split == "test" or (split == "auto" and "X_test" in arrays) else "X_train"
    if key not in arrays:
        has = ", ".join(sorted(arrays)) or "nothing"
        raise SelfDistillError(f"{where} has no features ({key}" +
                               (" for --split test" if split == "test" else " or X_test") +
                               f"); it holds {has}")
    X = check_features(arrays[key], name=key, where=where)
    y_key = key.replace("X_", "y_")
    classes = None
    if "classes" in arrays:
        classes = np.asarray(arrays["classes"])
        if classes.ndim != 1 or classes.dtype.kind not in "UiS":
            raise SelfDistillError(f"classes in {where} must be a 1-D array of names")
        classes = classes.astype(str)
    labels = None
    if y_key in arrays:
        labels = _npz_label_names(arrays[y_key], classes, name=y_key, where=where)
        if len(labels) != X.shape[0]:
            raise SelfDistillError(f"{y_key} in {where} has {len(labels)} labels but {key} has "
                                   f"{X.shape[0]} rows")
    elif need_labels:
        raise SelfDistillError(f"{where} has {key} but no {y_key}")
    return Rows(X, labels, None, where, "", classes)


def read_rows(
    path: str | Path,
    *,
    text_col: str = "text",
    label_col: str = "category",
    embedding_col: str = "embedding",
    need_labels: bool = True,
    split: str = "auto",
    cache: bool = True,
    progress: Progress | None = None,
) -> Rows:
    """Features, labels and texts of one input file (module docstring's formats).

    Parameters
    ----------
    path : str or Path
    text_col : str, default="text"
        Text column of ``.csv``/``.jsonl`` (kept as the rows' texts for ``.parquet``).
    label_col : str, default="category"
        Label column (``.csv``, ``.jsonl``, ``.parquet``).
    embedding_col : str, default="embedding"
        Embedding column of ``.parquet``.
    need_labels : bool, default=True
        Refuse a file without labels (``predict`` reads files without them).
    split : {"auto", "test", "train"}, default="auto"
        Which rows of an ``.npz``: ``X_test``/``y_test`` when present (``"auto"``) or
        asked for, else ``X_train``/``y_train``.
    cache : bool, default=True
        Read and write the embeddings cache of text files (:func:`cache_path`).
    progress : callable ``(done, total)``, optional
        Embedding progress.

    Returns
    -------
    Rows

    Raises
    ------
    SelfDistillError
        Unknown suffix, missing file or column, empty texts, ragged Parquet embeddings,
        a file without features, pyarrow missing for ``.parquet``.
    """
    p = Path(path)
    suffix = _suffix(p)
    if suffix == ".npz":
        return _read_npz_rows(p, split=split, need_labels=need_labels)
    if suffix == ".parquet":
        return _read_parquet_rows(p, text_col=text_col, label_col=label_col,
                                  embedding_col=embedding_col, need_labels=need_labels)
    return _read_text_rows(p, text_col=text_col, label_col=label_col, need_labels=need_labels,
                           cache=cache, progress=progress)


def _test_indices(rows: Rows, classes: np.ndarray, d: int, *, train: str) -> np.ndarray:
    """Test labels (names) -> indices into the training classes; d must match."""
    if rows.X.shape[1] != d:
        raise SelfDistillError(f"{rows.source} has {rows.X.shape[1]} feature columns but "
                               f"{train} has {d}")
    index = {c: i for i, c in enumerate(classes.tolist())}
    assert rows.labels is not None
    unknown = sorted(set(rows.labels.tolist()) - set(index))
    if unknown:
        raise SelfDistillError(f"{rows.source} has label(s) not in {train}: "
                               f"{', '.join(map(repr, unknown[:5]))}")
    return np.array([index[c] for c in rows.labels.tolist()], dtype=np.int64)


def load_training(
    path: str | Path,
    *,
    test: str | Path | None = None,
    text_col: str = "text",
    label_col: str = "category",
    embedding_col: str = "embedding",
    cache: bool = True,
    progress: Progress | None = None,
) -> TrainingInput:
    """The training set of ``fit``, and an optional test set, from any supported file.

    Parameters
    ----------
    path : str or Path
        Training rows: a feature file (all of spec.md's keys), texts, or Parquet.
    test : str or Path, optional
        Test rows in any supported format (``X_test`` of an ``.npz``, else its
        ``X_train``); they replace a training ``.npz``'s own test set. Their labels
        must be among the training classes and their width equal the training one.
    text_col, label_col, embedding_col, cache, progress
        As :func:`read_rows`.

    Returns
    -------
    TrainingInput
    """
    from .model_io import features_sha256

    p = Path(path)
    suffix = _suffix(p, strict=False)  # feature files keep their own messages
    if test is not None:
        _suffix(Path(test))
    n_embedded = 0
    if suffix == ".npz":
        ds = load_features(p)
        texts, model = None, ""
    else:
        rows = read_rows(p, text_col=text_col, label_col=label_col,
                         embedding_col=embedding_col, cache=cache, progress=progress)
        n_embedded += 0 if rows.from_cache or not rows.embedding_model else len(rows.X)
        ds = dataset_from_arrays({"X_train": rows.X, "y_train": rows.labels},
                                 where=str(p), name=p.stem)
        texts, model = rows.texts, rows.embedding_model
    if test is not None:
        te = read_rows(test, text_col=text_col, label_col=label_col,
                       embedding_col=embedding_col, cache=cache, progress=progress)
        n_embedded += 0 if te.from_cache or not te.embedding_model else len(te.X)
        if te.embedding_model != model:
            raise SelfDistillError(
                f"{test} gives {'texts' if te.embedding_model else 'features'} but {p} "
                f"gives {'texts' if model else 'features'}; use the same kind for both")
        y_te = _test_indices(te, ds.classes, ds.X_train.shape[1], train=str(p))
        ds = dataclasses.replace(ds, X_test=te.X, y_test=y_te)
    return TrainingInput(ds, texts, model, features_sha256(ds.X_train), n_embedded)
