"""One experiment: dataset -> noise -> teacher/SD/PLL fits -> SPEC result record.

This is the single place where a grid point is computed; ``selfdistill fit``,
``selfdistill demo`` and sweeps all call :func:`run_experiment`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .._errors import SelfDistillError
from ..datasets import Dataset
from ..distill import NamedFit, self_distill
from ..model_selection import CV_TOL, cross_validate_pipeline
from ..noise import make_noisy_labels, realized_rate
from ..solvers import SpectralBasis

__all__ = ["run_experiment", "evaluate_models", "given_labels", "NoiseSpec"]

NoiseSpec = tuple[str, float]


def _acc(pred: np.ndarray, truth: np.ndarray) -> float | None:
    return float(np.mean(pred == truth)) if truth.size else None


def evaluate_models(
    fits: list[NamedFit],
    ds: Dataset,
    y_given: np.ndarray,
    y_clean: np.ndarray | None,
) -> list[dict[str, Any]]:
    """SPEC ``models`` records: test accuracy, clean train accuracy, noisy-subset accuracy.

    ``noisy_subset_acc`` is the accuracy against the clean labels on the training rows
    whose given label is wrong (how many wrong labels the model fixed); ``None``
    without clean labels or when no label is wrong.
    """
    out = []
    X = ds.X_train
    noisy = None if y_clean is None else (y_given != y_clean)
    for nf in fits:
        pred_tr = np.argmax(X @ nf.W.T.astype(X.dtype, copy=False), axis=1)
        rec: dict[str, Any] = {"name": nf.name}
        rec["test_acc"] = (
            None if ds.X_test is None
            else _acc(np.argmax(ds.X_test @ nf.W.T.astype(ds.X_test.dtype, copy=False), 1),
                      ds.y_test)
        )
        truth = y_given if y_clean is None else y_clean
        rec["train_acc_true"] = _acc(pred_tr, truth)
        rec["train_acc_given"] = _acc(pred_tr, y_given)
        rec["noisy_subset_acc"] = (
            None if noisy is None or not noisy.any() else _acc(pred_tr[noisy], y_clean[noisy])
        )
        rec.update({k: v for k, v in nf.to_dict().items() if k != "name"})
        out.append(rec)
    return out


def given_labels(ds: Dataset, noise: str = "none", rate: float = 0.0, seed: int = 0,
                 T: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The training labels a run sees, and the transition matrix that made them.

    ``ds.y_train`` as it is for ``noise`` "none" (or a record's "given") without ``T``;
    otherwise the seeded :func:`~selfdistill.make_noisy_labels` draw from the clean labels.
    The one place that decides this, so reports can rebuild a record's labels exactly.
    """
    K = ds.n_classes
    if noise in ("none", "given") and T is None:
        return ds.y_train, np.eye(K)
    clean = ds.y_train_clean if ds.y_train_clean is not None else ds.y_train
    return make_noisy_labels(clean, kind="custom" if T is not None else noise, rate=rate,
                             n_classes=K, features=ds.X_train, seed=seed, T=T)


