"""Model files: a fitted linear softmax head as a versioned, pickle-free ``.npz``.

One format for ``selfdistill fit --model``, ``selfdistill predict``,
:meth:`SelfDistillationClassifier.save <selfdistill.SelfDistillationClassifier.save>`
and :func:`load_model`. Every member is a plain numeric or text array, so the file
loads with ``np.load(path, allow_pickle=False)`` and a file we did not write never runs
code.

=================  ==============  ==================================================
key                shape / dtype   meaning
=================  ==============  ==================================================
format             () str          ``"selfdistill-model"``
schema_version     () int64        :data:`SCHEMA_VERSION` (files from a newer schema
                                   are refused)
product_version    () str          ``selfdistill.__version__`` that wrote the file
W                  (K, d) float64  weights (``coef_``); logits are ``X @ W.T + intercept``
intercept          (K,) float64    bias of each class (``intercept_``; zeros for a model
                                   fitted without one). Schema 2 on; a schema-1 file has
                                   no intercept and loads with zeros
classes            (K,) str/int    class of each row of W (``classes[argmax]``)
lam                () float64      L2 strength the model was fitted with
model_name         () str          ``teacher``, ``sd-t``, ``pll`` (``pruned-`` prefix
                                   when fitted without the flagged rows)
d                  () int64        number of features (``W.shape[1]``)
features_sha256    () str          :func:`features_sha256` of the training features
                                   (empty when unknown)
embedding_model    () str          sentence model that made the features from texts
                                   (empty for given features)
params             () str          JSON of the estimator's parameters (``{}`` when
                                   written by the command line)
=================  ==============  ==================================================
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._errors import SelfDistillError

__all__ = ["SavedModel", "SCHEMA_VERSION", "OLDEST_SCHEMA_VERSION", "FORMAT", "write_model",
           "read_model", "load_model", "features_sha256"]

#: the schema this version writes and the newest it reads. 2 added ``intercept``: a
#: reader of schema 1 would ignore it and predict other probabilities, so it must refuse
#: the file (and does: it reads version 1 only).
SCHEMA_VERSION = 2
#: the oldest schema this version reads
OLDEST_SCHEMA_VERSION = 1
FORMAT = "selfdistill-model"
_KEYS = ("format", "schema_version", "product_version", "W", "classes", "lam", "model_name",
         "d", "features_sha256", "embedding_model", "params")
#: keys added by a schema version (required from that version on)
_KEYS_SINCE = {2: ("intercept",)}


def features_sha256(X: np.ndarray) -> str:
    """SHA-256 of a feature matrix: its shape, then its values as C-ordered float32.

    The same features give the same digest whatever their dtype or memory layout
    (float64 rows that round to the same float32 values included).

    Examples
    --------
    >>> X = np.arange(6.0).reshape(2, 3)
    >>> features_sha256(X) == features_sha256(X.astype(np.float32))
    True
    >>> len(features_sha256(X))
    64
    """
    X = np.ascontiguousarray(X, dtype=np.float32)
    h = hashlib.sha256(f"{X.shape}".encode())
    h.update(X.tobytes())
    return h.hexdigest()


@dataclass(frozen=True, eq=False)
class SavedModel:
    """The content of a model file.

    Attributes
    ----------
    W : ndarray of shape (K, d)
        Weights; class probabilities are ``softmax(X @ W.T + intercept)``.
    classes : ndarray of shape (K,)
        Class names (str) or values (int), one per row of ``W``.
    lam : float
    model_name : str
    features_sha256 : str
        Digest of the training features (:func:`features_sha256`), ``""`` when unknown.
    embedding_model : str
        Sentence model that embedded the training texts, ``""`` for given features.
    params : dict
        Estimator parameters (``{}`` for a model written by the command line).
    product_version : str
    schema_version : int
    intercept : ndarray of shape (K,) or None
        Bias of each class (:mod:`selfdistill.intercept`); None (the default) is read as
        zeros, a model without intercept.
    """

    W: np.ndarray
    classes: np.ndarray
    lam: float
    model_name: str
    features_sha256: str = ""
    embedding_model: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    product_version: str = ""
    schema_version: int = SCHEMA_VERSION
    intercept: np.ndarray | None = None

    def __post_init__(self) -> None:
        b = (np.zeros(self.W.shape[0]) if self.intercept is None
             else np.asarray(self.intercept, dtype=np.float64))
        object.__setattr__(self, "intercept", b)

    @property
    def d(self) -> int:
        """Number of features."""
        return int(self.W.shape[1])

    @property
    def n_classes(self) -> int:
        """K."""
        return int(self.W.shape[0])

    def logits(self, X: np.ndarray) -> np.ndarray:
        """``X @ W.T + intercept`` (M, K), computed in ``X``'s float dtype (as ``fit``
        evaluates: :func:`~selfdistill.intercept.linear_logits`)."""
        from .intercept import linear_logits

        return linear_logits(X, self.W, self.intercept)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """``softmax(X @ W.T + intercept)``, shape (M, K), float64."""
        from .losses import softmax

        return softmax(self.logits(X).astype(np.float64))

    def check_features(self, X: np.ndarray, *, where: str) -> None:
        """Raise :class:`SelfDistillError` unless ``X`` has this model's ``d`` columns."""
        if X.ndim != 2 or X.shape[1] != self.d:
            got = X.shape[1] if X.ndim == 2 else f"shape {X.shape}"
            raise SelfDistillError(
                f"{where} has {got} feature columns but the model expects d={self.d}")


