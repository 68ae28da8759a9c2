"""``selfdistill bench --quick``: the JSON contract (timings are not asserted)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from selfdistill.bench import BENCH_KEYS
from selfdistill.cli import app

pytestmark = pytest.mark.filterwarnings("error::sklearn.exceptions.ConvergenceWarning")


def test_bench_quick_writes_the_json_keys(tmp_path):
    out = tmp_path / "bench.json"
    res = CliRunner().invoke(app, ["bench", "--quick", "--json", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert list(data) == list(BENCH_KEYS)
    assert data["n_train"] == 1000 and data["d"] == 384
    assert data["speedup"] == pytest.approx(data["sklearn_s"] / data["ours_s"])
    # ours is the exact minimiser: never worse than scikit-learn's beyond rounding
    assert data["rel_objective_gap"] <= 1e-9
    assert "ours_s" in res.output
    # the floor: steps x one step's matmuls, measured in the same run; a real pipeline
    # cannot beat it, and the breakdown adds up to the pipeline time
    assert data["steps"] == sum(data["steps_by_model"].values()) > 0
    assert data["nfev"] >= data["steps"]
    assert data["floor_s"] == pytest.approx(data["steps"] * data["matmul_step_s"])
    assert data["pipeline_over_floor"] == pytest.approx(data["pipeline_s"] / data["floor_s"])
    assert data["pipeline_over_floor"] > 1
    assert sum(data["breakdown_s"].values()) == pytest.approx(data["pipeline_s"], rel=0.05)


def test_bench_bad_backend_exits_2(tmp_path):
    out = tmp_path / "bench.json"
    res = CliRunner().invoke(app, ["bench", "--quick", "--backend", "jax", "--json", str(out)])
    assert res.exit_code == 2
    assert not out.exists()
