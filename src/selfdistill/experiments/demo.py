"""The main job: BANKING77, sym noise at 0, 0.5, 0.8, teacher + SD 1..4 + PLL, report."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..datasets import Dataset
from ..solvers import SpectralBasis
from .plots import plot_accuracy_vs_rounds, plot_methods_vs_rate, plot_noisy_subset
from .report import write_report
from .runner import run_experiment
from .tables import flatten_record, write_csv

__all__ = ["DEMO_RATES", "subsample", "run_demo", "write_demo_outputs"]

DEMO_RATES = (0.0, 0.5, 0.8)


def subsample(ds: Dataset, n: int, seed: int = 0) -> Dataset:
    """A stratified subsample of ``n`` training rows (test set kept)."""
    from dataclasses import replace

    from sklearn.model_selection import train_test_split

    if n >= ds.n_train:
        return ds
    idx, _ = train_test_split(np.arange(ds.n_train), train_size=n, random_state=seed,
                              stratify=ds.y_train)
    idx = np.sort(idx)
    clean = None if ds.y_train_clean is None else ds.y_train_clean[idx]
    return replace(ds, X_train=ds.X_train[idx], y_train=ds.y_train[idx], y_train_clean=clean,
                   name=f"{ds.name}-{n}")


def run_demo(
    ds: Dataset,
    *,
    rates: tuple[float, ...] = DEMO_RATES,
    lam: float = 1e-5,
    rounds: int = 4,
    seed: int = 0,
    select: bool = True,
    progress: Callable[[int, int, str], None] | None = None,
) -> list[dict[str, Any]]:
    """One :func:`run_experiment` record per noise rate (sym noise, one seed)."""
    basis = SpectralBasis.from_features(ds.X_train)
    per = rounds + 2
    total = per * len(rates)
    records = []
    for j, rate in enumerate(rates):
        def step(name: str, done: int, tot: int, j: int = j, rate: float = rate) -> None:
            if progress is not None and name != "cv":
                progress(j * per + min(done, per), total, f"sym {rate:g}: {name}")
        records.append(run_experiment(
            ds, noise="sym" if rate > 0 else "none", rate=rate, noise_seed=seed, lam=lam,
            rounds=rounds, pll=True, select=select, basis=basis, progress=step,
        ))
    return records


def _pct(x: float | None) -> str | None:
    return None if x is None else f"{100 * x:.1f}"


def headline_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per noise rate: teacher, best SD round, PLL and the selected model's test accuracy."""
    rows = []
    for rec in records:
        by = {m["name"]: m for m in rec["models"]}
        sd = [m for m in rec["models"] if m["name"].startswith("sd-")]
        best = max(sd, key=lambda m: m["test_acc"]) if sd else None
        rows.append({
            "noise": f"sym {rec['noise']['rate']:g}",
            "teacher": _pct(by["teacher"]["test_acc"]),
            "best SD": None if best is None else f"{_pct(best['test_acc'])} ({best['name']})",
            "PLL": _pct(by["pll"]["test_acc"]) if "pll" in by else None,
            "selected": f"{rec['selected']} {_pct(by[rec['selected']]['test_acc'])}",
        })
    return rows


def _theory_section(ds: Dataset, records: list[dict[str, Any]], out: Path) -> dict[str, Any]:
    """Linearised prediction vs measured train accuracy per SD round, one curve per rate."""
    from ..theory.report import theory_section_runs
    from .runner import given_labels

    runs = []
    for rec in records:
        kind, rate, seed = rec["noise"]["kind"], rec["noise"]["rate"], rec["noise"]["seed"]
        y_given, _ = given_labels(ds, kind, rate, seed)
        by = {m["name"]: m["train_acc_true"] for m in rec["models"]}
        runs.append({"label": f"sym {rate:g}", "y_given": y_given, "measured": by,
                     "measured_pll": by.get("pll")})
    rounds = sum(m["name"].startswith("sd-") for m in records[0]["models"])
    return theory_section_runs(ds, runs, ds.y_train, float(records[0]["lam"]), rounds, out)


#: Accuracy columns of the "All models" table, shown in % like every other table.
PERCENT_COLUMNS = {"test_acc": "test acc %", "train_acc_true": "train acc (true) %",
                   "noisy_subset_acc": "wrong labels fixed %",
                   "cv_acc_given": "cv acc (given) %"}


def _percent_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with the accuracy fractions as percentages (2 decimals), under % names."""
    return [{**r, **{name: None if r.get(k) is None else round(100 * r[k], 2)
                     for k, name in PERCENT_COLUMNS.items()}} for r in rows]


def write_demo_outputs(records: list[dict[str, Any]], out: Path,
                       ds: Dataset | None = None) -> dict[str, Path]:
    """Write results.csv, results.json, PNG figures and report.html into ``out``.

    With the demo's ``ds``, the report also compares each SD round with theory-derivation.md's
    linearised prediction (``theory_vs_measurement.png``).
    """
    from .._io import write_json

    rows = [r for rec in records for r in flatten_record(rec)]
    paths = {
        "csv": out / "results.csv",
        "json": out / "results.json",
        "rounds": out / "accuracy_vs_rounds.png",
        "methods": out / "methods_vs_rate.png",
        "noisy": out / "noisy_subset.png",
        "html": out / "report.html",
    }
    write_csv(paths["csv"], rows)
    write_json(paths["json"], {"experiments": records})
    plot_accuracy_vs_rounds(rows, paths["rounds"])
    plot_methods_vs_rate(rows, paths["methods"])
    plot_noisy_subset(rows, paths["noisy"])
    head = headline_rows(records)
    rec0 = records[0]
    intro = (f"<p>Dataset <b>{rec0['dataset']}</b>: N={rec0['n_train']} training and "
             f"{rec0['n_test']} test rows, K={rec0['n_classes']} classes, lam={rec0['lam']:g}. "
             "Symmetric label noise was added to the training labels (seed "
             f"{rec0['noise']['seed']}); accuracies are on the clean test set. "
             "<i>selected</i> is the model the tool recommends by cross-validation on the "
             "given (noisy) labels, without looking at clean labels.</p>")
    sections: list[dict[str, Any]] = [
        {"heading": "Summary", "html": intro, "table": (head, None, None)},
        {"heading": "Accuracy vs self-distillation round",
         "figure": (paths["rounds"], "Test accuracy of the teacher (round 0) and SD rounds "
                    "1..R per noise rate; the dashed line is the one-round PLL student.")},
        {"heading": "Teacher vs best SD vs PLL",
         "figure": (paths["methods"], "Test accuracy against the noise rate.")},
        {"heading": "Wrong labels fixed",
         "figure": (paths["noisy"], "Accuracy against the clean labels on the training rows "
                    "whose given label is wrong.")},
        {"heading": "All models (accuracies in %)",
         "table": (_percent_rows(rows), ["noise_kind", "rate", "model", *PERCENT_COLUMNS.values(),
                                         "iterations", "fit_s"], None)},
    ]
    if ds is not None:
        sections.insert(4, _theory_section(ds, records, out))
        paths["theory"] = out / "theory_vs_measurement.png"
    write_report(paths["html"], "selfdistill demo: BANKING77 with symmetric label noise",
                 sections)
    return paths
