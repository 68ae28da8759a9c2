"""``selfdistill report``: self-contained HTML, PNG figures, headless-Chromium rendering."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from typer.testing import CliRunner

from selfdistill.cli import app
from selfdistill.experiments.config import parse_config
from selfdistill.experiments.sweep import run_sweep
from selfdistill.experiments.sweep_report import (
    expand_clean,
    headline_markdown,
    headline_table,
    load_results,
    sweep_theory_section,
    write_sweep_report,
)

pytestmark = pytest.mark.filterwarnings("error", category=ConvergenceWarning)
runner = CliRunner()


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory, digits) -> Path:
    """A finished 2-lam, 2-kind, 2-seed sweep on 300 digits rows."""
    from .conftest import write_npz

    d = tmp_path_factory.mktemp("rep")
    write_npz(d / "small.npz", X_train=digits.X_train[:300], y_train=digits.y_train[:300],
              X_test=digits.X_test[:150], y_test=digits.y_test[:150])
    cfg = parse_config({"title": "report test", "grid": {
        "datasets": ["small.npz"], "noise": ["sym", "cc"], "rates": [0.0, 0.4],
        "seeds": [0, 1], "lam": [1e-3, 3e-3], "rounds": [2]}}, base_dir=d)
    run_sweep(cfg, d / "out")
    return d / "out"


def _imgs(text: str) -> list[bytes]:
    return [base64.b64decode(m) for m in
            re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", text)]


def test_report_self_contained_with_png_files(sweep_dir):
    res = runner.invoke(app, ["report", str(sweep_dir)])
    assert res.exit_code == 0, res.output
    html = (sweep_dir / "report.html").read_text()
    pngs = sorted(sweep_dir.glob("*.png"))
    # methods-vs-rate + per lam (rounds, wrong labels fixed) [+ the theory engine's figure]
    names = {p.name for p in pngs}
    assert {"small_methods_vs_rate.png", "small_rounds_lam0.001.png",
            "small_rounds_lam0.003.png", "small_noisy_subset_lam0.001.png",
            "small_noisy_subset_lam0.003.png"} <= names
    assert len(names) <= 6
    imgs = _imgs(html)
    assert len(imgs) == len(pngs)
    assert all(b.startswith(b"\x89PNG") for b in imgs)
    assert sorted(imgs) == sorted(p.read_bytes() for p in pngs)
    assert "src='http" not in html and "<script" not in html  # nothing fetched, nothing run
    for heading in ("Teacher vs best SD vs PLL", "Accuracy vs SD round λ=0.001",
                    "Wrong labels fixed", "All settings", "Theory vs measurement"):
        assert heading in html
    assert "<title>report test</title>" in html
    assert (sweep_dir / "headline.md").read_text() == headline_markdown(load_results(sweep_dir)[0])


def test_headline_numbers_match_rows(sweep_dir):
    rows, meta = load_results(sweep_dir)
    assert meta["title"] == "report test"
    sub = expand_clean(rows)
    table = headline_table(sub)
    assert [(r["noise"], r["rate"]) for r in table] == [("cc", "0"), ("cc", "0.4"),
                                                        ("sym", "0"), ("sym", "0.4")]
    # teacher cell = best-lam mean over seeds, recomputed by hand
    sym = [r for r in rows if r["noise_kind"] == "sym" and r["model"] == "teacher"]
    means = {lam: np.mean([r["test_acc"] for r in sym if r["lam"] == lam])
             for lam in (1e-3, 3e-3)}
    lam = max(means, key=means.get)
    cell = table[3]["teacher"]
    assert cell.startswith(f"{100 * means[lam]:.1f} ± ") and f"λ={lam:g}" in cell
    best_sd = max(np.mean([r["test_acc"] for r in rows if r["noise_kind"] == "sym"
                           and r["model"] == m and r["lam"] == lam_])
                  for m in ("sd-1", "sd-2") for lam_ in (1e-3, 3e-3))
    assert table[3]["best SD"].startswith(f"{100 * best_sd:.1f}")
    md = headline_markdown(rows)
    assert md.count("\n| ") == 1 + 4 and "| noise | rate | teacher | best SD | PLL |" in md


def test_sweep_theory_section(tmp_path):
    """Results rows -> labels rebuilt by the runner's draw -> the theory section."""
    rows = [{"dataset": "digits", "noise_kind": "sym", "rate": 0.5, "seed": 0, "lam": 1e-3,
             "model": m, "train_acc_true": v}
            for m, v in (("teacher", 0.8), ("sd-1", 0.81), ("pll", 0.85))]
    sec = sweep_theory_section(rows, datasets={"digits": "digits"}, out_dir=tmp_path)
    assert isinstance(sec, dict) and sec["figure"][0].exists()
    assert sweep_theory_section([], datasets={}, out_dir=tmp_path) is None


