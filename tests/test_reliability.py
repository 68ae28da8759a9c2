"""Hostile inputs and crashes: fuzzed files, SIGKILL loops, solver edge cases.

- fuzz: valid ``.npz`` and TOML files are mutated at random (seeded); the loaders either
  accept the result or raise :class:`SelfDistillError`, and the CLI either works (exit 0)
  or prints one ``error:`` line and exits 2, leaving no output file;
- crashes: a sweep is SIGKILLed at random moments, over and over (at least 20 kills),
  then finished with ``--resume``: every grid point exactly once, numbers identical to an
  uninterrupted run, database intact;
- solver robustness: huge and tiny feature scales, duplicated rows, d > N, K = 2, zero
  features and lam from 1e-9 to 10: converged and finite, never a silent NaN.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import random
import signal
import sqlite3
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from selfdistill import SelfDistillError, fit_softmax
from selfdistill.cli import run
from selfdistill.datasets import load_features
from selfdistill.experiments.config import load_config
from selfdistill.experiments.store import ResultStore
from selfdistill.experiments.sweep import run_sweep

from .conftest import count_points, write_npz


def cli(capsys, *args) -> tuple[int, str, str]:
    """Run the CLI in-process; any exception other than SystemExit fails the test."""
    with pytest.raises(SystemExit) as exc:
        run([str(a) for a in args])
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def assert_works_or_exit_2(code: int, err: str, output: Path) -> None:
    assert code in (0, 2), (code, err)
    if code == 2:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert not output.exists()
        assert not list(output.parent.glob(f".{output.name}*")), "temp file left behind"
    else:
        assert output.stat().st_size > 0


# -- fuzzing -----------------------------------------------------------------------------------
def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    """One random corruption: flipped bytes, a cut, an insertion or a zeroed range."""
    b = bytearray(data)
    how = rng.choice(["flip", "flip", "cut", "insert", "zero"])
    if how == "flip":
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif how == "cut":
        del b[rng.randrange(1, len(b)):]
    elif how == "insert":
        at = rng.randrange(len(b))
        b[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    else:
        at = rng.randrange(len(b))
        b[at:at + rng.randint(1, 64)] = bytes(min(64, len(b) - at))
    return bytes(b)


def mutate_members(data: bytes, rng: random.Random) -> bytes:
    """Rewrite the archive with one member renamed, dropped, duplicated or swapped."""
    src = zipfile.ZipFile(io.BytesIO(data))
    members = {n: src.read(n) for n in src.namelist()}
    names = list(members)
    how = rng.choice(["rename", "drop", "swap", "garbage"])
    a, b = rng.sample(names, 2)
    if how == "rename":
        members[rng.choice(["X_tr.npy", "y_train", "classes.npy", "X_test.npy"])] = \
            members.pop(a)
    elif how == "drop":
        members.pop(a)
    elif how == "swap":
        members[a], members[b] = members[b], members[a]
    else:
        members[a] = mutate_bytes(members[a], rng)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, payload in members.items():
            zf.writestr(name, payload)
    return buf.getvalue()


@pytest.fixture(scope="module")
def npz_bytes(digits) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, X_train=digits.X_train[:80], y_train=digits.y_train[:80],
             X_test=digits.X_test[:40], y_test=digits.y_test[:40],
             classes=np.array([str(k) for k in range(10)]))
    return buf.getvalue()


def test_fuzzed_npz_loads_or_is_refused(tmp_path, npz_bytes):
    rng = random.Random(0)
    outcomes = {"loaded": 0, "refused": 0}
    for i in range(300):
        mutant = (mutate_bytes if i % 2 else mutate_members)(npz_bytes, rng)
        path = tmp_path / f"m{i}.npz"
        path.write_bytes(mutant)
        try:
            ds = load_features(path)
        except SelfDistillError as exc:
            assert "\n" not in str(exc)
            outcomes["refused"] += 1
            continue
        outcomes["loaded"] += 1
        assert np.isfinite(ds.X_train).all() and ds.y_train.max() < ds.n_classes
    assert outcomes["refused"] > 50 and outcomes["loaded"] > 5, outcomes


def test_fuzzed_npz_cli_works_or_exits_2(capsys, tmp_path, npz_bytes):
    rng = random.Random(1)
    codes = []
    for i in range(30):
        mutant = (mutate_bytes if i % 2 else mutate_members)(npz_bytes, rng)
        path = tmp_path / f"m{i}.npz"
        path.write_bytes(mutant)
        out = tmp_path / f"out{i}.json"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a mangled-but-valid file may fit badly
            code, _, err = cli(capsys, "fit", path, "--lam", "1e-2", "--rounds", "1",
                               "--no-select", "--json", out, "--quiet")
        assert_works_or_exit_2(code, err, out)
        codes.append(code)
    assert 0 in codes and 2 in codes


CONFIG = """title = "fuzz"
[grid]
datasets = ["small.npz"]
noise = ["sym", "cc"]
rates = [0.0, 0.3]
seeds = [0]
lam = [1e-2]
rounds = [1]
methods = ["teacher", "sd", "pll"]
[options]
select = false
"""


def mutate_text(text: str, rng: random.Random) -> str:
    lines = text.splitlines()
    how = rng.choice(["drop", "dup", "char", "value", "cut"])
    i = rng.randrange(len(lines))
    if how == "drop":
        del lines[i]
    elif how == "dup":
        lines.insert(i, lines[i])
    elif how == "char" and lines[i]:
        j = rng.randrange(len(lines[i]))
        lines[i] = lines[i][:j] + rng.choice('[]"=,.#x0-9 \\') + lines[i][j + 1:]
    elif how == "value" and "=" in lines[i]:
        key = lines[i].split("=")[0]
        lines[i] = key + "= " + rng.choice(['"sym:2"', "-1", "[]", "1e400", '["gauss"]',
                                            "[0.99]", "[-0.5]", "true", '"x"', "[1, 2]"])
    else:
        return text[: rng.randrange(len(text))]
    return "\n".join(lines) + "\n"


def test_fuzzed_toml_loads_or_exits_2(capsys, tmp_path, digits):
    write_npz(tmp_path / "small.npz", X_train=digits.X_train[:60], y_train=digits.y_train[:60],
              X_test=digits.X_test[:30], y_test=digits.y_test[:30])
    rng = random.Random(2)
    refused = ran = 0
    for i in range(80):
        cfg = tmp_path / f"c{i}.toml"
        cfg.write_text(mutate_text(CONFIG, rng))
        out = tmp_path / f"out{i}"
        try:
            points = load_config(cfg).points()
        except SelfDistillError as exc:
            assert "\n" not in str(exc)
            refused += 1
            if refused <= 15:  # the CLI says the same in one line, and writes nothing
                code, _, err = cli(capsys, "sweep", cfg, "--out", out, "--quiet")
                assert_works_or_exit_2(code, err, out / "results.csv")
                assert not (out / "results.sqlite").exists()
            continue
        assert points
        if ran < 4:  # a config that parses also runs
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                code, _, err = cli(capsys, "sweep", cfg, "--out", out, "--quiet")
            assert_works_or_exit_2(code, err, out / "results.csv")
            ran += 1
    assert refused > 20 and ran >= 2, (refused, ran)


# -- SIGKILL at random moments -----------------------------------------------------------------
KILL_CONFIG = """
[grid]
datasets = ["small.npz"]
noise = ["sym", "asym", "cc"]
rates = [0.2, 0.5]
seeds = [0, 1, 2, 3]
lam = [1e-2]
rounds = [2]
methods = ["teacher", "sd", "pll"]
[options]
select = false
"""
N_KILL_POINTS = 3 * 2 * 4


def _sweep_child(cfg: str, out: str) -> None:
    os.environ["PYTHONWARNINGS"] = "ignore"
    run(["sweep", cfg, "--out", out, "--resume", "--quiet"])


def rows_without_timings(folder: Path) -> list[dict]:
    store = ResultStore(folder / "results.sqlite")
    try:
        return [{k: v for k, v in r.items() if not k.endswith("_s")} for r in store.rows()]
    finally:
        store.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_sweep_survives_20_random_sigkills(tmp_path, digits):
    write_npz(tmp_path / "small.npz", X_train=digits.X_train[:150],
              y_train=digits.y_train[:150], X_test=digits.X_test[:60], y_test=digits.y_test[:60])
    cfg = tmp_path / "kill.toml"
    cfg.write_text(KILL_CONFIG)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_sweep(load_config(cfg), tmp_path / "ref")
    out = tmp_path / "out"
    db = out / "results.sqlite"
    ctx = multiprocessing.get_context("fork")  # children start with everything imported
    rng = random.Random(3)
    kills = mid_run = 0
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        before = count_points(db)
        # stop once both goals are met: a child started with only a few points left may
        # finish them between its start and the kill (nothing wrong: the test then
        # loses the final run it checks)
        if kills >= 20 and mid_run >= 10:
            break
        proc = ctx.Process(target=_sweep_child, args=(str(cfg), str(out)))
        proc.start()
        if kills % 4 == 0:  # anywhere, start-up and database creation included
            time.sleep(rng.uniform(0.0, 0.15))
        else:  # mid-run: after 0..1 more points, at a random instant
            goal = before + rng.randint(0, 1)
            while count_points(db) < goal and proc.is_alive():
                time.sleep(0.002)
            time.sleep(rng.uniform(0.0, 0.03))
        if proc.is_alive():
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.join()
        mid_run += count_points(db) > before  # killed after storing a point, mid-sweep
        if kills < 20 and count_points(db) >= N_KILL_POINTS:
            pytest.fail(f"sweep completed after only {kills} kills")
    assert kills >= 20 and mid_run >= 10, (kills, mid_run)
    assert not (out / "results.csv").exists()
    proc = ctx.Process(target=_sweep_child, args=(str(cfg), str(out)))
    proc.start()
    proc.join()
    assert proc.exitcode == 0
    assert rows_without_timings(out) == rows_without_timings(tmp_path / "ref")
    con = sqlite3.connect(db)
    try:
        assert con.execute("SELECT COUNT(*), COUNT(DISTINCT point_key) FROM points").fetchone() \
            == (N_KILL_POINTS, N_KILL_POINTS)
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        con.close()


# -- solver robustness -------------------------------------------------------------------------
def _cases(digits):
    X, y = digits.X_train[:300].astype(float), digits.y_train[:300]
    rng = np.random.default_rng(0)
    return {
        "scale 1e6": (X * 1e6, y),
        "scale 1e-6": (X * 1e-6, y),
        "column at 1e6": (np.hstack([X, np.full((300, 1), 1e6)]), y),
        "duplicated rows": (np.vstack([X, X, X]), np.concatenate([y, y, y])),
        "d > N": (rng.normal(size=(40, 300)), y[:40]),
        "K = 2": (X, (y > 4).astype(int)),
        "zero features": (np.zeros((30, 4)), np.arange(30) % 3),
    }


CASES = ["scale 1e6", "scale 1e-6", "column at 1e6", "duplicated rows", "d > N", "K = 2",
         "zero features"]


@pytest.mark.parametrize("lam", [1e-9, 1e-6, 1e-3, 1.0, 10.0])
@pytest.mark.parametrize("case", CASES)
def test_solver_converges_on_hard_inputs(digits, case, lam):
    X, y = _cases(digits)[case]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a ConvergenceWarning fails the test
        W, info = fit_softmax(X, y, lam=lam)
    assert info.converged and np.isfinite(W).all() and np.isfinite(info.objective)
    K = int(y.max()) + 1
    assert info.objective <= np.log(K) * (1 + 1e-12)
    assert info.grad_norm <= 1e-6 * info.grad_norm0 * (1 + 1e-9)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_solver_refuses_non_finite_features(digits, bad):
    X = digits.X_train[:50].astype(float).copy()
    X[3, 5] = bad
    with pytest.raises(SelfDistillError, match="NaN or inf"):
        fit_softmax(X, digits.y_train[:50], lam=1e-3)


def test_solver_stops_with_a_clear_warning_not_nan(digits):
    X, y = digits.X_train[:200], digits.y_train[:200]
    with pytest.warns(Warning, match="did not converge"):
        W, info = fit_softmax(X, y, lam=1e-6, max_iter=3)
    assert not info.converged and info.iterations == 3 and np.isfinite(W).all()
    assert "max_iter" in info.message or "iteration" in info.message
