"""The one exception type users see for bad input."""

from __future__ import annotations

__all__ = ["SelfDistillError", "one_line"]


class SelfDistillError(ValueError):
    """Bad input: says what is wrong and where (file, key, shape, allowed range).

    It subclasses :class:`ValueError` so scikit-learn's conventions hold, and the
    command line turns it into a one-line ``error: ...`` with exit code 2.
    """


def one_line(exc: BaseException, limit: int = 200) -> str:
    """A foreign exception as one short line for an ``error:`` message.

    Whitespace (numpy's header errors span lines) collapses to single spaces, the text is
    cut at ``limit`` characters, and an empty message falls back to the exception's type.
    """
    return " ".join(str(exc).split())[:limit] or type(exc).__name__
