"""Checks at the door: arrays, labels, ranges.

Every public entry point validates once with these helpers and raises
:class:`~selfdistill.SelfDistillError` naming the input; code behind the door
trusts its inputs.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ._errors import SelfDistillError

__all__ = [
    "check_features",
    "check_labels",
    "check_targets",
    "check_rate",
    "check_positive",
    "check_lam",
    "LAM_RANGE",
    "check_transition_matrix",
]


def _where(name: str, where: str | None) -> str:
    return f"{name} in {where}" if where else name


def check_features(X: Any, *, name: str = "X", where: str | None = None) -> np.ndarray:
    """Return ``X`` as a finite 2-D float array (float32 kept, anything else float64).

    Parameters
    ----------
    X : array-like of shape (N, d)
        Features (Phi in theory-derivation.md).
    name, where : str
        Used in error messages: ``X_train in data.npz``.
    """
    label = _where(name, where)
    try:
        arr = np.asarray(X)
    except Exception as exc:  # noqa: BLE001 - any conversion failure is bad input
        raise SelfDistillError(f"{label} cannot be read as an array: {exc}") from None
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise SelfDistillError(f"{label} must be numeric, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise SelfDistillError(f"{label} must be 2-D (N, d), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise SelfDistillError(f"{label} is empty, got shape {arr.shape}")
    if arr.dtype != np.float32:
        arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise SelfDistillError(f"{label} contains {bad} NaN or inf values")
    return arr


def check_labels(
    y: Any,
    *,
    n_samples: int | None = None,
    n_classes: int | None = None,
    name: str = "y",
    where: str | None = None,
    min_classes: int = 2,
) -> np.ndarray:
    """Return ``y`` as an int64 vector of class indices in ``0..K-1``.

    Parameters
    ----------
    y : array-like of shape (N,)
        Integer labels.
    n_samples : int, optional
        Expected length (N of the features).
    n_classes : int, optional
        K; labels must lie in ``[0, K-1]``. Without it K is ``max(y) + 1``.
    min_classes : int, default=2
        Fewer distinct labels than this is an error.
    """
    label = _where(name, where)
    arr = np.asarray(y)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise SelfDistillError(f"{label} must hold integer labels, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise SelfDistillError(f"{label} must be 1-D (N,), got shape {arr.shape}")
    if arr.size == 0:
        raise SelfDistillError(f"{label} is empty")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise SelfDistillError(f"{label} must hold integer labels, got non-integer floats")
    arr = arr.astype(np.int64)
    if n_samples is not None and arr.shape[0] != n_samples:
        raise SelfDistillError(
            f"{label} has {arr.shape[0]} labels but the features have {n_samples} rows"
        )
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or (n_classes is not None and hi >= n_classes):
        top = "K-1" if n_classes is None else str(n_classes - 1)
        raise SelfDistillError(f"{label} must lie in [0, {top}], got values in [{lo}, {hi}]")
    n_distinct = int(np.unique(arr).size)
    if n_distinct < min_classes:
        raise SelfDistillError(
            f"{label} has {n_distinct} class; at least {min_classes} classes are needed"
        )
    return arr


def check_targets(T: Any, *, n_samples: int, name: str = "targets") -> np.ndarray:
    """Return soft targets ``(N, K)`` with non-negative rows summing to 1 (float64)."""
    arr = np.asarray(T, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != n_samples or arr.shape[1] < 2:
        raise SelfDistillError(
            f"{name} must be (N, K) with N={n_samples} and K >= 2, got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)) or np.any(arr < -1e-12):
        raise SelfDistillError(f"{name} must be finite and non-negative")
    if np.max(np.abs(arr.sum(axis=1) - 1.0)) > 1e-6:
        raise SelfDistillError(f"{name} rows must sum to 1")
    return arr


def check_rate(rate: Any, *, name: str = "rate") -> float:
    """Return a noise rate as a float in ``[0, 1)``."""
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real):
        raise SelfDistillError(f"{name} must be a number in [0, 1), got {rate!r}")
    value = float(rate)
    if not (0.0 <= value < 1.0):
        raise SelfDistillError(f"{name} must be in [0, 1), got {rate}")
    return value


def check_positive(value: Any, *, name: str) -> float:
    """Return a finite float > 0 (for lam and friends)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise SelfDistillError(f"{name} must be a number in (0, inf), got {value!r}")
    out = float(value)
    if not (np.isfinite(out) and out > 0):
        raise SelfDistillError(f"{name} must be in (0, inf), got {value}")
    return out


#: Accepted L2 strengths, closed interval. Below 1e-12 the penalty vanishes against
#: float64 rounding of the loss (the solver stops at once, at chance accuracy); above
#: 1e4 the weights are ~0 and the line search's steps underflow.
LAM_RANGE = (1e-12, 1e4)


def check_lam(value: Any, *, name: str = "lam") -> float:
    """Return ``lam`` as a float in :data:`LAM_RANGE` (``[1e-12, 10000]``)."""
    lo, hi = LAM_RANGE
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise SelfDistillError(f"{name} must be a number in [{lo:g}, {hi:g}], got {value!r}")
    out = float(value)
    if not (lo <= out <= hi):
        raise SelfDistillError(f"{name} must be in [{lo:g}, {hi:g}], got {value:g}")
    return out


def check_transition_matrix(T: Any, *, n_classes: int, where: str | None = None) -> np.ndarray:
    """Return a row-stochastic ``(K, K)`` transition matrix ``T[k, j] = P(given j | true k)``."""
    label = _where("transition matrix", where)
    arr = np.asarray(T)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise SelfDistillError(f"{label} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if arr.shape != (n_classes, n_classes):
        raise SelfDistillError(
            f"{label} must have shape ({n_classes}, {n_classes}), got {arr.shape}"
        )
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise SelfDistillError(f"{label} must be finite and non-negative")
    if np.max(np.abs(arr.sum(axis=1) - 1.0)) > 1e-6:
        raise SelfDistillError(f"{label} rows must sum to 1 (row-stochastic)")
    return arr
