"""Helpers shared by commands: parsing option strings, progress, atomic outputs."""

from __future__ import annotations

import contextlib
import json
import math
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import SelfDistillError
from .._io import write_text_atomic
from ._app import error_console, fail

__all__ = ["parse_lam", "write_json", "progress_bar", "guard", "fmt_pct"]


def parse_lam(value: str) -> float | str:
    """``auto`` or a positive float."""
    if value == "auto":
        return "auto"
    try:
        lam = float(value)
    except ValueError:
        raise SelfDistillError(f"--lam must be a number in (0, inf) or 'auto', got {value!r}") \
            from None
    if not (math.isfinite(lam) and lam > 0):
        raise SelfDistillError(f"--lam must be in (0, inf), got {value}")
    return lam


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically (NaN -> null, numpy -> lists)."""
    write_text_atomic(path, json.dumps(_jsonable(data), indent=2) + "\n")


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