def test_report_of_demo_style_csv_folder(tmp_path, digits):
    from selfdistill.experiments.runner import run_experiment
    from selfdistill.experiments.tables import flatten_record, write_csv

    rows = []
    for rate in (0.0, 0.4):
        rec = run_experiment(digits, noise="sym" if rate else "none", rate=rate, lam=1e-3,
                             rounds=1, select=False)
        rows += flatten_record(rec)
    write_csv(tmp_path / "results.csv", rows)
    res = runner.invoke(app, ["report", str(tmp_path), "--title", "demo folder"])
    assert res.exit_code == 0, res.output
    html = (tmp_path / "report.html").read_text()
    assert "<title>demo folder</title>" in html
    assert len(_imgs(html)) == len(list(tmp_path.glob("*.png"))) >= 3


@pytest.mark.parametrize("case", ["missing", "empty"])
def test_report_bad_folder_exit_2(tmp_path, case):
    folder = tmp_path / "nope"
    if case == "empty":
        folder.mkdir()
    res = runner.invoke(app, ["report", str(folder)])
    assert res.exit_code == 2
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "Traceback" not in res.output
    assert not (folder / "report.html").exists()


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable",
                 "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                "--disable-dev-shm-usage"]

#: appended to a copy of the report: marks every image that decoded and is laid out
PROBE = """<script>
window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0 && i.offsetHeight > 50);
  document.body.setAttribute('data-probe', ok.length + '/' + imgs.length);
});
</script>"""


def _chrome_base(chrome: str, tmp_path) -> list[str]:
    """Headless Chromium command line with a throwaway profile under ``tmp_path``."""
    return [chrome, *CHROME_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]


def _assert_images_render(chrome: str, html: str, tmp_path) -> str:
    """Load ``html`` with :data:`PROBE` in headless Chromium; every image must decode and
    be laid out. Returns the rendered DOM."""
    n_img = len(_imgs(html))
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("</body>", PROBE + "</body>"))
    dom = subprocess.run([*_chrome_base(chrome, tmp_path), "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert f'data-probe="{n_img}/{n_img}"' in dom.stdout, dom.stderr[-2000:]
    return dom.stdout


def test_report_renders_in_headless_chromium(sweep_dir, tmp_path):
    chrome = _chromium()
    if chrome is None:
        pytest.skip("no chromium binary on PATH (apt-get install chromium)")
    write_sweep_report(sweep_dir)
    _assert_images_render(chrome, (sweep_dir / "report.html").read_text(), tmp_path)
    shot = tmp_path / "shot.png"
    subprocess.run([*_chrome_base(chrome, tmp_path), f"--screenshot={shot}",
                    "--window-size=1200,4200", (sweep_dir / "report.html").as_uri()],
                   capture_output=True, timeout=120)
    import matplotlib.image as mpimg

    img = mpimg.imread(shot)[..., :3]
    assert img.shape[:2] == (4200, 1200)
    # figures are drawn: many non-white pixels, and coloured (not grey) ones from the plots
    nonwhite = (img < 0.95).any(axis=2).mean()
    colour = (img.max(axis=2) - img.min(axis=2) > 0.3).mean()
    assert nonwhite > 0.05 and colour > 0.005, (nonwhite, colour)


@pytest.fixture()
def read_only_copy(sweep_dir, tmp_path):
    """A copy of the sweep folder that cannot be written (a read-only bind mount as root)."""
    import os

    folder = tmp_path / "ro"
    shutil.copytree(sweep_dir, folder)
    for old in [folder / "report.html", *folder.glob("*.png")]:  # other tests' reports
        old.unlink(missing_ok=True)
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "--bind", str(folder), str(folder)],
                             capture_output=True).returncode == 0
    if not mounted or subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)],
                                     capture_output=True).returncode:
        if mounted:
            subprocess.run(["umount", str(folder)], check=False)
        pytest.skip("root without mount: cannot make a read-only folder")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def test_report_on_read_only_folder_says_the_folder(read_only_copy):
    # issue 16 bug 5: it said the database was unreadable
    res = runner.invoke(app, ["report", str(read_only_copy)])
    assert res.exit_code == 2
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in res.output
    assert err[0].startswith(f"error: cannot write the report into {read_only_copy}: ")
    assert "database" not in err[0]
    assert not (read_only_copy / "report.html").exists()


