"""Atomic file writes: a temp file beside the target, renamed into place on success.

Inside :func:`output_batch` the renames wait until the batch ends, so all the outputs of
one command appear together or none does (a full disk while writing the second file
leaves neither the first nor the second).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import math
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ._errors import SelfDistillError

__all__ = ["atomic_path", "write_text_atomic", "write_json", "ensure_dir", "output_batch", "staged",
           "check_writable_dir"]

#: absolute target -> (target as given, temp file) of the writes waiting in the current
#: :func:`output_batch`
_BATCH: contextvars.ContextVar[dict[str, tuple[Path, Path]] | None] = contextvars.ContextVar(
    "selfdistill_output_batch", default=None)


@contextlib.contextmanager
def output_batch() -> Iterator[None]:
    """Commit every :func:`atomic_path` write made inside the block together, or none.

    Each write goes to its temp file beside its target as usual; the renames into place
    happen when the block ends without an exception. On an exception every temp file is
    removed and no target is touched (old versions stay as they were). A nested batch
    joins the outer one.
    """
    if _BATCH.get() is not None:
        yield
        return
    pending: dict[str, tuple[Path, Path]] = {}
    token = _BATCH.set(pending)
    try:
        yield
    except BaseException:
        _discard(tmp for _, tmp in pending.values())
        raise
    finally:
        _BATCH.reset(token)
    items = list(pending.values())
    for i, (target, tmp) in enumerate(items):
        try:
            os.replace(tmp, target)
        except OSError as exc:
            _discard(t for _, t in items[i:])
            raise SelfDistillError(f"cannot write {target}: {exc.strerror or exc}") from None


def staged(path: str | Path) -> Path:
    """Where the content of ``path`` is now: its temp file while a batch holds it back.

    Code that reads back a file written earlier in the same command (a report embedding
    its PNGs) reads ``staged(path)``.
    """
    pending = _BATCH.get()
    key = os.path.abspath(path)
    if pending is not None and key in pending:
        return pending[key][1]
    return Path(path)


def _umask() -> int:
    """The process umask, read without changing it where /proc allows."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _mode_for(target: Path) -> int:
    """Permission bits a plain ``open(target, "w")`` would leave the file with."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        return 0o666 & ~_umask()


def _discard(paths) -> None:
    for tmp in paths:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()


@contextlib.contextmanager
def atomic_path(path: str | Path, *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path; rename it to ``path`` if the block succeeds, else delete it.

    Inside :func:`output_batch` the rename waits for the end of the batch.

    Raises
    ------
    SelfDistillError
        When the target's folder does not exist or is not writable, the target is a
        directory, or writing fails (``cannot write PATH: No space left on device``).
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
    tmp = Path(tmp_name)
    try:
        try:
            # mkstemp makes 0600; give what a plain open() would: the old file's mode
            # when replacing one, else 0666 minus the umask
            if hasattr(os, "fchmod"):  # POSIX
                os.fchmod(fd, _mode_for(target))
        finally:
            os.close(fd)
        try:
            yield tmp
        except OSError as exc:  # the write itself failed: a full disk, a quota
            raise SelfDistillError(f"cannot write {target}: {exc.strerror or exc}") from None
        pending = _BATCH.get()
        if pending is None:
            os.replace(tmp, target)
        else:
            key = os.path.abspath(target)
            if key in pending:  # written twice in one batch: the last version wins
                _discard([pending[key][1]])
            pending[key] = (target, tmp)
    except BaseException:
        _discard([tmp])
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


def check_writable_dir(path: str | Path, *, what: str = "files") -> None:
    """Raise :class:`SelfDistillError` unless a file can be created in folder ``path``.

    Tries for real (a temp file, removed at once): ``os.access`` says yes to root on a
    read-only mount's neighbours and cannot see every filesystem's rules.

    Parameters
    ----------
    path : str or Path
        An existing folder.
    what : str
        What would be written, for the message: ``cannot write the report into DIR:
        Read-only file system``.
    """
    try:
        fd, tmp = tempfile.mkstemp(prefix=".selfdistill-write-test.", dir=path)
    except OSError as exc:
        raise SelfDistillError(f"cannot write {what} into {path}: "
                               f"{exc.strerror or exc}") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(tmp)
