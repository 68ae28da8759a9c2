"""SelfDistillationClassifier: scikit-learn's estimator contract and its own attributes."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from selfdistill import SelfDistillationClassifier, make_noisy_labels

# Skipped checks, and why: none. (The list stays here so a future skip is visible.)
EXPECTED_FAILED_CHECKS: dict[str, str] = {}


@parametrize_with_checks(
    [SelfDistillationClassifier(lam=1e-3, rounds=1),
     SelfDistillationClassifier(lam=1e-3, rounds=2, mode="multi"),
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
