"""fit_softmax: exactness against scikit-learn, gradients, warm starts, dtypes, backends."""

from __future__ import annotations

import re

import numpy as np
import pytest
from scipy.special import logsumexp
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from selfdistill import SelfDistillError, solvers
from selfdistill.datasets import load_banking77
from selfdistill.losses import hvp, logit_loss_grad, loss_grad, objective
from selfdistill.solvers import SpectralBasis, fit_softmax, one_hot

pytestmark = pytest.mark.filterwarnings("error::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def banking_small():
    ds = load_banking77()
    idx = np.random.default_rng(0).permutation(ds.n_train)[:2000]
    X, y = ds.X_train[idx], ds.y_train[idx]
    return X, np.unique(y, return_inverse=True)[1]


def sklearn_objective(X, y, lam):
    N = X.shape[0]
    clf = LogisticRegression(solver="lbfgs", C=1.0 / (N * lam), fit_intercept=False, tol=1e-8,
                             max_iter=10000).fit(X, y)
    return objective(clf.coef_, X, one_hot(y, int(y.max()) + 1), lam)


def check_not_worse(X, y, lam, **kw):
    W, info = fit_softmax(X, y, lam=lam, **kw)
    assert info.converged
    ours = objective(W, X, one_hot(y, int(y.max()) + 1), lam)
    assert ours == pytest.approx(info.objective, rel=1e-10)
    theirs = sklearn_objective(X, y, lam)
    assert ours <= theirs * (1 + 1e-9)
    return W, info


def test_objective_vs_sklearn_digits(digits):
    check_not_worse(digits.X_train, digits.y_train, 1e-3)


def test_objective_vs_sklearn_banking77_subsample(banking_small):
    X, y = banking_small
    check_not_worse(X, y, 1e-4)


@pytest.mark.parametrize("q", [0.0, 0.7])
def test_gradient_matches_finite_differences(q):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 6))
    T = rng.dirichlet(np.ones(3), size=40)
    W = rng.normal(size=(3, 6)) * 0.3
    _, G = loss_grad(W, X, T, 1e-2, q)
    E = rng.normal(size=W.shape)
    h = 1e-6
    fd = (loss_grad(W + h * E, X, T, 1e-2, q)[0] - loss_grad(W - h * E, X, T, 1e-2, q)[0]) / (2 * h)
    assert fd == pytest.approx(float(np.sum(G * E)), rel=1e-6)


