"""SelfDistillationClassifier: scikit-learn's estimator contract and its own attributes."""

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import cross_val_score
from sklearn.utils.estimator_checks import parametrize_with_checks

from selfdistill import SelfDistillationClassifier, make_noisy_labels

# Skipped checks, and why: none. (The list stays here so a future skip is visible.)
EXPECTED_FAILED_CHECKS: dict[str, str] = {}


@parametrize_with_checks(
    [SelfDistillationClassifier(lam=1e-3, rounds=1),
     SelfDistillationClassifier(lam=1e-3, rounds=1, mode="pll"),
     SelfDistillationClassifier(lam=1e-3, rounds=2, mode="multi"),
     SelfDistillationClassifier(lam=1e-3, rounds=2, mode="sd"),
     SelfDistillationClassifier(lam=1e-2, mode="teacher")],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS,
)
def test_sklearn_contract(estimator, check):
    check(estimator)


def test_attributes_after_fit(digits):
    y_noisy, _ = make_noisy_labels(digits.y_train, kind="sym", rate=0.5, n_classes=10, seed=0)
    clf = SelfDistillationClassifier(lam=1e-3, rounds=2, mode="multi").fit(digits.X_train,
                                                                             y_noisy)
    assert [h["name"] for h in clf.history_] == ["teacher", "sd-1", "sd-2"]
    assert set(clf.history_[0]) >= {"name", "objective", "iterations", "seconds"}
    assert clf.coef_.shape == (10, 64) and clf.n_features_in_ == 64
    assert clf.selected_ == "sd-2" and clf.lam_ == 1e-3
    proba = clf.predict_proba(digits.X_test)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    # label issues: most flagged rows really are corrupted (base rate 0.5)
    flagged = clf.label_issues_
    assert len(flagged) > 100
    precision = np.mean(y_noisy[flagged] != digits.y_train[flagged])
    assert precision > 0.8
    assert np.all(np.diff(clf.label_issue_scores_) <= 0)


def test_modes_predict_with_their_model(digits):
    X, y = digits.X_train, digits.y_train
    t = SelfDistillationClassifier(lam=1e-3, mode="teacher").fit(X, y)
    p = SelfDistillationClassifier(lam=1e-3, mode="pll").fit(X, y)
    assert t.selected_ == "teacher" and p.selected_ == "pll"
    assert [h["name"] for h in p.history_] == ["teacher", "pll"]
    np.testing.assert_allclose(t.coef_, p.history_ and SelfDistillationClassifier(
        lam=1e-3, mode="teacher").fit(X, y).coef_)


def test_string_labels_and_clone(digits):
    names = np.array([f"c{k}" for k in range(10)])
    clf = SelfDistillationClassifier(lam=1e-3, mode="teacher")
    clf.fit(digits.X_train, names[digits.y_train])
    assert clf.predict(digits.X_test[:3]).dtype.kind == "U"
    assert clf.score(digits.X_test, names[digits.y_test]) > 0.9
    assert clone(clf).get_params() == clf.get_params()


def test_errors_name_the_parameter(digits):
    with pytest.raises(ValueError, match="'lam' parameter"):
        SelfDistillationClassifier(lam=-1).fit(digits.X_train, digits.y_train)
    with pytest.raises(ValueError, match="'mode' parameter"):
        SelfDistillationClassifier(mode="many").fit(digits.X_train, digits.y_train)
    with pytest.raises(NotFittedError):
        SelfDistillationClassifier().predict(digits.X_test)
    with pytest.raises(ValueError, match="only one class"):
        SelfDistillationClassifier().fit(digits.X_train[:5], np.zeros(5))


@pytest.mark.parametrize("lam", [1e300, 1e-300])
def test_lam_outside_its_range_is_refused(digits, lam):
    # issue 16 bug 4: lam=1e300 crashed in the line search, 1e-300 ran 0 iterations
    with pytest.raises(ValueError, match=r"'lam' parameter .* range \[1e-12, 10000"):
        SelfDistillationClassifier(lam=lam).fit(digits.X_train[:60], digits.y_train[:60])
    with pytest.raises(ValueError, match=r"lam_grid entry must be in \[1e-12, 10000\]"):
        SelfDistillationClassifier(lam="auto", lam_grid=(1e-4, lam)).fit(
            digits.X_train[:60], digits.y_train[:60])


