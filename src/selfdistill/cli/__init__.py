"""Command line: ``selfdistill fit|demo|theory|sweep|report|bench|embed``.

Each command lives in its own module and registers itself on :data:`app`; heavy
imports happen inside the command bodies.
"""

from . import demo, fit  # noqa: F401  (register commands)
from ._app import app, fail, run

for _mod in ("theory", "sweep", "report", "bench", "embed"):
    try:
        __import__(f"{__name__}.{_mod}")
    except ModuleNotFoundError as _exc:  # command module not written yet
        if _exc.name != f"{__name__}.{_mod}":
            raise

__all__ = ["app", "run", "fail"]
