"""Helpers shared by commands: parsing option strings, progress, atomic outputs."""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

from .._errors import SelfDistillError
from .._io import _jsonable, output_batch, write_json, write_text_atomic  # noqa: F401
from .._validation import LAM_RANGE, check_lam
from ._app import error_console, fail

__all__ = ["parse_lam", "parse_lam_grid", "write_json", "progress_bar", "guard", "fmt_pct",
           "check_distinct_paths", "fit_summary", "note", "INTERRUPTED"]


def parse_lam(value: str) -> float | str:
    """``auto`` or a number in :data:`~selfdistill._validation.LAM_RANGE`."""
    if value == "auto":
        return "auto"
    lo, hi = LAM_RANGE
    try:
        lam = float(value)
    except ValueError:
        raise SelfDistillError(f"--lam must be a number in [{lo:g}, {hi:g}] or 'auto', "
                               f"got {value!r}") from None
    return check_lam(lam, name="--lam")


def parse_lam_grid(value: str) -> tuple[float, ...]:
    """``"1e-6,1e-5,1e-4"`` -> the candidates of ``--lam auto``, each in the lam range."""
    out = []
    for part in str(value).split(","):
        try:
            v = float(part)
        except ValueError:
            raise SelfDistillError(f"--lam-grid must be comma-separated numbers, got "
                                   f"{value!r}") from None
        out.append(check_lam(v, name="--lam-grid entry"))
    return tuple(out)


def fmt_pct(x: float | None) -> str:
    """``0.8123 -> '81.23'``; ``None -> '-'``."""
    return "-" if x is None else f"{100 * x:.2f}"


#: Exit code after Ctrl-C: 128 + SIGINT, as a shell reports a command it interrupted.
INTERRUPTED = 130


@contextlib.contextmanager
def progress_bar(description: str, *, quiet: bool = False, phases: bool = False,
                 counts: bool = False) -> Iterator[Callable[..., None]]:
    """Progress on stderr; yields ``update(done, total, label="")``.

    On a terminal, a rich progress bar; with ``phases`` the label names the current phase
    (the part before `` (``) and a new phase restarts the counts and the time-remaining
    estimate. Otherwise (a log file, a pipe, CI) one line per phase,
    ``<description>: <label>``, printed when the label changes (``counts``: with
    ``[done/total]``, for commands whose every step is a phase, such as the points of a
    sweep). Nothing with ``quiet``.
    """
    if quiet:
        yield lambda *a, **k: None
        return
    if not sys.stderr.isatty():
        last: list[str] = []

        def line(done: int, total: int, label: str = "") -> None:
            if not label or label == "done" or (last and last[0] == label):
                return
            last[:] = [label]
            where = f" [{done}/{total}]" if counts and total else ""
            error_console.print(f"{description}: {label}{where}", markup=False,
                                highlight=False, soft_wrap=True)

        yield line
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=error_console,
                  transient=True) as prog:
        task = prog.add_task(description, total=None)
        phase = [""]

        def update(done: int, total: int, label: str = "") -> None:
            desc = f"{description} {label}".strip()
            # a new phase ("embedding texts", "cross-validation", "final fits (sd-2)" ->
            # "final fits") restarts the bar, so its ETA is the phase's own
            name = label.split(" (")[0]
            if phases and name != phase[0]:
                phase[0] = name
                prog.reset(task, total=total, completed=done, description=desc)
            else:
                prog.update(task, completed=done, total=total, description=desc)

        yield update


def fit_summary(n_flagged: int | None, outputs: dict[str, Path | None],
                lam_flag: float | None = None) -> str:
    """The lines ``fit`` prints after its table: rows flagged, and where each file went.

    Parameters
    ----------
    n_flagged : int or None
        Training rows flagged as likely label errors (None: not searched).
    outputs : dict
        What each output holds (``"likely label errors"``) -> its path, or ``None`` when
        not asked for.
    lam_flag : float, optional
        lam of a stiffer teacher whose flags joined the selected model's
        (``lam_selection.lam_flag``).
    """
    rows = "row" if n_flagged == 1 else "rows"
    lines = [] if n_flagged is None else [
        f"{n_flagged} training {rows} flagged as likely label errors"
        + ("" if lam_flag is None else
           f" (out of fold, by the chosen candidate or a stiffer teacher, lam {lam_flag:g}: "
           "the noise looks learnable; docs/selection.md)")
        + ("" if outputs.get("likely label errors") or not n_flagged
           else " (list them with --issues FILE.csv)")]
    lines += [f"{what}: {path}" for what, path in outputs.items() if path is not None]
    return "\n".join(lines)


def note(text: str) -> None:
    """One ``note: <text>`` line on stderr: something the user should know, not a fault."""
    line = " ".join(str(text).split())
    error_console.print(f"note: {line}", markup=False, highlight=False, soft_wrap=True)


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` for the command line: one clean line on stderr."""
    text = " ".join(str(message).split())
    error_console.print(f"warning: {text}", markup=False, highlight=False, soft_wrap=True)


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:  # hard links and other spellings the resolver cannot see
        return a.exists() and b.exists() and a.samefile(b)
    except OSError:
        return False


def check_distinct_paths(inputs: dict[str, Path | None],
                         outputs: dict[str, Path | None]) -> None:
    """Refuse an output that is one of the inputs or another output.

    Parameters
    ----------
    inputs, outputs : dict
        Option or argument name (``"FEATURES"``, ``"--json"``) -> path, or ``None`` when
        not given. Paths are compared resolved (``./a/../x`` is ``x``, symlinks followed)
        and by inode (hard links).

    Raises
    ------
    SelfDistillError
        ``--json in.npz is the same file as FEATURES in.npz; choose another path``.
    """
    seen = [(name, Path(p)) for name, p in inputs.items() if p is not None]
    for name, path in ((n, Path(p)) for n, p in outputs.items() if p is not None):
        for other_name, other in seen:
            if _same_file(path, other):
                raise SelfDistillError(f"{name} {path} is the same file as {other_name} "
                                       f"{other}; choose another path")
        seen.append((name, path))


@contextlib.contextmanager
def guard(on_interrupt: Callable[[], str] | None = None) -> Iterator[None]:
    """Turn :class:`SelfDistillError` and file-opening ``OSError`` into ``fail``.

    The block's outputs are one :func:`~selfdistill._io.output_batch`: each file written
    through the atomic writers appears when the block succeeds, all together, or none
    does. Python warnings raised inside (a fit that hit its iteration cap) are shown as
    one ``warning: <message>`` line on stderr, without Python's source-line dump.

    Ctrl-C (``KeyboardInterrupt``) inside prints one line on stderr, ``on_interrupt()``
    (default ``interrupted; nothing written``), and exits with :data:`INTERRUPTED` (130),
    without a traceback.
    """
    try:
        with warnings.catch_warnings(), output_batch():
            warnings.showwarning = _warning_line
            yield
    except KeyboardInterrupt:
        text = on_interrupt() if on_interrupt is not None else "interrupted; nothing written"
        error_console.print(text, markup=False, highlight=False, soft_wrap=True)
        raise SystemExit(INTERRUPTED) from None
    except SelfDistillError as exc:
        fail(str(exc))
    except OSError as exc:
        where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        fail(f"cannot access{where}: {exc.strerror or exc}")
