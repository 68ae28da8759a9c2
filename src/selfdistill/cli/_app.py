"""The typer app, the two consoles and the one exit path for user errors."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer
from rich.console import Console

from .._errors import SelfDistillError

app = typer.Typer(
    name="selfdistill",
    help="Self-distillation and partial-label refinement for learning from noisy labels.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,
)

#: results go to stdout; diagnostics and progress to stderr
console = Console(highlight=False)
error_console = Console(stderr=True, highlight=False)


def _print_version(value: bool) -> None:
    if value:
        from .. import __version__

        console.print(f"selfdistill {__version__}", markup=False, highlight=False)
        raise typer.Exit(0)


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                 help="Print the version and exit."),
) -> None:
    """Self-distillation and partial-label refinement for learning from noisy labels."""


def fail(message: str) -> NoReturn:
    """Print ``error: <message>`` as one line on stderr and exit with code 2."""
    line = " ".join(str(message).split())
    error_console.print(f"error: {line}", markup=False, highlight=False, soft_wrap=True)
    raise SystemExit(2)


def run(argv: list[str] | None = None) -> None:
    """Console-script entry point: one ``error:`` line and exit 2 for any usage error.

    Usage errors (unknown option, bad value) come from typer/click as exceptions with
    ``format_message`` and ``exit_code``; they are printed through :func:`fail`.
    """
    args = sys.argv[1:] if argv is None else argv
    try:
        rv = typer.main.get_command(app).main(
            args=args, prog_name="selfdistill", standalone_mode=False
        )
    except SelfDistillError as exc:
        fail(str(exc))
    except Exception as exc:
        name = type(exc).__name__
        if name == "NoArgsIsHelpError":
            ctx = getattr(exc, "ctx", None)
            console.print(ctx.get_help() if ctx else "selfdistill --help", markup=False)
            raise SystemExit(0) from None
        if name == "Abort":  # Ctrl-C outside a command's guard (click turns it into Abort)
            error_console.print("interrupted", markup=False)
            raise SystemExit(130) from None
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            if exc.exit_code == 2:
                fail(exc.format_message())
            error_console.print(f"error: {exc.format_message()}", markup=False)
            raise SystemExit(exc.exit_code) from None
        raise
    raise SystemExit(rv if isinstance(rv, int) else 0)
