"""Model files: pickle-free round trips, refusals of foreign, future and malformed files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import selfdistill
from selfdistill import SelfDistillationClassifier, SelfDistillError
from selfdistill.model_io import (
    SCHEMA_VERSION,
    SavedModel,
    features_sha256,
    read_model,
    write_model,
)


@pytest.fixture(scope="module")
def fitted(digits):
    X, y = digits.X_train[:400], digits.y_train[:400]
    return SelfDistillationClassifier(lam=1e-3, rounds=1, mode="multi").fit(X, y)


def rewrite(src: Path, dst: Path, **changes) -> Path:
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(changes)
    for k in [k for k, v in changes.items() if v is None]:
        del arrays[k]
    with open(dst, "wb") as fh:
        np.savez(fh, **arrays)
    return dst


def test_estimator_round_trip_identical_predictions(fitted, digits, tmp_path):
    path = fitted.save(tmp_path / "m.npz")
    same = selfdistill.load_model(path)
    X = digits.X_test
    np.testing.assert_array_equal(same.predict(X), fitted.predict(X))
    np.testing.assert_array_equal(same.predict_proba(X), fitted.predict_proba(X))
    assert same.selected_ == fitted.selected_ == "sd-1"
    assert same.lam_ == fitted.lam_ and same.get_params() == fitted.get_params()
    assert same.features_sha256_ == features_sha256(digits.X_train[:400])
    again = SelfDistillationClassifier.load(path)
    np.testing.assert_array_equal(again.coef_, fitted.coef_)
    np.testing.assert_array_equal(again.intercept_, fitted.intercept_)
    assert fitted.fit_intercept and np.any(fitted.intercept_ != 0)


def test_estimator_without_intercept_round_trips(digits, tmp_path):
    X, y = digits.X_train[:300], digits.y_train[:300]
    clf = SelfDistillationClassifier(lam=1e-3, mode="teacher", fit_intercept=False).fit(X, y)
    same = selfdistill.load_model(clf.save(tmp_path / "m.npz"))
    assert not same.fit_intercept and not np.any(same.intercept_)
    np.testing.assert_array_equal(same.predict_proba(digits.X_test),
                                  clf.predict_proba(digits.X_test))


def test_schema_1_file_loads_without_intercept(fitted, digits, tmp_path):
    """A model file written before intercepts existed (schema 1: no ``intercept`` key, no
    ``fit_intercept`` parameter) loads as the model it holds, logits ``X W^T``."""
    params = json.loads(str(np.load(fitted.save(tmp_path / "m.npz"))["params"]))
    params.pop("fit_intercept"), params.pop("intercept_scaling")
    old = rewrite(tmp_path / "m.npz", tmp_path / "old.npz", intercept=None,
                  schema_version=np.array(1), params=np.array(json.dumps(params)))
    saved = read_model(old)
    assert saved.schema_version == 1 and not np.any(saved.intercept)
    clf = selfdistill.load_model(old)
    assert clf.fit_intercept is False and clf.intercept_.shape == (10,)
    X = digits.X_test
    Z = X @ fitted.coef_.T
    P = np.exp(Z - Z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(clf.predict_proba(X), P / P.sum(axis=1, keepdims=True),
                               rtol=1e-12, atol=1e-15)


def test_file_is_plain_arrays(fitted, tmp_path):
    path = fitted.save(tmp_path / "m.npz")
    with np.load(path, allow_pickle=False) as z:
        assert int(z["schema_version"]) == SCHEMA_VERSION
        assert str(z["product_version"]) == selfdistill.__version__
        assert z["W"].shape == (10, 64) and int(z["d"]) == 64
        assert str(z["model_name"]) == "sd-1" and float(z["lam"]) == 1e-3
        assert all(z[k].dtype != object for k in z.files)
        assert json.loads(str(z["params"]))["mode"] == "multi"


def test_string_classes_round_trip(digits, tmp_path):
    names = np.array([f"digit{k}" for k in range(10)])
    y = names[digits.y_train[:300]]
    clf = SelfDistillationClassifier(lam=1e-3, mode="teacher").fit(digits.X_train[:300], y)
    same = selfdistill.load_model(clf.save(tmp_path / "m.npz"))
    assert same.predict(digits.X_test[:50]).tolist() == clf.predict(digits.X_test[:50]).tolist()


def test_saved_model_helpers(tmp_path):
    W = np.arange(6.0).reshape(2, 3)
    m = SavedModel(W=W, classes=np.array(["a", "b"]), lam=1e-4, model_name="pll",
                   embedding_model="all-MiniLM-L6-v2")
    back = read_model(write_model(tmp_path / "m.npz", m))
    assert back.d == 3 and back.n_classes == 2 and back.embedding_model == "all-MiniLM-L6-v2"
    np.testing.assert_allclose(back.predict_proba(np.eye(3)).sum(1), 1.0)
    with pytest.raises(SelfDistillError, match="has 4 feature columns but the model expects d=3"):
        back.check_features(np.zeros((2, 4)), where="x.npz")


@pytest.mark.parametrize("change, match", [
    ({"schema_version": np.array(SCHEMA_VERSION + 1)},
     "schema version 3; .* reads versions 1 to 2 \\(upgrade"),
    ({"schema_version": np.array(0)}, "schema version 0; .* reads versions 1 to 2$"),
    ({"intercept": None}, "lacks key\\(s\\) intercept"),
    ({"intercept": np.zeros(9)}, "intercept .* must be 10 floats"),
    ({"intercept": np.full(10, np.inf)}, "intercept .* NaN or inf"),
    ({"schema_version": None}, "not a selfdistill model file"),
    ({"format": np.array("other")}, "not a selfdistill model file"),
    ({"W": np.full((10, 64), np.nan)}, "NaN"),
    ({"d": np.array(5)}, "says d=5 but W has 64"),
    ({"classes": np.array(["a"])}, "must be 10 names"),
    ({"lam": np.array(-1.0)}, "positive"),
    ({"params": np.array("[1]")}, "JSON object"),
    ({"model_name": None}, "lacks key"),
])
def test_bad_model_files_refused(fitted, tmp_path, change, match):
    bad = rewrite(fitted.save(tmp_path / "m.npz"), tmp_path / "bad.npz", **change)
    with pytest.raises(SelfDistillError, match=match):
        read_model(bad)


def test_feature_file_and_missing_file_refused(small_npz, tmp_path):
    with pytest.raises(SelfDistillError, match="not a selfdistill model file"):
        read_model(small_npz)
    with pytest.raises(SelfDistillError, match="model file not found"):
        read_model(tmp_path / "nope.npz")
