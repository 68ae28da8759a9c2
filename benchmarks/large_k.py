"""Large K: a synthetic feature file of many classes with few examples each (issue 16).

Usage: .venv/bin/python benchmarks/large_k.py OUT.npz [--k 2000] [--per-class 3] [--d 384]

Features: K class means on the unit sphere plus isotropic noise, rows normalised (like
sentence embeddings), ``per_class`` rows per class, float32; labels clean. Time the
commands of docs/performance.md ("Large K") on it, e.g.::

    /usr/bin/time -v selfdistill fit OUT.npz --no-select --lam 1e-4 --quiet
    /usr/bin/time -v selfdistill fit OUT.npz --lam auto --quiet
"""

from __future__ import annotations

import argparse

import numpy as np


def make_case(k: int = 2000, per_class: int = 3, d: int = 384, seed: int = 0,
              spread: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """``X`` (k * per_class, d) float32 with unit rows, ``y`` (k * per_class,) int64."""
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((k, d)).astype(np.float32)
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    y = np.repeat(np.arange(k), per_class)
    X = rng.standard_normal((len(y), d), dtype=np.float32) * np.float32(spread / np.sqrt(d))
    X += means[y]
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    order = rng.permutation(len(y))
    return X[order], y[order].astype(np.int64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--k", type=int, default=2000)
    ap.add_argument("--per-class", type=int, default=3)
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--spread", type=float, default=1.0,
                    help="noise norm relative to the class means' (larger: harder)")
    args = ap.parse_args()
    X, y = make_case(args.k, args.per_class, args.d, args.seed, args.spread)
    with open(args.out, "wb") as fh:
        np.savez(fh, X_train=X, y_train=y)
    print(f"{args.out}: X_train {X.shape} {X.dtype}, {args.k} classes x {args.per_class}")


if __name__ == "__main__":
    main()
