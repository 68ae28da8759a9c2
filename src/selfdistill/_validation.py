"""Checks at the door: arrays, labels, ranges.

Every public entry point validates once with these helpers and raises
:class:`~selfdistill.SelfDistillError` naming the input; code behind the door
trusts its inputs (private ``_``-functions, or ``check_input=False``).

Each constraint on a parameter is declared once here, as an :class:`Interval` or a tuple
of options; the solver, the pipeline, the estimator's ``_parameter_constraints``, the
sweep config, the theory drivers and the command line all read these constants.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._errors import SelfDistillError

__all__ = [
    "Interval",
    "LAM_RANGE",
    "LAM",
    "Q",
    "TOL",
    "RATE",
    "ROUNDS",
    "MAX_ITER",
    "PLL_LOSSES",
    "CLASS_PRIORS",
    "BACKENDS",
    "INTERCEPT_SCALING",
    "check_lam",
    "check_in",
    "check_option",
    "check_flag",
    "DISTILL_CONSTRAINTS",
    "check_params",
    "check_features",
    "check_labels",
    "check_targets",
    "check_rate",
    "check_transition_matrix",
    "warn_single_example_classes",
    "FEATURE_SCALE",
    "feature_scale_hint",
    "warn_feature_scale",
]

#: Root-mean-square row norms of features that ``lam`` suits without rescaling. lam is
#: calibrated for rows of norm about 1 (sentence embeddings); scaling every row by s
#: is the same problem as lam / s^2 on the original rows, so far outside this range the
#: default lams regularise next to nothing (rows of norm 1e4: lam 1e-5 acts as 1e-13)
#: or everything.
FEATURE_SCALE = (1e-2, 1e3)


@dataclass(frozen=True)
class Interval:
    """A range of numbers, printed in interval notation (``[0, 1)``, ``(0, inf)``).

    Parameters
    ----------
    lo, hi : float or None
        Bounds; None for an infinite side.
    closed : {"both", "left", "right", "neither"}
        Which bounds belong to the interval (scikit-learn's ``Interval`` convention).
    integer : bool
        Only integers (bools excluded) are accepted.
    """

    lo: float | None
    hi: float | None
    closed: str = "both"
    integer: bool = False

    def __contains__(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        if self.integer and not isinstance(value, numbers.Integral):
            return False
        v = float(value)
        if math.isnan(v):
            return False
        if self.lo is not None and (v < self.lo or (v == self.lo and self.closed
                                                     not in ("both", "left"))):
            return False
        if self.hi is not None and (v > self.hi or (v == self.hi and self.closed
                                                     not in ("both", "right"))):
            return False
        return not math.isinf(v) or (self.lo is None if v < 0 else self.hi is None)

    def __str__(self) -> str:
        left = "[" if self.closed in ("both", "left") and self.lo is not None else "("
        right = "]" if self.closed in ("both", "right") and self.hi is not None else ")"
        lo = "-inf" if self.lo is None else f"{self.lo:g}"
        hi = "inf" if self.hi is None else f"{self.hi:g}"
        return f"{left}{lo}, {hi}{right}"


#: L2 strength: positive, and on a scale the float64 solver can handle (below 1e-12 the
#: penalty vanishes under rounding and the fit does not terminate; above 1e4 every W is 0)
LAM_RANGE = (1e-12, 1e4)
LAM = Interval(*LAM_RANGE, closed="both")
#: GCE exponent of the PLL loss; 0 is cross-entropy (its limit)
Q = Interval(0.0, 1.0, closed="both")
#: relative gradient tolerance of a fit: ``||grad|| <= tol ||grad at W = 0||``
TOL = Interval(0.0, 1.0, closed="neither")
#: noise rate
RATE = Interval(0.0, 1.0, closed="left")
#: SD rounds after the teacher
ROUNDS = Interval(0, None, closed="left", integer=True)
#: iteration cap of one fit
MAX_ITER = Interval(1, None, closed="left", integer=True)
#: losses of the PLL student (:mod:`selfdistill.distill`)
PLL_LOSSES = ("gce", "two-hot")
#: class priors the final models predict with (:mod:`selfdistill.prior`)
CLASS_PRIORS = ("given", "uniform")
#: array backends of :func:`~selfdistill.fit_softmax`
BACKENDS = ("numpy", "torch")
#: value of the constant feature column that carries the intercept
#: (:mod:`selfdistill.intercept`); the bias is penalised by ``(lam/2) b^2 / s^2``
INTERCEPT_SCALING = Interval(0.0, 1e6, closed="right")


def check_in(value: Any, interval: Interval, *, name: str) -> Any:
    """Return ``value`` (as int or float) if it lies in ``interval``, else raise.

    Examples
    --------
    >>> check_in(0.5, Q, name="q")
    0.5
    >>> check_in(2, Q, name="q")
    Traceback (most recent call last):
    ...
    selfdistill._errors.SelfDistillError: q must be in [0, 1], got 2
    """
    if isinstance(value, np.generic):
        value = value.item()
    if value not in interval:
        kind = "an integer" if interval.integer else "a number"
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise SelfDistillError(f"{name} must be {kind} in {interval}, got {value!r}")
        what = "an integer in" if interval.integer else "in"
        raise SelfDistillError(f"{name} must be {what} {interval}, got {value}")
    return int(value) if interval.integer else float(value)


def check_lam(lam: Any, *, name: str = "lam") -> float:
    """Return lam as a float in :data:`LAM` (the message also names its domain ``(0, inf)``).

    Examples
    --------
    >>> check_lam(1e-5)
    1e-05
    >>> check_lam(-1.0)
    Traceback (most recent call last):
    ...
    selfdistill._errors.SelfDistillError: lam must be in [1e-12, 10000], got -1
    """
    if isinstance(lam, np.generic):
        lam = lam.item()
    if lam not in LAM:
        if isinstance(lam, bool) or not isinstance(lam, numbers.Real):
            raise SelfDistillError(f"{name} must be a number in {LAM}, got {lam!r}")
        raise SelfDistillError(f"{name} must be in {LAM}, got {lam:g}")
    return float(lam)


def check_option(value: Any, options: tuple[str, ...], *, name: str) -> str:
    """Return ``value`` if it is one of ``options``, else raise naming them all."""
    if not isinstance(value, str) or value not in options:
        raise SelfDistillError(f"{name} must be one of {', '.join(options)}, got {value!r}")
    return value


def check_flag(value: Any, *, name: str, allow_none: bool = False) -> bool | None:
    """Return ``value`` as a bool (numpy bools accepted), or None where allowed, else raise.

    Examples
    --------
    >>> check_flag(None, name="low_memory", allow_none=True) is None
    True
    >>> check_flag("yes", name="low_memory", allow_none=True)
    Traceback (most recent call last):
    ...
    selfdistill._errors.SelfDistillError: low_memory must be True, False or None, got 'yes'
    """
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    allowed = "True, False or None" if allow_none else "True or False"
    raise SelfDistillError(f"{name} must be {allowed}, got {value!r}")


#: The knobs of a teacher -> SD -> PLL pipeline and their constraints (scikit-learn's
#: ``_parameter_constraints`` idea): an :class:`Interval` or a tuple of options each.
DISTILL_CONSTRAINTS: dict[str, Interval | tuple[str, ...]] = {
    "lam": LAM,
    "rounds": ROUNDS,
    "pll_loss": PLL_LOSSES,
    "q": Q,
    "tol": TOL,
    "max_iter": MAX_ITER,
}


def check_params(constraints: dict[str, Interval | tuple[str, ...]] = DISTILL_CONSTRAINTS,
                 /, **params: Any) -> dict[str, Any]:
    """Check each of ``params`` against its entry in ``constraints``; return them converted.

    Examples
    --------
    >>> check_params(lam=1e-5, rounds=4, pll_loss="gce")
    {'lam': 1e-05, 'rounds': 4, 'pll_loss': 'gce'}
    >>> check_params(q=1.5)
    Traceback (most recent call last):
    ...
    selfdistill._errors.SelfDistillError: q must be in [0, 1], got 1.5
    """
    out = {}
    for name, value in params.items():
        rule = constraints[name]
        if rule is LAM:
            out[name] = check_lam(value, name=name)
        elif isinstance(rule, Interval):
            out[name] = check_in(value, rule, name=name)
        else:
            out[name] = check_option(value, rule, name=name)
    return out


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


def warn_single_example_classes(y: np.ndarray, names: Any, *, stacklevel: int = 2) -> list[str]:
    """Warn (``UserWarning``) naming every class with exactly one example in ``y``.

    One example cannot be held out and learned from at once: cross-validation sees the
    class either in training or in the held-out fold, and a wrong label on that row
    cannot be told from the class itself.

    Parameters
    ----------
    y : ndarray of shape (N,)
        Class indices in ``0..K-1``.
    names : sequence of length K
        Class names, in index order.
    stacklevel : int, default=2
        Passed to :func:`warnings.warn`.

    Returns
    -------
    list of str
        The names of the classes warned about (empty: no warning).

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     warn_single_example_classes(np.array([0, 0, 1]), ["cat", "dog"])
    ['dog']
    >>> str(w[0].message)
    "class 'dog' has only one training example: ..."
    """
    import warnings

    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=len(names))
    single = [str(names[k]) for k in np.flatnonzero(counts == 1)]
    if single:
        shown = ", ".join(repr(n) for n in single[:5])
        more = f" and {len(single) - 5} more" if len(single) > 5 else ""
        which = (f"class {shown} has" if len(single) == 1
                 else f"{len(single)} classes have")
        listing = "" if len(single) == 1 else f" ({shown}{more})"
        warnings.warn(
            f"{which} only one training example{listing}: it cannot be both learned and "
            "held out, so cross-validation and label checks on it are unreliable",
            UserWarning, stacklevel=stacklevel + 1)
    return single


def feature_scale_hint(rms_norm: float) -> str | None:
    """The advice for features whose root-mean-square row norm is ``rms_norm``, or None.

    Examples
    --------
    >>> feature_scale_hint(1.0) is None
    True
    >>> print(feature_scale_hint(3.2e4))
    features look unscaled (root-mean-square row norm 3.2e+04; lam is meant for rows of
    norm about 1): divide the features by 3.2e+04 or normalise each row
    """
    lo, hi = FEATURE_SCALE
    if not np.isfinite(rms_norm) or rms_norm <= 0 or lo <= rms_norm <= hi:
        return None
    return (f"features look unscaled (root-mean-square row norm {rms_norm:.2g}; lam is meant "
            f"for rows of norm about 1): divide the features by {rms_norm:.2g} or normalise "
            "each row")


def mean_squared_row_norm(X: np.ndarray) -> float:
    """Mean of ``|x_i|^2`` over the rows of ``X`` (0 for no rows).

    Examples
    --------
    >>> mean_squared_row_norm(np.ones((3, 4)))
    4.0
    """
    X = np.asarray(X)
    # summed in float64 as it streams (no float64 copy of X: 0.005 s instead of 0.13 s
    # on 18,000 x 384 float32 rows, whose first touch of a copy's pages dominated)
    return float(np.einsum("ij,ij->", X, X, dtype=np.float64)) / max(X.shape[0], 1)


def warn_feature_scale(X: np.ndarray, *, stacklevel: int = 2) -> str | None:
    """Warn (``UserWarning``) when the rows of ``X`` are far from norm 1 (:data:`FEATURE_SCALE`).

    The solver's stopping rule is relative (gradient over its value at ``W = 0``), so it
    is unchanged by rescaling; but rescaling the features by ``s`` is the same problem
    as ``lam / s^2`` on the original ones. Rows of norm 1e4 with lam = 1e-5 make a
    nearly unregularised fit: the teacher may hit its iteration cap, and SD rounds start
    at a point already within ``tol`` (0 iterations, converged).

    Returns
    -------
    str or None
        The warning's text (None: no warning).
    """
    import warnings

    hint = feature_scale_hint(float(np.sqrt(mean_squared_row_norm(X))))
    if hint is not None:
        warnings.warn(hint, UserWarning, stacklevel=stacklevel + 1)
    return hint


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
    """Return a noise rate as a float in :data:`RATE`, ``[0, 1)``."""
    return check_in(rate, RATE, name=name)


#: Accepted L2 strengths, closed interval. Below 1e-12 the penalty vanishes against
#: float64 rounding of the loss (the solver stops at once, at chance accuracy); above
#: 1e4 the weights are ~0 and the line search's steps underflow.
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
