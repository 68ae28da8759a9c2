"""The derivation in numbers: closed forms vs numpy, linearised vs exact, the four claims, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from selfdistill import SelfDistillError, make_noisy_labels
from selfdistill.cli import run
from selfdistill.solvers import one_hot
from selfdistill.theory import (
    BlockModel,
    GramSpectrum,
    block_trajectory,
    condition,
    exact_trajectory,
    lam_sweep,
    linearised_sd_accuracy,
    linearised_trajectory,
    model_name,
    noisy_block_labels,
    population_accuracy,
    population_view,
    run_block_experiment,
    shrink_factors,
    theory_section,
)

pytestmark = pytest.mark.filterwarnings("error", category=ConvergenceWarning)

# the configuration: K=4, n=200, c=0.4, d=0.1, sym noise 0.6, seed 0
CFG = dict(K=4, n=200, c=0.4, d=0.1, eta=0.6, noise="sym", seed=0)
SPEC_KEYS = {"params", "eigenvalues", "a", "gap", "condition_holds", "t_star", "min_rounds",
             "rounds", "pll"}


def first_perfect(res: dict, key: str = "train_acc") -> int | None:
    return next((r["round"] for r in res["rounds"] if r[key] >= 1.0), None)


@pytest.fixture(scope="module")
def exact_1e4():
    return run_block_experiment(**CFG, lam=1e-4, rounds=10, solver="exact")


@pytest.fixture(scope="module")
def exact_1e2():
    return run_block_experiment(**CFG, lam=1e-2, rounds=29, solver="exact")


# ------------------------------------------------------------------ closed forms

@pytest.mark.parametrize("K,n,c,d", [(4, 30, 0.4, 0.1), (3, 7, 0.9, 0.0), (5, 12, 0.3, 0.25)])
def test_eigenvalues_match_numpy(K, n, c, d):
    bm = BlockModel(K=K, n=n, c=c, d=d)
    G = bm.gram()
    np.testing.assert_allclose(bm.features() @ bm.features().T, G, atol=1e-12)
    expected = np.sort(np.repeat(bm.eigenvalues(), bm.multiplicities()))
    np.testing.assert_allclose(np.linalg.eigvalsh(G), expected, rtol=0, atol=1e-8)


def test_gamma_and_shrink_factors():
    a = shrink_factors(np.array([140.6, 60.6, 0.6]), K=4, N=800, lam=1e-4)
    gamma = 1 / (4 * 800 * 1e-4)
    np.testing.assert_allclose(a, gamma * np.array([140.6, 60.6, 0.6])
                               / (1 + gamma * np.array([140.6, 60.6, 0.6])))
    assert 0 < a[2] < a[1] < a[0] < 1


def test_linearised_svd_equals_block_closed_form():
    """Thin-SVD A^t (Y - U) (any features) equals the block formula to rounding."""
    bm = BlockModel(K=4, n=30, c=0.4, d=0.1)
    y, y_given, _ = noisy_block_labels(bm, 0.5, "sym", seed=1)
    Y = one_hot(y_given, 4)
    for lam in (1e-4, 1e-2):
        a = tuple(shrink_factors(np.array(bm.eigenvalues()), 4, bm.N, lam))
        lin = linearised_trajectory(bm.features(), Y, lam, rounds=6)
        blk = block_trajectory(Y, y, 4, a, rounds=6)
        for P, Q in zip(lin, blk):
            np.testing.assert_allclose(P, Q, atol=1e-10)


def test_linearised_matches_dense_A():
    """P_t - U = A^t (Y - U) with A = gamma G (I + gamma G)^-1 built densely (small N)."""
    rng = np.random.default_rng(0)
    Phi = rng.normal(size=(50, 8))  # rank 8 < N: the null space must map to 0
    Y = one_hot(rng.integers(0, 3, 50), 3)
    lam = 1e-2
    gamma = 1 / (3 * 50 * lam)
    G = Phi @ Phi.T
    A = gamma * G @ np.linalg.inv(np.eye(50) + gamma * G)
    Ps = linearised_trajectory(Phi, Y, lam, rounds=3)
    M = Y - 1 / 3
    for t, P in enumerate(Ps, start=1):
        np.testing.assert_allclose(P - 1 / 3, np.linalg.matrix_power(A, t) @ M, atol=1e-10)
    spec = GramSpectrum.from_features(Phi)
    assert spec.mu.shape == (8,)


def test_condition_and_min_rounds_formula():
    bm = BlockModel(K=4, n=200, c=0.4, d=0.1)
    y, y_given, _ = noisy_block_labels(bm, 0.6, "sym", seed=0)
    out = condition(bm, y, y_given, 1e-4)
    ybar = one_hot(y_given, 4).reshape(4, 200, 4).mean(axis=1)
    gap = min(ybar[k, k] - ybar[k, j] for k in range(4) for j in range(4) if j != k)
    assert out["gap"] == pytest.approx(gap)
    a1, a2 = out["a"]["a1"], out["a"]["a2"]
    g_min = min(ybar[k, k] - ybar[k, l] for k, l in zip(y, y_given) if k != l)
    assert out["t_star"] == pytest.approx(np.log(1 + 1 / g_min) / np.log(a1 / a2))
    assert out["min_rounds"] == int(np.ceil(out["t_star"]))


# ------------------------------------------------------------------ the claims

def test_claim_min_rounds_linearised(exact_1e4):
    """Condition holds; min_rounds = first round at which the linearised solver hits 100%."""
    lin = run_block_experiment(**CFG, lam=1e-4, rounds=10, solver="linear")
    assert lin["condition_holds"] is True
    assert lin["gap"] > 0
    assert lin["min_rounds"] == first_perfect(lin) == first_perfect(lin, "predicted_train_acc")
    # linearised via the SVD equals the closed form round by round
    assert [r["train_acc"] for r in lin["rounds"]] == \
        [r["predicted_train_acc"] for r in lin["rounds"]]
    assert lin["pll"]["train_acc"] == 1.0


def test_claim_exact_within_min_rounds_plus_3(exact_1e4):
    res = exact_1e4
    assert set(res) >= SPEC_KEYS
    assert res["rounds"][0]["round"] == 1 and res["rounds"][0]["model"] == "teacher"
    t_exact = first_perfect(res)
    assert t_exact is not None
    assert res["min_rounds"] <= t_exact <= res["min_rounds"] + 3
    # never 100% before the closed form says so (the exact solution needs as many or more)
    assert t_exact >= first_perfect(res, "predicted_train_acc")
    # PLL: one student round after the teacher is right on every instance
    assert res["pll"]["train_acc"] == 1.0
    assert res["pll"]["predicted_train_acc"] == 1.0
    assert all(f["converged"] or f["status"] == 2 for f in res["fits"])


def test_claim_diminishing_returns_lam_1e2(exact_1e2):
    for key in ("train_acc", "predicted_train_acc"):
        accs = [r[key] for r in exact_1e2["rounds"]]
        t100 = accs.index(1.0)
        assert t100 <= 2  # 100% at an early round
        assert accs[-1] < 1.0 and min(accs[t100:]) <= 0.5  # ... then falls
        assert accs[-1] == pytest.approx(0.25)  # the global-mean direction wins: 1/K
    assert len(exact_1e2["rounds"]) == 30


@pytest.mark.parametrize("solver", ["linear", "exact"])
def test_claim_condition_fails_eta_08(solver):
    res = run_block_experiment(**{**CFG, "eta": 0.8}, lam=1e-4, rounds=10, solver=solver)
    assert res["condition_holds"] is False and res["gap"] < 0
    assert res["t_star"] is None and res["min_rounds"] is None
    assert max(r["train_acc"] for r in res["rounds"]) < 1.0
    assert max(r["predicted_train_acc"] for r in res["rounds"]) < 1.0


def test_exact_trajectory_is_the_products_pipeline():
    """Same fits as selfdistill.self_distill (the code users run)."""
    from selfdistill.distill import self_distill

    bm = BlockModel(K=3, n=20, c=0.5, d=0.1)
    y, y_given, _ = noisy_block_labels(bm, 0.4, "sym", seed=2)
    Phi = bm.features()
    tr = exact_trajectory(Phi, y_given, 1e-3, 3, n_classes=3)
    fits = self_distill(Phi, y_given, lam=1e-3, rounds=3, pll=True, pll_loss="two-hot",
                        n_classes=3, max_iter=5000)
    for a, b in zip(tr.fits, fits):
        assert a.name == b.name
        np.testing.assert_allclose(a.W, b.W, atol=1e-6 * max(1.0, np.abs(b.W).max()))


def test_population_view_edge():
    out = population_view(K=4, n=50, lam=1e-4, etas=[0.3, 0.6, 0.8], seeds=5, rounds=15)
    rate = {p["eta"]: p for p in out["points"]}
    assert out["edge"] == 0.75
    assert rate[0.3]["condition_rate"] == 1.0 and rate[0.3]["final_acc"] == 1.0
    assert rate[0.8]["condition_rate"] == 0.0 and rate[0.8]["final_acc"] < 0.25
    assert rate[0.6]["pll_acc"] == 1.0


def test_population_formula_step():
    from selfdistill.noise import transition_matrix

    bm = BlockModel(K=4, n=200, c=0.4, d=0.1)
    below = population_accuracy(bm, transition_matrix("sym", 0.6, 4), 1e-4, 10)
    assert below["train_acc"][0] == pytest.approx(0.4)
    assert below["train_acc"][-1] == pytest.approx(1.0)
    assert below["pll_train_acc"] == pytest.approx(1.0)
    above = population_accuracy(bm, transition_matrix("sym", 0.8, 4), 1e-4, 10)
    assert above["t_star"] is None and above["train_acc"][-1] == 0.0


def test_lam_sweep_collapse_linear():
    out = lam_sweep(n=200, lams=[1e-4, 1e-2], rounds=30)
    small, large = out["curves"]
    assert small["collapse_round"] is None and small["train_acc"][-1] == 1.0
    assert large["first_perfect_round"] == 1 and large["collapse_round"] is not None


@pytest.mark.parametrize("kw,match", [
    (dict(c=1.5), "c must be in"), (dict(K=1), "K must be"), (dict(c=0.1, d=0.2), "c must be"),
    (dict(eta=1.0), "eta must be in"), (dict(lam=0.0), "lam must be"),
    (dict(noise="cc"), "noise must be"), (dict(solver="newton"), "solver must be"),
])
def test_bad_parameters(kw, match):
    with pytest.raises(SelfDistillError, match=match):
        run_block_experiment(**{**CFG, "rounds": 2, "solver": "linear", **kw})


def test_model_names_off_by_one():
    assert [model_name(t) for t in (1, 2, 3)] == ["teacher", "sd-1", "sd-2"]


# ------------------------------------------------------------------ real embeddings

def test_linearised_sd_accuracy_and_section(tmp_path, digits):
    y_noisy, _ = make_noisy_labels(digits.y_train, "sym", 0.5, 10, seed=0)
    out = linearised_sd_accuracy(digits.X_train, y_noisy, digits.y_train, 1e-3, rounds=3,
                                 n_classes=10, pll=True)
    assert out["train_acc"].shape == (4,) and 0.1 < out["train_acc"][0] <= 1.0
    assert 0 <= out["pll_train_acc"] <= 1
    sec = theory_section(digits, y_noisy, digits.y_train, 1e-3, 3,
                         {"teacher": 0.8, "sd-1": 0.82, "sd-2": 0.83, "sd-3": 0.83}, tmp_path)
    rows, cols, headers = sec["table"]
    assert [r["model"] for r in rows] == ["teacher", "sd-1", "sd-2", "sd-3", "pll"]
    assert rows[1]["theory_round"] == 2 and rows[0]["measured"] == "80.0"
    assert Path(sec["figure"][0]).read_bytes()[:4] == b"\x89PNG"
    from selfdistill.experiments.report import render_report

    assert "Theory vs measurement" in render_report("t", [sec])


# ------------------------------------------------------------------ command line

def test_cli_json_and_plot(tmp_path, capsys):
    out, png = tmp_path / "t.json", tmp_path / "t.png"
    with pytest.raises(SystemExit) as exc:
        run(["theory", "--solver", "linear", "--rounds", "6", "--json", str(out),
             "--plot", str(png), "--quiet"])
    assert exc.value.code == 0
    res = json.loads(out.read_text())
    assert set(res) >= SPEC_KEYS
    assert set(res["eigenvalues"]) == {"mu0", "mu1", "mu2"}
    assert set(res["a"]) == {"a0", "a1", "a2"}
    assert [r["round"] for r in res["rounds"]] == list(range(1, 8))
    assert all({"round", "train_acc", "predicted_train_acc"} <= set(r) for r in res["rounds"])
    assert "train_acc" in res["pll"]
    assert res["min_rounds"] == 5 and res["condition_holds"] is True
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "min_rounds" in capsys.readouterr().out


@pytest.mark.parametrize("view", ["population", "lams"])
def test_cli_views(tmp_path, view):
    out = tmp_path / "v.json"
    extra = ["--etas", "0.5,0.8", "--seeds", "2"] if view == "population" else \
        ["--lams", "1e-2", "--rounds", "12", "--solver", "linear"]
    with pytest.raises(SystemExit) as exc:
        run(["theory", "--view", view, "--n", "50", *extra, "--json", str(out),
             "--plot", str(tmp_path / "v.png"), "--quiet"])
    assert exc.value.code == 0
    res = json.loads(out.read_text())
    assert ("points" in res) if view == "population" else ("curves" in res)


BAD_ARGS = [["--c", "1.5"], ["--K", "1"], ["--c", "0.1", "--d", "0.2"], ["--eta", "1.2"],
            ["--view", "nope"], ["--noise", "cc"], ["--lam", "-1"], ["--n", "abc"]]


@pytest.mark.parametrize("args", BAD_ARGS)
def test_cli_bad_input(tmp_path, capsys, args):
    out = tmp_path / "bad.json"
    with pytest.raises(SystemExit) as exc:
        run(["theory", *args, "--solver", "linear", "--json", str(out)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert not out.exists()


@pytest.mark.parametrize("args", BAD_ARGS[:2])
def test_cli_bad_input_subprocess(tmp_path, args):
    out = tmp_path / "bad.json"
    proc = subprocess.run(
        [sys.executable, "-m", "selfdistill", "theory", *args, "--json", str(out)],
        capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_closed_form_basis_is_the_solvers_basis():
    """BlockModel.spectral_basis (no eigendecomposition) is a valid SpectralBasis of Phi."""
    bm = BlockModel(K=3, n=6, c=0.7, d=0.2)
    b, Phi = bm.spectral_basis(), bm.features()
    np.testing.assert_allclose(Phi @ b.V, b.XV, atol=1e-12)
    np.testing.assert_allclose(b.V.T @ b.V, np.eye(bm.N), atol=1e-12)
    np.testing.assert_allclose(b.XV @ b.XV.T, bm.gram(), atol=1e-12)
    from selfdistill.solvers import SpectralBasis

    np.testing.assert_allclose(np.sort(b.s2), np.sort(SpectralBasis.from_features(Phi).s2)[-bm.N:],
                               atol=1e-10)
