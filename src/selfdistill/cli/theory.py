"""``selfdistill theory``: theory-derivation.md's block-model claims, checked in one command."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from .._validation import PLL_LOSSES
from ._app import app, console
from ._common import check_distinct_paths, fmt_pct, guard, progress_bar, write_json

VIEWS = ("rounds", "population", "lams")
DEFAULT_ROUNDS = {"rounds": 10, "population": 10, "lams": 30}
DEFAULT_SOLVER = {"rounds": "exact", "population": "linear", "lams": "exact"}


def _floats(text: str, name: str) -> list[float]:
    from .._errors import SelfDistillError

    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SelfDistillError(f"{name} must be a comma-separated list of numbers, got "
                               f"{text!r}") from None
    if not vals:
        raise SelfDistillError(f"{name} must list at least one number")
    return vals


def _check_out(path: Path | None, suffix: str, option: str) -> None:
    from .._errors import SelfDistillError

    if path is None:
        return
    if path.is_dir():
        raise SelfDistillError(f"cannot write {path}: it is a directory")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise SelfDistillError(f"cannot write {path}: folder {parent} does not exist")
    if suffix and path.suffix.lower() != suffix:
        raise SelfDistillError(f"{option} must name a {suffix} file, got {path}")


def _rounds_table(res: dict) -> Table:
    p = res["params"]
    solver = "exact fixed points" if p["solver"] == "exact" else "linearised (thin SVD)"
    table = Table(title=f"train accuracy (%) vs true labels; measured = {solver}, "
                        "predicted = closed form", title_justify="left")
    for col in ("round t", "model", "measured %", "predicted %"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in res["rounds"]:
        mark = " <- min_rounds" if r["round"] == res["min_rounds"] else ""
        table.add_row(str(r["round"]), r["model"] + mark, fmt_pct(r["train_acc"]),
                      fmt_pct(r["predicted_train_acc"]))
    pll = res["pll"]
    table.add_row("2", f"pll ({pll['loss']})", fmt_pct(pll["train_acc"]),
                  fmt_pct(pll["predicted_train_acc"]))
    return table


def _summary(res: dict) -> str:
    e, a = res["eigenvalues"], res["a"]
    t_star = "-" if res["t_star"] is None else f"{res['t_star']:.3f}"
    fp = res["first_perfect_round"]
    return (f"mu0={e['mu0']:.6g} mu1={e['mu1']:.6g} mu2={e['mu2']:.6g}; "
            f"a0={a['a0']:.4f} a1={a['a1']:.4f} a2={a['a2']:.4f}\n"
            f"gap={res['gap']:.4f} condition_holds={res['condition_holds']} t*={t_star} "
            f"min_rounds={res['min_rounds']}; first 100% round: measured "
            f"{fp['measured']}, predicted {fp['predicted']}; PLL (round 2) "
            f"{fmt_pct(res['pll']['train_acc'])}%")


def _population_table(res: dict) -> Table:
    table = Table(title=f"population view: mean over {res['params']['seeds']} draws, "
                        f"edge eta=(K-1)/K={res['edge']:.3g}", title_justify="left")
    for col in ("eta", "condition %", "mean min round", "teacher %", "final SD %",
                "best SD %", "PLL %", "pop. final SD %", "pop. PLL %"):
        table.add_column(col, justify="right")
    for q in res["points"]:
        mr = "-" if q["mean_min_rounds"] is None else f"{q['mean_min_rounds']:.1f}"
        table.add_row(f"{q['eta']:g}", fmt_pct(q["condition_rate"]), mr,
                      fmt_pct(q["teacher_acc"]), fmt_pct(q["final_acc"]),
                      fmt_pct(q["best_acc"]), fmt_pct(q["pll_acc"]),
                      fmt_pct(q["predicted_final_acc"]), fmt_pct(q["predicted_pll_acc"]))
    return table


def _lams_table(res: dict) -> Table:
    table = Table(title="diminishing returns: accuracy vs round per lam", title_justify="left")
    for col in ("lam", "t*", "min round", "first 100% round", "collapse round",
                "final acc %"):
        table.add_column(col, justify="right")
    for c in res["curves"]:
        table.add_row(f"{c['lam']:g}", "-" if c["t_star"] is None else f"{c['t_star']:.2f}",
                      str(c["min_rounds"] or "-"), str(c["first_perfect_round"] or "-"),
                      str(c["collapse_round"] or "-"), fmt_pct(c["train_acc"][-1]))
    return table


@app.command()
def theory(
    K: int = typer.Option(4, "--K", help="Classes of the block model (>= 2)."),
    n: int = typer.Option(200, "--n", help="Instances per class (N = K n)."),
    c: float = typer.Option(0.4, "--c", help="Within-class feature correlation, 1 > c > d."),
    d: float = typer.Option(0.1, "--d", help="Across-class feature correlation, d >= 0."),
    eta: float = typer.Option(0.6, "--eta", help="Noise rate in [0, 1)."),
    noise: str = typer.Option("sym", "--noise",
                              help="Noise kind (sym, asym or none), or KIND:RATE as in `fit` "
                                   "(sets --eta)."),
    lam: float = typer.Option(1e-4, "--lam", help="L2 strength (> 0)."),
    rounds: int = typer.Option(None, "--rounds",
                               help="SD rounds after the teacher; rounds 1..R+1 are reported "
                                    "(round 1 = teacher = P_1 of "
                                    "docs/theory-derivation.md, round t = sd-(t-1)). "
                                    "Default 10 (30 for --view lams)."),
    solver: str = typer.Option(None, "--solver",
                               help="How 'measured' is computed: exact (softmax fixed points "
                                    "with the product's solver) or linear (thin-SVD "
                                    "linearisation, docs/theory-derivation.md §2; closed form "
                                    "for --view population). Default exact (linear for --view "
                                    "population: 20 draws x 13 rates)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the noise draw."),
    view: str = typer.Option("rounds", "--view",
                             help="rounds: one draw, accuracy per round (JSON of docs/spec.md); "
                                  "population: mean over --seeds draws vs noise rate (--etas); "
                                  "lams: accuracy vs round for several --lams (diminishing "
                                  "returns)."),
    etas: str = typer.Option("0,0.1,0.2,0.3,0.4,0.5,0.6,0.65,0.7,0.75,0.8,0.85,0.9",
                             "--etas", help="--view population: noise rates, comma-separated."),
    seeds: int = typer.Option(20, "--seeds", help="--view population: draws per noise rate."),
    lams: str = typer.Option("1e-4,1e-3,1e-2,3e-2", "--lams",
                             help="--view lams: L2 strengths, comma-separated."),
    pll_loss: str = typer.Option("two-hot", "--pll-loss",
                                 help="Loss of the exact PLL student: "
                                      f"{' or '.join(sorted(PLL_LOSSES, reverse=True))}."),
    tol: float = typer.Option(1e-6, "--tol", help="Relative gradient tolerance of exact fits."),
    json_out: Path = typer.Option(None, "--json", help="Write the result as JSON here."),
    plot: Path = typer.Option(None, "--plot", help="Write the figure (PNG) here."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Block model (docs/theory-derivation.md §3): measured vs predicted accuracy per round, PLL.

    Default view: one noisy draw; per round t (1 = teacher) the train accuracy of the
    chosen solver and of the closed form, the plurality gap, t* and the predicted minimum
    round, and one PLL student on the teacher's top-2 classes.
    """
    from .._errors import SelfDistillError
    from .._validation import TOL, check_in, check_lam, check_option
    from ..noise import NoiseSpec
    from ..theory import lam_sweep, population_view, run_block_experiment
    from ..theory.plots import plot_block_experiment, plot_lam_sweep, plot_population

    with guard():
        if view not in VIEWS:
            raise SelfDistillError(f"--view must be one of {', '.join(VIEWS)}, got {view!r}")
        check_option(pll_loss, PLL_LOSSES, name="--pll-loss")
        check_in(tol, TOL, name="--tol")
        check_lam(lam, name="--lam")
        if ":" in noise:  # the fit spelling, KIND:RATE: one parser for both commands
            spec = NoiseSpec.parse(noise)
            noise, eta = spec.kind, spec.rate
        _check_out(json_out, ".json", "--json")
        _check_out(plot, ".png", "--plot")
        check_distinct_paths({}, {"--json": json_out, "--plot": plot})
        R = DEFAULT_ROUNDS[view] if rounds is None else rounds
        solver = DEFAULT_SOLVER[view] if solver is None else solver
        with progress_bar(f"theory ({view})", quiet=quiet) as update:
            block = dict(K=K, n=n, c=c, d=d, noise=noise, rounds=R, solver=solver, tol=tol,
                         progress=update)
            if view == "rounds":
                res = run_block_experiment(**block, eta=eta, lam=lam, seed=seed,
                                           pll_loss=pll_loss)
            elif view == "population":
                res = population_view(**block, etas=_floats(etas, "--etas"), lam=lam,
                                      seeds=seeds)
            else:
                res = lam_sweep(**block, eta=eta, lams=_floats(lams, "--lams"), seed=seed)
        if json_out is not None:
            write_json(json_out, res)
        if plot is not None:
            {"rounds": plot_block_experiment, "population": plot_population,
             "lams": plot_lam_sweep}[view](res, plot)
    if view == "rounds":
        console.print(_rounds_table(res))
        console.print(_summary(res), markup=False)
    elif view == "population":
        console.print(_population_table(res))
    else:
        console.print(_lams_table(res))
