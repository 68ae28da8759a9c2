"""Sweeps: config validation, SQLite store, resume after SIGKILL, locking, schedulers."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from typer.testing import CliRunner

from selfdistill._errors import SelfDistillError
from selfdistill.cli import app
from selfdistill.experiments.config import load_config, parse_config
from selfdistill.experiments.runner import run_experiment
from selfdistill.experiments.store import CSV_COLUMNS, SCHEMA_VERSION, DirLock, ResultStore
from selfdistill.experiments.sweep import run_sweep

from .conftest import count_points, write_npz

pytestmark = pytest.mark.filterwarnings("error", category=ConvergenceWarning)

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()

CONFIG = """
title = "test sweep"
[grid]
datasets = ["small.npz"]
noise = ["sym", "asym"]
rates = [0.0, 0.3]
seeds = [0, 1]
lam = [1e-3, 3e-3]
rounds = [2]
methods = ["teacher", "sd", "pll"]
"""
N_POINTS = 2 + 2 * 2 * 2  # clean point per lam + (kind x seed x lam) at rate 0.3


@pytest.fixture()
def tiny(tmp_path, digits) -> Path:
    """A 300-row digits feature file and a config of 10 points next to it."""
    write_npz(tmp_path / "small.npz", X_train=digits.X_train[:300], y_train=digits.y_train[:300],
              X_test=digits.X_test[:150], y_test=digits.y_test[:150])
    cfg = tmp_path / "sweep.toml"
    cfg.write_text(CONFIG)
    return cfg


def data_rows(folder: Path) -> list[dict]:
    """results rows without the wall-clock (``_s``) columns."""
    store = ResultStore(Path(folder) / "results.sqlite")
    try:
        return [{k: v for k, v in r.items() if not k.endswith("_s")} for r in store.rows()]
    finally:
        store.close()


def csv_rows(folder: Path) -> list[list[str]]:
    import csv

    with open(Path(folder) / "results.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    keep = [i for i, c in enumerate(rows[0]) if not c.endswith("_s")]
    return [[r[i] for i in keep] for r in rows]


def check_error(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    err = result.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.output
    for n in needles:
        assert n in err[0], err[0]


# -- config -----------------------------------------------------------------------------------
def test_config_points_dedupe_clean_and_resolve_paths(tiny):
    cfg = load_config(tiny)
    pts = cfg.points()
    assert len(pts) == N_POINTS
    assert len({p.key for p in pts}) == N_POINTS
    clean = [p for p in pts if p.rate == 0.0]
    assert [(p.noise, p.seed) for p in clean] == [("none", 0), ("none", 0)]
    assert cfg.dataset_paths["small.npz"] == str((tiny.parent / "small.npz").resolve())


@pytest.mark.parametrize("text, needles", [
    ("[grid\ndatasets = 1", ["malformed TOML"]),
    ("[grid]\ndatasets = ['digits']\nnoize = ['sym']", ["grid.noize", "unknown key"]),
    ("[grid]\ndatasets = ['digits']\nnoise = ['sym', 'pair']", ["grid.noise[1]", "'pair'"]),
    ("[grid]\ndatasets = ['digits']\nrates = [0.2, 1.0]", ["grid.rates[1]", "[0, 1)"]),
    ("[grid]\ndatasets = ['digits']\nrates = [-0.1]", ["grid.rates[0]"]),
    ("[grid]\ndatasets = ['digits']\nlam = [0]", ["grid.lam[0]", "[1e-12, 10000]"]),
    ("[grid]\ndatasets = ['nope.npz']", ["grid.datasets[0]", "not found"]),
    ("[grid]\ndatasets = ['mnist']", ["grid.datasets[0]", "unknown dataset"]),
    ("[grid]\nnoise = ['sym']", ["grid.datasets", "missing"]),
    ("[grid]\ndatasets = ['digits']\n[options]\nselect = 'yes'", ["options.select"]),
    ("extra = 1\n[grid]\ndatasets = ['digits']", ["extra", "unknown key"]),
])
def test_bad_config_exit_2_names_file_and_key(tmp_path, text, needles):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    out = tmp_path / "out"
    with pytest.raises(SelfDistillError):
        load_config(cfg)
    res = runner.invoke(app, ["sweep", str(cfg), "--out", str(out)])
    check_error(res, str(cfg), *needles)
    assert not out.exists()


def test_bad_scheduler_and_missing_config(tmp_path, tiny):
    check_error(runner.invoke(app, ["sweep", str(tiny), "--out", str(tmp_path / "o"),
                                    "--scheduler", "slurm"]), "--scheduler")
    check_error(runner.invoke(app, ["sweep", str(tmp_path / "none.toml"), "--out",
                                    str(tmp_path / "o")]), "config file not found")
    assert not (tmp_path / "o").exists()


# -- store and determinism ------------------------------------------------------------------
def test_sweep_rows_equal_run_experiment_and_csv_layout(tiny, tmp_path):
    out = tmp_path / "out"
    s = run_sweep(load_config(tiny), out)
    assert (s.total, s.computed, s.skipped) == (N_POINTS, N_POINTS, 0)
    rows = data_rows(out)
    assert len(rows) == N_POINTS * 4  # teacher, sd-1, sd-2, pll
    header = (out / "results.csv").read_text().splitlines()[0].split(",")
    assert header == list(CSV_COLUMNS)
    assert header[:7] == ["dataset", "noise_kind", "rate", "seed", "lam", "rounds", "pll"]
    assert all(c.endswith("_s") for c in header if "time" in c or c in ("fit_s", "point_s"))
    # one point recomputed directly: same numbers as `selfdistill fit` would give
    from selfdistill.datasets import load_features

    ds = load_features(tmp_path / "small.npz")
    rec = run_experiment(ds, noise="sym", rate=0.3, noise_seed=1, lam=3e-3, rounds=2,
                         pll=True, select=False)
    got = [r for r in rows if (r["noise_kind"], r["seed"], r["lam"]) == ("sym", 1, 3e-3)
           and r["rate"] == 0.3]
    assert [r["model"] for r in got] == ["teacher", "sd-1", "sd-2", "pll"]
    for r, m in zip(got, rec["models"]):
        assert r["test_acc"] == m["test_acc"]
        assert r["noisy_subset_acc"] == m["noisy_subset_acc"]
        assert r["iterations"] == m["iterations"]
        np.testing.assert_allclose(r["objective"], m["objective"], rtol=1e-9)
    assert sum(r["selected"] for r in got) == 1


def test_second_run_without_resume_refuses_and_resume_is_noop(tiny, tmp_path):
    out = tmp_path / "out"
    run_sweep(load_config(tiny), out)
    before = csv_rows(out)
    res = runner.invoke(app, ["sweep", str(tiny), "--out", str(out)])
    check_error(res, "--resume")
    res = runner.invoke(app, ["sweep", str(tiny), "--out", str(out), "--resume"])
    assert res.exit_code == 0, res.output
    assert f"0 computed now, {N_POINTS} already stored" in res.stdout
    assert csv_rows(out) == before


def test_resume_with_other_config_refused(tiny, tmp_path):
    out = tmp_path / "out"
    run_sweep(load_config(tiny), out)
    other = tiny.parent / "other.toml"
    other.write_text(CONFIG.replace("seeds = [0, 1]", "seeds = [0, 1, 2]"))
    check_error(runner.invoke(app, ["sweep", str(other), "--out", str(out), "--resume"]),
                "another config", "grid.seeds")


def test_other_schema_version_refused(tiny, tmp_path):
    out = tmp_path / "out"
    run_sweep(load_config(tiny), out)
    con = sqlite3.connect(out / "results.sqlite")
    con.execute("UPDATE meta SET value='0' WHERE key='schema_version'")
    con.commit()
    con.close()
    with pytest.raises(SelfDistillError, match=f"schema version 0; .* version {SCHEMA_VERSION}"):
        ResultStore(out / "results.sqlite")
    check_error(runner.invoke(app, ["sweep", str(tiny), "--out", str(out), "--resume"]),
                "schema version 0")
    check_error(runner.invoke(app, ["report", str(out)]), "schema version 0")
    assert not (out / "report.html").exists()


def test_not_a_database_refused(tiny, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.sqlite").write_bytes(b"this is not sqlite" * 100)
    check_error(runner.invoke(app, ["sweep", str(tiny), "--out", str(out), "--resume"]),
                "not a readable selfdistill results database")


def test_lock_refuses_concurrent_sweep(tiny, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with DirLock(out):
        check_error(runner.invoke(app, ["sweep", str(tiny), "--out", str(out), "--resume"]),
                    "another sweep is writing")
    assert not (out / "results.sqlite").exists()
    assert runner.invoke(app, ["sweep", str(tiny), "--out", str(out)]).exit_code == 0


# -- crash safety ---------------------------------------------------------------------------
def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "selfdistill", *args]


@pytest.mark.parametrize("scheduler", ["local", "processes"])
def test_sigkill_then_resume_gives_every_point_once(tiny, tmp_path, scheduler):
    ref = tmp_path / "ref"
    run_sweep(load_config(tiny), ref)
    out = tmp_path / "out"
    db = out / "results.sqlite"
    kill_after = random.randint(1, N_POINTS - 3)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(_cli("sweep", str(tiny), "--out", str(out), "--scheduler", scheduler,
                                 "--workers", "2", "--quiet"),
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while count_points(db) < kill_after and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    # a second sweep on the same folder while the first runs: refused, nothing touched
    res = runner.invoke(app, ["sweep", str(tiny), "--out", str(out), "--resume"])
    if proc.poll() is None:
        check_error(res, "another sweep is writing")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    n_killed = count_points(db)
    assert n_killed < N_POINTS, "sweep finished before it could be killed"
    assert not (out / "results.csv").exists()
    res = runner.invoke(app, ["sweep", str(tiny), "--out", str(out), "--resume"])
    assert res.exit_code == 0, res.output
    assert f"{N_POINTS - n_killed} computed now, {n_killed} already stored" in res.stdout
    assert data_rows(out) == data_rows(ref)
    assert csv_rows(out) == csv_rows(ref)
    con = sqlite3.connect(db)
    assert con.execute("SELECT COUNT(*), COUNT(DISTINCT point_key) FROM points").fetchone() \
        == (N_POINTS, N_POINTS)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 2
    assert con.execute("SELECT COUNT(*) FROM point_runs").fetchone()[0] == N_POINTS
    con.close()


# -- schedulers -------------------------------------------------------------------------------
def test_dask_cluster_rows_equal_local(tiny, tmp_path):
    distributed = pytest.importorskip("distributed")
    run_sweep(load_config(tiny), tmp_path / "local")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  protocol="tcp", host="127.0.0.1",
                                  dashboard_address="127.0.0.1:0") as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        s = run_sweep(load_config(tiny), tmp_path / "dask",
                      scheduler=f"dask:{cluster.scheduler_address}")
    assert s.computed == N_POINTS
    assert data_rows(tmp_path / "dask") == data_rows(tmp_path / "local")
    assert csv_rows(tmp_path / "dask") == csv_rows(tmp_path / "local")


def test_dask_local_cluster_from_cli(tiny, tmp_path):
    pytest.importorskip("distributed")
    small = parse_config({"grid": {"datasets": [str(tmp_path / "small.npz")], "noise": ["sym"],
                                   "rates": [0.3], "seeds": [0, 1], "lam": [1e-3],
                                   "rounds": [1]}})
    run_sweep(small, tmp_path / "local")
    s = run_sweep(small, tmp_path / "dask", scheduler="dask", workers=1)
    assert s.computed == 2
    assert data_rows(tmp_path / "dask") == data_rows(tmp_path / "local")


def test_unreachable_dask_scheduler(tiny, tmp_path):
    pytest.importorskip("distributed")
    check_error(runner.invoke(app, ["sweep", str(tiny), "--out", str(tmp_path / "o"),
                                    "--scheduler", "dask:tcp://127.0.0.1:1"]),
                "cannot reach the dask scheduler")
    assert not (tmp_path / "o").exists()


def test_smoke_example_config_is_valid():
    cfg = load_config(ROOT / "examples" / "smoke.toml")
    assert len(cfg.points()) >= 12
    big = load_config(ROOT / "examples" / "banking77.toml")
    g = big.grid
    assert g["noise"] == ["sym", "asym", "cc"] and g["rates"] == [0.0, 0.2, 0.5, 0.8]
    assert g["seeds"] == [0, 1, 2] and g["lam"] == [1e-6, 1e-5, 1e-4]
    assert g["rounds"] == [4] and g["methods"] == ["teacher", "sd", "pll"]


def test_ctrl_c_says_what_was_stored_and_resume_finishes(tiny, tmp_path, monkeypatch, capsys):
    # issue 16: Ctrl-C printed a traceback and nothing about what was kept
    from selfdistill.cli import run
    from selfdistill.experiments import sweep

    real, calls = sweep.compute_point, []

    def compute(*a, **k):
        calls.append(1)
        if len(calls) > 6:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(sweep, "compute_point", compute)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        run(["sweep", str(tiny), "--out", str(out), "--quiet"])
    assert exc.value.code == 130
    assert count_points(out / "results.sqlite") == 6
    err = capsys.readouterr().err
    assert err.strip().splitlines()[1:] == [
        f"interrupted; 6 of {N_POINTS} points stored in {out / 'results.sqlite'}; re-run with "
        "--resume to finish"]
    monkeypatch.setattr(sweep, "compute_point", real)
    with pytest.raises(SystemExit) as exc:
        run(["sweep", str(tiny), "--out", str(out), "--resume", "--quiet"])
    assert exc.value.code == 0 and count_points(out / "results.sqlite") == N_POINTS



def test_sweep_states_its_size_and_time_before_starting(tiny, tmp_path, capsys):
    # issue 16: a sweep started without saying how big it was
    from selfdistill.cli import run

    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        run(["sweep", str(tiny), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.splitlines()
    assert exc.value.code == 0
    assert err[0].startswith(f"note: {N_POINTS} grid points, about ")
    assert err[0].endswith("with 1 worker (a rough estimate from the data sizes)")


def test_ten_thousand_points_need_yes(tmp_path, digits):
    from selfdistill.experiments.config import parse_config
    from selfdistill.experiments.sweep import CONFIRM_POINTS, estimate_seconds

    cfg = parse_config({"grid": {"datasets": ["digits"], "noise": ["sym"], "rates": [0.3],
                                 "seeds": list(range(CONFIRM_POINTS)), "lam": [1e-3],
                                 "rounds": [1]}})
    est = estimate_seconds(cfg, cfg.points())
    assert len(cfg.points()) == CONFIRM_POINTS and est > 3600  # hours, said up front