def test_fit_report_says_which_rows_were_left_out_and_prints_small_lams():
    """The 'why' paragraph counts the rows the final fits left out (n_left_out, naming the
    stiffer teacher when its flags joined), and the path table shows lam as 1e-06, not
    0.0000."""
    from types import SimpleNamespace

    from selfdistill.experiments.fit_report import _selection_path, _why

    sel = {"method": "m", "rule": "r", "pruned": True, "n_pruned": 560, "n_left_out": 902,
           "lam_flag": 1e-4, "path": [{"stage": "screen", "lam": 1e-6, "model": "teacher",
                                       "score": 0.9}]}
    res = SimpleNamespace(lam_selection=sel, selected="pruned-sd-1", lam=1e-6, models=[])
    why = _why(res)
    assert "without the 902 rows" in why and "λ=0.0001" in why and "560" not in why
    sel["lam_flag"] = None
    assert "without the 902 rows flagged out of fold" in _why(res)
    rows = _selection_path(res)["table"][0]
    assert rows[0]["lam"] == "1e-06"


def test_fit_report_names_the_cv_figure_it_shows():
    """Under --lam auto the cv column is the selection's score (e.g. the corrected score,
    an estimate of clean accuracy), not an accuracy on the given labels; at a fixed lam it
    is the cross-validated accuracy on the given labels."""
    from selfdistill.experiments.fit_report import _cv_text

    auto = [{"name": "pruned-teacher", "cv_score": 0.93}]
    fixed = [{"name": "teacher", "cv_acc_given": 0.61}]
    legend, header, note = _cv_text(auto)
    assert header == "cv score %" and "not an accuracy on the given labels" in note
    assert _cv_text(fixed)[1] == "cv accuracy %"
    assert "on the given labels" in _cv_text(fixed)[2]


def test_fit_report_explains_label_averaging_and_the_class_prior():
    """Under label averaging no candidate was scored: the 'why' paragraph gives the rule
    (learnable labels, an SD round without the stiffer teacher's surest flags, how its
    round is picked), not the corrected score; the prior note says the intercepts were
    shifted and how skewed the given counts are."""
    from types import SimpleNamespace

    import numpy as np

    from selfdistill.experiments.fit_report import _prior_note, _why

    sel = {"method": "5-fold screen, clean, label averaging", "rule": "corrected text",
           "pruned": False, "label_averaging": True, "lam_flag": 1e-4, "path": []}
    res = SimpleNamespace(lam_selection=sel, selected="sd-4", lam=1e-5, models=[])
    why = _why(res)
    assert "looked learnable" in why and "corrected text" not in why and "sd-4" in why
    assert "keep 0.6 of the teacher's confidence" in why and "a self-distillation round" in why
    res_pll = SimpleNamespace(lam_selection=sel, selected="pruned-pll", lam=1e-5, models=[])
    why_pll = _why(res_pll)
    assert "PLL student, whose predictions spread" in why_pll and "pruned-pll" in why_pll
    y = np.array([0, 0, 0, 1, 2, 2])
    uni = SimpleNamespace(class_prior="uniform", y_given=y, n_classes=3)
    assert "balanced" in _prior_note(uni) and "1-3 rows a class" in _prior_note(uni)
    given = SimpleNamespace(class_prior="given", y_given=y, n_classes=3)
    assert "balanced" not in _prior_note(given)


def test_noise_estimate_caveat_only_under_label_averaging():
    """The noise estimate carries a caveat exactly when label averaging fired: the CLI's
    noise table title and the report's 'Estimated noise' paragraph both show it."""
    from types import SimpleNamespace

    from selfdistill.cli.fit import noise_table
    from selfdistill.experiments.runner import RunResult
    from selfdistill.issues import estimate_noise

    y = np.array([0, 0, 1, 1, 2, 2])
    P = np.eye(3)[[0, 1, 1, 1, 2, 0]] * 0.8 + 0.2 / 3
    est = estimate_noise(P, y)
    for sel, expected in [({"label_averaging": True}, True),
                          ({"label_averaging": False}, False), (None, False)]:
        res = SimpleNamespace(lam_selection=sel, noise_estimate=est, noise_kind="none")
        caveat = RunResult.noise_estimate_caveat.fget(res)
        assert (caveat is not None) is expected
        res.noise_estimate_caveat = caveat
        title = str(noise_table(res, ["a", "b", "c"]).title)
        assert ("mostly low" in title) is expected
