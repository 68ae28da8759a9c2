"""``selfdistill fit``: teacher, SD rounds and PLL on one feature file."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from .._validation import CLASS_PRIORS, INTERCEPT_SCALING, PLL_LOSSES, Q, check_in, check_option
from ..intercept import INTERCEPT_SCALING_DEFAULT
from ._app import app, console
from ._common import (
    check_distinct_paths,
    fit_summary,
    fmt_pct,
    guard,
    note,
    parse_lam,
    parse_lam_grid,
    progress_bar,
    write_json,
)


def models_table(record: dict, title: str = "") -> Table:
    """Rich table of a spec.md result record (one row per model, selected marked)."""
    table = Table(title=title or None, title_justify="left")
    for col in ("model", "test %", "train (true) %", "noisy subset %", "cv score %",
                "iters", "s"):
        table.add_column(col, justify="left" if col == "model" else "right",
                         no_wrap=col == "model")
    for m in record["models"]:
        mark = " *" if m["name"] == record.get("selected") else ""
        cv = m.get("cv_acc_given", m.get("cv_score"))
        table.add_row(m["name"] + mark, fmt_pct(m["test_acc"]), fmt_pct(m["train_acc_true"]),
                      fmt_pct(m["noisy_subset_acc"]), fmt_pct(cv),
                      str(m["iterations"]), f"{m['seconds']:.2f}")
    return table


def write_issues_csv(path: Path, result, classes) -> None:
    """``index,given_label,suggested_label,score,given_name,suggested_name``, best first."""
    from .._io import write_text_atomic

    lines = ["index,given_label,suggested_label,score,given_name,suggested_name"]
    for i, g, s, sc in result.issues.to_records():
        lines.append(f"{i},{g},{s},{sc:.6f},{_csv(classes[g])},{_csv(classes[s])}")
    write_text_atomic(path, "\n".join(lines) + "\n")


def noise_table(result, classes, top: int = 5) -> Table:
    """Rich table of the estimated noise: overall rate and the most confused pairs."""
    est = result.noise_estimate
    title = (f"estimated noise (from the given labels, out-of-fold): rate {est.rate:.3f}, "
             f"{est.n_issues} wrong labels")
    if result.noise_kind != "none":
        title += f"; realised {result.realized_rate:.3f}"
    if result.noise_estimate_caveat:
        title += f"; {result.noise_estimate_caveat}"
    table = Table(title=title, title_justify="left")
    for col in ("true class (estimated)", "given as", "share of rows %"):
        table.add_column(col, justify="right" if col.startswith("share") else "left")
    for j, g, share in est.top_confusions(top):
        table.add_row(str(classes[j]), str(classes[g]), f"{100 * share:.2f}")
    return table


def _csv(text: str) -> str:
    text = str(text)
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n') else text


#: progress stages of run_pipeline -> the phase shown on the bar
def _phase(stage: str) -> str:
    if stage == "cv":
        return "cross-validation"
    return "" if stage == "done" else f"final fits ({stage})"


@app.command()
def fit(
    features: Path = typer.Argument(
        ..., metavar="INPUT",
        help="Training rows: .npz feature file (docs/spec.md), .csv/.jsonl of texts "
        "(embedded with the bundled model, cached), or .parquet with an embedding column."),
    test: Path = typer.Option(None, "--test", help="Test rows, any input format; replaces "
                              "an .npz's own test set."),
    text_col: str = typer.Option("text", help="Text column of .csv/.jsonl (.parquet: kept "
                                 "for --relabel and --report)."),
    label_col: str = typer.Option("category", help="Label column of .csv/.jsonl/.parquet."),
    embedding_col: str = typer.Option("embedding", help="Embedding column of .parquet."),
    noise: str = typer.Option(
        "none", help="none, KIND:RATE (KIND: sym, asym, cc, idn, paper-asym, paper-cc) or "
        "matrix:PATH.npy"),
    noise_seed: int = typer.Option(0, help="Seed of the noise draw."),
    lam: str = typer.Option("1e-5", help="L2 strength, or 'auto' (CV on the given labels)."),
    rounds: int = typer.Option(4, min=0, help="Self-distillation rounds."),
    pll: bool = typer.Option(True, "--pll/--no-pll", help="Also fit the top-2 PLL student."),
    q: float = typer.Option(0.7, min=Q.lo, max=Q.hi, help=f"GCE exponent of the PLL loss, in {Q}."),
    pll_loss: str = typer.Option("gce", help=f"PLL loss: {' or '.join(PLL_LOSSES)}."),
    intercept: bool = typer.Option(True, "--intercept/--no-intercept",
                                   help="Fit a bias per class (a constant feature column, "
                                   "penalised with the weights); --no-intercept is the "
                                   "model of docs/theory-derivation.md and can suit PLL "
                                   "(docs/pipeline.md)."),
    intercept_scaling: float = typer.Option(
        INTERCEPT_SCALING_DEFAULT, "--intercept-scaling",
        help=f"Value s of the bias column, in {INTERCEPT_SCALING}: the bias is penalised by "
        "(lam/2) |b|^2 / s^2; larger s, less penalty and more solver steps."),
    class_prior: str = typer.Option(
        "uniform", "--class-prior",
        help="uniform: the models predict as if the classes were balanced (label noise "
        "skews the given class counts; docs/selection.md); given: as the given labels' "
        "class counts say (long-tailed data with right counts). A shift of the "
        "intercept: --no-intercept keeps none."),
    select: bool = typer.Option(True, "--select/--no-select",
                                help="Recommend a model by CV on the given labels."),
    lam_grid: str | None = typer.Option(None, "--lam-grid",
                                        help="Candidates of --lam auto, comma-separated "
                                        "(the walk widens past an edge that wins). Default "
                                        "1e-6,1e-5,1e-4 for rows of norm about 1, times the "
                                        "features' mean squared row norm (two significant "
                                        "digits), which also moves the flagging lam."),
    cv: int = typer.Option(None, "--cv", min=2, help="Folds of the cross-validation "
                           "(default 3 for a fixed lam, 4 for --lam auto)."),
    max_iter: int = typer.Option(2000, "--max-iter", min=1,
                                 help="Iteration cap of each final fit."),
    json_out: Path = typer.Option(None, "--json", help="Write the result record here."),
    issues: Path = typer.Option(None, "--issues", help="Write likely label errors (CSV)."),
    model_out: Path = typer.Option(None, "--model", help="Save the selected model (.npz "
                                   "model file; use it with selfdistill predict)."),
    model_name: str = typer.Option(None, "--model-name", help="Save this model instead of "
                                   "the selected one (teacher, sd-T, pll)."),
    relabel: Path = typer.Option(None, "--relabel", help="Write every training row with its "
                                 "given and suggested label, flag and score (.csv or .npz)."),
    report: Path = typer.Option(None, "--report", help="Write an HTML report into this "
                                "folder (report.html)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Fit teacher -> SD rounds -> PLL on INPUT and report accuracies."""
    from .._errors import SelfDistillError
    from .._validation import warn_feature_scale, warn_single_example_classes
    from ..distill import model_names, pll_applies
    from ..experiments.runner import run_pipeline
    from ..inputs import load_training
    from ..model_selection import LAM_UNIT_RANGE, default_lam_grid
    from ..noise import NoiseSpec

    report_html = None if report is None else report / "report.html"
    with guard():
        spec = NoiseSpec.parse(noise)
        check_distinct_paths({"FEATURES": features, "--test": test,
                              "--noise matrix": Path(spec.source) if spec.source else None},
                             {"--issues": issues, "--json": json_out, "--model": model_out,
                              "--relabel": relabel, "--report": report_html})
        lam_v = parse_lam(lam)
        grid = None if lam_grid is None else parse_lam_grid(lam_grid)
        check_option(pll_loss, PLL_LOSSES, name="--pll-loss")
        check_option(class_prior, CLASS_PRIORS, name="--class-prior")
        check_in(intercept_scaling, INTERCEPT_SCALING, name="--intercept-scaling")
        for out in (json_out, issues, model_out, relabel):
            if out is not None and out.is_dir():
                raise SelfDistillError(f"cannot write {out}: it is a directory")
        if report is not None and report.exists() and not report.is_dir():
            raise SelfDistillError(f"--report must name a folder, {report} is a file")
        if relabel is not None and relabel.suffix.lower() not in (".csv", ".npz"):
            raise SelfDistillError(f"--relabel must name a .csv or .npz file, got {relabel}")
        if model_name is not None:
            if model_out is None:
                raise SelfDistillError("--model-name needs --model OUT.npz")
            names = model_names(rounds, pll)
            if model_name.removeprefix("pruned-") not in names:
                raise SelfDistillError(f"--model-name {model_name!r} is not a fitted model; "
                                       f"choose one of {', '.join(names)}")
        with progress_bar("fit", quiet=quiet, phases=True) as update:
            training = load_training(
                features, test=test, text_col=text_col, label_col=label_col,
                embedding_col=embedding_col,
                progress=lambda d, t: update(d, t, "embedding texts"))
            ds = training.dataset
            warn_single_example_classes(ds.y_train, ds.classes)
            warn_feature_scale(ds.X_train)
            if pll and not pll_applies(ds.n_classes):
                pll = False
                note("2 classes: the top-2 partial label is every class, so the PLL "
                     "student is not fitted (it needs 3 or more)")
            if ds.y_train_clean is not None and not spec.is_none:
                note("--noise draws new given labels from the file's y_train_clean; its "
                     "y_train is not used")
            if spec.kind == "custom":
                from .._validation import check_transition_matrix
                check_transition_matrix(spec.T, n_classes=ds.n_classes, where=spec.source)
            want_issues = (issues is not None or relabel is not None or report is not None
                           or select or lam_v == "auto")
            result = run_pipeline(
                ds, noise=spec, noise_seed=noise_seed, lam=lam_v, rounds=rounds, pll=pll,
                pll_loss=pll_loss, q=q, select=select, issues=want_issues, lam_grid=grid,
                n_splits=cv, max_iter=max_iter, fit_intercept=intercept,
                intercept_scaling=intercept_scaling,
                class_prior=class_prior,
                progress=lambda name, d, t: update(d, t, _phase(name)),
            )
            unit = (result.lam_selection or {}).get("lam_unit", 1.0)
            if grid is None and unit != 1.0:
                bound = " at its bound" if unit in LAM_UNIT_RANGE else ""
                note(f"--lam auto counted its default grid in units of {unit:g} (the "
                     f"features' mean squared row norm{bound}; lam is meant for rows of "
                     f"norm about 1): "
                     f"{', '.join(f'{v:g}' for v in default_lam_grid(unit))}")
            widened = (result.lam_selection or {}).get("widened") or []
            if widened:
                note(f"--lam auto tried {', '.join(f'{v:g}' for v in widened)} beyond "
                     f"{'its default grid' if grid is None else '--lam-grid'} (its best "
                     f"was at an edge); chose lam {result.lam:g}")
            if issues is not None:
                if result.issues is None:
                    raise SelfDistillError("--issues needs out-of-fold probabilities")
                write_issues_csv(issues, result, ds.classes)
            if json_out is not None:
                write_json(json_out, result.to_record())
            saved_name = None
            if model_out is not None:
                from ..experiments.outputs import pick_model, save_run_model

                saved_name = pick_model(result, model_name)
                save_run_model(model_out, result, ds, name=saved_name,
                               features_sha256=training.features_sha256,
                               embedding_model=training.embedding_model)
            if relabel is not None:
                from ..experiments.outputs import relabel_rows, write_relabel

                write_relabel(relabel, relabel_rows(result, ds, training.texts))
            if report is not None:
                from .._io import ensure_dir
                from ..experiments.fit_report import write_fit_report

                update(0, 1, "report")
                write_fit_report(ensure_dir(report), result, training,
                                 source=str(features), test=None if test is None else str(test))
                update(1, 1, "report")
    record = result.to_record()
    title = (f"{record['dataset']}: N={record['n_train']}, K={record['n_classes']}, "
             f"noise {record['noise']['kind']} {record['noise']['realized_rate']:.3f} "
             f"(seed {noise_seed}), lam={record['lam']:g}"
             f"{'' if record['fit_intercept'] else ', no intercept'}"
             f"{', given class prior' if record['class_prior'] == 'given' else ''}"
             "; * = selected")
    console.print(models_table(record, title))
    if result.noise_estimate is not None:
        console.print(noise_table(result, ds.classes))
    if result.issues is None:
        console.print("label errors not searched: they need out-of-fold probabilities "
                      "(drop --no-select or add --issues FILE.csv)")
    if training.embedding_model:
        from ..inputs import CACHE_DIR

        console.print(f"{training.embedded} texts embedded with {training.embedding_model} "
                      f"(cached in {CACHE_DIR}/ beside the input)" if training.embedded else
                      f"embeddings ({training.embedding_model}) read from {CACHE_DIR}/ "
                      "beside the input", markup=False, highlight=False, soft_wrap=True)
    console.print(fit_summary(None if result.issues is None else len(result.issues),
                              {"likely label errors": issues, "result record": json_out,
                               f"model ({saved_name})": model_out,
                               "relabelled rows": relabel, "report": report_html},
                              (result.lam_selection or {}).get("lam_flag")),
                  markup=False, highlight=False, soft_wrap=True)
