"""Feature files: valid ones load, hostile ones are refused with a message naming the problem."""

import io
import zipfile

import numpy as np
import pytest

from selfdistill import SelfDistillError, load_banking77, load_features
from selfdistill.datasets import save_features

from .conftest import write_npz


def test_valid_file_loads_with_names(small_npz):
    ds = load_features(small_npz)
    assert ds.X_train.shape == (600, 64) and ds.X_train.dtype == np.float32
    assert ds.n_classes == 10 and ds.classes[3] == "digit3"
    assert ds.n_test == 200 and ds.y_train_clean is None


def test_bundled_banking77_matches_shared_copy_within_float16():
    ds = load_banking77()
    assert ds.X_train.shape == (10003, 384) and ds.X_test.shape == (3080, 384)
    assert ds.n_classes == 77 and ds.X_train.dtype == np.float32
    norms = np.linalg.norm(ds.X_train, axis=1)
    assert np.all(np.abs(norms - 1) < 2e-3)  # L2-normalised up to float16 rounding


def test_roundtrip_save_load(tmp_path, small_npz):
    ds = load_features(small_npz)
    out = tmp_path / "copy.npz"
    save_features(out, ds)
    back = load_features(out)
    np.testing.assert_array_equal(back.X_train, ds.X_train)
    np.testing.assert_array_equal(back.classes, ds.classes)


def _base(digits):
    return dict(X_train=digits.X_train[:50], y_train=digits.y_train[:50])


BAD_CASES = {
    "missing key": (lambda b: {"X_train": b["X_train"]}, "lacks required key"),
    "extra key": (lambda b: {**b, "weights": np.ones(3)}, "unknown key"),
    "1-D X": (lambda b: {**b, "X_train": b["X_train"][:, 0]}, "must be 2-D"),
    "string X": (lambda b: {**b, "X_train": np.array([["a"] * 3] * 50)}, "numeric"),
    "N mismatch": (lambda b: {**b, "y_train": b["y_train"][:40]}, "40 labels"),
    "NaN": (lambda b: {**b, "X_train": np.where(np.eye(50, 64) > 0, np.nan, b["X_train"])},
            "NaN or inf"),
    "inf": (lambda b: {**b, "X_train": np.full((50, 64), np.inf)}, "NaN or inf"),
    "empty": (lambda b: {"X_train": np.zeros((0, 64)), "y_train": np.zeros(0, int)}, "empty"),
    "one class": (lambda b: {**b, "y_train": np.zeros(50, int)}, "at least 2 classes"),
    "negative label": (lambda b: {**b, "y_train": b["y_train"] - 1}, r"must lie in"),
    "label >= K": (lambda b: {**b, "classes": np.array(["a", "b"])}, r"must lie in \[0, 1\]"),
    "float labels": (lambda b: {**b, "y_train": b["y_train"] + 0.5}, "integer"),
    "test without labels": (lambda b: {**b, "X_test": b["X_train"]}, "both X_test and y_test"),
    "test columns": (lambda b: {**b, "X_test": b["X_train"][:, :5], "y_test": b["y_train"]},
                     "columns"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_feature_files_are_refused(tmp_path, digits, case):
    make, match = BAD_CASES[case]
    path = write_npz(tmp_path / "bad.npz", **make(_base(digits)))
    with pytest.raises(SelfDistillError, match=match):
        load_features(path)


def test_object_array_is_refused_never_unpickled(tmp_path, digits):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    payload = np.array([Evil()], dtype=object)
    path = tmp_path / "evil.npz"
    with open(path, "wb") as fh:
        np.savez(fh, X_train=digits.X_train[:20], y_train=digits.y_train[:20], classes=payload)
    with pytest.raises(SelfDistillError, match="object"):
        load_features(path)
    assert not marker.exists()


def test_truncated_and_non_npz_files_are_refused(tmp_path, small_npz):
    data = open(small_npz, "rb").read()
    trunc = tmp_path / "trunc.npz"
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(SelfDistillError, match="not a readable"):
        load_features(trunc)
    text = tmp_path / "text.npz"
    text.write_text("hello")
    with pytest.raises(SelfDistillError, match="not a readable"):
        load_features(text)
    npy = tmp_path / "x.npy"
    np.save(npy, np.ones(3))
    with pytest.raises(SelfDistillError, match="not an .npz"):
        load_features(npy)
    with pytest.raises(SelfDistillError, match="directory"):
        load_features(tmp_path)
    with pytest.raises(SelfDistillError, match="not found"):
        load_features(tmp_path / "nope.npz")


def test_corrupt_member_is_refused(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("X_train.npy", b"\x93NUMPY garbage")
        zf.writestr("y_train.npy", b"nothing")
    path = tmp_path / "corrupt.npz"
    path.write_bytes(buf.getvalue())
    with pytest.raises(SelfDistillError):
        load_features(path)
