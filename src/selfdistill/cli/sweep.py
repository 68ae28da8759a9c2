"""``selfdistill sweep``: a config's grid into DIR/results.sqlite and DIR/results.csv."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from ._app import app, console
from ._common import guard, note, progress_bar


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
    yes: bool = typer.Option(False, "--yes", help="Run a grid of 10,000 points or more."),
) -> None:
    """Run every grid point of CONFIG; crash-safe: re-run with --resume to finish."""
    from ..experiments.config import load_config
    from ..experiments.sweep import (
        CONFIRM_POINTS,
        estimate_seconds,
        format_duration,
        parse_scheduler,
        run_sweep,
    )

    state = {"done": 0, "total": 0}

    def interrupted() -> str:
        if not state["total"]:
            return "interrupted; nothing written"
        db = out / "results.sqlite"
        return (f"interrupted; {state['done']} of {state['total']} points stored in {db}; "
                "re-run with --resume to finish")

    with guard(on_interrupt=interrupted):
        cfg = load_config(config)
        name, address = parse_scheduler(scheduler)
        points = cfg.points()
        est = estimate_seconds(cfg, points)
        n_workers = 1 if name == "local" else int(workers or os.cpu_count() or 1)

        def plan(stored: int = 0) -> str:
            """Point count and estimated time of what is left to compute."""
            left = len(points) - stored
            secs = None if est is None else est * left / max(len(points), 1)
            when = ("time unknown" if secs is None else
                    f"about {format_duration(secs)} of computing" if address else
                    f"about {format_duration(secs / n_workers)} with {n_workers} "
                    f"worker{'s' if n_workers > 1 else ''}")
            done = f" ({stored:,} already stored)" if stored else ""
            return (f"{len(points):,} grid points{done}, {when} (a rough estimate from the "
                    "data sizes)")

        if len(points) >= CONFIRM_POINTS and not yes:
            from .._errors import SelfDistillError
            raise SelfDistillError(f"{config}: {plan()}; pass --yes to run a sweep of "
                                   f"{CONFIRM_POINTS:,} points or more")
        with progress_bar("sweep", quiet=quiet, counts=True) as update:
            stored: list[int] = []

            def step(done: int, total: int, label: str) -> None:
                # the bar counts this run's points only, so the ETA is not fooled by
                # points a killed run already stored
                state.update(done=done, total=total)
                if not stored:  # the first call: the folder is ours, nothing computed yet
                    stored.append(done)
                    note(plan(done))
                kept = f"({stored[0]} of {total} already stored) " if stored[0] else ""
                update(done - stored[0], total - stored[0], f"{kept}{label}")

            summary = run_sweep(cfg, out, scheduler=scheduler, workers=workers, resume=resume,
                                progress=step)
    console.print(
        f"{summary.total} grid points ({summary.computed} computed now, {summary.skipped} "
        f"already stored) in {summary.seconds:.1f} s\n"
        f"results: {summary.db} and {summary.csv}; report: selfdistill report {out}",
        markup=False, highlight=False, soft_wrap=True)
