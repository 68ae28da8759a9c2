"""Command line: fit and demo outputs, and bad input -> one `error:` line, exit 2, no files."""

import csv
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from selfdistill.cli import run
from selfdistill.intercept import INTERCEPT_SCALING_DEFAULT

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
    "bad lam": (["fit", "{npz}", "--lam", "-3"], "[1e-12, 10000]"),
    "lam 1e300": (["fit", "{npz}", "--lam", "1e300"], "--lam must be in [1e-12, 10000]"),
    "lam 1e-300": (["fit", "{npz}", "--lam", "1e-300"], "--lam must be in [1e-12, 10000]"),
    "theory lam": (["theory", "--lam", "1e300", "--json", "{tmp}/no/such/out.json"],
                   "--lam must be in [1e-12, 10000]"),
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
    fast += [] if "--rounds" in args or args[0] != "fit" else ["--rounds", "0", "--no-select"]
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
    # issue 16 (reports): figures as wide as the report shows them (1100 px column), the
    # clean point inside the noise kind's panel, accuracies in % everywhere
    from PIL import Image

    for png in out.glob("*.png"):
        assert Image.open(png).size[0] <= 1100, png.name
    assert "All models (accuracies in %)" in html and "test acc %" in html
    # `report` on the demo folder keeps the demo's report.html and counts its PNGs
    before = (out / "report.html").read_bytes()
    pngs = set(out.glob("*.png"))
    code, stdout, _ = cli(capsys, "report", out)
    assert code == 0 and (out / "report.html").read_bytes() == before
    assert (out / "results-report.html").is_file()
    n_new = len(set(out.glob("*.png")) - pngs)
    assert f"({n_new} figures" in stdout


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


SAME_PATH = {
    "json is the input": (["--json", "{npz}"], "--json {npz} is the same file as FEATURES"),
    "issues is the input": (["--issues", "{npz}"], "--issues {npz} is the same file as FEATURES"),
    "json and issues one file": (["--issues", "{tmp}/same.out", "--json", "{tmp}/same.out"],
                                 "--json {tmp}/same.out is the same file as --issues"),
    "json via another spelling": (["--json", "{tmp}/./sub/../small.npz"],
                                  "is the same file as FEATURES"),
}


@pytest.mark.parametrize("case", sorted(SAME_PATH))
def test_output_equal_to_an_input_or_output_is_refused(capsys, tmp_path, small_npz, case):
    # issue 16 bug 2: `fit in.npz --json in.npz` replaced the features with JSON
    (tmp_path / "sub").mkdir()
    before = (tmp_path / "small.npz").read_bytes()
    args, match = SAME_PATH[case]
    args = [a.format(tmp=tmp_path, npz=small_npz) for a in args]
    code, _, err = cli(capsys, "fit", small_npz, *args, "--lam", "1e-3", "--rounds", "0",
                       "--no-select", "--quiet")
    check_error(code, err, tmp_path / "same.out")
    assert match.format(tmp=tmp_path, npz=small_npz) in err
    assert (tmp_path / "small.npz").read_bytes() == before


def test_hard_link_to_the_input_is_the_same_file(capsys, tmp_path, small_npz):
    link = tmp_path / "link.json"
    os.link(small_npz, link)
    code, _, err = cli(capsys, "fit", small_npz, "--json", link, "--rounds", "0", "--quiet")
    assert code == 2 and "same file as FEATURES" in err


def _enospc_on(name, monkeypatch):
    """Make writing the temp file of output ``name`` fail as a full disk does."""
    real = Path.write_text

    def write_text(self, *args, **kwargs):
        if self.name.startswith(f".{name}."):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)


def test_full_disk_commits_no_output_and_names_the_path(capsys, tmp_path, small_npz,
                                                        monkeypatch):
    # issue 16 bug 3: issues.csv was left complete, out.json missing, no path named
    _enospc_on("out.json", monkeypatch)
    out, issues = tmp_path / "out.json", tmp_path / "issues.csv"
    code, _, err = cli(capsys, "fit", small_npz, "--noise", "sym:0.3", "--lam", "1e-3",
                       "--rounds", "0", "--no-select", "--json", out, "--issues", issues,
                       "--quiet")
    check_error(code, err, out, issues)
    assert f"error: cannot write {out}: No space left on device" in err


