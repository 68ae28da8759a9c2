"""Feature files: valid ones load, hostile ones are refused with a message naming the problem."""

import gc
import io
import warnings
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
    "negative label with classes": (lambda b: {**b, "y_train": b["y_train"] - 1,
                                               "classes": np.array(list("abcdefghij"))},
                                    r"must lie in"),
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


def test_non_contiguous_labels_are_encoded_not_padded(tmp_path, digits):
    # issue 16 bug 1: labels {3, 7, 100} are three classes, not 101
    keep = digits.y_train < 3
    keep_t = digits.y_test < 3
    codes = np.array([3, 7, 100])
    path = write_npz(tmp_path / "nc.npz", X_train=digits.X_train[keep],
                     y_train=codes[digits.y_train[keep]], X_test=digits.X_test[keep_t],
                     y_test=codes[digits.y_test[keep_t]],
                     y_train_clean=codes[digits.y_train[keep]])
    ds = load_features(path)
    assert ds.n_classes == 3 and list(ds.classes) == ["3", "7", "100"]
    np.testing.assert_array_equal(ds.y_train, digits.y_train[keep])
    np.testing.assert_array_equal(ds.y_test, digits.y_test[keep_t])
    np.testing.assert_array_equal(ds.y_train_clean, digits.y_train[keep])


def test_negative_labels_are_encoded_in_sorted_order(tmp_path, digits):
    path = write_npz(tmp_path / "neg.npz", X_train=digits.X_train[:50],
                     y_train=digits.y_train[:50] - 5)
    ds = load_features(path)
    assert list(ds.classes) == [str(k) for k in range(-5, 5)]
    np.testing.assert_array_equal(ds.y_train, digits.y_train[:50])


def test_test_label_unseen_in_training_is_refused(tmp_path, digits):
    y = np.where(digits.y_train[:50] == 7, 8, digits.y_train[:50])  # no 7 in training
    path = write_npz(tmp_path / "unseen.npz", X_train=digits.X_train[:50], y_train=y,
                     X_test=digits.X_test[:50], y_test=digits.y_test[:50])
    with pytest.raises(SelfDistillError, match=r"y_test .* 7 .*not among"):
        load_features(path)


def test_text_labels_are_encoded_or_mapped_through_classes(tmp_path, digits):
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                      "nine"])
    y, yt = digits.y_train[:80], digits.y_test[:40]
    path = write_npz(tmp_path / "text.npz", X_train=digits.X_train[:80], y_train=names[y],
                     X_test=digits.X_test[:40], y_test=names[yt])
    ds = load_features(path)
    assert list(ds.classes) == sorted(names)
    np.testing.assert_array_equal(ds.classes[ds.y_train], names[y])
    np.testing.assert_array_equal(ds.classes[ds.y_test], names[yt])
    with_classes = write_npz(tmp_path / "named.npz", X_train=digits.X_train[:80],
                             y_train=names[y], classes=names)
    ds = load_features(with_classes)
    assert list(ds.classes) == list(names)
    np.testing.assert_array_equal(ds.y_train, y)
    bad = write_npz(tmp_path / "bad.npz", X_train=digits.X_train[:80],
                    y_train=np.where(y == 3, "drei", names[y]), classes=names)
    with pytest.raises(SelfDistillError, match="'drei' not in its classes"):
        load_features(bad)
    mixed = write_npz(tmp_path / "mixed.npz", X_train=digits.X_train[:80], y_train=y,
                      X_test=digits.X_test[:40], y_test=names[yt])
    with pytest.raises(SelfDistillError, match="mix text"):
        load_features(mixed)


def test_pk_prefixed_non_zip_leaves_no_file_open(tmp_path):
    # issue 16 bug 7: np.load kept the file open when the zip reader failed
    path = tmp_path / "fake.npz"
    path.write_bytes(b"PK\x03\x04" + b"not a zip archive at all" * 4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        try:
            load_features(path)
        except SelfDistillError as exc:
            assert "not a readable .npz" in str(exc)
        else:
            raise AssertionError("a fake zip loaded")
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
