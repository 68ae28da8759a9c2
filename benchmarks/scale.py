"""Teacher fit at scale: synthetic N=200,000, d=512, K=100 float32 (docs/performance.md).

Usage: .venv/bin/python benchmarks/scale.py [--n 200000] [--d 512] [--k 100] [--lam 1e-5]

Features: K class means on the unit sphere plus isotropic noise, rows normalised (like
sentence embeddings); labels with 10% symmetric noise. Prints one JSON line with the
fit time (basis included), iterations, convergence, objective and the process's peak
resident memory (ru_maxrss, everything included: Python, libraries, the data).
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np

from selfdistill.solvers import SpectralBasis, fit_softmax


def make_data(n: int, d: int, k: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((k, d)).astype(np.float32)
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    y = rng.integers(0, k, n)
    X = rng.standard_normal((n, d), dtype=np.float32) * np.float32(1.5 / np.sqrt(d))
    X += means[y]
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    flip = rng.random(n) < 0.1
    y[flip] = (y[flip] + rng.integers(1, k, flip.sum())) % k
    return X, y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--lam", type=float, default=1e-5)
    args = ap.parse_args()
    X, y = make_data(args.n, args.d, args.k)
    t0 = time.perf_counter()
    basis = SpectralBasis.from_features(X)
    t_basis = time.perf_counter() - t0
    _, info = fit_softmax(X, y, lam=args.lam, basis=basis, n_classes=args.k,
                          check_input=False)
    seconds = time.perf_counter() - t0
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(json.dumps({"n": args.n, "d": args.d, "K": args.k, "lam": args.lam,
                      "dtype": str(X.dtype), "seconds": round(seconds, 2),
                      "basis_seconds": round(t_basis, 2), "iterations": info.iterations,
                      "converged": info.converged, "objective": info.objective,
                      "peak_rss_gb": round(peak_gb, 3)}))


if __name__ == "__main__":
    main()
