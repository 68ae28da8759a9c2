"""The one exception type users see for bad input."""

from __future__ import annotations

__all__ = ["SelfDistillError"]


class SelfDistillError(ValueError):
    """Bad input: says what is wrong and where (file, key, shape, allowed range).

    It subclasses :class:`ValueError` so scikit-learn's conventions hold, and the
    command line turns it into a one-line ``error: ...`` with exit code 2.
    """
