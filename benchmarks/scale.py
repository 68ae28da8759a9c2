"""Teacher fit at scale on synthetic float32 features (docs/performance.md, "Scale").

Usage::

    .venv/bin/python benchmarks/scale.py                       # N=200,000, d=512, K=100
    .venv/bin/python benchmarks/scale.py --n 1000000 --d 768 --k 1000 --max-iter 5
    .venv/bin/python benchmarks/scale.py --compare --max-iter 10   # stored vs streaming

Features: K class means on the unit sphere plus isotropic noise, rows normalised (like
sentence embeddings); labels with 10% symmetric noise. The data are made in place, row
block by row block, in float32: the features cost N d 4 bytes and nothing more.

Prints one JSON line: the path taken (``stored`` logits or ``streaming``, see
``fit_softmax(low_memory=...)``), the basis time, the fit's steps, its seconds per step
(mean over the L-BFGS steps, from the solver's callback: line-search trials included, the
first and last exact evaluations excluded), its total time (basis included), convergence,
objective, and the process's peak resident memory (ru_maxrss: everything, the data
included). ``--max-iter`` caps the steps for a time-per-step figure on large problems.
``--compare`` fits the same data with both paths in one process, in the order stored,
streaming, streaming, stored (a load that drifts during the run weighs on both alike),
and adds the ratio of their mean seconds per step (wall clock, and CPU time of all
threads, which other jobs on the machine disturb less).
"""

from __future__ import annotations

import argparse
import json
import resource
import time
import warnings

import numpy as np
from threadpoolctl import threadpool_info

from selfdistill.solvers import SpectralBasis, _n_threads, _resolve_low_memory, fit_softmax

#: rows generated at a time
_CHUNK = 1 << 16


def make_data(n: int, d: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features (n, d) float32 and noisy labels (n,), made in place block by block.

    The same numbers as drawing all the noise at once (the generator's stream is consumed
    in the same order), at the memory of the features alone.
    """
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((k, d)).astype(np.float32)
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    y = rng.integers(0, k, n)
    X = np.empty((n, d), dtype=np.float32)
    scale = np.float32(1.5 / np.sqrt(d))
    for i in range(0, n, _CHUNK):
        Xb = X[i:i + _CHUNK]
        rng.standard_normal(dtype=np.float32, out=Xb)
        Xb *= scale
        Xb += means[y[i:i + _CHUNK]]
        Xb /= np.linalg.norm(Xb, axis=1, keepdims=True)
    flip = rng.random(n) < 0.1
    y[flip] = (y[flip] + rng.integers(1, k, flip.sum())) % k
    return X, y


def peak_rss_gib() -> float:
    """The process's peak resident memory so far, in GiB (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def timed_fit(X, y, k: int, lam: float, basis: SpectralBasis, max_iter: int,
              low_memory: bool | None) -> dict:
    """One teacher fit with per-step timing from the solver's callback."""
    marks: list[tuple[int, float, float]] = []
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a capped run does not converge, by design
        _, info = fit_softmax(X, y, lam=lam, basis=basis, n_classes=k, max_iter=max_iter,
                              check_input=False, low_memory=low_memory,
                              callback=lambda it, f, g: marks.append(
                                  (it, time.perf_counter(), time.process_time())))
    t_end = time.perf_counter()
    (it0, m0, c0), (it1, m1, c1) = marks[0], marks[-1]
    return {"steps": info.iterations, "nfev": info.nfev,
            "step_seconds": round((m1 - m0) / max(it1 - it0, 1), 3),
            # CPU seconds of all threads: less sensitive to other jobs than wall time
            "step_cpu_seconds": round((c1 - c0) / max(it1 - it0, 1), 3),
            "setup_seconds": round(m0 - t0, 2),  # g0 and the first exact evaluation
            "final_seconds": round(t_end - m1, 2),  # the last exact evaluation, W
            "fit_seconds": round(t_end - t0, 2),
            "converged": info.converged, "objective": info.objective}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--lam", type=float, default=1e-5)
    ap.add_argument("--max-iter", type=int, default=2000)
    ap.add_argument("--low-memory", choices=("auto", "on", "off"), default="auto",
                    help="auto: fit_softmax's choice (low_memory=None)")
    ap.add_argument("--compare", action="store_true",
                    help="fit with both paths (stored, streaming, streaming, stored) and compare")
    args = ap.parse_args()
    t0 = time.perf_counter()
    X, y = make_data(args.n, args.d, args.k)
    record = {"n": args.n, "d": args.d, "K": args.k, "lam": args.lam, "dtype": str(X.dtype),
              "max_iter": args.max_iter, "data_seconds": round(time.perf_counter() - t0, 2),
              "data_peak_rss_gib": round(peak_rss_gib(), 3), "n_threads": _n_threads(None),
              "blas": [f"{b['internal_api']} {b['version']} {b['architecture']}"
                       for b in threadpool_info() if b["user_api"] == "blas"]}
    low_memory = {"auto": None, "on": True, "off": False}[args.low_memory]
    paths = ((False, True, True, False) if args.compare
             else (_resolve_low_memory(low_memory, "numpy", args.n, args.k),))
    t0 = time.perf_counter()
    # the stored path needs the rotated features; the streaming path only V and s2
    basis = SpectralBasis.from_features(X, rotate=not all(paths))
    record["basis_seconds"] = round(time.perf_counter() - t0, 2)
    for stream in paths:
        fit = timed_fit(X, y, args.k, args.lam, basis, args.max_iter, stream)
        fit["seconds"] = round(record["basis_seconds"] + fit["fit_seconds"], 2)
        name = "streaming" if stream else "stored"
        if name in record:  # a repeat (--compare): keep the first record, list the times
            record[name]["step_seconds_runs"].append(fit["step_seconds"])
            record[name]["step_cpu_seconds_runs"].append(fit["step_cpu_seconds"])
            record[name]["fit_seconds_runs"].append(fit["fit_seconds"])
        else:
            record[name] = {**fit, "step_seconds_runs": [fit["step_seconds"]],
                            "step_cpu_seconds_runs": [fit["step_cpu_seconds"]],
                            "fit_seconds_runs": [fit["fit_seconds"]]}
    if args.compare:
        record["streaming_over_stored_step"] = round(
            float(np.mean(record["streaming"]["step_seconds_runs"]))
            / float(np.mean(record["stored"]["step_seconds_runs"])), 2)
        record["streaming_over_stored_step_cpu"] = round(
            float(np.mean(record["streaming"]["step_cpu_seconds_runs"]))
            / float(np.mean(record["stored"]["step_cpu_seconds_runs"])), 2)
    record["peak_rss_gib"] = round(peak_rss_gib(), 3)
    print(json.dumps(record))


if __name__ == "__main__":
    main()
