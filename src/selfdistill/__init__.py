"""selfdistill: self-distillation and partial-label refinement for noisy labels.

A teacher is a linear softmax model with an L2 penalty, trained on the given (possibly
wrong) labels of fixed features; students of the same form are trained on the teacher's
soft outputs, round after round (SD), or once on its top-2 classes (PLL).
theory-derivation.md's closed forms live in :mod:`selfdistill.theory`.

Examples
--------
>>> from selfdistill import SelfDistillationClassifier, make_noisy_labels
>>> from selfdistill.datasets import load_digits_dataset
>>> ds = load_digits_dataset()
>>> y_noisy, T = make_noisy_labels(ds.y_train, kind="sym", rate=0.4, n_classes=10, seed=0)
>>> clf = SelfDistillationClassifier(lam=1e-3, rounds=2).fit(ds.X_train, y_noisy)
>>> clf.score(ds.X_test, ds.y_test) > 0.8
True
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._errors import SelfDistillError

if TYPE_CHECKING:  # what static tools see; at run time the names load lazily
    from .datasets import Dataset, load_banking77, load_digits_dataset, load_features
    from .distill import NamedFit, pll_targets, self_distill
    from .estimator import SelfDistillationClassifier
    from .losses import objective, softmax
    from .model_io import load_model
    from .noise import make_noisy_labels, transition_matrix
    from .solvers import FitResult, SpectralBasis, fit_softmax

# Public names and the module that defines each. They are imported on first use (PEP 562),
# so ``import selfdistill`` and ``selfdistill --help`` do not pay for scikit-learn/scipy.
_EXPORTS = {
    "Dataset": "datasets",
    "load_features": "datasets",
    "load_banking77": "datasets",
    "load_digits_dataset": "datasets",
    "make_noisy_labels": "noise",
    "transition_matrix": "noise",
    "fit_softmax": "solvers",
    "FitResult": "solvers",
    "SpectralBasis": "solvers",
    "objective": "losses",
    "softmax": "losses",
    "self_distill": "distill",
    "pll_targets": "distill",
    "NamedFit": "distill",
    "SelfDistillationClassifier": "estimator",
    "load_model": "model_io",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__version__ = "0.1.0"

__all__ = [
    "SelfDistillError",
    "Dataset",
    "load_features",
    "load_banking77",
    "load_digits_dataset",
    "make_noisy_labels",
    "transition_matrix",
    "fit_softmax",
    "FitResult",
    "SpectralBasis",
    "objective",
    "softmax",
    "self_distill",
    "pll_targets",
    "NamedFit",
    "SelfDistillationClassifier",
    "load_model",
    "__version__",
]