@pytest.mark.parametrize("loader", [load_digits, load_wine])
def test_default_never_loses_badly_to_the_teacher_on_clean_data(loader):
    # issue 16: the default was mode="pll", cross_val_score 0.70 on digits vs 0.91
    X, y = loader(return_X_y=True)
    X, y = X[::2], y[::2]  # every class kept, half the time
    assert SelfDistillationClassifier().mode == "auto"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # PLL folds on raw features
        default = cross_val_score(SelfDistillationClassifier(), X, y, cv=3).mean()
    teacher = cross_val_score(SelfDistillationClassifier(mode="teacher"), X, y, cv=3).mean()
    assert default >= 0.97 * teacher


def test_sd_is_the_name_and_multi_an_alias(digits):
    X, y = digits.X_train[:400], digits.y_train[:400]
    sd = SelfDistillationClassifier(lam=1e-3, rounds=2, mode="sd").fit(X, y)
    multi = SelfDistillationClassifier(lam=1e-3, rounds=2, mode="multi").fit(X, y)
    assert sd.selected_ == multi.selected_ == "sd-2"
    np.testing.assert_array_equal(sd.coef_, multi.coef_)
    assert "sd" in SelfDistillationClassifier.__doc__


def test_auto_refits_only_the_chain_it_needs(digits):
    clf = SelfDistillationClassifier(lam=1e-3, rounds=2).fit(digits.X_train[:400],
                                                             digits.y_train[:400])
    names = [h["name"] for h in clf.history_]
    assert names[-1] == clf.selected_
    assert clf.cv_results_["models"] == ["teacher", "sd-1", "sd-2", "pll"]


def test_two_classes_never_fit_or_select_pll():
    # issue 16: with K = 2 the top-2 set is every class, yet PLL was selected on
    # breast_cancer
    X, y = load_breast_cancer(return_X_y=True)
    X = X / np.linalg.norm(X, axis=1, keepdims=True)
    clf = SelfDistillationClassifier(lam=1e-4, rounds=2).fit(X, y)
    assert "pll" not in clf.cv_results_["models"]
    assert clf.selected_ != "pll"
    assert all(h["name"] != "pll" for h in clf.history_)
    with pytest.warns(UserWarning, match="mode='pll' needs at least 3 classes"):
        pll = SelfDistillationClassifier(lam=1e-4, mode="pll").fit(X, y)
    assert pll.selected_ == "teacher" and [h["name"] for h in pll.history_] == ["teacher"]


def test_a_class_with_one_example_warns_naming_it(digits):
    X, y = digits.X_train[:200], np.array([f"c{k}" for k in digits.y_train[:200]])
    y[np.flatnonzero(y == "c3")[1:]] = "c4"
    with pytest.warns(UserWarning, match="class 'c3' has only one training example"):
        SelfDistillationClassifier(lam=1e-3, mode="teacher").fit(X, y)