def write_model(path: str | Path, model: SavedModel) -> Path:
    """Write ``model`` atomically as a model file (module docstring's keys).

    Parameters
    ----------
    path : str or Path
        Target, conventionally ``*.npz``.
    model : SavedModel

    Returns
    -------
    Path
    """
    from . import __version__
    from ._io import atomic_path

    classes = np.asarray(model.classes)
    if classes.dtype.kind not in "iuU":
        classes = classes.astype(str)
    arrays = {
        "format": np.array(FORMAT),
        "schema_version": np.array(SCHEMA_VERSION, dtype=np.int64),
        "product_version": np.array(__version__),
        "W": np.asarray(model.W, dtype=np.float64),
        "intercept": np.asarray(model.intercept, dtype=np.float64),
        "classes": classes,
        "lam": np.array(float(model.lam)),
        "model_name": np.array(str(model.model_name)),
        "d": np.array(model.d, dtype=np.int64),
        "features_sha256": np.array(str(model.features_sha256)),
        "embedding_model": np.array(str(model.embedding_model)),
        "params": np.array(json.dumps(model.params, sort_keys=True)),
    }
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    return Path(path)


def _scalar(arrays: dict[str, np.ndarray], key: str, kind: str, where: str) -> Any:
    arr = arrays[key]
    if arr.ndim != 0 or arr.dtype.kind not in kind:
        raise SelfDistillError(f"{key} in model file {where} is malformed "
                               f"(shape {arr.shape}, dtype {arr.dtype})")
    return arr.item()