def test_outputs_replace_old_ones_together(capsys, tmp_path, small_npz, monkeypatch):
    out, issues = tmp_path / "out.json", tmp_path / "issues.csv"
    out.write_text("old json")
    issues.write_text("old csv")
    _enospc_on("out.json", monkeypatch)
    code, _, err = cli(capsys, "fit", small_npz, "--lam", "1e-3", "--rounds", "0",
                       "--no-select", "--json", out, "--issues", issues, "--quiet")
    assert code == 2 and out.read_text() == "old json" and issues.read_text() == "old csv"


def test_real_full_tmpfs(capsys, tmp_path, small_npz):
    """The issue's reproduction on a real 1 MB tmpfs (needs root; skipped otherwise)."""
    mnt = tmp_path / "full"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs",
                                            str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        free = os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize
        (mnt / "filler").write_bytes(b"x" * (free - 2 * 4096))  # issues.csv fits, out.json not
        out, issues = mnt / "out.json", mnt / "issues.csv"
        code, _, err = cli(capsys, "fit", small_npz, "--noise", "sym:0.3", "--lam", "1e-3",
                           "--rounds", "1", "--no-select", "--json", out, "--issues", issues,
                           "--quiet")
        check_error(code, err, out, issues)
        assert "No space left on device" in err and str(mnt) in err
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


@pytest.mark.parametrize("content", [b"PK\x03\x04 not a zip", None], ids=["fake-zip", "npz"])
def test_noise_matrix_reader_leaves_no_file_open(tmp_path, content):
    import gc
    import warnings

    from selfdistill import SelfDistillError
    from selfdistill.noise import NoiseSpec

    path = tmp_path / "T.npy"
    if content is None:
        with open(path, "wb") as fh:
            np.savez(fh, T=np.eye(3))
    else:
        path.write_bytes(content)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        try:
            NoiseSpec.parse(f"matrix:{path}")
        except SelfDistillError as exc:
            assert "noise matrix" in str(exc)
        else:
            raise AssertionError("a bad noise matrix was read")
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


def test_version_flag_prints_the_version(capsys):
    from selfdistill import __version__

    code, out, err = cli(capsys, "--version")
    assert code == 0 and out.strip() == f"selfdistill {__version__}" and not err


def test_warnings_are_one_clean_line(capsys, tmp_path, digits):
    # issue 16: raw Python warnings with file names and source lines reached the screen;
    # features scaled by 1e4 make the PLL student hit its iteration cap
    import warnings

    path = tmp_path / "scaled.npz"
    np.savez(path, X_train=digits.X_train[:300] * 1e4, y_train=digits.y_train[:300])
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        code, _, err = cli(capsys, "fit", path, "--rounds", "0", "--no-select", "--quiet")
    assert code == 0
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines and all(ln.startswith("warning: ") for ln in lines), err
    assert "did not converge" in err and ".py:" not in err and "warnings.warn" not in err
    # issue 16: the scale is named, with the fix
    assert "warning: features look unscaled (root-mean-square row norm" in err
    assert "divide the features by" in err


def test_fit_says_how_many_rows_were_flagged_and_where_files_went(capsys, tmp_path, small_npz):
    out, issues = tmp_path / "out.json", tmp_path / "issues.csv"
    code, stdout, _ = cli(capsys, "fit", small_npz, "--noise", "sym:0.3", "--lam", "1e-3",
                          "--rounds", "0", "--no-select", "--json", out, "--issues", issues,
                          "--quiet")
    n = json.loads(out.read_text())["n_label_issues"]
    n_rows = len(issues.read_text().splitlines()) - 1
    assert code == 0 and n == n_rows > 0
    assert f"{n} training rows flagged as likely label errors\n" in stdout
    assert f"likely label errors: {issues}" in stdout and f"result record: {out}" in stdout
    # with selection on, the cross-validation's out-of-fold probabilities give the flags
    code, stdout, _ = cli(capsys, "fit", small_npz, "--noise", "sym:0.3", "--lam", "1e-3",
                          "--rounds", "0", "--quiet")
    assert f"{n} training rows flagged as likely label errors (list them with --issues" \
        in stdout
    # no cross-validation at all: no out-of-fold probabilities, so no flags (never in-sample)
    code, stdout, _ = cli(capsys, "fit", small_npz, "--noise", "sym:0.3", "--lam", "1e-3",
                          "--rounds", "0", "--no-select", "--quiet")
    assert "label errors not searched" in stdout and "flagged" not in stdout


