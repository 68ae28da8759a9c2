"""Class prior (selfdistill.prior): the uniform shift, where it applies, what it changes."""

from dataclasses import replace

import numpy as np
import pytest

from selfdistill import SelfDistillationClassifier, load_model, make_noisy_labels
from selfdistill.distill import self_distill
from selfdistill.experiments.runner import run_pipeline
from selfdistill.losses import softmax
from selfdistill.prior import adjust_prior, prior_shift


def test_uniform_shift_moves_the_learnt_prior_to_uniform():
    rng = np.random.default_rng(0)
    L = rng.standard_normal((500, 6)) + np.log([8, 4, 2, 1, 1, 0.5])
    before = softmax(L).mean(axis=0)
    after = softmax(L + prior_shift(L)).mean(axis=0)
    assert np.ptp(before) > 0.3 and np.ptp(after) < 0.25 * np.ptp(before)
    assert np.array_equal(prior_shift(L, "given"), np.zeros(6))
    # a shift of every logit by the same bias: the order of a row's classes can only
    # change where the bias differs
    assert np.argmax(prior_shift(L)) == np.argmin(before)


def test_adjust_prior_keeps_the_weights(digits):
    X, y = digits.X_train[:300], digits.y_train[:300]
    fits = self_distill(X, y, lam=1e-3, rounds=1, pll=False, n_classes=10)
    assert adjust_prior(fits, X, "given") == fits
    shifted = adjust_prior(fits, X, "uniform")
    for f, g in zip(fits, shifted):
        assert g.W is f.W and g.bias.shape == (10,)
        np.testing.assert_allclose(g.predict_proba(X), softmax(X @ f.W.T + g.bias))


@pytest.fixture(scope="module")
def skewed(digits):
    """Digits under idn 0.4: the annotator's wrong labels pile onto a few classes."""
    y, _ = make_noisy_labels(digits.y_train, kind="idn", rate=0.4, n_classes=10,
                             features=digits.X_train, seed=0)
    return replace(digits, y_train=y, y_train_clean=digits.y_train)


def test_uniform_prior_recovers_accuracy_under_skewing_noise(skewed):
    counts = np.bincount(skewed.y_train, minlength=10)
    assert counts.max() > 1.4 * counts.min()
    acc = {}
    for prior in ("given", "uniform"):
        res = run_pipeline(skewed, lam=1e-3, rounds=2, pll=False, select=False,
                           fit_intercept=True, class_prior=prior)
        assert res.to_record()["class_prior"] == prior
        acc[prior] = {m["name"]: m["test_acc"] for m in res.models}
    # measured 0.66 / 0.68 / 0.68 given, 0.67 / 0.70 / 0.71 uniform (test set balanced)
    assert acc["uniform"]["sd-2"] > acc["given"]["sd-2"] + 0.01
    assert all(acc["uniform"][k] >= acc["given"][k] for k in acc["given"])


def test_no_intercept_means_no_shift(skewed):
    res = run_pipeline(skewed, lam=1e-3, rounds=0, pll=False, select=False,
                       fit_intercept=False, class_prior="uniform")
    assert res.class_prior == "given" and res.fits[0].bias is None
    assert not np.any(res.weights()[1])


def test_estimator_shift_is_the_only_difference(skewed, tmp_path):
    X, y = skewed.X_train, skewed.y_train
    kw = dict(lam=1e-3, mode="sd", rounds=1, random_state=0)
    given = SelfDistillationClassifier(class_prior="given", **kw).fit(X, y)
    uni = SelfDistillationClassifier(**kw).fit(X, y)
    assert uni.class_prior == "uniform"
    np.testing.assert_array_equal(uni.coef_, given.coef_)
    logits = X @ given.coef_.T + given.intercept_
    np.testing.assert_allclose(uni.intercept_ - given.intercept_, prior_shift(logits),
                               atol=1e-9)
    np.testing.assert_array_equal(uni.label_issues_, given.label_issues_)
    same = load_model(uni.save(tmp_path / "m.npz"))
    assert same.class_prior == "uniform"
    np.testing.assert_array_equal(same.predict(skewed.X_test), uni.predict(skewed.X_test))


def test_class_prior_is_checked(digits):
    with pytest.raises(ValueError, match="'class_prior' parameter"):
        SelfDistillationClassifier(class_prior="balanced").fit(digits.X_train[:60],
                                                                digits.y_train[:60])
