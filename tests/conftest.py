"""Shared tiny, seeded data: block features (theory-derivation.md §3), digits, a feature file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from selfdistill.datasets import Dataset, load_digits_dataset


def block_features(K: int = 4, n: int = 30, c: float = 0.4, d: float = 0.1) -> tuple:
    """phi_i = sqrt(1-c) e_i + sqrt(c-d) e_class(i) + sqrt(d) e_0 (theory-derivation.md §3)."""
    N = K * n
    y = np.repeat(np.arange(K), n)
    Phi = np.zeros((N, N + K + 1))
    Phi[np.arange(N), np.arange(N)] = np.sqrt(1 - c)
    Phi[np.arange(N), N + y] = np.sqrt(c - d)
    Phi[:, N + K] = np.sqrt(d)
    return Phi, y


@pytest.fixture(scope="session")
def digits() -> Dataset:
    return load_digits_dataset()


@pytest.fixture(scope="session")
def block():
    return block_features()


def count_points(db: Path) -> int:
    """Grid points stored in a sweep database, read-only (0 while it cannot be read)."""
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("SELECT COUNT(*) FROM points").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def write_npz(path, **arrays) -> str:
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return str(path)


@pytest.fixture()
def small_npz(tmp_path, digits) -> str:
    """A valid feature file: 600 digits rows, test set, class names."""
    return write_npz(
        tmp_path / "small.npz",
        X_train=digits.X_train[:600].astype(np.float32),
        y_train=digits.y_train[:600],
        X_test=digits.X_test[:200].astype(np.float32),
        y_test=digits.y_test[:200],
        classes=np.array([f"digit{k}" for k in range(10)]),
    )