def test_fit_lam_auto_reports_the_noise_estimate_and_out_of_fold_flags(capsys, tmp_path,
                                                                       small_npz):
    out, issues = tmp_path / "out.json", tmp_path / "issues.csv"
    code, stdout, err = cli(capsys, "fit", small_npz, "--noise", "asym:0.3", "--lam", "auto",
                            "--rounds", "1", "--json", out, "--issues", issues, "--quiet")
    assert code == 0, err
    rec = json.loads(out.read_text())
    est = rec["noise_estimate"]
    assert est["method"] == "confident-joint" and len(est["T"]) == 10
    assert abs(est["rate"] - rec["noise"]["realized_rate"]) < 0.1
    assert est["caveat"] is None   # asym: no label averaging, nothing to warn of
    assert rec["label_issues_source"] == "out-of-fold"
    assert rec["n_label_issues"] == len(issues.read_text().splitlines()) - 1 > 0
    assert rec["selected"] in {m["name"] for m in rec["models"]}
    assert rec["lam_selection"]["rule"] and rec["lam_selection"]["path"]
    assert "estimated noise" in stdout
def _breast_cancer_npz(tmp_path) -> Path:
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    X = X / np.linalg.norm(X, axis=1, keepdims=True)
    path = tmp_path / "bc.npz"
    np.savez(path, X_train=X[:400], y_train=y[:400], X_test=X[400:], y_test=y[400:])
    return path


@pytest.mark.parametrize("lam", ["1e-4", "auto"])
def test_two_classes_never_fit_or_select_pll(capsys, tmp_path, lam):
    # issue 16: with K = 2 the top-2 set is every class, yet PLL was selected on
    # breast_cancer
    out = tmp_path / "out.json"
    code, stdout, err = cli(capsys, "fit", _breast_cancer_npz(tmp_path), "--lam", lam,
                            "--rounds", "1", "--json", out, "--quiet")
    rec = json.loads(out.read_text())
    assert code == 0 and rec["n_classes"] == 2
    assert not [m for m in rec["models"] if m["name"].endswith("pll")]
    assert not rec["selected"].endswith("pll")
    notes = [ln for ln in err.splitlines() if "PLL" in ln]
    assert len(notes) == 1 and notes[0].startswith("note: ") \
        and "PLL student is not fitted" in notes[0], err


def test_a_class_with_one_example_is_named_in_one_warning(capsys, tmp_path, digits):
    # issue 16: a class with one example got no warning
    y = digits.y_train[:300].copy()
    keep = np.flatnonzero(y != 7)[:299]
    rows = np.concatenate([keep, np.flatnonzero(y == 7)[:1]])
    names = np.array([f"digit-{k}" for k in range(10)])
    path = tmp_path / "one.npz"
    np.savez(path, X_train=digits.X_train[rows], y_train=y[rows], classes=names)
    code, _, err = cli(capsys, "fit", path, "--lam", "1e-3", "--rounds", "0", "--no-pll",
                       "--no-select", "--quiet")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 0 and len(lines) == 1, err
    assert lines[0].startswith("warning: class 'digit-7' has only one training example")


def test_noise_on_a_file_with_clean_labels_says_it_redraws(capsys, tmp_path, digits):
    # issue 16: y_train_clean plus --noise silently replaced the file's noisy y_train
    X, y = digits.X_train[:300], digits.y_train[:300]
    path = tmp_path / "given.npz"
    np.savez(path, X_train=X, y_train=(y + 1) % 10, y_train_clean=y)
    args = ["fit", path, "--lam", "1e-3", "--rounds", "0", "--no-pll", "--no-select",
            "--quiet"]
    code, _, err = cli(capsys, *args, "--noise", "sym:0.2")
    assert code == 0
    assert [ln for ln in err.splitlines() if ln.strip()] == [
        "note: --noise draws new given labels from the file's y_train_clean; its y_train is "
        "not used"]
    code, _, err = cli(capsys, *args)
    assert code == 0 and "note:" not in err