def read_model(path: str | Path) -> SavedModel:
    """Read and validate a model file.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    SavedModel

    Raises
    ------
    SelfDistillError
        A missing or unreadable file, a file that is not a model file (a feature file,
        say), a schema version this selfdistill does not know (a file from a newer
        release), or malformed members (wrong shapes, NaN weights, ``d`` that disagrees
        with ``W``).
    """
    from .datasets import _read_npz

    p = Path(path)
    where = str(p)
    if not p.exists():
        raise SelfDistillError(f"model file not found: {where}")
    arrays = _read_npz(p)
    if "schema_version" not in arrays or "format" not in arrays:
        raise SelfDistillError(f"{where} is not a selfdistill model file (no format/"
                               "schema_version keys); write one with fit --model")
    fmt = _scalar(arrays, "format", "U", where)
    if fmt != FORMAT:
        raise SelfDistillError(f"{where} is not a selfdistill model file (format {fmt!r})")
    version = _scalar(arrays, "schema_version", "iu", where)
    if not OLDEST_SCHEMA_VERSION <= version <= SCHEMA_VERSION:
        from . import __version__

        raise SelfDistillError(
            f"{where} has model schema version {version}; selfdistill {__version__} reads "
            f"versions {OLDEST_SCHEMA_VERSION} to {SCHEMA_VERSION}"
            + (" (upgrade selfdistill)" if version > SCHEMA_VERSION else ""))
    required = _KEYS + tuple(k for v, keys in _KEYS_SINCE.items() if version >= v
                             for k in keys)
    missing = [k for k in required if k not in arrays]
    if missing:
        raise SelfDistillError(f"model file {where} lacks key(s) {', '.join(missing)}")
    W = arrays["W"]
    if W.ndim != 2 or W.dtype.kind != "f" or min(W.shape) < 1:
        raise SelfDistillError(f"W in model file {where} must be a 2-D float array (K, d), "
                               f"got shape {W.shape}, dtype {W.dtype}")
    if not np.all(np.isfinite(W)):
        raise SelfDistillError(f"W in model file {where} contains NaN or inf values")
    classes = arrays["classes"]
    if classes.ndim != 1 or classes.dtype.kind not in "iuU" or len(classes) != W.shape[0]:
        raise SelfDistillError(f"classes in model file {where} must be {W.shape[0]} names "
                               f"(one per row of W), got shape {classes.shape}")
    if W.shape[0] < 2 or len(np.unique(classes)) != len(classes):
        raise SelfDistillError(f"classes in model file {where} must be at least 2 distinct "
                               "names")
    intercept = None
    if "intercept" in required:
        intercept = arrays["intercept"]
        if intercept.shape != (W.shape[0],) or intercept.dtype.kind != "f":
            raise SelfDistillError(f"intercept in model file {where} must be {W.shape[0]} "
                                   f"floats (one per row of W), got shape {intercept.shape}, "
                                   f"dtype {intercept.dtype}")
        if not np.all(np.isfinite(intercept)):
            raise SelfDistillError(f"intercept in model file {where} contains NaN or inf "
                                   "values")
    d = _scalar(arrays, "d", "iu", where)
    if d != W.shape[1]:
        raise SelfDistillError(f"model file {where} says d={d} but W has {W.shape[1]} "
                               "columns")
    lam = float(_scalar(arrays, "lam", "f", where))
    if not (np.isfinite(lam) and lam > 0):
        raise SelfDistillError(f"lam in model file {where} must be a positive number, "
                               f"got {lam}")
    try:
        params = json.loads(_scalar(arrays, "params", "U", where))
    except json.JSONDecodeError:
        raise SelfDistillError(f"params in model file {where} is not JSON") from None
    if not isinstance(params, dict):
        raise SelfDistillError(f"params in model file {where} must be a JSON object")
    return SavedModel(
        W=W.astype(np.float64, copy=False), classes=classes, lam=lam,
        model_name=str(_scalar(arrays, "model_name", "U", where)),
        features_sha256=str(_scalar(arrays, "features_sha256", "U", where)),
        embedding_model=str(_scalar(arrays, "embedding_model", "U", where)),
        params=params, product_version=str(_scalar(arrays, "product_version", "U", where)),
        schema_version=int(version), intercept=intercept)


def load_model(path: str | Path):
    """A fitted :class:`~selfdistill.SelfDistillationClassifier` from a model file.

    Same as :meth:`SelfDistillationClassifier.load
    <selfdistill.SelfDistillationClassifier.load>`; files written by
    ``selfdistill fit --model`` load too (with default parameters).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from selfdistill import SelfDistillationClassifier
    >>> from selfdistill.datasets import load_digits_dataset
    >>> ds = load_digits_dataset()
    >>> clf = SelfDistillationClassifier(lam=1e-3, mode="teacher").fit(ds.X_train, ds.y_train)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = clf.save(pathlib.Path(tmp) / "m.npz")
    ...     same = load_model(pathlib.Path(tmp) / "m.npz")
    >>> bool((same.predict(ds.X_test) == clf.predict(ds.X_test)).all())
    True
    """
    from .estimator import SelfDistillationClassifier

    return SelfDistillationClassifier.load(path)
