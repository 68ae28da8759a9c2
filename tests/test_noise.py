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


# -- turn-2 kinds: idn, paper-asym, paper-cc, and the NoiseSpec value -----------------------
@pytest.mark.parametrize("kind", ["idn", "paper-asym", "paper-cc"])
@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_new_kinds_realise_the_requested_rate(bank, kind, rate):
    y_noisy, T = make_noisy_labels(bank.y_train, kind=kind, rate=rate, n_classes=77,
                                   features=bank.X_train, seed=1)
    assert abs(np.mean(y_noisy != bank.y_train) - rate) <= 0.001
    np.testing.assert_allclose(T.sum(axis=1), 1.0)


def test_paper_asym_matrix_matches_the_reference_definition():
    K, r = 5, 0.5
    T = transition_matrix("paper-asym", r, K)
    assert T[0, 0] == pytest.approx(1 - r)
    assert T[0, 1] == pytest.approx(2 * r / K)          # next class: rate/K + rate/K
    assert T[0, 2] == T[0, 3] == T[0, 4] == pytest.approx(r / K)
    assert T[4, 0] == pytest.approx(2 * r / K)          # wraps around


def test_paper_cc_flips_stay_in_complete_linkage_clusters(bank):
    from selfdistill.noise import paper_cc_clusters

    y = bank.y_train
    cl = paper_cc_clusters(bank.X_train, y, 77)
    assert 2 <= len(np.unique(cl)) < 77
    y_noisy, _ = make_noisy_labels(y, kind="paper-cc", rate=0.5, n_classes=77,
                                   features=bank.X_train, seed=0)
    flipped = y_noisy != y
    # flips stay in the cluster (a singleton class goes to its most correlated class)
    sizes = np.bincount(cl)
    in_big = sizes[cl[y[flipped]]] > 1
    assert np.all(cl[y[flipped]][in_big] == cl[y_noisy[flipped]][in_big])


def test_idn_flips_go_where_a_weak_model_is_confused(digits):
    from selfdistill.noise import idn_labels

    y = digits.y_train
    a = idn_labels(y, 0.3, 10, features=digits.X_train, seed=0)
    b = idn_labels(y, 0.3, 10, features=digits.X_train, seed=0)
    c = idn_labels(y, 0.3, 10, features=digits.X_train, seed=1)
    np.testing.assert_array_equal(a, b)
    assert np.mean(a != y) == pytest.approx(round(0.3 * len(y)) / len(y))
    assert not np.array_equal(a, c)
    # instance-dependent: the flipped rows concentrate on a few confusions, unlike sym
    flips = np.zeros((10, 10))
    np.add.at(flips, (y[a != y], a[a != y]), 1)
    top = np.sort(flips.ravel())[::-1]
    assert top[:10].sum() / top.sum() > 0.3      # sym would give about 10 / 90 = 0.11


@pytest.mark.parametrize("text,kind,rate", [("sym:0.5", "sym", 0.5), ("idn:0.2", "idn", 0.2),
                                            ("paper-cc:0.3", "paper-cc", 0.3),
                                            ("none", "none", 0.0)])
def test_noise_spec_parse_and_spelling(text, kind, rate):
    from selfdistill.noise import NoiseSpec

    spec = NoiseSpec.parse(text)
    assert (spec.kind, spec.rate) == (kind, rate)
    assert str(spec) == text and NoiseSpec.parse(str(spec)).kind == kind


@pytest.mark.parametrize("text", ["sym", "bogus:0.2", "sym:1.0", "sym:-0.1", "sym:x",
                                  "matrix:/nonexistent.npy"])
def test_noise_spec_refuses_bad_spellings(text):
    from selfdistill.noise import NoiseSpec

    with pytest.raises(SelfDistillError):
        NoiseSpec.parse(text)
