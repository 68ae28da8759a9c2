"""Command line: ``selfdistill fit|predict|demo|theory|sweep|report|bench|embed``.

Each command lives in its own module and registers itself on :data:`app`; heavy
imports happen inside the command bodies.
"""

from . import bench, demo, embed, fit, predict, report, sweep, theory  # noqa: F401  (register)
from ._app import app, fail, run

__all__ = ["app", "run", "fail"]
