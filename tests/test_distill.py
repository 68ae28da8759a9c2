"""The teacher -> SD -> PLL pipeline on real (digits) data and its fixed-point identities."""

import numpy as np
import pytest

from selfdistill import make_noisy_labels, pll_targets, self_distill, softmax
from selfdistill._errors import SelfDistillError
from selfdistill.distill import model_names
from selfdistill.solvers import one_hot

LAM = 1e-3


def test_acc(fit, ds):
    return float(np.mean(np.argmax(ds.X_test @ fit.W.T, axis=1) == ds.y_test))


test_acc.__test__ = False  # helper, not a test


@pytest.fixture(scope="module", params=[(0.5, 0), (0.5, 1), (0.8, 0), (0.8, 1)],
                ids=lambda p: f"sym{p[0]}-seed{p[1]}")
def noisy_run(request, digits):
    rate, seed = request.param
    y_noisy, _ = make_noisy_labels(digits.y_train, kind="sym", rate=rate, n_classes=10,
                                   seed=seed)
    fits = self_distill(digits.X_train, y_noisy, lam=LAM, rounds=4, n_classes=10)
    return rate, y_noisy, fits


def test_names_and_all_converged(noisy_run):
    _, _, fits = noisy_run
    assert [f.name for f in fits] == model_names(4, True)
    assert all(f.fit.converged for f in fits)


def test_sd_beats_the_teacher_under_noise(noisy_run, digits):
    """theory-derivation.md §2: averaging removes instance-specific noise (+2 to +17 points)."""
    rate, _, fits = noisy_run
    accs = {f.name: test_acc(f, digits) for f in fits}
    best_sd = max(v for k, v in accs.items() if k.startswith("sd-"))
    assert best_sd >= accs["teacher"] + 0.01
    if rate == 0.8:
        assert accs["pll"] >= accs["teacher"] + 0.05


def test_stationarity_lam_W_equals_label_average(noisy_run, digits):
    """theory-derivation.md §1: at the minimiser lam W = (1/N) (Y - P)^T Phi, for every round.

    Recomputed here independently of the solver, to its tolerance (1e-6 of the
    gradient norm at W = 0).
    """
    _, y_noisy, fits = noisy_run
    X = digits.X_train
    N = X.shape[0]
    targets = one_hot(y_noisy, 10)
    for f in fits[:-1]:  # CE rounds (PLL uses GCE)
        P = softmax(X @ f.W.T)
        rhs = (targets - P).T @ X / N
        assert np.linalg.norm(LAM * f.W - rhs) <= 1.01e-6 * f.fit.grad_norm0
        targets = P


def test_students_are_warm_started_and_cheaper(noisy_run):
    _, _, fits = noisy_run
    assert fits[2].fit.iterations <= fits[0].fit.iterations


def test_continued_chain_and_extrapolated_starts_reach_the_same_students(digits):
    """_self_distill(start=(1, W_sd1)) fits only sd-2.. and lands where the full chain does
    (whose sd-2 starts half a step past sd-1): each student's objective is strictly
    convex, so the warm start changes the steps, not the minimiser."""
    from selfdistill.distill import _self_distill

    y, _ = make_noisy_labels(digits.y_train, kind="sym", rate=0.5, n_classes=10, seed=0)
    kw = dict(lam=LAM, pll=False, pll_loss="gce", q=0.7, n_classes=10, tol=1e-7,
              max_iter=5000)
    full = _self_distill(digits.X_train, y, rounds=3, **kw)
    cont = _self_distill(digits.X_train, y, rounds=3, start=(1, full[1].W), **kw)
    assert [f.name for f in cont] == ["sd-2", "sd-3"]
    for a, b in zip(full[2:], cont):
        assert np.linalg.norm(a.W - b.W) <= 1e-5 * np.linalg.norm(a.W)


def test_clean_labels_sd_declines_slowly(digits):
    """Without noise, more rounds only average away signal (theory-derivation.md §2)."""
    fits = self_distill(digits.X_train, digits.y_train, lam=LAM, rounds=4, pll=False)
    accs = [test_acc(f, digits) for f in fits]
    assert accs[-1] <= accs[0] + 0.005
    assert accs[-1] >= accs[0] - 0.05


def test_pll_targets_are_top2_two_hot():
    P = np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]])
    np.testing.assert_array_equal(pll_targets(P), [[0, 0.5, 0.5], [0.5, 0, 0.5]])