def test_progress_without_a_terminal_is_one_line_per_phase(capsys, small_npz):
    # issue 16: with stderr not a TTY there was no progress at all
    code, _, err = cli(capsys, "fit", small_npz, "--lam", "1e-3", "--rounds", "2")
    assert code == 0
    lines = [ln for ln in err.splitlines() if ln.startswith("fit: ")]
    assert lines == ["fit: cross-validation", "fit: final fits (teacher)",
                     "fit: final fits (sd-1)", "fit: final fits (sd-2)",
                     "fit: final fits (pll)"], err
    code, _, err = cli(capsys, "fit", small_npz, "--lam", "1e-3", "--rounds", "2", "--quiet")
    assert code == 0 and "fit:" not in err


def test_ctrl_c_during_fit_writes_nothing_and_exits_130(capsys, tmp_path, small_npz,
                                                       monkeypatch):
    from selfdistill.experiments import runner

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run_pipeline", interrupt)
    out = tmp_path / "out.json"
    code, stdout, err = cli(capsys, "fit", small_npz, "--json", out, "--quiet")
    assert code == 130 and err.strip() == "interrupted; nothing written" and not stdout
    assert not out.exists() and not list(tmp_path.glob(".out.json*"))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_fit_lam_grid_cv_and_max_iter_options(capsys, tmp_path, small_npz):
    # issue 16: the lam grid, the folds and the iteration cap are options; a grid whose
    # best lam is at an edge widens itself and says so
    out = tmp_path / "out.json"
    code, _, err = cli(capsys, "fit", small_npz, "--noise", "sym:0.3", "--lam", "auto",
                       "--lam-grid", "1e-9,1e-8", "--cv", "3", "--max-iter", "50",
                       "--rounds", "1", "--json", out, "--quiet")
    assert code == 0, err
    rec = json.loads(out.read_text())
    sel = rec["lam_selection"]
    assert sel["n_splits"] == 3 and sel["widened"] and max(sel["widened"]) > 1e-8
    assert "note: --lam auto tried" in err and "beyond --lam-grid" in err
    assert all(m["iterations"] <= 50 for m in rec["models"])
    code, _, err = cli(capsys, "fit", small_npz, "--lam", "auto", "--lam-grid", "1e-5,big",
                       "--quiet")
    assert code == 2 and err.strip().startswith("error: --lam-grid must be")


def test_fit_lam_auto_says_when_its_default_grid_moved_with_the_features(capsys, tmp_path,
                                                                        small_npz):
    # digits in [0, 1] (mean squared row norm 15): the default grid counted in 15, said
    # in a note and recorded; a grid given with --lam-grid is used as given, silently
    out = tmp_path / "out.json"
    code, _, err = cli(capsys, "fit", small_npz, "--lam", "auto", "--rounds", "1",
                       "--json", out, "--quiet")
    assert code == 0, err
    sel = json.loads(out.read_text())["lam_selection"]
    assert sel["lam_unit"] == 15.0 and sel["path"][0]["lam"] == 1.5e-3
    assert "note: --lam auto counted its default grid in units of 15" in err
    assert "1.5e-05, 0.00015, 0.0015" in err
    code, _, err = cli(capsys, "fit", small_npz, "--lam", "auto", "--rounds", "1",
                       "--lam-grid", "1e-6,1e-5,1e-4", "--quiet")
    assert code == 0, err
    assert "units of" not in err


