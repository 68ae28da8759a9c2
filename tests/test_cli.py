"""Command line: fit and demo outputs, and bad input -> one `error:` line, exit 2, no files."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from selfdistill.cli import run

MODEL_KEYS = {"name", "test_acc", "train_acc_true", "noisy_subset_acc", "objective",
              "iterations", "seconds"}


def cli(capsys, *args):
    """Run the CLI in-process; return (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exc:
        run([str(a) for a in args])
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def check_error(code, err, *must_not_exist):
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for path in must_not_exist:
        assert not path.exists()
        assert not list(path.parent.glob(f".{path.name}*")), "temp file left behind"


def test_fit_json_and_issues(capsys, tmp_path, small_npz):
    out, issues = tmp_path / "out.json", tmp_path / "issues.csv"
    code, stdout, _ = cli(capsys, "fit", small_npz, "--noise", "sym:0.5", "--lam", "1e-3",
                          "--rounds", "2", "--json", out, "--issues", issues, "--quiet")
    assert code == 0
    rec = json.loads(out.read_text())
    assert set(rec) >= {"dataset", "n_train", "n_test", "n_classes", "noise", "lam",
                        "lam_selection", "models", "selected"}
    assert rec["n_train"] == 600 and rec["n_test"] == 200 and rec["n_classes"] == 10
    assert set(rec["noise"]) >= {"kind", "rate", "realized_rate", "seed"}
    assert rec["noise"]["kind"] == "sym" and abs(rec["noise"]["realized_rate"] - 0.5) < 0.01
    assert rec["lam"] == 1e-3 and rec["lam_selection"] is None
    names = [m["name"] for m in rec["models"]]
    assert names == ["teacher", "sd-1", "sd-2", "pll"] and rec["selected"] in names
    for m in rec["models"]:
        assert set(m) >= MODEL_KEYS
        for key in ("test_acc", "train_acc_true", "noisy_subset_acc"):
            assert 0.0 <= m[key] <= 1.0
    assert "teacher" in stdout and "*" in stdout
    rows = list(csv.reader(issues.read_text().splitlines()))
    assert rows[0][:4] == ["index", "given_label", "suggested_label", "score"]
    scores = [float(r[3]) for r in rows[1:]]
    assert len(scores) > 50 and scores == sorted(scores, reverse=True)
    assert all(r[1] != r[2] for r in rows[1:])


def test_fit_is_deterministic(capsys, tmp_path, small_npz):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    for out in (a, b):
        cli(capsys, "fit", small_npz, "--noise", "asym:0.3", "--noise-seed", "4", "--lam",
            "1e-3", "--rounds", "1", "--no-select", "--json", out, "--quiet")
    ra, rb = json.loads(a.read_text()), json.loads(b.read_text())
    for ma, mb in zip(ra["models"], rb["models"]):
        ma.pop("seconds"), mb.pop("seconds")
        assert ma == mb


def test_fit_custom_matrix(capsys, tmp_path, small_npz):
    T = np.full((10, 10), 0.05) + 0.5 * np.eye(10)
    np.save(tmp_path / "T.npy", T)
    out = tmp_path / "o.json"
    code, _, _ = cli(capsys, "fit", small_npz, "--noise", f"matrix:{tmp_path / 'T.npy'}",
                     "--lam", "1e-3", "--rounds", "1", "--no-select", "--json", out, "--quiet")
    assert code == 0
    rec = json.loads(out.read_text())
    assert rec["noise"]["kind"] == "custom" and abs(rec["noise"]["rate"] - 0.45) < 1e-9


BAD_ARGS = {
    "missing file": (["fit", "{tmp}/nope.npz"], "not found"),
    "rate 1.2": (["fit", "{npz}", "--noise", "sym:1.2"], "[0, 1)"),
    "rate -0.1": (["fit", "{npz}", "--noise", "sym:-0.1"], "[0, 1)"),
    "unknown kind": (["fit", "{npz}", "--noise", "gauss:0.1"], "unknown noise kind"),
    "no rate": (["fit", "{npz}", "--noise", "sym"], "KIND:RATE"),
    "bad lam": (["fit", "{npz}", "--lam", "-3"], "(0, inf)"),
    "lam text": (["fit", "{npz}", "--lam", "big"], "auto"),
    "rounds": (["fit", "{npz}", "--rounds", "-1"], "rounds"),
    "option": (["fit", "{npz}", "--frobnicate"], "frobnicate"),
    "matrix": (["fit", "{npz}", "--noise", "matrix:{tmp}/T.npy"], "row-stochastic"),
    "json dir": (["fit", "{npz}", "--json", "{tmp}"], "directory"),
    "json folder missing": (["fit", "{npz}", "--json", "{tmp}/no/such/out.json"],
                            "does not exist"),
    "pll loss": (["fit", "{npz}", "--pll-loss", "mse"], "two-hot"),
}


@pytest.mark.parametrize("case", sorted(BAD_ARGS))
def test_bad_input_exits_2_with_one_line(capsys, tmp_path, small_npz, case):
    np.save(tmp_path / "T.npy", np.ones((10, 10)))
    args, match = BAD_ARGS[case]
    args = [a.format(tmp=tmp_path, npz=small_npz) for a in args]
    fast = [] if "--lam" in args else ["--lam", "1e-3"]
    fast += [] if "--rounds" in args else ["--rounds", "0", "--no-select"]
    code, out, err = cli(capsys, *args, *fast, "--quiet")
    check_error(code, err, tmp_path / "no" / "such" / "out.json")
    assert match in err


def test_failed_fit_leaves_no_json(capsys, tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, X_train=np.full((20, 3), np.nan), y_train=np.arange(20) % 2)
    out = tmp_path / "out.json"
    code, _, err = cli(capsys, "fit", bad, "--json", out)
    check_error(code, err, out)
    assert "NaN" in err


def test_console_script_prints_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "selfdistill", "fit", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr


def test_help_exits_0(capsys):
    code, out, _ = cli(capsys, "--help")
    assert code == 0 and "fit" in out and "demo" in out
    code, out, _ = cli(capsys, "fit", "--help")
    assert code == 0 and "--noise" in out


def test_demo_quick_writes_report(capsys, tmp_path, monkeypatch):
    # The whole demo path (noise, fits, CV selection, figures, report) on fewer rows, so the
    # test takes seconds; `demo --quick` itself uses QUICK_N rows.
    monkeypatch.setattr("selfdistill.cli.demo.QUICK_N", 400)
    out = tmp_path / "demo"
    code, stdout, _ = cli(capsys, "demo", "--quick", "--out", out, "--quiet")
    assert code == 0
    for name in ("report.html", "results.csv", "results.json", "accuracy_vs_rounds.png",
                 "methods_vs_rate.png", "noisy_subset.png"):
        assert (out / name).stat().st_size > 500, name
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 4  # incl. theory vs measurement
    assert "Theory vs measurement" in html
    rec = json.loads((out / "results.json").read_text())["experiments"]
    assert [r["noise"]["rate"] for r in rec] == [0.0, 0.5, 0.8]
    rows = list(csv.DictReader((out / "results.csv").read_text().splitlines()))
    assert len(rows) == 3 * 6
    assert "teacher" in stdout


def test_fit_non_contiguous_labels_equal_contiguous_ones(capsys, tmp_path, digits):
    # issue 16 bug 1: {3, 7, 100} used to become K=101 with a 101 x 101 noise matrix
    keep, keep_t = digits.y_train[:600] < 3, digits.y_test[:200] < 3
    X, y = digits.X_train[:600][keep], digits.y_train[:600][keep]
    Xt, yt = digits.X_test[:200][keep_t], digits.y_test[:200][keep_t]
    codes = np.array([3, 7, 100])
    recs = []
    for name, f in (("contig", lambda v: v), ("noncontig", lambda v: codes[v])):
        path = tmp_path / f"{name}.npz"
        np.savez(path, X_train=X, y_train=f(y), X_test=Xt, y_test=f(yt))
        out = tmp_path / f"{name}.json"
        code, stdout, _ = cli(capsys, "fit", path, "--noise", "sym:0.3", "--lam", "1e-3",
                              "--rounds", "1", "--no-select", "--json", out, "--quiet")
        assert code == 0
        recs.append(json.loads(out.read_text()))
    assert recs[1]["n_classes"] == 3 and "K=3" in stdout
    assert [m["test_acc"] for m in recs[1]["models"]] == \
        [m["test_acc"] for m in recs[0]["models"]]
