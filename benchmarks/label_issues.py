"""Label-issue detection and noisy-label model selection: selfdistill vs cleanlab 2.x.

On the bundled BANKING77 embeddings (N = 10003, K = 77, d = 384), for each noise
(kind, rate, seed):

* **ours**: ``cross_validate_pipeline`` (3-fold, lam in {1e-6, 1e-5, 1e-4}, teacher +
  SD 1..4 + PLL, scored on the noisy labels only), label issues from the selected
  candidate's out-of-fold probabilities (:func:`selfdistill.issues.label_issues_from_cv`),
  then the pipeline refitted on all rows at the selected lam; test accuracy of the
  selected model. Seconds = CV + final pipeline (both include their spectral bases).
* **cleanlab**: 5-fold out-of-fold ``LogisticRegression`` probabilities,
  ``cleanlab.filter.find_label_issues`` (defaults: ``prune_by_noise_rate``), and
  ``CleanLearning(LogisticRegression)`` test accuracy. Seconds = out-of-fold
  probabilities + find_label_issues (issues), + CleanLearning's prune-and-refit (accuracy;
  the out-of-fold probabilities are passed in, so they are counted once).
* **fast** (``--fast``): no cross-validation. One pipeline at lam = 1e-5, the PLL student
  (what ``selfdistill fit --lam 1e-5 --no-select`` recommends), label issues from its
  in-sample probabilities. Seconds = spectral basis + pipeline + flagging.
* **oracle** (sym only): test accuracy of every (lam, model) after a full fit, so the
  noisy-label choice can be compared with the best choice made with clean test labels.

Precision, recall and F1 are of the flagged set against the truly corrupted rows
(``y_noisy != y_clean``); clean labels are used for scoring only.

Run::

    .venv/bin/python benchmarks/label_issues.py --out docs/label_issues.md \\
        --json benchmarks/label_issues.json

Results are appended to the JSON after each configuration and the table is rewritten,
so an interrupted run keeps what it finished and ``--resume`` skips those rows.
cleanlab is a benchmark dependency only (the ``[dev]`` extra).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np

from selfdistill import make_noisy_labels
from selfdistill.datasets import load_banking77
from selfdistill.distill import self_distill
from selfdistill.issues import find_label_issues, label_issues_from_cv, refit_without_issues
from selfdistill.model_selection import cross_validate_pipeline, select_candidate
from selfdistill.solvers import SpectralBasis

LAMS = (1e-6, 1e-5, 1e-4)
ROUNDS = 4


def prf(flagged: np.ndarray, corrupted: np.ndarray) -> dict:
    """Precision, recall, F1 of a flagged index set against the corrupted mask."""
    mask = np.zeros(len(corrupted), dtype=bool)
    mask[flagged] = True
    tp = int(np.sum(mask & corrupted))
    p = tp / max(int(mask.sum()), 1)
    r = tp / max(int(corrupted.sum()), 1)
    f1 = 0.0 if p + r == 0 else 2 * p * r / (p + r)
    return {"n_flagged": int(mask.sum()), "precision": p, "recall": r, "f1": f1}


def test_acc(W: np.ndarray, ds) -> float:
    return float(np.mean(np.argmax(ds.X_test @ W.T.astype(ds.X_test.dtype), 1) == ds.y_test))


def run_ours(ds, y_noisy, corrupted, seed, *, oracle: bool, n_splits: int,
             dump: Path | None = None) -> dict:
    X, K = ds.X_train, ds.n_classes
    t0 = time.perf_counter()
    cv = cross_validate_pipeline(X, y_noisy, lams=LAMS, rounds=ROUNDS, pll=True, n_classes=K,
                                 n_splits=n_splits, seed=seed)
    iss = label_issues_from_cv(cv, X, y_noisy)
    t_cv = time.perf_counter() - t0
    out = {"cv_seconds": t_cv, "lam": cv.best_lam, "model": cv.best_model,
           "lam_selection": cv.to_dict(), "issues_oof": prf(iss.indices, corrupted)}
    t1 = time.perf_counter()
    clean = refit_without_issues(X, y_noisy, iss, lam=cv.best_lam, n_classes=K)
    out["clean"] = {"test_acc": test_acc(clean.W, ds), "seconds": time.perf_counter() - t1}
    # per-candidate out-of-fold hits, to compare tie rules after the fact
    complete = [lam for lam, k in zip(cv.lams, cv.folds_used) if k == cv.n_splits]
    correct = np.stack([
        np.stack([np.argmax(cv.oof_proba(X, lam, m), 1) == y_noisy for m in cv.models])
        for lam in complete])
    # final fits: the selected lam always; every lam for the oracle
    test = {}
    for lam in (LAMS if oracle else (cv.best_lam,)):
        t1 = time.perf_counter()
        basis = SpectralBasis.from_features(X)
        fits = self_distill(X, y_noisy, lam=lam, rounds=ROUNDS, pll=True, n_classes=K,
                            basis=basis)
        secs = time.perf_counter() - t1
        test[repr(lam)] = {f.name: test_acc(f.W, ds) for f in fits}
        if lam == cv.best_lam:
            out["final_seconds"] = secs
            chosen = {f.name: f for f in fits}[cv.best_model]
            ins = find_label_issues(chosen.predict_proba(X), y_noisy, source="in-sample")
            out["issues_insample"] = prf(ins.indices, corrupted)
    out["seconds"] = t_cv + out["final_seconds"]
    out["test_acc"] = test[repr(cv.best_lam)][cv.best_model]
    out["test_by_candidate"] = test
    rules = {}
    for z in (0.0, 0.5, 1.0, 2.0):
        a, b, _, _ = select_candidate(correct, complete, z=z)
        lam, m = complete[a], cv.models[b]
        rules[str(z)] = {"lam": lam, "model": m,
                         "test_acc": test.get(repr(lam), {}).get(m)}
    out["rules"] = rules
    if dump is not None:  # fold weights, to study other flagging rules without refitting
        np.savez_compressed(dump, weights=cv.weights.astype(np.float32), y_noisy=y_noisy,
                            val=np.concatenate([va for _, va in cv.folds]),
                            fold=np.concatenate([np.full(len(va), f)
                                                 for f, (_, va) in enumerate(cv.folds)]))
    return out


def run_fast(ds, y_noisy, corrupted, lam: float = 1e-5) -> dict:
    """One pipeline at a fixed lam, no CV: the PLL student's in-sample flags."""
    X, K = ds.X_train, ds.n_classes
    t0 = time.perf_counter()
    fits = self_distill(X, y_noisy, lam=lam, rounds=ROUNDS, pll=True, n_classes=K)
    pll = fits[-1]
    iss = find_label_issues(pll.predict_proba(X), y_noisy, source="in-sample")
    return {"lam": lam, "model": pll.name, "issues": prf(iss.indices, corrupted),
            "test_acc": test_acc(pll.W, ds), "seconds": time.perf_counter() - t0}