def test_fit_intercept_by_default_and_predict_reproduces_it(capsys, tmp_path):
    """issue 16: d = 1, three threshold classes. ``fit`` fits a bias by default (the
    model file keeps it, ``predict`` gives the same probabilities and accuracy);
    ``--no-intercept`` is the model without bias, which cannot separate them."""
    from selfdistill import load_model
    from selfdistill.model_io import read_model

    rng = np.random.default_rng(0)
    x, xt = rng.uniform(-1.5, 1.5, 300), rng.uniform(-1.5, 1.5, 400)
    data = tmp_path / "thresholds.npz"
    np.savez(data, X_train=x[:, None], y_train=np.floor(x + 1.5).astype(int),
             X_test=xt[:, None], y_test=np.floor(xt + 1.5).astype(int))
    rec = {}
    for flag in ("--intercept", "--no-intercept"):
        out = tmp_path / f"{flag}.json"
        code, stdout, err = cli(capsys, "fit", data, flag, "--json", out, "--model",
                                tmp_path / f"{flag}.npz", "--quiet")
        assert code == 0, err
        rec[flag] = json.loads(out.read_text())
        assert ("no intercept" in stdout) == (flag == "--no-intercept")
    acc = {f: next(m["test_acc"] for m in r["models"] if m["name"] == r["selected"])
           for f, r in rec.items()}
    assert rec["--intercept"]["fit_intercept"] and acc["--intercept"] > 0.95
    assert rec["--intercept"]["intercept_scaling"] == INTERCEPT_SCALING_DEFAULT
    assert not rec["--no-intercept"]["fit_intercept"] and acc["--no-intercept"] < 0.7
    assert rec["--no-intercept"]["intercept_scaling"] is None
    model = read_model(tmp_path / "--intercept.npz")
    assert model.schema_version == 2 and np.any(model.intercept != 0)
    assert not np.any(read_model(tmp_path / "--no-intercept.npz").intercept)
    pred_csv = tmp_path / "pred.csv"
    code, stdout, err = cli(capsys, "predict", tmp_path / "--intercept.npz", data,
                            "--out", pred_csv, "--top-k", "3")
    assert code == 0, err
    rows = list(csv.DictReader(pred_csv.read_text().splitlines()))
    P = model.predict_proba(xt[:, None])
    np.testing.assert_allclose([[float(r[f"p{j}"]) for j in (1, 2, 3)] for r in rows],
                               -np.sort(-P, axis=1), atol=1e-6)
    assert f"accuracy on the given labels {100 * acc['--intercept']:.2f}%" in stdout
    clf = load_model(tmp_path / "--intercept.npz")
    np.testing.assert_array_equal(clf.predict_proba(xt[:, None]), P)


def test_fit_intercept_scaling_is_the_bias_column(capsys, tmp_path):
    """--intercept-scaling S fits the model of a constant column S: the record names S and
    the saved intercept is S times the column's weight, i.e. the same fit as --no-intercept
    on features with that column appended by hand."""
    from selfdistill.model_io import read_model

    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(120, 3)), rng.integers(0, 3, 120)
    data, aug = tmp_path / "d.npz", tmp_path / "aug.npz"
    np.savez(data, X_train=X, y_train=y)
    np.savez(aug, X_train=np.hstack([X, np.full((120, 1), 2.0)]), y_train=y)
    common = ("--no-pll", "--rounds", "0", "--no-select", "--quiet")
    code, _, err = cli(capsys, "fit", data, "--intercept-scaling", "2", "--class-prior",
                       "given", "--json", tmp_path / "s.json", "--model", tmp_path / "s.npz",
                       *common)
    assert code == 0, err
    assert json.loads((tmp_path / "s.json").read_text())["intercept_scaling"] == 2.0
    code, _, err = cli(capsys, "fit", aug, "--no-intercept", "--model", tmp_path / "a.npz",
                       *common)
    assert code == 0, err
    ours, ref = read_model(tmp_path / "s.npz"), read_model(tmp_path / "a.npz")
    np.testing.assert_allclose(ours.W, ref.W[:, :3], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ours.intercept, 2.0 * ref.W[:, 3], rtol=1e-8, atol=1e-10)


def test_fit_summary_names_the_second_flagging_teacher():
    """The count line says when a stiffer teacher's flags joined (lam_selection.lam_flag)."""
    from selfdistill.cli._common import fit_summary

    plain = fit_summary(12, {"likely label errors": None})
    assert plain.startswith("12 training rows flagged") and "stiffer" not in plain
    assert "--issues FILE.csv" in plain
    both = fit_summary(12, {"likely label errors": None}, lam_flag=1e-4)
    assert "stiffer teacher, lam 0.0001" in both and "--issues FILE.csv" in both


def test_fit_class_prior_option(capsys, tmp_path, small_npz):
    """--class-prior: uniform by default, given on request (the table says so), and a bad
    value is one error line, nothing written."""
    out = tmp_path / "given.json"
    code, stdout, err = cli(capsys, "fit", small_npz, "--lam", "1e-3", "--no-select",
                            "--class-prior", "given", "--json", out, "--quiet")
    assert code == 0, err
    assert json.loads(out.read_text())["class_prior"] == "given" and "given class prior" in stdout
    code, stdout, err = cli(capsys, "fit", small_npz, "--lam", "1e-3", "--no-select",
                            "--json", out, "--quiet")
    assert json.loads(out.read_text())["class_prior"] == "uniform"
    assert "class prior" not in stdout
    bad = tmp_path / "bad.json"
    code, _, err = cli(capsys, "fit", small_npz, "--class-prior", "balanced", "--json", bad)
    check_error(code, err, bad)
    assert "--class-prior" in err
