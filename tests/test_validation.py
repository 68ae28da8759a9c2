"""One rule per parameter: every door reads the constants of selfdistill._validation."""

from __future__ import annotations

import pytest

from selfdistill import SelfDistillationClassifier, SelfDistillError
from selfdistill._validation import LAM, LAM_RANGE, PLL_LOSSES, TOL, Interval, Q, check_in
from selfdistill.experiments.config import parse_config


@pytest.mark.parametrize("interval,text", [
    (LAM, "[1e-12, 10000]"), (Q, "[0, 1]"), (TOL, "(0, 1)"),
    (Interval(0, None, closed="left", integer=True), "[0, inf)"),
])
def test_interval_notation(interval, text):
    assert str(interval) == text


def test_bounds_and_types():
    assert LAM_RANGE[0] in LAM and LAM_RANGE[1] in LAM and 0 not in LAM and -1 not in LAM
    assert 0.0 in Q and 1.0 in Q and 0.0 not in TOL and 1.0 not in TOL
    assert True not in Q and "0.5" not in Q and float("nan") not in Q
    with pytest.raises(SelfDistillError, match=r"q must be a number in \[0, 1\], got '0.5'"):
        check_in("0.5", Q, name="q")


def test_estimator_constraints_are_the_same_ranges():
    cons = SelfDistillationClassifier._parameter_constraints
    for key, rule in (("lam", LAM), ("q", Q), ("tol", TOL)):
        sk = cons[key][0]
        assert (sk.left, sk.right, sk.closed) == (rule.lo, rule.hi, rule.closed), key
    assert cons["pll_loss"][0].options == set(PLL_LOSSES)


def test_q_has_one_interval_config_included():
    """q = 0 (cross-entropy) is accepted by the solver, the estimator and now the config."""
    cfg = parse_config({"grid": {"datasets": ["digits"]}, "options": {"q": 0.0}})
    assert cfg.options["q"] == 0.0
    with pytest.raises(SelfDistillError, match=r"options.q: must be in \[0, 1\]"):
        parse_config({"grid": {"datasets": ["digits"]}, "options": {"q": 1.5}})


def test_estimator_refuses_lam_outside_the_range(digits):
    with pytest.raises(ValueError, match="'lam' parameter"):
        SelfDistillationClassifier(lam=1e300).fit(digits.X_train[:50], digits.y_train[:50])
