"""Feature files, the bundled BANKING77 embeddings and scikit-learn's digits.

A feature file is an ``.npz`` archive (loaded with ``allow_pickle=False``; a file
we did not write never runs code) with the keys of SPEC.md:

=============  ==================  =======================================
key            shape / dtype       meaning
=============  ==================  =======================================
X_train        (N, d) float        features (Phi in THEORY.md)
y_train        (N,) int 0..K-1     labels as given (clean or already noisy)
X_test         (M, d) float        optional, needed for test accuracy
y_test         (M,) int            optional, with X_test
classes        (K,) str            optional class names
y_train_clean  (N,) int            optional true labels of a noisy y_train
=============  ==================  =======================================
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
        Labels as given, ints in ``0..K-1``.
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
        with np.load(path, allow_pickle=False) as archive:
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
    K = None
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
    y = check_labels(arrays["y_train"], n_samples=N, n_classes=K, name="y_train", where=where)
    if K is None:
        K = int(y.max()) + 1
        classes = np.array([str(k) for k in range(K)])
    y_clean = None
    if "y_train_clean" in arrays:
        y_clean = check_labels(
            arrays["y_train_clean"], n_samples=N, n_classes=K, name="y_train_clean", where=where
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
            arrays["y_test"],
            n_samples=X_test.shape[0],
            n_classes=K,
            name="y_test",
            where=where,
            min_classes=1,
        )
    return Dataset(X, y, X_test, y_test, classes, y_clean, name)


def load_features(path: str | Path) -> Dataset:
    """Load and validate a feature file (SPEC.md format).

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