def run_cleanlab(ds, y_noisy, corrupted, seed, dump: Path | None = None) -> dict:
    from cleanlab.classification import CleanLearning
    from cleanlab.filter import find_label_issues as cl_find
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    X = ds.X_train
    def make():
        return LogisticRegression(max_iter=1000)
    t0 = time.perf_counter()
    pred_probs = cross_val_predict(make(), X, y_noisy, method="predict_proba",
                                   cv=StratifiedKFold(5, shuffle=True, random_state=seed))
    t_oof = time.perf_counter() - t0
    if dump is not None:
        np.save(dump, pred_probs.astype(np.float32))
    t1 = time.perf_counter()
    mask = cl_find(labels=y_noisy, pred_probs=pred_probs)
    t_find = time.perf_counter() - t1
    t2 = time.perf_counter()
    cl = CleanLearning(make(), seed=seed, verbose=False)
    cl.fit(X, y_noisy, pred_probs=pred_probs)
    t_cl = time.perf_counter() - t2
    return {"issues": prf(np.flatnonzero(mask), corrupted),
            "issues_seconds": t_oof + t_find,
            "cl_test_acc": float(np.mean(cl.predict(ds.X_test) == ds.y_test)),
            "cl_seconds": t_oof + t_cl,
            "oof_lr_acc_given": float(np.mean(pred_probs.argmax(1) == y_noisy))}


