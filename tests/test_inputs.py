"""Input files for fit and predict: .npz rows, Parquet embeddings, the embeddings cache."""

from __future__ import annotations

import numpy as np
import pytest

from selfdistill import SelfDistillError
from selfdistill.inputs import cache_path, load_training, read_rows

from .conftest import write_npz

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def parquet(path, X, labels, *, fixed=True, texts=None):
    X = np.asarray(X, dtype=np.float32)
    flat = pa.array(X.ravel())
    emb = (pa.FixedSizeListArray.from_arrays(flat, X.shape[1]) if fixed
           else pa.array([list(map(float, r)) for r in X]))
    cols = {"embedding": emb, "category": pa.array(labels)}
    if texts is not None:
        cols["text"] = pa.array(texts)
    pq.write_table(pa.table(cols), path)
    return path


@pytest.mark.parametrize("fixed", [True, False])
def test_parquet_round_trip_equals_npz(tmp_path, digits, fixed):
    X, y = digits.X_train[:120], digits.y_train[:120]
    names = np.array([f"c{k}" for k in range(10)])
    p = parquet(tmp_path / "tr.parquet", X, names[y].tolist(), fixed=fixed,
                texts=[f"row {i}" for i in range(120)])
    rows = read_rows(p)
    np.testing.assert_array_equal(rows.X, X.astype(np.float32))
    assert rows.labels.tolist() == names[y].tolist() and rows.texts[3] == "row 3"
    tr = load_training(p, test=parquet(tmp_path / "te.parquet", X[:30], names[y[:30]].tolist()))
    assert tr.dataset.classes.tolist() == sorted(names.tolist())
    np.testing.assert_array_equal(tr.dataset.y_test, y[:30])
    assert tr.texts[0] == "row 0" and tr.embedding_model == ""


def test_parquet_errors(tmp_path):
    ragged = pa.table({"embedding": pa.array([[1.0, 2.0], [1.0]]),
                       "category": pa.array(["a", "b"])})
    pq.write_table(ragged, tmp_path / "r.parquet")
    with pytest.raises(SelfDistillError, match="ragged: embeddings of 1 to 2 values"):
        read_rows(tmp_path / "r.parquet")
    pq.write_table(pa.table({"emb": pa.array([[1.0]]), "category": pa.array(["a"])}),
                   tmp_path / "c.parquet")
    with pytest.raises(SelfDistillError, match="no column 'embedding'; columns: emb, category"):
        read_rows(tmp_path / "c.parquet")
    (tmp_path / "x.parquet").write_text("not parquet")
    with pytest.raises(SelfDistillError, match="not a readable Parquet file"):
        read_rows(tmp_path / "x.parquet")


def test_parquet_without_pyarrow_names_the_extra(tmp_path, monkeypatch):
    import builtins

    real = builtins.__import__

    def fake(name, *a, **k):
        if name.startswith("pyarrow"):
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(SelfDistillError, match=r"pip install 'selfdistill\[parquet\]'"):
        read_rows(tmp_path / "x.parquet")


def test_npz_rows_split(tmp_path, digits):
    p = write_npz(tmp_path / "f.npz", X_train=digits.X_train[:50], y_train=digits.y_train[:50],
                  X_test=digits.X_test[:20], y_test=digits.y_test[:20],
                  classes=np.array([f"d{k}" for k in range(10)]))
    assert read_rows(p).X.shape == (20, 64)
    rows = read_rows(p, split="train")
    assert rows.X.shape == (50, 64) and rows.labels[0] == f"d{digits.y_train[0]}"
    only = write_npz(tmp_path / "x.npz", X_train=digits.X_train[:5])
    assert read_rows(only, need_labels=False).labels is None
    with pytest.raises(SelfDistillError, match="no features"):
        read_rows(write_npz(tmp_path / "n.npz", y_train=digits.y_train[:5]), need_labels=False)
    with pytest.raises(SelfDistillError, match="no features .X_test for --split test"):
        read_rows(only, split="test", need_labels=False)


def test_training_npz_with_test_file_of_other_width(tmp_path, small_npz, digits):
    other = write_npz(tmp_path / "o.npz", X_train=digits.X_train[:5, :10],
                      y_train=digits.y_train[:5])
    with pytest.raises(SelfDistillError, match="has 10 feature columns but .* has 64"):
        load_training(small_npz, test=other)


def test_cache_path_depends_on_bytes_and_column(tmp_path):
    a = tmp_path / "a.csv"
    a.write_text("text,category\nhi,x\n")
    first = cache_path(a)
    assert first.parent.name == ".selfdistill-cache" and first.parent.parent == tmp_path
    assert cache_path(a, text_col="other") != first
    a.write_text("text,category\nho,x\n")
    assert cache_path(a) != first


@pytest.fixture()
def fake_embedder(monkeypatch):
    """A stand-in for the sentence model: counts calls, embeds text length."""
    import selfdistill.embed
    import selfdistill.inputs

    calls = []

    def embed(texts, **kw):
        calls.append(len(texts))
        return np.array([[len(t), 1.0] for t in texts], dtype=np.float32)

    monkeypatch.setattr(selfdistill.embed, "embed_texts", embed)
    monkeypatch.setattr(selfdistill.inputs, "_sentence_model", lambda: None)
    return calls


def test_text_embeddings_are_cached_and_a_bad_cache_is_rebuilt(tmp_path, fake_embedder):
    src = tmp_path / "t.csv"
    src.write_text("text,category\nhi,a\nhello,b\n")
    first = read_rows(src)
    assert fake_embedder == [2] and not first.from_cache
    cached = cache_path(src)
    assert cached.is_file() and (cached.parent / ".gitignore").read_text() == "*\n"
    again = read_rows(src)
    assert fake_embedder == [2] and again.from_cache
    np.testing.assert_array_equal(again.X, first.X)
    cached.write_bytes(b"garbage")  # unreadable cache: embedded again, cache rewritten
    assert not read_rows(src).from_cache and fake_embedder == [2, 2]
    assert read_rows(src).from_cache
    assert not read_rows(src, cache=False).from_cache and fake_embedder == [2, 2, 2]
    assert not list(tmp_path.rglob("*.tmp"))
