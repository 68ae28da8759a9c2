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
              "rel_objective_gap", "pipeline_s", "floor_s", "pipeline_over_floor",
              "steps", "nfev", "steps_by_model", "breakdown_s", "matmul_step_s",
              "elementwise_eval_s", "n_threads", "n_train", "d", "K")


def _median_time(fn, repeat: int = 15) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def step_costs(basis, T: np.ndarray, lam: float, n_threads: int | None = None
               ) -> dict[str, float]:
    """Time one L-BFGS step's parts the way the solver runs them, at its thread count.

    ``matmul_step_s``: the two N x r x K float32 matmuls of a step (logits along the
    search direction, ``Xs d^T``; gradient change, ``diff^T Xs``), nothing else: the
    hardware floor of one step. ``elementwise_eval_s``: one function evaluation's N x K
    element-wise work (trial logits, softmax, loss, gradient, slope), paid per line-search
    trial.
    """
    from .solvers import (
        _Logits,
        _n_blocks,
        _n_threads,
        _NumpyOps,
        _pool,
        _preconditioner,
        _single_blas,
    )

    N, K = T.shape
    n_threads = _n_threads(n_threads)
    D = _preconditioner(basis.s2, N, K, lam)
    rng = np.random.default_rng(0)
    d = rng.standard_normal((K, len(basis.s2)))
    with _single_blas(), _pool(n_threads) as pool:
        ops = _NumpyOps(basis.XV, 1.0 / np.sqrt(D), T, 0.0, pool, _n_blocks(N, n_threads))
        d32 = np.ascontiguousarray(d, dtype=np.float32).T
        dZ32 = rng.standard_normal((N, K)).astype(np.float32)

        def matmuls() -> None:
            def work(sl):
                ops.Xs32[sl] @ d32
                return dZ32[sl].T @ ops.Xs32[sl]
            ops._map(work)

        Z = _Logits(rng.standard_normal((N, K)), np.zeros(N))
        Zd = rng.standard_normal((N, K))
        Z.lse[:] = np.log(np.exp(Z.Z).sum(axis=1))  # the row log-sum-exp a point carries

        def evaluation() -> None:  # as in a fit: the trial's buffers are reused
            _, _, dZ, Zt = ops.trial(Z, Zd, 0.5)
            ops.release(Zt, dZ)

        return {"matmul_step_s": _median_time(matmuls),
                "elementwise_eval_s": _median_time(evaluation),
                "n_threads": int(n_threads)}


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
        |objective_sklearn|`` (negative: ours is lower). ``floor_s`` = the L-BFGS steps
        the pipeline took x the time of one step's two float32 matmuls at the solver's
        thread count (:func:`step_costs`), measured in the same run: no implementation of
        the same steps can be faster. ``breakdown_s`` splits ``pipeline_s`` into the
        basis, those matmuls, the element-wise work (function evaluations x the measured
        cost of one) and the rest (line-search bookkeeping, L-BFGS updates, Python).
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
    pipe_basis = SpectralBasis.from_features(X)
    basis_s = time.perf_counter() - t0
    fits = self_distill(X, y, lam=lam, rounds=rounds, pll=True, n_classes=K, basis=pipe_basis)
    pipeline_s = time.perf_counter() - t0
    costs = step_costs(pipe_basis, T, lam)
    steps = int(sum(f.fit.iterations for f in fits))
    nfev = int(sum(f.fit.nfev for f in fits))
    floor_s = steps * costs["matmul_step_s"]
    elem_s = nfev * costs["elementwise_eval_s"]
    # line-search trials beyond one per step each pay one more direction-free evaluation
    breakdown = {"basis": basis_s, "matmuls": floor_s, "elementwise": elem_s,
                 "rest": max(pipeline_s - basis_s - floor_s - elem_s, 0.0)}
    return {
        "ours_s": ours_s,
        "sklearn_s": sklearn_s,
        "speedup": sklearn_s / ours_s,
        "objective_ours": f_ours,
        "objective_sklearn": f_sk,
        "rel_objective_gap": (f_ours - f_sk) / abs(f_sk),
        "pipeline_s": pipeline_s,
        "floor_s": floor_s,
        "pipeline_over_floor": pipeline_s / floor_s if floor_s > 0 else float("nan"),
        "steps": steps,
        "nfev": nfev,
        "steps_by_model": {f.name: int(f.fit.iterations) for f in fits},
        "breakdown_s": breakdown,
        "matmul_step_s": costs["matmul_step_s"],
        "elementwise_eval_s": costs["elementwise_eval_s"],
        "n_threads": costs["n_threads"],
        "n_train": int(N),
        "d": int(d),
        "K": int(K),
    }