def rescore(rows: list[dict], ds, dump: Path) -> None:
    """Recompute our flagged sets from the dumped fold weights with the current rule."""
    X = np.asarray(ds.X_train, dtype=np.float64)
    for r in rows:
        path = dump / f"{r['kind']}-{r['rate']:g}-{r['seed']}-ours.npz"
        if not path.exists():
            continue
        d = np.load(path)
        sel = r["ours"]["lam_selection"]
        a, b = sel["candidates"].index(r["ours"]["lam"]), sel["models"].index(r["ours"]["model"])
        P = np.empty((len(d["y_noisy"]), d["weights"].shape[3]))
        for f in range(d["weights"].shape[2]):
            idx = d["val"][d["fold"] == f]
            Z = X[idx] @ d["weights"][a, b, f].T.astype(np.float64)
            Z -= Z.max(axis=1, keepdims=True)
            E = np.exp(Z)
            P[idx] = E / E.sum(axis=1, keepdims=True)
        iss = find_label_issues(P, d["y_noisy"])
        r["ours"]["issues_oof"] = prf(iss.indices, d["y_noisy"] != ds.y_train)
        t0 = time.perf_counter()
        clean = refit_without_issues(ds.X_train, d["y_noisy"], iss, lam=r["ours"]["lam"],
                                     n_classes=ds.n_classes)
        r["ours"]["clean"] = {"test_acc": test_acc(clean.W, ds),
                              "seconds": time.perf_counter() - t0}


def pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


NOTES = """
Columns: *selected* is what `--lam auto` chose from the noisy labels alone (3-fold CV,
lam in {1e-6, 1e-5, 1e-4}, teacher / SD 1-4 / PLL). P / R / F1 (%) are for the flagged
rows against the truly corrupted ones. *ours* flags the calibrated-confident-joint count
of rows, ranked by 1 - P[given] under the selected model's out-of-fold probabilities
(*in-sample*: the same rule on the refitted model's training-set probabilities).
*cleanlab* is `cleanlab.filter.find_label_issues` with default arguments on 5-fold
out-of-fold `LogisticRegression(max_iter=1000)` probabilities. Test accuracy (%) is for the
selected model refitted on all rows, and for `CleanLearning(LogisticRegression)`.
*clean*: the teacher refitted at the selected lam on the rows we did not flag
(`selfdistill.issues.refit_without_issues`, CleanLearning's recipe with our flags; its
fit adds a few seconds, not included in *ours s*). *oracle* is the best test accuracy
over all 18 (lam, model) pairs, chosen with the clean test labels (sym rows only).
Seconds: ours = CV + final pipeline; cleanlab = out-of-fold probabilities +
find_label_issues / + CleanLearning's prune-and-refit.

Reproduce: `.venv/bin/python benchmarks/label_issues.py --fast --out docs/label_issues.md`
(cleanlab comes with the `[dev]` extra).
"""


def row_order(r: dict) -> tuple:
    """Table order: noise kind (sym, asym, cc), then rate, then seed."""
    return ["sym", "asym", "cc"].index(r["kind"]), r["rate"], r["seed"]


def prf_cell(d: dict) -> str:
    """``P / R / **F1**`` in percent."""
    return f"{pct(d['precision'])} / {pct(d['recall'])} / **{pct(d['f1'])}**"


