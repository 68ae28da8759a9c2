"""``python -m selfdistill``."""

from .cli import run

run()
