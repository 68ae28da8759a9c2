"""Property-based tests (hypothesis): loaders, noise models and the solver.

Each property is checked on many generated inputs (small, so the file runs in seconds):

- loaders: any arrays written as a feature file either load back unchanged or are
  refused with :class:`SelfDistillError`, never another exception;
- noise: transition matrices are row-stochastic with the requested diagonal, the
  realised rate matches the requested one, and the same seed gives the same labels;
- solver: at the returned W the gradient of the objective is (relatively) zero and the
  objective is never above its value at W = 0 (log K).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from selfdistill import SelfDistillError, fit_softmax, make_noisy_labels, transition_matrix
from selfdistill.datasets import load_features
from selfdistill.losses import softmax

from .conftest import write_npz

FAST = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=32)


@st.composite
def labelled(draw, min_n=4, max_n=40, max_d=6, max_k=5):
    """(X, y, K): finite features and labels using at least two of K classes."""
    K = draw(st.integers(2, max_k))
    N = draw(st.integers(max(min_n, K), max_n))
    d = draw(st.integers(1, max_d))
    X = draw(hnp.arrays(np.float64, (N, d), elements=finite))
    y = draw(hnp.arrays(np.int64, N, elements=st.integers(0, K - 1)))
    assume(len(np.unique(y)) >= 2)
    return X, y, K


# -- loaders -----------------------------------------------------------------------------------
@FAST
@given(data=labelled())
def test_valid_arrays_round_trip(tmp_path, data):
    X, y, K = data
    path = write_npz(tmp_path / "ok.npz", X_train=X, y_train=y,
                     classes=np.array([f"c{k}" for k in range(K)]))
    ds = load_features(path)
    np.testing.assert_array_equal(ds.X_train, X)
    np.testing.assert_array_equal(ds.y_train, y)
    assert ds.n_classes == K


any_array = st.one_of(
    hnp.arrays(hnp.scalar_dtypes(), hnp.array_shapes(min_dims=0, max_dims=3, max_side=5)),
    hnp.arrays(np.float64, st.tuples(st.integers(0, 6), st.integers(0, 4))),
    hnp.arrays(np.int64, st.integers(0, 6), elements=st.integers(-3, 6)),
)


@FAST
@given(arrays=st.dictionaries(
    st.sampled_from(["X_train", "y_train", "X_test", "y_test", "classes", "y_train_clean",
                     "extra"]), any_array, max_size=6))
def test_arbitrary_arrays_load_or_raise_selfdistillerror(tmp_path, arrays):
    path = write_npz(tmp_path / "any.npz", **arrays)
    try:
        ds = load_features(path)
    except SelfDistillError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert np.isfinite(ds.X_train).all()
    assert ds.y_train.min() >= 0 and ds.y_train.max() < ds.n_classes
    assert ds.X_train.shape[0] == ds.y_train.shape[0] > 0


# -- noise -------------------------------------------------------------------------------------
@FAST
@given(kind=st.sampled_from(["sym", "asym"]), rate=st.floats(0.0, 0.95),
       K=st.integers(2, 12))
def test_transition_matrix_is_row_stochastic(kind, rate, K):
    T = transition_matrix(kind, rate, K)
    assert T.shape == (K, K) and (T >= 0).all()
    np.testing.assert_allclose(T.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(np.diag(T), 1 - rate, atol=1e-12)


@FAST
@given(kind=st.sampled_from(["sym", "asym", "cc"]), rate=st.floats(0.0, 0.9),
       K=st.integers(2, 8), n_per=st.integers(20, 80), seed=st.integers(0, 2**31 - 1))
def test_noise_rate_and_determinism(kind, rate, K, n_per, seed):
    y = np.repeat(np.arange(K), n_per)
    X = np.random.default_rng(0).normal(size=(K, 3))[y] + 0.1
    a, T = make_noisy_labels(y, kind=kind, rate=rate, n_classes=K, features=X, seed=seed)
    b, _ = make_noisy_labels(y, kind=kind, rate=rate, n_classes=K, features=X, seed=seed)
    np.testing.assert_array_equal(a, b)
    assert a.min() >= 0 and a.max() < K
    np.testing.assert_allclose(T.sum(axis=1), 1.0, atol=1e-12)
    # per class, round(rate * n) labels are flipped: the realised rate is within 1/(2 n)
    assert abs(np.mean(a != y) - rate) <= 0.5 / n_per + 1e-12


# -- solver ------------------------------------------------------------------------------------
def _objective_and_grad(X, T, W, lam):
    N = X.shape[0]
    P = softmax(X @ W.T)
    f = -np.sum(T * np.log(np.clip(P, 1e-300, None))) / N + 0.5 * lam * np.sum(W * W)
    G = (P - T).T @ X / N + lam * W
    return f, G


@FAST
@given(data=labelled(max_n=30), log_lam=st.floats(-4, 1), soft=st.booleans())
def test_solver_reaches_a_stationary_point_below_w0(data, log_lam, soft):
    X, y, K = data
    lam = 10.0 ** log_lam
    T = np.eye(K)[y]
    if soft:
        T = 0.7 * T + 0.3 / K
    W, info = fit_softmax(X, T, lam=lam)
    assert np.isfinite(W).all() and info.converged
    f, G = _objective_and_grad(X, T, W, lam)
    f0, G0 = _objective_and_grad(X, T, np.zeros_like(W), lam)
    assert f <= f0 + 1e-12 * max(1.0, abs(f0))
    np.testing.assert_allclose(f, info.objective, rtol=1e-8, atol=1e-12)
    # the solver's test (default tol 1e-6) is relative to ||grad at 0||; recomputed here
    # independently in float64, with a little slack for the float32 inner products
    assert np.linalg.norm(G) <= 2e-6 * np.linalg.norm(G0) + 1e-12


@pytest.mark.parametrize("K", [2, 3])
def test_solver_objective_at_w0_is_log_k(K):
    X = np.zeros((6, 2))
    y = np.arange(6) % K
    W, info = fit_softmax(X, y, lam=1.0)
    np.testing.assert_allclose(W, 0.0, atol=1e-12)
    np.testing.assert_allclose(info.objective, np.log(K), rtol=1e-12)
