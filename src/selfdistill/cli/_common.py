"""Helpers shared by commands: parsing option strings, progress, atomic outputs."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from .._errors import SelfDistillError, one_line
from .._io import _jsonable, write_json  # noqa: F401 - re-exported for commands
from .._validation import check_lam, check_rate
from ._app import error_console, fail

__all__ = ["parse_noise", "parse_lam", "write_json", "progress_bar", "guard", "fmt_pct"]


def parse_noise(spec: str) -> tuple[str, float, np.ndarray | None]:
    """``none``, ``KIND:RATE`` (sym, asym, cc) or ``matrix:PATH.npy`` -> (kind, rate, T)."""
    spec = spec.strip()
    if spec in ("none", ""):
        return "none", 0.0, None
    kind, sep, value = spec.partition(":")
    if not sep:
        raise SelfDistillError(
            f"--noise must be none, KIND:RATE (KIND in sym, asym, cc) or matrix:PATH.npy, "
            f"got {spec!r}"
        )
    if kind == "matrix":
        path = Path(value)
        if not path.is_file():
            raise SelfDistillError(f"noise matrix file not found: {value}")
        try:
            T = np.load(path, allow_pickle=False)
        except Exception as exc:  # noqa: BLE001 - corrupt headers raise many kinds
            raise SelfDistillError(f"cannot read noise matrix {value}: {one_line(exc)}"
                                   ) from None
        if not isinstance(T, np.ndarray):
            raise SelfDistillError(f"noise matrix {value} must be a .npy array, not an archive")
        return "custom", float("nan"), T
    if kind not in ("sym", "asym", "cc", "none"):
        raise SelfDistillError(
            f"unknown noise kind {kind!r} in --noise {spec!r}; choose sym, asym, cc, none "
            "or matrix:PATH.npy"
        )
    try:
        rate = float(value)
    except ValueError:
        raise SelfDistillError(f"noise rate must be a number in [0, 1), got {value!r}") from None
    return kind, check_rate(rate, name="noise rate"), None


def parse_lam(value: str) -> float | str:
    """``auto`` or a float in :data:`~selfdistill._validation.LAM`."""
    if value == "auto":
        return "auto"
    try:
        lam = float(value)
    except ValueError:
        raise SelfDistillError(f"--lam must be a number in (0, inf) or 'auto', got {value!r}") \
            from None
    return check_lam(lam, name="--lam")


def fmt_pct(x: float | None) -> str:
    """``0.8123 -> '81.23'``; ``None -> '-'``."""
    return "-" if x is None else f"{100 * x:.2f}"


@contextlib.contextmanager
def progress_bar(description: str, *, quiet: bool = False) -> Iterator[Callable[..., None]]:
    """A rich progress bar on stderr; yields ``update(done, total, label="")``.

    Off when ``quiet`` or stderr is not a terminal.
    """
    if quiet or not sys.stderr.isatty():
        yield lambda *a, **k: None
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

        def update(done: int, total: int, label: str = "") -> None:
            desc = f"{description} {label}".strip()
            prog.update(task, completed=done, total=total, description=desc)

        yield update


@contextlib.contextmanager
def guard() -> Iterator[None]:
    """Turn :class:`SelfDistillError` and file-opening ``OSError`` into ``fail``."""
    try:
        yield
    except SelfDistillError as exc:
        fail(str(exc))
    except OSError as exc:
        where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        fail(f"cannot access{where}: {exc.strerror or exc}")
