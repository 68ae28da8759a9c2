"""Benchmark of the softmax solver (``selfdistill bench``; docs/performance.md).

Times, in one run and on the same hard labels, :func:`~selfdistill.fit_softmax` (the
teacher) and scikit-learn's ``LogisticRegression(solver="lbfgs", C=1/(N*lam),
fit_intercept=False, tol=1e-8, max_iter=10000)``, whose objective is ours
(theory-derivation.md §1: ``(1/N) sum_i CE + (lam/2) ||W||^2``, no bias). Both objectives are
evaluated by the one shared function :func:`selfdistill.losses.objective` in float64.
Then the full pipeline (teacher + SD rounds + PLL, basis included) is timed.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

from .datasets import load_banking77
from .distill import self_distill
from .losses import objective
from .solvers import SpectralBasis, fit_softmax, one_hot

__all__ = ["run_bench", "BENCH_KEYS"]

#: keys of the JSON record, in order
BENCH_KEYS = ("ours_s", "sklearn_s", "speedup", "objective_ours", "objective_sklearn",
              "rel_objective_gap", "pipeline_s", "n_train", "d", "K")


def run_bench(X: np.ndarray | None = None, y: np.ndarray | None = None, *, lam: float = 1e-5,
              rounds: int = 4, quick: bool = False, backend: str = "numpy",
              device: str | None = None) -> dict[str, Any]:
    """Time our teacher fit against scikit-learn's, and the full pipeline.

    Parameters
    ----------
    X, y : ndarray of shape (N, d) and (N,), optional
        Features and labels, at least 3 classes (default: the bundled BANKING77
        training set).
    lam : float, default=1e-5
    rounds : int, default=4
        SD rounds of the timed pipeline (plus teacher and PLL).
    quick : bool, default=False
        A 1,000-row subsample, ``lam >= 1e-3`` and a 1-round pipeline: checks the
        plumbing in seconds; its timings mean nothing.
    backend, device : passed to :func:`~selfdistill.fit_softmax` for our teacher.

    Returns
    -------
    dict
        :data:`BENCH_KEYS`. ``speedup = sklearn_s / ours_s`` (ours includes computing
        the basis); ``rel_objective_gap = (objective_ours - objective_sklearn) /
        |objective_sklearn|`` (negative: ours is lower).
    """
    from sklearn.linear_model import LogisticRegression

    if X is None or y is None:
        ds = load_banking77()
        X, y = ds.X_train, ds.y_train
    if quick:
        idx = np.random.default_rng(0).permutation(X.shape[0])[:1000]
        X, y = X[idx], y[idx]
        rounds, lam = 1, max(lam, 1e-3)
    y = np.unique(y, return_inverse=True)[1]  # classes present, 0..K-1
    K = int(y.max()) + 1
    N, d = X.shape
    T = one_hot(y, K)

    t0 = time.perf_counter()
    basis = SpectralBasis.from_features(X)
    W_ours, _ = fit_softmax(X, T, lam=lam, basis=basis, backend=backend, device=device,
                            check_input=False)
    ours_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a reference: its own convergence is its business
        clf = LogisticRegression(solver="lbfgs", C=1.0 / (N * lam), fit_intercept=False,
                                 tol=1e-8, max_iter=10000).fit(X, y)
    sklearn_s = time.perf_counter() - t0
    W_sk = clf.coef_  # multinomial, (K, d) for K >= 3: the same model and objective

    f_ours = objective(W_ours, X, T, lam)
    f_sk = objective(W_sk, X, T, lam)

    t0 = time.perf_counter()
    self_distill(X, y, lam=lam, rounds=rounds, pll=True, n_classes=K,
                 basis=SpectralBasis.from_features(X))
    pipeline_s = time.perf_counter() - t0
    return {
        "ours_s": ours_s,
        "sklearn_s": sklearn_s,
        "speedup": sklearn_s / ours_s,
        "objective_ours": f_ours,
        "objective_sklearn": f_sk,
        "rel_objective_gap": (f_ours - f_sk) / abs(f_sk),
        "pipeline_s": pipeline_s,
        "n_train": int(N),
        "d": int(d),
        "K": int(K),
    }
