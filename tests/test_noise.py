"""Noise models: stochastic matrices, realised rates, determinism, cc clusters."""

import numpy as np
import pytest

from selfdistill import SelfDistillError, make_noisy_labels, transition_matrix
from selfdistill.datasets import load_banking77
from selfdistill.noise import confusable_clusters

pytestmark = pytest.mark.filterwarnings("error")


@pytest.fixture(scope="module")
def bank():
    return load_banking77()


@pytest.mark.parametrize("kind", ["sym", "asym", "cc"])
@pytest.mark.parametrize("rate", [0.2, 0.5, 0.8])
def test_realised_rate_within_001_at_10k(bank, kind, rate):
    y_noisy, T = make_noisy_labels(bank.y_train, kind=kind, rate=rate, n_classes=77,
                                   features=bank.X_train, seed=3)
    assert abs(np.mean(y_noisy != bank.y_train) - rate) <= 0.01
    np.testing.assert_allclose(T.sum(axis=1), 1.0)
    np.testing.assert_allclose(np.diag(T), 1 - rate)
    assert (T >= 0).all()


def test_same_seed_same_noise_other_seed_other_noise(digits):
    a, _ = make_noisy_labels(digits.y_train, kind="sym", rate=0.5, n_classes=10, seed=7)
    b, _ = make_noisy_labels(digits.y_train, kind="sym", rate=0.5, n_classes=10, seed=7)
    c, _ = make_noisy_labels(digits.y_train, kind="sym", rate=0.5, n_classes=10, seed=8)
    np.testing.assert_array_equal(a, b)
    assert np.mean(a != c) > 0.3


def test_sym_matrix_and_flip_destinations_are_uniform():
    T = transition_matrix("sym", 0.6, 4)
    np.testing.assert_allclose(T, 0.4 * np.eye(4) + 0.2 * (1 - np.eye(4)))
    y = np.repeat(np.arange(4), 5000)
    y_noisy, _ = make_noisy_labels(y, kind="sym", rate=0.6, n_classes=4, seed=0)
    counts = np.bincount(y_noisy[(y == 0) & (y_noisy != 0)], minlength=4)[1:]
    assert np.all(np.abs(counts / counts.sum() - 1 / 3) < 0.03)


def test_asym_prefers_next_class():
    T = transition_matrix("asym", 0.4, 5)
    assert T[0, 1] == pytest.approx(0.4 * (0.5 + 0.5 / 4))
    assert T[0, 2] == pytest.approx(0.4 * 0.5 / 4)
    assert T[4, 0] == T[0, 1]  # wraps around


def test_cc_flips_stay_within_feature_clusters(bank):
    y = bank.y_train
    cl = confusable_clusters(bank.X_train, y, 77)
    assert 2 <= len(np.unique(cl)) < 77
    y_noisy, T = make_noisy_labels(y, kind="cc", rate=0.5, n_classes=77,
                                   features=bank.X_train, seed=0)
    flipped = y_noisy != y
    same_cluster = cl[y[flipped]] == cl[y_noisy[flipped]]
    # every flip stays in its cluster, except singleton classes sent to their nearest class
    singletons = np.bincount(cl)[cl] == 1
    assert np.all(same_cluster | singletons[y[flipped]])
    # clusters come from the features: permuting the features changes them
    rng = np.random.default_rng(0)
    cl2 = confusable_clusters(bank.X_train[rng.permutation(len(y))], y, 77)
    assert not np.array_equal(cl, cl2)


def test_cc_needs_features(digits):
    with pytest.raises(SelfDistillError, match="features"):
        make_noisy_labels(digits.y_train, kind="cc", rate=0.3, n_classes=10)


def test_custom_matrix_is_used_and_checked(digits):
    T = np.eye(10)
    T[0] = 0.0
    T[0, 1] = 1.0  # every 0 becomes a 1
    y_noisy, T_used = make_noisy_labels(digits.y_train, kind="custom", T=T, n_classes=10)
    assert np.all(y_noisy[digits.y_train == 0] == 1)
    assert np.all(y_noisy[digits.y_train != 0] == digits.y_train[digits.y_train != 0])
    with pytest.raises(SelfDistillError, match="row-stochastic"):
        make_noisy_labels(digits.y_train, kind="custom", T=T * 0.5, n_classes=10)


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.2])
def test_bad_rates_are_refused(digits, rate):
    with pytest.raises(SelfDistillError, match=r"\[0, 1\)"):
        make_noisy_labels(digits.y_train, kind="sym", rate=rate, n_classes=10)


def test_unknown_kind_is_refused(digits):
    with pytest.raises(SelfDistillError, match="unknown noise kind"):
        make_noisy_labels(digits.y_train, kind="gaussian", rate=0.1, n_classes=10)