def test_lam_auto_is_resolved_once_for_the_estimator_and_fit(digits):
    """lam="auto" with mode="auto": the estimator and `fit --lam auto` (run_pipeline) run
    the same procedure and end with the same model and weights."""
    from dataclasses import replace

    from selfdistill import make_noisy_labels
    from selfdistill.experiments.runner import run_pipeline

    y, _ = make_noisy_labels(digits.y_train, kind="asym", rate=0.3, n_classes=10, seed=0)
    grid = (1e-4, 1e-3, 1e-2)
    clf = SelfDistillationClassifier(lam="auto", rounds=2, lam_grid=grid, random_state=0)
    clf.fit(digits.X_train, y)
    res = run_pipeline(replace(digits, y_train=y, y_train_clean=None), lam="auto", rounds=2,
                       lam_grid=grid, noise_seed=0, issues=True, fit_intercept=True,
                       class_prior="uniform",   # the estimator's and fit's default
                       tol=clf.tol)             # fit's --lam auto stops at 1e-4
    assert clf.selected_ == res.selected and clf.lam_ == res.lam
    coef, intercept = res.weights()
    np.testing.assert_allclose(clf.coef_, coef, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(clf.intercept_, intercept, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(np.sort(clf.label_issues_), np.sort(res.issues.indices))


def threshold_classes(n: int, seed: int, lo: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """d = 1, three threshold classes: x uniform in [lo, lo + 3], y = floor(x - lo)."""
    x = np.random.default_rng(seed).uniform(lo, lo + 3.0, n)
    return x[:, None], np.floor(x - lo).astype(int)


@pytest.mark.parametrize("lo", [0.0, -1.5])
def test_an_intercept_separates_threshold_classes(lo):
    # issue 16: with d = 1 and three threshold classes every model scored ~67% (centred
    # x: the sign of x picks the outer classes, the middle one is lost) or ~33% (x >= 0:
    # one class wins everywhere); a bias per class separates all three
    X, y = threshold_classes(300, seed=0, lo=lo)
    Xt, yt = threshold_classes(1000, seed=1, lo=lo)
    with_b = SelfDistillationClassifier().fit(X, y)
    assert with_b.fit_intercept and with_b.score(Xt, yt) > 0.95
    without = SelfDistillationClassifier(fit_intercept=False).fit(X, y)
    assert without.score(Xt, yt) < 0.7
    assert not np.any(without.intercept_)


def test_predict_proba_is_softmax_of_coef_and_intercept(digits):
    X, y = digits.X_train[:300], digits.y_train[:300]
    clf = SelfDistillationClassifier(lam=1e-3, rounds=1, mode="sd").fit(X, y)
    assert clf.coef_.shape == (10, 64) and clf.intercept_.shape == (10,)
    Z = digits.X_test @ clf.coef_.T + clf.intercept_
    P = np.exp(Z - Z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(clf.predict_proba(digits.X_test),
                               P / P.sum(axis=1, keepdims=True), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(clf.decision_function(digits.X_test), Z, rtol=1e-12)


@pytest.mark.parametrize("s", [1.0, 3.0])
def test_intercept_is_a_constant_column_penalised_by_lam_over_s2(digits, s):
    """fit_intercept=True is the model without intercept on [X, s 1] (liblinear's way), so
    the bias costs (lam/2) b^2 / s^2 in the objective (the fitted bias: class_prior
    "given", no shift after the fit)."""
    X, y, lam = digits.X_train[:300], digits.y_train[:300], 1e-3
    clf = SelfDistillationClassifier(lam=lam, mode="teacher", intercept_scaling=s,
                                     class_prior="given").fit(X, y)
    aug = SelfDistillationClassifier(lam=lam, mode="teacher", fit_intercept=False).fit(
        np.hstack([X, np.full((300, 1), s)]), y)
    np.testing.assert_allclose(clf.coef_, aug.coef_[:, :64], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(clf.intercept_, s * aug.coef_[:, 64], rtol=1e-10, atol=1e-12)
    Z = X @ clf.coef_.T + clf.intercept_
    logp = Z - Z.max(axis=1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
    objective = (-logp[np.arange(300), y].mean()
                 + lam / 2 * (np.sum(clf.coef_ ** 2) + np.sum(clf.intercept_ ** 2) / s ** 2))
    assert clf.history_[0]["objective"] == pytest.approx(objective, rel=1e-10)


def test_intercept_scaling_is_checked(digits):
    with pytest.raises(ValueError, match="'intercept_scaling' parameter"):
        SelfDistillationClassifier(intercept_scaling=0.0).fit(digits.X_train[:60],
                                                              digits.y_train[:60])


def test_auto_lam_grid_defaults_to_the_features_unit(digits):
    """lam_grid=None: the default grid in the features' lam unit (15 for digits in
    [0, 1]); a given grid is used as given; None survives clone."""
    X, y = digits.X_train[:600], digits.y_train[:600]
    clf = SelfDistillationClassifier(lam="auto", rounds=1, random_state=0).fit(X, y)
    assert clf.get_params()["lam_grid"] is None and clone(clf).lam_grid is None
    assert clf.cv_results_["lam_unit"] == 15.0 and clf.cv_results_["path"][0]["lam"] == 1.5e-3
    given = SelfDistillationClassifier(lam="auto", rounds=1, random_state=0,
                                       lam_grid=(1e-6, 1e-5, 1e-4)).fit(X, y)
    assert given.cv_results_["path"][0]["lam"] == 1e-4


def test_cv_sets_the_folds_of_lam_auto_too(digits):
    """cv=None: 4 folds under lam="auto" (as fit --lam auto), 3 for a fixed lam's
    selection; a given cv is used by both."""
    X, y = digits.X_train[:400], digits.y_train[:400]
    kw = dict(rounds=1, random_state=0, lam_grid=(1e-4, 1e-3))
    assert SelfDistillationClassifier(lam="auto", **kw).fit(X, y).cv_results_["n_splits"] == 4
    assert SelfDistillationClassifier(lam="auto", cv=5, **kw).fit(X, y).cv_results_[
        "n_splits"] == 5
    fixed = SelfDistillationClassifier(lam=1e-3, rounds=1, random_state=0).fit(X, y)
    assert fixed.cv_results_["n_splits"] == 3