def test_hvp_matches_gradient_differences():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(30, 5))
    T = one_hot(rng.integers(0, 4, 30), 4)
    W, V = rng.normal(size=(4, 5)) * 0.3, rng.normal(size=(4, 5))
    h = 1e-6
    fd = (loss_grad(W + h * V, X, T, 1e-2)[1] - loss_grad(W - h * V, X, T, 1e-2)[1]) / (2 * h)
    np.testing.assert_allclose(hvp(W, X, 1e-2, V), fd, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("q", [0.0, 0.7])
def test_shifted_exponentials_match_the_row_maximum(q):
    """A per-row shift gives the row-maximum numbers; rows it sends far (overflow, all
    underflow, NaN) are redone with their maximum, mixed with near rows in one call."""
    rng = np.random.default_rng(1)
    Z = rng.normal(size=(40, 6)) * 3
    T = rng.dirichlet(np.ones(6), size=40)
    ref_v, ref_g = logit_loss_grad(Z, T, q)
    lse_true = logsumexp(Z, axis=1)
    shift = lse_true + rng.normal(size=40)  # near: within a few units
    shift[:5] -= 800    # far below the maximum: the exponentials overflow
    shift[5:10] += 800  # far above: they all underflow
    shift[10] = np.nan
    lse = np.empty(40)
    v, g = logit_loss_grad(Z, T, q, shift=shift.copy(), lse=lse)
    assert v == pytest.approx(ref_v, rel=1e-13)
    np.testing.assert_allclose(g, ref_g, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(lse, lse_true, rtol=1e-14)
    same = shift.copy()  # lse may be the shift array itself
    v2, g2 = logit_loss_grad(Z, T, q, shift=same, lse=same)
    assert v2 == v and np.array_equal(g2, g) and np.array_equal(same, lse)


@pytest.mark.parametrize("q", [0.0, 0.7])
def test_labels_are_the_one_hot_targets(q):
    """Integer labels give the one-hot targets' gradient bit for bit and their value to
    rounding (cross-entropy gathers and scatters instead of two passes over Z; GCE
    forms the one-hot array), with and without a shift and an n_total."""
    rng = np.random.default_rng(2)
    Z = rng.normal(size=(60, 5)) * 4
    y = rng.integers(0, 5, 60)
    for kw in ({}, {"n_total": 1}, {"shift": logsumexp(Z, axis=1) + 0.3}):
        v1, g1 = logit_loss_grad(Z, one_hot(y, 5), q, **kw)
        v2, g2 = logit_loss_grad(Z, y, q, **kw)
        assert v2 == pytest.approx(v1, rel=1e-14)
        np.testing.assert_array_equal(g2, g1)


def test_labels_and_one_hot_targets_reach_the_same_fit(digits):
    """The solver keeps labels for cross-entropy (numpy backend): the same minimiser
    and steps as the one-hot targets, to rounding of the loss's sum."""
    X, y = digits.X_train, digits.y_train
    Wl, il = fit_softmax(X, y, lam=1e-3)
    Wt, it = fit_softmax(X, one_hot(y, 10), lam=1e-3)
    assert il.objective == pytest.approx(it.objective, rel=1e-12)
    assert il.iterations == it.iterations
    # W is settled to the stopping rule's precision (relative gradient 1e-6), not further
    np.testing.assert_allclose(Wl, Wt, rtol=0, atol=1e-6 * np.abs(Wt).max())


def test_warm_and_cold_start_reach_the_same_optimum(digits):
    X, y = digits.X_train, digits.y_train
    W1, i1 = fit_softmax(X, y, lam=1e-3)
    W0 = np.random.default_rng(0).normal(size=W1.shape)
    W2, i2 = fit_softmax(X, y, lam=1e-3, W0=W0)
    W3, i3 = fit_softmax(X, y, lam=1e-3, W0=W1)
    assert i2.objective == pytest.approx(i1.objective, rel=1e-8)
    assert i3.iterations <= 2 and i3.objective == pytest.approx(i1.objective, rel=1e-12)
    np.testing.assert_allclose(W2, W1, atol=1e-3 * np.abs(W1).max())


def test_float32_and_float64_inputs_same_optimum(digits):
    X32 = digits.X_train.astype(np.float32)
    _, i32 = fit_softmax(X32, digits.y_train, lam=1e-3)
    _, i64 = fit_softmax(X32.astype(np.float64), digits.y_train, lam=1e-3)
    assert i32.objective == pytest.approx(i64.objective, rel=1e-9)


def test_deterministic_and_independent_of_threads(digits):
    X, y = digits.X_train, digits.y_train
    W1, _ = fit_softmax(X, y, lam=1e-3, n_threads=1)
    W2, _ = fit_softmax(X, y, lam=1e-3, n_threads=2)
    W3, _ = fit_softmax(X, y, lam=1e-3, n_threads=2)
    np.testing.assert_array_equal(W1, W2)
    np.testing.assert_array_equal(W2, W3)


def test_map_blocks_order_all_blocks_and_errors():
    """The pool's workers and the caller share the blocks: results in block order, every
    block computed once, and a block's exception reaches the caller only after no block
    runs any more."""
    import threading
    import time

    done, names = [], set()

    def fn(b):
        names.add(threading.current_thread().name)
        time.sleep(0.001 * (b % 3))
        done.append(b)
        return b * b

    with solvers._pool(3) as pool:
        assert solvers._map_blocks(pool, fn, list(range(20))) == [b * b for b in range(20)]
        assert sorted(done) == list(range(20)) and len(names) >= 2

        def boom(b):
            time.sleep(0.002)
            done.append(b)
            if b == 4:
                raise ValueError("block 4")
            return b

        done.clear()
        with pytest.raises(ValueError, match="block 4"):
            solvers._map_blocks(pool, boom, list(range(12)))
        n = len(done)
        time.sleep(0.02)
        assert len(done) == n == 12  # nothing ran on after the call returned


def test_soft_targets_and_shared_basis(digits):
    X = digits.X_train
    T = np.full((X.shape[0], 10), 0.02)
    T[np.arange(X.shape[0]), digits.y_train] = 0.82
    basis = SpectralBasis.from_features(X)
    _, a = fit_softmax(X, T, lam=1e-3, basis=basis)
    _, b = fit_softmax(X, T, lam=1e-3)
    assert a.converged and a.objective == pytest.approx(b.objective, rel=1e-10)


@pytest.mark.parametrize("wide", [False, True])
def test_basis_of_rows_reaches_the_same_optimum(digits, wide):
    """A fold borrowing the whole X's basis fits the same model as with its own."""
    X, y = digits.X_train, digits.y_train
    if wide:  # d > N: the basis comes from the N x N Gram matrix
        X, y = X[:40], y[:40]
    rows = np.random.default_rng(0).permutation(X.shape[0])[: int(0.8 * X.shape[0])]
    sub = SpectralBasis.from_features(X).of_rows(rows)
    assert not sub.exact and sub.XV.shape[0] == len(rows)
    # s2 is the diagonal of V^T G V: its sum is the trace of the rows' Gram matrix
    assert sub.s2.sum() == pytest.approx(np.sum(X[rows].astype(np.float64) ** 2), rel=1e-10)
    W1, a = fit_softmax(X[rows], y[rows], lam=1e-2, basis=sub, tol=1e-8)
    W2, b = fit_softmax(X[rows], y[rows], lam=1e-2, tol=1e-8)
    assert a.converged and a.objective == pytest.approx(b.objective, rel=1e-10)
    np.testing.assert_allclose(W1, W2, atol=1e-5 * np.abs(W2).max())


def test_borrowed_basis_is_no_spectrum(digits):
    from selfdistill.theory.linear import GramSpectrum

    sub = SpectralBasis.from_features(digits.X_train).of_rows(np.arange(100))
    with pytest.raises(ValueError, match="singular basis"):
        GramSpectrum.from_basis(sub)
    with pytest.raises(ValueError, match="rotate=True"):
        SpectralBasis.from_features(digits.X_train, rotate=False).of_rows(np.arange(5))


def test_d_greater_than_n():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(30, 80))
    y = rng.integers(0, 3, 30)
    W, info = fit_softmax(X, y, lam=1e-2)
    assert W.shape == (3, 80) and info.converged
    theirs = sklearn_objective(X, y, 1e-2)
    assert info.objective <= theirs * (1 + 1e-9)
    # the optimum lies in the row space of X
    P_perp = np.eye(80) - np.linalg.pinv(X) @ X
    assert np.abs(W @ P_perp).max() < 1e-8 * np.abs(W).max()


def test_gce_reaches_a_stationary_point(digits):
    X, y = digits.X_train, digits.y_train
    W, info = fit_softmax(X, y, lam=1e-3, q=0.7)
    assert info.converged
    _, G = loss_grad(W, X, one_hot(y, 10), 1e-3, 0.7)
    assert np.linalg.norm(G) <= 1.01e-6 * info.grad_norm0


def test_max_iter_warns_and_flags(digits):
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        W, info = fit_softmax(digits.X_train, digits.y_train, lam=1e-4, max_iter=2)
    assert not info.converged and info.status == 1 and info.iterations == 2
    assert info.to_dict()["converged"] is False and "W" not in info.to_dict()


def test_bad_arguments_raise():
    X = np.random.default_rng(0).normal(size=(10, 3))
    y = np.arange(10) % 2
    with pytest.raises(SelfDistillError, match="backend"):
        fit_softmax(X, y, backend="jax")
    with pytest.raises(SelfDistillError, match="q must be"):
        fit_softmax(X, y, q=2.0)


def test_torch_backend_same_objective(digits):
    pytest.importorskip("torch")
    X, y = digits.X_train, digits.y_train
    _, a = fit_softmax(X, y, lam=1e-3, backend="torch", device="cpu")
    _, b = fit_softmax(X, y, lam=1e-3)
    assert a.converged
    assert a.objective == pytest.approx(b.objective, rel=1e-6)


def test_torch_missing_names_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "torch":
            raise ImportError("no torch")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    X = np.random.default_rng(0).normal(size=(10, 3))
    with pytest.raises(SelfDistillError, match=r"\[torch\]"):
        fit_softmax(X, np.arange(10) % 2, backend="torch")


@pytest.mark.parametrize("args", [
    (1.0, 0.0, -1.0, 1.0, 0.0, -1.0),   # collapsed bracket a == b
    (0.0, 0.0, -1.0, 1.0, -1.0, -1.0),  # cubic denominator exactly 0
    (1e-300, 0.0, -1e300, 2e-300, 1e300, 1e300),  # overflow in the interpolant
])
def test_cubic_min_never_divides_by_zero(args):
    # issue 16 bug 4: `fit --lam 1e300` ended in ZeroDivisionError here
    from selfdistill.solvers import _cubic_min

    with np.errstate(all="raise"):
        t = _cubic_min(*args)
    a, b = args[0], args[3]
    assert np.isfinite(t) and min(a, b) <= t <= max(a, b)


@pytest.mark.parametrize("lam", [1e-300, 1e-13, 1e5, 1e300])
def test_fit_softmax_refuses_lam_outside_its_range(digits, lam):
    with pytest.raises(SelfDistillError, match=r"lam must be in .*\[1e-12, 10000\]"):
        fit_softmax(digits.X_train[:50], digits.y_train[:50], lam=lam)
def test_fit_result_counts_function_evaluations_and_is_no_sequence(digits):
    X, y = digits.X_train, digits.y_train
    W, info = fit_softmax(X, y, lam=1e-3)
    assert W is info.W
    # one exact evaluation at the start, at least one line-search trial per step
    assert info.nfev >= info.iterations + 1
    assert info.to_dict()["nfev"] == info.nfev
    with pytest.raises(TypeError):
        iter(info)
    with pytest.raises(TypeError):
        info["objective"]  # noqa: B018 - fields are attributes, the record is to_dict()


def test_restarts_after_a_precision_stop_live_in_the_solver(digits, monkeypatch):
    """A tolerance below float64's floor stops on precision; a restart drops the L-BFGS
    memory and goes on from the same point (what theory.exact used to do by hand)."""
    X, y = digits.X_train[:300], digits.y_train[:300]
    with pytest.warns(ConvergenceWarning):
        _, floor = fit_softmax(X, y, lam=1e-3, tol=1e-11)
    assert floor.status == 2 and floor.restarts == 0
    # where float64 runs out depends on rounding; the restart itself is checked on a
    # line search made to fail once, right after the exact recomputation of step 50
    # (the one place memory survives a fresh point)
    real = solvers._line_search
    calls = []

    def fails_once_at_51(*args, **kwargs):
        calls.append(1)
        return (None, 1) if len(calls) == 51 else real(*args, **kwargs)

    monkeypatch.setattr(solvers, "_line_search", fails_once_at_51)
    with pytest.warns(ConvergenceWarning):
        _, once = fit_softmax(X, y, lam=1e-3, tol=1e-8)
    calls.clear()
    _, again = fit_softmax(X, y, lam=1e-3, tol=1e-8, restarts=2)
    monkeypatch.undo()
    _, plain = fit_softmax(X, y, lam=1e-3, tol=1e-8)
    assert plain.converged and plain.iterations > 60
    assert once.status == 2 and once.restarts == 0 and once.iterations == 50
    assert again.converged and again.restarts == 1 and again.iterations > 50
    assert again.objective == pytest.approx(plain.objective, rel=1e-10)


def test_stopping_rule_is_scale_free(digits):
    # issue 16: features scaled by 1e4 ran SD rounds for 0 iterations. That is the
    # problem of the unscaled features with lam / 1e8, solved identically: the relative
    # gradient test sees the same numbers, so the fix is the warning about the scale.
    from selfdistill.distill import self_distill

    X, y = digits.X_train[:300], digits.y_train[:300]
    a = self_distill(X * 1e4, y, lam=1e-4, rounds=1, pll=False)
    b = self_distill(X, y, lam=1e-12, rounds=1, pll=False)
    for fa, fb in zip(a, b):
        assert fa.fit.iterations == fb.fit.iterations
        assert fa.fit.relative_grad == pytest.approx(fb.fit.relative_grad, rel=1e-3)
        np.testing.assert_allclose(fa.W * 1e4, fb.W, rtol=1e-4, atol=1e-6 * abs(fb.W).max())


@pytest.mark.parametrize("scale", [1e4, 1e-4])
def test_unscaled_features_warn_naming_the_fix(digits, scale):
    from selfdistill._validation import warn_feature_scale

    X = digits.X_train[:100] * scale
    rms = np.sqrt(np.mean(np.sum(X.astype(np.float64) ** 2, axis=1)))
    with pytest.warns(UserWarning, match="features look unscaled .* divide the features by "
                                         + re.escape(f"{rms:.2g}")):
        warn_feature_scale(X)
    assert warn_feature_scale(digits.X_train[:100]) is None


# ---- low_memory: the streaming path (issue 15, "Scale") -------------------------------

@pytest.fixture()
def small_stream_blocks(monkeypatch):
    """Row blocks of 64 digits rows (4096 // d), so the streaming sums span many blocks."""
    from selfdistill import solvers

    monkeypatch.setattr(solvers, "_STREAM_BLOCK_ELEMENTS", 4096)


@pytest.mark.parametrize("case", ["labels", "soft", "gce", "float32"])
def test_low_memory_reaches_the_stored_minimiser(digits, small_stream_blocks, case):
    X, y = digits.X_train, digits.y_train
    targets, q = y, 0.0
    if case == "soft":
        targets = one_hot(y, 10) * 0.9 + 0.01
    elif case == "gce":
        q = 0.7
    elif case == "float32":
        X = X.astype(np.float32)
    Wa, a = fit_softmax(X, targets, lam=1e-3, q=q, low_memory=False)
    Wb, b = fit_softmax(X, targets, lam=1e-3, q=q, low_memory=True)
    assert a.converged and b.converged
    assert b.grad_norm0 == pytest.approx(a.grad_norm0, rel=1e-12)
    np.testing.assert_allclose(Wb, Wa, rtol=0, atol=1e-5 * np.abs(Wa).max())
    assert b.objective == pytest.approx(a.objective, rel=1e-8)
    # the reported objective is the exact one at the returned W
    T = targets if targets.ndim == 2 else one_hot(y, 10)
    assert b.objective == pytest.approx(objective(Wb, X, T, 1e-3, q), rel=1e-12)


def test_low_memory_is_independent_of_threads_and_warm_starts(digits, small_stream_blocks):
    from selfdistill.solvers import _stream_blocks

    X, y = digits.X_train, digits.y_train
    assert len(_stream_blocks(X.shape[0], 10, X.shape[1])) > 8
    W1, i1 = fit_softmax(X, y, lam=1e-3, low_memory=True, n_threads=1)
    W2, _ = fit_softmax(X, y, lam=1e-3, low_memory=True, n_threads=2)
    W3, _ = fit_softmax(X, y, lam=1e-3, low_memory=True, n_threads=3)
    np.testing.assert_array_equal(W1, W2)
    np.testing.assert_array_equal(W1, W3)
    W4, i4 = fit_softmax(X, y, lam=1e-3, low_memory=True, W0=W1)
    assert i4.iterations <= 2 and i4.objective == pytest.approx(i1.objective, rel=1e-12)


def test_low_memory_stores_nothing_n_by_k(monkeypatch):
    import tracemalloc

    from selfdistill import solvers

    monkeypatch.setattr(solvers, "_STREAM_BLOCK_ELEMENTS", 1 << 14)
    rng = np.random.default_rng(0)
    N, d, K = 20_000, 16, 100
    X = rng.standard_normal((N, d)).astype(np.float32)
    y = rng.integers(0, K, N)
    nk_bytes = N * K * 8  # one N x K float64 array: 16 MB
    peaks = {}
    for low_memory in (True, False):
        tracemalloc.start()
        try:
            with pytest.warns(ConvergenceWarning):
                fit_softmax(X, y, lam=1e-3, max_iter=2, n_classes=K, check_input=False,
                            low_memory=low_memory, n_threads=2)   # buffers per thread
            peaks[low_memory] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peaks[True] < nk_bytes / 4 < 4 * nk_bytes < peaks[False]


def test_low_memory_choice_and_its_errors(digits, monkeypatch):
    from selfdistill import solvers
    from selfdistill.solvers import LOW_MEMORY_AUTO_BYTES, _resolve_low_memory

    assert LOW_MEMORY_AUTO_BYTES == 4 * 2**30
    assert _resolve_low_memory(None, "numpy", 1_000_000, 1000)  # ImageNet linear probe
    assert not _resolve_low_memory(None, "numpy", 200_000, 100)
    assert not _resolve_low_memory(None, "torch", 1_000_000, 1000)
    assert _resolve_low_memory(True, "numpy", 10, 2)
    assert not _resolve_low_memory(False, "numpy", 1_000_000, 1000)
    X, y = digits.X_train[:200], digits.y_train[:200]
    with pytest.raises(SelfDistillError, match="low_memory=True needs backend='numpy'"):
        fit_softmax(X, y, lam=1e-3, low_memory=True, backend="torch")
    with pytest.raises(SelfDistillError, match="low_memory must be True, False or None"):
        fit_softmax(X, y, lam=1e-3, low_memory="yes")
    # None streams above the budget: the same bits as forcing it
    W_forced, _ = fit_softmax(X, y, lam=1e-3, low_memory=True)
    monkeypatch.setattr(solvers, "LOW_MEMORY_AUTO_BYTES", 0)
    W_auto, _ = fit_softmax(X, y, lam=1e-3)
    np.testing.assert_array_equal(W_auto, W_forced)


def test_basis_without_rotation_serves_both_paths(digits):
    X, y = digits.X_train, digits.y_train
    bare = SpectralBasis.from_features(X, rotate=False)
    full = SpectralBasis.from_features(X)
    assert bare.XV is None
    np.testing.assert_array_equal(bare.V, full.V)
    W_full, _ = fit_softmax(X, y, lam=1e-3, basis=full)
    W_bare, _ = fit_softmax(X, y, lam=1e-3, basis=bare)
    np.testing.assert_array_equal(W_bare, W_full)
    W_s1, _ = fit_softmax(X, y, lam=1e-3, basis=bare, low_memory=True)
    W_s2, _ = fit_softmax(X, y, lam=1e-3, basis=full, low_memory=True)
    np.testing.assert_array_equal(W_s1, W_s2)


class _ReferenceOps(solvers._NumpyOps):
    """The stored path's trials written plainly: new arrays every time, nothing handed
    back, the row maximum as the exponentials' shift and the gradient divided by N, then
    put in the ops' convention (N times the gradient; the row log-sum-exp with the
    logits). The reference for the fused, pooled code. Same row blocks, with their sums
    added in the same order: a different summation order alone moves a tol=1e-6 fit's
    W by ~1e-7 relative."""

    def trial(self, Z, Zd, t):
        return self._plain(Z, Zd, t)

    def _plain(self, Z, Zd, t):
        Zt = solvers._Logits(np.empty_like(Z.Z), np.empty(self.N))
        dZ = np.empty_like(Z.Z)
        parts = []
        for sl in self.blocks:
            Zt.Z[sl] = Z.Z[sl] + t * Zd[sl]
            v, g = logit_loss_grad(Zt.Z[sl], self.T[sl], self.q, n_total=self.N)
            dZ[sl] = g * self.N
            Zt.lse[sl] = logsumexp(Zt.Z[sl], axis=1)
            parts.append((v, float(np.vdot(g, Zd[sl]))))
        return sum(p[0] for p in parts), sum(p[1] for p in parts), dZ, Zt

    def direction_trial(self, Z, d, t):
        Zd = self.direction(d)
        return Zd, self.trial(Z, Zd, t)

    def release(self, Zt, dZ):
        pass


@pytest.mark.parametrize("case", ["labels", "soft", "gce"])
def test_fused_trials_match_a_plain_reference(digits, monkeypatch, case):
    X, y = digits.X_train, digits.y_train
    T = one_hot(y, 10)
    kw = {"q": 0.7} if case == "gce" else {}
    if case == "soft":
        T = 0.8 * T + 0.02
    basis = SpectralBasis.from_features(X)
    D = solvers._preconditioner(basis.s2, X.shape[0], 10, 1e-3)
    rng = np.random.default_rng(0)
    ops = solvers._NumpyOps(basis.XV, 1.0 / np.sqrt(D), T, kw.get("q", 0.0), None, 3)
    ref = _ReferenceOps(basis.XV, 1.0 / np.sqrt(D), T, kw.get("q", 0.0), None, 3)
    Z0 = rng.standard_normal((X.shape[0], 10))
    Z = solvers._Logits(Z0, logsumexp(Z0, axis=1))
    d = rng.standard_normal((10, basis.XV.shape[1]))
    Zd, first = ops.direction_trial(Z, d, 1.0)
    for t, got in [(1.0, first), (0.3, ops.trial(Z, Zd, 0.3))]:
        want = ref.trial(Z, ref.direction(d), t)
        assert got[0] == pytest.approx(want[0], rel=1e-12)
        assert got[1] == pytest.approx(want[1], rel=1e-12)
        np.testing.assert_allclose(got[2], want[2], rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(got[3].Z, want[3].Z, rtol=1e-15)
        np.testing.assert_allclose(got[3].lse, want[3].lse, rtol=1e-14)
        ops.release(got[3], got[2])
    # a shift far from the row maximum (a long step): those rows are redone with theirs
    far = ops.trial(Z, Zd * 1e3, 1.0)
    want = ref.trial(Z, Zd * 1e3, 1.0)
    assert np.isfinite(far[0]) and far[0] == pytest.approx(want[0], rel=1e-12)
    np.testing.assert_allclose(far[2], want[2], rtol=1e-12, atol=1e-13)
    # whole fits: the same minimiser. Rounding differs (shift, row sums), so the paths
    # part at the level of the tolerance: objectives agree to 1e-10 and W within what
    # strong convexity (curvature >= lam) allows for the two final gradients
    W, info = fit_softmax(X, T, lam=1e-3, tol=1e-8, **kw)
    calls = []
    monkeypatch.setattr(_ReferenceOps, "trial",
                        lambda self, *a: calls.append(1) or _ReferenceOps._plain(self, *a))
    monkeypatch.setattr(solvers, "_NumpyOps", _ReferenceOps)
    W_ref, info_ref = fit_softmax(X, T, lam=1e-3, tol=1e-8, **kw)
    assert len(calls) > 10  # the reference's trials ran the fit
    assert info.converged and info_ref.converged
    assert info.objective == pytest.approx(info_ref.objective, rel=1e-10)
    if case != "gce":  # GCE is not convex: no such bound
        bound = (info.grad_norm + info_ref.grad_norm) / 1e-3
        assert np.linalg.norm(W - W_ref) <= bound


def test_trial_buffers_are_reused_and_stay_few(digits, monkeypatch):
    """Rejected trials and old points hand their (N, K) pair back: at most three pairs
    ever exist (point, best trial, trial under way), and reusing them changes no bit."""
    X, y = digits.X_train, digits.y_train
    made = []
    take = solvers._NumpyOps._take

    def counting_take(self):
        n_free = len(self._free)
        pair = take(self)
        if not n_free:
            made.append(pair)
        return pair

    monkeypatch.setattr(solvers._NumpyOps, "_take", counting_take)
    fits = [fit_softmax(X, y, lam=lam, q=q) for lam, q in [(1e-3, 0.0), (1e-5, 0.0), (1e-4, 0.7)]]
    assert sum(info.nfev for _, info in fits) > 3 * len(fits) + 100
    assert len(made) <= 3 * len(fits)
    monkeypatch.setattr(solvers._NumpyOps, "release", lambda self, Zt, dZ: None)
    for (W, info), (lam, q) in zip(fits, [(1e-3, 0.0), (1e-5, 0.0), (1e-4, 0.7)]):
        W_new, info_new = fit_softmax(X, y, lam=lam, q=q)
        assert info_new.objective == info.objective
        np.testing.assert_array_equal(W_new, W)


@pytest.mark.parametrize("case", ["labels", "soft", "gce"])
def test_first_point_exact_when_cold_float32_when_warm(digits, case):
    """The solver's first point: at C = 0 (a cold start) the exact refresh's numbers
    without a product with the features (the gradient at zero is the one g0 measures);
    elsewhere (a warm start) float32 products, within float32 rounding of the exact
    ones and marked inexact, so that an exact refresh precedes any convergence."""
    X, y = digits.X_train, digits.y_train
    K, q = 10, (0.7 if case == "gce" else 0.0)
    T = {"labels": y, "soft": 0.8 * one_hot(y, K) + 0.02, "gce": one_hot(y, K)}[case]
    basis = SpectralBasis.from_features(X)
    D = solvers._preconditioner(basis.s2, X.shape[0], K, 1e-3)
    ops = solvers._NumpyOps(basis.XV, 1.0 / np.sqrt(D), T, q, None, 3, K)
    _, dZ0 = logit_loss_grad(np.zeros((X.shape[0], K)), one_hot(y, K) if case == "labels"
                             else T, q)
    np.testing.assert_allclose(ops.data_gradient_at_zero(), dZ0.T @ basis.XV, rtol=1e-12,
                               atol=1e-14)
    rng = np.random.default_rng(0)
    for C, exact, rtol in [(np.zeros((K, basis.XV.shape[1])), True, 1e-12),
                           (0.3 * rng.standard_normal((K, basis.XV.shape[1])), False, 1e-5)]:
        Z, value, dZ, GD, fresh = ops.start(C)
        Zr, value_r, dZr, GDr = ops.refresh(C)
        assert fresh is exact
        assert value == pytest.approx(value_r, rel=rtol)
        assert np.linalg.norm(GD - GDr) <= rtol * np.linalg.norm(GDr)
        assert np.abs(Z.Z - Zr.Z).max() <= rtol * max(1.0, np.abs(Zr.Z).max())
        np.testing.assert_allclose(dZ, dZr, atol=rtol)


def test_loose_tolerance_declares_convergence_without_the_exact_refresh(digits,
                                                                         monkeypatch):
    """From LOOSE_TOL up the stop is declared on the float32-updated gradient: the same
    weights, one evaluation fewer and no exact refresh at all after a cold start; the
    reported gradient norm is the exact one's to float32 drift."""
    X, y = digits.X_train, digits.y_train
    refreshes = []
    real = solvers._NumpyOps.refresh
    monkeypatch.setattr(solvers._NumpyOps, "refresh",
                        lambda self, C: refreshes.append(1) or real(self, C))
    W, info = fit_softmax(X, y, lam=1e-4, tol=3e-3)
    assert info.converged and info.iterations > 3 and refreshes == []
    monkeypatch.setattr(solvers, "LOOSE_TOL", 1.0)   # the exact stop at this tol
    W_exact, info_exact = fit_softmax(X, y, lam=1e-4, tol=3e-3)
    assert len(refreshes) == 1 and info_exact.nfev == info.nfev + 1
    np.testing.assert_array_equal(W, W_exact)
    assert info.grad_norm == pytest.approx(info_exact.grad_norm, rel=1e-4)
    assert info.objective == pytest.approx(info_exact.objective, rel=1e-6)


def test_torch_keeps_the_exact_stop_at_loose_tolerance(digits, monkeypatch):
    """The loose stop is the stored numpy path's alone (torch may run its float32
    products in TF32): torch refreshes exactly at the start and before converging."""
    pytest.importorskip("torch")
    from selfdistill._torch_backend import TorchOps

    refreshes = []
    real = TorchOps.refresh
    monkeypatch.setattr(TorchOps, "refresh",
                        lambda self, C: refreshes.append(1) or real(self, C))
    _, info = fit_softmax(digits.X_train, digits.y_train, lam=1e-4, tol=3e-3,
                          backend="torch", device="cpu")
    assert info.converged and info.iterations > 3 and len(refreshes) == 2