def run_experiment(
    ds: Dataset,
    *,
    noise: str = "none",
    rate: float = 0.0,
    noise_seed: int = 0,
    T: np.ndarray | None = None,
    lam: float | str = 1e-5,
    rounds: int = 4,
    pll: bool = True,
    pll_loss: str = "gce",
    q: float = 0.7,
    select: bool = True,
    lam_grid: tuple[float, ...] = (1e-6, 1e-5, 1e-4),
    n_splits: int = 3,
    tol: float = 1e-6,
    basis: SpectralBasis | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    return_fits: bool = False,
) -> dict[str, Any]:
    """Run one grid point and return the SPEC ``fit --json`` record.

    Parameters
    ----------
    ds : Dataset
        Features and labels; ``ds.y_train`` is treated as clean unless
        ``ds.y_train_clean`` says otherwise.
    noise : {"none", "sym", "asym", "cc", "custom"}, default="none"
        Synthetic noise added to the training labels (``custom`` needs ``T``).
    rate : float, default=0.0
    noise_seed : int, default=0
    T : ndarray of shape (K, K), optional
    lam : float or "auto", default=1e-5
        ``"auto"`` chooses lam from ``lam_grid`` by CV on the given labels.
    rounds : int, default=4
    pll : bool, default=True
    pll_loss, q : see :func:`~selfdistill.distill.self_distill`
    select : bool, default=True
        Recommend a model by CV on the given labels (``selected``); otherwise
        ``selected`` is the PLL student (or the last SD round without PLL).
    n_splits : int, default=3
    basis : SpectralBasis, optional
        Precomputed basis of ``ds.X_train`` (reused across grid points).
    progress : callable ``(stage, done, total)``, optional
    return_fits : bool, default=False
        Also return the fitted models under the key ``"_fits"`` (not JSON).

    Returns
    -------
    dict
        ``dataset, n_train, n_test, n_classes, noise, lam, lam_selection, models, selected``.
    """
    t0 = time.perf_counter()
    K = ds.n_classes
    clean = ds.y_train_clean if ds.y_train_clean is not None else ds.y_train
    y_given, T_used = given_labels(ds, noise, rate, noise_seed, T)
    if noise == "none" and T is None:
        kind = "given" if ds.y_train_clean is not None else "none"
        rate_req = realized_rate(ds.y_train, clean)
    else:
        kind = "custom" if T is not None else noise
        rate_req = float(rate) if T is None else float(np.mean(1 - np.diag(T_used)[clean]))
    X = ds.X_train
    lam_selection = None
    cv = None
    if isinstance(lam, str):
        if lam != "auto":
            raise SelfDistillError(f"lam must be a positive number or 'auto', got {lam!r}")
        cv = cross_validate_pipeline(
            X, y_given, lams=lam_grid, rounds=rounds, pll=pll, n_classes=K,
            pll_loss=pll_loss, q=q, n_splits=n_splits, seed=noise_seed, tol=max(tol, CV_TOL),
            progress=(lambda d, t: progress("cv", d, t)) if progress else None,
        )
        lam_value = cv.best_lam
        lam_selection = cv.to_dict()
    else:
        lam_value = float(lam)
    if basis is None:
        basis = SpectralBasis.from_features(X)
    fits = self_distill(
        X, y_given, lam=lam_value, rounds=rounds, pll=pll, pll_loss=pll_loss, q=q,
        n_classes=K, tol=tol, basis=basis, progress=progress,
    )
    models = evaluate_models(fits, ds, y_given, clean)
    if cv is None and select:
        cv = cross_validate_pipeline(
            X, y_given, lams=[lam_value], rounds=rounds, pll=pll, n_classes=K,
            pll_loss=pll_loss, q=q, n_splits=n_splits, seed=noise_seed, tol=max(tol, CV_TOL),
            progress=(lambda d, t: progress("cv", d, t)) if progress else None,
        )
    if cv is not None:
        selected = cv.best_model
        cv_scores = dict(zip(cv.models, cv.scores[cv.lams.index(lam_value)]))
        for rec in models:
            rec["cv_acc_given"] = float(cv_scores[rec["name"]])
    else:
        selected = fits[-1].name
    out: dict[str, Any] = {
        "dataset": ds.name,
        "n_train": ds.n_train,
        "n_test": ds.n_test,
        "n_classes": K,
        "noise": {
            "kind": kind,
            "rate": float(rate_req),
            "realized_rate": realized_rate(y_given, clean),
            "seed": int(noise_seed),
            "transition_matrix": np.round(T_used, 6).tolist(),
        },
        "lam": lam_value,
        "lam_selection": lam_selection,
        "pll_loss": pll_loss,
        "q": q,
        "models": models,
        "selected": selected,
        "seconds": time.perf_counter() - t0,
    }
    if return_fits:
        out["_fits"] = fits
        out["_y_given"] = y_given
    return out