def table(rows: list[dict], header: str) -> str:
    lines = ["# Label issues and noisy-label model selection vs cleanlab", "",
             header, NOTES,
             "| noise | eta | seed | selected (lam, model) | ours P / R / F1 | "
             "ours F1 in-sample | cleanlab P / R / F1 | ours test acc (selected / clean) | "
             "CleanLearning test acc | oracle test acc | ours s | cleanlab s (issues / CL) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=row_order):
        o, c = r["ours"], r["cleanlab"]
        io, ic = o["issues_oof"], c["issues"]
        oracle = (max(max(v.values()) for v in o["test_by_candidate"].values())
                  if len(o["test_by_candidate"]) == len(LAMS) else None)
        lines.append(
            f"| {r['kind']} | {r['rate']:g} | {r['seed']} | {o['lam']:g}, {o['model']} | "
            f"{prf_cell(io)} | "
            f"{pct(o['issues_insample']['f1'])} | "
            f"{prf_cell(ic)} | "
            f"**{pct(o['test_acc'])}** / {pct(o.get('clean', {}).get('test_acc'))} | "
            f"**{pct(c['cl_test_acc'])}** | {pct(oracle)} | "
            f"{o['seconds']:.0f} | {c['issues_seconds']:.0f} / {c['cl_seconds']:.0f} |")
    fast = [r for r in rows if "fast" in r]
    if fast:
        lines += ["", "## Fast mode (no cross-validation)", "",
                  "One pipeline at lam = 1e-5 and its PLL student, flags from in-sample "
                  "probabilities (`--fast`; what `selfdistill fit --lam 1e-5 --no-select "
                  "--issues` does). Same rows as above.", "",
                  "| noise | eta | seed | fast P / R / F1 | cleanlab F1 | fast test acc | "
                  "CleanLearning test acc | fast s | cleanlab s (issues / CL) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in sorted(fast, key=row_order):
            f, c = r["fast"], r["cleanlab"]
            lines.append(
                f"| {r['kind']} | {r['rate']:g} | {r['seed']} | "
                f"{prf_cell(f['issues'])} | {pct(c['issues']['f1'])} | "
                f"{pct(f['test_acc'])} | {pct(c['cl_test_acc'])} | {f['seconds']:.0f} | "
                f"{c['issues_seconds']:.0f} / {c['cl_seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--noise", nargs="+",
                    default=["sym:0.2", "sym:0.5", "sym:0.8", "asym:0.2", "asym:0.4",
                             "cc:0.2", "cc:0.5", "cc:0.8"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("docs/label_issues.md"))
    ap.add_argument("--json", type=Path, default=Path("benchmarks/label_issues.json"))
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--dump", type=Path, default=None,
                    help="folder for fold weights and cleanlab's probabilities (.npz/.npy)")
    ap.add_argument("--rescore", action="store_true",
                    help="only recompute our flagged sets from --dump and rewrite the table")
    ap.add_argument("--fast", action="store_true",
                    help="also run the no-CV fast mode; with --resume, fill it in for "
                         "finished rows that lack it")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")  # sklearn's lbfgs chatter in cleanlab's baseline
    ds = load_banking77()
    K = ds.n_classes
    rows = (json.loads(args.json.read_text())
            if (args.resume or args.rescore) and args.json.exists() else [])
    done = {(r["kind"], r["rate"], r["seed"]) for r in rows}
    machine = (f"{platform.machine()}, {os.cpu_count()} logical CPUs (shared), "
               f"Python {platform.python_version()}")
    header = (f"BANKING77 (N={ds.n_train}, K={K}, d={ds.X_train.shape[1]}); "
              f"{machine}; timings are wall-clock seconds taken as each row ran "
              "(sometimes with other jobs on the same CPUs), so only roughly comparable.")
    if args.rescore:
        rescore(rows, ds, args.dump)
        args.json.write_text(json.dumps(rows, indent=1))
        args.out.write_text(table(rows, header))
        return
    def save() -> None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table(rows, header))

    if args.fast:
        for r in rows:
            if "fast" not in r:
                y_noisy, _ = make_noisy_labels(ds.y_train, kind=r["kind"], rate=r["rate"],
                                               n_classes=K, features=ds.X_train,
                                               seed=r["seed"])
                r["fast"] = run_fast(ds, y_noisy, y_noisy != ds.y_train)
                print(r["kind"], r["rate"], r["seed"], "fast", r["fast"], flush=True)
                save()
    for seed in args.seeds:
        for spec in args.noise:
            kind, rate = spec.split(":")[0], float(spec.split(":")[1])
            if (kind, rate, seed) in done:
                continue
            y_noisy, _ = make_noisy_labels(ds.y_train, kind=kind, rate=rate, n_classes=K,
                                           features=ds.X_train, seed=seed)
            corrupted = y_noisy != ds.y_train
            row = {"kind": kind, "rate": rate, "seed": seed,
                   "realized_rate": float(corrupted.mean())}
            stem = None
            if args.dump is not None:
                args.dump.mkdir(parents=True, exist_ok=True)
                stem = args.dump / f"{kind}-{rate:g}-{seed}"
            row["ours"] = run_ours(ds, y_noisy, corrupted, seed, oracle=(kind == "sym"),
                                   n_splits=args.folds,
                                   dump=None if stem is None else Path(f"{stem}-ours.npz"))
            row["cleanlab"] = run_cleanlab(
                ds, y_noisy, corrupted, seed,
                dump=None if stem is None else Path(f"{stem}-cleanlab.npy"))
            if args.fast:
                row["fast"] = run_fast(ds, y_noisy, corrupted)
            rows.append(row)
            print(json.dumps({k: row[k] for k in ("kind", "rate", "seed")}),
                  "ours", row["ours"]["issues_oof"], row["ours"]["test_acc"],
                  row["ours"]["seconds"], "cleanlab", row["cleanlab"]["issues"],
                  row["cleanlab"]["cl_test_acc"], row["cleanlab"]["cl_seconds"], flush=True)
            save()


if __name__ == "__main__":
    main()
