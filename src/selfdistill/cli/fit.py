"""``selfdistill fit``: teacher, SD rounds and PLL on one feature file."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from .._validation import PLL_LOSSES, Q, check_option
from ._app import app, console
from ._common import fmt_pct, guard, parse_lam, parse_noise, progress_bar, write_json


def models_table(record: dict, title: str = "") -> Table:
    """Rich table of a SPEC result record (one row per model, selected marked)."""
    table = Table(title=title or None, title_justify="left")
    for col in ("model", "test acc %", "train acc (true) %", "noisy-subset acc %",
                "cv acc (given) %", "iters", "seconds"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for m in record["models"]:
        mark = " *" if m["name"] == record.get("selected") else ""
        table.add_row(m["name"] + mark, fmt_pct(m["test_acc"]), fmt_pct(m["train_acc_true"]),
                      fmt_pct(m["noisy_subset_acc"]), fmt_pct(m.get("cv_acc_given")),
                      str(m["iterations"]), f"{m['seconds']:.2f}")
    return table


def write_issues_csv(path: Path, record: dict, classes) -> None:
    """``index,given_label,suggested_label,score,given_name,suggested_name``, best first."""
    from .._io import write_text_atomic

    lines = ["index,given_label,suggested_label,score,given_name,suggested_name"]
    for i, g, s, sc in record["label_issues"]:
        lines.append(f"{i},{g},{s},{sc:.6f},{_csv(classes[g])},{_csv(classes[s])}")
    write_text_atomic(path, "\n".join(lines) + "\n")


def _csv(text: str) -> str:
    text = str(text)
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n') else text


@app.command()
def fit(
    features: Path = typer.Argument(..., help="Feature file (.npz, SPEC format)."),
    noise: str = typer.Option("none", help="none, KIND:RATE (sym, asym, cc) or matrix:PATH.npy"),
    noise_seed: int = typer.Option(0, help="Seed of the noise draw."),
    lam: str = typer.Option("1e-5", help="L2 strength, or 'auto' (CV on the given labels)."),
    rounds: int = typer.Option(4, min=0, help="Self-distillation rounds."),
    pll: bool = typer.Option(True, "--pll/--no-pll", help="Also fit the top-2 PLL student."),
    q: float = typer.Option(0.7, min=Q.lo, max=Q.hi, help=f"GCE exponent of the PLL loss, in {Q}."),
    pll_loss: str = typer.Option("gce", help=f"PLL loss: {' or '.join(PLL_LOSSES)}."),
    select: bool = typer.Option(True, "--select/--no-select",
                                help="Recommend a model by CV on the given labels."),
    json_out: Path = typer.Option(None, "--json", help="Write the result record here."),
    issues: Path = typer.Option(None, "--issues", help="Write likely label errors (CSV)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Fit teacher -> SD rounds -> PLL on FEATURES and report accuracies."""
    from ..datasets import load_features
    from ..experiments.runner import run_experiment
    from ..issues import rank_label_issues

    with guard():
        kind, rate, T = parse_noise(noise)
        lam_v = parse_lam(lam)
        check_option(pll_loss, PLL_LOSSES, name="--pll-loss")
        for out in (json_out, issues):
            if out is not None and out.is_dir():
                from .._errors import SelfDistillError
                raise SelfDistillError(f"cannot write {out}: it is a directory")
        ds = load_features(features)
        if T is not None:
            from .._validation import check_transition_matrix
            T = check_transition_matrix(T, n_classes=ds.n_classes, where=noise.partition(":")[2])
        with progress_bar("fitting", quiet=quiet) as update:
            record = run_experiment(
                ds, noise=kind, rate=rate, noise_seed=noise_seed, T=T, lam=lam_v,
                rounds=rounds, pll=pll, pll_loss=pll_loss, q=q, select=select,
                progress=lambda name, d, t: update(d, t, name), return_fits=True,
            )
        fits = {f.name: f for f in record.pop("_fits")}
        y_given = record.pop("_y_given")
        chosen = fits[record["selected"]]
        P = chosen.predict_proba(ds.X_train)
        idx, scores = rank_label_issues(P, y_given)
        sugg = P.argmax(axis=1)
        record["n_label_issues"] = int(len(idx))
        record["label_issues"] = [(int(i), int(y_given[i]), int(sugg[i]), float(s))
                                  for i, s in zip(idx, scores)]
        if issues is not None:
            write_issues_csv(issues, record, ds.classes)
        issues_list = record.pop("label_issues")
        if json_out is not None:
            write_json(json_out, record)
        record["label_issues"] = issues_list
    n = record["noise"]
    title = (f"{record['dataset']}: N={record['n_train']}, K={record['n_classes']}, "
             f"noise {n['kind']} {n['realized_rate']:.3f} (seed {n['seed']}), "
             f"lam={record['lam']:g}; * = selected")
    console.print(models_table(record, title))