def test_two_hot_variant_is_the_exact_ce_fixed_point(digits):
    y_noisy, _ = make_noisy_labels(digits.y_train, kind="sym", rate=0.6, n_classes=10, seed=0)
    fits = self_distill(digits.X_train, y_noisy, lam=LAM, rounds=0, pll_loss="two-hot")
    teacher, pll = fits
    T = pll_targets(softmax(digits.X_train @ teacher.W.T))
    P = softmax(digits.X_train @ pll.W.T)
    rhs = (T - P).T @ digits.X_train / len(y_noisy)
    assert np.linalg.norm(LAM * pll.W - rhs) <= 1.01e-6 * pll.fit.grad_norm0


def test_gce_and_two_hot_differ_and_both_help(digits):
    y_noisy, _ = make_noisy_labels(digits.y_train, kind="sym", rate=0.8, n_classes=10, seed=0)
    gce = self_distill(digits.X_train, y_noisy, lam=LAM, rounds=0, pll_loss="gce")
    two = self_distill(digits.X_train, y_noisy, lam=LAM, rounds=0, pll_loss="two-hot")
    assert not np.allclose(gce[1].W, two[1].W)
    assert test_acc(gce[1], digits) > test_acc(gce[0], digits)
    assert test_acc(two[1], digits) > test_acc(two[0], digits)


def test_deterministic(digits):
    a = self_distill(digits.X_train, digits.y_train, lam=LAM, rounds=1)
    b = self_distill(digits.X_train, digits.y_train, lam=LAM, rounds=1)
    for fa, fb in zip(a, b):
        np.testing.assert_array_equal(fa.W, fb.W)


def test_bad_arguments(digits):
    with pytest.raises(SelfDistillError, match="pll_loss"):
        self_distill(digits.X_train, digits.y_train, lam=LAM, pll_loss="ce")
    with pytest.raises(SelfDistillError, match="rounds"):
        self_distill(digits.X_train, digits.y_train, lam=LAM, rounds=-1)


def test_banking77_sym08_sd_and_pll_beat_the_teacher():
    """Issue 3's headline on the bundled data (seed 0, lam 1e-5): teacher near 65%,
    SD at least 5 points above it by round 2, PLL at least 10 points above it."""
    from selfdistill.datasets import load_banking77

    ds = load_banking77()
    y_noisy, _ = make_noisy_labels(ds.y_train, kind="sym", rate=0.8, n_classes=77, seed=0)
    fits = self_distill(ds.X_train, y_noisy, lam=1e-5, rounds=2, n_classes=77)
    acc = {f.name: test_acc(f, ds) for f in fits}
    assert 0.60 <= acc["teacher"] <= 0.70
    assert max(acc["sd-1"], acc["sd-2"]) >= acc["teacher"] + 0.05
    assert acc["pll"] >= acc["teacher"] + 0.10


@pytest.mark.parametrize("kw,match", [
    (dict(lam=-1.0), r"lam must be in \[1e-12, 10000\]"), (dict(lam=0.0), "lam must be"),
    (dict(lam=1e300), r"lam must be in \[1e-12, 10000\]"), (dict(lam=float("nan")), "lam must be"),
    (dict(q=1.5), r"q must be in \[0, 1\]"), (dict(tol=0.0), r"tol must be in \(0, 1\)"),
    (dict(max_iter=0), "max_iter must be"), (dict(rounds=1.5), "rounds must be an integer"),
])
def test_public_entry_checks_every_parameter(digits, kw, match):
    """self_distill is a door: no status-3 fits from a negative lam, one message per rule."""
    with pytest.raises(SelfDistillError, match=match):
        self_distill(digits.X_train, digits.y_train, **{"lam": LAM, **kw})


def test_history_record_is_the_fit_projection(digits):
    fits = self_distill(digits.X_train, digits.y_train, lam=LAM, rounds=1, pll=False)
    rec = fits[1].to_dict()
    assert rec == {"name": "sd-1", **fits[1].fit.to_dict()}
    assert {"objective", "iterations", "nfev", "seconds", "converged", "status",
            "relative_grad"} <= set(rec) and "W" not in rec


@pytest.mark.parametrize("K", [3, 5, 10, 77, 400])
def test_pll_targets_equal_the_stable_sort_with_ties(K):
    # issue 16 (large K): top-2 by argpartition, O(N K), must pick what the stable
    # argsort picked, ties to the lower class index included
    rng = np.random.default_rng(K)
    for rounded in (False, True):
        P = rng.random((300, K))
        P[rng.random((300, K)) < 0.3] = 0.5
        if rounded:
            P = np.round(P, 1)
        expected = np.zeros_like(P)
        np.put_along_axis(expected, np.argsort(-P, axis=1, kind="stable")[:, :2], 0.5, axis=1)
        np.testing.assert_array_equal(pll_targets(P), expected)
