"""Feature files, the bundled BANKING77 embeddings and scikit-learn's digits.

A feature file is an ``.npz`` archive (loaded with ``allow_pickle=False``; a file
we did not write never runs code) with the keys of spec.md:

=============  ==================  =======================================
key            shape / dtype       meaning
=============  ==================  =======================================
X_train        (N, d) float        features (Phi in theory-derivation.md)
y_train        (N,) int or str     labels as given (clean or already noisy)
X_test         (M, d) float        optional, needed for test accuracy
y_test         (M,) int or str     optional, with X_test
classes        (K,) str            optional class names
y_train_clean  (N,) int or str     optional true labels of a noisy y_train
=============  ==================  =======================================

With ``classes``, integer labels are indices ``0..K-1`` into it and text labels are
its names. Without it the classes are the sorted distinct values of ``y_train`` and
``y_train_clean``, named by their values, as scikit-learn's estimators do: labels
{3, 7, 100} are three classes "3", "7", "100", never 101 (labels ``0..K-1`` all present
stay as they are).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ._errors import SelfDistillError, one_line
from ._validation import check_features, check_labels

__all__ = [
    "Dataset",
    "load_features",
    "save_features",
    "load_banking77",
    "load_digits_dataset",
    "load_dataset",
    "BUNDLED",
]

REQUIRED_KEYS = ("X_train", "y_train")
OPTIONAL_KEYS = ("X_test", "y_test", "classes", "y_train_clean")
BUNDLED = "banking77"


@dataclass(frozen=True)
class Dataset:
    """Train (and optional test) features with labels.

    Attributes
    ----------
    X_train : ndarray of shape (N, d)
    y_train : ndarray of shape (N,)
        Labels as given, ints in ``0..K-1`` (indices into ``classes``).
    X_test, y_test : ndarray or None
    classes : ndarray of shape (K,) of str
    y_train_clean : ndarray of shape (N,) or None
        True labels when ``y_train`` is already noisy.
    name : str
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray | None
    y_test: np.ndarray | None
    classes: np.ndarray
    y_train_clean: np.ndarray | None = None
    name: str = "dataset"

    @property
    def n_classes(self) -> int:
        """K, the number of classes."""
        return int(len(self.classes))

    @property
    def n_train(self) -> int:
        """N, the number of training rows."""
        return int(self.X_train.shape[0])

    @property
    def n_test(self) -> int:
        """M, the number of test rows (0 without a test set)."""
        return 0 if self.X_test is None else int(self.X_test.shape[0])


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    where = str(path)
    if not path.exists():
        raise SelfDistillError(f"feature file not found: {where}")
    if path.is_dir():
        raise SelfDistillError(f"expected a .npz file, got a directory: {where}")
    try:
        with open(path, "rb") as fh:
            magic = fh.read(6)
    except OSError as exc:
        raise SelfDistillError(f"cannot read {where}: {exc.strerror or exc}") from None
    if magic.startswith(b"\x93NUMPY"):
        raise SelfDistillError(f"{where} is a single .npy array, not an .npz archive")
    if not magic.startswith(b"PK"):
        raise SelfDistillError(f"{where} is not a readable .npz file (not a zip archive)")
    try:
        # our own file object, closed by `with` on every path: np.load given a name
        # leaks its handle when the zip reader fails on a "PK" file that is no zip
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as archive:
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise SelfDistillError(f"{where} is a single .npy array, not an .npz archive")
            out = {}
            for key in archive.files:
                out[key] = archive[key]
            return out
    except SelfDistillError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "object" in str(exc).lower():
            raise SelfDistillError(
                f"{where} holds an object (pickled) array; refused, only plain numeric and "
                "string arrays are read"
            ) from None
        raise SelfDistillError(f"{where} is not a readable .npz file: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - numpy's header parser raises many kinds
        # (OSError, EOFError, BadZipFile, SyntaxError, tokenize.TokenError, ...) on
        # corrupt members; all mean the same thing to the user
        raise SelfDistillError(f"{where} is not a readable .npz file: {one_line(exc)}"
                               ) from None


def _raw_labels(y: np.ndarray, *, name: str, where: str) -> np.ndarray:
    """A label array as it is in the file: 1-D int64 (integral numbers) or str."""
    label = f"{name} in {where}"
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise SelfDistillError(f"{label} must be 1-D (N,), got shape {arr.shape}")
    if arr.size == 0:
        raise SelfDistillError(f"{label} is empty")
    if arr.dtype.kind in "US":
        try:  # bytes that are not ASCII do not decode
            return arr.astype(str)
        except (UnicodeError, SystemError, ValueError):
            raise SelfDistillError(f"{label} holds labels that are not valid text") from None
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise SelfDistillError(
            f"{label} must hold integer or text labels, got dtype {arr.dtype}"
        )
    if arr.dtype.kind == "f" and (not np.all(np.isfinite(arr))
                                  or np.any(arr != np.round(arr))):
        raise SelfDistillError(f"{label} must hold integer labels, got non-integer floats")
    return arr.astype(np.int64)


def _encode_labels(
    raw: dict[str, np.ndarray], *, where: str
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Classes and indices for a file without ``classes``, as the estimator does.

    The classes are the sorted distinct values of ``y_train`` and ``y_train_clean``
    (integers or strings), named by their values as text; labels become indices
    ``0..K-1`` into them. Integer labels ``0..K-1`` all present map to themselves, so
    a file in spec.md's format loads as before. ``y_test`` must use the same values.
    """
    kinds = {k: v.dtype.kind == "U" for k, v in raw.items()}
    if len(set(kinds.values())) > 1:
        text = ", ".join(k for k, is_text in kinds.items() if is_text)
        raise SelfDistillError(
            f"labels in {where} mix text ({text}) and numbers; use one kind for all"
        )
    train_keys = [k for k in ("y_train", "y_train_clean") if k in raw]
    values = np.unique(np.concatenate([raw[k] for k in train_keys]))
    encoded = {}
    for key, arr in raw.items():
        idx = np.clip(np.searchsorted(values, arr), 0, len(values) - 1)
        unseen = arr[values[idx] != arr]
        if unseen.size:
            shown = ", ".join(str(v) for v in np.unique(unseen)[:5])
            raise SelfDistillError(
                f"{key} in {where} has label(s) {shown} not among the training labels "
                f"(y_train, y_train_clean)"
            )
        encoded[key] = idx.astype(np.int64)
    return np.array([str(v) for v in values.tolist()], dtype=str), encoded


def _names_to_indices(y: np.ndarray, classes: np.ndarray, *, name: str,
                      where: str) -> np.ndarray:
    """Text labels -> indices into the file's ``classes``."""
    lookup = {c: i for i, c in enumerate(classes.tolist())}
    unknown = sorted({v for v in y.tolist() if v not in lookup})
    if unknown:
        raise SelfDistillError(
            f"{name} in {where} has label(s) {', '.join(map(repr, unknown[:5]))} not in "
            "its classes array"
        )
    return np.array([lookup[v] for v in y.tolist()], dtype=np.int64)


def dataset_from_arrays(arrays: dict[str, np.ndarray], *, where: str, name: str) -> Dataset:
    """Validate a dict of arrays with the feature-file keys into a :class:`Dataset`."""
    missing = [k for k in REQUIRED_KEYS if k not in arrays]
    if missing:
        raise SelfDistillError(
            f"{where} lacks required key(s) {', '.join(missing)}; has {sorted(arrays)}"
        )
    unknown = sorted(set(arrays) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if unknown:
        raise SelfDistillError(
            f"{where} has unknown key(s) {', '.join(unknown)}; allowed: "
            f"{', '.join(REQUIRED_KEYS + OPTIONAL_KEYS)}"
        )
    X = check_features(arrays["X_train"], name="X_train", where=where)
    N, d = X.shape
    classes = arrays.get("classes")
    if classes is not None:
        classes = np.asarray(classes)
        if classes.ndim != 1 or classes.dtype.kind not in "UiS":
            raise SelfDistillError(f"classes in {where} must be a 1-D array of names")
        try:  # bytes that are not ASCII, or code points beyond U+10FFFF, do not decode
            names = [str(c) for c in classes.astype(str).tolist()]
        except (UnicodeError, SystemError, ValueError):
            raise SelfDistillError(f"classes in {where} holds names that are not valid "
                                   "text") from None
        classes = np.array(names, dtype=str)
        K = len(classes)
        if K < 2:
            raise SelfDistillError(f"classes in {where} lists {K} class; at least 2 are needed")
        if len(set(names)) != K:
            raise SelfDistillError(f"classes in {where} has duplicate names")
    label_keys = [k for k in ("y_train", "y_train_clean", "y_test") if k in arrays]
    if "y_test" in arrays and "X_test" not in arrays:
        label_keys.remove("y_test")  # refused below with the X_test/y_test message
    raw = {k: _raw_labels(arrays[k], name=k, where=where) for k in label_keys}
    if classes is None:
        classes, encoded = _encode_labels(raw, where=where)
    else:
        encoded = {k: _names_to_indices(v, classes, name=k, where=where)
                   if v.dtype.kind == "U" else v for k, v in raw.items()}
    K = len(classes)
    y = check_labels(encoded["y_train"], n_samples=N, n_classes=K, name="y_train", where=where)
    y_clean = None
    if "y_train_clean" in encoded:
        y_clean = check_labels(
            encoded["y_train_clean"], n_samples=N, n_classes=K, name="y_train_clean",
            where=where,
        )
    X_test = y_test = None
    if ("X_test" in arrays) != ("y_test" in arrays):
        raise SelfDistillError(f"{where} must have both X_test and y_test, or neither")
    if "X_test" in arrays:
        X_test = check_features(arrays["X_test"], name="X_test", where=where)
        if X_test.shape[1] != d:
            raise SelfDistillError(
                f"X_test in {where} has {X_test.shape[1]} columns but X_train has {d}"
            )
        y_test = check_labels(
            encoded["y_test"],
            n_samples=X_test.shape[0],
            n_classes=K,
            name="y_test",
            where=where,
            min_classes=1,
        )
    return Dataset(X, y, X_test, y_test, classes, y_clean, name)


def load_features(path: str | Path) -> Dataset:
    """Load and validate a feature file (spec.md format).

    Parameters
    ----------
    path : str or Path
        An ``.npz`` archive. Object arrays are refused, never unpickled.

    Returns
    -------
    Dataset

    Raises
    ------
    SelfDistillError
        Missing or unknown keys, wrong shapes or dtypes, NaN/inf, labels outside
        ``0..K-1``, fewer than two classes, or an unreadable file.
    """
    path = Path(path)
    return dataset_from_arrays(_read_npz(path), where=str(path), name=path.stem)


def save_features(path: str | Path, dataset: Dataset, *, compress: bool = True) -> None:
    """Write ``dataset`` as a feature file, atomically (temp file, then rename)."""
    from ._io import atomic_path

    arrays = {"X_train": dataset.X_train, "y_train": dataset.y_train, "classes": dataset.classes}
    if dataset.X_test is not None:
        arrays["X_test"] = dataset.X_test
        arrays["y_test"] = dataset.y_test
    if dataset.y_train_clean is not None:
        arrays["y_train_clean"] = dataset.y_train_clean
    saver = np.savez_compressed if compress else np.savez
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            saver(fh, **arrays)


def load_banking77() -> Dataset:
    """The bundled BANKING77 sentence embeddings (all-MiniLM-L6-v2, 384-d).

    10,003 train and 3,080 test online-banking queries in 77 intents, CC BY 4.0,
    from PolyAI's task-specific-datasets (Casanueva et al., 2020). Stored as
    float16 inside the package and returned as float32.

    Examples
    --------
    >>> ds = load_banking77()
    >>> ds.X_train.shape, ds.n_classes
    ((10003, 384), 77)
    """
    ref = resources.files("selfdistill") / "data" / "banking77-minilm-l6.npz"
    with resources.as_file(ref) as path:
        arrays = _read_npz(Path(path))
    for key in ("X_train", "X_test"):
        arrays[key] = arrays[key].astype(np.float32)
    return dataset_from_arrays(arrays, where="bundled banking77", name="banking77")


def load_digits_dataset(*, test_size: float = 0.3, seed: int = 0) -> Dataset:
    """scikit-learn's 8x8 digits (1,797 images, 10 classes), scaled to [0, 1] and split.

    Examples
    --------
    >>> ds = load_digits_dataset()
    >>> ds.X_train.shape, ds.n_test
    ((1257, 64), 540)
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=test_size, random_state=seed, stratify=y)
    classes = np.array([str(k) for k in range(10)])
    return Dataset(Xtr, ytr.astype(np.int64), Xte, yte.astype(np.int64), classes, None, "digits")


def load_dataset(spec: str | Path | None) -> Dataset:
    """Resolve a dataset name or path: ``None``/"banking77" (bundled), "digits", or a ``.npz``."""
    if spec is None or str(spec) == BUNDLED:
        return load_banking77()
    if str(spec) == "digits":
        return load_digits_dataset()
    return load_features(spec)
