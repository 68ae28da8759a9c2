"""``selfdistill sweep``: a config's grid into DIR/results.sqlite and DIR/results.csv."""

from __future__ import annotations

from pathlib import Path

import typer

from ._app import app, console
from ._common import guard, progress_bar


@app.command()
def sweep(
    config: Path = typer.Argument(..., help="Sweep config (TOML): [grid] and [options]."),
    out: Path = typer.Option(..., "--out", help="Output folder (results.sqlite, results.csv)."),
    scheduler: str = typer.Option("local", help="local, processes, dask or dask:ADDRESS "
                                  "(an existing dask scheduler, e.g. tcp://host:8786)."),
    workers: int = typer.Option(None, min=1, help="Parallel workers for processes / a local "
                                "dask cluster (default: CPU count)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the sweep stored in --out; "
                                "finished points are skipped."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Run every grid point of CONFIG; crash-safe: re-run with --resume to finish."""
    from ..experiments.config import load_config
    from ..experiments.sweep import parse_scheduler, run_sweep

    state = {"done": 0, "total": 0}

    def interrupted() -> str:
        if not state["total"]:
            return "interrupted; nothing written"
        db = out / "results.sqlite"
        return (f"interrupted; {state['done']} of {state['total']} points stored in {db}; "
                "re-run with --resume to finish")

    with guard(on_interrupt=interrupted):
        cfg = load_config(config)
        parse_scheduler(scheduler)
        with progress_bar("sweep", quiet=quiet, counts=True) as update:
            stored: list[int] = []

            def step(done: int, total: int, label: str) -> None:
                # the bar counts this run's points only, so the ETA is not fooled by
                # points a killed run already stored
                state.update(done=done, total=total)
                if not stored:
                    stored.append(done)
                note = f"({stored[0]} of {total} already stored) " if stored[0] else ""
                update(done - stored[0], total - stored[0], f"{note}{label}")

            summary = run_sweep(cfg, out, scheduler=scheduler, workers=workers, resume=resume,
                                progress=step)
    console.print(
        f"{summary.total} grid points ({summary.computed} computed now, {summary.skipped} "
        f"already stored) in {summary.seconds:.1f} s\n"
        f"results: {summary.db} and {summary.csv}; report: selfdistill report {out}",
        markup=False, highlight=False, soft_wrap=True)
