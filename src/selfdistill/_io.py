"""Atomic file writes: a temp file beside the target, renamed into place on success."""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ._errors import SelfDistillError

__all__ = ["atomic_path", "write_text_atomic", "write_json", "ensure_dir"]


@contextlib.contextmanager
def atomic_path(path: str | Path, *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path; rename it to ``path`` if the block succeeds, else delete it.

    Raises
    ------
    SelfDistillError
        When the target's folder does not exist or is not writable, or the target is
        a directory.
    """
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise SelfDistillError(f"cannot write {target}: it is a directory")
    if parent.exists() and not parent.is_dir():
        raise SelfDistillError(f"cannot write {target}: {parent} is a file, not a folder")
    if not parent.is_dir():
        raise SelfDistillError(f"cannot write {target}: folder {parent} does not exist")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix + ".tmp",
                                        dir=parent)
    except OSError as exc:
        raise SelfDistillError(f"cannot write {target}: {exc.strerror or exc}") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _jsonable(obj: Any) -> Any:
    """``obj`` with numpy values as Python ones, NaN/inf as None, ``_private`` keys dropped."""
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


def ensure_dir(path: str | Path) -> Path:
    """Create folder ``path`` (and parents) or raise :class:`SelfDistillError`."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise SelfDistillError(f"output folder {out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SelfDistillError(f"cannot create folder {out}: {exc.strerror or exc}") from None
    if not os.access(out, os.W_OK):
        raise SelfDistillError(f"output folder {out} is not writable")
    return out
